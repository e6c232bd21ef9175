"""`llm-dspy`: a DSPy-optimised prompt (instruction + few-shot demonstrations) for a chat model
behind any OpenAI-compatible endpoint (the `dspy` extra).

The program is one `dspy.Predict` over a classification signature: the example's field(s)
(two for pair tasks: both are inputs of every demonstration and query) -> `label`, a `Literal`
of the task's answer words; the labels' one-line descriptions, when given and shown
(`descriptions="auto"` or `"on"`), are the output field's description (so MIPROv2's instruction rewrites keep
them). It starts from the task's own instruction (the one every LLM method sees).

Optimisation (`fit`): the optimiser learns from the training split only and scores candidate
programs on the validation split only; the reported split never reaches it.
- `optimizer="bootstrap"`: DSPy `BootstrapFewShot` (demonstrations the model itself gets right
  on training examples, plus labelled ones up to `max_demos`); with `trials=N > 1`,
  `BootstrapFewShotWithRandomSearch` bootstraps N candidate demo sets (the first is plain
  BootstrapFewShot) and keeps the best on validation.
- `optimizer="mipro"`: `MIPROv2` proposes instructions (grounded in training examples) and demo
  sets, and searches `trials` combinations on validation (Optuna, minibatches).

Every LM call, the optimiser's and the predictions', goes through clfbench's own `ChatClient`
(a DSPy engine, `ClientEngine`, instead of LiteLLM): the same key handling, retries, USD budget,
token accounting and concurrency limit as `llm-api`. DSPy's response cache is off, so every
call is sent and counted. `max_calls` caps the optimisation's calls; the optimisation
needing more, or `budget_usd` running out during it, is an error that says how far it got
(nothing beyond the cap is sent). Optimisation calls, tokens and USD are in
`inference_info.optimisation` and in the run's totals; its time is the run's training time;
`usd_per_1m_requests` is priced from the prediction calls only.

Predictions: one program call per example (`concurrency` at a time). An answer that is not one
of the answer words (after DSPy's parsing, then clfbench's answer parsing of the raw reply) is
INVALID, never mapped to a class. There are no probabilities.

The optimised program (instruction and demonstrations) is in `fit_info.program`, next to the
default prompt (`fit_info.default_prompt`), and saved as DSPy's `program.json` with the model.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import random
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from annotated_types import Ge

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.errors import ClfbenchError
from clfbench.extras import import_optional
from clfbench.methods.base import INVALID
from clfbench.methods.llm_api import LlmApi
from clfbench.methods.params import Param
from clfbench.methods.schema import OneOf
from clfbench.progress import interactive, say

log = logging.getLogger(__name__)

OPTIMIZERS = ("bootstrap", "mipro")
_MARKER = re.compile(r"\[\[\s*##\s*\w+\s*##\s*\]\]")


def _need_dspy() -> Any:
    return import_optional("dspy", "method 'llm-dspy'")


class _Stop(Exception):  # noqa: N818 - a control-flow signal, not an error of the program
    """Raised by the engine when a call may not be sent (call cap reached, budget spent)."""


class _Failed(Exception):
    """A request that still failed after the client's retries."""


class ClientEngine:
    """A DSPy engine (`complete(Request) -> Response`) that sends every call through the owning
    method's `ChatClient`, so DSPy's calls share the run's budget, retries and accounting."""

    def __init__(self, owner: LlmDspy, role: str, max_tokens: int) -> None:
        self.owner = owner
        self.role = role  # "task" (the classifier) or "proposer" (MIPROv2's instruction proposals)
        self.max_tokens = max_tokens

    def complete(self, request: Any) -> Any:
        from dspy.clients.engines.base import validate_request
        from dspy.lm15 import Message, Response, TextPart, Usage

        validate_request(request)
        messages: list[dict[str, str]] = []
        if request.system is not None:
            system = request.system if isinstance(request.system, str) else "".join(
                getattr(p, "text", "") for p in request.system)
            messages.append({"role": "system", "content": system})
        messages += [{"role": m.role, "content": m.text or ""} for m in request.messages]
        cfg = request.config
        max_tokens = int(cfg.max_tokens or self.max_tokens)
        temperature = float(cfg.temperature if cfg.temperature is not None else self.owner.temperature)
        res = self.owner._send(messages, max_tokens, temperature, self.role)
        return Response(id=None, model=str(self.owner.model), message=Message.assistant([TextPart(res.text)]),
                        finish_reason="stop",
                        usage=Usage(input_tokens=res.input_tokens, output_tokens=res.output_tokens))

    def stream(self, request: Any) -> Any:
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        """The client belongs to the method, not to the engine."""


def _root(e: BaseException) -> BaseException:
    """The engine's own signal inside DSPy's wrapping (`LMUnexpectedError` from `_Stop`), else `e`."""
    seen = e
    while seen is not None:
        if isinstance(seen, (_Stop, _Failed)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return e


def _field_name(display: str, fallback: str, taken: set[str]) -> str:
    """A Python identifier for a DSPy field from a display name ("Sentence" -> "sentence")."""
    name = re.sub(r"\W+", "_", display.strip().lower()).strip("_")
    if not name or not name.isidentifier() or name[0].isdigit() or name in taken or name == "label":
        name = fallback
    return name


class LlmDspy(LlmApi):
    """A chat model behind an OpenAI-compatible endpoint, with a DSPy-optimised prompt."""

    name = "llm-dspy"
    requires = ("dspy", "httpx")
    needs_training = True  # the optimisation is its training: its time is the training time

    optimizer: str = Param("bootstrap", "bootstrap (DSPy BootstrapFewShot; with trials > 1 random search "
                                         "over bootstraps) or mipro (MIPROv2)", OneOf(OPTIMIZERS))
    trials: int | None = Param(None, "candidate programs scored on validation (null: 1 for bootstrap, no "
                                     "search; 10 for mipro)", Ge(1))
    max_demos: int = Param(4, "most few-shot demonstrations the optimised program keeps", Ge(0))
    max_calls: int | None = Param(None, "hard cap on the optimisation's API calls (null: no cap; budget_usd "
                                        "still applies)", Ge(1))
    seed = LlmApi.seed.but(help="seed of the optimiser (also --seed)")
    max_tokens = LlmApi.max_tokens.but(help="completion token limit of a classification call (null: 32, "
                                            "room for DSPy's format)")
    proposal_max_tokens: int = Param(512, "completion token limit of MIPROv2's instruction-proposal calls",
                                     Ge(1))
    # Not parameters here: DSPy parses generated fields, and writes its own prompt.
    decision = "generate"
    shots = 0
    top_logprobs = 1
    template = None
    verbose = False

    param_order = ("model", "base_url", "api_key_env", "optimizer", "trials", "max_demos", "max_calls",
                   "seed", "concurrency", "max_retries", "timeout_s", "budget_usd", "prices", "max_tokens",
                   "proposal_max_tokens", "temperature", "stream", "backoff_base_s", "backoff_max_s",
                   "prompt", "descriptions", "label_descriptions")

    @property  # type: ignore[override]
    def has_probabilities(self) -> bool:
        return False

    def label_scoring(self) -> str:
        return "dspy program + parse"

    def _max_tokens(self, decision: str = "generate") -> int:
        """Room for DSPy's answer format (`[[ ## label ## ]]` ... `[[ ## completed ## ]]`)."""
        return int(self.max_tokens) if self.max_tokens is not None else 32

    # --- sending (every DSPy call ends here) ---------------------------------------------------
    def _send(self, messages: list[dict[str, str]], max_tokens: int, temperature: float, role: str) -> Any:
        phase = self._phase
        with self._count_lock:
            counts = self.calls_[phase]
            if phase == "optimisation" and self.max_calls is not None and counts["calls"] >= self.max_calls:
                self.stopped_ = self.stopped_ or f"max_calls={self.max_calls} reached"
                raise _Stop(self.stopped_)
            counts["calls"] += 1
            counts[f"{role}_calls"] = counts.get(f"{role}_calls", 0) + 1
        res = self._client().chat(messages, max_tokens=max_tokens, temperature=temperature)
        with self._count_lock:
            if res.status == "not_sent":  # not a call made: counted apart
                counts["calls"] -= 1
                counts[f"{role}_calls"] -= 1
                counts["not_sent"] += 1
                if phase == "optimisation":
                    self.stopped_ = self.stopped_ or f"budget_usd={self.budget_usd} ran out"
                raise _Stop("budget exhausted")
            if res.status != "ok":
                counts["failed"] += 1
                raise _Failed(res.error or "request failed")
            counts["input_tokens"] += res.input_tokens or 0
            counts["output_tokens"] += res.output_tokens or 0
            counts["with_usage"] += res.input_tokens is not None
            counts["usd"] += res.cost_usd or 0.0
        return res

    def _reset_calls(self) -> None:
        zero = {"calls": 0, "not_sent": 0, "failed": 0, "input_tokens": 0, "output_tokens": 0,
                "with_usage": 0, "usd": 0.0}
        self.calls_ = {"optimisation": dict(zero), "prediction": dict(zero)}
        self._count_lock = threading.Lock()
        self._phase = "prediction"
        self.stopped_: str | None = None

    def _lms(self) -> tuple[Any, Any]:
        """(task LM, proposal LM): `dspy.LM`s whose engine is this method's client."""
        dspy = _need_dspy()
        lms = getattr(self, "_lms_", None)
        if lms is None:
            def make(role: str, max_tokens: int) -> Any:
                return dspy.LM(f"clfbench/{self.model}", engine=ClientEngine(self, role, max_tokens),
                               cache=False, num_retries=0, max_tokens=max_tokens,
                               temperature=self.temperature)

            lms = self._lms_ = (make("task", self._max_tokens()), make("proposer", int(self.proposal_max_tokens)))
        return lms

    def _context(self) -> Any:
        dspy = _need_dspy()
        return dspy.context(lm=self._lms()[0], adapter=dspy.ChatAdapter(use_json_adapter_fallback=False))

    # --- the program --------------------------------------------------------------------------
    def _signature(self) -> Any:
        """text(+pair) -> label (a Literal of the answer words), from the task's prompt."""
        dspy = _need_dspy()
        b = self.builder_
        text_field = _field_name(b.text_name, "text", set())
        fields: dict[str, Any] = {text_field: (str, dspy.InputField(desc=b.text_name))}
        names = [text_field]
        if self.is_pair_:
            pair_field = _field_name(b.pair_name, "text_2", {text_field})
            fields[pair_field] = (str, dspy.InputField(desc=b.pair_name))
            names.append(pair_field)
        answers = tuple(b.verbalizers)
        desc = "; ".join(f"{a}: {d}" for a, d in b.descriptions()) or "the answer"
        fields["label"] = (Literal[answers], dspy.OutputField(desc=desc))  # type: ignore[valid-type]
        self.input_fields_ = names
        return dspy.Signature(fields, b.instruction)

    def _program(self) -> Any:
        """A fresh, unoptimised program: one Predict whose parse failures are answers too."""
        dspy = _need_dspy()
        builder = self.builder_

        class Classify(dspy.Module):
            def __init__(self, signature: Any) -> None:
                super().__init__()
                self.predict = dspy.Predict(signature)

            def forward(self, **inputs: Any) -> Any:
                from dspy.utils.exceptions import AdapterParseError

                try:
                    return self.predict(**inputs)
                except AdapterParseError as e:  # not one of the answer words: parse the raw reply
                    raw = _MARKER.sub(" ", str(e.lm_response or ""))
                    label = builder.parse(raw)
                    return dspy.Prediction(label=None if label == INVALID else builder.verbalizers[label],
                                           parse_error=True)
                except Exception as e:  # noqa: BLE001 - DSPy wraps what the engine raised
                    root = _root(e)
                    if isinstance(root, _Failed):  # no answer: invalid, and the run is incomplete
                        return dspy.Prediction(label=None, failed=True)
                    raise root from None

        return Classify(self._signature())

    def _examples(self, data: LabeledTexts | Texts, with_labels: bool) -> list[Any]:
        dspy = _need_dspy()
        out = []
        pairs = data.pairs if data.pairs is not None else [None] * len(data)
        for i, (t, p) in enumerate(zip(data.texts, pairs)):
            values = {self.input_fields_[0]: t}
            if self.is_pair_:  # both texts are inputs of every example (never the text alone)
                values[self.input_fields_[1]] = p
            if with_labels:
                values["label"] = self.builder_.verbalizers[int(data.labels[i])]
            out.append(dspy.Example(**values).with_inputs(*self.input_fields_))
        return out

    @staticmethod
    def _metric(example: Any, prediction: Any, trace: Any = None) -> bool:
        """Right answer. Scoring (no trace) counts an answer parsed from a malformed reply, as the
        reported predictions do; bootstrapping (a trace) keeps only well-formed demonstrations."""
        if trace is not None and prediction.get("parse_error"):
            return False
        return prediction.get("label") is not None and prediction.label == example.label

    # --- fit: the optimisation ----------------------------------------------------------------
    def fit(self, train: LabeledTexts, validation: LabeledTexts | None = None) -> LlmDspy:
        """Optimise instruction and demonstrations on train, selecting on validation."""
        self._check_request()
        self.labels = list(train.label_names)
        self.builder_ = self._builder(self.template)
        self.is_pair_ = train.pairs is not None
        self.decision_ = "generate"
        self._reset_counters()
        self._reset_calls()
        self._client()  # key, prices and budget checked before any call
        if self.optimizer == "mipro" and (validation is None or len(validation) == 0):
            raise ClfbenchError(f"{self.name}: optimizer=mipro needs a validation split")
        program = self._program()
        default = self._describe(program)
        order = list(range(len(train)))
        random.Random(self.seed).shuffle(order)  # the optimiser walks train in a seeded order
        trainset = self._examples(train.subset(np.array(order)), True)
        valset = self._examples(validation, True) if validation is not None and len(validation) else []
        self._phase = "optimisation"
        t0 = time.perf_counter()
        try:
            compiled, search = self._optimise(program, trainset, valset)
        except _Stop:
            compiled, search = None, {}
        except Exception as e:  # noqa: BLE001 - DSPy re-raises what its threads caught
            from dspy.utils.exceptions import AdapterParseError

            if isinstance(e, AdapterParseError) and not self.stopped_:  # MIPROv2's proposer calls
                raise ClfbenchError(
                    f"{self.name}: the model's reply to an optimiser call could not be parsed as DSPy "
                    f"fields ({type(e).__name__}); use optimizer=bootstrap or a stronger model"
                ) from None
            if isinstance(_root(e), _Failed) and not self.stopped_:
                raise ClfbenchError(f"{self.name}: a request of the optimisation failed after its retries "
                                    f"({_root(e)}); nothing was kept, run it again") from None
            if not self.stopped_:
                raise
            compiled, search = None, {"error": str(e)}
        finally:
            self._phase = "prediction"
        seconds = time.perf_counter() - t0
        if self.stopped_:
            done = self.calls_["optimisation"]
            raise ClfbenchError(
                f"{self.name}: the optimisation stopped: {self.stopped_} after {done['calls']} calls "
                f"(${done['usd']:.4f}); raise max_calls/budget_usd or lower trials/max_demos"
            )
        self.program_ = compiled
        self.fit_info_ = {
            "optimizer": self.optimizer,
            "trials": self._trials(),
            "max_demos": self.max_demos,
            "train_examples": len(trainset),
            "validation_examples": len(valset),
            "default_prompt": {**default, "prompt": self.builder_.describe()},
            "program": self._describe(compiled),
            "search": search,
            "optimisation": self._optimisation_info(seconds),
        }
        return self

    def _trials(self) -> int:
        return int(self.trials) if self.trials is not None else (1 if self.optimizer == "bootstrap" else 10)

    def _optimise(self, program: Any, trainset: list[Any], valset: list[Any]) -> tuple[Any, dict[str, Any]]:
        dspy = _need_dspy()
        trials, k = self._trials(), int(self.max_demos)
        buf = io.StringIO()
        quiet = contextlib.ExitStack()
        # DSPy prints summaries to stdout (the results table's) and tqdm bars to stderr: on a
        # terminal both go to stderr; elsewhere they are caught, and only whole lines shown.
        if self.verbose and interactive():
            quiet.enter_context(contextlib.redirect_stdout(sys.stderr))
        else:
            quiet.enter_context(contextlib.redirect_stdout(buf))
            quiet.enter_context(contextlib.redirect_stderr(buf))
        with quiet, self._context():
            if self.optimizer == "bootstrap" and trials == 1:
                opt = dspy.BootstrapFewShot(metric=self._metric, max_bootstrapped_demos=k,
                                            max_labeled_demos=k, max_errors=10**6)
                compiled = opt.compile(program, trainset=trainset)
                search: dict[str, Any] = {"method": "BootstrapFewShot", "candidates": 1}
            elif self.optimizer == "bootstrap":
                opt = dspy.BootstrapFewShotWithRandomSearch(
                    metric=self._metric, max_bootstrapped_demos=k, max_labeled_demos=k,
                    num_candidate_programs=trials, num_threads=self.concurrency, max_errors=10**6)
                if not valset:
                    raise ClfbenchError(f"{self.name}: trials > 1 needs a validation split to choose on")
                # seed -1 is plain BootstrapFewShot, seeds 0.. shuffled bootstraps: `trials` in all
                compiled = opt.compile(program, trainset=trainset, valset=valset,
                                       restrict=list(range(-1, trials - 1)))
                scores = [float(s.get("score", 0.0)) for s in getattr(compiled, "candidate_programs", [])]
                search = {"method": "BootstrapFewShotWithRandomSearch", "candidates": trials,
                          "validation_scores": scores}
            else:
                task_lm, proposer_lm = self._lms()
                opt = dspy.MIPROv2(metric=self._metric, prompt_model=proposer_lm, task_model=task_lm,
                                   max_bootstrapped_demos=k, max_labeled_demos=k, auto=None,
                                   num_candidates=max(2, min(trials, 10)), num_threads=self.concurrency,
                                   max_errors=10**6, seed=int(self.seed), verbose=False)
                compiled = opt.compile(program, trainset=trainset, valset=valset, num_trials=trials,
                                       minibatch=len(valset) > 35, minibatch_size=35)
                scores = [float(s.get("score", 0.0)) for s in getattr(compiled, "candidate_programs", [])]
                search = {"method": "MIPROv2", "trials": trials, "validation_scores": scores,
                          "best_validation_score": getattr(compiled, "score", None),
                          "proposer_calls": self.calls_["optimisation"].get("proposer_calls", 0)}
        if buf.getvalue():
            log.debug("DSPy output:\n%s", buf.getvalue())
            if self.verbose:  # a log or a pipe: its lines without the bars' carriage returns
                for line in buf.getvalue().split("\n"):
                    if line.strip() and "\r" not in line:
                        say(line)
        return compiled, search

    def _describe(self, program: Any) -> dict[str, Any]:
        """The program's instruction, label description and demonstrations (JSON-ready)."""
        predictor = program.predict
        sig = predictor.signature
        demos = []
        for d in predictor.demos:
            row = {k: d.get(k) for k in (*self.input_fields_, "label")}
            demos.append(row)
        return {"instruction": sig.instructions, "label_field": sig.output_fields["label"].json_schema_extra.get("desc"),
                "demos": demos}

    def _optimisation_info(self, seconds: float) -> dict[str, Any]:
        c = dict(self.calls_["optimisation"])
        c["seconds"] = seconds
        return c

    # --- prediction -----------------------------------------------------------------------------
    def classify(self, X: Texts) -> tuple[np.ndarray, None]:
        if (X.pairs is not None) != self.is_pair_:
            kind = "text pairs" if self.is_pair_ else "single texts"
            raise ClfbenchError(f"{self.name}: this program was optimised for {kind}")
        examples = self._examples(X, False)
        answer = {w: i for i, w in enumerate(self.builder_.verbalizers)}
        counts = dict.fromkeys(("examples", "not_sent_budget", "failed", "invalid", "logprob_unmapped"), 0)
        counts["examples"] = len(X)

        def one(ex: Any) -> tuple[str, int]:
            with self._context():
                try:
                    pred = self.program_(**ex.inputs())
                except _Stop:
                    return "not_sent", INVALID
            if pred.get("failed"):
                return "failed", INVALID
            label = pred.get("label")
            return ("ok", answer[label]) if label in answer else ("invalid", INVALID)

        if len(examples) > 1 and self.concurrency > 1:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="clfbench-dspy") as pool:
                outcomes = list(pool.map(one, examples))
        else:
            outcomes = [one(ex) for ex in examples]
        pred = np.array([y for _, y in outcomes], dtype=int)
        for status, _ in outcomes:
            key = {"not_sent": "not_sent_budget", "failed": "failed", "invalid": "invalid"}.get(status)
            if key:
                counts[key] += 1
        self._record(counts)
        if counts["not_sent_budget"]:
            log.warning("%s: budget_usd=%s reached; %d of %d examples in this call were not sent "
                        "(they count as invalid)", self.name, self.budget_usd, counts["not_sent_budget"], len(X))
        return pred, None

    def predict(self, X: Texts) -> np.ndarray:
        return self.classify(X)[0]

    def predict_proba(self, X: Texts) -> np.ndarray:
        raise ClfbenchError(f"{self.name}: a DSPy program gives labels, not probabilities; use predict/classify")

    def inference_info(self) -> dict[str, Any]:
        """llm-api's accounting over every call (optimisation included), with the optimisation's
        share on its own and per-request means and price from the prediction calls only."""
        info = super().inference_info()
        if not info:
            return info
        opt = dict(self.calls_["optimisation"])
        pred = self.calls_["prediction"]
        info["optimisation"] = opt
        info["optimisation_usd"] = opt["usd"] if getattr(self, "price_", None) else None
        n = pred["with_usage"]
        info["mean_input_tokens"] = pred["input_tokens"] / n if n else None
        info["mean_output_tokens"] = pred["output_tokens"] / n if n else None
        price = getattr(self, "price_", None)
        info["usd_per_1m_requests"] = (
            info["mean_input_tokens"] * price["input"] + info["mean_output_tokens"] * price["output"]
            if price and n else None)
        return info

    # --- persistence --------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for key in ("_lms_", "_count_lock", "program_"):
            state.pop(key, None)
        return state

    def _save_state(self, path: Path) -> None:
        """DSPy's own program file (instruction + demos), the template and the fitted facts."""
        (path / "template.yaml").write_text(self.builder_.template_text, encoding="utf-8")
        self.program_.save(str(path / "program.json"))
        state = {"is_pair": self.is_pair_, "fit_info": self.fit_info_}
        (path / "llm_dspy.json").write_text(json.dumps(state, ensure_ascii=False, indent=2, default=str))

    def _load_state(self, path: Path) -> None:
        self._hold_saved_endpoint()
        state = json.loads((path / "llm_dspy.json").read_text(encoding="utf-8"))
        self.is_pair_ = bool(state["is_pair"])
        self.fit_info_ = state.get("fit_info", {})
        self.decision_ = "generate"
        self.builder_ = self._builder(str(path / "template.yaml"))
        self._reset_counters()
        self._reset_calls()
        program = self._program()
        program.load(str(path / "program.json"))
        self.program_ = program
