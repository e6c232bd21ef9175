"""The end of `decide`, within the plan's reserve: the report (with the recommendation, so
every verdict rule of `clfbench report` applies), and the export of the recommended
configuration's run, ready for `clfbench serve`.

Which run is exported: the pick pools runs (seeds, draws); the best of those that kept their
model. A learning-curve configuration's runs keep none (`StepRunner.save_models`), so when one
is picked it is run once more with its model saved, if that fits the time left. A pick that
cannot be exported (a remote API method, an export that fails) is said in one line and skipped.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from clfbench.progress import format_seconds
from clfbench.report.build import ReportOutput, build_report
from clfbench.report.recommend import Constraints, Option, Recommendation
from clfbench.results.store import Store
from clfbench.run.config import RunSpec
from clfbench.run.runner import run_grid
from clfbench.serving.export import EXPORT_FILE, KINDS, export_run

#: The volume recommended for when the caller gives no constraints (issue 25's example).
DEFAULT_VOLUME_PER_DAY = 1e6
EXPORT_DIR = "export"
REPORT_DIR = "report"

Say = Callable[[str], object]


def default_constraints() -> Constraints:
    return Constraints(volume_per_day=DEFAULT_VOLUME_PER_DAY)


def make_report(out: Path, constraints: Constraints) -> ReportOutput:
    """report/ with the recommendation of every comparison group at its top."""
    return build_report(out, out / REPORT_DIR, constraints=constraints)


def main_recommendation(recs: list[Recommendation]) -> Recommendation | None:
    """The recommendation to act on: the comparison group with the most configurations (a
    decide scores every run on one test split, so there is normally one group)."""
    return max(recs, key=lambda r: len(r.options), default=None)


def saved_run(option: Option) -> Path | None:
    """The best run (macro-F1) of `option` that kept its model."""
    ranked = sorted(option.runs, key=lambda r: -(r.metrics.get("macro_f1") or 0.0))
    return next((r.path for r in ranked if (r.path / "model" / "method.json").is_file()), None)


def rerun_spec(option: Option) -> RunSpec:
    """One run of `option`'s configuration (its first draw only) with its model saved."""
    spec: dict[str, Any] = dict(option.runs[0].spec)
    return replace(RunSpec(**spec), save_model=True, size_draws=1)


def run_with_model(out: Path, option: Option, time_left_s: float, estimate_s: float,
                   isolate: bool | None, say: Say) -> Path | None:
    """The folder of a run of `option` that kept its model: one already there, or one run now
    when `estimate_s` fits `time_left_s`; None (said) otherwise."""
    found = saved_run(option)
    if found is not None:
        return found
    spec = rerun_spec(option)
    folder = out / spec.run_id()
    if Store(out).is_complete(spec.hash()):
        return folder
    if estimate_s > time_left_s:
        say(f"export skipped: {option.label} kept no model, and running it again takes about "
            f"{format_seconds(estimate_s)}, {format_seconds(max(time_left_s, 0))} left")
        return None
    say(f"running {option.label} once more with its model saved, to export it")
    done = run_grid([spec], out, quiet=True, isolate=isolate)
    return done[0] if done else folder


def export_folder(out: Path, run: Path, say: Say) -> Path | None:
    """Export `run` into out/export (whole or not at all: written beside it, then renamed);
    an export of the same run already there is kept. None (said in one line) when it fails."""
    dest, tmp = out / EXPORT_DIR, out / f".{EXPORT_DIR}.partial"
    meta = dest / EXPORT_FILE
    if meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("run_id") == run.name:
        say(f"export: {dest} already holds {run.name}")
        return dest
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        export_run(run, tmp)
    except Exception as e:  # noqa: BLE001 - the runs and the report stand without an export
        shutil.rmtree(tmp, ignore_errors=True)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        say(f"export skipped: {first}")
        return None
    if dest.exists():  # an export of another run, from an earlier call with other constraints
        shutil.rmtree(dest)
    tmp.rename(dest)
    say(f"exported {run.name} to {dest}: clfbench serve {dest}")
    return dest


def export_pick(out: Path, rec: Recommendation | None, time_left_s: float, rerun_estimate_s: float,
                isolate: bool | None, say: Say) -> Path | None:
    """Export the recommendation's pick; None (said) when there is nothing to export."""
    pick = rec.decision.pick if rec is not None else None
    if pick is None:
        say("export skipped: no configuration meets the constraints")
        return None
    if pick.config.method not in KINDS:
        say(f"export skipped: {pick.config.method} cannot be exported (it runs remotely)")
        return None
    run = run_with_model(out, pick, time_left_s, rerun_estimate_s, isolate, say)
    return export_folder(out, run, say) if run is not None else None
