"""OpenVINO as the second runtime: same vectors as ONNX Runtime, bf16 behind the gate, and
which runtime each tower gets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipsearch.errors import ModelError
from clipsearch.media.images import load_for_model
from clipsearch.model import openvino_runtime, precision
from clipsearch.model.encoder import Encoder
from tests.helpers import REPO, cs

pytest.importorskip("openvino", reason="the [openvino] extra is not installed")

PHOTOS = sorted((REPO.parent / "shared" / "datasets" / "imagenet-sample").glob("*.JPEG"))[:16]
TEXTS = ["a red circle", "two blue stars on a black background", "a photo of a dog"]


def _pixels(enc: Encoder) -> np.ndarray:
    if not PHOTOS:
        pytest.skip("the real photos of ../shared/datasets/imagenet-sample are not here")
    return np.stack([load_for_model(f, enc.params)[0] for f in PHOTOS])


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_openvino_fp32_gives_onnx_runtimes_vectors_on_real_photos():
    ov = Encoder("tiny-shapes", device="auto", precision="fp32")
    ort = Encoder("tiny-shapes", device="cpu", precision="fp32")
    assert ov.runtime == "openvino" and ort.runtime == "onnxruntime"
    pixels = _pixels(ov)
    assert _cosines(ov.encode_images(pixels), ort.encode_images(pixels)).min() >= 0.9999
    # same files, same fingerprint: switching runtime never asks for a re-index
    assert ov.fingerprint == ort.fingerprint


def test_spark_tasks_encode_on_openvino_one_unpinned_thread_each():
    """A Spark task's encoder (one thread, batch work beside other tasks) takes OpenVINO at
    fp32, with ONNX Runtime's vectors; a plain one-thread encoder is a query: ONNX Runtime."""
    ort = Encoder("tiny-shapes", device="cpu", precision="fp32").load()
    task = Encoder.from_model("tiny-shapes", ort.model, threads=1, batches=True)
    assert task.runtime_for("visual", 1) == "openvino"
    assert task.runtime_for("textual", 1) == "onnxruntime"
    query = Encoder.from_model("tiny-shapes", ort.model, threads=1)
    assert query.runtime_for("visual", 1) == "onnxruntime"
    pixels = _pixels(task)
    assert _cosines(task.encode_images(pixels), ort.encode_images(pixels)).min() >= 0.9999
    session = task._session("visual", 1)
    assert session._compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert session._compiled.get_property("ENABLE_CPU_PINNING") is False


def test_bf16_runs_on_openvino_close_to_fp32_and_its_texts_stay_on_onnx_runtime():
    bf16 = Encoder("tiny-shapes", precision="bf16")
    fp32 = Encoder("tiny-shapes", device="cpu", precision="fp32")
    assert bf16.runtime_for("visual", None) == "openvino"
    assert bf16.runtime_for("visual", 1) == "openvino"  # a search by image: same vectors
    assert bf16.runtime_for("textual", 1) == "onnxruntime"
    pixels = _pixels(bf16)
    got, want = bf16.encode_images(pixels), fp32.encode_images(pixels)
    assert _cosines(got, want).min() >= 0.99
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(bf16.encode_texts(TEXTS), fp32.encode_texts(TEXTS))


def test_queries_and_explicit_devices_pick_their_runtime():
    enc = Encoder("tiny-shapes", precision="fp32")
    assert enc.runtime_for("visual", None) == "openvino"  # index batches
    assert enc.runtime_for("visual", 1) == "onnxruntime"  # a search by image: fast to load
    assert enc.runtime_for("textual", 1) == "onnxruntime"
    assert Encoder("tiny-shapes", device="cpu").runtime == "onnxruntime"
    assert Encoder("tiny-shapes", precision="int8").runtime == "onnxruntime"
    every = Encoder("tiny-shapes", device="openvino")
    assert {every.runtime_for(t, n) for t in ("visual", "textual") for n in (1, None)} == {
        "openvino"
    }
    texts = every.encode_texts(TEXTS)
    assert texts.shape == (3, every.dim)


def test_without_openvino_bf16_on_onnx_files_says_what_to_install(monkeypatch):
    monkeypatch.setattr(openvino_runtime, "available", lambda: False)
    enc = Encoder("tiny-shapes", precision="bf16")
    with pytest.raises(ModelError, match="needs OpenVINO") as err:
        enc.encode_texts(["a red circle"])  # no text tower either: nothing half-works
    assert "clipsearch[openvino]" in str(err.value.hint)
    assert Encoder("tiny-shapes", precision="fp32").runtime == "onnxruntime"


def test_auto_tries_openvinos_bf16_first_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert precision.candidates("auto") == ["bf16", "int8"]
    monkeypatch.setattr(openvino_runtime, "available", lambda: False)
    assert precision.candidates("auto")[0] == "int8"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.candidates("auto") == ["int8"]


def test_a_bf16_library_indexes_and_searches_on_openvino(tmp_path, monkeypatch):
    from clipsearch.demo import shapes

    # The gate's fidelity checks apply; its speed check depends on this machine's load (the
    # tiny model is too small for bf16 to win by much), so it is set aside here.
    monkeypatch.setattr(precision, "MIN_SPEEDUP", 0.0)
    photos = tmp_path / "photos"
    shapes.write_collection(photos, 40, seed=5, size=96, suffix=".jpg")
    lib = tmp_path / "lib"
    cs(lib, "--model", "tiny-shapes", "--precision", "bf16", "index", str(photos))
    status = json.loads(cs(lib, "status", "--json").stdout)
    assert status["precision"] == "bf16" and status["runtime"] == "openvino"
    assert status["vectors"] == 40
    found = json.loads(cs(lib, "search", "a red circle", "--json").stdout)
    assert len(found) == 10


def test_device_openvino_without_openvino_says_which_package_brings_it(monkeypatch):
    import onnxruntime as ort

    if "OpenVINOExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has the OpenVINO provider itself")
    monkeypatch.setattr(openvino_runtime, "available", lambda: False)
    enc = Encoder("tiny-shapes", device="openvino")
    with pytest.raises(ModelError, match="device 'openvino' was asked for") as err:
        enc.encode_texts(["a red circle"])
    assert "clipsearch[openvino]" in str(err.value.hint)
