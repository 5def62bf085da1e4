"""`timesformer-hf explain MODEL VIDEO --output FILE`: where and when the model looks, as a picture or animation."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .errors import CLIError
from .options import add_device_options, add_model_options

HELP = "Show where and when a model looks in a video: a relevance (or attention rollout) map over its frames."
SUFFIXES = (".png", ".gif", ".mp4")
METHODS = {"relevance": "relevance", "rollout": "attention rollout"}
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
        choices=tuple(METHODS),
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


def read_clip(video: str, processor: Any) -> tuple[Any, Any, list[str]]:
    """The clip the processor samples by default: model input `(1, T, 3, H, W)`, the same frames as the model sees
    them for display (`(T, H, W, 3)` in `[0, 1]`), and a caption per frame (its index and time)."""
    from ..video import VideoReader

    with VideoReader(video) as reader:
        indices = processor.sample_indices(reader.metadata.total_num_frames, reader.metadata.fps or None)
        frames, timestamps = reader.read(indices), reader.timestamps
    pixel_values = processor(frames, return_tensors="pt")["pixel_values"]
    shown = processor(frames, do_normalize=False, return_tensors="pt")["pixel_values"][0]
    captions = [f"frame {index} · {timestamps[index]:.2f} s" for index in indices.tolist()]
    return pixel_values, shown.permute(0, 2, 3, 1).clamp(0, 1).numpy(), captions


def run(args: argparse.Namespace) -> None:
    import torch

    from ..explain import attention_rollout, relevance, upsample
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
    pixel_values, frames, captions = read_clip(args.video, processor)
    with torch.inference_mode():
        logits = model(pixel_values.to(model.device)).logits.cpu()
    # the scores `classify` reports; threshold 0 so that a multi-label model shows its best labels too
    outputs = processor.post_process_video_classification(
        logits, model.config, top_k=SHOWN_LABELS, threshold=0.0
    )
    predictions = outputs[0]["predictions"][:SHOWN_LABELS]
    if args.method == "relevance":
        maps = relevance(model, pixel_values, target=target)
        explained = predictions[0]["label"] if target is None else model.config.id2label[target]
        what = f"relevance for {explained}"
    else:
        maps = attention_rollout(model, pixel_values)
        what = "attention rollout"
    maps = upsample(maps, pixel_values.shape[-2:])[0].cpu().numpy()
    scores = "   ".join(f"{p['label']} {p['score']:.1%}" for p in predictions[:SHOWN_LABELS])
    title = f"{Path(args.video).name}: {what}\n{scores}"
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".png":
        plot_explanation(frames, maps, output, title=title, captions=captions)
    else:
        animate_explanation(frames, maps, output, title=title, captions=captions, fps=args.fps)
    print(f"Wrote {output} ({what}; {scores})")
