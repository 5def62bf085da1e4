"""Video preprocessing speed: TimeSformerImageProcessor against transformers' VideoMAEImageProcessorPil.

Both get the same list of 320x240 uint8 RGB frames and the same settings (short side 224, centre crop 224,
bilinear, mean/std 0.45/0.225) and return `pixel_values` as a torch tensor. Each round times one call of each
processor, which one goes first alternating; the speed-up is the median of the per-round ratios (load from other
jobs hits both sides of a ratio alike), the times are medians. Usage: `python bench/bench_processors.py [--threads 2]`.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from transformers.models.videomae.image_processing_pil_videomae import VideoMAEImageProcessorPil

from timesformer_hf import TimeSformerImageProcessor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds")
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 96])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ours = TimeSformerImageProcessor()
    reference = VideoMAEImageProcessorPil(image_mean=[0.45] * 3, image_std=[0.225] * 3)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.repeats} alternating rounds")
    print(
        "| frames (320x240) | VideoMAEImageProcessorPil | TimeSformerImageProcessor | speed-up (median of rounds) |"
    )
    print("|---:|---:|---:|---:|")
    for num_frames in args.frames:
        video = list(np.random.default_rng(0).integers(0, 256, (num_frames, 240, 320, 3), dtype=np.uint8))
        timings = {"ours": [], "reference": []}
        for processor in (ours, reference):  # warm-up
            processor(video, return_tensors="pt")
        order = [(ours, "ours"), (reference, "reference")]
        for round_index in range(args.repeats):
            for processor, name in order if round_index % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                processor(video, return_tensors="pt")
                timings[name].append(time.perf_counter() - start)
        ours_ms = statistics.median(timings["ours"]) * 1e3
        reference_ms = statistics.median(timings["reference"]) * 1e3
        speedup = statistics.median(r / o for r, o in zip(timings["reference"], timings["ours"], strict=True))
        print(f"| {num_frames} | {reference_ms:.1f} ms | {ours_ms:.1f} ms | {speedup:.1f}x |")


if __name__ == "__main__":
    main()
