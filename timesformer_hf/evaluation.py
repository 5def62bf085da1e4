"""Accuracy of a model on a labelled video set, with the original test protocol (views' softmax scores averaged).

Example:

```python
>>> import numpy as np
>>> probabilities = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3]])
>>> report = accuracy_report(probabilities, np.array([0, 2, 1]), ["a", "b", "c"])
>>> report["top1_accuracy"], report["top2_accuracy"], report["per_class_accuracy"]
(0.6666666666666666, 1.0, {'a': 1.0, 'b': 1.0, 'c': 0.0})

```
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .extras import require
from .files import write_atomically

__all__ = ["accuracy_report", "confusion_matrix", "plot_confusion_matrix"]


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
    """`(num_labels, num_labels)` counts: row = true label, column = predicted label."""
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def accuracy_report(
    probabilities: np.ndarray, labels: np.ndarray, label_names: Sequence[str], ks: Sequence[int] = (1, 5)
) -> dict[str, Any]:
    """Top-k accuracies (for each k in `ks` below the number of classes, and 1), per-class top-1 accuracy (classes
    that occur in `labels`) and the confusion matrix, from `(videos, classes)` probabilities."""
    num_labels = probabilities.shape[1]
    ranking = np.argsort(-probabilities, axis=1, kind="stable")
    report: dict[str, Any] = {"num_videos": len(labels)}
    for k in sorted({1, *(k for k in ks if k < num_labels)}):
        report[f"top{k}_accuracy"] = float((ranking[:, :k] == labels[:, None]).any(1).mean())
    correct = ranking[:, 0] == labels
    report["per_class_accuracy"] = {
        label_names[c]: float(correct[labels == c].mean()) for c in sorted(set(labels.tolist()))
    }
    report["confusion_matrix"] = confusion_matrix(ranking[:, 0], labels, num_labels).tolist()
    return report


def plot_confusion_matrix(matrix: np.ndarray, label_names: Sequence[str], path: str | os.PathLike) -> None:
    """A PNG of the confusion matrix, restricted to the classes that occur (as true or predicted labels)."""
    feature = "The confusion-matrix plot"
    FigureCanvasAgg = require("matplotlib.backends.backend_agg", feature).FigureCanvasAgg
    Figure = require("matplotlib.figure", feature).Figure
    matrix = np.asarray(matrix)
    shown = np.flatnonzero(matrix.sum(0) + matrix.sum(1))
    matrix = matrix[np.ix_(shown, shown)]
    names = [label_names[i] for i in shown]
    size = min(4 + 0.35 * len(names), 40)
    figure = Figure(figsize=(size, size))  # not pyplot: the caller's backend and figures are left alone
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(names)), names, rotation=90)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(names) <= 30:
        for (row, column), count in np.ndenumerate(matrix):
            axes.text(column, row, str(count), ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    FigureCanvasAgg(figure)
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
