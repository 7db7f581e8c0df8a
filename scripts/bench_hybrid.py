#!/usr/bin/env python
"""Hybrid queries (filters, places, keywords) against a pure semantic query, at 100k images.

    python scripts/bench_hybrid.py [--n 100000] [--dim 512] [--rounds 30] [--work DIR]

The library is grown through the project's own commit path (`Library.vectors.apply`, as
`index` commits: image rows, float16 vectors, photo facts and keyword rows in one transaction
per 2,000 images), every row a real file (hard links to 32 small JPEGs). Vectors are clustered
as CLIP embeddings are (bench_scale's data); 30% of the photos carry a GPS position in one of
40 cities (the place resolved offline as `index` does), 70% a camera (10 models), 3% OCR text
("invoice" in a tenth of those); folders are named from a 200-word list, 500 pictures each.

Each query runs in-process (`Library.search`, the model a random open_clip with a 512-d
embedding and tiny towers, so the text encoder's cost stays out and the ratio shows what the
filters and the keyword index add); the queries take turns within each round. Prints JSON:
p50 per query, the ratio to the pure semantic query (target <= 1.5x), results per query,
and the keyword index's bytes per picture.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_scale

CITIES = [
    "Lisbon",
    "Porto",
    "Paris",
    "London",
    "Berlin",
    "Madrid",
    "Rome",
    "Vienna",
    "Prague",
    "Amsterdam",
    "Brussels",
    "Copenhagen",
    "Oslo",
    "Stockholm",
    "Helsinki",
    "Dublin",
    "Edinburgh",
    "Zurich",
    "Munich",
    "Milan",
    "Barcelona",
    "Seville",
    "Athens",
    "Istanbul",
    "Cairo",
    "Nairobi",
    "Cape Town",
    "Tokyo",
    "Kyoto",
    "Seoul",
    "Beijing",
    "Bangkok",
    "Singapore",
    "Sydney",
    "Auckland",
    "New York",
    "Chicago",
    "San Francisco",
    "Mexico City",
    "Buenos Aires",
]
CAMERAS = [
    ("Google", "Pixel 7"),
    ("Google", "Pixel 8 Pro"),
    ("Apple", "iPhone 13"),
    ("Apple", "iPhone 15 Pro"),
    ("Canon", "Canon EOS 5D Mark IV"),
    ("NIKON CORPORATION", "NIKON D750"),
    ("SONY", "ILCE-7M3"),
    ("FUJIFILM", "X-T4"),
    ("samsung", "SM-G991B"),
    ("OLYMPUS", "E-M10"),
]
QUERIES = {
    "semantic": "a dog on a beach",
    "near_and_dates": "a dog on a beach near:Lisbon after:2015",
    "country": "a dog on a beach near:Japan",
    "quoted_keyword": 'a dog on a beach "harbour"',
    "text_and_camera": "a receipt text:invoice camera:pixel",
    "folder_name": "a dog on a beach in:harbour",
}
BATCH = 2_000
FOLDER_WORDS = (
    "holidays harbour garden birthday wedding hiking beach snow city family friends "
    "school work trip summer winter spring autumn party concert museum market river "
    "mountain lake forest desert island village castle bridge church station airport"
)


def words() -> list[str]:
    rng = np.random.default_rng(3)
    base = FOLDER_WORDS.split()
    out = list(base)
    while len(out) < 200:
        out.append("".join(rng.choice(list("abcdefghijklmnoprstuvwy"), size=7)))
    return out


def build(lib_dir: Path, photos: Path, spec: str, n: int, dim: int) -> dict:
    from clipsearch import Library
    from clipsearch.ingest.reading import facts_row
    from clipsearch.media.metadata import PhotoFacts
    from clipsearch.media.places import find_places
    from clipsearch.store.store import Changes

    real = photos / "real"
    real.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(32):
        blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(np.kron(blocks, np.ones((16, 16, 1), np.uint8))).save(real / f"p{i}.jpg")
    sources = sorted(real.glob("*.jpg"))
    stats = [f.stat() for f in sources]
    centres = [find_places(c)[0] for c in CITIES]
    vocab = words()
    data = bench_scale.Data(dim)
    t0 = time.perf_counter()
    with Library.open(lib_dir, model=spec) as lib:
        lib.index([str(real)])  # the model, the vector size
        for done in range(0, n, BATCH):
            count = min(BATCH, n - done)
            vecs, codes, dates, kinds = data.batch(count)
            inserts = []
            for j in range(count):
                i = done + j
                folder = photos / f"{vocab[(i // 500) % len(vocab)]} {i // 500:03d}"
                if i % 500 == 0:
                    folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"IMG_{i:06d}.jpg"
                os.link(sources[i % 32], path)
                st = stats[i % 32]
                facts = PhotoFacts()
                r = rng.random(3)
                if r[0] < 0.7:
                    make, model = CAMERAS[int(rng.integers(0, len(CAMERAS)))]
                    facts = PhotoFacts(make, model)
                if r[1] < 0.3:
                    c = centres[int(rng.integers(0, len(centres)))]
                    lat = c.lat + rng.normal(0, 0.05)
                    lon = c.lon + rng.normal(0, 0.05)
                    facts = PhotoFacts(facts.camera_make, facts.camera_model, None, lat, lon)
                row = facts_row(facts)
                inserts.append(
                    bench_scale.new_image(path, st, vecs[j], dates[j], kinds[j], codes[j], row)
                )
            ids = lib.vectors.apply(Changes(inserts=inserts))
            texts = {}
            for image_id in ids:
                if rng.random() < 0.03:
                    word = "invoice" if rng.random() < 0.1 else vocab[int(rng.integers(0, 200))]
                    texts[image_id] = f"total {word} {int(rng.integers(0, 9999))}"
            if texts:
                from clipsearch.store.facts import set_ocr

                set_ocr(lib.store, texts)
        lib.vectors.save()
    return {"seconds": round(time.perf_counter() - t0, 1)}


def keyword_bytes(db: Path) -> dict:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    images = conn.execute("SELECT count(*) FROM images").fetchone()[0]
    conn.close()
    kw = sum(size for name, size in rows if name.startswith("keywords"))
    facts = sum(size for name, size in rows if "photo_facts" in name)
    return {
        "keywords_bytes_per_picture": round(kw / images, 1),
        "facts_bytes_per_picture": round(facts / images, 1),
    }


def measure(lib_dir: Path, rounds: int) -> dict:
    from clipsearch import Library

    times: dict[str, list[float]] = {k: [] for k in QUERIES}
    hits: dict[str, int] = {}
    with Library.open(lib_dir) as lib:
        for q in QUERIES.values():  # warm: the text tower, the place data, the caches
            lib.search(q, k=10)
        for r in range(rounds):
            order = list(QUERIES.items())
            order = order[r % len(order) :] + order[: r % len(order)]
            for name, q in order:
                t = time.perf_counter()
                found = lib.search(q, k=10)
                times[name].append(time.perf_counter() - t)
                hits[name] = len(found)
    base = statistics.median(times["semantic"])
    out = {}
    for name in QUERIES:
        p50 = statistics.median(times[name])
        out[name] = {
            "query": QUERIES[name],
            "p50_ms": round(p50 * 1e3, 2),
            "ratio_to_semantic": round(p50 / base, 2),
            "results": hits[name],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-hybrid-"))
    work.mkdir(parents=True, exist_ok=True)
    lib_dir, photos = work / f"lib-{args.n}", work / f"photos-{args.n}"
    spec = bench_scale.make_model(work, args.dim)
    grown = None
    if not (lib_dir / "clipsearch.db").exists():
        grown = build(lib_dir, photos, spec, args.n, args.dim)
    result = {
        "images": args.n,
        "dim": args.dim,
        "grown": grown,
        **keyword_bytes(lib_dir / "clipsearch.db"),
        "queries": measure(lib_dir, args.rounds),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
