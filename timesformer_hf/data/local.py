"""Labelled videos on disk: a folder with one sub-folder per class, or a CSV/JSON(L) list of videos and labels.

Each reader gives a `datasets.Dataset` with a `video` column of paths and a `label` column of `ClassLabel` ids (a
list of them for multi-label data), the ids following the one rule of [`~timesformer_hf.data.labels`]. Videos are
decoded later, by [`~timesformer_hf.data.transforms.VideoClipTransform`] or the inference engine.

Example:

```python
>>> from timesformer_hf.data import load_video_dataset, split_train_validation
>>> train, validation = split_train_validation(load_video_dataset("data/train"))  # <label>/*.mp4  # doctest: +SKIP
```
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from ..errors import InputError
from .labels import (
    encode_labels,
    is_fractional,
    is_multi_label,
    is_regression,
    label_features,
    natural_sorted,
    regression_features,
    regression_targets,
)

__all__ = [
    "LABEL_SEPARATOR",
    "VIDEO_EXTENSIONS",
    "load_video_dataset",
    "split_train_validation",
    "video_folder_dataset",
    "video_list_dataset",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
# Between the labels of a multi-label video in a CSV cell: `a.mp4,running|jumping`.
LABEL_SEPARATOR = "|"


def video_folder_dataset(
    root: str | os.PathLike,
    label_names: Sequence[str] | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> Dataset:
    """A data set of the videos in `root/<label>/...` (searched recursively), labelled by their sub-folder.

    Args:
        root: Folder with one sub-folder per class.
        label_names: Class names in label-id order; defaults to the sub-folder names in natural order (see
            [`~timesformer_hf.data.labels`]). Pass the training set's names when building a validation set.
        extensions: File name endings counted as videos (case-insensitive).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Video folder {root} does not exist.")
    folders = natural_sorted(path.name for path in root.iterdir() if path.is_dir())
    label_names = list(label_names) if label_names is not None else folders
    unknown = sorted(set(folders) - set(label_names))
    if unknown:
        raise InputError(f"{root} has class folders {unknown} that are not among the labels {label_names}.")
    extensions = tuple(extension.lower() for extension in extensions)
    videos, labels = [], []
    for label in folders:
        for path in sorted((root / label).rglob("*")):
            if path.is_file() and path.name.lower().endswith(extensions):
                videos.append(str(path))
                labels.append(label_names.index(label))
    if not videos:
        raise InputError(
            f"No videos ({', '.join(extensions)}) found under {root}: expected {root}/<label>/<video> files."
        )
    return Dataset.from_dict({"video": videos, "label": labels}, features=label_features(label_names))


def _label_list(label: Any, separator: str) -> list[Any]:
    """The labels of one multi-label row: a JSON list, or a CSV cell of names separated by `separator`."""
    if isinstance(label, list):
        return label
    if label is None:
        return []
    return [part.strip() for part in str(label).split(separator) if part.strip()]


def video_list_dataset(
    path: str | os.PathLike,
    *,
    video_column: str = "video",
    label_column: str = "label",
    label_names: Sequence[str] | None = None,
    multi_label: bool | None = None,
    regression: bool | None = None,
    label_separator: str = LABEL_SEPARATOR,
) -> Dataset:
    """A data set from a CSV, JSON or JSON Lines list of videos and labels.

    Relative video paths are taken relative to the list's folder. Labels are names (integers too), numbered as
    [`~timesformer_hf.data.labels.encode_labels`] says; integers that are not among `label_names` are ids into them.

    A video may have several labels (a multi-label data set, whose `label` feature is a list of `ClassLabel`): a
    JSON list per row (`[]` for none), or in a text cell (CSV) the names separated by `label_separator` (`|`). By
    default (`multi_label=None`) a list holding such a row is multi-label; pass `multi_label=True` when none of the
    rows happens to have several labels (e.g. a validation list), `False` to refuse lists.

    Labels that are numbers with fractions (`0.5`, `2.25`) are the targets of a regression model (a float `label`
    column); `regression=True` reads integer labels as targets too, `False` reads numbers as class names.

    Example of a CSV file:

    ```text
    video,label
    clips/a.mp4,archery
    clips/b.mp4,bowling
    ```

    and of a multi-label JSON Lines file:

    ```text
    {"video": "clips/a.mp4", "label": ["running", "jumping"]}
    {"video": "clips/b.mp4", "label": []}
    ```
    """
    path = Path(path)
    if path.suffix == ".csv":
        import csv

        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
    elif path.suffix in (".json", ".jsonl"):
        text = path.read_text()
        rows = (
            json.loads(text)
            if path.suffix == ".json"
            else [json.loads(line) for line in text.splitlines() if line]
        )
    else:
        raise InputError(f"Unsupported video list {path}: use a .csv, .json or .jsonl file.")
    if not rows:
        raise InputError(f"The video list {path} is empty.")
    missing = {video_column, label_column} - set(rows[0])
    if missing:
        raise InputError(
            f"The video list {path} has no column(s) {sorted(missing)} (it has {sorted(rows[0])}): set "
            "`video_column=` / `label_column=`."
        )
    raw_labels = [row[label_column] for row in rows]
    listed = [label for label in raw_labels if isinstance(label, list) or label_separator in str(label or "")]
    if multi_label is None:
        multi_label = bool(listed)
    videos = [str(path.parent / row[video_column]) for row in rows]
    if regression is None:
        regression = not listed and label_names is None and is_fractional(raw_labels)
    if regression:
        targets = regression_targets(raw_labels, str(path))
        return Dataset.from_dict({"video": videos, "label": targets}, features=regression_features())
    if not multi_label:
        if listed:
            raise InputError(
                f"{path} gives several labels for a video (e.g. {listed[0]!r}), but one label per video is "
                "expected here: use a multi-label model (trained on such a list), or one label per row."
            )
        label_names, ids = encode_labels(raw_labels, label_names, str(path))
        return Dataset.from_dict({"video": videos, "label": ids}, features=label_features(label_names))
    per_video = [_label_list(label, label_separator) for label in raw_labels]
    flat = [label for labels in per_video for label in labels]
    label_names, flat_ids = encode_labels(flat, label_names, str(path))
    ids, start = [], 0
    for labels in per_video:
        ids.append(sorted(set(flat_ids[start : start + len(labels)])))
        start += len(labels)
    return Dataset.from_dict(
        {"video": videos, "label": ids}, features=label_features(label_names, multi_label=True)
    )


def load_video_dataset(source: str | os.PathLike, **kwargs: Any) -> Dataset:
    """[`video_folder_dataset`] for a folder, [`video_list_dataset`] for a .csv/.json/.jsonl file."""
    return (
        video_folder_dataset(source, **kwargs)
        if Path(source).is_dir()
        else video_list_dataset(source, **kwargs)
    )


def split_train_validation(
    dataset: Dataset, fraction: float = 0.15, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Hold out a validation set from every class: `ceil(fraction * n)` of a class's `n` videos, at least one, and
    never the last one (training needs it). Small folders thus still get every class in both sets.

    Example:

    ```python
    >>> train, validation = split_train_validation(load_video_dataset("data/train"), 0.15)  # doctest: +SKIP
    ```
    """
    if not 0 < fraction < 1:
        raise InputError(
            f"The fraction of every class held out for validation (`train_val_split=`) is between 0 and 1, got "
            f"{fraction}. Or give a validation set (`validation_dir=`)."
        )
    if is_multi_label(dataset.features["label"]) or is_regression(dataset.features["label"]):
        return _split_at_random(dataset, fraction, seed)
    labels = np.asarray(dataset["label"])
    names = dataset.features["label"].names
    counts = np.bincount(labels, minlength=len(names))
    single = [names[label] for label in np.flatnonzero(counts == 1)]
    if single:
        raise InputError(
            f"Cannot hold out validation videos: class(es) {single[:10]} have a single video, which training needs "
            "(no `train_val_split=` can split one video). Give a validation set (`validation_dir=` or "
            "`validation_file=`), or add videos to these classes."
        )
    rng = np.random.default_rng(seed)
    held_out = np.zeros(len(labels), dtype=bool)
    for label in np.flatnonzero(counts):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = min(math.ceil(round(fraction * len(members), 9)), len(members) - 1)
        held_out[members[:count]] = True
    return dataset.select(np.flatnonzero(~held_out)), dataset.select(np.flatnonzero(held_out))


def _split_at_random(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Multi-label data (no one class per video): `ceil(fraction * n)` random videos held out, at least one and
    never all."""
    if len(dataset) < 2:
        raise InputError(
            "Cannot hold out validation videos from a single video: give a validation set (`validation_file=`)."
        )
    count = min(max(math.ceil(round(fraction * len(dataset), 9)), 1), len(dataset) - 1)
    order = np.random.default_rng(seed).permutation(len(dataset))
    return dataset.select(np.sort(order[count:])), dataset.select(np.sort(order[:count]))
