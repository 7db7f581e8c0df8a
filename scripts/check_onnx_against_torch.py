#!/usr/bin/env python
"""Do a model's ONNX files give the vectors open_clip gives on torch? (needs [torch])

    python scripts/check_onnx_against_torch.py ONNX_SPEC [TORCH_SPEC] [--photos DIR] [--n 64]

    # Immich's export of the default model, against open_clip's weights of that name:
    python scripts/check_onnx_against_torch.py \\
        hf-hub:immich-app/ViT-B-32__laion2b-s34b-b79k ViT-B-32:laion2b_s34b_b79k

Encodes `--n` real photos and a set of captions with both, and prints JSON: the lowest and
median cosine between the two vectors of each photo and caption. clipsearch's own exports
must reach >= 0.9999 (a test checks tiny models on every run); use this for the big ones
where both sets of weights are at hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASET = ROOT.parent / "shared" / "datasets" / "imagenet-sample"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("onnx_spec")
    p.add_argument("torch_spec", nargs="?", help="default: the same spec")
    p.add_argument("--photos", type=Path, default=DATASET)
    p.add_argument("--n", type=int, default=64)
    args = p.parse_args()

    from clipsearch.media.images import load_for_model
    from clipsearch.model.encoder import Encoder
    from clipsearch.model.precision import CAPTIONS
    from clipsearch.model.torch_encoder import TorchEncoder

    onnx = Encoder(args.onnx_spec).load()
    ref = TorchEncoder(args.torch_spec or args.onnx_spec, device="cpu").load()
    files = sorted(f for f in args.photos.iterdir() if f.suffix.lower() in (".jpg", ".jpeg"))
    pixels = np.stack([load_for_model(f, onnx.params)[0] for f in files[: args.n]])
    cos_i = (onnx.encode_images(pixels) * ref.encode_images(pixels)).sum(1)
    cos_t = (onnx.encode_texts(list(CAPTIONS)) * ref.encode_texts(list(CAPTIONS))).sum(1)
    print(
        json.dumps(
            {
                "onnx": args.onnx_spec,
                "torch": args.torch_spec or args.onnx_spec,
                "photos": len(pixels),
                "image_cosine_min": round(float(cos_i.min()), 6),
                "image_cosine_median": round(float(np.median(cos_i)), 6),
                "text_cosine_min": round(float(cos_t.min()), 6),
                "same_params": onnx.params == ref.params,
                "pass": bool(min(cos_i.min(), cos_t.min()) >= 0.9999),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
