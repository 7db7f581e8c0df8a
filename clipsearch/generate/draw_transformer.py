"""One generation with the transformer drawers, end to end (called by :func:`run.generate`).

- ``transformer``: N candidates sampled and decoded, CLIP keeps the best.
- ``transformer+vqgan``: the same, then the best draft's codes are where the VQGAN+CLIP
  optimiser starts (``req.steps`` steps, a few dozen by default).

The picture is saved and indexed like every generated picture; its provenance says which
drawer, transformer and VQGAN made it, the seed, how many candidates, each candidate's CLIP
score and the kept one's (in ``params``, and as PNG text chunks ``candidates``,
``clip_score`` and ``transformer_model``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clipsearch.errors import GenerateError
from clipsearch.generate.prompts import Prompt

log = logging.getLogger(__name__)


def _models(lib: Any, req: Any) -> tuple[Any, str, Any]:
    """(VQGAN, its name, the checkpoint): checked against each other before CLIP loads."""
    from clipsearch.generate.run import SHIPPED_VQGAN, default_transformer, default_vqgan
    from clipsearch.generate.transformer import load_transformer
    from clipsearch.generate.vqgan import load_vqgan

    vqgan = load_vqgan(req.vqgan or default_vqgan(lib.model))
    vqgan_name = SHIPPED_VQGAN if req.vqgan is None else vqgan.source
    loaded = load_transformer(req.transformer or default_transformer(lib.model), vqgan=vqgan)
    side = loaded.size
    if req.size is not None and tuple(req.size) != (side, side):
        raise GenerateError(
            f"the transformer drawer draws {side}x{side} pictures (a {loaded.model.cfg.grid}x"
            f"{loaded.model.cfg.grid} grid of codes), not {req.size[0]}x{req.size[1]}",
            hint=f"Leave --size out (or use --size {side}x{side}).",
        )
    return vqgan, vqgan_name, loaded


def generate_with_transformer(
    lib: Any,
    req: Any,  # run.GenerateRequest
    prompts: list[Prompt],
    seed: int,
    out_path: Path,
    *,
    progress: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Any:  # run.GenerateResult
    from clipsearch.generate.drafts import (
        StopDrawing,
        clip_scores,
        codes_to_latent,
        conditioning_text,
        draw_candidates,
    )
    from clipsearch.generate.guide import ClipGuide
    from clipsearch.generate.run import (
        _DEFAULT_LR,
        GenerationCancelled,
        finish_generation,
        run_optimiser,
    )
    from clipsearch.generate.sampling import SamplingSettings

    vqgan, vqgan_name, loaded = _models(lib, req)
    enc = lib.torch_encoder()
    vqgan = vqgan.to(enc.device)
    loaded.model.to(enc.device)
    guide = ClipGuide.for_encoder(enc, prompts, cutouts=req.cutouts)
    text = conditioning_text(prompts)
    sampling = SamplingSettings(req.temperature, req.top_k, req.top_p)
    log.info("sampling %d candidates for %r, seed %d", req.candidates, text, seed)
    try:
        drafts = draw_candidates(
            loaded,
            vqgan,
            guide,
            text,
            n=req.candidates,
            seed=seed,
            settings=sampling,
            should_stop=should_stop,
        )
    except StopDrawing:
        raise GenerationCancelled("generation cancelled") from None
    if drafts.unknown_words:
        log.warning(
            "the transformer does not know %s: read as <unk>", ", ".join(drafts.unknown_words)
        )
    best = drafts.best
    image, steps_done, interrupted, seconds = best.image, 0, False, drafts.seconds
    outcome, lr, score = None, None, best.clip_score
    if req.drawer == "transformer+vqgan":
        from clipsearch.generate.drawers import VQGANDrawer
        from clipsearch.generate.optimise import Settings

        side = loaded.size
        drawer = VQGANDrawer(vqgan, side, side)
        drawer.init_latent = codes_to_latent(vqgan, best.codes)
        lr = req.lr or _DEFAULT_LR["transformer+vqgan"]
        settings = Settings(steps=req.steps, seed=seed, lr=lr, every=req.every, preview=req.preview)
        outcome = run_optimiser(drawer, guide, settings, req, progress, should_stop)
        image, steps_done, interrupted = outcome.image, outcome.steps_done, outcome.interrupted
        seconds += outcome.seconds
        score = clip_scores(guide, _tensor(image))[0]
    side = loaded.size
    details = {
        "candidates": req.candidates,
        "clip_score": round(score, 4),
        "kept_candidate": best.index,
        "candidate_scores": [[c.index, round(c.clip_score, 4)] for c in drafts.candidates],
        "transformer": loaded.name,
        "transformer_checkpoint": loaded.path,
        "text": text,
        "unknown_words": drafts.unknown_words,
        "temperature": req.temperature,
        "top_k": req.top_k,
        "top_p": req.top_p,
        "cutouts": req.cutouts,
        "sample_seconds": round(drafts.sample_seconds, 3),
    }
    if outcome is not None:
        details.update(
            draft_clip_score=round(best.clip_score, 4),
            lr=lr,
            every=req.every,
            steps_requested=req.steps,
            interrupted=interrupted,
        )
    provenance = {
        "prompts": json.dumps([[p.text, p.weight] for p in prompts]),
        "seed": seed,
        "steps": steps_done,
        "width": side,
        "height": side,
        "drawer": req.drawer,
        "clip_model": lib.model,
        "vqgan_model": vqgan_name,
        "init_image": None,
        "params": json.dumps(details),
        "created_at": time.time(),
    }
    chunks = {
        "candidates": req.candidates,
        "clip_score": f"{score:.4f}",
        "transformer_model": loaded.name,
    }
    return finish_generation(
        lib,
        req,
        prompts,
        image,
        provenance,
        out_path,
        outcome=outcome,
        seconds=seconds,
        png_chunks=chunks,
        clip_score=round(score, 4),
        candidates=[
            {"index": c.index, "clip_score": round(c.clip_score, 4), "kept": c is best}
            for c in drafts.candidates
        ],
        candidate_images=[c.image for c in drafts.candidates],
    )


def _tensor(image: Any) -> Any:
    """A PIL picture -> (1, 3, H, W) in [0, 1]."""
    import numpy as np
    import torch

    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)
