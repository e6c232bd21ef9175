"""Shared checks of the command line (import as `from cli_helpers import refused`; tests/ is on
sys.path)."""

from __future__ import annotations

from pathlib import Path

from clfbench.cli import main


def refused(argv: list[str], out: Path, capsys) -> str:
    """Run the CLI writing to `out`; assert exit 2, one line, no traceback, nothing in `out`.
    The line."""
    code = main([*argv, "--out", str(out), "-q"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("clfbench: error: "), err
    assert "Traceback" not in err
    assert not out.exists(), f"{out} was written: {sorted(p.name for p in out.iterdir())}"
    return lines[0]
