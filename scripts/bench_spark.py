#!/usr/bin/env python
"""Embedding on Spark against `clipsearch index` on the same cores, in one run.

    python scripts/bench_spark.py [--n 300] [--rounds 3] [--master 'local[2]']

The same real photos (`../shared/datasets/imagenet-sample`, symlinked in place) and the same
weights (OpenCLIP ViT-B-32 with random weights: the real cost, exported once to ONNX before
the rounds). Whole processes, start-up included, what a user waits for:
- `index_fp32` / `index_int8`: `clipsearch index` of the photos into a library set up with
  48 other photos (model exported, precision checked: not timed);
- `spark_fp32` / `spark_int8`: `clipsearch spark embed` of the same photos with
  (`--precisions fp32,int8,bf16` adds bf16, on OpenVINO, both sides)
  `--master local[2]`, 4 shards (2 tasks at a time, one model thread each), JVM start-up,
  listing, shard files and all (nothing set up beforehand but the model's ONNX files).
Rounds are interleaved (the order rotates); the ratio is Spark's time over `index`'s in each
round (target: <= 1.3).

    python scripts/bench_spark.py --index-sizes 1000000,5000000 [--work DIR]

Index building: synthetic shards of 512-d vectors clustered as CLIP embeddings are (2,000
centres), 100,000 per shard, float16, in the layout `spark embed` writes; then
`clipsearch spark index` (local[2]) in its own process: time per step, the driver's peak
RSS, the tasks' peak RSS, bytes per vector, recall@10 against exact search on 1,000
held-out rows, and the query p50 of the built index (one query at a time, the tuned nprobe)
against exact search over the same vectors in float16 chunks (NumPy), in the same process;
up to 1M, `clipsearch import EMB --index INDEX` into a new library (time, peak RSS).

Prints JSON; figures go to docs/benchmarks.md.
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

import numpy as np

from clipsearch.spark import cds

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "imagenet-sample"
MODEL = "ViT-B-32:random"
SETUP = 48  # photos that set an `index` library up (export, precision check): not timed


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[:6])} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


PER_SHARD = 100_000
CENTRES = 2_000


def make_shards(folder: Path, n: int, dim: int = 512) -> None:
    """Synthetic shards in `spark embed`'s layout (kept between runs)."""
    sys.path.insert(0, str(ROOT))
    from clipsearch.spark import shards as sh

    if (folder / sh.MANIFEST).exists():
        return
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((CENTRES, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    count = -(-n // PER_SHARD)
    for i in range(count):
        rows = min(PER_SHARD, n - i * PER_SHARD)
        vecs = centres[rng.integers(0, CENTRES, rows)]
        vecs = vecs + 0.6 * rng.standard_normal((rows, dim)).astype(np.float32) / np.sqrt(dim)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        start = i * PER_SHARD
        names = [f"/photos/{j // 1000}/{j}.jpg" for j in range(start, start + rows)]
        meta = [
            {
                "image_path": p,
                "path_bytes": p.encode(),
                "size": 1,
                "mtime_ns": 1,
                "content_hash": f"{start + k:032x}",
                "width": 1,
                "height": 1,
                "format": "JPEG",
                "taken_at": None,
                "phash": None,
                "dhash": None,
                "phash_mirror": None,
                "dhash_mirror": None,
            }
            for k, p in enumerate(names)
        ]
        sh.write_shard(folder, i, vecs.astype(np.float16), meta, [])
    sh.Manifest("synthetic-512", "synthetic", dim, "fp32", "float16", count, PER_SHARD).write(
        folder
    )


def index_child(emb: str, out: str, master: str, max_memory: str = "") -> None:
    import resource

    from clipsearch.spark.index_build import build

    summary = build(emb, out, master=master, max_memory=max_memory or None)
    facts = summary.to_dict()
    facts["driver_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    facts.pop("shards")
    print(json.dumps(facts))


def query_child(emb: str, out: str) -> None:
    """Query p50 of the built index, one query at a time; for a compressed (PQ) index also
    with re-ranking (10x the candidates re-scored with the exact vectors, as the library
    does), and recall@10 of both against exact search."""
    import faiss

    from clipsearch.spark import shards as sh
    from clipsearch.spark.index_build import _vectors_of, shard_layout
    from clipsearch.store.faiss_index import is_compressed, rerank

    index = faiss.read_index(str(Path(out) / "index.faiss"))
    depth = json.loads((Path(out) / "index.json").read_text()).get("rerank") or 10
    faiss.omp_set_num_threads(1)
    layout = shard_layout(Path(emb))
    rng = np.random.default_rng(3)
    first = np.load(Path(emb) / "img_emb" / "img_emb_0.npy", mmap_mode="r")
    queries = np.asarray(first[rng.choice(len(first), 200, replace=False)], np.float32)
    compressed = is_compressed(index)
    plain, reranked, got_plain, got_reranked = [], [], [], []
    for q in queries:
        t0 = time.perf_counter()
        _, ids = index.search(q[None], 10)
        plain.append(time.perf_counter() - t0)
        got_plain.append(ids[0])
        if compressed:
            t0 = time.perf_counter()
            _, cand = index.search(q[None], 10 * depth)
            cand = cand[0][cand[0] >= 0]
            best, _ = rerank(cand, _vectors_of(Path(emb), layout, cand) @ q, 10)
            reranked.append(time.perf_counter() - t0)
            got_reranked.append(best)
    exact, truth = [], []
    numbers = sh.finished_shards(Path(emb))
    for i, q in enumerate(queries[:50]):  # NumPy over every vector, from the float16 shards
        t0 = time.perf_counter()
        scores = []
        for number in numbers:
            emb_i = np.load(Path(emb) / "img_emb" / f"img_emb_{number}.npy", mmap_mode="r")
            scores.append(np.asarray(emb_i, np.float32) @ q)
        every = np.concatenate(scores)
        truth.append(set(np.argpartition(-every, 10)[:10].tolist()))
        if i < 5:
            exact.append(time.perf_counter() - t0)

    def recall(got: list) -> float:
        pairs = zip(truth, got[: len(truth)], strict=True)
        return round(float(np.mean([len(t & set(g.tolist())) / 10 for t, g in pairs])), 4)

    row = {
        "compressed": compressed,
        "ivf_query_p50_ms": round(statistics.median(plain) * 1e3, 3),
        "ivf_recall_at_10": recall(got_plain),
        "exact_numpy_query_p50_ms": round(statistics.median(exact) * 1e3, 1),
        "exact_over_ivf": round(statistics.median(exact) / statistics.median(plain)),
    }
    if compressed:
        row["rerank_depth"] = depth
        row["reranked_query_p50_ms"] = round(statistics.median(reranked) * 1e3, 3)
        row["reranked_recall_at_10"] = recall(got_reranked)
    print(json.dumps(row))


def index_bench(sizes: list[int], work: Path, master: str, max_memory: str = "") -> dict:
    results = {}
    for n in sizes:
        emb, out = work / f"emb-{n}", work / f"index-{n}{'-' + max_memory if max_memory else ''}"
        print(f"index {n}: shards", file=sys.stderr, flush=True)
        make_shards(emb, n)
        shutil.rmtree(out, ignore_errors=True)
        print(f"index {n}: spark index", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        got = subprocess.run(
            [sys.executable, __file__, "--index-child", str(emb), str(out), master, max_memory],
            capture_output=True,
            text=True,
        )
        if got.returncode:
            sys.exit(got.stderr[-3000:])
        row = json.loads(got.stdout.strip().splitlines()[-1])
        row["process_seconds"] = round(time.perf_counter() - t0, 1)
        got = subprocess.run(
            [sys.executable, __file__, "--query-child", str(emb), str(out)],
            capture_output=True,
            text=True,
        )
        if got.returncode:
            sys.exit(got.stderr[-3000:])
        row.update(json.loads(got.stdout.strip().splitlines()[-1]))
        if n <= 1_000_000 and not max_memory:  # shards and index home: a library of n
            print(f"index {n}: import --index", file=sys.stderr, flush=True)
            lib = work / f"lib-{n}"
            shutil.rmtree(lib, ignore_errors=True)
            cli = str(Path(sys.executable).with_name("clipsearch"))
            cmd = ["/usr/bin/time", "-f", "%M", cli, "--library", str(lib), "import", str(emb)]
            t0 = time.perf_counter()
            got = subprocess.run(
                [*cmd, "--index", str(out), "--json"], capture_output=True, text=True
            )
            if got.returncode:
                sys.exit(got.stderr[-3000:])
            seconds = time.perf_counter() - t0
            imported = json.loads(got.stdout)
            row["import"] = {
                "seconds": round(seconds, 1),
                "images_per_s": round(n / seconds),
                "peak_rss_mb": round(int(got.stderr.strip().splitlines()[-1]) / 1024),
                "added": imported["added"],
                "index_vectors": imported["index"]["vectors"],
            }
            shutil.rmtree(lib, ignore_errors=True)
        results[str(n)] = row
        print(json.dumps(row), file=sys.stderr, flush=True)
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--index-child":
        return index_child(*sys.argv[2:6])
    if len(sys.argv) > 1 and sys.argv[1] == "--query-child":
        return query_child(*sys.argv[2:4])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--precisions", default="fp32,int8", help="of fp32, int8, bf16")
    ap.add_argument("--index-sizes", help="build indexes of these sizes instead (e.g. 1000000)")
    ap.add_argument("--work", help="where synthetic shards are kept (default: a temp folder)")
    ap.add_argument("--max-memory", default="", help="spark index --max-memory (e.g. 300MB: PQ)")
    args = ap.parse_args()
    if args.index_sizes:
        sizes = [int(x) for x in args.index_sizes.split(",")]
        with tempfile.TemporaryDirectory(prefix="bench-spark-index-") as tmp:
            work = Path(args.work) if args.work else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            out = {"dim": 512, "master": args.master, "per_shard": PER_SHARD}
            out["max_memory"] = args.max_memory or None
            out["sizes"] = index_bench(sizes, work, args.master, args.max_memory)
        print(json.dumps(out, indent=2))
        return None
    all_files = sorted(DATASET.glob("*.JPEG"))
    setup_files, files = all_files[:SETUP], all_files[SETUP : SETUP + args.n]
    if len(files) < args.n:
        sys.exit(f"need {args.n + SETUP} photos in {DATASET}, found {len(all_files)}")
    cli = str(Path(sys.executable).with_name("clipsearch"))
    precisions = args.precisions.split(",")
    modes = tuple(f"{kind}_{p}" for p in precisions for kind in ("index", "spark"))
    times: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        work = Path(tmp)
        src, setup = work / "photos", work / "setup"
        src.mkdir()
        setup.mkdir()
        for f in files:
            (src / f.name).symlink_to(f)
        for f in setup_files:
            (setup / f.name).symlink_to(f)
        # Not timed: a first Spark run on this machine leaves Java its class archive (once;
        # every later run maps Spark's classes from it), as any earlier use would have.
        warm = [cli, "--model", MODEL, "spark", "embed", str(setup), "--master", args.master]
        run([*warm, "--output", str(work / "warm-up")])
        for r in range(args.rounds):
            order = modes[r % len(modes) :] + modes[: r % len(modes)]
            for mode in order:
                kind, precision = mode.split("_")
                case = work / f"{mode}-{r}"
                if kind == "index":  # a library set up (model exported, precision checked)
                    base = [cli, "--library", str(case), "--model", MODEL]
                    base += ["--precision", precision, "index"]
                    run([*base, str(setup)])  # not timed
                    cmd = [*base, str(src)]
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
        "spark_class_archive": [p.name for p in cds.archive_dir().glob("*.jsa")],
        "seconds": {m: [round(t, 2) for t in v] for m, v in times.items()},
        "median_s": {m: round(statistics.median(v), 2) for m, v in times.items()},
        "images_per_s": {m: round(args.n / statistics.median(v), 1) for m, v in times.items()},
    }
    for precision in precisions:
        per_round = ratios(precision)
        out[f"spark_over_index_{precision}"] = {
            "per_round": per_round,
            "median": round(statistics.median(per_round), 3),
            "target<=1.3": statistics.median(per_round) <= 1.3,
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
