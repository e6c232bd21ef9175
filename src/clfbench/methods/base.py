"""The estimator contract every method follows, and the registry that finds methods by name.

A method is a scikit-learn-style estimator: parameters in `__init__`, fitted state set in
`fit`, then `predict_proba` / `predict`. Evaluation, timing and storage live elsewhere
(`evaluate.py`, `measure.py`, `store.py`) so that every method is measured the same way.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from clfbench.data.texts import INVALID, LabeledTexts, Texts  # noqa: F401 - INVALID: part of a method's contract
from clfbench.errors import ClfbenchError
from clfbench.extras import require
from clfbench.methods.registry import METHODS, get_method, register_method  # noqa: F401 - re-exported

T = TypeVar("T")



class Classifier:
    """Base class: subclasses implement `fit`, `predict_proba`, `_save_state`, `_load_state`.

    `predict` is argmax of `predict_proba` unless a method overrides it (generation methods
    return INVALID for outputs that match no label). Methods that cannot produce real
    probabilities set `has_probabilities = False`; calibration metrics are then reported as
    not applicable instead of being computed from fake one-hot vectors.
    """

    name: ClassVar[str] = ""
    has_probabilities: ClassVar[bool] = True
    #: Methods that predict without training data (zero-shot) set this to False.
    needs_training: ClassVar[bool] = True
    #: Methods that pay per request (API models): evaluation skips the throughput warm-up
    #: pass and warms latency with one request, since every call costs money.
    remote: ClassVar[bool] = False
    #: Methods that accept `model` only to refuse it (tfidf-lr) set this to False.
    takes_model: ClassVar[bool] = True
    #: Optional libraries the method imports (`clfbench.extras`): a missing one is a one-line
    #: error naming the extra when the method is built or loaded, before any data or model loads.
    requires: ClassVar[tuple[str, ...]] = ()
    #: Parameters that name a Hugging Face model (hub id, local folder or alias): resolved, and
    #: the model's config fetched, before a grid loads any data (`check_models`).
    model_params: ClassVar[tuple[str, ...]] = ()

    labels: list[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A class declaring its parameters (`params.Param`) gets an `__init__` that assigns
        them and validates once; a hand-written `__init__` is left as it is (a plug-in)."""
        super().__init_subclass__(**kwargs)
        from clfbench.methods.params import build_init, collect_params

        inherited = getattr(cls.__init__, "_generated_", False) or cls.__init__ is object.__init__
        if "__init__" not in vars(cls) and inherited and collect_params(cls):
            build_init(cls)

    def validate_params(self) -> None:
        """Check every parameter once, however the method is built (`make_method`, a grid, the
        CLI, Python, `load`): its declared type and range, then the class's own explicit checks
        (`_check_params`: rules across parameters, or values a type cannot say). First, the
        optional extras the method `requires`."""
        from clfbench.methods.params import Param, check_params, collect_params, declared_params

        klass = type(self)
        require(*klass.requires, what=f"method {self.name!r}")  # a missing extra, before anything
        names = declared_params(klass) or collect_params(klass)  # (a plug-in may subclass a method)
        values = {n: getattr(self, n, None) for n in names}
        check_params(klass, {n: v for n, v in values.items() if not isinstance(v, Param)},
                     f"method {self.name!r}")
        self._check_params()

    def _check_params(self) -> None:
        """The class's explicit checks, after types and ranges (subclasses call `super()`)."""

    # --- the contract -------------------------------------------------------------------
    def fit(self, train: LabeledTexts, validation: LabeledTexts | None = None) -> Classifier:
        raise NotImplementedError

    def predict_proba(self, X: Texts) -> np.ndarray:
        raise NotImplementedError

    def predict(self, X: Texts) -> np.ndarray:
        return np.asarray(self.predict_proba(X)).argmax(axis=1)

    def classify(self, X: Texts) -> tuple[np.ndarray, np.ndarray | None]:
        """Label ids and probabilities (or None) in one pass: what evaluation times.

        Methods whose `predict` is not the argmax of `predict_proba` (generation with
        parsing) override this so that a prediction is never computed twice.
        """
        if not self.has_probabilities:
            return np.asarray(self.predict(X)), None
        proba = np.asarray(self.predict_proba(X), dtype=float)
        return proba.argmax(axis=1), proba

    def probability_rows(self) -> np.ndarray | None:
        """Which rows of the last `classify`'s probabilities are real (a boolean mask), or None
        when all are. Rows outside it (an API answer parsed from text, whose probabilities are
        a one-hot placeholder) are left out of calibration and of the saved probabilities."""
        return None

    # --- what evaluation reads after fit ------------------------------------------------
    def n_parameters(self) -> tuple[int, int]:
        """(total, trainable) parameter counts; 0 where the notion does not apply."""
        return 0, 0

    def fit_info(self) -> dict[str, Any]:
        """Method-specific facts from fit (best epoch, history, tokens, ...), saved with the run."""
        return dict(getattr(self, "fit_info_", {}) or {})

    def inference_info(self) -> dict[str, Any]:
        """Facts about the last predictions (invalid rate, tokens, backend), saved with the run."""
        return {}

    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self" and hasattr(self, k)}

    # --- persistence -------------------------------------------------------------------
    def saved_params(self) -> dict[str, Any]:
        """The parameters `save` writes to method.json: `get_params()`, unless a method folds
        in a file a parameter names, so that the saved model reloads without the file."""
        return self.get_params()

    def save(self, path: str | Path) -> None:
        """Write `method.json` (name, params, labels) and the fitted state into `path`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"method": self.name, "params": self.saved_params(), "labels": list(self.labels)}
        (path / "method.json").write_text(json.dumps(meta, indent=2, default=str))
        self._save_state(path)

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        """Load any saved method: `Classifier.load(p)` dispatches on `method.json`."""
        path = Path(path)
        meta_file = path / "method.json"
        if not meta_file.is_file():
            raise ClfbenchError(f"{path}: no saved model here (method.json missing)")
        meta = load_file(meta_file, lambda p: json.loads(p.read_text(encoding="utf-8")))
        if not isinstance(meta, dict) or not {"method", "params", "labels"} <= set(meta):
            raise ClfbenchError(f"{meta_file}: corrupted (expected an object with method, params, labels)")
        klass = get_method(meta["method"])
        require(*klass.requires, what=f"method {klass.name!r}")
        try:
            obj = load_file(meta_file, lambda p: klass(**meta["params"]))
        except ClfbenchError as e:  # a value refused by `validate_params`
            raise ClfbenchError(f"{meta_file}: {e}") from None
        obj.labels = list(meta["labels"])
        load_file(path, obj._load_state)  # methods name their own files where they can
        return obj

    def check_models(self) -> None:
        """Resolve every model the method names (`model_params`) and read its config: a model
        that cannot be found is one line, exit 2, before any data or weights load."""
        from clfbench.engines.models import check_available

        for param in self.model_params:
            name = getattr(self, param, None)
            if name is not None:
                check_available(name, self.name)

    def check_files(self) -> None:
        """Read and check every file a parameter names (`template`, `label_descriptions`,
        `prices`): a missing or malformed one is one line, exit 2, before a grid loads any data
        or computes any run. (Labels are not known yet: a descriptions file naming a label the
        data lacks is refused when the run starts.)"""
        from clfbench.engines.pricing import load_prices
        from clfbench.engines.prompts import load_template, read_label_descriptions

        readers = {"template": load_template, "label_descriptions": read_label_descriptions,
                   "prices": load_prices}
        for param, reader in readers.items():
            value = getattr(self, param, None)
            if value:
                reader(value)

    def _save_state(self, path: Path) -> None:
        raise NotImplementedError

    def _load_state(self, path: Path) -> None:
        raise NotImplementedError


def confirm_endpoint(model: Classifier, endpoint: dict | None) -> None:
    """Apply the user's word on a loaded API model's endpoint (`LlmApi.use_endpoint`:
    base_url, api_key_env, trust); other methods have none. Refuses a stored non-default
    endpoint the user has not confirmed, before any request."""
    use = getattr(model, "use_endpoint", None)
    if use is not None:
        use(**(endpoint or {}))


def load_file(path: Path, loader: Callable[[Path], T]) -> T:
    """`loader(path)`; any failure (a truncated, corrupted or missing file) becomes one
    ClfbenchError naming `path`."""
    try:
        return loader(path)
    except ClfbenchError:
        raise
    except Exception as e:  # noqa: BLE001 - unpicklers and parsers raise anything
        detail = (str(e).strip().splitlines() or [""])[0][:200]
        raise ClfbenchError(
            f"{path}: cannot be loaded, truncated or corrupted ({type(e).__name__}"
            + (f": {detail})" if detail else ")")
        ) from None


# --- the registry's methods, by name -------------------------------------------------------
def accepted_params(name: str) -> set[str]:
    """The parameters a registered method takes (its `__init__` arguments)."""
    return set(inspect.signature(get_method(name).__init__).parameters) - {"self"}


def takes_model(name: str) -> bool:
    """Whether a registered method runs on a model (`--model`, a grid's `models:`)."""
    return get_method(name).takes_model and "model" in accepted_params(name)


def check_param_names(name: str, params: dict[str, Any], where: str | None = None) -> None:
    """Refuse parameters the method does not take; `where` prefixes the message (default: the
    method's name)."""
    accepted = accepted_params(name)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ClfbenchError(
            f"{where or f'method {name!r}'}: unknown parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )


def check_method_params(name: str, params: dict[str, Any], where: str | None = None) -> None:
    """`check_param_names`, then each value against its declared type and range, without
    building the method: what a grid file checks, naming its own place (`where`), before any run."""
    from clfbench.methods.params import check_params

    check_param_names(name, params, where)
    check_params(get_method(name), params, where or f"method {name!r}")


def make_method(name: str, **params: Any) -> Classifier:
    """Build a method from its name and parameters, rejecting unknown or bad values clearly
    (the class validates its values when built: `Classifier.validate_params`)."""
    check_param_names(name, params)
    return get_method(name)(**params)  # validates once: extras, types and ranges, explicit checks


def method_trains(name: str) -> bool:
    """Whether the method `name` learns from labelled examples (an unknown plug-in is assumed to)."""
    try:
        return bool(get_method(name).needs_training)
    except Exception:  # noqa: BLE001 - a plug-in not importable here: treat as trained
        return True
