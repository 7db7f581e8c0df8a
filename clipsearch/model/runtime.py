"""ONNX Runtime sessions: the execution provider a `--device` asks for, and threads.

`--device`: `auto` (CUDA when onnxruntime-gpu is installed and sees a GPU, else the CPU),
`cpu`, `cuda` / `cuda:N`, `openvino`, `coreml` (or `mps`, its name in torch). A device whose
provider is not installed is a clear error that says which package brings it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

from clipsearch.errors import ModelError

_PROVIDERS = {
    "cuda": ("CUDAExecutionProvider", "pip install onnxruntime-gpu (instead of onnxruntime)"),
    "openvino": (
        "OpenVINOExecutionProvider",
        "pip install 'clipsearch[openvino]', or onnxruntime-openvino",
    ),
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
    """An inference session for one ONNX file, with `threads` intra-op threads.

    The first session of a file saves ONNX Runtime's optimised graph (its weights in a file
    beside it, which later sessions memory-map) in the cache; later sessions load that with no
    optimisation pass: a cold text query loads its tower in ~0.1 s instead of ~0.7 s.
    """
    chosen = providers(device)
    ready = _optimized_dir(path, chosen)
    if (ready / "model.onnx").is_file():
        try:
            return _session(ready / "model.onnx", chosen, threads, optimized=True)
        except ModelError:  # damaged or from another ONNX Runtime: make it again
            shutil.rmtree(ready, ignore_errors=True)
    return _session(path, chosen, threads, save_to=ready)


def _session(
    path: Path,
    chosen: list[Any],
    threads: int | None,
    *,
    optimized: bool = False,
    save_to: Path | None = None,
) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if optimized
        else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    opts.intra_op_num_threads = threads or cpu_count()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only: no chatter in the user's terminal
    if threads == 1:  # query-time encoding: no spinning worker threads to compete with
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    tmp = None
    if save_to is not None and _writable(save_to.parent):
        tmp = Path(tempfile.mkdtemp(prefix=".opt-", dir=save_to.parent))
        opts.optimized_model_filepath = str(tmp / "model.onnx")
        opts.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", "weights.data"
        )
        opts.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
        )
    try:
        made = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own exception types
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"cannot load the ONNX model {path}: {text}",
            hint="The file may be damaged or cut short: delete it (exports are redone on the "
            "next run), or pick another --model.",
        ) from None
    if tmp is not None and save_to is not None:
        try:
            tmp.rename(save_to)  # whole, or not at all
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return made


def _optimized_dir(path: Path, chosen: list[Any]) -> Path:
    """Where the optimised graph of `path` for these providers on this CPU is kept."""
    import onnxruntime as ort

    from clipsearch.model.prepare import cache_dir

    st = path.stat()
    key = json.dumps(
        [
            str(path.resolve()),
            st.st_size,
            st.st_mtime_ns,
            ort.__version__,
            str(chosen),
            platform.machine(),
            _cpu_model(),
        ]
    )
    return cache_dir() / "optimized" / hashlib.blake2b(key.encode(), digest_size=10).hexdigest()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor()


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
