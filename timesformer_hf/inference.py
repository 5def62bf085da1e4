"""The inference engine: videos in, one averaged output per video (and per time window) out.

Every command (`classify`, `features`, `evaluate`) and notebook runs videos through [`InferenceEngine`]. A
`torch.utils.data.DataLoader` decodes, samples and preprocesses the views of the next videos in `num_workers`
processes while the model runs; views of several videos share a forward pass (`batch_size` views each), and each
video's outputs are averaged over its views as the original multi-view test does.

Two ways to cover a video:
- *clips* (the default): `num_clips` Kinetics-style temporal clips (by default enough to cover the video, at most
  10; one for the whole-video samplers) times `num_crops` spatial crops, all averaged;
- *windows*: with `window` and `stride` (seconds), one clip per time window over the whole video, each decoded on
  its own by seeking, so memory does not grow with the video's length; results per window and averaged over them.

Example:

```python
>>> from timesformer_hf.inference import InferenceEngine, load_model
>>> model, processor = load_model("demo-output/model", device="auto", dtype="fp32")  # doctest: +SKIP
>>> engine = InferenceEngine(model, processor, batch_size=8, num_workers=2)  # doctest: +SKIP
>>> for result in engine.run(["a.mp4", "b.mp4"]):  # doctest: +SKIP
...     print(result.video, engine.predict(result.value, top_k=2))
a.mp4 {'predictions': [{'label': 'right_1', 'score': 0.97}, {'label': 'left_2', 'score': 0.01}]}
```
"""

from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from transformers.utils import logging

from .configuration_timesformer import is_multi_label_model
from .errors import InputError
from .image_processing_timesformer import logits_to_scores, predictions_from_scores
from .loading import check_model_repo, hub_errors
from .packed_linear import pack_linear_layers
from .video import (
    StoredVideo,
    TimeWindow,
    VideoDecodeError,
    VideoReader,
    plan_windows,
    stored_video_name,
    to_source,
)

logger = logging.get_logger(__name__)

__all__ = [
    "DTYPES",
    "auto_dtype",
    "cpu_bf16_features",
    "InferenceEngine",
    "VideoOutput",
    "WindowOutput",
    "is_onnx_export",
    "load_model",
    "resolve_device",
    "resolve_dtype",
    "video_name",
]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
Output = Literal["probabilities", "cls", "mean"]
VideoInput = StoredVideo


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`"auto"` is CUDA, then MPS, then the CPU; an explicit device must exist (`ValueError` saying so otherwise)."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise InputError(f"Unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps.") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"Device {device!r} asked for, but CUDA is not available here: use the cpu (or auto)."
        )
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise InputError(
            f"Device {device!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist."
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(
            f"Device {device!r} asked for, but MPS is not available here: use the cpu (or auto)."
        )
    return resolved


@functools.cache
def cpu_bf16_features() -> tuple[str, ...]:
    """The CPU's native bf16 instructions (`amx_bf16`, `avx512_bf16` in Linux's `/proc/cpuinfo`), if any."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:  # not Linux
        return ()
    return tuple(flag for flag in ("amx_bf16", "avx512_bf16") if flag in flags)


def auto_dtype(device: str | torch.device = "auto") -> str:
    """What `dtype="auto"` picks on `device`: bf16 on a GPU that supports it and on a CPU with native bf16
    (AMX or AVX512-BF16, about 4x fp32 there), fp32 elsewhere."""
    device = resolve_device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_bf16_features() else "fp32"


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """`"auto"` (see [`auto_dtype`]), `"fp32"`, `"bf16"` or `"fp16"` as a torch dtype; fp16 on the CPU is refused
    (use bf16 there)."""
    if dtype == "auto":
        dtype = auto_dtype(device)
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise InputError(f"Unknown dtype {dtype!r}: use auto or one of {', '.join(DTYPES)}.")
        dtype = DTYPES[dtype]
    if dtype == torch.float16 and device.type == "cpu":
        raise InputError(
            "fp16 is not supported on the CPU (slow or missing kernels): use bf16 or fp32 there."
        )
    return dtype


def load_model(
    repo: str | os.PathLike,
    *,
    task: Literal["classify", "features"] = "classify",
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    attn_implementation: str | None = None,
    compile: bool = False,
    revision: str | None = None,
    backend: Literal["auto", "pytorch", "onnxruntime"] = "auto",
    onnx_file: str | None = None,
) -> tuple[torch.nn.Module, Any]:
    """A model ready for inference and its video processor.

    The model is the classifier (`task="classify"`) or the backbone (`"features"`), in eval mode with its temporal
    projections fused (computed in fp32 before casting), on `device` in `dtype`, optionally `torch.compile`d; in
    bf16 on a CPU its linear layers run on weights packed for oneDNN ([`pack_linear_layers`]). The fused and packed
    weights are snapshots: an adapter attached to the model runs in full, but to change the weights (merge adapters,
    edit them in place), do it before, or fuse and pack again after.
    `dtype="auto"` is bf16 on a GPU that supports it and on a CPU with native bf16 (AMX, AVX512-BF16), fp32
    elsewhere ([`auto_dtype`]); `"fp32"` gives the original's numbers exactly.
    With `backend="onnxruntime"`, `repo` is a folder written by `timesformer-hf export` and the model a
    [`~timesformer_hf.onnx.TimeSformerOnnxModel`] (its precision was chosen at export: `dtype` stays auto) running
    `onnx_file` of the folder (default `model.onnx`; `model_int8.onnx` for the int8 model). `"auto"` (the default)
    is ONNX Runtime for a folder that holds an ONNX graph and no PyTorch weights (an export), PyTorch otherwise.
    """
    from .modeling_timesformer import TimeSformerForVideoClassification, TimeSformerModel
    from .video_processing_timesformer import TimeSformerVideoProcessor

    check_model_repo(repo, revision)
    if backend == "auto":
        backend = "onnxruntime" if is_onnx_export(repo) else "pytorch"
    if backend == "onnxruntime":
        return _load_onnx_model(repo, task, device, dtype, attn_implementation, compile, revision, onnx_file)
    if backend != "pytorch":
        raise InputError(f"Unknown backend {backend!r}: use pytorch or onnxruntime.")
    if onnx_file is not None:
        raise InputError(
            f"{onnx_file} is an ONNX graph, for `backend='onnxruntime'`: use that backend, or drop it.",
            argument="onnx_file",
        )
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    model_class = TimeSformerForVideoClassification if task == "classify" else TimeSformerModel
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    with hub_errors(repo):
        model = model_class.from_pretrained(repo, revision=revision, **extra)
        processor = TimeSformerVideoProcessor.from_pretrained(repo, revision=revision)
    model = model.eval().fuse_temporal_projections().to(device=device, dtype=dtype)
    if compile:
        return compile_for_inference(model), processor
    if device.type == "cpu" and dtype == torch.bfloat16:
        model = pack_linear_layers(model)
    return model, processor


def compile_for_inference(model: torch.nn.Module, fullgraph: bool = False) -> torch.nn.Module:
    """`torch.compile(model)` for inference: inductor with the weights frozen into constants (`freezing`), so that
    it folds them (on CPU the GEMMs' weights prepacked for MKL or oneDNN, in bf16 with bias and GELU fused). Run it
    without gradients (`torch.inference_mode()`) and do not change the weights afterwards: the compiled graph keeps
    those it saw. Shapes stay static (`dynamic=False`): each new input shape compiles once more (30-45 s for a base
    model on 2 cores) rather than into one slower graph generic in the batch size.

    Example:
        >>> model, processor = load_model("path/to/repo", compile=True)  # doctest: +SKIP
    """
    compiled = torch.compile(model, fullgraph=fullgraph, dynamic=False)
    # Dynamo reads the flag while it traces (to make the parameters constants), before inductor's `options` apply.
    compiled.forward = torch._inductor.config.patch(freezing=True)(compiled.forward)
    return compiled


def is_onnx_export(repo: str | os.PathLike) -> bool:
    """Whether `repo` is a folder written by `timesformer-hf export`: an ONNX graph, no PyTorch weights."""
    folder = Path(repo)
    weights = [*folder.glob("*.safetensors"), *folder.glob("*.bin")]
    return folder.is_dir() and any(folder.glob("*.onnx")) and not weights


def _load_onnx_model(
    folder: str | os.PathLike,
    task: str,
    device: str | torch.device,
    dtype: str | torch.dtype,
    attn_implementation: str | None,
    compile: bool,
    revision: str | None,
    onnx_file: str | None,
) -> tuple[Any, Any]:
    """[`load_model`] with ONNX Runtime: the export in `folder` and its video processor."""
    from .onnx import TimeSformerOnnxModel
    from .video_processing_timesformer import TimeSformerVideoProcessor

    pytorch_only = {
        "`dtype=`": dtype not in ("auto", "fp32", torch.float32),
        "`attn_implementation=`": attn_implementation is not None,
        "`compile=True`": compile,
        "`revision=`": revision is not None,
    }
    if given := [name for name, is_set in pytorch_only.items() if is_set]:
        raise InputError(
            f"ONNX Runtime runs the graph as exported; {', '.join(given)}: for the PyTorch backend only "
            "(the graph's precision is chosen when it is exported): drop "
            f"{'it' if len(given) == 1 else 'them'}."
        )
    file_name = {"file_name": onnx_file} if onnx_file else {}
    model = TimeSformerOnnxModel.from_pretrained(folder, device=device, task=task, **file_name)
    return model, TimeSformerVideoProcessor.from_pretrained(folder)


@dataclass
class WindowOutput:
    """The output of one time window: averaged over its views (probabilities or features)."""

    start: float
    end: float
    value: np.ndarray


@dataclass
class VideoOutput:
    """The output of one video: `value` averaged over all its views (or windows); `error` set when it failed."""

    index: int
    video: str
    value: np.ndarray | None = None
    duration: float = 0.0
    windows: list[WindowOutput] | None = None
    error: str | None = None


def _release_free_heap() -> None:
    """Return the C heap's free pages to the system (glibc's `malloc_trim`; elsewhere nothing).

    The activations of every forward pass are freed again, and glibc keeps the holes they leave: without this, the
    peak memory of a long job creeps up with its length (+10-16% from a 1- to a 10-minute video with 2 workers,
    +5% with this after every forward pass).
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim() -> Any:
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _find_malloc_trim()


def video_name(video: VideoInput, index: int) -> str:
    """How a video is called in outputs: its path, else its position."""
    return stored_video_name(video) or f"#{index}"


@dataclass
class _Chunk:
    """The views of one clip group (a whole video, or one window) of a video, as workers hand them over."""

    index: int
    video: str
    start: float = 0.0
    end: float = 0.0
    pixel_values: torch.Tensor | None = None  # (views, frames, 3, height, width)
    last: bool = True  # the video's last chunk
    error: str | None = None
    outputs: list[torch.Tensor] = field(default_factory=list)
    sent: int = 0


@dataclass(frozen=True)
class _ViewPlan:
    """Which views of a video to make: clips and crops, one clip per window, or one clip of a span."""

    num_clips: int | None
    num_crops: int
    window: float | None
    stride: float | None
    span: TimeWindow | None = None


class _InFlight:
    """Which video each DataLoader worker is decoding, in memory shared with them: when a worker dies (a video that
    crashes the decoder, the kernel's OOM killer), the videos it and the others had started."""

    def __init__(self, num_workers: int) -> None:
        self.slots = multiprocessing.Array("q", [-1] * num_workers, lock=False)

    def start(self, index: int) -> None:
        info = get_worker_info()
        if info is not None:
            self.slots[info.id] = index

    def indices(self) -> list[int]:
        return [index for index in self.slots if index >= 0]


def _is_worker_death(error: RuntimeError) -> bool:
    return "DataLoader worker" in str(error)


@contextlib.contextmanager
def _worker_deaths_between_chunks() -> Iterator[Callable[[], None]]:
    """PyTorch's SIGCHLD handler raises a dead DataLoader worker's error wherever the main thread is, e.g. halfway
    through a batch, whose videos were then lost. Inside, the signal is only noted, and the check this yields raises
    that same error where it is called: between chunks. Enter it once the DataLoader's iterator exists (it installs
    the handler); outside the main thread there is no handler, and the DataLoader raises from `next()` itself."""
    sigchld = getattr(signal, "SIGCHLD", None)  # none on Windows
    if sigchld is None or threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    previous = signal.getsignal(sigchld)
    arrived: list[int] = []

    def check() -> None:
        if arrived:
            arrived.clear()
            if callable(previous):
                previous(sigchld, None)

    signal.signal(sigchld, lambda signum, frame: arrived.append(signum))
    try:
        yield check
    finally:
        signal.signal(sigchld, previous)


class _ViewDataset(IterableDataset):
    """Decodes and preprocesses the views of `videos[i]` for `i` in `indices`, split across DataLoader workers.

    Videos are fetched by index in the worker, so a `datasets` column of embedded videos is not loaded up front.

    It holds the processor and the plan, not the model: workers get what they need and nothing more.
    """

    def __init__(
        self,
        processor: Any,
        plan: _ViewPlan,
        videos: Sequence[VideoInput],
        indices: list[int],
        in_flight: _InFlight | None = None,
    ) -> None:
        self.processor = processor
        self.plan = plan
        self.videos = videos
        self.indices = indices
        self.in_flight = in_flight

    def __iter__(self) -> Iterator[_Chunk]:
        info = get_worker_info()
        indices = self.indices if info is None else self.indices[info.id :: info.num_workers]
        for index in indices:
            if self.in_flight is not None:
                self.in_flight.start(index)
            names = getattr(
                self.videos, "names", None
            )  # a data set's row names, known before its row is read
            name = names[index] if names is not None else f"#{index}"
            try:
                video = self.videos[index]
                name = video_name(video, index)
                with VideoReader(to_source(video)) as reader:
                    yield from self._chunks(reader, index, name)
            except VideoDecodeError as error:
                yield _Chunk(index, name, error=str(error))
            except (
                Exception
            ) as error:  # one poisoned file must not stop a job of thousands; the reason is kept
                yield _Chunk(index, name, error=f"{type(error).__name__}: {error}")

    def _views(self, frames: np.ndarray) -> torch.Tensor:
        return self.processor(
            frames,
            do_sample_frames=False,
            num_temporal_clips=1,
            num_spatial_crops=self.plan.num_crops,
            return_tensors="pt",
        )["pixel_values"]

    def _chunks(self, reader: VideoReader, index: int, name: str) -> Iterator[_Chunk]:
        sampler, plan, metadata = self.processor.frame_sampler, self.plan, reader.metadata
        limit = self.processor.max_decoded_short_side  # huge frames are scaled down as they are decoded
        if plan.span is not None:  # one clip of the span, as a window of it would be
            if plan.span.start >= metadata.duration:
                raise VideoDecodeError(
                    f"{name} lasts {metadata.duration:.2f} s: the span {plan.span.start:g}-{plan.span.end:g} s starts "
                    "after its end."
                )
            span = TimeWindow(plan.span.start, min(plan.span.end, metadata.duration))
            views = self._views(reader.read(sampler.window_clip(np.asarray(reader.timestamps), span), limit))
            yield _Chunk(index, name, span.start, span.end, views)
            return
        if plan.window is None:  # clips x crops, all in one chunk
            clips = sampler.test_clips(metadata.total_num_frames, metadata.fps or None, plan.num_clips)
            views = torch.cat([self._views(reader.read(indices, limit)) for indices in clips])
            yield _Chunk(index, name, 0.0, metadata.duration, views)
            return
        timestamps = np.asarray(reader.timestamps)
        windows = plan_windows(metadata.duration, plan.window, plan.stride)
        for k, window in enumerate(windows):  # one chunk per window, decoded on its own
            views = self._views(reader.read(sampler.window_clip(timestamps, window), limit))
            yield _Chunk(index, name, window.start, window.end, views, last=k == len(windows) - 1)


def _check_span(span: tuple[float, float], window: float | None, num_clips: int | None) -> TimeWindow:
    start, end = (float(value) for value in span)
    if not (0 <= start < end and start < math.inf):  # end: math.inf for "to the end"
        raise InputError(
            f"must be (start, end) seconds with 0 <= start < end, got ({start:g}, {end:g}).", argument="span"
        )
    if window is not None or num_clips is not None:
        raise InputError("is one clip: it excludes window and num_clips.", argument="span")
    return TimeWindow(start, end)


def _check_batch_memory(batch_size: int, processor: Any) -> None:
    """Refuse a batch whose input alone would not fit in this machine's memory (a typo such as 100000000)."""
    crop = processor.crop_size
    view_bytes = processor.num_frames * 3 * crop["height"] * crop["width"] * 4  # float32 pixels
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    memory = pages * page_size if pages > 0 and page_size > 0 else None
    if memory is not None and batch_size * view_bytes > memory:
        raise InputError(
            f"{batch_size} views of {view_bytes / 2**20:.3g} MiB would take {batch_size * view_bytes / 2**30:.0f} GiB, "
            f"more than this machine's {memory / 2**30:.0f} GiB: choose at most {max(1, memory // view_bytes // 4)}.",
            argument="batch_size",
        )


def _placement(model: Any) -> tuple[torch.device, torch.dtype]:
    """Where a model's inputs go, in which dtype: its parameters', or its own `device` and `dtype` (ONNX Runtime)."""
    parameter = next(model.parameters(), None) if hasattr(model, "parameters") else None
    if parameter is not None:
        return parameter.device, parameter.dtype
    return model.device, model.dtype


def _identity(chunk: _Chunk) -> _Chunk:
    return chunk


class InferenceEngine:
    """Runs a model over many videos, batching views across videos while workers decode the next ones.

    Args:
        model: A `TimeSformerForVideoClassification` (`output="probabilities"`: its scores, softmax, sigmoid for a
            multi-label model or the values of a regression model, see
            [`~timesformer_hf.image_processing_timesformer.logits_to_scores`]) or `TimeSformerModel` (`"cls"`: the final CLS token,
            its `pooler_output`; `"mean"`: the mean of the final patch tokens), on its device and in its dtype (see
            [`load_model`]).
        processor: The model's `TimeSformerVideoProcessor` (sampling, resize, crop, normalisation).
        output: What each view gives, averaged over the views of a window and over the windows of a video.
        batch_size: Views per forward pass.
        num_workers: DataLoader worker processes decoding and preprocessing (0: in this process).
        num_clips: Temporal clips per video (default: enough to cover it, at most 10; Kinetics sampling only).
        num_crops: Spatial crops per clip, 1 (centre) or 3 (along the long side).
        window: Window length in seconds: score one clip per window instead of `num_clips` clips.
        stride: Seconds between window starts (default: `window`).
        span: `(start, end)` seconds: one clip of that part of each video, sampled as a window's (e.g. a moment to
            search for); cut at the video's end (`end=math.inf`: to the end).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any,
        *,
        output: Output = "probabilities",
        batch_size: int = 8,
        num_workers: int = 0,
        num_clips: int | None = None,
        num_crops: int = 1,
        window: float | None = None,
        stride: float | None = None,
        span: tuple[float, float] | None = None,
    ) -> None:
        if output not in ("probabilities", "cls", "mean"):
            raise InputError(f"must be 'probabilities', 'cls' or 'mean', got {output!r}.", argument="output")
        if batch_size < 1:
            raise InputError(f"must be at least 1, got {batch_size}.", argument="batch_size")
        if num_workers < 0:
            raise InputError(f"must be 0 or more, got {num_workers}.", argument="num_workers")
        if num_crops not in (1, 3):
            raise InputError(
                f"must be 1 (centre crop) or 3 (along the long side), got {num_crops}.", argument="num_crops"
            )
        if num_clips is not None:
            processor.frame_sampler.check_num_clips(num_clips)
        if window is not None and num_clips is not None:
            raise InputError("excludes num_clips: a window holds one clip.", argument="window")
        if stride is not None and window is None:
            raise InputError("needs a window.", argument="stride")
        if span is not None:
            span = _check_span(span, window, num_clips)
        stride = window if stride is None else stride
        if window is not None:
            plan_windows(1.0, window, stride)  # checks both are positive and finite
        _check_batch_memory(batch_size, processor)
        self.model = model
        self.processor = processor
        self.output = output
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.plan = _ViewPlan(num_clips, num_crops, window, stride, span)
        self.device, self.dtype = _placement(model)
        self.compiled = isinstance(model, torch._dynamo.eval_frame.OptimizedModule)
        self.problem_type = getattr(model.config, "problem_type", None)
        self.multi_label = is_multi_label_model(model.config)
        self.num_forwards = 0
        self._buffer: torch.Tensor | None = None

    @torch.inference_mode()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """One forward pass over `(views, frames, 3, height, width)`: `(views, dim)` float32 outputs on the CPU."""
        pixel_values = pixel_values.to(self.device, self.dtype, non_blocking=self.device.type == "cuda")
        # the CLS token alone: the last layer skips the patch tokens' queries and MLP (a classifier does it anyway)
        kwargs = {"cls_token_only": True} if self.output == "cls" else {}
        outputs = self.model(pixel_values=pixel_values, **kwargs)
        self.num_forwards += 1
        _release_free_heap()  # about a millisecond; keeps a long job's peak memory flat
        if self.output == "probabilities":
            values = logits_to_scores(outputs.logits, self.problem_type)
        elif self.output == "cls":
            values = outputs.pooler_output
        else:
            values = outputs.last_hidden_state[:, 1:].mean(1)
        return values.float().cpu()

    def _batch_buffer(self, view: torch.Tensor) -> torch.Tensor:
        """One buffer for `batch_size` views, reused by every batch: a long job does not allocate and free a large
        block per batch (which fragments glibc's heap), and on CUDA it is page-locked, so copies to the GPU are
        asynchronous. The previous batch's copy is done by then: its outputs were brought back to the CPU."""
        shape = (self.batch_size, *view.shape[1:])
        if self._buffer is None or self._buffer.shape != shape or self._buffer.dtype != view.dtype:
            self._buffer = torch.zeros(shape, dtype=view.dtype, pin_memory=self.device.type == "cuda")
        return self._buffer

    def _batch(self, queue: list[_Chunk], size: int) -> list[_Chunk]:
        """Run the first `size` queued views; return the chunks whose views are all done."""
        parts, taken = [], []
        for chunk in queue:
            room = size - sum(len(part) for part in parts)
            if room <= 0:
                break
            count = min(len(chunk.pixel_values) - chunk.sent, room)
            if count > 0:
                parts.append(chunk.pixel_values[chunk.sent : chunk.sent + count])
                taken.append((chunk, count))
                chunk.sent += count
        if parts:
            count = sum(len(part) for part in parts)
            buffer = self._batch_buffer(parts[0])
            torch.cat(parts, out=buffer[:count])
            # a compiled model runs the last, partial batch padded to a full one rather than compile again
            pixel_values = buffer if self.compiled else buffer[:count]
            values = self.forward(pixel_values)[:count].split([count for _, count in taken])
            for (chunk, _), value in zip(taken, values, strict=True):
                chunk.outputs.append(value)
        done = [chunk for chunk in queue if chunk.sent == len(chunk.pixel_values) and chunk.outputs]
        queue[:] = [chunk for chunk in queue if chunk.sent < len(chunk.pixel_values)]
        return done

    def run(
        self,
        videos: Sequence[VideoInput] | Any,
        *,
        indices: Iterable[int] | None = None,
        progress: bool = False,
    ) -> Iterator[VideoOutput]:
        """Yield a [`VideoOutput`] per video, as videos complete (roughly in input order; `index` says which).

        Args:
            videos: Paths, bytes, `{"path", "bytes"}` dicts, or a `datasets.Dataset` with a `video` column.
            indices: Only these positions of `videos` (e.g. one process's share, or those not done yet).
            progress: Show a progress bar.
        """
        from tqdm.auto import tqdm

        videos = _video_list(videos)
        pending = list(range(len(videos)) if indices is None else indices)
        bar = tqdm(total=len(pending), unit="video", disable=not progress, desc="Videos")
        try:  # closed on errors too, so that what is printed next starts on its own line
            yield from self._run(videos, pending, bar)
        finally:
            bar.close()

    def _run(self, videos: list[Any], pending: list[int], bar: Any) -> Iterator[VideoOutput]:
        windows: dict[int, list[WindowOutput]] = {}
        queue: list[_Chunk] = []
        while pending:
            in_flight = _InFlight(self.num_workers) if self.num_workers else None
            received: set[int] = set()  # videos all of whose chunks (or its error) arrived
            loader = DataLoader(
                _ViewDataset(self.processor, self.plan, videos, pending, in_flight),
                batch_size=None,
                num_workers=self.num_workers,
                collate_fn=_identity,
                in_order=False,
            )
            try:
                chunks = iter(loader)  # starts the workers
                with _worker_deaths_between_chunks() as check_workers:
                    for chunk in chunks:
                        if chunk.last or chunk.error is not None:
                            received.add(chunk.index)
                        yield from self._take(chunk, queue, windows, bar)
                        check_workers()
                pending = []
            except RuntimeError as error:
                if in_flight is None or not _is_worker_death(error):
                    raise
                # new workers take the videos not started; those in flight are tried once more, in this process
                crashed = [index for index in in_flight.indices() if index not in received]
                pending = [index for index in pending if index not in received and index not in crashed]
                reason = " ".join(str(error).split())
                logger.warning(f"{reason}: retrying {len(crashed)} video(s) it was decoding in this process")
                for index in crashed:
                    self._drop(index, queue, windows)
                    for chunk in _ViewDataset(self.processor, self.plan, videos, [index]):
                        if chunk.error is not None:
                            chunk.error = f"it stopped a decoding worker ({reason}), then: {chunk.error}"
                        yield from self._take(chunk, queue, windows, bar)
        while queue:
            yield from self._finish(self._batch(queue, self.batch_size), windows, bar)

    def _take(
        self, chunk: _Chunk, queue: list[_Chunk], windows: dict[int, list[WindowOutput]], bar: Any
    ) -> Iterator[VideoOutput]:
        """Queue a chunk's views and run every full batch; a failed video is dropped and reported."""
        if chunk.error is not None:
            self._drop(chunk.index, queue, windows)
            bar.update()
            yield VideoOutput(chunk.index, chunk.video, error=chunk.error)
            return
        queue.append(chunk)
        while sum(len(queued.pixel_values) - queued.sent for queued in queue) >= self.batch_size:
            yield from self._finish(self._batch(queue, self.batch_size), windows, bar)

    @staticmethod
    def _drop(index: int, queue: list[_Chunk], windows: dict[int, list[WindowOutput]]) -> None:
        """Forget what was received of a video (its queued chunks, its finished windows)."""
        windows.pop(index, None)
        queue[:] = [chunk for chunk in queue if chunk.index != index]

    def _finish(
        self, chunks: list[_Chunk], windows: dict[int, list[WindowOutput]], bar: Any
    ) -> Iterator[VideoOutput]:
        for chunk in chunks:
            value = torch.cat(chunk.outputs).mean(0).numpy()
            windows.setdefault(chunk.index, []).append(WindowOutput(chunk.start, chunk.end, value))
            if chunk.last:
                parts = windows.pop(chunk.index)
                bar.update()
                yield VideoOutput(
                    chunk.index,
                    chunk.video,
                    value=np.mean([part.value for part in parts], axis=0),
                    duration=parts[-1].end,
                    windows=parts if self.plan.window is not None else None,
                )

    def predict(self, scores: np.ndarray, top_k: int = 5, threshold: float = 0.5) -> dict[str, Any]:
        """What this model predicts from a video's (or window's) scores: see
        [`~timesformer_hf.image_processing_timesformer.predictions_from_scores`]."""
        return predictions_from_scores(scores, self.model.config, top_k=top_k, threshold=threshold)


def _video_list(videos: Sequence[VideoInput] | Any) -> Sequence[VideoInput]:
    """The rows of a `datasets.Dataset`'s video column, read as the workers ask for them (undecoded paths/bytes,
    named as [`~timesformer_hf.data.NamedVideos`] names them), or the sequence as it is."""
    if not hasattr(videos, "column_names"):
        return videos
    from .data import NamedVideos

    if "video" not in videos.column_names:
        raise InputError(f"The data set has no 'video' column (it has {videos.column_names}).")
    if type(videos.features["video"]).__name__ == "Video":
        from datasets import Video

        videos = videos.cast_column("video", Video(decode=False))
    return NamedVideos(videos)
