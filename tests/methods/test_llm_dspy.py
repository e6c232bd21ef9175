"""`llm-dspy` against the loopback OpenAI-compatible server: DSPy's optimiser and predictions go
through clfbench's client (budget, call cap, token accounting), never see the reported split,
and the saved program reloads and predicts the same."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("httpx")  # the `api` extra
pytest.importorskip("dspy")  # the `dspy` extra

from api_server import ApiServer
from api_server import dspy_reply as _dspy_reply

from clfbench.data.texts import LabeledTexts
from clfbench.errors import ClfbenchError
from clfbench.methods.base import INVALID, Classifier, make_method

PROMPT = {
    "instruction": "Classify the sentiment of the sentence as negative or positive.",
    "verbalizers": {"negative": "negative", "positive": "positive"},
    "text_name": "sentence",
    "label_descriptions": {"negative": "the writer disliked it", "positive": "the writer liked it"},
}
FAST = {"timeout_s": 5.0, "backoff_base_s": 0.01, "backoff_max_s": 0.05}


def toy(n: int, offset: int = 0, pairs: bool = False) -> LabeledTexts:
    texts, labels = [], []
    for i in range(offset, offset + n):
        good = i % 2 == 0
        texts.append(f"the film number {i} was {'great' if good else 'dull'}")
        labels.append(int(good))
    pair = [f"claim number {i}" for i in range(offset, offset + n)] if pairs else None
    return LabeledTexts(texts, pair, np.array(labels), ["negative", "positive"])


dspy_reply = _dspy_reply(lambda query: "positive" if "great" in query.lower() else "negative")


def method(server: ApiServer, **kw):
    params = {"model": "test-model", "base_url": server.url, "prompt": PROMPT,
              "api_key_env": "CLFBENCH_TEST_NO_KEY", "max_demos": 2, "proposal_max_tokens": 32,
              **FAST, **kw}
    return make_method("llm-dspy", **params)


def _sent(requests: list[dict]) -> str:
    return "\n".join(json.dumps(r["body"]["messages"]) for r in requests)


@pytest.mark.parametrize("optimizer,trials", [("bootstrap", None), ("bootstrap", 3), ("mipro", 3)])
def test_optimiser_learns_on_train_selects_on_validation_never_sees_test(optimizer, trials, monkeypatch):
    train, val, test = toy(16), toy(6, offset=100), toy(8, offset=200)
    monkeypatch.setitem(sys.modules, "litellm", None)  # DSPy may not send through LiteLLM
    with ApiServer(dspy_reply) as server:
        m = method(server, optimizer=optimizer, trials=trials).fit(train, val)
        n_fit = len(server.requests)
        pred, proba = m.classify(test)
        info = m.inference_info()
        fit_requests, all_requests = list(server.requests[:n_fit]), list(server.requests)
        usage = list(server.usage_sent)
    fitted = _sent(fit_requests)
    assert n_fit > 0 and not any(t in fitted for t in test.texts)  # the reported split: never
    searched = optimizer == "mipro" or (trials or 1) > 1
    assert any(t in fitted for t in val.texts) == searched  # validation only to choose
    assert pred.tolist() == test.labels.tolist() and proba is None
    # every call is counted: the optimisation's, then one per reported example
    opt = info["optimisation"]
    assert opt["calls"] == n_fit == m.fit_info_["optimisation"]["calls"]
    assert info["requests"] == len(all_requests) == n_fit + len(test)
    assert info["input_tokens"] == sum(u[0] for u in usage) and info["output_tokens"] == sum(u[1] for u in usage)
    assert opt["input_tokens"] == sum(u[0] for u in usage[:n_fit])
    if optimizer == "mipro":
        assert opt["proposer_calls"] > 0 and len(m.fit_info_["search"]["validation_scores"]) > 0
    # the optimised program: demonstrations from train only, the descriptions in the label field
    program = m.fit_info_["program"]
    assert len(program["demos"]) <= 2 and (optimizer == "mipro" or program["demos"])  # mipro may keep 0
    assert all(d["sentence"] in train.texts for d in program["demos"])
    assert "positive: the writer liked it" in program["label_field"]
    assert m.fit_info_["default_prompt"]["instruction"] == PROMPT["instruction"]
    # the prompt of a reported example holds the demonstrations and the descriptions
    query = all_requests[-1]["body"]["messages"]
    assert "the writer disliked it" in query[0]["content"]
    assert sum(1 for x in query if x["role"] == "assistant") == len(program["demos"])


def test_descriptions_off_leave_them_out():
    with ApiServer(dspy_reply) as server:
        m = method(server, descriptions="off").fit(toy(8), toy(4, offset=50))
        m.classify(toy(2, offset=90))
        sent = _sent(server.requests)
    assert "the writer liked it" not in sent and m.fit_info_["program"]["label_field"] == "the answer"
    assert m.fit_info_["default_prompt"]["prompt"]["descriptions"] == "off"


def test_max_calls_caps_the_optimisation_and_says_so():
    with ApiServer(dspy_reply) as server:
        m = method(server, max_demos=4, max_calls=3)
        with pytest.raises(ClfbenchError, match=r"max_calls=3 reached after 3 calls"):
            m.fit(toy(16), toy(4, offset=50))
        assert len(server.requests) == 3  # nothing beyond the cap was sent


def test_budget_runs_out_during_optimisation(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  test-model: {input: 1.0, output: 1.0}\n")
    with ApiServer(dspy_reply) as server:
        m = method(server, prices=str(prices), budget_usd=0.004, max_demos=16, concurrency=1)
        with pytest.raises(ClfbenchError, match=r"budget_usd=0.004 ran out after \d+ calls") as err:
            m.fit(toy(40), toy(4, offset=50))
        assert f"after {len(server.requests)} calls" in str(err.value)  # the calls really made
        spent = sum(1.0 * (a + b) / 1e6 for a, b in server.usage_sent)
    assert 0 < len(server.requests) < 16 and spent <= 0.004


def test_pair_tasks_give_both_texts_to_every_example():
    train, test = toy(8, pairs=True), toy(2, offset=60, pairs=True)
    prompt = {**PROMPT, "text_name": "review", "pair_name": "claim"}
    with ApiServer(dspy_reply) as server:
        m = method(server, prompt=prompt).fit(train, toy(4, offset=40, pairs=True))
        m.classify(test)
        queries = [r["body"]["messages"][-1]["content"] for r in server.requests[-2:]]
    demos = m.fit_info_["program"]["demos"]
    assert demos and all(set(d) == {"review", "claim", "label"} for d in demos)
    for d in demos:
        i = train.texts.index(d["review"])
        assert d["claim"] == train.pairs[i]  # the pair of the same example, not another's
    for t, p in zip(test.texts, test.pairs):  # each query with its own pair
        assert any(t in q and p in q for q in queries)


def test_bad_parameters_and_missing_extra_are_clear_errors(monkeypatch):
    with ApiServer(dspy_reply) as server:
        with pytest.raises(ClfbenchError, match="optimizer='best'"):
            method(server, optimizer="best").fit(toy(4))
        with pytest.raises(ClfbenchError, match="max_demos=-1"):
            method(server, max_demos=-1).fit(toy(4))
        monkeypatch.setitem(sys.modules, "dspy", None)
        with pytest.raises(ClfbenchError, match=r'pip install "clfbench\[dspy\]"'):
            method(server).fit(toy(4))
        assert server.requests == []
    with pytest.raises(ClfbenchError, match="unknown parameter"):
        make_method("llm-dspy", model="x", shots=3)


def test_saved_program_reloads_and_sends_the_same_prompts(tmp_path):
    test = toy(6, offset=300)
    with ApiServer(dspy_reply) as server:
        m = method(server).fit(toy(12), toy(4, offset=50))
        pred, _ = m.classify(test)
        first = [r["body"]["messages"] for r in server.requests[-len(test):]]
        m.save(tmp_path / "model")
        loaded = Classifier.load(tmp_path / "model")
        loaded.use_endpoint(trust=True)
        pred2, _ = loaded.classify(test)
        second = [r["body"]["messages"] for r in server.requests[-len(test):]]
    saved = json.loads((tmp_path / "model" / "program.json").read_text())
    assert [d["sentence"] for d in saved["predict"]["demos"]] == \
        [d["sentence"] for d in m.fit_info_["program"]["demos"]]
    assert pred2.tolist() == pred.tolist() == test.labels.tolist()
    key = lambda msgs: msgs[-1]["content"]  # noqa: E731 - requests run concurrently: match by query
    assert sorted(second, key=key) == sorted(first, key=key)


@pytest.mark.slow
def test_tiny_local_model_outputs_that_match_no_label_are_invalid(tmp_path):
    """A real (tiny, random) causal LM behind the server: its replies are rarely DSPy fields or
    labels; they are INVALID, every call is counted, and the reloaded program predicts the same."""
    from tiny_models import build_decoder

    path = build_decoder(tmp_path / "dec", "qwen2")
    train, val, test = toy(8), toy(4, offset=40), toy(6, offset=80)
    with ApiServer(model_path=path) as server:
        m = method(server, max_tokens=6, concurrency=2, timeout_s=30).fit(train, val)
        n_fit = len(server.requests)
        pred, _ = m.classify(test)
        info = m.inference_info()
        m.save(tmp_path / "model")
        loaded = Classifier.load(tmp_path / "model")
        loaded.use_endpoint(trust=True)
        pred2, _ = loaded.classify(test)
        usage = list(server.usage_sent)
    outputs = [text for _, text in server.outputs[n_fit:n_fit + len(test)]]
    assert set(pred.tolist()) <= {INVALID, 0, 1}
    assert info["invalid_answers"] == int((pred == INVALID).sum())
    assert pred2.tolist() == pred.tolist()
    assert info["optimisation"]["calls"] == n_fit and len(outputs) == len(test)
    mine = usage[: n_fit + len(test)]  # this method's calls (the reloaded one has its own client)
    assert info["input_tokens"] == sum(u[0] for u in mine) and info["output_tokens"] == sum(u[1] for u in mine)


def _ticket_label(query: str) -> str:
    q = query.lower()
    for word, label in (("refund", "billing"), ("return", "returns"), ("password", "account"),
                        ("parcel", "delivery"), ("error", "technical")):
        if word in q:
            return label
    return "delivery"


def test_cli_run_report_and_predict_show_the_optimised_program(tmp_path, capsys):
    """`clfbench run` with llm-dspy, then `report` (the prompt table) and `predict` (the saved
    program reloaded): the optimisation counted in the run's totals and its time."""
    pytest.importorskip("matplotlib")
    from pathlib import Path

    from clfbench.cli import main

    data = Path(__file__).resolve().parents[2] / "src" / "clfbench" / "demo_data"
    out = tmp_path / "runs"
    with ApiServer(_dspy_reply(_ticket_label)) as server:
        code = main(["run", "--train", str(data / "train.csv"), "--validation", str(data / "validation.csv"),
                     "--test", str(data / "test.csv"), "--method", "llm-dspy", "--model", "test-model",
                     "--param", f"base_url={server.url}", "--param", "max_demos=3", "--max-train", "40",
                     "--max-eval", "10", "--latency-examples", "2", "--save-model", "--out", str(out), "-q"])
        assert code == 0
        n_run = len(server.requests)
        run = next(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
        capsys.readouterr()
        assert main(["predict", "--run", str(run), "--text", "I want a refund please",
                     "--base-url", server.url]) == 0
        printed = capsys.readouterr().out
        assert len(server.requests) == n_run + 1 and "billing" in printed
    metrics = json.loads((run / "metrics.json").read_text())
    info, fit = metrics["inference_info"], metrics["fit_info"]
    # optimisation + 10 reported + 1 latency warm-up + 2 latency calls: every one counted
    assert info["requests"] == n_run == info["optimisation"]["calls"] + 13
    assert metrics["train_seconds"] > 0 and fit["program"]["demos"]
    assert (run / "model" / "program.json").is_file()
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "prompt_table.md").read_text()
    assert fit["default_prompt"]["instruction"] in table and "bootstrap" in table
    assert f"{info['optimisation']['calls']} calls" in table
    assert "Optimised prompts (1 runs)" in (tmp_path / "report" / "report.html").read_text()


def test_budget_stop_while_predicting_leaves_the_rest_invalid(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  test-model: {input: 1.0, output: 1.0}\n")
    test = toy(8, offset=400)
    with ApiServer(dspy_reply) as server:
        m = method(server, prices=str(prices), budget_usd=1.0, concurrency=1).fit(toy(8), toy(4, offset=50))
        from clfbench.engines.api_client import prompt_token_bound

        m.classify(toy(1, offset=500))  # one query's prompt: its worst case bounds the others'
        worst = (prompt_token_bound(server.requests[-1]["body"]["messages"]) + 32) / 1e6
        budget = m._client().budget
        budget.limit_usd = budget.spent_usd + 1.3 * worst  # worst cases settle lower: a few more fit
        n_fit = len(server.requests)
        pred, _ = m.classify(test)
        sent = len(server.requests) - n_fit
        info = m.inference_info()
    assert 0 < sent < len(test) and info["budget_exhausted"]
    assert pred[:sent].tolist() == test.labels[:sent].tolist() and (pred[sent:] == INVALID).all()
    assert info["reported_pass"]["not_sent_budget"] == len(test) - sent
    assert info["optimisation"]["calls"] == n_fit - 1


def test_a_failed_request_is_invalid_and_makes_the_run_incomplete():
    test = toy(3, offset=600)
    with ApiServer(dspy_reply) as server:
        m = method(server, concurrency=1, max_retries=0).fit(toy(8), toy(4, offset=50))
        server.script.append("500")  # the first reported example's only attempt fails
        pred, _ = m.classify(test)
        info = m.inference_info()
    assert pred.tolist() == [INVALID, *test.labels[1:].tolist()]
    assert info["reported_pass"]["failed"] == 1 and info["failures"] == 1
    assert info["incomplete"].startswith("1 of ")


@pytest.mark.parametrize("name", ["llm-api", "llm-dspy"])
def test_saved_model_reloads_without_its_descriptions_file(tmp_path, name):
    from clfbench.methods.base import make_method as make

    descriptions = tmp_path / "d.yaml"
    descriptions.write_text("positive: FILEDESC liked it\n")
    params = {"model": "test-model", "api_key_env": "CLFBENCH_TEST_NO_KEY", "prompt": PROMPT,
              "label_descriptions": str(descriptions), **FAST}
    if name == "llm-dspy":
        params["max_demos"] = 2
    test = toy(2, offset=700)
    with ApiServer(dspy_reply) as server:
        m = make(name, base_url=server.url, **params).fit(toy(8), toy(4, offset=50))
        m.classify(test)
        first = sorted(r["body"]["messages"][0]["content"] for r in server.requests[-2:])
        m.save(tmp_path / "model")
        descriptions.unlink()
        loaded = Classifier.load(tmp_path / "model")
        loaded.use_endpoint(trust=True)
        loaded.classify(test)
        second = sorted(r["body"]["messages"][0]["content"] for r in server.requests[-2:])
    assert "FILEDESC" in first[0] and second == first


def test_verbose_optimisation_keeps_stdout_clean_and_logs_whole_lines(monkeypatch, capsys):
    """DSPy printed its search summaries to stdout (the results table's) and its tqdm bars
    to stderr; in a log (stderr not a terminal) only its whole lines are shown, on stderr."""
    monkeypatch.setitem(sys.modules, "litellm", None)
    with ApiServer(dspy_reply) as server:
        m = method(server, optimizer="bootstrap", trials=3)
        m.verbose = True
        m.fit(toy(16), toy(6, offset=100))
    out, err = capsys.readouterr()
    assert out == ""
    assert "\r" not in err and "candidate programs found" in err
