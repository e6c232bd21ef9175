"""A reader can use the report: no empty tables, utility relative to the best, whole names in plots."""

from __future__ import annotations

import numpy as np
import pytest

from clfbench.report import build_report

pytest.importorskip("matplotlib")

LONG = "encoder-ft/minilm batch_size=16 epochs=4 lr="  # 45 characters before the learning rate


def _two_configs(root, make_run, params=({}, {})):
    gold = [0, 1] * 20
    make_run(root, "fast", task="t", method="tfidf-lr", labels=["n", "p"], gold=gold,
             pred=[g if i % 5 else 1 - g for i, g in enumerate(gold)], p50=1.0, params=params[0])
    make_run(root, "slow", task="t", method="tfidf-lr", labels=["n", "p"], gold=gold, pred=gold,
             p50=200.0, params=params[1])


def _rows(md: str, title_part: str) -> list[list[str]]:
    section = md[md.index(title_part):].split("\n### ")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("|")]


def test_a_table_without_rows_prints_no_header(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    _two_configs(root, make_run)
    out = build_report(root, tmp_path / "rep", n_boot=100)
    assert out.analyses[0].break_even == []
    md = (out.out_dir / "decision_table.md").read_text()
    assert _rows(md, "break-even request volume") == []
    assert "No two configurations on the front cross" in md
    html = out.html.read_text()
    section = html[html.index("break-even request volume"):]
    assert "cheaper at low volume" not in section.split("<h3>")[0]


def test_decision_table_shows_utility_relative_to_the_best(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    _two_configs(root, make_run, ({"C": 1.0}, {"C": 2.0}))
    out = build_report(root, tmp_path / "rep", n_boot=100)
    ta = out.analyses[0]
    md = (out.out_dir / "decision_table.md").read_text()
    header, _, *rows = _rows(md, "decision (Pareto front and utility)")
    col = header.index("vs best τ=500ms (best = 100)")
    assert header[-1] == "rank"
    u = {label: ta.utility[label][500.0] for label in ta.utility}
    best = max(u.values())
    by_name = {r[0].strip("*"): r for r in rows}
    for label, value in u.items():
        assert by_name[label][col] == f"{100 * value / best:.1f}"
    assert sorted(float(r[col]) for r in rows)[-1] == 100.0


def test_long_configuration_names_are_wrapped_not_cut_in_plots(tmp_path, make_run, monkeypatch):
    from clfbench.report import plots

    seen = []
    real_save = plots.save_figure

    def save(fig, path):
        seen.extend(t.get_text() for ax in fig.axes for t in ax.get_yticklabels())
        return real_save(fig, path)

    monkeypatch.setattr(plots, "save_figure", save)
    root = tmp_path / "res"
    root.mkdir()
    gold = [0, 1] * 20
    for i, lr in enumerate(("2e-05", "5e-05")):
        make_run(root, f"r{i}", task="t", method="encoder-ft", model="minilm", labels=["n", "p"],
                 gold=gold, pred=gold if i else [1 - g for g in gold[:4]] + gold[4:],
                 params={"batch_size": 16, "epochs": 4, "lr": float(lr)})
    out = build_report(root, tmp_path / "rep", n_boot=100)
    labels = [c.label for c in out.analyses[0].configs]
    assert all(len(label) > 38 for label in labels)
    shown = {s.replace("\n", " ") for s in seen}
    assert set(labels) <= shown, (labels, shown)  # whole, so the two stay distinguishable
    assert all(max(map(len, s.split("\n"))) <= 38 for s in seen if s.replace("\n", " ") in labels)
    assert np.all([not s.endswith("…") for s in seen])
