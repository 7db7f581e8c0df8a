"""Model specs: what a user types after --model, and how it becomes weights on disk.

Accepted forms (see `ModelSpec.parse`):

- ``ViT-B-32:laion2b_s34b_b79k`` — an open_clip architecture and a pretrained tag
- ``ViT-B-32`` — an architecture alone picks its usual pretrained tag
- ``ViT-B-32:/path/to/weights.pt`` — an architecture and a weights file
- ``hf-hub:ORG/REPO`` — an open_clip model on the Hugging Face hub
- ``local-dir:DIR`` (or just ``DIR``) — ``open_clip_config.json`` + weights in a folder
- ``tiny-shapes`` — a model the project ships in ``data/models/``
- ``ViT-B-32:random`` — random weights (the real cost, no meaning: benchmarks only)

Resolution is offline first: weights already in the local cache load without touching the
network, and when they are missing and the hub cannot be reached the user gets one message
that names the model, the cause and the ways to supply weights locally.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from clipsearch.errors import ModelError
from clipsearch.resources import data_dir

SpecKind = Literal["tag", "file", "hf-hub", "local-dir", "onnx-dir", "shipped", "random"]

# The tag a bare architecture name means. Others fall back to open_clip's first listed tag.
DEFAULT_TAGS = {
    "ViT-B-32": "laion2b_s34b_b79k",
    "ViT-B-16": "laion2b_s34b_b88k",
    "ViT-L-14": "laion2b_s32b_b82k",
    "ViT-H-14": "laion2b_s32b_b79k",
    "ViT-g-14": "laion2b_s34b_b88k",
    "ViT-bigG-14": "laion2b_s39b_b160k",
}

# Models the project ships, by name -> folder under data/.
SHIPPED_MODELS = {"tiny-shapes": "models/tiny-shapes"}

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
CONFIG_NAME = "open_clip_config.json"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed --model value. `canonical` is what a library records."""

    kind: SpecKind
    arch: str | None = None  # open_clip architecture for tag / file / random
    source: str | None = None  # tag, file path, hub repo, folder, or shipped name

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """Parse a model spec; raises ModelError with the accepted forms on nonsense."""
        text = (text or "").strip()
        if not text:
            raise ModelError("empty model spec", hint=_FORMS)
        if text in SHIPPED_MODELS:
            return cls("shipped", source=text)
        if text.startswith("hf-hub:"):
            repo = text[len("hf-hub:") :].strip("/")
            if repo.count("/") != 1:
                raise ModelError(f"bad hub model {text!r}: expected hf-hub:ORG/REPO", hint=_FORMS)
            return cls("hf-hub", source=repo)
        if text.startswith("onnx-dir:"):
            folder = text[len("onnx-dir:") :]
            if not folder:
                raise ModelError("empty folder after 'onnx-dir:'", hint=_FORMS)
            return cls("onnx-dir", source=str(Path(folder).expanduser().resolve()))
        if text.startswith("local-dir:"):
            folder = text[len("local-dir:") :]
            if not folder:
                raise ModelError("empty folder after 'local-dir:'", hint=_FORMS)
            return cls("local-dir", source=str(Path(folder).expanduser().resolve()))
        as_path = Path(text).expanduser()
        if as_path.is_dir():
            return cls("local-dir", source=str(as_path.resolve()))
        if as_path.is_file() or (text.lower().endswith(WEIGHT_SUFFIXES) and ":" not in text):
            raise ModelError(
                f"{text!r} is a weights file, which needs its architecture",
                hint="Write it as ARCH:FILE, e.g. --model ViT-B-32:" + text,
            )
        arch, sep, rest = text.partition(":")
        if not arch:
            raise ModelError(f"bad model spec {text!r}", hint=_FORMS)
        if not sep:
            return cls("tag", arch=arch, source=None)
        if rest == "random":
            return cls("random", arch=arch)
        if "/" in rest or "\\" in rest or rest.lower().endswith(WEIGHT_SUFFIXES):
            return cls("file", arch=arch, source=str(Path(rest).expanduser().resolve()))
        return cls("tag", arch=arch, source=rest)

    @property
    def canonical(self) -> str:
        """Stable text for this spec (the form a library stores)."""
        if self.kind == "shipped":
            return str(self.source)
        if self.kind == "hf-hub":
            return f"hf-hub:{self.source}"
        if self.kind == "local-dir":
            return f"local-dir:{self.source}"
        if self.kind == "onnx-dir":
            return f"onnx-dir:{self.source}"
        if self.kind == "random":
            return f"{self.arch}:random"
        if self.kind == "tag" and self.source is None:
            return f"{self.arch}:{default_tag(str(self.arch))}"
        return f"{self.arch}:{self.source}"

    def __str__(self) -> str:
        return self.canonical


_FORMS = (
    "A model spec is one of: ARCH:TAG (e.g. ViT-B-32:laion2b_s34b_b79k), ARCH:/path/weights.pt, "
    "hf-hub:ORG/REPO, local-dir:DIR, onnx-dir:DIR (ONNX files), DIR, tiny-shapes (shipped "
    "demo model)."
)


def default_tag(arch: str) -> str:
    """The pretrained tag a bare architecture name stands for."""
    if arch in DEFAULT_TAGS:
        return DEFAULT_TAGS[arch]
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not tags:
        known = arch in open_clip.list_models()
        raise ModelError(
            f"no pretrained weights are known for {arch!r}"
            if known
            else f"unknown open_clip architecture {arch!r}",
            hint="Give weights explicitly (ARCH:TAG or ARCH:/path/weights.pt); "
            "`python -m open_clip list` style names come from open_clip.list_pretrained().",
        )
    return tags[0]


@dataclass(frozen=True)
class ResolvedModel:
    """Everything needed to build the model from local files."""

    spec: ModelSpec
    # Arguments for open_clip.create_model_and_transforms / get_tokenizer.
    model_name: str
    pretrained: str | None
    load_weights: bool
    preprocess_overrides: dict[str, Any]
    fingerprint: str  # identifies the weights; "" where the canonical spec already does


def shipped_model_dir(name: str) -> Path:
    """The folder of a model the project ships."""
    return data_dir() / SHIPPED_MODELS[name]


def resolve(spec: ModelSpec) -> ResolvedModel:
    """Find the weights for `spec` on this machine, downloading only if the hub is reachable."""
    if spec.kind in ("shipped", "local-dir"):
        folder = (
            shipped_model_dir(str(spec.source))
            if spec.kind == "shipped"
            else Path(str(spec.source))
        )
        _check_model_dir(spec, folder)
        return ResolvedModel(
            spec, f"local-dir:{folder}", None, True, {}, fingerprint=fingerprint_dir(folder)
        )
    if spec.kind == "random":
        _check_arch(spec)
        return ResolvedModel(spec, str(spec.arch), None, False, {}, fingerprint="")
    if spec.kind == "file":
        path = Path(str(spec.source))
        if not path.is_file():
            raise ModelError(
                f"model {spec}: weights file not found: {path}",
                hint="Check the path, or use another --model.",
            )
        _check_arch(spec)
        return ResolvedModel(
            spec, str(spec.arch), str(path), True, {}, fingerprint=fingerprint_files([path])
        )
    if spec.kind == "hf-hub":
        folder = _hub_snapshot(spec, str(spec.source))
        return ResolvedModel(spec, f"local-dir:{folder}", None, True, {}, fingerprint="")
    return _resolve_tag(spec)


def _check_arch(spec: ModelSpec) -> None:
    import open_clip

    if open_clip.get_model_config(str(spec.arch)) is None:
        raise ModelError(
            f"unknown open_clip architecture {spec.arch!r} in model spec {spec.canonical!r}",
            hint="Architectures come from open_clip.list_models(), e.g. ViT-B-32, ViT-L-14.",
        )


def _check_model_dir(spec: ModelSpec, folder: Path) -> None:
    if not folder.is_dir():
        hint = (
            "The shipped model is missing from this install; reinstall clipsearch, or train it "
            "with scripts/train_tiny_clip.py."
            if spec.kind == "shipped"
            else "Check the path. A model folder holds open_clip_config.json and "
            "open_clip_model.safetensors (the Hugging Face hub layout)."
        )
        raise ModelError(f"model {spec}: folder not found: {folder}", hint=hint)
    if not (folder / CONFIG_NAME).is_file():
        raise ModelError(
            f"model {spec}: {folder} has no {CONFIG_NAME}",
            hint="A model folder holds open_clip_config.json and open_clip_model.safetensors.",
        )
    if not _weights_in(folder):
        raise ModelError(
            f"model {spec}: {folder} has no weights file (*.safetensors, *.bin or *.pth)",
            hint="Copy open_clip_model.safetensors next to open_clip_config.json.",
        )
    try:
        json.loads((folder / CONFIG_NAME).read_text())["model_cfg"]
    except (ValueError, KeyError, OSError) as exc:
        raise ModelError(
            f"model {spec}: {folder / CONFIG_NAME} is not an open_clip config ({exc})"
        ) from None


def _weights_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pth") and p.is_file()
    )


def fingerprint_files(paths: list[Path]) -> str:
    """A cheap content fingerprint: sizes plus the first and last MiB of each file."""
    h = hashlib.blake2b(digest_size=12)
    for path in paths:
        size = path.stat().st_size
        h.update(f"{path.name}:{size}".encode())
        with path.open("rb") as f:
            h.update(f.read(1 << 20))
            if size > 2 << 20:
                f.seek(-(1 << 20), os.SEEK_END)
                h.update(f.read(1 << 20))
    return h.hexdigest()


def fingerprint_dir(folder: Path) -> str:
    return fingerprint_files([folder / CONFIG_NAME, *_weights_in(folder)])


# --- the hub -----------------------------------------------------------------------------

_HUB_HOST = "huggingface.co"


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the model hub answers a TCP connect; False offline (fast, no retries)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", f"https://{_HUB_HOST}")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = host.partition(":")
    try:
        with socket.create_connection((host, int(port or 443)), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_error(
    spec: ModelSpec, cause: str, hub_repo: str | None, onnx_repo: str | None = None
) -> ModelError:
    where = f"https://huggingface.co/{hub_repo}" if hub_repo else "its source"
    lines = [f"Ways to use {spec.canonical} without a download here:"]
    if onnx_repo:
        lines.append(
            f"  - Its ONNX export (no torch needed): on a machine with internet, download "
            f"config.json and the visual/ and textual/ folders of "
            f"https://huggingface.co/{onnx_repo} into a folder, copy it here, and pass "
            "--model onnx-dir:FOLDER"
        )
    lines += [
        f"  - Its open_clip weights (needs clipsearch[torch] for a one-time export): download "
        f"open_clip_config.json and open_clip_model.safetensors from {where} into a folder, "
        "copy it here, and pass --model local-dir:FOLDER",
        "  - Copy a Hugging Face cache that holds it (~/.cache/huggingface) to this machine, "
        "or point HF_HOME at one",
    ]
    if spec.arch:
        lines.append(f"  - Pass a weights file: --model {spec.arch}:/path/to/weights.safetensors")
    lines.append(
        "  Or try the small shipped demo model (shapes only, not for photos): --model tiny-shapes"
    )
    return ModelError(f"cannot load model {spec.canonical}: {cause}", hint="\n".join(lines))


def _hub_file(repo: str, filename: str) -> str | None:
    """The cached path of a hub file, or None, without any network access."""
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(repo_id=repo, filename=filename, local_files_only=True)
    except Exception:
        return None


def _hub_snapshot(spec: ModelSpec, repo: str) -> Path:
    """A local folder with the config and weights of hub model `repo`."""
    weight_names = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")

    def cached() -> Path | None:
        config = _hub_file(repo, CONFIG_NAME)
        if config is None:
            return None
        return Path(config).parent if any(_hub_file(repo, w) for w in weight_names) else None

    folder = cached()
    if folder is not None:
        return folder
    if not hub_reachable():
        raise _offline_error(
            spec, "the weights are not in the local cache and the hub cannot be reached", repo
        )
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(repo_id=repo, filename=CONFIG_NAME)
        for name in weight_names:
            try:
                hf_hub_download(repo_id=repo, filename=name)
                break
            except Exception:
                continue
    except Exception as exc:
        raise _offline_error(spec, f"download failed ({_short(exc)})", repo) from None
    folder = cached()
    if folder is None:
        raise _offline_error(spec, "the hub repo has no open_clip weights", repo)
    return folder


def _resolve_tag(spec: ModelSpec) -> ResolvedModel:
    import open_clip

    arch = str(spec.arch)
    tag = spec.source or default_tag(arch)
    _check_arch(spec)
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ModelError(
            f"unknown pretrained tag {tag!r} for {arch}",
            hint=f"Known tags for {arch}: {', '.join(tags) or 'none'}.",
        )
    preprocess = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    hub = cfg.get("hf_hub", "")
    repo, filename = (hub.rstrip("/"), None) if hub.endswith("/") else os.path.split(hub)
    path: str | None = None
    if repo:
        for name in ([filename] if filename else []) + [
            "open_clip_model.safetensors",
            "open_clip_pytorch_model.bin",
        ]:
            path = _hub_file(repo, name)
            if path:
                break
    elif cfg.get("url"):
        cache = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(cfg["url"])
        path = str(cache) if cache.is_file() else None
    if path is None:
        if not hub_reachable():
            raise _offline_error(
                spec,
                "the weights are not in the local cache and cannot be downloaded "
                "(no network connection to the model hub)",
                repo or None,
            )
        from open_clip.pretrained import download_pretrained

        try:
            path = download_pretrained(cfg)
        except Exception as exc:
            raise _offline_error(spec, f"download failed ({_short(exc)})", repo or None) from None
    return ResolvedModel(
        ModelSpec("tag", arch=arch, source=tag), arch, path, True, preprocess, fingerprint=""
    )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
