"""`clfbench export`: a self-contained folder of a saved run's model, with its model card."""

from __future__ import annotations

import argparse

from clfbench.errors import ClfbenchError


def add_parser(sub) -> argparse.ArgumentParser:
    ex = sub.add_parser("export", help="a self-contained folder of a saved run's model, with its model card")
    ex.add_argument("run", help="a run folder saved with --save-model")
    ex.add_argument("--out", required=True, help="export folder (new or empty)")
    ex.add_argument("--format", choices=["onnx", "onnx-int8", "torch"],
                    help="fine-tuned models: onnx (default), onnx-int8 (+ fp32 re-check of near-ties) or torch")
    ex.add_argument("--recheck", default="auto", help="onnx-int8: re-check margin, 'auto' (the run's, else "
                    "calibrated to 99.8%% agreement with fp32) or 'off'")
    return ex


def run(args: argparse.Namespace) -> int:
    from clfbench.serving.export import export_run

    recheck = {"off": None, "auto": "auto"}.get(args.recheck, args.recheck)
    if isinstance(recheck, str) and recheck != "auto":
        try:
            recheck = float(recheck)
        except ValueError:
            raise ClfbenchError(f"export: --recheck {args.recheck!r} (expected auto, off or a margin)") from None
    out = export_run(args.run, args.out, args.format, recheck)
    print(f"exported {args.run} to {out} (model card: {out / 'MODEL_CARD.md'})")
    return 0
