"""Benchmark ONNX Runtime (fp32 and dynamic int8), and this package in bf16, against `transformers`' TimeSformer in
PyTorch eager fp32.

A base 8x224 divided model (the `TimeSformerConfig` defaults, 400 labels, random weights) is built with
`bench/benchmark.py`'s `build_model` and exported once with `timesformer_hf.onnx.export_onnx(..., quantize="int8")`
(the graph work, the self-check and the int8 agreement included). Then `--processes` fresh processes each load its
weights into `transformers.TimesformerForVideoClassification` and the two ONNX graphs into ONNX Runtime, and time
the three in interleaved rounds at batch 1: the order rotates every round, so a busy machine slows all alike, and a
pause before each forward lets the previous runtime's threads stop spinning. Ratios are `transformers`' latency over
each runtime's, per round, then the median over the rounds of all processes; the range is that of the processes'
medians. The minor page faults of each forward are counted too: PyTorch's allocator hands large blocks back to the
OS and faults them in again on the next forward, which costs a varying share of its time; `--keep-memory` makes
glibc keep freed memory (`MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647`) in the timing processes, which removes
that cost. The int8 agreement is the export's: int8 ONNX Runtime against PyTorch fp32 on its self-check inputs
(random clips), cosine similarity of the logits and top-1 agreement.

    python bench/bench_onnx.py                      # base 8x224, batch 1, 2 threads, 3 processes x 5 rounds
    python bench/bench_onnx.py --keep-memory --processes 5 --json bench/results/onnx-keep-memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from models import base_config, build_model, environment, make_input, percentile

from timesformer_hf.onnx import INT8_FILE, MODEL_FILE, export_onnx

TARGETS = {"onnxruntime fp32": 1.3, "onnxruntime int8": 2.5}
REFERENCE = "transformers eager fp32"
# glibc keeping freed memory, as the README's Performance section suggests: no mmap'd blocks, no trimming
KEEP_MEMORY = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "2147483647"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads", type=int, default=2, help="intra-op threads of PyTorch and ONNX Runtime (2)"
    )
    parser.add_argument("--processes", type=int, default=3, help="fresh timing processes (3)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds in each process (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forwards of each runtime first (1)")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds of rest before each forward (0.5)")
    parser.add_argument(
        "--keep-memory", action="store_true", help="glibc keeps freed memory in the timing processes"
    )
    parser.add_argument("--num-hidden-layers", type=int, default=12, help="fewer layers for a quick try (12)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--time-folder", type=Path, help=argparse.SUPPRESS)  # a timing process's export
    return parser.parse_args(argv)


def session(model: Path | bytes, threads: int, profile_prefix: Path | None = None) -> Any:
    """An ONNX Runtime CPU session of `model` (a path or serialized bytes) on `threads` intra-op threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    if profile_prefix is not None:
        options.enable_profiling, options.profile_file_prefix = True, str(profile_prefix)
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def onnx_forward(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    session_ = session(path, threads)
    return lambda pixel_values: session_.run(None, {"pixel_values": pixel_values})[0]


def time_rounds(
    forwards: dict[str, Callable[[], object]], warmup: int, repeats: int, pause: float
) -> dict[str, dict[str, list[float]]]:
    """Latency and minor page faults of each forward in `repeats` rounds, the order rotated every round, `pause`
    seconds of rest before each forward."""
    for forward in forwards.values():
        for _ in range(warmup):
            forward()
    results: dict[str, dict[str, list[float]]] = {name: {"s": [], "faults": []} for name in forwards}
    names = list(forwards)
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(pause)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            forwards[name]()
            results[name]["s"].append(time.perf_counter() - start)
            results[name]["faults"].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
    return results


def time_export(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """One timing process: `transformers` with the benchmark's weights, and the export in `args.time_folder`."""
    torch.set_num_threads(args.threads)
    config = base_config(args)
    ours = build_model("timesformer_hf", config)
    reference = build_model("transformers", config, ours.state_dict())
    bf16 = ours.to(
        torch.bfloat16
    )  # the PyTorch alternative to int8 on CPUs with native bf16 (`--dtype auto`)
    pixel_values = make_input(config)
    array, pixel_values_bf16 = pixel_values.numpy(), pixel_values.to(torch.bfloat16)
    fp32 = onnx_forward(args.time_folder / MODEL_FILE, args.threads)
    int8 = onnx_forward(args.time_folder / INT8_FILE, args.threads)
    with torch.inference_mode():
        return time_rounds(
            {
                REFERENCE: lambda: reference(pixel_values=pixel_values).logits,
                "onnxruntime fp32": lambda: fp32(array),
                "onnxruntime int8": lambda: int8(array),
                "timesformer_hf bf16": lambda: bf16(pixel_values=pixel_values_bf16).logits,
            },
            args.warmup,
            args.repeats,
            args.pause,
        )


def matmul_floor(path: Path, pixel_values: np.ndarray, threads: int, repeats: int = 5) -> dict[str, float]:
    """The graph's linear layers (its MatMuls by a 2-D weight, as one forward of `pixel_values` runs them), each
    timed alone as one ONNX Runtime MatMul of its shapes (median of `repeats`), summed: a floor under any fp32 graph
    with these layers on this CPU."""
    from onnx import TensorProto, helper, numpy_helper

    profiled = session(path, threads, profile_prefix=path.parent / "profile")
    profiled.run(None, {"pixel_values": pixel_values})
    events = json.loads(Path(profiled.end_profiling()).read_text())
    shapes: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    for event in events:
        arguments = event.get("args", {})
        # a MatMul by a constant weight (prepacked) lists only its activation among its inputs
        if arguments.get("op_name") == "MatMul" and len(arguments.get("input_type_shape", ())) == 1:
            (a,), (y,) = (
                [tuple(*shape.values()) for shape in arguments[key]]
                for key in ("input_type_shape", "output_type_shape")
            )
            b = (a[-1], y[-1])
            shapes[a, b] = shapes.get((a, b), 0) + 1
    if not shapes:
        raise RuntimeError(
            "No MatMul by a prepacked weight in the profile: this ONNX Runtime profiles differently."
        )
    total, macs = 0.0, 0
    for (a, b), count in shapes.items():
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            "matmul",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(a))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*a[:-1], b[1]])],
            [numpy_helper.from_array(np.random.default_rng(0).standard_normal(b, dtype=np.float32), "w")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        single = session(model.SerializeToString(), threads)
        x = np.random.default_rng(1).standard_normal(a, dtype=np.float32)
        single.run(None, {"x": x})
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            single.run(None, {"x": x})
            times.append(time.perf_counter() - start)
        total += count * statistics.median(times)
        macs += count * int(np.prod(a)) * b[1]
    return {"seconds": total, "matmuls": sum(shapes.values()), "gmacs": macs / 1e9}


def run_timing_processes(args: argparse.Namespace, folder: Path) -> list[dict[str, dict[str, list[float]]]]:
    """`args.processes` fresh `--time-folder` runs of this script, one after the other."""
    argv = [sys.executable, __file__, "--time-folder", str(folder)]
    for option in ("threads", "repeats", "warmup", "pause", "num_hidden_layers"):
        argv += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    env = os.environ | (KEEP_MEMORY if args.keep_memory else {})
    runs = []
    for index in range(args.processes):
        result = subprocess.run(argv, env=env, capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"timing process {index + 1} failed:\n{result.stderr}")
        runs.append(json.loads(result.stdout.splitlines()[-1]))  # the last line: libraries may print before
        medians = {name: statistics.median(values["s"]) for name, values in runs[-1].items()}
        print(f"[bench] process {index + 1}/{args.processes}: {medians}", file=sys.stderr, flush=True)
    return runs


def ratios(runs: list[dict[str, dict[str, list[float]]]], name: str) -> tuple[float, float, float]:
    """The median over all rounds of `transformers`' latency over `name`'s, and the lowest and highest median of
    one process."""
    per_process = [[r / v for r, v in zip(run[REFERENCE]["s"], run[name]["s"], strict=True)] for run in runs]
    medians = [statistics.median(values) for values in per_process]
    return statistics.median(sum(per_process, [])), min(medians), max(medians)


def markdown_table(runs: list[dict[str, dict[str, list[float]]]], report: dict) -> str:
    int8 = report["int8"]["self_check"]
    lines = [
        "| runtime | median latency (s) | p90 (s) | minor page faults / forward (median) "
        "| vs `transformers` eager fp32 (median of rounds) | processes' medians | target | agreement with "
        "PyTorch fp32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in runs[0]:
        latencies = sum((run[name]["s"] for run in runs), [])
        faults = statistics.median(sum((run[name]["faults"] for run in runs), []))
        ratio, low, high = ratios(runs, name)
        target = TARGETS.get(name)
        met = "" if target is None else f">= {target}x ({'met' if ratio >= target else 'not met'})"
        if name == "onnxruntime fp32":
            agreement = f"max abs logit diff {report['check']['max_abs_diff']:.1e}"
        elif name == "onnxruntime int8":
            agreement = (
                f"cosine {int8['cosine_similarity_mean']:.4f} (min {int8['cosine_similarity_min']:.4f}), "
                f"top-1 {int8['top1_agreement']:.0%} of {int8['count']} clips"
            )
        elif name == "timesformer_hf bf16":
            agreement = "see BENCHMARKS.md (bf16 on a CPU with AMX)"
        else:
            agreement = "reference"
        lines.append(
            f"| {name} | {statistics.median(latencies):.3f} | {percentile(latencies, 0.9):.3f} | {faults:.0f} | "
            f"{ratio:.2f}x | {low:.2f}x - {high:.2f}x | {met} | {agreement} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.time_folder:
        print(json.dumps(time_export(args)))
        return
    torch.set_num_threads(args.threads)
    config = base_config(args)
    info = environment(args.threads, "cpu")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        report = export_onnx(build_model("timesformer_hf", config), Path(folder) / "onnx", quantize="int8")
        export_s = time.perf_counter() - start
        print(f"[bench] exported, checked and quantized in {export_s:.0f} s", file=sys.stderr, flush=True)
        runs = run_timing_processes(args, Path(folder) / "onnx")
        floor = matmul_floor(Path(folder) / "onnx" / MODEL_FILE, make_input(config).numpy(), args.threads)
    memory = ", glibc keeping freed memory" if args.keep_memory else ""
    count = args.num_hidden_layers
    layers = "" if count == 12 else f" ({count} layer{'s' if count > 1 else ''})"
    print(
        f"base 8x224 divided{layers}, batch 1, {args.threads} threads, {args.processes} processes x {args.repeats} rounds"
        f"{memory}; {info['processor']}, torch {info['torch']}, transformers {info['transformers']}, export "
        f"{export_s:.0f} s ({report['exporter']})"
    )
    print()
    print(markdown_table(runs, report))
    reference = statistics.median(sum((run[REFERENCE]["s"] for run in runs), []))
    print()
    print(
        f"fp32 floor: the graph's {floor['matmuls']} linear-layer MatMuls ({floor['gmacs']:.0f} GMACs), each timed "
        f"alone in ONNX Runtime, take {floor['seconds']:.3f} s together; `transformers`' median latency is "
        f"{reference / floor['seconds']:.2f}x that, the most an fp32 graph with these layers could reach here."
    )
    if args.json:
        info |= {"keep_memory": args.keep_memory, "pause_s": args.pause}
        result = {"environment": info, "runs": runs, "matmul_floor": floor, "export": report}
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
