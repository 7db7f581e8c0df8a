"""A CLIP model as ONNX files on disk: the two towers, preprocessing and tokenizer facts.

Two folder layouts are read as they are:

- **clipsearch's** (what `clipsearch.model.export` writes, `onnx-dir:DIR`, the shipped
  `tiny-shapes`): `clipsearch_onnx.json` + `visual.onnx` + `textual.onnx`. The image tower
  takes uint8 pixels (N, H, W, 3) as decoding produced them and normalises inside the graph;
  the text tower takes int64 token ids (N, context); both return unit vectors.
- **Immich's** exports on the Hugging Face hub (`immich-app/ViT-B-32__laion2b-s34b-b79k` and
  its siblings): `config.json` (the open_clip model config), `visual/model.onnx` +
  `visual/preprocess_cfg.json`, `textual/model.onnx` + `textual/tokenizer.json`. The image
  tower takes normalised float32 (N, 3, H, W), the text tower int32 ids; some have a fixed
  batch of 1.

Input names, dtypes and a fixed batch size are read from the ONNX sessions themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from clipsearch.errors import ModelError
from clipsearch.media.images import PreprocessParams

LAYOUT_FILE = "clipsearch_onnx.json"
FORMAT = 1
DEFAULT_LOGIT_SCALE = 100.0  # CLIP's learned temperature after training (exp(4.6052))


@dataclass(frozen=True)
class OnnxModel:
    """Where a model's ONNX files are and what they need. Paths are absolute."""

    folder: Path
    visual: Path
    textual: Path
    params: PreprocessParams
    dim: int
    context_length: int
    tokenizer: Path | None  # a tokenizers JSON; None: the CLIP BPE clipsearch ships
    logit_scale: float
    fingerprint: str  # the weights this came from (as the library records it)
    layout: str  # "clipsearch" | "immich"
    precision: str = "fp32"

    def with_towers(self, visual: Path, textual: Path, precision: str) -> OnnxModel:
        return replace(self, visual=visual, textual=textual, precision=precision)


def is_model_folder(folder: Path) -> bool:
    """A folder in one of the two layouts."""
    return (folder / LAYOUT_FILE).is_file() or (
        (folder / "config.json").is_file() and (folder / "visual" / "model.onnx").is_file()
    )


def read(folder: Path, *, fingerprint: str | None = None) -> OnnxModel:
    """The model in `folder` (either layout); ModelError saying what is missing."""
    folder = folder.resolve()
    if (folder / LAYOUT_FILE).is_file():
        return _read_clipsearch(folder, fingerprint)
    if (folder / "config.json").is_file():
        return _read_immich(folder, fingerprint)
    raise ModelError(
        f"{folder} is not an ONNX model folder",
        hint=f"It needs {LAYOUT_FILE} with visual.onnx and textual.onnx (what clipsearch "
        "exports), or Immich's layout: config.json, visual/model.onnx, textual/model.onnx.",
    )


def write_description(folder: Path, facts: dict[str, Any]) -> None:
    """Write `clipsearch_onnx.json` (the caller writes the towers)."""
    (folder / LAYOUT_FILE).write_text(json.dumps({"format": FORMAT, **facts}, indent=1))


def _read_clipsearch(folder: Path, fingerprint: str | None) -> OnnxModel:
    facts = _json(folder / LAYOUT_FILE)
    if int(facts.get("format", 0)) > FORMAT:
        raise ModelError(
            f"{folder} was written by a newer clipsearch (format {facts.get('format')})",
            hint="Upgrade clipsearch to use it.",
        )
    model_cfg = facts.get("model_cfg") or {}
    tokenizer = facts.get("tokenizer")
    return OnnxModel(
        folder=folder,
        visual=_file(folder, facts.get("visual", "visual.onnx")),
        textual=_file(folder, facts.get("textual", "textual.onnx")),
        params=_params(facts.get("preprocess_cfg") or {}),
        dim=int(model_cfg.get("embed_dim") or facts["dim"]),
        context_length=int(model_cfg.get("text_cfg", {}).get("context_length", 77)),
        tokenizer=_file(folder, tokenizer) if tokenizer else None,
        logit_scale=float(facts.get("logit_scale", DEFAULT_LOGIT_SCALE)),
        fingerprint=fingerprint if fingerprint is not None else str(facts.get("fingerprint", "")),
        layout="clipsearch",
    )


def _read_immich(folder: Path, fingerprint: str | None) -> OnnxModel:
    cfg = _json(folder / "config.json")
    cfg = cfg.get("model_cfg", cfg)
    preprocess = folder / "visual" / "preprocess_cfg.json"
    tokenizer = folder / "textual" / "tokenizer.json"
    return OnnxModel(
        folder=folder,
        visual=_file(folder, "visual/model.onnx"),
        textual=_file(folder, "textual/model.onnx"),
        params=_params(_json(preprocess) if preprocess.is_file() else {}),
        dim=int(cfg["embed_dim"]),
        context_length=int(cfg.get("text_cfg", {}).get("context_length", 77)),
        tokenizer=tokenizer if tokenizer.is_file() else None,
        logit_scale=DEFAULT_LOGIT_SCALE,
        fingerprint=fingerprint or "",
        layout="immich",
    )


def _params(cfg: dict[str, Any]) -> PreprocessParams:
    size = cfg.get("size", 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    return PreprocessParams(
        size=(int(size[0]), int(size[1])),
        mean=tuple(float(x) for x in cfg.get("mean", PreprocessParams.mean)),
        std=tuple(float(x) for x in cfg.get("std", PreprocessParams.std)),
        interpolation=str(cfg.get("interpolation", "bicubic")),
        resize_mode=str(cfg.get("resize_mode", "shortest")),
        fill_color=int(cfg.get("fill_color", 0)),
    )


def params_dict(params: PreprocessParams) -> dict[str, Any]:
    """`params` as an open_clip preprocess config."""
    return {
        "size": list(params.size),
        "mean": list(params.mean),
        "std": list(params.std),
        "interpolation": params.interpolation,
        "resize_mode": params.resize_mode,
        "fill_color": params.fill_color,
    }


def _file(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise ModelError(f"the ONNX model in {folder} has no {name}")
    return path


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object")
    return data
