"""`llm-api`: zero- or few-shot classification by a chat model behind any OpenAI-compatible
chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp server, gateways).

Prompts, few-shot examples and answer parsing come from `clfbench.engines.prompts` (the same words
every LLM method sees). Labels are scored from `logprobs`: the top tokens at the first
answer position are mapped to the verbalizers (a token counts for a label when it is a
prefix of exactly one normalised answer word), summed per label and renormalised. When the
token the model actually produced there starts no label ("The answer is negative"), its
alternatives say nothing about the answer: the generated text is parsed instead, and counted
in `inference_info()["logprob_unmapped"]`. That is
done only when every label's answer has its own first word (`label_scoring`, recorded in
`inference_info`): where labels share one ("credit card" / "credit reporting") the first token
cannot tell them apart, so the answer is generated as without logprobs (generation's
`max_tokens`, 16 by default, not the logprob budget of 8 that cut multi-word labels) and
parsed. Servers that return no logprobs get generation + parsing. In both cases the method
reports no probabilities (`has_probabilities` is False, `classify` returns `proba=None`):
a parsed answer is no distribution, and one-hot vectors would publish meaningless ECE, Brier
score and log loss.
`decision="auto"` sends one probe request in `fit` to find out which applies.
With first-token logprobs, an answer parsed from its text has no probabilities either: its
row is outside `probability_rows()`, so it is left out of ECE, Brier score and log loss
(`calibration_examples` says how many rows they cover) and its prediction row has no
`probabilities`. A label with no token among the returned top logprobs gets
`ABSENT_LABEL_FLOOR` (1e-4), not 0 (counted in `label_floored`).

Money: every request of the run counts against `budget_usd`, including the auto probe and
the requests that evaluation makes to time latency. The method is `remote`, so evaluation
sends the whole test split once (predictions and throughput, no warm-up pass) and then one
warm-up request and `latency_examples` single examples. Once a request's
worst case does not fit, nothing more is sent: the remaining examples come back INVALID,
and `inference_info()` says `budget_exhausted` and how many were not classified.

Failed requests: a request that still fails after its retries (5xx, timeouts, broken or
malformed replies) is not an answer the model gave, so a run with any such request is not a
result. `inference_info()` then carries `incomplete` ("N of M API requests failed ..."),
and the store keeps the run in `.incomplete/` without indexing it: a re-run retries it.
`budget_usd` bounds a configuration across re-runs: what an incomplete run spent is kept
with it, and a re-run may spend only what is left (the runner says so; `usd_spent_before`).
A request whose retry no longer fits in the budget is a budget stop, not a failure.
Only a budget stop (requests never sent) leaves a complete run with unsent examples invalid,
and only once some example was answered: a reported pass with no request sent is incomplete
too. A streamed reply that closes before `data: [DONE]` is a failed attempt (retried), never
an answer.

The API key is read from the environment variable named by `api_key_env` when requests
are made; it is never a parameter and is never written anywhere. A saved model does not choose
where a key goes: when it is loaded, a stored `base_url` or `api_key_env` other than the
defaults (`DEFAULT_BASE_URL`, `DEFAULT_API_KEY_ENV`) is used only once the user confirms it
(`use_endpoint`: `clfbench predict --base-url URL`, `--api-key-env NAME` or
`--trust-run-endpoint`); before that the client is refused, so no request is sent and no
variable is read (an edited method.json could otherwise send any secret to any URL). A key that cannot be sent
(whitespace such as a trailing newline, non-ASCII characters) is an error naming the
variable, before any request.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from annotated_types import Ge, Gt

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.errors import ClfbenchError
from clfbench.methods.base import INVALID, Classifier
from clfbench.methods.params import (
    DESCRIPTIONS,
    LABEL_DESCRIPTIONS,
    MODEL,
    PROMPT,
    SEED,
    TEMPLATE,
    Param,
)
from clfbench.methods.schema import OneOf

log = logging.getLogger(__name__)

DECISIONS = ("auto", "logprobs", "generate")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"

#: The probability given to a label none of whose tokens is among the returned top logprobs
#: (bounds one example's log loss at -ln(1e-4) = 9.2 nats; counted as `label_floored`).
ABSENT_LABEL_FLOOR = 1e-4


class LlmApi(Classifier):
    """An API chat model (OpenAI-compatible endpoint), zero- or few-shot, with a hard USD budget."""

    name = "llm-api"
    requires = ("httpx",)
    needs_training = False
    remote = True
    #: USD that incomplete earlier runs of this configuration spent (set by the runner from the
    #: results folder): this run may spend `budget_usd` less that.
    spent_before_usd: float = 0.0

    # Ranges are declared here; `_check_request` adds, in fit, what they cannot say.
    model: str | None = MODEL.but(None, "the server's model name, e.g. gpt-4o-mini (required; also --model)")
    base_url: str = Param(DEFAULT_BASE_URL, "the OpenAI-compatible endpoint")
    api_key_env: str = Param(DEFAULT_API_KEY_ENV, "environment variable that holds the API key (never "
                                                  "printed or saved)")
    shots: int = Param(0, "few-shot examples from train, balanced over classes; 0 is zero-shot (also --shots)",
                       Ge(0))
    seed: int = SEED.but(help="seed of the few-shot draw (also --seed)")
    concurrency: int = Param(4, "requests in flight at once", Ge(1))
    max_retries: int = Param(5, "retries on 429, 5xx and timeouts, with exponential backoff", Ge(0))
    timeout_s: float = Param(60.0, "seconds before a request is abandoned", Gt(0))
    budget_usd: float | None = Param(None, "hard spending limit: nothing is sent that would exceed it", Ge(0))
    prices: str | None = Param(None, "a price table YAML for models missing from the shipped one")
    decision: str = Param("auto", "auto (logprobs when the server returns them), logprobs or generate",
                          OneOf(DECISIONS))
    max_tokens: int | None = Param(None, "completion token limit per request", Ge(1))
    temperature: float = Param(0.0, "sampling temperature (0: greedy)", Ge(0))
    top_logprobs: int = Param(20, "log-probabilities requested per token (label probabilities)", Ge(1))
    stream: bool = Param(True, "stream responses (measures the time to the first token)")
    backoff_base_s: float = Param(0.5, "first retry delay in seconds (doubled at each retry)", Gt(0))
    backoff_max_s: float = Param(30.0, "longest retry delay in seconds", Gt(0))
    prompt: dict | None = PROMPT
    template: str | None = TEMPLATE
    descriptions: str = DESCRIPTIONS
    label_descriptions: str | None = LABEL_DESCRIPTIONS

    # --- probabilities depend on the decision resolved in fit ------------------------------
    @property  # type: ignore[override]
    def has_probabilities(self) -> bool:
        """True unless labels come from parsing generated text: decision "generate", or labels
        that share a first word (`label_scoring`; both known after `fit`)."""
        if getattr(self, "builder_", None) is None:
            return (getattr(self, "decision_", None) or self.decision) != "generate"
        return self.label_scoring() == "first-token logprobs"

    # --- fit ----------------------------------------------------------------------------------
    def fit(self, train: LabeledTexts, validation: LabeledTexts | None = None) -> LlmApi:
        """Record labels and few-shot examples, check the configuration, resolve `auto`."""
        from clfbench.engines.prompts import sample_shots

        self._check_request()
        self.labels = list(train.label_names)
        self.builder_ = self._builder(self.template)
        idx = sample_shots(train, int(self.shots), int(self.seed))
        self.shots_ = [
            (train.texts[i], None if train.pairs is None else train.pairs[i], int(train.labels[i]))
            for i in idx
        ]
        self._reset_counters()
        client = self._client()
        self.decision_ = self.decision
        probe: dict[str, Any] = {}
        if self.decision == "auto":
            probe = self._probe(client, validation if validation is not None and len(validation) else train)
        self.fit_info_ = {
            "decision": self.decision_,
            "shots": len(self.shots_),
            "shot_ids": [train.ids[i] for i in idx],
            "probe": probe,
            "prompt": self.builder_.describe(),
        }
        return self

    def _builder(self, template: str | None):
        """The PromptBuilder of this run (labels known): template, descriptions on or off."""
        from clfbench.engines.prompts import method_builder

        return method_builder(self, template)

    def _check_request(self) -> None:  # (the descriptions file is read by `_builder`, in fit)
        """What the declared ranges cannot say, before any request: a model to ask, and an
        http(s) endpoint."""
        if not self.model:
            raise ClfbenchError(f"{self.name}: give the API model name with --model (e.g. gpt-4o-mini)")
        if not str(self.base_url).startswith(("http://", "https://")):
            raise ClfbenchError(f"{self.name}: base_url={self.base_url!r}; expected an http(s):// URL")

    def _probe(self, client: Any, data: LabeledTexts) -> dict[str, Any]:
        """One request with logprobs asked for: 'logprobs' if they come back, else 'generate'."""
        from clfbench.engines.api_client import ApiError

        msgs = self.builder_.messages(data.texts[0], None if data.pairs is None else data.pairs[0],
                                      self.shots_)
        rejected = False
        try:
            res = client.chat(msgs, max_tokens=self._max_tokens("logprobs"),
                              temperature=self.temperature, top_logprobs=self.top_logprobs)
        except ApiError as e:
            if e.status not in (400, 422):
                raise
            rejected = True  # the server refuses logprobs: generate without them
            res = client.chat(msgs, max_tokens=self._max_tokens("generate"),
                              temperature=self.temperature)
        if res.status == "not_sent":
            raise ClfbenchError(
                f"llm-api: budget_usd={self.budget_usd} does not cover even one request's worst case"
            )
        if res.status != "ok":
            raise ClfbenchError(
                f"llm-api: {self.base_url} did not answer a probe request after "
                f"{res.attempts} attempt(s): {res.error}"
            )
        self.decision_ = "logprobs" if (res.logprobs and not rejected) else "generate"
        return {"logprobs_returned": bool(res.logprobs), "logprobs_rejected": rejected,
                "attempts": res.attempts}

    # --- the client (built lazily: a loaded model reads the key when it is first used) ---------
    def _client(self) -> Any:
        client = getattr(self, "_client_", None)
        if client is not None:
            return client
        if getattr(self, "endpoint_unconfirmed_", None):
            raise ClfbenchError(self._endpoint_refusal(self.endpoint_unconfirmed_))
        from clfbench.engines.api_client import ChatClient, check_api_key, is_loopback
        from clfbench.engines.pricing import load_prices, price_for, request_cost

        key = os.environ.get(self.api_key_env) or None
        if key is not None:
            check_api_key(key, f"environment variable {self.api_key_env}")
        if key is None and not is_loopback(self.base_url):
            raise ClfbenchError(
                f"{self.name}: environment variable {self.api_key_env} is not set; it must hold the "
                f"API key for {self.base_url} (or set api_key_env to the variable that does)"
            )
        table = load_prices(self.prices)
        self.price_ = price_for(str(self.model), table)
        if self.budget_usd is not None and self.price_ is None:
            where = self.prices or "the shipped price table"
            raise ClfbenchError(
                f"{self.name}: budget_usd is set but model {self.model!r} has no price in {where}; "
                "give one with --param prices=FILE (USD per 1M input/output tokens)"
            )
        model = str(self.model)
        cost_fn = (lambda i, o: request_cost(model, i, o, table)) if self.price_ else None
        self._client_ = ChatClient(
            self.base_url, model, key, timeout_s=self.timeout_s, max_retries=self.max_retries,
            backoff_base_s=self.backoff_base_s, backoff_max_s=self.backoff_max_s,
            concurrency=self.concurrency, seed=self.seed, stream=self.stream, cost_fn=cost_fn,
            budget_usd=self._budget_left(),
        )
        return self._client_

    def _budget_left(self) -> float | None:
        """`budget_usd` less what incomplete earlier runs of this configuration spent."""
        if self.budget_usd is None:
            return None
        return max(0.0, float(self.budget_usd) - float(self.spent_before_usd or 0.0))

    def _max_tokens(self, decision: str) -> int:
        """Enough for the answer word: 8 tokens when scoring logprobs, 16 when parsing text."""
        if self.max_tokens is not None:
            return int(self.max_tokens)
        return 8 if decision == "logprobs" else 16

    # --- prediction -------------------------------------------------------------------------
    def classify(self, X: Texts) -> tuple[np.ndarray, np.ndarray | None]:
        client = self._client()
        pairs = X.pairs if X.pairs is not None else [None] * len(X)
        msgs = [self.builder_.messages(t, p, self.shots_) for t, p in zip(X.texts, pairs)]
        # Labels sharing a first word are parsed from the text: generation's budget, no logprobs.
        use_lp = self.label_scoring() == "first-token logprobs"
        results = client.chat_many(
            msgs, max_tokens=self._max_tokens("logprobs" if use_lp else "generate"),
            temperature=self.temperature,
            top_logprobs=self.top_logprobs if use_lp else None,
        )
        k = len(self.labels)
        pred = np.full(len(X), INVALID, dtype=int)
        proba = np.full((len(X), k), 1.0 / k)
        real = np.zeros(len(X), dtype=bool)  # rows whose probabilities come from logprobs
        counts = dict.fromkeys(("examples", "not_sent_budget", "failed", "invalid", "logprob_unmapped",
                                "label_floored"), 0)
        counts["examples"] = len(X)
        for i, res in enumerate(results):
            if res.status == "not_sent":
                counts["not_sent_budget"] += 1
                continue
            if res.status != "ok":
                counts["failed"] += 1
                continue
            scores = self.label_scores(res.logprobs) if use_lp else None
            if scores is not None:
                proba[i] = scores
                pred[i] = int(scores.argmax())
                real[i] = True
                counts["label_floored"] += int((scores == ABSENT_LABEL_FLOOR).any())
                continue
            counts["logprob_unmapped"] += use_lp
            pred[i] = self.builder_.parse(res.text)
            if pred[i] == INVALID:
                counts["invalid"] += 1
            else:  # the parsed answer, as a degenerate distribution (not a real probability)
                proba[i] = np.eye(k)[pred[i]]
        self.probability_rows_ = real if use_lp else None
        self._record(counts)
        if counts["not_sent_budget"]:
            log.warning(
                "llm-api: budget_usd=%s reached; %d of %d examples in this call were not sent "
                "(they count as invalid)", self.budget_usd, counts["not_sent_budget"], len(X),
            )
        return pred, (proba if use_lp else None)

    def probability_rows(self) -> np.ndarray | None:
        """Rows of the last `classify` whose probabilities come from logprobs; the others
        (parsed text, failed or unsent requests) carry a placeholder that calibration skips."""
        return getattr(self, "probability_rows_", None)

    def predict(self, X: Texts) -> np.ndarray:
        return self.classify(X)[0]

    def predict_proba(self, X: Texts) -> np.ndarray:
        pred, proba = self.classify(X)
        if proba is None:
            raise ClfbenchError(
                "llm-api: this endpoint returned no logprobs, so there are no probabilities "
                "(decision=generate); use predict/classify"
            )
        return proba

    def label_scoring(self) -> str:
        """How labels are scored: "first-token logprobs" when every label's answer starts with
        its own first word (so its own first token), else "generate+parse" (a first token
        shared by labels, e.g. "credit" of "credit card" / "credit reporting", says nothing
        about which of them; dropping it and renormalising the rest gives confident wrong
        labels)."""
        if (getattr(self, "decision_", None) or self.decision) == "generate":
            return "generate+parse"
        from clfbench.engines.prompts import normalize_answer

        firsts = [normalize_answer(v).split()[0] for v in self.builder_.verbalizers]
        shared = any(i != j and b.startswith(a) for i, a in enumerate(firsts) for j, b in enumerate(firsts))
        return "generate+parse" if shared else "first-token logprobs"

    def label_scores(self, positions: list[dict[str, Any]] | None) -> np.ndarray | None:
        """Label probabilities from the top logprobs at the first answer position, or None
        (the caller then parses the generated text).

        None unless first-token logprobs can decide (`label_scoring`). The first position
        whose chosen token is not blank or punctuation is the answer's first token; None when
        that token could start several answers. Each top token adds its probability to the one
        label whose normalised answer word it is a prefix of (ambiguous and unrelated tokens
        add nothing); the sums are renormalised. A label with no token among the top gets
        `ABSENT_LABEL_FLOOR` (the others share the rest in their proportions): the API shows
        only the top tokens, so its probability is unknown but small, and 0 would cost any
        example of that class an unbounded log loss. None when the chosen token itself is not the
        start of exactly one label's answer (the caller parses the text and counts it in
        `logprob_unmapped`), or when no top token maps to a label.
        """
        from clfbench.engines.prompts import normalize_answer

        if not positions or self.label_scoring() != "first-token logprobs":
            return None
        first = next((p for p in positions if normalize_answer(p["token"])), None)
        if first is None:
            return None
        words = [normalize_answer(v) for v in self.builder_.verbalizers]

        def owners(token: str) -> list[int]:
            t = normalize_answer(token)
            return [j for j, w in enumerate(words) if t and w.startswith(t)]

        if len(owners(first["token"])) != 1:
            # The model's answer does not start with a label ("The answer is negative"), or its
            # first token could start several: the alternatives at this position say nothing
            # about the label it gave (a 2% "Positive" there is not a positive answer).
            return None
        mass = np.zeros(len(words))
        for token, logprob in first["top"] or [(first["token"], first["logprob"])]:
            hits = owners(token)
            if len(hits) == 1 and not math.isinf(logprob):
                mass[hits[0]] += math.exp(logprob)
        total = mass.sum()
        if total <= 0:
            return None
        scores = mass / total
        absent = scores <= 0
        if absent.any():  # no token of theirs among the top: a stated floor, not probability 0
            scores = np.where(absent, ABSENT_LABEL_FLOOR, scores * (1 - ABSENT_LABEL_FLOOR * absent.sum()))
        return scores

    # --- accounting -------------------------------------------------------------------------
    def _reset_counters(self) -> None:
        self.passes_: list[dict[str, int]] = []
        self.single_calls_: dict[str, int] = {}

    def _record(self, counts: dict[str, int]) -> None:
        if not hasattr(self, "passes_"):
            self._reset_counters()
        if counts["examples"] == 1:  # latency calls: one aggregate entry
            agg = self.single_calls_
            agg["calls"] = agg.get("calls", 0) + 1
            for key, v in counts.items():
                agg[key] = agg.get(key, 0) + v
        else:
            self.passes_.append(dict(counts))

    def inference_info(self) -> dict[str, Any]:
        """Requests, retries, failures, tokens, TTFT, USD and budget status for the whole run.

        Counts cover every request: the auto probe, evaluation's warm-up, the reported pass
        and the latency calls. `reported_pass` is the largest classify call (the one whose
        predictions evaluation reports)."""
        client = getattr(self, "_client_", None)
        if client is None:
            return {}
        info: dict[str, Any] = {"endpoint": self.base_url, "decision": self.decision_,
                                **client.summary()}
        if self.spent_before_usd:  # earlier incomplete runs: budget_usd covers them too
            info["usd_spent_before"] = float(self.spent_before_usd)
            info["budget_usd_this_run"] = info["budget_usd"]
            info["budget_usd"] = self.budget_usd
        info["label_scoring"] = self.label_scoring()
        passes = list(getattr(self, "passes_", []))
        single = dict(getattr(self, "single_calls_", {}))
        every = passes + ([single] if single else [])
        answered = sum(p["examples"] - p["not_sent_budget"] - p["failed"] for p in every)
        info["examples_classified"] = sum(p["examples"] for p in every)
        info["not_classified"] = sum(p["not_sent_budget"] + p["failed"] for p in every)
        info["invalid_answers"] = sum(p["invalid"] for p in every)
        info["invalid_rate"] = info["invalid_answers"] / answered if answered else None
        info["logprob_unmapped"] = sum(p["logprob_unmapped"] for p in every)
        info["label_floored"] = sum(p.get("label_floored", 0) for p in every)
        info["absent_label_floor"] = ABSENT_LABEL_FLOOR
        # the last of the largest calls (evaluation's warm-up call may be as large, and earlier)
        last_largest = max(range(len(passes)), key=lambda i: (passes[i]["examples"], i), default=None)
        info["reported_pass"] = passes[last_largest] if last_largest is not None else single
        info["single_example_calls"] = single
        # Calls that sent nothing return at once: latency measured on them means nothing.
        info["latency_calls_not_sent"] = single.get("not_sent_budget", 0)
        if info["failures"]:  # not a budget stop: the run is not a result (see the module doc)
            kinds = ", ".join(f"{k} x{n}" for k, n in sorted(info["errors_by_kind"].items()))
            info["incomplete"] = (f"{info['failures']} of {info['requests']} API requests failed "
                                  f"after retries (attempt errors: {kinds})")
        rp = info["reported_pass"] or {}
        if (not info.get("incomplete") and rp.get("examples")
                and rp["not_sent_budget"] + rp["failed"] >= rp["examples"]):
            # nothing answered: a budget that covers no request is not a result (accuracy 0)
            lp_or_gen = "logprobs" if info["label_scoring"] == "first-token logprobs" else "generate"
            info["incomplete"] = (
                f"no request of the reported pass was sent ({rp['not_sent_budget']} of "
                f"{rp['examples']} examples): budget_usd={self.budget_usd} does not cover "
                f"one request's worst case (max_tokens={self._max_tokens(lp_or_gen)})"
                + (f" after ${self.spent_before_usd:.4f} spent by earlier incomplete runs"
                   if self.spent_before_usd else "")
            )
        if info["budget_exhausted"]:
            info["budget_note"] = (
                "budget_usd ran out: examples not sent count as invalid, and the latency and "
                "throughput of calls that sent nothing are not API timings"
            )
        price = getattr(self, "price_", None)
        info["price_usd_per_1m_tokens"] = price
        mean_in, mean_out = info.get("mean_input_tokens"), info.get("mean_output_tokens")
        info["usd_per_1m_requests"] = (
            mean_in * price["input"] + mean_out * price["output"]
            if price and mean_in is not None and mean_out is not None else None
        )
        return info

    # --- persistence ------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Pickling (joblib, process pools) drops the HTTP client, and with it the key."""
        state = dict(self.__dict__)
        state.pop("_client_", None)
        return state

    def _save_state(self, path: Path) -> None:
        """Decision, few-shot examples and the template text (not the key: it is never kept)."""
        (path / "template.yaml").write_text(self.builder_.template_text, encoding="utf-8")
        state = {"decision": self.decision_, "shots": [list(s) for s in self.shots_],
                 "fit_info": self.fit_info_}
        (path / "llm_api.json").write_text(json.dumps(state, ensure_ascii=False, indent=2))

    def saved_params(self) -> dict[str, Any]:
        """A descriptions file's content is saved in `prompt` (the model reloads without it)."""
        from clfbench.engines.prompts import inline_descriptions

        return inline_descriptions(self.get_params(), self.builder_)

    def _hold_saved_endpoint(self) -> None:
        """A loaded model: its stored endpoint and key variable wait for the user's word
        (`use_endpoint`) unless they are the defaults."""
        self.endpoint_unconfirmed_ = {
            k: v for k, v in (("base_url", self.base_url), ("api_key_env", self.api_key_env))
            if v != {"base_url": DEFAULT_BASE_URL, "api_key_env": DEFAULT_API_KEY_ENV}[k]
        }

    def _endpoint_refusal(self, held: dict[str, Any]) -> str:
        stored = ", ".join(f"{k}={v!r}" for k, v in held.items())
        return (f"{self.name}: the saved model names {stored}; a saved folder does not choose "
                "which key is sent where: give --base-url URL and --api-key-env NAME yourself, "
                "or --trust-run-endpoint to use the stored values")

    def use_endpoint(self, base_url: str | None = None, api_key_env: str | None = None,
                     trust: bool = False) -> None:
        """The user's word on a loaded model's endpoint: `base_url` / `api_key_env` replace the
        stored values; `trust` accepts the stored ones. A stored non-default value that is
        neither replaced nor trusted is refused (one ClfbenchError naming it and the flags)."""
        if base_url is not None:
            self.base_url = base_url
        if api_key_env is not None:
            self.api_key_env = api_key_env
        held = {k: v for k, v in (getattr(self, "endpoint_unconfirmed_", None) or {}).items()
                if {"base_url": base_url, "api_key_env": api_key_env}[k] is None}
        if held and not trust:
            raise ClfbenchError(self._endpoint_refusal(held))
        self.endpoint_unconfirmed_ = {}
        self._client_ = None
        if not str(self.base_url).startswith(("http://", "https://")):
            raise ClfbenchError(f"{self.name}: base_url={self.base_url!r}; expected an http(s):// URL")

    def _load_state(self, path: Path) -> None:
        self._hold_saved_endpoint()
        state = json.loads((path / "llm_api.json").read_text())
        self.decision_ = state["decision"]
        self.shots_ = [(t, p, int(y)) for t, p, y in state["shots"]]
        self.fit_info_ = state.get("fit_info", {})
        self.builder_ = self._builder(str(path / "template.yaml"))
        self._reset_counters()
