"""What a method costs to serve and to train, and which one to pick.

Hardware profiles (src/clfbench/pricing/hardware.yaml, or a user's file with the same
layout) price a machine either by the hour (`usd_per_hour`) or serverless by resources
(`usd_per_vcpu_second`, `usd_per_gib_second` with `vcpu` and `gib`). Both reduce to a
price per second of machine time, from which:

- batch serving (requests queued and served at measured throughput):
  USD per 1M requests = 1e6 / throughput_sps * usd_per_second
  (= 1e6 / throughput / 3600 * usd_per_hour for an hourly machine);
- one request at a time (each request holds the machine for its p50 latency):
  USD per 1M requests = p50_s * usd_per_second * 1e6
  (= p50_s * (vcpu * price_vcpu_s + gib * price_gib_s) * 1e6 for a serverless function);
- an API model: mean input tokens x input price + mean output tokens x output price, prices
  in USD per 1M tokens (which is directly USD per 1M requests).

Decision aids: the Pareto front over (quality up, p50 latency down, cost down), the utility
U = (F1 / cost) * exp(-p50_ms / tau) (tables show 100*U), and the break-even request volume
between two options once training cost (train_seconds x hourly price) is counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clfbench.data.files import read_yaml
from clfbench.engines.pricing import load_prices, price_for
from clfbench.errors import ClfbenchError

DEFAULT_HARDWARE = Path(__file__).resolve().parents[1] / "pricing" / "hardware.yaml"
DEFAULT_PROFILE = "serverless-cpu-2vcpu-2gib"
TAUS_MS = (250.0, 500.0, 1000.0)


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    usd_per_hour: float | None = None
    usd_per_vcpu_second: float | None = None
    usd_per_gib_second: float | None = None
    vcpu: float | None = None
    gib: float | None = None
    description: str = ""

    @property
    def usd_per_second(self) -> float:
        """Machine price per second of use (hourly price / 3600, or vCPU-s + GiB-s prices)."""
        if self.usd_per_hour is not None:
            return self.usd_per_hour / 3600.0
        return self.vcpu * self.usd_per_vcpu_second + self.gib * self.usd_per_gib_second

    @property
    def hourly(self) -> float:
        return self.usd_per_second * 3600.0


def _number(path: Path, name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ClfbenchError(f"{path}: profiles.{name}.{key}: expected a non-negative number, got {value!r}")
    return float(value)


def load_hardware(path: str | Path | None = None) -> dict[str, HardwareProfile]:
    """Profiles by name from a hardware YAML (`profiles: {name: {...}}`); shipped file if None."""
    path = Path(path) if path is not None else DEFAULT_HARDWARE
    raw = read_yaml(path, "hardware profile file")
    profiles = raw.get("profiles") if isinstance(raw, dict) else None
    if not isinstance(profiles, dict) or not profiles:
        raise ClfbenchError(f"{path}: expected a non-empty 'profiles' mapping of name -> prices")
    out = {}
    for name, entry in profiles.items():
        if not isinstance(entry, dict):
            raise ClfbenchError(f"{path}: profiles.{name}: expected a mapping")
        known = {"usd_per_hour", "usd_per_vcpu_second", "usd_per_gib_second", "vcpu", "gib", "description"}
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ClfbenchError(f"{path}: profiles.{name}: unknown key(s) {', '.join(unknown)}")
        nums = {k: _number(path, name, k, v) for k, v in entry.items() if k != "description"}
        serverless = ("usd_per_vcpu_second", "usd_per_gib_second", "vcpu", "gib")
        if "usd_per_hour" in nums:
            if any(k in nums for k in serverless):
                raise ClfbenchError(f"{path}: profiles.{name}: give usd_per_hour or serverless prices, not both")
        elif not all(k in nums for k in serverless):
            missing = [k for k in serverless if k not in nums]
            raise ClfbenchError(
                f"{path}: profiles.{name}: give usd_per_hour, or all of {', '.join(serverless)} "
                f"(missing {', '.join(missing)})"
            )
        out[str(name)] = HardwareProfile(name=str(name), description=str(entry.get("description", "")), **nums)
    return out


def get_profile(name: str | None, path: str | Path | None = None) -> HardwareProfile:
    profiles = load_hardware(path)
    name = name or DEFAULT_PROFILE
    if name not in profiles:
        raise ClfbenchError(
            f"hardware profile {name!r} not in {path or DEFAULT_HARDWARE}; known: {', '.join(sorted(profiles))}"
        )
    return profiles[name]


# --- serving cost ----------------------------------------------------------------------------
def usd_per_1m_batch(throughput_sps: float | None, profile: HardwareProfile) -> float | None:
    """Batch serving: 1e6 / throughput * price per second (None without a throughput)."""
    if not throughput_sps or throughput_sps <= 0:
        return None
    return 1e6 / throughput_sps * profile.usd_per_second


def usd_per_1m_sequential(p50_ms: float | None, profile: HardwareProfile) -> float | None:
    """One request at a time: p50 seconds x price per second x 1e6."""
    if p50_ms is None or p50_ms < 0:
        return None
    return p50_ms / 1000.0 * profile.usd_per_second * 1e6


def serverless_usd_per_1m(p50_ms: float, vcpu: float, gib: float, usd_per_vcpu_s: float, usd_per_gib_s: float) -> float:
    """The serverless formula written out: p50_s * (vcpu * price_vcpu_s + gib * price_gib_s) * 1e6."""
    return p50_ms / 1000.0 * (vcpu * usd_per_vcpu_s + gib * usd_per_gib_s) * 1e6


def api_usd_per_1m(mean_input_tokens: float, mean_output_tokens: float, price_in: float, price_out: float) -> float:
    """API cost per 1M requests = mean tokens x price per 1M tokens, input plus output."""
    return mean_input_tokens * price_in + mean_output_tokens * price_out


def training_usd(train_seconds: float | None, profile: HardwareProfile) -> float:
    """One-off training cost: training seconds x the machine's hourly price / 3600."""
    return (train_seconds or 0.0) * profile.usd_per_second


def run_cost(
    run: dict[str, Any],
    profile: HardwareProfile,
    basis: str = "request",
    api_prices: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Cost columns for one run (a metrics.json dict).

    API runs (method llm-api, or inference_info with usd_per_1m_requests or an endpoint) are
    priced by mean tokens x the price table;
    local runs by the hardware profile, both per request (p50) and batched (throughput).
    `usd_per_1m` is the figure used for utility and the Pareto front: the API cost, else the
    `basis` ("request" = one at a time from p50, "batch" = from throughput).
    """
    if basis not in ("request", "batch"):
        raise ClfbenchError(f"cost basis must be 'request' or 'batch', got {basis!r}")
    info = run.get("inference_info") or {}
    if not isinstance(info, dict):
        info = {}
    mean_in = _num(info.get("mean_input_tokens"))
    mean_out = _num(info.get("mean_output_tokens"))
    # An API run (priced per token) is one that says so; a local LLM that reports token
    # counts is still priced by the hardware it ran on.
    is_api = (str(run.get("method", "")).startswith("llm-api") or "usd_per_1m_requests" in info
              or "endpoint" in info)
    api_usd = _num(info.get("usd_per_1m_requests"))
    api_source = "measured by the run" if api_usd is not None else None
    if is_api and api_usd is None and mean_in is not None and run.get("model"):
        prices = api_prices if api_prices is not None else _safe_prices()
        entry = price_for(str(run["model"]), prices)
        if entry is not None:
            api_usd = api_usd_per_1m(mean_in, mean_out or 0.0, entry["input"], entry["output"])
            api_source = "tokens x price table"
    out: dict[str, Any] = {
        "mean_input_tokens": mean_in,
        "mean_output_tokens": mean_out,
        "hardware": profile.name,
    }
    if is_api:
        out.update(usd_per_1m_request=None, usd_per_1m_batch=None, usd_per_1m_api=api_usd,
                   usd_per_1m=api_usd, cost_source=api_source or "API price unknown",
                   train_usd=_num(info.get("optimisation_usd")) or 0.0)  # llm-dspy's optimisation calls
        return out
    per_request = usd_per_1m_sequential(_num(run.get("latency_ms_p50")), profile)
    batch = usd_per_1m_batch(_num(run.get("throughput_sps")), profile)
    out.update(
        usd_per_1m_request=per_request,
        usd_per_1m_batch=batch,
        usd_per_1m_api=None,
        # served: batched at the best throughput `clfbench loadtest --attach` measured over HTTP
        usd_per_1m_served=usd_per_1m_batch(_num((run.get("served") or {}).get("best_texts_per_s")), profile),
        usd_per_1m=per_request if basis == "request" else batch,
        cost_source=f"{profile.name}, {'p50 one at a time' if basis == 'request' else 'batch throughput'}",
        train_usd=training_usd(_num(run.get("train_seconds")), profile),
    )
    return out


def _safe_prices() -> dict[str, dict[str, float]]:
    try:
        return load_prices()
    except ClfbenchError:
        return {}


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return None
    return float(v)


# --- decision aids ---------------------------------------------------------------------------
def utility(f1: float, usd_per_1m: float | None, p50_ms: float | None, tau_ms: float) -> float | None:
    """U = (F1 / cost) * exp(-p50 / tau); None when cost or latency is unknown or cost is 0."""
    if usd_per_1m is None or p50_ms is None or usd_per_1m <= 0 or tau_ms <= 0:
        return None
    return f1 / usd_per_1m * math.exp(-p50_ms / tau_ms)


def pareto_front(points: Sequence[tuple[float, float | None, float | None]]) -> list[bool]:
    """Non-dominated flags for (quality, p50_ms, usd_per_1m): quality up, latency and cost down.

    A point is dominated when another is at least as good on all three and strictly better on
    one. An unknown latency or cost counts as worst on that axis.
    """
    inf = float("inf")
    pts = [(q, inf if lat is None else lat, inf if c is None else c) for q, lat, c in points]
    flags = []
    for i, (q, lat, c) in enumerate(pts):
        dominated = any(
            q2 >= q and l2 <= lat and c2 <= c and (q2 > q or l2 < lat or c2 < c)
            for j, (q2, l2, c2) in enumerate(pts) if j != i
        )
        flags.append(not dominated)
    return flags


def break_even_requests(
    train_usd_a: float, usd_per_1m_a: float, train_usd_b: float, usd_per_1m_b: float
) -> float | None:
    """Requests N at which A and B cost the same in total (training + N x per-request cost).

    total(N) = train_usd + N * usd_per_1m / 1e6. Returns N > 0, or None when one option is
    cheaper (or equal) at every volume.
    """
    per_a = usd_per_1m_a / 1e6
    per_b = usd_per_1m_b / 1e6
    if per_a == per_b:
        return None
    n = (train_usd_a - train_usd_b) / (per_b - per_a)
    return n if n > 0 else None
