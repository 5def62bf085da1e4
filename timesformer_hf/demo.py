"""The end-to-end demo: why divided space-time attention matters, on a laptop CPU in a few minutes.

```bash
python -m timesformer_hf.demo --output-dir demo-output
```

1. Writes a synthetic data set of mp4 files whose classes differ only in motion (direction x speed of a bar); every
   video of every class holds the same set of frames, so only frame order tells the classes apart
   (`timesformer_hf.synthetic`).
2. Trains a tiny divided space-time TimeSformer and a tiny space-only one (frames seen independently) with
   `timesformer-hf train` (`Trainer`), and prints each command, to run it again by hand.
3. Prints their held-out accuracy: divided attention reads the motion, space-only stays at chance.
4. Saves the divided model as a hub-ready repo in `<output-dir>/model` and classifies a held-out video with
   `pipeline("video-classification", model="<output-dir>/model")`.

Everything is written under `--output-dir`; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .synthetic import write_motion_dataset

__all__ = ["main", "run_demo", "train_arguments", "train_model"]

# The two models the demo compares (a subset of `configuration_timesformer.ATTENTION_TYPES`).
DEMO_ATTENTION_TYPES = ("divided_space_time", "space_only")
TINY_MODEL = "image_size=32,patch_size=8,hidden_size=64,num_hidden_layers=2,num_attention_heads=4,intermediate_size=128"


def train_arguments(
    attention_type: str, data_dir: Path, run_dir: Path, repo_dir: Path, epochs: int = 40, seed: int = 0
) -> list[str]:
    """The `timesformer-hf train` arguments of one demo model, trained on the motion data set in `data_dir` (its
    `train` and `validation` folders).

    The model starts from random weights with unit-scale position and time embeddings (`--embedding-init-std 1`):
    every frame of this data set holds the same content in a different place, so with embeddings near zero (ViT's
    0.02) all classes look alike at first and training sits on a long loss plateau. Image pre-training avoids this
    in real use.
    """
    return [
        "--train-dir", str(data_dir / "train"),
        "--validation-dir", str(data_dir / "validation"),
        "--from-scratch",
        "--config-overrides", f"{TINY_MODEL},attention_type={attention_type}",
        "--embedding-init-std", "1.0",
        "--num-frames", "8",
        "--frame-sampling", "uniform",  # each video is one 8-frame cycle of the motion
        "--horizontal-flip", "False",  # a flip turns "right" into "left"
        "--output-dir", str(run_dir),
        "--repo-dir", str(repo_dir),
        "--num-train-epochs", str(epochs),
        "--per-device-train-batch-size", "16",
        "--per-device-eval-batch-size", "32",
        "--learning-rate", "1e-3",
        "--weight-decay", "0.05",
        "--warmup-steps", "0.1",
        "--lr-scheduler-type", "cosine",
        "--logging-steps", "20",
        "--save-strategy", "no",
        "--eval-strategy", "no",
        "--report-to", "none",
        "--dataloader-num-workers", "1",
        "--dataloader-pin-memory", "False",
        "--seed", str(seed),
    ]  # fmt: skip


def train_model(
    attention_type: str,
    data_dir: Path,
    run_dir: Path,
    repo_dir: Path,
    epochs: int = 40,
    seed: int = 0,
) -> tuple[dict[str, float], float]:
    """Train one demo model with `timesformer-hf train` ([`train_arguments`]); return its held-out metrics and wall
    time."""
    from .commands.app import main as command_line

    start = time.perf_counter()
    if command_line(["train", *train_arguments(attention_type, data_dir, run_dir, repo_dir, epochs, seed)]):
        raise RuntimeError(f"Training the {attention_type} demo model failed (the error is above).")
    metrics = json.loads((Path(run_dir) / "eval_results.json").read_text())
    return metrics, time.perf_counter() - start


def run_demo(
    output_dir: str | os.PathLike, *, epochs: int = 40, videos_per_class: int = 48, seed: int = 0
) -> dict:
    """Run the demo; return `{attention_type: {"top1": ..., "seconds": ..., "command": ...}}` (`command`: the
    `timesformer-hf train` command line that trained it) and the pipeline's prediction."""
    from transformers import pipeline

    import timesformer_hf  # noqa: F401  (registers the Auto classes for `pipeline`)

    # one core decodes videos (the data loader worker), the others compute
    torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1)))
    output_dir = Path(output_dir)
    data_dir = output_dir / "data"
    print(f"[1/4] Writing the synthetic motion data set to {data_dir}")
    labels = write_motion_dataset(
        data_dir,
        num_train_per_class=videos_per_class,
        num_eval_per_class=max(videos_per_class // 3, 1),
        seed=seed,
        overwrite=True,  # the demo's own folder: a new run replaces the videos of the last one
    )
    print(f"      classes: {', '.join(labels)} (same frames in every class, only their order differs)")

    results = {}
    for step, attention_type in enumerate(DEMO_ATTENTION_TYPES, start=2):
        run_dir = output_dir / "runs" / attention_type
        repo_dir = output_dir / "model" if attention_type == "divided_space_time" else run_dir / "model"
        command = shlex.join(
            [
                "timesformer-hf",
                "train",
                *train_arguments(attention_type, data_dir, run_dir, repo_dir, epochs, seed),
            ]
        )
        print(f"[{step}/4] Training a tiny {attention_type} TimeSformer on CPU:\n      {command}")
        metrics, seconds = train_model(attention_type, data_dir, run_dir, repo_dir, epochs, seed)
        results[attention_type] = {
            "top1": metrics["eval_top1_accuracy"],
            "seconds": seconds,
            "command": command,
        }

    print("\nHeld-out accuracy on synthetic motion (4 classes, chance 25%):\n")
    print("| model | attention | top-1 | training time |")
    print("|---|---|---|---|")
    for attention_type, result in results.items():
        print(f"| tiny TimeSformer | {attention_type} | {result['top1']:.1%} | {result['seconds']:.0f} s |")

    video = sorted((data_dir / "validation" / labels[-1]).glob("*.mp4"))[0]
    print(f"\n[4/4] pipeline('video-classification', model='{output_dir / 'model'}') on {video}")
    classifier = pipeline("video-classification", model=str(output_dir / "model"))
    predictions = classifier(str(video), top_k=3)
    for prediction in predictions:
        print(f"      {prediction['score']:7.2%}  {prediction['label']}")
    print(f"      true label: {labels[-1]}")
    return {"results": results, "prediction": predictions, "label": labels[-1]}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", default="demo-output", help="Everything is written here.")
    parser.add_argument("--epochs", type=int, default=40, help="Training epochs per model.")
    parser.add_argument("--videos-per-class", type=int, default=48, help="Training videos per class.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run_demo(args.output_dir, epochs=args.epochs, videos_per_class=args.videos_per_class, seed=args.seed)
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s; outputs in {args.output_dir}/")


if __name__ == "__main__":
    main()
