"""`evaluate` metric modules shipped with the package, loaded by path so that nothing is downloaded."""

from pathlib import Path

TOP_K_ACCURACY = str(Path(__file__).parent / "top_k_accuracy" / "top_k_accuracy.py")
MULTI_LABEL = str(Path(__file__).parent / "multi_label" / "multi_label.py")

__all__ = ["MULTI_LABEL", "TOP_K_ACCURACY"]
