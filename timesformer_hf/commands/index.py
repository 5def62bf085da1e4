"""`timesformer-hf index MODEL VIDEOS... --output INDEX_DIR`: a search index over the videos' features (or their
windows'), built with `features` (resumable, the same options) and FAISS; run again with more videos, it adds only
the new ones."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from . import features
from .errors import CLIError, SomeInputsFailed
from .options import positive_int

HELP = "Index videos (or moments of long ones, with --window) by their features, to search them by example."
# what makes two features comparable: a query is computed the same way
SETTINGS = ("pool", "window", "stride", "num_clips", "num_crops", "frame_sampling", "dtype")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("index", help=HELP, description=HELP)
    parser.add_argument("--output", required=True, help="The index folder (new, or one to add videos to).")
    parser.add_argument(
        "--exact-limit",
        type=positive_int,
        default=100_000,
        metavar="N",
        help="Search exhaustively up to N rows; above, an approximate HNSW index whose recall@10 is measured.",
    )
    features.add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    from ..extras import require
    from ..files import check_output_dir
    from ..loading import model_fingerprint
    from ..search import META_FILE, VideoIndex
    from .jobs import Processes, resolve_dtype_option, video_paths

    require("faiss", "timesformer-hf index")
    resolve_dtype_option(args)
    folder = Path(args.output)
    check_output_dir(folder, overwrite=True, written_by=(META_FILE,))  # a folder of something else is refused
    fingerprint = model_fingerprint(args.model, args.revision)
    model = str(Path(args.model).resolve()) if Path(args.model).is_dir() else args.model
    settings = {name: getattr(args, name, None) for name in SETTINGS}
    existing = None if args.overwrite or not (folder / META_FILE).is_file() else VideoIndex.load(folder)
    if existing is not None and existing.model_fingerprint != fingerprint:
        raise CLIError(
            f"{folder} indexes the features of other weights ({existing.model}): index these videos into another "
            "folder, or pass --overwrite to rebuild it from the videos given."
        )
    if existing is not None and existing.settings != settings:
        raise CLIError(
            f"{folder} was built with other feature settings ({existing.settings}): give the same, or pass "
            "--overwrite to rebuild it."
        )
    job = copy.copy(args)
    if existing is not None and args.videos and not args.dataset_name:  # only what the index lacks
        known = {row["video"] for row in existing.rows}
        job.videos = [path for path in video_paths(args.videos) if path not in known]
        if not job.videos:
            print(f"{folder} already holds these videos: nothing to add.")
            return
    # the features, resumably, beside the index; removed once they are in it
    job.output = str(folder.parent / f".{folder.name}.features.parquet")
    failed = None
    try:
        features.run(job)
    except SomeInputsFailed as error:  # the others are indexed
        failed = error
    if not Processes().is_main:  # under `accelerate launch`, the main process builds the index
        return
    table = pq.read_table(job.output).to_pydict()
    vectors = np.asarray(table["feature"], dtype=np.float32)
    rows = [
        {"video": v, "start": s, "end": e}
        for v, s, e in zip(table["video"], table["start"], table["end"], strict=True)
    ]
    if existing is None:
        index = VideoIndex(
            vectors,
            rows,
            model=model,
            model_fingerprint=fingerprint,
            exact_limit=args.exact_limit,
            settings=settings,
        )
        added = len(index)
    else:
        index, added = existing, existing.add(vectors, rows)
    index.save(folder, overwrite=True)
    for leftover in (Path(job.output), Path(f"{job.output}.report.json")):
        leftover.unlink(missing_ok=True)
    kind = "approximate (HNSW)" if index.approximate else "exhaustive"
    print(
        f"Indexed {added} new row(s): {len(index)} in {folder}, {kind} search, recall@10 {index.recall_at_10():.3f} "
        "against exhaustive search"
    )
    if failed is not None:
        raise failed
