"""int8: ONNX Runtime's dynamic quantization of a model's towers (weights int8, activations
quantized on the fly), written once next to the fp32 files' cache entry.

Whether a library may use it is decided by the fidelity gate (`clipsearch.model.precision`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
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
        with _root_logger_kept_quiet():
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


class _ToDebug(logging.Filter):
    """ONNX Runtime's quantizer advises through the root logger ("Please consider to run
    pre-processing before quantization", meant for static quantization): kept at debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        log.debug("onnxruntime: %s", record.getMessage())
        return False


@contextlib.contextmanager
def _root_logger_kept_quiet() -> Iterator[None]:
    """While quantizing, the root logger's records go to debug, and `logging.warning`
    cannot configure logging for the whole process (it calls basicConfig() when the root
    logger has no handler, after which every warning prints as "WARNING:root:...")."""
    root = logging.getLogger()
    quiet, placeholder = _ToDebug(), logging.NullHandler()
    root.addFilter(quiet)
    root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeHandler(placeholder)
        root.removeFilter(quiet)
