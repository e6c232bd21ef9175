"""The tool explains itself: --help, `methods`, `tasks`, progress on long work, quiet libraries."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from neural_helpers import toy_data

from clfbench.cli.parser import build_parser, main
from clfbench.data.tasks import all_tasks
from clfbench.methods.base import METHODS, accepted_params, make_method
from clfbench.methods.params import format_default, method_params
from clfbench.progress import estimate_line, format_seconds


def test_top_level_help_is_for_users_with_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "No logic of its own" not in out  # the developer docstring is not the description
    examples = out[out.index("examples:"):].splitlines()[1:5]
    assert all(line.strip().startswith("clfbench ") for line in examples), examples
    assert "clfbench demo" in out and "--train" in out


@pytest.mark.parametrize("flag", ["--text-col", "--label-col", "--latency-examples", "--text-pair-col",
                                  "--data-dir", "--epochs", "--lr", "--backend"])
def test_run_flags_have_help(flag):
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    (action,) = [a for a in run._actions if flag in a.option_strings]
    assert action.help


def test_every_method_parameter_is_explained():
    for name in METHODS:
        params = method_params(name)
        assert {p.name for p in params} == accepted_params(name)
        assert all(p.help for p in params), [p.name for p in params if not p.help]


def test_methods_lists_parameters_defaults_and_meanings(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in METHODS:
        assert re.search(rf"^{re.escape(name)}\s+\S", out, re.M), name
    # tfidf-lr's block: every parameter with its default and its line.
    block = out[out.index("tfidf-lr "):out.index("\nembed-probe ")]
    for p in method_params("tfidf-lr"):
        assert re.search(rf"^\s+{re.escape(p.name)}={re.escape(format_default(p.default))}\s+"
                         rf"{re.escape(p.help)}$", block, re.M), p.name
    assert "c_grid=[0.25, 1.0, 4.0, 16.0, 64.0]" in block


def test_methods_name_shows_one_method_in_full(capsys):
    assert main(["methods", "encoder-ft"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("encoder-ft: Full fine-tuning")
    assert "tune=\"off\"" in out  # the whole docstring, not only its first line
    assert "embed-probe" not in out
    assert re.search(r"^\s+epochs=3\s+passes over the training data", out, re.M)
    assert main(["methods", "nope"]) == 2


def test_tasks_has_a_header_and_says_which_load_from_data_dir(capsys):
    assert main(["tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "--data-dir" in lines[0] and "hub" in lines[0]
    header = next(line for line in lines if line.startswith("task "))
    assert "local folder" in header and "label names" in header
    rows = {line.split()[0]: line for line in lines[lines.index(header) + 1:]}
    assert set(rows) == set(all_tasks())
    assert "sst2/" in rows["sst2"] and "trec/uiuc_original_format/" in rows["trec-fine"]
    assert "hub only" in rows["imdb"]  # no local: block


def test_cli_silences_library_future_warnings(monkeypatch):
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["tasks"]) == 0
        warnings.warn("a library's deprecation", FutureWarning, stacklevel=1)
        warnings.warn("a real problem", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["a real problem"]


def test_estimate_line():
    line = estimate_line(n_examples=390, batch_size=16, epochs=4, seconds_per_step=1.25)
    assert line.startswith("training on 390 examples: 4 epochs x 25 steps of 16 = 100 steps, about 2 min 05 s")
    assert "1 epoch x 1 step of 32 = 1 step," in estimate_line(10, 32, 1, 0.1)
    assert format_seconds(7384) == "2 h 03 min" and format_seconds(42.4) == "42 s"
    with pytest.raises(ValueError):
        estimate_line(10, 0, 1, 0.1)


@pytest.mark.parametrize("verbose", [True, False])
def test_tfidf_c_search_shows_progress_unless_quiet(capsys, verbose):
    m = make_method("tfidf-lr")
    m.verbose = verbose
    m.fit(toy_data(60, 0), toy_data(30, 1))
    err = capsys.readouterr().err
    assert ("tfidf-lr: choosing C on validation" in err) == verbose
    assert m.fit_info_["C"] in m.c_grid


def test_embed_probe_shows_embedding_progress_with_the_same_embeddings(zoo, capsys):
    train, val = toy_data(70, 0), toy_data(30, 1)
    shown = make_method("embed-probe", model=zoo("bert"), batch_size=2, C=1.0)  # chunks of 32
    shown.fit(train, val)
    assert "embed-probe: embedding train" in capsys.readouterr().err
    quiet = make_method("embed-probe", model=zoo("bert"), batch_size=2, C=1.0)
    quiet.verbose = False
    quiet.fit(train, val)
    assert "embedding" not in capsys.readouterr().err
    np.testing.assert_allclose(shown.lr_.coef_, quiet.lr_.coef_, atol=1e-6)


def test_methods_into_a_closed_pipe_ends_quietly():
    """`clfbench methods | head`: the reader leaving early is not an error with a traceback."""
    done = subprocess.run(f"'{sys.executable}' -m clfbench.cli methods | true", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert done.stderr == ""


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_loading_help_says_which_saved_files_are_code(command, capsys):
    """Issue 23.3: the pickles (code) among a saved model's files are named where it is loaded."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "pipeline.joblib" in out and "logreg.joblib" in out and "pipeline.skops" in out
    assert "pickle: loading it runs any code it holds" in out and "source you trust" in out
    assert "CLFBENCH_TRUST_PICKLES=1" in out
