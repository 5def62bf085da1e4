"""Video classification data sets for fine-tuning: lazily decoded `datasets.Dataset`s, the original augmentation, a
collator.

A data set is a table of video paths and labels (a `ClassLabel`, or a list of them for multi-label data: several
labels per video), built from a folder with one sub-folder per class or from a CSV/JSON(L) list. [`probe_videos`]
adds the frame count and rate of every video and drops (and logs) the ones that cannot be read.
[`VideoClipTransform`] then samples, decodes and transforms clips on access, with the sampling and normalisation of a
[`TimeSformerVideoProcessor`], so training sees what inference will see.

Example:

```python
>>> from timesformer_hf import TimeSformerVideoProcessor
>>> from timesformer_hf.data import VideoClipTransform, collate_videos, load_video_dataset, probe_videos
>>> train = probe_videos(load_video_dataset("data/train"))  # data/train/<label>/*.mp4  # doctest: +SKIP
>>> processor = TimeSformerVideoProcessor(num_frames=8)
>>> train.set_transform(VideoClipTransform(processor, training=True))  # doctest: +SKIP
>>> batch = collate_videos([train[0], train[1]])  # doctest: +SKIP
>>> batch["pixel_values"].shape  # doctest: +SKIP
torch.Size([2, 8, 3, 224, 224])
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
import torch
from datasets import ClassLabel, Dataset, Features, List, Value, concatenate_datasets
from transformers.image_utils import SizeDict
from transformers.utils import logging

from .image_processing_timesformer import resize_video, to_video_tensor
from .video import StoredVideo, VideoDecodeError, VideoReader, probe_video, stored_video_name, to_source
from .video_processing_timesformer import TimeSformerVideoProcessor

logger = logging.get_logger(__name__)

__all__ = [
    "LABEL_SEPARATOR",
    "VIDEO_EXTENSIONS",
    "VideoClipTransform",
    "class_label",
    "collate_videos",
    "is_multi_label",
    "load_video_dataset",
    "multi_hot",
    "probe_videos",
    "split_train_validation",
    "video_folder_dataset",
    "video_list_dataset",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
# Between the labels of a multi-label video in a CSV cell: `a.mp4,running|jumping`.
LABEL_SEPARATOR = "|"

# The original's random short side in training, by crop size: [256, 320] for 224, [448, 512] for 448. Other crop
# sizes scale the 224 range proportionally.
DEFAULT_SHORT_SIDE_RANGES = {224: (256, 320), 448: (448, 512)}
DEFAULT_SCALE_RANGE = (256 / 224, 320 / 224)


def default_short_side_range(crop: int) -> tuple[int, int]:
    """The training short-side range for a square crop of `crop` pixels (its shorter side for other crops)."""
    if crop in DEFAULT_SHORT_SIDE_RANGES:
        return DEFAULT_SHORT_SIDE_RANGES[crop]
    return round(crop * DEFAULT_SCALE_RANGE[0]), round(crop * DEFAULT_SCALE_RANGE[1])


def _features(label_names: Sequence[str], multi_label: bool = False) -> Features:
    label = ClassLabel(names=list(label_names))
    return Features({"video": Value("string"), "label": List(label) if multi_label else label})


def is_multi_label(feature: Any) -> bool:
    """Whether a label feature holds several labels per video: a list of `ClassLabel` (`List` or `Sequence`)."""
    return not isinstance(feature, ClassLabel) and isinstance(getattr(feature, "feature", None), ClassLabel)


def class_label(feature: Any) -> ClassLabel:
    """The `ClassLabel` of a label feature, single-label or multi-label: its `names` are the model's labels.

    Example:

    ```python
    >>> from datasets import List
    >>> class_label(List(ClassLabel(names=["jump", "run"]))).names
    ['jump', 'run']

    ```
    """
    inner = feature.feature if is_multi_label(feature) else feature
    if not isinstance(inner, ClassLabel):
        raise ValueError(
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


def video_folder_dataset(
    root: str | os.PathLike,
    label_names: Sequence[str] | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> Dataset:
    """A data set of the videos in `root/<label>/...` (searched recursively), labelled by their sub-folder.

    Args:
        root: Folder with one sub-folder per class.
        label_names: Class names in label-id order; defaults to the sorted sub-folder names. Pass the training
            set's names when building a validation set so the ids agree.
        extensions: File name endings counted as videos (case-insensitive).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Video folder {root} does not exist.")
    folders = sorted(path.name for path in root.iterdir() if path.is_dir())
    label_names = list(label_names) if label_names is not None else folders
    unknown = sorted(set(folders) - set(label_names))
    if unknown:
        raise ValueError(f"{root} has class folders {unknown} that are not among the labels {label_names}.")
    extensions = tuple(extension.lower() for extension in extensions)
    videos, labels = [], []
    for label in folders:
        for path in sorted((root / label).rglob("*")):
            if path.is_file() and path.name.lower().endswith(extensions):
                videos.append(str(path))
                labels.append(label_names.index(label))
    if not videos:
        raise ValueError(
            f"No videos ({', '.join(extensions)}) found under {root}: expected {root}/<label>/<video> files."
        )
    return Dataset.from_dict({"video": videos, "label": labels}, features=_features(label_names))


def _label_ids(
    raw_labels: list[Any], label_names: Sequence[str] | None, path: Path
) -> tuple[list[str], list[int]]:
    """Label names and ids of `raw_labels` (names, or integer ids named after themselves without `label_names`)."""
    if all(isinstance(label, int) or str(label).isdigit() for label in raw_labels):
        ids = [int(label) for label in raw_labels]
        names = (
            list(label_names)
            if label_names is not None
            else [str(i) for i in range(max(ids, default=-1) + 1)]
        )
        return names, ids
    names = list(label_names) if label_names is not None else sorted(set(map(str, raw_labels)))
    unknown = sorted(set(map(str, raw_labels)) - set(names))
    if unknown:
        raise ValueError(f"{path} has labels {unknown[:10]} that are not among the labels {names}.")
    return names, [names.index(str(label)) for label in raw_labels]


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
    label_separator: str = LABEL_SEPARATOR,
) -> Dataset:
    """A data set from a CSV, JSON or JSON Lines list of videos and labels.

    Relative video paths are taken relative to the list's folder. Labels may be names or integer ids (ids need
    `label_names`, or are named after themselves).

    A video may have several labels (a multi-label data set, whose `label` feature is a list of `ClassLabel`): a
    JSON list per row (`[]` for none), or in a text cell (CSV) the names separated by `label_separator` (`|`). By
    default (`multi_label=None`) a list holding such a row is multi-label; pass `multi_label=True` when none of the
    rows happens to have several labels (e.g. a validation list), `False` to refuse lists.

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
        raise ValueError(f"Unsupported video list {path}: use a .csv, .json or .jsonl file.")
    if not rows:
        raise ValueError(f"The video list {path} is empty.")
    missing = {video_column, label_column} - set(rows[0])
    if missing:
        raise ValueError(
            f"The video list {path} has no column(s) {sorted(missing)} (it has {sorted(rows[0])}): set "
            "--video-column/--label-column (video_column/label_column in Python)."
        )
    raw_labels = [row[label_column] for row in rows]
    listed = [label for label in raw_labels if isinstance(label, list) or label_separator in str(label or "")]
    if multi_label is None:
        multi_label = bool(listed)
    videos = [str(path.parent / row[video_column]) for row in rows]
    if not multi_label:
        if listed:
            raise ValueError(
                f"{path} gives several labels for a video (e.g. {listed[0]!r}), but one label per video is "
                "expected here: use a multi-label model (trained on such a list), or one label per row."
            )
        label_names, ids = _label_ids(raw_labels, label_names, path)
        return Dataset.from_dict({"video": videos, "label": ids}, features=_features(label_names))
    per_video = [_label_list(label, label_separator) for label in raw_labels]
    label_names, flat_ids = _label_ids([label for labels in per_video for label in labels], label_names, path)
    ids, start = [], 0
    for labels in per_video:
        ids.append(sorted(set(flat_ids[start : start + len(labels)])))
        start += len(labels)
    return Dataset.from_dict(
        {"video": videos, "label": ids}, features=_features(label_names, multi_label=True)
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
        raise ValueError(
            f"--train-val-split is the fraction of every class held out for validation, between 0 and 1; got "
            f"{fraction}. Or give a validation set with --validation-dir."
        )
    if is_multi_label(dataset.features["label"]):
        return _split_at_random(dataset, fraction, seed)
    labels = np.asarray(dataset["label"])
    names = dataset.features["label"].names
    counts = np.bincount(labels, minlength=len(names))
    single = [names[label] for label in np.flatnonzero(counts == 1)]
    if single:
        raise ValueError(
            f"Cannot hold out validation videos: class(es) {single[:10]} have a single video, which training needs "
            "(no --train-val-split can split one video). Give a validation set with --validation-dir (or "
            "--validation-file), or add videos to these classes."
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
        raise ValueError(
            "Cannot hold out validation videos from a single video: give a validation set with --validation-file."
        )
    count = min(max(math.ceil(round(fraction * len(dataset), 9)), 1), len(dataset) - 1)
    order = np.random.default_rng(seed).permutation(len(dataset))
    return dataset.select(np.sort(order[count:])), dataset.select(np.sort(order[:count]))


def _probe(video: StoredVideo) -> dict[str, Any]:
    try:
        metadata = probe_video(to_source(video))
        return {"total_num_frames": metadata.total_num_frames, "fps": metadata.fps, "error": ""}
    except VideoDecodeError as error:
        return {"total_num_frames": 0, "fps": 0.0, "error": str(error)}


def probe_videos(dataset: Dataset, num_proc: int | None = None) -> Dataset:
    """Add `total_num_frames` and `fps` columns; drop the videos that cannot be read, logging each and why.

    Videos are paths, bytes or `{"path", "bytes"}` values (a `datasets.Video(decode=False)` column). Probing
    demuxes a video without decoding it (see `timesformer_hf.video.probe_video`), so it is cheap; only the new
    columns are written, not a copy of embedded videos.
    """
    # explicit types: `map` would otherwise infer the column types from the first batch alone
    features = Features(
        {"total_num_frames": Value("int64"), "fps": Value("float64"), "error": Value("string")}
    )
    probes = dataset.map(
        _probe,
        input_columns="video",
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        features=features,
        desc="Probing videos",
    )
    probed = concatenate_datasets([dataset, probes], axis=1)
    broken = [index for index, error in enumerate(probes["error"]) if error]
    for index in broken:
        name = stored_video_name(dataset[index]["video"]) or f"row {index}"
        logger.warning(f"Skipping unreadable video {name}: {probes[index]['error']}")
    if broken:
        logger.warning(f"Skipped {len(broken)} of {len(dataset)} videos that could not be read.")
        probed = probed.filter(
            lambda frames: [count > 0 for count in frames], input_columns="total_num_frames", batched=True
        )
    if len(probed) == 0:
        raise ValueError("None of the videos could be read: see the warnings above.")
    return probed.remove_columns("error")


class VideoClipTransform:
    """Sample, decode and transform clips on access: a `Dataset.set_transform` for training or evaluation.

    Frames are sampled as `processor` says (`frame_sampling`, `num_frames`, `sampling_rate`, `target_fps`), at a
    random position in training. Evaluation applies the processor as is (short side, centre crop, normalisation).
    Training applies the original augmentation: short side scaled to a random size in `short_side_range`, a random
    crop of the processor's `crop_size`, a horizontal flip with probability 1/2 (turn it off for data where
    direction matters, e.g. Something-Something or left/right motion), then the processor's normalisation.

    Videos are paths, bytes or `{"path", "bytes"}` values, decoded from memory. A video that fails to decode is
    logged, counted (`failures`) and yields `pixel_values=None`, which [`collate_videos`] drops. Randomness comes
    from `torch`'s generator, so `Trainer`'s seed and per-worker seeding apply.

    Labels pass through as they are (class ids), except for multi-label data (a list of label ids per video): with
    `num_labels` set, they become multi-hot float vectors of that length (see [`multi_hot`]), the targets of the
    BCE loss.

    Args:
        processor: The processor saved with the model.
        training: Random sampling and augmentation (`True`) or the deterministic evaluation view (`False`).
        horizontal_flip: Flip half of the training clips.
        short_side_range: Range of the random short side in training; defaults to the original's: `[256, 320]`
            for a 224 crop, `[448, 512]` for 448, and the 224 range scaled proportionally for other crop sizes.
        num_labels: The number of classes of a multi-label data set (`class_label(feature).num_classes`); `None`
            for single-label data.
    """

    def __init__(
        self,
        processor: TimeSformerVideoProcessor,
        *,
        training: bool,
        horizontal_flip: bool = True,
        short_side_range: tuple[int, int] | None = None,
        num_labels: int | None = None,
    ) -> None:
        self.processor = processor
        self.num_labels = num_labels
        self.training = training
        self.horizontal_flip = horizontal_flip
        self.crop_height, self.crop_width = processor.crop_size["height"], processor.crop_size["width"]
        if short_side_range is None:
            short_side_range = default_short_side_range(min(self.crop_height, self.crop_width))
        if (
            short_side_range[0] < min(self.crop_height, self.crop_width)
            or short_side_range[0] > short_side_range[1]
        ):
            raise ValueError(
                f"short_side_range {short_side_range} must be increasing and start at the crop size "
                f"({self.crop_height}x{self.crop_width}) or above."
            )
        self.short_side_range = short_side_range
        self.failures = 0  # videos that did not decode, in this process

    def sample_indices(self, total_num_frames: int, fps: float) -> np.ndarray:
        seed = int(torch.randint(2**31 - 1, ())) if self.training else None
        return self.processor.sample_indices(
            total_num_frames, fps or None, training=self.training, generator=seed
        )

    def augment(self, video: torch.Tensor) -> torch.Tensor:
        """Random short-side scale, random crop and flip of a `(frames, 3, height, width)` uint8 video."""
        low, high = self.short_side_range
        short_side = int(torch.randint(low, high + 1, ()))
        video = resize_video(video, SizeDict(shortest_edge=short_side))
        height, width = video.shape[-2:]
        top = int(torch.randint(height - self.crop_height + 1, ()))
        left = int(torch.randint(width - self.crop_width + 1, ()))
        video = video[..., top : top + self.crop_height, left : left + self.crop_width]
        if self.horizontal_flip and torch.rand(()) < 0.5:
            video = video.flip(-1)
        return video

    def transform(self, frames: np.ndarray) -> torch.Tensor:
        """`(frames, height, width, 3)` uint8 to the model's `(frames, 3, crop_height, crop_width)` float input."""
        # one view of the already sampled frames, whatever views the (loaded) processor is set to produce
        single_view = {"do_sample_frames": False, "num_temporal_clips": 1, "num_spatial_crops": 1}
        if not self.training:
            return self.processor(frames, **single_view, return_tensors="pt")["pixel_values"][0]
        video = self.augment(to_video_tensor(frames))
        return self.processor(
            video, do_resize=False, do_center_crop=False, **single_view, return_tensors="pt"
        )["pixel_values"][0]

    def clip(self, video: StoredVideo) -> torch.Tensor | None:
        """The transformed clip of a path, bytes or `{"path", "bytes"}` video; `None` (logged, counted in
        `failures`) when it does not decode."""
        try:
            with VideoReader(to_source(video)) as reader:
                metadata = reader.metadata
                frames = reader.read(self.sample_indices(metadata.total_num_frames, metadata.fps))
        except (VideoDecodeError, IndexError) as error:
            self.failures += 1
            name = stored_video_name(video) or "(embedded video)"
            logger.warning(f"Skipping video {name} in this batch ({self.failures} skipped so far): {error}")
            return None
        return self.transform(frames)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        return {
            "pixel_values": [self.clip(video) for video in batch["video"]],
            "labels": self.targets(batch["label"]),
        }

    def targets(self, labels: list) -> list:
        """Class ids as they are; lists of label ids (multi-label) as multi-hot vectors of `num_labels`."""
        if self.num_labels is not None:
            return [multi_hot(ids, self.num_labels) for ids in labels]
        if labels and isinstance(labels[0], list):
            raise ValueError(
                "The data set has several labels per video (multi-label): pass VideoClipTransform(num_labels=...) "
                "so that they become multi-hot targets."
            )
        return labels


def collate_videos(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack `pixel_values` and `labels`, leaving out the examples whose video failed to decode.

    Labels are class ids (a `(batch,)` long tensor) or multi-hot vectors (multi-label: a `(batch, num_labels)` float
    tensor, from [`VideoClipTransform`] with `num_labels`).
    """
    kept = [example for example in examples if example["pixel_values"] is not None]
    if not kept:
        raise RuntimeError(
            f"All {len(examples)} videos of a batch failed to decode (see the warnings above): remove the broken "
            "files or run probe_videos() on the data set first."
        )
    return {
        "pixel_values": torch.stack([example["pixel_values"] for example in kept]),
        "labels": _stack_labels([example["labels"] for example in kept]),
    }


def _stack_labels(labels: list[Any]) -> torch.Tensor:
    if isinstance(labels[0], torch.Tensor):
        return torch.stack(labels)
    if isinstance(labels[0], list):
        raise ValueError(
            "Labels are lists of label ids (multi-label data): make them multi-hot vectors first, with "
            "VideoClipTransform(num_labels=...) or multi_hot()."
        )
    return torch.tensor(labels)
