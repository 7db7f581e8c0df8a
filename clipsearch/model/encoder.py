"""The encoder: a model spec in, unit-length vectors out, on ONNX Runtime (no torch).

The model's ONNX files are found (or exported once, or fetched) on first use, see
`clipsearch.model.prepare`; each tower gets its session only when it is needed: a text query
loads the text tower alone, an image query the image tower alone. Images arrive as the uint8
batches decoding made (`media.images.prepare`). Query-time encoding runs on one thread (the
model's and FAISS's thread pools would otherwise fight for the cores); batches use them all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from clipsearch.media.images import PreprocessParams
from clipsearch.model.onnx_model import OnnxModel
from clipsearch.model.specs import ModelSpec

log = logging.getLogger(__name__)
notice = logging.getLogger("clipsearch.notice")

QUERY_TEXTS = 16  # up to this many texts are a query: one thread


class Encoder:
    """A CLIP model on ONNX Runtime, loaded lazily, tower by tower (thread-safe)."""

    runtime = "onnxruntime"
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

    @classmethod
    def from_model(
        cls, spec: str | ModelSpec, model: OnnxModel, *, threads: int | None = None
    ) -> Encoder:
        """An encoder over ONNX files found elsewhere (shipped to a Spark executor, say):
        nothing is looked up or exported here."""
        enc = cls(spec, threads=threads, precision=model.precision)
        enc._model = model
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
        self._session("visual", self.threads)

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
        sess = self._session("visual", 1 if query else self.threads)
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
            notice.info("loading the model %s (%s) ...", self.canonical, model.precision)
        made = session(path, self.device, threads)
        log.info(
            "loaded the %s tower of %s (%s, %s threads)",
            tower,
            self.canonical,
            model.precision,
            threads or "all",
        )
        with self._lock:
            return self._sessions.setdefault(key, made)
