"""Learning-curve sizes: parsing, nested stratified subsets, draws at small sizes, run identity
and resume, the results table's size columns, and the report's learning-curve section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clfbench.cli import main
from clfbench.data.splits import SMALL_SIZE_DRAWS, TaskSplits, size_counts, train_subset
from clfbench.data.texts import LabeledTexts
from clfbench.errors import ClfbenchError
from clfbench.run.config import RunSpec, expand_train_sizes, load_grid, parse_train_sizes

DEMO = Path(__file__).resolve().parents[2] / "src" / "clfbench" / "demo_data"


def pool(counts=(60, 30, 10), seed=0) -> TaskSplits:
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    names = [f"c{k}" for k in range(len(counts))]

    def lt(prefix, lab):
        return LabeledTexts([f"{prefix} {i}" for i in range(len(lab))], None, lab, names,
                            [f"{prefix}:{i}" for i in range(len(lab))])

    return TaskSplits(lt("tr", labels), lt("va", labels[:20]), lt("te", labels[:30]), {"data_seed": 7})


def test_sizes_parse_to_canonical_form():
    assert parse_train_sizes("0,8/class, 32 / class,128,all,128") == ["0", "8/class", "32/class", "128", "all"]
    assert parse_train_sizes([0, "8/class", 2048]) == ["0", "8/class", "2048"]


@pytest.mark.parametrize("bad", ["8/klass", "-1", "1", "0/class", "half", "", "8/class,"])
def test_bad_sizes_are_one_line_errors(bad):
    with pytest.raises(ClfbenchError, match="--train-sizes"):
        parse_train_sizes(bad)


def test_bad_size_on_the_command_line_exits_2_before_any_work(tmp_path, capsys):
    rc = main(["run", "--train", str(DEMO / "train.csv"), "--method", "tfidf-lr", "--train-sizes", "8/klass",
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "--train-sizes: '8/klass' is not a training size" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_bad_size_in_a_grid_names_the_file_and_field(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("tasks: [sst2]\nmethods: [tfidf-lr]\ntrain_sizes: [8/class, lots]\n")
    with pytest.raises(ClfbenchError, match=r"g.yaml: train_sizes: 'lots' is not a training size"):
        load_grid(grid)


def test_grid_sizes_expand_trained_methods_only(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("tasks: [sst2]\nmethods: [tfidf-lr, {name: llm-prompt, models: [m]}]\n"
                    "train_sizes: [0, 8/class, all]\n")
    specs, _ = load_grid(grid)
    assert [(s.method, s.train_size) for s in specs] == [("tfidf-lr", "8/class"), ("tfidf-lr", "all"),
                                                         ("llm-prompt", None)]
    specs, _ = load_grid(grid, train_sizes=["128"])  # --train-sizes replaces the grid's
    assert [s.train_size for s in specs] == ["128", None]


def test_size_is_part_of_the_identity_and_old_runs_keep_theirs():
    base = RunSpec(method="tfidf-lr", task="sst2")
    a, b = expand_train_sizes([base], ["8/class", "32/class"])
    assert len({base.hash(), a.hash(), b.hash()}) == 3
    assert "train_size" not in base.identity()  # runs without sizes hash as before
    assert "-n8pc-" in a.run_id() and "-n32pc-" in b.run_id()


def test_subsets_are_nested_stratified_and_seeded():
    s = pool()
    sub = {size: train_subset(s, size, draw=0) for size in ("2/class", "8/class", "30", "50", "all")}
    ids = {k: set(v.train.ids) for k, v in sub.items()}
    assert ids["2/class"] < ids["8/class"] and ids["30"] < ids["50"] < ids["all"]
    assert sub["8/class"].train.class_counts().tolist() == [8, 8, 8]
    assert sub["50"].train.class_counts().tolist() == [30, 15, 5]  # proportional
    assert sub["30"].train.class_counts().tolist() == [18, 9, 3]
    assert len(sub["all"].train) == 100 and sub["8/class"].notes["sizes"]["train"] == 24
    for v in sub.values():  # validation and test untouched
        assert v.validation is s.validation and v.test is s.test
    assert set(train_subset(s, "8/class", 0).train.ids) == ids["8/class"]  # seeded: reproducible
    assert set(train_subset(s, "8/class", 1).train.ids) != ids["8/class"]  # another draw, another subset


def test_total_sizes_never_lose_a_class_example_as_they_grow():
    labels = np.repeat(np.arange(4), [41, 33, 17, 9])
    prev = size_counts(labels, "4")
    assert prev.tolist() == [1, 1, 1, 1]
    for n in range(5, 101):
        now = size_counts(labels, str(n))
        assert now.sum() == n and (now >= prev).all()
        prev = now
    with pytest.raises(ClfbenchError, match="fewer examples than the 4 classes"):
        size_counts(labels, "3")


def test_run_draws_small_sizes_resumes_and_reports(tmp_path, capsys):
    """tfidf-lr at 4/class (fewer than 100 examples: --size-draws 2 draws) and all (one); a re-run
    resumes."""
    out = tmp_path / "runs"
    argv = ["run", "--train", str(DEMO / "train.csv"), "--validation", str(DEMO / "validation.csv"),
            "--test", str(DEMO / "test.csv"), "--method", "tfidf-lr", "--train-sizes", "4/class,all",
            "--latency-examples", "3", "--size-draws", "2", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "train size" in printed and "n train" in printed
    assert "learning curves, demo_data" in printed and "tfidf-lr: no prompting reference" in printed
    runs = [json.loads(p.read_text()) for p in out.glob("*/metrics.json")]
    sizes = sorted((r["train_size"], r["n_train"]) for r in runs)
    n_classes = len(runs[0]["per_class"])
    assert sizes == [("4/class", 4 * n_classes)] * 2 + [("all", runs[0]["splits"]["train_size"]["pool"])]
    draws = {r["splits"]["train_size"]["draw"] for r in runs if r["train_size"] == "4/class"}
    assert draws == {0, 1}
    assert main(argv) == 0  # resume: every run is already complete
    assert "3 of 3 runs already complete" in capsys.readouterr().err
    assert main(["results", str(out), "--format", "csv"]) == 0
    table = capsys.readouterr().out
    head = table.splitlines()[0].split(",")
    assert {"train_size", "n_train"} <= set(head) and len(table.splitlines()) == 1 + 3


def test_small_sizes_get_several_draws_and_large_ones_one():
    from clfbench.run.runner import data_key, expand_size_draws

    spec = RunSpec(method="tfidf-lr", task="x")
    data = {data_key(spec): pool()}
    specs = expand_size_draws(expand_train_sizes([spec], ["2/class", "99", "100", "all"]), data)
    assert [(s.train_size, s.draw) for s in specs] == (
        [("2/class", d) for d in range(SMALL_SIZE_DRAWS)] + [("99", d) for d in range(SMALL_SIZE_DRAWS)]
        + [("100", 0), ("all", 0)])  # 100 is the whole pool here: one draw
    three = expand_size_draws([RunSpec(method="tfidf-lr", task="x", train_size="8/class", size_draws=3)], data)
    assert [s.draw for s in three] == [0, 1, 2]
    assert three[0].hash() == expand_size_draws(expand_train_sizes([spec], ["8/class"]), data)[0].hash()


def test_report_has_learning_curves_with_a_prompting_reference(tmp_path):
    """Hand-written runs: the report writes learning_curves.md, the plot and an HTML section."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "report"))
    from report_fixtures import write_run

    from clfbench.report import build_report

    gold = (np.arange(120) % 2).tolist()

    def pred(acc):
        return [g if i < acc * 120 else 1 - g for i, g in enumerate(gold)]

    write_run(tmp_path, "ref", task="t", method="llm-prompt", model="m", labels=["a", "b"], gold=gold, pred=pred(0.6))
    for size, n, acc in (("4/class", 8, 0.55), ("all", 400, 0.95)):
        write_run(tmp_path, f"lr-{size.replace('/', '')}", task="t", method="tfidf-lr", labels=["a", "b"], gold=gold,
                  pred=pred(acc), spec={"train_size": size}, extra_metrics={"train_size": size, "n_train": n})
    rep = build_report(tmp_path, tmp_path / "report", n_boot=200)
    md = rep.tables["learning_curves"].read_text()
    assert "tfidf-lr: beats llm-prompt/m (macro-F1" in md and "significantly from all (400 labelled examples)" in md
    assert any(p.name == "learning_curve_t.png" for p in rep.plots)
    html = rep.html.read_text()
    assert 'id="learning-curves"' in html and "significantly from all" in html
