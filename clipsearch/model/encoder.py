"""The encoder: a model spec in, unit-length vectors out, on ONNX Runtime or OpenVINO (no torch).

The model's ONNX files are found (or exported once, or fetched) on first use, see
`clipsearch.model.prepare`; each tower gets its session only when it is needed: a text query
loads the text tower alone, an image query the image tower alone. Images arrive as the uint8
batches decoding made (`media.images.prepare`). Query-time encoding runs on one thread (the
model's and FAISS's thread pools would otherwise fight for the cores); batches use them all.

Runtimes (`runtime_for`): ONNX Runtime by default. With the `[openvino]` extra installed,
OpenVINO encodes batches of images on the CPU (1.1x ONNX Runtime's fp32 forward here, the
same vectors: cosine 0.9999996), and all image encoding of a `bf16` library (OpenVINO's
bfloat16: 4.4x fp32 on CPUs with AVX-512 BF16 or AMX); text queries stay on ONNX Runtime,
whose optimised text tower loads in ~0.1 s. `--device cpu` keeps fp32 and int8 on ONNX Runtime;
`--device openvino` puts every tower on OpenVINO.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from clipsearch.errors import ModelError
from clipsearch.media.images import PreprocessParams
from clipsearch.model.onnx_model import OnnxModel
from clipsearch.model.specs import ModelSpec

log = logging.getLogger(__name__)
notice = logging.getLogger("clipsearch.notice")

QUERY_TEXTS = 16  # up to this many texts are a query: one thread


class Encoder:
    """A CLIP model on ONNX Runtime, loaded lazily, tower by tower (thread-safe)."""

    decode_priority = 0  # decode threads beside it at the same priority (see ingest.run)

    def __init__(
        self,
        spec: str | ModelSpec,
        *,
        device: str = "auto",
        batch_size: int = 32,
        threads: int | None = None,
        precision: str = "fp32",
    ) -> None:
        self.spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
        self.device = device
        self.batch_size = batch_size
        self.threads = threads
        self.precision = precision
        self._model: OnnxModel | None = None
        self._sessions: dict[tuple[str, int | None], Any] = {}
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        # One-thread image batches (Spark's tasks, side by side) take the batch runtime too;
        # otherwise one thread means a query, kept on ONNX Runtime (fast to load).
        self.one_thread_batches = False

    @classmethod
    def from_model(
        cls,
        spec: str | ModelSpec,
        model: OnnxModel,
        *,
        threads: int | None = None,
        batches: bool = False,
        precision: str | None = None,
    ) -> Encoder:
        """An encoder over ONNX files found elsewhere (shipped to a Spark executor, say):
        nothing is looked up or exported here. `batches`: one-thread image encoding is batch
        work running beside other such encoders (Spark's tasks), not a query. `precision`:
        the encoder's when it is not the files' own (bf16 runs the fp32 files on OpenVINO)."""
        enc = cls(spec, threads=threads, precision=precision or model.precision)
        enc._model = model
        enc.one_thread_batches = batches
        return enc

    @property
    def canonical(self) -> str:
        return self.spec.canonical

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> Encoder:
        """Find the model's ONNX files (exporting or fetching them once); no session yet.

        Raises ModelError with next steps when the model cannot be had.
        """
        with self._lock:
            if self._model is None:
                from clipsearch.model.prepare import onnx_model

                self._model = onnx_model(self.spec, self.precision)
        return self

    @property
    def model(self) -> OnnxModel:
        self.load()
        assert self._model is not None
        return self._model

    # --- facts about the model -------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.model.dim

    @property
    def params(self) -> PreprocessParams:
        return self.model.params

    @property
    def fingerprint(self) -> str:
        return self.model.fingerprint

    @property
    def logit_scale(self) -> float:
        return self.model.logit_scale

    def warm_images(self) -> None:
        """Load the image tower ahead of the first batch (e.g. while it is being decoded)."""
        self._session("visual", self._batch_threads())

    @property
    def batch_streams(self) -> int:
        """How many image batches may be encoded at once, from as many threads (`index` does).

        On ONNX Runtime's CPU provider two batches run side by side, each on half the threads:
        measured 1.06x (fp32) and 1.10x (int8) the images/s of one batch on both threads of
        this project's 2-core machine, and no thread waits for another that a decode thread
        has slowed. OpenVINO, a GPU and torch run one batch at a time.
        """
        if self.runtime != "onnxruntime" or (self.device or "auto").lower() not in (
            "auto",
            "cpu",
        ):
            return 1
        if _cuda_available() and (self.device or "auto").lower() == "auto":
            return 1
        from clipsearch.model.runtime import cpu_count

        return 2 if (self.threads or cpu_count()) >= 2 else 1

    def _batch_threads(self) -> int | None:
        """Threads of one image batch: all of them, or a share when batches run side by side."""
        streams = self.batch_streams
        if streams == 1:
            return self.threads
        from clipsearch.model.runtime import cpu_count

        return max(1, (self.threads or cpu_count()) // streams)

    def warm_text(self) -> None:
        """Load what a text query needs (the tokenizer, the text tower) ahead of it."""
        self._tokens(["warm"])
        self._session("textual", 1)

    # --- encoding ----------------------------------------------------------------------------
    def encode_images(self, pixels: np.ndarray, *, query: bool = False) -> np.ndarray:
        """uint8 (N, H, W, 3) pictures -> float32 (N, dim) unit vectors.

        `query=True` (a search by image) runs on one thread.
        """
        if len(pixels) == 0:
            return np.empty((0, self.dim), np.float32)
        sess = self._session("visual", 1 if query else self._batch_threads())
        inp = sess.get_inputs()[0]
        if inp.type == "tensor(uint8)":
            prepare = np.ascontiguousarray
        else:  # float (N, 3, H, W), normalised here (Immich's exports)
            mean = np.asarray(self.params.mean, np.float32).reshape(1, 3, 1, 1)
            std = np.asarray(self.params.std, np.float32).reshape(1, 3, 1, 1)

            def prepare(chunk: np.ndarray) -> np.ndarray:
                x = chunk.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
                return np.ascontiguousarray((x - mean) / std)

        return self._run(sess, inp, pixels, prepare)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> float32 (N, dim) unit vectors (a few texts, a query: one thread)."""
        if not texts:
            return np.empty((0, self.dim), np.float32)
        ids = self._tokens(list(texts))
        sess = self._session("textual", 1 if len(texts) <= QUERY_TEXTS else self.threads)
        inp = sess.get_inputs()[0]
        dtype = np.int32 if inp.type == "tensor(int32)" else np.int64
        return self._run(sess, inp, ids, lambda chunk: chunk.astype(dtype, copy=False))

    def _run(self, sess: Any, inp: Any, data: np.ndarray, prepare: Any) -> np.ndarray:
        fixed = inp.shape[0] if isinstance(inp.shape[0], int) else None
        step = fixed or max(1, self.batch_size)
        out = []
        for start in range(0, len(data), step):
            chunk = data[start : start + step]
            out.append(sess.run(None, {inp.name: prepare(chunk)})[0])
        feats = np.concatenate(out).astype(np.float32, copy=False)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return feats / np.maximum(norms, 1e-12)

    def _tokens(self, texts: list[str]) -> np.ndarray:
        if self._tokenizer is None:
            from clipsearch.model.tokenizer import ClipTokenizer

            m = self.model
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = ClipTokenizer(m.context_length, m.tokenizer)
        return self._tokenizer(texts)

    @property
    def runtime(self) -> str:
        """The runtime of the image batches `index` encodes ("onnxruntime" or "openvino")."""
        return self.runtime_for("visual", self.threads)

    @property
    def _openvino_precision(self) -> str:
        return "bf16" if self.precision == "bf16" else "fp32"

    def runtime_for(self, tower: str, threads: int | None) -> str:
        """Which runtime runs `tower` with `threads` threads (see the module's docstring)."""
        from clipsearch.model import openvino_runtime

        device = (self.device or "auto").lower()
        if device == "openvino" and openvino_runtime.available():
            return "openvino"  # (without it, ONNX Runtime's OpenVINO provider is looked for)
        if self.precision == "bf16":  # ONNX Runtime has no bfloat16 kernels for the CPU
            if not openvino_runtime.available():
                raise ModelError(
                    "bf16 on ONNX files needs OpenVINO, which is not installed",
                    hint="pip install 'clipsearch[openvino]', or use --precision fp32 or int8.",
                )
            return "openvino" if tower == "visual" else "onnxruntime"
        if (
            device == "auto"
            and tower == "visual"
            and (threads != 1 or self.one_thread_batches)
            and self.precision == "fp32"
            and openvino_runtime.available()
            and not _cuda_available()
        ):
            return "openvino"
        return "onnxruntime"

    def _session(self, tower: str, threads: int | None) -> Any:
        key = (tower, threads)
        with self._lock:
            sess = self._sessions.get(key)
        if sess is not None:
            return sess
        from clipsearch.model.runtime import session

        model = self.model
        path = model.visual if tower == "visual" else model.textual
        if not self._sessions:
            notice.info("loading the model %s (%s) ...", self.canonical, self.precision)
        runtime = self.runtime_for(tower, threads)
        if runtime == "openvino":
            from clipsearch.model import openvino_runtime

            made = openvino_runtime.session(path, threads, self._openvino_precision)
        else:
            made = session(path, self.device, threads)
        log.info(
            "loaded the %s tower of %s (%s on %s, %s threads)",
            tower,
            self.canonical,
            self.precision,
            runtime,
            threads or "all",
        )
        with self._lock:
            return self._sessions.setdefault(key, made)


def _cuda_available() -> bool:
    """Whether ONNX Runtime would run on a GPU here (then it stays the runtime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()
