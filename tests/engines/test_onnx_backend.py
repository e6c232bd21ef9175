"""ONNX export, ONNX Runtime sessions and int8 quantization of encoder classifiers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny_models
import torch

from clfbench.data.texts import Texts
from clfbench.engines import onnx_backend
from clfbench.engines.inference import EncoderEngine, top2_margin
from clfbench.errors import ClfbenchError

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    return tiny_models.build_classifiers(tmp_path_factory, seed=2)


def texts(n: int = 40) -> Texts:
    base = tiny_models.corpus(n)
    return Texts([t if i % 4 else " ".join([t] * 3) for i, t in enumerate(base)])


@pytest.mark.parametrize("kind", ["bert", "distilbert", "modernbert"])
def test_export_session_logits_match_torch(encoders, kind, tmp_path):
    model, tok, _ = encoders[kind]
    X = texts()
    file = onnx_backend.export(model, tok, tmp_path / "onnx")
    session = onnx_backend.OnnxSession(file)  # tokenizer read back from the export folder
    expected = EncoderEngine(model, tok, batch_size=8).logits(X)
    np.testing.assert_allclose(session.logits(X), expected, atol=1e-4)
    assert session.info()["intra_op_threads"] == torch.get_num_threads()
    meta = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert meta["opset"] == 17 and meta["model_type"] == model.config.model_type
    if kind in ("bert", "distilbert"):  # ONNX Runtime fuses BERT-family attention
        assert meta["fused"]["Attention"] == 2
    else:
        assert meta["fused"] is None


def test_batch_one_and_other_batch_shapes(encoders, tmp_path):
    """Dynamic axes: one unpadded text and a large padded batch both match torch."""
    model, tok, _ = encoders["bert"]
    session = onnx_backend.OnnxSession(onnx_backend.export(model, tok, tmp_path), batch_size=64)
    X = texts(70)
    expected = EncoderEngine(model, tok, batch_size=1).logits(X)
    np.testing.assert_allclose(session.logits(X), expected, atol=1e-4)
    np.testing.assert_allclose(session.logits(X.subset([5])), expected[[5]], atol=1e-4)


def test_engine_onnx_int8_reports_agreement(encoders):
    model, tok, _ = encoders["bert"]
    X = texts(48)
    engine = EncoderEngine(model, tok, backend="onnx", quantize=True, batch_size=16).prepare(X)
    fp32 = EncoderEngine(model, tok, batch_size=16).logits(X)
    got = engine.logits(X)
    assert not np.allclose(got, fp32, atol=1e-7)  # really quantized
    info = engine.info()
    assert info["backend"] == "onnx" and info["quantized"] and info["batch_size"] == 16
    assert info["onnx"]["file"] == onnx_backend.INT8_FILE
    assert info["agreement_n"] == len(X)
    assert info["agreement"] == pytest.approx((got.argmax(1) == fp32.argmax(1)).mean())


def test_int8_recheck_runs_in_the_fp32_graph(encoders):
    model, tok, _ = encoders["bert"]
    X = texts(40)
    fp32 = EncoderEngine(model, tok, batch_size=16).logits(X)
    every_row = EncoderEngine(model, tok, backend="onnx", quantize=True, batch_size=16, recheck=1e9)
    np.testing.assert_allclose(every_row.logits(X), fp32, atol=1e-4)  # all re-checked: fp32
    assert every_row.rechecked == len(X)
    auto = EncoderEngine(model, tok, backend="onnx", quantize=True, batch_size=16, recheck="auto")
    info = auto.prepare(X).info()
    assert info["recheck"]["by"] == "fp32 ONNX graph" and info["recheck"]["margin"] >= 0
    int8 = EncoderEngine(model, tok, backend="onnx", quantize=True, batch_size=16).logits(X)
    margin = float(np.median(top2_margin(int8)))
    half = EncoderEngine(model, tok, backend="onnx", quantize=True, batch_size=16, recheck=margin)
    low = top2_margin(int8) < margin
    got = half.logits(X)
    assert half.rechecked == low.sum() > 0
    np.testing.assert_array_equal(got[~low], int8[~low])
    np.testing.assert_allclose(got[low], fp32[low], atol=1e-4)


def test_engine_onnx_auto_batch_size(encoders):
    model, tok, _ = encoders["distilbert"]
    engine = EncoderEngine(model, tok, backend="onnx", tune_examples=32)
    engine.logits(texts(32))
    info = engine.info()
    assert info["batch_size"] in (8, 16, 32) and info["agreement"] == 1.0


def test_bad_export_is_refused_and_bad_fusion_dropped(encoders, tmp_path, monkeypatch):
    model, tok, _ = encoders["bert"]
    diffs = iter([0.0, 0.5])  # plain graph exact, fused graph wrong
    monkeypatch.setattr(onnx_backend, "_max_diff", lambda *a: next(diffs))
    onnx_backend.export(model, tok, tmp_path / "a")
    meta = json.loads((tmp_path / "a" / "export.json").read_text())
    assert meta["fused"] is None and "differs" in meta["fusion_error"]
    monkeypatch.setattr(onnx_backend, "_max_diff", lambda *a: 0.5)
    with pytest.raises(ClfbenchError, match="differs from torch"):
        onnx_backend.export(model, tok, tmp_path / "b")


def test_missing_model_file(tmp_path):
    with pytest.raises(ClfbenchError, match="not found"):
        onnx_backend.OnnxSession(tmp_path / "nothing.onnx")


def test_int8_with_first_layers_in_fp32(encoders, tmp_path):
    model, tok, _ = encoders["bert"]
    file = onnx_backend.export(model, tok, tmp_path)
    names = onnx_backend.first_layer_nodes(file, 1)
    assert "Attention_0" in names and len(names) == 4  # fused attention + 3 dense layers
    assert all("layer.0" in n or n == "Attention_0" for n in names)
    assert len(onnx_backend.first_layer_nodes(file, 2)) == 8
    import onnx

    mixed = onnx.load(str(onnx_backend.quantize(file, tmp_path / "b.onnx", fp32_layers=1)))
    ops = {n.name: n.op_type for n in mixed.graph.node}
    assert all(ops[n] in ("MatMul", "Attention") for n in names)  # kept in fp32
    assert "QAttention" in ops.values()  # layer 1's attention is int8
    X = texts(32)
    fp32 = EncoderEngine(model, tok, batch_size=16).logits(X)
    part = onnx_backend.OnnxSession(
        onnx_backend.quantize(file, tmp_path / "c.onnx", fp32_layers=2)).logits(X)
    np.testing.assert_allclose(part, fp32, atol=1e-3)  # only embeddings and head are int8


def test_first_layer_nodes_unfused_modernbert(encoders, tmp_path):
    model, tok, _ = encoders["modernbert"]
    names = onnx_backend.first_layer_nodes(onnx_backend.export(model, tok, tmp_path), 1)
    assert names and all("layers.0/" in n for n in names)
