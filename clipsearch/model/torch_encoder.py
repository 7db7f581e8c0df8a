"""The CLIP model on torch/open_clip: for generation (it needs gradients), for exporting a
model to ONNX, and for bf16 encoding on CPUs that have it. Indexing and search run on ONNX
Runtime (`clipsearch.model.encoder`); this needs the `[torch]` extra.

The model loads on first use (`load()` or the first encode call). Images arrive as uint8
batches already resized and cropped by `images.prepare` (decode threads never touch
torch); the encoder normalises them on the model's device.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from clipsearch.errors import ModelError
from clipsearch.media.images import PreprocessParams
from clipsearch.model.specs import ModelSpec, ResolvedModel, resolve

log = logging.getLogger(__name__)
# One-line notices for people waiting at a terminal (the CLI shows them unless --quiet).
notice = logging.getLogger("clipsearch.notice")


def pick_device(requested: str = "auto") -> str:
    """'auto' means CUDA if available, then Apple MPS, else the CPU."""
    import torch

    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(
                f"device {requested!r} was asked for but CUDA is not available here",
                hint="Use --device cpu (or auto).",
            )
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


class TorchEncoder:
    """open_clip model + tokenizer + preprocessing parameters, loaded lazily.

    `precision` "bf16" keeps the weights in bfloat16 on the CPU (fast where the CPU has
    bf16 instructions); vectors come out as float32 either way.
    """

    runtime = "torch"
    decode_priority = 10  # decode threads yield to torch's (see ingest.run)

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
        self.precision = precision
        self.requested_device = device
        self.batch_size = batch_size
        self.threads = threads
        self._lock = threading.Lock()
        self._model = None
        self._tokenizer = None
        self._resolved: ResolvedModel | None = None
        self._params: PreprocessParams | None = None
        self._dim: int | None = None
        self.device = "cpu"

    @property
    def canonical(self) -> str:
        return self.spec.canonical

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> TorchEncoder:
        """Resolve and load the weights (idempotent). Raises ModelError with next steps."""
        with self._lock:
            if self._model is None:
                self._load()
        return self

    def _load(self) -> None:
        notice.info("loading the model %s (torch) ...", self.spec.canonical)
        try:
            import torch
        except ImportError:
            raise ModelError(
                "this needs torch, which is not installed",
                hint="Install the extra: pip install 'clipsearch[torch]'",
            ) from None

        if self.threads:
            torch.set_num_threads(self.threads)
        resolved = resolve(self.spec)
        device = pick_device(self.requested_device)
        import open_clip

        if not resolved.load_weights:
            torch.manual_seed(0)  # random weights, the same on every load
        try:
            with _quiet_open_clip(resolved.load_weights):
                model = open_clip.create_model(
                    resolved.model_name,
                    pretrained=resolved.pretrained,
                    load_weights=resolved.load_weights,
                    require_pretrained=resolved.load_weights,
                    force_preprocess_cfg=resolved.preprocess_overrides or None,
                    device=device,
                )
                tokenizer = open_clip.get_tokenizer(resolved.model_name)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(
                f"cannot load model {self.spec.canonical}: {_first_line(exc)}",
                hint="Check that the weights match the architecture (a state dict for this "
                "open_clip model), or pick another --model.",
            ) from None
        model.eval()
        if self.precision == "bf16":
            model = model.to(torch.bfloat16)
        if not resolved.load_weights:
            log.warning(
                "model %s has random weights: vectors carry no meaning (benchmarks only)",
                self.spec.canonical,
            )
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        size = (size, size) if isinstance(size, int) else tuple(size)
        self._params = PreprocessParams(
            size=(int(size[0]), int(size[1])),
            mean=tuple(float(x) for x in cfg.get("mean", PreprocessParams.mean)),
            std=tuple(float(x) for x in cfg.get("std", PreprocessParams.std)),
            interpolation=str(cfg.get("interpolation", "bicubic")),
            resize_mode=str(cfg.get("resize_mode", "shortest")),
            fill_color=int(cfg.get("fill_color", 0)),
        )
        self._mean = torch.tensor(self._params.mean, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(self._params.std, device=device).view(1, 3, 1, 1)
        self._resolved = resolved
        self._tokenizer = tokenizer
        self.device = device
        with torch.inference_mode():
            probe = model.encode_text(tokenizer(["a"]).to(device))
        self._dim = int(probe.shape[-1])
        self._model = model
        log.info("loaded model %s on %s (dim %d)", self.spec.canonical, device, self._dim)

    # --- facts about the model -------------------------------------------------------------
    @property
    def dim(self) -> int:
        self.load()
        assert self._dim is not None
        return self._dim

    @property
    def params(self) -> PreprocessParams:
        self.load()
        assert self._params is not None
        return self._params

    @property
    def logit_scale(self) -> float:
        """The model's learned temperature (CLIP's `logit_scale.exp()`; 100 for OpenAI's)."""
        self.load()
        scale = getattr(self._model, "logit_scale", None)
        return float(scale.detach().exp()) if scale is not None else 100.0

    @property
    def model_name(self) -> str:
        """The name open_clip loaded the model by (an architecture, or local-dir:DIR)."""
        self.load()
        assert self._resolved is not None
        return self._resolved.model_name

    @property
    def fingerprint(self) -> str:
        self.load()
        assert self._resolved is not None
        return self._resolved.fingerprint

    @property
    def torch_model(self):  # -> open_clip.CLIP (torch.nn.Module), loaded, in eval mode
        """The open_clip model itself (for CLIP-guided generation)."""
        self.load()
        return self._model

    @property
    def tokenizer(self):  # -> open_clip tokenizer: list[str] -> LongTensor
        self.load()
        return self._tokenizer

    # --- encoding ----------------------------------------------------------------------------
    def encode_images(self, pixels: np.ndarray, *, query: bool = False) -> np.ndarray:
        """uint8 (N, H, W, 3) batches -> float32 (N, dim) unit vectors."""
        import torch

        self.load()
        if len(pixels) == 0:
            return np.empty((0, self.dim), np.float32)
        out = []
        for start in range(0, len(pixels), self.batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(pixels[start : start + self.batch_size]))
            x = chunk.to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
            x = ((x - self._mean) / self._std).to(self._dtype)
            with torch.inference_mode(), self._autocast():
                feats = self._model.encode_image(x)  # type: ignore[union-attr]
            out.append(_unit(feats))
        return np.concatenate(out)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> float32 (N, dim) unit vectors."""
        import torch

        self.load()
        out = []
        for start in range(0, len(texts), max(self.batch_size, 64)):
            tokens = self._tokenizer(list(texts[start : start + max(self.batch_size, 64)]))  # type: ignore[misc]
            with torch.inference_mode(), self._autocast():
                feats = self._model.encode_text(tokens.to(self.device))  # type: ignore[union-attr]
            out.append(_unit(feats))
        return np.concatenate(out) if out else np.empty((0, self.dim), np.float32)

    @property
    def _dtype(self):  # -> torch.dtype
        import torch

        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def _autocast(self):
        import torch

        if self.device.startswith("cuda") and self.precision != "bf16":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()


def _unit(feats) -> np.ndarray:  # torch.Tensor -> np.ndarray
    arr = feats.float().cpu().numpy().astype(np.float32, copy=False)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.maximum(norms, 1e-12)


@contextlib.contextmanager
def _quiet_open_clip(expect_weights: bool) -> Iterator[None]:
    """open_clip logs on the root logger; keep its chatter out of the user's terminal."""
    root = logging.getLogger()
    hf = logging.getLogger("huggingface_hub")
    old_root, old_hf = root.level, hf.level
    root.setLevel(logging.ERROR if expect_weights else logging.CRITICAL)
    hf.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(old_root)
        hf.setLevel(old_hf)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
