#!/usr/bin/env python
"""OCR: word recall on rendered text pictures, and its cost per picture against the model's.

    python scripts/bench_ocr.py [--rounds 3] [--photos 50] [--big 20] [--backend auto]

Recall: the pictures of `tests/ocr_pictures.py` (fonts and sizes 14-60 px, dark on light and
light on dark, a receipt, a whiteboard, a screenshot, a sign on a photo, text turned by
90/180/270 degrees, photographed pages, a 4000 px page): the fraction of each picture's
words that `TextReader.read` finds (case-insensitive, as `words_of` splits them), per kind
and overall (all words together). False words: what it reads in real photos without text.

Cost, in one process, rounds interleaved (OCR on the text pictures, the model on the photos,
OCR on the photos, OCR on the photos scaled to 2000 px, then again), so load on this shared
machine falls on all alike:

- OCR: `TextReader.read` on an already decoded picture (one thread: its engine is
  single-threaded); the median seconds per picture, and the mean CPU seconds;
- the model: OpenCLIP ViT-B-32 with random weights (`ViT-B-32:random`, the real cost, no
  download) on ONNX Runtime, as `clipsearch index` runs it (fp32 and int8, batches of 32, all
  cores), on the photos already decoded and preprocessed; seconds and CPU seconds per picture.

Ratios: OCR's median seconds per picture over the model's seconds per picture (wall), and
OCR's CPU seconds over the model's (cpu: what the two cost the machine), per round.

Photos: `--photos` animal photos of `../shared/datasets/imagenet-sample` (~500x375, read in
place). `--big`: as many of them scaled up to 2000 px (the size OCR reads a camera photo at;
smoother than a real camera photo, so a floor for its cost). Prints JSON; figures go to
docs/ocr.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ocr_pictures import photos_without_text, text_pictures, words_of  # noqa: E402

MODEL = "ViT-B-32:random"


def cpu_now() -> float:
    """CPU seconds of this process and its finished children (the `tesseract` program's)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def ocr_batch(reader, images) -> dict:
    seconds = []
    words = 0
    cpu0 = cpu_now()
    for img in images:
        result = reader.read(img)
        seconds.append(result.seconds)
        words += result.words
    cpu = cpu_now() - cpu0
    return {
        "median_s": statistics.median(seconds),
        "mean_s": statistics.fmean(seconds),
        "cpu_s": cpu / len(images),
        "words": words,
    }


def model_batch(encoder, pixels) -> dict:
    cpu0, t0 = cpu_now(), time.perf_counter()
    encoder.encode_images(pixels)
    wall, cpu = time.perf_counter() - t0, cpu_now() - cpu0
    return {"per_image_s": wall / len(pixels), "cpu_s": cpu / len(pixels)}


def recall_table(reader, pictures) -> dict:
    by_kind: dict[str, list[int]] = {}
    per_picture = {}
    for pic in pictures:
        got = set(words_of(reader.read(pic.image).text))
        found = sum(w in got for w in pic.words)
        k = by_kind.setdefault(pic.kind, [0, 0])
        k[0] += found
        k[1] += len(pic.words)
        per_picture[pic.name] = round(found / len(pic.words), 3)
    found = sum(v[0] for v in by_kind.values())
    total = sum(v[1] for v in by_kind.values())
    return {
        "overall": round(found / total, 4),
        "words": total,
        "pictures": len(pictures),
        "by_kind": {k: round(v[0] / v[1], 4) for k, v in by_kind.items()},
        "per_picture": per_picture,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--photos", type=int, default=50)
    ap.add_argument("--big", type=int, default=20, help="photos scaled to 2000 px (0: none)")
    ap.add_argument("--backend", default="auto", choices=("auto", "tesserocr", "cli"))
    ap.add_argument("--lang", default="eng")
    ap.add_argument("--precisions", default="fp32,int8", help="the model's, comma-separated")
    args = ap.parse_args()

    import numpy as np
    from PIL import Image

    from clipsearch.media.images import prepare
    from clipsearch.media.ocr import TextReader, ocr_unavailable
    from clipsearch.model.encoder import Encoder

    problem = ocr_unavailable(args.lang, backend=args.backend)
    if problem:
        sys.exit(problem)
    pictures = text_pictures()
    photos = photos_without_text(args.photos)
    if len(photos) < args.photos:
        sys.exit(f"need {args.photos} photos of ../shared/datasets/imagenet-sample")
    photo_images = [p.image for p in photos]
    big = []
    for img in photo_images[: args.big]:
        scale = 2000 / max(img.size)
        size = (round(img.width * scale), round(img.height * scale))
        big.append(img.resize(size, Image.Resampling.BICUBIC))
    text_images = [p.image for p in pictures]

    reader = TextReader(args.lang, backend=args.backend)
    precisions = args.precisions.split(",")
    encoders = {p: Encoder(MODEL, batch_size=32, precision=p) for p in precisions}
    params = next(iter(encoders.values())).params
    pixels = np.stack([prepare(img, params) for img in photo_images])

    # warm-up: engines loaded, the ONNX sessions made
    reader.read(text_images[0])
    for encoder in encoders.values():
        encoder.encode_images(pixels[:32])

    t0 = time.perf_counter()
    recall = recall_table(reader, pictures)
    false_words = [reader.read(img).words for img in photo_images]
    recall_seconds = time.perf_counter() - t0

    rounds = []
    for i in range(args.rounds):  # OCR and model batches alternate; the models' order rotates
        r = {"ocr_text": ocr_batch(reader, text_images)}
        order = precisions[i % len(precisions) :] + precisions[: i % len(precisions)]
        r[f"model_{order[0]}"] = model_batch(encoders[order[0]], pixels)
        r["ocr_photo"] = ocr_batch(reader, photo_images)
        for p in order[1:]:
            r[f"model_{p}"] = model_batch(encoders[p], pixels)
        if big:
            r["ocr_photo_2000px"] = ocr_batch(reader, big)
        rounds.append(r)
    reader.close()

    def med(key: str, field: str) -> float:
        return round(statistics.median(r[key][field] for r in rounds), 4)

    ratios: dict[str, dict] = {}
    keys = [k for k in ("ocr_text", "ocr_photo", "ocr_photo_2000px") if k in rounds[0]]
    for key in keys:
        for p in precisions:
            model = f"model_{p}"
            wall = [r[key]["median_s"] / r[model]["per_image_s"] for r in rounds]
            cpu = [r[key]["cpu_s"] / r[model]["cpu_s"] for r in rounds]
            ratios.setdefault(key, {})[f"vs_{p}"] = {
                "wall_per_round": [round(x, 3) for x in wall],
                "cpu_per_round": [round(x, 3) for x in cpu],
                "wall": round(statistics.median(wall), 3),
                "cpu": round(statistics.median(cpu), 3),
            }
    seconds, cpu = {}, {}
    for p in precisions:
        seconds[f"model_{p}_per_image_s"] = med(f"model_{p}", "per_image_s")
        cpu[f"model_{p}_cpu_s"] = med(f"model_{p}", "cpu_s")
    for key in keys:
        seconds[f"{key}_median_s"] = med(key, "median_s")
        seconds[f"{key}_mean_s"] = med(key, "mean_s")
        cpu[f"{key}_cpu_s"] = med(key, "cpu_s")

    engine = {"tesseract": "?", "tesserocr": None}
    try:
        import tesserocr

        engine = {
            "tesseract": tesserocr.tesseract_version().splitlines()[0],
            "tesserocr": getattr(tesserocr, "__version__", "?"),
        }
    except ImportError:
        pass
    out = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
        },
        "ocr": {
            "backend": reader.backend,
            "lang": reader.lang,
            **engine,
            "max_side": reader.max_side,
        },
        "model": {"spec": MODEL, "runtime": "onnxruntime", "precisions": precisions, "batch": 32},
        "recall": recall,
        "photos_without_text": {
            "n": len(photo_images),
            "words_found": sum(false_words),
            "photos_with_words": sum(1 for w in false_words if w),
        },
        "seconds_per_image": seconds,
        "cpu_seconds_per_image": cpu,
        "ocr_vs_model": ratios,
        "rounds": args.rounds,
        "pictures": {"text": len(text_images), "photos": len(photo_images), "big": len(big)},
        "recall_pass_s": round(recall_seconds, 2),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
