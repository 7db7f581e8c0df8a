#!/usr/bin/env python
"""A warm in-process text query: `Library.search` against NumPy brute force, interleaved.

    python scripts/bench_query.py [--vectors 100000] [--queries 200] [--model ViT-B-32:random]

Builds a library of `--vectors` images (a few real pictures indexed with the model, the rest
synthetic unit vectors committed through the store, as `scripts/bench_serve.py` does), then
times, query by query and alternately:

- `library`: `Library.search(text, k=10)`: encode the text (the text tower, one thread),
  search the index, read the rows, check the files exist;
- `numpy`: the same text encoded by the same encoder, then the brute-force baseline users
  write: all vectors in one NumPy matrix, `matrix @ q`, `argpartition` for the top 10;
- `encode`: the text encoding alone (both include it).

Every query text is different (no cache). Prints JSON: p50/p99 in ms and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

WORDS_A = ["red", "blue", "green", "tiny", "huge", "striped", "dotted", "bright", "dark", "pale"]
WORDS_B = ["circle", "square", "star", "dog", "beach", "tree", "car", "house", "boat", "cloud"]


def texts(n: int) -> list[str]:
    out = []
    for i in range(n):
        a, b = WORDS_A[i % 10], WORDS_B[(i // 10) % 10]
        out.append(f"{a} {b} number {i}")
    return out


def pct(values: list[float]) -> dict:
    values = sorted(values)
    return {
        "p50_ms": round(statistics.median(values) * 1e3, 2),
        "p99_ms": round(values[min(len(values) - 1, int(0.99 * len(values)))] * 1e3, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--vectors", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--model", default="ViT-B-32:random")
    p.add_argument("--precision", default=None, help="for the library (default: auto)")
    args = p.parse_args()
    os.environ.setdefault("CLIPSEARCH_CACHE", str(ROOT.parent / ".bench" / "model-cache"))
    from bench_serve import build_library

    from clipsearch import Library

    with tempfile.TemporaryDirectory() as tmp:
        if args.precision:
            os.environ["CLIPSEARCH_PRECISION"] = args.precision
        lib_dir, dim = build_library(Path(tmp), args.model, args.vectors, seed=0)
        with Library.open(lib_dir) as lib:
            precision = lib.precision
            ids_parts, vec_parts = zip(*lib.store.iter_vectors(dim), strict=True)
            matrix = np.ascontiguousarray(np.concatenate(vec_parts))
            ids = np.concatenate(ids_parts)
            enc = lib.encoder
            lib.search("warm up", k=10)  # the text tower, the index
            times: dict[str, list[float]] = {"library": [], "numpy": [], "encode": []}
            same = 0
            for i, text in enumerate(texts(args.queries)):
                order = ("library", "numpy") if i % 2 == 0 else ("numpy", "library")
                for mode in order:
                    t0 = time.perf_counter()
                    if mode == "library":
                        hits = lib.search(f"{text} L", k=10)
                    else:
                        q = enc.encode_texts([f"{text} N"])[0]
                        scores = matrix @ q
                        top = np.argpartition(-scores, 10)[:10]
                        top = ids[top[np.argsort(-scores[top])]]
                    times[mode].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                q = enc.encode_texts([f"{text} L"])[0]
                times["encode"].append(time.perf_counter() - t0)
                scores = matrix @ q
                best = ids[np.argsort(-scores)[:10]]
                same += [h.id for h in hits] == best.tolist()
    report = {
        "benchmark": "query",
        "vectors": args.vectors,
        "dim": dim,
        "model": args.model,
        "precision": precision,
        "queries": args.queries,
        "cpus": os.cpu_count(),
        **{mode: pct(v) for mode, v in times.items()},
        "same_top10_as_numpy": round(same / args.queries, 3),
    }
    report["library_vs_numpy_p50"] = round(
        report["library"]["p50_ms"] / report["numpy"]["p50_ms"], 3
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
