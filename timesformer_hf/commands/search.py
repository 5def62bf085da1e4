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


def _indexed_query(index: Any, query: str) -> list[int]:
    """The rows of the index's video named `query` (its path as indexed, or a file name only it has)."""
    rows = [i for i, row in enumerate(index.rows) if row["video"] == query]
    if rows:
        return rows
    named = {row["video"] for row in index.rows if Path(row["video"]).name == query}
    if len(named) > 1:
        raise CLIError(
            f"Several videos of the index are named {query}: give one's path, e.g. {sorted(named)[0]}."
        )
    return [i for i, row in enumerate(index.rows) if row["video"] in named]


def _feature_of(path: str, index: Any, args: argparse.Namespace, span: tuple[float, float] | None) -> Any:
    """`path`'s feature (or its `span`'s, one clip as a window's), computed as the index's were (its model, pool,
    views, windows and dtype)."""
    from ..inference import InferenceEngine, load_model
    from ..loading import model_fingerprint

    if model_fingerprint(index.model) != index.model_fingerprint:
        raise CLIError(
            f"The model of the index, {index.model}, is not the one it was built with any more (other weights): "
            "rebuild the index with `timesformer-hf index ... --overwrite`, or query it by the name of an indexed "
            "video."
        )
    settings = index.settings
    dtype = settings.get("dtype") or args.dtype
    model, processor = load_model(index.model, task="features", device=args.device, dtype=dtype)
    if settings.get("frame_sampling"):
        processor.frame_sampling = settings["frame_sampling"]
    views = (
        {"span": span}
        if span is not None
        else {
            "num_clips": settings.get("num_clips"),
            "window": settings.get("window"),
            "stride": settings.get("stride"),
        }
    )
    engine = InferenceEngine(
        model,
        processor,
        output=settings.get("pool") or "cls",
        num_workers=0,
        num_crops=settings.get("num_crops") or 1,
        **views,
    )
    (result,) = list(engine.run([path]))
    if result.error is not None:
        raise CLIError(f"Cannot read the query video {path}: {result.error}")
    return result.value


def _span(args: argparse.Namespace) -> tuple[float, float] | None:
    """`(start, end)` of `--start/--end`, or None for the whole query video."""
    if args.start is None and args.end is None:
        return None
    start, end = args.start or 0.0, args.end if args.end is not None else math.inf
    if end <= start:
        raise CLIError(f"--end ({end:g} s) must come after --start ({start:g} s).")
    return start, end


def _overlaps(hit: dict[str, Any], video: str, span: tuple[float, float] | None) -> bool:
    """Whether a result is (part of) the query itself: its video, or with a span, a moment of it that overlaps."""
    if hit["video"] != video:
        return False
    if span is None or hit["start"] is None:
        return True
    return hit["start"] < span[1] and hit["end"] > span[0]


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from ..search import VideoIndex

    span = _span(args)
    index = VideoIndex.load(args.index)
    rows = _indexed_query(index, args.query)
    video = index.rows[rows[0]]["video"] if rows else args.query
    if rows and span is None:
        query = index.features[rows].mean(0)
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
    hits = index.search(query, top_k=args.top_k + sum(_overlaps(row, video, span) for row in index.rows))[0]
    hits = [hit for hit in hits if not _overlaps(hit, video, span)][: args.top_k]
    for rank, hit in enumerate(hits, 1):
        if args.json:
            print(json.dumps(hit))
        else:
            moment = "" if hit["start"] is None else f"  {hit['start']:.1f}-{hit['end']:.1f} s"
            print(f"{rank:3d}  {hit['score']:.4f}  {hit['video']}{moment}")
