"""Video decoding with PyAV and the frame samplers of the original TimeSformer release.

[`FrameSampler`] holds the one implementation of which frames make a clip: the Kinetics, SSv2 and uniform samplers,
the test clips that cover a video, the clip of a time window of a long video, and whether a horizontal flip keeps
the labels true. The processors, the inference engine and training all take their frames from it.

Frame indices always count frames in presentation (display) order from 0, whatever the container's timestamps
look like, so the index ``i`` means the same frame for [`read_video`], [`probe_video`] and the samplers.

Example:

```python
>>> from timesformer_hf.video import probe_video, read_video, sample_kinetics_indices
>>> meta = probe_video("video.mp4")  # doctest: +SKIP
>>> indices = sample_kinetics_indices(meta.total_num_frames, num_frames=8, sampling_rate=32, video_fps=meta.fps)
>>> frames = read_video("video.mp4", indices)  # (8, height, width, 3) uint8  # doctest: +SKIP
```
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import torch

from .errors import InputError

__all__ = [
    "FRAME_SAMPLINGS",
    "FrameSampler",
    "StoredVideo",
    "TimeWindow",
    "VideoDecodeError",
    "VideoMetadata",
    "VideoReader",
    "decode_limit",
    "plan_windows",
    "probe_video",
    "read_video",
    "sample_kinetics_indices",
    "sample_ssv2_indices",
    "sample_uniform_indices",
    "stack_frames",
    "stored_video_name",
    "to_source",
]

VideoSource = str | os.PathLike | IO[bytes]
SeedLike = int | np.random.Generator | None
# A video as data sets hold it: a path, its bytes, or a `datasets.Video(decode=False)` value `{"path", "bytes"}`.
StoredVideo = str | os.PathLike | bytes | dict
LARGE_FRAME_PIXELS = 3840 * 2160
LONG_GOP = 100  # frames per keyframe from which clips are decoded in long runs rather than reached by seeking


def to_source(video: StoredVideo) -> VideoSource:
    """What [`VideoReader`] opens for a stored video: its path, or its bytes as an in-memory file (no temporary file).

    Example:

    ```python
    >>> to_source({"path": "clip.mp4", "bytes": None})
    'clip.mp4'

    ```
    """
    if isinstance(video, dict):
        video = video["bytes"] if video.get("bytes") is not None else video["path"]
    return io.BytesIO(video) if isinstance(video, bytes) else video


def stored_video_name(video: StoredVideo) -> str | None:
    """The path of a stored video (the file name inside an archive for embedded bytes), `None` when it has none."""
    if isinstance(video, dict):
        video = video.get("path")
    return os.fspath(video) if isinstance(video, str | os.PathLike) else None


def stack_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    """`np.stack(frames)` into memory that starts half a page away from the first frame (modulo 4 KiB).

    Copying a frame to an address that equals its own modulo 4 KiB, or nearly, is several times slower on x86 CPUs
    (4K aliasing: loads wait on stores that look like they overlap), and two arrays of the same size allocated
    one after the other often sit just so: it made stacking 8 frames of 320x240 10x slower (1 ms instead of 0.1).
    """
    arrays = [np.asarray(frame) for frame in frames]
    if not arrays:
        raise InputError("Cannot stack an empty list of frames.")
    dtype = np.result_type(*arrays)  # as np.stack: mixed dtypes promote
    shape = (len(arrays), *arrays[0].shape)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buffer = np.empty(nbytes + 4096, dtype=np.uint8)
    shift = (arrays[0].ctypes.data + 2048 - buffer.ctypes.data) % 4096 // 64 * 64
    return np.stack(arrays, out=buffer[shift : shift + nbytes].view(dtype).reshape(shape))


class VideoDecodeError(InputError):
    """Raised when a file is missing, empty, truncated or not a decodable video."""


@dataclass(frozen=True)
class VideoMetadata:
    """What [`probe_video`] knows about a video without decoding it.

    The field names match `transformers.video_utils.VideoMetadata`, so `transformers.video_utils.VideoMetadata(
    **dataclasses.asdict(meta))` works once `rotation` is dropped.

    Attributes:
        total_num_frames: Number of frames, counted from the container's packets (exact for variable frame rates).
        fps: Average frame rate in frames per second.
        duration: Duration of the video stream in seconds.
        width: Width of the frames as displayed, i.e. after `rotation` is applied.
        height: Height of the frames as displayed.
        rotation: Counter-clockwise rotation in degrees (0, 90, 180 or 270) from the stream's display matrix;
            [`read_video`] applies it, so the frames it returns are upright.
    """

    total_num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    rotation: int = 0


@dataclass
class _FrameIndex:
    """Presentation timestamps of every frame, and for each frame the closest key frame at or before it."""

    timestamps: list[int]
    keyframe_before: list[int]
    position: dict[int, int]


def _describe(source: VideoSource) -> str:
    return os.fspath(source) if isinstance(source, str | os.PathLike) else repr(source)


def _open(source: VideoSource) -> Any:
    import av

    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise VideoDecodeError(f"Cannot read video {path!r}: no such file.")
        if os.path.getsize(path) == 0:
            raise VideoDecodeError(f"Cannot read video {path!r}: the file is empty.")
    try:
        container = av.open(source if not isinstance(source, os.PathLike) else os.fspath(source), mode="r")
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoDecodeError(f"Cannot open video {_describe(source)!r}: {error}") from error
    if not container.streams.video or container.format.name in _NON_VIDEO_FORMATS:
        container.close()
        raise VideoDecodeError(
            f"Cannot read video {_describe(source)!r}: no video stream found (format {container.format.name!r})."
        )
    return container


# FFmpeg demuxers that turn text or single images into a "video"; a file read as one of them is not a video.
_NON_VIDEO_FORMATS = {"tty", "image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "gif_pipe", "webp_pipe"}


def _build_frame_index(container: Any, stream: Any) -> _FrameIndex | None:
    """Demux (without decoding) to list the frames' timestamps; `None` when packets carry no timestamps."""
    entries = []
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:
            continue
        if packet.pts is None:
            return None
        entries.append((packet.pts, packet.is_keyframe))
    entries.sort()
    timestamps = [pts for pts, _ in entries]
    keyframe_before, last_keyframe = [], 0
    for i, (_, is_keyframe) in enumerate(entries):
        if is_keyframe:
            last_keyframe = i
        keyframe_before.append(last_keyframe)
    return _FrameIndex(timestamps, keyframe_before, {pts: i for i, pts in enumerate(timestamps)})


def _thread_type(stream: Any, index: _FrameIndex | None) -> str:
    """How the decoder uses threads: frame threading ("AUTO") where clips are decoded in long runs (groups of
    pictures of `LONG_GOP` frames or more, or no index to seek with), slice threading where they are reached by
    seeking (frame threading refills its pipeline after every seek: 1.7x slower on 2-second groups) and above 4K
    (frame threading holds a decoded frame per thread)."""
    if (stream.width or 0) * (stream.height or 0) > LARGE_FRAME_PIXELS:
        return "SLICE"
    if index is None or not index.timestamps:
        return "AUTO"
    return "AUTO" if len(index.timestamps) >= LONG_GOP * len(set(index.keyframe_before)) else "SLICE"


def _metadata(stream: Any, num_frames: int, timestamps: Sequence[int] | None, rotation: int) -> VideoMetadata:
    time_base = float(stream.time_base) if stream.time_base else 0.0
    if timestamps and len(timestamps) > 1 and time_base:
        # span of the presentation timestamps plus one (average) frame duration
        span = (timestamps[-1] - timestamps[0]) * time_base
        duration = span * len(timestamps) / (len(timestamps) - 1)
    elif stream.duration and time_base:
        duration = stream.duration * time_base
    else:
        duration = 0.0
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else (num_frames / duration if duration else 0.0)
    if not duration and fps:
        duration = num_frames / fps
    width, height = stream.codec_context.width, stream.codec_context.height
    if rotation % 180:
        width, height = height, width
    return VideoMetadata(num_frames, fps, duration, width, height, rotation)


def _rotation_of(frame: Any) -> int:
    return int(round(frame.rotation / 90.0)) % 4 * 90


def _decode_error(source: VideoSource, error: Exception) -> VideoDecodeError:
    return VideoDecodeError(f"Cannot decode video {_describe(source)!r}: {error}")


def _rewind(container: Any) -> None:
    container.seek(0, backward=True, any_frame=False)


class VideoReader:
    """An open video: probed once, then read clip after clip without demuxing the file again.

    Opening reads the container's packets (not their pictures) to index every frame, and decodes one frame for the
    rotation; [`read`](#VideoReader.read) then seeks to each clip. Reading many clips of a long video this way costs
    one index, not one per clip, and holds only the clip being decoded.

    Args:
        source: A path or a binary file object.

    Raises:
        VideoDecodeError: If the file is missing, empty, truncated or not a video.

    Example:

    ```python
    >>> with VideoReader("video.mp4") as reader:  # doctest: +SKIP
    ...     first = reader.read([0, 1, 2])
    ...     last = reader.read([reader.metadata.total_num_frames - 1])
    >>> reader.timestamps[:3]  # seconds from the first frame  # doctest: +SKIP
    [0.0, 0.04, 0.08]
    ```
    """

    def __init__(self, source: VideoSource) -> None:
        import av

        self.source = source
        self._container = _open(source)
        try:
            self._stream = self._container.streams.video[0]
            self._resume: _DecodePosition | None = None
            self._index = _build_frame_index(self._container, self._stream)
            self._stream.thread_type = _thread_type(self._stream, self._index)
            _rewind(self._container)
            frames = self._container.decode(self._stream)
            first = next(frames, None)
            if first is None:
                raise VideoDecodeError(f"Cannot read video {_describe(source)!r}: no frame could be decoded.")
            if self._index is not None:
                num_frames = len(self._index.timestamps)
            else:
                num_frames = 1 + sum(1 for _ in frames)
        except av.FFmpegError as error:
            self.close()
            raise _decode_error(source, error) from error
        except BaseException:
            self.close()
            raise
        timestamps = self._index.timestamps if self._index is not None else None
        self.metadata = _metadata(self._stream, num_frames, timestamps, _rotation_of(first))

    @property
    def timestamps(self) -> list[float]:
        """Presentation time of every frame in seconds from the first one (`index / fps` without timestamps)."""
        if self._index is None or not self._stream.time_base:
            fps = self.metadata.fps or 1.0
            return [i / fps for i in range(self.metadata.total_num_frames)]
        time_base, first = float(self._stream.time_base), self._index.timestamps[0]
        return [(pts - first) * time_base for pts in self._index.timestamps]

    def read(
        self,
        indices: Sequence[int] | np.ndarray | torch.Tensor | None = None,
        max_short_side: int | None = None,
    ) -> np.ndarray:
        """The frames at `indices` (all when `None`) as a `(frames, height, width, 3)` uint8 RGB array, upright;
        frames whose short side is more than `max_short_side` are scaled down to it as they are decoded."""
        import av

        try:
            if self._index is not None and self._index.timestamps:
                decoded, num_frames, self._resume = _decode_by_seeking(
                    self._container,
                    self._stream,
                    self._index,
                    indices,
                    self.source,
                    max_short_side,
                    self._resume,
                )
            else:  # no timestamps to seek to: decode sequentially from the start
                self._resume = None
                _rewind(self._container)
                decoded, num_frames = _decode_sequentially(
                    self._container,
                    self._stream,
                    indices,
                    self.source,
                    self.metadata.total_num_frames,
                    max_short_side,
                )
        except av.FFmpegError as error:
            raise _decode_error(self.source, error) from error
        indices = _check_indices(indices, num_frames, self.source)
        frames = stack_frames([decoded[i][0] for i in indices.tolist()])
        rotation = self.metadata.rotation
        if rotation:
            frames = np.ascontiguousarray(np.rot90(frames, k=rotation // 90, axes=(1, 2)))
        return frames

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def probe_video(source: VideoSource) -> VideoMetadata:
    """Return the frame count, frame rate, duration, display size and rotation of a video.

    It reads the container's packets and decodes a single frame (for the rotation), which is cheap even for long
    videos.

    Args:
        source: A path or a binary file object.

    Raises:
        VideoDecodeError: If the file is missing, empty, truncated or not a video.

    Example:

    ```python
    >>> probe_video("video.mp4")  # doctest: +SKIP
    VideoMetadata(total_num_frames=250, fps=25.0, duration=10.0, width=640, height=272, rotation=0)

    ```
    """
    with VideoReader(source) as reader:
        return reader.metadata


def read_video(
    source: VideoSource,
    indices: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    *,
    max_short_side: int | None = None,
    return_metadata: bool = False,
) -> np.ndarray | tuple[np.ndarray, VideoMetadata]:
    """Decode the frames at `indices` (all frames when `None`) as a `(frames, height, width, 3)` uint8 RGB array.

    Only what is needed is decoded: for each wanted frame the decoder seeks to the closest key frame before it
    (unless the frames already being decoded lead there), so a clip at the end of a long video costs about as much
    as one at its start. Indices may repeat and come in any order; the output follows `indices`. Variable frame
    rates are handled (indices count frames, not time) and the stream's display rotation is applied. To read
    several clips of one video, open a [`VideoReader`] once instead.

    Args:
        source: A path or a binary file object.
        indices: Frame indices in `[0, total_num_frames)`, e.g. from [`sample_kinetics_indices`].
        max_short_side: Scale frames whose short side is larger down to it as they are decoded (see
            [`decode_limit`]), so that memory does not grow with the frame size.
        return_metadata: Also return the [`VideoMetadata`] of the video.

    Raises:
        VideoDecodeError: If the file is missing, empty, truncated or not a video, or a wanted frame can't be decoded.
        IndexError: If an index is out of range.

    Example:

    ```python
    >>> frames, meta = read_video("video.mp4", [0, 10, 20], return_metadata=True)  # doctest: +SKIP
    >>> frames.shape, frames.dtype
    ((3, 272, 640, 3), dtype('uint8'))

    ```
    """
    with VideoReader(source) as reader:
        frames = reader.read(indices, max_short_side)
        return (frames, reader.metadata) if return_metadata else frames


def _check_indices(indices: Any, num_frames: int, source: VideoSource) -> np.ndarray:
    if num_frames == 0:
        raise VideoDecodeError(f"Cannot read video {_describe(source)!r}: the video stream has no frames.")
    if indices is None:
        return np.arange(num_frames)
    indices = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices)
    if indices.ndim != 1 or indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise IndexError(f"`indices` must be a non-empty 1-D sequence of integers, got {indices!r}.")
    if indices.min() < 0 or indices.max() >= num_frames:
        raise IndexError(
            f"Frame indices must lie in [0, {num_frames - 1}] for video {_describe(source)!r} "
            f"({num_frames} frames); got min {indices.min()} and max {indices.max()}."
        )
    return indices


def _missing_frames(source: VideoSource, missing: Sequence[int], num_frames: int) -> VideoDecodeError:
    return VideoDecodeError(
        f"Cannot decode frame(s) {sorted(missing)[:5]} of video {_describe(source)!r}, which lists {num_frames} "
        "frames: the decoder stopped before them (truncated or corrupt file?)."
    )


_Decoded = dict[int, tuple[np.ndarray, int]]  # position: (RGB frame, rotation); no decoder frame is kept


def _rgb(frame: Any, max_short_side: int | None) -> np.ndarray:
    """A decoded frame as an RGB array, scaled down by the decoder (area interpolation) when its short side is more
    than `max_short_side`: an 8192x8192 frame is never held at full size."""
    short_side = min(frame.width, frame.height)
    if max_short_side is None or short_side <= max_short_side:
        return frame.to_ndarray(format="rgb24")
    scale = max_short_side / short_side
    width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")


def decode_limit(short_side: int) -> int:
    """The largest short side worth decoding for frames that are resized to `short_side`: 4 times it, and 1080 at
    least (full-HD videos keep every pixel). Larger frames are scaled down by the decoder, before they are held."""
    return max(4 * short_side, 1080)


@dataclass
class _DecodePosition:
    """Where decoding stopped: the decoder's frames and the last position decoded. A next clip further on in the
    same group of pictures goes on from there instead of seeking back to its keyframe."""

    frames: Any
    position: int


def _decode_by_seeking(
    container: Any,
    stream: Any,
    index: _FrameIndex,
    indices: Any,
    source: VideoSource,
    max_short_side: int | None = None,
    resume: _DecodePosition | None = None,
) -> tuple[_Decoded, int, _DecodePosition | None]:
    """The wanted frames, decoded from the keyframe before each (or on from `resume`); the frame count; where
    decoding stopped."""
    num_frames = len(index.timestamps)
    wanted = set(_check_indices(indices, num_frames, source).tolist())
    decoded: _Decoded = {}

    def seek(position: int) -> Any:
        container.seek(index.timestamps[position], backward=True, any_frame=False, stream=stream)
        return container.decode(stream)

    def advance(frames: Any, target: int) -> tuple[int | None, int | None]:
        """Decode up to `target`, keeping wanted frames; return the first and last positions seen."""
        first = None
        for frame in frames:
            position = index.position.get(frame.pts)
            if position is None:
                continue
            first = position if first is None else first
            if position in wanted and position not in decoded:
                decoded[position] = (_rgb(frame, max_short_side), _rotation_of(frame))
            if position >= target:
                return first, position
        return first, None

    frames, position = (resume.frames, resume.position) if resume is not None else (None, None)
    for target in sorted(wanted):
        if target in decoded:
            continue
        if (
            frames is None
            or position is None
            or position >= target
            or index.keyframe_before[target] > position
        ):
            frames = seek(index.keyframe_before[target])
            first, position = advance(frames, target)
            if target not in decoded and first is not None and first > target:
                # the demuxer landed after the target (imprecise seek): decode from the first frame instead
                frames = seek(0)
                first, position = advance(frames, target)
        else:
            _, position = advance(frames, target)
        if target not in decoded:
            raise _missing_frames(source, [target], num_frames)
    return decoded, num_frames, (_DecodePosition(frames, position) if position is not None else None)


def _decode_sequentially(
    container: Any,
    stream: Any,
    indices: Any,
    source: VideoSource,
    num_frames: int | None = None,
    max_short_side: int | None = None,
) -> tuple[_Decoded, int]:
    """Decode from the start, keeping the wanted frames; with `num_frames` known, stop after the last wanted one."""
    wanted = None if indices is None else set(np.asarray(indices).tolist())
    last_wanted = max(wanted) if wanted and num_frames is not None else None
    decoded: _Decoded = {}
    counted = 0
    for position, frame in enumerate(container.decode(stream)):
        if wanted is None or position in wanted:
            decoded[position] = (_rgb(frame, max_short_side), _rotation_of(frame))
        counted = position + 1
        if last_wanted is not None and position >= last_wanted:
            break
    num_frames = counted if num_frames is None else num_frames
    _check_indices(indices, num_frames, source)
    missing = [] if wanted is None else sorted(wanted - set(decoded))
    if missing:
        raise _missing_frames(source, missing, num_frames)
    return decoded, num_frames


def _rng(generator: SeedLike) -> np.random.Generator:
    return np.random.default_rng(generator)


def _check_counts(total_num_frames: int, num_frames: int) -> None:
    if total_num_frames < 1:
        raise InputError(f"Cannot sample from a video with {total_num_frames} frames.")
    if num_frames < 1:
        raise InputError(f"`num_frames` must be at least 1, got {num_frames}.")


def _linspace_indices(start: float, end: float, num_frames: int, total_num_frames: int) -> np.ndarray:
    # torch.linspace in float32 then truncation, exactly as the original `temporal_sampling`
    index = torch.linspace(start, end, num_frames).clamp(0, total_num_frames - 1).long()
    return index.numpy()


def sample_kinetics_indices(
    total_num_frames: int,
    num_frames: int = 8,
    sampling_rate: int = 32,
    *,
    video_fps: float | None = None,
    target_fps: float = 30.0,
    clip_index: int = 0,
    num_clips: int = 1,
    training: bool = False,
    generator: SeedLike = None,
) -> np.ndarray:
    """Frame indices of one Kinetics-style clip, as the original `get_start_end_idx` + `temporal_sampling`.

    A clip spans `num_frames * sampling_rate` frames at `target_fps`, i.e. `num_frames * sampling_rate /
    target_fps * video_fps` frames of the video. In training its start is uniformly random; in testing the video
    is split into `num_clips` clips and clip `clip_index` starts at `(total - clip) * clip_index / num_clips`
    (so a single test clip starts at frame 0). `num_frames` equally spaced indices are taken between the clip's
    first and last frame (`torch.linspace(...).long()`) and clamped to the video: a video shorter than a clip
    repeats its last frame.

    Args:
        total_num_frames: Number of frames of the video.
        num_frames: Number of frames to return.
        sampling_rate: Spacing between sampled frames, in frames at `target_fps`.
        video_fps: Frame rate of the video; `None` means `target_fps` (no conversion).
        target_fps: Frame rate the sampling rate refers to (30 in the original).
        clip_index: Which of the `num_clips` test clips (ignored when `training`).
        num_clips: Number of uniformly spaced test clips.
        training: Random clip start instead of the `clip_index`-th clip.
        generator: Seed or `numpy.random.Generator` for the random start.

    Example:

    ```python
    >>> sample_kinetics_indices(300, num_frames=8, sampling_rate=32, video_fps=30).tolist()
    [0, 36, 72, 109, 145, 182, 218, 255]
    >>> sample_kinetics_indices(100, num_frames=4, sampling_rate=32).tolist()  # shorter than the clip
    [0, 42, 84, 99]

    ```
    """
    _check_counts(total_num_frames, num_frames)
    if not 0 <= clip_index < num_clips:
        raise InputError(f"`clip_index` must lie in [0, {num_clips - 1}], got {clip_index}.")
    clip_size = num_frames * sampling_rate / target_fps * (video_fps or target_fps)
    delta = max(total_num_frames - clip_size, 0)
    start = _rng(generator).uniform(0, delta) if training else delta * clip_index / num_clips
    return _linspace_indices(start, start + clip_size - 1, num_frames, total_num_frames)


def sample_ssv2_indices(
    total_num_frames: int, num_frames: int = 8, *, training: bool = False, generator: SeedLike = None
) -> np.ndarray:
    """Frame indices as the original Something-Something-v2 loader: one frame per equal segment.

    The frames `0 .. total - 1` are cut into `num_frames` segments with rounded bounds; testing takes the middle
    of each segment, training a uniformly random frame of it (bounds included). Short videos repeat frames.

    Example:

    ```python
    >>> sample_ssv2_indices(50, num_frames=8).tolist()
    [3, 9, 15, 21, 27, 34, 40, 46]

    ```
    """
    _check_counts(total_num_frames, num_frames)
    segment = (total_num_frames - 1) / num_frames
    bounds = np.round(segment * np.arange(num_frames + 1)).astype(np.int64)
    starts, ends = bounds[:-1], bounds[1:]
    if training:
        return _rng(generator).integers(starts, ends, endpoint=True).astype(np.int64)
    return (starts + ends) // 2


def sample_uniform_indices(total_num_frames: int, num_frames: int = 8) -> np.ndarray:
    """`num_frames` equally spaced indices from the first to the last frame (`linspace(0, total - 1).long()`).

    Example:

    ```python
    >>> sample_uniform_indices(100, num_frames=4).tolist()
    [0, 33, 66, 99]

    ```
    """
    _check_counts(total_num_frames, num_frames)
    return _linspace_indices(0, total_num_frames - 1, num_frames, total_num_frames)


FRAME_SAMPLINGS = ("kinetics", "ssv2", "uniform")
MAX_AUTO_CLIPS = 10


@dataclass(frozen=True)
class TimeWindow:
    """A span of a video in seconds from its first frame."""

    start: float
    end: float


def plan_windows(duration: float, window: float, stride: float) -> list[TimeWindow]:
    """Windows of `window` seconds every `stride` seconds from 0 until one reaches `duration`.

    The last window ends at `duration`: cut short, or stretched by less than 1% of `stride` rather than leaving a
    sliver (e.g. the last 4 ms of a 29.97 fps video) to a window of its own. With `stride > window` the windows
    leave gaps, and none starts at or after the end.

    Example:

    ```python
    >>> [(w.start, w.end) for w in plan_windows(5.0, window=2.0, stride=2.0)]
    [(0.0, 2.0), (2.0, 4.0), (4.0, 5.0)]

    ```
    """
    if not (0 < window < math.inf and 0 < stride < math.inf):
        raise InputError(f"The window ({window} s) and the stride ({stride} s) must be positive and finite.")
    count = max(1, math.ceil((duration - window) / stride - 0.01) + 1)
    count = min(count, max(1, math.ceil(duration / stride - 1e-9)))  # no window starts at or after the end
    windows = [TimeWindow(k * stride, min(k * stride + window, duration)) for k in range(count)]
    windows[-1] = TimeWindow(windows[-1].start, duration)
    return windows


@dataclass(frozen=True)
class FrameSampler:
    """
    Which frames of a video make a clip of `num_frames`: the one place of the clip, view and window rules.

    Args:
        num_frames: Frames per clip.
        frame_sampling: `"kinetics"` (a clip of `num_frames * sampling_rate` frames at `target_fps`, see
            [`sample_kinetics_indices`]), `"ssv2"` (the middle frame of equal segments, [`sample_ssv2_indices`]) or
            `"uniform"` (evenly over the whole video, [`sample_uniform_indices`]).
        sampling_rate: Frame spacing of a Kinetics clip, in frames at `target_fps`.
        target_fps: The frame rate `sampling_rate` refers to.

    Example:

    ```python
    >>> sampler = FrameSampler(num_frames=4, frame_sampling="kinetics", sampling_rate=8)
    >>> [clip.tolist() for clip in sampler.test_clips(total_num_frames=100, fps=30.0)]
    [[0, 10, 20, 31], [17, 27, 37, 48], [34, 44, 54, 65], [51, 61, 71, 82]]
    >>> sampler.num_test_clips(100, fps=30.0), sampler.allows_horizontal_flip
    (4, True)

    ```
    """

    num_frames: int = 8
    frame_sampling: str = "kinetics"
    sampling_rate: int = 32
    target_fps: float = 30.0

    def __post_init__(self) -> None:
        for name in ("num_frames", "sampling_rate"):
            if getattr(self, name) < 1:
                raise InputError(f"must be at least 1, got {getattr(self, name)}.", argument=name)
        if not 0 < self.target_fps < math.inf:
            raise InputError(f"must be a positive frame rate, got {self.target_fps}.", argument="target_fps")
        if self.frame_sampling not in FRAME_SAMPLINGS:
            raise InputError(
                f"`frame_sampling` must be one of {FRAME_SAMPLINGS}, got {self.frame_sampling!r}."
            )

    @property
    def allows_horizontal_flip(self) -> bool:
        """Whether training may flip clips: not for SSv2 sampling, whose classes depend on direction (the original
        never flips Something-Something)."""
        return self.frame_sampling != "ssv2"

    def check_num_clips(self, num_clips: int) -> None:
        """Several test clips are Kinetics-style clips; the other samplers spread one clip over the whole video."""
        if num_clips < 1:
            raise InputError(f"num_clips must be at least 1, got {num_clips}.")
        if num_clips != 1 and self.frame_sampling != "kinetics":
            raise InputError(
                f"{num_clips} temporal clips need Kinetics-style sampling, but frames are sampled with "
                f"frame_sampling={self.frame_sampling!r} (one clip over the whole video): "
                "pass `frame_sampling='kinetics'`, or one clip."
            )

    def clip(
        self,
        total_num_frames: int,
        fps: float | None = None,
        *,
        clip_index: int = 0,
        num_clips: int = 1,
        training: bool = False,
        generator: SeedLike = None,
    ) -> np.ndarray:
        """Frame indices of one clip: the `clip_index`-th of `num_clips` test clips, or a random one in training."""
        self.check_num_clips(num_clips)
        if self.frame_sampling == "kinetics":
            return sample_kinetics_indices(
                total_num_frames,
                self.num_frames,
                self.sampling_rate,
                video_fps=fps,
                target_fps=self.target_fps,
                clip_index=clip_index,
                num_clips=num_clips,
                training=training,
                generator=generator,
            )
        if self.frame_sampling == "ssv2":
            return sample_ssv2_indices(
                total_num_frames, self.num_frames, training=training, generator=generator
            )
        return sample_uniform_indices(total_num_frames, self.num_frames)

    def num_test_clips(self, total_num_frames: int, fps: float | None) -> int:
        """Enough Kinetics-style clips to cover the video (at most 10); 1 for the whole-video samplers."""
        if self.frame_sampling != "kinetics":
            return 1
        clip_span = self.num_frames * self.sampling_rate / self.target_fps * (fps or self.target_fps)
        return max(1, min(MAX_AUTO_CLIPS, math.ceil(total_num_frames / clip_span)))

    def test_clips(
        self, total_num_frames: int, fps: float | None, num_clips: int | None = None
    ) -> list[np.ndarray]:
        """The frame indices of every test clip: `num_clips` of them, by default enough to cover the video."""
        num_clips = num_clips or self.num_test_clips(total_num_frames, fps)
        return [self.clip(total_num_frames, fps, clip_index=k, num_clips=num_clips) for k in range(num_clips)]

    def window_clip(self, timestamps: np.ndarray, window: TimeWindow) -> np.ndarray:
        """The clip of a time window, from the frames' `timestamps` (seconds): segment middles for SSv2 sampling,
        evenly spaced frames otherwise. A window that holds no frame (a gap in a variable-frame-rate video) takes
        the frame nearest to its middle."""
        first = int(np.searchsorted(timestamps, window.start - 1e-6))
        last = int(np.searchsorted(timestamps, window.end - 1e-6)) - 1
        if last < first:
            first = last = int(np.abs(timestamps - (window.start + window.end) / 2).argmin())
        count = last - first + 1
        if self.frame_sampling == "ssv2":
            return first + sample_ssv2_indices(count, self.num_frames)
        return first + sample_uniform_indices(count, self.num_frames)
