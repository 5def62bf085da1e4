"""Accuracy of a model on a labelled video set, with the original test protocol (views' softmax scores averaged), and
the metrics of multi-label models (several labels per video): mean average precision and F1 at a threshold.

Example:

```python
>>> import numpy as np
>>> probabilities = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3]])
>>> report = accuracy_report(probabilities, np.array([0, 2, 1]), ["a", "b", "c"], ks=(1, 2))
>>> report["top1_accuracy"], report["top2_accuracy"], report["per_class_accuracy"]
(0.6666666666666666, 1.0, {'a': 1.0, 'b': 1.0, 'c': 0.0})

```

A multi-label model, scored by its sigmoid probabilities (two videos, two classes):

```python
>>> targets = np.array([[1, 0], [1, 1]])
>>> report = multi_label_report(np.array([[0.9, 0.6], [0.4, 0.8]]), targets, ["run", "jump"])
>>> report["map_macro"], report["f1_micro"]
(1.0, 0.6666666666666666)

```
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InputError
from .files import write_atomically

__all__ = [
    "accuracy_report",
    "reference_rank",
    "top_k_accuracy",
    "average_precision",
    "confusion_matrix",
    "multi_label_metrics",
    "multi_label_report",
    "plot_confusion_matrix",
    "regression_metrics",
    "regression_report",
]


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
    """`(num_labels, num_labels)` counts: row = true label, column = predicted label."""
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def reference_rank(scores: np.ndarray, references: np.ndarray) -> np.ndarray:
    """The rank (0 = best) of each reference class among `(examples, classes)` scores: the classes scoring higher,
    and those scoring the same with a lower index (ties broken by index, as `argmax` does)."""
    scores, references = np.asarray(scores), np.asarray(references)
    if scores.ndim != 2 or len(scores) != len(references):
        raise InputError(
            f"Expected (examples, classes) scores matching the {len(references)} references, got shape "
            f"{scores.shape}."
        )
    reference_scores = np.take_along_axis(scores, references[:, None], axis=1)
    lower_index = np.arange(scores.shape[1])[None, :] < references[:, None]
    return ((scores > reference_scores) | ((scores == reference_scores) & lower_index)).sum(axis=1)


def top_k_accuracy(
    scores: np.ndarray, references: np.ndarray, ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """`{"top{k}_accuracy": ...}` for each k: the fraction of examples whose reference is among the k best scores.

    Example:

    ```python
    >>> top_k_accuracy(np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]]), np.array([1, 2]), ks=(1, 2))
    {'top1_accuracy': 0.5, 'top2_accuracy': 1.0}

    ```
    """
    rank = reference_rank(scores, references)
    return {f"top{int(k)}_accuracy": float((rank < int(k)).mean()) for k in ks}


def accuracy_report(
    probabilities: np.ndarray, labels: np.ndarray, label_names: Sequence[str], ks: Sequence[int] = (1, 5)
) -> dict[str, Any]:
    """Top-k accuracies (for each k in `ks` below the number of classes, and 1), per-class top-1 accuracy (classes
    that occur in `labels`) and the confusion matrix, from `(videos, classes)` probabilities."""
    num_labels = probabilities.shape[1]
    report: dict[str, Any] = {"num_videos": len(labels)}
    report |= top_k_accuracy(probabilities, labels, sorted({1, *(k for k in ks if k < num_labels)}))
    predicted = probabilities.argmax(axis=1)
    correct = predicted == labels
    report["per_class_accuracy"] = {
        label_names[c]: float(correct[labels == c].mean()) for c in sorted(set(labels.tolist()))
    }
    report["confusion_matrix"] = confusion_matrix(predicted, labels, num_labels).tolist()
    return report


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Average precision of scores against binary targets: `sum_k (R_k - R_{k-1}) P_k` over the distinct scores,
    best first (tied scores count together), as scikit-learn's `average_precision_score`.

    NaN when no target is positive (undefined: scikit-learn warns and gives 0 there).

    Example:

    ```python
    >>> average_precision(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0]))  # (1/2)(1) + (1/2)(2/3)
    0.8333333333333333

    ```
    """
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets) > 0
    positives = int(targets.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    scores, targets = scores[order], targets[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the last of each run of equal scores
    true_positives = np.cumsum(targets)[last]
    precision, recall = true_positives / (last + 1), true_positives / positives
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def multi_label_metrics(
    probabilities: np.ndarray, targets: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Mean average precision and, predicting the labels whose probability is at least `threshold`, F1, precision
    and recall, from `(videos, classes)` probabilities and multi-hot targets.

    - `map_macro`: the mean of the classes' average precisions, over the classes with a positive target (a class
      no video has is left out: its average precision is undefined); `map_micro`: the average precision of all
      (video, class) pairs as one ranking. Both are NaN when no target is positive.
    - `f1_micro`, `precision_micro`, `recall_micro`: from the true and false positives of all classes together
      (0 where nothing is predicted or positive); `f1_macro`: the mean per-class F1 over the classes of `map_macro`.
    """
    probabilities, targets = np.asarray(probabilities, dtype=np.float64), np.asarray(targets) > 0
    if probabilities.ndim != 2 or probabilities.shape != targets.shape:
        raise InputError(
            f"Expected (videos, classes) probabilities and multi-hot targets of the same shape, got "
            f"{probabilities.shape} and {targets.shape}."
        )
    present = targets.any(0)
    class_ap = [average_precision(probabilities[:, c], targets[:, c]) for c in np.flatnonzero(present)]
    predicted = probabilities >= threshold
    true_positives = (predicted & targets).sum(0)
    false_positives, false_negatives = (predicted & ~targets).sum(0), (~predicted & targets).sum(0)
    tp, fp, fn = true_positives.sum(), false_positives.sum(), false_negatives.sum()
    class_f1 = 2 * true_positives / np.maximum(2 * true_positives + false_positives + false_negatives, 1)
    return {
        "map_macro": float(np.mean(class_ap)) if class_ap else float("nan"),
        "map_micro": average_precision(probabilities.ravel(), targets.ravel()),
        "f1_macro": float(class_f1[present].mean()) if present.any() else float("nan"),
        "f1_micro": float(2 * tp / max(2 * tp + fp + fn, 1)),
        "precision_micro": float(tp / max(tp + fp, 1)),
        "recall_micro": float(tp / max(tp + fn, 1)),
    }


def multi_label_report(
    probabilities: np.ndarray, targets: np.ndarray, label_names: Sequence[str], threshold: float = 0.5
) -> dict[str, Any]:
    """[`multi_label_metrics`] of `(videos, classes)` probabilities and multi-hot targets, with the threshold and the
    average precision of every class that occurs in `targets`."""
    targets = np.asarray(targets) > 0
    report: dict[str, Any] = {"num_videos": len(targets), "threshold": threshold}
    report |= multi_label_metrics(probabilities, targets, threshold)
    report["per_class_average_precision"] = {
        label_names[c]: average_precision(probabilities[:, c], targets[:, c])
        for c in np.flatnonzero(targets.any(0))
    }
    return report


def regression_metrics(values: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Mean squared error, mean absolute error and Pearson's r of predicted values against targets (one value per
    video, or `(videos, outputs)` compared as one list). `pearson_r` is NaN when either side is constant.

    Example:

    ```python
    >>> regression_metrics(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 5.0]))
    {'mse': 0.6666666666666666, 'mae': 0.6666666666666666, 'pearson_r': 0.9819805060619657}

    ```
    """
    values, targets = (
        np.asarray(values, dtype=np.float64).ravel(),
        np.asarray(targets, dtype=np.float64).ravel(),
    )
    if values.shape != targets.shape or not len(values):
        raise InputError(f"Expected as many values as targets, got {values.shape} and {targets.shape}.")
    errors = values - targets
    spread = values.std() * targets.std()
    pearson = (
        float(np.mean((values - values.mean()) * (targets - targets.mean())) / spread)
        if spread
        else float("nan")
    )
    return {"mse": float(np.mean(errors**2)), "mae": float(np.mean(np.abs(errors))), "pearson_r": pearson}


def regression_report(values: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """[`regression_metrics`] with the number of videos."""
    return {"num_videos": len(targets), **regression_metrics(values, targets)}


def plot_confusion_matrix(
    matrix: np.ndarray, label_names: Sequence[str], path: str | os.PathLike, title: str = "Confusion matrix"
) -> Any:
    """A PNG of the confusion matrix (rows: true classes, columns: predicted), restricted to the classes that
    occur (as true or predicted labels), with the count in each cell; returns the matplotlib figure."""
    from .visualization import new_figure

    matrix = np.asarray(matrix)
    shown = np.flatnonzero(matrix.sum(0) + matrix.sum(1))
    matrix = matrix[np.ix_(shown, shown)]
    names = [label_names[i] for i in shown]
    size = min(4 + 0.35 * len(names), 40)
    figure, _ = new_figure("The confusion-matrix plot", (size + 1, size))
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues", vmin=0)
    axes.set_xticks(range(len(names)), names, rotation=90)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("Predicted class")
    axes.set_ylabel("True class")
    correct = int(np.trace(matrix))
    axes.set_title(
        f"{title}\n{correct} of {int(matrix.sum())} videos correct ({correct / max(matrix.sum(), 1):.1%})"
    )
    if len(names) <= 30:
        dark = matrix > matrix.max() / 2  # white digits on the dark cells, black on the light ones
        for (row, column), count in np.ndenumerate(matrix):
            color = "white" if dark[row, column] else "black"
            axes.text(column, row, str(count), ha="center", va="center", fontsize=9, color=color)
    figure.colorbar(image, ax=axes, fraction=0.046, label="videos")
    figure.tight_layout()
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
    return figure
