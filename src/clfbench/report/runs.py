"""Load a results folder into runs and configurations (runs that differ only by seed).

A configuration is (task, method, model, method params without seed-like keys, data sizes,
the data seed, and the set of test example ids): its runs are repeated seeds or few-shot
draws of the same thing on the same examples, reported as mean ± std. The data seed and the
sizes choose the examples, so they are part of the configuration, never pooled as a seed.
Configurations of one task scored on different test examples are compared only within their
own comparison group (`comparison_groups`).
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clfbench.data.files import iter_jsonl
from clfbench.errors import ClfbenchError
from clfbench.results.store import Store, read_json

# Spec fields that do not change what is measured (or are the seed itself).
# `draw` (a few-shot draw of one seed) pools with the seeds: repeated runs of one configuration.
_NOT_CONFIG = {"seed", "draw", "data_dir", "threads", "save_model", "latency_examples",
               "latency_warmup", "train_file", "validation_file", "test_file"}


#: Seed-like keys that choose the data (and so the examples scored): part of a configuration.
_DATA_SEEDS = {"data_seed"}


def _is_seed_key(key: str) -> bool:
    """A training/draw seed (pooled over as repeated runs), not the seed that picks the data."""
    return "seed" in key.lower() and key.lower() not in _DATA_SEEDS


@dataclass
class Run:
    run_id: str
    path: Path
    metrics: dict[str, Any]
    config: dict[str, Any]
    predictions: list[dict[str, Any]]
    labels: list[str]
    task: str
    method: str
    model: str | None
    seed: int | None
    key: str = ""
    label: str = ""
    duplicate_of: str | None = None  # the run this one repeats (counted once)

    @property
    def has_probabilities(self) -> bool:
        """Some rows have probabilities (an API answer parsed from text has none)."""
        return any("probabilities" in p for p in self.predictions)

    def ids(self) -> list[str]:
        return [str(p["id"]) for p in self.predictions]

    def encoded(self, ids: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(gold, pred) label ids over `ids` (all if None); an invalid prediction is -1."""
        index = {lab: i for i, lab in enumerate(self.labels)}
        rows = self.predictions
        if ids is not None:
            by_id = {str(p["id"]): p for p in rows}
            rows = [by_id[i] for i in ids]
        gold = np.array([index[r["gold"]] for r in rows], dtype=int)
        pred = np.array([index.get(r["pred"], -1) if r.get("pred") is not None else -1 for r in rows], dtype=int)
        return gold, pred

    def examples_digest(self) -> str:
        """A short hash of the test examples the run was scored on: their ids and gold labels
        (a test file whose labels changed is other examples, never compared with the old)."""
        pairs = sorted(f"{p['id']}\t{p['gold']}" for p in self.predictions)
        return hashlib.sha1("\n".join(pairs).encode()).hexdigest()[:12]

    def ids_digest(self) -> str:
        """A short hash of the set of test example ids alone."""
        return hashlib.sha1("\n".join(sorted(self.ids())).encode()).hexdigest()[:12]

    def prediction_signature(self) -> tuple:
        """The run's predictions by id: equal for runs that predicted exactly the same."""
        return tuple(sorted((str(p["id"]), str(p.get("pred"))) for p in self.predictions))

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.config.get("spec") or {})

    @property
    def degenerate(self) -> bool:
        return bool(self.metrics.get("degenerate"))

    def probabilities(self) -> np.ndarray | None:
        if not self.has_probabilities:
            return None
        nan = [float("nan")] * len(self.labels)  # a row without probabilities
        return np.array([[float(p["probabilities"].get(lab, 0.0)) for lab in self.labels]
                         if "probabilities" in p else nan for p in self.predictions])


@dataclass
class Config:
    """Runs of one configuration on one task (seeds / draws)."""

    task: str
    key: str
    label: str
    method: str
    model: str | None
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # runs counted once, and why

    def mean(self, name: str) -> float | None:
        vals = [_num(r.metrics.get(name)) for r in self.runs]
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals else None

    def std(self, name: str) -> float | None:
        vals = [v for v in (_num(r.metrics.get(name)) for r in self.runs) if v is not None]
        return float(statistics.stdev(vals)) if len(vals) > 1 else None

    @property
    def representative(self) -> Run:
        """The run with the median macro-F1 (lower median): used for paired tests and errors."""
        ranked = sorted(self.runs, key=lambda r: (_num(r.metrics.get("macro_f1")) or 0.0, r.seed or 0))
        return ranked[(len(ranked) - 1) // 2]

    @property
    def family(self) -> str:
        return method_family(self.method)

    @property
    def identical_seeds(self) -> bool:
        """Several runs (seeds) with exactly the same predictions: one distinct result."""
        return len(self.runs) > 1 and len({r.prediction_signature() for r in self.runs}) == 1

    @property
    def scored_runs(self) -> list[Run]:
        """The runs whose predictions the statistics use: one when the seeds are identical."""
        return self.runs[:1] if self.identical_seeds else self.runs

    @property
    def n_distinct(self) -> int:
        return len(self.scored_runs)

    @property
    def degenerate(self) -> bool:
        """A run of this configuration was flagged degenerate (e.g. collapsed to one class)."""
        return any(r.degenerate for r in self.runs)

    @property
    def degenerate_reasons(self) -> list[str]:
        reasons: list[str] = []
        for r in self.runs:
            if r.degenerate:
                for why in r.metrics.get("degenerate_reasons") or ["flagged degenerate"]:
                    why = f"seed {r.seed}: {why}" if len(self.runs) > 1 else str(why)
                    if why not in reasons:
                        reasons.append(why)
        return reasons


def method_family(method: str) -> str:
    """'llm' (decoder LLMs prompted, tuned or behind an API: llm-*, decoder-*), 'encoder'
    (encoder-*, embed-*, setfit*), else 'classic'."""
    if method.startswith(("llm-", "decoder-")):
        return "llm"
    if method.startswith(("encoder", "embed", "setfit")):
        return "encoder"
    return "classic"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return None if np.isnan(v) else v


def _read_predictions(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ClfbenchError(f"{path}: missing (every completed run has predictions.jsonl)")
    rows = []
    for line_no, row in iter_jsonl(path):
        for key in ("id", "gold"):
            if key not in row:
                raise ClfbenchError(f"{path}: line {line_no}: field '{key}' missing")
        rows.append(row)
    return rows


def _labels(metrics: dict[str, Any], path: Path) -> list[str]:
    per_class = metrics.get("per_class")
    if not isinstance(per_class, dict) or not per_class:
        raise ClfbenchError(f"{path}: field 'per_class' missing or empty (needed for the label set)")
    return list(per_class)


def _short_model(model: str | None) -> str:
    if not model:
        return ""
    return Path(str(model)).name


def _fmt_param(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_fmt_param(x) for x in v) + "]"
    return str(v)


def inference_setup(metrics: dict[str, Any]) -> dict[str, Any]:
    """How a run's predictions and timings were made: the backend (with int8, half precision or
    fp32 re-checks), the batch size, and the label agreement with the fp32 model (None where
    the method has no such reference)."""
    info = metrics.get("inference_info") or {}
    parts = [str(metrics.get("backend") or info.get("backend") or "native")]
    if info.get("quantized"):
        parts.append("int8")
    elif info.get("dtype") not in (None, "float32"):
        parts.append(str(info["dtype"]))
    if info.get("recheck"):
        parts.append("+ fp32 re-check")
    batch = metrics.get("inference_batch_size", info.get("batch_size"))
    return {"setup": " ".join(parts), "batch_size": batch, "agreement": _num(info.get("agreement"))}


def text_budget(metrics: dict[str, Any]) -> dict[str, Any]:
    """How much of each test text a run saw: the token limit (None: no limit known, e.g.
    TF-IDF sees whole texts) and the share of test examples cut to fit it (None: not recorded).

    Encoder-style methods record `inference_info.max_length / test_truncated / test_total`;
    prompted LLMs record the prompt's `max_length` in `fit_info.prompt` and the cut queries in
    `inference_info.truncated / n_examples`.
    """
    info = metrics.get("inference_info") or {}
    fit = metrics.get("fit_info") or {}
    prompt = fit.get("prompt") if isinstance(fit.get("prompt"), dict) else {}
    max_tokens = info.get("max_length", prompt.get("max_length"))
    cut, total = info.get("test_truncated"), info.get("test_total")
    if cut is None and "truncated" in info:
        cut, total = info.get("truncated"), info.get("n_examples")
    share = _num(cut) / _num(total) if _num(cut) is not None and _num(total) else None
    return {"max_tokens": _num(max_tokens), "truncated": cut, "total": total, "truncated_share": share}


def _validation_by_epoch(fit: dict[str, Any]) -> list[float]:
    """The kept training's validation macro-F1 per epoch: fit_info.history (encoder-ft, llm-sft),
    else the chosen tuning trial's `val_by_epoch` (methods/tuning.py)."""
    history = fit.get("history")
    if isinstance(history, list) and history:
        rows = sorted((h for h in history if isinstance(h, dict)), key=lambda h: _num(h.get("epoch")) or 0.0)
        vals = [next((v for k in ("val_macro_f1", "validation_macro_f1", "selection_score")
                      if (v := _num(h.get(k))) is not None), None) for h in rows]
        return [v for v in vals if v is not None] if all(v is not None for v in vals) else []
    tuning = fit.get("tuning") if isinstance(fit.get("tuning"), dict) else {}
    best = next((t for t in tuning.get("trials") or [] if t.get("number") == tuning.get("best_trial")), None)
    by_epoch = (best or {}).get("val_by_epoch") or {}
    try:  # JSON turns the epoch keys into strings
        pairs = sorted((int(k), _num(v)) for k, v in by_epoch.items())
    except (TypeError, ValueError):
        return []
    return [v for _, v in pairs] if all(v is not None for _, v in pairs) else []


def under_trained(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """Whether a fine-tune kept its last epoch while its validation score was still rising:
    {epochs, last, previous} (the kept epoch is `epochs` of `epochs`), else None.

    Why: such a run stopped while still improving, so its quality is a floor, not a finding.
    Epochs asked come from fit_info.optimizer.epochs (or tuning.max_epochs); a run stopped
    early (fewer epochs run than asked) or of one epoch (no trend to see) is not flagged."""
    fit = metrics.get("fit_info") if isinstance(metrics.get("fit_info"), dict) else {}
    optimizer = fit.get("optimizer") if isinstance(fit.get("optimizer"), dict) else {}
    tuning = fit.get("tuning") if isinstance(fit.get("tuning"), dict) else {}
    epochs = _num(optimizer.get("epochs")) or _num(tuning.get("max_epochs"))
    scores = _validation_by_epoch(fit)
    if epochs is None or epochs < 2 or len(scores) != int(epochs) or scores[-1] <= scores[-2]:
        return None
    best = _num(fit.get("best_epoch"))
    if best is not None and int(best) != int(epochs):
        return None
    return {"epochs": int(epochs), "last": scores[-1], "previous": scores[-2]}


def under_trained_note(c: Config) -> str | None:
    """`LABEL: under-trained: best epoch is the last (E of E); more epochs may help`, with the
    validation trend and which seeds, when a run of the configuration is `under_trained`."""
    found = [(r, u) for r in c.runs if (u := under_trained(r.metrics)) is not None]
    if not found:
        return None
    epochs = sorted({u["epochs"] for _, u in found})
    e = "/".join(str(x) for x in epochs)
    trend = "; ".join(f"{u['previous']:.4f} -> {u['last']:.4f}" for _, u in found)
    seeds = (f", seed {', '.join(str(r.seed) for r, _ in found)} of {len(c.runs)} runs"
             if len(c.runs) > 1 else "")
    return (f"{c.label}: under-trained: best epoch is the last ({e} of {e}); more epochs may help "
            f"(validation macro-F1 still rising over the last two epochs: {trend}{seeds})")


def contention_note(c: Config) -> str | None:
    """Which of a configuration's runs were timed under contention (metrics.json
    `machine_load.contended`) and how much CPU other processes used; None when none was."""
    hit = [(r, r.metrics["machine_load"]) for r in c.runs
           if isinstance(r.metrics.get("machine_load"), dict) and r.metrics["machine_load"].get("contended")]
    if not hit:
        return None
    used = ", ".join(f"{_num(load.get('other_cpu_pct')) or 0:.0f}%" for _, load in hit)
    which = f" (seed {', '.join(str(r.seed) for r, _ in hit)} of {len(c.runs)} runs)" if len(c.runs) > 1 else ""
    return (f"{c.label}: latency measured under contention{which}: other processes used {used} CPU "
            "(100% = one core) during timing")


def text_budget_warnings(configs: list[Config], tolerance: float = 0.005) -> list[str]:
    """A warning when the configurations of one comparison saw different amounts of text:
    different truncated shares of the test set, or different token limits where one cut text.
    A method without a recorded limit (e.g. TF-IDF) counts as seeing whole texts."""
    seen = {c.label: text_budget(c.representative.metrics) for c in configs}
    cut = {k: (v["truncated_share"] or 0.0) for k, v in seen.items()}
    limits = {v["max_tokens"] for v in seen.values() if v["max_tokens"] is not None}
    if max(cut.values(), default=0.0) - min(cut.values(), default=0.0) <= tolerance and (
            len(limits) < 2 or max(cut.values(), default=0.0) == 0):
        return []
    parts = [f"{k}: {limit_text(v['max_tokens'])}, {100 * cut[k]:.1f}% of test texts cut" for k, v in seen.items()]
    return ["Warning: these configurations saw different amounts of text (" + "; ".join(parts)
            + "); part of a quality difference may come from truncation, not the method."]


def limit_text(max_tokens: float | None) -> str:
    return "no limit" if max_tokens is None else f"{max_tokens:g} tokens"


def load_runs(root: str | Path) -> list[Run]:
    """Every completed run of a results folder with its config and predictions."""
    root = Path(root)
    runs = []
    for entry in Store(root).runs():
        path = Path(entry["path"])
        metrics = read_json(path / "metrics.json")
        if (path / "served.json").is_file():  # `clfbench loadtest --attach`: served latency and throughput
            metrics = {**metrics, "served": read_json(path / "served.json")}
        cfg_path = path / "config.json"
        config = read_json(cfg_path) if cfg_path.is_file() else {}
        if not isinstance(config, dict):
            raise ClfbenchError(f"{cfg_path}: corrupted (expected a JSON object)")
        preds = _read_predictions(path / "predictions.jsonl")
        labels = _labels(metrics, path / "metrics.json")
        known = set(labels)
        seen_ids: set[str] = set()
        for i, p in enumerate(preds, 1):
            if str(p["id"]) in seen_ids:
                raise ClfbenchError(f"{path / 'predictions.jsonl'}:{i}: duplicate id {p['id']!r}")
            seen_ids.add(str(p["id"]))
            if p["gold"] not in known:
                raise ClfbenchError(f"{path / 'predictions.jsonl'}:{i}: gold label {p['gold']!r} not in the run's labels")
        runs.append(Run(
            run_id=entry["run_id"], path=path, metrics=metrics, config=config, predictions=preds,
            labels=labels, task=str(metrics.get("task") or entry.get("task")),
            method=str(metrics.get("method") or entry.get("method")),
            model=metrics.get("model", entry.get("model")), seed=metrics.get("seed", entry.get("seed")),
        ))
    if not runs:
        raise ClfbenchError(f"{root}: no completed runs to report")
    _assign_configs(runs)
    return runs


def _assign_configs(runs: list[Run]) -> None:
    """Set each run's configuration key and a readable label, unique within its task."""
    for r in runs:
        spec = dict(r.config.get("spec") or {})
        params = {k: v for k, v in (spec.pop("params", None) or {}).items() if not _is_seed_key(k)}
        ident = {k: v for k, v in spec.items() if k not in _NOT_CONFIG and not _is_seed_key(k)}
        ident.update(task=r.task, method=r.method, model=r.model, params=params, examples=r.examples_digest())
        r.key = json.dumps(ident, sort_keys=True, default=str)
        name = r.method + (f"/{_short_model(r.model)}" if r.model else "")
        extra = " ".join(f"{k}={_fmt_param(v)}" for k, v in sorted(params.items()))
        r.label = name + (f" {extra}" if extra else "")
        if spec.get("train_size"):  # a learning-curve point (`--train-sizes`)
            r.label += f" [train {spec['train_size']}]"
    # Where two configurations of a task share a label (e.g. different --max-train), add sizes.
    by_task_label: dict[tuple[str, str], set[str]] = {}
    for r in runs:
        by_task_label.setdefault((r.task, r.label), set()).add(r.key)
    for r in runs:
        if len(by_task_label[(r.task, r.label)]) > 1:
            r.label += f" ({data_choice(r)})"
    seen: dict[tuple[str, str], str] = {}
    for r in runs:
        other = seen.setdefault((r.task, r.label), r.key)
        if other != r.key:  # still ambiguous: fall back to a short hash of the key
            r.label += " #" + hashlib.sha1(r.key.encode()).hexdigest()[:6]


def data_choice(r: Run) -> str:
    """The spec fields that choose a run's examples: sizes and the data seed."""
    spec = r.spec
    return (f"train {spec.get('max_train') or 'all'}, eval {spec.get('max_eval') or 'all'}, "
            f"data_seed {spec.get('data_seed', '-')}")


def group_configs(runs: list[Run]) -> dict[str, list[Config]]:
    """Configurations per task (tasks sorted), each task's configurations by mean macro-F1."""
    tasks: dict[str, dict[str, Config]] = {}
    for r in runs:
        cfgs = tasks.setdefault(r.task, {})
        if r.key not in cfgs:
            cfgs[r.key] = Config(r.task, r.key, r.label, r.method, r.model)
        _add_run(cfgs[r.key], r)
    out = {}
    for task in sorted(tasks):
        cfgs = list(tasks[task].values())
        for c in cfgs:
            c.runs.sort(key=lambda r: (r.seed is None, r.seed))
        cfgs.sort(key=lambda c: -(c.mean("macro_f1") or 0.0))
        out[task] = cfgs
    return out


def _rerun_key(r: Run) -> str | None:
    """The run's spec without `save_model`: equal for a re-run that only also saved the model."""
    spec = r.spec
    if not spec:
        return None
    spec.pop("save_model", None)
    return json.dumps(spec, sort_keys=True, default=str)


def _add_run(config: Config, run: Run) -> None:
    """Add `run` to `config` unless it repeats a run already there (same spec but for
    --save-model): a re-run counts once."""
    key = _rerun_key(run)
    for kept in config.runs:
        if key is not None and key == _rerun_key(kept):
            run.duplicate_of = kept.run_id
            config.notes.append(f"{run.run_id} repeats {kept.run_id} (the same spec but for --save-model): "
                                "counted once")
            return
    config.runs.append(run)


@dataclass
class ComparisonGroup:
    """Configurations of one task scored on the same test examples: the unit that is ranked."""

    name: str
    task: str
    configs: list[Config]
    note: str | None = None


def comparison_groups(grouped: dict[str, list[Config]]) -> list[ComparisonGroup]:
    """Split each task's configurations by the set of test examples they were scored on.

    Results on different examples (another --max-eval or --data-seed) are not comparable:
    each set becomes its own group, named after the task and how its examples were chosen.
    """
    out: list[ComparisonGroup] = []
    for task, cfgs in grouped.items():
        by_examples: dict[str, list[Config]] = {}
        for c in cfgs:
            by_examples.setdefault(c.runs[0].examples_digest(), []).append(c)
        if len(by_examples) == 1:
            out.append(ComparisonGroup(task, task, cfgs))
            continue
        names: set[str] = set()
        for digest, members in by_examples.items():
            first = members[0].runs[0]
            name = f"{task} [n={len(first.predictions)}, {data_choice(first)}]"
            if name in names:
                name = f"{name[:-1]}, examples #{digest[:6]}]"
            names.add(name)
            note = (f"{task}: the configurations were scored on {len(by_examples)} different sets of test "
                    f"examples; each set is ranked on its own. This group: {len(first.predictions)} examples "
                    f"({data_choice(first)}).")
            twins = [d for d, m in by_examples.items()
                     if d != digest and m[0].runs[0].ids_digest() == first.ids_digest()]
            if twins:
                note += (f" {len(twins)} other group(s) have the same example ids with different gold labels "
                         "(a changed test file): their runs are not compared with these.")
            out.append(ComparisonGroup(name, task, members, note))
    return out


def common_ids(runs: list[Run]) -> list[str]:
    """Example ids present in every run, in the first run's order."""
    if not runs:
        return []
    shared = set(runs[0].ids())
    for r in runs[1:]:
        shared &= set(r.ids())
    return [i for i in runs[0].ids() if i in shared]
