"""Every import is declared, and a missing extra is one line that names it.

A package that happens to be installed on the developers' machine but is declared nowhere
works here and fails for every user (optuna, imported by every default fine-tune, was such a
package). These tests read the imports of the source itself, so a new undeclared import fails
here, whatever is installed.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from clfbench.errors import ClfbenchError
from clfbench.extras import EXTRAS, require
from clfbench.methods.base import Classifier, make_method

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "clfbench"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist(requirement: str) -> str:
    return _norm(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> the source files that import it (not the standard library)."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "clfbench":
                    found.setdefault(top, set()).add(str(path.relative_to(SRC)))
    return found


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_every_import_is_a_base_dependency_or_a_named_extra():
    base = {_dist(r) for r in project()["dependencies"]}
    extras = {name: {_dist(r) for r in reqs} for name, reqs in project()["optional-dependencies"].items()}
    dists = packages_distributions()
    undeclared = {}
    for module, files in third_party_imports().items():
        if module in EXTRAS:  # optional: its extra must exist and install it
            package, extra = EXTRAS[module]
            assert _dist(package) in extras.get(extra, set()), f"{module}: extra {extra!r} lacks {package}"
            continue
        candidates = {_norm(d) for d in dists.get(module, [module])}
        if not candidates & base:
            undeclared[module] = sorted(files)
    assert not undeclared, f"imported but not in pyproject's dependencies: {undeclared}"


def test_the_lock_pins_every_declared_package():
    lock = ROOT / "requirements" / "lock.txt"
    pinned = {_dist(line) for line in lock.read_text().splitlines() if line and not line.startswith("#")}
    assert all("==" in line for line in lock.read_text().splitlines() if line and not line.startswith("#"))
    declared = {_dist(r) for r in project()["dependencies"]}
    declared |= {_dist(r) for reqs in project()["optional-dependencies"].values() for r in reqs}
    assert declared - pinned == set()
    assert {"optuna", "tqdm", "joblib", "accelerate"} <= pinned


def test_a_missing_extra_is_one_line_naming_every_extra_needed(monkeypatch):
    """(A method's own extra, at build time and on the command line: tests/methods/test_setfit.py.)"""
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # find_spec then says: not installed
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ClfbenchError, match=r'^this needs uvicorn, onnx, not installed: '
                                            r'pip install "clfbench\[onnx,serve\]"$'):
        require("uvicorn", "onnx", "numpy", what="this")
    require("numpy", what="never missing")  # installed: no error


def test_a_saved_model_of_a_missing_extra_is_refused_on_load(monkeypatch, tmp_path):
    (tmp_path / "method.json").write_text('{"method": "setfit", "params": {}, "labels": ["a", "b"]}')
    monkeypatch.setitem(sys.modules, "setfit", None)
    with pytest.raises(ClfbenchError, match=r'pip install "clfbench\[setfit\]"'):
        Classifier.load(tmp_path)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clfbench.cli", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


DEMO = SRC / "demo_data"


@pytest.mark.parametrize(("method", "model", "message"), [
    ("encoder-ft", "/no/such/model", "model folder '/no/such/model' not found"),
    ("embed-probe", "no-such-org/no-such-model", "model 'no-such-org/no-such-model' not found"),
])
def test_cli_refuses_a_missing_model_before_any_work(tmp_path, method, model, message):
    """One line, exit 2, before the data is read or tuning starts (it used to be a traceback
    from inside the first tuning trial), and no results folder."""
    done = _cli(tmp_path, "run", "--train", str(DEMO / "train.csv"), "--test", str(DEMO / "test.csv"),
                "--method", method, "--model", model, "--out", "runs")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "runs").exists()


def test_distill_checks_its_teacher_and_student_models(tmp_path):
    missing = str(tmp_path / "no-teacher")
    m = make_method("distill", teacher={"method": "llm-prompt", "model": missing}, student="minilm")
    with pytest.raises(ClfbenchError, match="model folder .*no-teacher. not found"):
        m.check_models()
