"""Plot throughput and peak memory against frame count from a `bench/benchmark.py` JSON file.

python bench/benchmark.py --frames 2 4 8 16 --repeats 2 --json bench/frames_sweep.json
python bench/plot.py bench/frames_sweep.json --output bench/throughput_memory_vs_frames.png
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

IMPLEMENTATIONS = {"timesformer_hf": "timesformer_hf (sdpa)", "transformers": "transformers (eager)"}


def plot(results_path: Path, output: Path) -> None:
    """Clips/s, peak memory and speed-up (median of per-round ratios) against frames, one line per implementation."""
    data = json.loads(results_path.read_text())
    rows = sorted(data["results"], key=lambda row: row["config"]["frames"])
    first = rows[0]["config"]
    frames = [row["config"]["frames"] for row in rows]
    figure, (throughput_axis, memory_axis, speedup_axis) = plt.subplots(1, 3, figsize=(15, 4))
    for name, label in IMPLEMENTATIONS.items():
        throughput_axis.plot(frames, [row[name]["clips_per_s"] for row in rows], marker="o", label=label)
        memory_axis.plot(frames, [row[name]["peak_memory_mib"] for row in rows], marker="o", label=label)
    speedup_axis.plot(frames, [row["speedup_median"] for row in rows], marker="o", color="tab:green")
    speedup_axis.axhline(1.0, color="grey", linewidth=1)
    for axis, ylabel in (
        (throughput_axis, "clips/s (median)"),
        (memory_axis, "peak memory of a forward (MiB)"),
        (speedup_axis, "speed-up, timesformer_hf / transformers"),
    ):
        axis.set_xscale("log", base=2)
        axis.set_xticks(frames, [str(f) for f in frames])
        axis.set_xlabel("frames")
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
    throughput_axis.legend()
    memory_axis.legend()
    environment = data["environment"]
    figure.suptitle(
        f"TimeSformer {first['attention']} {first['image_size']}px, batch {first['batch_size']}, {first['dtype']}, "
        f"{environment['device']} ({environment['threads']} threads), torch {environment['torch']}, "
        f"{first['repeats']} alternating rounds"
    )
    figure.tight_layout()
    figure.savefig(output, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="JSON written by bench/benchmark.py with a --frames sweep")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parent / "throughput_memory_vs_frames.png",
        help="PNG to write",
    )
    args = parser.parse_args()
    plot(args.results, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
