"""Judge the transformer drawer's pictures (figures for docs/generate.md); prints JSON.

    nice -n 5 python scripts/eval_transformer.py --threads 1 > eval.json

Prompts: full shapes-world captions ("a large red circle on a white background"), one per
seen colour+shape pair (42, backgrounds cycled) and four per held-out pair
(``shapes.HELDOUT_COMBOS``, 6 x 4 backgrounds: never in the transformer's training).
Each picture is judged two ways:

- **CLIP classifier**: the shipped tiny-shapes CLIP, zero-shot over the 48 texts
  "a {colour} {shape}"; right when the argmax is the prompt's colour and shape. (The same
  CLIP re-ranks the candidates, so best-of-N is graded by its own chooser: see the pixel
  check for an independent view.)
- **pixel check**: the background is the median colour of the border pixels, the
  foreground the median of the pixels far from it; right when both are nearest (in RGB) to
  the prompt's background and shape colours. Shape is not judged by pixels.

Best of ``--candidates`` (re-ranked by CLIP) is compared with one candidate (the first
sample, no re-ranking). Against VQGAN+CLIP on a subset: seconds until the VQGAN+CLIP
picture's CLIP score reaches the transformer's best-of-N score (scored every 5 steps, the
scoring not timed), and both drawers' classifier accuracy; transformer+vqgan too.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def prompts(seed: int) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(seen, held-out) lists of (caption, colour, shape)."""
    from clipsearch.demo import shapes

    rng = random.Random(seed)
    bgs = list(shapes.BACKGROUNDS)
    seen, held = [], []
    for i, (colour, kind) in enumerate(
        (c, k) for c in shapes.COLOURS for k in shapes.SHAPES if (c, k) not in shapes.HELDOUT_COMBOS
    ):
        d = shapes.Description(1, rng.choice(shapes.SIZES), colour, kind, bgs[i % len(bgs)])
        seen.append((shapes.caption(d), colour, kind))
    for colour, kind in sorted(shapes.HELDOUT_COMBOS):
        for bg in bgs:
            d = shapes.Description(1, rng.choice(shapes.SIZES), colour, kind, bg)
            held.append((shapes.caption(d), colour, kind))
    return seen, held


class Judge:
    def __init__(self, enc) -> None:
        from clipsearch.demo import shapes

        self.labels = [(c, k) for c in shapes.COLOURS for k in shapes.SHAPES]
        self.enc = enc
        with torch.inference_mode():
            tokens = enc.tokenizer([f"a {c} {k}" for c, k in self.labels])
            t = enc.torch_model.encode_text(tokens)
        self.text = torch.nn.functional.normalize(t.float(), dim=-1)
        p = enc.params
        self.mean = torch.tensor(p.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(p.std).view(1, 3, 1, 1)
        self.size = p.size[0]

    @torch.inference_mode()
    def classify(self, image) -> tuple[str, str]:
        arr = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255)
        x = arr.permute(2, 0, 1).unsqueeze(0)
        if x.shape[-1] != self.size:
            x = torch.nn.functional.interpolate(x, size=self.size, mode="bicubic")
        emb = self.enc.torch_model.encode_image((x - self.mean) / self.std)
        emb = torch.nn.functional.normalize(emb.float(), dim=-1)
        return self.labels[int((emb @ self.text.t()).argmax())]


def pixel_colours(image) -> tuple[str, str | None]:
    """(nearest background name, nearest shape colour name or None)."""
    from clipsearch.demo import shapes

    a = np.asarray(image.convert("RGB"), dtype=np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    bg = np.median(border, 0)
    far = np.linalg.norm(a - bg, axis=-1) > 60
    fg = np.median(a[far], 0) if far.sum() >= 8 else None

    def nearest(rgb, table) -> str:
        return min(table, key=lambda n: float(np.linalg.norm(np.asarray(table[n]) - rgb)))

    return nearest(bg, shapes.BACKGROUNDS), None if fg is None else nearest(fg, shapes.COLOURS)


def grade(judge: Judge, image, caption: str, colour: str, kind: str) -> dict:
    from clipsearch.demo import shapes

    bg = shapes.parse_caption(caption).background
    c, k = judge.classify(image)
    pbg, pfg = pixel_colours(image)
    return {"clip": (c, k) == (colour, kind), "pixel": (pbg, pfg) == (bg, colour)}


def summary(rows: list[dict], key: str) -> dict:
    n = len(rows)
    return {
        "n": n,
        "clip_classifier": round(sum(r[key]["clip"] for r in rows) / n, 3),
        "pixel_check": round(sum(r[key]["pixel"] for r in rows) / n, 3),
        "mean_clip_score": round(sum(r[key + "_score"] for r in rows) / n, 4),
    }


def run(args: argparse.Namespace) -> dict:
    from clipsearch.generate.drafts import draw_candidates
    from clipsearch.generate.guide import ClipGuide
    from clipsearch.generate.prompts import Prompt
    from clipsearch.generate.sampling import SamplingSettings
    from clipsearch.generate.transformer import load_transformer
    from clipsearch.generate.vqgan import load_vqgan
    from clipsearch.model.torch_encoder import TorchEncoder

    torch.set_num_threads(args.threads)
    enc = TorchEncoder("tiny-shapes", device="cpu", threads=args.threads).load()
    vqgan = load_vqgan(REPO / "data" / "models" / "tiny-vqgan")
    loaded = load_transformer(args.transformer, vqgan=vqgan)
    judge = Judge(enc)
    sampling = SamplingSettings(args.temperature, args.top_k, args.top_p)
    p = enc.params

    def guide_for(text: str, cutouts: int = 16) -> ClipGuide:
        return ClipGuide(
            enc.torch_model,
            enc.tokenizer,
            [Prompt(text, 1.0)],
            image_size=p.size[0],
            mean=p.mean,
            std=p.std,
            cutouts=cutouts,
        )

    seen, held = prompts(args.seed)
    out: dict = {"candidates": args.candidates, "sampling": sampling.__dict__}
    rows_by_split: dict[str, list[dict]] = {}
    drafts_of: dict[str, object] = {}
    for split, items in (("seen", seen), ("heldout", held)):
        rows = []
        for i, (caption, colour, kind) in enumerate(items):
            guide = guide_for(caption)
            d = draw_candidates(
                loaded,
                vqgan,
                guide,
                caption,
                n=args.candidates,
                seed=args.seed + i,
                settings=sampling,
            )
            first = next(c for c in d.candidates if c.index == 0)
            rows.append(
                {
                    "prompt": caption,
                    "best": grade(judge, d.best.image, caption, colour, kind),
                    "best_score": d.best.clip_score,
                    "one": grade(judge, first.image, caption, colour, kind),
                    "one_score": first.clip_score,
                    "seconds": d.seconds,
                }
            )
            drafts_of[caption] = d
        rows_by_split[split] = rows
        out[split] = {
            f"best_of_{args.candidates}": summary(rows, "best"),
            "one_candidate": summary(rows, "one"),
            "seconds_per_prompt": round(sum(r["seconds"] for r in rows) / len(rows), 3),
            "clip_wrong": [r["prompt"] for r in rows if not r["best"]["clip"]][:12],
        }
    if args.versus > 0:  # 0: quality only (a sampling sweep)
        out["versus_vqgan_clip"] = versus(args, seen, held, drafts_of, judge, vqgan, guide_for)
    out["machine"] = f"{platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)"
    out["transformer"] = str(args.transformer)
    return out


def versus(args, seen, held, drafts_of, judge, vqgan, guide_for) -> dict:
    """VQGAN+CLIP from random codes, and from the best draft (transformer+vqgan)."""
    from clipsearch.generate.drafts import clip_scores, codes_to_latent
    from clipsearch.generate.drawers import VQGANDrawer
    from clipsearch.generate.optimise import Settings, optimise

    rng = random.Random(args.seed)
    subset = rng.sample(seen, args.versus // 2) + rng.sample(held, args.versus - args.versus // 2)
    rows = []
    for caption, colour, kind in subset:
        d = drafts_of[caption]
        target = d.best.clip_score
        row = {
            "prompt": caption,
            "transformer_seconds": round(d.seconds, 3),
            "target": target,
            "transformer_best": grade(judge, d.best.image, caption, colour, kind),
        }
        for name, init, steps, lr in (
            ("vqgan_clip", None, args.vqgan_steps, 0.1),
            ("transformer+vqgan", d.best.codes, args.refine_steps, 0.05),
        ):
            guide = guide_for(caption)
            drawer = VQGANDrawer(vqgan, 64, 64)
            if init is not None:
                drawer.init_latent = codes_to_latent(vqgan, init)
            scoring = {"spent": 0.0, "reached": None, "best": -1.0}
            start = time.perf_counter()

            def progress(report, scoring=scoring, guide=guide, start=start, target=target) -> None:
                if report.image is None:
                    return
                t0 = time.perf_counter()
                x = torch.from_numpy(np.asarray(report.image, dtype=np.float32) / 255)
                s = clip_scores(guide, x.permute(2, 0, 1).unsqueeze(0))[0]
                scoring["best"] = max(scoring["best"], s)
                if s >= target and scoring["reached"] is None:
                    scoring["reached"] = t0 - start - scoring["spent"]
                scoring["spent"] += time.perf_counter() - t0

            o = optimise(
                drawer, guide, Settings(steps=steps, seed=1, lr=lr, preview=5), progress=progress
            )
            g = grade(judge, o.image, caption, colour, kind)
            row[name] = {
                "seconds_to_target": None
                if scoring["reached"] is None
                else round(scoring["reached"], 2),
                "seconds_total": round(o.seconds - scoring["spent"], 2),
                "steps": steps,
                "final_score": round(scoring["best"], 4),
                **g,
            }
        rows.append(row)

    def frac(name: str, key: str) -> float:
        return round(sum(r[name][key] for r in rows) / len(rows), 3)

    reached = [r for r in rows if r["vqgan_clip"]["seconds_to_target"] is not None]
    ratios = [r["transformer_seconds"] / r["vqgan_clip"]["seconds_to_target"] for r in reached]
    return {
        "prompts": len(rows),
        "vqgan_clip_reached_target": f"{len(reached)}/{len(rows)}",
        "median_transformer_over_vqgan_time": round(float(np.median(ratios)), 3)
        if ratios
        else None,
        "transformer_best_seconds_mean": round(
            sum(r["transformer_seconds"] for r in rows) / len(rows), 3
        ),
        "vqgan_clip_seconds_mean": round(
            sum(r["vqgan_clip"]["seconds_total"] for r in rows) / len(rows), 2
        ),
        "accuracy": {
            name: {"clip_classifier": frac(name, "clip"), "pixel_check": frac(name, "pixel")}
            for name in ("transformer_best", "vqgan_clip", "transformer+vqgan")
        },
        "rows": rows,
    }


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--transformer", type=Path, default=REPO / "data" / "models" / "tiny-dalle")
    p.add_argument("--candidates", type=int, default=16)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--versus", type=int, default=8, help="prompts for the VQGAN+CLIP race")
    p.add_argument("--vqgan-steps", type=int, default=200)
    p.add_argument("--refine-steps", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="also write the JSON here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
