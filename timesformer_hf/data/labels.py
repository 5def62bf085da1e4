"""The one rule for label ids, whatever the source (class folders, CSV/JSON lists, `datasets` columns).

Labels are names. Without a given order (`label_names=`, `--class-names` on the command line), the ids follow the *natural order* of
the names found: digit runs compare as numbers, the rest as text, case-insensitively. So integer-valued names are
in numeric order (`"0", "1", "2", "10"`) and `clip2` comes before `clip10`; a folder tree, a list file and a
`datasets` column with the same names give the same ids. A `ClassLabel` keeps its own names and order.

Example:

```python
>>> natural_sorted(["10", "2", "0", "1"])
['0', '1', '2', '10']
>>> encode_labels(["walk", "run", "walk"])
(['run', 'walk'], [1, 0, 1])
>>> encode_labels([3, 1], label_names=["a", "b", "c", "d"])  # integers that are not names: ids into the names
(['a', 'b', 'c', 'd'], [3, 1])

```
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from datasets import ClassLabel, Features, List, Value

from ..errors import InputError

__all__ = [
    "class_label",
    "encode_labels",
    "flip_swapped_labels",
    "is_fractional",
    "is_multi_label",
    "is_regression",
    "label_features",
    "multi_hot",
    "natural_sorted",
    "regression_features",
    "regression_targets",
]

_DIGITS = re.compile(r"(\d+)")
# Words a horizontal flip turns into each other, as whole words ("left_1", "from left to right", not "bright").
_MIRRORED = {"left": "right", "right": "left", "leftward": "rightward", "rightward": "leftward"}
_MIRRORED_WORD = re.compile(r"(?<![a-z])(leftward|rightward|left|right)(?![a-z])", re.IGNORECASE)


def _natural_key(name: str) -> tuple:
    parts = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.casefold()) for part in _DIGITS.split(name)
    )
    return parts, name  # the exact text breaks ties ("Run" before "run", "01" before "1")


def flip_swapped_labels(label_names: Iterable[str]) -> list[tuple[str, str]]:
    """The pairs of label names that a horizontal flip turns into each other: the same name with left and right
    exchanged (`"moving_left"` and `"moving_right"`, `"from left to right"` and `"from right to left"`).

    Example:

    ```python
    >>> flip_swapped_labels(["left_1", "right_1", "up", "bright"])
    [('left_1', 'right_1')]

    ```
    """

    def mirrored(match: re.Match) -> str:
        word = _MIRRORED[match.group().lower()]
        return word.capitalize() if match.group()[0].isupper() else word

    names = set(label_names)
    pairs = {tuple(sorted((name, _MIRRORED_WORD.sub(mirrored, name)))) for name in names}
    return sorted((a, b) for a, b in pairs if a != b and a in names and b in names)


def natural_sorted(names: Iterable[Any]) -> list[str]:
    """The distinct names (as strings) in natural order: digit runs as numbers, text case-insensitively."""
    return sorted({str(name) for name in names}, key=_natural_key)


def _is_integer(value: Any) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) or isinstance(value, str) and value.isdigit()
    )


def encode_labels(
    labels: Sequence[Any], label_names: Sequence[str] | None = None, where: str = "The data"
) -> tuple[list[str], list[int]]:
    """The label names and the id of every label in `labels`.

    Without `label_names` the names are those found, in natural order ([`natural_sorted`]). With `label_names`,
    labels are looked up by name; labels that are all integers and not names (e.g. ids from a model's `id2label`)
    are ids into `label_names`. A label found neither way raises a `ValueError` naming it.
    """
    names = list(label_names) if label_names is not None else natural_sorted(labels)
    index = {name: i for i, name in enumerate(names)}
    as_text = [str(label) for label in labels]
    unknown = natural_sorted(label for label in as_text if label not in index)
    if not unknown:
        return names, [index[label] for label in as_text]
    if (
        label_names is not None
        and all(map(_is_integer, labels))
        and not any(name in index for name in as_text)
    ):
        ids = [int(label) for label in labels]
        if all(0 <= i < len(names) for i in ids):
            return names, ids
    raise InputError(
        f"{where} has labels {unknown[:10]} that are not among the {len(names)} labels {names[:20]} (the training "
        "set's or the model's): fix the labels, or give the class names in id order (`label_names=`)."
    )


def _number(label: Any) -> float | None:
    if isinstance(label, bool):
        return None
    if isinstance(label, int | float):
        return float(label)
    try:
        return float(str(label).strip())
    except ValueError:
        return None


def is_fractional(labels: Sequence[Any]) -> bool:
    """Whether labels are numbers with at least one fraction (`0.5`, `"2.25"`): regression targets. Integers alone
    are class names; make them targets with `regression=True` (`--problem-type regression` on the command line)."""
    numbers = [_number(label) for label in labels]
    return bool(numbers) and None not in numbers and any(not number.is_integer() for number in numbers)


def regression_targets(labels: Sequence[Any], where: str = "The data") -> list[float]:
    """The labels as float targets of a regression model; a `ValueError` names the first that is not a number."""
    targets = [_number(label) for label in labels]
    if None in targets:
        bad = labels[targets.index(None)]
        raise InputError(
            f"{where} has the label {bad!r}, which is not a number: a regression model needs numbers."
        )
    return targets


def regression_features() -> Features:
    """The `video` (string) and `label` (float32 target) columns of a regression data set."""
    return Features({"video": Value("string"), "label": Value("float32")})


def is_regression(feature: Any) -> bool:
    """Whether a label feature holds regression targets: a float `Value`."""
    return isinstance(feature, Value) and feature.dtype.startswith("float")


def label_features(label_names: Sequence[str], multi_label: bool = False) -> Features:
    """The `video` (string) and `label` (`ClassLabel`, or a list of them) columns of a labelled video table."""
    label = ClassLabel(names=list(label_names))
    return Features({"video": Value("string"), "label": List(label) if multi_label else label})


def is_multi_label(feature: Any) -> bool:
    """Whether a label feature holds several labels per video: a list of `ClassLabel` (`List` or `Sequence`)."""
    return not isinstance(feature, ClassLabel) and isinstance(getattr(feature, "feature", None), ClassLabel)


def class_label(feature: Any) -> ClassLabel:
    """The `ClassLabel` of a label feature, single-label or multi-label: its `names` are the model's labels.

    Example:

    ```python
    >>> class_label(List(ClassLabel(names=["jump", "run"]))).names
    ['jump', 'run']

    ```
    """
    inner = feature.feature if is_multi_label(feature) else feature
    if not isinstance(inner, ClassLabel):
        raise InputError(
            f"The label column is {feature}, not a ClassLabel or a list of them: cast it, e.g. "
            "`dataset.cast_column('label', ClassLabel(names=[...]))`."
        )
    return inner


def multi_hot(label_ids: Sequence[int], num_labels: int) -> torch.Tensor:
    """A `(num_labels,)` float vector with 1 at `label_ids`: a multi-label target.

    Example:

    ```python
    >>> multi_hot([0, 2], 4)
    tensor([1., 0., 1., 0.])

    ```
    """
    target = torch.zeros(num_labels)
    target[list(label_ids)] = 1.0
    return target
