"""OpenVINO as a second runtime for the same ONNX files (the `[openvino]` extra).

Immich runs its models on ONNX Runtime or OpenVINO; clipsearch does the same. OpenVINO reads
the ONNX files `clipsearch.model.prepare` makes (nothing is exported again) and, on CPUs with
bfloat16 instructions (AVX-512 BF16, AMX), runs the image tower in bfloat16: measured 4.4x
ONNX Runtime's fp32 forward on this project's 2-core machine, against 2.7x for int8. fp32 on
OpenVINO is asked for explicitly (its default on such CPUs is bf16), so a library's fp32
stays fp32 whichever runtime encodes.

Compiled models are cached by OpenVINO itself (`CACHE_DIR`, under clipsearch's cache): the
first compile of a tower takes a few seconds, later ones ~0.3 s.

`session()` returns an object with the two methods `Encoder` uses of an ONNX Runtime
session (`get_inputs()`, `run()`), so the encoder does not care which runtime it has.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipsearch.errors import ModelError

_TYPES = {"u8": "tensor(uint8)", "i64": "tensor(int64)", "i32": "tensor(int32)"}
HINTS = {"fp32": "f32", "bf16": "bf16"}


def available() -> bool:
    """Whether the `openvino` package is installed (nothing is imported)."""
    return importlib.util.find_spec("openvino") is not None


@dataclass(frozen=True)
class _Input:
    name: str
    type: str
    shape: list[Any]


class OpenVinoSession:
    """One compiled tower; `run` is safe to call from several threads (one at a time)."""

    def __init__(self, compiled: Any, precision: str) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()
        self.precision = precision
        port = compiled.input(0)
        element = port.get_element_type().get_type_name()
        dims = [d.get_length() if d.is_static else "batch" for d in port.get_partial_shape()]
        self._input = _Input(port.get_any_name(), _TYPES.get(element, "tensor(float)"), dims)

    def get_inputs(self) -> list[_Input]:
        return [self._input]

    def run(self, _outputs: Any, feeds: dict[str, Any]) -> list[Any]:
        import numpy as np

        (data,) = feeds.values()
        with self._lock:
            result = self._request.infer({0: data})
            # The request's output buffer is reused by the next call: copy it out.
            return [np.array(result[self._compiled.output(0)], copy=True)]


@functools.cache
def _core() -> Any:
    import openvino as ov

    from clipsearch.model.prepare import cache_dir

    core = ov.Core()
    folder = cache_dir() / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(folder)})
    except OSError:  # a read-only cache: compile every time, still correct
        pass
    return core


def session(path: Path, threads: int | None, precision: str = "fp32") -> OpenVinoSession:
    """A compiled tower on the CPU at `precision` ("fp32" or "bf16") with `threads` threads."""
    if not available():
        raise ModelError(
            "OpenVINO was asked for, but it is not installed",
            hint="pip install 'clipsearch[openvino]' (or use --device cpu).",
        )
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": HINTS[precision],
        "PERFORMANCE_HINT": "LATENCY",  # one request at a time, all threads on it
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    # Threads not pinned to cores: `index` decodes in threads beside the model, and Spark
    # runs one-thread sessions side by side. Pinned, those one-thread sessions all landed on
    # the same core (half of ONNX Runtime's speed; unpinned, 1.085x it), and `index` at fp32
    # took 2.5% longer (13.16 s against 12.84 s for 300 photos, 3 interleaved rounds; bf16
    # the same either way).
    config["ENABLE_CPU_PINNING"] = False
    try:
        compiled = _core().compile_model(str(path), "CPU", config)
    except Exception as exc:  # openvino raises its own exception types
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"OpenVINO cannot load the ONNX model {path}: {text}",
            hint="Use --device cpu (ONNX Runtime), or report it with the --model you used.",
        ) from None
    return OpenVinoSession(compiled, precision)
