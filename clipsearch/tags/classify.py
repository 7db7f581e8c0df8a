"""Zero-shot classification and tags: score images against text labels with CLIP.

Each label becomes one vector by **prompt ensembling**: it is written into several templates
("a photo of a {}.", "a picture of a {}.", ...), each is embedded, and the unit vectors are
averaged and renormalised. An image's probabilities over a label set are the softmax of the
model's logit scale times the cosine similarities.

Vocabularies: the built-in `coco` (80 classes) and `imagenet` (1000 classes) shipped in
`clipsearch/tags/vocab/`, or a text file with one label per line (blank lines and `#` comments
ignored). `tag` stores, per image, every label whose probability reaches `min_score` (at
most `MAX_TAGS`, best first) and remembers the vocabulary, so images indexed later are
tagged too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipsearch.errors import TagError
from clipsearch.media import fs
from clipsearch.store import features
from clipsearch.store.store import Store

if TYPE_CHECKING:
    from clipsearch.model.encoder import Encoder

log = logging.getLogger(__name__)

VOCAB_DIR = Path(__file__).parent / "vocab"
BUILTIN = ("coco", "imagenet")
TEMPLATES = (
    "{}.",
    "a {}.",
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a photo of the {}.",
    "a close-up photo of a {}.",
    "a good photo of a {}.",
)
# Models trained on captions of one small world get templates in that world's style (photo
# templates are out of its vocabulary: 0.58 top-1 on shapes vs 0.98 for these).
MODEL_TEMPLATES = {"tiny-shapes": ("a {}.", "{}.", "the {}.", "a {} on a background.")}
VOCAB_META = "tag_vocabulary"
DEFAULT_MIN_SCORE = 0.1
MAX_TAGS = 5
MAX_LABELS = 5000
_CHUNK = 8192


@dataclass(frozen=True)
class Vocabulary:
    name: str  # coco | imagenet | the file's path
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Classification:
    """An image's best labels (the `classify --json` shape)."""

    id: int
    path: str
    label: str
    probability: float
    top: list[tuple[str, float]]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["probability"] = round(self.probability, 4)
        out["top"] = [{"label": lb, "probability": round(p, 4)} for lb, p in self.top]
        return out


def clean_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """Labels stripped, without blanks, comments and repeats; TagError if none are left."""
    out = dict.fromkeys(s.strip() for s in labels if s.strip() and not s.strip().startswith("#"))
    if not out:
        raise TagError(
            "no labels given",
            hint='Give labels, e.g.  clipsearch classify "cat" "dog" "person"',
        )
    if len(out) > MAX_LABELS:
        raise TagError(f"too many labels ({len(out)}); at most {MAX_LABELS}")
    return tuple(out)


def load_vocabulary(name: str) -> Vocabulary:
    """A built-in vocabulary by name, or a file of labels (one per line)."""
    if name.lower() in BUILTIN:
        text = (VOCAB_DIR / f"{name.lower()}.txt").read_text(encoding="utf-8")
        return Vocabulary(name.lower(), clean_labels(text.splitlines()))
    path = os.path.abspath(os.path.expanduser(name))
    if not os.path.isfile(path):
        raise TagError(
            f"unknown vocabulary {name!r}: not {' or '.join(BUILTIN)}, and no such file",
            hint="Use --vocabulary coco, --vocabulary imagenet, or a text file with one label "
            "per line.",
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TagError(f"cannot read vocabulary file {path}: {exc}") from None
    try:
        return Vocabulary(path, clean_labels(text.splitlines()))
    except TagError as exc:
        raise TagError(f"the vocabulary file {path} has no labels", hint=exc.hint) from None


def _prompt(template: str, label: str) -> str:
    text = template.format(label)
    if label[:1].lower() in "aeiou":  # "a photo of a orange cat" -> "... an orange cat"
        text = text.replace(f"a {label}", f"an {label}")
    return text


def templates_for(model: str) -> tuple[str, ...]:
    """The prompt templates for a model (canonical spec): CLIP's photo templates by default."""
    return MODEL_TEMPLATES.get(model, TEMPLATES)


def label_vectors(
    encoder: Any, labels: Sequence[str], templates: Sequence[str] = TEMPLATES
) -> np.ndarray:
    """One unit vector per label: the mean of its prompts' vectors, renormalised."""
    prompts = [_prompt(t, label) for label in labels for t in templates]
    vecs = encoder.encode_texts(prompts).reshape(len(labels), len(templates), -1)
    mean = vecs.mean(axis=1)
    return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Labeller:
    """Labels -> vectors and images -> label probabilities, for one library's model.

    `model` is the library's canonical model spec (it picks the prompt templates);
    label vectors are cached in `cache_dir` per model, weights and label list.
    """

    encoder: Encoder
    model: str
    cache_dir: Path

    def label_vectors(self, labels: Sequence[str]) -> np.ndarray:
        """`label_vectors` for these labels, from the cache when it has them."""
        enc = self.encoder.load()
        templates = templates_for(self.model)
        key = hashlib.blake2b(
            json.dumps([self.model, enc.fingerprint, list(templates), list(labels)]).encode(),
            digest_size=8,
        ).hexdigest()
        cache = self.cache_dir / f"{key}.npy"
        if cache.exists():
            try:
                vecs = np.load(cache)
                if vecs.shape[0] == len(labels):
                    return vecs
            except (OSError, ValueError):
                pass
        vecs = label_vectors(enc, labels, templates)
        try:
            cache.parent.mkdir(exist_ok=True)
            tmp = cache.with_suffix(".tmp.npy")
            np.save(tmp, vecs)
            os.replace(tmp, cache)
        except OSError as exc:  # a read-only library still classifies
            log.debug("cannot cache label vectors: %s", exc)
        return vecs

    def probabilities(self, image_vectors: np.ndarray, label_vecs: np.ndarray) -> np.ndarray:
        """Softmax over labels of logit_scale x cosine: (N images, L labels)."""
        logits = self.encoder.logit_scale * (image_vectors @ label_vecs.T)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)


def classify(
    store: Store,
    labeller: Labeller,
    labels: Sequence[str],
    *,
    within: Sequence[str] = (),
    ids: Sequence[int] = (),
    top: int = 3,
) -> list[Classification]:
    """Each image's best label and probability (all images, or those `within`/`ids`)."""
    labels = clean_labels(labels)
    dim = store.dim()
    if dim is None:
        return []
    if ids:
        rows = store.get_rows(ids)
    elif within:
        rows = {r.id: r for r in store.rows_under([fs.normalize_root(w) for w in within]).values()}
    else:
        rows = None
    want = sorted(rows) if rows is not None else None
    label_vecs = labeller.label_vectors(labels)
    out: list[Classification] = []
    for vid, vecs in _vector_chunks(store, dim, want):
        chunk_rows = store.get_rows(vid.tolist()) if rows is None else rows
        probs = labeller.probabilities(vecs, label_vecs)
        order = np.argsort(-probs, axis=1)[:, : max(1, top)]
        for i, image_id in enumerate(vid.tolist()):
            row = chunk_rows.get(image_id)
            if row is None:
                continue
            best = [(labels[j], float(probs[i, j])) for j in order[i]]
            out.append(Classification(image_id, row.path, best[0][0], best[0][1], best))
    out.sort(key=lambda c: c.path)
    return out


def _vector_chunks(
    store: Store, dim: int, ids: Sequence[int] | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    if ids is None:
        yield from store.iter_vectors(dim, chunk=_CHUNK)
        return
    for start in range(0, len(ids), _CHUNK):
        got = store.get_vectors(ids[start : start + _CHUNK], dim)
        if len(got[0]):
            yield got


def current_vocabulary(store: Store) -> dict[str, Any] | None:
    """The vocabulary `tag` set: {"name", "labels", "min_score"}, or None."""
    raw = store.get_meta(VOCAB_META)
    return json.loads(raw) if raw else None


def tag_library(
    store: Store,
    labeller: Labeller,
    vocabulary: str | Sequence[str],
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Tag every image with `vocabulary` (old tags go) and remember it. Lock held by caller."""
    if not 0.0 <= min_score <= 1.0:
        raise TagError(f"--min-score must be between 0 and 1, got {min_score}")
    if isinstance(vocabulary, str):
        vocab = load_vocabulary(vocabulary)
    else:  # explicit labels (the HTTP API never names a file)
        vocab = Vocabulary("custom", clean_labels(vocabulary))
    setting = {"name": vocab.name, "labels": list(vocab.labels), "min_score": min_score}
    tagged = _tag_ids(store, labeller, None, setting, everything=True, progress=progress)
    store.set_meta({VOCAB_META: json.dumps(setting)})
    return {
        "vocabulary": vocab.name,
        "labels": len(vocab.labels),
        "images": tagged,
        "min_score": min_score,
        "tags": features.tag_counts(store)[:20],
    }


def tag_new(store: Store, labeller: Labeller, ids: Sequence[int]) -> int:
    """Tag freshly indexed images with the library's vocabulary (if it has one)."""
    setting = current_vocabulary(store)
    if not setting or not ids:
        return 0
    return _tag_ids(store, labeller, list(ids), setting, everything=False, progress=None)


def _tag_ids(
    store: Store,
    labeller: Labeller,
    ids: list[int] | None,
    setting: dict[str, Any],
    *,
    everything: bool,
    progress: Callable[[str, int, int], None] | None,
) -> int:
    dim = store.dim()
    if dim is None:
        if everything:
            features.replace_tags(store, {}, everything=True)
        return 0
    labels = setting["labels"]
    min_score = float(setting.get("min_score", DEFAULT_MIN_SCORE))
    label_vecs = labeller.label_vectors(labels)
    tags: dict[int, list[tuple[str, float]]] = {}
    total = store.vector_count() if ids is None else len(ids)
    for vid, vecs in _vector_chunks(store, dim, ids):
        probs = labeller.probabilities(vecs, label_vecs)
        order = np.argsort(-probs, axis=1)[:, :MAX_TAGS]
        for i, image_id in enumerate(vid.tolist()):
            tags[image_id] = [
                (labels[j], float(probs[i, j])) for j in order[i] if probs[i, j] >= min_score
            ]
        if progress:
            progress("tag", len(tags), total)
    features.replace_tags(store, tags, everything=everything)
    return len(tags)
