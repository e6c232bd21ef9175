"""Provenance: what a run ran on, so that numbers can be traced and compared."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = [
    "clfbench", "torch", "transformers", "peft", "scikit-learn", "datasets", "numpy",
    "tokenizers", "accelerate", "onnxruntime", "sentence-transformers",
]


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def thread_pools() -> list[dict]:
    """The BLAS/OpenMP thread pools loaded in this process and their current thread counts."""
    from threadpoolctl import threadpool_info

    return [
        {k: pool.get(k) for k in ("user_api", "internal_api", "prefix", "num_threads", "version")}
        for pool in threadpool_info()
    ]


def environment() -> dict:
    """Called during a run: the thread counts are the ones the run had."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "thread_pools": thread_pools(),
        "gpu": gpu,
        "packages": package_versions(),
        "git_commit": git_commit(),
    }
