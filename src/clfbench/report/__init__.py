"""Reports from a results folder: tables, paired statistics, cost, plots, error analysis, HTML.

Entry point: `build_report(results_dir, out_dir, ...)` (what `clfbench report` calls).
"""

from clfbench.report.build import ReportOutput, build_report

__all__ = ["ReportOutput", "build_report"]
