#!/usr/bin/env python
"""Search over HTTP: warm latency, a cold `clipsearch search` for comparison, and a load test.

    python scripts/bench_serve.py [--model tiny-shapes] [--vectors 100000] [--queries 300]
                                  [--concurrency 8] [--load-requests 800] [--cold-runs 3]

Builds a temporary library of `--vectors` images: a few real pictures indexed with the model,
the rest synthetic unit vectors (rows whose files are hard links to the real JPEGs, so every
result exists on disk). Then, in one run:

- **warm HTTP**: a real `clipsearch serve` process; one text query at a time over a kept-alive
  connection, every query text different (no cache hits); p50/p99 of the round trip, and of
  the server's own `took_ms`;
- **cold CLI**: `clipsearch search --no-server` in a fresh process (imports, model load, index
  load, query), the way a user without a server pays it; and `clipsearch search` with the
  server running (a fresh process that asks the server);
- **load**: `--concurrency` clients on loopback sending `--load-requests` queries in total
  (bounded in count and by a per-request timeout); throughput, latency, errors.

Ratios compare figures from the same run. The model defaults to the shipped `tiny-shapes`;
while it is not there, a tiny random open_clip model of the test suite's shape stands in (said
on stderr and in the JSON). Prints JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np

WORDS_A = ["red", "blue", "green", "tiny", "huge", "striped", "dotted", "bright", "dark", "pale"]
WORDS_B = ["circle", "square", "star", "dog", "beach", "tree", "car", "house", "boat", "cloud"]
TINY_CFG = {  # the test suite's tiny model (tests/conftest.py)
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def log(msg: str) -> None:
    print(f"bench_serve: {msg}", file=sys.stderr, flush=True)


def pick_model(requested: str, work: Path) -> tuple[str, bool]:
    """The model spec to use, and whether it is the random stand-in."""
    from clipsearch.errors import ModelError
    from clipsearch.model.specs import ModelSpec, resolve

    try:
        resolve(ModelSpec.parse(requested))
        return requested, False
    except ModelError as exc:
        if requested != "tiny-shapes":
            raise
        log(
            f"model {requested} is not available ({exc.message.splitlines()[0]}); "
            "using a tiny random open_clip model instead (same shape as the tests')"
        )
    import open_clip
    import torch
    from safetensors.torch import save_file

    out = work / "tiny-random-model"
    out.mkdir(parents=True)
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CFG)
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CFG}))
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(out / "open_clip_model.safetensors"),
    )
    return f"local-dir:{out}", True


def build_library(work: Path, model: str, n: int, seed: int) -> tuple[Path, int]:
    from PIL import Image

    from clipsearch import Library
    from clipsearch.store.store import Changes, NewImage

    photos = work / "photos"
    rng = np.random.default_rng(seed)
    for i in range(16):
        blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        arr = np.kron(blocks, np.ones((64, 64, 1), np.uint8))
        (photos / "real").mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(photos / "real" / f"p{i:02d}.jpg", quality=90)
    lib_dir = work / "library"
    lib = Library.open(lib_dir, model=model)
    try:
        lib.index([photos])
        dim = lib.dim
        assert dim is not None
        sources = sorted((photos / "real").glob("*.jpg"))  # a file takes ~65k links at most
        stats = [f.stat() for f in sources]
        left = n - 16
        t0 = time.perf_counter()
        for start in range(0, left, 10_000):
            count = min(10_000, left - start)
            vecs = rng.standard_normal((count, dim), dtype=np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            inserts = []
            for j in range(count):
                i = start + j
                path = photos / "synthetic" / f"{i // 1000:03d}" / f"s{i:06d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                source, st = sources[i % len(sources)], stats[i % len(sources)]
                os.link(source, path)
                row = NewImage(
                    str(path),
                    st.st_size,
                    st.st_mtime_ns,
                    secrets.token_hex(16),
                    vecs[j],
                    256,
                    256,
                    "JPEG",
                )
                inserts.append(row)
            lib.store.apply(Changes(inserts=inserts))
        log(f"inserted {left} synthetic vectors in {time.perf_counter() - t0:.1f}s")
    finally:
        lib.close()
    # The index file is a cache: without one, the next open rebuilds it from the database
    # and saves it, so every process below starts from a complete file.
    from clipsearch.store.faiss_index import index_files

    for f in index_files(lib_dir):
        f.unlink()
    with Library.open(lib_dir) as lib:
        assert lib.vectors.index().ntotal == n  # rebuilt and saved
    assert index_files(lib_dir)
    return lib_dir, dim


def clipsearch_exe() -> str:
    return str(Path(sys.executable).with_name("clipsearch"))


def start_server(lib_dir: Path) -> tuple[subprocess.Popen, str, float]:
    from clipsearch.server.client import read_server_file

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [clipsearch_exe(), "--library", str(lib_dir), "serve", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while time.perf_counter() - t0 < 300:
        info = read_server_file(lib_dir)
        if info and info.get("pid") == proc.pid:
            return proc, info["url"], time.perf_counter() - t0
        if proc.poll() is not None:
            raise SystemExit(f"serve exited: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("serve did not start in 300 s")


def query_text(i: int) -> str:
    return f"a {WORDS_A[i % 10]} {WORDS_B[(i // 10) % 10]} number {i}"


class Conn:
    """One kept-alive HTTP connection."""

    def __init__(self, url: str, timeout: float = 30) -> None:
        parts = urlsplit(url)
        self.c = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def search(self, text: str, k: int = 10) -> tuple[int, dict | None]:
        self.c.request("GET", f"/api/search?k={k}&q={quote(text)}")
        resp = self.c.getresponse()
        body = resp.read()
        return resp.status, json.loads(body) if resp.status == 200 else None

    def close(self) -> None:
        self.c.close()


def pct(values: list[float]) -> dict:
    ms = np.array(values) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }


def warm_latency(url: str, n: int) -> dict:
    conn = Conn(url)
    try:
        for i in range(20):  # warm-up, other texts than the measured ones
            conn.search(f"warm up {i}")
        rtt, server = [], []
        for i in range(n):
            t0 = time.perf_counter()
            status, body = conn.search(query_text(i))
            rtt.append(time.perf_counter() - t0)
            if status != 200 or body is None or len(body["results"]) != 10:
                raise SystemExit(f"query {i} failed: HTTP {status}")
            server.append(body["took_ms"] / 1e3)
    finally:
        conn.close()
    return {"queries": n, **pct(rtt), "server_took": pct(server)}


def timed_cli(lib_dir: Path, runs: int, *extra: str) -> dict:
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(
            [
                clipsearch_exe(),
                "--library",
                str(lib_dir),
                "search",
                query_text(10_000 + i),
                "--json",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        times.append(time.perf_counter() - t0)
        if out.returncode != 0 or len(json.loads(out.stdout)) != 10:
            raise SystemExit(f"clipsearch search failed: {out.stderr}")
    return {
        "runs": runs,
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
    }


def load_test(url: str, concurrency: int, total: int) -> dict:
    lock = threading.Lock()
    next_i = [0]
    latencies: list[float] = []
    errors: list[str] = []

    def worker() -> None:
        conn = Conn(url)
        try:
            while True:
                with lock:
                    i = next_i[0]
                    next_i[0] += 1
                if i >= total:
                    return
                t0 = time.perf_counter()
                try:
                    status, _ = conn.search(query_text(20_000 + i))
                except (OSError, http.client.HTTPException) as exc:
                    status = f"{type(exc).__name__}: {exc}"
                    conn.close()
                    conn = Conn(url)
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    if status != 200:
                        errors.append(str(status))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "requests": total,
        "errors": len(errors),
        "error_samples": errors[:3],
        "seconds": round(wall, 2),
        "throughput_qps": round(total / wall, 1),
        **pct(latencies),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="tiny-shapes")
    p.add_argument("--vectors", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--load-requests", type=int, default=800)
    p.add_argument("--cold-runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the temporary library")
    args = p.parse_args()
    if args.vectors < 100:
        p.error("--vectors must be at least 100")
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    proc = None
    try:
        model, fallback = pick_model(args.model, work)
        t0 = time.perf_counter()
        lib_dir, dim = build_library(work, model, args.vectors, args.seed)
        log(f"library of {args.vectors} vectors ({dim}-d) built in {time.perf_counter() - t0:.1f}s")
        cold = timed_cli(lib_dir, args.cold_runs, "--no-server")
        log(f"cold CLI: {cold}")
        proc, url, start_s = start_server(lib_dir)
        log(f"server ready in {start_s:.1f}s at {url}")
        warm = warm_latency(url, args.queries)
        log(f"warm HTTP: {warm}")
        via_server = timed_cli(lib_dir, args.cold_runs)
        load = load_test(url, args.concurrency, args.load_requests)
        log(f"load: {load}")
        cold_ms, via_ms = cold["median_s"] * 1e3, via_server["median_s"] * 1e3
        result = {
            "benchmark": "serve",
            "cpus": os.cpu_count(),
            "model": args.model if not fallback else "tiny random open_clip (tiny-shapes absent)",
            "model_fallback": fallback,
            "vectors": args.vectors,
            "dim": dim,
            "k": 10,
            "server_start_s": round(start_s, 2),
            "warm_http_text_query": warm,
            "cold_cli_search_no_server": cold,
            "cli_search_with_server": via_server,
            "ratios": {
                "cold_cli_over_warm_http_p50": round(cold_ms / warm["p50_ms"], 1),
                "cold_cli_over_cli_with_server": round(cold_ms / via_ms, 2),
            },
            "load": load,
            "target_p50_ms": 30,
            "meets_target": warm["p50_ms"] <= 30,
        }
        print(json.dumps(result, indent=2))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
