"""`timesformer-hf explain MODEL VIDEO --output FILE`: where and when the model looks, as a picture or animation."""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import CLIError
from .options import add_device_options, add_model_options

HELP = "Show where and when a model looks in a video: a relevance (or attention rollout) map over its frames."
SUFFIXES = (".png", ".gif", ".mp4")
METHODS = ("relevance", "rollout")
SHOWN_LABELS = 3  # top labels in the title
LISTED_LABELS = 10  # labels an unknown --target lists


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("explain", help=HELP, description=HELP)
    add_model_options(parser)
    parser.add_argument("video", help="A video file.")
    parser.add_argument(
        "--output",
        required=True,
        help="The picture: .png (the sampled frames in a grid), .gif or .mp4 (the same, animated).",
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="relevance",
        help="relevance: gradient-weighted attention for one class (default); rollout: attention rollout, the same "
        "for every class.",
    )
    parser.add_argument(
        "--target",
        metavar="LABEL",
        help="The class --method relevance explains (default: the top prediction).",
    )
    parser.add_argument("--fps", type=float, default=2.0, help="Frames a second of a .gif or .mp4 (2).")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing output.")
    add_device_options(parser)
    parser.set_defaults(run=run)


def check(args: argparse.Namespace) -> Path:
    """The output path, once the arguments are known to make sense (before any model is loaded)."""
    output = Path(args.output)
    if output.suffix.lower() not in SUFFIXES:
        raise CLIError(f"--output must end in {', '.join(SUFFIXES)}, got {output}.")
    if output.exists() and not args.overwrite:
        raise CLIError(f"{output} exists: pass --overwrite to replace it.")
    if args.target is not None and args.method != "relevance":
        raise CLIError(
            "--target chooses the class of --method relevance; attention rollout is the same for all."
        )
    if args.fps <= 0:
        raise CLIError(f"--fps must be positive, got {args.fps}.")
    return output


def target_index(label: str, label2id: dict[str, int]) -> int:
    """The class index of `label`; an unknown one is an error listing some of the model's labels."""
    if label not in label2id:
        known = list(label2id)
        listed = ", ".join(known[:LISTED_LABELS]) + (
            f", ... ({len(known)} in all)" if len(known) > LISTED_LABELS else ""
        )
        raise CLIError(f"Unknown --target {label!r}: the model's labels are {listed}.")
    return label2id[label]


def run(args: argparse.Namespace) -> None:
    from ..explain import explain_video
    from ..extras import require
    from ..inference import load_model
    from ..loading import load_config
    from ..visualization import animate_explanation, plot_explanation
    from .jobs import resolve_dtype_option, say_dtype

    output = check(args)
    require("matplotlib", "timesformer-hf explain")
    if args.target is not None:  # checked before the model loads
        label2id = load_config(args.model, args.revision).label2id
        target = target_index(args.target, label2id)
    else:
        target = None
    resolve_dtype_option(args)
    model, processor = load_model(args.model, device=args.device, dtype=args.dtype, revision=args.revision)
    say_dtype(args)
    explanation = explain_video(model, processor, args.video, args.method, target, top_k=SHOWN_LABELS)
    title = f"{Path(args.video).name}: {explanation.description}\n{explanation.summary}"
    output.parent.mkdir(parents=True, exist_ok=True)
    draw = plot_explanation if output.suffix.lower() == ".png" else animate_explanation
    options = {} if output.suffix.lower() == ".png" else {"fps": args.fps}
    draw(explanation.frames, explanation.maps, output, title=title, captions=explanation.captions, **options)
    print(f"Wrote {output} ({explanation.description}; {explanation.summary})")
