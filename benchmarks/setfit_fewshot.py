"""Few-shot: setfit vs embed-probe vs tfidf-lr on the same K-per-class draws (MiniLM, offline).

For each task, K (labels per class) and seed, a seeded stratified draw takes K training
examples of every class (`numpy.random.default_rng(seed)`, per class, without replacement);
the three methods are fitted on that same draw and scored on the task's whole test split.
Validation (the same for every method) is a seeded stratified sample of `--val` examples of the
task's validation split, used only to choose the logistic regression's C (all three methods)
from their default grids.

    HF_HUB_OFFLINE=1 nice python benchmarks/setfit_fewshot.py --data-dir DATASETS \
        --tasks sst2 --k 8 64 --seeds 0 1 2 --iterations 20 --iterations-large 5 --threads 1
    HF_HUB_OFFLINE=1 nice python benchmarks/setfit_fewshot.py --data-dir DATASETS \
        --tasks trec-coarse --k 8 64 --seeds 0 1 2 --iterations 5 --iterations-large 1 --threads 1
    python benchmarks/setfit_fewshot.py --data-dir DATASETS --summarize OUT1 OUT2 ...

Prints one JSON line per (task, K, seed, method): accuracy, macro-F1, fit seconds, and for
setfit its pairs, contrastive steps and C; then a mean/std table per (task, K, method).
`--iterations` (K <= 16) and `--iterations-large` are setfit's `num_iterations` (pairs per
training text and polarity); the paper's recipe is 20.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import numpy as np

from clfbench import LabeledTexts, get_task, load_task, make_method
from clfbench.data.texts import stratified_indices
from clfbench.evaluation.metrics import quality_metrics


def per_class_draw(train: LabeledTexts, k: int, seed: int) -> LabeledTexts:
    """`k` examples of every class (all of a class with fewer), seeded, in a shuffled order."""
    rng = np.random.default_rng(seed)
    idx: list[int] = []
    for c in range(train.n_labels):
        members = np.flatnonzero(train.labels == c)
        idx += rng.choice(members, size=min(k, len(members)), replace=False).tolist()
    return train.subset(rng.permutation(idx))


def setfit_params(k: int, args) -> dict:
    """The paper's 20 pairs per text at small K; at large K `--iterations-large` (the pair set
    grows with K and 20 would take minutes on 2 CPU cores)."""
    iters = args.iterations if k <= 16 else args.iterations_large
    return {"num_iterations": iters, "batch_size": 16, "epochs": 1}


def run_one(method: str, params: dict, train, val, test, seed: int) -> dict:
    m = make_method(method, seed=seed, **params)
    m.verbose = False
    t0 = time.perf_counter()
    m.fit(train, val)
    fit_s = time.perf_counter() - t0
    pred, proba = m.classify(test)
    q = quality_metrics(test.labels, pred, test.label_names, proba)
    out = {"accuracy": q["accuracy"], "macro_f1": q["macro_f1"], "fit_seconds": round(fit_s, 1)}
    if method == "setfit":
        out.update(steps=m.fit_info_["steps"], pairs=m.fit_info_["pairs"], C=m.fit_info_["C"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--tasks", nargs="+", default=["sst2", "trec-coarse"])
    ap.add_argument("--k", nargs="+", type=int, default=[8, 64])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--methods", nargs="+", default=["setfit", "embed-probe", "tfidf-lr"])
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--iterations-large", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--summarize", nargs="+", metavar="FILE",
                    help="only print the table of earlier runs' JSON lines (this script's output)")
    args = ap.parse_args()
    results: dict[tuple, list[dict]] = defaultdict(list)
    if args.summarize:
        for path in args.summarize:
            for line in open(path, encoding="utf-8"):
                if line.startswith("{"):
                    r = json.loads(line)
                    results[(r["task"], r["k"], r["method"])].append(r)
        table(results)
        return

    import torch

    torch.set_num_threads(args.threads)
    for task in args.tasks:
        splits = load_task(get_task(task), args.data_dir, data_seed=99)
        val = splits.validation
        if args.val < len(val):
            val = val.subset(stratified_indices(val.labels, args.val, 99 + 4))
        for k in args.k:
            for seed in args.seeds:
                train = per_class_draw(splits.train, k, seed)
                for method in args.methods:
                    params = {"model": "minilm"} if method != "tfidf-lr" else {}
                    if method == "setfit":
                        params.update(setfit_params(k, args))
                    r = run_one(method, params, train, val, splits.test, seed)
                    row = {"task": task, "k": k, "seed": seed, "method": method,
                           "n_train": len(train), "n_val": len(val), "n_test": len(splits.test), **r}
                    print(json.dumps(row), flush=True)
                    results[(task, k, method)].append(r)
    table(results)


def table(results: dict[tuple, list[dict]]) -> None:
    """Mean ± std over seeds per (task, K, method), as a Markdown table."""
    print("\n| task | K/class | method | accuracy | macro-F1 | setfit pairs / steps | fit s | seeds |")
    print("|---|---|---|---|---|---|---|---|")
    for (task, k, method), rs in results.items():
        acc, f1 = np.array([r["accuracy"] for r in rs]), np.array([r["macro_f1"] for r in rs])
        fit = np.mean([r["fit_seconds"] for r in rs])
        pairs = f"{rs[0]['pairs']} / {rs[0]['steps']}" if "pairs" in rs[0] else ""
        print(f"| {task} | {k} | {method} | {acc.mean():.3f} ± {acc.std():.3f} | "
              f"{f1.mean():.3f} ± {f1.std():.3f} | {pairs} | {fit:.0f} | {len(rs)} |")


if __name__ == "__main__":
    main()
