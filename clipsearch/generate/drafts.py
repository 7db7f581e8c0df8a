"""The transformer drawer at generation time: N samples, decoded, re-ranked by CLIP.

    drafts = draw_candidates(loaded, vqgan, guide, "a red star", n=16, seed=7)
    drafts.best.image, drafts.best.clip_score, [c.clip_score for c in drafts.candidates]

The transformer reads the text once per candidate (all N in one batch), samples the image
codes with the KV cache, the VQGAN decodes them, and CLIP (the library's model) scores each
picture against the prompts: the weighted mean of cosine similarities,
``sum_p w_p cos(picture, p) / sum_p |w_p|`` (negative weights push away). Candidates come
back sorted best first. :func:`codes_to_latent` hands the best codes to the VQGAN+CLIP
optimiser as its starting point (``--drawer transformer+vqgan``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from clipsearch.generate.optimise import to_pil
from clipsearch.generate.sampling import SamplingSettings, sample_codes


@dataclass
class Candidate:
    """One sample: its index in the batch, its CLIP score, its picture and its codes."""

    index: int
    clip_score: float
    image: Image.Image
    codes: torch.Tensor  # (grid, grid) int64


@dataclass
class Drafts:
    """The candidates, best first, and what it took to make them."""

    candidates: list[Candidate]
    text: str
    unknown_words: list[str] = field(default_factory=list)
    sample_seconds: float = 0.0
    decode_seconds: float = 0.0
    score_seconds: float = 0.0

    @property
    def best(self) -> Candidate:
        return self.candidates[0]

    @property
    def seconds(self) -> float:
        return self.sample_seconds + self.decode_seconds + self.score_seconds


def conditioning_text(prompts: Sequence[Any]) -> str:
    """The text the transformer reads: the highest-weighted prompt (the first among equals)."""
    return max(prompts, key=lambda p: p.weight).text


@torch.inference_mode()
def decode_codes(vqgan: Any, codes: torch.Tensor, grid: int) -> torch.Tensor:
    """Codes (B, grid*grid) -> pictures (B, 3, H, W) in [0, 1]."""
    zq = vqgan.quantize.lookup(
        codes.view(-1, grid, grid).to(vqgan.quantize.embedding.weight.device)
    )
    return vqgan.decode(zq).add(1).div(2).clamp(0, 1)


@torch.inference_mode()
def clip_scores(guide: Any, images: torch.Tensor) -> list[float]:
    """The weighted mean cosine similarity of each picture (B, 3, H, W) with the prompts."""
    size = guide.cutouts.size
    if images.shape[-1] != size or images.shape[-2] != size:
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    emb = guide.embed(images.to(guide.mean.device))
    sims = emb @ guide.text.t()  # (B, prompts)
    w = guide.weights
    return ((sims * w).sum(1) / w.abs().sum()).tolist()


def draw_candidates(
    loaded: Any,  # clipsearch.generate.transformer.LoadedTransformer
    vqgan: Any,
    guide: Any,  # clipsearch.generate.guide.ClipGuide
    text: str,
    *,
    n: int,
    seed: int,
    settings: SamplingSettings | None = None,
    use_cache: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> Drafts:
    """Sample `n` pictures for `text`, decode them, score them with CLIP; best first.

    `should_stop()` is asked after each sampled position; when it says True the sampling
    stops with :class:`StopDrawing`."""
    model, tok = loaded.model, loaded.tokenizer
    device = next(model.parameters()).device
    ids = torch.tensor([tok.encode(text)] * n, device=device)
    g = torch.Generator().manual_seed(seed)

    def check(_i: int, _n: int) -> None:
        if should_stop is not None and should_stop():
            raise StopDrawing

    t0 = time.perf_counter()
    codes = sample_codes(
        model, ids, generator=g, settings=settings, use_cache=use_cache, progress=check
    )
    t1 = time.perf_counter()
    images = decode_codes(vqgan, codes, model.cfg.grid)
    t2 = time.perf_counter()
    scores = clip_scores(guide, images)
    t3 = time.perf_counter()
    grid = model.cfg.grid
    cands = [
        Candidate(i, scores[i], to_pil(images[i : i + 1]), codes[i].view(grid, grid).cpu())
        for i in range(n)
    ]
    cands.sort(key=lambda c: (-c.clip_score, c.index))
    return Drafts(cands, text, tok.unknown(text), t1 - t0, t2 - t1, t3 - t2)


class StopDrawing(Exception):
    """Raised inside the sampling loop when `should_stop()` says so."""


def codes_to_latent(vqgan: Any, codes: torch.Tensor) -> torch.Tensor:
    """Codes (grid, grid) -> the latent (1, C, grid, grid) the VQGAN drawer starts from."""
    with torch.no_grad():
        idx = codes.view(1, *codes.shape[-2:]).to(vqgan.quantize.embedding.weight.device)
        return vqgan.quantize.lookup(idx)
