"""The layering of ARCHITECTURE.md, checked on every import statement of the package (lazy
imports inside functions included): no cycle, nothing imported from a higher layer, and the
document names every package and only modules that exist."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "clfbench"

#: Layer of each top-level module or package of clfbench (ARCHITECTURE.md's table).
LAYERS = {
    "errors": 0, "extras": 0, "progress": 0, "version": 0,
    "data": 1, "evaluation": 2, "engines": 3, "methods": 4, "results": 5, "run": 6,
    "report": 7, "serving": 8, "decide": 9, "cli": 10,
}
PUBLIC_API = 11  # clfbench/__init__.py: above everything, imported by nothing inside


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except under `if TYPE_CHECKING:` (imports for type checkers, never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *runtime_nodes(child)])
            continue
        yield node
        yield from runtime_nodes(node)


def imported(module: str, path: Path, modules: set[str]) -> Iterator[str]:
    """The clfbench modules one file imports: `from pkg import submodule` counts as the
    submodule; `from pkg import name` as the package."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("clfbench"):
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
            yield from subs
            if len(subs) < len(node.names) and target in modules:
                yield target


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    names = set(files)
    return {m: {t for t in imported(m, p, names) if t != m} for m, p in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return PUBLIC_API
    if parts[1] not in LAYERS:
        pytest.fail(f"{module}: clfbench.{parts[1]} has no layer; add it to LAYERS and ARCHITECTURE.md")
    return LAYERS[parts[1]]


def test_the_cycle_finder_finds_a_cycle():
    """The check itself can fail: a three-module cycle and a self-contained tree."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_import_walk_sees_lazy_imports(tmp_path):
    """An import inside a function counts: that is where the old cycles hid. One for type
    checkers only does not run, so it does not count."""
    f = tmp_path / "m.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from clfbench.run import runner\n"
                 "def f():\n    from clfbench.cli import main\n    from clfbench.report import build\n")
    modules = {"clfbench.cli", "clfbench.report", "clfbench.report.build", "clfbench.run.runner"}
    assert set(imported("clfbench.x", f, modules)) == {"clfbench.cli", "clfbench.report.build"}


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_from_a_higher_layer():
    up = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
          for a, targets in sorted(import_graph().items()) for b in sorted(targets) if layer(b) > layer(a)]
    assert not up, "\n".join(up)


def test_every_top_level_module_has_a_layer():
    top = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
           if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert top == set(LAYERS)


def test_architecture_names_every_package_and_only_modules_that_exist():
    doc = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for name in LAYERS:
        assert f"`{name}" in doc, f"ARCHITECTURE.md does not mention {name}"
    files = {p.name for p in PACKAGE.rglob("*.py")}
    named = set(re.findall(r"(?<![\w/])(\w+\.py)\b", doc))  # not tests/...py
    assert named and named <= files, f"ARCHITECTURE.md names modules that do not exist: {sorted(named - files)}"


def test_the_public_api_resolves_every_name():
    import clfbench

    for name in clfbench.__all__:
        assert getattr(clfbench, name) is not None, name
    with pytest.raises(AttributeError):
        clfbench.no_such_name  # noqa: B018


def test_every_folder_of_code_is_a_package():
    """setuptools' `packages.find` ships only folders with an `__init__.py`: a folder of modules
    without one works from a checkout and is missing from an installed wheel."""
    missing = sorted(str(d.relative_to(SRC)) for d in PACKAGE.rglob("*")
                     if d.is_dir() and any(d.glob("*.py")) and not (d / "__init__.py").is_file())
    assert not missing, f"no __init__.py in {missing}"


def test_no_source_file_is_ignored_by_git():
    """A `.gitignore` pattern that matches a package folder (`results/` once did) keeps new
    modules out of every commit: they work here and are missing from a clone."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    files = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, input="\n".join(files),
                             capture_output=True, text=True).stdout.split()
    assert not ignored, f"ignored by .gitignore: {ignored}"
