"""Video transforms: resize, crop and normalize every frame of a video at once, with batched torch ops on uint8.

Frames are resized with `torch.nn.functional.interpolate` (antialiased bilinear, which matches PIL to about one grey
level), cropped (centre, or the original's 3 crops along the long side) and normalized into float32, with no
torchvision and no per-frame PIL loop; work is spread over a small thread pool. The processors
([`~timesformer_hf.image_processing_timesformer.TimeSformerImageProcessor`] and the video processor) string these
together.

Example:

```python
>>> import numpy as np
>>> from transformers.image_utils import SizeDict
>>> video = to_video_tensor(np.zeros((8, 240, 320, 3), dtype=np.uint8))  # (frames, 3, height, width)
>>> resize_video(video, SizeDict(shortest_edge=224)).shape
torch.Size([8, 3, 224, 298])

```
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from enum import IntEnum
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_utils import ChannelDimension, SizeDict, infer_channel_dimension_format
from transformers.utils import TensorType, is_vision_available

from .errors import InputError
from .video import stack_frames

__all__ = [
    "PILImageResampling",
    "make_batched_videos",
    "preprocess_videos",
    "resize_video",
    "resized_size",
    "spatial_crop_offsets",
    "stack_mixed_frames",
    "to_video_tensor",
]

if is_vision_available():
    from transformers.image_utils import PILImageResampling
else:

    class PILImageResampling(IntEnum):
        """`PIL.Image.Resampling` without Pillow (which `transformers` needs for its own): the same values."""

        NEAREST = 0
        LANCZOS = 1
        BILINEAR = 2
        BICUBIC = 3
        BOX = 4
        HAMMING = 5


_INTERPOLATION_MODES = {
    PILImageResampling.NEAREST: "nearest-exact",
    PILImageResampling.BILINEAR: "bilinear",
    PILImageResampling.BICUBIC: "bicubic",
}


_T = TypeVar("_T")
_R = TypeVar("_R")
_MIN_FRAMES_PER_THREAD = 2  # fewer frames per thread cost more to hand over than to process
_helper_threads: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool)
_helper_threads_lock = threading.Lock()


def _helper_pool() -> ThreadPoolExecutor:
    """The helper thread pool, rebuilt in a forked child (which does not have the parent's threads)."""
    global _helper_threads
    with _helper_threads_lock:
        if _helper_threads is None or _helper_threads[0] != os.getpid():
            _helper_threads = (os.getpid(), ThreadPoolExecutor(thread_name_prefix="timesformer-preprocess"))
        return _helper_threads[1]


def _map_on_threads(function: Callable[[_T], _R], items: list[_T]) -> list[_R]:
    """`[function(item) for item in items]` on the caller and up to `torch.get_num_threads() - 1` helper threads.

    For single-threaded kernels that release the GIL, such as the antialiased uint8 resize. With one thread, e.g. in
    `DataLoader` workers, everything runs in the caller. After a failure no new item is started; the caller's own
    exception, else the first helper's, is raised once every thread has stopped.
    """
    num_helpers = min(torch.get_num_threads(), len(items)) - 1
    if num_helpers <= 0:
        return [function(item) for item in items]
    results: list[Any] = [None] * len(items)
    pending = iter(enumerate(items))
    lock = threading.Lock()
    failed = threading.Event()

    def drain() -> None:
        while not failed.is_set():
            with lock:
                index, item = next(pending, (None, None))
            if index is None:
                return
            try:
                results[index] = function(item)
            except BaseException:
                failed.set()
                raise

    pool = _helper_pool()
    helpers = [pool.submit(drain) for _ in range(num_helpers)]
    try:
        drain()
    finally:
        wait(helpers)
    for helper in helpers:
        helper.result()  # re-raises a helper's exception
    return results


def _is_frame(item: Any) -> bool:
    return hasattr(item, "convert") or (isinstance(item, np.ndarray | torch.Tensor) and item.ndim == 3)


def _is_video(item: Any) -> bool:
    if isinstance(item, np.ndarray | torch.Tensor):
        return item.ndim == 4
    return isinstance(item, list | tuple) and len(item) > 0 and all(_is_frame(frame) for frame in item)


def make_batched_videos(videos: Any) -> list[Any]:
    """Turn one video (list of frames, 4-D array) or a batch (list of videos, 5-D array) into a list of videos.

    A single image (PIL, HWC array, CHW or HWC tensor) is a one-frame video, as for `VideoMAEImageProcessor`.
    """
    if isinstance(videos, np.ndarray | torch.Tensor) and videos.ndim == 5:
        return list(videos)
    if _is_video(videos):
        return [videos]
    if isinstance(videos, list | tuple) and len(videos) > 0 and all(_is_video(video) for video in videos):
        return list(videos)
    if _is_frame(videos):
        return [[videos]]
    raise InputError(
        "Invalid video input: expected a list of frames (PIL images, HWC numpy arrays or CHW/HWC torch tensors), a "
        f"4-D array/tensor, or a list of those for a batch; got {type(videos).__name__}."
    )


def _hwc_array(frame: Any) -> np.ndarray:
    """One frame (PIL image, HWC or CHW array or tensor) as an HWC NumPy array (PIL images in RGB)."""
    if hasattr(frame, "convert"):
        return np.asarray(frame.convert("RGB"))
    array = frame.numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if (
        array.ndim == 3
        and infer_channel_dimension_format(array, num_channels=(1, 3, 4)) == ChannelDimension.FIRST
    ):
        array = array.transpose(1, 2, 0)
    return array


def stack_mixed_frames(video: Any) -> Any:
    """A video whose frames are of several kinds (PIL images, arrays, tensors) as one `(frames, height, width, 3)`
    array; any other video as it is."""
    if not isinstance(video, list | tuple) or len({type(frame) for frame in video}) <= 1:
        return video
    return stack_frames([_hwc_array(frame) for frame in video])


def to_video_tensor(video: Any, input_data_format: str | ChannelDimension | None = None) -> torch.Tensor:
    """Stack a video's frames into a `(frames, 3, height, width)` tensor, keeping uint8 as uint8.

    Grayscale frames are repeated to 3 channels and an alpha channel is dropped.
    """
    if isinstance(video, list | tuple):
        if all(isinstance(frame, torch.Tensor) for frame in video):
            video = torch.stack(list(video))
        elif all(isinstance(frame, np.ndarray) for frame in video):
            video = stack_frames(video)
        else:  # PIL images, or frames of several kinds: each as an HWC array
            video = stack_frames([_hwc_array(frame) for frame in video])
            input_data_format = ChannelDimension.LAST
    tensor = torch.from_numpy(np.ascontiguousarray(video)) if isinstance(video, np.ndarray) else video
    if tensor.ndim != 4:
        raise InputError(
            f"A video must have 4 dimensions (frames, channels, height, width), got {tuple(tensor.shape)}."
        )
    if input_data_format is None:
        input_data_format = infer_channel_dimension_format(tensor[0], num_channels=(1, 3, 4))
    if ChannelDimension(input_data_format) == ChannelDimension.LAST:
        tensor = tensor.permute(0, 3, 1, 2)
    channels = tensor.shape[1]
    if channels == 1:
        tensor = tensor.expand(-1, 3, -1, -1)
    elif channels == 4:
        tensor = tensor[:, :3]
    elif channels != 3:
        raise InputError(f"Frames must have 1, 3 or 4 channels, got {channels}.")
    return tensor


def resized_size(height: int, width: int, size: SizeDict) -> tuple[int, int]:
    """Output `(height, width)` of [`resize_video`] for frames of `height x width`."""
    if size.shortest_edge:
        short, long = sorted((height, width))
        new_long = int(size.shortest_edge * long / short)
        return (size.shortest_edge, new_long) if height <= width else (new_long, size.shortest_edge)
    if size.height and size.width:
        return (size.height, size.width)
    raise InputError(f"`size` must hold `shortest_edge` or `height` and `width`, got {dict(size)}.")


def resize_video(
    video: torch.Tensor, size: SizeDict, resample: PILImageResampling | int = PILImageResampling.BILINEAR
) -> torch.Tensor:
    """Resize all frames of a `(frames, 3, height, width)` video at once, antialiased like PIL.

    `size` is `{"shortest_edge": s}` (short side to `s`, long side `int(s * long / short)`, as the original
    `short_side_scale` and transformers' `get_resize_output_image_size`) or `{"height": h, "width": w}`.
    """
    new_size = resized_size(*video.shape[-2:], size)
    if new_size == tuple(video.shape[-2:]):
        return video
    mode = _INTERPOLATION_MODES.get(PILImageResampling(resample))
    if mode is None:
        raise InputError(
            f"Unsupported `resample` {resample!r}; use one of {[m.name for m in _INTERPOLATION_MODES]}."
        )
    is_uint8 = video.dtype == torch.uint8
    # uint8 interpolation is fast for channels-last memory; it rounds and saturates like PIL
    video = video.contiguous(memory_format=torch.channels_last) if is_uint8 else video.float()
    extra = {"antialias": True, "align_corners": False} if mode != "nearest-exact" else {}
    return F.interpolate(video, size=new_size, mode=mode, **extra)


def spatial_crop_offsets(
    height: int, width: int, crop_height: int, crop_width: int, position: int
) -> tuple[int, int]:
    """Top-left corner of crop `position` (0, 1 or 2), as the original `uniform_crop` but for the centre rounding.

    Position 1 is the centre; 0 and 2 move to the start and the end of the long side: left/right for landscape and
    square frames, top/bottom for portrait frames. The centre offset rounds down (`(length - crop) // 2`) as
    transformers' `center_crop`, so the single-view output matches `VideoMAEImageProcessor`; the original rounds
    up, a one-pixel shift when the margin is odd.
    """
    if crop_height > height or crop_width > width:
        raise InputError(
            f"Cannot crop {crop_height}x{crop_width} from frames of {height}x{width}; resize first."
        )
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    if position == 1:
        return top, left
    if position not in (0, 2):
        raise InputError(f"Crop position must be 0, 1 or 2, got {position}.")
    if height > width:
        return (0 if position == 0 else height - crop_height), left
    return top, (0 if position == 0 else width - crop_width)


def _crop_views(video: torch.Tensor, crop_size: SizeDict, num_spatial_crops: int) -> list[torch.Tensor]:
    if num_spatial_crops not in (1, 3):
        raise InputError(f"`num_spatial_crops` must be 1 (centre crop) or 3, got {num_spatial_crops}.")
    height, width = video.shape[-2:]
    positions = (1,) if num_spatial_crops == 1 else (0, 1, 2)
    views = []
    for position in positions:
        top, left = spatial_crop_offsets(height, width, crop_size.height, crop_size.width, position)
        views.append(video[..., top : top + crop_size.height, left : left + crop_size.width])
    return views


def _rgb_values(name: str, value: float | Sequence[float]) -> np.ndarray:
    """`value` (one number, or one per channel) as 3 float64 values: R, G, B."""
    values = np.asarray(value, dtype=np.float64).reshape(-1)
    if len(values) not in (1, 3):
        raise InputError(
            f"`{name}` must be one value or three (R, G, B), got {len(values)}: frames are processed as RGB (an "
            "alpha channel is dropped, grayscale is repeated), so give the mean and std of the R, G and B channels."
        )
    return np.broadcast_to(values, 3)


def _affine_parameters(
    do_rescale: bool,
    rescale_factor: float,
    do_normalize: bool,
    image_mean: float | Sequence[float],
    image_std: float | Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel `(scale, shift)`, each `(3, 1, 1)` float32, such that `x * scale + shift` rescales and normalizes."""
    scale = np.full(3, rescale_factor if do_rescale else 1.0)
    shift = np.zeros(3)
    if do_normalize:
        mean, std = _rgb_values("image_mean", image_mean), _rgb_values("image_std", image_std)
        scale, shift = scale / std, -mean / std
    return scale.astype(np.float32).reshape(3, 1, 1), shift.astype(np.float32).reshape(3, 1, 1)


def _write_affine(out: np.ndarray, frames: torch.Tensor, scale: np.ndarray, shift: np.ndarray) -> None:
    """`out = frames * scale + shift`: float32 `(frames, 3, height, width)` from frames of any dtype, layout, device.

    NumPy runs it on the calling thread alone (torch would start an OpenMP team from every helper thread).
    """
    frames = frames.detach().cpu()
    array = (frames.float() if frames.dtype == torch.bfloat16 else frames).numpy()  # NumPy has no bfloat16
    if array.dtype == np.uint8:
        array = np.ascontiguousarray(array)  # transposing uint8, then converting, beats doing both at once
    if (scale != 1).any():
        np.multiply(array, scale, out=out, casting="unsafe")  # converts as it goes: one pass fewer
    else:
        np.copyto(out, array, casting="unsafe")
    if shift.any():
        np.add(out, shift, out=out)


def preprocess_videos(
    videos: Sequence[torch.Tensor],
    *,
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
) -> dict[str, Any]:
    """Resize, crop and normalize `(frames, 3, height, width)` videos into `{"pixel_values": ...}`.

    `pixel_values` is one float32 `(views, frames, 3, height, width)` tensor with `return_tensors`, else a list of
    `(frames, 3, height, width)` arrays. With `num_spatial_crops=3` (which needs `do_center_crop`) each video gives
    3 consecutive views, in crop order.

    Every view is written by the multiply that converts it to float32 and rescales it, then shifted in place. The
    output comes from NumPy, which asks for huge pages (PyTorch's CPU allocator maps 4 KiB pages for every large
    tensor, which makes writing it several times slower). Chunks of frames are processed on up to `torch.get_num_threads()`
    threads, each chunk by one thread.
    """
    if num_spatial_crops != 1 and not do_center_crop:
        raise InputError("`num_spatial_crops=3` crops `crop_size` views: set `do_center_crop=True`.")
    shapes = []
    for video in videos:
        height, width = resized_size(*video.shape[-2:], size) if do_resize else video.shape[-2:]
        if do_center_crop:
            height, width = crop_size.height, crop_size.width
        shapes += [(len(video), 3, height, width)] * num_spatial_crops
    if return_tensors is not None and len(set(shapes)) > 1:
        raise InputError(
            f"Cannot batch videos whose processed shapes differ ({sorted(set(shapes))}); use the same number of "
            "frames per video and a crop size."
        )
    if return_tensors is not None:
        batch = np.empty((len(shapes), *shapes[0]), dtype=np.float32)
        views = list(batch)
    else:
        views = [np.empty(shape, dtype=np.float32) for shape in shapes]
    scale, shift = _affine_parameters(do_rescale, rescale_factor, do_normalize, image_mean, image_std)

    # (frames, views of those frames) jobs: each CPU video in up to `threads / videos` chunks of frames, every chunk
    # resized (a single-threaded kernel), cropped and normalized on its own thread
    jobs = []
    for index, video in enumerate(videos):
        on_threads = video.device.type == "cpu"
        threads_per_video = -(-torch.get_num_threads() // len(videos)) if on_threads else 1
        chunks_per_video = max(min(threads_per_video, len(video) // _MIN_FRAMES_PER_THREAD), 1)
        video_views = views[index * num_spatial_crops : (index + 1) * num_spatial_crops]
        bounds = [len(video) * chunk // chunks_per_video for chunk in range(chunks_per_video + 1)]
        for start, stop in itertools.pairwise(bounds):
            if stop > start:
                jobs.append((video[start:stop], [view[start:stop] for view in video_views]))

    def process(job: tuple[torch.Tensor, list[np.ndarray]]) -> None:
        frames, frame_views = job
        with torch.no_grad():  # helpers do not share the caller's grad mode; no graph is needed
            frames = resize_video(frames, size, resample) if do_resize else frames
        crops = _crop_views(frames, crop_size, num_spatial_crops) if do_center_crop else [frames]
        for view, crop in zip(frame_views, crops, strict=True):
            _write_affine(view, crop, scale, shift)

    _map_on_threads(process, jobs)
    if return_tensors is not None:
        return {"pixel_values": torch.from_numpy(batch)}
    return {"pixel_values": views}
