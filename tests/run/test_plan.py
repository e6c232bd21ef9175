"""The planner of `clfbench decide` on synthetic profiles: its choices, the deadline, resume.

No model runs here: probes are fake timings and the steps are callables on a fake clock."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from clfbench.data.texts import LabeledTexts
from clfbench.errors import ClfbenchError
from clfbench.run.config import RunSpec
from clfbench.run.plan import (
    BIG_DATA_ROWS,
    LLM,
    RUN_OVERHEAD_S,
    SETFIT_ITERATIONS,
    SETFIT_PER_CLASS,
    Deadline,
    Plan,
    Step,
    check_budget,
    estimate,
    make_plan,
    probes_wanted,
    schedule,
)
from clfbench.run.profile import (
    DataProfile,
    MachineProfile,
    Probe,
    measure_probe,
    profile_data,
    profile_machine,
)

CPU = MachineProfile(cpu_cores=2, memory_gb=8.0)
GPU = MachineProfile(cpu_cores=16, memory_gb=128.0, gpu_name="H100", gpu_memory_gb=80.0)
HOUR = 3600.0
LOCAL_LLM = LLM("Qwen/Qwen2.5-0.5B-Instruct")
OVER = re.compile(r"^[\w-]+( learning curve)?: estimated (\d+ h \d\d min|\d+ min \d\d s|\d+ s), "
                  r"over the budget")


def data(rows: int = 200, classes: int = 4, median: float = 15, p95: float = 30,
         **kw) -> DataProfile:
    return DataProfile(rows, classes, validation_rows=kw.pop("validation_rows", max(10, rows // 10)),
                       test_rows=kw.pop("test_rows", max(20, rows // 5)), median_length=median,
                       p95_length=p95, **kw)


def families(plan: Plan) -> list[str]:
    return [s.key for s in plan.steps]


def step(plan: Plan, key: str) -> Step:
    return next(s for s in plan.steps if s.key == key)


def reason(plan: Plan, family: str) -> str:
    return next(r for r in plan.left_out if r.startswith(f"{family}:"))


# --- profiles and probes ---------------------------------------------------------------------

def test_profile_data_counts_classes_imbalance_lengths_and_pairs():
    train = LabeledTexts(["a b c", "d e", "f g h i", "j"], ["x y", "z", "p q r", "s"],
                         np.array([0, 0, 0, 1]), ["neg", "pos"])
    p = profile_data(train, test=train.subset([0, 1]))
    assert (p.train_rows, p.n_classes, p.test_rows, p.validation_rows) == (4, 2, 2, 0)
    assert p.imbalance == 3.0 and p.pairs and p.length_unit == "words"
    assert p.median_length == 4.0  # both sides of each pair: 5, 3, 7, 2 words
    tok = profile_data(train, count_tokens=lambda s: 2 * len(s.split()))
    assert tok.length_unit == "tokens" and tok.median_length == 8.0


def test_profile_data_refuses_one_class_in_one_line():
    one = LabeledTexts(["a", "b"], None, np.array([0, 0]), ["neg", "pos"])
    with pytest.raises(ClfbenchError, match="only one class") as e:
        profile_data(one, where="data.csv")
    assert "\n" not in str(e.value) and "data.csv" in str(e.value)


def test_measure_probe_never_reports_a_free_example_when_noise_hides_the_slope():
    """Under load the larger slice can time no slower than the smaller one; a cost of zero per
    example would let the planner schedule a family it cannot finish (seen on a loaded CI run)."""
    times = {32: (1.2, 0.3), 128: (1.0, 0.3)}  # the larger fit timed faster: noise
    p = measure_probe("tfidf-lr", lambda n: times[n], sizes=(32, 128))
    assert p.train_s_per_example == pytest.approx(1.0 / 128)
    assert p.predict_s_per_example == pytest.approx(0.3 / 128)
    assert p.startup_s >= 0


def test_measure_probe_splits_startup_from_per_example_costs():
    calls = []

    def fake_run(n: int) -> tuple[float, float]:  # 3 s model load + 10 ms/example; 1 s + 2 ms
        calls.append(n)
        return 3.0 + 0.01 * n, 1.0 + 0.002 * n

    p = measure_probe("encoder-ft", fake_run, sizes=(32, 128), device="cuda")
    assert calls == [32, 128]
    assert p.startup_s == pytest.approx(4.0)
    assert p.train_s_per_example == pytest.approx(0.01)
    assert p.predict_s_per_example == pytest.approx(0.002)
    assert p.device == "cuda"


def test_profile_machine_reads_this_machine():
    m = profile_machine()
    assert m.cpu_cores >= 1 and m.memory_gb > 0
    assert m.has_gpu == (m.gpu_name is not None)


# --- the planner's choices ------------------------------------------------------------------

def test_a_200_row_set_runs_every_encoder_family_on_all_rows_with_a_small_curve():
    plan = make_plan(data(200), CPU, HOUR)
    keys = families(plan)
    assert keys[:5] == ["tfidf-lr", "embed-probe", "setfit", "encoder-ft", "encoder-lora"]
    assert all(step(plan, k).max_train is None for k in keys)  # nothing subsampled
    # 4 classes x 8 = 32 rows fits under half of 200; 32/class (128 rows) does not
    assert step(plan, "tfidf-lr learning curve").train_sizes == ["8/class"]
    assert "llm-prompt" not in keys and not any(r.startswith("llm") for r in plan.left_out)
    assert plan.total_s <= plan.budget_s


def test_a_100k_row_set_subsamples_the_fine_tuning_and_drops_it_on_cpu():
    big = data(100_000, 5, median=20, p95=45)
    on_gpu = make_plan(big, GPU, HOUR)
    assert step(on_gpu, "tfidf-lr").max_train is None  # cheap families see every row
    assert step(on_gpu, "embed-probe").max_train is None
    ft = step(on_gpu, "encoder-ft")
    assert ft.max_train is not None and ft.max_train <= BIG_DATA_ROWS
    assert f"of {100_000:,} rows" in ft.note
    on_cpu = make_plan(big, CPU, HOUR)
    assert "encoder-ft" not in families(on_cpu)
    assert OVER.match(reason(on_cpu, "encoder-ft"))
    assert OVER.match(reason(on_cpu, "embed-probe learning curve"))  # curves only when they fit
    roomy = step(make_plan(big, GPU, 24 * HOUR), "encoder-ft")  # time to spare: the big-data cap
    assert roomy.max_train == BIG_DATA_ROWS and roomy.note == "trains on 20,000 of 100,000 rows"


def test_150_classes_make_setfit_cost_grow_with_the_classes():
    few, many = data(15_000, 5), data(15_000, 150)
    assert estimate("setfit", SETFIT_PER_CLASS * 150, many, CPU, None) > \
        20 * estimate("setfit", SETFIT_PER_CLASS * 5, few, CPU, None)
    # tfidf-lr's logistic regression: a weight row per class
    assert estimate("tfidf-lr", 15_000, many, CPU, None) > 10 * estimate("tfidf-lr", 15_000, few, CPU, None)
    cpu = make_plan(many, CPU, HOUR)
    assert "setfit" not in families(cpu) and OVER.match(reason(cpu, "setfit"))
    gpu = make_plan(many, GPU, HOUR)
    sf = step(gpu, "setfit")
    assert sf.params["num_iterations"] == SETFIT_ITERATIONS
    assert sf.max_train <= SETFIT_PER_CLASS * 150 and sf.max_train >= 8 * 150


def test_long_texts_raise_max_length_and_the_estimates():
    short, long = data(5_000, 3, median=40, p95=80), data(5_000, 3, median=400, p95=1200)
    assert estimate("encoder-ft", 5_000, long, GPU, None) > 3 * estimate("encoder-ft", 5_000, short, GPU, None)
    plan = make_plan(long, GPU, 4 * HOUR, llm=LOCAL_LLM)
    assert step(plan, "encoder-ft").params["max_length"] == 512
    assert step(plan, "llm-prompt").params["max_length"] == 2048
    assert "max_length" not in step(make_plan(short, GPU, 4 * HOUR), "encoder-ft").params


def test_a_gpu_plans_the_llm_fine_tuning_that_cpu_leaves_out():
    d = data(2_000, 4)
    gpu = make_plan(d, GPU, 2 * HOUR, llm=LOCAL_LLM)
    cpu = make_plan(d, CPU, 2 * HOUR, llm=LOCAL_LLM)
    assert {"llm-prompt", "llm-sft"} <= set(families(gpu))
    assert step(gpu, "llm-sft").model == LOCAL_LLM.model
    assert "llm-sft" not in families(cpu) and OVER.match(reason(cpu, "llm-sft"))


def test_a_slow_fine_tuning_takes_half_of_what_is_left_not_all_of_it():
    d = data(20_000, 4, validation_rows=500, test_rows=1_000)
    slow = Probe("encoder-ft", startup_s=20, train_s_per_example=0.01, predict_s_per_example=0.01)
    plan = make_plan(d, GPU, HOUR, probes={"encoder-ft": slow})
    i = families(plan).index("encoder-ft")
    left = plan.budget_s - plan.reserve_s - sum(s.estimate_s for s in plan.steps[:i])
    full = estimate("encoder-ft", 20_000, d, GPU, slow)
    assert left / 2 < full < left  # it would fit, but would starve the families after it
    ft = step(plan, "encoder-ft")
    assert ft.estimate_s <= left / 2 and ft.max_train < 20_000 and "to fit the budget" in ft.note
    assert "encoder-lora" in families(plan)
    # too few rows to shrink (under the 1,000-row floor), but it fits what is left: taken whole
    small = data(900, 4, validation_rows=100, test_rows=200)
    quick = {f: Probe(f, 10, 0, 0) for f in ("tfidf-lr", "embed-probe", "setfit")}
    whole = make_plan(small, CPU, 300, probes={**quick, "encoder-ft": slow})
    left = whole.budget_s - whole.reserve_s - 3 * (10 + RUN_OVERHEAD_S)  # 180 s after the three quick families
    assert left / 2 < estimate("encoder-ft", 900, small, CPU, slow) < left
    assert step(whole, "encoder-ft").max_train is None


def test_an_unavailable_family_is_left_out_with_its_reason_and_leaves_no_share():
    d = data(20_000, 4, validation_rows=500, test_rows=1_000)
    slow = Probe("encoder-ft", startup_s=20, train_s_per_example=0.01, predict_s_per_example=0.01)
    why = {"encoder-lora": "probe failed: out of memory"}
    plan = make_plan(d, GPU, HOUR, probes={"encoder-ft": slow}, unavailable=why)
    assert plan.left_out[0] == "encoder-lora: probe failed: out of memory"
    assert "encoder-lora" not in families(plan)
    # encoder-ft is now the last family wanted: no later family to keep a half for
    assert step(plan, "encoder-ft").max_train is None


def test_neural_families_are_probed_on_the_gpu_when_there_is_one():
    assert set(probes_wanted(CPU).values()) == {"cpu"}
    assert "llm-prompt" not in probes_wanted(CPU)
    gpu = probes_wanted(GPU, LOCAL_LLM)
    assert gpu["tfidf-lr"] == "cpu" and gpu["encoder-ft"] == gpu["llm-sft"] == "cuda"
    assert probes_wanted(GPU, LLM("m", "http://x/v1"))["llm-api"] == "cpu"


def test_a_probe_replaces_the_default_costs():
    d = data(2_000, 4)
    fast = Probe("llm-sft", startup_s=30, train_s_per_example=0.01, predict_s_per_example=0.01)
    plan = make_plan(d, CPU, 2 * HOUR, probes={"llm-sft": fast}, llm=LOCAL_LLM)
    assert "llm-sft" in families(plan)
    assert step(plan, "llm-sft").estimate_s == pytest.approx(estimate("llm-sft", 2_000, d, CPU, fast))


def test_an_endpoint_plans_llm_api_and_no_local_llm_family():
    plan = make_plan(data(2_000), CPU, HOUR, llm=LLM("gpt-4o-mini", "http://localhost:8000/v1"))
    api = step(plan, "llm-api")
    assert api.model == "gpt-4o-mini" and api.params == {"base_url": "http://localhost:8000/v1"}
    assert not {"llm-prompt", "llm-sft", "decoder-head"} & set(families(plan) + plan.left_out)


def test_plan_lines_state_every_left_out_family_with_its_reason():
    plan = make_plan(data(100_000, 150, median=300, p95=900), CPU, HOUR, llm=LOCAL_LLM)
    lines = plan.lines()
    wanted = {"tfidf-lr", "embed-probe", "setfit", "encoder-ft", "encoder-lora", "llm-prompt",
              "llm-sft", "decoder-head"}
    planned = {s.family for s in plan.steps if not s.train_sizes}
    assert wanted - planned, "this case must leave families out"
    for family in wanted - planned:
        line = next(x.strip() for x in lines if x.strip().startswith(f"{family}:"))
        assert OVER.match(line), line
    assert lines[-len(plan.left_out) - 1] == "left out:"
    assert any(x.startswith("total: about") for x in lines)


def test_the_reason_reads_like_the_issue():
    # 1 h 15 min budget; llm-sft estimated in hours on a CPU
    reason_ = reason(make_plan(data(2_000), CPU, 4500, llm=LOCAL_LLM), "llm-sft")
    assert re.fullmatch(r"llm-sft: estimated \d+ h \d\d min, over the budget", reason_)


def test_plans_save_and_load_for_resume():
    plan = make_plan(data(200), CPU, HOUR)
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan


def test_steps_become_run_specs():
    plan = make_plan(data(100_000, 5), GPU, HOUR)
    ft = step(plan, "encoder-ft").run_specs(train_file="train.csv", seed=7)
    assert len(ft) == 1 and isinstance(ft[0], RunSpec)
    assert (ft[0].method, ft[0].max_train, ft[0].seed) == ("encoder-ft", step(plan, "encoder-ft").max_train, 7)
    curve = step(plan, "tfidf-lr learning curve").run_specs(train_file="train.csv")
    assert [s.train_size for s in curve] == ["8/class", "32/class", "128/class"]


# --- bad input: the budget ------------------------------------------------------------------

def test_a_budget_under_the_smallest_plan_is_one_line_exit_2():
    plan = make_plan(data(200), CPU, 30)
    assert plan.steps == [] and OVER.match(reason(plan, "tfidf-lr"))
    with pytest.raises(ClfbenchError, match="under the smallest plan") as e:
        check_budget(plan)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)
    check_budget(make_plan(data(200), CPU, HOUR))  # enough: no error


# --- the deadline ---------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_deadline_counts_down_on_its_clock():
    clock = FakeClock()
    d = Deadline(600, clock)
    clock.now += 200
    assert (d.elapsed(), d.remaining()) == (200, 400)


def toy_plan() -> Plan:
    steps = [Step("tfidf-lr", "tfidf-lr", 100), Step("encoder-ft", "encoder-ft", 1000),
             Step("encoder-lora", "encoder-lora", 1000),
             Step("tfidf-lr", "tfidf-lr", 150, train_sizes=["8/class"])]
    return Plan(budget_s=3000, reserve_s=200, smallest_s=300, steps=steps)


def test_a_budget_that_must_cut_the_plan_cuts_and_says_why():
    clock, ran = FakeClock(), []

    def run_step(s: Step, limit_s: float) -> bool:
        ran.append((s.key, limit_s))
        clock.now += 2 * s.estimate_s  # every step takes twice its estimate
        return True

    out = schedule(toy_plan(), Deadline(3000, clock), run_step)
    # tfidf-lr 200 s, encoder-ft 2,000 s: 800 s left, 600 before the reserve
    assert out.completed == ["tfidf-lr", "encoder-ft", "tfidf-lr learning curve"]
    assert out.cut == ["encoder-lora: estimated 16 min 40 s, 10 min 00 s left before the report"]
    assert [limit for _, limit in ran] == [2800, 2600, 600]  # each step's limit: time left


def test_a_step_stopped_at_its_limit_is_reported_as_cut():
    out = schedule(toy_plan(), Deadline(3000, FakeClock()), lambda s, limit: s.family != "encoder-ft")
    assert out.cut == ["encoder-ft: stopped at its time limit (46 min 40 s)"]
    assert "encoder-lora" in out.completed


def test_resume_skips_the_steps_already_done():
    clock, ran = FakeClock(), []

    def run_step(s: Step, limit_s: float) -> bool:
        ran.append(s.key)
        clock.now += s.estimate_s
        return True

    done = {"tfidf-lr", "encoder-ft"}
    out = schedule(toy_plan(), Deadline(3000, clock), run_step, done=lambda s: s.key in done)
    assert ran == ["encoder-lora", "tfidf-lr learning curve"]
    assert out.already_done == ["tfidf-lr", "encoder-ft"] and out.cut == []


def test_schedule_tells_each_state_change_in_order():
    clock, seen = FakeClock(), []

    def run_step(s: Step, limit_s: float) -> bool:
        clock.now += 2 * s.estimate_s
        return s.family != "encoder-ft"

    schedule(toy_plan(), Deadline(3000, clock), run_step, done=lambda s: s.key == "tfidf-lr",
             on_change=lambda s, state: seen.append((s.key, state)))
    assert seen == [("tfidf-lr", "already done"), ("encoder-ft", "running"), ("encoder-ft", "stopped"),
                    ("encoder-lora", "cut"), ("tfidf-lr learning curve", "running"),
                    ("tfidf-lr learning curve", "completed")]


def test_a_step_that_fails_is_cut_with_its_error_and_the_rest_still_run():
    def run_step(s: Step, limit_s: float) -> bool:
        if s.family == "encoder-ft":
            raise RuntimeError("CUDA out of memory\ntraceback...")
        return True

    seen = []
    out = schedule(toy_plan(), Deadline(3000, FakeClock()), run_step,
                   on_change=lambda s, state: seen.append(state))
    assert out.cut == ["encoder-ft: failed: CUDA out of memory"]
    assert out.completed == ["tfidf-lr", "encoder-lora", "tfidf-lr learning curve"]
    assert "failed" in seen


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("1.5h", 5400),
                                                ("1h30m", 5400), ("600", 600), (" 2 min ", 120)])
def test_parse_duration_reads_what_users_write(text, seconds):
    from clfbench.run.plan import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "-5m", "5 parsecs", "nan", "inf", "1h-30m"])
def test_parse_duration_refuses_the_rest_in_one_line(text):
    from clfbench.run.plan import parse_duration

    with pytest.raises(ClfbenchError, match="--time-budget: expected a duration"):
        parse_duration(text)


def test_parse_llm_tells_a_local_model_from_an_endpoint():
    from clfbench.run.plan import LLM, parse_llm

    assert parse_llm("Qwen/Qwen2.5-0.5B-Instruct") == LLM("Qwen/Qwen2.5-0.5B-Instruct")
    assert parse_llm("gpt-4o-mini@https://api.openai.com/v1") == LLM("gpt-4o-mini", "https://api.openai.com/v1")
    with pytest.raises(ClfbenchError, match="--llm"):
        parse_llm("gpt@ftp://host")
