"""What the benchmark scripts record about the machine they ran on."""

import subprocess


def uptime() -> str:
    """`uptime`'s line: the load averages before and after a measurement go into its record."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
