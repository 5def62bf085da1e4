"""`timesformer-hf features MODEL VIDEOS... --output FILE` (or `--dataset-name NAME` for the videos): one feature per
video (or per window), resumable."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .errors import CLIError
from .options import (
    add_dataset_options,
    add_inference_options,
    add_model_options,
    add_output_options,
    add_video_arguments,
)

HELP = (
    "Extract video features (final CLS token or mean patch token) of files or a `datasets` data set, resumably, "
    "into Parquet, .npy or .safetensors."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("features", help=HELP, description=HELP)
    parser.add_argument(
        "--output",
        required=True,
        help="features.parquet (video, start, end, feature), .npy (+ .json) or .safetensors.",
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The model, the videos and how their features are computed (shared with `index`)."""
    add_model_options(parser)
    add_video_arguments(parser, required=False)
    parser.add_argument(
        "--pool", choices=("cls", "mean"), default="cls", help="Final CLS token or mean patch token."
    )
    add_dataset_options(parser, labels=False)
    add_output_options(parser)
    add_inference_options(parser)


def run(args: argparse.Namespace) -> None:
    from ..data import NamedVideos
    from ..files import write_atomically
    from ..results import FEATURE_SUFFIXES, feature_index, write_features
    from .jobs import dataset_settings, raise_for_failures, run_stored, settings, video_paths, video_source

    output = Path(args.output)
    if output.suffix not in FEATURE_SUFFIXES:
        raise CLIError(f"--output must end in {', '.join(FEATURE_SUFFIXES)}, got {output}.")
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.dataset_name or not args.videos:
        videos = NamedVideos(video_source(args, args.videos).load(args.split), args.split)
        names = videos.names
    else:
        videos = names = video_paths(args.videos)

    def write(path: Path, results: list) -> None:
        write_features(path, results, output.suffix)
        if output.suffix == ".npy":
            index = json.dumps(feature_index(results), indent=1)
            write_atomically(output.with_suffix(".json"), lambda json_path: json_path.write_text(index))

    job = settings(args, pool=args.pool, **dataset_settings(args))
    results = run_stored(
        args, output, videos, names, task="features", engine_output=args.pool, write=write, job_settings=job
    )
    if results is not None:
        done = sum(result.error is None for result in results)
        print(f"Wrote the features of {done} of {len(names)} videos to {output}")
        raise_for_failures(results)
