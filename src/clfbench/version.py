"""The package version (one place: pyproject reads none of it, `clfbench --version` and
method.json do)."""

__version__ = "0.1.0"
