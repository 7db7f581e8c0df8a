#!/usr/bin/env python
"""Indexing throughput on real photos, against two baselines measured in the same run.

    python scripts/bench_index.py [--n 256] [--model ViT-B-32:random] [--repeat 1]

1. **loop**: the per-image loop a tutorial writes: open, preprocess, `encode_image` one at a
   time (open_clip's own transform).
2. **batched**: the model's batched fp32 forward on pre-decoded tensors (decode time excluded):
   the ceiling for the model alone.
3. **index**: `Library.index()` on a fresh library (scan, read, hash, decode, encode, SQLite
   commits, FAISS, index save), end to end.

Each runs in its own process (so peak RSS is its own); the same `--threads` for all.
Prints JSON: images/s for each, index/batched and index/loop ratios, peak RSS.
Random weights have the real cost, so `ViT-B-32:random` needs no download.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "imagenet-sample"


def photos(n: int) -> list[Path]:
    files = sorted(DATASET.glob("*.JPEG"))
    if len(files) < n:
        sys.exit(f"need {n} photos in {DATASET}, found {len(files)}")
    return files[:n]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_model(spec: str, threads: int | None):
    import open_clip
    import torch

    if threads:
        torch.set_num_threads(threads)
    arch, _, tag = spec.partition(":")
    model, _, preprocess = open_clip.create_model_and_transforms(
        arch, pretrained=None if tag == "random" else tag
    )
    return model.eval(), preprocess


def run_loop(args) -> dict:
    import torch
    from PIL import Image

    model, preprocess = load_model(args.model, args.threads)
    files = photos(args.n)
    with torch.inference_mode():
        model.encode_image(preprocess(Image.open(files[0]).convert("RGB"))[None])  # warm-up
        t0 = time.perf_counter()
        for f in files:
            x = preprocess(Image.open(f).convert("RGB"))[None]
            model.encode_image(x)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "images_per_s": len(files) / seconds}


def run_batched(args) -> dict:
    import torch
    from PIL import Image

    model, preprocess = load_model(args.model, args.threads)
    files = photos(args.n)
    tensors = torch.stack([preprocess(Image.open(f).convert("RGB")) for f in files])
    with torch.inference_mode():
        model.encode_image(tensors[: args.batch_size])  # warm-up
        t0 = time.perf_counter()
        for start in range(0, len(files), args.batch_size):
            model.encode_image(tensors[start : start + args.batch_size])
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "images_per_s": len(files) / seconds}


def run_index(args) -> dict:
    from clipsearch import Library

    files = photos(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photos"
        src.mkdir()
        for f in files:  # symlinks: the photos stay where they are
            (src / f.name).symlink_to(f)
        lib = Library.open(
            Path(tmp) / "lib",
            model=args.model,
            batch_size=args.batch_size,
            threads=args.threads,
            workers=args.workers,
        )
        lib.encoder.load()  # model load is not indexing throughput (reported separately)
        t0 = time.perf_counter()
        summary = lib.index([src])
        seconds = time.perf_counter() - t0
        lib.close()
    assert summary.added == len(files), summary.to_dict()
    return {
        "seconds": seconds,
        "images_per_s": len(files) / seconds,
        "stages": summary.timings,
    }


def child(args) -> None:
    out = {"loop": run_loop, "batched": run_batched, "index": run_index}[args.child](args)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(json.dumps(out))


def spawn(mode: str, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--n",
        str(args.n),
        "--model",
        args.model,
        "--batch-size",
        str(args.batch_size),
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.exit(f"{mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--model", default="ViT-B-32:random")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--repeat", type=int, default=1, help="runs of each mode; best is kept")
    p.add_argument("--child", choices=["loop", "batched", "index"])
    args = p.parse_args()
    if args.child:
        child(args)
        return
    results: dict[str, dict] = {}
    for _ in range(args.repeat):
        for mode in ("batched", "loop", "index"):
            r = spawn(mode, args)
            if mode not in results or r["images_per_s"] > results[mode]["images_per_s"]:
                results[mode] = r
    report = {
        "benchmark": "index",
        "n_images": args.n,
        "model": args.model,
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
        "loop": results["loop"],
        "batched_forward": results["batched"],
        "index": results["index"],
        "ratio_index_vs_batched": round(
            results["index"]["images_per_s"] / results["batched"]["images_per_s"], 3
        ),
        "ratio_index_vs_loop": round(
            results["index"]["images_per_s"] / results["loop"]["images_per_s"], 3
        ),
    }
    for r in results.values():
        r["seconds"] = round(r["seconds"], 2)
        r["images_per_s"] = round(r["images_per_s"], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
