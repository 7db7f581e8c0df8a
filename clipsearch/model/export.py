"""Exporting an open_clip model to ONNX (needs the `[torch]` extra), once per model.

clipsearch's layout (`onnx_model.LAYOUT_FILE`): the image tower takes the uint8 pictures
decoding produced, (N, H, W, 3), and does the model's normalisation inside the graph; the text
tower takes int64 token ids (N, context length); both return unit vectors; the batch size is
free. `layout="immich"` writes Immich's layout instead (float NCHW input, int32 ids), which
the tests use to check that such folders are read right.

`link_weights` rewrites a graph exported with `do_constant_folding=False` so its weights are
read from the model's own `open_clip_model.safetensors` (ONNX external data): the shipped
tiny model carries its weights once, for both runtimes.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

from clipsearch.model.onnx_model import params_dict, write_description
from clipsearch.model.specs import ModelSpec

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the exported graphs change: old exports are then redone
OPSET = 17


def export(
    spec: ModelSpec, out: Path, *, layout: str = "clipsearch", fold_constants: bool = True
) -> None:
    """Export `spec` (loaded with open_clip on the CPU) into the folder `out`, atomically."""
    import torch

    from clipsearch.model.torch_encoder import TorchEncoder

    enc = TorchEncoder(spec, device="cpu").load()
    model = enc.torch_model.float().eval()
    params = enc.params
    cfg = _model_cfg(model, enc)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if layout == "immich":
            _export_immich(model, enc, params, cfg, tmp)
        else:
            h, w = params.size
            visual = _modules()["visual"](model, params.mean, params.std).eval()
            textual = _modules()["textual"](model).eval()
            pixels = torch.zeros((2, h, w, 3), dtype=torch.uint8)
            tokens = torch.as_tensor(enc.tokenizer(["a photo", "two dogs on a beach"]))
            _onnx(visual, pixels, tmp / "visual.onnx", "pixels", fold_constants)
            _onnx(textual, tokens.long(), tmp / "textual.onnx", "tokens", fold_constants)
            write_description(
                tmp,
                {
                    "model": spec.canonical,
                    "fingerprint": enc.fingerprint,
                    "model_cfg": cfg,
                    "preprocess_cfg": params_dict(params),
                    "logit_scale": enc.logit_scale,
                    "visual": "visual.onnx",
                    "textual": "textual.onnx",
                    "export_version": EXPORT_VERSION,
                    "opset": OPSET,
                    "torch": torch.__version__,
                },
            )
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _model_cfg(model: Any, enc: Any) -> dict[str, Any]:
    """The open_clip config of the loaded model (embed_dim, vision_cfg, text_cfg)."""
    import open_clip

    name = enc.model_name
    cfg = None
    if name.startswith("local-dir:"):
        cfg_path = Path(name[len("local-dir:") :]) / "open_clip_config.json"
        cfg = json.loads(cfg_path.read_text()).get("model_cfg")
    cfg = cfg or open_clip.get_model_config(name) or {}
    cfg = json.loads(json.dumps(cfg))
    cfg.setdefault("embed_dim", enc.dim)
    cfg.setdefault("text_cfg", {})["context_length"] = int(model.context_length)
    return cfg


def _onnx(module: Any, example: Any, path: Path, name: str, fold: bool) -> None:
    import warnings

    import torch

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # its fused kernel has no ONNX form
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's chatter about tracing
            _torch_export(module, example, path, name, fold)
    except Exception as exc:
        from clipsearch.errors import ModelError

        first = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else repr(exc)
        raise ModelError(
            f"cannot export this model to ONNX: {first}",
            hint="Report it, with the --model you used. Meanwhile pass ready ONNX files "
            "(--model onnx-dir:FOLDER).",
        ) from None
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _torch_export(module: Any, example: Any, path: Path, name: str, fold: bool) -> None:
    import torch

    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=[name],
        output_names=["embedding"],
        dynamic_axes={name: {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=OPSET,
        do_constant_folding=fold,
        dynamo=False,
    )


@functools.cache
def _modules() -> dict[str, Any]:
    """The wrapper modules the towers are exported through (torch is imported here)."""
    import torch

    class Visual(torch.nn.Module):
        """uint8 (N, H, W, 3) -> unit vectors, normalising as the model was trained."""

        def __init__(self, model: Any, mean: tuple, std: tuple) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("inv_std", 1.0 / (torch.tensor(std).view(1, 3, 1, 1) * 255.0))

        def forward(self, pixels: Any) -> Any:
            x = pixels.permute(0, 3, 1, 2).float()
            return self.model.encode_image((x - self.mean) * self.inv_std, normalize=True)

    class Textual(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, tokens: Any) -> Any:
            return self.model.encode_text(tokens.long(), normalize=True)

    class ImmichVisual(torch.nn.Module):  # normalised float (N, 3, H, W) in
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, image: Any) -> Any:
            return self.model.encode_image(image, normalize=True)

    return {"visual": Visual, "textual": Textual, "immich_visual": ImmichVisual}


def _export_immich(model: Any, enc: Any, params: Any, cfg: dict, out: Path) -> None:
    """Immich's layout: float NCHW "image", int32 "text", normalised "embedding" outputs."""
    import torch

    from clipsearch.model.tokenizer import SHIPPED

    (out / "visual").mkdir()
    (out / "textual").mkdir()
    h, w = params.size
    image = torch.zeros((1, 3, h, w))
    text = torch.as_tensor(enc.tokenizer(["a photo"])).int()
    visual, textual = _modules()["immich_visual"](model), _modules()["textual"](model)
    _onnx(visual.eval(), image, out / "visual" / "model.onnx", "image", True)
    _onnx(textual.eval(), text, out / "textual" / "model.onnx", "text", True)
    (out / "config.json").write_text(json.dumps(cfg))
    (out / "visual" / "preprocess_cfg.json").write_text(json.dumps(params_dict(params)))
    (out / "textual" / "tokenizer.json").write_bytes(gzip.decompress(SHIPPED.read_bytes()))
    (out / "textual" / "tokenizer_config.json").write_text(
        json.dumps({"pad_token": "<|endoftext|>", "model_max_length": 77})
    )


def link_weights(onnx_path: Path, weights: Path, *, prefix: str = "model.") -> int:
    """Point the initializers of `onnx_path` at the same tensors in `weights` (a safetensors
    file in the same folder) instead of holding copies; a tensor stored in another dtype is
    cast in the graph. Returns how many initializers now live in `weights`."""
    import onnx
    from onnx import TensorProto, helper

    dtypes = {"F32": TensorProto.FLOAT, "F16": TensorProto.FLOAT16, "I64": TensorProto.INT64}
    with open(weights, "rb") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_len))
    base = 8 + header_len
    model = onnx.load(str(onnx_path))
    graph = model.graph
    kept, casts, linked = [], [], 0
    for init in graph.initializer:
        key = init.name[len(prefix) :] if init.name.startswith(prefix) else init.name
        facts = header.get(key)
        if not facts or list(facts["shape"]) != list(init.dims) or facts["dtype"] not in dtypes:
            kept.append(init)
            continue
        stored = onnx.TensorProto()
        stored.dims.extend(facts["shape"])
        stored.data_type = dtypes[facts["dtype"]]
        stored.name = init.name if stored.data_type == init.data_type else init.name + "__stored"
        stored.data_location = TensorProto.EXTERNAL
        start, end = facts["data_offsets"]
        for k, v in (("location", weights.name), ("offset", base + start), ("length", end - start)):
            entry = stored.external_data.add()
            entry.key, entry.value = k, str(v)
        kept.append(stored)
        if stored.name != init.name:
            casts.append(helper.make_node("Cast", [stored.name], [init.name], to=init.data_type))
        linked += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.save(model, str(onnx_path))
    return linked
