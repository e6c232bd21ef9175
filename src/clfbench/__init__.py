"""clfbench: measured evidence, on your own data, for how to classify text.

The public API, in the order data flows (ARCHITECTURE.md says where each concern lives):

    from clfbench import RunSpec, run_grid, results_frame, build_report, Constraints, recommend

    specs = [RunSpec(method="tfidf-lr", train_file="train.csv", test_file="test.csv", seed=s)
             for s in (1, 2)]
    run_grid(specs, "runs")                           # computes, stores, skips what is stored
    print(results_frame("runs"))                      # one row per run
    build_report("runs", "runs/report")               # tables, verdicts, plots, HTML
    recommend("runs", Constraints(volume_per_day=1e6, p95_ms=100))

Names load on first use, so `import clfbench` (and the CLI's start) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from clfbench.version import __version__

#: Public name -> the module that defines it.
_API: dict[str, str] = {
    # data
    "LabeledTexts": "clfbench.data.texts",
    "Texts": "clfbench.data.texts",
    "get_task": "clfbench.data.tasks",
    "load_task": "clfbench.data.tasks.loading",
    "load_user_files": "clfbench.data.tasks.loading",
    # methods
    "Classifier": "clfbench.methods.base",
    "get_method": "clfbench.methods.base",
    "make_method": "clfbench.methods.base",
    "register_method": "clfbench.methods.base",
    # run a grid
    "RunSpec": "clfbench.run.config",
    "load_grid": "clfbench.run.config",
    "run_grid": "clfbench.run.runner",
    # results and reports
    "results_frame": "clfbench.results.table",
    "build_report": "clfbench.report.build",
    "Constraints": "clfbench.report.recommend",
    "recommend": "clfbench.report.recommend",
    # hand over
    "export_run": "clfbench.serving.export",
    "load_export": "clfbench.serving.export",
    # all of it within a time budget
    "decide": "clfbench.decide.workflow",
    # errors
    "ClfbenchError": "clfbench.errors",
}

__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'clfbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and editors see
    from clfbench.data.tasks import get_task  # noqa: F401
    from clfbench.data.tasks.loading import load_task, load_user_files  # noqa: F401
    from clfbench.data.texts import LabeledTexts, Texts  # noqa: F401
    from clfbench.decide.workflow import decide  # noqa: F401
    from clfbench.errors import ClfbenchError  # noqa: F401
    from clfbench.methods.base import Classifier, get_method, make_method, register_method  # noqa: F401
    from clfbench.report.build import build_report  # noqa: F401
    from clfbench.report.recommend import Constraints, recommend  # noqa: F401
    from clfbench.results.table import results_frame  # noqa: F401
    from clfbench.run.config import RunSpec, load_grid  # noqa: F401
    from clfbench.run.runner import run_grid  # noqa: F401
    from clfbench.serving.export import export_run, load_export  # noqa: F401
