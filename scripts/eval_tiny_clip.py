#!/usr/bin/env python
"""Evaluate an open_clip model on held-out images of the shapes world; print JSON.

    python scripts/eval_tiny_clip.py --model local-dir:data/models/tiny-shapes

Two evaluation sets are generated from their own seeds (``--seed`` and ``--seed + 1``;
training step ``i`` of a run with seed ``s`` draws from ``random.Random(s * 1_000_003 + i)``,
so the default seeds never coincide with the shipped model's 2626 training steps):

* **seen** (``--n-seen`` images, about a third of them single-object): only attribute
  combinations allowed in training (no ``HELDOUT_COMBOS`` colour+shape pair); new images.
* **heldout** (``--n-heldout`` images): only ``HELDOUT_COMBOS`` colour+shape pairs, which
  training never showed (neither as images nor as captions).

Those two sets use the project's own renderer. **Top-4 queries across renderers**
(``--style-rounds`` rounds, seed ``--seed + 4``) asks whether a colour+shape query finds
pictures of that thing however they were drawn: each round draws 4 single-object pictures of
every colour+shape pair in each of four styles (``clipsearch.demo.other_renderer``): the
house renderer, the "pil" and "sdf" renderers of training, and the held-out "plain" style
("another program": one filled shape, 224 px, white, random size and position, never used in
training). Each query "a <colour> <shape>" passes when >= 3 of its top 4 pictures have its
colour and shape; the fractions of passing queries are reported per style (a gallery of one
style), and over mixed galleries (one picture of each style per pair, so 4 of 192 pictures
match each query), for all queries and for the held-out combinations alone.

Images are rendered at ``--render-size`` pixels and go through the model's own preprocessing
(``open_clip.create_model_and_transforms``), exactly like images a user indexes. All metrics
are defined in ``DEFINITIONS`` below and printed with the results.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from itertools import product
from pathlib import Path
from typing import Any

import torch

try:
    from clipsearch.demo import other_renderer, shapes
except ImportError:  # running from a source checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from clipsearch.demo import other_renderer, shapes

DEFINITIONS = {
    "zero_shot_colour_shape_acc": (
        "single-object images (count 1); each is classified among all colour x shape prompts "
        "'a <colour> <shape>' (held-out pairs included) by cosine similarity; correct when "
        "both colour and shape are right"
    ),
    "zero_shot_colour_shape_acc_all_counts": (
        "all images; score of a colour x shape class = max similarity over the prompts "
        "'a <colour> <shape>', 'two <colour> <shape>s', 'three <colour> <shape>s'"
    ),
    "caption_acc": (
        "image->text: each image classified among all complete captions of the world "
        "(count, size, colour, shape, background); top-1 must match all five attributes. "
        "The per-attribute accuracies (count_acc, size_acc, ...) score that same top-1 caption"
    ),
    "text_to_image_recall@k": (
        "queries: each distinct complete caption of the split's images; gallery: the split's "
        "images (for 'heldout', seen + heldout images together); a query is a hit at k when "
        "one of the k most similar images has exactly the query's attributes (count, size, "
        "colour, shape, background; several images can share a caption, any of them counts)"
    ),
    "colour_shape_query_precision@10": (
        "queries 'a <colour> <shape>' for each colour x shape pair of the split; fraction of "
        "the 10 most similar gallery images whose colour and shape both match (any count), "
        "averaged over queries"
    ),
    "image_query_same_colour_shape@1": (
        "image -> image: groups of a query picture and 6 candidates, 3 with its colour and "
        "shape but another count, size or background, 3 that differ only in colour (2) or "
        "shape (1); fraction of groups whose most similar candidate has the query's colour "
        "and shape (chance 0.5)"
    ),
    "image_query_same_colour_shape_precision@3": (
        "same groups: fraction of the 3 most similar candidates with the query's colour and "
        "shape, averaged (chance 0.5)"
    ),
    "top4_pass": (
        "styles house, pil, sdf (the renderers of training) and plain (held-out style: one "
        "filled shape drawn by 'another program', 224 px, white, random size and position); "
        "each round draws 4 single-object pictures per colour x shape pair and style. Query "
        "'a <colour> <shape>' for every pair; it passes when >= 3 of its 4 most similar "
        "pictures have its colour and shape. by_style: galleries of one style (192 "
        "pictures, 4 matching); mixed: galleries of one picture per pair and style (192 "
        "pictures, 4 matching, one per style). Reported: fraction of passing queries over "
        "all pairs, the seen pairs and the held-out combinations; target >= 0.9"
    ),
    "plain_in_top4": (
        "mixed galleries: fraction of the held-out style's matching pictures that reach "
        "their query's top 4 (1 of the 4 top places is theirs when styles are ranked alike)"
    ),
    "zero_shot_by_style": (
        "the same pictures, each classified among the 48 prompts 'a <colour> <shape>'"
    ),
}


@torch.no_grad()
def encode_texts(model: Any, tokenizer: Callable, texts: Sequence[str]) -> torch.Tensor:
    """L2-normalised text embeddings, in order."""
    out = [
        model.encode_text(tokenizer(list(texts[i : i + 512])), normalize=True)
        for i in range(0, len(texts), 512)
    ]
    return torch.cat(out)


@torch.no_grad()
def encode_images(
    model: Any, preprocess: Callable, images: Sequence[Any], batch_size: int = 256
) -> torch.Tensor:
    """L2-normalised image embeddings of PIL images, in order."""
    out = []
    for i in range(0, len(images), batch_size):
        batch = torch.stack([preprocess(im) for im in images[i : i + batch_size]])
        out.append(model.encode_image(batch, normalize=True))
    return torch.cat(out)


def make_split(
    n: int, seed: int, heldout: shapes.Heldout, render_size: int
) -> tuple[list[shapes.Scene], list[Any]]:
    """``n`` scenes from ``random.Random(seed)`` and their renderings."""
    rng = random.Random(seed)
    scenes = [shapes.sample_scene(rng, heldout=heldout) for _ in range(n)]
    ss = 4 if render_size <= 128 else 2  # as write_collection does at its default 256 px
    return scenes, [shapes.render(s, render_size, supersample=ss) for s in scenes]


def _recall(
    sims: torch.Tensor, queries: list[shapes.Description], gallery: list[shapes.Description], ks
) -> dict[str, float]:
    order = sims.topk(max(ks), dim=1).indices.tolist()
    out = {}
    for k in ks:
        hits = sum(
            any(gallery[j] == q for j in row[:k]) for q, row in zip(queries, order, strict=True)
        )
        out[f"text_to_image_recall@{k}"] = round(hits / len(queries), 4)
    return out


def split_metrics(
    model: Any,
    tokenizer: Callable,
    img: torch.Tensor,
    descs: list[shapes.Description],
    gallery_img: torch.Tensor,
    gallery_descs: list[shapes.Description],
) -> dict[str, Any]:
    """All metrics for one split (see ``DEFINITIONS``)."""
    colours, kinds = list(shapes.COLOURS), list(shapes.SHAPES)
    pairs = list(product(colours, kinds))
    res: dict[str, Any] = {"n_images": len(descs)}

    # zero-shot colour+shape, single-object images, prompts "a red circle"
    prompts = [shapes.caption(shapes.Description(1, None, c, k)) for c, k in pairs]
    single = [i for i, d in enumerate(descs) if d.count == 1]
    pred = (img[single] @ encode_texts(model, tokenizer, prompts).T).argmax(1).tolist()
    ok = [pairs[p] == (descs[i].colour, descs[i].kind) for i, p in zip(single, pred, strict=True)]
    res["n_single_object_images"] = len(single)
    res["zero_shot_colour_shape_acc"] = round(sum(ok) / len(ok), 4)

    # zero-shot colour+shape, all images, max over count phrasings
    counted = [shapes.Description(n, None, c, k) for n in shapes.COUNTS for c, k in pairs]
    t = encode_texts(model, tokenizer, [shapes.caption(d) for d in counted])
    scores = (img @ t.T).view(len(descs), len(shapes.COUNTS), len(pairs)).amax(1)
    pred = scores.argmax(1).tolist()
    ok = [pairs[p] == (d.colour, d.kind) for d, p in zip(descs, pred, strict=True)]
    res["zero_shot_colour_shape_acc_all_counts"] = round(sum(ok) / len(ok), 4)

    # image -> text among all complete captions
    everything = shapes.all_descriptions("include")
    t = encode_texts(model, tokenizer, [shapes.caption(d) for d in everything])
    pred = (img @ t.T).argmax(1).tolist()
    res["caption_acc"] = round(
        sum(everything[p] == d for d, p in zip(descs, pred, strict=True)) / len(descs), 4
    )
    for attr in ("count", "size", "colour", "kind", "background"):
        ok = [
            getattr(everything[p], attr) == getattr(d, attr)
            for d, p in zip(descs, pred, strict=True)
        ]
        res[f"{attr}_acc"] = round(sum(ok) / len(ok), 4)

    # text -> image retrieval with complete captions
    queries = sorted(set(descs), key=shapes.caption)
    sims = encode_texts(model, tokenizer, [shapes.caption(q) for q in queries]) @ gallery_img.T
    res["n_queries"] = len(queries)
    res["n_gallery"] = len(gallery_descs)
    res.update(_recall(sims, queries, gallery_descs, (1, 5, 10)))

    # precision@10 of colour+shape queries
    split_pairs = sorted({(d.colour, d.kind) for d in descs})
    prompts = [shapes.caption(shapes.Description(1, None, c, k)) for c, k in split_pairs]
    top = (encode_texts(model, tokenizer, prompts) @ gallery_img.T).topk(10, dim=1).indices
    prec = [
        sum((gallery_descs[j].colour, gallery_descs[j].kind) == pair for j in row) / 10
        for pair, row in zip(split_pairs, top.tolist(), strict=True)
    ]
    res["colour_shape_query_precision@10"] = round(sum(prec) / len(prec), 4)
    return res


def image_query_metrics(
    model: Any,
    preprocess: Callable,
    n_groups: int,
    seed: int,
    heldout: shapes.Heldout,
    render_size: int,
) -> dict[str, float]:
    """Does an image query find pictures of the same thing (colour + shape) first?

    Each group: a query picture; 3 candidates with its colour and shape but another count,
    size or background; 3 candidates that differ only in colour (2) or shape (1). See
    ``DEFINITIONS``; chance is 0.5 for @1 and 0.5 for precision@3.
    """
    rng = random.Random(seed)
    ss = 4 if render_size <= 128 else 2
    other = {
        "count": shapes.COUNTS,
        "size": shapes.SIZES,
        "background": tuple(shapes.BACKGROUNDS),
        "colour": tuple(shapes.COLOURS),
        "kind": shapes.SHAPES,
    }

    def vary(d: shapes.Description, attr: str) -> shapes.Description:
        # Candidates may be any combination (held-out pairs included): only the query
        # picture follows the split.
        return replace(d, **{attr: rng.choice([x for x in other[attr] if x != getattr(d, attr)])})

    top1 = prec3 = 0
    for _ in range(n_groups):
        q = shapes.sample_description(rng, heldout)
        q = shapes.sample_scene(rng, q, heldout).description
        same = [vary(q, a) for a in ("count", "size", "background")]
        diff = [vary(q, "colour"), vary(q, "colour"), vary(q, "kind")]
        descs = [q, *same, *diff]
        pics = [
            shapes.render(shapes.sample_scene(rng, d, "include"), render_size, ss) for d in descs
        ]
        emb = encode_images(model, preprocess, pics)
        order = (emb[1:] @ emb[0]).argsort(descending=True).tolist()
        top1 += order[0] < 3
        prec3 += sum(i < 3 for i in order[:3]) / 3
    return {
        "image_query_same_colour_shape@1": round(top1 / n_groups, 4),
        "image_query_same_colour_shape_precision@3": round(prec3 / n_groups, 4),
        "image_query_groups": n_groups,
    }


def style_metrics(
    model: Any,
    tokenizer: Callable,
    preprocess: Callable,
    *,
    rounds: int = 5,
    per_pair: int = 4,
    seed: int = 10_005,
) -> dict[str, Any]:
    """Top-4 colour+shape queries over pictures of four rendering styles (``top4_pass``)."""
    styles = other_renderer.STYLES
    pairs = list(product(shapes.COLOURS, shapes.SHAPES))
    held = [p in shapes.HELDOUT_COMBOS for p in pairs]
    prompts = [shapes.caption(shapes.Description(1, None, c, k)) for c, k in pairs]
    text = encode_texts(model, tokenizer, prompts)
    # counts of passing queries: {gallery: {"all"/"seen"/"heldout_combos": [passed, total]}}
    tally: dict[str, dict[str, list[int]]] = {}
    zero_shot = {st: [0, 0] for st in styles}
    plain_top4 = [0, 0]
    plain_round0: dict[str, int] = {}

    def count(gallery: str, hits: list[int]) -> None:
        t = tally.setdefault(gallery, {g: [0, 0] for g in ("all", "seen", "heldout_combos")})
        for h, is_held in zip(hits, held, strict=True):
            for g in ("all", "heldout_combos" if is_held else "seen"):
                t[g][0] += h >= 3
                t[g][1] += 1

    for r in range(rounds):
        emb: dict[str, torch.Tensor] = {}
        for i, style in enumerate(styles):
            rng = random.Random(seed * 1_000 + r * 10 + i)
            pics = [
                other_renderer.sample_picture(
                    rng, shapes.Description(1, None, c, k), style, "include"
                )[1]
                for c, k in pairs
                for _ in range(per_pair)
            ]
            emb[style] = encode_images(model, preprocess, pics)
            truth = torch.arange(len(pairs)).repeat_interleave(per_pair)
            pred = (emb[style] @ text.T).argmax(1)
            zero_shot[style][0] += int((pred == truth).sum())
            zero_shot[style][1] += len(truth)
            top = (text @ emb[style].T).topk(4, dim=1).indices // per_pair
            hits = [int((row == q).sum()) for q, row in enumerate(top)]
            count(style, hits)
            if style == other_renderer.HELDOUT_STYLE and r == 0:
                plain_round0 = dict(zip(prompts, hits, strict=True))
        for j in range(per_pair):  # mixed galleries: picture j of each style
            gallery = torch.cat([emb[st][j::per_pair] for st in styles])  # style-major
            top = (text @ gallery.T).topk(4, dim=1).indices
            hits = [int((row % len(pairs) == q).sum()) for q, row in enumerate(top)]
            count("mixed", hits)
            plain = styles.index(other_renderer.HELDOUT_STYLE) * len(pairs)
            for q, row in enumerate(top.tolist()):
                plain_top4[0] += (plain + q) in row
                plain_top4[1] += 1

    def frac(x: list[int]) -> float:
        return round(x[0] / max(1, x[1]), 4)

    by = {g: {k: frac(v) for k, v in t.items()} for g, t in tally.items()}
    return {
        "heldout_style": by[other_renderer.HELDOUT_STYLE]["all"],
        "heldout_combos": by["mixed"]["heldout_combos"],
        "overall": by["mixed"]["all"],
        "target": 0.9,
        "top4_pass": {
            "mixed": by["mixed"],
            "by_style": {st: by[st] for st in styles},
            "queries": {g: v["all"][1] for g, v in tally.items()},
        },
        "plain_in_top4": frac(plain_top4),
        "zero_shot_by_style": {st: frac(v) for st, v in zero_shot.items()},
        "plain_round0_matches_in_top4": plain_round0,
        "rounds": rounds,
        "pictures_per_pair_and_style": per_pair,
        "seed": seed,
    }


def evaluate(
    model: Any,
    tokenizer: Callable,
    preprocess: Callable,
    *,
    n_seen: int = 3200,
    n_heldout: int = 1600,
    seed: int = 10_001,
    render_size: int = 256,
    style_rounds: int = 5,
) -> dict[str, Any]:
    """Evaluate ``model`` on both splits and across renderers; returns a JSON-able dict."""
    t0 = time.time()
    model.eval()
    seen, seen_images = make_split(n_seen, seed, "exclude", render_size)
    held, held_images = make_split(n_heldout, seed + 1, "only", render_size)
    seen_img = encode_images(model, preprocess, seen_images)
    held_img = encode_images(model, preprocess, held_images)
    seen_d = [s.description for s in seen]
    held_d = [s.description for s in held]
    seen_m = split_metrics(model, tokenizer, seen_img, seen_d, seen_img, seen_d)
    seen_m.update(image_query_metrics(model, preprocess, 200, seed + 2, "exclude", render_size))
    held_m = split_metrics(
        model, tokenizer, held_img, held_d, torch.cat([seen_img, held_img]), seen_d + held_d
    )
    held_m.update(image_query_metrics(model, preprocess, 100, seed + 3, "only", render_size))
    styles = style_metrics(model, tokenizer, preprocess, rounds=style_rounds, seed=seed + 4)
    return {
        "across_renderers": styles,
        "seen": seen_m,
        "heldout_combos": held_m,
        "heldout_pairs": sorted(f"{c} {k}" for c, k in shapes.HELDOUT_COMBOS),
        "seeds": {"seen": seed, "heldout_combos": seed + 1},
        "render_size": render_size,
        "definitions": DEFINITIONS,
        "eval_seconds": round(time.time() - t0, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="local-dir:data/models/tiny-shapes")
    ap.add_argument("--n-seen", type=int, default=3200)
    ap.add_argument("--n-heldout", type=int, default=1600)
    ap.add_argument("--seed", type=int, default=10_001, help="seen split seed; heldout: +1")
    ap.add_argument("--render-size", type=int, default=256, help="pixels before preprocessing")
    ap.add_argument("--style-rounds", type=int, default=5, help="rounds of the top-4 test")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--only-styles", action="store_true", help="only the top-4 test")
    args = ap.parse_args(argv)
    import open_clip

    if args.threads:
        torch.set_num_threads(args.threads)
    model, _, preprocess = open_clip.create_model_and_transforms(args.model)
    tokenizer = open_clip.get_tokenizer(args.model)
    model.eval()
    if args.only_styles:
        result = style_metrics(
            model, tokenizer, preprocess, rounds=args.style_rounds, seed=args.seed + 4
        )
        result["model"] = args.model
        print(json.dumps(result, indent=2))
        return 0
    result = evaluate(
        model,
        tokenizer,
        preprocess,
        n_seen=args.n_seen,
        n_heldout=args.n_heldout,
        seed=args.seed,
        render_size=args.render_size,
        style_rounds=args.style_rounds,
    )
    result["model"] = args.model
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
