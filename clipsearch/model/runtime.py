"""ONNX Runtime sessions: the execution provider a `--device` asks for, and threads.

`--device`: `auto` (CUDA when onnxruntime-gpu is installed and sees a GPU, else the CPU),
`cpu`, `cuda` / `cuda:N`, `openvino`, `coreml` (or `mps`, its name in torch). A device whose
provider is not installed is a clear error that says which package brings it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clipsearch.errors import ModelError

_PROVIDERS = {
    "cuda": ("CUDAExecutionProvider", "pip install onnxruntime-gpu (instead of onnxruntime)"),
    "openvino": ("OpenVINOExecutionProvider", "pip install onnxruntime-openvino"),
    "coreml": ("CoreMLExecutionProvider", "the standard onnxruntime wheel on macOS has it"),
    "mps": ("CoreMLExecutionProvider", "the standard onnxruntime wheel on macOS has it"),
}


def providers(device: str) -> list[Any]:
    """The ONNX Runtime providers for a `--device` value, best first, the CPU last."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    device = (device or "auto").lower()
    if device == "auto":
        return (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if "CUDAExecutionProvider" in available
            else ["CPUExecutionProvider"]
        )
    if device == "cpu":
        return ["CPUExecutionProvider"]
    kind, _, index = device.partition(":")
    if kind not in _PROVIDERS:
        raise ModelError(
            f"unknown device {device!r}",
            hint="Use --device auto, cpu, cuda, cuda:N, openvino or coreml.",
        )
    name, how = _PROVIDERS[kind]
    if name not in available:
        raise ModelError(
            f"device {device!r} was asked for, but this ONNX Runtime has no {name} "
            f"(it has: {', '.join(sorted(available))})",
            hint=f"Install it ({how}), or use --device cpu.",
        )
    options: dict[str, Any] = {"device_id": int(index)} if index.isdigit() else {}
    return [(name, options), "CPUExecutionProvider"]


def session(path: Path, device: str, threads: int | None) -> Any:
    """An inference session for one ONNX file, with `threads` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or cpu_count()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only: no chatter in the user's terminal
    if threads == 1:  # query-time encoding: no spinning worker threads to compete with
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers(device))
    except ModelError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"cannot load the ONNX model {path}: {text}",
            hint="The file may be damaged or cut short: delete it (exports are redone on the "
            "next run), or pick another --model.",
        ) from None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
