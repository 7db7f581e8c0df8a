#!/usr/bin/env python
"""The watch daemon's speed: close-to-searchable latency, and a burst against `index`.

    python scripts/bench_watch.py [--model tiny-shapes] [--files 60] [--burst 2000]
                                  [--settle 1.0] [--interval 0.25] [--repeat 3]

1. **latency**: a `clipsearch watch` daemon (a real process) watches an empty folder. One file
   every `--interval` seconds is written into it (open, write, close); another process (this
   one) searches for it every 10 ms. Latency = time from the file's `close()` to the first
   search that returns it; median, p95 and max over `--files` files. Target: median <= settle
   time + 1 s.
2. **burst**: `--burst` files are copied into a watched folder at once. `watch` = from the
   first copy to the moment a search returns every file. Baseline, same files, same machine:
   copy them into a folder, then `Library.index()` it (model already loaded: pure indexing).
   `ratio` = watch / (copy + index): the cost of following a folder live against indexing it
   after the fact. Target: <= 1.2. `ratio_vs_index_only` leaves the copy out of the baseline.
   `--repeat` rounds alternate the two (a shared machine is noisy); the medians are reported.

Both sides (and the searching reader) use the same model threads: `--threads`, by default the
daemon's own default (half the cores). `BENCH_WATCH_LOG=FILE` keeps the daemons' debug log.

Pictures come from ../shared/datasets/imagenet-sample (real JPEGs; mirrored copies make the
count up to 2,000 distinct files) or, without it, are generated. The model defaults to the
shipped `tiny-shapes`; when it is not there yet, random weights in tiny-shapes' architecture
(the same compute) stand in, and the JSON says so: latency measures plumbing, not quality.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clipsearch.ingest.daemon import default_threads

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "imagenet-sample"
CLI = str(Path(sys.executable).with_name("clipsearch"))
THREADS = 1  # model threads for the daemon, the baseline index and the reader (see --threads)


def log(msg: str) -> None:
    print(f"bench_watch: {msg}", file=sys.stderr, flush=True)


# --- inputs ---------------------------------------------------------------------------------


def resolve_model(spec: str, work: Path) -> tuple[str, str | None]:
    """The model to use, and a note when it had to fall back."""
    if spec != "tiny-shapes":
        return spec, None
    from clipsearch.errors import ClipsearchError
    from clipsearch.model.specs import ModelSpec, resolve

    try:
        resolve(ModelSpec.parse(spec))
        return spec, None
    except (ClipsearchError, OSError) as exc:
        note = (
            f"tiny-shapes is not available ({str(exc).splitlines()[0]}); using random weights "
            "in its architecture instead (same compute; latency measures plumbing, not quality)"
        )
        log(note)
        return "local-dir:" + str(write_random_tiny_shapes(work / "tiny-shapes-random")), note


def write_random_tiny_shapes(out: Path) -> Path:
    """An open_clip model with tiny-shapes' architecture and random weights (local-dir)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from clipsearch.resources import model_configs_dir

    cfg = json.loads((model_configs_dir() / "tiny-shapes.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.CLIP(**cfg)
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    return out


def make_pictures(n: int, out: Path) -> list[Path]:
    """`n` distinct JPEGs: the sample photos, then mirrored copies; generated without them."""
    import numpy as np
    from PIL import Image, ImageOps

    out.mkdir(parents=True, exist_ok=True)
    photos = sorted(DATASET.glob("*.JPEG"))
    files = []
    for i in range(n):
        dst = out / f"p{i:05d}.jpg"
        if photos and i < len(photos):
            shutil.copyfile(photos[i], dst)
        elif photos:
            with Image.open(photos[i % len(photos)]) as img:
                variant = ImageOps.mirror(img.convert("RGB"))
                if i >= 2 * len(photos):
                    variant = ImageOps.flip(variant)
                variant.save(dst, quality=90)
        else:
            rng = np.random.default_rng(i)
            blocks = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
            arr = np.kron(blocks, np.ones((60, 60, 1), dtype=np.uint8))
            Image.fromarray(arr, "RGB").save(dst, quality=90)
        files.append(dst)
    return files


# --- the daemon -----------------------------------------------------------------------------


def start_daemon(lib: Path, model: str, folder: Path, settle: float) -> subprocess.Popen:
    threads = ["--threads", str(THREADS)]
    log_args = (
        ["--log-file", os.environ["BENCH_WATCH_LOG"]] if "BENCH_WATCH_LOG" in os.environ else []
    )
    proc = subprocess.Popen(
        [
            CLI,
            "--library",
            str(lib),
            "--model",
            model,
            *threads,
            "-q" if not log_args else "-v",
            "watch",
            str(folder),
            "--settle",
            str(settle),
            *log_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            state = json.loads((lib / "daemon.json").read_text())
            if state["pid"] == proc.pid and state["state"] == "watching":
                return proc
        except (OSError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            sys.exit(f"the daemon exited with {proc.returncode}")
        time.sleep(0.05)
    sys.exit("the daemon did not start")


def stop_daemon(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    if proc.returncode != 0:
        sys.exit(f"the daemon failed ({proc.returncode})")


# --- 1. latency -----------------------------------------------------------------------------


def measure_latency(model: str, files: list[Path], work: Path, settle: float, interval: float):
    from clipsearch import Library

    lib_dir, folder = work / "lat-lib", work / "lat-watched"
    folder.mkdir()
    proc = start_daemon(lib_dir, model, folder, settle)
    latencies: list[float] = []
    try:
        with Library.open(lib_dir, create=False, threads=THREADS) as reader:
            warm = files[:3]  # loads the reader's text encoder and the daemon's pipeline
            wait_searchable(reader, _write_all(warm, folder), timeout=60)
            outstanding: dict[str, float] = {}
            for src in files[3:]:
                dst = folder / src.name
                data = src.read_bytes()
                with open(dst, "wb") as f:
                    f.write(data)
                outstanding[str(dst)] = time.monotonic()  # right after close()
                _poll(reader, outstanding, latencies, until=time.monotonic() + interval)
            _poll(reader, outstanding, latencies, until=time.monotonic() + 60)
            if outstanding:
                sys.exit(f"{len(outstanding)} files never became searchable")
    finally:
        stop_daemon(proc)
    latencies.sort()
    return {
        "files": len(latencies),
        "interval_s": interval,
        "median_s": round(statistics.median(latencies), 3),
        "p95_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3),
        "max_s": round(latencies[-1], 3),
        "all_s": [round(x, 3) for x in latencies],
        "target_median_s": settle + 1.0,
        "ok": statistics.median(latencies) <= settle + 1.0,
    }


def _write_all(files: list[Path], folder: Path) -> list[str]:
    out = []
    for src in files:
        shutil.copyfile(src, folder / src.name)
        out.append(str(folder / src.name))
    return out


def _poll(reader, outstanding: dict[str, float], latencies: list[float], until: float) -> None:
    while outstanding and time.monotonic() < until:
        hits = reader.search("a photo", within=list(outstanding), k=len(outstanding))
        now = time.monotonic()
        for hit in hits:
            if hit.path in outstanding:
                latencies.append(now - outstanding.pop(hit.path))
        time.sleep(0.01)
    if not outstanding:
        time.sleep(max(0.0, until - time.monotonic()))


def wait_searchable(reader, paths: list[str], timeout: float) -> float:
    """Seconds until one search returns every path in `paths`."""
    t0 = time.monotonic()
    want = set(paths)
    while time.monotonic() - t0 < timeout:
        if want <= {h.path for h in reader.search("a photo", k=len(want) + 10)}:
            return time.monotonic() - t0
        time.sleep(0.05)
    sys.exit(f"not every file became searchable within {timeout}s")


# --- 2. burst -------------------------------------------------------------------------------


def measure_burst(model: str, files: list[Path], work: Path, settle: float, repeat: int):
    """`repeat` rounds of (index, watch), alternating; the median ratio is the figure."""
    rounds = []
    for r in range(repeat):
        index_s, copy_s = _burst_index(model, files, work / f"idx{r}")
        watch_s, copied = _burst_watch(model, files, work / f"watch{r}", settle)
        rounds.append(
            {
                "watch_s": round(watch_s, 3),
                "copy_s": round(copied, 3),
                "index_s": round(index_s, 3),
                "index_copy_s": round(copy_s, 3),
                "ratio": round(watch_s / (copy_s + index_s), 3),
                "ratio_vs_index_only": round(watch_s / index_s, 3),
            }
        )
        log(f"burst round {r + 1}: {rounds[-1]}")
    ratio = statistics.median(r["ratio"] for r in rounds)
    return {
        "files": len(files),
        "rounds": rounds,
        "ratio": ratio,
        "ratio_vs_index_only": statistics.median(r["ratio_vs_index_only"] for r in rounds),
        "target_ratio": 1.2,
        "ok": ratio <= 1.2,
    }


def _burst_index(model: str, files: list[Path], work: Path) -> tuple[float, float]:
    """Copy, then index (the model is loaded first: pure indexing time)."""
    from clipsearch import Library

    folder = work / "photos"
    folder.mkdir(parents=True)
    t0 = time.monotonic()
    _write_all(files, folder)
    copy_s = time.monotonic() - t0
    with Library.open(work / "lib", model=model, threads=THREADS) as lib:
        lib.warm_up()
        t0 = time.monotonic()
        summary = lib.index([folder])
        index_s = time.monotonic() - t0
    if summary.added != len(files):
        sys.exit(f"index added {summary.added} of {len(files)} files")
    return index_s, copy_s


def _burst_watch(model: str, files: list[Path], work: Path, settle: float):
    """Copy into a watched folder; until one search returns every file."""
    from clipsearch import Library

    lib_dir, folder = work / "lib", work / "watched"
    folder.mkdir(parents=True)
    proc = start_daemon(lib_dir, model, folder, settle)
    try:
        with Library.open(lib_dir, create=False, threads=THREADS) as reader:
            reader.search("warm up")
            t0 = time.monotonic()
            paths = _write_all(files, folder)
            copied = time.monotonic() - t0
            _wait_count(lib_dir, len(paths), timeout=600)
            wait_searchable(reader, paths, timeout=600)
            watch_s = time.monotonic() - t0
    finally:
        stop_daemon(proc)
    return watch_s, copied


def _wait_count(lib_dir: Path, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(lib_dir / "clipsearch.db") as conn:
            (got,) = conn.execute("SELECT count(*) FROM vectors").fetchone()
        if got >= n:
            return
        time.sleep(0.05)
    sys.exit(f"the daemon did not index {n} files within {timeout}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny-shapes")
    ap.add_argument("--files", type=int, default=60, help="latency test files (0: skip)")
    ap.add_argument("--burst", type=int, default=2000, help="files in the burst (0: skip)")
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--interval", type=float, default=0.25, help="seconds between files")
    ap.add_argument("--repeat", type=int, default=3, help="burst rounds (median ratio)")
    ap.add_argument(
        "--threads",
        type=int,
        help="model threads, daemon and index alike "
        "(default: the daemon's own default, half the cores)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    global THREADS
    THREADS = args.threads or default_threads()

    work = Path(os.path.realpath(tempfile.mkdtemp(prefix="bench-watch-")))
    try:
        model, note = resolve_model(args.model, work)
        log(f"preparing {args.files + 3 + args.burst} pictures")
        pics = make_pictures(args.files + 3 + args.burst, work / "pictures")
        latency = None
        if args.files:
            log("latency")
            latency = measure_latency(
                model, pics[: args.files + 3], work, args.settle, args.interval
            )
        burst = None
        if args.burst:
            log("burst")
            burst = measure_burst(model, pics[args.files + 3 :], work, args.settle, args.repeat)
        result = {
            "model": model if note is None else "tiny-shapes architecture, random weights",
            "model_note": note,
            "settle_s": args.settle,
            "cpus": os.cpu_count(),
            "threads": THREADS,
            "photos": "imagenet-sample" if DATASET.is_dir() else "generated",
            "latency": latency,
            "burst": burst,
        }
        print(json.dumps(result, indent=2))
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
