"""Video processor for TimeSformer: decoding with PyAV, the original frame samplers and the image processor's
torch transforms, as a `transformers` `BaseVideoProcessor` (works without torchvision or torchcodec)."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import ChannelDimension, SizeDict
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.utils import TensorType
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata as TransformersVideoMetadata

from .errors import InputError
from .image_processing_timesformer import TimeSformerProcessingDefaults
from .video import FRAME_SAMPLINGS, FrameSampler, SeedLike, decode_limit, probe_video, read_video
from .video_transforms import (
    PILImageResampling,
    make_batched_videos,
    preprocess_videos,
    stack_mixed_frames,
    to_video_tensor,
)

__all__ = ["FRAME_SAMPLINGS", "TimeSformerVideoProcessor"]

URL_TIMEOUT_SECONDS = 60


def _is_encoded(videos: Any) -> bool:
    """Whether `videos` (one video or a list of them) are paths, URLs or file objects, i.e. not decoded frames."""
    first = videos[0] if isinstance(videos, list | tuple) and len(videos) > 0 else videos
    return isinstance(first, str | os.PathLike | io.IOBase)


class TimeSformerVideoProcessorKwargs(VideosKwargs, total=False):
    """
    frame_sampling (`str`, *optional*, defaults to `"kinetics"`):
        How `do_sample_frames` picks `num_frames` frames: `"kinetics"` (a clip of `num_frames * sampling_rate`
        frames at `target_fps`, see `timesformer_hf.video.sample_kinetics_indices`), `"ssv2"` (middle frame of
        equal segments) or `"uniform"` (evenly over the whole video).
    sampling_rate (`int`, *optional*, defaults to 32):
        Frame spacing of a Kinetics clip, in frames at `target_fps`.
    target_fps (`float`, *optional*, defaults to 30):
        Frame rate `sampling_rate` refers to; the video's own frame rate is converted to it.
    num_temporal_clips (`int`, *optional*, defaults to 1):
        Kinetics test clips per video (clip k of n starts at `(length - clip) * k / n`); each is a separate view.
    num_spatial_crops (`int`, *optional*, defaults to 1):
        1 for a centre crop, 3 for the original's crops along the long side; each is a separate view.
    """

    frame_sampling: str
    sampling_rate: int
    target_fps: float
    num_temporal_clips: int
    num_spatial_crops: int


class TimeSformerVideoProcessor(TimeSformerProcessingDefaults, BaseVideoProcessor):
    r"""
    Constructs a TimeSformer video processor: decodes videos (paths, URLs or file objects) with PyAV, samples frames
    as the original release, and resizes/crops/normalizes with the same torch code as
    [`TimeSformerImageProcessor`].

    A video the processor decodes (a path, URL or file object) gives `num_frames` sampled frames, as the model was trained;
    `do_sample_frames=False` decodes every frame. Frames given directly (arrays, lists of frames) are the clip and
    are used as given, unless `do_sample_frames=True` is passed with them or `video_metadata` comes with them, in
    which case they are sampled too, as in `transformers`.

    `pixel_values` is `(batch * num_temporal_clips * num_spatial_crops, num_frames, 3, height, width)`: the views of
    a video are consecutive, temporal clip-major. Turn the model's logits into labels and scores with
    `post_process_video_classification(logits, model.config, num_views=...)`.

    Example:

    ```python
    >>> processor = TimeSformerVideoProcessor()
    >>> inputs = processor("video.mp4", return_tensors="pt")  # doctest: +SKIP
    >>> inputs["pixel_values"].shape  # doctest: +SKIP
    torch.Size([1, 8, 3, 224, 224])
    >>> views = processor("video.mp4", num_temporal_clips=2, num_spatial_crops=3)  # 6 views  # doctest: +SKIP
    ```
    """

    model_input_names = ["pixel_values"]
    valid_kwargs = TimeSformerVideoProcessorKwargs

    do_sample_frames = True
    num_frames = 8
    frame_sampling = "kinetics"
    sampling_rate = 32
    target_fps = 30.0
    num_temporal_clips = 1
    num_spatial_crops = 1

    def __init__(self, **kwargs: Unpack[TimeSformerVideoProcessorKwargs]) -> None:
        super().__init__(**kwargs)
        if (
            self.num_frames is None
        ):  # a config saved by `transformers.TimesformerVideoProcessor` has no frame count
            self.num_frames = type(self).num_frames
        self.frame_sampler  # noqa: B018  (checks the sampling settings)

    @property
    def frame_sampler(self) -> FrameSampler:
        """The [`~timesformer_hf.video.FrameSampler`] of this processor's sampling settings."""
        return FrameSampler(self.num_frames, self.frame_sampling, self.sampling_rate, self.target_fps)

    @property
    def max_decoded_short_side(self) -> int | None:
        """The short side beyond which decoded frames are scaled down by the decoder ([`~video.decode_limit`] of the
        resize's short side); `None` without a resize (the frames are used at their size)."""
        if not self.do_resize:
            return None
        size = self.size
        short_side = size["shortest_edge"] if "shortest_edge" in size else min(size["height"], size["width"])
        return decode_limit(short_side)

    def _sampler_with(self, **settings: Any) -> FrameSampler:
        """`frame_sampler` with the settings given (those not `None`) in place of the processor's."""
        return dataclasses.replace(self.frame_sampler, **{k: v for k, v in settings.items() if v is not None})

    def preprocess(self, videos: Any, **kwargs: Unpack[TimeSformerVideoProcessorKwargs]) -> BatchFeature:
        """Decode and sample (see the class docstring), resize, crop and normalize videos into `pixel_values`."""
        if (
            "do_sample_frames" not in kwargs
            and kwargs.get("video_metadata") is None
            and not _is_encoded(videos)
        ):
            kwargs["do_sample_frames"] = False  # given frames are the clip
        num_clips = kwargs.get("num_temporal_clips") or self.num_temporal_clips
        if num_clips > 1 and not kwargs.get("do_sample_frames", self.do_sample_frames):
            raise InputError(
                f"num_temporal_clips={num_clips} needs do_sample_frames=True: the clips are sampled from the video, "
                "while given frames are used as one clip."
            )
        return super().preprocess(videos, **kwargs)

    def sample_frames(
        self,
        metadata: TransformersVideoMetadata,
        num_frames: int | None = None,
        fps: float | None = None,
        frame_sampling: str | None = None,
        sampling_rate: int | None = None,
        target_fps: float | None = None,
        num_temporal_clips: int | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Indices of the frames to keep: `num_temporal_clips` clips of `num_frames`, concatenated.

        `fps` keeps the `transformers` meaning (that many frames per second of video, evenly spread) and overrides
        `num_frames` and `frame_sampling`.

        Example:

        ```python
        >>> metadata = TransformersVideoMetadata(total_num_frames=8, fps=4.0)
        >>> TimeSformerVideoProcessor().sample_frames(metadata, fps=3).tolist()  # 2 s of video, 3 frames a second
        [0, 1, 2, 4, 5, 6]

        ```
        """
        num_clips = num_temporal_clips or self.num_temporal_clips
        if fps is not None:
            return self._sample_at_fps(metadata, fps, num_clips)
        sampler = self._sampler_with(
            num_frames=num_frames,
            frame_sampling=frame_sampling,
            sampling_rate=sampling_rate,
            target_fps=target_fps,
        )
        return np.concatenate(sampler.test_clips(metadata.total_num_frames, metadata.fps, num_clips))

    @staticmethod
    def _sample_at_fps(metadata: TransformersVideoMetadata, fps: float, num_clips: int) -> np.ndarray:
        if metadata.fps is None:
            raise InputError(
                f"Cannot sample fps={fps} frames per second: the video's frame rate is unknown. Pass "
                "`video_metadata` with its `fps`, or sample a fixed count with `num_frames` instead of `fps`."
            )
        if num_clips != 1:
            raise InputError(f"`fps` samples one clip: leave `num_temporal_clips` at 1 (got {num_clips}).")
        total = metadata.total_num_frames
        num_frames = max(int(total / metadata.fps * fps), 1)
        if num_frames > total:
            raise InputError(
                f"fps={fps} asks for {num_frames} frames of a {metadata.fps:g} fps video of {total} frames: pass an "
                f"fps of at most {metadata.fps:g}."
            )
        # evenly spread, as `default_sample_indices_fn` of transformers 5.24 (5.11 gives the first `num_frames`)
        return np.arange(num_frames) * total // num_frames

    def sample_indices(
        self,
        total_num_frames: int,
        video_fps: float | None = None,
        *,
        num_frames: int | None = None,
        frame_sampling: str | None = None,
        sampling_rate: int | None = None,
        target_fps: float | None = None,
        training: bool = False,
        generator: SeedLike = None,
        clip_index: int = 0,
        num_clips: int = 1,
    ) -> np.ndarray:
        """
        Frame indices of one clip with this processor's sampling (arguments left `None` take its settings).

        Test time (`training=False`) gives the `clip_index`-th of `num_clips` clips; training a random one.

        Example:

        ```python
        >>> TimeSformerVideoProcessor(num_frames=4, frame_sampling="uniform").sample_indices(100).tolist()
        [0, 33, 66, 99]

        ```
        """
        sampler = self._sampler_with(
            num_frames=num_frames,
            frame_sampling=frame_sampling,
            sampling_rate=sampling_rate,
            target_fps=target_fps,
        )
        return sampler.clip(
            total_num_frames,
            video_fps,
            clip_index=clip_index,
            num_clips=num_clips,
            training=training,
            generator=generator,
        )

    def _decode_and_sample_videos(
        self,
        videos: Any,
        video_metadata: Any,
        do_sample_frames: bool | None = None,
        sample_indices_fn: Callable[..., np.ndarray] | None = None,
    ) -> tuple[list[Any], list[TransformersVideoMetadata]]:
        """Decode paths (`str` or `os.PathLike`), URLs and file objects here; given frames as the base class does
        (a video whose frames mix PIL images, arrays and tensors made one array first)."""
        if _is_encoded(videos):
            sources = list(videos) if isinstance(videos, list | tuple) else [videos]
            return self.fetch_videos(sources, sample_indices_fn)
        videos = [stack_mixed_frames(video) for video in make_batched_videos(videos)]
        return super()._decode_and_sample_videos(videos, video_metadata, do_sample_frames, sample_indices_fn)

    def fetch_videos(
        self, video_url_or_urls: Any, sample_indices_fn: Callable[..., np.ndarray] | None = None
    ) -> tuple[Any, Any]:
        """Decode videos (paths, http(s) URLs or binary file objects) with PyAV, only the sampled frames."""
        if isinstance(video_url_or_urls, list | tuple):
            pairs = [self.fetch_videos(video, sample_indices_fn) for video in video_url_or_urls]
            return [video for video, _ in pairs], [metadata for _, metadata in pairs]
        source = video_url_or_urls
        if isinstance(source, str) and source.startswith(("http://", "https://")):
            from urllib.request import urlopen

            with urlopen(source, timeout=URL_TIMEOUT_SECONDS) as response:
                source = io.BytesIO(response.read())
        info = probe_video(source)
        metadata = TransformersVideoMetadata(
            total_num_frames=info.total_num_frames,
            fps=info.fps,
            width=info.width,
            height=info.height,
            duration=info.duration,
            video_backend="pyav",
        )
        indices = sample_indices_fn(metadata=metadata) if sample_indices_fn is not None else None
        if isinstance(source, io.IOBase):
            source.seek(0)
        video = read_video(source, indices, max_short_side=self.max_decoded_short_side)
        metadata.frames_indices = list(range(len(video))) if indices is None else np.asarray(indices).tolist()
        return video, metadata

    def _prepare_input_videos(
        self,
        videos: Sequence[Any],
        do_convert_rgb: bool | None = None,
        input_data_format: str | ChannelDimension | None = None,
        device: str | torch.device | None = None,
    ) -> list[torch.Tensor]:
        videos = [to_video_tensor(video, input_data_format) for video in videos]
        return [video.to(device) for video in videos] if device is not None else videos

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
        num_temporal_clips: int = 1,
        num_spatial_crops: int = 1,
        return_tensors: str | TensorType | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        clips = []
        for video in videos:
            if len(video) % num_temporal_clips:
                raise InputError(
                    f"Cannot split a video of {len(video)} frames into {num_temporal_clips} temporal clips."
                )
            clips.extend(video.chunk(num_temporal_clips))
        data = preprocess_videos(
            clips,
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
