"""`timesformer-hf evaluate MODEL DATA`: top-1/top-5 and per-class accuracy with the original test protocol; mAP and
F1 at a threshold for multi-label models; mean squared and absolute errors and Pearson's r for regression models."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .errors import CLIError
from .options import (
    add_dataset_options,
    add_inference_options,
    add_model_options,
    add_output_options,
    add_threshold_option,
    positive_int,
)

HELP = (
    "Evaluate a model on labelled videos (a class-folder tree, a CSV/JSON list or a `datasets` data set), views' "
    "softmax scores averaged; a multi-label model (sigmoid scores) on a list with several labels per video; a "
    "regression model (MSE, MAE, Pearson's r) on a list of numeric targets."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help=HELP, description=HELP)
    add_model_options(parser)
    parser.add_argument(
        "data",
        nargs="?",
        help="A folder with one sub-folder per class, or a .csv/.json/.jsonl list (multi-label models: a list of "
        "labels per row, in CSV separated by |); or --dataset-name.",
    )
    add_dataset_options(parser, labels=True)
    parser.add_argument(
        "--output-dir",
        default="evaluation",
        help="Where evaluation.json, confusion_matrix.png and probabilities.parquet go (evaluation).",
    )
    parser.add_argument("--predictions", help="Also write per-video predictions (.jsonl, .csv or .parquet).")
    parser.add_argument(
        "--top-k", type=positive_int, default=5, help="Predictions per video in --predictions (5)."
    )
    add_threshold_option(parser)
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

    from ..configuration_timesformer import is_multi_label_model
    from ..data import MissingSplitError, NamedVideos
    from ..files import write_atomically
    from ..image_processing_timesformer import predictions_from_scores
    from ..loading import load_config
    from ..results import PREDICTION_SUFFIXES, prediction_records, write_features, write_predictions
    from .jobs import dataset_settings, raise_for_failures, run_stored, settings, video_source

    if args.predictions and Path(args.predictions).suffix not in PREDICTION_SUFFIXES:
        raise CLIError(f"--predictions must end in {', '.join(PREDICTION_SUFFIXES)}, got {args.predictions}.")
    config = load_config(args.model, args.revision)
    id2label, multi_label = config.id2label, is_multi_label_model(config)
    regression = config.problem_type == "regression"
    label_names = [id2label[i] for i in range(len(id2label))]
    source = video_source(args, args.data)
    labels_of = {} if regression else {"label_names": label_names, "multi_label": multi_label}
    try:
        dataset = source.load(args.split, regression=regression, **labels_of)
    except MissingSplitError:
        raise
    except ValueError as error:
        needs = "numeric targets" if regression else f"the model's label names ({len(label_names)} classes)"
        raise CLIError(f"{error} Evaluate needs {needs}.") from error
    videos = NamedVideos(dataset, args.split)
    labels = (
        np.asarray(dataset["label"])
        if regression
        else _targets(dataset["label"], len(label_names), multi_label)
    )
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
    done_labels = labels[[result.index for result in done]]
    report = _report(probabilities, done_labels, label_names, config.problem_type, args.threshold)
    report["failed"] = [{"video": r.video, "error": r.error} for r in results if r.error is not None]
    report["settings"] = job
    write_atomically(
        output_dir / "evaluation.json", lambda path: path.write_text(json.dumps(report, indent=2))
    )
    title = f"{Path(args.model).name} on {Path(args.data).name if args.data else args.dataset_name}"
    plotted = "" if multi_label or regression else _plot(report, label_names, output_dir, title)
    if args.predictions:
        records = prediction_records(
            done,
            lambda value: predictions_from_scores(value, config, top_k=args.top_k, threshold=args.threshold),
        )
        for record, target in zip(records, done_labels, strict=True):
            if regression:
                record["label"] = float(target)
            elif multi_label:
                record["label"] = [label_names[i] for i in np.flatnonzero(target)]
            else:
                record["label"] = label_names[target]
        suffix = Path(args.predictions).suffix
        write_atomically(args.predictions, lambda path: write_predictions(path, records, suffix))
    if regression:
        shown = "  ".join(f"{name}: {report[name]:.4g}" for name in ("mse", "mae", "pearson_r"))
    else:
        names = (
            ("map_macro", "map_micro", "f1_micro")
            if multi_label
            else [n for n in report if n.startswith("top")]
        )
        shown = "  ".join(f"{name}: {report[name]:.2%}" for name in names)
    print(f"{len(done)} videos  {shown}")
    print(f"Wrote {output_dir / 'evaluation.json'}{plotted}")
    raise_for_failures(results)


def _targets(labels: list, num_labels: int, multi_label: bool) -> Any:
    """Class ids, or for a multi-label model `(videos, num_labels)` multi-hot targets (a folder's videos have one)."""
    import numpy as np

    if not multi_label:
        return np.asarray(labels)
    from ..data import multi_hot

    return np.stack(
        [multi_hot(ids if isinstance(ids, list) else [ids], num_labels).numpy() for ids in labels]
    )


def _report(
    scores: Any, labels: Any, label_names: list[str], problem_type: str | None, threshold: float
) -> dict[str, Any]:
    from ..evaluation import accuracy_report, multi_label_report, regression_report

    if problem_type == "regression":
        return regression_report(scores, labels)
    if problem_type == "multi_label_classification":
        return multi_label_report(scores, labels, label_names, threshold)
    return accuracy_report(scores, labels, label_names)


def _plot(report: dict[str, Any], label_names: list[str], output_dir: Path, title: str) -> str:
    """The confusion-matrix plot; what to add to the `Wrote ...` line."""
    import numpy as np

    from ..evaluation import plot_confusion_matrix

    try:
        plot_confusion_matrix(
            np.asarray(report["confusion_matrix"]),
            label_names,
            output_dir / "confusion_matrix.png",
            title=f"Confusion matrix: {title}",
        )
        return f", {output_dir / 'confusion_matrix.png'}"
    except ImportError as error:
        return f" (no confusion-matrix plot: {error})"
