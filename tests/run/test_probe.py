"""Real probes of `clfbench decide` (run/probe.py): tfidf-lr measured on the demo data and
planned from; the families a probe leaves out (extra missing, probe failed) and why.

Only tfidf-lr is fitted for real (fast); every other family is faked."""

from __future__ import annotations

import importlib.resources
import math

import numpy as np
import pytest

from clfbench.data.tasks.loading import load_user_files
from clfbench.data.texts import LabeledTexts
from clfbench.errors import ClfbenchError
from clfbench.run import probe as probe_mod
from clfbench.run.plan import LLM, estimate, make_plan
from clfbench.run.probe import (
    Probing,
    default_probe_s,
    not_installed,
    probe_families,
    probe_family,
    probe_params,
    slice_sizes,
)
from clfbench.run.profile import MachineProfile, Probe, profile_data

CPU = MachineProfile(cpu_cores=2, memory_gb=8.0)
SETFIT_MISSING = 'setfit: not installed: pip install "clfbench[setfit]"'


@pytest.fixture(scope="module")
def demo():
    d = importlib.resources.files("clfbench") / "demo_data"
    return load_user_files(d / "train.csv", d / "validation.csv", d / "test.csv")


def test_a_real_tfidf_lr_probe_gives_positive_costs_and_a_plan(demo):
    data = profile_data(demo.train, demo.validation, demo.test)
    probing = probe_families(demo.train, data, CPU, families=["tfidf-lr"])
    assert probing.left_out == {} and 0 < probing.seconds < 120
    p = probing.probes["tfidf-lr"]
    # Per-example costs are never zero (`measure_probe` bounds a slope that noise hides);
    # start-up may be: a fit that scales through the origin has none.
    assert p.train_s_per_example > 0 and p.predict_s_per_example > 0, p
    assert p.startup_s >= 0 and all(math.isfinite(c) for c in (p.startup_s, p.train_s_per_example,
                                                                  p.predict_s_per_example)), p
    assert p.device == "cpu"
    budget = 3600 - probing.seconds  # the probes' time comes out of the budget
    plan = make_plan(data, CPU, budget, probes=probing.probes)
    tfidf = next(s for s in plan.steps if s.key == "tfidf-lr")
    assert tfidf.estimate_s == pytest.approx(estimate("tfidf-lr", data.train_rows, data, CPU, p))
    assert plan.budget_s == budget and plan.total_s <= budget


def test_a_missing_extra_leaves_the_family_out_with_the_install_line(demo, monkeypatch):
    monkeypatch.setattr(probe_mod, "missing", lambda *mods: [m for m in mods if m == "setfit"])
    assert not_installed("setfit") == SETFIT_MISSING.removeprefix("setfit: ")
    assert not_installed("tfidf-lr") is None
    called = []
    monkeypatch.setattr(probe_mod, "probe_family", lambda family, *a, **kw: called.append(family))
    data = profile_data(demo.train, demo.validation, demo.test)
    probing = probe_families(demo.train, data, CPU, families=["setfit"])
    assert probing.left_out == {"setfit": SETFIT_MISSING.removeprefix("setfit: ")}
    assert called == [] and probing.probes == {}
    plan = make_plan(data, CPU, 3600, unavailable=probing.left_out)
    assert "setfit" not in {s.family for s in plan.steps}
    assert SETFIT_MISSING in plan.left_out
    assert SETFIT_MISSING in [x.strip() for x in plan.lines()]
    assert {"encoder-ft", "encoder-lora"} <= {s.family for s in plan.steps}  # the rest still plans


def test_a_failed_probe_leaves_its_family_out_with_the_error(demo, monkeypatch):
    def fail(family, *a, **kw):
        raise ClfbenchError(f"model for {family!r} not found\nmore detail")

    monkeypatch.setattr(probe_mod, "probe_family", fail)
    data = profile_data(demo.train)
    probing = probe_families(demo.train, data, CPU, families=["encoder-ft"])
    assert probing.left_out == {"encoder-ft": "probe failed: model for 'encoder-ft' not found"}


def test_an_endpoint_is_not_probed_and_a_slow_probe_is_skipped(demo, monkeypatch):
    called = []
    monkeypatch.setattr(probe_mod, "probe_family", lambda family, *a, **kw: called.append(family))
    data = profile_data(demo.train)
    api = probe_families(demo.train, data, CPU, LLM("gpt-4o-mini", "http://localhost:8000/v1"),
                         families=["llm-api"])
    assert called == [] and api.probes == {} and api.left_out == {}
    cut = slice_sizes(len(demo.train))
    assert default_probe_s("encoder-ft", cut, data, CPU) > 30  # a model load and training
    slow = probe_families(demo.train, data, CPU, families=["encoder-ft"], max_probe_s=30)
    assert called == [] and slow.probes == {} and slow.left_out == {}


def test_probe_params_train_one_epoch_without_search_on_the_device():
    ft = probe_params("encoder-ft", None, {"max_length": 256}, "cuda", 3)
    assert ft == {"max_length": 256, "epochs": 1, "tune": "off", "device": "cuda", "seed": 3}
    assert probe_params("tfidf-lr", None, {}, "cpu", 0) == {"seed": 0}  # no model, epochs, device
    assert probe_params("llm-prompt", "m", {}, "cpu", 0)["model"] == "m"


def test_slice_sizes_follow_the_data():
    assert slice_sizes(10_000) == (32, 128)
    assert slice_sizes(60) == (15, 60)
    assert slice_sizes(7) is None  # too few rows to separate start-up from per-example cost


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_probe_family_times_stratified_slices_and_keeps_the_best_of_fast_repeats(monkeypatch):
    clock, seen, built = FakeClock(), [], []

    class Fake:  # fit: 2 s + 10 ms/text, +1 s the first time (cold); predict: 1 ms/text
        verbose = True

        def fit(self, train, validation):
            seen.append((len(train), np.bincount(train.labels).tolist(), len(validation)))
            clock.now += 2.0 + 0.01 * len(train) + (1.0 if len(seen) == 1 else 0.0)
            return self

        def predict(self, X):
            clock.now += 0.001 * len(X)

    def make(name, **kw):
        built.append((name, kw))
        return Fake()

    monkeypatch.setattr(probe_mod, "make_method", make)
    monkeypatch.setattr(probe_mod, "FAST_S", 5.0)  # every run here is "fast": repeated
    train = LabeledTexts([f"t{i}" for i in range(400)], None, np.arange(400) % 4, list("abcd"))
    p = probe_family("encoder-ft", train, params={"max_length": 256}, device="cuda", clock=clock)
    assert [n for n, _, _ in seen] == [32] * 3 + [128] * 3
    assert seen[0][1] == [8, 8, 8, 8] and seen[0][2] == probe_mod.VALIDATION_ROWS
    assert built[0] == ("encoder-ft", {"max_length": 256, "epochs": 1, "tune": "off",
                                       "device": "cuda", "seed": 0})
    # the cold first fit is discarded by the best of three
    assert p == Probe("encoder-ft", pytest.approx(2.0), pytest.approx(0.01), pytest.approx(0.001),
                      "cuda")


def test_probing_reports_nothing_for_no_family(demo):
    probing = probe_families(demo.train, profile_data(demo.train), CPU, families=[])
    assert probing == Probing(seconds=probing.seconds)
