#!/usr/bin/env python
"""Write the ONNX towers of the shipped tiny-shapes model (data/models/tiny-shapes/).

    python scripts/export_tiny_shapes_onnx.py        # needs the [torch] extra

The graphs are exported without constant folding and then linked to the model's own
open_clip_model.safetensors (ONNX external data), so the weights ship once and both runtimes
read the same bytes. Run it again whenever the model is retrained.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from clipsearch.model.export import export, link_weights
    from clipsearch.model.onnx_model import LAYOUT_FILE
    from clipsearch.model.specs import ModelSpec, shipped_model_dir

    folder = shipped_model_dir("tiny-shapes")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export"
        export(ModelSpec.parse("tiny-shapes"), out, fold_constants=False)
        for name in ("visual.onnx", "textual.onnx", LAYOUT_FILE):
            shutil.copy(out / name, folder / name)
    weights = folder / "open_clip_model.safetensors"
    for name in ("visual.onnx", "textual.onnx"):
        n = link_weights(folder / name, weights)
        print(f"{name}: {n} tensors read from {weights.name}, {(folder / name).stat().st_size} B")


if __name__ == "__main__":
    main()
