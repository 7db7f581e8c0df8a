"""From a model spec to ONNX files on this machine, without torch wherever that is possible.

In order:

1. `onnx-dir:DIR`, a plain folder in an ONNX layout, and the shipped `tiny-shapes`: read as
   they are.
2. An earlier export of this model (the cache, `$CLIPSEARCH_CACHE` or the per-user cache
   folder, keyed by the spec and the weights' fingerprint).
3. Immich's ONNX export of the same weights already in the Hugging Face cache (the default
   model has one: `immich-app/ViT-B-32__laion2b-s34b-b79k`).
4. With the `[torch]` extra: export the open_clip model once (weights from the hub cache, a
   file or a folder, downloaded if the hub answers).
5. Immich's export downloaded from the hub.

When none works, one ModelError says what to supply. The fingerprint a library records is
the same whichever way the files came, so switching runtime never forces a re-index.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path

from clipsearch.errors import ModelError
from clipsearch.model import specs
from clipsearch.model.onnx_model import OnnxModel, is_model_folder, read
from clipsearch.model.specs import ModelSpec

log = logging.getLogger(__name__)
notice = logging.getLogger("clipsearch.notice")

# open_clip pretrained tags whose weights Immich publishes as ONNX on the hub.
IMMICH_REPOS = {
    "ViT-B-32:laion2b_s34b_b79k": "immich-app/ViT-B-32__laion2b-s34b-b79k",
    "ViT-B-32:openai": "immich-app/ViT-B-32__openai",
    "ViT-B-16:laion2b_s34b_b88k": "immich-app/ViT-B-16__laion2b-s34b-b88k",
    "ViT-L-14:laion2b_s32b_b82k": "immich-app/ViT-L-14__laion2b-s32b-b82k",
}
_IMMICH_FILES = ("config.json", "visual/model.onnx", "textual/model.onnx")
_IMMICH_EXTRA = ("visual/preprocess_cfg.json", "textual/tokenizer.json")


def cache_dir() -> Path:
    """Where exports and int8 models are kept: $CLIPSEARCH_CACHE, else the per-user cache."""
    env = os.environ.get("CLIPSEARCH_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("clipsearch", appauthor=False))


def onnx_model(spec: ModelSpec, precision: str = "fp32") -> OnnxModel:
    """The ONNX files for `spec` at `precision` ("fp32" or "int8")."""
    base = _fp32(spec)
    if precision != "int8":
        return base
    from clipsearch.model.quantize import quantize

    folder = cache_dir() / "int8" / _identity(base)
    return base.with_towers(
        quantize(base.visual, folder / "visual.onnx"),
        quantize(base.textual, folder / "textual.onnx"),
        "int8",
    )


def export_key(spec: ModelSpec, fingerprint: str) -> str:
    from clipsearch.model.export import EXPORT_VERSION

    raw = json.dumps([EXPORT_VERSION, spec.canonical, fingerprint])
    return hashlib.blake2b(raw.encode(), digest_size=10).hexdigest()


def torch_available() -> bool:
    """Whether the [torch] extra is installed (torch and open_clip), without importing it."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "open_clip"))
    except (ImportError, ValueError):
        return False


def _fp32(spec: ModelSpec) -> OnnxModel:
    if spec.kind == "onnx-dir":
        folder = Path(str(spec.source))
        if not folder.is_dir():
            raise ModelError(f"model {spec}: folder not found: {folder}")
        return read(folder, fingerprint=_onnx_fingerprint(folder))
    if spec.kind == "shipped":
        folder = specs.shipped_model_dir(str(spec.source))
        return read(folder, fingerprint=specs.fingerprint_dir(folder))
    if spec.kind == "local-dir" and is_model_folder(Path(str(spec.source))):
        folder = Path(str(spec.source))
        return read(folder, fingerprint=_onnx_fingerprint(folder))
    fingerprint = _source_fingerprint(spec)
    cached = cache_dir() / "onnx" / export_key(spec, fingerprint)
    if is_model_folder(cached):
        return read(cached, fingerprint=fingerprint)
    repo = _onnx_repo(spec)
    if repo:
        local = _hub_onnx(repo, download=False)
        if local is not None:
            return read(local, fingerprint=fingerprint)
    failure: ModelError | None = None
    if torch_available():
        from clipsearch.model.export import export

        notice.info("exporting the model %s to ONNX (once; it is cached) ...", spec)
        try:
            export(spec, cached)
            return read(cached, fingerprint=fingerprint)
        except ModelError as exc:
            failure = exc
    if repo and specs.hub_reachable():
        notice.info("downloading the ONNX model %s (once) ...", repo)
        local = _hub_onnx(repo, download=True)
        if local is not None:
            return read(local, fingerprint=fingerprint)
    if failure is not None:
        if repo:
            raise specs._offline_error(spec, failure.message, None, onnx_repo=repo) from None
        raise failure
    raise _needs_torch(spec, repo)


def _needs_torch(spec: ModelSpec, repo: str | None) -> ModelError:
    if repo:
        return specs._offline_error(
            spec,
            "its ONNX files are not in the local cache and the hub cannot be reached",
            None,
            onnx_repo=repo,
        )
    return ModelError(
        f"model {spec} has no ONNX files here yet, and exporting it needs torch",
        hint="Install the extra once (pip install 'clipsearch[torch]'): clipsearch exports the "
        "model to ONNX on first use and keeps it. Or pass ready ONNX files: --model "
        "onnx-dir:FOLDER (clipsearch's or Immich's layout).",
    )


def _onnx_repo(spec: ModelSpec) -> str | None:
    """A hub repo with this model's weights as ONNX, if one is known."""
    if spec.kind == "hf-hub":
        return str(spec.source)  # an ONNX repo, or an open_clip one (then no files match)
    if spec.kind == "tag":
        return IMMICH_REPOS.get(spec.canonical)
    return None


def _hub_onnx(repo: str, *, download: bool) -> Path | None:
    """The folder of `repo`'s files in Immich's layout in the hub cache (downloaded when asked
    and reachable), or None."""
    from huggingface_hub import hf_hub_download

    def get(name: str, local_only: bool) -> str | None:
        try:
            return hf_hub_download(repo_id=repo, filename=name, local_files_only=local_only)
        except Exception as exc:
            log.debug("hub %s/%s: %s", repo, name, exc)
            return None

    found = [get(name, not download) for name in _IMMICH_FILES]
    if not all(found):
        return None
    for name in _IMMICH_EXTRA:
        get(name, not download)
    return Path(str(found[0])).parent


def _source_fingerprint(spec: ModelSpec) -> str:
    """The weights' fingerprint as the library records it (no torch needed)."""
    if spec.kind == "local-dir":
        folder = Path(str(spec.source))
        return specs.fingerprint_dir(folder) if (folder / specs.CONFIG_NAME).is_file() else ""
    if spec.kind == "file":
        path = Path(str(spec.source))
        return specs.fingerprint_files([path]) if path.is_file() else ""
    return ""


def _onnx_fingerprint(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".onnx", ".json") and p.is_file())
    return specs.fingerprint_files(files)


def _identity(model: OnnxModel) -> str:
    """A cache key for derived files (int8): the towers' paths, sizes and times."""
    parts = [model.fingerprint]
    for path in (model.visual, model.textual):
        st = path.stat()
        parts += [str(path), str(st.st_size), str(st.st_mtime_ns)]
    return hashlib.blake2b(json.dumps(parts).encode(), digest_size=10).hexdigest()
