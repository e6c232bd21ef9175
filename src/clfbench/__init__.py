"""clfbench: measured evidence, on your own data, for how to classify text."""

from clfbench.data import LabeledTexts, Texts
from clfbench.errors import ClfbenchError

__version__ = "0.1.0"
__all__ = ["ClfbenchError", "LabeledTexts", "Texts", "__version__"]
