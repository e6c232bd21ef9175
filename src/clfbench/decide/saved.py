"""plan.json: the plan a `decide` made, saved before its first run with a fingerprint of what
it was made from, so that the same command resumes with the same plan (probes are timings:
planning again could choose differently) and a different command is refused rather than mixed
into another's results.

The fingerprint holds what changes the runs or the plan: the files (path, size and a hash of
their content), columns, run options, budget, families and LLM. The constraints are not in it:
they only change the recommendation, which is made again on every call from the runs kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from clfbench.decide.inputs import PLAN_FILE, Inputs
from clfbench.errors import ClfbenchError
from clfbench.run.plan import LLM, Plan

CHUNK = 1 << 20


def file_digest(path: Path) -> dict[str, Any]:
    """Size and sha256 of a file's content (its path or mtime may change; its content may not)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": h.hexdigest()}


def fingerprint(inputs: Inputs, budget_s: float, families: list[str] | None,
                llm: LLM | None) -> dict[str, Any]:
    """What the plan and its runs depend on, JSON-ready."""
    return {
        "files": {k: file_digest(p) for k, p in inputs.files().items()},
        "columns": {"text": inputs.text_col, "label": inputs.label_col, "text_pair": inputs.text_pair_col},
        "run_options": inputs.run_options,
        "budget_s": float(budget_s),
        "families": sorted(families) if families is not None else None,
        "llm": None if llm is None else {"model": llm.model, "base_url": llm.base_url},
    }


def first_difference(saved: dict[str, Any], now: dict[str, Any]) -> str:
    """The first field that differs, in words (`budget_s`, `files.train`)."""
    for key in now.keys() | saved.keys():
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            sub = [k for k in a.keys() | b.keys() if a.get(k) != b.get(k)]
            if sub:
                return f"{key}.{sorted(sub)[0]}"
        elif a != b:
            return key
    return "nothing"


def saved_plan(out: Path, fp: dict[str, Any]) -> Plan | None:
    """The plan saved in `out` for the same fingerprint; None when there is none; a one-line
    ClfbenchError when `out` holds another command's plan or a corrupted one."""
    path = out / PLAN_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        plan = Plan.from_dict(saved["plan"])
        old = saved["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ClfbenchError(f"{path}: corrupted ({type(e).__name__}); pick another --out") from None
    if old != json.loads(json.dumps(fp)):
        raise ClfbenchError(f"{out}: holds the plan of another decide ({first_difference(old, fp)} differs); "
                            "pick another --out, or repeat that command to resume it")
    return plan


def save_plan(out: Path, plan: Plan, fp: dict[str, Any]) -> Path:
    """Write plan.json whole (a temporary file renamed over it)."""
    out.mkdir(parents=True, exist_ok=True)
    path, tmp = out / PLAN_FILE, out / f".{PLAN_FILE}.tmp"
    payload = {"fingerprint": fp, "plan": plan.to_dict(),
               "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path
