"""Device and precision choice: CUDA > MPS > CPU; bf16 autocast only on capable GPUs."""

from __future__ import annotations

import pytest
import torch

from clfbench.engines import device as dev
from clfbench.errors import ClfbenchError


def test_auto_choice_follows_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.pick_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert dev.pick_device().type == "mps"
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    assert dev.pick_device() == torch.device("cpu")


def test_requested_device(monkeypatch):
    assert dev.pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ClfbenchError, match="CUDA is not available"):
        dev.pick_device("cuda")
    with pytest.raises(ClfbenchError, match="not a torch device"):
        dev.pick_device("gpu0")


def test_precision(monkeypatch):
    assert dev.autocast_dtype("cpu") is None and dev.precision_name("cpu") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dev.autocast_dtype("cuda") is torch.bfloat16
    assert dev.precision_name("cuda:0") == "bf16-autocast"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert dev.autocast_dtype("cuda") is None


def test_cpu_autocast_is_plain_fp32():
    a = torch.randn(4, 4)
    with dev.autocast("cpu"):
        assert (a @ a).dtype == torch.float32
