"""Served vs in-process: a fine-tuned MiniLM export and a tfidf-lr run behind `clfbench serve`.

Trains both on the shipped demo tickets (encoder-ft: `tune=off`, 1 epoch), exports them, and
for each serves the export twice in a subprocess on 127.0.0.1 (micro-batching on: max batch
32, max wait 5 ms; off: max batch 1) under `clfbench loadtest` at concurrency 1, 8 and 32
(a fixed number of single-text requests per level). In-process figures come from the same
export in this process under the same load (p50/p95/p99 of one text at a time; throughput of
one batched call over the test texts), and from the run's own metrics.json. The gain of
micro-batching is texts/s with batching over texts/s without, at concurrency 32, in one run.
The load generator shares the machine with the server (2 cores here): served figures are
end-to-end on one box. `uptime` is recorded before and after.

    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false python benchmarks/serving.py \\
        --out serving-bench --requests 200 --json serving.json
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import socket
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import httpx
import numpy as np
from machine import uptime  # benchmarks/machine.py (the script's folder is on sys.path)

from clfbench import RunSpec, export_run, load_export, run_grid
from clfbench.results.store import Store
from clfbench.serving.loadtest import attach, run_loadtest

DEMO = resources.files("clfbench") / "demo_data"
CASES = {
    "tfidf-lr": dict(method="tfidf-lr", params={}),
    "minilm-ft": dict(method="encoder-ft", model="minilm", params={"tune": "off", "epochs": 1}),
}
MODES = {"batching on": 32, "batching off": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(name: str, out: Path) -> Path:
    spec = RunSpec(name="tickets", train_file=str(DEMO / "train.csv"), validation_file=str(DEMO / "validation.csv"),
                   test_file=str(DEMO / "test.csv"), save_model=True, latency_examples=100, **CASES[name])
    run_grid([spec], out / "runs", quiet=True)  # skipped when --out already holds it
    return next(Path(r["path"]) for r in Store(out / "runs").runs() if r["method"] == spec.method)


def in_process(export: Path, texts: list[str], n: int) -> dict[str, float]:
    """The export in this process: one text at a time (after 10 warm-up calls) and one batched call."""
    model = load_export(export)
    for t in texts[:10]:
        model.classify([t])
    lat = []
    for t in (texts * (n // len(texts) + 1))[:n]:
        t0 = time.perf_counter()
        model.classify([t])
        lat.append(1000 * (time.perf_counter() - t0))
    t0 = time.perf_counter()
    model.classify(texts)
    return {**{f"p{q}_ms": float(np.percentile(lat, q)) for q in (50, 95, 99)},
            "texts_per_s": len(texts) / (time.perf_counter() - t0)}


def serve_and_load(export: Path, max_batch: int, texts: list[str], requests: int) -> dict:
    port = free_port()
    cmd = [sys.executable, "-m", "clfbench.cli", "serve", str(export), "--port", str(port),
           "--max-batch-size", str(max_batch), "--max-wait-ms", "5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {' '.join(cmd)}")
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        result = run_loadtest(url, (1, 8, 32), requests=requests, duration_s=120, texts=texts, warmup=10)
        result["server_metrics"] = httpx.get(url + "/metrics").text
        return result
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="serving-bench", help="runs and exports go here")
    ap.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args()
    out = Path(args.out)
    with open(DEMO / "test.csv", newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    report: dict = {"uptime_before": uptime(), "requests_per_level": args.requests, "cases": {}}
    print(report["uptime_before"])
    for name in args.cases:
        run = train(name, out)
        export = out / "exports" / name
        if not export.exists():
            export_run(run, export)
        metrics = json.loads((run / "metrics.json").read_text())
        case = {"run": str(run), "uptime": uptime(),
                "run_metrics": {k: metrics[k] for k in ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
                                                         "throughput_sps", "macro_f1")},
                "in_process": in_process(export, texts, 200), "served": {}}
        for mode, max_batch in MODES.items():
            case["served"][mode] = serve_and_load(export, max_batch, texts, args.requests)
        attach({k: v for k, v in case["served"]["batching on"].items() if k != "server_metrics"}, run)
        on, off = (case["served"][m]["levels"][-1]["texts_per_s"] for m in MODES)
        case["batching_gain_c32"] = on / off
        case["uptime_after"] = uptime()
        report["cases"][name] = case
        print(table(name, case))
    report["uptime_after"] = uptime()
    print(report["uptime_after"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


def table(name: str, case: dict) -> str:
    """A markdown table: in-process rows, then one row per mode and concurrency level."""
    ip, rm = case["in_process"], case["run_metrics"]
    lines = [f"{name} (macro-F1 {rm['macro_f1']:.3f}; {case['uptime']})", "",
             "| where | concurrency | p50 ms | p95 ms | p99 ms | texts/s | errors |", "|---|---|---|---|---|---|---|",
             f"| in process, run's metrics.json | 1 / batched | {rm['latency_ms_p50']:.2f} | {rm['latency_ms_p95']:.2f} "
             f"| {rm['latency_ms_p99']:.2f} | {rm['throughput_sps']:.0f} | - |",
             f"| in process, the export (this run) | 1 / batched | {ip['p50_ms']:.2f} | {ip['p95_ms']:.2f} "
             f"| {ip['p99_ms']:.2f} | {ip['texts_per_s']:.0f} | - |"]
    for mode, result in case["served"].items():
        for r in result["levels"]:
            lines.append(f"| served, {mode} | {r['concurrency']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                         f"{r['p99_ms']:.2f} | {r['texts_per_s']:.0f} | {r['errors']} |")
    lines.append(f"\nmicro-batching gain at concurrency 32: {case['batching_gain_c32']:.2f}x texts/s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
