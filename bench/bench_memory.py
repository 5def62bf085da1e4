"""Peak memory of `timesformer-hf classify` against the frame size of the video: 320x240, 4K and 8192x8192.

Each size is one short synthetic H.264 video (16 frames, a moving gradient), classified by a small random model (the
model's own memory is the same for every size) in a fresh process, `--num-workers 0`, so that the process's peak
resident set (`/usr/bin/time`'s maximum RSS) holds the decoding and the preprocessing of the video.

    python bench/bench_memory.py            # the table of BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SIZES = {"320x240": (240, 320), "4K (3840x2160)": (2160, 3840), "8192x8192": (8192, 8192)}


def write_gradient_video(path: Path, height: int, width: int, num_frames: int = 16) -> None:
    from timesformer_hf.synthetic import write_video

    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, ..., 0] = (x + 8 * t) % 256
        frames[t, ..., 1] = y
        frames[t, ..., 2] = 128
    write_video(path, frames, fps=8)


def write_model(folder: Path) -> None:
    from timesformer_hf import TimeSformerConfig, TimeSformerForVideoClassification, TimeSformerVideoProcessor
    from timesformer_hf.hub import save_repo

    config = TimeSformerConfig(
        hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768, num_labels=4
    )
    save_repo(TimeSformerForVideoClassification(config).eval(), [TimeSformerVideoProcessor()], folder)


def peak_rss_mib(command: list[str]) -> float:
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=True,
    )
    return int(result.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_model(root / "model")
        figures = {}
        for name, (height, width) in SIZES.items():
            video = root / f"{height}x{width}.mp4"
            write_gradient_video(video, height, width)
            command = [
                sys.executable,
                "-m",
                "timesformer_hf.cli",
                "classify",
                str(root / "model"),
                str(video),
            ]
            figures[name] = {
                "file_mib": video.stat().st_size / 2**20,
                "peak_rss_mib": peak_rss_mib([*command, "--num-workers", "0", "--json"]),
            }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    smallest = figures["320x240"]["peak_rss_mib"]
    print("| frame size | file | peak RSS | over 320x240 |\n|---|---|---|---|")
    for name, row in figures.items():
        extra = row["peak_rss_mib"] - smallest
        print(f"| {name} | {row['file_mib']:.1f} MiB | {row['peak_rss_mib']:.0f} MiB | +{extra:.0f} MiB |")


if __name__ == "__main__":
    main()
