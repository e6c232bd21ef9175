"""`distill`: an LLM labels a pool of unlabelled texts, an encoder is fine-tuned on its labels.

It answers "can I have the LLM's quality at the encoder's price?": the teacher (an LLM
method: `llm-prompt` with a local model, `llm-api` with an endpoint, or any registered method
that does not train on labels) labels the pool once during `fit`; the student (`encoder-ft`)
is trained on those labels and is what evaluation times and scores, like any other method.

What the teacher sees: the task's label names and prompt, the pool's texts (never their gold
labels), its own few-shot demonstrations when its `shots` > 0 (gold-labelled training
examples, exactly as that teacher method uses them alone; default 0), and, for `llm-api`
with `decision="auto"`, one validation text in its probe request. A teacher that trains on
labels (`needs_training`, e.g. llm-sft) is refused: it would see every gold label.

The pool: `pool="train"` (the training split's texts, labels withheld; with `--max-train`
the capped split), or a file of texts (`.txt`: one text a line; csv/tsv/jsonl/json/parquet:
column `pool_text_col`, and `pool_pair_col` for text-pair tasks), read with clfbench's io
readers. Texts the teacher answered INVALID (an unparseable answer, or an API request that
failed or was not sent for budget) are dropped from the student's training set and counted.

Selection: the student selects its epoch and learning rate on the *gold* validation split,
exactly as encoder-ft does alone (every method in a comparison selects on the same gold
validation; only the training labels come from the teacher).

Recorded in `fit_info()["labelling"]`: texts labelled and dropped (invalid answers, requests
failed or not sent), calls, input/output tokens, USD (API teachers with a price, from the API
client's accounting), labelling seconds (teacher fit + labelling), the teacher labels'
distribution, and their agreement with the gold labels (accuracy and Cohen's kappa over the
answered texts, and coverage) when gold is known (`pool="train"`). A teacher whose API
requests failed after retries makes the run incomplete (`inference_info()["incomplete"]`),
as llm-api does: a rerun would train on another set.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.errors import ClfbenchError
from clfbench.methods.base import INVALID, Classifier, accepted_params, get_method, make_method
from clfbench.methods.params import SEED, Param

STUDENT_METHOD = "encoder-ft"
POOL_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".json", ".parquet")


class Distill(Classifier):
    """An LLM teacher labels a pool of texts; an encoder-ft student is trained on its labels.

    The teacher sees the label names, the prompt and the pool's texts, plus its own few-shot
    demonstrations if its `shots` > 0; never the pool's gold labels. Texts it answers INVALID
    are dropped and counted. The student selects on the gold validation split, as encoder-ft
    does. fit_info records the labelling's calls, tokens, USD, seconds and its agreement with
    gold (accuracy, Cohen's kappa) when the pool is the training split. Example:
    --param 'teacher={method: llm-api, model: gpt-4o-mini, budget_usd: 2}' --param student=minilm
    """

    name = "distill"
    verbose: ClassVar[bool] = True
    teacher: dict | None = Param(
        None, "the labelling method and its parameters, e.g. {method: llm-api, model: gpt-4o-mini}")
    student: str | None = Param("minilm", "the encoder fine-tuned on the teacher's labels (encoder-ft's model)")
    student_params: dict | None = Param(None, "other encoder-ft parameters of the student, e.g. {epochs: 2}")
    pool: str = Param("train", "texts the teacher labels: train (the training texts, labels withheld) or a file")
    pool_text_col: str = Param("text", "text column of a pool file (csv, tsv, jsonl, json, parquet)")
    pool_pair_col: str | None = Param(None, "second-text column of a pool file, for text-pair tasks")
    prompt: dict | None = Param(None, "the task's prompt, given to the teacher unless its spec has its own")
    seed: int = SEED.but(help="seed of the teacher (its few-shot draw) and of the student's training "
                              "(also --seed)")

    def _check_params(self) -> None:
        """The teacher and the student are built (so checked) with the method."""
        self.teacher_ = self._build_teacher()
        self.student_ = self._build_student()
        self._check_pool()

    # --- checked when built -------------------------------------------------------------------
    def _build_teacher(self) -> Classifier:
        spec = self.teacher
        if not isinstance(spec, dict) or not isinstance(spec.get("method"), str):
            raise ClfbenchError(
                "distill: teacher must name its method and parameters, e.g. "
                "teacher={method: llm-prompt, model: Qwen/Qwen2.5-0.5B-Instruct}; got "
                f"{spec!r}")
        method = spec["method"]
        klass = get_method(method)
        if klass.needs_training:  # distill itself too
            raise ClfbenchError(
                f"distill: teacher method {method!r} trains on the gold labels; a teacher must "
                "label without training (llm-prompt, llm-api, ...)")
        params = {k: v for k, v in spec.items() if k != "method"}
        accepted = accepted_params(method)
        if "model" in accepted and not params.get("model"):
            raise ClfbenchError(f"distill: teacher {method!r} needs a model: teacher={{method: "
                                f"{method}, model: ...}}")
        if params.get("draws", 1) != 1:  # the runner expands draws for a method's own runs only
            raise ClfbenchError("distill: teacher draws must be 1 (one labelling of the pool); "
                                "compare shot sets with separate runs and seeds")
        if "prompt" in accepted and self.prompt is not None:
            params.setdefault("prompt", self.prompt)
        if "seed" in accepted:
            params.setdefault("seed", self.seed)
        try:
            return make_method(method, **params)
        except ClfbenchError as e:
            raise ClfbenchError(f"distill: teacher: {e}") from None

    def _build_student(self) -> Classifier:
        extra = dict(self.student_params or {})
        for key in ("model", "seed"):
            if key in extra:
                raise ClfbenchError(f"distill: student_params.{key}: give it as "
                                    f"{'student' if key == 'model' else 'seed'}=, not here")
        try:
            return make_method(STUDENT_METHOD, model=self.student, seed=self.seed, **extra)
        except ClfbenchError as e:
            raise ClfbenchError(f"distill: student_params: {e}") from None

    def check_models(self) -> None:
        """The teacher's and the student's models, before any data loads."""
        self.teacher_.check_models()
        self.student_.check_models()

    def check_files(self) -> None:
        """The files the teacher's and the student's parameters name, before any data loads."""
        self.teacher_.check_files()
        self.student_.check_files()
        if self.pool != "train":  # a bad pool file: one line before a grid computes any run
            self._read_pool_file()

    def _check_pool(self) -> None:
        """The pool's file type; whether the file is there is checked in `fit` (a saved model
        loads without its pool file)."""
        if self.pool == "train":
            return
        path = Path(str(self.pool)).expanduser()
        if path.suffix.lower() not in POOL_SUFFIXES:
            raise ClfbenchError(f"distill: pool {self.pool!r}: unknown file type "
                                f"{path.suffix!r}; use one of {', '.join(POOL_SUFFIXES)}")

    # --- the pool -------------------------------------------------------------------------------
    def _read_pool(self, train: LabeledTexts) -> tuple[Texts, np.ndarray | None, list[str]]:
        """(texts, gold label ids or None, ids) of the pool."""
        if self.pool == "train":
            return Texts(train.texts, train.pairs), train.labels, list(train.ids)
        texts = self._read_pool_file()
        if texts.is_pair != train.is_pair:
            need = ("text pairs: give pool_pair_col" if train.is_pair
                    else "single texts: pool_pair_col is for text-pair tasks")
            raise ClfbenchError(f"distill: pool {self.pool!r}: this task has {need}")
        return texts, None, [f"pool-{i}" for i in range(len(texts))]

    def _read_pool_file(self) -> Texts:
        """The texts of the pool file, read and checked (found, UTF-8, its columns)."""
        path = Path(str(self.pool)).expanduser()
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "not found"
            raise ClfbenchError(f"distill: pool {self.pool!r}: {what} (expected 'train' or a file "
                                f"of texts: {', '.join(POOL_SUFFIXES)})")
        if path.suffix.lower() == ".txt":
            from clfbench.data.files import check_utf8

            check_utf8(path)
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            if not lines:
                raise ClfbenchError(f"{path}: no texts")
            texts = Texts(lines)
        else:
            from clfbench.data.files import frame_to_labeled, read_table

            data = frame_to_labeled(read_table(path), str(path), self.pool_text_col, None,
                                    pair_col=self.pool_pair_col)
            texts = Texts(data.texts, data.pairs)
        return texts

    # --- fit ---------------------------------------------------------------------------------------
    def fit(self, train: LabeledTexts, validation: LabeledTexts | None = None) -> Distill:
        self.labels = list(train.label_names)
        pool, gold, ids = self._read_pool(train)  # a bad pool file fails before any model loads
        for m in (self.teacher_, self.student_):
            if hasattr(m, "verbose"):
                m.verbose = self.verbose
        t0 = time.perf_counter()
        self.teacher_.fit(train, validation)
        t1 = time.perf_counter()
        pred = np.asarray(self.teacher_.classify(pool)[0], dtype=np.int64)
        t2 = time.perf_counter()
        teacher_info = self.teacher_.inference_info()
        keep = pred != INVALID
        labelling = self._labelling_facts(pred, teacher_info, t1 - t0, t2 - t1)
        kept = np.flatnonzero(keep)
        if len(set(pred[kept].tolist())) < 2:
            shown = ", ".join(f"{k}: {v}" for k, v in labelling["teacher_label_counts"].items())
            raise ClfbenchError(
                f"distill: the teacher's labels of the pool have fewer than two classes "
                f"({shown}; {labelling['dropped']} dropped); a student cannot learn from them")
        student_train = LabeledTexts(
            [pool.texts[i] for i in kept], None if pool.pairs is None else [pool.pairs[i] for i in kept],
            pred[kept], list(self.labels), [ids[i] for i in kept])
        teacher = {"method": self.teacher["method"], "params": _jsonable(self.teacher_.get_params()),
                   "fit_info": self.teacher_.fit_info(), "inference_info": teacher_info}
        # The fitted teacher (a whole LLM, perhaps on the GPU) is not kept while the student
        # trains and is timed: only the student predicts.
        self.teacher_ = self._build_teacher()
        self.student_.fit(student_train, validation)
        self.teacher_incomplete_ = teacher_info.get("incomplete")
        self.fit_info_ = {
            "teacher": teacher,
            "labelling": labelling,
            "agreement_with_gold": None if gold is None else agreement(gold, pred, len(self.labels)),
            "selection": "student selects on the gold validation split (as encoder-ft does)",
            "student": {"method": STUDENT_METHOD, "model": self.student,
                        "fit_info": self.student_.fit_info()},
        }
        return self

    def _labelling_facts(self, pred: np.ndarray, info: dict[str, Any], fit_s: float,
                         label_s: float) -> dict[str, Any]:
        """Counts, calls, tokens, USD and seconds of the teacher's labelling pass."""
        n = len(pred)
        dropped = int((pred == INVALID).sum())
        not_labelled = int(info.get("not_classified", 0)) if "requests" in info else 0
        counts = np.bincount(pred[pred != INVALID], minlength=len(self.labels))
        out: dict[str, Any] = {
            "pool": self.pool, "pool_size": n, "labelled": n - dropped, "dropped": dropped,
            "dropped_invalid_answers": dropped - not_labelled,
            "dropped_not_labelled": not_labelled,
            "teacher_label_counts": {name: int(c) for name, c in zip(self.labels, counts)},
            "teacher_fit_seconds": fit_s, "labelling_seconds": label_s,
            "seconds": fit_s + label_s,
        }
        if "requests" in info:  # an API teacher: the client's accounting, probe included
            out.update(calls=info["requests"], input_tokens=info["input_tokens"],
                       output_tokens=info["output_tokens"], usd=info.get("usd_spent"),
                       budget_exhausted=info.get("budget_exhausted", False))
        else:  # a local model: one prompt per pool text
            n_ex = info.get("n_examples", n)
            out.update(calls=n_ex,
                       input_tokens=round(info.get("prompt_tokens_mean", 0.0) * n_ex),
                       output_tokens=round(info.get("generated_tokens_mean", 0.0) * n_ex),
                       usd=None)
        return out

    # --- predict: the student -----------------------------------------------------------------
    def predict_proba(self, X: Texts) -> np.ndarray:
        return self.student_.predict_proba(X)

    def predict(self, X: Texts) -> np.ndarray:
        return self.student_.predict(X)

    def classify(self, X: Texts) -> tuple[np.ndarray, np.ndarray | None]:
        return self.student_.classify(X)

    def n_parameters(self) -> tuple[int, int]:
        return self.student_.n_parameters()

    def inference_info(self) -> dict[str, Any]:
        info = dict(self.student_.inference_info())
        incomplete = getattr(self, "teacher_incomplete_", None)
        if incomplete:
            info["incomplete"] = f"teacher labelling: {incomplete}"
        return info

    # --- persistence: the student (the teacher is not needed after fit) -------------------------
    def _save_state(self, path: Path) -> None:
        self.student_.save(path / "student")
        state = {"fit_info": self.fit_info_, "teacher_incomplete": self.teacher_incomplete_}
        (path / "distill.json").write_text(json.dumps(state, indent=2, default=str))

    def _load_state(self, path: Path) -> None:
        state = json.loads((path / "distill.json").read_text())
        self.student_ = Classifier.load(path / "student")
        self.fit_info_ = state.get("fit_info", {})
        self.teacher_incomplete_ = state.get("teacher_incomplete")


def agreement(gold: np.ndarray, pred: np.ndarray, n_labels: int) -> dict[str, Any]:
    """Teacher labels vs gold over the answered texts: accuracy, Cohen's kappa, coverage."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score

    answered = pred != INVALID
    g, p = gold[answered], pred[answered]
    if not len(g):
        return {"n": 0, "coverage": 0.0, "accuracy": None, "cohen_kappa": None}
    kappa = cohen_kappa_score(g, p, labels=list(range(n_labels)))
    return {"n": int(len(g)), "coverage": float(answered.mean()),
            "accuracy": float(accuracy_score(g, p)),
            "cohen_kappa": None if np.isnan(kappa) else float(kappa)}


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=str))
