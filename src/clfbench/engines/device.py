"""Where neural methods run and in which precision: one rule for every method.

CUDA if available, else Apple MPS, else CPU. On CUDA, bf16 autocast where the GPU supports
it (weights stay fp32, matmuls run in bf16: standard mixed precision); fp32 everywhere else,
since CPU bf16 is slow without native bf16 (AMX, AVX512-BF16) and MPS autocast support is
partial. Encoder inference can opt into CPU bf16 (`eval_dtype="bf16"`); it then reports its
label agreement with fp32. Thread counts are bounded by `measure.limit_threads`, not here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from clfbench.errors import ClfbenchError


def pick_device(requested: str | None = None) -> torch.device:
    """`requested` ("cpu", "cuda", "cuda:1", "mps") if given and usable, else the best available."""
    if requested:
        try:
            dev = torch.device(requested)
        except RuntimeError:
            raise ClfbenchError(f"device {requested!r}: not a torch device (cpu, cuda, cuda:N, mps)") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ClfbenchError(f"device {requested!r}: CUDA is not available on this machine")
        if dev.type == "mps" and not _mps_available():
            raise ClfbenchError(f"device {requested!r}: MPS is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """bf16 on CUDA GPUs that support it; None (plain fp32) otherwise."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


@contextlib.contextmanager
def autocast(device: torch.device | str) -> Iterator[None]:
    """Mixed-precision context for forward passes on `device` (a no-op in fp32)."""
    device = torch.device(device)
    dtype = autocast_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def precision_name(device: torch.device | str) -> str:
    dtype = autocast_dtype(device)
    return "bf16-autocast" if dtype is torch.bfloat16 else "fp32"
