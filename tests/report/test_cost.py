"""Cost, utility, Pareto and break-even: the paper's worked example and hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from clfbench.errors import ClfbenchError
from clfbench.report import cost


def test_serverless_formula_reproduces_worked_example():
    # 2 vCPU, 2 GiB, $24 per 1M vCPU-s, $2.50 per 1M GiB-s, p50 97.88 ms -> $5.19 per 1M requests
    usd = cost.serverless_usd_per_1m(97.88, 2, 2, 24e-6, 2.5e-6)
    assert usd == pytest.approx(0.09788 * 53e-6 * 1e6)
    assert round(usd, 2) == 5.19
    profile = cost.get_profile("serverless-cpu-2vcpu-2gib")
    assert cost.usd_per_1m_sequential(97.88, profile) == pytest.approx(usd)


def test_utility_reproduces_worked_example():
    # DistilBERT SST-2: F1 0.9349, $5.19 per 1M, p50 97.88 ms, tau 500 -> 100*U = 14.81
    u = cost.utility(0.9349, 5.19, 97.88, 500)
    assert round(100 * u, 2) == 14.81
    assert u == pytest.approx(0.9349 / 5.19 * math.exp(-97.88 / 500))
    assert cost.utility(0.9, None, 10, 500) is None
    assert cost.utility(0.9, 0.0, 10, 500) is None


def test_batch_cost_from_throughput_and_hourly_price():
    p = cost.HardwareProfile("box", usd_per_hour=3.6)
    # 1e6 / 100 samples/s = 10,000 s = 2.78 h -> $10
    assert cost.usd_per_1m_batch(100.0, p) == pytest.approx(1e6 / 100 / 3600 * 3.6)
    assert cost.usd_per_1m_batch(100.0, p) == pytest.approx(10.0)
    assert cost.usd_per_1m_batch(0, p) is None
    assert cost.training_usd(1800, p) == pytest.approx(1.8)


def test_api_cost_from_tokens():
    # GPT-4o $2.50 in / $10 out per 1M tokens: 120 in + 3 out tokens per request
    assert cost.api_usd_per_1m(120, 3, 2.5, 10) == pytest.approx(120 * 2.5 + 3 * 10)
    run = {"method": "llm-api", "model": "gpt-4o-2024-08-06", "inference_info": {"mean_input_tokens": 120, "mean_output_tokens": 3},
           "latency_ms_p50": 500, "throughput_sps": 2}
    c = cost.run_cost(run, cost.get_profile(None), api_prices={"gpt-4o": {"input": 2.5, "output": 10.0}})
    assert c["usd_per_1m"] == pytest.approx(330.0)
    assert c["usd_per_1m_request"] is None and c["train_usd"] == 0.0
    measured = {"model": "x", "inference_info": {"usd_per_1m_requests": 42.0}}
    assert cost.run_cost(measured, cost.get_profile(None))["usd_per_1m"] == 42.0
    # A local LLM reporting token counts is priced by its hardware, not by the API table.
    local = {"method": "llm-prompt", "model": "gpt-4o", "latency_ms_p50": 100.0, "throughput_sps": 5.0,
             "inference_info": {"mean_input_tokens": 120, "mean_output_tokens": 3}}
    c = cost.run_cost(local, cost.get_profile(None))
    assert c["usd_per_1m_api"] is None and c["usd_per_1m"] == pytest.approx(0.1 * 53e-6 * 1e6)
    assert c["mean_input_tokens"] == 120


def test_local_run_cost_per_request_and_batched():
    p = cost.get_profile(None)
    run = {"latency_ms_p50": 97.88, "throughput_sps": 200.0, "train_seconds": 3600.0, "inference_info": {}}
    c = cost.run_cost(run, p)
    assert c["usd_per_1m"] == pytest.approx(5.18764)
    assert c["usd_per_1m_batch"] == pytest.approx(1e6 / 200 * 53e-6)
    assert c["train_usd"] == pytest.approx(3600 * 53e-6)
    assert cost.run_cost(run, p, basis="batch")["usd_per_1m"] == pytest.approx(c["usd_per_1m_batch"])
    with pytest.raises(ClfbenchError):
        cost.run_cost(run, p, basis="monthly")


def test_pareto_front_hand_computed():
    pts = [
        (0.90, 100.0, 5.0),   # A: best quality
        (0.85, 10.0, 1.0),    # B: fast and cheap
        (0.84, 20.0, 2.0),    # C: dominated by B
        (0.90, 100.0, 6.0),   # D: dominated by A (same quality/latency, dearer)
        (0.50, 5.0, None),    # E: fastest, unknown cost -> still undominated on latency
    ]
    assert cost.pareto_front(pts) == [True, True, False, False, True]


def test_break_even_hand_computed():
    # A: $10 training, $1 per 1M; B: no training, $101 per 1M -> equal after 100,000 requests
    n = cost.break_even_requests(10.0, 1.0, 0.0, 101.0)
    assert n == pytest.approx(100_000)
    total = lambda t, per, k: t + per * k / 1e6  # noqa: E731
    assert total(10, 1, n) == pytest.approx(total(0, 101, n))
    assert cost.break_even_requests(0.0, 1.0, 5.0, 2.0) is None  # A cheaper at every volume
    assert cost.break_even_requests(1.0, 2.0, 1.0, 2.0) is None


def test_shipped_profiles_load():
    profiles = cost.load_hardware()
    assert cost.DEFAULT_PROFILE in profiles
    assert all(p.usd_per_second > 0 for p in profiles.values())


@pytest.mark.parametrize("body,needle", [
    ("profiles: {x: {usd_per_hour: -1}}", "profiles.x.usd_per_hour"),
    ("profiles: {x: {vcpu: 2, gib: 2, usd_per_vcpu_second: 1}}", "missing usd_per_gib_second"),
    ("profiles: {x: {usd_per_hour: 1, colour: red}}", "unknown key(s) colour"),
    ("profiles: {x: {usd_per_hour: 1, vcpu: 2}}", "not both"),
    ("nothing: here", "'profiles'"),
    ("profiles: [", "invalid YAML"),
])
def test_bad_hardware_file(tmp_path: Path, body: str, needle: str):
    f = tmp_path / "hw.yaml"
    f.write_text(body)
    with pytest.raises(ClfbenchError) as e:
        cost.load_hardware(f)
    assert str(f) in str(e.value) and needle in str(e.value)


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ClfbenchError, match="serverless-cpu-2vcpu-2gib"):
        cost.get_profile("no-such-machine")
