"""What a run needs before it computes: its data, and its method built and checked.

`preflight` is what a grid checks for every run before any data loads or any run starts.
"""

from __future__ import annotations

import inspect

from clfbench.data.splits import TaskSplits
from clfbench.data.tasks import get_task
from clfbench.methods.base import Classifier, get_method, make_method
from clfbench.run.config import RunSpec, check_spec


def load_data(spec: RunSpec) -> TaskSplits:
    """The run's train/validation/test splits: a registered task's, or the user's files."""
    from clfbench.data.tasks.loading import load_task, load_user_files

    if spec.task is None:
        return load_user_files(
            spec.train_file, spec.validation_file, spec.test_file, spec.text_col,
            spec.label_col, spec.text_pair_col, spec.data_seed, spec.max_train, spec.max_eval,
        )
    return load_task(get_task(spec.task), spec.data_dir, spec.data_seed, spec.max_train, spec.max_eval)


def build_method(spec: RunSpec) -> Classifier:
    """The method with the run's parameters; LLM methods also get the task's prompt block.

    The spec's options and the method's parameters are checked against their declared types
    and ranges first (`config.check_spec`, `methods.base.make_method`).
    """
    check_spec(spec)
    params = {"seed": spec.seed, **spec.params}
    if spec.model is not None:
        params["model"] = spec.model
    if "prompt" in inspect.signature(get_method(spec.method).__init__).parameters:
        # LLM methods get the task's prompt block; none for a user's own files (a default
        # prompt is then built from the label names)
        params.setdefault("prompt", get_task(spec.task).prompt_block() if spec.task else {})
    return make_method(spec.method, **params)


def preflight(spec: RunSpec) -> Classifier:
    """`build_method`, then every model it names resolved: what a grid checks for each run
    before it loads any data, so bad input is one line and no work is done; so is every file
    a parameter names (a template, label descriptions, a price table)."""
    method = build_method(spec)
    method.check_files()
    method.check_models()
    return method
