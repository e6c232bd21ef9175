"""What several subcommands share: the deployment-constraint flags (`recommend`, `report
--volume`), the note on loading saved models (`predict`, `serve`), reading a file of texts
(`predict`, `loadtest`) and an API key from the environment (`serve`, `loadtest`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from clfbench.errors import ClfbenchError

#: What `predict --help` and `serve --help` say about loading saved models (README: Trust).
TRUST_NOTE = (
    "Trust: scikit-learn estimators are saved as pipeline.skops / logreg.skops and loaded with "
        "trusted types only. A pipeline.joblib or logreg.joblib (folders of earlier versions) is "
        "a Python pickle: loading it runs any code it holds, so it is refused unless "
        "CLFBENCH_TRUST_PICKLES=1; set that only for folders from a source you trust. Weights "
        "(safetensors), ONNX graphs, tokenizer files and JSON/YAML state are data.")


def add_constraint_args(p: argparse.ArgumentParser, required: bool, what: str = "") -> None:
    """The deployment constraints of `recommend` (and of `report --volume`)."""
    g = p.add_argument_group("deployment constraints" + (f" ({what})" if what else ""))
    g.add_argument("--volume", required=required,
                   help="requests, e.g. 1e6/day, 50/s, 2000/hour (a bare number: per day)")
    g.add_argument("--p95-ms", type=float, help="p95 latency limit in ms (served p95 where measured, else in-process)")
    g.add_argument("--budget-usd-month", type=float, help="monthly budget: serving + amortised training and labelling")
    g.add_argument("--labels-available", type=float, help="labelled examples you have (or can get)")
    g.add_argument("--price-per-label", type=float, default=0.0, help="USD per labelled example (default 0)")
    g.add_argument("--amortize-months", type=float, default=12.0,
                   help="months over which training and labelling are spread (default 12)")
    g.add_argument("--peak-factor", type=float, default=3.0,
                   help="peak request rate over the daily mean, for the served concurrency (default 3)")


def constraints(args: argparse.Namespace) -> Any:
    """The `Constraints` of the parsed flags; None without --volume (report)."""
    from clfbench.report.recommend import Constraints, parse_volume

    if args.volume is None:
        return None
    c = Constraints(parse_volume(args.volume), args.p95_ms, args.budget_usd_month, args.labels_available,
                    args.price_per_label, args.amortize_months, args.peak_factor)
    c.check()  # before any work
    return c


def read_texts_file(path: Path, text_col: str, pair_col: str | None):
    """The texts of a file for `predict --file` and `loadtest --texts`: a table's `text_col`
    (and `pair_col`), or a .txt file's non-blank lines."""
    from clfbench.data.files import frame_to_labeled, read_table
    from clfbench.data.texts import Texts

    if path.suffix == ".txt":
        from clfbench.serving.batch_predict import check_input

        check_input(path, ["text"])  # empty, not UTF-8: the checks `predict --out` makes
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not lines:
            raise ClfbenchError(f"{path}: no texts")
        return Texts(lines)
    data = frame_to_labeled(read_table(path), str(path), text_col, None, pair_col=pair_col)
    return Texts(data.texts, data.pairs)


def env_key(name: str | None) -> str | None:
    """The API key held in the environment variable `name` (--api-key-env); None without one."""
    if not name:
        return None
    key = os.environ.get(name)
    if not key:
        raise ClfbenchError(f"--api-key-env {name}: the variable is not set or empty")
    return key
