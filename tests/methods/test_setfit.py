"""setfit: contrastive fine-tuning of a tiny sentence-transformer, then a logistic-regression head."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from cli_helpers import refused
from neural_helpers import LABELS, toy_data

from clfbench.errors import ClfbenchError
from clfbench.methods.base import Classifier, make_method

TRAIN, VAL, TEST = toy_data(45, 0), toy_data(30, 1), toy_data(60, 2)
FAST = {"num_iterations": 20, "lr": 1e-2, "batch_size": 16}


@pytest.fixture(scope="module")
def st_model(tmp_path_factory) -> str:
    """A tiny sentence-transformers folder: a 2-layer BERT + mean pooling (modules.json)."""
    pytest.importorskip("setfit")  # the `setfit` extra (the tests without it run anyway)
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer

    root = tmp_path_factory.mktemp("setfit")
    word = Transformer(str(tiny_models.build_encoder(root / "hf", "bert")))
    st = SentenceTransformer(modules=[word, Pooling(word.get_embedding_dimension(), "mean")],
                             device="cpu")
    st.save(str(root / "st"))
    assert (root / "st" / "modules.json").is_file()
    return str(root / "st")


def fitted(model: str, **params):
    m = make_method("setfit", model=model, **{**FAST, **params})
    m.verbose = False
    return m.fit(TRAIN, VAL)


def accuracy(m, data=TEST) -> float:
    return float((m.predict(data) == data.labels).mean())


def test_contrastive_training_learns_what_the_frozen_encoder_does_not(st_model, tmp_path):
    frozen = make_method("embed-probe", model=st_model)
    frozen.verbose = False
    frozen.fit(TRAIN, VAL)
    m = fitted(st_model, seed=3)
    # chance is 1/3; the same encoder frozen (embed-probe) stays well below
    assert accuracy(m) >= 0.9 and accuracy(m) > accuracy(frozen) + 0.15
    proba = m.predict_proba(TEST)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    # the head's C is chosen on validation only, the best of the grid
    by_c = m.fit_info_["validation_macro_f1_by_C"]
    assert set(by_c) == {str(c) for c in m.c_grid} and by_c[str(m.C_)] == max(by_c.values())
    total, trainable = m.n_parameters()
    assert total == trainable > 3 * 32  # the encoder is tuned in full
    m.save(tmp_path / "saved")
    again = Classifier.load(tmp_path / "saved")
    assert again.labels == LABELS and again.fit_info() == m.fit_info()
    np.testing.assert_allclose(again.predict_proba(TEST), proba, atol=1e-6)
    assert not list(Path.cwd().glob("checkpoints"))  # nothing written where the run started


def test_seeded_runs_repeat_and_other_seeds_differ(st_model):
    a, b, c = (fitted(st_model, num_iterations=2, seed=s, C=1.0) for s in (5, 5, 6))
    assert np.array_equal(a.predict_proba(TEST), b.predict_proba(TEST))
    assert not np.allclose(a.predict_proba(TEST), c.predict_proba(TEST))


def test_parameters_are_recorded_and_shape_the_training(st_model):
    # num_iterations: 2 positive + 2 negative pairs per training text, batches of 16, 2 epochs
    m = fitted(st_model, num_iterations=2, epochs=2, seed=1, C=0.5, max_length=8)
    info = m.fit_info()
    assert info["pairs"] == 2 * 2 * len(TRAIN) == 180
    assert info["steps"] == 2 * math.ceil(180 / 16)
    assert info["num_iterations"] == 2 and info["sampling_strategy"] is None
    assert m.C_ == 0.5 == m.lr_.C and info["validation_macro_f1_by_C"] == {}
    assert m.body_.max_seq_length == 8
    assert m.get_params()["num_iterations"] == 2 and m.get_params()["seed"] == 1
    # max_steps caps the contrastive steps; without num_iterations the strategy sizes the pairs
    capped = fitted(st_model, num_iterations=None, sampling_strategy="undersampling",
                    max_steps=3, C=1.0)
    assert capped.fit_info()["steps"] == 3
    assert capped.fit_info()["sampling_strategy"] == "undersampling"


@pytest.mark.parametrize("param, value", [("sampling_strategy", "random"), ("num_iterations", 0),
                                          ("max_steps", -1), ("lr", 0), ("C", -1)])
def test_bad_values_are_refused_when_built(param, value):
    with pytest.raises(ClfbenchError, match=param):
        make_method("setfit", **{param: value})


def test_missing_extra_is_one_clear_error_when_built(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "setfit" else real(name, *a))
    with pytest.raises(ClfbenchError, match=r"^method 'setfit' needs setfit, not installed: "
                                            r'pip install "clfbench\[setfit\]"$'):
        make_method("setfit")
    train = Path(__file__).parents[1] / "bad_input" / "data" / "train.csv"
    line = refused(["run", "--train", str(train), "--method", "setfit"], tmp_path / "runs", capsys)
    assert 'pip install "clfbench[setfit]"' in line


def test_cli_run_prints_our_progress_on_stderr_and_only_the_table_on_stdout(st_model, tmp_path, capsys):
    """The library printed its `{'train_runtime': ...}` dict to stdout and no estimate."""
    from clfbench.cli import main

    demo = Path(__file__).parents[2] / "src" / "clfbench" / "demo_data"
    assert main(["run", "--train", str(demo / "train.csv"), "--validation", str(demo / "validation.csv"),
                 "--test", str(demo / "test.csv"), "--method", "setfit", "--model", st_model,
                 "--param", "num_iterations=1", "--param", "C=1.0", "--max-train", "40",
                 "--max-eval", "30", "--latency-examples", "5", "--threads", "1",
                 "--out", str(tmp_path / "runs")]) == 0
    out, err = capsys.readouterr()
    assert "train_runtime" not in out and "{" not in out
    assert out.lstrip().startswith("┏") and "1 run(s) written" in out  # the results table, then where
    # 40 texts x 1 positive + 1 negative pair = 80 pairs, 5 steps of 16
    assert "training on 80 pairs: 1 epoch x 5 steps of 16 = 5 steps, about" in err
    assert "setfit: contrastive training, steps: 5/5 done in" in err
    assert "setfit: contrastive training loss " in err and "\r" not in err
    assert "Running training" not in err and "pin_memory" not in err
