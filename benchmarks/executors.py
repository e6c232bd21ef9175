"""Grid wall time by executor: the same 6-run grid one at a time, with 2 local workers, on Ray.

The grid is tfidf-lr on the demo tickets with 6 values of C (one thread per run), each run in
a fresh process, into a fresh results folder per executor. Prints and writes (--out) the wall
time of each grid, the machine's load average before and after, the median p50 latency and
throughput the runs recorded (timed exclusively under a concurrent executor) and whether the
quality columns equal the one-at-a-time grid's.

    HF_HUB_OFFLINE=1 python benchmarks/executors.py --modes workers1 workers2 [ray] --out executors.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from importlib import resources

from clfbench import RunSpec, run_grid
from clfbench.results.store import Store
from clfbench.run.executors import make_executor

DEMO = resources.files("clfbench") / "demo_data"
C_VALUES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
QUALITY = ("accuracy", "macro_f1", "weighted_f1", "mcc", "confusion_matrix")
MODES = {"workers1": dict(name="local", workers=1), "workers2": dict(name="local", workers=2),
         "ray": dict(name="ray")}


def grid() -> list[RunSpec]:
    return [RunSpec(method="tfidf-lr", name="tickets", train_file=str(DEMO / "train.csv"),
                    validation_file=str(DEMO / "validation.csv"), test_file=str(DEMO / "test.csv"),
                    threads=1, latency_examples=100, params={"C": c}) for c in C_VALUES]


def run_mode(mode: str) -> dict:
    out = tempfile.mkdtemp(prefix=f"clfbench-bench-{mode}-")
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    run_grid(grid(), out, quiet=True, isolate=True, executor=make_executor(**MODES[mode]))
    wall = time.perf_counter() - t0
    runs = sorted(Store(out).runs(), key=lambda r: r["fit_info"]["C"])
    return {"mode": mode, "runs": len(runs), "wall_s": round(wall, 2),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "p50_ms_median": round(statistics.median(r["latency_ms_p50"] for r in runs), 3),
            "throughput_sps_median": round(statistics.median(r["throughput_sps"] for r in runs)),
            "timing_exclusive_how": runs[0]["timing_exclusive_how"],
            "contended_runs": sum(bool(r["machine_load"].get("contended")) for r in runs),
            "quality": [{k: r[k] for k in QUALITY} for r in runs]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=["workers1", "workers2"])
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    results = [run_mode(m) for m in args.modes]
    for r in results:
        same = r["quality"] == results[0]["quality"]
        print(f"{r['mode']:<9} {r['runs']} runs  wall {r['wall_s']:6.1f} s  load {r['loadavg_before']} -> "
              f"{r['loadavg_after']}  p50 {r['p50_ms_median']} ms  {r['throughput_sps_median']}/s  "
              f"contended {r['contended_runs']}/{r['runs']}  quality = {results[0]['mode']}: {same}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
