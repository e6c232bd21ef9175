"""What `checkpoint_dir` costs, and that a resumed real-model training ends where an
uninterrupted one does.

encoder-ft (MiniLM-L6, fixed lr, tune=off) on the same seeded sst2 subsample, trained without
and with checkpoints, interleaved A B B A ... so a drifting machine load hits both alike;
then a checkpointed training killed at the first step of its last epoch (an exception in the
loss, as a lost process) and run again: its weights against the uninterrupted run's.

    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false nice python benchmarks/checkpointing.py \\
        --data-dir DATASETS --max-train 2000 --max-eval 500 --epochs 2 --rounds 2 --out ckpt.json
    # DATASETS: the folder holding sst2/

Prints one line per fit (fit seconds, the largest checkpoint on disk, test accuracy), the
checkpointed/plain ratio of the median fit times, the resumed run's largest parameter
difference from the uninterrupted one, and `uptime`'s load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from machine import uptime  # benchmarks/machine.py (the script's folder is on sys.path)


class Killed(Exception):
    pass


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def fit(splits, params: dict, threads: int, checkpoint_dir: str | None = None,
        kill_at_step: int | None = None) -> dict:
    """One encoder-ft fit; the largest checkpoint folder seen; optionally killed at a step."""
    from clfbench import make_method
    from clfbench.evaluation.measure import limit_threads
    from clfbench.methods import checkpoints, hf_trainer

    sizes: list[float] = []
    real_save, real_loss = checkpoints.save_state, hf_trainer.ClfbenchTrainer.compute_loss
    steps = {"n": 0}

    def save_state(checkpoint, state):
        real_save(checkpoint, state)
        sizes.append(folder_mb(checkpoint))

    def compute_loss(self, *a, **k):
        steps["n"] += 1
        if steps["n"] == kill_at_step:
            raise Killed
        return real_loss(self, *a, **k)

    checkpoints.save_state, hf_trainer.ClfbenchTrainer.compute_loss = save_state, compute_loss
    est = make_method("encoder-ft", **params, checkpoint_dir=checkpoint_dir)
    est.verbose = False
    t0 = time.perf_counter()
    try:
        with limit_threads(threads):
            est.fit(splits.train, splits.validation)
            seconds = time.perf_counter() - t0
            pred = est.predict(splits.test)
    finally:
        checkpoints.save_state, hf_trainer.ClfbenchTrainer.compute_loss = real_save, real_loss
    return {"est": est, "fit_seconds": seconds, "checkpoint_mb": max(sizes, default=0.0),
            "accuracy": float((pred == splits.test.labels).mean()),
            "train_seconds_before_resume": est.fit_info().get("train_seconds_before_resume")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--max-eval", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="each round fits both variants")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from clfbench import get_task, load_task

    splits = load_task(get_task("sst2"), args.data_dir, max_train=args.max_train, max_eval=args.max_eval)
    params = {"model": "minilm", "lr": 5e-5, "epochs": args.epochs, "batch_size": 32, "tune": "off", "seed": 99}
    load_before = uptime()
    print(f"sst2: train {len(splits.train)}, validation {len(splits.validation)}, test {len(splits.test)}; "
          f"{params}; uptime: {load_before}", flush=True)
    rows, plain = [], None
    for r in range(args.rounds):
        for variant in (("plain", "checkpointed") if r % 2 == 0 else ("checkpointed", "plain")):
            ckpt = tempfile.mkdtemp(prefix="clfbench-ckpt-") if variant == "checkpointed" else None
            out = fit(splits, params, args.threads, ckpt)
            if variant == "plain" and plain is None:
                plain = out
            rows.append({"variant": variant, **{k: v for k, v in out.items() if k != "est"}})
            print(f"{variant:13s} fit {out['fit_seconds']:.1f} s  checkpoint {out['checkpoint_mb']:.0f} MB  "
                  f"test accuracy {out['accuracy']:.4f}", flush=True)
    med = {v: statistics.median(x["fit_seconds"] for x in rows if x["variant"] == v)
           for v in ("plain", "checkpointed")}
    print(f"median fit seconds: plain {med['plain']:.1f}, checkpointed {med['checkpointed']:.1f}, "
          f"ratio {med['checkpointed'] / med['plain']:.3f}", flush=True)

    # killed at the first step of the last epoch, then resumed
    steps_per_epoch = -(-len(splits.train) // params["batch_size"])
    ckpt = tempfile.mkdtemp(prefix="clfbench-ckpt-")
    t0 = time.perf_counter()
    try:
        fit(splits, params, args.threads, ckpt, kill_at_step=steps_per_epoch * (args.epochs - 1) + 1)
    except Killed:
        pass
    killed_seconds = time.perf_counter() - t0
    resumed = fit(splits, params, args.threads, ckpt)
    a = dict(resumed["est"].model_.state_dict())
    b = dict(plain["est"].model_.state_dict())
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in b)
    def history(est):
        return [{k: v for k, v in h.items() if k != "train_seconds"} for h in est.fit_info()["history"]]

    same_history = history(resumed["est"]) == history(plain["est"])
    print(f"killed after {killed_seconds:.1f} s, resumed in {resumed['fit_seconds']:.1f} s "
          f"(train_seconds_before_resume {resumed['train_seconds_before_resume']:.1f}); largest parameter "
          f"difference from the uninterrupted run {diff:.3g}; same per-epoch history {same_history}; "
          f"test accuracy {resumed['accuracy']:.4f} vs {plain['accuracy']:.4f}", flush=True)
    load_after = uptime()
    print(f"uptime after: {load_after}")
    if args.out:
        Path(args.out).write_text(json.dumps(
            {"args": vars(args), "params": params, "rows": rows, "median_fit_seconds": med,
             "resume": {"killed_seconds": killed_seconds, "resumed_fit_seconds": resumed["fit_seconds"],
                        "train_seconds_before_resume": resumed["train_seconds_before_resume"],
                        "max_parameter_difference": diff, "same_history": same_history,
                        "accuracy": resumed["accuracy"]},
             "uptime_before": load_before, "uptime_after": load_after}, indent=2))


if __name__ == "__main__":
    main()
