#!/usr/bin/env python
"""Query latency of the library's index against NumPy brute force (what rclip does).

    python scripts/bench_search.py [--sizes 100000 1000000] [--queries 200] [--dim 512]

For each size and each synthetic dataset:

- **numpy**: `X @ q` + argpartition per query (rclip's approach), the baseline;
- **exact**: clipsearch's exact index (`VectorIndex`, flat); its top-k must equal NumPy's;
- **approximate**: the IVF index the library switches to above `APPROX_THRESHOLD`, with
  `nprobe` auto-tuned at build time; recall@10 is measured against exact on fresh queries.

Datasets: `uniform` (random unit vectors: no structure at all, the worst case for any
approximate index) and `clustered` (100 topics x 20 sub-clusters x points, each level at
cosine ~0.6 to its parent: neighbourhoods that overlap, as real CLIP embeddings' do).
Single queries, one at a time, as a search request makes them. Prints JSON with p50/p99
(ms), build seconds and memory.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time

import numpy as np
import psutil

from clipsearch.store.faiss_index import APPROX_THRESHOLD, VectorIndex

SPREAD = float(os.environ.get("BENCH_SPREAD", "1.3"))  # 1.3: cos ~0.6 to the parent


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_data(kind: str, n: int, n_queries: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        data = unit(rng.standard_normal((n, dim), dtype=np.float32))
        queries = unit(rng.standard_normal((n_queries, dim), dtype=np.float32))
        return data, queries
    # Hierarchical clusters: 100 topics, 20 sub-clusters each, points around those; a query's
    # neighbours spread over several sub-clusters, as CLIP neighbourhoods do.
    topics = unit(rng.standard_normal((100, dim), dtype=np.float32))
    spread = SPREAD / np.sqrt(dim)  # per-dimension noise
    subs = unit(
        np.repeat(topics, 20, axis=0) + spread * rng.standard_normal((2000, dim), dtype=np.float32)
    )

    def sample(m: int) -> np.ndarray:
        out = np.empty((m, dim), np.float32)
        for start in range(0, m, 100_000):
            stop = min(m, start + 100_000)
            pick = rng.integers(0, len(subs), stop - start)
            noise = rng.standard_normal((stop - start, dim), dtype=np.float32) * spread
            out[start:stop] = subs[pick] + noise
        return unit(out)

    return sample(n), sample(n_queries)


def percentiles(times: list[float]) -> dict:
    ms = np.array(times) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def numpy_search(data: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = data @ q
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top])]
    return top, scores[top]


def timed(fn, queries: np.ndarray) -> tuple[list, list[float]]:
    out, times = [], []
    fn(queries[0])  # warm-up
    for q in queries:
        t0 = time.perf_counter()
        out.append(fn(q))
        times.append(time.perf_counter() - t0)
    return out, times


def timed_pair(fa, fb, queries: np.ndarray) -> tuple[list, list[float], list, list[float]]:
    """Time two searches query by query, alternating, so that load from other processes on a
    shared machine falls on both alike (the ratio stays fair even when seconds do not)."""
    out_a, t_a, out_b, t_b = [], [], [], []
    fa(queries[0]), fb(queries[0])  # warm-up
    for i, q in enumerate(queries):
        order = ((fa, out_a, t_a), (fb, out_b, t_b))
        for fn, out, times in order if i % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            out.append(fn(q))
            times.append(time.perf_counter() - t0)
    return out_a, t_a, out_b, t_b


def bench_one(kind: str, n: int, args) -> dict:
    data, queries = make_data(kind, n, args.queries, args.dim, args.seed)
    ids = np.arange(n, dtype=np.int64)
    k = 10
    res: dict = {"dataset": kind, "n": n, "dim": args.dim, "k": k}

    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    exact = VectorIndex.build(args.dim, ids, data, approximate=False)
    res["exact"] = {
        "build_s": round(time.perf_counter() - t0, 2),
        "memory_mb": round(rss_mb() - before, 1),
    }
    np_out, np_times, ex_out, ex_times = timed_pair(
        lambda q: numpy_search(data, q, k), lambda q: exact.search(q, k)[0], queries
    )
    res["numpy"] = percentiles(np_times)
    res["exact"].update(percentiles(ex_times))
    same = 0
    for (top, scores), hits in zip(np_out, ex_out, strict=True):
        same_ids = list(top) == list(hits.ids)
        tie_only = np.allclose(scores, hits.scores, atol=1e-6) and set(top) == set(hits.ids)
        same += same_ids or tie_only
    res["exact"]["identical_top_k"] = same == len(queries)
    res["exact"]["speedup_vs_numpy"] = round(res["numpy"]["p50_ms"] / res["exact"]["p50_ms"], 2)

    if n >= args.approx_from:
        gc.collect()
        before = rss_mb()
        t0 = time.perf_counter()
        approx = VectorIndex.build(args.dim, ids, data, approximate=True)
        res["approximate"] = {
            "kind": approx.kind,
            "nprobe": approx.nprobe,
            "nlist": int(approx._index.nlist) if approx.nprobe else None,
            "build_s": round(time.perf_counter() - t0, 2),
            "memory_mb": round(rss_mb() - before, 1),
        }
        ap_out, ap_times = timed(lambda q: approx.search(q, k)[0], queries)
        res["approximate"].update(percentiles(ap_times))
        recall = np.mean(
            [len(set(a.ids) & set(e.ids)) / k for a, e in zip(ap_out, ex_out, strict=True)]
        )
        res["approximate"]["recall_at_10"] = round(float(recall), 4)
        res["approximate"]["p50_fraction_of_numpy"] = round(
            res["approximate"]["p50_ms"] / res["numpy"]["p50_ms"], 4
        )
        # Deletions are honoured: removed ids never come back.
        gone = ids[: n // 100]
        approx.remove(gone)
        back = approx.search(queries[:20], k)
        res["approximate"]["deleted_ids_returned"] = int(
            sum(len(set(h.ids) & set(gone.tolist())) for h in back)
        )
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--datasets", nargs="+", default=["uniform", "clustered"])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--approx-from",
        type=int,
        default=APPROX_THRESHOLD,
        help="also build the approximate index from this size",
    )
    args = p.parse_args()
    results = [bench_one(kind, n, args) for n in args.sizes for kind in args.datasets]
    print(
        json.dumps(
            {
                "benchmark": "search",
                "cpus": os.cpu_count(),
                "approx_threshold": APPROX_THRESHOLD,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
