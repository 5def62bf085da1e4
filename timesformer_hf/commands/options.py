"""Options shared by the commands, and the one spelling rule: dashes (`--batch-size`), underscores accepted."""

from __future__ import annotations

import argparse
import copy
import difflib
import os
import re
from collections.abc import Sequence
from typing import NoReturn

__all__ = [
    "ArgumentParser",
    "DashedHelpFormatter",
    "SPELLING_NOTE",
    "add_dataset_options",
    "add_device_options",
    "add_inference_options",
    "add_model_options",
    "add_threshold_option",
    "add_video_arguments",
    "dashed",
    "default_num_workers",
    "non_negative_int",
    "positive_int",
    "probability",
    "seconds",
    "unrecognized",
]


def default_num_workers(local_processes: int = 1) -> int:
    """Decoding workers of each of `local_processes` processes on this machine: its share of the CPUs less one, left
    to the model (on 2 cores, 2 workers slowed even a tiny model to 85% of decoding alone), at least 1, at most 8."""
    return min(8, max(1, (os.cpu_count() or 2) // local_processes - 1))


SPELLING_NOTE = "Options are spelled with dashes (--batch-size); underscores (--batch_size) are accepted too."
_UNDERSCORED = re.compile(r"^(--[a-z0-9]+(?:_[a-z0-9]+)+)(=.*)?$")


def dashed(argv: Sequence[str]) -> list[str]:
    """`--batch_size 4` -> `--batch-size 4` (option names only, never values; `--` ends the options)."""
    result, options_ended = [], False
    for token in argv:
        match = None if options_ended else _UNDERSCORED.match(token)
        options_ended |= token == "--"
        result.append(match[1].replace("_", "-") + (match[2] or "") if match else token)
    return result


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` that reads `--some_option` as `--some-option` and says so in `--help`."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("epilog", SPELLING_NOTE)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 (argparse's signature)
        import sys

        return super().parse_known_args(dashed(sys.argv[1:] if args is None else args), namespace)

    def error(self, message: str) -> NoReturn:
        """A usage error in one line, exit status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class DashedHelpFormatter(argparse.HelpFormatter):
    """`--help` for parsers that accept both spellings of each option (`HfArgumentParser`'s): the dashed one
    only, and each default once (not after a help text that already says it, nor for no value)."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        dashed_only = [option for option in action.option_strings if "_" not in option]
        if dashed_only and len(dashed_only) < len(action.option_strings):
            action = copy.copy(action)
            action.option_strings = dashed_only
        return super()._format_action_invocation(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or action.default in (None, False, "", argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def unrecognized(arguments: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """The usage error for `arguments` that `parser` does not know, with the closest of its options:
    `unrecognized arguments: --learnin-rate 1e-4; did you mean --learning-rate?`."""
    message = f"unrecognized arguments: {' '.join(arguments)}"
    options = {  # dashed spellings only
        option for action in parser._actions for option in action.option_strings if option.startswith("--")
    }
    options = sorted(
        option for option in options if "_" not in option or option.replace("_", "-") not in options
    )
    for argument in dashed(arguments):
        if argument.startswith("--"):
            close = difflib.get_close_matches(argument.partition("=")[0], options, n=1, cutoff=0.6)
            return f"{message}; did you mean {close[0]}?" if close else message
    return message


# Longer than any video: a window or stride beyond this is a typo (1e308), not a choice.
MAX_SECONDS = 1e6


def positive_int(text: str) -> int:
    """An option's value that is a whole number of at least 1 (`type=` of argparse)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number of at least 0."""
    return 0 if text.strip() == "0" else positive_int(text)


def seconds(text: str) -> float:
    """A duration in seconds: positive, finite and at most `MAX_SECONDS`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be more than 0 and at most {MAX_SECONDS:g} seconds, got {text}"
        )
    return value


def time_point(text: str) -> float:
    """A time in a video, in seconds from its start: 0 or more, at most `MAX_SECONDS`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SECONDS:g} seconds, got {text}")
    return value


def probability(text: str) -> float:
    """A probability, between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"is a probability, between 0 and 1; got {text}")
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="Repo folder or Hub id of a TimeSformer model.")
    parser.add_argument("--revision", help="Branch, tag or commit of a Hub repo.")


def add_device_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """`--device` and `--dtype`, in the group that `add_inference_options` extends."""
    group = parser.add_argument_group("where and how the model runs")
    group.add_argument(
        "--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."
    )
    group.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="auto: bf16 on a GPU that has it and on a CPU with native bf16 (AMX, AVX512-BF16), about 4x fp32 "
        "there; fp32 elsewhere. fp32 gives the original's numbers exactly; fp16 needs a GPU.",
    )
    return group


def add_inference_options(parser: argparse.ArgumentParser, *, windows: bool = True) -> None:
    """Device, dtype, batching and the views of each video."""
    group = add_device_options(parser)
    group.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "pytorch", "onnxruntime"),
        help="onnxruntime: MODEL is a folder written by `timesformer-hf export`; auto (the default): onnxruntime for "
        "such a folder, else pytorch.",
    )
    group.add_argument(
        "--onnx-file",
        help="With --backend onnxruntime: the graph of the export folder to run, e.g. model_int8.onnx "
        "(default: model.onnx).",
    )
    group.add_argument(
        "--attn-implementation",
        choices=("sdpa", "eager", "flash_attention_2", "flex_attention"),
        help="Attention kernel (default: sdpa).",
    )
    group.add_argument(
        "--batch-size", type=positive_int, default=8, help="Views per forward pass, across videos (8)."
    )
    group.add_argument(
        "--num-workers",
        type=non_negative_int,
        help="Processes decoding and preprocessing ahead of the model (default: the CPU count less one, left to "
        f"the model, at most 8: {default_num_workers()} here; under a launcher, each process's share of the CPUs "
        "less one; 0 decodes in this process).",
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model with its weights frozen (30-45 s for a base model on 2 cores, once per job; "
        "then faster forwards: for long fp32 jobs, see BENCHMARKS.md).",
    )
    views = parser.add_argument_group("views of each video")
    views.add_argument(
        "--num-clips",
        type=positive_int,
        help="Temporal clips per video (default: enough to cover it, at most 10).",
    )
    views.add_argument("--num-crops", type=int, default=1, choices=(1, 3), help="Spatial crops per clip (1).")
    views.add_argument(
        "--frame-sampling", choices=("kinetics", "ssv2", "uniform"), help="Override the processor's sampling."
    )
    if windows:
        views.add_argument(
            "--window",
            type=seconds,
            metavar="SECONDS",
            help="Score one clip per time window over the whole video.",
        )
        views.add_argument(
            "--stride", type=seconds, metavar="SECONDS", help="Seconds between windows (default: --window)."
        )


def add_threshold_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold",
        type=probability,
        default=0.5,
        help="Multi-label models: a label is predicted when its sigmoid probability is at least this (0.5).",
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Options of commands whose results are written resumably (see `timesformer_hf.results`)."""
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing output and start over.")
    parser.add_argument(
        "--save-every",
        type=positive_int,
        default=64,
        metavar="N",
        help="Save progress every N videos (64) or 30 seconds.",
    )


def add_video_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    text = "Video files or folders (searched recursively)" + ("." if required else "; or --dataset-name.")
    parser.add_argument("videos", nargs="+" if required else "*", help=text)


def add_dataset_options(parser: argparse.ArgumentParser, *, labels: bool) -> None:
    """A `datasets` data set in place of files (see `timesformer_hf.data.sources`), as the `train` options name it."""
    group = parser.add_argument_group("a `datasets` data set instead of files")
    group.add_argument(
        "--dataset-name",
        help="A Hub id, or a local path datasets.load_dataset reads (videofolder, Parquet, WebDataset, Arrow), or "
        "a save_to_disk folder.",
    )
    group.add_argument("--dataset-config-name", help="Configuration of the data set.")
    group.add_argument("--split", help="Split of the data set to read (default: its only split).")
    group.add_argument(
        "--video-column-name",
        "--video-column",
        default="video",
        help="Column of the videos (a Video feature, paths or bytes) of a data set or list file (video).",
    )
    if labels:
        group.add_argument(
            "--label-column-name",
            "--label-column",
            default="label",
            help="Column of the labels (a ClassLabel, names or ids) of a data set or list file (label).",
        )
