"""The inference engine every encoder-style method uses to turn texts into logits.

One place does it, so every method's evaluation, `predict` and throughput numbers come from
the same code:

- the fast tokenizer runs once over the whole input; texts are then sorted by token length
  and cut into batches, each padded only to its own longest text (dynamic padding);
- the forward pass runs under `torch.inference_mode` (or in ONNX Runtime, `backend="onnx"`,
  optionally int8-quantized), and logits come back in the input order;
- the batch size can be searched (`batch_size="auto"`): 8, 16, 32, ... until throughput
  drops or memory runs out;
- on a GPU the forward pass runs in bf16 (fp16 where bf16 is unsupported) under autocast with
  SDPA attention; any path that is not exact fp32 torch reports its label agreement with the
  fp32 torch model (`info()["agreement"]`);
- an inexact path can re-check its near-ties in fp32 (`recheck`): rows whose top-two logit
  margin is below a threshold, calibrated on validation texts, are run again in fp32 (the
  torch model, or for int8 ONNX the fp32 graph it came from). Reduced precision only flips
  labels the model barely decides, so this buys back agreement for a few percent of rows.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
import psutil
import torch

from clfbench.data.texts import Texts
from clfbench.engines.encoding import (
    Encoded,
    Forward,
    encode,
    model_input_names,
    run_batched,
)
from clfbench.errors import ClfbenchError
from clfbench.evaluation.measure import synchronize
from clfbench.extras import require

#: Batch sizes `tune_batch_size` tries, in order.
BATCH_CANDIDATES = (8, 16, 32, 64, 128, 256, 512)
BACKENDS = ("torch", "onnx")

def top2_margin(logits: np.ndarray) -> np.ndarray:
    """Per row, the largest logit minus the second largest (how firmly the label was decided)."""
    if logits.shape[1] < 2:
        return np.full(len(logits), np.inf, dtype=np.float32)
    top = np.partition(logits, -2, axis=1)
    return top[:, -1] - top[:, -2]


def recheck_threshold(fast: np.ndarray, ref: np.ndarray, target: float) -> float:
    """The smallest margin threshold under which re-checking in fp32 gives at least `target`
    agreement on these rows: all flipped rows but the `floor((1 - target) * n)` most confident
    ones fall below it. 0.0 when the fast path already meets the target."""
    flips = fast.argmax(1) != ref.argmax(1)
    allowed = int(np.floor((1 - target) * len(fast) + 1e-9))
    margins = np.sort(top2_margin(fast)[flips])[::-1]
    return float(np.nextafter(margins[allowed], np.inf)) if len(margins) > allowed else 0.0


def with_recheck(fast: np.ndarray, ref: np.ndarray, threshold: float) -> np.ndarray:
    """What the re-check returns: `ref` rows where the fast margin is below `threshold`."""
    return np.where((top2_margin(fast) < threshold)[:, None], ref, fast)


def label_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of rows whose argmax label is the same in two logits (or probability) arrays."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"logits shapes differ: {a.shape} vs {b.shape}")
    if len(a) == 0:
        return 1.0
    return float((a.argmax(axis=1) == b.argmax(axis=1)).mean())


# --- the torch forward pass ----------------------------------------------------------------
def resolve_dtype(device: torch.device, dtype: str | torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype for `dtype` ("auto": bf16 on CUDA, fp16 where bf16 is unsupported,
    none on CPU); None means fp32, no autocast."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        return None if dtype == torch.float32 else dtype
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    names = {"float32": None, "fp32": None, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ClfbenchError(f"dtype {dtype!r}: expected one of auto, {', '.join(names)}")
    return names[dtype]


def use_sdpa(model) -> str | None:
    """Switch eager attention to PyTorch SDPA where the model supports it; return the choice."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) == "eager" and getattr(
        model, "_supports_sdpa", False
    ):
        with contextlib.suppress(ValueError, ImportError, NotImplementedError):
            model.set_attn_implementation("sdpa")
    return getattr(config, "_attn_implementation", None)


class TorchForward:
    """`model(**batch).logits` under inference mode, with autocast to `dtype` when given."""

    def __init__(self, model, device: torch.device, dtype: torch.dtype | None = None) -> None:
        self.model, self.device, self.dtype = model, device, dtype

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        batch = {k: torch.from_numpy(v).to(self.device) for k, v in feeds.items()}
        cast = (
            torch.autocast(self.device.type, dtype=self.dtype)
            if self.dtype is not None else contextlib.nullcontext()
        )
        with torch.inference_mode(), cast:
            return self.model(**batch).logits.float().cpu().numpy()


def model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _is_oom(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, MemoryError) or "out of memory" in text or "failed to allocate" in text


# --- the engine ----------------------------------------------------------------------------
class EncoderEngine:
    """Texts -> logits for a Hugging Face sequence-classification model, as fast as it goes here.

    `backend="onnx"` exports the model with `torch.onnx` and runs it in ONNX Runtime
    (`quantize=True`: dynamic int8, per channel; `fp32_layers=n` keeps the first n encoder
    layers in fp32, trading speed for agreement). `batch_size="auto"` searches the batch size
    on `prepare(sample)` (or, failing that, on the first `logits` call). Use `prepare` with
    validation texts after fitting: it also measures the label agreement of every inexact path
    (ONNX, int8, bf16/fp16) with the fp32 torch model on that sample.

    `recheck` (inexact paths only): a margin threshold, or "auto" to calibrate one on up to
    `calibration_examples` prepare texts so that agreement reaches `recheck_target`. Rows of
    `logits` whose top-two margin is below it are recomputed in fp32 (see `recheck_by`). With
    "auto" the reported agreement is cross-fitted (threshold from one half of the sample,
    agreement on the other, both ways), so it is not scored on the texts that set it. On the
    exact fp32 torch path `recheck` is ignored.
    """

    def __init__(
        self,
        model,
        tokenizer,
        max_length: int = 128,
        batch_size: int | str = "auto",
        device: str | torch.device | None = None,
        backend: str = "torch",
        quantize: bool = False,
        fp32_layers: int = 0,
        dtype: str | torch.dtype | None = "auto",
        onnx_dir: str | None = None,
        tune_examples: int = 256,
        memory_limit_mb: float | None = None,
        recheck: float | str | None = None,
        recheck_target: float = 0.998,
        calibration_examples: int = 1000,
    ) -> None:
        check_settings(backend, quantize, batch_size, dtype, recheck)
        if not 0 < recheck_target <= 1:
            raise ClfbenchError(f"recheck_target {recheck_target!r}: expected a share in (0, 1]")
        self.tokenizer, self.max_length, self.backend = tokenizer, int(max_length), backend
        self.quantize, self.tune_examples = bool(quantize), int(tune_examples)
        self.memory_limit_mb = memory_limit_mb or 0.8 * psutil.virtual_memory().total / 2**20
        self.batch_size: int | str = batch_size
        self.tuning: dict[int, float] = {}
        self.agreement: float | None = None
        self.agreement_n = 0
        self.max_abs_diff: float | None = None
        self.recheck_margin: float | None = _recheck_setting(recheck)
        self.recheck_auto = recheck == "auto"
        self.recheck_target, self.calibration_examples = float(recheck_target), int(calibration_examples)
        self.rechecked = 0  # rows recomputed in fp32 by the last `logits` call
        self.rows_predicted = self.rows_rechecked = 0  # over all `logits` calls
        self.recheck_share: float | None = None  # share of the prepare sample re-checked
        self.agreement_without_recheck: float | None = None
        self.device = torch.device(device) if device is not None else model_device(model)
        self.model = model.eval()
        if model_device(model) != self.device:
            self.model.to(self.device)
        self.input_names = model_input_names(model)
        self.threads = torch.get_num_threads()
        self.dtype = resolve_dtype(self.device, dtype)
        if next(model.parameters()).dtype != torch.float32:
            self.dtype = None  # already half precision: no autocast on top
        self.attn_implementation = use_sdpa(model)
        self.reference = TorchForward(model, self.device, None)
        # Re-checks run in fp32 torch, or for int8 ONNX in the fp32 graph it was quantized
        # from (exact to 1e-4, checked at export): faster, and one runtime's threads, not two.
        self.recheck_forward: Forward = self.reference
        self.recheck_by = "fp32 torch model"
        self.onnx_info: dict[str, Any] = {}
        if backend == "onnx":
            from clfbench.engines import onnx_backend

            self.session = onnx_backend.OnnxSession.from_model(
                model, tokenizer, onnx_dir, quantize=self.quantize, fp32_layers=fp32_layers,
                device=self.device, threads=self.threads, max_length=self.max_length,
            )
            self.onnx_info = self.session.info()
            self.forward: Forward = self.session
            if self.quantize and recheck is not None:
                self.recheck_forward = onnx_backend.OnnxSession(
                    self.session.file.with_name(onnx_backend.MODEL_FILE), tokenizer,
                    device=self.device, threads=self.threads, max_length=self.max_length,
                )
                self.recheck_by = "fp32 ONNX graph"
        else:
            self.forward = TorchForward(model, self.device, self.dtype)
        if self.exact:  # the fp32 torch model itself: nothing to re-check
            self.recheck_margin, self.recheck_auto = None, False

    @property
    def exact(self) -> bool:
        """True when the forward pass is the fp32 torch model itself (agreement is 1 by definition)."""
        return self.backend == "torch" and self.dtype is None

    def encode(self, X: Texts) -> Encoded:
        return encode(self.tokenizer, X, self.max_length, self.input_names)

    def logits(self, X: Texts) -> np.ndarray:
        """Logits (n, n_labels), float32, in the input order."""
        if len(X) == 0:
            return np.zeros((0, self.model.config.num_labels), dtype=np.float32)
        enc = self.encode(X)
        self._prepare(enc)
        out = run_batched(self.forward, enc, int(self.batch_size))
        if self.recheck_margin:
            rows = np.flatnonzero(top2_margin(out) < self.recheck_margin)
            if len(rows):
                out[rows] = run_batched(self.recheck_forward, enc.subset(rows), int(self.batch_size))
            self.rechecked = len(rows)
            self.rows_predicted += len(out)
            self.rows_rechecked += len(rows)
        synchronize(self.device)
        return out

    def prepare(self, sample: Texts) -> EncoderEngine:
        """Tune the batch size (when 'auto') and measure agreement with fp32 torch on `sample`."""
        if len(sample):
            self._prepare(self.encode(sample))
        return self

    def _sample(self, enc: Encoded, n: int | None = None) -> Encoded:
        """At most `n` (default `tune_examples`) rows, evenly spread over the input."""
        n = self.tune_examples if n is None else n
        if len(enc) <= n:
            return enc
        return enc.subset(np.unique(np.linspace(0, len(enc) - 1, n).round().astype(int)))

    def _prepare(self, enc: Encoded) -> None:
        if self.batch_size == "auto":
            self.batch_size = self._tune(self._sample(enc))
        if self.exact or self.agreement is not None:
            return
        sample = self._sample(enc, self.calibration_examples if self.recheck_auto else None)
        fast = run_batched(self.forward, sample, int(self.batch_size))
        ref = run_batched(self.reference, sample, int(self.batch_size))
        self.max_abs_diff = float(np.abs(fast - ref).max())
        self.agreement_n = len(sample)
        self.agreement_without_recheck = label_agreement(fast, ref)
        if self.recheck_auto:
            self.recheck_margin, self.agreement = self._calibrate(fast, ref)
        elif self.recheck_margin:
            self.agreement = label_agreement(with_recheck(fast, ref, self.recheck_margin), ref)
        else:
            self.agreement = self.agreement_without_recheck
        self.recheck_share = float((top2_margin(fast) < (self.recheck_margin or 0.0)).mean())

    def _calibrate(self, fast: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
        """Threshold and agreement by 2-fold cross-fitting: each half's threshold is scored on
        the other half; the larger threshold is kept (agreement only grows with it, so the
        reported mean is a conservative estimate)."""
        halves = [np.arange(0, len(fast), 2), np.arange(1, len(fast), 2)]
        thresholds = [recheck_threshold(fast[h], ref[h], self.recheck_target) for h in halves]
        scores = [
            label_agreement(with_recheck(fast[other], ref[other], t), ref[other])
            for t, other in zip(thresholds, reversed(halves)) if len(other)
        ]
        return max(thresholds), float(np.mean(scores))

    def tune_batch_size(self, sample: Texts) -> int:
        """Search the batch size with the best throughput on `sample` and keep it."""
        self.batch_size = self._tune(self._sample(self.encode(sample)))
        return self.batch_size

    def _tune(self, enc: Encoded) -> int:
        """Try 8, 16, 32, ... (up to the sample size); stop when throughput drops or memory
        runs out (CUDA/ORT out-of-memory, or process RSS over `memory_limit_mb`)."""
        from clfbench.evaluation.measure import PeakMemory

        candidates = [b for b in BATCH_CANDIDATES if b <= max(len(enc), BATCH_CANDIDATES[0])]
        run_batched(self.forward, enc.subset(np.arange(min(len(enc), 8))), 8)  # warm-up
        best, best_tp = candidates[0], 0.0
        self.tuning = {}
        for b in candidates:
            memory = PeakMemory()
            try:
                with memory.track():
                    synchronize(self.device)
                    t0 = time.perf_counter()
                    run_batched(self.forward, enc, b)
                    synchronize(self.device)
                    elapsed = time.perf_counter() - t0
            except Exception as err:  # ORT raises its own exception types for allocation failures
                if not _is_oom(err):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                break
            if memory.peak_rss_mb > self.memory_limit_mb:
                break
            tp = len(enc) / elapsed
            self.tuning[b] = tp
            if tp < best_tp:
                break
            best, best_tp = b, tp
        return best

    def info(self) -> dict[str, Any]:
        """How predictions were made: record this with every efficiency number."""
        return {
            "backend": self.backend,
            "quantized": self.quantize,
            "batch_size": self.batch_size,
            "batch_size_search": {str(k): round(v, 2) for k, v in self.tuning.items()} or None,
            "device": str(self.device),
            "dtype": "float32" if self.dtype is None else str(self.dtype).replace("torch.", ""),
            "threads": self.threads,
            "max_length": self.max_length,
            "attn_implementation": self.attn_implementation,
            "agreement": 1.0 if self.exact else self.agreement,
            "agreement_n": self.agreement_n,
            **({"recheck": {
                "margin": self.recheck_margin,
                "by": self.recheck_by,
                "calibrated": self.recheck_auto,
                "target": self.recheck_target if self.recheck_auto else None,
                "share_of_sample": self.recheck_share,
                "agreement_without_recheck": self.agreement_without_recheck,
                "rows_rechecked": self.rows_rechecked,
                "rows_predicted": self.rows_predicted,
            }} if self.recheck_auto or self.recheck_margin is not None else {}),
            "agreement_reference": "fp32 torch model",
            "max_abs_logit_diff": 0.0 if self.exact else self.max_abs_diff,
            **({"onnx": self.onnx_info} if self.onnx_info else {}),
        }


def check_settings(
    backend: str, quantize: bool, batch_size: int | str, dtype: str | torch.dtype | None,
    recheck: float | str | None,
) -> None:
    """Raise ClfbenchError for engine settings that cannot work (before any model is loaded)."""
    if backend not in BACKENDS:
        raise ClfbenchError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if quantize and backend != "onnx":
        raise ClfbenchError("quantize=True needs backend='onnx' (dynamic int8 in ONNX Runtime)")
    if backend == "onnx":
        require("onnxruntime", "onnx", what="backend 'onnx'")
    if batch_size != "auto" and not (isinstance(batch_size, int) and batch_size > 0):
        raise ClfbenchError(f"batch_size {batch_size!r}: expected a positive integer or 'auto'")
    resolve_dtype(torch.device("cpu"), dtype)
    _recheck_setting(recheck)


def _recheck_setting(recheck: float | str | None) -> float | None:
    """A fixed margin threshold from `recheck` (None for "auto", set later, or off)."""
    if recheck is None or recheck == "auto":
        return None
    try:
        margin = float(recheck)
    except (TypeError, ValueError):
        margin = -1.0
    if not margin >= 0:
        raise ClfbenchError(f"recheck {recheck!r}: expected 'auto' or a margin >= 0")
    return margin


def predict_logits(
    model, tokenizer, X: Texts, batch_size: int = 64, max_length: int = 128, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Logits (n, n_labels) for `X`, batched by length with dynamic padding (fp32 torch)."""
    engine = EncoderEngine(
        model, tokenizer, max_length=max_length, batch_size=batch_size, device=device,
        dtype=None,
    )
    return engine.logits(X)
