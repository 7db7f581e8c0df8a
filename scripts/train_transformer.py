"""Train the tiny DALL-E-style transformer drawer on the shapes world's VQGAN codes.

    nice -n 5 python scripts/train_transformer.py --time-budget 1800

Data: ``--scenes`` scenes of :mod:`clipsearch.demo.shapes` (the held-out colour+shape pairs,
``shapes.HELDOUT_COMBOS``, excluded), rendered at the VQGAN's size and encoded once to codes
with the shipped tiny VQGAN; the codes and the captions (as the world writes them) are cached
under ``--cache``. Then AdamW with warm-up and cosine decay over ``--steps`` steps, stopped
early at ``--time-budget`` seconds. ``--bf16`` runs the forward and backward passes under
CPU autocast to bfloat16 (weights and the optimiser stay float32): on a CPU with AVX-512 BF16
about 1.3x the steps per second at this size. ``--out/model.pt`` and ``--out/training.json`` are
written every ``--save-every`` seconds and at the end, so a run cut short still leaves a
usable checkpoint and an honest record (``"finished": false`` until it ends).
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

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "data" / "models" / "tiny-dalle"
DEFAULT_VQGAN = REPO / "data" / "models" / "tiny-vqgan"


def render_scenes(n: int, seed: int, heldout: str, size: int) -> tuple[torch.Tensor, list[str]]:
    """n scenes as (n, 3, size, size) in [0, 1] and their captions."""
    import numpy as np

    from clipsearch.demo import shapes

    rng = random.Random(seed)
    images, captions = [], []
    for _ in range(n):
        scene = shapes.sample_scene(rng, None, heldout)  # type: ignore[arg-type]
        arr = np.asarray(shapes.render(scene, size), dtype=np.float32) / 255.0
        images.append(torch.from_numpy(arr).permute(2, 0, 1))
        captions.append(shapes.caption(scene))
    return torch.stack(images), captions


@torch.inference_mode()
def encode(vqgan, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Pictures in [0, 1] -> VQGAN codes (n, grid*grid), int64."""
    out = []
    for i in range(0, len(images), batch):
        z = vqgan.encode(images[i : i + batch] * 2 - 1)
        out.append(vqgan.quantize.indices(z).flatten(1))
    return torch.cat(out)


def dataset(
    vqgan, n: int, seed: int, heldout: str, size: int, cache: Path | None
) -> tuple[torch.Tensor, list[str]]:
    """Codes and captions of n scenes, cached per VQGAN fingerprint."""
    from clipsearch.generate.transformer import vqgan_fingerprint

    path = None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        path = cache / f"codes-{vqgan_fingerprint(vqgan)}-{heldout}-{n}-{seed}-{size}.pt"
        if path.exists():
            obj = torch.load(path, weights_only=True)
            return obj["codes"], obj["captions"]
    rng = random.Random(seed)
    parts, captions = [], []
    for i in range(0, n, 1000):  # in chunks: 1,000 pictures at 64 px are 49 MB
        images, caps = render_scenes(min(1000, n - i), rng.randrange(2**31), heldout, size)
        parts.append(encode(vqgan, images))
        captions += caps
    codes = torch.cat(parts)
    if path is not None:
        torch.save({"codes": codes, "captions": captions}, path)
    return codes, captions


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


@torch.inference_mode()
def evaluate(model, text: torch.Tensor, codes: torch.Tensor, pad: int) -> dict[str, float]:
    model.eval()
    _, parts = model.loss(text, codes, pad)
    model.train()
    return {k: round(v, 4) for k, v in parts.items()}


def train(args: argparse.Namespace) -> dict:
    from clipsearch.generate.tokens import WordTokenizer, shapes_vocabulary
    from clipsearch.generate.transformer import (
        TextToImageTransformer,
        TransformerConfig,
        save_checkpoint,
        vqgan_record,
    )
    from clipsearch.generate.vqgan import load_vqgan

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    vqgan = load_vqgan(args.vqgan)
    size = int(vqgan.config.ddconfig["resolution"])
    grid = size // vqgan.factor
    t0 = time.perf_counter()
    codes, captions = dataset(vqgan, args.scenes, args.seed, "exclude", size, args.cache)
    val_codes, val_caps = dataset(vqgan, args.val, args.seed + 1, "only", size, args.cache)
    data_seconds = time.perf_counter() - t0
    tok = WordTokenizer(shapes_vocabulary(), args.text_len)
    text = torch.tensor([tok.encode(c) for c in captions])
    variants = None  # (3, N, text_len): the whole caption, without colour, without shape
    if args.partial_captions > 0:
        variants = torch.stack(
            [text]
            + [torch.tensor([tok.encode(partial_caption(c, f)) for c in captions]) for f in FIELDS]
        )
    val_text = torch.tensor([tok.encode(c) for c in val_caps])
    cfg = TransformerConfig(
        text_vocab=len(tok),
        text_len=args.text_len,
        n_codes=int(vqgan.config.n_embed),
        grid=grid,
        dim=args.dim,
        layers=args.layers,
        heads=args.heads,
        dropout=args.dropout,
    )
    model = TextToImageTransformer(cfg).train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "pos" not in n]
    other = [p for n, p in model.named_parameters() if p.dim() < 2 or "pos" in n]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": other, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
    )
    record: dict = {
        "command": "python scripts/train_transformer.py " + " ".join(sys.argv[1:]),
        "seed": args.seed,
        "steps_requested": args.steps,
        "time_budget_s": args.time_budget,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "threads": torch.get_num_threads(),
        "autocast": "bfloat16" if args.bf16 else None,
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocabulary": tok.vocab,
        "data": {
            "scenes": args.scenes,
            "partial_captions": args.partial_captions,
            "heldout": "exclude (shapes.HELDOUT_COMBOS never in training)",
            "heldout_combos": sorted(map(list, _heldout())),
            "validation_scenes": args.val,
            "picture_size": size,
            "seconds": round(data_seconds, 1),
        },
        "vqgan": vqgan_record(vqgan, size),
        "machine": f"{platform.machine()}, torch {torch.__version__}",
    }
    losses: list[float] = []
    gen = torch.Generator().manual_seed(args.seed)
    start = last_save = time.perf_counter()
    step, finished, window = 0, False, []

    def save(done: bool) -> None:
        elapsed = time.perf_counter() - start
        record.update(
            steps_done=step,
            finished=done,
            stopped_early=done and step < args.steps,
            train_seconds=round(elapsed, 1),
            s_per_step=round(elapsed / max(1, step), 3),
            sequences_seen=step * args.batch_size,
            loss_every_log=losses,
            final_loss=losses[-1] if losses else None,
            heldout_loss=evaluate(model, val_text, val_codes, tok.pad),
        )
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"steps": step, "finished": done, "train_seconds": round(elapsed, 1)}
        ckpt = save_checkpoint(
            args.out / "model.pt", model, tok, record["vqgan"], {**meta, "trained": "shapes"}
        )
        record["checkpoint_bytes"] = ckpt.stat().st_size
        (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")

    while step < args.steps:
        if args.time_budget and time.perf_counter() - start > args.time_budget:
            break
        idx = torch.randint(0, len(codes), (args.batch_size,), generator=gen)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        batch_text = text[idx]
        if variants is not None:  # some captions name only the colour or only the shape
            u = torch.rand(args.batch_size, generator=gen)
            p = args.partial_captions
            which = torch.where(u < p / 2, 1, torch.where(u < p, 2, 0))
            batch_text = variants[which, idx]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss, _ = model.loss(batch_text, codes[idx], tok.pad)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        window.append(float(loss.detach()))
        if step % args.log_every == 0:
            losses.append(round(sum(window) / len(window), 4))
            window = []
            print(f"step {step} loss {losses[-1]} {time.perf_counter() - start:.0f}s", flush=True)
        if args.save_every and time.perf_counter() - last_save > args.save_every:
            save(False)
            last_save = time.perf_counter()
    finished = True
    save(finished)
    return record


FIELDS = ("colour", "kind")  # what a partial caption leaves out


def partial_caption(text: str, leave_out: str) -> str:
    """The caption without the shapes' colour ("a small star on a blue background") or
    without their kind ("a small red shape on a blue background"), written as the world
    writes partial descriptions: colour and shape words are also seen apart, so a pair never
    drawn together is two known words rather than an unknown phrase."""
    from dataclasses import replace

    from clipsearch.demo import shapes

    return shapes.caption(replace(shapes.parse_caption(text), **{leave_out: None}))


def _heldout() -> frozenset:
    from clipsearch.demo import shapes

    return shapes.HELDOUT_COMBOS


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--vqgan", default=str(DEFAULT_VQGAN))
    p.add_argument("--cache", type=Path, default=Path("/tmp/clipsearch-dalle-cache"))
    p.add_argument("--scenes", type=int, default=20000, help="training scenes (encoded once)")
    p.add_argument("--val", type=int, default=256, help="held-out-combination scenes (loss)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--time-budget", type=float, default=0, help="stop after this many seconds")
    p.add_argument("--save-every", type=float, default=300, help="checkpoint every N seconds")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--text-len", type=int, default=12)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--partial-captions",
        type=float,
        default=0.0,
        help="fraction of training captions naming only the colour or only the shape",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    p.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (AVX-512 BF16)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    record = train(parse(argv))
    print(json.dumps({k: v for k, v in record.items() if k != "vocabulary"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
