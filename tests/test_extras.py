"""Optional dependencies: a missing one is an ImportError that names the pip extra to install."""

import sys

import numpy as np
import pytest

from timesformer_hf.evaluation import plot_confusion_matrix
from timesformer_hf.extras import EXTRAS, require


@pytest.mark.parametrize("module", sorted(EXTRAS))
def test_a_missing_optional_module_names_its_extra(module, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(
        ImportError, match=rf"^Pictures needs {module}: pip install 'timesformer-hf\[{EXTRAS[module]}\]'"
    ):
        require(module, "Pictures")


def test_installed_optional_modules_are_returned():
    assert require("matplotlib.figure", "Pictures").Figure.__name__ == "Figure"


def test_the_confusion_matrix_plot_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'timesformer-hf\[viz\]'"):
        plot_confusion_matrix(np.eye(2, dtype=int), ["a", "b"], tmp_path / "matrix.png")
    assert not (tmp_path / "matrix.png").exists()
