"""The plan of `clfbench decide`: which families run, on how many rows, in which order, within a
time budget, from the measured profiles (`profile.py`) and probes; and the deadline loop.

Rules (each is a constant or a function below):
- Order: cheap first (`ORDER`): tfidf-lr, embed-probe, setfit, encoder-ft (with its learning-
  rate search), encoder-lora, then the LLM arms when `llm` is given (llm-api for an endpoint,
  llm-prompt for a local model), then llm-sft and decoder-head last (local model only).
- Greedy fill: a family is planned when its estimate fits what is left of the budget after the
  reserve for report + export (`reserve_s`) and the families before it; otherwise it is left
  out with "<family>: estimated <time>, over the budget". tfidf-lr alone + the reserve is the
  smallest plan (`check_budget`). A fine-tuned family that is not the last wanted shrinks (see
  below) to half of what is left (its "share") rather than take it all, so that one slow family
  does not starve the rest; one that cannot shrink that far is still taken whole if it fits.
- Unavailable: a family that cannot run here (its extra not installed, its probe failed;
  `probe.py` says which) is left out with that reason and keeps no share of the budget.
- Big data: the fine-tuned families (encoder-ft/-lora, llm-sft, decoder-head) train on at most
  `BIG_DATA_ROWS` stratified rows (`max_train`); tfidf-lr and embed-probe use every row.
- Shrink to fit: a fine-tuned family (setfit included) over its share trains on fewer rows,
  down to `min_rows` (8 per class, at least 1,000 for fine-tuning); below that it is left out.
- SetFit is a few-shot method: at most `SETFIT_PER_CLASS` texts per class, each making
  2 x `SETFIT_ITERATIONS` pairs, so its cost grows with the number of classes.
- Long texts: encoders' max_length is the p95 length rounded up to a power of two, 128..512;
  LLMs' 512..2048 (p95 + the prompt); default costs scale with the length they will see
  (`length_factor`). Lengths in words count as `TOKENS_PER_WORD` tokens.
- Classes: tfidf-lr's logistic regression costs grow linearly with the classes (its weight
  matrix is classes x features), from the 4 classes of its reference measurement.
- GPU: the neural families' default costs are divided by `gpu_speedup`; probes are measured on
  the device the runs will use (the command probes on the GPU when there is one).
- A probe of a family replaces its default per-example costs (it was measured on this data at
  the planned length and device, so no scaling is applied to it). A probe times the method in
  this process only; every run also starts a worker process, reads the files and times its
  latency, so `RUN_OVERHEAD_S` is added to a probed start-up (the defaults include it).
- Learning curves: for the cheap trainable families (tfidf-lr, embed-probe), sizes 8, 32 and
  128 per class (below the training size) are added last, when they fit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from clfbench.data.splits import SMALL_SIZE, SMALL_SIZE_DRAWS
from clfbench.errors import ClfbenchError
from clfbench.progress import format_seconds
from clfbench.run.config import RunSpec
from clfbench.run.profile import DataProfile, MachineProfile, Probe

ORDER = ("tfidf-lr", "embed-probe", "setfit", "encoder-ft", "encoder-lora",
         "llm-api", "llm-prompt", "llm-sft", "decoder-head")
LLM_FAMILIES = ("llm-api", "llm-prompt", "llm-sft", "decoder-head")
PROMPTED = ("llm-api", "llm-prompt", "llm-sft")  # the text sits inside a prompt
FINE_TUNED = ("setfit", "encoder-ft", "encoder-lora", "llm-sft", "decoder-head")
CURVE_FAMILIES = ("tfidf-lr", "embed-probe")
CURVE_PER_CLASS = (8, 32, 128)
BIG_DATA_ROWS = 20_000  # fine-tuning gains flatten well before this; the curves show where
MIN_FT_ROWS = 1_000  # fewer rows than this is not a fine-tuning worth its cost
SETFIT_PER_CLASS = 64  # the few-shot regime SetFit is for (BENCHMARKS.md: K = 8 and 64)
SETFIT_ITERATIONS = 20  # the paper's num_iterations: 20 positive + 20 negative pairs per text
TUNE_TRIALS = 4  # the learning-rate grid of `tune="auto"` (methods/tuning.py)
TOKENS_PER_WORD = 1.3  # WordPiece / BPE on English prose, a rule of thumb
REF_TOKENS = 32  # the length of the reference measurements (SST-2 sentences, ~20 words)
LLM_PROMPT_TOKENS = 64  # instruction + labels around the text (the sst2 prompt: 49 tokens)
#: A run's cost beyond what a probe times: a fresh worker process (imports), the files read,
#: the latency measurement. Measured for `decide` on the demo data (500 rows, 2 loaded cores):
#: six tfidf-lr learning-curve runs probed at ~1 s in all took 27 s, ~4.5 s each; rounded up.
RUN_OVERHEAD_S = 5.0


@dataclass(frozen=True)
class FamilyCost:
    """Default costs of a family before it is probed: start-up (model load, process) in s,
    s per training example per epoch and trial (setfit: per pair), s per predicted example;
    on 2 CPU cores at `REF_TOKENS` tokens. `gpu_speedup` divides the per-example costs on a GPU."""

    startup_s: float
    train_s: float
    predict_s: float
    gpu_speedup: float = 1.0


#: Where each number comes from (BENCHMARKS.md unless said; the project's 2 shared CPU cores):
#: - tfidf-lr: measured for this module, 2,000 and 20,000 random 30-word texts, 4 classes,
#:   C chosen from 5 values (load 3.3-5.8): fit 15.8 s and 45.2 s, so ~13 s + 1.6 ms/row,
#:   rounded up; prediction 0.05 ms/row, doubled.
#: - embed-probe: MiniLM inference at 264 examples/s (encoder-ft on SST-2) = 3.8 ms, doubled
#:   for a loaded machine; the embedding pass is its training, plus the C grid.
#: - setfit: the paper recipe on sst2 K=64, 5,120 pairs in 398 s at load 3-8 = 78 ms per pair.
#: - encoder-ft / -lora: 56 training examples/s for MiniLM, batch 32, 2 threads (Trainer
#:   before/after) = 18 ms, doubled (the loaded runs fell to 4-9 examples/s); LoRA still
#:   back-propagates through the encoder, so it gets the same cost.
#: - llm-prompt: Qwen2.5-0.5B-sized, fp32, 2 threads: 8 prompts/s idle, 1.3 loaded (run A),
#:   so 0.8 s. llm-sft / decoder-head: training ~3x a forward pass on ~2.5x the tokens = ~1 s
#:   per example idle, doubled.
#: - llm-api: not measured (no endpoint here): ~1-2 s per request, 4 concurrent, rounded up.
#: - gpu_speedup 10: NOT measured (no GPU was lent to the issue-6 benchmark); an H100 is
#:   usually far faster than 2 CPU cores for these models, so 10 is meant to be cautious.
DEFAULT_COSTS: dict[str, FamilyCost] = {
    "tfidf-lr": FamilyCost(15.0, 0.002, 0.0001),
    "embed-probe": FamilyCost(15.0, 0.008, 0.008, gpu_speedup=10),
    "setfit": FamilyCost(20.0, 0.08, 0.008, gpu_speedup=10),
    "encoder-ft": FamilyCost(20.0, 0.036, 0.008, gpu_speedup=10),
    "encoder-lora": FamilyCost(20.0, 0.036, 0.008, gpu_speedup=10),
    "llm-api": FamilyCost(5.0, 0.0, 0.5),
    "llm-prompt": FamilyCost(60.0, 0.0, 0.8, gpu_speedup=10),
    "llm-sft": FamilyCost(60.0, 2.0, 0.8, gpu_speedup=10),
    "decoder-head": FamilyCost(60.0, 2.0, 0.8, gpu_speedup=10),
}


def reserve_s(budget_s: float) -> float:
    """Time kept for the report and the winner's export: 60 s + 5% of the budget, at most
    10 min (an assumption until the command measures both)."""
    return min(600.0, 60.0 + 0.05 * budget_s)


@dataclass
class Step:
    """One planned family (or its learning curve): RunSpec-ready fields and the estimate."""

    family: str
    method: str
    estimate_s: float
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    max_train: int | None = None
    train_sizes: list[str] = field(default_factory=list)  # a learning-curve step's sizes
    note: str = ""

    @property
    def key(self) -> str:
        """The step's name in the plan, in messages and for resume."""
        return f"{self.family} learning curve" if self.train_sizes else self.family

    def run_specs(self, **common: Any) -> list[RunSpec]:
        """The runs of this step; `common` holds the data fields (files, columns, seed)."""
        base = dict(method=self.method, model=self.model, params=dict(self.params),
                    max_train=self.max_train, **common)
        return [RunSpec(**base, train_size=s) for s in self.train_sizes] or [RunSpec(**base)]


@dataclass
class Plan:
    """Ordered steps, what was left out and why, and the budget they were planned against."""

    budget_s: float
    reserve_s: float
    smallest_s: float  # tfidf-lr alone + the reserve: under it nothing can be planned
    steps: list[Step] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # "<family>: <reason>"

    @property
    def total_s(self) -> float:
        return sum(s.estimate_s for s in self.steps) + self.reserve_s

    def lines(self) -> list[str]:
        """The plan as printed before anything runs."""
        out = [f"plan for a budget of {format_seconds(self.budget_s)}:"]
        for i, s in enumerate(self.steps, 1):
            extra = f" ({s.note})" if s.note else ""
            out.append(f"  {i}. {s.key}: about {format_seconds(s.estimate_s)}{extra}")
        out.append(f"  report and export: {format_seconds(self.reserve_s)} kept")
        out.append(f"total: about {format_seconds(self.total_s)} of {format_seconds(self.budget_s)}")
        if self.left_out:
            out.append("left out:")
            out.extend(f"  {r}" for r in self.left_out)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy: the command saves it so that a resumed run keeps the same plan."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(**{**d, "steps": [Step(**s) for s in d["steps"]]})


# --- the cost model -------------------------------------------------------------------------

def tokens(length: float, data: DataProfile) -> float:
    return length * (TOKENS_PER_WORD if data.length_unit == "words" else 1.0)


def max_length_for(family: str, data: DataProfile) -> int:
    """Encoders: the p95 length rounded up to a power of two, 128..512; LLMs (the prompt
    around the text included): 512..2048."""
    need = tokens(data.p95_length, data)
    low, high = (512, 2048) if family in PROMPTED else (128, 512)
    if family in PROMPTED:
        need += LLM_PROMPT_TOKENS
    return int(min(high, max(low, 2 ** math.ceil(math.log2(max(need, 1))))))


def length_factor(family: str, data: DataProfile) -> float:
    """How much longer than the reference measurement the texts are, as the model sees them
    (the p95 length, cut at max_length; cautious: batching by length makes most batches shorter)."""
    if family == "tfidf-lr":  # words in, a sparse vector out: cost follows the words
        return max(1.0, data.p95_length / 30.0)
    seen = min(tokens(data.p95_length, data), max_length_for(family, data))
    if family in PROMPTED:
        return max(1.0, (seen + LLM_PROMPT_TOKENS) / (REF_TOKENS + LLM_PROMPT_TOKENS))
    return max(1.0, seen / REF_TOKENS)


def per_example(family: str, data: DataProfile, machine: MachineProfile,
                probe: Probe | None) -> tuple[float, float, float]:
    """(start-up s, s per training unit, s per prediction) for `family`: the probe's if
    there is one, else the default scaled by length, classes and the GPU."""
    if probe is not None:
        return (probe.startup_s + RUN_OVERHEAD_S, probe.train_s_per_example,
                probe.predict_s_per_example)
    c = DEFAULT_COSTS[family]
    scale = length_factor(family, data) / (c.gpu_speedup if machine.has_gpu else 1.0)
    train = c.train_s * scale
    if family == "tfidf-lr":
        train *= max(1.0, data.n_classes / 4)
    if family == "setfit":  # defaults are per pair; the plan counts texts
        train *= 2 * SETFIT_ITERATIONS
    return c.startup_s, train, c.predict_s * scale


def probes_wanted(machine: MachineProfile, llm: LLM | None = None) -> dict[str, str]:
    """The families the command probes before planning, and on which device: the neural ones
    on the GPU when there is one (where they will run), tfidf-lr and an endpoint on the CPU."""
    out = {}
    for family in ORDER:
        if family in LLM_FAMILIES and not (llm and family in llm.families):
            continue
        neural = family not in ("tfidf-lr", "llm-api")
        out[family] = "cuda" if neural and machine.has_gpu else "cpu"
    return out


def passes(family: str) -> tuple[int, int]:
    """(trials, epochs) the conservative estimate assumes: every trial of the learning-rate
    search trains every epoch (early stopping and the pruner only make it shorter)."""
    if family in ("encoder-ft", "encoder-lora", "llm-sft", "decoder-head"):
        return TUNE_TRIALS, 3
    return 1, 1


def validation_rows(data: DataProfile) -> int:
    """The validation split, else the 10% the split rules carve from train."""
    return data.validation_rows or max(10, data.train_rows // 10)


def estimate(family: str, rows: int, data: DataProfile, machine: MachineProfile,
             probe: Probe | None) -> float:
    """Wall time of one run of `family` trained on `rows`: start-up + training + the
    validation passes of each epoch and trial + predicting the reported split."""
    startup, train, predict = per_example(family, data, machine, probe)
    trials, epochs = passes(family)
    if family in ("llm-api", "llm-prompt"):  # no training: the test split only
        return startup + predict * data.eval_rows
    val = validation_rows(data)
    return (startup + trials * epochs * (train * rows + predict * val)
            + predict * data.eval_rows)


# --- the plan -------------------------------------------------------------------------------

def planned_rows(family: str, data: DataProfile) -> int:
    if family == "setfit":
        return min(data.train_rows, SETFIT_PER_CLASS * data.n_classes)
    if family in FINE_TUNED:
        return min(data.train_rows, BIG_DATA_ROWS)
    return data.train_rows


def min_rows(family: str, data: DataProfile) -> int:
    """The fewest rows a shrunk family may train on (never more than it has)."""
    floor = 8 * data.n_classes if family == "setfit" else max(MIN_FT_ROWS, 8 * data.n_classes)
    return min(floor, planned_rows(family, data))


def rows_that_fit(family: str, left_s: float, data: DataProfile, machine: MachineProfile,
                  probe: Probe | None) -> int:
    """The most training rows whose estimate fits `left_s` (the estimate is linear in rows),
    rounded down to two significant digits."""
    fixed = estimate(family, 0, data, machine, probe)
    slope = estimate(family, 1, data, machine, probe) - fixed
    if slope <= 0:
        return planned_rows(family, data)
    n = int((left_s - fixed) / slope)
    if n < 100:
        return max(n, 0)
    digits = 10 ** (len(str(n)) - 2)
    return n // digits * digits


def family_params(family: str, data: DataProfile, llm: LLM | None) -> tuple[str | None, dict[str, Any]]:
    """(model, params) of a family's run: max_length when the method takes one and the texts
    need more than its default, SetFit's pairs, the LLM's model or endpoint."""
    params: dict[str, Any] = {}
    if family not in ("tfidf-lr", "llm-api"):
        ml = max_length_for(family, data)
        default = 512 if family in ("llm-prompt", "llm-sft") else 128
        if ml != default:
            params["max_length"] = ml
    if family == "setfit":
        params["num_iterations"] = SETFIT_ITERATIONS
    if family in LLM_FAMILIES and llm is not None:
        if llm.base_url:
            params["base_url"] = llm.base_url
        return llm.model, params
    return None, params


@dataclass(frozen=True)
class LLM:
    """The LLM the user named: a local model (hub id or folder), or a model behind an
    OpenAI-compatible endpoint (`base_url`)."""

    model: str
    base_url: str | None = None

    @property
    def families(self) -> tuple[str, ...]:
        return ("llm-api",) if self.base_url else ("llm-prompt", "llm-sft", "decoder-head")


_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400}


def parse_duration(text: str, where: str = "--time-budget") -> float:
    """Seconds of a duration as a user writes it: `90s`, `15m`, `1h`, `1.5h`, `1h30m`, or a bare
    number of seconds; anything else (or not positive) is one ClfbenchError naming `where`."""
    import re

    s = str(text).strip().lower().replace(" ", "")
    term = r"(\d+(?:\.\d+)?)(hour|min|sec|h|m|s|d)"
    try:
        seconds = float(s)
    except ValueError:  # a sequence of number+unit terms, nothing else
        matched = re.fullmatch(f"(?:{term})+", s) is not None
        seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(term, s)) if matched else math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ClfbenchError(f"{where}: expected a duration such as 90s, 15m, 1h or 1h30m, got {text!r}")
    return seconds


def parse_llm(text: str) -> LLM:
    """`--llm`: a local causal LM (hub id or folder), or `MODEL@URL` for a model behind an
    OpenAI-compatible endpoint (`gpt-4o-mini@https://api.openai.com/v1`)."""
    model, sep, url = str(text).partition("@")
    if not model or (sep and not url.startswith(("http://", "https://"))):
        raise ClfbenchError(f"--llm: expected MODEL (a local model) or MODEL@https://host/v1 (an endpoint), "
                            f"got {text!r}")
    return LLM(model, url or None)


def over(family: str, seconds: float) -> str:
    return f"{family}: estimated {format_seconds(seconds)}, over the budget"


def make_plan(data: DataProfile, machine: MachineProfile, budget_s: float,
              probes: Mapping[str, Probe] | None = None, llm: LLM | None = None,
              unavailable: Mapping[str, str] | None = None) -> Plan:
    """Fill the budget greedily in `ORDER` (see the module's rules), then add learning curves.
    `unavailable`: family -> why it cannot run here (an extra not installed, a failed probe);
    such a family is left out with that reason."""
    probes, unavailable = probes or {}, unavailable or {}
    reserve = reserve_s(budget_s)
    smallest = estimate("tfidf-lr", data.train_rows, data, machine, probes.get("tfidf-lr")) + reserve
    plan = Plan(budget_s, reserve, smallest)
    wanted = [f for f in ORDER if f not in LLM_FAMILIES or (llm and f in llm.families)]
    plan.left_out += [f"{f}: {unavailable[f]}" for f in wanted if f in unavailable]
    wanted = [f for f in wanted if f not in unavailable]
    for i, family in enumerate(wanted):
        left = budget_s - plan.total_s
        # a fine-tuned family leaves half of what is left to the families after it
        share = left / 2 if family in FINE_TUNED and i < len(wanted) - 1 else left
        probe = probes.get(family)
        rows = planned_rows(family, data)
        full = cost = estimate(family, rows, data, machine, probe)
        note = f"trains on {rows:,} of {data.train_rows:,} rows" if rows < data.train_rows else ""
        if cost > share and family in FINE_TUNED:
            fit = min(rows, rows_that_fit(family, share, data, machine, probe))
            if fit >= max(1, min_rows(family, data)):
                rows, note = fit, f"trains on {fit:,} of {data.train_rows:,} rows to fit the budget"
                cost = estimate(family, rows, data, machine, probe)
        if cost > left:
            plan.left_out.append(over(family, full))
            continue
        model, params = family_params(family, data, llm)
        plan.steps.append(Step(family, family, cost, model, params,
                               rows if rows < data.train_rows else None, note=note))
    add_curves(plan, data, machine, probes)
    return plan


def curve_sizes(data: DataProfile) -> list[str]:
    """Per-class sizes under the training size (each at most half of it, so it differs)."""
    return [f"{k}/class" for k in CURVE_PER_CLASS if k * data.n_classes <= data.train_rows // 2]


def add_curves(plan: Plan, data: DataProfile, machine: MachineProfile,
               probes: Mapping[str, Probe]) -> None:
    """A learning-curve step for each planned cheap family, when its runs fit what is left.
    Sizes under `SMALL_SIZE` examples run `SMALL_SIZE_DRAWS` draws (the runner's rule)."""
    sizes = curve_sizes(data)
    if not sizes:
        return
    for family in CURVE_FAMILIES:
        if family not in {s.family for s in plan.steps}:
            continue
        cost = 0.0
        for size in sizes:
            n = int(size.split("/")[0]) * data.n_classes
            draws = SMALL_SIZE_DRAWS if n < SMALL_SIZE else 1
            cost += draws * estimate(family, n, data, machine, probes.get(family))
        if cost > plan.budget_s - plan.total_s:
            plan.left_out.append(over(f"{family} learning curve", cost))
            continue
        model, params = family_params(family, data, None)
        plan.steps.append(Step(family, family, cost, model, params, train_sizes=sizes,
                               note="sizes " + ", ".join(sizes)))


def check_budget(plan: Plan) -> None:
    """A budget under the smallest plan (tfidf-lr alone + report and export) is bad input."""
    if plan.budget_s < plan.smallest_s:
        raise ClfbenchError(
            f"--time-budget {format_seconds(plan.budget_s)} is under the smallest plan: "
            f"tfidf-lr alone with the report and export needs about {format_seconds(plan.smallest_s)}")


# --- the deadline ---------------------------------------------------------------------------

class Deadline:
    """A budget in seconds from construction, on `clock` (monotonic; tests pass a fake one)."""

    def __init__(self, budget_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_s, self.clock, self.start = budget_s, clock, clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def remaining(self) -> float:
        return self.budget_s - self.elapsed()


@dataclass
class Outcome:
    """What `schedule` did: steps run to the end, skipped as already done, and cut (with why)."""

    completed: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)


#: Runs one step within `limit_s` seconds; True when it completed, False when it stopped
#: at the limit (it then leaves nothing half-written: the results store keeps complete runs only).
RunStep = Callable[[Step, float], bool]

#: Told of each step's state as it changes: "already done", "running", "completed", "cut",
#: "stopped" or "failed" (the command prints its progress from these).
OnChange = Callable[[Step, str], None]


def schedule(plan: Plan, deadline: Deadline, run_step: RunStep,
             done: Callable[[Step], bool] = lambda step: False,
             on_change: OnChange | None = None) -> Outcome:
    """Run the plan's steps in order within the deadline, keeping the report's reserve.

    A step already complete (`done`, asked of the results store: a resumed command) is skipped.
    A step whose estimate exceeds the time left before the reserve is cut, and later, cheaper
    steps are still tried; a step that stops at its limit, or fails (an exception: its first
    line is kept), is recorded as cut too. An interrupt (KeyboardInterrupt) is not caught."""
    out = Outcome()
    tell = on_change or (lambda step, state: None)
    for step in plan.steps:
        if done(step):
            out.already_done.append(step.key)
            tell(step, "already done")
            continue
        left = deadline.remaining() - plan.reserve_s
        if step.estimate_s > left:
            out.cut.append(f"{step.key}: estimated {format_seconds(step.estimate_s)}, "
                           f"{format_seconds(max(left, 0))} left before the report")
            tell(step, "cut")
            continue
        tell(step, "running")
        try:
            finished = run_step(step, left)
        except Exception as e:  # noqa: BLE001 - one family's failure must not stop the others
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            out.cut.append(f"{step.key}: failed: {first}")
            tell(step, "failed")
            continue
        if finished:
            out.completed.append(step.key)
            tell(step, "completed")
        else:
            out.cut.append(f"{step.key}: stopped at its time limit ({format_seconds(left)})")
            tell(step, "stopped")
    return out
