"""int8 quantization of an ONNX graph: made once, and quiet (nothing on the user's stderr,
logging left as it was)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")


def _matmul_model(path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32), "w"
    )
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tower",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def test_quantizing_says_nothing_on_stderr_and_leaves_logging_alone(tmp_path, capfd, monkeypatch):
    import onnxruntime as ort

    from clipsearch.model.quantize import quantize

    _matmul_model(tmp_path / "fp32.onnx")
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in the CLI (pytest adds its own)
    handlers, filters = list(root.handlers), list(root.filters)
    out = quantize(tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
    assert out.is_file() and out.stat().st_size < (tmp_path / "fp32.onnx").stat().st_size
    assert "pre-processing" not in capfd.readouterr().err
    assert root.handlers == handlers and root.filters == filters  # no basicConfig() left behind
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    y = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert y.shape == (3, 32)
    mtime = out.stat().st_mtime_ns
    assert quantize(tmp_path / "fp32.onnx", out) == out and out.stat().st_mtime_ns == mtime
