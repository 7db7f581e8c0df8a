#!/usr/bin/env python
"""Indexing and cold-query speed on real photos, side by side with rclip, in one run.

    python scripts/bench_index.py [--n 300] [--rounds 3] [--no-rclip]

Same photos (`../shared/datasets/imagenet-sample`) and the same weights everywhere: OpenCLIP's
ViT-B-32 with random weights (seed 0: the real cost, no download), exported once to ONNX.
Every mode runs in its own process; rounds are interleaved (the modes' order rotates), so load
on this shared machine falls on all alike; the medians and the per-round ratios are reported.

In-process throughput (images/s, model already loaded):
- `loop`: the per-image loop tutorials write (open_clip on torch, one image at a time);
- `torch_forward`: torch's batched fp32 forward on pre-decoded tensors;
- `ort_forward_fp32` / `ort_forward_int8`: ONNX Runtime's forward on pre-decoded uint8 batches
  (the sessions clipsearch uses): the ceiling for `index` on each runtime;
- `ov_forward_fp32` / `ov_forward_bf16`: the same on OpenVINO (the `[openvino]` extra);
- `index_fp32` / `index_int8` / `index_bf16`: `Library.index()` of the photos into a library
  already set up (its model loaded and its precision chosen on 48 other photos): scan, read,
  hash, decode, perceptual hashes, encode, SQLite, FAISS, index file. fp32 image batches run on
  OpenVINO when it is installed (the default), `index_fp32_ort` keeps them on ONNX Runtime
  (`--device cpu`); int8 runs on ONNX Runtime, bf16 on OpenVINO.

Whole processes (what a user waits for), against rclip 3.x installed in a scratch venv under
`.bench/` and pointed at an ONNX export of the same weights (its own 256 px default model is
replaced by the 224 px export through its data folder; a wrapper sets its crop size to 224):
- `cli_index_fp32` / `cli_index_int8` / `cli_index_bf16` / `rclip_index`: add the photos to a
  library that holds 48 others (set-up excluded);
- `cli_query_*` / `rclip_query`: a cold text query on that library (`--no-server`).

Also: the FLOPs of one image, the CPU's measured fp32 matrix-multiply peak, and the fraction
of it each runtime reaches. Prints JSON; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "imagenet-sample"
BENCH = ROOT / ".bench"
MODEL = "ViT-B-32:random"
RCLIP_VERSION = "3.3.0"
IN_PROCESS = (
    "loop",
    "torch_forward",
    "ort_forward_fp32",
    "ort_forward_int8",
    "ov_forward_fp32",
    "ov_forward_bf16",
    "index_fp32",
    "index_fp32_ort",
    "index_int8",
    "index_bf16",
)
QUERY = "a dog running on a beach"


SETUP = 48  # photos that set a library up (its precision is checked on them); not timed


def photos(n: int) -> tuple[list[Path], list[Path]]:
    """(set-up photos, the n timed photos): distinct files of the sample."""
    files = sorted(DATASET.glob("*.JPEG"))
    if len(files) < n + SETUP:
        sys.exit(f"need {n + SETUP} photos in {DATASET}, found {len(files)}")
    return files[:SETUP], files[SETUP : SETUP + n]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- in-process modes (run in a child process each) ---------------------------------------


def _torch_model(threads: int | None):
    import torch

    from clipsearch.model.torch_encoder import TorchEncoder

    if threads:
        torch.set_num_threads(threads)
    return TorchEncoder(MODEL, device="cpu").load().torch_model


def run_loop(args) -> dict:
    import open_clip
    import torch
    from PIL import Image

    model = _torch_model(args.threads)
    preprocess = open_clip.image_transform(224, is_train=False)
    files = photos(args.n)[1]
    with torch.inference_mode():
        model.encode_image(preprocess(Image.open(files[0]).convert("RGB"))[None])  # warm-up
        t0 = time.perf_counter()
        for f in files:
            model.encode_image(preprocess(Image.open(f).convert("RGB"))[None])
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "images_per_s": len(files) / seconds}


def _pixels(files, params):
    import numpy as np

    from clipsearch.media.images import load_for_model

    return np.stack([load_for_model(f, params)[0] for f in files])


def run_torch_forward(args) -> dict:
    import torch

    from clipsearch.model.torch_encoder import TorchEncoder

    enc = TorchEncoder(MODEL, device="cpu", batch_size=args.batch_size).load()
    if args.threads:
        torch.set_num_threads(args.threads)
    pixels = _pixels(photos(args.n)[1], enc.params)
    enc.encode_images(pixels[: args.batch_size])  # warm-up
    t0 = time.perf_counter()
    enc.encode_images(pixels)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "images_per_s": len(pixels) / seconds}


def run_forward(args, precision: str, device: str) -> dict:
    from clipsearch.model.encoder import Encoder

    enc = Encoder(
        MODEL, batch_size=args.batch_size, threads=args.threads, precision=precision, device=device
    )
    pixels = _pixels(photos(args.n)[1], enc.params)
    enc.encode_images(pixels[: args.batch_size])  # warm-up: the session
    # As `index` runs it: batches side by side when the encoder runs several at once.
    batches = [pixels[i : i + args.batch_size] for i in range(0, len(pixels), args.batch_size)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(enc.batch_streams) as pool:
        list(pool.map(enc.encode_images, batches))
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "images_per_s": len(pixels) / seconds,
        "streams": enc.batch_streams,
        "runtime": enc.runtime,
    }


def run_index(args, precision: str, device: str = "auto") -> dict:
    from clipsearch import Library

    first, files = photos(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        setup, src = Path(tmp) / "setup", Path(tmp) / "photos"
        setup.mkdir()
        src.mkdir()
        for f in first:
            (setup / f.name).symlink_to(f)
        for f in files:  # symlinks: the photos stay where they are
            (src / f.name).symlink_to(f)
        lib = Library.open(
            Path(tmp) / "lib",
            model=MODEL,
            batch_size=args.batch_size,
            threads=args.threads,
            workers=args.workers,
            precision=precision,
            device=device,
        )
        lib.index([setup])  # model loaded, precision chosen: not indexing throughput
        t0 = time.perf_counter()
        summary = lib.index([src])
        seconds = time.perf_counter() - t0
        chosen = lib.precision
        runtime = lib.encoder.runtime
        lib.close()
    assert summary.added == len(files), summary.to_dict()
    assert chosen == precision, (chosen, precision)
    return {
        "seconds": seconds,
        "images_per_s": len(files) / seconds,
        "stages": summary.timings,
        "runtime": runtime,
    }


def child(args) -> None:
    modes = {
        "loop": run_loop,
        "torch_forward": run_torch_forward,
        "ort_forward_fp32": lambda a: run_forward(a, "fp32", "cpu"),
        "ort_forward_int8": lambda a: run_forward(a, "int8", "cpu"),
        "ov_forward_fp32": lambda a: run_forward(a, "fp32", "openvino"),
        "ov_forward_bf16": lambda a: run_forward(a, "bf16", "openvino"),
        "index_fp32": lambda a: run_index(a, "fp32"),
        "index_fp32_ort": lambda a: run_index(a, "fp32", "cpu"),
        "index_int8": lambda a: run_index(a, "int8"),
        "index_bf16": lambda a: run_index(a, "bf16"),
    }
    out = modes[args.child](args)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(json.dumps(out))


def spawn(mode: str, args, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--n", str(args.n)]
    cmd += ["--batch-size", str(args.batch_size)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode:
        sys.exit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- whole processes: clipsearch's CLI and rclip ---------------------------------------------


def rclip_venv() -> Path:
    """rclip in a scratch venv (never a project dependency)."""
    venv = BENCH / f"rclip-{RCLIP_VERSION}"
    exe = venv / "bin" / "rclip"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"rclip=={RCLIP_VERSION}"], check=True
        )
    return venv


def rclip_data(folder: Path) -> Path:
    """rclip's data folder holding an ONNX export of our weights in rclip's conventions:
    a float (N, 3, 224, 224) "input" image tower, an int64 "input" text tower, no output
    normalisation, and open_clip's BPE vocabulary."""
    models = folder / "ViT-B-32-256-datacomp_s34b_b86k"
    if (models / "textual.onnx").exists():
        return folder
    import warnings

    import open_clip
    import torch
    from open_clip.tokenizer import default_bpe

    model = _torch_model(None)

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, x):
            return self.m.encode_text(x)

    models.mkdir(parents=True)
    torch.backends.mha.set_fastpath_enabled(False)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        for module, example, name in (
            (model.visual.eval(), torch.zeros(1, 3, 224, 224), "visual.onnx"),
            (Text().eval(), open_clip.tokenize(["a"]), "textual.onnx"),
        ):
            torch.onnx.export(
                module,
                (example,),
                str(models / name),
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "b"}, "output": {0: "b"}},
                opset_version=18,
                dynamo=False,
            )
    (folder / "tokenizer").mkdir(exist_ok=True)
    shutil.copy(default_bpe(), folder / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz")
    return folder


RCLIP_WRAPPER = """
import sys
import rclip.utils.preprocess as pre
pre.IMAGE_SIZE = 224  # our export is the 224 px ViT-B-32 (rclip's own default is 256 px)
from rclip.main import main
sys.argv[0] = "rclip"
main()
"""


def timed(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{cmd[:4]} failed:\n{proc.stderr[-3000:]}")
    return seconds


def whole_processes(args, env: dict, work: Path) -> dict[str, list[float]]:
    first, files = photos(args.n)
    cli = str(Path(sys.executable).with_name("clipsearch"))
    times: dict[str, list[float]] = {}
    rclip = None if args.no_rclip else rclip_venv()
    data = None if rclip is None else rclip_data(BENCH / "rclip-data-vit-b-32-random")
    wrapper = work / "run_rclip.py"
    wrapper.write_text(RCLIP_WRAPPER)
    modes = ["cli_index_fp32", "cli_index_int8", "cli_index_bf16"]
    modes += [] if rclip is None else ["rclip_index"]
    for r in range(args.rounds):
        for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:
            case = work / f"{mode}-{r}"
            src = case / "photos"
            src.mkdir(parents=True)
            for f in first:
                (src / f.name).symlink_to(f)
            if mode.startswith("cli"):
                lib = case / "lib"
                precision = mode.rsplit("_", 1)[1]
                base = [cli, "--library", str(lib), "--model", MODEL, "--precision", precision]
                timed([*base, "index", str(src)], env=env)  # set-up: the first photos
                for f in files:
                    (src / f.name).symlink_to(f)
                times.setdefault(mode, []).append(timed([*base, "index", str(src)], env=env))
                q = timed([cli, "--library", str(lib), "search", QUERY, "--no-server"], env=env)
                times.setdefault(f"cli_query_{precision}", []).append(q)
            else:
                assert rclip is not None and data is not None
                renv = {**env, "RCLIP_DATADIR": str(case / "rclip-data")}
                shutil.copytree(data, case / "rclip-data", symlinks=True)
                py = str(rclip / "bin" / "python")
                timed([py, str(wrapper), "-t", "1", QUERY], cwd=src, env=renv)  # set-up
                for f in files:
                    (src / f.name).symlink_to(f)
                times.setdefault(mode, []).append(
                    timed([py, str(wrapper), "-t", "1", QUERY], cwd=src, env=renv)
                )
                q = timed([py, str(wrapper), "-n", "-t", "10", QUERY], cwd=src, env=renv)
                times.setdefault("rclip_query", []).append(q)
            shutil.rmtree(case, ignore_errors=True)
    return times


# --- the hardware ceiling -------------------------------------------------------------------


def vit_b32_flops() -> float:
    """Multiply-adds x 2 of ViT-B/32 at 224 px (patch embedding, 12 blocks, projection)."""
    tokens, width, mlp, layers, patches = 50, 768, 3072, 12, 49
    macs = patches * (3 * 32 * 32) * width
    per_layer = tokens * width * 3 * width + 2 * tokens * tokens * width
    per_layer += tokens * width * width + 2 * tokens * width * mlp
    macs += layers * per_layer + width * 512
    return 2.0 * macs


def theoretical_peak() -> dict:
    """fp32 FLOP/s, int8 op/s and bf16 FLOP/s the cores could do at the clock /proc/cpuinfo
    reports (the nominal clock: cores that boost above it can beat these figures).

    Assumes two FMA pipes per core of the widest vector the flags name (512 bits with
    AVX-512: 64 fp32 FLOP/cycle/core, as on AMD Zen 5) and VNNI's four int8 multiply-adds per
    32-bit lane for int8.
    """
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    mhz = max(float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz"))
    flags = next(line for line in info.splitlines() if line.startswith("flags")).split()
    lanes = 16 if "avx512f" in flags else 8
    per_cycle = 2 * lanes * 2  # two FMA pipes, a multiply and an add each
    cores = os.cpu_count() or 1
    fp32 = cores * per_cycle * mhz * 1e6
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    bf16 = "avx512_bf16" in flags or "amx_bf16" in flags  # a pair of products per fp32 lane
    return {
        "mhz": mhz,
        "fp32_flops": fp32,
        "int8_ops": fp32 * (4 if vnni else 2),
        "bf16_flops": fp32 * (2 if bf16 else 1),
    }


def gemm_peak(threads: int) -> float:
    """The best fp32 matrix-multiply rate NumPy's BLAS reaches here (FLOP/s)."""
    import numpy as np

    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    b = np.random.default_rng(1).random((2048, 2048), dtype=np.float32)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048**3 / (time.perf_counter() - t0))
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--no-rclip", action="store_true", help="skip the rclip comparison")
    p.add_argument(
        "--no-processes",
        action="store_true",
        help="only the in-process modes (no whole-process comparison with rclip)",
    )
    p.add_argument(
        "--processes-only",
        action="store_true",
        help="only the whole-process comparison with rclip (no in-process modes)",
    )
    p.add_argument("--child", choices=IN_PROCESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    BENCH.mkdir(exist_ok=True)
    env = {**os.environ, "CLIPSEARCH_CACHE": str(BENCH / "model-cache")}
    # Installed packages come with their bytecode (rclip's venv has it); a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile clipsearch's modules in every process.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "clipsearch")], check=True)
    runs: dict[str, list[dict]] = {m: [] for m in IN_PROCESS}
    for mode in ("ort_forward_int8", "ov_forward_fp32", "ov_forward_bf16"):
        spawn(mode, args, env)  # export, quantize, compile (cached) once, outside the timings
    if args.processes_only:
        with tempfile.TemporaryDirectory() as tmp:
            procs = whole_processes(args, env, Path(tmp))
        print(json.dumps({"whole_process_seconds": procs, **_vs_rclip(procs)}, indent=2))
        return
    for r in range(args.rounds):
        order = IN_PROCESS[r % len(IN_PROCESS) :] + IN_PROCESS[: r % len(IN_PROCESS)]
        for mode in order:
            runs[mode].append(spawn(mode, args, env))
    procs: dict[str, list[float]] = {}
    if not args.no_processes:
        with tempfile.TemporaryDirectory() as tmp:
            procs = whole_processes(args, env, Path(tmp))

    def med(mode: str) -> float:
        return statistics.median(x["images_per_s"] for x in runs[mode])

    def per_round(a: str, b: str) -> list[float]:
        pairs = zip(runs[a], runs[b], strict=True)
        return [round(x["images_per_s"] / y["images_per_s"], 3) for x, y in pairs]

    flops, peak = vit_b32_flops(), gemm_peak(args.threads or os.cpu_count() or 1)
    ceiling = theoretical_peak()
    report: dict = {
        "benchmark": "index",
        "n_images": args.n,
        "rounds": args.rounds,
        "model": MODEL,
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
        "images_per_s": {m: round(med(m), 2) for m in IN_PROCESS},
        "peak_rss_mb": {m: max(x["peak_rss_mb"] for x in runs[m]) for m in IN_PROCESS},
        "ratios": {
            "index_fp32_vs_ov_forward_fp32": per_round("index_fp32", "ov_forward_fp32"),
            "index_fp32_ort_vs_ort_forward_fp32": per_round("index_fp32_ort", "ort_forward_fp32"),
            "index_int8_vs_ort_forward_int8": per_round("index_int8", "ort_forward_int8"),
            "index_bf16_vs_ov_forward_bf16": per_round("index_bf16", "ov_forward_bf16"),
            "ov_forward_fp32_vs_ort_forward_fp32": per_round("ov_forward_fp32", "ort_forward_fp32"),
            "ov_forward_bf16_vs_ort_forward_fp32": per_round("ov_forward_bf16", "ort_forward_fp32"),
            "index_fp32_vs_index_fp32_ort": per_round("index_fp32", "index_fp32_ort"),
            "ort_forward_fp32_vs_torch_forward": per_round("ort_forward_fp32", "torch_forward"),
            "ort_forward_int8_vs_ort_forward_fp32": per_round(
                "ort_forward_int8", "ort_forward_fp32"
            ),
            "index_fp32_vs_loop": per_round("index_fp32", "loop"),
        },
        "whole_process_seconds": {k: [round(v, 2) for v in vs] for k, vs in procs.items()},
        "hardware": {
            "gflop_per_image": round(flops / 1e9, 2),
            "numpy_fp32_gemm_gflops": round(peak / 1e9, 1),
            "cpu_mhz": ceiling.get("mhz"),
            "theoretical_fp32_gflops": round(ceiling.get("fp32_flops", 0) / 1e9, 1),
            "theoretical_int8_gops": round(ceiling.get("int8_ops", 0) / 1e9, 1),
            "theoretical_bf16_gflops": round(ceiling.get("bf16_flops", 0) / 1e9, 1),
            "fraction_of_theoretical": {
                m: round(med(m) * flops / ceiling[key], 3)
                for m, key in (
                    ("torch_forward", "fp32_flops"),
                    ("ort_forward_fp32", "fp32_flops"),
                    ("ov_forward_fp32", "fp32_flops"),
                    ("ort_forward_int8", "int8_ops"),
                    ("ov_forward_bf16", "bf16_flops"),
                )
            }
            if ceiling
            else None,
        },
    }
    report.update(_vs_rclip(procs))
    print(json.dumps(report, indent=2))


def _vs_rclip(procs: dict[str, list[float]]) -> dict:
    """rclip's seconds / clipsearch's, per round (above 1: clipsearch is faster)."""
    if "rclip_index" not in procs:
        return {}

    def faster(slow: list[float], fast: list[float]) -> list[float]:
        return [round(a / b, 3) for a, b in zip(slow, fast, strict=True)]

    rc, rq = procs["rclip_index"], procs["rclip_query"]
    out = {}
    for precision in ("fp32", "int8", "bf16"):
        ratios = faster(rc, procs[f"cli_index_{precision}"])
        out[f"index_{precision}_speedup"] = ratios
        out[f"index_{precision}_speedup_median"] = statistics.median(ratios)
        out[f"cold_query_{precision}_speedup"] = faster(rq, procs[f"cli_query_{precision}"])
    return {"vs_rclip": out}


if __name__ == "__main__":
    main()
