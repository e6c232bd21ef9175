"""tfidf-lr: the classic baseline (the model-free method every comparison starts from)."""

from __future__ import annotations

import numpy as np
import pytest
from neural_helpers import LABELS, toy_data

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.errors import ClfbenchError
from clfbench.methods.base import Classifier, make_method


def test_learns_selects_c_on_validation_and_reloads(tmp_path):
    train, val, test = toy_data(150, 0), toy_data(60, 1), toy_data(60, 2)
    m = make_method("tfidf-lr").fit(train, val)
    by_c = m.fit_info_["validation_macro_f1_by_C"]
    assert set(by_c) == {str(c) for c in m.c_grid}
    assert by_c[str(m.fit_info_["C"])] == max(by_c.values())
    proba = m.predict_proba(test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (m.predict(test) == test.labels).mean() > 0.75  # chance is 1/3
    m.save(tmp_path / "s")
    again = Classifier.load(tmp_path / "s")
    assert again.labels == LABELS and np.array_equal(again.predict_proba(test), proba)
    total, trainable = again.n_parameters()
    assert total == trainable > 0


def test_fixed_c_skips_the_search():
    m = make_method("tfidf-lr", C=3.0).fit(toy_data(60, 0), toy_data(30, 1))
    assert m.fit_info_ == {"C": 3.0, "validation_macro_f1_by_C": {}}


def test_a_class_absent_from_train_gets_zero_probability():
    data = toy_data(60, 0)
    keep = np.flatnonzero(data.labels != 2)
    train = data.subset(keep)
    m = make_method("tfidf-lr", C=1.0).fit(train)
    proba = m.predict_proba(Texts(["good film", "the plot"]))
    assert proba.shape == (2, 3) and np.all(proba[:, 2] == 0)


def test_pairs_use_both_texts():
    texts = ["a film"] * 40
    pairs = ["great good"] * 20 + ["awful bad"] * 20
    train = LabeledTexts(texts, pairs, [0] * 20 + [1] * 20, ["pos", "neg"])
    m = make_method("tfidf-lr", C=10.0).fit(train)
    assert list(m.predict(Texts(["a film", "a film"], ["good", "bad"]))) == [0, 1]


def test_unknown_parameter_is_rejected():
    with pytest.raises(ClfbenchError, match="unknown parameter"):
        make_method("tfidf-lr", epochs=3)


@pytest.mark.parametrize("c", [0.01, 1000])
def test_a_one_value_c_grid_is_used(c):
    """c_grid [0.01] and [1000] both trained with C=1.0 before."""
    m = make_method("tfidf-lr", c_grid=[c]).fit(toy_data(60, 0), toy_data(30, 1))
    assert m.fit_info_["C"] == c and m.pipeline_[-1].C == c


def test_without_validation_c_comes_from_the_grid():
    assert make_method("tfidf-lr").fit(toy_data(60, 0)).fit_info_["C"] == 1.0  # in the default grid
    assert make_method("tfidf-lr", c_grid=[8]).fit(toy_data(60, 0)).fit_info_["C"] == 8.0
    with pytest.raises(ClfbenchError, match="needs a validation split"):
        make_method("tfidf-lr", c_grid=[2, 8]).fit(toy_data(60, 0))


@pytest.mark.parametrize("params, match", [
    ({"C": 2.0, "c_grid": [1, 4]}, "not both"),
    ({"C": 0}, "C must be a positive number"),
    ({"c_grid": []}, "c_grid must be a non-empty list"),
    ({"c_grid": [1, -1]}, "c_grid must be a non-empty list"),
    ({"c_grid": "big"}, "c_grid must be a non-empty list"),
])
def test_bad_c_settings_are_refused(params, match):
    with pytest.raises(ClfbenchError, match=match):
        make_method("tfidf-lr", **params)


def test_saved_pipeline_is_skops_and_a_crafted_pickle_runs_no_code(tmp_path, monkeypatch):
    """Issue 23.3: the pipeline is saved without a pickle; a legacy (or crafted)
    pipeline.joblib is refused unless CLFBENCH_TRUST_PICKLES=1, and never runs unasked."""
    import pickle

    from clfbench.data.texts import LabeledTexts, Texts
    from clfbench.errors import ClfbenchError
    from clfbench.methods.base import Classifier, make_method

    texts = ["good film", "great plot", "bad film", "awful plot"] * 3
    data = LabeledTexts(texts, None, np.array([1, 1, 0, 0] * 3), ["neg", "pos"])
    m = make_method("tfidf-lr", C=1.0).fit(data)
    m.save(tmp_path / "model")
    assert (tmp_path / "model" / "pipeline.skops").is_file()
    assert not (tmp_path / "model" / "pipeline.joblib").exists()
    assert Classifier.load(tmp_path / "model").predict(Texts(["good film"])).tolist() == [1]
    # A crafted pickle in the place of the pipeline: refused, the command never runs.
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "model" / "pipeline.skops").unlink()
    (tmp_path / "model" / "pipeline.joblib").write_bytes(pickle.dumps(Evil()))
    monkeypatch.delenv("CLFBENCH_TRUST_PICKLES", raising=False)
    with pytest.raises(ClfbenchError, match="a pickle, which runs any code.*CLFBENCH_TRUST_PICKLES"):
        Classifier.load(tmp_path / "model")
    assert not marker.exists()


def test_a_crafted_skops_file_naming_a_function_is_refused(tmp_path):
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from clfbench.engines.sklearn_io import load_estimator

    sio.dump(FunctionTransformer(os.system), tmp_path / "pipeline.skops")
    with pytest.raises(ClfbenchError, match="not trusted.*system"):
        load_estimator(tmp_path, "pipeline")
