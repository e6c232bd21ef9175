"""`clfbench serve`: a run folder or an export over HTTP (the serve extra)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clfbench.cli.common import TRUST_NOTE, env_key
from clfbench.errors import ClfbenchError
from clfbench.extras import require


def add_parser(sub) -> argparse.ArgumentParser:
    sv = sub.add_parser("serve", help="serve a run or an export over HTTP (needs the serve extra)",
                        description="Serve a run folder (--save-model) or an export over HTTP. " + TRUST_NOTE)
    sv.add_argument("path", help="an export folder, or a run folder saved with --save-model")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.add_argument("--max-batch-size", type=int, default=32, help="texts per model call (1: no batching)")
    sv.add_argument("--max-wait-ms", type=float, default=5.0, help="longest wait to fill a batch (default 5)")
    sv.add_argument("--max-texts", type=int, default=256, help="texts per request (more: 413)")
    sv.add_argument("--max-text-chars", type=int, default=20_000, help="characters per text (more: 422)")
    sv.add_argument("--api-key-env", help="require the API key held in this environment variable")
    sv.add_argument("--drain-s", type=float, default=30.0,
                    help="on SIGTERM or Ctrl-C: stop accepting and give the requests in flight this many "
                         "seconds (default 30); then those unanswered get 503 with Retry-After. Exits 0 on SIGTERM")
    return sv


def run(args: argparse.Namespace) -> int:
    import tempfile

    require("fastapi", "uvicorn", what="clfbench serve")
    from clfbench.serving.app import ServeSettings, create_app, serve
    from clfbench.serving.export import export_run, is_export, load_export

    if min(args.max_batch_size, args.max_texts, args.max_text_chars) < 1 or min(args.max_wait_ms, args.drain_s) < 0:
        raise ClfbenchError("serve: --max-batch-size, --max-texts, --max-text-chars must be >= 1 "
                            "and --max-wait-ms, --drain-s >= 0")
    settings = ServeSettings(args.max_batch_size, args.max_wait_ms, args.max_texts, args.max_text_chars,
                             api_key=env_key(args.api_key_env), drain_s=args.drain_s)
    with tempfile.TemporaryDirectory(prefix="clfbench-serve-") as tmp:
        folder = args.path if is_export(args.path) else export_run(args.path, Path(tmp) / "export")
        app = create_app(load_export(folder), settings)
        print(f"serving {args.path} on http://{args.host}:{args.port} "
              f"(batch {args.max_batch_size}, wait {args.max_wait_ms} ms)", file=sys.stderr)
        serve(app, args.host, args.port)
    return 0
