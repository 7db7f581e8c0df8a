"""Drawers: what the optimiser changes to make the picture.

- :class:`VQGANDrawer` optimises a VQGAN latent grid; every step quantises it to the nearest
  codebook entries with straight-through gradients and decodes it (the VQGAN+CLIP method).
  It can start from a latent made of given codes (``init_latent``: the transformer
  drawer's best draft, for ``--drawer transformer+vqgan``).
- :class:`PixelDrawer` optimises the pixels themselves (no weights needed), as Pixray's
  pixel drawer does, through a sigmoid so colours stay in range.
"""

from __future__ import annotations

import torch

from clipsearch.errors import GenerateError
from clipsearch.generate.vqgan import VQGAN


class _ClampWithGrad(torch.autograd.Function):
    """clamp() whose gradient still flows when it points back into the range."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:  # type: ignore[override]
        ctx.lo, ctx.hi = lo, hi
        ctx.save_for_backward(x)
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        keep = (grad * (x - x.clamp(ctx.lo, ctx.hi)) >= 0).to(grad.dtype)
        return grad * keep, None, None


class VQGANDrawer:
    """A latent grid (1, C, H/f, W/f), decoded through the VQGAN's codebook."""

    kind = "vqgan"

    def __init__(self, vqgan: VQGAN, width: int, height: int) -> None:
        f = vqgan.factor
        if width % f or height % f or width < f or height < f:
            raise GenerateError(
                f"this VQGAN cannot make {width}x{height} pictures: width and height must be "
                f"multiples of {f} (its downsampling factor)",
                hint=f"Try --size {_nearest(width, f)}x{_nearest(height, f)}.",
            )
        self.vqgan, self.width, self.height = vqgan, width, height
        codebook = vqgan.quantize.embedding.weight.detach()
        self.z_min = codebook.min(0).values.view(1, -1, 1, 1)
        self.z_max = codebook.max(0).values.view(1, -1, 1, 1)
        self.z: torch.Tensor | None = None
        self.init_latent: torch.Tensor | None = None  # a start latent (a transformer's draft)

    @property
    def name(self) -> str:
        return self.vqgan.name

    def init(self, g: torch.Generator, init: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Start from `init_latent` if set, else random codes, or from `init` (1, 3, H, W) in
        [0, 1]; returns the params."""
        h, w = self.height // self.vqgan.factor, self.width // self.vqgan.factor
        with torch.no_grad():
            if self.init_latent is not None:
                z = self.init_latent.to(self.z_min)
            elif init is None:
                idx = torch.randint(0, self.vqgan.config.n_embed, (1, h, w), generator=g)
                z = self.vqgan.quantize.lookup(idx.to(self.z_min.device))
            else:
                z = self.vqgan.encode(init.to(self.z_min) * 2 - 1)
        self.z = z.clone().requires_grad_(True)
        return [self.z]

    def image(self) -> torch.Tensor:
        """The current picture (1, 3, H, W) in [0, 1], differentiable in the latent."""
        assert self.z is not None
        zq, _ = self.vqgan.quantize(self.z)
        return _ClampWithGrad.apply(self.vqgan.decode(zq).add(1).div(2), 0.0, 1.0)

    def after_step(self) -> None:
        """Keep the latent inside the codebook's range."""
        assert self.z is not None
        with torch.no_grad():
            self.z.copy_(self.z.maximum(self.z_min).minimum(self.z_max))


class PixelDrawer:
    """The pixels, through a sigmoid (so any parameter value is a valid colour)."""

    kind = "pixel"
    name = "pixels"

    def __init__(self, width: int, height: int, device: str = "cpu") -> None:
        if width < 8 or height < 8:
            raise GenerateError(f"{width}x{height} is too small to draw", hint="Try --size 64x64.")
        self.width, self.height, self.device = width, height, device
        self.logits: torch.Tensor | None = None

    def init(self, g: torch.Generator, init: torch.Tensor | None = None) -> list[torch.Tensor]:
        if init is None:
            logits = torch.randn(1, 3, self.height, self.width, generator=g) * 0.5
        else:
            logits = torch.logit(init.clamp(0.02, 0.98))
        logits = logits.to(self.device)
        self.logits = logits.requires_grad_(True)
        return [self.logits]

    def image(self) -> torch.Tensor:
        assert self.logits is not None
        return torch.sigmoid(self.logits)

    def after_step(self) -> None:
        pass


def _nearest(n: int, f: int) -> int:
    return max(f, round(n / f) * f)


def load_init(path: str, width: int, height: int) -> torch.Tensor:
    """An init image as (1, 3, height, width) in [0, 1] (cropped to the aspect, then resized).

    Raises UnreadableImage (with the reason) for a file that is not a readable picture.
    """
    import numpy as np

    from clipsearch.media.images import open_image

    rgb, _ = open_image(path, draft_size=max(width, height))  # big photos decode small
    rgb = rgb.convert("RGB")
    scale = max(width / rgb.width, height / rgb.height)
    size = (max(width, round(rgb.width * scale)), max(height, round(rgb.height * scale)))
    rgb = rgb.resize(size)
    left, top = (rgb.width - width) // 2, (rgb.height - height) // 2
    rgb = rgb.crop((left, top, left + width, top + height))
    arr = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0)
    return arr.permute(2, 0, 1).unsqueeze(0).contiguous()
