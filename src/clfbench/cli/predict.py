"""`clfbench predict`: classify texts with a run's saved model (one JSON line per text, or a
Parquet file streamed in batches)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clfbench.cli.common import TRUST_NOTE, read_texts_file
from clfbench.errors import ClfbenchError


def add_parser(sub) -> argparse.ArgumentParser:
    pr = sub.add_parser("predict", help="predict with a run's saved model", description=(
        "Predict with a run's saved model (--save-model). " + TRUST_NOTE))
    pr.add_argument("--run", required=True, help="a run folder saved with --save-model")
    pr.add_argument("--text", action="append", help="a text to classify (repeatable)")
    pr.add_argument("--text-pair", action="append", help="the second text, for pair tasks")
    pr.add_argument("--file", help="a file of texts (csv/tsv/jsonl/parquet, or .txt one per line)")
    pr.add_argument("--text-col", default="text", help="text column of --file (default text)")
    pr.add_argument("--text-pair-col", default=None, help="second-text column of --file, for pair tasks")
    pr.add_argument("--out", help="write predictions to this Parquet file, streaming --file in batches "
                    "(files larger than memory); without it, one JSON line per text on stdout")
    pr.add_argument("--batch-size", type=int, help="rows per batch with --out (default 1024)")
    pr.add_argument("--executor", choices=["local", "ray"], default="local",
                    help="with --out: classify here (default) or with Ray Data on a Ray cluster")
    pr.add_argument("--address", help="--executor ray: the cluster (auto, ray://HOST:10001; default: a new local one)")
    ep = pr.add_argument_group(
        "API models (llm-api, llm-dspy)",
        "A saved run does not choose which key is sent where: a stored base_url or api_key_env "
        "other than the defaults (https://api.openai.com/v1, OPENAI_API_KEY) is refused unless "
        "you give the endpoint yourself or trust the run's.")
    ep.add_argument("--base-url", help="the OpenAI-compatible endpoint to send requests to (replaces the run's)")
    ep.add_argument("--api-key-env", help="environment variable holding the endpoint's API key (replaces the run's)")
    ep.add_argument("--trust-run-endpoint", action="store_true",
                    help="use the base_url and api_key_env stored in the run folder")
    return pr


def run(args: argparse.Namespace) -> int:
    import json

    from clfbench.data.texts import Texts
    from clfbench.methods.base import Classifier, confirm_endpoint

    model_dir = Path(args.run) / "model"
    if not model_dir.is_dir():
        raise ClfbenchError(f"{args.run}: no saved model (run with --save-model)")
    if args.out or args.executor != "local" or args.batch_size is not None or args.address:
        return _predict_to_file(args)
    if args.file:
        texts = read_texts_file(Path(args.file), args.text_col, args.text_pair_col)
    elif args.text:
        texts = Texts(args.text, args.text_pair)
    else:
        raise ClfbenchError("predict: give --text or --file")
    model = Classifier.load(model_dir)
    confirm_endpoint(model, _endpoint_args(args))
    pred, proba = model.classify(texts)
    for i in range(len(texts)):
        row = {"text": texts.texts[i], "label": model.labels[pred[i]] if pred[i] >= 0 else None}
        if proba is not None:
            row["probabilities"] = {n: round(float(p), 4) for n, p in zip(model.labels, proba[i])}
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _endpoint_args(args: argparse.Namespace) -> dict:
    return {"base_url": args.base_url, "api_key_env": args.api_key_env, "trust": args.trust_run_endpoint}


def _predict_to_file(args: argparse.Namespace) -> int:
    """`predict --file F --out PRED.parquet`: streamed, batched, throughput on stderr."""
    from clfbench.serving.batch_predict import DEFAULT_BATCH_SIZE, predict_file

    if not args.file or not args.out or args.text:
        raise ClfbenchError("predict: --out, --batch-size and --executor take --file (not --text) and --out")
    stats = predict_file(args.run, args.file, args.out, args.text_col, args.text_pair_col,
                         args.batch_size or DEFAULT_BATCH_SIZE, args.executor, args.address,
                         endpoint=_endpoint_args(args))
    print(f"{stats['rows']:,} texts predicted in {stats['seconds']:.1f} s "
          f"({stats['throughput_sps']:,.0f} texts/s, batch {stats['batch_size']}, "
          f"executor {stats['executor']}) -> {stats['out']}", file=sys.stderr)
    return 0
