"""Decoding labelled videos for training and evaluation: probing, the clip transform with the original augmentation,
and the collator.

[`probe_videos`] adds the frame count and rate of every video and drops (and logs) the ones that cannot be read.
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

from typing import Any

import numpy as np
import torch
from datasets import Dataset, Features, Value, concatenate_datasets
from transformers.image_utils import SizeDict
from transformers.utils import logging

from ..errors import InputError
from ..video import (
    StoredVideo,
    VideoDecodeError,
    VideoReader,
    decode_limit,
    probe_video,
    stored_video_name,
    to_source,
)
from ..video_processing_timesformer import TimeSformerVideoProcessor
from ..video_transforms import resize_video, to_video_tensor
from .labels import multi_hot

logger = logging.get_logger(__name__)

__all__ = ["VideoClipTransform", "collate_videos", "default_short_side_range", "probe_videos"]

# The original's random short side in training, by crop size: [256, 320] for 224, [448, 512] for 448. Other crop
# sizes scale the 224 range proportionally.
DEFAULT_SHORT_SIDE_RANGES = {224: (256, 320), 448: (448, 512)}
DEFAULT_SCALE_RANGE = (256 / 224, 320 / 224)


def default_short_side_range(crop: int) -> tuple[int, int]:
    """The training short-side range for a square crop of `crop` pixels (its shorter side for other crops)."""
    if crop in DEFAULT_SHORT_SIDE_RANGES:
        return DEFAULT_SHORT_SIDE_RANGES[crop]
    return round(crop * DEFAULT_SCALE_RANGE[0]), round(crop * DEFAULT_SCALE_RANGE[1])


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
        raise InputError("None of the videos could be read: see the warnings above.")
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
            raise InputError(
                f"short_side_range {short_side_range} must be increasing and start at the crop size "
                f"({self.crop_height}x{self.crop_width}) or above."
            )
        self.short_side_range = short_side_range
        # the training short side goes up to the range's end; evaluation resizes as the processor says
        self.max_decoded_short_side = (
            decode_limit(short_side_range[1]) if training else processor.max_decoded_short_side
        )
        self.failures = 0  # videos that did not decode, in this process

    def sample_indices(self, total_num_frames: int, fps: float) -> np.ndarray:
        seed = int(torch.randint(2**31 - 1, ())) if self.training else None
        return self.processor.frame_sampler.clip(
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
                indices = self.sample_indices(metadata.total_num_frames, metadata.fps)
                frames = reader.read(indices, self.max_decoded_short_side)
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
            raise InputError(
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
        raise InputError(
            "Labels are lists of label ids (multi-label data): make them multi-hot vectors first, with "
            "VideoClipTransform(num_labels=...) or multi_hot()."
        )
    return torch.tensor(labels)
