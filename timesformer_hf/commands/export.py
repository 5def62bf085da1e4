"""`timesformer-hf export MODEL --output DIR`: an ONNX graph checked against PyTorch, optionally int8 too."""

from __future__ import annotations

import argparse
from typing import Any

from .options import add_model_options

HELP = "Export a model to ONNX (checked against PyTorch), for ONNX Runtime; --quantize int8 for CPUs."


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help=HELP, description=HELP)
    add_model_options(parser)
    parser.add_argument("--output", required=True, help="The folder to write (model.onnx, configs, report).")
    parser.add_argument(
        "--task",
        choices=("classify", "features"),
        help="classify: output logits; features: the backbone's last_hidden_state and pooler_output (default: "
        "what the repo holds).",
    )
    parser.add_argument("--dynamic-frames", action="store_true", help="Make the frame count a dynamic axis.")
    parser.add_argument("--dynamic-size", action="store_true", help="Make the height and width dynamic axes.")
    parser.add_argument(
        "--dtype", choices=("fp32", "fp16"), default="fp32", help="fp16: for GPU runtimes (fp32 in and out)."
    )
    parser.add_argument(
        "--quantize",
        choices=("int8",),
        help="Also write model_int8.onnx: dynamic int8 quantization for CPUs.",
    )
    parser.add_argument(
        "--check-videos",
        nargs="+",
        default=(),
        metavar="VIDEO",
        help="Videos (files or folders) on which to measure the int8 model's agreement with PyTorch.",
    )
    parser.add_argument("--opset", type=int, help="ONNX opset (default: 18; 13 at least).")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing output folder.")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="Upload the export folder to this Hub repo.")
    parser.add_argument(
        "--private", action="store_true", help="With --push-to-hub: create the repo as private."
    )
    parser.set_defaults(run=run)


def summary(report: dict[str, Any], output: str) -> list[str]:
    """What the export did, in a few lines: axes, the self-check, the int8 agreement."""
    shape = ", ".join(map(str, report["inputs"]["pixel_values"]))
    fixed = report["fixed_axes"]
    lines = [
        f"Wrote {output}/model.onnx ({report['dtype']}, opset {report['opset']}, {report['exporter']} exporter)"
    ]
    lines.append(f"  input pixel_values ({shape}); outputs {', '.join(report['outputs'])}")
    if fixed:
        flags = [
            flag
            for flag, axes in (("--dynamic-frames", "frames"), ("--dynamic-size", "height"))
            if axes in fixed
        ]
        fixed_text = ", ".join(f"{axis} {size}" for axis, size in fixed.items())
        lines.append(f"  fixed axes: {fixed_text} (dynamic with {' '.join(flags)})")
    check = report["check"]
    relative = " x the largest output" if check["relative"] else ""
    lines.append(
        f"  check against PyTorch on {len(check['inputs'])} random inputs: max abs difference "
        f"{check['max_abs_diff']:.2g} (tolerance {check['tolerance']:g}{relative})"
    )
    for where, values in report.get("int8", {}).items():
        if where == "file":
            lines.append(f"Wrote {output}/{values} (dynamic int8), agreement with PyTorch fp32:")
            continue
        top1 = f"; top-1 agreement {values['top1_agreement']:.1%}" if "top1_agreement" in values else ""
        lines.append(
            f"  {where.replace('_', ' ')} ({values['count']} clips): cosine similarity mean "
            f"{values['cosine_similarity_mean']:.4f}, min {values['cosine_similarity_min']:.4f}{top1}"
        )
    return lines


def run(args: argparse.Namespace) -> None:
    from ..onnx import DEFAULT_OPSET, REPORT_FILE, export_onnx
    from .jobs import video_paths

    videos = video_paths(args.check_videos) if args.check_videos else ()
    report = export_onnx(
        args.model,
        args.output,
        task=args.task,
        dynamic_frames=args.dynamic_frames,
        dynamic_size=args.dynamic_size,
        dtype=args.dtype,
        quantize=args.quantize,
        opset=DEFAULT_OPSET if args.opset is None else args.opset,
        videos=videos,
        overwrite=args.overwrite,
        revision=args.revision,
        push_to_hub=args.push_to_hub,
        private=args.private,
        progress=True,
    )
    print("\n".join(summary(report, args.output)))
    print(f"Report: {args.output}/{REPORT_FILE}; model card: {args.output}/README.md")
    if args.push_to_hub:
        print(f"Pushed to https://huggingface.co/{args.push_to_hub}")
