"""The `timesformer-hf` command: `train`, `classify`, `features` and `convert`.

```bash
timesformer-hf train --train_dir data/train --validation_dir data/validation --model_name_or_path REPO \\
    --output_dir runs/mine --num_train_epochs 5 --per_device_train_batch_size 8
accelerate launch --num_processes 8 -m timesformer_hf.cli train ...   # same code, several GPUs or nodes
accelerate launch --multi_gpu --num_processes 2 -m timesformer_hf.cli train ...  # 2 CPU processes (gloo)
timesformer-hf classify REPO video.mp4 --top_k 5       # several clips averaged for long videos
timesformer-hf features REPO videos/ --output features.safetensors
timesformer-hf convert --checkpoint TimeSformer_divST_8x32_224_K400.pyth --output-dir timesformer-base-k400
```
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from .data import VIDEO_EXTENSIONS
from .files import write_atomically
from .image_processing_timesformer import average_view_scores
from .modeling_timesformer import TimeSformerForVideoClassification, TimeSformerModel
from .video import VideoDecodeError, probe_video
from .video_processing_timesformer import TimeSformerVideoProcessor

logger = hf_logging.get_logger(__name__)

__all__ = ["classify_video", "default_num_clips", "extract_features", "main", "video_views"]

MAX_AUTO_CLIPS = 10
FEATURE_SUFFIXES = (".npy", ".safetensors")


def default_num_clips(processor: TimeSformerVideoProcessor, total_num_frames: int, fps: float) -> int:
    """Enough Kinetics-style clips to cover the video (at most 10); 1 for the whole-video samplers."""
    if processor.frame_sampling != "kinetics":
        return 1
    clip_span = (
        processor.num_frames * processor.sampling_rate / processor.target_fps * (fps or processor.target_fps)
    )
    return max(1, min(MAX_AUTO_CLIPS, math.ceil(total_num_frames / clip_span)))


def video_views(
    processor: TimeSformerVideoProcessor,
    path: str | Path,
    num_clips: int | None = None,
    num_spatial_crops: int = 1,
) -> torch.Tensor:
    """`(views, frames, 3, height, width)` inputs for one video: `num_clips` uniformly spaced clips (by default
    enough to cover it) times `num_spatial_crops` crops, decoding only the sampled frames."""
    if num_clips is None:
        metadata = probe_video(path)
        num_clips = default_num_clips(processor, metadata.total_num_frames, metadata.fps)
    return processor(
        str(path),
        do_sample_frames=True,
        num_temporal_clips=num_clips,
        num_spatial_crops=num_spatial_crops,
        return_tensors="pt",
    )["pixel_values"]


@torch.no_grad()
def _batched(model: torch.nn.Module, views: torch.Tensor, batch_size: int, output: str) -> torch.Tensor:
    return torch.cat([getattr(model(chunk), output) for chunk in views.split(batch_size)])


def classify_video(
    model: TimeSformerForVideoClassification,
    processor: TimeSformerVideoProcessor,
    path: str | Path,
    *,
    top_k: int = 5,
    num_clips: int | None = None,
    num_spatial_crops: int = 1,
    batch_size: int = 8,
) -> list[tuple[str, float]]:
    """The `top_k` labels of a video and their probabilities, the softmax scores of all views averaged.

    Example:

    ```python
    >>> model = TimeSformerForVideoClassification.from_pretrained("demo-output/model").eval()  # doctest: +SKIP
    >>> processor = TimeSformerVideoProcessor.from_pretrained("demo-output/model")  # doctest: +SKIP
    >>> classify_video(model, processor, "video.mp4", top_k=2)  # doctest: +SKIP
    [('right_3', 0.97), ('right_1', 0.02)]
    ```
    """
    views = video_views(processor, path, num_clips, num_spatial_crops)
    scores = average_view_scores(_batched(model, views, batch_size, "logits"), len(views))[0]
    values, indices = scores.topk(min(top_k, len(scores)))
    return [(model.config.id2label[i], p) for i, p in zip(indices.tolist(), values.tolist(), strict=True)]


def extract_features(
    model: TimeSformerModel,
    processor: TimeSformerVideoProcessor,
    path: str | Path,
    *,
    num_clips: int | None = None,
    num_spatial_crops: int = 1,
    batch_size: int = 8,
) -> np.ndarray:
    """The pooled (final CLS) feature of a video, averaged over its views: `(hidden_size,)` float32."""
    views = video_views(processor, path, num_clips, num_spatial_crops)
    return _batched(model, views, batch_size, "pooler_output").mean(0).float().numpy()


def _video_paths(sources: Sequence[str]) -> list[Path]:
    paths = []
    for source in map(Path, sources):
        if source.is_dir():
            paths += sorted(
                p for p in source.rglob("*") if p.is_file() and p.name.lower().endswith(VIDEO_EXTENSIONS)
            )
        else:
            paths.append(source)
    if not paths:
        raise SystemExit(f"No videos found in {list(sources)}.")
    return paths


def _load(
    model_class: type, repo: str, args: argparse.Namespace
) -> tuple[torch.nn.Module, TimeSformerVideoProcessor]:
    model = model_class.from_pretrained(repo, revision=args.revision).eval().fuse_temporal_projections()
    processor = TimeSformerVideoProcessor.from_pretrained(repo, revision=args.revision)
    if args.frame_sampling:
        processor.frame_sampling = args.frame_sampling
    return model, processor


def _classify(args: argparse.Namespace) -> None:
    model, processor = _load(TimeSformerForVideoClassification, args.model, args)
    results = {}
    options = dict(num_clips=args.num_clips, num_spatial_crops=args.num_crops, batch_size=args.batch_size)
    paths = _video_paths(args.videos)
    for path, top in _for_each_video(
        paths, lambda path: classify_video(model, processor, path, top_k=args.top_k, **options)
    ):
        results[str(path)] = [{"label": label, "score": score} for label, score in top]
        if not args.json:
            print(path)
            for label, score in top:
                print(f"  {score:7.2%}  {label}")
    if args.json:
        print(json.dumps(results, indent=2))


def _for_each_video(paths: Iterable[Path], compute: Callable[[Path], Any]) -> Iterator[tuple[Path, Any]]:
    """`(path, compute(path))` for every video that decodes; the others are logged and skipped."""
    for path in paths:
        try:
            yield path, compute(path)
        except VideoDecodeError as error:
            logger.error(f"Skipping {path}: {error}")


def _features(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    output = Path(args.output)
    if output.suffix not in FEATURE_SUFFIXES:
        raise SystemExit(f"--output must end in .npy or .safetensors, got {output}.")
    written = [output, output.with_suffix(".json")] if output.suffix == ".npy" else [output]
    existing = [str(path) for path in written if path.exists()]
    if existing and not args.overwrite:
        raise SystemExit(f"{', '.join(existing)} already exist(s): pass --overwrite to replace.")
    model, processor = _load(TimeSformerModel, args.model, args)
    names, features = [], []
    options = dict(num_clips=args.num_clips, num_spatial_crops=args.num_crops, batch_size=args.batch_size)
    paths = tqdm(_video_paths(args.videos), desc="Extracting features", unit="video")
    for path, feature in _for_each_video(
        paths, lambda path: extract_features(model, processor, path, **options)
    ):
        names.append(str(path))
        features.append(feature)
    if not features:
        raise SystemExit("No video could be decoded: nothing written.")
    array = np.stack(features)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".safetensors":
        from safetensors.numpy import save_file

        write_atomically(
            output, lambda path: save_file({"features": array}, path, metadata={"videos": json.dumps(names)})
        )
    else:
        write_atomically(output, lambda path: np.save(path, array))
        write_atomically(
            output.with_suffix(".json"), lambda path: path.write_text(json.dumps(names, indent=2))
        )
    print(f"Wrote {array.shape[0]} features of size {array.shape[1]} to {output}")


def _train(argv: Sequence[str]) -> None:
    from transformers import HfArgumentParser, TrainingArguments

    from .training import DataTrainingArguments, ModelArguments, run_training

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        # several processes without GPUs (`accelerate launch --multi_gpu` or `torchrun` on CPUs): DDP over gloo
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")

    parser = HfArgumentParser(
        (ModelArguments, DataTrainingArguments, TrainingArguments),
        prog="timesformer-hf train",
        description="Fine-tune TimeSformer on a video folder or list with transformers.Trainer.",
    )
    if len(argv) == 1 and argv[0].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(json_file=argv[0])
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=list(argv))
    run_training(model_args, data_args, training_args)


def _inference_parser(
    name: str, help: str, subparsers: argparse._SubParsersAction
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help, description=help)
    parser.add_argument("model", help="Repo folder or Hub id of a TimeSformer model.")
    parser.add_argument("videos", nargs="+", help="Video files or folders (searched recursively).")
    parser.add_argument(
        "--num_clips", type=int, default=None, help="Temporal clips per video (default: enough to cover it)."
    )
    parser.add_argument("--num_crops", type=int, default=1, choices=(1, 3), help="Spatial crops per clip.")
    parser.add_argument(
        "--frame_sampling", choices=("kinetics", "ssv2", "uniform"), help="Override the processor's."
    )
    parser.add_argument("--batch_size", type=int, default=8, help="Views per forward pass.")
    parser.add_argument("--revision", default=None, help="Branch, tag or commit of a Hub repo.")
    return parser


CONVERT_USAGE = """Convert original TimeSformer checkpoints (`.pyth`) into Hugging Face Hub repos.

One checkpoint:

    timesformer-hf convert --checkpoint TimeSformer_divST_8x32_224_K400.pyth \
        --output-dir converted/timesformer-base-k400 [--labels kinetics400.json] [--push-to-hub me/timesformer-k400]

Every `.pyth` file of a folder (into `--output-dir/<file name>`, with a summary table):

    timesformer-hf convert --checkpoint-dir checkpoints/ --output-dir converted/
"""


def _convert_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="timesformer-hf convert",
        description=CONVERT_USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    args = parser.parse_args(argv)
    if args.checkpoint_dir and args.model_name:
        parser.error("--model-name names one model; it cannot be used with --checkpoint-dir.")
    if (args.private or args.commit_message) and not args.push_to_hub:
        parser.error("--private and --commit-message need --push-to-hub.")
    return args


def convert_main(argv: Sequence[str] | None = None) -> int:
    """`timesformer-hf convert` (and `convert/convert_original_checkpoint.py`); returns the exit status."""
    from tqdm import tqdm

    from .conversion import CheckpointError, convert_checkpoint, convert_directory, format_summary

    args = _convert_arguments(list(sys.argv[1:] if argv is None else argv))
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
        try:
            results = [
                convert_checkpoint(args.checkpoint, args.output_dir, model_name=args.model_name, **options)
            ]
        except (CheckpointError, FileExistsError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    print(format_summary(results))
    return 0 if all(result.ok for result in results) else 1


def main(argv: Sequence[str] | None = None) -> int | None:
    """Entry point of the `timesformer-hf` console script (also `python -m timesformer_hf.cli`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="timesformer-hf", description=__doc__.split("\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    subparsers.add_parser(
        "train", help="Fine-tune with Trainer (`timesformer-hf train --help` for the options)."
    )
    subparsers.add_parser(
        "convert",
        help="Convert original .pyth checkpoints (`timesformer-hf convert --help` for the options).",
    )
    classify = _inference_parser("classify", "Classify videos and print the top-k labels.", subparsers)
    classify.add_argument("--top_k", type=int, default=5, help="Labels to print per video.")
    classify.add_argument("--json", action="store_true", help="Print the results as JSON.")
    features = _inference_parser("features", "Extract pooled (CLS) features of videos.", subparsers)
    features.add_argument(
        "--output", required=True, help="A .npy (names in a .json beside it) or .safetensors file."
    )
    features.add_argument("--overwrite", action="store_true", help="Replace an existing output file.")
    if argv[:1] == ["train"]:
        return _train(argv[1:])
    if argv[:1] == ["convert"]:
        return convert_main(argv[1:])
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s - %(message)s", level=logging.INFO)
    import timesformer_hf  # noqa: F401  (registers the Auto classes for `from_pretrained`)

    _classify(args) if args.command == "classify" else _features(args)


if __name__ == "__main__":
    sys.exit(main())
