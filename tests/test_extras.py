"""Optional dependencies: a missing one is an ImportError that names the pip extra to install."""

import sys

import numpy as np
import pytest

from timesformer_hf.evaluation import plot_confusion_matrix
from timesformer_hf.extras import EXTRAS, require


def without_module(monkeypatch, name: str) -> None:
    """Make `import name` and `import name.anything` fail for one test, as if `name` were not installed (its
    submodules imported by earlier tests are hidden too: a cached submodule would import without its package)."""
    for cached in [cached for cached in sys.modules if cached.startswith(f"{name}.")]:
        monkeypatch.setitem(sys.modules, cached, None)
    monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("module", sorted(EXTRAS))
def test_a_missing_optional_module_names_its_extra(module, monkeypatch):
    without_module(monkeypatch, module)
    with pytest.raises(
        ImportError, match=rf"^Pictures needs {module}: pip install 'timesformer-hf\[{EXTRAS[module]}\]'"
    ):
        require(module, "Pictures")


def test_installed_optional_modules_are_returned():
    assert require("matplotlib.figure", "Pictures").Figure.__name__ == "Figure"


def test_the_confusion_matrix_plot_says_what_to_install(tmp_path, monkeypatch):
    without_module(monkeypatch, "matplotlib")
    with pytest.raises(ImportError, match=r"pip install 'timesformer-hf\[viz\]'"):
        plot_confusion_matrix(np.eye(2, dtype=int), ["a", "b"], tmp_path / "matrix.png")
    assert not (tmp_path / "matrix.png").exists()
