"""Measuring a run: quality metrics, paired statistics, timing and memory, and the
degenerate-run check."""
