"""`timesformer-hf app MODEL`: a web page to classify, explain and search videos (Gradio), served locally."""

from __future__ import annotations

import argparse

from .options import add_device_options, add_model_options, positive_int, seconds

HELP = (
    "Serve a web app (Gradio) to classify a video, see where the model looks, and search an index by example."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("app", help=HELP, description=HELP)
    add_model_options(parser)
    parser.add_argument(
        "--index", metavar="INDEX_DIR", help="A folder written by `timesformer-hf index`: a Search tab."
    )
    parser.add_argument("--examples", metavar="DIR", help="A folder of videos offered as examples.")
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address to serve on (127.0.0.1; 0.0.0.0: every one)."
    )
    parser.add_argument("--port", type=positive_int, help="Port (default: the first free one from 7860).")
    parser.add_argument("--share", action="store_true", help="Also serve on a public gradio.live link (off).")
    parser.add_argument("--top-k", type=positive_int, default=5, help="Labels shown per video (5).")
    parser.add_argument(
        "--window",
        type=seconds,
        default=8.0,
        help="Videos longer than two windows are also classified per window of this many seconds, with a timeline (8).",
    )
    parser.add_argument(
        "--max-duration", type=seconds, default=600.0, help="Longer uploads are refused, in seconds (600)."
    )
    add_device_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    import os
    from pathlib import Path

    from ..extras import require
    from ..web_app import launch_app
    from .errors import CLIError

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no usage reports to Gradio unless asked for
    require("gradio", "timesformer-hf app")
    for name in ("index", "examples"):
        folder = getattr(args, name)
        if folder is not None and not Path(folder).is_dir():
            raise CLIError(f"No such folder: --{name} {folder}.")
    if args.revision is not None:
        raise CLIError(
            "--revision: the app loads a Hub model at its main branch; drop it, or download the revision."
        )
    launch_app(
        args.model,
        index=args.index,
        examples=args.examples,
        host=args.host,
        port=args.port,
        share=args.share,
        device=args.device,
        dtype=args.dtype,
        top_k=args.top_k,
        window=args.window,
        max_duration=args.max_duration,
    )
