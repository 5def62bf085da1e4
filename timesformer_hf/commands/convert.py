"""`timesformer-hf convert`: original `.pyth` checkpoints into Hugging Face Hub repos."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import report_errors
from .options import ArgumentParser

HELP = "Convert original TimeSformer checkpoints (.pyth) into Hugging Face Hub repos."
USAGE = f"""{HELP}

One checkpoint:

    timesformer-hf convert --checkpoint TimeSformer_divST_8x32_224_K400.pyth \\
        --output-dir converted/timesformer-base-k400 [--labels kinetics400.json] [--push-to-hub me/timesformer-k400]

Every `.pyth` file of a folder (into `--output-dir/<file name>`, with a summary table):

    timesformer-hf convert --checkpoint-dir checkpoints/ --output-dir converted/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="An original .pyth checkpoint.")
    source.add_argument("--checkpoint-dir", help="Convert every .pyth file of this folder.")
    parser.add_argument(
        "--output-dir", required=True, help="Repo folder (a parent folder with --checkpoint-dir)."
    )
    parser.add_argument(
        "--labels", help="Class names: JSON {id: label} or a text file with one label a line."
    )
    parser.add_argument(
        "--model-name", help="Model name for the model card (default: the checkpoint's name)."
    )
    parser.add_argument(
        "--num-attention-heads",
        type=int,
        help="Head count, not stored in the weights (default: hidden size / 64).",
    )
    parser.add_argument(
        "--channel-order",
        choices=("auto", "rgb", "bgr"),
        default="auto",
        help="Channel order of the frames the checkpoint was trained on (auto: BGR for SSv2, else RGB). "
        "BGR models are converted to take RGB frames.",
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing output folder.")
    parser.add_argument(
        "--no-remote-code",
        action="store_true",
        help="Do not write the modelling code and auto_map into the repo.",
    )
    parser.add_argument(
        "--push-to-hub",
        metavar="REPO_ID",
        help="Upload to this Hub repo (with --checkpoint-dir: REPO_ID-<name>).",
    )
    parser.add_argument("--private", action="store_true", help="Create the Hub repo as private.")
    parser.add_argument("--commit-message", help="Message of the upload commit.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert", help=HELP, description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.checkpoint_dir and args.model_name:
        parser.error("--model-name names one model; it cannot be used with --checkpoint-dir.")
    if (args.private or args.commit_message) and not args.push_to_hub:
        parser.error("--private and --commit-message need --push-to-hub.")


def run(args: argparse.Namespace) -> int:
    import logging

    from tqdm import tqdm

    from ..conversion import convert_checkpoint, convert_directory, format_summary

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = dict(
        labels=args.labels,
        num_attention_heads=args.num_attention_heads,
        overwrite=args.overwrite,
        remote_code=not args.no_remote_code,
        push_to_hub=args.push_to_hub,
        private=args.private,
        commit_message=args.commit_message,
        channel_order=args.channel_order,
    )
    if args.checkpoint_dir:
        results = convert_directory(args.checkpoint_dir, args.output_dir, progress=tqdm, **options)
    else:
        results = [
            convert_checkpoint(args.checkpoint, args.output_dir, model_name=args.model_name, **options)
        ]
    print(format_summary(results))
    return 0 if all(result.ok for result in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """`convert/convert_original_checkpoint.py`: the `convert` command on its own."""
    parser = ArgumentParser(
        prog="convert_original_checkpoint.py",
        description=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    check(args, parser)
    return report_errors(run, args, prog=parser.prog)
