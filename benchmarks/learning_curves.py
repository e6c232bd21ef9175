"""Learning curves on real tasks: trained methods at several training sizes vs a prompting reference.

Runs tfidf-lr, embed-probe (MiniLM), setfit (MiniLM, `--setfit-iterations` pairs per text) and
encoder-ft (MiniLM, batch 16, up to `--epochs` epochs; its learning-rate search on validation
unless `--encoder-lr` fixes the rate) at each size
of `--sizes` (nested, seeded, stratified subsets; `--size-draws` draws below 100 examples), and llm-prompt
zero-shot once as the reference, through `clfbench run --train-sizes` (one grid), then builds
the report (learning-curve plot and crossover statements). No real instruction-tuned LLM is
available offline here: the reference is a *tiny random-weight* decoder (from
tests/tiny_models.py), which shows the mechanics, not a real prompting baseline.

    HF_HUB_OFFLINE=1 nice python benchmarks/learning_curves.py --data-dir DATASETS \
        --out lc-bench --tasks sst2 trec-coarse --sizes 0,8/class,64,all --size-draws 3 \
        --max-train 256 --max-eval 150  # + --encoder-lr 5e-5 --setfit-iterations 0: the first run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tasks", nargs="+", default=["sst2", "trec-coarse"])
    ap.add_argument("--sizes", default="0,8/class,64,all")
    ap.add_argument("--size-draws", type=int, default=3)
    ap.add_argument("--max-train", type=int, default=256)
    ap.add_argument("--max-eval", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--encoder-lr", type=float, default=None, help="fix encoder-ft's rate (tune=off)")
    ap.add_argument("--setfit-iterations", type=int, default=5, help="0: leave setfit out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tiny = out / "tiny-decoder"
    if not (tiny / "config.json").is_file():
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import build_decoder

        build_decoder(tiny)
    grid = {
        "tasks": args.tasks, "data_dir": str(Path(args.data_dir).resolve()),
        "max_train": args.max_train, "max_eval": args.max_eval, "threads": args.threads,
        "latency_examples": 10, "train_sizes": args.sizes, "size_draws": args.size_draws,
        "methods": [
            "tfidf-lr",
            {"name": "embed-probe", "models": ["minilm"]},
            {"name": "encoder-ft", "models": ["minilm"], "params": {
                "epochs": args.epochs, "batch_size": 16,
                **({"tune": "off", "lr": args.encoder_lr} if args.encoder_lr else {"tune": "auto"})}},
            {"name": "llm-prompt", "models": [str(tiny)]},
        ],
    }
    if args.setfit_iterations:
        grid["methods"].insert(2, {"name": "setfit", "models": ["minilm"],
                                   "params": {"num_iterations": args.setfit_iterations}})
    (out / "grid.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    os.environ.setdefault("CLFBENCH_ISOLATE", "0")  # one process: no per-run model reloads
    from clfbench.cli import main as cli

    t0 = time.perf_counter()
    rc = cli(["run", str(out / "grid.yaml"), "--out", str(out / "runs"), "-q"])
    print(f"runs: {time.perf_counter() - t0:.0f} s (exit {rc})")
    rc = rc or cli(["report", str(out / "runs"), "--out", str(out / "report")])
    for lc_line in (out / "report" / "learning_curves.md").read_text().splitlines():
        print(lc_line)
    print(f"total: {time.perf_counter() - t0:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
