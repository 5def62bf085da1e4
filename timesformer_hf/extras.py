"""Optional dependencies: import them where a feature needs them, with one message that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["EXTRAS", "require"]

# The pip extra that brings each optional module (setup.cfg's [options.extras_require]).
EXTRAS = {
    "matplotlib": "viz",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
    "peft": "peft",
    "faiss": "search",
    "gradio": "app",
}


def require(module: str, feature: str) -> ModuleType:
    """Import `module` (e.g. `"matplotlib.figure"`) or raise a `MissingDependencyError` (an `ImportError`) naming
    `feature` and the extra.

    Example:

    ```python
    >>> figure = require("matplotlib.figure", "The confusion-matrix plot")  # doctest: +SKIP
    MissingDependencyError: The confusion-matrix plot needs matplotlib: pip install 'timesformer-hf[viz]'.
    ```
    """
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(
            f"{feature} needs {package}: pip install 'timesformer-hf[{EXTRAS[package]}]'."
        ) from error
