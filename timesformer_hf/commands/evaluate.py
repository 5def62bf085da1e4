"""`timesformer-hf evaluate MODEL DATA`: top-1/top-5 and per-class accuracy with the original test protocol."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .errors import CLIError
from .options import add_dataset_options, add_inference_options, add_model_options, add_output_options

HELP = (
    "Evaluate a model on labelled videos (a class-folder tree, a CSV/JSON list or a `datasets` data set), views' "
    "softmax scores averaged."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help=HELP, description=HELP)
    add_model_options(parser)
    parser.add_argument(
        "data",
        nargs="?",
        help="A folder with one sub-folder per class, or a .csv/.json/.jsonl list; or --dataset-name.",
    )
    add_dataset_options(parser, labels=True)
    parser.add_argument(
        "--output-dir",
        default="evaluation",
        help="Where evaluation.json, confusion_matrix.png and probabilities.parquet go (evaluation).",
    )
    parser.add_argument("--predictions", help="Also write per-video predictions (.jsonl, .csv or .parquet).")
    parser.add_argument("--top-k", type=int, default=5, help="Predictions per video in --predictions (5).")
    add_output_options(parser)
    add_inference_options(parser, windows=False)
    parser.set_defaults(run=run)


def read_probabilities(path: Path, videos: list[str]) -> list:
    """The results of a finished run back from its `probabilities.parquet`."""
    import numpy as np
    import pyarrow.parquet as pq

    from ..inference import VideoOutput

    table = pq.read_table(path).to_pydict()
    position = {video: index for index, video in enumerate(videos)}
    return [
        VideoOutput(position[video], video, np.asarray(value, dtype=np.float32), end)
        for video, end, value in zip(table["video"], table["end"], table["feature"], strict=True)
    ]


def run(args: argparse.Namespace) -> None:
    import numpy as np
    from transformers import AutoConfig

    from .. import registration
    from ..evaluation import accuracy_report, plot_confusion_matrix
    from ..files import write_atomically
    from ..inference import top_predictions
    from ..results import PREDICTION_SUFFIXES, prediction_records, write_features, write_predictions
    from ..sources import NamedVideos
    from .jobs import dataset_settings, run_stored, settings, video_source

    if args.predictions and Path(args.predictions).suffix not in PREDICTION_SUFFIXES:
        raise CLIError(f"--predictions must end in {', '.join(PREDICTION_SUFFIXES)}, got {args.predictions}.")
    registration.register_auto_classes()
    id2label = AutoConfig.from_pretrained(args.model, revision=args.revision).id2label
    label_names = [id2label[i] for i in range(len(id2label))]
    source = video_source(args, args.data)
    try:
        dataset = source.load(args.split, label_names=label_names)
    except ValueError as error:
        raise CLIError(
            f"{error} Evaluate needs the model's label names ({len(label_names)} classes)."
        ) from error
    videos, labels = NamedVideos(dataset, args.split), np.asarray(dataset["label"])
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    store_output = output_dir / "probabilities.parquet"
    files = {"data": str(Path(args.data).resolve())} if args.data else {}
    job = settings(args, **files, **dataset_settings(args))

    def write(path: Path, results: list) -> None:
        write_features(path, results, ".parquet")

    results = run_stored(
        args,
        store_output,
        videos,
        videos.names,
        task="classify",
        engine_output="probabilities",
        write=write,
        job_settings=job,
    )
    if results is None:
        from .jobs import Processes

        if not Processes().is_main or not store_output.exists():
            return
        results = read_probabilities(store_output, videos.names)  # complete from an earlier run: report again
    done = [result for result in results if result.error is None]
    if not done:
        raise CLIError("None of the videos could be read: nothing to evaluate.")
    probabilities = np.stack([result.value for result in done])
    report = accuracy_report(probabilities, labels[[result.index for result in done]], label_names)
    report["failed"] = [{"video": r.video, "error": r.error} for r in results if r.error is not None]
    report["settings"] = job
    write_atomically(
        output_dir / "evaluation.json", lambda path: path.write_text(json.dumps(report, indent=2))
    )
    try:
        plot_confusion_matrix(
            np.asarray(report["confusion_matrix"]), label_names, output_dir / "confusion_matrix.png"
        )
        plotted = f", {output_dir / 'confusion_matrix.png'}"
    except ImportError as error:
        plotted = f" (no confusion-matrix plot: {error})"
    if args.predictions:
        records = prediction_records(done, lambda value: top_predictions(value, id2label, args.top_k))
        for record, result in zip(records, done, strict=True):
            record["label"] = label_names[labels[result.index]]
        suffix = Path(args.predictions).suffix
        write_atomically(args.predictions, lambda path: write_predictions(path, records, suffix))
    accuracies = "  ".join(f"{name}: {value:.2%}" for name, value in report.items() if name.startswith("top"))
    print(f"{len(done)} videos  {accuracies}")
    print(f"Wrote {output_dir / 'evaluation.json'}{plotted}")
