"""What every benchmark builds: the models of both implementations with the same weights, their inputs, and the
machine they run on (versions, threads, the GEMM rate). `benchmark.py`, `overview.py` and `bench_onnx.py` share it."""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass

import torch
import transformers

from timesformer_hf import TimeSformerConfig, TimeSformerForVideoClassification
from timesformer_hf.packed_linear import pack_linear_layers

PRESETS = {"base": (8, 224), "hr": (16, 448), "l": (96, 224)}  # (frames, crop) of the paper's three models
ATTENTION_TYPES = {"divided": "divided_space_time", "joint": "joint_space_time", "space_only": "space_only"}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
IMPLEMENTATIONS = ("timesformer_hf", "transformers")
NUM_LABELS = 400


@dataclass(frozen=True)
class BenchConfig:
    """One row of the benchmark: a model shape, an input and how it runs."""

    preset: str
    frames: int
    image_size: int
    attention: str
    batch_size: int
    dtype: str
    device: str
    attn_implementation: str  # ours; `transformers`' TimeSformer only has eager attention
    compile: bool
    threads: int
    warmup: int
    repeats: int
    num_hidden_layers: int = 12

    @property
    def name(self) -> str:
        return (
            f"{self.preset} {self.frames}x{self.image_size} {self.attention} b{self.batch_size} {self.dtype} "
            f"{self.device} {self.attn_implementation}{' compiled' if self.compile else ''}"
        )


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (as `numpy.percentile`), without numpy."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def model_kwargs(config: BenchConfig) -> dict:
    return dict(
        image_size=config.image_size,
        num_frames=config.frames,
        attention_type=ATTENTION_TYPES[config.attention],
        num_hidden_layers=config.num_hidden_layers,
        num_labels=NUM_LABELS,
    )


def build_model(implementation: str, config: BenchConfig, state_dict: dict | None = None) -> torch.nn.Module:
    """A full-size model of `implementation`, random weights (or `state_dict`), in eval mode on the device/dtype.

    Ours runs its inference fast path, as `load_model` returns it: the temporal projections fused
    (`fuse_temporal_projections`) and, in bf16 on the CPU and not compiled, the linear layers packed for oneDNN
    (`pack_linear_layers`).
    """
    torch.manual_seed(0)
    if implementation == "timesformer_hf":
        model = TimeSformerForVideoClassification(TimeSformerConfig(**model_kwargs(config)))
        model.set_attn_implementation(config.attn_implementation)
    else:
        model = transformers.TimesformerForVideoClassification(
            transformers.TimesformerConfig(**model_kwargs(config))
        )
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    model = model.to(device=config.device, dtype=DTYPES[config.dtype]).eval()
    if implementation != "timesformer_hf":
        return model
    model = model.fuse_temporal_projections()
    if config.device == "cpu" and config.dtype == "bf16" and not config.compile:
        model = pack_linear_layers(model)
    return model


def build_models(config: BenchConfig) -> dict[str, torch.nn.Module]:
    """Both implementations with the same weights (ours copied into `transformers`')."""
    ours = build_model("timesformer_hf", config)
    return {"timesformer_hf": ours, "transformers": build_model("transformers", config, ours.state_dict())}


def make_input(config: BenchConfig) -> torch.Tensor:
    shape = (config.batch_size, config.frames, 3, config.image_size, config.image_size)
    generator = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=generator).to(device=config.device, dtype=DTYPES[config.dtype])


def gemm_flops_per_second(m: int, k: int, n: int, dtype: torch.dtype, device: str, repeats: int = 3) -> float:
    """Best-of-`repeats` FLOP/s of `(m x k) @ (k x n)`: the practical ceiling of a GEMM-bound model."""
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    torch.mm(a, b)  # warm-up: library initialisation, CUDA kernel selection
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * m * k * n / best


def environment(threads: int, device: str) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    torch.set_num_threads(threads)
    info["gemm_4096_fp32_flops_per_s"] = gemm_flops_per_second(4096, 4096, 4096, torch.float32, device)
    return info


def base_config(args: argparse.Namespace) -> BenchConfig:
    """Base 8x224 divided, batch 1, fp32 on the CPU, with the timing options of `args` (also `bench_onnx.py`'s)."""
    return BenchConfig(
        preset="base",
        frames=8,
        image_size=224,
        attention="divided",
        batch_size=1,
        dtype="fp32",
        device="cpu",
        attn_implementation="sdpa",
        compile=False,
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
        num_hidden_layers=args.num_hidden_layers,
    )
