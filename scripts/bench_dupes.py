"""Near-duplicate benchmark: clipsearch's `dupes` against imagededup's hash methods.

Builds, in a temp dir, 9 transformed copies of each real photo in
`../shared/datasets/imagenet-sample` (the originals are read in place, never copied):

    resize50, resize25 (LANCZOS, JPEG q90), jpeg30 (JPEG quality 30), crop90 (centre 90%),
    bright+25 / bright-25 (PIL brightness x1.25 / x0.75), hflip, reencode (PNG for even,
    lossy WebP q80 for odd originals), rotate (3, 4 or 5 degrees, black corners)

Truth: an original and its 9 copies form one group (45 pairs); different originals are
different images. Scores precision / recall / F1 over pairs, two ways:

- `grouped`: pairs implied by the groups (what a user reviews; one wrong link merges two
  groups and costs up to 100 false pairs),
- `direct`: the pairs each method itself reports.

clipsearch indexes the originals + copies (with a tiny model: only the grouping time after
indexing is measured, and exact + near use perceptual hashes, not the model), then times
`Library.duplicates(threshold=None)`. In the same run imagededup (pip install
'clipsearch[bench]') scores PHash, DHash, WHash and AHash with default settings on the same
files (encoding + finding timed together: it has no index).

    python scripts/bench_dupes.py [--limit N] [--max-distance BITS] [--skip-imagededup]
    python scripts/bench_dupes.py --scale 1000000 [--uniform]

`--scale N` measures near copies at library scale without indexing: the 10,000 benchmark
pictures are hashed as `index` hashes them, grouped by exhaustive search and by the binary
inverted file (`clipsearch.dupes.find.hash_index`) in the same run (precision and recall of
each), then grown to 100k and N codes with pictures derived from the real ones (each a real
photo's code with 28-40 of its 128 bits flipped: the real photos' layout, none a near copy),
and the time and peak memory (a fresh process per size) of finding every near pair are
reported, exhaustive search alongside at 100k. `--uniform` fills with uniformly random codes
instead: no structure for the inverted file to use (its worst case).

Prints JSON.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "datasets" / "imagenet-sample"
TRANSFORMS = (
    "resize50",
    "resize25",
    "jpeg30",
    "crop90",
    "bright+25",
    "bright-25",
    "hflip",
    "reencode",
    "rotate",
)


def make_copies(src: str, n: int, out: Path) -> list[tuple[str, str]]:
    """The 9 copies of original number `n`; returns (transform, path) pairs."""
    from PIL import Image, ImageEnhance

    img = Image.open(src).convert("RGB")
    w, h = img.size
    stem = Path(src).stem
    cw, ch = round(w * 0.9), round(h * 0.9)
    left, top = (w - cw) // 2, (h - ch) // 2
    lanczos = Image.Resampling.LANCZOS
    q90 = {"quality": 90}
    jobs = {
        "resize50": (img.resize((max(1, w // 2), max(1, h // 2)), lanczos), "JPEG", q90),
        "resize25": (img.resize((max(1, w // 4), max(1, h // 4)), lanczos), "JPEG", q90),
        "jpeg30": (img, "JPEG", {"quality": 30}),
        "crop90": (img.crop((left, top, left + cw, top + ch)), "JPEG", {"quality": 90}),
        "bright+25": (ImageEnhance.Brightness(img).enhance(1.25), "JPEG", {"quality": 90}),
        "bright-25": (ImageEnhance.Brightness(img).enhance(0.75), "JPEG", {"quality": 90}),
        "hflip": (img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "JPEG", {"quality": 90}),
        "reencode": (img, "PNG", {}) if n % 2 == 0 else (img, "WEBP", {"quality": 80}),
        "rotate": (img.rotate(3 + n % 3, Image.Resampling.BICUBIC), "JPEG", {"quality": 90}),
    }
    out_paths = []
    for name, (picture, fmt, options) in jobs.items():
        ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[fmt]
        path = out / f"{stem}__{name}.{ext}"
        picture.save(path, fmt, **options)
        out_paths.append((name, str(path)))
    return out_paths


def build(limit: int, out: Path) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Originals (all in the dataset), and for the first `limit`: copy -> original, transform."""
    originals = sorted(glob.glob(str(DATASET / "*.JPEG")))
    if not originals:
        sys.exit(f"no photos in {DATASET}")
    truth: dict[str, str] = {}
    kind: dict[str, str] = {}
    for n, src in enumerate(originals[:limit]):
        for name, path in make_copies(src, n, out):
            truth[path] = src
            kind[path] = name
    return originals, truth, kind


def pair_set(groups: list[list[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for g in groups for p in combinations(g, 2)}  # type: ignore[misc]


def union_groups(pairs: set[tuple[str, str]]) -> list[list[str]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    out: dict[str, list[str]] = {}
    for x in parent:
        out.setdefault(find(x), []).append(x)
    return list(out.values())


def score(predicted: set[tuple[str, str]], true: set[tuple[str, str]]) -> dict:
    tp = len(predicted & true)
    p = tp / len(predicted) if predicted else 1.0
    r = tp / len(true) if true else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f1, 4),
        "true_pairs": len(true),
        "found_pairs": len(predicted),
        "false_pairs": len(predicted) - tp,
    }


def per_transform(groups: list[list[str]], truth: dict[str, str], kind: dict[str, str]) -> dict:
    """Recall per transform: the copy ends up in its original's group."""
    where = {path: i for i, g in enumerate(groups) for path in g}
    hits: dict[str, list[int]] = {}
    for copy, orig in truth.items():
        same = copy in where and where.get(orig) == where[copy]
        hits.setdefault(kind[copy], []).append(int(same))
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(hits.items())}


def per_transform_direct(direct: set, truth: dict[str, str], kind: dict[str, str]) -> dict:
    """Recall per transform of the (original, copy) pair itself: a library holding only the
    two (no other copies to link through)."""
    hits: dict[str, list[int]] = {}
    for copy, orig in truth.items():
        hits.setdefault(kind[copy], []).append(int(tuple(sorted((copy, orig))) in direct))
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(hits.items())}


def run_clipsearch(originals, copies_dir: Path, lib_dir: Path, max_distance: int) -> dict:
    from clipsearch import Library

    started = time.perf_counter()
    with Library.open(lib_dir, model="tiny-shapes") as lib:
        summary = lib.index([str(DATASET), str(copies_dir)])
        index_s = time.perf_counter() - started
        t0 = time.perf_counter()
        report = lib.duplicates(max_distance=max_distance, threshold=None)
        group_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with_similar = lib.duplicates(max_distance=max_distance, threshold=0.95)
        similar_s = time.perf_counter() - t0
        rows = lib.store.get_rows(
            {p.a for g in report.groups for p in g.pairs}
            | {p.b for g in report.groups for p in g.pairs}
        )
    groups = [[m.path for m in g.members] for g in report.groups]
    direct = {
        tuple(sorted((rows[p.a].path, rows[p.b].path))) for g in report.groups for p in g.pairs
    }
    return {
        "groups": groups,
        "direct": direct,
        "index_seconds": round(index_s, 2),
        "indexed": summary.added,
        "group_seconds": round(group_s, 3),
        "with_similar_seconds": round(similar_s, 3),
        "pairs_by_reason": report.pairs,
        "similar_groups": len(with_similar.groups),
    }


def run_imagededup(method_name: str, all_dir: Path) -> dict:
    from imagededup import methods

    method = getattr(methods, method_name)(verbose=False)
    t0 = time.perf_counter()
    encodings = method.encode_images(image_dir=str(all_dir))
    found = method.find_duplicates(encoding_map=encodings)  # default max_distance_threshold
    seconds = time.perf_counter() - t0
    real = {name: os.path.realpath(all_dir / name) for name in encodings}
    direct = {tuple(sorted((real[a], real[b]))) for a, dups in found.items() for b in dups}
    return {"direct": direct, "seconds": round(seconds, 2)}


def hash_all(paths: list[str]):
    """The codes `index` stores for these pictures (decoded as it decodes them)."""
    import numpy as np

    from clipsearch.media import phash
    from clipsearch.media.images import open_image

    out = []
    for p in paths:
        img, _ = open_image(p, draft_size=224)
        out.append(phash.compute(img).as_tuple())
    return np.asarray(out, np.int64)


def grow(real, n: int, uniform: bool, seed: int = 5):
    """`n` codes: the real ones, then derived (or uniformly random) ones."""
    import numpy as np

    rng = np.random.default_rng(seed)
    extra = n - len(real)
    if uniform:
        fill = rng.integers(-(2**63), 2**63 - 1, size=(extra, 4), dtype=np.int64)
        return np.concatenate([real, fill])
    parts = [real]
    for start in range(0, extra, 50_000):
        src = real[rng.integers(0, len(real), min(50_000, extra - start))]
        bits = np.unpackbits(src.copy().view(np.uint8), axis=1)
        for row in bits:
            pos = rng.choice(128, int(rng.integers(28, 41)), replace=False)
            row[pos] ^= 1
            row[pos + 128] ^= 1
        parts.append(np.packbits(bits, axis=1).view(np.int64))
    return np.concatenate(parts)


def _near_child(path: str, max_distance: int, exhaustive: bool, out) -> None:
    import resource

    import numpy as np

    from clipsearch.dupes import find

    hashes = np.load(path)
    if exhaustive:
        find.NEAR_EXHAUSTIVE_UP_TO = len(hashes)
    t0 = time.perf_counter()
    pairs = find.near_pairs(np.arange(len(hashes)), hashes, max_distance)
    out.put(
        {
            "seconds": round(time.perf_counter() - t0, 2),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "pairs": [(p.a, p.b) for p in pairs if p.a < 10_000 and p.b < 10_000],
            "all_pairs": len(pairs),
        }
    )


def near_in_child(hashes, max_distance: int, exhaustive: bool, tmp: Path) -> dict:
    """near_pairs over `hashes` in a fresh process: its time and peak RSS alone."""
    import multiprocessing as mp

    import numpy as np

    path = tmp / "codes.npy"
    np.save(path, hashes)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_near_child, args=(str(path), max_distance, exhaustive, queue))
    proc.start()
    got = queue.get()
    proc.join()
    return got


def run_scale(args, max_distance: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-dupes-scale-") as tmp:
        copies = Path(tmp) / "copies"
        copies.mkdir()
        originals, truth, _ = build(args.limit, copies)
        paths = [*originals, *sorted(truth)]
        t0 = time.perf_counter()
        real = hash_all(paths)
        hash_s = time.perf_counter() - t0
        true_groups: dict[str, list[str]] = {}
        for copy, orig in truth.items():
            true_groups.setdefault(orig, [orig]).append(copy)
        true_pairs = pair_set(list(true_groups.values()))
        result: dict = {
            "pictures": len(paths),
            "hash_seconds": round(hash_s, 1),
            "max_distance_bits_of_128": max_distance,
            "fill": "uniform random" if args.uniform else "derived from the real codes",
        }
        for name, exhaustive in (("exhaustive", True), ("inverted_file", False)):
            got = near_in_child(real, max_distance, exhaustive, Path(tmp))
            direct = {tuple(sorted((paths[a], paths[b]))) for a, b in got.pop("pairs")}
            groups = union_groups(direct)  # type: ignore[arg-type]
            result[f"real_{name}"] = {
                "grouped": score(pair_set(groups), true_pairs),
                "direct": score(direct, true_pairs),  # type: ignore[arg-type]
                **got,
            }
        sizes = sorted({100_000, args.scale})
        for n in sizes:
            codes = grow(real, n, args.uniform)
            row = {"inverted_file": near_in_child(codes, max_distance, False, Path(tmp))}
            if n <= 100_000:
                row["exhaustive"] = near_in_child(codes, max_distance, True, Path(tmp))
            real_found = {}
            for name, got in row.items():
                real_found[name] = {tuple(p) for p in got.pop("pairs")}
            exact_real = {
                (a, b) for a, b in (tuple(sorted(p)) for p in real_found.get("exhaustive", ()))
            }
            if exact_real:
                inv = {tuple(sorted(p)) for p in real_found["inverted_file"]}
                row["inverted_file"]["real_pairs_recall_vs_exhaustive"] = round(
                    len(inv & exact_real) / len(exact_real), 4
                )
                row["speedup"] = round(
                    row["exhaustive"]["seconds"] / max(1e-9, row["inverted_file"]["seconds"]), 1
                )
            result[f"n_{n}"] = row
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=1000, help="originals that get copies")
    ap.add_argument("--max-distance", type=int, default=None)
    ap.add_argument("--skip-imagededup", action="store_true")
    ap.add_argument("--scale", type=int, default=0, help="near copies among N codes (see above)")
    ap.add_argument("--uniform", action="store_true", help="with --scale: uniform random fill")
    args = ap.parse_args()
    from clipsearch.dupes.find import DEFAULT_MAX_DISTANCE

    max_distance = DEFAULT_MAX_DISTANCE if args.max_distance is None else args.max_distance
    if args.scale:
        print(json.dumps(run_scale(args, max_distance), indent=2))
        return
    with tempfile.TemporaryDirectory(prefix="bench-dupes-") as tmp:
        copies = Path(tmp) / "copies"
        copies.mkdir()
        t0 = time.perf_counter()
        originals, truth, kind = build(args.limit, copies)
        build_s = time.perf_counter() - t0
        real = {os.path.realpath(p): p for p in [*originals, *truth]}
        true_groups: dict[str, list[str]] = {}
        for copy, orig in truth.items():
            true_groups.setdefault(orig, [orig]).append(copy)
        true_pairs = pair_set([[os.path.realpath(p) for p in g] for g in true_groups.values()])
        truth_real = {os.path.realpath(c): os.path.realpath(o) for c, o in truth.items()}
        kind_real = {os.path.realpath(c): k for c, k in kind.items()}

        ours = run_clipsearch(originals, copies, Path(tmp) / "library", max_distance)
        our_groups = [[os.path.realpath(p) for p in g] for g in ours.pop("groups")]
        result: dict = {
            "dataset": str(DATASET),
            "originals": len(originals),
            "originals_with_copies": len(true_groups),
            "copies": len(truth),
            "images": len(originals) + len(truth),
            "build_seconds": round(build_s, 1),
            "clipsearch": {
                "methods": "exact + near (pHash+dHash, as-is and mirrored)",
                "max_distance_bits_of_128": max_distance,
                "grouped": score(pair_set(our_groups), true_pairs),
                "direct": score(ours["direct"], true_pairs),
                "recall_per_transform": per_transform(our_groups, truth_real, kind_real),
                "direct_recall_per_transform": per_transform_direct(
                    ours.pop("direct"), truth_real, kind_real
                ),
                **ours,
            },
        }
        if not args.skip_imagededup:
            flat = Path(tmp) / "all"
            flat.mkdir()
            for i, p in enumerate(real.values()):
                os.symlink(p, flat / f"{i:05d}{Path(p).suffix.lower()}")
            peers = {}
            for name in ("PHash", "DHash", "WHash", "AHash"):
                got = run_imagededup(name, flat)
                groups = union_groups(got["direct"])
                peers[name] = {
                    "grouped": score(pair_set(groups), true_pairs),
                    "direct": score(got["direct"], true_pairs),
                    "recall_per_transform": per_transform(groups, truth_real, kind_real),
                    "direct_recall_per_transform": per_transform_direct(
                        got["direct"], truth_real, kind_real
                    ),
                    "seconds_encode_and_find": got["seconds"],
                }
            result["imagededup"] = peers
            best = max(peers, key=lambda k: peers[k]["grouped"]["f1"])
            ours_f1 = result["clipsearch"]["grouped"]["f1"]
            result["comparison"] = {
                "imagededup_best_method": best,
                "imagededup_best_f1_grouped": peers[best]["grouped"]["f1"],
                "clipsearch_f1_grouped": ours_f1,
                "f1_ratio": round(ours_f1 / max(1e-9, peers[best]["grouped"]["f1"]), 3),
            }
        c = result["clipsearch"]
        result["targets"] = {
            "precision>=0.99": c["grouped"]["precision"] >= 0.99,
            "recall>=0.95": c["grouped"]["recall"] >= 0.95,
            "grouping<60s": c["group_seconds"] < 60,
            "better_f1_than_imagededup": result.get("comparison", {}).get("f1_ratio", 0) > 1,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
