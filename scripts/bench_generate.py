#!/usr/bin/env python
"""Seconds per step and peak RSS of VQGAN+CLIP generation on the CPU, against a naive loop.

    nice -n 5 python scripts/bench_generate.py [--size 256] [--steps 3] [--cutouts 16]

Models have random weights but the real shapes, so the cost is the real cost: open_clip
``ViT-B-32`` and a VQGAN with taming's ImageNet f16-16384 config (ch 128, ch_mult
[1,1,2,2,4], 2 residual blocks, attention at 16, 256-d codes, 16384 codes).

Each variant runs in a fresh process (peak RSS is per process), one warm-up step, then
``--steps`` timed steps:

- ``clipsearch``: the product's loop (``clipsearch.generate``): CLIP frozen (no parameter
  gradients), prompts embedded once under ``torch.inference_mode``, all cutouts through the
  image tower in one batch, decoder activations recomputed in backward (checkpointing,
  above 160x160 as the product does).
- ``naive``: the same maths written plainly: CLIP parameters with gradients, prompts
  re-embedded with autograd every step, one image-tower call per cutout, no checkpointing.

Prints JSON: per variant s/step and peak RSS, and the speed ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGENET_F16 = {
    "double_z": False,
    "z_channels": 256,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 128,
    "ch_mult": [1, 1, 2, 2, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [16],
    "dropout": 0.0,
}
PROMPTS = ["sunset over the sea:1", "people:-0.5"]


def _models(threads: int):
    import open_clip
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    clip = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    from clipsearch.generate.vqgan import VQGAN, VQGANConfig

    vq = VQGAN(VQGANConfig(IMAGENET_F16, 16384, 256)).eval().requires_grad_(False)
    return clip, tokenizer, vq


def run_variant(variant: str, size: int, steps: int, cutouts: int, threads: int) -> dict:
    import torch

    from clipsearch.generate.drawers import VQGANDrawer
    from clipsearch.generate.guide import ClipGuide
    from clipsearch.generate.prompts import parse_prompts

    clip, tokenizer, vq = _models(threads)
    prompts = parse_prompts(PROMPTS)
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    drawer = VQGANDrawer(vq, size, size)
    g = torch.Generator().manual_seed(0)
    params = drawer.init(g)
    opt = torch.optim.Adam(params, lr=0.1)
    if variant == "clipsearch":
        vq.decoder.checkpointing = size * size > 160 * 160  # as clipsearch.generate.run does
        guide = ClipGuide(
            clip, tokenizer, prompts, image_size=224, mean=mean, std=std, cutouts=cutouts
        )
        loss_fn = guide.loss
    else:
        clip.requires_grad_(True)
        guide = ClipGuide(
            clip, tokenizer, prompts, image_size=224, mean=mean, std=std, cutouts=cutouts
        )
        clip.requires_grad_(True)  # the guide freezes it; the naive loop does not
        loss_fn = _naive_loss(guide, clip, tokenizer, prompts)
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        clip.zero_grad(set_to_none=True)
        loss = loss_fn(drawer.image(), g)
        loss.backward()
        opt.step()
        drawer.after_step()
        if step:  # the first step warms up
            times.append(time.perf_counter() - t0)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "s_per_step": round(sum(times) / len(times), 3),
        "steps_timed": len(times),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "loss": round(float(loss), 4),
    }


def _naive_loss(guide, clip, tokenizer, prompts):
    import torch
    import torch.nn.functional as F

    from clipsearch.generate.guide import spherical_distance

    def loss(image, g):
        text = F.normalize(clip.encode_text(tokenizer([p.text for p in prompts])).float(), dim=-1)
        cuts = guide.cutouts(image, g)
        embs = [guide.embed(cuts[i : i + 1]) for i in range(len(cuts))]
        emb = torch.cat(embs)
        dists = spherical_distance(emb.unsqueeze(1), text.unsqueeze(0))
        return (dists.mean(0) * guide.weights).sum()

    return loss


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up)")
    p.add_argument("--cutouts", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variant", choices=["clipsearch", "naive"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.variant:  # a child: one variant, JSON on stdout
        print(
            json.dumps(run_variant(args.variant, args.size, args.steps, args.cutouts, args.threads))
        )
        return 0
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    out: dict = {
        "size": f"{args.size}x{args.size}",
        "clip": "ViT-B-32 (random weights)",
        "vqgan": "taming ImageNet f16-16384 config (random weights)",
        "cutouts": args.cutouts,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "machine": f"{platform.machine()}, python {platform.python_version()}",
    }
    for variant in ("clipsearch", "naive"):
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--size",
            str(args.size),
            "--steps",
            str(args.steps),
            "--cutouts",
            str(args.cutouts),
            "--threads",
            str(args.threads),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            return 1
        out[variant] = json.loads(res.stdout.strip().splitlines()[-1])
    c, n = out["clipsearch"], out["naive"]
    out["speedup_steps_per_s"] = round(n["s_per_step"] / c["s_per_step"], 2)
    out["peak_rss_ratio_naive_over_clipsearch"] = round(n["peak_rss_mb"] / c["peak_rss_mb"], 2)
    out["target_peak_rss_mb"] = 4096
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
