"""When the report may say "best": many configurations, intervals of means over seeds, the same
test examples only, identical runs counted once, degenerate runs, tuning and truncation."""

from __future__ import annotations

import re
import statistics

import numpy as np
import pandas as pd
import pytest

from clfbench.report import build_report
from clfbench.report.runs import group_configs, load_runs


def _noisy(rng: np.random.Generator, gold: np.ndarray, acc: float) -> np.ndarray:
    """Predictions right on about `acc` of the examples (binary labels)."""
    return np.where(rng.random(len(gold)) < acc, gold, 1 - gold)


def _row(md: str, label: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith((f"| {label} |", f"| **{label}** |")))
    return [c.strip() for c in line.strip("|").split("|")]


def _twelve(root, make_run, leader_acc: float) -> None:
    rng = np.random.default_rng(5)
    gold = rng.integers(0, 2, 300)
    for i in range(12):
        acc = leader_acc if i == 0 else 0.70
        make_run(root, f"c{i}", task="bin", method="tfidf-lr", labels=["n", "p"], gold=gold.tolist(),
                 pred=_noisy(rng, gold, acc).tolist(), params={"C": float(i + 1)})


def test_clear_leader_among_twelve_configurations_is_best(tmp_path, make_run):
    # 66 pairs x 1,000 resamples could never reach Holm-adjusted p < 0.05 (1/1001 x 66 > 0.05).
    root = tmp_path / "res"
    root.mkdir()
    _twelve(root, make_run, leader_acc=0.986)
    out = build_report(root, tmp_path / "rep", n_boot=1000)
    ta = out.analyses[0]
    assert len(ta.configs) == 12
    for metric in ("macro_f1", "accuracy"):
        v = ta.verdicts[metric]
        assert v.significant and v.leader == "tfidf-lr C=1", v.text
    # the family is the leader against each of the 11 others, not all 66 pairs
    assert len(ta.comparisons) == 11
    assert all(ta.verdicts["macro_f1"].leader in (c.a, c.b) for c in ta.comparisons)
    md = (out.out_dir / "performance_table.md").read_text()
    assert "Macro-F1: best: tfidf-lr C=1, significantly ahead of" in md


def test_real_tie_among_twelve_configurations_stays_a_tie(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    _twelve(root, make_run, leader_acc=0.70)
    out = build_report(root, tmp_path / "rep", n_boot=1000)
    for v in out.analyses[0].verdicts.values():
        assert not v.significant and v.text.startswith("tie:"), v.text


def test_shown_mean_lies_inside_its_interval_for_very_different_seeds(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    rng = np.random.default_rng(2)
    gold = rng.integers(0, 2, 200)
    accs = []
    for seed, acc in ((1, 0.35), (2, 0.42), (3, 0.95)):
        pred = _noisy(rng, gold, acc)
        accs.append(float((pred == gold).mean()))
        make_run(root, f"s{seed}", task="bin", method="encoder-ft", model="m", labels=["n", "p"],
                 gold=gold.tolist(), pred=pred.tolist(), seed=seed)
    out = build_report(root, tmp_path / "rep", n_boot=300)
    md = (out.out_dir / "performance_table.md").read_text()
    cells = _row(md, "encoder-ft/m")
    assert cells[2].startswith(f"{np.mean(accs):.4f} ± {statistics.stdev(accs):.4f} [")
    for cell in cells[2:5]:  # accuracy, macro-F1, MCC
        value, low, high = re.match(r"(-?[\d.]+) ± [\d.]+ \[(-?[\d.]+), (-?[\d.]+)\]", cell).groups()
        assert float(low) <= float(value) <= float(high), cell
    assert "CI of that mean" in md


def test_configurations_on_different_test_examples_are_not_ranked_together(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 2, 500)
    big = _noisy(rng, gold, 0.88)
    make_run(root, "big", task="sst2", method="encoder-ft", model="m", labels=["n", "p"], gold=gold.tolist(),
             pred=big.tolist(), spec={"max_eval": 500})
    small_ids = [f"ex{i}" for i in range(100)]  # the first 100 of the same examples, another data seed
    make_run(root, "small", task="sst2", method="tfidf-lr", labels=["n", "p"], gold=gold[:100].tolist(),
             pred=_noisy(rng, gold[:100], 0.8).tolist(), ids=small_ids, spec={"max_eval": 100, "data_seed": 7})
    out = build_report(root, tmp_path / "rep", n_boot=200)
    names = sorted(a.task for a in out.analyses)
    assert len(names) == 2 and all(n.startswith("sst2 [") for n in names)
    assert any("n=100" in n and "data_seed 7" in n for n in names)
    for a in out.analyses:
        assert len(a.configs) == 1 and a.comparisons == []
        assert "each set is ranked on its own" in a.group_note
    df = pd.read_csv(out.csv).set_index("run_id")
    assert df.loc["big", "comparison_group"] != df.loc["small", "comparison_group"]
    summary = (out.out_dir / "performance_table.md").read_text().split("### sst2")[0]
    assert "tie:" not in summary


def test_data_seed_is_part_of_the_configuration_not_a_seed(tmp_path, make_run):
    # Two data seeds that (here) kept the same test examples: two configurations, never
    # pooled as two seeds of one.
    root = tmp_path / "res"
    root.mkdir()
    rng = np.random.default_rng(4)
    gold = rng.integers(0, 2, 80)
    for ds in (1, 2):
        make_run(root, f"d{ds}", task="t", method="tfidf-lr", labels=["n", "p"], gold=gold.tolist(),
                 pred=_noisy(rng, gold, 0.8).tolist(), spec={"data_seed": ds})
    configs = group_configs(load_runs(root))["t"]
    assert len(configs) == 2 and all(len(c.runs) == 1 for c in configs)
    assert {c.label for c in configs} == {"tfidf-lr (train all, eval all, data_seed 1)",
                                          "tfidf-lr (train all, eval all, data_seed 2)"}


def test_few_shot_draws_pool_with_seeds_into_one_configuration(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    rng = np.random.default_rng(6)
    gold = rng.integers(0, 2, 80)
    for seed in (99, 100):
        for draw in (0, 1, 2):
            spec = {"draw": draw} if draw else {}
            make_run(root, f"s{seed}d{draw}", task="t", method="llm-prompt", labels=["n", "p"],
                     gold=gold.tolist(), pred=_noisy(rng, gold, 0.7).tolist(), seed=seed,
                     params={"shots": 5, "seed": seed * 1000 + draw}, spec=spec)
    configs = group_configs(load_runs(root))["t"]
    assert len(configs) == 1 and len(configs[0].runs) == 6


def test_identical_runs_count_once(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    rng = np.random.default_rng(6)
    gold = rng.integers(0, 2, 100)
    pred = _noisy(rng, gold, 0.8).tolist()
    # a deterministic method: three seeds, the same predictions
    for seed in (1, 2, 3):
        make_run(root, f"det{seed}", task="t", method="tfidf-lr", labels=["n", "p"], gold=gold.tolist(),
                 pred=pred, seed=seed)
    # a re-run that only added --save-model
    make_run(root, "det1-saved", task="t", method="tfidf-lr", labels=["n", "p"], gold=gold.tolist(),
             pred=pred, seed=1, spec={"save_model": True})
    out = build_report(root, tmp_path / "rep", n_boot=100)
    (c,) = out.analyses[0].configs
    assert [r.run_id for r in c.runs] == ["det1", "det2", "det3"] and c.n_distinct == 1
    md = (out.out_dir / "performance_table.md").read_text()
    cells = _row(md, "tfidf-lr")
    assert cells[1] == "1 (3 seeds, identical predictions)"
    assert "±" not in cells[2]
    assert "seeds gave identical predictions" in md
    assert "det1-saved repeats det1" in md
    assert pd.read_csv(out.csv).set_index("run_id").loc["det1-saved", "duplicate_of"] == "det1"
    # one configuration: no tie anywhere
    assert "tie" not in md.lower()


def _degenerate(reason: str) -> dict:
    return {"degenerate": True, "degenerate_reasons": [reason]}


def test_degenerate_configuration_is_marked_everywhere_and_never_best(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 2, 300)
    make_run(root, "collapsed", task="t", method="encoder-ft", model="m", labels=["n", "p"], gold=gold.tolist(),
             pred=_noisy(rng, gold, 0.97).tolist(), p50=1.0,
             extra_metrics=_degenerate("validation predictions collapsed to one class"))
    make_run(root, "ok", task="t", method="tfidf-lr", labels=["n", "p"], gold=gold.tolist(),
             pred=_noisy(rng, gold, 0.6).tolist(), p50=5.0)
    out = build_report(root, tmp_path / "rep", n_boot=200)
    ta = out.analyses[0]
    for v in ta.verdicts.values():
        assert v.leader == "tfidf-lr" and v.runner_up is None and "encoder-ft/m" in v.excluded
    assert not ta.pareto["encoder-ft/m"]
    mark = "encoder-ft/m ⚠ degenerate"
    for name in ("performance_table.md", "efficiency_table.md", "decision_table.md"):
        assert mark in (out.out_dir / name).read_text(), name
    perf = (out.out_dir / "performance_table.md").read_text()
    assert "validation predictions collapsed to one class" in perf
    summary = _row(perf, "t")
    assert summary[2].startswith("tfidf-lr") and summary[5].startswith("tfidf-lr") and mark in summary[6]
    assert _row((out.out_dir / "decision_table.md").read_text(), mark)[-1] == "-"
    assert bool(pd.read_csv(out.csv).set_index("run_id").loc["collapsed", "degenerate"])
    assert "⚠ degenerate" in out.html.read_text()


def test_every_configuration_degenerate_has_no_best(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    gold = [0, 1] * 30
    for c in (1.0, 2.0):
        make_run(root, f"c{c}", task="t", method="tfidf-lr", labels=["n", "p"], gold=gold, pred=[0] * 60,
                 params={"C": c}, extra_metrics=_degenerate("test predictions collapsed to one class"))
    out = build_report(root, tmp_path / "rep", n_boot=100)
    md = (out.out_dir / "performance_table.md").read_text()
    assert "none: every configuration is degenerate" in _row(md, "t")[2]
    assert "no verdict: every configuration is degenerate" in md


def test_tuning_table_and_truncation_warning(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    rng = np.random.default_rng(8)
    gold = rng.integers(0, 2, 50)
    tuning = {"enabled": True, "method": "optuna grid over lr", "seconds": 12.5,
              "trials": [{"number": 0, "params": {"lr": 2e-5}, "val_macro_f1": 0.61, "epochs_run": 3, "state": "COMPLETE"},
                         {"number": 1, "params": {"lr": 1e-4}, "val_macro_f1": 0.83, "epochs_run": 2, "state": "COMPLETE"},
                         {"number": 2, "params": {"lr": 2e-4}, "val_macro_f1": None, "epochs_run": 1, "state": "PRUNED"}],
              "best_params": {"lr": 1e-4}, "best_val_macro_f1": 0.83}
    make_run(root, "enc", task="t", method="encoder-ft", model="m", labels=["n", "p"], gold=gold.tolist(),
             pred=_noisy(rng, gold, 0.8).tolist(), extra_metrics={"fit_info": {"tuning": tuning}},
             inference_info={"max_length": 128, "test_truncated": 10, "test_total": 50})
    make_run(root, "tfidf", task="t", method="tfidf-lr", labels=["n", "p"], gold=gold.tolist(),
             pred=_noisy(rng, gold, 0.8).tolist())
    make_run(root, "fixed", task="t", method="encoder-lora", model="m", labels=["n", "p"], gold=gold.tolist(),
             pred=_noisy(rng, gold, 0.8).tolist(),
             extra_metrics={"fit_info": {"tuning": {"enabled": False, "reason": "tune=off", "lr": 2e-4}}})
    out = build_report(root, tmp_path / "rep", n_boot=100)
    tun = (out.out_dir / "tuning_table.md").read_text()
    assert "| encoder-ft/m | 1 | lr=0.0001 | 0.8300 | 2 | COMPLETE | yes |" in tun
    assert "| encoder-ft/m | 2 | lr=0.0002 | - | 1 | PRUNED |  |" in tun
    assert "| encoder-ft/m | chosen | lr=0.0001 | 0.8300 | - | - | yes |" in tun
    assert "encoder-ft/m: optuna grid over lr, 3 trials, 12.50 s." in tun
    assert "| encoder-lora/m | no search | lr=0.0002 | - | - | - | yes |" in tun
    assert "encoder-lora/m: not tuned (tune=off)." in tun
    eff = (out.out_dir / "efficiency_table.md").read_text()
    assert _row(eff, "encoder-ft/m")[-2:] == ["128 tokens", "20.0%"]
    assert _row(eff, "tfidf-lr")[-2:] == ["no limit", "-"]
    perf = (out.out_dir / "performance_table.md").read_text()
    assert "saw different amounts of text" in perf and "20.0% of test texts cut" in perf
    assert "hyper-parameter tuning" in out.html.read_text()
    df = pd.read_csv(out.csv).set_index("run_id")
    assert df.loc["enc", "truncated_share"] == 0.2 and df.loc["enc", "max_tokens"] == 128


def test_all_invalid_run_shows_no_ece(tmp_path, make_run):
    # An older metrics.json recorded ECE 0.0 for a run whose every output was invalid.
    root = tmp_path / "res"
    root.mkdir()
    gold = [0, 1] * 10
    make_run(root, "gen", task="t", method="llm-prompt", model="m", labels=["n", "p"], gold=gold, pred=[-1] * 20,
             extra_metrics={"ece": 0.0, "brier": 0.0})
    out = build_report(root, tmp_path / "rep", n_boot=100)
    cells = _row((out.out_dir / "performance_table.md").read_text(), "llm-prompt/m")
    assert cells[5] == "1.000" and cells[6] == "-"


def _right_on(gold: np.ndarray, acc: float, shift: int) -> np.ndarray:
    right = np.roll(np.arange(len(gold)) < round(acc * len(gold)), shift)
    return np.where(right, gold, 1 - gold)


def test_accuracy_verdict_tests_the_mean_over_seeds_the_table_shows(tmp_path, make_run):
    # Seed means 0.812 vs 0.809 (+0.3 points); the median-macro-F1 runs are 0.85 vs 0.80, which
    # McNemar alone calls a significant +5 points. The verdict must be about the means, and
    # count the seed spread.
    root = tmp_path / "res"
    root.mkdir()
    gold = np.arange(1000) % 2
    for label, accs in (("a", (0.72, 0.85, 0.866)), ("b", (0.80, 0.80, 0.827))):
        for seed, acc in enumerate(accs):
            make_run(root, f"{label}{seed}", task="bin", method="encoder-ft", model=f"m{label}", labels=["n", "p"],
                     gold=gold.tolist(), pred=_right_on(gold, acc, 3 * seed + (label == "b")).tolist(), seed=seed)
    out = build_report(root, tmp_path / "rep", n_boot=500)
    (comp,) = out.analyses[0].comparisons
    assert comp.accuracy_a - comp.accuracy_b == pytest.approx(0.003, abs=1e-9)
    assert comp.accuracy.delta == pytest.approx(0.003, abs=1e-9) and comp.accuracy.p_value > 0.5
    v = out.analyses[0].verdicts["accuracy"]
    assert not v.significant and v.text.startswith("tie:"), v.text
    assert "more seeds would tell" in v.text
    md = (out.out_dir / "significance_tests.md").read_text()
    assert "+0.0030 [" in md and "McNemar" not in md


def test_single_run_of_a_trained_neural_method_is_called_out(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 2, 400)
    make_run(root, "enc", task="bin", method="encoder-ft", model="m", labels=["n", "p"], gold=gold.tolist(),
             pred=_noisy(rng, gold, 0.95).tolist())
    make_run(root, "lr", task="bin", method="tfidf-lr", labels=["n", "p"], gold=gold.tolist(),
             pred=_noisy(rng, gold, 0.7).tolist())
    v = build_report(root, tmp_path / "rep", n_boot=300).analyses[0].verdicts["macro_f1"]
    assert v.significant and v.leader == "encoder-ft/m"
    assert v.one_run == ["encoder-ft/m"] and "one run only of encoder-ft/m" in v.text, v.text


def test_runs_on_a_changed_test_file_are_a_group_of_their_own(tmp_path, make_run):
    """Same ids, 40 gold labels changed: that configuration leads, but it is scored on other
    examples. It gets its own group with a note, and the rest are still compared."""
    root = tmp_path / "res"
    root.mkdir()
    rng = np.random.default_rng(4)
    gold = rng.integers(0, 2, 400)
    changed = gold.copy()
    changed[:40] = 1 - changed[:40]
    make_run(root, "old-file", task="bin", method="encoder-ft", model="m", labels=["n", "p"],
             gold=changed.tolist(), pred=changed.tolist())
    make_run(root, "good", task="bin", method="tfidf-lr", labels=["n", "p"], gold=gold.tolist(),
             pred=_noisy(rng, gold, 0.95).tolist(), params={"C": 1.0})
    make_run(root, "weak", task="bin", method="tfidf-lr", labels=["n", "p"], gold=gold.tolist(),
             pred=_noisy(rng, gold, 0.70).tolist(), params={"C": 2.0})
    out = build_report(root, tmp_path / "rep", n_boot=300)
    assert len(out.analyses) == 2
    by_size = {len(a.configs): a for a in out.analyses}
    alone, rest = by_size[1], by_size[2]
    assert [c.label for c in alone.configs] == ["encoder-ft/m"]
    assert "different gold labels (a changed test file)" in alone.group_note
    v = rest.verdicts["macro_f1"]
    assert v.significant and v.leader == "tfidf-lr C=1", v.text
    assert not any("gold labels" in n for n in rest.notes)


def test_training_set_sizes_are_shown_and_a_difference_is_warned_about(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    rng = np.random.default_rng(6)
    gold = rng.integers(0, 2, 300)
    make_run(root, "enc", task="bin", method="encoder-ft", model="m", labels=["n", "p"], gold=gold.tolist(),
             pred=_noisy(rng, gold, 0.8).tolist(), extra_metrics={"n_train": 1000})
    make_run(root, "lr", task="bin", method="tfidf-lr", labels=["n", "p"], gold=gold.tolist(),
             pred=_noisy(rng, gold, 0.9).tolist(), extra_metrics={"n_train": 4907})
    out = build_report(root, tmp_path / "rep", n_boot=300)
    md = (out.out_dir / "performance_table.md").read_text()
    assert "| n train |" in md and _row(md, "encoder-ft/m")[-1] == "1000" and _row(md, "tfidf-lr")[-1] == "4907"
    assert "trained on different amounts of labelled data (tfidf-lr: 4907; encoder-ft/m: 1000)" in md
