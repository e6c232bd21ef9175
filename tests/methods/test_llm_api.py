"""`llm-api` end to end against a real loopback OpenAI-compatible server (no other traffic)."""

from __future__ import annotations

import json
import logging
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("httpx")  # the `api` extra

from api_server import ApiServer, keyword_reply

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.errors import ClfbenchError
from clfbench.methods.base import INVALID, Classifier, make_method

POSITIVE = {"great", "good", "wonderful", "fun", "best", "love", "beautiful", "funny", "moving"}
RULE = keyword_reply(POSITIVE)
PROMPT = {
    "instruction": "Classify the sentiment of the sentence as negative or positive.",
    "verbalizers": {"negative": "negative", "positive": "positive"},
    "text_name": "sentence",
}
FAST = {"timeout_s": 0.5, "backoff_base_s": 0.01, "backoff_max_s": 0.05}


def toy(n: int, offset: int = 0) -> LabeledTexts:
    nouns = ["film", "movie", "plot", "story", "actor", "ending"]
    texts, labels = [], []
    for i in range(offset, offset + n):
        good = i % 2 == 0
        texts.append(f"the {nouns[i % 6]} number {i} was {'great' if good else 'dull'}")
        labels.append(int(good))
    return LabeledTexts(texts, None, np.array(labels), ["negative", "positive"])


def method(server: ApiServer, **kw):
    params = {"model": "test-model", "base_url": server.url, "prompt": PROMPT,
              "api_key_env": "CLFBENCH_TEST_NO_KEY", **FAST, **kw}
    return make_method("llm-api", **params)


def test_logprobs_give_probabilities_and_shots_reach_the_prompt():
    train, test = toy(20), toy(10, offset=100)
    with ApiServer(RULE) as server:
        m = method(server, shots=2).fit(train, toy(4, offset=50))
        pred, proba = m.classify(test)
        info = m.inference_info()
        last = server.requests[-1]["body"]
    assert m.decision_ == "logprobs" and m.has_probabilities
    assert m.fit_info_["probe"]["logprobs_returned"] is True
    assert pred.tolist() == test.labels.tolist()
    np.testing.assert_allclose(proba[np.arange(10), pred], 0.9)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    roles = [x["role"] for x in last["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]  # 2 shots, then the query
    assert PROMPT["instruction"] in last["messages"][0]["content"]
    assert "Authorization" not in server.requests[0]["headers"]  # loopback, no key variable
    assert info["requests"] == 11 and info["reported_pass"]["examples"] == 10
    assert info["input_tokens"] == sum(u[0] for u in server.usage_sent)
    assert info["output_tokens"] == sum(u[1] for u in server.usage_sent)
    assert info["invalid_rate"] == 0.0 and info["usd_per_1m_requests"] is None  # no price


@pytest.mark.parametrize("kind", ["no_logprobs", "rejects_logprobs"])
def test_generate_mode_has_no_probabilities(kind):
    train, test = toy(10), toy(6, offset=40)
    server = ApiServer(RULE, logprobs=False) if kind == "no_logprobs" else ApiServer(
        RULE, reject_logprobs=True)
    with server:
        m = method(server).fit(train)
        pred, proba = m.classify(test)
        with pytest.raises(ClfbenchError, match="no probabilities"):
            m.predict_proba(test)
    assert m.decision_ == "generate" and not m.has_probabilities and proba is None
    assert pred.tolist() == test.labels.tolist()
    assert m.fit_info_["probe"]["logprobs_rejected"] is (kind == "rejects_logprobs")
    assert "logprobs" not in server.requests[-1]["body"]


def test_failures_and_unparseable_answers_are_invalid_not_class_0():
    replies = iter(["negative", "I cannot tell", "positive"])
    with ApiServer(lambda messages: next(replies, "negative"), logprobs=False) as server:
        m = method(server, decision="generate", concurrency=1, max_retries=1).fit(toy(4))
        server.script.extend(["malformed", "malformed"])  # the first example fails twice
        pred, proba = m.classify(toy(4, offset=10))
        info = m.inference_info()
    assert pred.tolist() == [INVALID, 0, INVALID, 1]
    assert proba is None
    assert info["failures"] == 1 and info["not_classified"] == 1
    assert info["errors_by_kind"] == {"malformed": 2}
    # a failed request is no answer: the run is incomplete (stored aside, retried by a re-run)
    assert info["incomplete"] == "1 of 4 API requests failed after retries (attempt errors: malformed x2)"
    assert info["invalid_answers"] == 1 and info["invalid_rate"] == pytest.approx(1 / 3)


def test_label_scores_map_first_answer_token_to_verbalizers():
    m = make_method("llm-api", model="x", prompt={"verbalizers": {"a": "entailment", "b": "neutral",
                                                                  "c": "not entailment"}})
    from clfbench.engines.prompts import PromptBuilder

    m.builder_ = PromptBuilder(m.prompt, ["a", "b", "c"])
    top = [("Ent", math.log(0.5)), (" neutral", math.log(0.2)), ("not", math.log(0.1)),
           ("entail", math.log(0.1)), ("maybe", math.log(0.05))]
    positions = [{"token": "\n", "logprob": 0.0, "top": [("\n", 0.0)]},
                 {"token": "Ent", "logprob": math.log(0.5), "top": top}]
    np.testing.assert_allclose(m.label_scores(positions), np.array([0.6, 0.2, 0.1]) / 0.9)
    assert m.label_scores([{"token": "maybe", "logprob": 0.0, "top": [("maybe", 0.0)]}]) is None
    assert m.label_scores(None) is None


def test_missing_key_is_an_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("CLFBENCH_TEST_ABSENT_KEY", raising=False)
    m = make_method("llm-api", model="gpt-4o-mini", base_url="https://api.example.invalid/v1",
                    api_key_env="CLFBENCH_TEST_ABSENT_KEY", prompt=PROMPT)
    with pytest.raises(ClfbenchError, match="CLFBENCH_TEST_ABSENT_KEY is not set"):
        m.fit(toy(4))


@pytest.mark.parametrize("bad", ["sk-SENTINEL-abc\n", " sk-SENTINEL-abc", "sk-SENTINEL-\u00e9t\u00e9",
                                 "sk-SENTINEL\tabc"])
def test_unsendable_key_is_an_error_naming_the_variable_before_any_request(monkeypatch, bad):
    monkeypatch.setenv("CLFBENCH_TEST_BAD_KEY", bad)
    with ApiServer(RULE) as server:
        with pytest.raises(ClfbenchError) as err:
            method(server, api_key_env="CLFBENCH_TEST_BAD_KEY").fit(toy(4))
        assert server.requests == []
    msg = str(err.value)
    assert "environment variable CLFBENCH_TEST_BAD_KEY" in msg
    assert "SENTINEL" not in msg and "\n" not in msg


def test_bad_parameters_are_clear_errors():
    with ApiServer(RULE) as server:
        with pytest.raises(ClfbenchError, match="budget_usd is set but model 'test-model' has no price"):
            method(server, budget_usd=1.0).fit(toy(4))
        with pytest.raises(ClfbenchError, match="decision='best'"):
            method(server, decision="best").fit(toy(4))
        with pytest.raises(ClfbenchError, match="concurrency=0"):
            method(server, concurrency=0).fit(toy(4))
    with pytest.raises(ClfbenchError, match="unknown parameter"):
        make_method("llm-api", model="x", api_key="sk-not-a-parameter")


def test_save_and_load_keep_shots_and_decision(tmp_path, monkeypatch):
    monkeypatch.setenv("CLFBENCH_TEST_KEY", "sk-SENTINEL-save-5c4b")
    test = toy(6, offset=30)
    with ApiServer(RULE) as server:
        m = method(server, shots=2, api_key_env="CLFBENCH_TEST_KEY").fit(toy(10))
        m.save(tmp_path / "model")
        loaded = Classifier.load(tmp_path / "model")
        loaded.use_endpoint(trust=True)  # a saved model's own endpoint is used when the user says so
        pred, proba = loaded.classify(test)
        assert server.requests[-1]["headers"]["Authorization"] == "Bearer sk-SENTINEL-save-5c4b"
    assert loaded.decision_ == "logprobs" and loaded.shots_ == m.shots_
    assert loaded.builder_.messages("x", None, loaded.shots_) == m.builder_.messages("x", None, m.shots_)
    assert pred.tolist() == test.labels.tolist() and proba.shape == (6, 2)
    for f in (tmp_path / "model").iterdir():
        assert "SENTINEL" not in f.read_text()
    assert b"SENTINEL" not in pickle.dumps(m)  # the client (holding the key) is not pickled


@pytest.mark.slow
def test_tiny_local_model_served_through_generate(tmp_path):
    """A real (tiny, random) causal LM behind the server: scores and parses what it returns."""
    import torch
    from tiny_models import build_decoder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from clfbench.engines.prompts import normalize_answer

    path = build_decoder(tmp_path / "dec", "qwen2")
    train, test = toy(8), toy(6, offset=20)
    with ApiServer(model_path=path) as server:
        gen = method(server, decision="generate", max_tokens=3, concurrency=2, timeout_s=30).fit(train)
        pred, proba = gen.classify(test)
        outputs = dict(server.outputs)
        assert proba is None
        assert gen.inference_info()["input_tokens"] == sum(u[0] for u in server.usage_sent)
        assert gen.inference_info()["output_tokens"] == sum(u[1] for u in server.usage_sent)
        expected = [gen.builder_.parse(outputs[gen.builder_.messages(t, None, [])[-1]["content"]])
                    for t in test.texts]
        assert pred.tolist() == expected  # order kept across concurrent requests

        # Logprobs over the whole (512-token) vocabulary: compare with the model itself.
        lp = method(server, decision="logprobs", top_logprobs=512, max_tokens=1, timeout_s=30)
        lp.fit(train)
        pred, proba = lp.classify(test)
        unmapped = lp.inference_info()["logprob_unmapped"]
        outputs = dict(server.outputs)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    words = [normalize_answer(v) for v in lp.builder_.verbalizers]
    vocab = [normalize_answer(tok.decode([i])) for i in range(len(tok))]
    owner = [[j for j, w in enumerate(words) if v and w.startswith(v)] for v in vocab]
    expected_unmapped = 0
    for i, text in enumerate(test.texts):
        chat = tok.apply_chat_template(lp.builder_.messages(text, None, []), tokenize=False,
                                       add_generation_prompt=True)
        ids = tok(chat, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            p = torch.softmax(model(ids).logits[0, -1].float(), -1).numpy()
        mass = np.zeros(2)
        for t, o in enumerate(owner):
            if len(o) == 1:
                mass[o[0]] += p[t]
        if len(owner[int(p.argmax())]) == 1:  # the greedy answer starts with one label's word
            np.testing.assert_allclose(proba[i], mass / mass.sum(), rtol=1e-4)
            assert pred[i] == int(np.argmax(mass))
        else:  # it does not: the answer is the parsed text, never the top alternatives
            expected_unmapped += 1
            last = lp.builder_.messages(text, None, [])[-1]["content"]
            assert pred[i] == lp.builder_.parse(outputs[last])
        # the same position scored from the full vocabulary, had the model begun with a label
        label_token = next(t for t, o in enumerate(owner) if len(o) == 1)
        top = [(tok.decode([t]), float(np.log(p[t]))) for t in range(len(p))]
        scores = lp.label_scores([{"token": tok.decode([label_token]),
                                   "logprob": top[label_token][1], "top": top}])
        np.testing.assert_allclose(scores, mass / mass.sum(), rtol=1e-4)
    assert unmapped == expected_unmapped


def _run_cli(datasets_dir: Path, url: str, out: Path, *extra: str) -> int:
    from clfbench.cli import main

    return main(["run", "--task", "sst2", "--data-dir", str(datasets_dir / "sst2"),
                 "--method", "llm-api", "--model", "test-model", "--param", f"base_url={url}",
                 "--param", "api_key_env=CLFBENCH_TEST_API_KEY", "--param", "timeout_s=2",
                 "--param", "backoff_base_s=0.01", "--max-eval", "20", "--latency-examples", "5",
                 "--out", str(out), "-q", *extra])


def _run_folder(out: Path) -> Path:
    return next(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_cli_run_end_to_end_and_the_key_is_never_written(datasets_dir, tmp_path, monkeypatch,
                                                         capfd, caplog):
    secret = "sk-SENTINEL-e2e-31a7c0ffee"
    monkeypatch.setenv("CLFBENCH_TEST_API_KEY", secret)
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "runs"
    with ApiServer(RULE) as server:
        server.script.extend(["429", "500"])  # the probe is retried twice
        assert _run_cli(datasets_dir, server.url, out) == 0
    run = _run_folder(out)
    metrics = json.loads((run / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    info = metrics["inference_info"]
    # A remote method gets no throughput warm-up pass and one latency warm-up request:
    # probe (1) + reported pass (20) + latency warm-up (1) + latency (5)
    assert info["requests"] == 27 and info["retries"] == 2 and info["http_attempts"] == 29
    assert info["input_tokens"] == sum(u[0] for u in server.usage_sent)
    assert info["output_tokens"] == sum(u[1] for u in server.usage_sent)
    assert len(rows) == 20 and metrics["n_examples"] == 20
    assert [r["pred"] for r in rows] == [RULE([{"content": r["text"]}])["text"] for r in rows]
    assert metrics["ece"] is not None and info["decision"] == "logprobs"
    assert all(q["headers"].get("Authorization") == f"Bearer {secret}" for q in server.requests)
    # The key appears in no file of the results folder, and in no output or log.
    for f in out.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err + caplog.text


def test_cli_budget_stop_keeps_partial_results(datasets_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CLFBENCH_TEST_API_KEY", "sk-test")
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  test-model: {input: 10.0, output: 10.0}\n")
    out = tmp_path / "runs"
    with ApiServer(RULE) as server:
        # A run without a budget gives the (deterministic) token counts of each request ...
        assert _run_cli(datasets_dir, server.url, tmp_path / "free", "--param", "concurrency=1") == 0
        usage = list(server.usage_sent)
    # ... so that this budget pays for the probe and 10 requests of the reported pass at most:
    # the pass is cut part-way (worst-case estimates stop it a little earlier).
    budget = sum(10.0 * (a + b) / 1e6 for a, b in usage[:11])
    with ApiServer(RULE) as server:
        rc = _run_cli(datasets_dir, server.url, out, "--param", f"prices={prices}",
                      "--param", f"budget_usd={budget}", "--param", "concurrency=1")
        assert rc == 0
    run = _run_folder(out)
    metrics = json.loads((run / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    info = metrics["inference_info"]
    skipped = info["reported_pass"]["not_sent_budget"]
    assert info["budget_exhausted"] is True and 0 < skipped < 20
    assert [r["pred"] is None for r in rows] == [False] * (20 - skipped) + [True] * skipped
    assert metrics["invalid_rate"] == pytest.approx(skipped / 20)
    assert info["single_example_calls"]["not_sent_budget"] == 6  # latency calls not sent either
    assert info["latency_calls_not_sent"] == 6 and "budget_note" in info
    assert metrics["latency_ms_p50"] is None and metrics["throughput_sps"] is None
    assert len(server.requests) == info["requests"] - info["not_sent_budget"]
    spent = sum(10.0 * (a + b) / 1e6 for a, b in server.usage_sent)
    assert info["usd_spent"] == pytest.approx(spent) and spent <= budget
    assert info["usd_per_1m_requests"] == pytest.approx(
        10.0 * info["mean_input_tokens"] + 10.0 * info["mean_output_tokens"])


def test_predict_texts_without_labels():
    with ApiServer(RULE) as server:
        m = method(server).fit(toy(4))
        assert m.predict(Texts(["a great day", "a dull day"])).tolist() == [1, 0]


def test_cli_generate_mode_reports_no_calibration(datasets_dir, tmp_path):
    out = tmp_path / "runs"
    with ApiServer(RULE, logprobs=False, retry_after="0") as server:
        assert _run_cli(datasets_dir, server.url, out, "--decision", "generate") == 0
    run = _run_folder(out)
    metrics = json.loads((run / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert metrics["ece"] is None and metrics["brier"] is None and metrics["log_loss"] is None
    assert all("probabilities" not in r for r in rows)
    assert metrics["fit_info"]["decision"] == "generate" and metrics["fit_info"]["probe"] == {}
    assert [r["pred"] for r in rows] == [RULE([{"content": r["text"]}])["text"] for r in rows]
    config = json.loads((run / "config.json").read_text())
    assert config["method_params"]["decision"] == "generate"


def half_chatty(messages: list[dict]) -> dict:
    """Positive: "positive", no token of "negative" among the top logprobs. Negative: "The
    answer is negative" (first token "The": parsed from the text)."""
    label = RULE(messages)["text"]
    if label == "negative":
        return {"text": "The answer is negative", "top_logprobs": [("The", math.log(0.97)),
                                                                    ("Positive", math.log(0.03))]}
    return {"text": "positive", "top_logprobs": [("positive", math.log(0.9)), ("The", math.log(0.1))]}


def test_cli_calibration_only_over_real_probabilities_and_absent_labels_floored(datasets_dir, tmp_path):
    """Answers parsed from text used to publish one-hot "probabilities" (ECE, Brier and log
    loss of a parsed label); a label absent from the top logprobs got probability 0 (27.6 nats
    of log loss each time it was the gold label)."""
    from clfbench.methods.llm_api import ABSENT_LABEL_FLOOR

    out = tmp_path / "runs"
    with ApiServer(half_chatty) as server:
        assert _run_cli(datasets_dir, server.url, out) == 0
    run = _run_folder(out)
    metrics = json.loads((run / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    info = metrics["inference_info"]
    assert [r["pred"] for r in rows] == [RULE([{"content": r["text"]}])["text"] for r in rows]
    positive = [r for r in rows if r["pred"] == "positive"]
    assert 0 < len(positive) < 20
    assert all("probabilities" not in r for r in rows if r["pred"] == "negative")
    for r in positive:  # "negative" was not among the top: the floor, stated in inference_info
        assert r["probabilities"] == {"negative": ABSENT_LABEL_FLOOR, "positive": 1 - ABSENT_LABEL_FLOOR}
    assert info["absent_label_floor"] == ABSENT_LABEL_FLOOR
    assert info["reported_pass"]["label_floored"] == len(positive)
    assert info["reported_pass"]["logprob_unmapped"] == 20 - len(positive)
    assert metrics["calibration_examples"] == len(positive)
    gold_positive = [r["gold"] == "positive" for r in positive]
    expected = -np.mean([math.log(1 - ABSENT_LABEL_FLOOR) if g else math.log(ABSENT_LABEL_FLOOR)
                         for g in gold_positive])
    assert metrics["log_loss"] == pytest.approx(expected, rel=1e-4)
    assert metrics["log_loss"] <= -math.log(ABSENT_LABEL_FLOOR)


def test_cli_run_whose_requests_all_fail_is_not_a_result_and_is_retried(datasets_dir, tmp_path):
    from clfbench.results.store import Store

    out = tmp_path / "runs"
    with ApiServer(RULE) as server:
        server.script.extend(["ok"] + ["500"] * 200)  # the probe answers, then nothing does
        assert _run_cli(datasets_dir, server.url, out, "--param", "max_retries=0") == 1  # not done
    assert Store(out).runs() == [] and not any(p.name.startswith("sst2") for p in out.iterdir())
    [run] = (out / ".incomplete").iterdir()
    info = json.loads((run / "metrics.json").read_text())["inference_info"]
    assert info["incomplete"].startswith("26 of 27 API requests failed")
    with ApiServer(RULE) as server:  # a re-run retries it, and this time it is a result
        assert _run_cli(datasets_dir, server.url, out, "--param", "max_retries=0") == 0
        assert len(server.requests) == 27
    [row] = Store(out).runs()
    assert row["n_examples"] == 20 and "incomplete" not in row["inference_info"]


def _saved_run(tmp_path: Path, server: ApiServer, **kw) -> Path:
    """A run folder holding a saved llm-api model fitted against `server`."""
    run = tmp_path / "run"
    method(server, **kw).fit(toy(10)).save(run / "model")
    return run


def test_a_tampered_run_cannot_send_a_secret_to_its_url(tmp_path, monkeypatch, capsys):
    """A method.json edited to name another variable and a listener: predict is refused in one
    line (exit 2) naming the stored values and the flags, and the listener gets nothing; the
    user's own --base-url/--api-key-env, or --trust-run-endpoint, make it work."""
    from clfbench.cli import main

    secret = "SENTINEL-aws-secret-7f3e"
    monkeypatch.setenv("SOME_SECRET", secret)
    monkeypatch.setenv("CLFBENCH_TEST_KEY", "sk-user-key")
    with ApiServer(RULE) as server:
        run = _saved_run(tmp_path, server, api_key_env="CLFBENCH_TEST_KEY")
        meta_file = run / "model" / "method.json"
        meta = json.loads(meta_file.read_text())
        meta["params"]["api_key_env"] = "SOME_SECRET"
        meta_file.write_text(json.dumps(meta))
        n_fit = len(server.requests)
        capsys.readouterr()
        for extra in ([], ["--base-url", server.url]):  # the stored variable still needs a word
            assert main(["predict", "--run", str(run), "--text", "a great day", *extra]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and "api_key_env='SOME_SECRET'" in err
            assert "--trust-run-endpoint" in err and "--api-key-env" in err
        assert len(server.requests) == n_fit  # nothing was sent
        # A library load is held the same way until the endpoint is confirmed.
        loaded = Classifier.load(run / "model")
        with pytest.raises(ClfbenchError, match="does not choose"):
            loaded.classify(Texts(["a great day"]))
        assert len(server.requests) == n_fit
        # The user's own variable: the user's key goes, not the secret.
        assert main(["predict", "--run", str(run), "--text", "a great day",
                     "--base-url", server.url, "--api-key-env", "CLFBENCH_TEST_KEY"]) == 0
        assert server.requests[-1]["headers"]["Authorization"] == "Bearer sk-user-key"
        assert json.loads(capsys.readouterr().out)["label"] == "positive"
        # Trusting the run: its stored values are used (the user said so).
        assert main(["predict", "--run", str(run), "--text", "a great day", "--trust-run-endpoint"]) == 0
        assert server.requests[-1]["headers"]["Authorization"] == f"Bearer {secret}"
    out = capsys.readouterr()
    assert secret not in out.out + out.err


def test_a_stored_url_needs_the_users_word_even_with_the_default_variable(tmp_path, monkeypatch, capsys):
    from clfbench.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-SENTINEL-openai")
    with ApiServer(RULE) as server:
        run = _saved_run(tmp_path, server, api_key_env="OPENAI_API_KEY")
        n_fit = len(server.requests)
        capsys.readouterr()
        assert main(["predict", "--run", str(run), "--text", "a great day"]) == 2
        err = capsys.readouterr().err
        assert f"base_url={server.url!r}" in err and "api_key_env" not in err.split("names")[1].split(";")[0]
        assert len(server.requests) == n_fit
        texts = tmp_path / "texts.txt"
        texts.write_text("a great day\na dull day\n")
        assert main(["predict", "--run", str(run), "--file", str(texts), "--out", str(tmp_path / "p.parquet")]) == 2
        assert len(server.requests) == n_fit
        assert main(["predict", "--run", str(run), "--file", str(texts), "--out", str(tmp_path / "p.parquet"),
                     "--base-url", server.url]) == 0
        assert len(server.requests) == n_fit + 2


def test_cli_run_of_streams_without_done_is_incomplete(datasets_dir, tmp_path):
    from clfbench.results.store import Store

    out = tmp_path / "runs"
    with ApiServer(RULE, done=False) as server:
        assert _run_cli(datasets_dir, server.url, out, "--param", "max_retries=0",
                        "--param", "decision=logprobs") == 1
    assert Store(out).runs() == []
    [run] = (out / ".incomplete").iterdir()
    info = json.loads((run / "metrics.json").read_text())["inference_info"]
    assert info["incomplete"].startswith("26 of 26 API requests failed")
    assert info["errors_by_kind"] == {"truncated": 26} and info["succeeded"] == 0


def test_cli_run_that_sends_no_request_is_incomplete(datasets_dir, tmp_path, monkeypatch):
    """max_tokens=100000 against a small budget: nothing is sent, so no accuracy 0.0 is indexed."""
    from clfbench.results.store import Store

    monkeypatch.setenv("CLFBENCH_TEST_API_KEY", "sk-test")
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  test-model: {input: 10.0, output: 10.0}\n")
    out = tmp_path / "runs"
    with ApiServer(RULE) as server:
        assert _run_cli(datasets_dir, server.url, out, "--param", f"prices={prices}",
                        "--param", "budget_usd=0.5", "--param", "decision=generate",
                        "--param", "max_tokens=100000") == 1
        assert server.requests == []
    assert Store(out).runs() == []
    [run] = (out / ".incomplete").iterdir()
    info = json.loads((run / "metrics.json").read_text())["inference_info"]
    assert info["incomplete"].startswith("no request of the reported pass was sent (20 of 20")
    assert "max_tokens=100000" in info["incomplete"]


def test_budget_bounds_a_configuration_across_re_runs(datasets_dir, tmp_path, monkeypatch, capsys):
    """An incomplete run's spend is kept with it; the re-run of the same configuration may
    spend only what is left of budget_usd (and says so), so both together stay within it."""
    from clfbench.results.store import Store

    monkeypatch.setenv("CLFBENCH_TEST_API_KEY", "sk-test")
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  test-model: {input: 10.0, output: 10.0}\n")
    out = tmp_path / "runs"
    budget = 0.06  # the first run spends about $0.056 (worst cases of maybe-billed replies)
    args = ("--param", f"prices={prices}", "--param", f"budget_usd={budget}", "--param", "max_retries=0",
            "--param", "concurrency=1")
    with ApiServer(RULE) as server:  # the same endpoint (base_url is part of the configuration)
        server.script.extend(["ok"] + ["malformed"] * 200)  # the probe answers, then broken replies
        assert _run_cli(datasets_dir, server.url, out, *args) == 1
        [kept] = (out / ".incomplete").iterdir()
        first = json.loads((kept / "metrics.json").read_text())["inference_info"]
        spent1 = first["usd_spent"] + first["usd_uncertain"]
        assert 0 < spent1 <= budget and "incomplete" in first
        assert json.loads((kept / "spend.json").read_text())["usd"] == pytest.approx(spent1)
        capsys.readouterr()
        server.script.clear()  # the endpoint works again
        assert _run_cli(datasets_dir, server.url, out, *args) == 0
    said = capsys.readouterr()
    assert f"spent ${spent1:.4f}" in said.out + said.err
    [row] = Store(out).runs()
    info = row["inference_info"]
    assert info["usd_spent_before"] == pytest.approx(spent1) and info["budget_usd"] == budget
    assert info["budget_usd_this_run"] == pytest.approx(budget - spent1)
    assert spent1 + info["usd_spent"] + info["usd_uncertain"] <= budget + 1e-9
    assert info["budget_exhausted"] is True  # what was left did not pay for the whole re-run
