"""`timesformer-hf train`: fine-tune with `transformers.Trainer` (its own `HfArgumentParser` options)."""

from __future__ import annotations

import argparse
import os
from typing import NoReturn

HELP = "Fine-tune with Trainer on a video folder or list (`timesformer-hf train --help` for the options)."
EXAMPLE = (
    "timesformer-hf train --model-name-or-path REPO --train-dir data/train --validation-dir data/val "
    "--output-dir runs/mine --num-train-epochs 5"
)

USAGE = (
    "timesformer-hf train (--train-dir DIR | --train-file FILE | --dataset-name NAME) --output-dir DIR\n"
    "       (--model-name-or-path REPO | --init-from-image VIT | --from-scratch) [options]"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help=HELP, add_help=False)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int | None:
    from transformers import HfArgumentParser, TrainingArguments

    from ..errors import InputError
    from ..training import DataTrainingArguments, ModelArguments, run_training
    from .errors import CLIError, UsageError
    from .options import SPELLING_NOTE, DashedHelpFormatter, unrecognized

    class TrainParser(HfArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise UsageError(f"{message} (see timesformer-hf train --help)")

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch

        if not torch.cuda.is_available():
            # several processes without GPUs (`accelerate launch --multi_gpu` or `torchrun` on CPUs): DDP over gloo
            os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    if not args.argv:
        raise CLIError(
            f"train needs at least --train-dir (or --train-file) and --output-dir, e.g.: {EXAMPLE}"
        )
    parser = TrainParser(
        (ModelArguments, DataTrainingArguments, TrainingArguments),
        prog="timesformer-hf train",
        usage=USAGE,
        description=f"Fine-tune TimeSformer on a video folder or list with transformers.Trainer. Example: {EXAMPLE}",
        epilog=SPELLING_NOTE,
        formatter_class=DashedHelpFormatter,
    )
    try:
        if len(args.argv) == 1 and args.argv[0].endswith(".json"):
            model_args, data_args, training_args = parser.parse_json_file(json_file=args.argv[0])
        else:
            argv = list(args.argv)
            known, unknown = parser.parse_known_args(argv)  # usage errors before the options' own checks
            if unknown:
                parser.error(unrecognized(unknown, parser))
            if known.bf16 and not known.use_cpu and not _has_accelerator():
                argv += [
                    "--use-cpu",
                    "True",
                ]  # bf16 on a CPU (native on AMX / AVX512-BF16 ones): Trainer asks for it
            model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except SystemExit as stop:  # --help
        return stop.code if isinstance(stop.code, int) else 0
    except InputError:
        raise
    except ValueError as error:  # unknown options, or values TrainingArguments refuses
        raise UsageError(f"{' '.join(str(error).split())} (see timesformer-hf train --help)") from error
    run_training(model_args, data_args, training_args)


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available() or torch.xpu.is_available()
