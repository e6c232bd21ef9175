"""The hand-written training loop (before) against transformers.Trainer (after), same run.

"Before" is `methods/torch_training.py` as it was at commit 7c76b09 (read with `git show`
into a temporary module); "after" is the working tree's. Both train the same estimator
(`HFSequenceClassifier` of their module with encoder-ft's parameters: MiniLM-L6, fixed lr,
tune=off) on the same seeded sst2 subsample, interleaved A B B A ... so that a drifting
machine load hits both alike, and predict through the same path.

    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false nice python benchmarks/training.py \\
        --data-dir DATASETS --max-train 2000 --max-eval 500 --epochs 1 \\
        --rounds 2 --threads 2 --out training.json
    # quality over seeds: --seeds 1 2 --rounds 1   (DATASETS: the folder holding sst2/)

`--equivalence` instead trains a tiny dropout-free BERT with both loops (3 epochs; plain
shuffling, class weights, balanced sampling) and prints the largest parameter difference.

Prints one line per run: test accuracy and macro-F1, the epochs' training seconds
(validation excluded) and training examples/s; then the after/before throughput ratio of the
medians, and `uptime`'s load before and after.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import uptime  # benchmarks/machine.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
BEFORE_COMMIT = "7c76b09"
#: Import lines of that commit's module -> where those names live now.
MOVED_IMPORTS = {
    "from clfbench.data import": "from clfbench.data.texts import",
    "from clfbench.device import": "from clfbench.engines.device import",
    "from clfbench.inference import model_input_names, predict_logits, tokenize":
        "from clfbench.engines.encoding import model_input_names, tokenize\n"
        "from clfbench.engines.inference import predict_logits",
    "from clfbench.models import": "from clfbench.engines.models import",
}


def load_modules() -> dict[str, object]:
    """{"before": the old torch_training module, "after": the current one}."""
    from clfbench.methods import torch_training

    source = subprocess.run(
        ["git", "show", f"{BEFORE_COMMIT}:src/clfbench/methods/torch_training.py"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for old, new in MOVED_IMPORTS.items():  # the modules it imports have moved since (issue 24)
        source = source.replace(old, new)
    path = Path(tempfile.mkdtemp()) / "torch_training_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("torch_training_before", path)
    before = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = before
    spec.loader.exec_module(before)
    return {"before": before, "after": torch_training}


def estimator(module: object, params: dict) -> object:
    """`module.HFSequenceClassifier` with encoder-ft's parameters (its defaults + `params`)."""
    from clfbench.methods.encoder_ft import EncoderFineTune

    proto = EncoderFineTune(**params)
    cls = type("BenchEncoderFT", (module.HFSequenceClassifier,),
               {"name": "encoder-ft", "__init__": lambda self: None})
    est = cls()
    vars(est).update({k: v for k, v in vars(proto).items() if not k.endswith("_")})
    est.verbose = False
    return est


def one_run(label: str, module: object, splits: object, params: dict, threads: int) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    from clfbench.evaluation.measure import limit_threads

    est = estimator(module, params)
    t0 = time.perf_counter()
    with limit_threads(threads):
        est.fit(splits.train, splits.validation)
        fit_seconds = time.perf_counter() - t0
        pred = est.predict_logits(splits.test).argmax(1)
    train_seconds = sum(h["train_seconds"] for h in est.fit_info_["history"])
    n_seen = len(splits.train) * len(est.fit_info_["history"])
    row = {
        "variant": label,
        "accuracy": float(accuracy_score(splits.test.labels, pred)),
        "macro_f1": float(f1_score(splits.test.labels, pred, average="macro")),
        "val_macro_f1": [h.get("val_macro_f1") for h in est.fit_info_["history"]],
        "train_loss": [h["train_loss"] for h in est.fit_info_["history"]],
        "train_seconds": train_seconds,
        "train_examples_per_s": n_seen / train_seconds,
        "fit_seconds": fit_seconds,
        "test_n": len(splits.test),
    }
    print(f"{label:6s} seed {params['seed']}  acc {row['accuracy']:.4f}  macro-F1 {row['macro_f1']:.4f}  "
          f"train {train_seconds:.1f} s  {row['train_examples_per_s']:.1f} ex/s  "
          f"(fit incl. load+validation {fit_seconds:.1f} s)", flush=True)
    return row


def equivalence(modules: dict[str, object]) -> None:
    """Both loops, 3 epochs, on a tiny dropout-free BERT (tests/tiny_models.py): the largest
    parameter difference after training, per option. 0.0 = the very same training."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    sys.path.insert(0, str(ROOT / "tests"))
    import tiny_models
    from neural_helpers import toy_data

    from clfbench.engines.inference import predict_logits
    from clfbench.methods.training_settings import TrainingSettings

    path = tiny_models.build_encoder(Path(tempfile.mkdtemp()) / "bert", "bert")
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout": 0.0}
    train, val = toy_data(90, 0, proportions=(6, 2, 1)), toy_data(30, 1)
    for opts in ({}, {"class_weight": "balanced"}, {"sampling": "balanced"}):
        out = {}
        for label, module in modules.items():
            torch.manual_seed(0)
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3, **no_dropout)
            tok = AutoTokenizer.from_pretrained(path)
            settings = dict(lr=1e-3, batch_size=16, epochs=3, max_length=32, warmup_ratio=0.1,
                            weight_decay=0.01, max_grad_norm=1.0, class_weight=None, sampling=None,
                            selection="f1", seed=0)
            settings.update(opts)
            runtime = dict(device=torch.device("cpu"), verbose=False)

            def predict(X, m=model, t=tok):
                return predict_logits(m, t, X, 64, 32, "cpu")

            if label == "after":  # the working tree's loop takes one TrainingSettings
                record = module.train_loop(model, tok, train, val, predict, TrainingSettings(**settings), **runtime)
            else:  # the old loop's keyword chain
                record = module.train_loop(model, tok, train, val, predict, **settings, **runtime)
            out[label] = (record, {n: p.detach().clone() for n, p in model.named_parameters()})
        (rb, pb), (ra, pa) = out["before"], out["after"]
        diff = max(float((pb[k] - pa[k]).abs().max()) for k in pb)
        print(f"{opts or 'plain shuffle'}: largest parameter difference {diff:.3g}; epoch losses "
              f"before {[round(h['train_loss'], 3) for h in rb['history']]}, after "
              f"{[round(h['train_loss'], 3) for h in ra['history']]}; best epoch "
              f"{rb['best_epoch']} / {ra['best_epoch']}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--max-eval", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="each round runs both variants")
    ap.add_argument("--seeds", type=int, nargs="+", default=[99],
                    help="training seeds; every round runs every seed (quality varies by seed)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--equivalence", action="store_true",
                    help="only: both loops on a tiny dropout-free BERT, parameter differences")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.equivalence:
        equivalence(load_modules())
        return

    from clfbench import get_task, load_task

    splits = load_task(get_task("sst2"), args.data_dir, max_train=args.max_train, max_eval=args.max_eval)
    params = {"model": "minilm", "lr": args.lr, "epochs": args.epochs, "batch_size": args.batch_size,
              "tune": "off"}
    modules = load_modules()
    load_before = uptime()
    print(f"sst2: train {len(splits.train)}, validation {len(splits.validation)}, test "
          f"{len(splits.test)}; {params}; uptime: {load_before}", flush=True)
    rows = []
    for r in range(args.rounds):
        for i, seed in enumerate(args.seeds):
            order = ("before", "after") if (r + i) % 2 == 0 else ("after", "before")
            for label in order:
                rows.append({"seed": seed, **one_run(label, modules[label], splits,
                                                     {**params, "seed": seed}, args.threads)})
    load_after = uptime()
    med = {v: statistics.median(x["train_examples_per_s"] for x in rows if x["variant"] == v)
           for v in ("before", "after")}
    quality = {v: {k: float(np.mean([x[k] for x in rows if x["variant"] == v]))
                   for k in ("accuracy", "macro_f1")} for v in ("before", "after")}
    print(f"median train examples/s: before {med['before']:.1f}, after {med['after']:.1f}, "
          f"after/before {med['after'] / med['before']:.3f}")
    print(f"uptime after: {load_after}")
    if args.out:
        Path(args.out).write_text(json.dumps(
            {"args": vars(args), "params": params, "rows": rows, "median_examples_per_s": med,
             "mean_quality": quality, "uptime_before": load_before, "uptime_after": load_after},
            indent=2))


if __name__ == "__main__":
    main()
