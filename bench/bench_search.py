"""Video search at scale: build time, memory, query latency and recall@10 of `VideoIndex` on synthetic features.

The features are clustered like real ones (a mixture of 1000 Gaussian clusters in the base model's 768 dimensions;
independent Gaussian vectors would be the worst case of any approximate search). Each size is built in a fresh
process so that its peak resident memory is its own.

    python bench/bench_search.py --rows 10000 100000 1000000     # the table of BENCHMARKS.md
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
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(1000, dim)).astype(np.float32)
    features = centers[rng.integers(0, len(centers), rows)]
    features += rng.normal(scale=0.5, size=features.shape).astype(np.float32)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--exact-limit", type=int, default=100_000)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a single size, in this process
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.dim, args.exact_limit)))
        return
    print("| rows | index | build (s) | peak RSS (MiB) | query (ms, median) | recall@10 |")
    print("|---|---|---|---|---|---|")
    for rows in args.rows:
        command = [sys.executable, __file__, "--one", str(rows), "--dim", str(args.dim)]
        command += ["--exact-limit", str(args.exact_limit)]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        print(
            f"| {rows:,} | {result['kind']} | {result['build_s']} | {result['peak_rss_mib']} | "
            f"{result['query_ms_median']} | {result['recall_at_10']} |"
        )


if __name__ == "__main__":
    main()
