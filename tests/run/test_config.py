import pytest

from clfbench.errors import ClfbenchError
from clfbench.run.config import MAX_DRAWS, RunSpec, draw_seed, expand_draws, load_grid, repeat_key


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


LLM_GRID = """
tasks: [sst2]
methods:
  - {name: llm-prompt, models: [m], params: {shots: 2, draws: 3}}
seeds: [99, 100]
"""


def test_seeds_times_draws_are_distinct_runs(tmp_path):
    """Adjacent seeds with draws used to overlap (99..101 and 100..102: 4 runs, not 6)."""
    specs = expand_draws(load_grid(write(tmp_path, LLM_GRID))[0])
    assert len({s.hash() for s in specs}) == len({s.run_id() for s in specs}) == 6
    assert sorted((s.seed, s.draw) for s in specs) == [(99, 0), (99, 1), (99, 2), (100, 0), (100, 1), (100, 2)]
    # The method's seed (which picks the few-shot set) differs for every (seed, draw) pair.
    assert sorted(s.params["seed"] for s in specs) == [99000, 99001, 99002, 100000, 100001, 100002]
    assert all(s.params["draws"] == 3 for s in specs)
    assert {s.run_id().split("-")[-2] for s in specs} == {"d0", "d1", "d2"}
    assert len({repeat_key(s) for s in specs}) == 1  # one configuration, pooled over seeds and draws


def test_draw_seeds_never_coincide():
    pairs = [(seed, draw) for seed in range(-3, 40) for draw in range(MAX_DRAWS)]
    assert len({draw_seed(s, d) for s, d in pairs}) == len(pairs)


def test_runs_without_draws_keep_their_identity():
    """`draw` is left out of the identity when 0, so results stored before it existed still resume."""
    spec = RunSpec(method="tfidf-lr", task="sst2")
    assert "draw" not in spec.identity() and expand_draws([spec]) == [spec]
    assert spec.hash() != RunSpec(method="tfidf-lr", task="sst2", draw=1).hash()


@pytest.mark.parametrize("draws", [0, -1, 1.5, "3", True, MAX_DRAWS + 1])
def test_bad_draws_are_refused(draws):
    with pytest.raises(ClfbenchError, match="draws must be an integer"):
        expand_draws([RunSpec(method="llm-prompt", task="sst2", params={"draws": draws})])


def test_grid_max_length_goes_to_every_method_that_takes_it(tmp_path):
    specs, _ = load_grid(write(tmp_path, """
tasks: [sst2]
methods:
  - tfidf-lr
  - embed-probe
  - {name: encoder-ft, params: {max_length: 64}}
max_length: 256
"""))
    params = {s.method: s.params for s in specs}
    assert params == {"tfidf-lr": {}, "embed-probe": {"max_length": 256}, "encoder-ft": {"max_length": 64}}


@pytest.mark.parametrize("text, match", [
    ("tasks: [sst2]\nmethods: [tfidf-lr]\nmax_length: 128", "max_length: no method of the grid takes"),
    ("tasks: [sst2]\nmethods: [embed-probe]\nmax_length: 0", "'max_length' must be a positive integer"),
    ("tasks: [sst2]\nmethods: [tfidf-lr]\nparams: {C: 1}", "unknown key"),
    ("tasks: [sst2]\nmethods: [tfidf-lr]\ndraw: 1", "unknown key"),
    ("tasks: [{name: sst2, seed: 3}]\nmethods: [tfidf-lr]", "unknown key"),
    ("tasks: [sst2]\nmethods: [{name: embed-probe, models: {a: 1}}]", "'models' must be"),
])
def test_bad_shared_keys_name_the_problem(tmp_path, text, match):
    with pytest.raises(ClfbenchError, match=match):
        load_grid(write(tmp_path, text))


def test_models_and_seeds_may_be_single_values(tmp_path):
    specs, _ = load_grid(write(tmp_path, """
tasks: [sst2]
methods: [{name: embed-probe, models: minilm}]
seeds: 7
"""))
    assert [(s.model, s.seed) for s in specs] == [("minilm", 7)]


GRID = """
tasks: [sst2, {name: mine, train_file: t.csv, max_eval: 80}]
methods:
  - {name: tfidf-lr, params: {C: 2.0}}
  - {name: encoder-ft, models: [a], params: {epochs: 2}}
seeds: [1, 2]
max_eval: 100
"""


def test_command_line_overrides_beat_the_grid(tmp_path):
    specs, _ = load_grid(write(tmp_path, GRID), {"max_eval": 50, "seed": 7, "save_model": True},
                         {"C": 0.5, "epochs": 1})
    assert len(specs) == 2 * 2 and {s.seed for s in specs} == {7}
    assert all(s.max_eval == 50 and s.save_model for s in specs)  # the task entry's 80 too
    assert {s.method: s.params for s in specs} == {"tfidf-lr": {"C": 0.5}, "encoder-ft": {"epochs": 1}}


def test_a_command_line_parameter_no_method_takes_is_an_error(tmp_path):
    with pytest.raises(ClfbenchError, match="--param shots: no method of the grid takes"):
        load_grid(write(tmp_path, GRID), params={"shots": 5})
    with pytest.raises(ClfbenchError, match="task cannot be overridden"):
        load_grid(write(tmp_path, GRID), {"task": "rte"})


def test_relative_paths_are_relative_to_the_grid_file(tmp_path):
    (tmp_path / "sub").mkdir()
    specs, raw = load_grid(write(tmp_path / "sub", """
tasks: [sst2, {name: mine, train_file: data/t.csv, test_file: /abs/test.csv}]
methods: [tfidf-lr]
data_dir: ../datasets
out: runs
"""))
    folder = tmp_path / "sub"
    assert raw["out"] == str(folder / "runs")
    assert {s.data_dir for s in specs} == {str(folder / "../datasets")}
    mine = [s for s in specs if s.name == "mine"][0]
    assert mine.train_file == str(folder / "data/t.csv") and mine.test_file == "/abs/test.csv"
    # A path given on the command line stays relative to the working folder.
    specs, _ = load_grid(folder / "grid.yaml", {"data_dir": "local"})
    assert {s.data_dir for s in specs} == {"local"}


def test_grid_and_param_values_read_as_yaml_1_2(tmp_path):
    """`tune: off` is the string a method expects and `lr: 1e-4` a number (PyYAML's YAML 1.1
    made them False and "1e-4", and `--param tune=off` was refused)."""
    from clfbench.run.flags import parse_param

    specs, _ = load_grid(write(tmp_path, """
tasks: [sst2]
methods:
  - {name: encoder-ft, params: {tune: off, lr: 1e-4, grad_checkpointing: true}}
  - {name: llm-prompt, models: [m], params: {descriptions: on}}
"""))
    assert specs[0].params == {"tune": "off", "lr": 1e-4, "grad_checkpointing": True}
    assert specs[1].params == {"descriptions": "on"}
    assert [parse_param(v) for v in ("tune=off", "lr=2e-5", "bf16=false", "label=yes")] == [
        ("tune", "off"), ("lr", 2e-5), ("bf16", False), ("label", "yes")]
