"""Real-model numbers for the supervised neural methods, through clfbench's own runner.

Runs (each one a RunSpec through `clfbench.run.runner.run_grid`, stored in --out):
  sst2        encoder-ft, MiniLM-L6 (`minilm`), --max-train examples, reported on the GLUE dev set
  trec-probe  embed-probe (minilm) on trec-coarse and trec-fine
  trec-ft     encoder-ft (minilm) on trec-fine (50 long-tailed classes: rare-class metrics)
  share       the decoder-head trainable share on Qwen2.5-0.5B's shape, 113 labels (meta device)

    HF_HUB_OFFLINE=1 timeout 1500 python benchmarks/encoder_ft_sst2.py \
        --data-dir ../shared/datasets --max-train 10000 --epochs 1 --max-eval 1000 --threads 2

Prints one line per run: accuracy, macro-F1, train time, p50 latency (batch 1), throughput,
and for trec-fine the rare-quartile macro-F1 and the number of classes with zero F1.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from clfbench import RunSpec, run_grid

HERE = Path(__file__).resolve().parent


def decoder_head_share() -> dict:
    """Trainable share of the decoder-head recipe on Qwen2.5-0.5B's architecture, 113 labels."""
    import torch
    from transformers import AutoModelForSequenceClassification, Qwen2Config

    from clfbench.methods.decoder_head import DECODER_LORA_TARGETS
    from clfbench.methods.torch_training import apply_lora

    cfg = Qwen2Config(hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                      num_key_value_heads=2, intermediate_size=4864, vocab_size=151936,
                      tie_word_embeddings=True, num_labels=113, pad_token_id=151643)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(cfg)
        _, info = apply_lora(model, 16, 32, 0.05, list(DECODER_LORA_TARGETS))
    return {"total": info["total"], "trainable": info["trainable"],
            "share_percent": 100 * info["trainable"] / info["total"]}


def specs_for(which: str, args) -> list[RunSpec]:
    # max_eval caps the validation split used for epoch selection (sst2's carved validation is
    # 6,735 examples); the reported splits (sst2 dev 872, trec test 500) are smaller and kept whole.
    common = dict(data_dir=args.data_dir, threads=args.threads, seed=args.seed,
                  max_eval=args.max_eval)
    if which == "sst2":
        return [RunSpec(method="encoder-ft", task="sst2", model="minilm", max_train=args.max_train,
                        params={"epochs": args.epochs, "lr": args.lr}, **common)]
    if which == "trec-probe":
        return [RunSpec(method="embed-probe", task=t, model="minilm", **common)
                for t in ("trec-coarse", "trec-fine")]
    if which == "trec-ft":
        return [RunSpec(method="encoder-ft", task="trec-fine", model="minilm",
                        params={"epochs": args.trec_epochs, "lr": args.trec_lr}, **common)]
    raise SystemExit(f"unknown run {which!r}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "datasets"))
    p.add_argument("--max-train", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=1, help="encoder-ft epochs on sst2")
    p.add_argument("--lr", type=float, default=2e-5, help="encoder-ft learning rate on sst2")
    p.add_argument("--trec-epochs", type=int, default=3, help="encoder-ft epochs on trec-fine")
    p.add_argument("--trec-lr", type=float, default=2e-5, help="encoder-ft learning rate on trec-fine")
    p.add_argument("--max-eval", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=99)
    p.add_argument("--out", default="bench-runs/encoder_ft")
    p.add_argument("--progress", action="store_true", help="progress bars and per-epoch lines")
    p.add_argument("--runs", default="share,sst2,trec-probe,trec-ft",
                   help="comma-separated: share, sst2, trec-probe, trec-ft")
    args = p.parse_args()
    for which in args.runs.split(","):
        if which == "share":
            s = decoder_head_share()
            print(f"decoder-head on Qwen2.5-0.5B shape, 113 labels: trainable {s['trainable']:,} "
                  f"of {s['total']:,} = {s['share_percent']:.3f}%", flush=True)
            continue
        t0 = time.perf_counter()
        for folder in run_grid(specs_for(which, args), args.out, quiet=not args.progress):
            m = json.loads((folder / "metrics.json").read_text())
            fit = m.get("fit_info", {})
            line = (f"{m['task']:<12} {m['method']:<12} {m['model']:<7} "
                    f"train {m['splits']['sizes']['train']:>6} test {m['splits']['sizes']['test']:>5}  "
                    f"acc {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
                    f"train {m['train_seconds']:.0f} s  p50 {m['latency_ms_p50']:.1f} ms  "
                    f"{m['throughput_sps']:.0f}/s")
            if "best_epoch" in fit:
                line += f"  best epoch {fit['best_epoch']}/{len(fit['history'])}"
            if "C" in fit:
                line += f"  C {fit['C']}"
            if m.get("rare_quartile_macro_f1") is not None:
                line += (f"  rare-quartile macro-F1 {m['rare_quartile_macro_f1']:.4f}"
                         f"  zero-F1 classes {m.get('zero_f1_classes')}")
            print(line, flush=True)
        print(f"  ({which}: {time.perf_counter() - t0:.0f} s wall)", flush=True)


if __name__ == "__main__":
    main()
