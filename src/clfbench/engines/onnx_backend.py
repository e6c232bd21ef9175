"""ONNX Runtime backend for encoder classifiers: export, optional dynamic int8, inference.

Export goes through `torch.onnx.export(..., dynamo=False, opset_version=17)` (optimum 2.x has
no exporter), with eager attention: a graph traced through SDPA's mask shortcuts bakes the
traced batch's padding in and is wrong for other batches. BERT-family graphs are then fused
by ONNX Runtime's transformer optimizer (attention, LayerNorm, GELU). Every exported graph is
checked against the torch model before it is used. `quantize=True` adds dynamic int8
(per-channel weights, `onnxruntime.quantization.quantize_dynamic`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import tempfile
import warnings
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clfbench.data.texts import Texts
from clfbench.engines.encoding import encode, model_input_names, run_batched
from clfbench.errors import ClfbenchError

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
OPSET = 17
#: model_type -> ONNX Runtime transformer-optimizer family (graphs whose fusions it knows).
ORT_FUSION_TYPES = {"bert": "bert", "roberta": "bert", "distilbert": "bert", "electra": "bert"}
DUMMY = Texts(["the movie was not very good at all , really quite boring", "fine"])


class _LogitsOnly(torch.nn.Module):
    """Positional inputs in `names` order -> logits tensor (what the ONNX graph computes)."""

    def __init__(self, model, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, args))).logits


@contextlib.contextmanager
def _eager_attention(model):
    """Trace with eager attention (see the module docstring), restore the previous choice."""
    before = getattr(model.config, "_attn_implementation", None)
    changed = False
    if before not in (None, "eager"):
        with contextlib.suppress(ValueError, ImportError, NotImplementedError):
            model.set_attn_implementation("eager")
            changed = True
    try:
        yield
    finally:
        if changed:
            model.set_attn_implementation(before)


def _session(file: Path, threads: int | None = None, device: str | torch.device = "cpu"):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(file), options, providers=providers)


def _max_diff(file: Path, feeds: dict[str, np.ndarray], expected: np.ndarray) -> float:
    """Largest |ONNX - torch| logit difference, relative to the logits' scale when above 1."""
    got = _session(file).run(["logits"], feeds)[0]
    return float(np.abs(got - expected).max() / max(1.0, float(np.abs(expected).max())))


def export(model, tokenizer, path: str | Path, optimize: bool = True, atol: float = 1e-4) -> Path:
    """Write `path/model.onnx` (dynamic batch and sequence axes) plus the tokenizer and
    `export.json`; return the .onnx file. Raises ClfbenchError if the graph's logits differ
    from the torch model's by more than `atol`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    names = model_input_names(model)
    feeds = encode(tokenizer, DUMMY, 64, names).batch(np.arange(len(DUMMY)))  # padded on purpose
    args = tuple(torch.from_numpy(feeds[k]).to(next(model.parameters()).device) for k in names)
    wrapper = _LogitsOnly(model, names).eval()  # a new Module is in training mode: dropout on
    file = path / MODEL_FILE
    with _eager_attention(model), torch.inference_mode():
        expected = wrapper(*args).float().cpu().numpy()
    with _eager_attention(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about shape-dependent Python branches
        torch.onnx.export(
            wrapper, args, str(file), input_names=names, output_names=["logits"],
            dynamic_axes={**{k: {0: "batch", 1: "sequence"} for k in names}, "logits": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    model.eval()
    diff = _max_diff(file, feeds, expected)
    if diff > atol:
        raise ClfbenchError(
            f"{file}: ONNX export of {model.config.model_type} differs from torch by {diff:.2e}"
        )
    meta: dict[str, Any] = {"model_type": model.config.model_type, "inputs": names,
                            "opset": OPSET, "export_max_abs_diff": diff, "fused": None}
    family = ORT_FUSION_TYPES.get(model.config.model_type)
    if optimize and family:
        meta.update(_fuse(file, family, model.config, feeds, expected, atol))
    tokenizer.save_pretrained(path)
    (path / "export.json").write_text(json.dumps(meta, indent=2))
    return file


def _fuse(file: Path, family: str, config, feeds, expected, atol: float) -> dict[str, Any]:
    """Fuse attention/LayerNorm/GELU with ONNX Runtime's optimizer; keep it only if exact."""
    from onnxruntime.transformers.optimizer import optimize_model

    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", 0)
    fused_file = file.with_name("model.fused.onnx")
    try:
        optimized = optimize_model(str(file), model_type=family, num_heads=heads,
                                   hidden_size=hidden, opt_level=0)
        optimized.save_model_to_file(str(fused_file))
        stats = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        diff = _max_diff(fused_file, feeds, expected)
    except Exception as err:  # the optimizer is best-effort; the plain graph still works
        fused_file.unlink(missing_ok=True)
        return {"fused": None, "fusion_error": f"{type(err).__name__}: {err}"[:300]}
    if diff > atol:
        fused_file.unlink()
        return {"fused": None, "fusion_error": f"fused graph differs by {diff:.2e}; not used"}
    fused_file.replace(file)
    return {"fused": stats, "fused_max_abs_diff": diff}


def first_layer_nodes(file: str | Path, n_layers: int) -> list[str]:
    """Names of the weight ops (MatMul, Gemm, fused Attention) in the first `n_layers` encoder
    layers, by the layer index in node names ("layer.3/", "layers.3/"); a fused Attention node,
    which has no such name, belongs to the layer after the last one seen (graphs are in
    topological order)."""
    import onnx

    out, last = [], -1
    for node in onnx.load(str(file), load_external_data=False).graph.node:
        match = re.search(r"layers?[./_](\d+)[./]", node.name)
        layer = int(match.group(1)) if match else (last + 1 if node.op_type == "Attention" else None)
        if match:
            last = layer
        if layer is not None and layer < n_layers and node.op_type in ("MatMul", "Gemm", "Attention"):
            out.append(node.name)
    return out


def quantize(src: str | Path, dst: str | Path | None = None, fp32_layers: int = 0) -> Path:
    """Dynamic int8 quantization (int8 per-channel weights, activations quantized at run time).

    `fp32_layers` keeps the first encoder layers in fp32: on SST-2 the label flips of int8
    MiniLM come mostly from its first two layers (see benchmarks/encoder_inference.md).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = Path(src)
    dst = Path(dst) if dst is not None else src.with_name(INT8_FILE)
    # The quantizer logs a "consider pre-processing" advice on the root logger for every
    # model; it is about static quantization of CNNs and would only clutter clfbench's output.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
            nodes_to_exclude=first_layer_nodes(src, fp32_layers) if fp32_layers else None,
            # fused contrib ops (Attention, SkipLayerNorm) have no shape inference: outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)
    return dst


_quantize = quantize  # `from_model` has a parameter of the same name


class OnnxSession:
    """An exported encoder in ONNX Runtime: `session(feeds)` for one padded batch, `logits(X)`
    for texts (same batching as the torch engine). Threads default to torch's thread count."""

    def __init__(
        self,
        file: str | Path,
        tokenizer=None,
        max_length: int = 128,
        batch_size: int = 64,
        threads: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.file = Path(file)
        if not self.file.is_file():
            raise ClfbenchError(f"{self.file}: ONNX model file not found")
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.file.parent)
        self.tokenizer, self.max_length, self.batch_size = tokenizer, max_length, batch_size
        self.threads = int(threads or torch.get_num_threads())
        self.session = _session(self.file, self.threads, device)
        self.input_names = [i.name for i in self.session.get_inputs()]
        meta_file = self.file.parent / "export.json"
        self.meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        self._tmp: weakref.finalize | None = None
        self.fp32_layers = 0

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["logits"], {k: feeds[k] for k in self.input_names})[0]

    def logits(self, X: Texts) -> np.ndarray:
        """Logits (n, n_labels) in the input order, batched by length with dynamic padding."""
        enc = encode(self.tokenizer, X, self.max_length, self.input_names)
        return run_batched(self, enc, self.batch_size)

    def info(self) -> dict[str, Any]:
        return {
            "file": self.file.name,
            "quantized": self.file.name == INT8_FILE,
            **({"fp32_layers": self.fp32_layers} if self.fp32_layers else {}),
            "fused": self.meta.get("fused"),
            **({"fusion_error": self.meta["fusion_error"]} if "fusion_error" in self.meta else {}),
            "providers": self.session.get_providers(),
            "intra_op_threads": self.threads,
            "opset": self.meta.get("opset"),
        }

    @classmethod
    def from_model(
        cls, model, tokenizer, folder: str | Path | None = None, quantize: bool = False,
        fp32_layers: int = 0, **kw: Any,
    ) -> OnnxSession:
        """Export `model` into `folder` (a temporary one, removed with the session, if None)."""
        tmp = None
        if folder is None:
            folder = tmp = tempfile.mkdtemp(prefix="clfbench-onnx-")
        file = export(model, tokenizer, folder)
        if quantize:
            file = _quantize(file, fp32_layers=fp32_layers)
        session = cls(file, tokenizer, **kw)
        session.fp32_layers = fp32_layers if quantize else 0
        if tmp is not None:
            session._tmp = weakref.finalize(session, shutil.rmtree, tmp, True)
        return session
