"""`clfbench.run.flags`: flags into RunSpecs with plain values, without the command line
(the CLI's own behaviour is in tests/cli/)."""

from __future__ import annotations

import doctest

import pytest

import clfbench.run.flags as flags
from clfbench.errors import ClfbenchError
from clfbench.run.flags import flag_name, flag_run, given_fields, merge_params, parse_param


def test_the_module_example_runs():
    assert doctest.testmod(flags).failed == 0


def test_parse_param_reads_yaml_and_refuses_what_is_not_key_value():
    assert parse_param("max-length=128") == ("max_length", 128)
    assert parse_param("tune=off") == ("tune", "off")
    with pytest.raises(ValueError, match="expected KEY=VALUE, got 'epochs'"):
        parse_param("epochs")
    with pytest.raises(ValueError, match="the value is not valid YAML"):
        parse_param("a=[1")


def test_method_flags_beat_params_and_none_is_not_given():
    assert merge_params([("epochs", 1), ("C", 2.0), ("epochs", 3)], {"epochs": 5, "lr": None}) == {
        "epochs": 5, "C": 2.0}
    assert merge_params() == {}


def test_given_fields_keeps_run_options_given_in_their_order():
    values = {"task": "sst2", "method": ["tfidf-lr"], "model": None, "max_eval": 5, "quiet": True,
              "seed": None, "train_file": "t.csv"}
    assert list(given_fields(values).items()) == [("task", "sst2"), ("max_eval", 5), ("train_file", "t.csv")]
    assert flag_name("train_file") == "--train" and flag_name("max_eval") == "--max-eval"


def test_flag_run_without_a_grid(tmp_path):
    plan = flag_run({"train_file": "t.csv", "seed": 7}, ["tfidf-lr"], params={"C": 0.5}, train_sizes="8/class,all",
                    out=str(tmp_path))
    assert [s.train_size for s in plan.specs] == ["8/class", "all"]
    assert {s.seed for s in plan.specs} == {7} and plan.specs[0].params == {"C": 0.5}
    assert plan.out == str(tmp_path) and plan.grid == {} and plan.overrides_note is None
    with pytest.raises(ClfbenchError, match="give --method"):
        flag_run({"task": "sst2"})
    with pytest.raises(ClfbenchError, match="give --task NAME"):
        flag_run({}, ["tfidf-lr"])
    with pytest.raises(ClfbenchError, match=r"--max-eval=0 \(expected a value >= 1\)"):
        flag_run({"task": "sst2", "max_eval": 0}, ["tfidf-lr"])


def test_flag_run_with_a_grid_overrides_it_and_names_what_it_refuses(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("tasks: [sst2]\nmethods: [tfidf-lr]\nseeds: [1, 2]\nout: runs\n")
    plan = flag_run({"seed": 7, "max_eval": 50}, params={"C": 0.5}, grid=str(grid))
    assert [(s.seed, s.max_eval, s.params) for s in plan.specs] == [(7, 50, {"C": 0.5})]
    assert plan.out == str(tmp_path / "runs") and plan.grid["seeds"] == [1, 2]
    assert plan.overrides_note == "overrides from the command line: max_eval=50, seed=7, params C=0.5"
    with pytest.raises(ClfbenchError, match=r"run: --task, --method, --name cannot be used with a grid file"):
        flag_run({"task": "sst2", "name": "x"}, ["tfidf-lr"], grid=str(grid))
