"""`evaluate` metric modules shipped with the package, loaded by path so that nothing is downloaded."""

from pathlib import Path

TOP_K_ACCURACY = str(Path(__file__).parent / "top_k_accuracy" / "top_k_accuracy.py")

__all__ = ["TOP_K_ACCURACY"]
