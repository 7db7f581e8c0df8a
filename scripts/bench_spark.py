#!/usr/bin/env python
"""Embedding on Spark against `clipsearch index` on the same cores, in one run.

    python scripts/bench_spark.py [--n 300] [--rounds 3] [--master 'local[2]']

The same real photos (`../shared/datasets/imagenet-sample`, symlinked in place) and the same
weights (OpenCLIP ViT-B-32 with random weights: the real cost, exported once to ONNX before
the rounds). Whole processes, start-up included, what a user waits for:
- `index_fp32` / `index_int8`: `clipsearch index` of the photos into a new library;
- `spark_fp32` / `spark_int8`: `clipsearch spark embed` of the same photos with
  `--master local[2]`, 4 shards (2 tasks at a time, one model thread each), JVM start-up,
  listing, shard files and all.
Rounds are interleaved (the order rotates); the ratio is Spark's time over `index`'s in each
round (target: <= 1.3). Prints JSON; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "imagenet-sample"
MODEL = "ViT-B-32:random"
MODES = ("index_fp32", "spark_fp32", "index_int8", "spark_int8")


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[:6])} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()
    files = sorted(DATASET.glob("*.JPEG"))[: args.n]
    if len(files) < args.n:
        sys.exit(f"need {args.n} photos in {DATASET}, found {len(files)}")
    cli = str(Path(sys.executable).with_name("clipsearch"))
    times: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        work = Path(tmp)
        src = work / "photos"
        src.mkdir()
        for f in files:
            (src / f.name).symlink_to(f)
        warm = work / "warm"  # exports the model once (both precisions): not timed
        warm.mkdir()
        for f in files[:4]:
            (warm / f.name).symlink_to(f)
        for precision in ("fp32", "int8"):
            lib = str(work / f"warm-{precision}")
            run(
                [
                    cli,
                    "--library",
                    lib,
                    "--model",
                    MODEL,
                    "--precision",
                    precision,
                    "index",
                    str(warm),
                ]
            )
        for r in range(args.rounds):
            order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
            for mode in order:
                kind, precision = mode.split("_")
                case = work / f"{mode}-{r}"
                if kind == "index":
                    cmd = [cli, "--library", str(case), "--model", MODEL]
                    cmd += ["--precision", precision, "index", str(src)]
                else:
                    cmd = [cli, "--model", MODEL, "spark", "embed", str(src)]
                    cmd += ["--output", str(case), "--master", args.master]
                    cmd += ["--precision", precision, "--shard-size", str(-(-args.n // 4))]
                times[mode].append(run(cmd))
                shutil.rmtree(case, ignore_errors=True)
                print(f"round {r} {mode}: {times[mode][-1]:.2f}s", file=sys.stderr, flush=True)

    def ratios(precision: str) -> list[float]:
        a, b = times[f"spark_{precision}"], times[f"index_{precision}"]
        return [round(x / y, 3) for x, y in zip(a, b, strict=True)]

    out = {
        "photos": args.n,
        "model": MODEL,
        "master": args.master,
        "rounds": args.rounds,
        "cpu_count": os.cpu_count(),
        "seconds": {m: [round(t, 2) for t in v] for m, v in times.items()},
        "median_s": {m: round(statistics.median(v), 2) for m, v in times.items()},
        "images_per_s": {m: round(args.n / statistics.median(v), 1) for m, v in times.items()},
    }
    for precision in ("fp32", "int8"):
        per_round = ratios(precision)
        out[f"spark_over_index_{precision}"] = {
            "per_round": per_round,
            "median": round(statistics.median(per_round), 3),
            "target<=1.3": statistics.median(per_round) <= 1.3,
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
