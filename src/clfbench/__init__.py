"""clfbench: measured evidence, on your own data, for how to classify text."""

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.errors import ClfbenchError
from clfbench.version import __version__

__all__ = ["ClfbenchError", "LabeledTexts", "Texts", "__version__"]
