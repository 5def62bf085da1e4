"""`timesformer-hf search INDEX_DIR QUERY`: the videos (or moments) of an index nearest a query video, or nearest a
video already in the index, by cosine similarity of their features."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from .errors import CLIError
from .options import add_device_options, positive_int, time_point

HELP = "Find the videos (or moments) of an index most like a video: a file, or one already in the index."


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("search", help=HELP, description=HELP)
    parser.add_argument("index", help="A folder written by `timesformer-hf index`.")
    parser.add_argument(
        "query", help="A video file, or the name of a video in the index (its path as indexed)."
    )
    parser.add_argument(
        "--start",
        type=time_point,
        metavar="SECONDS",
        help="Search for the part of the query from here (default: 0).",
    )
    parser.add_argument(
        "--end", type=time_point, metavar="SECONDS", help="... up to here (default: its end)."
    )
    parser.add_argument("--top-k", type=positive_int, default=10, help="How many results (10).")
    parser.add_argument("--json", action="store_true", help='JSON lines: {"video", "start", "end", "score"}.')
    add_device_options(parser)
    parser.set_defaults(run=run)


def _span(args: argparse.Namespace) -> tuple[float, float] | None:
    """`(start, end)` of `--start/--end`, or None for the whole query video."""
    if args.start is None and args.end is None:
        return None
    start, end = args.start or 0.0, args.end if args.end is not None else math.inf
    if end <= start:
        raise CLIError(f"--end ({end:g} s) must come after --start ({start:g} s).")
    return start, end


def _feature_of(path: str, index: Any, args: argparse.Namespace, span: tuple[float, float] | None) -> Any:
    """`path`'s feature (or its `span`'s), computed as the index's were."""
    model, processor = index.load_feature_model(device=args.device, dtype=args.dtype)
    (result,) = list(index.query_engine(model, processor, span).run([path]))
    if result.error is not None:
        raise CLIError(f"Cannot read the query video {path}: {result.error}")
    return result.value


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from ..search import VideoIndex

    span = _span(args)
    index = VideoIndex.load(args.index)
    rows = index.rows_of(args.query)
    video = index.rows[rows[0]]["video"] if rows else args.query
    if rows and span is None:
        query = index.vectors(rows).mean(0)
    elif Path(video).is_file():
        query = np.asarray(_feature_of(video, index, args, span), dtype=np.float32)
    elif rows:
        raise CLIError(
            f"--start/--end search for a part of {video}, which has to be read again, but it is not there any more: "
            "give the video file, or search for the whole indexed video."
        )
    else:
        raise CLIError(
            f"{args.query} is neither a video file nor a video of the index {args.index}: give a file, or an indexed "
            "video's path (or file name)."
        )
    for rank, hit in enumerate(index.search_excluding(query, video, span, top_k=args.top_k), 1):
        if args.json:
            print(json.dumps(hit))
        else:
            moment = "" if hit["start"] is None else f"  {hit['start']:.1f}-{hit['end']:.1f} s"
            print(f"{rank:3d}  {hit['score']:.4f}  {hit['video']}{moment}")
