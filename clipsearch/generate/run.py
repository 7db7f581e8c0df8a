"""One generation, end to end: prompts -> models -> optimise -> PNG -> back into the library.

    req = GenerateRequest(("a red circle on a white background",), steps=60, seed=7)
    result = generate(lib, req, progress=print)
    result.path, result.image_id

With ``drawer="transformer"`` a text-to-image transformer over the VQGAN's codes samples
``candidates`` pictures and CLIP keeps the best (:mod:`clipsearch.generate.drafts`); with
``"transformer+vqgan"`` that best draft is where the VQGAN+CLIP optimiser starts.

The picture goes to ``LIBRARY/generated/`` (or ``req.out``) as a PNG whose text chunks say
how it was made; it is indexed at once with ``source = generated`` and its provenance in the
``generations`` table, so ``search --source generated`` finds it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from clipsearch.errors import GenerateError, VQGANError
from clipsearch.generate.prompts import Prompt, parse_prompts

log = logging.getLogger(__name__)

SHIPPED_VQGAN = "tiny-vqgan"
SHIPPED_TRANSFORMER = "tiny-dalle"
GENERATED_DIR = "generated"
TRANSFORMER_DRAWERS = ("transformer", "transformer+vqgan")
DRAWERS = ("vqgan", "pixel", *TRANSFORMER_DRAWERS)
_DEFAULT_LR = {"vqgan": 0.1, "pixel": 0.05, "transformer+vqgan": 0.05}
REFINE_STEPS = 40  # the default --steps of transformer+vqgan (a draft needs few)
MAX_CANDIDATES = 64


@dataclass(frozen=True)
class GenerateRequest:
    """What to generate. `None` means "the default for this library's model"."""

    prompts: tuple[str, ...]
    steps: int = 200
    seed: int | None = None  # None: a random seed (recorded)
    size: tuple[int, int] | None = None  # (width, height); default: the CLIP input size or 256
    lr: float | None = None
    cutouts: int = 16
    drawer: str = "vqgan"
    vqgan: str | None = None  # a .ckpt, .yaml or folder; default: shipped for tiny-shapes
    init_image: str | None = None
    out: str | None = None  # a .png path or a folder; default LIBRARY/generated/
    every: int = 0  # keep a frame every N steps (and make a GIF)
    preview: int = 0  # hand `progress` a picture every N steps
    keep_on_interrupt: bool = False
    # the transformer drawers
    candidates: int = 16  # samples CLIP re-ranks
    transformer: str | None = None  # a checkpoint (model.pt or its folder); default: shipped
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off


@dataclass
class GenerateResult:
    """What `generate` made. `to_dict()` is the `--json` / API shape."""

    path: str
    image_id: int
    prompts: list[tuple[str, float]]
    seed: int
    steps: int
    steps_done: int
    size: tuple[int, int]
    drawer: str
    clip_model: str
    vqgan_model: str | None
    loss: float | None
    interrupted: bool
    seconds: float
    gif: str | None = None
    frames: list[str] = field(default_factory=list)
    clip_score: float | None = None  # the kept picture's (transformer drawers)
    candidates: list[dict[str, Any]] = field(default_factory=list)  # best first
    candidate_images: list[Any] = field(default_factory=list, repr=False)  # PIL, not in JSON

    def to_dict(self) -> dict[str, Any]:
        out = {
            f.name: copy.deepcopy(getattr(self, f.name))
            for f in fields(self)
            if f.name != "candidate_images"
        }
        out["prompts"] = [[t, w] for t, w in self.prompts]
        out["size"] = list(self.size)
        out["seconds"] = round(self.seconds, 2)
        out["loss"] = None if self.loss is None else round(self.loss, 4)
        return out


def require_torch() -> None:
    """Generation optimises through CLIP (gradients): it needs torch, which search does not."""
    from clipsearch.model.prepare import torch_available

    if not torch_available():
        raise GenerateError(
            "generating pictures needs torch and open_clip, which are not installed here",
            hint="Install the extra: pip install 'clipsearch[generate]' (indexing, search, "
            "duplicates and tags do not need it).",
        )


def check_request(req: GenerateRequest) -> list[Prompt]:
    """Validate what needs no model; returns the parsed prompts."""
    prompts = parse_prompts(req.prompts)
    if req.drawer not in DRAWERS:
        raise GenerateError(
            f"unknown drawer {req.drawer!r}", hint="Use --drawer " + ", ".join(DRAWERS) + "."
        )
    if not 1 <= req.candidates <= MAX_CANDIDATES:
        raise GenerateError(
            f"--candidates must be from 1 to {MAX_CANDIDATES} (got {req.candidates})"
        )
    from clipsearch.generate.sampling import SamplingSettings

    SamplingSettings(req.temperature, req.top_k, req.top_p).check()
    if req.steps < 1:
        raise GenerateError(f"--steps must be at least 1 (got {req.steps})")
    if req.cutouts < 1:
        raise GenerateError(f"--cutouts must be at least 1 (got {req.cutouts})")
    if req.size is not None and (min(req.size) < 1 or max(req.size) > 2048):
        raise GenerateError(f"size {req.size[0]}x{req.size[1]} is out of range (1..2048)")
    if req.init_image is not None and not os.path.isfile(req.init_image):
        raise GenerateError(f"init image {req.init_image} not found")
    return prompts


def parse_size(text: str) -> tuple[int, int]:
    """'256x256' or '256' -> (width, height)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX*]\s*(\d+))?\s*", text or "")
    if not m:
        raise GenerateError(f"bad size {text!r}", hint="Write WIDTHxHEIGHT, e.g. --size 256x256.")
    w = int(m.group(1))
    return w, int(m.group(2) or w)


def default_transformer(lib_model: str) -> str:
    """The transformer drawer's checkpoint when none is given: the shipped one for
    tiny-shapes."""
    from clipsearch.model.specs import ModelSpec
    from clipsearch.resources import data_dir

    if ModelSpec.parse(lib_model).canonical == ModelSpec.parse("tiny-shapes").canonical:
        return str(data_dir() / "models" / SHIPPED_TRANSFORMER)
    raise GenerateError(
        f"no transformer checkpoint given, and clipsearch ships one only for the tiny-shapes "
        f"model (this library uses {lib_model})",
        hint="Train one on your VQGAN's codes with scripts/train_transformer.py and pass "
        "--transformer PATH, or use --drawer vqgan or pixel.",
    )


def default_vqgan(lib_model: str) -> str:
    """The VQGAN to use when none is given: the shipped tiny one for tiny-shapes."""
    from clipsearch.generate.vqgan import GET_IMAGENET
    from clipsearch.model.specs import ModelSpec
    from clipsearch.resources import data_dir

    if ModelSpec.parse(lib_model).canonical == ModelSpec.parse("tiny-shapes").canonical:
        return str(data_dir() / "models" / SHIPPED_VQGAN)
    raise VQGANError(
        f"no VQGAN given, and clipsearch ships one only for the tiny-shapes model "
        f"(this library uses {lib_model})",
        hint=GET_IMAGENET,
    )


def generate(
    lib: Any,  # clipsearch.library.Library
    req: GenerateRequest,
    *,
    progress: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> GenerateResult:
    """Generate a picture for `req`, save it and add it to `lib`. See the module docstring.

    Ctrl-C: with `req.keep_on_interrupt` the picture so far is saved and indexed (marked
    interrupted); otherwise KeyboardInterrupt propagates and nothing is written. A
    `should_stop()` that returns True (a cancel) raises GenerationCancelled, nothing written.
    """
    prompts = check_request(req)
    require_torch()
    lib.check_writable()  # another writer (a watch daemon)? say so now, not after minutes of
    # drawing (the picture is added under the writer lock at the end)
    out_path = _output_path(lib.path, req, prompts)  # fail early on a bad --out
    seed = req.seed if req.seed is not None else random.SystemRandom().randrange(2**31)
    if req.drawer in TRANSFORMER_DRAWERS:
        from clipsearch.generate.draw_transformer import generate_with_transformer

        return generate_with_transformer(
            lib, req, prompts, seed, out_path, progress=progress, should_stop=should_stop
        )
    parts = _build(lib, req, prompts)
    from clipsearch.generate.optimise import Settings

    settings = Settings(
        steps=req.steps,
        seed=seed,
        lr=parts.lr,
        every=req.every,
        preview=req.preview,
        init=parts.init,
    )
    log.info(
        "drawing %dx%d with %s, %d steps, seed %d",
        parts.drawer.width,
        parts.drawer.height,
        parts.vqgan_name or "pixels",
        req.steps,
        seed,
    )
    outcome = run_optimiser(parts.drawer, parts.guide, settings, req, progress, should_stop)
    provenance = {
        "prompts": json.dumps([[p.text, p.weight] for p in prompts]),
        "seed": seed,
        "steps": outcome.steps_done,
        "width": parts.drawer.width,
        "height": parts.drawer.height,
        "drawer": req.drawer,
        "clip_model": lib.model,
        "vqgan_model": parts.vqgan_name,
        "init_image": req.init_image,
        "params": json.dumps(
            {
                **settings.params(),
                "cutouts": req.cutouts,
                "steps_requested": req.steps,
                "interrupted": outcome.interrupted,
            }
        ),
        "created_at": time.time(),
    }
    return finish_generation(
        lib,
        req,
        prompts,
        outcome.image,
        provenance,
        out_path,
        outcome=outcome,
        seconds=outcome.seconds,
    )


def run_optimiser(
    drawer: Any,
    guide: Any,
    settings: Any,
    req: GenerateRequest,
    progress: Callable[[Any], None] | None,
    should_stop: Callable[[], bool] | None,
) -> Any:
    """Optimise `drawer` towards `guide`; a stop asked for by `should_stop` (the server's
    cancel) raises GenerationCancelled, a Ctrl-C keeps the picture so far if the request
    says so. Returns optimise.Outcome."""
    from clipsearch.generate.optimise import optimise

    outcome = optimise(
        drawer,
        guide,
        settings,
        progress=progress,
        should_stop=should_stop,
        keep_on_interrupt=req.keep_on_interrupt,
    )
    if outcome.interrupted and should_stop is not None and should_stop():
        raise GenerationCancelled("generation cancelled")
    return outcome


def finish_generation(
    lib: Any,
    req: GenerateRequest,
    prompts: list[Prompt],
    image: Any,  # PIL
    provenance: dict[str, Any],
    out_path: Path,
    *,
    outcome: Any = None,  # optimise.Outcome, or None when nothing was optimised
    seconds: float,
    png_chunks: dict[str, Any] | None = None,
    **extra: Any,
) -> GenerateResult:
    """The end of every generation: save the PNG with its provenance (plus `png_chunks`, in
    the file only), the frames and GIF of `outcome` when `req.every` asks, add the picture to
    `lib` with its `generations` row, and say what was made.

    Seed, steps done, size and VQGAN are read from `provenance`, so the result and the row
    agree; without an `outcome` no steps ran (`steps` 0, no loss). `extra` holds the drawer's
    own result fields (the transformer's `clip_score`, `candidates`, `candidate_images`).
    """
    from clipsearch.generate.collection import save_frames, save_png

    save_png(image, out_path, {**provenance, **(png_chunks or {})})
    frames, gif = [], None
    if outcome is not None and req.every and outcome.frames:
        from clipsearch.generate.optimise import save_gif

        frames = save_frames(outcome.frames, out_path)
        gif = str(save_gif(_gif_frames(outcome, req.every), out_path.with_suffix(".gif")))
    image_id = lib.add_generated(out_path, provenance)
    return GenerateResult(
        path=str(out_path),
        image_id=image_id,
        prompts=[(p.text, p.weight) for p in prompts],
        seed=provenance["seed"],
        steps=req.steps if outcome is not None else 0,
        steps_done=provenance["steps"],
        size=(provenance["width"], provenance["height"]),
        drawer=req.drawer,
        clip_model=lib.model,
        vqgan_model=provenance["vqgan_model"],
        loss=outcome.losses[-1] if outcome is not None and outcome.losses else None,
        interrupted=outcome.interrupted if outcome is not None else False,
        seconds=seconds,
        gif=gif,
        frames=[str(f) for f in frames],
        **extra,
    )


def _gif_frames(outcome: Any, every: int) -> list[Any]:
    """The kept frames, plus the final picture unless the last frame already is it."""
    if outcome.steps_done % every == 0 and not outcome.interrupted:
        return list(outcome.frames)
    return [*outcome.frames, outcome.image]


class GenerationCancelled(GenerateError):
    """A running generation was cancelled (nothing was saved)."""


@dataclass
class _Parts:
    drawer: Any
    guide: Any
    lr: float
    init: Any
    vqgan_name: str | None


def _build(lib: Any, req: GenerateRequest, prompts: list[Prompt]) -> _Parts:
    """Load CLIP (the library's model) and the drawer; check the size against the VQGAN."""
    from clipsearch.generate.drawers import PixelDrawer, VQGANDrawer, load_init
    from clipsearch.generate.guide import ClipGuide

    vqgan, vqgan_name = None, None
    if req.drawer == "vqgan":  # before CLIP loads: a missing checkpoint fails fast
        from clipsearch.generate.vqgan import load_vqgan

        vqgan = load_vqgan(req.vqgan or default_vqgan(lib.model))
        vqgan_name = SHIPPED_VQGAN if req.vqgan is None else vqgan.source
    enc = lib.torch_encoder()  # CLIP guidance needs gradients: torch
    params = enc.params
    width, height = req.size or (params.size[0] if params.size[0] <= 128 else 256,) * 2
    if vqgan is not None:
        vqgan = vqgan.to(enc.device)
        vqgan.decoder.checkpointing = width * height > 160 * 160  # memory: recompute in backward
        drawer: Any = VQGANDrawer(vqgan, width, height)
    else:
        drawer = PixelDrawer(width, height, device=enc.device)
    guide = ClipGuide.for_encoder(enc, prompts, cutouts=req.cutouts)
    init = load_init(req.init_image, width, height) if req.init_image else None
    return _Parts(drawer, guide, req.lr or _DEFAULT_LR[req.drawer], init, vqgan_name)


def _output_path(library: Path, req: GenerateRequest, prompts: list[Prompt]) -> Path:
    """Where the PNG goes: `req.out` (a .png, or a folder) or LIBRARY/generated/NAME.png."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9]+", "-", prompts[0].text.lower()).strip("-")[:60] or "image"
    name = f"{stamp}-{slug}.png"
    if req.out is None:
        folder = Path(library) / GENERATED_DIR
    elif req.out.lower().endswith(".png"):
        path = Path(req.out).expanduser().absolute()
        if path.exists():
            raise GenerateError(f"{path} already exists", hint="Choose another --out file.")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    else:
        folder = Path(req.out).expanduser().absolute()
        if folder.exists() and not folder.is_dir():
            raise GenerateError(f"--out {folder} is a file that is not a .png")
    folder.mkdir(parents=True, exist_ok=True)
    path, n = folder / name, 2
    while path.exists():
        path, n = folder / f"{stamp}-{slug}-{n}.png", n + 1
    return path
