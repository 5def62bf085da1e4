"""The `timesformer-hf` command: a thin dispatcher over one module per command.

```bash
timesformer-hf classify REPO video.mp4 --top-k 5
timesformer-hf classify REPO long.mp4 --window 2 --stride 2 --json
timesformer-hf features REPO videos/ --output features.parquet --device cuda --dtype bf16 --num-workers 8
timesformer-hf evaluate REPO data/val --num-clips 3 --num-crops 3 --predictions predictions.csv
timesformer-hf explain REPO video.mp4 --output explain.png --method relevance
timesformer-hf train --train-dir data/train --validation-dir data/val --output-dir runs/mine
timesformer-hf convert --checkpoint TimeSformer_divST_8x32_224_K400.pyth --output-dir timesformer-base-k400
timesformer-hf export REPO --output REPO-onnx --quantize int8
timesformer-hf classify REPO-onnx video.mp4 --backend onnxruntime --onnx-file model_int8.onnx
accelerate launch --num_processes 8 -m timesformer_hf.cli features REPO videos/ --output features.parquet
timesformer-hf index REPO videos/ --output videos-index && timesformer-hf search videos-index query.mp4 --top-k 5
timesformer-hf app REPO --index videos-index --examples videos/
timesformer-hf space me/timesformer-motion motion-space --examples videos/ --push me/motion-demo
```
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import classify, convert, evaluate, explain, export, features, index, search, space, train, web_app
from .errors import report_errors
from .options import ArgumentParser, unrecognized

COMMANDS = (classify, features, evaluate, explain, index, search, web_app, space, train, convert, export)


def build_parser() -> ArgumentParser:
    from .. import __version__

    parser = ArgumentParser(
        prog="timesformer-hf", description="TimeSformer video models for the Hugging Face ecosystem."
    )
    parser.add_argument("--version", action="version", version=f"timesformer-hf {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="Show the traceback of an error (also TIMESFORMER_HF_DEBUG=1)."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    for command_parser in subparsers.choices.values():  # a command's usage errors come with its own usage
        command_parser.set_defaults(command_parser=command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `timesformer-hf` console script (also `python -m timesformer_hf.cli`); returns the exit
    status (see `timesformer_hf.commands.errors`). An error prints one line (`--debug` shows the traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    command_at = next((i for i, token in enumerate(argv) if not token.startswith("-")), len(argv))
    try:
        if argv[command_at : command_at + 1] == [
            "train"
        ]:  # Trainer's own parser reads the rest, both spellings
            args = parser.parse_args(argv[: command_at + 1])
            args.argv = argv[command_at + 1 :]
        else:
            args, unknown = parser.parse_known_args(argv)
            if unknown:
                args.command_parser.error(unrecognized(unknown, args.command_parser))
        if args.command == "convert":
            convert.check(args, parser)
    except SystemExit as stop:  # --help, --version, or a usage error (its line is printed)
        return stop.code if isinstance(stop.code, int) else 0
    return report_errors(args.run, args, debug=args.debug)
