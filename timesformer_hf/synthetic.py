"""Synthetic video data sets that only a model which sees frame order can solve.

Every video shows a vertical bar sweeping across the frame through `positions` equally spaced places. The class is
a direction (left or right) times a speed: at speed `s` the bar sweeps the frame `s` times per clip, holding each
place for `num_frames / (s * positions)` frames. Every clip of every class shows each place equally often, so the
*multiset* of frames is the same for all classes and only their *order* differs: a model that ignores order
(space-only attention, or any frame-averaging model) is at chance, while divided space-time attention reads the
motion.

A multi-label set ([`write_action_dataset`]) shows two actions that may happen together: a bar that moves (or
stands still) and a square that blinks (or stays on).

Example:

```python
>>> from timesformer_hf.synthetic import motion_labels, motion_video
>>> motion_labels()
['left_1', 'left_2', 'right_1', 'right_2']
>>> bar_places = motion_video("right_2", num_frames=8, size=32)[:, 0, :, 0].argmax(-1) // 8
>>> bar_places.tolist()  # two sweeps over the 4 places
[0, 1, 2, 3, 0, 1, 2, 3]

```
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Collection, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = [
    "ACTION_LABELS",
    "action_video",
    "motion_labels",
    "motion_video",
    "write_action_dataset",
    "write_motion_dataset",
    "write_video",
]


def _check(num_frames: int, speeds: Sequence[int]) -> int:
    """Number of bar places for `speeds`; raise when a speed does not give whole sweeps."""
    places = num_frames // max(speeds)
    if places < 2 or any(speed < 1 or num_frames % (speed * places) for speed in speeds):
        raise InputError(
            f"Speeds {tuple(speeds)} do not make whole sweeps in {num_frames} frames: num_frames must be a multiple "
            "of every speed times num_frames // max(speeds) (>= 2), e.g. speeds (1, 2) with 4 or 8 frames."
        )
    return places


def motion_labels(num_frames: int = 8, speeds: Sequence[int] = (1, 2)) -> list[str]:
    """Class names `"{left|right}_{speed}"`, sorted."""
    _check(num_frames, speeds)
    return sorted(f"{direction}_{speed}" for direction in ("left", "right") for speed in speeds)


def motion_video(
    label: str,
    num_frames: int = 8,
    size: int = 32,
    *,
    speeds: Sequence[int] = (1, 2),
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """One `(num_frames, size, size, 3)` uint8 video of class `label` (e.g. `"right_2"`).

    Bar and background grey levels are random (drawn from `rng`), the same way for every class.
    """
    rng = np.random.default_rng(rng)
    direction, speed = label.split("_")
    places = _check(num_frames, speeds)
    if size % places:
        raise InputError(
            f"size ({size}) must be a multiple of the {places} bar places so that they tile the frame."
        )
    width = size // places
    background, foreground = rng.integers(0, 90), rng.integers(160, 256)
    video = np.full((num_frames, size, size, 3), background, dtype=np.uint8)
    for t in range(num_frames):
        place = t * int(speed) * places // num_frames % places
        place = place if direction == "right" else places - 1 - place
        video[t, :, place * width : (place + 1) * width] = foreground
    return video


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 30, codec: str = "libx264") -> None:
    """Encode `(frames, height, width, 3)` uint8 RGB frames into a video file with PyAV (near-lossless H.264) at
    `fps` frames a second (to a thousandth: 29.97 is 30000/1001)."""
    import av

    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            # one thread and no lookahead: the same frames give the same file (x264 otherwise varies now and then)
            stream.options = {"crf": "4", "preset": "veryfast", "threads": "1", "rc-lookahead": "0"}
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_motion_dataset(
    root: str | os.PathLike,
    num_train_per_class: int = 48,
    num_eval_per_class: int = 16,
    *,
    num_frames: int = 8,
    size: int = 32,
    speeds: Sequence[int] = (1, 2),
    seed: int = 0,
    overwrite: bool = False,
) -> list[str]:
    """Write `root/train/<label>/*.mp4` and `root/validation/<label>/*.mp4`; return the labels.

    Each video has exactly `num_frames` frames, so sample clips with the uniform sampler. A non-empty `root` is
    refused (old videos would stay in the data set) unless `overwrite=True`, which first deletes `root/train` and
    `root/validation`.
    """
    labels = motion_labels(num_frames, speeds)
    root = Path(root)
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{root} is not empty: pass overwrite=True to replace its train/ and validation/ folders."
            )
        for split in ("train", "validation"):
            shutil.rmtree(root / split, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for split, count in (("train", num_train_per_class), ("validation", num_eval_per_class)):
        for label in labels:
            folder = Path(root, split, label)
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                write_video(
                    folder / f"{label}_{index:04d}.mp4",
                    motion_video(label, num_frames, size, speeds=speeds, rng=rng),
                )
    return labels


# The two actions of the multi-label set: either, both or neither may happen in a video.
ACTION_LABELS = ("blinking_square", "moving_bar")


def action_video(
    labels: Collection[str],
    num_frames: int = 8,
    size: int = 32,
    *,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """One `(num_frames, size, size, 3)` uint8 video showing a bar (top half) and a square (bottom half) that are
    always there: the bar sweeps across the frame if `"moving_bar"` is in `labels` and stands still otherwise; the
    square blinks (on every other frame) if `"blinking_square"` is in `labels` and stays on otherwise.

    Only the frames' order tells a still bar from a moving one, and the grey levels and places are random (from
    `rng`), so a model must read motion to name the actions.

    Example:

    ```python
    >>> video = action_video(["moving_bar"], num_frames=8, size=32, rng=0)
    >>> video[:, :16].std(0).max() > 0, video[:, 16:].std(0).max() > 0  # the bar moves, the square is steady
    (np.True_, np.False_)

    ```
    """
    unknown = sorted(set(labels) - set(ACTION_LABELS))
    if unknown:
        raise InputError(f"Unknown actions {unknown}: the actions are {list(ACTION_LABELS)}.")
    rng = np.random.default_rng(rng)
    places, half = 4, size // 2
    if size % (2 * places):
        raise InputError(
            f"size ({size}) must be a multiple of {2 * places}: the bar and the square tile the frame."
        )
    width = size // places
    background, bar, square = rng.integers(0, 90), rng.integers(160, 256), rng.integers(160, 256)
    still_place, first_place = rng.integers(places), rng.integers(places)
    square_column, square_row = rng.integers(places) * width, half + rng.integers(half // width) * width
    video = np.full((num_frames, size, size, 3), background, dtype=np.uint8)
    for t in range(num_frames):
        place = (first_place + t) % places if "moving_bar" in labels else still_place
        video[t, :half, place * width : (place + 1) * width] = bar
        if "blinking_square" not in labels or t % 2 == 0:
            video[t, square_row : square_row + width, square_column : square_column + width] = square
    return video


def write_action_dataset(
    root: str | os.PathLike,
    num_train: int = 96,
    num_eval: int = 32,
    *,
    num_frames: int = 8,
    size: int = 32,
    seed: int = 0,
    overwrite: bool = False,
) -> list[str]:
    """Write a multi-label data set: `root/{train,validation}/*.mp4` and the lists `root/train.json` and
    `root/validation.json` of `{"video", "label"}` rows, each label a list of the actions in the video (none, one or
    both of [`ACTION_LABELS`], each combination a quarter of the videos). Returns the actions.

    Each video has exactly `num_frames` frames: sample clips with the uniform sampler. A non-empty `root` is refused
    unless `overwrite=True`, which first deletes what this function writes there.
    """
    root = Path(root)
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{root} is not empty: pass overwrite=True to replace its videos and lists."
            )
        for split in ("train", "validation"):
            shutil.rmtree(root / split, ignore_errors=True)
            (root / f"{split}.json").unlink(missing_ok=True)
    combinations = [[], ["blinking_square"], ["moving_bar"], list(ACTION_LABELS)]
    rng = np.random.default_rng(seed)
    for split, count in (("train", num_train), ("validation", num_eval)):
        (root / split).mkdir(parents=True, exist_ok=True)
        rows = []
        for index in range(count):
            labels = combinations[index % len(combinations)]
            video = f"{split}/{index:04d}.mp4"
            write_video(root / video, action_video(labels, num_frames, size, rng=rng))
            rows.append({"video": video, "label": labels})
        (root / f"{split}.json").write_text(json.dumps(rows, indent=1))
    return list(ACTION_LABELS)
