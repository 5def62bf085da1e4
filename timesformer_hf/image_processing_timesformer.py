"""Image processor for TimeSformer: the `VideoMAEImageProcessor` contract, implemented with the batched torch ops of
[`~timesformer_hf.video_transforms`], and the post-processing of the model's logits shared by both processors.

The defaults are the original TimeSformer test-time preprocessing: short side to 224, centre crop 224, mean/std
0.45/0.225. Test-time multi-view evaluation (3 crops along the long side times n temporal clips, scores averaged) is
available with `num_spatial_crops=3` and [`average_view_scores`]; `post_process_video_classification` turns logits
into labels and scores (or values, for a regression model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import ChannelDimension, SizeDict
from transformers.processing_utils import ImagesKwargs, Unpack
from transformers.utils import TensorType

from .errors import InputError
from .video_transforms import PILImageResampling, make_batched_videos, preprocess_videos, to_video_tensor

__all__ = [
    "TIMESFORMER_MEAN",
    "TIMESFORMER_STD",
    "TimeSformerImageProcessor",
    "average_view_scores",
    "logits_to_scores",
    "predictions_from_scores",
]

TIMESFORMER_MEAN = [0.45, 0.45, 0.45]
TIMESFORMER_STD = [0.225, 0.225, 0.225]


class TimeSformerImageProcessorKwargs(ImagesKwargs, total=False):
    """
    num_spatial_crops (`int`, *optional*, defaults to 1):
        1 for a single centre crop, 3 for the original's test-time crops along the long side (left/top, centre,
        right/bottom), returned as separate views.
    """

    num_spatial_crops: int


def logits_to_scores(logits: torch.Tensor, problem_type: str | None = None) -> torch.Tensor:
    """What a model's logits mean, in float32: softmax probabilities over the labels (single-label, the default),
    one sigmoid probability per label (`"multi_label_classification"`), or the logits themselves, the predicted
    values (`"regression"`). `problem_type` is the model config's.

    Example:

    ```python
    >>> logits_to_scores(torch.tensor([[0.0, 0.0]])), logits_to_scores(torch.tensor([[0.0]]), "regression")
    (tensor([[0.5000, 0.5000]]), tensor([[0.]]))

    ```
    """
    logits = logits.float()
    if problem_type == "multi_label_classification":
        return logits.sigmoid()
    if problem_type == "regression":
        return logits
    return logits.softmax(-1)


def average_view_scores(
    logits: torch.Tensor, num_views: int, *, problem_type: str | None = None, multi_label: bool = False
) -> torch.Tensor:
    """Average the scores ([`logits_to_scores`]) of the views of each video, as the original multi-view test.

    Args:
        logits: `(batch * num_views, num_labels)`, views of a video consecutive (the processors' output order).
        num_views: Views per video, e.g. `num_temporal_clips * num_spatial_crops`.
        problem_type: The model config's: softmax (default), sigmoid (multi-label) or values (regression).
        multi_label: Shorthand for `problem_type="multi_label_classification"`.

    Returns:
        `(batch, num_labels)` scores.

    Example:

    ```python
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> average_view_scores(logits, num_views=3)
    tensor([[0.5000, 0.5000]])

    ```
    """
    if logits.ndim != 2 or logits.shape[0] % num_views:
        raise InputError(
            f"Expected logits of shape (batch * {num_views}, num_labels), got {tuple(logits.shape)}; "
            "the views of each video must be consecutive."
        )
    problem_type = "multi_label_classification" if multi_label else problem_type
    return logits_to_scores(logits, problem_type).unflatten(0, (-1, num_views)).mean(1)


def predictions_from_scores(
    scores: np.ndarray | torch.Tensor, config: Any, *, top_k: int = 5, threshold: float = 0.5
) -> dict[str, Any]:
    """What a model predicts for one video from its (averaged) scores, by `config.problem_type`:

    - single-label: `{"predictions": [{"label", "score"}, ...]}`, the `top_k` most probable labels, best first;
    - multi-label: the same for every label whose probability is at least `threshold`;
    - regression: `{"value": float}` (one output) or `{"values": [...]}`.

    Example:

    ```python
    >>> from types import SimpleNamespace
    >>> config = SimpleNamespace(problem_type=None, id2label={0: "run", 1: "sit", 2: "jump"})
    >>> predictions_from_scores(np.array([0.2, 0.1, 0.7]), config, top_k=2)
    {'predictions': [{'label': 'jump', 'score': 0.7}, {'label': 'run', 'score': 0.2}]}

    ```
    """
    scores = np.asarray(scores.float() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    if scores.ndim != 1:
        raise InputError(f"Expected the scores of one video, (num_labels,), got shape {scores.shape}.")
    problem_type = getattr(config, "problem_type", None)
    if problem_type == "regression":
        return {"value": float(scores[0])} if len(scores) == 1 else {"values": scores.tolist()}
    if problem_type == "multi_label_classification":
        top_k = int((scores >= threshold).sum())
    order = np.argsort(-scores, kind="stable")[:top_k]
    return {"predictions": [{"label": config.id2label[int(i)], "score": float(scores[i])} for i in order]}


class TimeSformerProcessingDefaults:
    """The original test-time preprocessing, shared by the image and the video processor."""

    do_resize = True
    size = {"shortest_edge": 224}
    default_to_square = False
    resample = PILImageResampling.BILINEAR
    do_center_crop = True
    crop_size = {"height": 224, "width": 224}
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = TIMESFORMER_MEAN
    image_std = TIMESFORMER_STD
    do_convert_rgb = True

    def post_process_video_classification(
        self, logits: torch.Tensor, config: Any, *, num_views: int = 1, top_k: int = 5, threshold: float = 0.5
    ) -> list[dict[str, Any]]:
        """
        The predictions of a video classification model, one dict per video: its logits turned into scores
        ([`logits_to_scores`]: softmax, sigmoid for a multi-label model, the values of a regression model), averaged
        over the `num_views` consecutive views of each video, then ranked ([`predictions_from_scores`]).

        Args:
            logits: `(batch * num_views, num_labels)` logits, or model outputs with `logits`.
            config: The model's config (`problem_type`, `id2label`).
            num_views: Views per video (`num_temporal_clips * num_spatial_crops`).
            top_k: Labels per video (single-label models).
            threshold: Probability from which a label is predicted (multi-label models).

        Example:

        ```python
        >>> inputs = processor("video.mp4", num_spatial_crops=3, return_tensors="pt")  # doctest: +SKIP
        >>> logits = model(**inputs).logits  # doctest: +SKIP
        >>> processor.post_process_video_classification(logits, model.config, num_views=3, top_k=1)  # doctest: +SKIP
        [{'predictions': [{'label': 'archery', 'score': 0.93}]}]
        ```
        """
        logits = getattr(logits, "logits", logits)
        problem_type = getattr(config, "problem_type", None)
        scores = average_view_scores(logits.detach(), num_views, problem_type=problem_type)
        return [predictions_from_scores(row, config, top_k=top_k, threshold=threshold) for row in scores]


class TimeSformerImageProcessor(TimeSformerProcessingDefaults, BaseImageProcessor):
    r"""
    Constructs a TimeSformer image processor: the `VideoMAEImageProcessor` interface with the original
    TimeSformer defaults (short side 224, centre crop 224, bilinear, mean/std 0.45/0.225), run with batched torch
    operations on all frames of a video at once.

    Args:
        do_resize (`bool`, *optional*, defaults to `True`): Resize the frames to `size`.
        size (`dict[str, int]`, *optional*, defaults to `{"shortest_edge": 224}`):
            `{"shortest_edge": s}` keeps the aspect ratio, `{"height": h, "width": w}` resizes exactly.
        resample (`PILImageResampling`, *optional*, defaults to `BILINEAR`): `NEAREST`, `BILINEAR` or `BICUBIC`.
        do_center_crop (`bool`, *optional*, defaults to `True`): Crop `crop_size` from the centre.
        crop_size (`dict[str, int]`, *optional*, defaults to `{"height": 224, "width": 224}`): Crop size.
        do_rescale (`bool`, *optional*, defaults to `True`): Multiply by `rescale_factor`.
        rescale_factor (`float`, *optional*, defaults to `1/255`): Rescale factor.
        do_normalize (`bool`, *optional*, defaults to `True`): Normalize with `image_mean` and `image_std`.
        image_mean (`list[float]`, *optional*, defaults to `[0.45, 0.45, 0.45]`): Mean per channel.
        image_std (`list[float]`, *optional*, defaults to `[0.225, 0.225, 0.225]`): Standard deviation per channel.
        num_spatial_crops (`int`, *optional*, defaults to 1):
            3 returns the original's three test crops along the long side of every video as separate views:
            `pixel_values` is then `(batch * 3, frames, 3, height, width)`, the views of a video consecutive; score
            them with the model and combine with [`average_view_scores`]. See [`spatial_crop_offsets`].

    Example:

    ```python
    >>> import numpy as np
    >>> processor = TimeSformerImageProcessor()
    >>> video = np.zeros((8, 240, 320, 3), dtype=np.uint8)
    >>> processor(video, return_tensors="pt")["pixel_values"].shape
    torch.Size([1, 8, 3, 224, 224])
    >>> processor(video, num_spatial_crops=3, return_tensors="pt")["pixel_values"].shape
    torch.Size([3, 8, 3, 224, 224])

    ```
    """

    model_input_names = ["pixel_values"]
    valid_kwargs = TimeSformerImageProcessorKwargs
    num_spatial_crops = 1

    def __init__(self, **kwargs: Unpack[TimeSformerImageProcessorKwargs]) -> None:
        super().__init__(**kwargs)
        self._set_attributes(**kwargs)

    def preprocess(self, videos: Any, **kwargs: Unpack[TimeSformerImageProcessorKwargs]) -> BatchFeature:
        """Preprocess a video (list of frames or 4-D array) or a batch of videos into `pixel_values`.

        `pixel_values` is `(batch * num_spatial_crops, frames, 3, height, width)` with `return_tensors="pt"`/`"np"`,
        a list of `(frames, 3, height, width)` arrays otherwise. Frames can be PIL images, HWC numpy arrays or CHW/HWC
        torch tensors with values in [0, 255] (pass `do_rescale=False` for [0, 1] floats); a single frame is a
        one-frame video.
        """
        return super().preprocess(videos, **kwargs)

    def _preprocess_image_like_inputs(
        self, images: Any, *, input_data_format: str | ChannelDimension | None = None, **kwargs: Any
    ) -> BatchFeature:
        videos = [to_video_tensor(video, input_data_format) for video in make_batched_videos(images)]
        return self._preprocess(videos, **kwargs)

    def _preprocess(
        self,
        videos: list[torch.Tensor],
        do_resize: bool,
        size: SizeDict,
        resample: PILImageResampling | int,
        do_center_crop: bool,
        crop_size: SizeDict,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: float | Sequence[float],
        image_std: float | Sequence[float],
        num_spatial_crops: int = 1,
        return_tensors: str | TensorType | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        data = preprocess_videos(
            videos,
            do_resize=do_resize,
            size=size,
            resample=resample,
            do_center_crop=do_center_crop,
            crop_size=crop_size,
            do_rescale=do_rescale,
            rescale_factor=rescale_factor,
            do_normalize=do_normalize,
            image_mean=image_mean,
            image_std=image_std,
            num_spatial_crops=num_spatial_crops,
            return_tensors=return_tensors,
        )
        return BatchFeature(data=data, tensor_type=return_tensors)
