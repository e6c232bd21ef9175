import numpy as np
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, matthews_corrcoef

from clfbench.evaluation.metrics import (
    brier_score,
    expected_calibration_error,
    quality_metrics,
    rarest_quartile,
)


@pytest.fixture
def sample():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 4, size=300)
    logits = rng.normal(size=(300, 4)) + 2.0 * np.eye(4)[gold] * (rng.random(300) < 0.7)[:, None]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return gold, proba


def test_quality_metrics_match_sklearn(sample):
    gold, proba = sample
    pred = proba.argmax(1)
    m = quality_metrics(gold, pred, ["a", "b", "c", "d"], proba)
    assert m["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(gold, pred, average="weighted"))
    assert m["mcc"] == pytest.approx(matthews_corrcoef(gold, pred))
    per = f1_score(gold, pred, average=None)
    assert [m["per_class"][c]["f1"] for c in "abcd"] == pytest.approx(per)
    assert sum(sum(r) for r in m["confusion_matrix"]) == len(gold)


def test_brier_binary_matches_sklearn(sample):
    gold, proba = sample
    gold2 = (gold > 1).astype(int)
    p1 = proba[:, 2:].sum(1)
    two = np.stack([1 - p1, p1], 1)
    # sklearn's binary Brier is mean (p1 - y)^2; the multi-class form sums both columns: 2x.
    assert brier_score(gold2, two) == pytest.approx(2 * brier_score_loss(gold2, p1))


def test_ece_hand_computed():
    gold = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    # bins: conf 0.9 (two, both... first correct, second correct) -> acc 1.0 vs 0.9;
    # conf 0.6 (two: one wrong, one right) -> acc 0.5 vs 0.6. ECE = .5*.1 + .5*.1
    assert expected_calibration_error(gold, proba) == pytest.approx(0.1)


def test_invalid_predictions_count_as_wrong_and_zero_f1_classes():
    gold = np.array([0, 1, 2, 2, 1])
    pred = np.array([0, -1, 0, 0, 1])
    m = quality_metrics(gold, pred, ["x", "y", "z"], None, train_counts=np.array([50, 10, 2]))
    assert m["accuracy"] == pytest.approx(0.4)
    assert m["invalid_rate"] == pytest.approx(0.2)
    assert m["zero_f1_class_names"] == ["z"]
    assert m["ece"] is None and m["brier"] is None
    assert m["classes_by_frequency"] == ["x", "y", "z"]
    assert m["rare_quartile_classes"] == ["z"]
    assert m["rare_quartile_macro_f1"] == 0.0


def test_rarest_quartile_takes_a_quarter_rounded_up():
    assert rarest_quartile(np.array([5, 1, 9, 3, 7])) == [1, 3]


def test_macro_f1_skips_classes_absent_from_gold_and_predictions():
    gold = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    m = quality_metrics(gold, pred, ["a", "b", "never-seen"])
    assert m["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro"))
    # ...but a present class that is never predicted counts as 0, and so does a wrongly predicted one.
    m2 = quality_metrics(np.array([0, 1, 2]), np.array([0, 1, 1]), ["a", "b", "c"])
    assert m2["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_macro_f1_averages_over_gold_classes_only():
    # Class "c" never occurs in gold but is predicted once: with gold-class averaging the false
    # positive lowers the recall of "a" and adds no zero-F1 class to the average.
    gold = np.array([0, 0, 1, 1])
    pred = np.array([0, 2, 1, 1])
    m = quality_metrics(gold, pred, ["a", "b", "c"])
    assert m["macro_f1"] == pytest.approx(f1_score(gold, pred, labels=[0, 1], average="macro"))
    assert m["macro_f1_gold_or_pred"] == pytest.approx(f1_score(gold, pred, average="macro"))
    assert m["macro_f1"] > m["macro_f1_gold_or_pred"]


def test_confusion_matrix_has_an_invalid_column():
    gold = np.array([0, 1, 1, 2])
    pred = np.array([0, -1, 1, -1])
    m = quality_metrics(gold, pred, ["x", "y", "z"])
    assert m["confusion_matrix_columns"] == ["x", "y", "z", "invalid"]
    assert m["confusion_matrix"] == [[1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 1]]


def test_calibration_uses_valid_rows_only():
    gold = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.5, 0.5]])
    pred = np.array([0, 1, -1, -1])  # the last two: invalid outputs
    m = quality_metrics(gold, pred, ["n", "p"], proba)
    assert m["ece"] == pytest.approx(expected_calibration_error(gold[:2], proba[:2]))
    assert m["brier"] == pytest.approx(brier_score(gold[:2], proba[:2]))
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8])))
    assert m["calibration_examples"] == 2 and m["invalid_rate"] == 0.5
    # every output invalid: no calibration to report (not a perfect 0.0)
    none = quality_metrics(gold, np.full(4, -1), ["n", "p"], proba)
    assert none["ece"] is None and none["brier"] is None and none["log_loss"] is None


def test_calibration_leaves_out_rows_without_real_probabilities():
    """A one-hot placeholder (an API answer parsed from text) is no probability: a wrong one
    used to add 27.6 nats of log loss and a full-confidence miss to ECE."""
    gold = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [1.0, 0.0], [0.0, 1.0]])
    pred = np.array([0, 1, 0, 1])
    m = quality_metrics(gold, pred, ["n", "p"], proba, proba_rows=np.array([True, True, False, False]))
    assert m["calibration_examples"] == 2 and m["accuracy"] == 0.5
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8])))
    assert m["ece"] == pytest.approx(expected_calibration_error(gold[:2], proba[:2]))
    none = quality_metrics(gold, pred, ["n", "p"], proba, proba_rows=np.zeros(4, dtype=bool))
    assert none["ece"] is None and none["log_loss"] is None and none["calibration_examples"] == 0


def test_stored_run_with_some_rows_without_probabilities():
    from pathlib import Path

    from clfbench.report.runs import Run

    rows = [{"id": "a", "gold": "n", "pred": "n", "probabilities": {"n": 0.9, "p": 0.1}},
            {"id": "b", "gold": "p", "pred": "p"}]  # parsed from text: no probabilities
    run = Run("r", Path("."), {}, {}, rows, ["n", "p"], "t", "llm-api", None, 1)
    assert run.has_probabilities
    proba = run.probabilities()
    assert proba[0].tolist() == [0.9, 0.1] and np.isnan(proba[1]).all()


def test_validation_selection_uses_the_reported_macro_f1_when_a_class_is_missing():
    """A small validation split of a 5-class task holds 3 classes: the score selection records
    (torch_training.scores, c_choice.choose_c) is the reported macro-F1, over the gold classes,
    not an average that counts the 2 absent classes as F1 0."""
    from clfbench.data.texts import LabeledTexts
    from clfbench.methods.c_choice import choose_c
    from clfbench.methods.torch_training import scores

    gold = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    pred = np.array([0, 0, 1, 3, 2, 2, 1, 0])
    reported = quality_metrics(gold, pred, list("abcde"))["macro_f1"]
    assert reported == pytest.approx(f1_score(gold, pred, labels=[0, 1, 2], average="macro"))
    assert scores(gold, np.eye(5)[pred], 5)["macro_f1"] == pytest.approx(reported)
    validation = LabeledTexts(texts=["x"] * len(gold), labels=gold, label_names=list("abcde"))
    c, _, by_c = choose_c("m", None, [0.5, 1.0], fit=lambda c: c,
                          predict=lambda c: pred if c == 1.0 else np.zeros_like(pred),
                          validation=validation, n_labels=5)
    assert c == 1.0 and by_c["1.0"] == pytest.approx(reported)
    from clfbench.evaluation.metrics import macro_f1  # the one definition all of these call

    assert macro_f1(gold, pred) == pytest.approx(reported)
