"""Sampling image codes from the transformer: temperature, top-k, top-p, a KV cache.

    codes = sample_codes(model, text, generator=g, top_k=64, top_p=0.95)   # (B, grid*grid)

With the cache (the default) the text prefix runs once and every new code attends to the
keys and values kept from before: one position per step instead of the whole sequence. The
random draws are the same either way (one ``torch.multinomial`` per position, from the
generator passed in), so both paths give the same codes for the same seed.

torch is imported inside the functions: :class:`SamplingSettings` checks requests cheaply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clipsearch.errors import GenerateError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SamplingSettings:
    """`top_k` 0 / `top_p` 1.0: no filtering; `temperature` > 0."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def check(self) -> None:
        if not self.temperature > 0:
            raise GenerateError(f"temperature must be above 0 (got {self.temperature})")
        if self.top_k < 0:
            raise GenerateError(f"top-k must be 0 (off) or more (got {self.top_k})")
        if not 0 < self.top_p <= 1:
            raise GenerateError(f"top-p must be in (0, 1] (got {self.top_p})")


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Logits (B, V) with all but the top-k, then all outside the nucleus of mass top-p,
    set to -inf (the most likely token always stays)."""
    import torch

    out = logits.clone()
    if 0 < top_k < out.shape[-1]:
        kth = torch.topk(out, top_k, dim=-1).values[:, -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(out, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of the tokens ranked above each one
        drop_sorted = before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


def _draw(logits: torch.Tensor, s: SamplingSettings, g: torch.Generator) -> torch.Tensor:
    import torch

    probs = filter_logits(logits.float() / s.temperature, s.top_k, s.top_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=g)


def sample_codes(
    model,  # TextToImageTransformer
    text: torch.Tensor,
    *,
    generator: torch.Generator,
    settings: SamplingSettings | None = None,
    use_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Codes (B, grid*grid) for text token ids (B, text_len), one position at a time."""
    import torch

    s = settings or SamplingSettings()
    s.check()
    model.eval()
    with torch.inference_mode():
        return _sample(model, text, generator, s, use_cache, progress)


def _sample(model, text, generator, s, use_cache, progress) -> torch.Tensor:
    import torch

    n = model.cfg.image_len
    codes = torch.zeros(text.shape[0], 0, dtype=torch.long, device=text.device)
    caches: list[dict] | None = [{} for _ in model.blocks] if use_cache else None
    x = model.embed_text(text)
    for i in range(n):
        if use_cache:
            h = model.hidden(x, caches)[:, -1]
        else:
            full = torch.cat([model.embed_text(text), model.embed_image(codes)], 1)
            h = model.hidden(full)[:, -1]
        nxt = _draw(model.image_head(h), s, generator)
        codes = torch.cat([codes, nxt], 1)
        if use_cache:
            x = model.embed_image(nxt, start=i)
        if progress is not None:
            progress(i + 1, n)
    return codes
