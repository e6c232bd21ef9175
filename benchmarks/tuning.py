"""What the learning-rate search buys and costs: the same run with `tune=auto` and `tune=off`.

Two cases from issue 10's acceptance (same data, seed and splits for every run of a case):
  quickstart   the README's quick-start fine-tune: sst2, encoder-ft, MiniLM, --max-train 2000
               --max-eval 500 --epochs 1 (reported on 500 examples of the GLUE dev set)
  trec-coarse  encoder-ft, MiniLM, the full training set, default parameters
quickstart runs twice back to back (`tune=auto`, then `tune=off`), so the wall-time ratio is
measured under one load; every case also reports the search's own cost: all trials' seconds
over the chosen trial's.

    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false python benchmarks/tuning.py \\
        --data-dir ../shared/datasets --cases quickstart trec-coarse --out tuning.json

Prints one line per run (accuracy, macro-F1, training seconds, degenerate flag, chosen lr) and
the tuned/untuned training-time ratio; writes everything, trials included, to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from clfbench import RunSpec
from clfbench.run.evaluate import execute

CASES = {
    "quickstart": dict(task="sst2", max_train=2000, max_eval=500, params={"epochs": 1}),
    "trec-coarse": dict(task="trec-coarse", params={}),
}
MODES = {"quickstart": ("auto", "off"), "trec-coarse": ("auto",)}


def run_case(name: str, data_dir: str, threads: int | None) -> list[dict]:
    rows = []
    for tune in MODES[name]:
        case = CASES[name]
        spec = RunSpec(method="encoder-ft", model="minilm", data_dir=data_dir, threads=threads,
                       latency_examples=20, **{**case, "params": {**case["params"], "tune": tune}})
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        m = execute(spec, quiet=False).metrics
        tuning = m["fit_info"].get("tuning", {})
        rows.append({
            "case": name, "tune": tune, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "test_n": m["n_examples"], "degenerate": m.get("degenerate"),
            "train_seconds": m["train_seconds"], "wall_seconds": time.perf_counter() - t0,
            "lr": m["fit_info"]["optimizer"]["lr"], "epochs_run": m["fit_info"].get("epochs_run"),
            "tuning": tuning, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        })
        r = rows[-1]
        print(f"{name:12s} tune={tune:4s} accuracy {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}  "
              f"train {r['train_seconds']:.0f} s  lr {r['lr']:.0e}  degenerate {r['degenerate']}  "
              f"load {load_before[0]:.2f}->{r['loadavg_after'][0]:.2f}", flush=True)
    tuning = rows[0]["tuning"]
    chosen = next(t for t in tuning["trials"] if t["number"] == tuning["best_trial"])
    print(f"{name}: search {tuning['seconds']:.0f} s = {tuning['seconds'] / chosen['seconds']:.2f}x "
          f"the chosen trial's {chosen['seconds']:.0f} s", flush=True)
    if len(rows) == 2:
        ratio = rows[0]["train_seconds"] / rows[1]["train_seconds"]
        print(f"{name}: tuned training {ratio:.2f}x the untuned training time", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="folder with the original dataset files")
    ap.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="tuning.json")
    args = ap.parse_args()
    rows = [r for name in args.cases for r in run_case(name, args.data_dir, args.threads)]
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=2, default=str)


if __name__ == "__main__":
    main()
