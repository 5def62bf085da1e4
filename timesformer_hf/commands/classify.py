"""`timesformer-hf classify MODEL VIDEOS...`: top-k labels per video (and per time window with `--window`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .errors import CLIError
from .options import (
    add_inference_options,
    add_model_options,
    add_output_options,
    add_threshold_option,
    add_video_arguments,
    positive_int,
)

HELP = (
    "Classify videos: the top-k labels of each (softmax scores averaged over its views or windows), or those above "
    "--threshold for a multi-label model (sigmoid scores)."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("classify", help=HELP, description=HELP)
    add_model_options(parser)
    add_video_arguments(parser)
    parser.add_argument(
        "--top-k",
        type=positive_int,
        default=5,
        help="Labels per video and window (5); not for multi-label models.",
    )
    add_threshold_option(parser)
    parser.add_argument("--json", action="store_true", help="Print JSON lines (one object per video).")
    parser.add_argument(
        "--output",
        help="Also write the results (resumably) as .jsonl, .csv or .parquet; needed with several processes.",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="With --window: a timeline of the top-k classes' probabilities over the video (several videos: one "
        "file each, FILE-<video name>.png).",
    )
    add_output_options(parser)
    add_inference_options(parser)
    parser.set_defaults(run=run)


def _print(record: dict[str, Any], as_json: bool, multi_label: bool = False) -> None:
    """A video's predictions as JSON or a table; a window's best label (multi-label: every label above the
    threshold, or `-`)."""
    if as_json:
        print(json.dumps(record), flush=True)
        return
    print(record["video"])
    if "predictions" not in record:  # a regression model's value(s)
        print(f"  {_value(record)}")
        for window in record.get("windows", []):
            print(f"    {window['start']:8.2f}-{window['end']:8.2f} s  {_value(window)}")
        sys.stdout.flush()
        return
    for prediction in record["predictions"]:
        print(f"  {prediction['score']:7.2%}  {prediction['label']}")
    if multi_label and not record["predictions"]:
        print("  (no label above the threshold)")
    for window in record.get("windows", []):
        span = f"    {window['start']:8.2f}-{window['end']:8.2f} s"
        if multi_label:
            labels = [f"{p['score']:7.2%}  {p['label']}" for p in window["predictions"]]
            print(f"{span}  {', '.join(labels) or '-'}")
        else:
            best = window["predictions"][0]
            print(f"{span}  {best['score']:7.2%}  {best['label']}")
    sys.stdout.flush()


def _value(result: dict[str, Any]) -> str:
    values = [result["value"]] if "value" in result else result["values"]
    return "  ".join(f"{value:.4g}" for value in values)


def plot_paths(plot: str, videos: list[str]) -> dict[str, Path]:
    """Where each video's timeline goes: `plot` itself for one video, `plot`'s stem plus the video's for several."""
    plot_path = Path(plot)
    if plot_path.suffix.lower() != ".png":
        raise CLIError(f"--plot writes a PNG: give a name ending in .png, got {plot}.")
    if len(videos) == 1:
        return {videos[0]: plot_path}
    stems = [Path(video).stem for video in videos]
    if len(set(stems)) < len(stems):
        twice = sorted({stem for stem in stems if stems.count(stem) > 1})
        raise CLIError(
            f"--plot names each video's timeline after the video, but several videos are called {', '.join(twice)}: "
            "classify them in separate runs."
        )
    return {
        video: plot_path.with_name(f"{plot_path.stem}-{stem}.png")
        for video, stem in zip(videos, stems, strict=True)
    }


def plot_timelines(results: list, paths: dict[str, Path], id2label: dict[int, str], top_k: int) -> None:
    """One timeline PNG per video that could be read."""
    from ..visualization import plot_timeline

    for result in results:
        if result.error is None:
            paths[result.video].parent.mkdir(parents=True, exist_ok=True)
            plot_timeline(result.windows, id2label, paths[result.video], top_k, title=Path(result.video).name)
            print(f"Wrote {paths[result.video]}", file=sys.stderr)


def run(args: argparse.Namespace) -> None:
    from ..configuration_timesformer import is_multi_label_model
    from ..image_processing_timesformer import predictions_from_scores
    from ..results import PREDICTION_SUFFIXES, prediction_records, write_predictions
    from .jobs import (
        Processes,
        load_engine,
        print_failures,
        raise_for_failures,
        run_stored,
        settings,
        video_paths,
    )

    paths = video_paths(args.videos)
    plots = {}
    if args.plot is not None:
        if args.window is None:
            raise CLIError("--plot draws the results of time windows: add --window SECONDS (and --stride).")
        from ..extras import require

        plots = plot_paths(args.plot, paths)
        require("matplotlib", "classify --plot")
    if args.output is None:
        processes = Processes()
        if processes.count > 1:
            raise CLIError(
                "With several processes, give --output: each writes its part and the main one merges them."
            )
        engine = load_engine(args, processes, task="classify", output="probabilities")
        config = engine.model.config

        def predict(value: Any) -> dict[str, Any]:
            return predictions_from_scores(value, config, top_k=args.top_k, threshold=args.threshold)

        from tqdm import tqdm

        results: dict[int, Any] = {}
        next_index = 0
        # printed in input order, each as soon as those before it are done; the progress bar (several videos) is on
        # stderr
        for result in engine.run(paths, progress=len(paths) > 1):
            results[result.index] = result
            while next_index in results:
                ready = results[next_index]
                if ready.error is None:
                    with tqdm.external_write_mode():
                        _print(prediction_records([ready], predict)[0], args.json, engine.multi_label)
                next_index += 1
        ordered = [results[index] for index in sorted(results)]
        print_failures(ordered)
        if plots:
            plot_timelines(ordered, plots, engine.model.config.id2label, args.top_k)
        raise_for_failures(ordered)
        return
    output = Path(args.output)
    if output.suffix not in PREDICTION_SUFFIXES:
        raise CLIError(f"--output must end in {', '.join(PREDICTION_SUFFIXES)}, got {output}.")
    output.parent.mkdir(parents=True, exist_ok=True)
    from ..loading import load_config

    config = load_config(args.model, args.revision)

    def predict(value: Any) -> dict[str, Any]:
        return predictions_from_scores(value, config, top_k=args.top_k, threshold=args.threshold)

    def write(path: Path, results: list) -> None:
        write_predictions(path, prediction_records(results, predict), output.suffix)

    results = run_stored(
        args,
        output,
        paths,
        paths,
        task="classify",
        engine_output="probabilities",
        write=write,
        job_settings=settings(args),
    )
    for result in results or []:
        if result.error is None:
            _print(prediction_records([result], predict)[0], args.json, is_multi_label_model(config))
    if plots and results is not None:
        plot_timelines(results, plots, config.id2label, args.top_k)
    raise_for_failures(results or [])
