"""Export a saved run into a self-contained folder, and load such a folder for inference.

An export holds what inference needs and nothing of training:

    DIR/export.json       what it is: method, format, labels, preprocessing and truncation
    DIR/MODEL_CARD.md     the model card, and the same facts as model_card.json
    DIR/pipeline.skops    tfidf-lr: the fitted scikit-learn pipeline (skops: no pickle)
    DIR/onnx/             encoders (and embed-probe's frozen encoder): ONNX graph(s) + tokenizer
    DIR/logreg.skops      embed-probe: the probe on the pooled embeddings (skops)
    DIR/torch/            --format torch: the (merged) weights + tokenizer, save_pretrained
    DIR/method/, DIR/base/  llm-prompt / llm-sft: prompt state (+ LoRA adapter) and base weights

`load_export(DIR).classify(texts, pairs)` needs onnxruntime, transformers/tokenizers or skops
only: tfidf-lr, embed-probe and encoder exports never import `clfbench.methods` (prompted LLMs
reuse the prompt and scoring code of their method, which has no separate inference form).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from clfbench.data.texts import Texts
from clfbench.engines.sklearn_io import load_estimator, save_estimator
from clfbench.errors import ClfbenchError

EXPORT_FILE = "export.json"
CARD_JSON = "model_card.json"
CARD_MD = "MODEL_CARD.md"
FORMATS = ("onnx", "onnx-int8", "torch")
#: method -> kind of export; the kind decides which formats apply and how it loads.
KINDS = {
    "tfidf-lr": "sklearn-text", "embed-probe": "embedding-probe",
    "encoder-ft": "sequence-classification", "encoder-lora": "sequence-classification",
    "decoder-head": "sequence-classification", "llm-prompt": "prompted-lm", "llm-sft": "prompted-lm",
}
KIND_FORMATS = {
    "sklearn-text": ("sklearn",), "embedding-probe": ("onnx", "onnx-int8"),
    "sequence-classification": FORMATS, "prompted-lm": ("torch",),
}
TFIDF_PAIR_JOINER = " [SEP] "  # what tfidf_lr.TfidfLogReg joins pairs with
RECHECK_TARGET = 0.998
CALIBRATION_TEXTS = 1000


# --- the model card ------------------------------------------------------------------------
def read_run(run: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(metrics, config, predictions) of a run folder; ClfbenchError naming what is missing."""
    from clfbench.results.store import read_json

    for name in ("metrics.json", "predictions.jsonl"):
        if not (run / name).is_file():
            raise ClfbenchError(f"{run}: not a run folder ({name} missing)")
    from clfbench.data.files import iter_jsonl

    config = read_json(run / "config.json") if (run / "config.json").is_file() else {}
    metrics = read_json(run / "metrics.json")
    for name, obj in (("metrics.json", metrics), ("config.json", config)):
        if not isinstance(obj, dict):
            raise ClfbenchError(f"{run / name}: corrupted (expected a JSON object)")
    path, preds = run / "predictions.jsonl", []
    try:  # a truncated or damaged file: one line naming it and the line, before any output
        for lineno, row in iter_jsonl(path):
            for key in ("text", "gold", "pred"):
                if key not in row:
                    raise ClfbenchError(f"{path}: line {lineno}: field {key!r} missing")
            preds.append(row)
    except UnicodeDecodeError as e:
        raise ClfbenchError(f"{path}: not valid UTF-8 ({e.reason})") from None
    return metrics, config, preds


def model_card(run: Path, labels: list[str], n_boot: int = 1000) -> dict[str, Any]:
    """Task, data provenance, test metrics with 95% bootstrap intervals, latency and memory as
    the run measured them, clfbench version and the run's config."""
    from clfbench.evaluation.stats import bootstrap_ci
    from clfbench.version import __version__

    metrics, config, preds = read_run(run)
    index = {name: i for i, name in enumerate(labels)}
    gold = np.array([index[p["gold"]] for p in preds], dtype=np.int64)
    pred = np.array([index.get(p["pred"], -1) if p["pred"] is not None else -1 for p in preds])
    ci = bootstrap_ci(gold, pred, len(labels), n_resamples=n_boot) if len(preds) else {}
    keys = ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "throughput_sps",
            "peak_memory_mb", "peak_gpu_memory_mb", "train_seconds", "parameters")
    env = config.get("env", {})
    return {
        "run_id": run.name, "task": metrics.get("task") or config.get("spec", {}).get("name"),
        "method": metrics.get("method"), "model": metrics.get("model"), "labels": labels,
        "data": {"splits": metrics.get("splits"), "n_test": len(preds),
                 "data_seed": config.get("spec", {}).get("data_seed")},
        "metrics": {k: {"value": v.value, "ci95": [v.low, v.high]} for k, v in ci.items()}
        | {"weighted_f1": {"value": metrics.get("weighted_f1"), "ci95": None}},
        "measured": {k: metrics.get(k) for k in keys}
        | {"machine_load": metrics.get("machine_load"), "degenerate": metrics.get("degenerate")},
        "inference": metrics.get("inference_info") or {},
        "environment": {"cpu": env.get("cpu"), "torch_threads": env.get("torch_threads"),
                        "git_commit": env.get("git_commit")},
        "clfbench_version": __version__,
        "config": {"spec": config.get("spec"), "method_params": config.get("method_params")},
    }


def _g(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)


def card_markdown(card: dict[str, Any], export: dict[str, Any]) -> str:
    """MODEL_CARD.md from the card's facts."""
    m = {k: _g(v) for k, v in card["measured"].items()}
    rows = [f"| {k} | {v['value']:.4f} | " + (f"[{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]" if v["ci95"] else "-")
            + " |" for k, v in card["metrics"].items() if v["value"] is not None]
    splits = card["data"]["splits"] or {}
    return "\n".join([
        f"# Model card: {card['run_id']}", "",
        f"- task: {card['task']}; method: {card['method']}; model: {card['model'] or '-'}",
        f"- labels ({len(card['labels'])}): {', '.join(card['labels'])}",
        f"- export format: {export['format']}; max length: {export['preprocessing'].get('max_length')}; "
        f"truncation: {export['preprocessing'].get('truncation')}",
        f"- data: {splits.get('origin', '-')}; sizes {splits.get('sizes', '-')}; data seed "
        f"{card['data']['data_seed']}", f"- clfbench {card['clfbench_version']}", "",
        f"## Test metrics (n = {card['data']['n_test']}, 95% bootstrap interval over examples)", "",
        "| metric | value | 95% CI |", "|---|---|---|", *rows, "",
        "## Cost as measured by the run (in process)", "",
        f"- latency per example at batch 1: p50 {m['latency_ms_p50']} ms, p95 {m['latency_ms_p95']} ms, "
        f"p99 {m['latency_ms_p99']} ms", f"- throughput: {m['throughput_sps']} samples/s",
        f"- peak RSS {m['peak_memory_mb']} MB, peak GPU memory {m['peak_gpu_memory_mb']} MB "
        f"(other processes' CPU during timing: {_g((card['measured']['machine_load'] or {}).get('other_cpu_pct'))}%)",
        f"- machine: {card['environment']['cpu']}, {card['environment']['torch_threads']} torch threads", "",
        "The full config is in model_card.json (`config`).", "",
    ])


# --- export --------------------------------------------------------------------------------
def export_run(run: str | Path, out: str | Path, fmt: str | None = None,
               recheck: float | str | None = "auto", n_boot: int = 1000) -> Path:
    """Write the export of `run` (saved with --save-model) into `out`; return `out`.

    `fmt`: onnx, onnx-int8 or torch for fine-tuned models (default onnx; torch for
    decoder-head), onnx/onnx-int8 for embed-probe; tfidf-lr and prompted LLMs have one format.
    `recheck` (onnx-int8): rows whose int8 top-two logit margin is below it are recomputed by
    the fp32 graph; "auto" keeps the run's calibrated margin or calibrates one on the run's test
    texts so that agreement with fp32 reaches 99.8%; None turns it off.
    """
    from clfbench.methods.base import Classifier

    run, out = Path(run), Path(out)
    if not (run / "model" / "method.json").is_file():
        raise ClfbenchError(f"{run}: no saved model (run with --save-model)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ClfbenchError(f"{out}: exists and is not an empty folder")
    metrics, _, preds = read_run(run)
    from clfbench.results.store import read_json

    saved = read_json(run / "model" / "method.json")
    if not isinstance(saved, dict) or not {"method", "labels"} <= set(saved):
        raise ClfbenchError(f"{run / 'model' / 'method.json'}: corrupted (expected an object with method, labels)")
    known = set(map(str, saved["labels"]))
    for i, p in enumerate(preds, start=1):  # the model card's intervals need each row's labels
        if str(p["gold"]) not in known:
            raise ClfbenchError(f"{run / 'predictions.jsonl'}: row {i}: gold label {p['gold']!r} "
                                "is not one of the saved model's labels")
    method = saved["method"]
    kind = KINDS.get(method)
    if kind is None:
        raise ClfbenchError(f"{run}: method {method!r} cannot be exported (it runs remotely)")
    fmt = fmt or ("torch" if method == "decoder-head" else KIND_FORMATS[kind][0])
    if fmt not in KIND_FORMATS[kind]:
        raise ClfbenchError(f"export: {method} exports as {', '.join(KIND_FORMATS[kind])}, not {fmt!r}")
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"format": fmt, "kind": kind, "method": method, "run_id": run.name,
                            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if kind == "prompted-lm":
        meta.update(_export_prompted(run / "model", out))
        labels = meta["labels"]
    else:
        model = Classifier.load(run / "model")
        labels = list(model.labels)
        texts = Texts([p["text"] for p in preds[:CALIBRATION_TEXTS]],
                      [p["text_pair"] for p in preds[:CALIBRATION_TEXTS]] if preds and "text_pair" in preds[0] else None)
        meta.update(_export_fitted(model, kind, fmt, out, texts, metrics, recheck))
    meta["labels"] = labels
    (out / EXPORT_FILE).write_text(json.dumps(meta, indent=2, default=str))
    card = model_card(run, labels, n_boot)
    (out / CARD_JSON).write_text(json.dumps(card, indent=2, default=str))
    (out / CARD_MD).write_text(card_markdown(card, meta), encoding="utf-8")
    return out


def _export_fitted(model, kind: str, fmt: str, out: Path, texts: Texts, metrics: dict[str, Any],
                   recheck: float | str | None) -> dict[str, Any]:
    """Write a fitted model's inference state; return export.json's facts about it."""
    if kind == "sklearn-text":
        save_estimator(model.pipeline_, out, "pipeline")
        return {"preprocessing": {"pair_joiner": TFIDF_PAIR_JOINER, "truncation": "none (whole texts)",
                                  "max_length": None}}
    if kind == "embedding-probe":
        encoder = model.encoder_.encoder
        encoder.set_attn_implementation("eager")  # the pooled wrapper has no switch of its own
        graph = _export_onnx(model.encoder_.cpu(), model.tokenizer_, out, fmt, None, texts, model.max_length)
        save_estimator(model.lr_, out, "logreg")
        return {"preprocessing": _tokenizer_policy(model.tokenizer_, model.max_length, ""), **graph,
                "pooling": "mean over attention mask", "normalize": model.normalize}
    prefix = _pair_prefix(model)
    pre = _tokenizer_policy(model.tokenizer_, model.max_length, prefix)
    if fmt == "torch":
        model.model_.save_pretrained(out / "torch")
        model.tokenizer_.save_pretrained(out / "torch")
        return {"preprocessing": pre}
    margin = _run_margin(metrics) if recheck == "auto" else recheck
    return {"preprocessing": pre,
            **_export_onnx(model.model_.cpu(), model.tokenizer_, out, fmt, margin, texts,
                           model.max_length, prefix)}


def _export_onnx(module, tokenizer, out: Path, fmt: str, margin: float | str | None,
                 texts: Texts, max_length: int, prefix: str = "") -> dict[str, Any]:
    """onnx/model.onnx (+ model.int8.onnx) and the tokenizer; for int8 with a re-check, the
    margin (given, or calibrated on `texts`) and its measured agreement with the fp32 graph."""
    from clfbench.engines import onnx_backend
    from clfbench.engines.encoding import encode, run_batched
    from clfbench.engines.inference import label_agreement, recheck_threshold, with_recheck

    fp32 = onnx_backend.export(module, tokenizer, out / "onnx")
    if fmt != "onnx-int8":
        return {"onnx": {"file": fp32.name}}
    int8 = onnx_backend.quantize(fp32)
    info: dict[str, Any] = {"file": int8.name, "recheck_file": fp32.name, "recheck_margin": None}
    if margin is None:
        return {"onnx": info}
    fast_s, ref_s = onnx_backend.OnnxSession(int8, tokenizer), onnx_backend.OnnxSession(fp32, tokenizer)
    enc = encode(tokenizer, _with_prefix(texts, prefix), max_length, fast_s.input_names)
    fast, ref = run_batched(fast_s, enc, 64), run_batched(ref_s, enc, 64)
    if margin == "auto":
        margin, info["recheck_calibrated_on"] = recheck_threshold(fast, ref, RECHECK_TARGET), "run test texts"
    info["recheck_margin"] = float(margin)
    info["agreement_with_fp32"] = label_agreement(with_recheck(fast, ref, float(margin)), ref)
    info["agreement_without_recheck"] = label_agreement(fast, ref)
    return {"onnx": info}


def _run_margin(metrics: dict[str, Any]) -> float | str:
    """The re-check margin the run calibrated, else "auto" (calibrate at export)."""
    margin = ((metrics.get("inference_info") or {}).get("recheck") or {}).get("margin")
    return float(margin) if margin else "auto"


def _pair_prefix(model) -> str:
    """What the method puts before a pair's second text (decoder-head: a newline)."""
    prepare = getattr(model, "_prepare_inputs", None)
    return prepare(Texts(["a"], ["b"])).pairs[0][:-1] if prepare else ""


def _tokenizer_policy(tokenizer, max_length: int, pair_prefix: str) -> dict[str, Any]:
    return {"max_length": int(max_length), "truncation": "longest_first", "pair_prefix": pair_prefix,
            "padding_side": getattr(tokenizer, "padding_side", "right"),
            "pad_token": tokenizer.pad_token}


def _export_prompted(saved: Path, out: Path) -> dict[str, Any]:
    """The method's saved state (prompt, shots, LoRA adapter) and the base model's weights."""
    from clfbench.engines.llm import load_causal_lm

    meta = json.loads((saved / "method.json").read_text())
    shutil.copytree(saved, out / "method")
    lm, tok = load_causal_lm(meta["params"]["model"], "cpu", None, meta["method"])
    lm.save_pretrained(out / "base")
    tok.save_pretrained(out / "base")
    return {"labels": meta["labels"], "base_model": meta["params"]["model"],
            "preprocessing": {"max_length": meta["params"].get("max_length"),
                              "truncation": "prompt template (see method/template.yaml)"}}


def _with_prefix(X: Texts, prefix: str) -> Texts:
    return X if X.pairs is None or not prefix else Texts(X.texts, [prefix + p for p in X.pairs])


# --- loading ---------------------------------------------------------------------------------
class ExportedModel:
    """A loaded export: `classify(texts, pairs)` -> (label ids, probabilities or None)."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        self.folder, self.meta = folder, meta
        self.labels: list[str] = list(meta["labels"])
        card = folder / CARD_JSON
        self.card: dict[str, Any] = json.loads(card.read_text()) if card.is_file() else {}

    def classify(self, texts: list[str], pairs: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        X = Texts(texts, pairs)
        if not len(X):
            return np.zeros(0, dtype=np.int64), np.zeros((0, len(self.labels)))
        proba = self._proba(X)
        return proba.argmax(axis=1), proba

    def _proba(self, X: Texts) -> np.ndarray:
        raise NotImplementedError


def _columns(estimator, proba: np.ndarray, n_labels: int) -> np.ndarray:
    """scikit-learn's columns (the classes seen in training) onto all labels."""
    out = np.zeros((proba.shape[0], n_labels))
    out[:, estimator.classes_] = proba
    return out


def _device() -> str:
    """A CUDA GPU when there is one (CUDA execution provider for ONNX, where installed)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _softmax(logits: np.ndarray) -> np.ndarray:
    from scipy.special import softmax

    return softmax(logits.astype(np.float64), axis=1)


class SklearnText(ExportedModel):
    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        super().__init__(folder, meta)
        self.pipeline = load_estimator(folder, "pipeline")

    def _proba(self, X: Texts) -> np.ndarray:
        joined = X.joined(self.meta["preprocessing"]["pair_joiner"])
        return _columns(self.pipeline, self.pipeline.predict_proba(joined), len(self.labels))


class OnnxExport(ExportedModel):
    """An ONNX graph of logits (or pooled embeddings), with the int8 fp32 re-check."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        from clfbench.engines.onnx_backend import OnnxSession

        super().__init__(folder, meta)
        pre, onnx = meta["preprocessing"], meta["onnx"]
        self.session = OnnxSession(folder / "onnx" / onnx["file"], max_length=pre["max_length"],
                                   device=_device())
        self.session.tokenizer.padding_side = pre.get("padding_side", "right")
        self.margin = onnx.get("recheck_margin")
        self.recheck = (OnnxSession(folder / "onnx" / onnx["recheck_file"], self.session.tokenizer,
                                    max_length=pre["max_length"], device=_device()) if self.margin else None)
        self.rechecked = 0

    def logits(self, X: Texts) -> np.ndarray:
        from clfbench.engines.encoding import encode, run_batched
        from clfbench.engines.inference import top2_margin

        X = _with_prefix(X, self.meta["preprocessing"].get("pair_prefix", ""))
        s = self.session
        enc = encode(s.tokenizer, X, s.max_length, s.input_names)
        out = run_batched(s, enc, s.batch_size)
        if self.recheck is not None:
            rows = np.flatnonzero(top2_margin(out) < self.margin)
            if len(rows):
                out[rows] = run_batched(self.recheck, enc.subset(rows), s.batch_size)
            self.rechecked += len(rows)
        return out

    def _proba(self, X: Texts) -> np.ndarray:
        return _softmax(self.logits(X))


class EmbeddingProbeExport(OnnxExport):
    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        super().__init__(folder, meta)
        self.probe = load_estimator(folder, "logreg")

    def _proba(self, X: Texts) -> np.ndarray:
        emb = self.logits(X).astype(np.float64)
        return _columns(self.probe, self.probe.predict_proba(emb), len(self.labels))


class TorchExport(ExportedModel):
    """save_pretrained weights run by clfbench's batching engine in exact fp32."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from clfbench.engines.inference import EncoderEngine

        super().__init__(folder, meta)
        pre = meta["preprocessing"]
        tok = AutoTokenizer.from_pretrained(folder / "torch")
        tok.padding_side = pre.get("padding_side", "right")
        if tok.pad_token is None and pre.get("pad_token"):
            tok.pad_token = pre["pad_token"]
        # safetensors only: a pytorch_model.bin put in an export is a pickle (code), never loaded
        model = AutoModelForSequenceClassification.from_pretrained(folder / "torch", use_safetensors=True).eval()
        self.engine = EncoderEngine(model, tok, max_length=pre["max_length"], batch_size=64,
                                    device=_device(), dtype=None)

    def _proba(self, X: Texts) -> np.ndarray:
        return _softmax(self.engine.logits(_with_prefix(X, self.meta["preprocessing"].get("pair_prefix", ""))))


class PromptedLM(ExportedModel):
    """llm-prompt / llm-sft: the method's own prompt and label scoring over the shipped base."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        from clfbench.methods.base import get_method

        super().__init__(folder, meta)
        saved = json.loads((folder / "method" / "method.json").read_text())
        self.method = get_method(saved["method"])(**{**saved["params"], "model": str(folder / "base")})
        self.method.labels = list(saved["labels"])
        self.method._load_state(folder / "method")

    def classify(self, texts: list[str], pairs: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        pred, proba = self.method.classify(Texts(texts, pairs))
        return np.asarray(pred), proba


LOADERS: dict[tuple[str, str], type[ExportedModel]] = {
    ("sklearn-text", "sklearn"): SklearnText,
    ("embedding-probe", "onnx"): EmbeddingProbeExport, ("embedding-probe", "onnx-int8"): EmbeddingProbeExport,
    ("sequence-classification", "onnx"): OnnxExport, ("sequence-classification", "onnx-int8"): OnnxExport,
    ("sequence-classification", "torch"): TorchExport, ("prompted-lm", "torch"): PromptedLM,
}


def is_export(path: str | Path) -> bool:
    return (Path(path) / EXPORT_FILE).is_file()


def load_export(folder: str | Path) -> ExportedModel:
    """Load an export folder written by `export_run`."""
    folder = Path(folder)
    if not is_export(folder):
        raise ClfbenchError(f"{folder}: not an export ({EXPORT_FILE} missing)")
    meta = json.loads((folder / EXPORT_FILE).read_text())
    loader = LOADERS.get((meta.get("kind"), meta.get("format")))
    if loader is None:
        raise ClfbenchError(f"{folder / EXPORT_FILE}: unknown kind/format {meta.get('kind')}/{meta.get('format')}")
    return loader(folder, meta)
