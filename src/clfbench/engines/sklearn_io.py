"""Scikit-learn estimators on disk without pickles.

A fitted estimator (tfidf-lr's pipeline, the logistic regressions of embed-probe and setfit)
is saved with `skops.io` (`NAME.skops`): loading it builds only types on skops' trusted list
(scikit-learn, numpy, scipy), so a crafted file cannot run code; one naming any other type is
refused, with the types. Folders saved by earlier versions hold `NAME.joblib`, a pickle that
runs whatever code it holds when loaded: it is refused too, unless the user says the folder is
trusted (`CLFBENCH_TRUST_PICKLES=1`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clfbench.errors import ClfbenchError

SUFFIX = ".skops"
TRUST_PICKLES_ENV = "CLFBENCH_TRUST_PICKLES"


def save_estimator(obj: Any, folder: Path, name: str) -> Path:
    """Write `obj` to `folder/name.skops`; returns the file."""
    import skops.io as sio

    path = Path(folder) / f"{name}{SUFFIX}"
    sio.dump(obj, path)
    return path


def load_estimator(folder: Path, name: str) -> Any:
    """The estimator saved by `save_estimator` (trusted types only); a legacy `name.joblib`
    pickle only with CLFBENCH_TRUST_PICKLES=1. Errors are one ClfbenchError naming the file."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    folder = Path(folder)
    path = folder / f"{name}{SUFFIX}"
    legacy = folder / f"{name}.joblib"
    if not path.exists() and legacy.exists():
        if os.environ.get(TRUST_PICKLES_ENV) != "1":
            raise ClfbenchError(
                f"{legacy}: a pickle, which runs any code it holds when loaded; not loaded. "
                f"Save it again with this version (re-run with --save-model, or export again), "
                f"or set {TRUST_PICKLES_ENV}=1 if you trust where this folder came from"
            )
        import joblib

        return _load_file(legacy, joblib.load)

    def load(p: Path) -> Any:
        try:
            return sio.load(p, trusted=None)
        except UntrustedTypesFoundException:
            kinds = ", ".join(sio.get_untrusted_types(file=p))[:300]
            raise ClfbenchError(f"{p}: names types that are not trusted ({kinds}); not loaded") from None

    return _load_file(path, load)


def _load_file(path: Path, loader: Any) -> Any:
    """`loader(path)`; any failure is one ClfbenchError naming `path` (as
    `methods.base.load_file`, without importing the methods: exports load without them)."""
    try:
        return loader(path)
    except ClfbenchError:
        raise
    except Exception as e:  # noqa: BLE001 - loaders raise anything
        detail = (str(e).strip().splitlines() or [""])[0][:200]
        raise ClfbenchError(f"{path}: cannot be loaded, truncated or corrupted ({type(e).__name__}"
                            + (f": {detail})" if detail else ")")) from None
