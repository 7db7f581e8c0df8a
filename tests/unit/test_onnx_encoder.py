"""The ONNX Runtime encoder against open_clip on torch: same vectors, lazy towers, layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from clipsearch.errors import ModelError
from clipsearch.media.images import load_for_model
from clipsearch.model.encoder import Encoder
from clipsearch.model.onnx_model import read
from clipsearch.model.specs import ModelSpec
from tests.helpers import REPO

pytest.importorskip("open_clip", reason="the reference is open_clip on torch")
from clipsearch.model.torch_encoder import TorchEncoder

PHOTOS = sorted((REPO.parent / "shared" / "datasets" / "imagenet-sample").glob("*.JPEG"))[:24]
TEXTS = [
    "a photo of a dog on a beach",
    "a red circle",
    "two blue stars on a black background",
    "Don’t “quote” me — naïve café 🐶",
    "word " * 100,
]


def _pixels(enc, files=PHOTOS) -> np.ndarray:
    if not files:
        pytest.skip("the real photos of ../shared/datasets/imagenet-sample are not here")
    return np.stack([load_for_model(f, enc.params)[0] for f in files])


def _same(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


@pytest.mark.parametrize("spec", ["tiny-shapes", "tiny"])
def test_fp32_onnx_gives_torchs_vectors_on_real_photos_and_texts(spec, tiny_model):
    spec = tiny_model if spec == "tiny" else spec
    onnx, torch_ = Encoder(spec).load(), TorchEncoder(spec).load()
    pixels = _pixels(onnx)
    assert _same(onnx.encode_images(pixels), torch_.encode_images(pixels)) >= 0.9999
    assert _same(onnx.encode_texts(TEXTS), torch_.encode_texts(TEXTS)) >= 0.9999
    assert onnx.fingerprint == torch_.fingerprint  # the library sees the same model
    assert onnx.dim == torch_.dim and onnx.params == torch_.params
    assert onnx.logit_scale == pytest.approx(torch_.logit_scale, rel=1e-5)


def test_the_shipped_model_reads_its_weights_from_the_one_safetensors_file():
    folder = REPO / "data" / "models" / "tiny-shapes"
    assert (folder / "visual.onnx").stat().st_size < 200_000  # graphs only: no copied weights
    assert (folder / "textual.onnx").stat().st_size < 200_000
    assert read(folder).layout == "clipsearch"


def test_a_text_query_loads_only_the_text_tower_and_an_image_only_the_image_tower():
    enc = Encoder("tiny-shapes")
    enc.encode_texts(["a red circle"])
    assert {tower for tower, _ in enc._sessions} == {"textual"}
    other = Encoder("tiny-shapes")
    other.encode_images(_pixels(other, PHOTOS[:1]), query=True)
    assert set(other._sessions) == {("visual", 1)}  # a query image: one thread


def test_immich_layout_is_read_as_it_is(tmp_path, tiny_model):
    from clipsearch.model.export import export

    folder = tmp_path / "immich"
    export(ModelSpec.parse(tiny_model), folder, layout="immich")
    assert (folder / "visual" / "model.onnx").is_file()
    assert (folder / "textual" / "tokenizer.json").is_file()
    onnx, torch_ = Encoder(f"onnx-dir:{folder}").load(), TorchEncoder(tiny_model).load()
    assert onnx.model.layout == "immich"
    pixels = _pixels(onnx, PHOTOS[:6])
    assert _same(onnx.encode_images(pixels), torch_.encode_images(pixels)) >= 0.9999
    assert _same(onnx.encode_texts(TEXTS), torch_.encode_texts(TEXTS)) >= 0.9999


def test_an_onnx_folder_works_as_a_model(tmp_path):
    src = REPO / "data" / "models" / "tiny-shapes"
    copy = tmp_path / "my-onnx"
    shutil.copytree(src, copy)
    enc = Encoder(f"onnx-dir:{copy}").load()
    ref = Encoder("tiny-shapes").load()
    assert _same(enc.encode_texts(TEXTS), ref.encode_texts(TEXTS)) >= 0.99999
    assert enc.fingerprint and enc.fingerprint != ref.fingerprint  # its own files


def test_int8_stays_close_to_fp32(tiny_model):
    fp32, int8 = Encoder(tiny_model).load(), Encoder(tiny_model, precision="int8").load()
    assert int8.model.precision == "int8" and int8.model.visual != fp32.model.visual
    pixels = _pixels(fp32, PHOTOS[:8])
    assert _same(int8.encode_images(pixels), fp32.encode_images(pixels)) >= 0.99


def test_a_missing_execution_provider_is_a_clear_error():
    enc = Encoder("tiny-shapes", device="cuda")
    with pytest.raises(ModelError) as err:
        enc.encode_texts(["x"])
    assert "onnxruntime-gpu" in (err.value.hint or "")
    with pytest.raises(ModelError, match="unknown device"):
        Encoder("tiny-shapes", device="tpu").encode_texts(["x"])


def test_a_damaged_onnx_file_is_a_clear_error(tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(REPO / "data" / "models" / "tiny-shapes", copy)
    (copy / "textual.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="cannot load the ONNX model"):
        Encoder(f"onnx-dir:{copy}").encode_texts(["x"])


def test_export_is_cached(tiny_model, model_cache: Path):
    Encoder(tiny_model).load()
    exports = list((model_cache / "onnx").iterdir())
    before = {p: p.stat().st_mtime_ns for p in exports}
    Encoder(tiny_model).load()
    assert {p: p.stat().st_mtime_ns for p in (model_cache / "onnx").iterdir()} == before
