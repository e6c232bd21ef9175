"""distill: an LLM teacher labels a pool, a tiny encoder-ft student learns the teacher's labels.

Teachers: a loopback OpenAI-compatible server (tests/api_server.py) whose reply rule is known
(so a deliberately wrong teacher can be built), and a tiny local causal LM (llm-prompt).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from cli_helpers import refused
from neural_helpers import POSITIVE, toy_data
from sklearn.metrics import cohen_kappa_score
from transformers import AutoConfig

from clfbench.cli import main
from clfbench.data.texts import LabeledTexts
from clfbench.errors import ClfbenchError
from clfbench.methods.base import Classifier, make_method

pytest.importorskip("httpx")  # the `api` extra, for the loopback teacher

from api_server import ApiServer, keyword_reply  # noqa: E402

PROMPT = {"instruction": "Classify the sentiment of the sentence as negative or positive.",
          "verbalizers": {"negative": "negative", "positive": "positive"},
          "text_name": "sentence"}
FAST_API = {"timeout_s": 2.0, "backoff_base_s": 0.01, "backoff_max_s": 0.02,
            "api_key_env": "CLFBENCH_TEST_NO_KEY"}
#: a student that learns the toy task in seconds: tiny ModernBERT, fixed recipe, last epoch kept
STUDENT = {"epochs": 5, "lr": 3e-3, "batch_size": 16, "tune": "off", "selection": "last"}


def sentiment(n: int, seed: int) -> LabeledTexts:
    """Two classes: a positive word -> "positive" (1), a negative word -> "negative" (0)."""
    d = toy_data(n, seed, proportions=(1, 1, 0))
    return LabeledTexts(d.texts, None, 1 - d.labels, ["negative", "positive"], d.ids)


def api_teacher(server: ApiServer, **kw) -> dict:
    return {"method": "llm-api", "model": "test-model", "base_url": server.url, **FAST_API, **kw}


def distill(zoo, teacher: dict, **kw):
    m = make_method("distill", teacher=teacher, student=zoo("modernbert"),
                    student_params=kw.pop("student_params", STUDENT), prompt=PROMPT, **kw)
    m.verbose = False
    return m


def spy_student(m) -> list[LabeledTexts]:
    """Record what the student is trained on (through its public `fit`)."""
    seen: list[LabeledTexts] = []
    real: Callable = m.student_.fit

    def fit(train, validation=None):
        seen.append(train)
        return real(train, validation)

    m.student_.fit = fit
    return seen


def test_student_follows_a_wrong_teacher_not_the_gold_labels(zoo, tmp_path):
    """A teacher with the mapping flipped: the student learns the flip, so it trains on the
    teacher's labels; agreement with gold, calls, tokens and USD are recorded."""
    train, val, test = sentiment(150, 0), sentiment(40, 1), sentiment(60, 2)
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  test-model: {input: 1.0, output: 2.0}\n")
    flipped = keyword_reply(set(POSITIVE), answers=("positive", "negative"))
    with ApiServer(flipped) as server:
        m = distill(zoo, api_teacher(server, prices=str(prices)))
        seen = spy_student(m)
        m.fit(train, val)
        usage = list(server.usage_sent)
        roles = [[x["role"] for x in r["body"]["messages"]] for r in server.requests]
    (student_train,) = seen
    assert student_train.texts == train.texts
    assert np.array_equal(student_train.labels, 1 - train.labels)  # every label flipped
    pred = m.predict(test)
    assert (pred == 1 - test.labels).mean() >= 0.8  # the student learnt the flip
    info = m.fit_info()
    assert info["agreement_with_gold"] == {"n": 150, "coverage": 1.0, "accuracy": 0.0,
                                           "cohen_kappa": -1.0}
    lab = info["labelling"]
    assert lab["pool"] == "train" and lab["pool_size"] == lab["labelled"] == 150
    assert lab["dropped"] == 0 and lab["teacher_label_counts"] == {"negative": 75, "positive": 75}
    assert lab["calls"] == 151 == len(usage)  # the auto-decision probe + one per pool text
    assert lab["input_tokens"] == sum(i for i, _ in usage)
    assert lab["output_tokens"] == sum(o for _, o in usage)
    assert lab["usd"] == pytest.approx(sum(i * 1.0 + o * 2.0 for i, o in usage) / 1e6)
    assert lab["labelling_seconds"] > 0
    # zero shots: every request is the query alone, no demonstration answers (gold labels)
    assert all("assistant" not in r for r in roles)
    assert info["teacher"]["method"] == "llm-api" and info["teacher"]["params"]["shots"] == 0
    # evaluation reads the student: its probabilities, parameters and a save/load round trip
    proba = m.predict_proba(test)
    assert proba.shape == (60, 2) and m.n_parameters() == m.student_.n_parameters()
    m.save(tmp_path / "saved")
    again = Classifier.load(tmp_path / "saved")
    np.testing.assert_allclose(again.predict_proba(test), proba, atol=1e-6)
    assert again.fit_info()["labelling"] == json.loads(json.dumps(lab))


def test_invalid_answers_and_failed_requests_are_dropped_and_counted(zoo):
    train, val = sentiment(60, 3), sentiment(20, 4)
    rule = keyword_reply(set(POSITIVE))

    def reply(messages):  # no label for texts that mention the plot
        return "maybe" if "plot" in messages[-1]["content"].split() else rule(messages)["text"]

    with ApiServer(reply, logprobs=False) as server:
        server.script.append("500")  # the first request fails; no retries
        teacher = api_teacher(server, decision="generate", concurrency=1, max_retries=0)
        m = distill(zoo, teacher, student_params={**STUDENT, "epochs": 1})
        seen = spy_student(m)
        m.fit(train, val)
    plot = {i for i, t in enumerate(train.texts) if "plot" in t.split()}
    assert 0 < len(plot) < 40 and 0 not in plot
    lab = m.fit_info()["labelling"]
    assert lab["dropped"] == len(plot) + 1 and lab["labelled"] == 60 - len(plot) - 1
    assert lab["dropped_invalid_answers"] == len(plot) and lab["dropped_not_labelled"] == 1
    (student_train,) = seen
    kept = [i for i in range(60) if i not in plot and i != 0]
    assert student_train.texts == [train.texts[i] for i in kept]
    assert np.array_equal(student_train.labels, train.labels[kept])  # a right teacher here
    agree = m.fit_info()["agreement_with_gold"]
    assert agree["n"] == len(kept) and agree["accuracy"] == 1.0
    assert agree["coverage"] == pytest.approx(len(kept) / 60)
    assert "teacher labelling: 1 of 60 API requests failed" in m.inference_info()["incomplete"]


def varied_tiny_lm(root: Path, train: LabeledTexts, teacher: dict) -> tuple[str, np.ndarray]:
    """A tiny llama with wide initial weights (so that its answer depends on the text) whose
    labels of `train` as `teacher` (llm-prompt) span at least two classes; and those labels.
    The tokenizer's training is not the same in every process, so a few inits are tried."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = tiny_models.train_decoder_tokenizer()
    cfg = tiny_models._config("llama", len(tok), eos_token_id=tok.eos_token_id,
                              bos_token_id=tok.bos_token_id, initializer_range=1.0)
    for seed in range(10):
        torch.manual_seed(seed)
        path = root / f"lm{seed}"
        AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
        tok.save_pretrained(path)
        params = {k: v for k, v in teacher.items() if k != "method"}
        pred = make_method("llm-prompt", **params, model=str(path)).fit(train).predict(train)
        if len(set(pred.tolist())) >= 2:
            return str(path), pred
    raise AssertionError("no tiny LM labelled the pool with two classes")


def test_local_llm_teacher_agreement_is_the_teachers_own(tmp_path, zoo):
    """A tiny local LM (llm-prompt) as teacher: the recorded agreement is exactly that of the
    same llm-prompt run alone on the pool; its calls and prompt tokens are recorded."""
    train, val = toy_data(60, 0), toy_data(20, 1)
    teacher = {"method": "llm-prompt", "shots": 2, "seed": 5, "prompt": {}}
    lm, pred = varied_tiny_lm(tmp_path, train, teacher)
    m = make_method("distill", teacher={**teacher, "model": lm}, student=zoo("bert"),
                    student_params={"epochs": 1, "tune": "off"}, seed=5)
    m.verbose = False
    seen = spy_student(m)
    m.fit(train, val)
    assert np.array_equal(seen[0].labels, pred)  # the teacher's labels, as it gives them alone
    agree = m.fit_info()["agreement_with_gold"]
    assert agree["accuracy"] == pytest.approx((pred == train.labels).mean())
    assert agree["cohen_kappa"] == pytest.approx(cohen_kappa_score(train.labels, pred))
    lab = m.fit_info()["labelling"]
    assert lab["calls"] == 60 and lab["usd"] is None and lab["dropped"] == 0
    tokens = m.fit_info()["teacher"]["inference_info"]["prompt_tokens_mean"] * 60
    assert lab["input_tokens"] == round(tokens) > 60
    assert m.fit_info()["teacher"]["fit_info"]["shots"] == 2  # its demos: 2 gold examples


def test_pool_from_a_file_has_no_gold_agreement(zoo, tmp_path):
    train, val = sentiment(40, 5), sentiment(20, 6)
    extra = sentiment(30, 7)
    pool = tmp_path / "pool.csv"
    pool.write_text("id,review\n" + "".join(f"{i},{t}\n" for i, t in enumerate(extra.texts)))
    with ApiServer(keyword_reply(set(POSITIVE))) as server:
        m = distill(zoo, api_teacher(server), pool=str(pool), pool_text_col="review",
                    student_params={**STUDENT, "epochs": 1})
        seen = spy_student(m)
        m.fit(train, val)
    assert seen[0].texts == extra.texts and np.array_equal(seen[0].labels, extra.labels)
    assert m.fit_info()["agreement_with_gold"] is None
    assert m.fit_info()["labelling"]["pool_size"] == 30
    assert m.teacher_.fit_info() == {}  # the fitted teacher was not kept past the labelling
    # A saved distill model is the student: it loads (and predicts the same) without its pool file.
    m.save(tmp_path / "saved")
    pool.unlink()
    again = Classifier.load(tmp_path / "saved")
    assert np.array_equal(again.predict(val), m.predict(val))


def test_a_missing_pool_file_fails_in_fit_before_the_teacher_loads(tmp_path):
    m = make_method("distill", teacher={"method": "llm-prompt", "model": str(tmp_path / "no-model")},
                    pool=str(tmp_path / "gone.csv"))
    with pytest.raises(ClfbenchError, match="gone.csv'?: not found"):
        m.fit(toy_data(20, 0))


@pytest.mark.parametrize("params, message", [
    ({"teacher": None}, "teacher must name its method"),
    ({"teacher": "llm-prompt"}, "teacher='llm-prompt' \\(input should be a valid dictionary"),
    ({"teacher": {"method": "llm-sft", "model": "x"}}, "trains on the gold labels"),
    ({"teacher": {"method": "distill"}}, "trains on the gold labels"),
    ({"teacher": {"method": "llm-prompt"}}, "needs a model"),
    ({"teacher": {"method": "llm-prompt", "model": "x", "shots": -1}}, "shots"),
    ({"teacher": {"method": "nope"}}, "unknown method 'nope'"),
    ({"teacher": {"method": "llm-prompt", "model": "x", "draws": 3}}, "draws must be 1"),
    ({"student_params": {"epochs": 0}}, "epochs"),
    ({"student_params": {"model": "x"}}, "give it as student="),
    ({"pool": "<tmp>/settings.toml"}, "unknown file type"),
])
def test_bad_values_are_refused_when_built(params, message, tmp_path):
    (tmp_path / "settings.toml").write_text("x = 1\n")
    params = {"teacher": {"method": "llm-prompt", "model": "x"}, **params}
    if isinstance(params.get("pool"), str):
        params["pool"] = params["pool"].replace("<tmp>", str(tmp_path))
    with pytest.raises(ClfbenchError, match=message):
        make_method("distill", **params)


def test_a_bad_pool_file_is_one_line_exit_2_before_the_teacher_loads(tmp_path, capsys):
    pool = tmp_path / "pool.csv"
    pool.write_text("review\nfine text\n")  # no `text` column
    train = Path(__file__).parents[1] / "bad_input" / "data" / "train.csv"
    # a model folder with a config but no weights: it passes the check that the model exists
    # (made before any data loads) and fails only if the teacher is loaded
    AutoConfig.for_model("llama", vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, num_key_value_heads=1).save_pretrained(tmp_path / "unloadable")
    teacher = f"{{method: llm-prompt, model: {tmp_path / 'unloadable'}}}"
    line = refused(["run", "--train", str(train), "--method", "distill", "--param", f"teacher={teacher}",
                    "--param", f"pool={pool}"], tmp_path / "runs", capsys)  # and no results folder
    assert "no text column 'text'" in line and "unloadable" not in line


def test_cli_run_records_the_labelling_with_the_run(zoo, tmp_path):
    """Through `clfbench run`: the student is the run's model, the labelling is in metrics.json."""
    train = Path(__file__).parents[1] / "bad_input" / "data" / "train.csv"
    reply = keyword_reply({"great", "loved", "wonderful", "fun", "good"}, answers=("neg", "pos"))
    with ApiServer(reply) as server:
        teacher = (f"{{method: llm-api, model: test-model, base_url: '{server.url}', "
                   "api_key_env: CLFBENCH_TEST_NO_KEY}")
        code = main(["run", "--train", str(train), "--method", "distill", "--param", f"teacher={teacher}",
                     "--param", f"student={zoo('bert')}", "--param", "student_params={epochs: 1, tune: 'off'}",
                     "--out", str(tmp_path / "runs"), "-q", "--latency-examples", "2"])
        n_requests = len(server.requests)
    assert code == 0
    (metrics_file,) = (tmp_path / "runs").glob("*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    lab = metrics["fit_info"]["labelling"]
    assert metrics["method"] == "distill" and lab["calls"] == n_requests == lab["pool_size"] + 1
    assert metrics["fit_info"]["agreement_with_gold"]["n"] == lab["labelled"] > 0
    assert metrics["train_seconds"] >= lab["seconds"] and "incomplete" not in metrics["inference_info"]
