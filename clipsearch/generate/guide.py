"""CLIP guidance: random augmented cutouts of the picture, scored against weighted prompts.

The loss is VQGAN+CLIP's: the squared great-circle (spherical) distance between each
cutout's CLIP embedding and each prompt's, times the prompt's weight; a negative weight turns
the pull into a push. Prompts are embedded once, without autograd; CLIP's own parameters get
no gradients; all cutouts go through the image tower in one batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from clipsearch.generate.prompts import Prompt


def spherical_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between unit(x) and unit(y) (pairwise, broadcast)."""
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    return (x - y).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


class Cutouts:
    """Random crops (a fraction `min_frac`..1 of the shorter side) resized to `size`, then
    flipped, slightly rotated/shifted and noised. Uses only the generator passed in."""

    def __init__(
        self, size: int, n: int, *, min_frac: float = 0.5, cut_pow: float = 1.0, noise: float = 0.05
    ) -> None:
        self.size, self.n, self.min_frac, self.cut_pow, self.noise = (
            size,
            n,
            min_frac,
            cut_pow,
            noise,
        )

    def __call__(self, image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """(1, 3, H, W) in [0, 1] -> (n, 3, size, size)."""
        _, _, h, w = image.shape
        side = min(h, w)
        lo = max(1, int(side * self.min_frac))
        r = torch.rand(self.n, 3, generator=g).tolist()
        cuts = []
        for a, b, c in r:
            s = int(a**self.cut_pow * (side - lo) + lo)
            y, x = int(b * (h - s + 1)), int(c * (w - s + 1))
            crop = image[:, :, y : y + s, x : x + s]
            if s > self.size:
                crop = F.adaptive_avg_pool2d(crop, self.size)
            elif s < self.size:
                crop = F.interpolate(crop, size=self.size, mode="bilinear", align_corners=False)
            cuts.append(crop)
        batch = torch.cat(cuts)
        return self._augment(batch, g)

    def _augment(self, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n = batch.shape[0]
        flip = (torch.rand(n, generator=g) < 0.5).to(batch.device)
        batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(3), batch)
        angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(10)
        shift = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.05
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        ).to(batch)
        grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
        batch = F.grid_sample(batch, grid, padding_mode="reflection", align_corners=False)
        if self.noise:
            noise = torch.randn(batch.shape, generator=g) * torch.rand(n, 1, 1, 1, generator=g)
            batch = batch + self.noise * noise.to(batch)
        return batch


class ClipGuide:
    """Scores pictures against weighted prompts with an open_clip model."""

    @classmethod
    def for_encoder(cls, enc, prompts: Sequence[Prompt], *, cutouts: int) -> ClipGuide:
        """The guide for a library's torch encoder (its model, tokenizer, preprocessing)."""
        params = enc.params
        return cls(
            enc.torch_model,
            enc.tokenizer,
            prompts,
            image_size=params.size[0],
            mean=params.mean,
            std=params.std,
            cutouts=cutouts,
        )

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        prompts: Sequence[Prompt],
        *,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        cutouts: int = 16,
        cut_min: float = 0.5,
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.prompts = list(prompts)
        device = next(model.parameters()).device
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.cutouts = Cutouts(image_size, cutouts, min_frac=cut_min)
        with torch.inference_mode():
            emb = model.encode_text(tokenizer([p.text for p in self.prompts]).to(device))
        self.text = F.normalize(emb.float(), dim=-1).clone()  # a plain tensor, outside inference
        self.weights = torch.tensor([p.weight for p in self.prompts], device=device)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Unit CLIP embeddings of pictures in [0, 1], (N, 3, s, s) at the model's size."""
        return F.normalize(self.model.encode_image((images - self.mean) / self.std), dim=-1)

    def loss(self, image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """The weighted spherical-distance loss of one picture (1, 3, H, W) in [0, 1]."""
        emb = self.embed(self.cutouts(image, g))
        dists = spherical_distance(emb.unsqueeze(1), self.text.unsqueeze(0))  # (cuts, prompts)
        return (dists.mean(0) * self.weights).sum()

    def similarity(self, image: torch.Tensor, texts: Sequence[str], tokenizer) -> list[float]:
        """Cosine similarity of the whole picture with each text (for reports and tests)."""
        with torch.inference_mode():
            size = self.cutouts.size
            im = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
            img = self.embed(im)
            tokens = tokenizer(list(texts)).to(self.mean.device)
            txt = F.normalize(self.model.encode_text(tokens).float(), dim=-1)
            return (img @ txt.t()).flatten().tolist()
