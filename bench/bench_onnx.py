"""Benchmark ONNX Runtime (fp32 and dynamic int8) against `transformers`' TimeSformer in PyTorch eager fp32.

One run, one process: a base 8x224 divided model (the `TimeSformerConfig` defaults, 400 labels, random weights) is
built with `bench/benchmark.py`'s `build_model`, its weights are loaded into `transformers.TimesformerForVideoClassification`,
it is exported with `timesformer_hf.onnx.export_onnx(..., quantize="int8")` (the graph work, the self-check and the
int8 agreement included), and the three runtimes are timed in interleaved rounds at batch 1 (the order rotates
every round, so a busy machine slows all alike). Ratios are `transformers`' latency over each runtime's, per round,
then the median. The int8 agreement is the export's: int8 ONNX Runtime against PyTorch fp32 on its self-check
inputs (random clips), cosine similarity of the logits and top-1 agreement.

    python bench/bench_onnx.py                      # base 8x224, batch 1, 2 threads, 5 rounds
    python bench/bench_onnx.py --threads 4 --repeats 9 --json bench/onnx.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from benchmark import base_config, build_model, environment, make_input, percentile

from timesformer_hf.onnx import INT8_FILE, MODEL_FILE, export_onnx

TARGETS = {"onnxruntime fp32": 1.3, "onnxruntime int8": 2.5}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads", type=int, default=2, help="intra-op threads of PyTorch and ONNX Runtime (2)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forwards of each runtime first (1)")
    parser.add_argument("--num-hidden-layers", type=int, default=12, help="fewer layers for a quick try (12)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def onnx_forward(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda pixel_values: session.run(None, {"pixel_values": pixel_values})[0]


def time_rounds(
    forwards: dict[str, Callable[[], object]], warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Latencies of each forward in `repeats` rounds, the order rotated every round."""
    for forward in forwards.values():
        for _ in range(warmup):
            forward()
    latencies: dict[str, list[float]] = {name: [] for name in forwards}
    names = list(forwards)
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            forwards[name]()
            latencies[name].append(time.perf_counter() - start)
    return latencies


def markdown_table(latencies: dict[str, list[float]], report: dict) -> str:
    reference = latencies["transformers eager fp32"]
    int8 = report["int8"]["self_check"]
    lines = [
        "| runtime | median latency (s) | p90 (s) | clips/s | vs `transformers` eager fp32 (median of rounds) "
        "| target | agreement with PyTorch fp32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, values in latencies.items():
        ratio = statistics.median(r / v for r, v in zip(reference, values, strict=True))
        target = TARGETS.get(name)
        met = "" if target is None else f">= {target}x ({'met' if ratio >= target else 'not met'})"
        if name == "onnxruntime fp32":
            agreement = f"max abs logit diff {report['check']['max_abs_diff']:.1e}"
        elif name == "onnxruntime int8":
            agreement = (
                f"cosine {int8['cosine_similarity_mean']:.4f} (min {int8['cosine_similarity_min']:.4f}), "
                f"top-1 {int8['top1_agreement']:.0%} of {int8['count']} clips"
            )
        else:
            agreement = "reference"
        median = statistics.median(values)
        lines.append(
            f"| {name} | {median:.3f} | {percentile(values, 0.9):.3f} | {1 / median:.2f} | {ratio:.2f}x | "
            f"{met} | {agreement} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config = base_config(args)
    ours = build_model("timesformer_hf", config)
    reference = build_model("transformers", config, ours.state_dict())
    pixel_values = make_input(config)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        report = export_onnx(ours, Path(folder) / "onnx", quantize="int8")
        export_s = time.perf_counter() - start
        print(f"[bench] exported, checked and quantized in {export_s:.0f} s", file=sys.stderr, flush=True)
        del ours
        fp32 = onnx_forward(Path(folder) / "onnx" / MODEL_FILE, args.threads)
        int8 = onnx_forward(Path(folder) / "onnx" / INT8_FILE, args.threads)
    array = pixel_values.numpy()
    with torch.inference_mode():
        latencies = time_rounds(
            {
                "transformers eager fp32": lambda: reference(pixel_values=pixel_values).logits,
                "onnxruntime fp32": lambda: fp32(array),
                "onnxruntime int8": lambda: int8(array),
            },
            args.warmup,
            args.repeats,
        )
    info = environment(args.threads, "cpu")
    print(
        f"base 8x224 divided, batch 1, {args.threads} threads, {args.repeats} rounds; {info['processor']}, "
        f"torch {info['torch']}, transformers {info['transformers']}, export {export_s:.0f} s ({report['exporter']})"
    )
    print()
    print(markdown_table(latencies, report))
    if args.json:
        args.json.write_text(
            json.dumps({"environment": info, "latencies_s": latencies, "export": report}, indent=2)
        )


if __name__ == "__main__":
    main()
