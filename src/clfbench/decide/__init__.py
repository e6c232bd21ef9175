"""`clfbench decide`: the whole comparison in one call within a time budget.

It ties the layers below together: the user's files checked and profiled, the families probed
and planned (`run.plan`, `run.probe`), the plan's steps run into a results folder against a
deadline (`run.steps`), then the report, the recommendation (`report`) and the winner's export
(`serving.export`). The CLI subcommand is a thin wrapper around `workflow.decide`.
"""

from clfbench.decide.workflow import DecideResult, decide

__all__ = ["DecideResult", "decide"]
