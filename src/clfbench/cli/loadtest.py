"""`clfbench loadtest`: a bounded load test of a `clfbench serve` URL."""

from __future__ import annotations

import argparse
from pathlib import Path

from clfbench.cli.common import env_key, read_texts_file


def add_parser(sub) -> argparse.ArgumentParser:
    lt = sub.add_parser("loadtest", help="bounded load test of a `clfbench serve` URL")
    lt.add_argument("url", help="the server, e.g. http://127.0.0.1:8000")
    lt.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="closed-loop levels (default 1 8 32)")
    lt.add_argument("--rate", type=float, help="also an open loop at this many requests per second")
    lt.add_argument("--requests", type=int, default=200, help="requests per level (default 200)")
    lt.add_argument("--duration", type=float, default=60.0, help="seconds per level at most (default 60)")
    lt.add_argument("--batch", type=int, default=1, help="texts per request (default 1)")
    lt.add_argument("--texts", help="texts to send (csv/tsv/jsonl/parquet with a text column, or .txt)")
    lt.add_argument("--api-key-env", help="send the API key held in this environment variable")
    lt.add_argument("--allow-remote", action="store_true", help="allow a host that is not loopback")
    lt.add_argument("--out", help="also write the result as JSON here")
    lt.add_argument("--attach", metavar="RUN", help="write the result into this run folder (served.json) for the report")
    return lt


def run(args: argparse.Namespace) -> int:
    import json

    from clfbench.serving.loadtest import attach, check_target, format_loadtest, run_loadtest

    key = env_key(args.api_key_env)
    texts = read_texts_file(Path(args.texts), "text", None).texts if args.texts else None
    check_target(args.url, args.allow_remote)
    result = run_loadtest(args.url, tuple(args.concurrency), args.rate, args.requests, args.duration,
                          texts, args.batch, key, args.allow_remote)
    print(format_loadtest(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.attach:
        import httpx

        root = result["url"].removesuffix("/v1/classify")
        card = httpx.get(root + "/v1/model", headers={"Authorization": f"Bearer {key}"} if key else {},
                         trust_env=False).json()
        print(f"written to {attach(result, args.attach, card.get('export', {}).get('run_id'))}")
    return 0
