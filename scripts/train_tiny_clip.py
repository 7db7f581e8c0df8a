#!/usr/bin/env python
"""Train the tiny shapes-world CLIP (``tiny-shapes``) on the CPU and save it for open_clip.

    python scripts/train_tiny_clip.py            # writes data/models/tiny-shapes/

The model is a plain open_clip ``CLIP`` built from
``clipsearch/model/configs/tiny-shapes.json``: a small ``ModifiedResNet`` image tower (the
architecture of CLIP's RN50, shrunk) and a small text transformer with open_clip's standard
BPE tokenizer. (A small ViT learned shapes far too slowly on 2 CPU cores; see
docs/tiny-shapes.md.) It trains
from scratch with CLIP's objective, the symmetric InfoNCE loss over a batch of image-caption
pairs with a learnable temperature (``open_clip.loss.ClipLoss``), on scenes of
``clipsearch.demo.shapes`` generated on the fly; ``HELDOUT_COMBOS`` never appear.

Each picture is drawn by one of three renderers (``STYLES``): the house renderer
(``shapes.render``) or the "pil" and "sdf" renderers of ``clipsearch.demo.other_renderer``,
which widen the world (sizes, positions, any rotation, outlines and line widths, aliased or
antialiased edges, textured backgrounds, blur, JPEG, picture sizes 48-224 px shrunk to the
model's input as its preprocessing would). The "plain" style of that module (one filled shape
drawn by "another program") is never shown: evaluation holds it out.

Captions name every attribute ("two small red circles on a white background") or, some of
the time, leave the size, background, colour or shape out ("two red circles"), so that short
queries work too. A batch never holds two pairs where one caption truthfully describes the
other pair's image, so every off-diagonal pair in the loss is a true negative.

The output folder gets ``open_clip_config.json`` and ``open_clip_model.safetensors`` (the
``local-dir:`` layout; weight matrices in float16 to keep the file small) and
``training.json`` (command, seed, steps, wall time, losses, evaluation).
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import math
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
try:
    from clipsearch.demo import other_renderer, shapes
except ImportError:  # running from a source checkout without an install
    sys.path.insert(0, str(REPO))
    from clipsearch.demo import other_renderer, shapes

DEFAULT_CONFIG = REPO / "clipsearch" / "model" / "configs" / "tiny-shapes.json"
DEFAULT_OUT = REPO / "data" / "models" / "tiny-shapes"
MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip's OPENAI_DATASET_MEAN / _STD
STD = (0.26862954, 0.26130258, 0.27577711)

# Probability that a training caption leaves each attribute out (count is always stated:
# leaving it out too makes captions so general that a batch cannot be filled with true
# negatives). Colour and shape are stated most often: what a picture shows should weigh more
# than how big it is or on what background, so pictures of the same thing end up close.
DROP = {"size": 0.55, "background": 0.55, "colour": 0.15, "kind": 0.05}


def caption_variant(full: shapes.Description, rng: random.Random) -> shapes.Description:
    """A random, truthful, possibly partial description of a scene with attributes ``full``."""
    keep = {a: rng.random() >= p for a, p in DROP.items()}
    if not (keep["colour"] or keep["kind"]):  # "two small shapes" says too little
        keep[rng.choice(("colour", "kind"))] = True
    return shapes.Description(
        full.count,
        full.size if keep["size"] else None,
        full.colour if keep["colour"] else None,
        full.kind if keep["kind"] else None,
        full.background if keep["background"] else None,
    )


# Batches are built from groups of scenes that share every attribute but one, so that the
# loss sees hard negatives for every attribute (a random batch rarely holds two scenes that
# differ only in, say, their shape). Weights: how often each attribute is the varied one.
VARY = {"kind": 0.35, "colour": 0.3, "count": 0.15, "size": 0.1, "background": 0.1}
VALUES: dict[str, tuple] = {
    "kind": shapes.SHAPES,
    "count": shapes.COUNTS,
    "size": shapes.SIZES,
    "colour": tuple(shapes.COLOURS),
    "background": tuple(shapes.BACKGROUNDS),
}
GROUP_SIZE = 4


def sample_group(rng: random.Random) -> list[tuple[shapes.Scene, shapes.Description]]:
    """Up to ``GROUP_SIZE`` (scene, caption) pairs differing in one attribute only."""
    base = shapes.sample_description(rng, "exclude")
    attr = rng.choices(list(VARY), weights=list(VARY.values()))[0]
    values = list(VALUES[attr])
    rng.shuffle(values)
    group = []
    for value in values:
        full = replace(base, **{attr: value})
        if (full.colour, full.kind) in shapes.HELDOUT_COMBOS:
            continue
        part = caption_variant(full, rng)
        group.append((shapes.sample_scene(rng, full), replace(part, **{attr: value})))
        if len(group) == GROUP_SIZE:
            break
    return group


def sample_batch(
    rng: random.Random, batch_size: int
) -> list[tuple[shapes.Scene, shapes.Description]]:
    """``batch_size`` (scene, caption description) pairs from the training distribution.

    Pairs come in groups (:func:`sample_group`). A pair is left out when its caption
    describes an image already in the batch, or an earlier caption describes its image (this
    also rules out duplicate complete captions), so all negatives in the loss are true ones.
    """
    items: list[tuple[shapes.Scene, shapes.Description]] = []
    fulls: list[tuple] = []
    # For each "mask" (which attributes a caption states): the batch's complete attribute
    # tuples projected on it, and the batch's captions with that mask. A caption with mask m
    # describes an image iff its tuple equals the image's projection on m.
    full_proj: dict[tuple[bool, ...], set[tuple]] = {}
    part_by_mask: dict[tuple[bool, ...], set[tuple]] = {}
    while len(items) < batch_size:
        for scene, part in sample_group(rng):
            f, p = _tuple(scene.description), _tuple(part)
            mask = tuple(a is not None for a in p)
            if mask not in full_proj:
                full_proj[mask] = {_project(g, mask) for g in fulls}
            if p in full_proj[mask]:
                continue
            if any(_project(f, m) in ps for m, ps in part_by_mask.items()):
                continue
            items.append((scene, part))
            fulls.append(f)
            for m, projections in full_proj.items():
                projections.add(_project(f, m))
            part_by_mask.setdefault(mask, set()).add(p)
            if len(items) == batch_size:
                break
    return items


def _tuple(d: shapes.Description) -> tuple:
    return (d.count, d.size, d.colour, d.kind, d.background)


def _project(full: tuple, mask: tuple[bool, ...]) -> tuple:
    return tuple(a if keep else None for a, keep in zip(full, mask, strict=True))


# How often each renderer draws a training picture; other_renderer.HELDOUT_STYLE never does.
STYLES = {"house": 0.4, "pil": 0.3, "sdf": 0.3}


def render_item(scene: shapes.Scene, style: str, rng: random.Random, image_size: int) -> np.ndarray:
    """``scene`` drawn in ``style`` as the model sees it: uint8 (S, S, 3).

    The house renderer draws ``scene`` itself at the model's size; the other renderers draw
    a wider layout of the same description at their own picture size, then the picture is
    shrunk (bicubic) as the model's preprocessing would shrink a file."""
    if style == "house":
        return np.asarray(shapes.render(scene, image_size))
    wide = other_renderer.sample_wide_scene(rng, scene.description)
    image = other_renderer.render_look(wide, other_renderer.sample_look(rng, style))
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return np.asarray(image)


def make_batch(
    seed: int, step: int, batch_size: int, image_size: int, context_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """The batch of training step ``step``: uint8 images (N, S, S, 3) and tokens (N, L).

    It depends only on its arguments (its generator is seeded from ``seed`` and ``step``),
    so a run is reproducible however batches are produced (inline or in a worker process).
    """
    rng = random.Random(seed * 1_000_003 + step)
    items = sample_batch(rng, batch_size)
    styles = rng.choices(list(STYLES), weights=list(STYLES.values()), k=len(items))
    pixels = np.stack(
        [render_item(s, st, rng, image_size) for (s, _), st in zip(items, styles, strict=True)]
    )
    tokens = _tokenizer(context_length)([shapes.caption(d) for _, d in items])
    return pixels, tokens.numpy()


@functools.cache
def _tokenizer(context_length: int) -> Callable:
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


def to_model_input(pixels: np.ndarray, tokens: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise uint8 images as the saved ``preprocess_cfg`` does; tokens as a tensor."""
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (images - mean) / std, torch.from_numpy(tokens)


class Batches:
    """Batches for steps ``0..steps-1``, made inline or (``workers > 0``) by worker
    processes a few steps ahead, so rendering overlaps with the model's compute."""

    def __init__(self, steps: int, workers: int, prefetch: int = 4, **kwargs: int) -> None:
        self.steps, self.kwargs = steps, kwargs
        self.pool = None
        if workers > 0:
            import multiprocessing

            self.pool = multiprocessing.get_context("fork").Pool(workers)
        self.pending: collections.deque = collections.deque()
        self.next_step = 0
        for _ in range(prefetch if self.pool else 0):
            self._submit()

    def _submit(self) -> None:
        if self.pool is not None and self.next_step < self.steps:
            args = (self.kwargs["seed"], self.next_step)
            kw = {k: v for k, v in self.kwargs.items() if k != "seed"}
            self.pending.append(self.pool.apply_async(make_batch, args, kw))
            self.next_step += 1

    def get(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch of ``step`` (steps must be asked for in order)."""
        if self.pool is None:
            kw = {k: v for k, v in self.kwargs.items() if k != "seed"}
            return make_batch(self.kwargs["seed"], step, **kw)
        batch = self.pending.popleft().get()
        self._submit()
        return batch

    def close(self) -> None:
        """Stop the workers."""
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def train(
    model_cfg: dict,
    *,
    steps: int,
    batch_size: int,
    lr: float = 2e-3,
    weight_decay: float = 0.1,
    warmup: int | None = None,
    seed: int = 0,
    workers: int = 0,
    log_every: int = 25,
    time_budget: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train a CLIP from ``model_cfg``; returns ``model``, ``losses`` (per step) and stats.

    AdamW (betas 0.9/0.98, no decay on gains, biases and the logit scale), linear warmup then
    cosine decay, logit scale clamped at ln(100) as in open_clip. Stops early (and says so)
    once ``time_budget`` seconds have passed; with a budget, the cosine follows whichever
    runs out first, the steps or the time, so a run slowed by a busy machine still ends with
    a decayed learning rate (and is then no longer reproducible step for step).
    ``workers`` processes render batches ahead.
    """
    import open_clip
    from open_clip.loss import ClipLoss

    torch.manual_seed(seed)
    model = open_clip.CLIP(**model_cfg)
    model.train()
    batches = Batches(
        steps,
        workers,
        seed=seed,
        batch_size=batch_size,
        image_size=model_cfg["vision_cfg"]["image_size"],
        context_length=model_cfg["text_cfg"]["context_length"],
    )
    params = list(model.named_parameters())
    no_decay = [p for n, p in params if p.ndim < 2 or "ln" in n or "bias" in n or "logit" in n]
    decay = [p for n, p in params if not (p.ndim < 2 or "ln" in n or "bias" in n or "logit" in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    warmup = max(1, steps // 20) if warmup is None else warmup
    loss_fn = ClipLoss()
    losses: list[float] = []
    t0 = time.time()
    data_time = 0.0
    t_warmup: float | None = None  # seconds the warmup took (the time schedule starts there)
    stopped_early = False
    try:
        for step in range(steps):
            if step == warmup:
                t_warmup = time.time() - t0
            progress = (step - warmup) / max(1, steps - warmup)
            if time_budget is not None and t_warmup is not None:
                spent = time.time() - t0 - t_warmup
                progress = max(progress, spent / max(1.0, time_budget - t_warmup))
            if step < warmup:
                factor = (step + 1) / warmup
            else:
                factor = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
            for group in opt.param_groups:
                group["lr"] = lr * factor
            td = time.time()
            images, tokens = to_model_input(*batches.get(step))
            data_time += time.time() - td
            image_features, text_features, logit_scale = model(images, tokens)
            loss = loss_fn(image_features, text_features, logit_scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
            elapsed = time.time() - t0
            if (step + 1) % log_every == 0 or step == 0 or step + 1 == steps:
                window = losses[-log_every:]
                log(
                    f"step {step + 1:5d}/{steps}  loss {sum(window) / len(window):.4f}  "
                    f"scale {model.logit_scale.exp().item():6.2f}  lr {lr * factor:.2e}  "
                    f"{elapsed:6.0f}s ({elapsed / (step + 1):.2f}s/step, data {data_time:.0f}s)"
                )
            if time_budget is not None and elapsed > time_budget and step + 1 < steps:
                log(f"time budget of {time_budget:.0f}s spent: stopping after step {step + 1}")
                stopped_early = True
                break
    finally:
        batches.close()
    model.eval()
    return {
        "model": model,
        "losses": losses,
        "steps_done": len(losses),
        "stopped_early": stopped_early,
        "train_seconds": round(time.time() - t0, 1),
        "data_seconds": round(data_time, 1),
    }


def preprocess_cfg(model_cfg: dict) -> dict[str, Any]:
    """The preprocessing that matches training, for ``open_clip_config.json``."""
    return {
        "size": model_cfg["vision_cfg"]["image_size"],
        "mode": "RGB",
        "mean": list(MEAN),
        "std": list(STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }


def save_checkpoint(model: torch.nn.Module, model_cfg: dict, out: Path) -> Path:
    """Write the ``local-dir`` layout into ``out``; weight matrices are stored as float16."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.half() if v.is_floating_point() and v.ndim >= 2 else v).contiguous()
        for k, v in model.state_dict().items()
    }
    weights = out / "open_clip_model.safetensors"
    save_file(state, str(weights), metadata={"format": "pt"})
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg(model_cfg)}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return weights


@torch.no_grad()
def compare_embeddings(
    trained: torch.nn.Module, loaded: torch.nn.Module, preprocess: Callable, tokenizer: Callable
) -> dict[str, float]:
    """How far the saved (float16 matrices) model's embeddings are from the trained model's,
    on 64 fresh scenes and their captions: the smallest cosine and the largest abs. diff."""
    rng = random.Random(12_345)
    scenes = [shapes.sample_scene(rng, heldout="include") for _ in range(64)]
    images = torch.stack([preprocess(shapes.render(s, 256, supersample=2)) for s in scenes])
    tokens = tokenizer([shapes.caption(s) for s in scenes])
    pairs = [
        (trained.encode_image(images, normalize=True), loaded.encode_image(images, normalize=True)),
        (trained.encode_text(tokens, normalize=True), loaded.encode_text(tokens, normalize=True)),
    ]
    return {
        "min_cosine": round(min((a * b).sum(1).min().item() for a, b in pairs), 6),
        "max_abs_diff": round(max((a - b).abs().max().item() for a, b in pairs), 6),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="open_clip model JSON")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=None, help="default: 5%% of the steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--workers", type=int, default=0, help="processes rendering batches")
    ap.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds: the learning rate decays by then at the latest, and training stops",
    )
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    model_cfg = json.loads(args.config.read_text())
    t0 = time.time()
    result = train(
        model_cfg,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        seed=args.seed,
        workers=args.workers,
        log_every=args.log_every,
        time_budget=args.time_budget,
    )
    model = result["model"]
    weights = save_checkpoint(model, model_cfg, args.out)
    losses = result["losses"]
    record: dict[str, Any] = {
        "command": " ".join(["python", "scripts/train_tiny_clip.py", *(argv or sys.argv[1:])]),
        "seed": args.seed,
        "steps": result["steps_done"],
        "steps_requested": args.steps,
        "stopped_early": result["stopped_early"],
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "threads": args.threads,
        "workers": args.workers,
        "train_seconds": result["train_seconds"],
        "data_seconds": result["data_seconds"],
        "final_loss": round(sum(losses[-25:]) / len(losses[-25:]), 4),
        "loss_every_25_steps": [
            round(sum(losses[i : i + 25]) / len(losses[i : i + 25]), 4)
            for i in range(0, len(losses), 25)
        ],
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_bytes": weights.stat().st_size,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "heldout_combos": sorted(f"{c} {k}" for c, k in shapes.HELDOUT_COMBOS),
        "styles": STYLES,
        "heldout_style": other_renderer.HELDOUT_STYLE,
    }
    print(f"saved {weights} ({weights.stat().st_size / 1e6:.1f} MB)", flush=True)
    if not args.no_eval:
        import open_clip

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from eval_tiny_clip import evaluate

        name = f"local-dir:{args.out}"
        loaded, _, preprocess = open_clip.create_model_and_transforms(name)
        loaded.eval()
        tokenizer = open_clip.get_tokenizer(name)
        record["float16_check"] = compare_embeddings(model, loaded, preprocess, tokenizer)
        record["eval"] = evaluate(loaded, tokenizer, preprocess)
        print(json.dumps(record["eval"], indent=2), flush=True)
    record["wall_seconds"] = round(time.time() - t0, 1)
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"done in {record['wall_seconds']:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
