"""Helpers shared by the tests (fixtures live in conftest.py files; helpers here).

Test files import from this module, never from each other or from a conftest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

REPO = Path(__file__).resolve().parents[1]
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_tiny_model(out: Path, seed: int = 0, cfg: dict | None = None) -> Path:
    """A randomly initialised open_clip model in local-dir layout (config + safetensors)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg = cfg or TINY_CFG
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    return out


def make_image(
    path: Path, seed: int = 0, size: tuple[int, int] = (96, 64), fmt: str | None = None, **save
) -> Path:
    """Write a random-pattern image (distinct per seed) in the format given by the suffix."""
    rng = np.random.default_rng(seed)
    w, h = size
    # Low-frequency pattern (blocks) so resizing keeps images distinct.
    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    arr = np.kron(blocks, np.ones((h // 4 + 1, w // 4 + 1, 1), dtype=np.uint8))[:h, :w]
    img = Image.fromarray(arr, "RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt, **save)
    return path


def photo_like(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A smooth random picture with structure at several scales (hashes like a photo's)."""
    rng = np.random.default_rng(seed)
    w, h = size
    out = np.zeros((h, w, 3))
    for cells in (2, 4, 8, 16):
        noise = rng.random((cells, cells, 3))
        layer = Image.fromarray((noise * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        out += np.asarray(layer, dtype=np.float64) / cells
    out = 255 * (out - out.min()) / (out.max() - out.min())
    return Image.fromarray(out.astype(np.uint8))


def big_jpeg(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """A real JPEG as large as a phone's 108/200 MP photos (coarse colour blocks, ~1-2 s)."""
    blocks = np.random.default_rng(seed).integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST).save(path, quality=30)
    return path


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid one-colour greyscale PNG: a few hundred KB on disk, width x height decoded."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    packer, rows, idat = zlib.compressobj(9), 200, []
    for done in range(0, height, rows):  # streamed: never the whole raster in memory
        idat.append(packer.compress(b"\0" * (width + 1) * min(rows, height - done)))
    idat.append(packer.flush())
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(idat))
        + chunk(b"IEND", b"")
    )
    return path


def unprivileged() -> list[str]:
    """Command prefix under which file permissions apply (root ignores them otherwise)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


def run_process(
    *args: str,
    env: dict | None = None,
    timeout: float = 120,
    prefix: list[str] | None = None,
    **kw,
) -> subprocess.CompletedProcess:
    """Run the real `clipsearch` console script in a fresh process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    exe = Path(sys.executable).with_name("clipsearch")
    return subprocess.run(
        [*(prefix or []), str(exe), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        **kw,
    )


def cs(lib: Path, *args: str, expect: int = 0):
    """Run the CLI in this process (the model stays imported: fast on a busy machine)."""
    from click.testing import CliRunner

    from clipsearch.cli import cli

    got = CliRunner().invoke(cli, ["--library", str(lib), *args], catch_exceptions=False)
    assert got.exit_code == expect, (got.stdout, got.stderr)
    return got


def new_page(browser, errors: list, **context_args):
    context = browser.new_context(**context_args)
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
    page.set_default_timeout(30_000)
    return context, page


def _dms(value: float) -> tuple:
    value = abs(value)
    deg = int(value)
    minutes = int((value - deg) * 60)
    seconds = round(((value - deg) * 60 - minutes) * 60 * 100)
    return (IFDRational(deg, 1), IFDRational(minutes, 1), IFDRational(seconds, 100))


def exif_jpeg(
    path: Path,
    seed: int,
    *,
    at: tuple[float, float] | None = None,
    make: str | None = None,
    model: str | None = None,
    taken: str | None = None,
    picture: Image.Image | None = None,
) -> Path:
    """A JPEG with real EXIF: camera, capture time ("2023:07:14 10:00:00"), GPS position."""
    img = picture or photo_like(seed)
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
    if at:
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = ("N" if at[0] >= 0 else "S"), _dms(at[0])
        gps[3], gps[4] = ("E" if at[1] >= 0 else "W"), _dms(at[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, exif=exif, quality=90)
    return path
