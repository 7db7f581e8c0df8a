"""int8: ONNX Runtime's dynamic quantization of a model's towers (weights int8, activations
quantized on the fly), written once next to the fp32 files' cache entry.

Whether a library may use it is decided by the fidelity gate (`clipsearch.model.precision`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
notice = logging.getLogger("clipsearch.notice")


def quantize(fp32: Path, out: Path) -> Path:
    """`fp32` quantized to int8 at `out` (made once; an existing `out` is reused)."""
    if out.is_file():
        return out
    from onnxruntime.quantization import QuantType, quantize_dynamic

    notice.info("preparing the int8 model (once): %s", out.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".onnx", dir=out.parent)
    os.close(fd)
    try:
        quantize_dynamic(
            str(fp32),
            tmp,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            extra_options={"MatMulConstBOnly": True},
        )
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out
