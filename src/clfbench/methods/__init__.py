"""Methods: one file each, registered by name in `base.METHODS`."""

from clfbench.methods.base import (
    INVALID,
    METHODS,
    Classifier,
    get_method,
    make_method,
    register_method,
)

__all__ = ["INVALID", "METHODS", "Classifier", "get_method", "make_method", "register_method"]
