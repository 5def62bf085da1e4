"""Benchmark `timesformer_hf` against `transformers.TimesformerForVideoClassification` with the same weights.

For every configuration both models are built (full size, random weights: weights do not change speed), our state
dict is loaded into the `transformers` model, and the two are timed in the same process, alternating one forward of
each per round, with a large fp32-like GEMM of the model's own shape timed in the same round. Reported per
implementation: clips/s, median and p90 latency, peak memory, FLOPs per clip (`FlopCounterMode`, 2 per
multiply-add: the model's, as the paper counts them, and those an inference forward executes) and the share of the
measured GEMM throughput the model reaches (model FLOP/s over GEMM FLOP/s). Ratios are computed from the
interleaved rounds, so a busy machine slows both sides alike.

Peak memory: on CUDA `torch.cuda.max_memory_allocated` after a reset. On CPU the torch allocator is invisible to
`tracemalloc`, so each (configuration, implementation) runs once more in a fresh process: the kernel's resident-set
high-water mark (`VmHWM`) is reset through `/proc/self/clear_refs` just before the forward, and the peak minus the
resident set at that moment is the forward's peak memory (weights and input excluded). Where `clear_refs` cannot be
written the process-lifetime `ru_maxrss` is used instead, which can only overestimate the baseline, never the peak.

Run with no arguments for the overview table of every runtime at batch 1 and 8 (`bench/overview.py`; `--quick`: a
few minutes); give a configuration for this detailed comparison (see `--help` for the matrix), e.g.

    python bench/benchmark.py --preset base --repeats 11           # the detailed table of BENCHMARKS.md
    python bench/benchmark.py --preset base hr --attention divided joint --batch-size 1 4 --threads 2
    python bench/benchmark.py --device cuda --dtype bf16 --compile on --batch-size 8
    python bench/benchmark.py --frames 2 4 8 16 --repeats 2 --json bench/frames_sweep.json  # for bench/plot.py
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import transformers
from models import (
    ATTENTION_TYPES,
    DTYPES,
    IMPLEMENTATIONS,
    PRESETS,
    BenchConfig,
    build_model,
    build_models,
    environment,
    gemm_flops_per_second,
    make_input,
    model_kwargs,
    percentile,
    synchronize,
)
from torch.utils.flop_counter import FlopCounterMode

from timesformer_hf import TimeSformerConfig, TimeSformerForVideoClassification
from timesformer_hf.inference import compile_for_inference

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ImplResult:
    latencies_s: list[float] = field(default_factory=list)
    gemm_flops_per_s: list[float] = field(default_factory=list)  # GEMM rate around each timed forward
    first_call_s: float | None = None  # includes compilation when compiled
    peak_memory_mib: float | None = None
    flops_per_clip: float | None = None  # model FLOPs (the architecture's)
    executed_flops_per_clip: float | None = None  # what an inference forward runs

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.latencies_s) if self.latencies_s else None

    @property
    def p90_s(self) -> float | None:
        return percentile(self.latencies_s, 0.9) if self.latencies_s else None


# --- forward and FLOPs ------------------------------------------------------------------------------------------


def forward_fn(model: torch.nn.Module, config: BenchConfig, implementation: str) -> Callable:
    """The callable timed: `model(pixel_values).logits`, compiled when asked, both implementations as `--compile`
    compiles ours (`compile_for_inference`: weights frozen; fullgraph for ours)."""
    if not config.compile:
        return lambda pixel_values: model(pixel_values=pixel_values).logits
    compiled = compile_for_inference(model, fullgraph=implementation == "timesformer_hf")
    return lambda pixel_values: compiled(pixel_values=pixel_values).logits


def count_flops(implementation: str, config: BenchConfig, executed: bool = False) -> float:
    """FLOPs of one clip (2 per multiply-add) on the meta device, eager attention so every matmul is seen.

    By default the model FLOPs: the architecture's, as the paper counts them (every token of every layer, as
    `output_hidden_states=True` computes). `executed=True` counts what the timed forward runs: ours with its temporal
    projections fused (`fuse_temporal_projections`), as `build_model` sets it, and the classifier's last layer
    updating the CLS token alone.
    """
    meta_config = replace(config, device="meta", batch_size=1, attn_implementation="eager")
    with torch.device("meta"):
        if implementation == "timesformer_hf":
            model = TimeSformerForVideoClassification(TimeSformerConfig(**model_kwargs(meta_config)))
            model.set_attn_implementation("eager")
        else:
            model = transformers.TimesformerForVideoClassification(
                transformers.TimesformerConfig(**model_kwargs(meta_config))
            )
        pixel_values = torch.empty(1, config.frames, 3, config.image_size, config.image_size)
    model.eval()
    if executed and implementation == "timesformer_hf":
        model.fuse_temporal_projections()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(pixel_values, output_hidden_states=not executed)
    return float(counter.get_total_flops())


# --- GEMM reference ---------------------------------------------------------------------------------------------


def model_gemm_shape(config: BenchConfig) -> tuple[int, int, int]:
    """The shape of the model's largest projection (QKV of the spatial attention): `(tokens x 768) @ (768 x 2304)`."""
    grid = config.image_size // 16
    tokens = config.batch_size * config.frames * (1 + grid * grid)
    return tokens, 768, 3 * 768


# --- peak memory ------------------------------------------------------------------------------------------------


def _rss_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB from `/proc/self/status`."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line.split(":")[0]] = int(line.split()[1])
    return values["VmRSS"], values["VmHWM"]


def _reset_rss_peak() -> bool:
    """Reset the kernel's resident-set high-water mark to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def measure_peak_memory(implementation: str, config_dict: dict) -> float:
    """Peak memory of one forward in MiB, weights and input excluded. Runs in a fresh (spawned) process."""
    config = BenchConfig(**config_dict)
    torch.set_num_threads(config.threads)
    model = build_model(implementation, config)
    pixel_values = make_input(config)
    forward = forward_fn(model, config, implementation)
    with torch.inference_mode():
        if config.compile:  # compile outside the measured window
            forward(pixel_values)
        if config.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            baseline = torch.cuda.memory_allocated()
            forward(pixel_values)
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - baseline) / 2**20
        if _reset_rss_peak():
            baseline_kib, _ = _rss_kib()
            forward(pixel_values)
            return (_rss_kib()[1] - baseline_kib) / 1024
        baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        forward(pixel_values)
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kib) / 1024


def peak_memory_in_subprocess(implementation: str, config: BenchConfig) -> float:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure_peak_memory, implementation, asdict(config)).result()


# --- one configuration ------------------------------------------------------------------------------------------


def run_config(config: BenchConfig, measure_memory: bool) -> dict:
    """Time both implementations in alternating rounds; count FLOPs; measure peak memory. Returns one JSON row."""
    torch.set_num_threads(config.threads)
    print(f"[bench] {config.name}", file=sys.stderr, flush=True)
    results = {name: ImplResult() for name in IMPLEMENTATIONS}
    for name, result in results.items():
        result.flops_per_clip = count_flops(name, config)
        result.executed_flops_per_clip = count_flops(name, config, executed=True)
    max_abs_diff = None
    gemm_samples: list[float] = []
    if config.repeats > 0:
        models = build_models(config)
        forwards = {name: forward_fn(model, config, name) for name, model in models.items()}
        pixel_values = make_input(config)
        gemm_shape = model_gemm_shape(config)
        with torch.inference_mode():
            for name, forward in forwards.items():
                start = time.perf_counter()
                logits = forward(pixel_values)
                synchronize(config.device)
                results[name].first_call_s = time.perf_counter() - start
                if name == "timesformer_hf":
                    ours_logits = logits
                elif config.attention != "space_only":  # `transformers`' space_only returns per-frame logits
                    max_abs_diff = (ours_logits.float() - logits.float()).abs().max().item()
                for _ in range(config.warmup - 1):
                    forward(pixel_values)
            gemm_samples.append(
                gemm_flops_per_second(*gemm_shape, dtype=DTYPES[config.dtype], device=config.device)
            )
            for round_index in range(config.repeats):
                order = list(forwards.items())  # which model runs first alternates, cancelling order effects
                for name, forward in order if round_index % 2 == 0 else order[::-1]:
                    synchronize(config.device)
                    start = time.perf_counter()
                    forward(pixel_values)
                    synchronize(config.device)
                    results[name].latencies_s.append(time.perf_counter() - start)
                    # GEMM samples between forwards: a forward is compared with the GEMM rate just before and after it
                    gemm_samples.append(
                        gemm_flops_per_second(*gemm_shape, dtype=DTYPES[config.dtype], device=config.device)
                    )
                    results[name].gemm_flops_per_s.append(statistics.mean(gemm_samples[-2:]))
        del models, forwards
    if measure_memory:
        for name in IMPLEMENTATIONS:
            results[name].peak_memory_mib = peak_memory_in_subprocess(name, config)
    return summarize(config, results, gemm_samples, max_abs_diff)


def summarize(
    config: BenchConfig, results: dict[str, ImplResult], gemm_samples: list[float], max_abs_diff: float | None
) -> dict:
    gemm = statistics.median(gemm_samples) if gemm_samples else None
    row: dict = {
        "config": asdict(config),
        "name": config.name,
        "gemm_flops_per_s": gemm,
        "max_abs_logit_diff": max_abs_diff,
    }
    for name, result in results.items():
        clips_per_s = config.batch_size / result.median_s if result.latencies_s else None
        flops_per_s = result.flops_per_clip * clips_per_s if clips_per_s else None
        # Per-forward shares against the GEMM rate measured around that forward, like the per-round speed-ups.
        shares = [
            result.flops_per_clip * config.batch_size / latency / gemm_rate
            for latency, gemm_rate in zip(result.latencies_s, result.gemm_flops_per_s, strict=True)
        ]
        row[name] = {
            "latencies_s": result.latencies_s,
            "first_call_s": result.first_call_s,
            "median_s": result.median_s,
            "p90_s": result.p90_s,
            "clips_per_s": clips_per_s,
            "flops_per_clip": result.flops_per_clip,
            "executed_flops_per_clip": result.executed_flops_per_clip,
            "model_flops_per_s": flops_per_s,
            "gemm_share": statistics.median(shares) if shares else None,
            "gemm_share_rounds": shares,
            "peak_memory_mib": result.peak_memory_mib,
        }
    ours, theirs = results["timesformer_hf"].latencies_s, results["transformers"].latencies_s
    # Per-round ratios: both runs of a round saw the same machine load.
    round_ratios = [t / o for o, t in zip(ours, theirs, strict=True)]
    row["speedup_median"] = statistics.median(round_ratios) if round_ratios else None
    row["speedup_rounds"] = round_ratios
    memory_ours, memory_theirs = (
        row["timesformer_hf"]["peak_memory_mib"],
        row["transformers"]["peak_memory_mib"],
    )
    row["memory_ratio"] = memory_ours / memory_theirs if memory_ours and memory_theirs else None
    return row


# --- output -----------------------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def markdown_table(rows: list[dict]) -> str:
    header = (
        "| config | impl | clips/s | latency median (s) | p90 (s) | speedup (ours/theirs, median of rounds) "
        "| peak mem (MiB) | mem ratio | GFLOPs/clip (model / executed) | model GFLOP/s | GEMM GFLOP/s | GEMM share "
        "| max abs diff |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    for row in rows:
        for name in IMPLEMENTATIONS:
            result = row[name]
            ours = name == "timesformer_hf"
            lines.append(
                "| "
                + " | ".join(
                    [
                        row["name"] if ours else "",
                        name if ours else "transformers (eager)",
                        _fmt(result["clips_per_s"], ".3f"),
                        _fmt(result["median_s"], ".3f"),
                        _fmt(result["p90_s"], ".3f"),
                        _fmt(row["speedup_median"], ".2f") + "x" if ours and row["speedup_median"] else "",
                        _fmt(result["peak_memory_mib"], ".0f"),
                        _fmt(row["memory_ratio"], ".2f") if ours and row["memory_ratio"] else "",
                        _fmt(result["flops_per_clip"], ".1f", 1e-9)
                        + " / "
                        + _fmt(result["executed_flops_per_clip"], ".1f", 1e-9),
                        _fmt(result["model_flops_per_s"], ".1f", 1e-9),
                        _fmt(row["gemm_flops_per_s"], ".1f", 1e-9),
                        _fmt(result["gemm_share"], ".0%"),
                        _fmt(row["max_abs_logit_diff"], ".1e") if ours else "",
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


# --- command line -----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", nargs="+", choices=PRESETS, help="base 8x224, hr 16x448, l 96x224")
    parser.add_argument("--frames", nargs="+", type=int, help="override the preset's frame count (a sweep)")
    parser.add_argument("--image-size", type=int, help="override the preset's crop size")
    parser.add_argument("--attention", nargs="+", choices=ATTENTION_TYPES, help="attention types")
    parser.add_argument("--batch-size", nargs="+", type=int, help="batch sizes (clips per forward)")
    parser.add_argument("--dtype", nargs="+", choices=DTYPES, help="weights and input dtype")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where both models run")
    parser.add_argument(
        "--attn-implementation",
        nargs="+",
        choices=("sdpa", "eager", "flash_attention_2", "flex_attention"),
        help="attention of timesformer_hf (transformers' TimeSformer is eager only)",
    )
    parser.add_argument("--compile", nargs="+", choices=("off", "on"), help="torch.compile both models")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed forwards per model before the timed rounds, at least 1 (the first compiles)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed alternating rounds; 0 measures memory only"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--num-hidden-layers", type=int, default=12, help="depth (smaller for smoke tests)")
    parser.add_argument(
        "--json", type=Path, default=REPO_ROOT / "bench" / "results" / "latest.json", help="JSON output"
    )
    parser.add_argument("--markdown", type=Path, help="also write the markdown table to this file")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the overview table with 4 layers and fewer rounds (a few minutes)",
    )
    return parser.parse_args(argv)


def is_overview(args: argparse.Namespace) -> bool:
    """No configuration asked for: the overview table of every runtime (`bench/overview.py`)."""
    matrix = (args.preset, args.frames, args.attention, args.batch_size, args.dtype, args.attn_implementation)
    return all(value is None for value in matrix) and args.compile is None and args.device == "cpu"


def configs_from_args(args: argparse.Namespace) -> list[tuple[BenchConfig, bool]]:
    configs = []
    for preset, frames, attention, batch_size, dtype, attn_implementation, compiled in itertools.product(
        args.preset or ["base"],
        args.frames or [None],
        args.attention or ["divided"],
        args.batch_size or [1],
        args.dtype or ["fp32"],
        args.attn_implementation or ["sdpa"],
        args.compile or ["off"],
    ):
        preset_frames, preset_size = PRESETS[preset]
        config = BenchConfig(
            preset=preset,
            frames=frames or preset_frames,
            image_size=args.image_size or preset_size,
            attention=attention,
            batch_size=batch_size,
            dtype=dtype,
            device=args.device,
            attn_implementation=attn_implementation,
            compile=compiled == "on",
            threads=args.threads,
            warmup=args.warmup,
            repeats=args.repeats,
            num_hidden_layers=args.num_hidden_layers,
        )
        configs.append((config, not args.no_memory))
    return configs


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if is_overview(args):
        import overview

        overview.main(args)
        return
    configs = configs_from_args(args)
    env = environment(args.threads, args.device)
    print(
        f"[bench] {env['device']}, {args.threads} threads, fp32 GEMM 4096^3: "
        f"{env['gemm_4096_fp32_flops_per_s'] / 1e9:.1f} GFLOP/s",
        file=sys.stderr,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for config, measure_memory in configs:
        rows.append(run_config(config, measure_memory))
        args.json.write_text(json.dumps({"environment": env, "results": rows}, indent=2))  # partial results
    table = markdown_table(rows)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(f"[bench] wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
