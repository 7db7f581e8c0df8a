"""Generated pictures on disk: PNGs that carry their provenance in text chunks.

Keys written (all text): ``prompt`` (the prompts as typed, e.g. ``sunset:1 | people:-0.5``),
``prompts`` (JSON ``[[text, weight], ...]``), ``seed``, ``steps``, ``width``, ``height``,
``drawer``, ``clip_model``, ``vqgan_model``, ``init_image``, ``params`` (JSON: lr, cutouts,
...), ``created_at`` and ``Software``. :func:`read_provenance` reads them back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from clipsearch import __version__


def save_png(image: Image.Image, path: Path, provenance: dict[str, Any]) -> Path:
    """Write `image` to `path` atomically with `provenance` in PNG text chunks."""
    info = PngInfo()
    prompts = json.loads(provenance["prompts"])
    info.add_text("prompt", " | ".join(f"{t}:{w:g}" for t, w in prompts))
    for key, value in provenance.items():
        if value is not None:
            info.add_text(key, str(value))
    info.add_text("Software", f"clipsearch {__version__} generate")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        image.save(tmp, format="PNG", pnginfo=info)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_provenance(path: str | Path) -> dict[str, str]:
    """The text chunks of a PNG (empty for other files)."""
    with Image.open(path) as im:
        return dict(getattr(im, "text", {}) or {})


def save_frames(frames: list[Image.Image], png: Path) -> list[Path]:
    """Frames next to the picture: NAME-frames/0000.png, 0001.png, ..."""
    folder = png.with_name(png.stem + "-frames")
    folder.mkdir(exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        p = folder / f"{i:04d}.png"
        frame.save(p)
        paths.append(p)
    return paths
