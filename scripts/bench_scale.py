#!/usr/bin/env python
"""A library at scale: every everyday operation at 10k / 100k / 1M images, 512-d.

    python scripts/bench_scale.py [--sizes 10000,100000,1000000] [--dim 512] [--work DIR]

Each library is grown the way `index` grows one, through the project's own commit path
(`Library.vectors.apply`: image rows, float16 vectors, perceptual hashes and the vector log
in one transaction per 2,000 images, the in-memory index mirrored; a writer checkpoint every
50,000, where the index follows the library and turns approximate past 200,000). Every row
is a real file on disk (hard links to 32 small JPEGs, 1,000 per folder), so walks, stats and
"files gone" checks are real. Vectors are clustered as CLIP embeddings are (2,000 centres);
capture dates spread over 2005-2025; 5% of the images are "generated"; 1% are near copies
of another image (a few hash bits off); EXIF facts as phones write them (85% name a camera,
35% a GPS position and its place), so the keyword index holds what it would. The model is
a random open_clip model with tiny towers and a 512-d embedding: the index, store and
server do the work of ViT-B-32's 512-d vectors, while text encoding (measured apart in
bench_query.py) stays out of the figures.

Measured per size, each in a fresh process (peak RSS from the kernel's rusage):
- growing the library (images/s, peak RSS: what a first `index` holds besides the model);
- disk bytes per image (database + index file), and the database's largest tables;
- `clipsearch status` (whole process, median of 3);
- an index rebuild from the database (file deleted), time and peak RSS;
- search p50 through HTTP on a running `clipsearch serve` ("more like" an image, and text),
  the server's RSS against the index file; then three rounds of 2,000 images committed by
  another process, each followed by the first search (its latency) and the server's RSS;
- date, folder and source filters (in-process p50);
- the first search in a new process (`clipsearch search --like ID --no-server`), and the
  index file opened memory-mapped against read, with one search (interleaved rounds);
- a no-change `clipsearch index` of the whole tree (the walk), and `clipsearch watch` from
  start to idle with its RSS;
- `clipsearch dupes` (exact, near and similar), time and peak RSS.

Prints JSON (and, with --work, writes it to DIR/bench_scale.json; a rerun with the same
--work starts from copies of the libraries grown there).
"""

from __future__ import annotations

import argparse
import contextlib
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
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np

BATCH = 2_000
CHECKPOINT = 50_000
SOURCES = 32
CENTRES = 2_000


def log(msg: str) -> None:
    print(f"bench_scale: {msg}", file=sys.stderr, flush=True)


def exe() -> str:
    return str(Path(sys.executable).with_name("clipsearch"))


# --- the model and the data ------------------------------------------------------------------
def make_model(work: Path, dim: int) -> str:
    """A random open_clip model with tiny towers and a `dim`-d embedding (local-dir spec)."""
    out = work / f"model-{dim}"
    if not (out / "open_clip_model.safetensors").exists():
        import open_clip
        import torch
        from safetensors.torch import save_file

        text_cfg = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2}
        cfg = {
            "embed_dim": dim,
            "vision_cfg": {
                "image_size": 32,
                "layers": 1,
                "width": 32,
                "patch_size": 8,
                "head_width": 16,
            },
            "text_cfg": {**text_cfg, "layers": 1},
        }
        torch.manual_seed(0)
        model = open_clip.CLIP(**cfg)
        out.mkdir(parents=True, exist_ok=True)
        (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            str(out / "open_clip_model.safetensors"),
        )
    return f"local-dir:{out}"


class Data:
    """Clustered unit vectors, perceptual hashes with planted near copies, dates, sources."""

    def __init__(self, dim: int, seed: int = 7) -> None:
        self.dim = dim
        self.rng = np.random.default_rng(seed)
        centres = np.random.default_rng(1).standard_normal((CENTRES, dim)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        scenes = np.random.default_rng(2).integers(0, 256, (64, 32), dtype=np.uint8)
        self.scenes = scenes  # 64 "kinds of scene" (256-bit codes: hashes + mirrors)
        self.recent: np.ndarray | None = None  # codes of the previous batch (copy sources)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
        rng = self.rng
        vecs = self.centres[rng.integers(0, CENTRES, n)]
        vecs = vecs + rng.standard_normal((n, self.dim), dtype=np.float32) * (
            0.6 / np.sqrt(self.dim)
        )
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        flips = np.packbits(rng.random((n, 256)) < 0.27, axis=1)  # ~35 of 128 bits
        codes = self.scenes[rng.integers(0, len(self.scenes), n)] ^ flips
        if self.recent is not None:  # 1%: a near copy of an image of the previous batch
            copy = rng.random(n) < 0.01
            src = self.recent[rng.integers(0, len(self.recent), int(copy.sum()))]
            few = np.packbits(rng.random((len(src), 256)) < 0.03, axis=1)
            codes[copy] = src ^ few
        self.recent = codes.copy()
        days = rng.integers(0, 20 * 365, n)
        dates = [
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1104537600 + int(d) * 86400))
            for d in days
        ]
        sources = ["generated" if x < 0.05 else "photos" for x in rng.random(n)]
        return vecs, codes.view(">i8").astype(np.int64), dates, sources


CAMERAS = [  # (make, model, lens or None): what phone and camera EXIF typically says
    ("Apple", "iPhone 13", "iPhone 13 back dual wide camera 5.1mm f/1.6"),
    ("Apple", "iPhone 8", None),
    ("samsung", "SM-G991B", None),
    ("Google", "Pixel 7", None),
    ("Canon", "Canon EOS 80D", "EF-S18-135mm f/3.5-5.6 IS USM"),
    ("SONY", "ILCE-7M3", "FE 24-105mm F4 G OSS"),
    ("FUJIFILM", "X-T3", "XF18-55mmF2.8-4 R LM OIS"),
    ("NIKON CORPORATION", "NIKON D750", None),
]
PLACES = [  # (city, region, country, code, lat, lon): as the offline geocoder names them
    ("Lisbon", "Lisbon", "Portugal", "PT", 38.72, -9.14),
    ("Porto", "Porto", "Portugal", "PT", 41.15, -8.61),
    ("Paris", "Ile-de-France", "France", "FR", 48.85, 2.35),
    ("Berlin", "Berlin", "Germany", "DE", 52.52, 13.40),
    ("Rome", "Lazio", "Italy", "IT", 41.89, 12.48),
    ("Madrid", "Madrid", "Spain", "ES", 40.42, -3.70),
    ("New York City", "New York", "United States", "US", 40.71, -74.01),
    ("San Francisco", "California", "United States", "US", 37.77, -122.42),
    ("Tokyo", "Tokyo", "Japan", "JP", 35.68, 139.69),
    ("Sydney", "New South Wales", "Australia", "AU", -33.87, 151.21),
    ("Cape Town", "Western Cape", "South Africa", "ZA", -33.92, 18.42),
    ("Reykjavik", "Capital Region", "Iceland", "IS", 64.15, -21.94),
]


def photo_facts(rng: np.random.Generator, n: int) -> list[dict]:
    """Facts as `index` reads them from EXIF: 85% name a camera, 35% a GPS position (and
    its place); the rest say nothing (an empty row, as for a picture without EXIF)."""
    out = []
    for cam, gps in zip(rng.random(n) < 0.85, rng.random(n) < 0.35, strict=True):
        facts: dict = {}
        if cam:
            make, model, lens = CAMERAS[int(rng.integers(len(CAMERAS)))]
            facts.update(camera_make=make, camera_model=model, lens=lens)
        if gps:
            city, region, country, code, lat, lon = PLACES[int(rng.integers(len(PLACES)))]
            facts.update(city=city, region=region, country=country, country_code=code)
            facts.update(lat=lat + rng.normal(0, 0.05), lon=lon + rng.normal(0, 0.05))
        out.append(facts)
    return out


# --- building (a child process) ----------------------------------------------------------------
def new_image(path: Path, st: os.stat_result, vec, date: str, kind: str, codes, facts=None):
    """A row as `index` commits it: a 64x64 JPEG's size, its EXIF facts, a random content
    hash."""
    from clipsearch.store.store import NewImage

    return NewImage(
        str(path),
        st.st_size,
        st.st_mtime_ns,
        secrets.token_hex(16),
        vec,
        64,
        64,
        "JPEG",
        date,
        kind,
        tuple(int(x) for x in codes),  # type: ignore[arg-type]
        facts=facts,
    )


def build(lib_dir: Path, photos: Path, spec: str, n: int, dim: int, start: int = 0) -> dict:
    """Grow the library to `start + n` images through the commit path; returns facts."""
    from PIL import Image

    from clipsearch import Library
    from clipsearch.store.store import Changes

    real = photos / "real"
    if not real.exists():
        real.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for i in range(SOURCES):
            blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
            arr = np.kron(blocks, np.ones((16, 16, 1), np.uint8))
            Image.fromarray(arr).save(real / f"p{i:02d}.jpg", quality=90)
    sources = sorted(real.glob("*.jpg"))
    stats = [f.stat() for f in sources]
    folder = "s" if start == 0 else f"more-{secrets.token_hex(4)}"  # reruns never collide
    data = Data(dim, seed=7 + max(0, start))
    t0 = time.perf_counter()
    if start < 0:  # the first step alone: its model export is not the growth's memory
        with Library.open(lib_dir, model=spec) as lib:
            lib.index([str(photos)])  # the model, the vector size and the root
        return {"seconds": round(time.perf_counter() - t0, 1), "index_kind": None}
    with Library.open(lib_dir, model=spec) as lib:
        for done in range(0, n, BATCH):
            count = min(BATCH, n - done)
            vecs, codes, dates, kinds = data.batch(count)
            facts = photo_facts(data.rng, count)
            inserts = []
            for j in range(count):
                i = start + done + j
                path = photos / folder / f"{i // 1000:04d}" / f"s{i:07d}.jpg"
                if j == 0 or (i % 1000) == 0:
                    path.parent.mkdir(parents=True, exist_ok=True)
                source, st = sources[i % SOURCES], stats[i % SOURCES]
                os.link(source, path)
                row = new_image(path, st, vecs[j], dates[j], kinds[j], codes[j], facts[j])
                inserts.append(row)
            lib.vectors.apply(Changes(inserts=inserts))
            if (done + count) % CHECKPOINT == 0 or done + count == n:
                lib.vectors.save()  # a writer checkpoint (the index follows the library)
        kind = lib.vectors.describe()["kind"]
    return {"seconds": round(time.perf_counter() - t0, 1), "index_kind": kind}


# --- measuring -------------------------------------------------------------------------------
def run_child(args: list[str], timeout: float = 3600) -> dict:
    """Run a command: wall time and output."""
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {"seconds": round(time.perf_counter() - t0, 3), "stdout": proc.stdout}


def timed(args: list[str]) -> dict:
    """Wall time and peak RSS of one command, run by a `child` process (whose only child it
    is, so the kernel's rusage of its children is that command's)."""
    got = run_child([sys.executable, __file__, "child", "--", *args])
    return json.loads(got["stdout"].strip().splitlines()[-1])


def child_main(argv: list[str]) -> None:
    import resource

    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(proc.returncode)
    tail = proc.stdout[-200_000:]
    print(json.dumps({"seconds": round(wall, 3), "peak_rss_mb": peak, "stdout_tail": tail}))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def folder_bytes(lib_dir: Path) -> dict:
    db = sum(p.stat().st_size for p in lib_dir.glob("clipsearch.db*"))
    index = sum(p.stat().st_size for p in lib_dir.glob("vectors-*.faiss"))
    return {"database": db, "index_file": index}


def table_bytes(lib_dir: Path, top: int = 12) -> dict:
    """The database's largest tables and indexes (SQLite's dbstat), in MB."""
    import sqlite3

    conn = sqlite3.connect(f"file:{lib_dir / 'clipsearch.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT ?", (top,)
        ).fetchall()
    except sqlite3.Error:  # an SQLite built without dbstat
        return {}
    finally:
        conn.close()
    return {name: round(size / 2**20, 1) for name, size in rows}


class Conn:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.c = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)

    def get(self, query: str) -> dict:
        try:
            self.c.request("GET", f"/api/search?k=10&{query}")
            resp = self.c.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.c.close()  # the server closes idle keep-alive connections after 5 s
            self.c.request("GET", f"/api/search?k=10&{query}")
            resp = self.c.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise SystemExit(f"HTTP {resp.status}: {body[:300]!r}")
        return json.loads(body)


def p50(values: list[float]) -> float:
    return round(statistics.median(values) * 1e3, 2)


def serve_round(lib_dir: Path, photos: Path, spec: str, n: int, dim: int) -> dict:
    from clipsearch.server.client import read_server_file

    proc = subprocess.Popen(
        [exe(), "--library", str(lib_dir), "serve", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        t0 = time.perf_counter()
        while True:
            info = read_server_file(lib_dir)
            if info and info.get("pid") == proc.pid:
                break
            if proc.poll() is not None or time.perf_counter() - t0 > 600:
                raise SystemExit("serve did not start")
            time.sleep(0.05)
        conn = Conn(info["url"])
        rng = np.random.default_rng(3)
        ids = rng.integers(1, n, 400)
        for i in ids[:20]:
            conn.get(f"like={i}")
        conn.get("q=" + quote("warm up"))
        like, text, took = [], [], []
        for i, image_id in enumerate(ids[20:220]):
            t = time.perf_counter()
            body = conn.get(f"like={image_id}")
            like.append(time.perf_counter() - t)
            took.append(body["took_ms"] / 1e3)
            t = time.perf_counter()
            conn.get("q=" + quote(f"a photo number {i} of a dog on a beach"))
            text.append(time.perf_counter() - t)
        index_mb = folder_bytes(lib_dir)["index_file"] / 2**20
        out = {
            "start_to_ready_s": round(time.perf_counter() - t0, 2),
            "like_p50_ms": p50(like),
            "like_server_took_p50_ms": p50(took),
            "text_p50_ms": p50(text),
            "rss_mb": rss_mb(proc.pid),
            "index_file_mb": round(index_mb, 1),
            "after_commits": [],
        }
        total = n
        for r in range(3):
            grow = [str(lib_dir), str(photos), spec, "2000", str(dim), str(total)]
            run_child([sys.executable, __file__, "grow", *grow])
            total += 2000
            conn.c.close()  # a new connection, as a browser's after a pause (loopback: ~0.1 ms)
            t = time.perf_counter()
            body = conn.get(f"like={int(ids[300 + r])}")
            first = time.perf_counter() - t
            again = []
            for image_id in ids[310 + 10 * r : 320 + 10 * r]:
                t = time.perf_counter()
                conn.get(f"like={image_id}")
                again.append(time.perf_counter() - t)
            out["after_commits"].append(
                {
                    "images": total,
                    "first_search_ms": round(first * 1e3, 1),
                    "then_p50_ms": p50(again),
                    "rss_mb": rss_mb(proc.pid),
                }
            )
        final_index_mb = folder_bytes(lib_dir)["index_file"] / 2**20
        out["rss_to_index_file"] = round(out["after_commits"][-1]["rss_mb"] / final_index_mb, 2)
        conn.c.close()
        return out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def filters_main(lib_dir: str) -> None:
    """In-process filter timings (a child: its own warm library)."""
    from clipsearch import Library

    out = {}
    with Library.open(lib_dir) as lib:
        some = lib.store.vector_ids()
        folder = str(Path(lib.store.get_rows([int(some[len(some) // 2])]).popitem()[1].path).parent)
        like = int(some[7])
        lib.search(like=like)
        cases = {
            "none": {},
            "date_one_year": {"after": "2013", "before": "2014"},
            "date_one_month": {"after": "2013-06", "before": "2013-07"},
            "folder_1000": {"within": [folder]},
            "source_generated": {"source": "generated"},
        }
        for name, kw in cases.items():
            times, hits = [], 0
            for _ in range(10):
                t = time.perf_counter()
                hits = len(lib.search(like=like, **kw))
                times.append(time.perf_counter() - t)
            out[name] = {"p50_ms": p50(times), "results": hits}
        lib.search("warm up the text tower")
        times = []
        for i in range(30):
            t = time.perf_counter()
            lib.search(f"a photo number {i} of a dog on a beach")
            times.append(time.perf_counter() - t)
        out["text_in_process"] = {"p50_ms": p50(times)}
    print(json.dumps(out))


def watch_round(lib_dir: Path, photos: Path) -> dict:
    proc = subprocess.Popen(
        [exe(), "-v", "--library", str(lib_dir), "watch", str(photos)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    t0 = time.perf_counter()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "catch-up scan done" in line:
                idle = time.perf_counter() - t0
                break
        else:
            raise SystemExit("watch ended before its catch-up scan")
        time.sleep(2)
        return {"start_to_idle_s": round(idle, 2), "rss_mb": rss_mb(proc.pid)}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(300)
        except subprocess.TimeoutExpired:
            proc.kill()
        _wait_for_lock(lib_dir)  # the next command writes: the daemon must be gone


def _wait_for_lock(lib_dir: Path, timeout: float = 120) -> None:
    """Until the library's writer lock is free (once seen held after a daemon exited)."""
    import fcntl

    deadline = time.monotonic() + timeout
    with open(lib_dir / "lock", "a+") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the writer lock of {lib_dir} is still held") from None
                time.sleep(0.5)


def open_main(lib_dir: str, how: str) -> None:
    """Open the library's index file (memory-mapped or read) and answer one query."""
    import resource

    from clipsearch.store.faiss_index import VectorIndex

    t0 = time.perf_counter()
    index = VectorIndex.load_latest(Path(lib_dir), mapped=how == "mapped")
    query = np.random.default_rng(0).standard_normal((1, index.dim)).astype(np.float32)
    query /= np.linalg.norm(query)
    index.search(query, 10)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "mapped": index.mapped}))


def measure(work: Path, spec: str, n: int, dim: int, keep: bool) -> dict:
    lib_dir, photos = work / f"lib-{n}", work / f"photos-{n}"
    row: dict = {"images": n, "dim": dim}
    pristine, grown = work / f"lib-{n}.grown", work / f"lib-{n}.grown.json"
    if grown.exists():  # a kept work folder: start again from the library as it was grown
        log(f"{n}: the library grown earlier ({pristine})")
        shutil.rmtree(lib_dir, ignore_errors=True)
        shutil.copytree(pristine, lib_dir)
        for later in photos.glob("more-*"):  # files the last run's commits added
            shutil.rmtree(later)
        row["grow"] = json.loads(grown.read_text())
    else:
        log(f"{n}: growing the library")
        shutil.rmtree(lib_dir, ignore_errors=True)
        shutil.rmtree(photos, ignore_errors=True)
        first = [str(lib_dir), str(photos), spec, "0", "0", "-1"]
        run_child([sys.executable, __file__, "grow", *first])
        grow = [str(lib_dir), str(photos), spec, str(n), str(dim), "0"]
        got = timed([sys.executable, __file__, "grow", *grow])
        facts = json.loads(got["stdout_tail"].strip().splitlines()[-1])
        row["grow"] = {
            "seconds": facts["seconds"],
            "images_per_s": round(n / facts["seconds"]),
            "peak_rss_mb": got["peak_rss_mb"],
            "index_kind": facts["index_kind"],
        }
        if keep:
            shutil.copytree(lib_dir, pristine)
            grown.write_text(json.dumps(row["grow"]))
    sizes = folder_bytes(lib_dir)
    row["disk"] = {
        **sizes,
        "bytes_per_image": round((sizes["database"] + sizes["index_file"]) / n),
        "database_bytes_per_image": round(sizes["database"] / n),
        "tables_mb": table_bytes(lib_dir),
    }
    log(f"{n}: status")
    status = [timed([exe(), "--library", str(lib_dir), "status", "--json"]) for _ in range(3)]
    row["status"] = {
        "median_s": round(statistics.median(s["seconds"] for s in status), 3),
        "peak_rss_mb": status[-1]["peak_rss_mb"],
        "index": json.loads(status[-1]["stdout_tail"])["index"],
    }
    log(f"{n}: filters")
    got = run_child([sys.executable, __file__, "filters", str(lib_dir)])
    row["filters"] = json.loads(got["stdout"].strip().splitlines()[-1])
    log(f"{n}: first search in a new process")
    search = [exe(), "--library", str(lib_dir), "search", "--no-server", "--json", "--like"]
    cold = [timed([*search, str(7 + i)]) for i in range(3)]
    row["cold_like_search_s"] = round(statistics.median(c["seconds"] for c in cold), 3)
    log(f"{n}: opening the index file and one search: memory-mapped vs read (interleaved)")
    opens: dict[str, list[dict]] = {"mapped": [], "read": []}
    for r in range(3):
        for how in ("mapped", "read") if r % 2 == 0 else ("read", "mapped"):
            got = run_child([sys.executable, __file__, "open", str(lib_dir), how])
            opens[how].append(json.loads(got["stdout"].strip().splitlines()[-1]))
    row["open_index"] = {
        how: {
            "median_s": round(statistics.median(o["seconds"] for o in got), 4),
            "peak_rss_mb": round(statistics.median(o["peak_rss_mb"] for o in got)),
            "mapped": got[0]["mapped"],
        }
        for how, got in opens.items()
    }
    row["open_index"]["read_over_mapped"] = round(
        row["open_index"]["read"]["median_s"] / row["open_index"]["mapped"]["median_s"], 1
    )
    log(f"{n}: serve")
    row["serve"] = serve_round(lib_dir, photos, spec, n, dim)
    n_now = n + 6000
    log(f"{n}: rebuild")
    for f in lib_dir.glob("vectors-*.faiss"):
        f.unlink()
    got = timed([exe(), "--library", str(lib_dir), "status", "--json"])
    row["rebuild"] = {
        "seconds": got["seconds"],
        "peak_rss_mb": got["peak_rss_mb"],
        "index": json.loads(got["stdout_tail"])["index"],
    }
    log(f"{n}: no-change index (the walk)")
    got = timed([exe(), "--library", str(lib_dir), "index", str(photos), "--json"])
    summary = json.loads(got["stdout_tail"])
    row["index_no_change"] = {
        "seconds": got["seconds"],
        "peak_rss_mb": got["peak_rss_mb"],
        "files": n_now + SOURCES,
        "unchanged": summary.get("unchanged"),
    }
    log(f"{n}: no-change index --quick (unchanged folders not listed)")
    got = timed([exe(), "--library", str(lib_dir), "index", str(photos), "--quick", "--json"])
    summary = json.loads(got["stdout_tail"])
    row["index_quick_no_change"] = {
        "seconds": got["seconds"],
        "peak_rss_mb": got["peak_rss_mb"],
        "unchanged": summary.get("unchanged"),
    }
    log(f"{n}: watch")
    row["watch"] = watch_round(lib_dir, photos)
    log(f"{n}: dupes")
    got = timed([exe(), "--library", str(lib_dir), "dupes", "--json"])
    report = json.loads(got["stdout_tail"]) if len(got["stdout_tail"]) < 199_000 else None
    row["dupes"] = {
        "seconds": got["seconds"],
        "peak_rss_mb": got["peak_rss_mb"],
        "reported_seconds": report["seconds"] if report else None,
        "pairs": report["pairs"] if report else None,
        "groups": len(report["groups"]) if report else None,
    }
    return row


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        return child_main(sys.argv[3:])
    if len(sys.argv) > 1 and sys.argv[1] == "grow":
        lib_dir, photos, spec, n, dim, start = sys.argv[2:8]
        print(json.dumps(build(Path(lib_dir), Path(photos), spec, int(n), int(dim), int(start))))
        return None
    if len(sys.argv) > 1 and sys.argv[1] == "filters":
        return filters_main(sys.argv[2])
    if len(sys.argv) > 1 and sys.argv[1] == "open":
        return open_main(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument(
        "--work",
        help="where the libraries go, kept for reruns (default: a temporary folder, removed)",
    )
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with contextlib.ExitStack() as stack:
        if args.work:  # kept: a rerun starts from the libraries grown here
            work = Path(args.work)
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-")))
        spec = make_model(work, args.dim)
        results = {"dim": args.dim, "sizes": {}}
        for n in sizes:
            results["sizes"][str(n)] = measure(work, spec, n, args.dim, keep=bool(args.work))
            print(json.dumps(results["sizes"][str(n)]), file=sys.stderr, flush=True)
            (work / "bench_scale.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return None


if __name__ == "__main__":
    main()
