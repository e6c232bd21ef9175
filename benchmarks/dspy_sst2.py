"""How many calls, tokens and dollars an `llm-dspy` optimisation costs on SST-2 (the blog's DSPy
arm: 300 training examples, 100 validation, 5 demonstrations), measured offline.

The model is the tests' tiny random causal LM (tests/tiny_models.py) behind the tests' loopback
OpenAI-compatible server (tests/api_server.py): its answers are noise, so nothing bootstraps and
BootstrapFewShot walks the whole training split, which is the optimiser's worst case in calls.
Tokens are the tiny tokenizer's, priced at gpt-4o-mini's list price (pricing/api_prices.yaml);
a real model's tokenizer counts differently, so read the dollars as an order of magnitude.

    python benchmarks/dspy_sst2.py --data-dir DIR [--max-train 300] [--max-eval 100]
    python benchmarks/dspy_sst2.py --data-dir DIR --server rule --optimizer mipro --trials 10

DIR (default: $CLFBENCH_DATASETS) holds sst2/train.tsv and sst2/dev.tsv (the original GLUE files). `--server rule` replaces the
tiny model by a replier that speaks DSPy's format (tests/api_server.py `dspy_reply`, a keyword
rule for the label): MIPROv2's proposals then parse, so its call count can be measured; the
server counts its tokens as words (+ 4 per message), so only the call counts carry over.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("CLFBENCH_DATASETS"))
    ap.add_argument("--max-train", type=int, default=300)
    ap.add_argument("--max-eval", type=int, default=100)
    ap.add_argument("--max-demos", type=int, default=5)
    ap.add_argument("--optimizer", default="bootstrap")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--server", choices=("tiny", "rule"), default="tiny")
    args = ap.parse_args()
    data = args.data_dir
    if not data:
        sys.exit("give --data-dir DIR (or CLFBENCH_DATASETS), the folder holding sst2/")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CLFBENCH_ISOLATE", "0")
    from api_server import ApiServer, dspy_reply
    from tiny_models import build_decoder

    from clfbench.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        positive = {"good", "great", "best", "love", "fun", "beautiful", "funny", "moving", "wonderful"}
        rule = dspy_reply(lambda q: "positive" if set(q.lower().split()) & positive else "negative")
        server = ApiServer(model_path=build_decoder(Path(tmp) / "dec", "qwen2")) if args.server == "tiny" \
            else ApiServer(rule)
        out = Path(tmp) / "runs"
        params = ["--param", f"max_demos={args.max_demos}", "--param", "max_tokens=32",
                  "--param", f"optimizer={args.optimizer}"]
        if args.trials:
            params += ["--param", f"trials={args.trials}"]
        with server:
            t0 = time.perf_counter()
            code = cli(["run", "--task", "sst2", "--data-dir", str(Path(data) / "sst2"),
                        "--method", "llm-dspy", "--model", "gpt-4o-mini",
                        "--param", f"base_url={server.url}", "--param", "api_key_env=CLFBENCH_NO_KEY",
                        *params, "--max-train", str(args.max_train), "--max-eval", str(args.max_eval),
                        "--latency-examples", "5", "--out", str(out), "-q"])
            wall = time.perf_counter() - t0
            n_requests = len(server.requests)
        if code != 0:
            sys.exit(f"clfbench run exited with {code}")
        run = next(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
        m = json.loads((run / "metrics.json").read_text())
    info, fit = m["inference_info"], m["fit_info"]
    opt = info["optimisation"]
    print(json.dumps({
        "server": args.server, "command_params": params, "max_train": args.max_train, "max_eval": args.max_eval,
        "optimisation_calls": opt["calls"], "task_calls": opt.get("task_calls", 0),
        "proposer_calls": opt.get("proposer_calls", 0), "optimisation_input_tokens": opt["input_tokens"],
        "optimisation_output_tokens": opt["output_tokens"], "optimisation_usd": info["optimisation_usd"],
        "optimisation_seconds": fit["optimisation"]["seconds"], "train_seconds": m["train_seconds"],
        "requests_total": info["requests"], "server_requests": n_requests, "usd_total": info["usd_spent"],
        "usd_per_1m_requests": info["usd_per_1m_requests"], "mean_input_tokens": info["mean_input_tokens"],
        "demos": len(fit["program"]["demos"]), "invalid_rate": m["invalid_rate"], "accuracy": m["accuracy"],
        "wall_seconds": wall,
    }, indent=2))


if __name__ == "__main__":
    main()
