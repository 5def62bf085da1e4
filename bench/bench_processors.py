"""Video preprocessing speed: TimeSformerImageProcessor against transformers' VideoMAEImageProcessorPil.

Both get the same list of 320x240 uint8 RGB frames and the same settings (short side 224, centre crop 224,
bilinear, mean/std 0.45/0.225) and return `pixel_values` as a torch tensor. Runs alternate between the two
processors; the median of each is reported. Usage: `python bench/bench_processors.py [--threads 2]`.
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
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 96])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ours = TimeSformerImageProcessor()
    reference = VideoMAEImageProcessorPil(image_mean=[0.45] * 3, image_std=[0.225] * 3)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} alternating runs")
    print("| frames (320x240) | VideoMAEImageProcessorPil | TimeSformerImageProcessor | speed-up |")
    print("|---:|---:|---:|---:|")
    for num_frames in args.frames:
        video = list(np.random.default_rng(0).integers(0, 256, (num_frames, 240, 320, 3), dtype=np.uint8))
        timings = {"ours": [], "reference": []}
        for processor in (ours, reference):  # warm-up
            processor(video, return_tensors="pt")
        for _ in range(args.repeats):
            for processor, name in [(ours, "ours"), (reference, "reference")]:
                start = time.perf_counter()
                processor(video, return_tensors="pt")
                timings[name].append(time.perf_counter() - start)
        ours_ms = statistics.median(timings["ours"]) * 1e3
        reference_ms = statistics.median(timings["reference"]) * 1e3
        print(f"| {num_frames} | {reference_ms:.1f} ms | {ours_ms:.1f} ms | {reference_ms / ours_ms:.1f}x |")


if __name__ == "__main__":
    main()
