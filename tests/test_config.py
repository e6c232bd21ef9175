import pytest

from clfbench.config import RunSpec, load_grid
from clfbench.errors import ClfbenchError


def write(tmp_path, text):
    p = tmp_path / "grid.yaml"
    p.write_text(text)
    return p


def test_grid_expands_tasks_methods_models_seeds(tmp_path):
    specs, _ = load_grid(write(tmp_path, """
tasks: [sst2, rte]
methods:
  - tfidf-lr
  - {name: encoder-ft, models: [a, b], params: {epochs: 1}}
seeds: [1, 2]
max_train: 100
"""))
    assert len(specs) == 2 * (1 + 2) * 2
    ft = [s for s in specs if s.method == "encoder-ft"]
    assert {s.model for s in ft} == {"a", "b"} and all(s.params == {"epochs": 1} for s in ft)
    assert all(s.max_train == 100 for s in specs)
    assert len({s.hash() for s in specs}) == len(specs)


def test_task_entry_with_files_is_user_data(tmp_path):
    specs, _ = load_grid(write(tmp_path, """
tasks: [{name: tickets, train_file: t.csv, text_col: body}]
methods: [tfidf-lr]
"""))
    assert specs[0].task is None and specs[0].name == "tickets" and specs[0].text_col == "body"
    assert specs[0].task_label == "tickets"


@pytest.mark.parametrize("text, match", [
    ("tasks: [sst2\nmethods: [x]", "invalid YAML"),
    ("- just a list", "expected a mapping"),
    ("tasks: []\nmethods: [tfidf-lr]", "'tasks' must be a non-empty list"),
    ("tasks: [sst2]\nmethods: [tfidf-lr]\nseeds: [a]", "'seeds' must be a list of integers"),
    ("tasks: [sst2]\nmethods: [tfidf-lr]\nbogus: 1", "unknown key"),
    ("tasks: [sst2]\nmethods: [{name: tfidf-lr, modles: [x]}]", "unknown key"),
])
def test_bad_grids_name_the_problem(tmp_path, text, match):
    with pytest.raises(ClfbenchError, match=match) as e:
        load_grid(write(tmp_path, text))
    assert "grid.yaml" in str(e.value)


def test_hash_depends_on_every_setting():
    a = RunSpec(method="tfidf-lr", task="sst2")
    assert a.hash() == RunSpec(method="tfidf-lr", task="sst2").hash()
    assert a.hash() != RunSpec(method="tfidf-lr", task="sst2", seed=1).hash()
    assert a.hash() != RunSpec(method="tfidf-lr", task="sst2", params={"C": 1}).hash()
    assert a.run_id().startswith("sst2-tfidf-lr-s99-")
