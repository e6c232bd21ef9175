"""Error analysis across the configurations of one task, on the examples they all predicted.

- error overlap: Jaccard similarity of the sets of wrong examples of two methods (1 = they
  fail on exactly the same examples, 0 = never on the same one);
- hardest examples: wrong for most methods, with every method's prediction;
- LLM vs encoder disagreements: examples where the LLM methods' majority label differs from
  the encoders' majority label;
- rare classes: per-class F1 in training-frequency order, and for two configurations the
  classes one gets right at least once (F1 > 0) that the other never does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clfbench.report.runs import Config, Run, common_ids


@dataclass
class ErrorAnalysis:
    labels: list[str]  # configuration labels, in table order
    n_examples: int
    error_rate: list[float]
    jaccard: list[list[float | None]]
    hardest: list[dict[str, Any]]
    disagreements: list[dict[str, Any]]
    n_disagreements: int | None  # None when the task lacks LLM or encoder methods
    per_class: list[dict[str, Any]]
    rescued: list[dict[str, Any]] = field(default_factory=list)
    quiz: list[dict[str, Any]] = field(default_factory=list)  # hardest first, wrong for >= 1 method


def jaccard(wrong_a: np.ndarray, wrong_b: np.ndarray) -> float | None:
    """|A ∩ B| / |A ∪ B| of two boolean 'wrong' vectors; None when neither has an error."""
    union = int((wrong_a | wrong_b).sum())
    return None if union == 0 else int((wrong_a & wrong_b).sum()) / union


def rescued_classes(a: Run, b: Run) -> list[str]:
    """Classes present in the test split that `a` gets right at least once (F1 > 0) and `b` never does."""
    pa = a.metrics.get("per_class") or {}
    pb = b.metrics.get("per_class") or {}
    out = []
    for name, row in pa.items():
        other = pb.get(name)
        if other is None or not row.get("support"):
            continue
        if (row.get("f1") or 0) > 0 and (other.get("f1") or 0) == 0:
            out.append(name)
    return out


def _majority(labels: list[str | None]) -> str | None:
    counts = Counter(lab for lab in labels)
    best = max(counts.values())
    winners = sorted((lab for lab, c in counts.items() if c == best), key=lambda x: (x is None, str(x)))
    return winners[0]


def analyse_errors(configs: list[Config], max_examples: int = 20) -> ErrorAnalysis:
    reps = [c.representative for c in configs]
    labels = [c.label for c in configs]
    ids = common_ids(reps)
    preds: list[dict[str, str | None]] = [{str(p["id"]): p.get("pred") for p in r.predictions} for r in reps]
    gold_of = {str(p["id"]): p["gold"] for p in reps[0].predictions} if reps else {}
    wrong = np.array([[preds[m][i] != gold_of[i] for i in ids] for m in range(len(reps))], dtype=bool)
    wrong = wrong.reshape(len(reps), len(ids))
    n_cfg = len(reps)
    jac = [[jaccard(wrong[a], wrong[b]) for b in range(n_cfg)] for a in range(n_cfg)]
    error_rate = [float(wrong[m].mean()) if len(ids) else 0.0 for m in range(n_cfg)]

    by_id = {str(p["id"]): p for p in reps[0].predictions} if reps else {}

    def example(i: str) -> dict[str, Any]:
        row = by_id[i]
        out = {"id": i, "text": row.get("text", ""), "gold": row["gold"],
               "predictions": {labels[m]: preds[m][i] for m in range(n_cfg)}}
        if row.get("text_pair") is not None:
            out["text_pair"] = row["text_pair"]
        return out

    # Hardest: wrong for more than half the methods (all, when only one or two), most wrong first.
    n_wrong = wrong.sum(axis=0) if len(ids) else np.zeros(0, dtype=int)
    need = n_cfg // 2 + 1
    order = sorted(range(len(ids)), key=lambda j: (-int(n_wrong[j]), j))
    hardest = []
    for j in order:
        if n_wrong[j] < need or len(hardest) >= max_examples:
            break
        hardest.append({**example(ids[j]), "n_wrong": int(n_wrong[j]), "n_methods": n_cfg})

    quiz = []
    for j in order[:max_examples]:
        if n_wrong[j] == 0:
            break
        quiz.append({**example(ids[j]), "n_wrong": int(n_wrong[j]), "n_methods": n_cfg})

    # LLM methods vs encoders.
    llm = [m for m, c in enumerate(configs) if c.family == "llm"]
    enc = [m for m, c in enumerate(configs) if c.family == "encoder"]
    disagreements: list[dict[str, Any]] = []
    n_dis: int | None = None
    if llm and enc:
        n_dis = 0
        for i in ids:
            llm_vote = _majority([preds[m][i] for m in llm])
            enc_vote = _majority([preds[m][i] for m in enc])
            if llm_vote != enc_vote:
                n_dis += 1
                if len(disagreements) < max_examples:
                    disagreements.append({**example(i), "llm_majority": llm_vote, "encoder_majority": enc_vote})

    # Per-class F1 in training-frequency order (rarest last).
    per_class = []
    first = reps[0].metrics if reps else {}
    classes = first.get("classes_by_frequency") or list(first.get("per_class") or {})
    for name in classes:
        base = (first.get("per_class") or {}).get(name, {})
        per_class.append({
            "class": name,
            "train_count": base.get("train_count"),
            "support": base.get("support"),
            "f1": {c.label: _mean_f1(c, name) for c in configs},
        })

    rescued = []
    for a in range(n_cfg):
        for b in range(n_cfg):
            if a != b:
                names = rescued_classes(reps[a], reps[b])
                if names:
                    rescued.append({"a": labels[a], "b": labels[b], "classes": names})
    return ErrorAnalysis(labels, len(ids), error_rate, jac, hardest, disagreements, n_dis, per_class, rescued, quiz)


def _mean_f1(config: Config, name: str) -> float | None:
    vals = [((r.metrics.get("per_class") or {}).get(name) or {}).get("f1") for r in config.runs]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return float(np.mean(vals)) if vals else None
