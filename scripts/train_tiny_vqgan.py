#!/usr/bin/env python
"""Train the tiny shapes-world VQGAN (``tiny-vqgan``) on the CPU and save it as taming does.

    nice -n 5 python scripts/train_tiny_vqgan.py      # writes data/models/tiny-vqgan/

The model is :class:`clipsearch.generate.vqgan.VQGAN`, i.e. taming-transformers' VQModel
(encoder, vector quantizer, decoder), shrunk: 64x64 pictures, factor 4 (a 16x16 grid of
codes), 32/32/64 channels, one residual block per level, a 512-entry codebook of 32-d codes.

Loss: L1 + MSE reconstruction, a perceptual term (feature distances inside the shipped
``tiny-shapes`` CLIP image tower, which knows this world; LPIPS's VGG weights cannot be
downloaded here) and the codebook/commitment loss. Codes unused for a while are restarted
on encoder outputs (so the codebook does not collapse). Scenes come from
``clipsearch.demo.shapes`` (a fixed pool rendered once, flipped at random); held-out PSNR is
measured on scenes from another seed, held-out colour/shape pairs included.

The output folder gets ``last.ckpt`` (``{"state_dict": ...}``, loadable by taming's VQModel
too), ``model.yaml`` (taming's config layout) and ``training.json`` (command, seed, steps,
wall time, losses, held-out PSNR).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
try:
    from clipsearch.demo import shapes
except ImportError:  # running from a source checkout without an install
    sys.path.insert(0, str(REPO))
    from clipsearch.demo import shapes
from clipsearch.generate.vqgan import VQGAN, VQGANConfig  # noqa: E402

DEFAULT_OUT = REPO / "data" / "models" / "tiny-vqgan"
DDCONFIG = {
    "double_z": False,
    "z_channels": 64,
    "resolution": 64,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 1, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [],
    "dropout": 0.0,
}
N_EMBED, EMBED_DIM = 512, 32
MEAN = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1)
STD = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)


def render_pool(n: int, seed: int, heldout: str) -> torch.Tensor:
    """n scenes at 64x64 as a float tensor in [-1, 1], (n, 3, 64, 64)."""
    rng = random.Random(seed)
    arrs = [
        np.asarray(shapes.render(shapes.sample_scene(rng, heldout=heldout), 64)) for _ in range(n)
    ]
    x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    return x.contiguous()


class Perceptual(torch.nn.Module):
    """Feature distances in the tiny-shapes CLIP image tower (stem, layer1..3)."""

    def __init__(self) -> None:
        super().__init__()
        from clipsearch.model.encoder import Encoder

        self.visual = Encoder("tiny-shapes").load().torch_model.visual.eval().requires_grad_(False)

    def feats(self, x: torch.Tensor) -> list[torch.Tensor]:
        v = self.visual
        h = ((x + 1) / 2 - MEAN) / STD
        out = [v.stem(h)]
        for layer in (v.layer1, v.layer2, v.layer3):
            out.append(layer(out[-1]))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa, fb = self.feats(a), self.feats(b)
        return sum(
            F.mse_loss(x, y) / (y.detach().pow(2).mean() + 1e-6)
            for x, y in zip(fa, fb, strict=True)
        )


def restart_dead_codes(
    model: VQGAN, usage: torch.Tensor, z: torch.Tensor, g: torch.Generator
) -> int:
    """Move codes nobody used lately onto random encoder outputs; returns how many."""
    dead = (usage == 0).nonzero().flatten()
    if len(dead) == 0:
        return 0
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    pick = torch.randint(0, len(flat), (len(dead),), generator=g)
    with torch.no_grad():
        model.quantize.embedding.weight[dead] = flat[pick] + 0.01 * torch.randn(
            len(dead), flat.shape[1], generator=g
        )
    return len(dead)


def psnr(model: VQGAN, images: torch.Tensor) -> dict[str, float]:
    """Mean PSNR (dB, on [0, 1] pixels) of reconstructions, and codebook use."""
    model.eval()
    values, used = [], set()
    with torch.no_grad():
        for chunk in images.split(64):
            z = model.encode(chunk)
            used.update(model.quantize.indices(z).flatten().tolist())
            rec = model.decode(model.quantize(z)[0]).clamp(-1, 1)
            mse = ((rec - chunk) / 2).pow(2).mean(dim=(1, 2, 3))
            values.extend((10 * torch.log10(1 / mse.clamp_min(1e-10))).tolist())
    model.train()
    return {"psnr_db": round(float(np.mean(values)), 2), "codes_used": len(used)}


def train(args: argparse.Namespace) -> tuple[VQGAN, dict]:
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    t_data = time.perf_counter()
    pool = render_pool(args.pool, args.seed, "exclude")
    data_seconds = time.perf_counter() - t_data
    model = VQGAN(VQGANConfig(DDCONFIG, N_EMBED, EMBED_DIM)).train()
    perceptual = Perceptual() if args.perceptual > 0 else None
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.5, 0.9))
    usage = torch.zeros(N_EMBED)
    losses, restarted, start = [], 0, time.perf_counter()
    for step in range(args.steps):
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        x = pool[torch.randint(0, len(pool), (args.batch,), generator=g)]
        flip = torch.rand(args.batch, generator=g) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if args.crop < 64:  # convolutional: train on crops (4x cheaper at 32 px)
            i, j = (int(v) for v in torch.randint(0, 65 - args.crop, (2,), generator=g))
            x = x[:, :, i : i + args.crop, j : j + args.crop]
        z = model.encode(x)
        zq, q_loss = model.quantize(z)
        rec = model.decode(zq)
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + q_loss
        if perceptual is not None:
            loss = loss + args.perceptual * perceptual(rec, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        usage += torch.bincount(model.quantize.indices(z).flatten(), minlength=N_EMBED)
        if (step + 1) % 100 == 0 and step < args.steps * 0.8:
            restarted += restart_dead_codes(model, usage, z, g)
            usage.zero_()
        losses.append(loss.item())
        if (step + 1) % 100 == 0:
            print(
                f"step {step + 1}/{args.steps} loss {np.mean(losses[-100:]):.4f} "
                f"{time.perf_counter() - start:.0f}s",
                flush=True,
            )
    info = {
        "train_seconds": round(time.perf_counter() - start, 1),
        "data_seconds": round(data_seconds, 1),
        "final_loss": round(float(np.mean(losses[-100:])), 4),
        "loss_every_100_steps": [
            round(float(np.mean(losses[i : i + 100])), 4) for i in range(0, len(losses), 100)
        ],
        "codes_restarted": restarted,
    }
    return model.eval(), info


def save(model: VQGAN, out: Path) -> None:
    """last.ckpt (taming's {"state_dict": ...}) + model.yaml."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, out / "last.ckpt")
    (out / "model.yaml").write_text(yaml.safe_dump(model.config.to_yaml_dict(), sort_keys=False))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--crop", type=int, default=32, help="train on random crops this size")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--pool", type=int, default=6000, help="training scenes rendered once")
    p.add_argument("--perceptual", type=float, default=0.1, help="perceptual loss weight")
    p.add_argument("--eval", type=int, default=512, help="held-out scenes for PSNR")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (on a busy 2-core box, 2 ran several times slower than 1)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, info = train(args)
    heldout = render_pool(args.eval, args.seed + 1_000_003, "include")
    from clipsearch.generate.vqgan import load_vqgan

    save(model, args.out)
    reloaded = load_vqgan(args.out)
    report = {
        "command": "python scripts/train_tiny_vqgan.py " + " ".join(argv or sys.argv[1:]),
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch,
        "crop": args.crop,
        "lr": args.lr,
        "pool": args.pool,
        "perceptual_weight": args.perceptual,
        "threads": args.threads,
        "config": model.config.to_yaml_dict()["model"]["params"],
        "parameters": sum(p.numel() for p in model.parameters()),
        **info,
        "heldout": {"images": args.eval, **psnr(reloaded, heldout)},
        "checkpoint_bytes": (args.out / "last.ckpt").stat().st_size,
        "machine": f"{platform.machine()}, torch {torch.__version__}",
    }
    (args.out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("heldout", "train_seconds", "final_loss")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
