"""Progress in a log or a pipe: a few whole lines, never a bar's carriage returns; none with -q."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clfbench.cli import main
from clfbench.progress import LineProgress, progress

DEMO = Path(__file__).resolve().parents[1] / "src" / "clfbench" / "demo_data"
DEMO_FILES = ["--train", str(DEMO / "train.csv"), "--validation", str(DEMO / "validation.csv"),
              "--test", str(DEMO / "test.csv")]


def test_progress_into_a_pipe_prints_five_whole_lines_for_100_items():
    loop = ("from clfbench.progress import progress\n"
            "for _ in progress(range(100), 'latency at batch 1'):\n    pass\n")
    done = subprocess.run([sys.executable, "-c", loop], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and done.stderr.endswith("\n")
    assert done.stderr.splitlines() == [
        "latency at batch 1: 0/100",
        "latency at batch 1: 25/100 (25%), 0 s",
        "latency at batch 1: 50/100 (50%), 0 s",
        "latency at batch 1: 75/100 (75%), 0 s",
        "latency at batch 1: 100/100 done in 0 s",
    ]


class Clock:
    """A fake monotonic clock that the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_slow_work_gets_a_line_per_interval_besides_the_quarters(capsys):
    clock = Clock()
    bar = LineProgress("training", 400, interval=30.0, clock=clock)
    for _ in range(400):  # 10 s a step: 4,000 s in all
        clock.now += 10.0
        bar.update()
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "training: 0/400" and lines[-1] == "training: 400/400 done in 1 h 06 min"
    assert lines[1] == "training: 3/400 (0%), 30 s"  # 30 s without a line
    assert "training: 100/400 (25%), 16 min 40 s" in lines  # a quarter, between two 30 s lines
    # at most a line per 30 s and one per quarter, besides the first and the last
    assert 4000 // 30 <= len(lines) - 2 <= 4000 // 30 + 3


def test_unknown_length_and_early_stop_are_said_plainly(capsys):
    clock = Clock()
    bar = LineProgress("reading", None, interval=5.0, clock=clock)
    for _ in range(12):
        clock.now += 1.0
        bar.update()
    bar.close()
    bar.close()  # closing twice says nothing more
    assert capsys.readouterr().err.splitlines() == [
        "reading: started", "reading: 5, 5 s", "reading: 10, 10 s", "reading: 12 done in 12 s"]
    for i in progress(range(8), "choosing"):
        if i == 2:
            break
    assert capsys.readouterr().err.splitlines()[-1] == "choosing: stopped at 2/8 (25%) after 0 s"


def test_disabled_progress_prints_nothing(capsys):
    assert list(progress(range(50), "quiet", enabled=False)) == list(range(50))
    assert capsys.readouterr().err == ""


def test_cli_run_into_a_pipe_has_bounded_whole_lines(tmp_path):
    """A real `clfbench run` with stderr a pipe (CI): no '\\r', a handful of progress lines."""
    cmd = [sys.executable, "-m", "clfbench.cli", "run", *DEMO_FILES, "--method", "tfidf-lr",
           "--threads", "1", "--out", str(tmp_path / "runs")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "\r" not in err and "\r" not in done.stdout
    progress_lines = [line for line in err.splitlines()
                      if line.startswith(("tfidf-lr: choosing C", "latency at batch 1"))]
    assert 2 <= len(progress_lines) <= 10, err  # 5 C values and 100 latency calls
    assert "latency at batch 1: 100/100 done in" in err
    folder = next((tmp_path / "runs").glob("demo_data-tfidf-lr-*"))
    assert f"-> {folder}\n" in err  # the run's line whole, not cut at 80 columns
    assert "tfidf-lr" in done.stdout and "1 run(s) written" in done.stdout


def test_cli_run_quiet_prints_no_progress(tmp_path, capsys):
    assert main(["run", *DEMO_FILES, "--method", "tfidf-lr", "--latency-examples", "20",
                 "--threads", "1", "--out", str(tmp_path / "runs"), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_library_bars_off_for_datasets_and_the_hub_here_and_in_workers():
    code = ("import os\nimport datasets\nfrom huggingface_hub.utils import are_progress_bars_disabled\n"
            "from clfbench.progress import library_bars\n"
            "assert not datasets.utils.are_progress_bars_disabled()\n"
            "library_bars(False)\n"
            "assert datasets.utils.are_progress_bars_disabled() and are_progress_bars_disabled()\n"
            "assert os.environ['HF_DATASETS_DISABLE_PROGRESS_BARS'] == '1'  # inherited by workers\n"
            "assert os.environ['HF_HUB_DISABLE_PROGRESS_BARS'] == '1'\n")
    env = {k: v for k, v in os.environ.items() if "PROGRESS_BARS" not in k}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
