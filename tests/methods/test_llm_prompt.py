"""llm-prompt through the CLI on tiny random decoders: zero/5-shot, score/generate, draws, saving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tiny_models

from clfbench.cli import main
from clfbench.data.texts import LabeledTexts
from clfbench.methods.base import Classifier, make_method


@pytest.fixture(scope="module")
def decoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm_prompt")
    return {k: str(tiny_models.build_decoder(root / k, k)) for k in ("qwen2", "llama", "gemma2")}


def run_cli(datasets_dir: Path, out: Path, model: str, *extra: str) -> list[dict]:
    argv = ["run", "--task", "sst2", "--data-dir", str(datasets_dir / "sst2"), "--method", "llm-prompt",
            "--model", model, "--max-train", "200", "--max-eval", "16", "--out", str(out), "-q",
            "--latency-examples", "2", *extra]
    assert main(argv) == 0
    runs = []
    for folder in sorted(p.parent for p in out.glob("*/metrics.json")):
        runs.append({
            "metrics": json.loads((folder / "metrics.json").read_text()),
            "predictions": [json.loads(line) for line in (folder / "predictions.jsonl").open()],
            "folder": folder,
        })
    return runs


@pytest.mark.parametrize("kind", ["qwen2", "llama", "gemma2"])
@pytest.mark.parametrize("shots", ["0", "5"])
@pytest.mark.parametrize("decision", ["score", "generate"])
def test_cli_run(decoders, datasets_dir, tmp_path, kind, shots, decision):
    (run,) = run_cli(datasets_dir, tmp_path, decoders[kind], "--shots", shots, "--decision", decision)
    m, preds = run["metrics"], run["predictions"]
    assert m["method"] == "llm-prompt" and m["n_examples"] == 16 == len(preds)
    fit = m["fit_info"]
    assert fit["shots"] == int(shots) and len(fit["shot_labels"]) == int(shots)
    prompt = fit["prompt"]
    assert prompt["verbalizers"] == {"negative": "negative", "positive": "positive"}
    assert "input:" in prompt["template"] and prompt["chat_template_applied"]
    assert "movie review" in prompt["rendered_example"]  # the task's instruction, with or without shots
    info = m["inference_info"]
    assert info["n_examples"] == 16 and info["decision"] == decision and info["prefix_cache"]
    assert fit["bos"] == info["bos"] == "auto" and prompt["bos"]["policy"] == "auto"
    assert prompt["complete_answers"] is False and prompt["ambiguous_answers"] == []
    if decision == "score":
        probs = np.array([[r["probabilities"]["negative"], r["probabilities"]["positive"]] for r in preds])
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        assert m["invalid_rate"] == 0.0 and m["ece"] is not None
    else:
        assert all("probabilities" not in r for r in preds)
        assert m["ece"] is None and m["brier"] is None
        invalid = sum(r["pred"] is None for r in preds)
        assert m["invalid_rate"] == pytest.approx(invalid / 16)
        assert info["invalid"] == invalid and len(info["invalid_examples"]) == min(invalid, 5)
        greedy = info["generation_config"]
        assert greedy["do_sample"] is False and greedy["num_beams"] == 1 and greedy["repetition_penalty"] == 1.0


def test_unparseable_generations_are_invalid_never_a_class(decoders, monkeypatch):
    """Outputs that name no label are counted invalid (prediction -1), never mapped to a class."""
    train = LabeledTexts(["good film", "bad film", "great fun", "awful plot"], None,
                         np.array([1, 0, 1, 0]), ["neg", "pos"])
    m = make_method("llm-prompt", model=decoders["llama"], prompt={}, decision="generate").fit(train)
    outputs = ["pos", " Neg.", "maybe", "", "pos neg"]
    monkeypatch.setattr(m.scorer_, "generate", lambda X, *a, **k: (outputs[: len(X)], {}))
    pred = m.predict(LabeledTexts(["a", "b", "c", "d", "e"], None, np.zeros(5, int), ["neg", "pos"]))
    info = m.inference_info()
    assert pred[0] == 1 and pred[1] == 0 and (pred[2:4] == -1).all()
    assert info["invalid"] == int((pred == -1).sum()) and info["invalid_rate"] == pytest.approx(info["invalid"] / 5)
    assert set(info["invalid_examples"]) >= {"maybe", ""}


def test_draws_are_runs_with_different_shot_sets(decoders, datasets_dir, tmp_path):
    runs = run_cli(datasets_dir, tmp_path, decoders["llama"], "--shots", "4", "--draws", "3")
    assert [r["metrics"]["seed"] for r in runs] == [99, 99, 99]  # one seed, three draws
    assert sorted(r["metrics"]["fit_info"]["shot_seed"] for r in runs) == [99000, 99001, 99002]
    shot_sets = {tuple(r["metrics"]["fit_info"]["shot_ids"]) for r in runs}
    assert len(shot_sets) == 3
    assert all(r["metrics"]["fit_info"]["draws"] == 3 for r in runs)


def test_template_override_is_used_and_saved(decoders, datasets_dir, tmp_path):
    tpl = tmp_path / "mine.yaml"
    tpl.write_text('input: "Review >>> {{ text }}"\n')
    (run,) = run_cli(datasets_dir, tmp_path / "out", decoders["llama"], "--shots", "2",
                     "--param", f"template={tpl}")
    prompt = run["metrics"]["fit_info"]["prompt"]
    assert prompt["template"] == tpl.read_text() and prompt["template_path"] == str(tpl)
    assert prompt["rendered_example"].count("Review >>>") == 3


def test_save_load_same_predictions_and_predict_cli(decoders, datasets_dir, tmp_path, capsys):
    (run,) = run_cli(datasets_dir, tmp_path, decoders["gemma2"], "--shots", "3", "--save-model")
    model = Classifier.load(run["folder"] / "model")
    texts = [r["text"] for r in run["predictions"]]
    from clfbench.data.texts import Texts

    proba = model.predict_proba(Texts(texts))
    saved = np.array([[r["probabilities"]["negative"], r["probabilities"]["positive"]] for r in run["predictions"]])
    np.testing.assert_allclose(proba, saved, atol=1e-5)
    capsys.readouterr()
    assert main(["predict", "--run", str(run["folder"]), "--text", texts[0]]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert row["label"] == run["predictions"][0]["pred"]


def test_default_prompt_for_own_data_and_bad_params(decoders):
    train = LabeledTexts(["good film", "bad film", "great fun", "awful plot"], None,
                         np.array([1, 0, 1, 0]), ["neg", "pos"])
    m = make_method("llm-prompt", model=decoders["llama"], prompt={}, shots=2).fit(train)
    assert m.fit_info_["prompt"]["instruction"] == "Classify the text. Answer with one of: neg, pos."
    assert m.predict_proba(train).shape == (4, 2)
    assert main(["run", "--task", "sst2", "--method", "llm-prompt", "--decision", "vote",
                 "--model", decoders["llama"]]) == 2
