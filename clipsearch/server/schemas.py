"""The JSON shapes of the HTTP API: requests in, responses out.

These models are the documented, stable contract (docs/server.md, and /docs). Fields may be
added in later versions; none is renamed or removed. Requests refuse unknown fields, so a
typo is an error instead of being silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_K = 1000
MAX_TERMS = 16


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ----------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str = Field(description="A stable machine-readable code, e.g. `bad_query`, `not_found`.")
    message: str = Field(description="What went wrong, for a person.")
    hint: str | None = Field(None, description="What to do about it, when there is advice.")
    field: str | None = Field(
        None, description="The request field at fault, when one is (`POST /api/generate`)."
    )
    position: int | None = Field(
        None, description="Where in the query text the problem is (1-based), for a bad query."
    )


class QueryFilter(BaseModel):
    key: str = Field(description="near, after, before, camera, text, in, tag or source.")
    value: str
    start: int = Field(description="Where it is in q: [start, end), 0-based characters.")
    end: int
    label: str = Field(description='How it was understood: "near Lisbon, Portugal".')


class QueryParse(BaseModel):
    """`q` split as the search reads it: words for the model, filters, quoted phrases."""

    free: str = Field(description="The words the model reads (quoted phrases included).")
    filters: list[QueryFilter]
    keywords: list[str] = Field(description="Quoted phrases: also looked up as keywords.")
    error: dict | None = Field(
        None, description="{message, hint, position (1-based)} when q cannot be read."
    )


class ErrorResponse(BaseModel):
    """Every error: `{"error": {"code", "message", "hint"}}` (never a stack trace)."""

    error: ErrorBody


# --- search ----------------------------------------------------------------------------------


class Term(_Request):
    """One part of a query: exactly one of `text`, `like` (an image id) or `upload`."""

    text: str | None = Field(None, min_length=1, max_length=1000, description="Words.")
    like: int | None = Field(
        None, ge=1, description="An image id: more like it (the image itself is left out)."
    )
    upload: str | None = Field(
        None, max_length=64, description="The id of an image sent to `POST /api/uploads`."
    )
    weight: float = Field(
        1.0,
        ge=-100,
        le=100,
        allow_inf_nan=False,
        description="Negative pushes results away from the term.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Term:
        given = [n for n in ("text", "like", "upload") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("a term has exactly one of text, like or upload")
        if self.text is not None and not self.text.strip():
            raise ValueError("a text term cannot be blank")
        return self


class Filters(_Request):
    """Which images may appear. Every filter given must hold."""

    folders: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Only images inside one of these folders (or these files).",
    )
    source: Literal["photos", "generated"] | None = None
    after: str | None = Field(
        None,
        max_length=40,
        description="Taken on/after this date (2024, 2024-06, 2024-06-30 or ISO datetime); "
        "the capture time, else the file's modification time.",
    )
    before: str | None = Field(None, max_length=40, description="Taken before this date.")
    tag: str | None = Field(
        None, max_length=200, description="Only images with this tag (`clipsearch tag`)."
    )
    include_offline: bool = Field(
        False,
        description="Also pictures kept for an offline folder (an unmounted drive); they are "
        "marked `offline` and their files cannot be fetched until it is back.",
    )
    near: str | None = Field(
        None,
        max_length=200,
        description='Taken near a place (GPS): "Lisbon", "Paris, FR", a country, or '
        '"38.72,-9.14~5km".',
    )
    camera: str | None = Field(
        None, max_length=200, description="Camera make, model or lens words (`pixel`)."
    )
    text: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Words written in the picture (OCR, libraries indexed with --ocr).",
    )
    folder_names: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="A folder with this name above the file (`Holidays`).",
    )


class SearchRequest(_Request):
    """A weighted mix of `q` and `terms` (at least one), plus filters.

    Scores are cosine similarities between each image and the normalised weighted sum of
    the terms' unit vectors.
    """

    q: str | None = Field(
        None,
        max_length=1000,
        description="Words, in rclip's syntax: `2:dog + cat - fruit` (weights, +/- terms).",
    )
    terms: list[Term] = Field(default_factory=list, max_length=MAX_TERMS)
    k: int = Field(30, ge=1, le=MAX_K, description="How many results.")
    min_score: float | None = Field(None, ge=-1, le=1, allow_inf_nan=False)
    filters: Filters = Field(default_factory=Filters)
    keywords: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Phrases for the keyword index (file and folder names, text in pictures, "
        "tags, places, cameras), fused with the semantic ranking. Quoted phrases in `q` "
        "count too.",
    )
    cutoff: Literal["auto"] | None = Field(
        None, description="`auto`: end the list where relevance drops (scores are kept)."
    )

    @model_validator(mode="after")
    def _something_to_search(self) -> SearchRequest:
        f = self.filters
        filtered = f.near or f.camera or f.text or f.folder_names or f.after or f.before
        filtered = filtered or f.tag or f.source or f.folders or self.keywords
        if not self.terms and not (self.q or "").strip() and not filtered:
            raise ValueError("empty query: give q or terms (text, like or upload)")
        return self


class ImageSummary(BaseModel):
    """An image in the library. The first nine fields are `clipsearch search --json`'s."""

    id: int
    path: str
    width: int | None
    height: int | None
    size: int = Field(description="Bytes on disk.")
    mtime: float = Field(description="Modification time, seconds since the epoch.")
    taken_at: str | None = Field(description="EXIF capture time (ISO 8601, no zone).")
    source: str = Field(description="`photos` or `generated`.")
    name: str = Field(description="The file name.")
    thumb_url: str = Field(description="A cached JPEG thumbnail (320 px; `?size=` for others).")
    file_url: str = Field(description="The original file.")


class Hit(ImageSummary):
    score: float | None = Field(
        description="Cosine similarity to the query (higher is closer); null for a query "
        "with filters or keywords only."
    )
    offline: bool = Field(False, description="On an offline folder (an unmounted drive).")
    keyword: bool = Field(False, description="The keyword index matched the quoted phrases.")


class SearchResponse(BaseModel):
    results: list[Hit]
    count: int
    took_ms: float
    library_empty: bool = Field(description="True when the library holds no images yet.")


class Upload(BaseModel):
    """A query image the server has read and embedded; refer to it in terms by `id`."""

    id: str
    width: int
    height: int
    format: str
    bytes: int
    library_id: int | None = Field(
        description="The id of a library image with exactly the same content, if any."
    )


# --- images and status -----------------------------------------------------------------------


class ImageDetail(ImageSummary):
    format: str | None
    folder: str
    added_at: float
    updated_at: float
    exists: bool = Field(description="False when the file is gone from disk since indexing.")
    preview_url: str = Field(
        description="What a browser can show: the original, or a large JPEG for formats "
        "browsers cannot display (HEIC, TIFF)."
    )
    camera: str | None = Field(None, description="Camera make and model (EXIF).")
    lens: str | None = Field(None, description="Lens model (EXIF).")
    lat: float | None = Field(None, description="GPS latitude, decimal degrees.")
    lon: float | None = Field(None, description="GPS longitude, decimal degrees.")
    place: str | None = Field(None, description='Where: "Lisbon, Portugal" (offline lookup).')
    map_url: str | None = Field(None, description="The GPS position on OpenStreetMap.")
    text: str | None = Field(
        None, description="Text read in the picture (libraries indexed with --ocr)."
    )


class IndexInfo(BaseModel):
    kind: str | None
    vectors: int
    nprobe: int | None
    file: str | None
    compressed: bool = Field(
        False,
        description="Approximate codes (8-bit, or PQ from spark index --max-memory): "
        "searches re-rank their hits with the stored vectors.",
    )
    codes: str | None = Field(
        None, description='How the index keeps vectors: "float32", "float16", "8-bit" or "pq".'
    )


class RootInfo(BaseModel):
    path: str
    last_indexed_at: float | None


class Status(BaseModel):
    """The library's status: the same shape as `clipsearch status --json`.

    Fields the library adds to its status later pass through unchanged.
    """

    model_config = ConfigDict(extra="allow")

    library: str
    model: str
    dim: int | None
    images: int
    photos: int
    generated: int
    failures: int
    vectors: int
    index: IndexInfo
    roots: list[RootInfo]
    size_bytes: int
    created_at: float | None
    writer: dict | None = Field(description="The process writing to the library, if any.")


class FailureInfo(BaseModel):
    path: str
    reason: str
    failed_at: float


class Health(BaseModel):
    ok: bool
    version: str
    library: str
    model: str


class Feature(BaseModel):
    name: str
    title: str
    page: str | None = Field(description="The web page's module for it (static/pages/NAME.js).")


class Info(BaseModel):
    """What the web page needs to know: features, limits, auth."""

    version: str
    library: str
    model: str
    features: list[Feature]
    token_required: bool
    max_upload_bytes: int
    max_k: int
    thumb_sizes: list[int]


class TokenLogin(_Request):
    token: str = Field(..., min_length=1, max_length=512)


# --- generation (routers/generate.py) -------------------------------------------------------


class GenerateBody(_Request):
    """What to generate (`clipsearch generate`'s options, without paths)."""

    prompts: list[Annotated[str, Field(max_length=300)]] = Field(
        min_length=1, max_length=8, description='"text" or "text:weight" (negative pushes away).'
    )
    steps: int = Field(100, ge=1, le=2000)
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Default: random.")
    width: int | None = Field(None, ge=8, le=1024)
    height: int | None = Field(None, ge=8, le=1024)
    lr: float | None = Field(None, gt=0, le=10)
    cutouts: int = Field(16, ge=1, le=64)
    drawer: Literal["vqgan", "pixel", "transformer", "transformer+vqgan"] = "vqgan"
    init_id: int | None = Field(None, ge=1, description="Start from this library image.")
    preview_every: int = Field(5, ge=1, le=1000, description="Preview frame every N steps.")
    candidates: int = Field(
        16, ge=1, le=64, description="Transformer drawers: samples CLIP re-ranks (best kept)."
    )
    temperature: float = Field(1.0, gt=0, le=10, description="Transformer drawers.")
    top_k: int = Field(0, ge=0, le=100000, description="Transformer drawers (0: off).")
    top_p: float = Field(1.0, gt=0, le=1, description="Transformer drawers (1: off).")


class JobError(BaseModel):
    code: str
    message: str
    hint: str | None = None
    field: str | None = Field(None, description="The request field at fault, if one is.")


class DrawerChoice(BaseModel):
    name: Literal["vqgan", "pixel", "transformer", "transformer+vqgan"] = Field(
        description="The value for `drawer`."
    )
    label: str
    available: bool = Field(description="False: a generation with it would be refused.")
    note: str | None = Field(description="Why it is not available.")


class GenerateOptions(BaseModel):
    """What `POST /api/generate` can use with this library."""

    drawers: list[DrawerChoice]
    default_drawer: Literal["vqgan", "pixel", "transformer", "transformer+vqgan"]


class Job(BaseModel):
    """A generation job. `state`: running, done, failed or cancelled."""

    id: str
    state: Literal["running", "done", "failed", "cancelled"]
    prompts: list[str]
    step: int
    steps: int = Field(description="Optimiser steps (0 for the transformer drawer).")
    drawer: Literal["vqgan", "pixel", "transformer", "transformer+vqgan"]
    candidates: int = Field(description="Samples a transformer drawer draws and CLIP re-ranks.")
    loss: float | None
    started_at: float
    finished_at: float | None
    preview_url: str | None = Field(description="The latest frame (PNG); changes as it runs.")
    preview_step: int | None
    cancel_requested: bool
    result: dict[str, Any] | None = Field(
        description="When done: `clipsearch generate --json`'s shape plus `search_url`; with "
        "a transformer drawer each of `candidates` (best first) also has `image`, a PNG "
        "data URL."
    )
    error: JobError | None


# --- duplicates and tags ---------------------------------------------------------------------


class DupeMember(ImageSummary):
    format: str | None
    reason: Literal["exact", "near", "similar"] | None = Field(
        None, description="Why this non-keeper is in the group (null for the keeper)."
    )
    score: float | None = Field(None, description="The score of that link.")
    match: int | None = Field(
        None, description="The image it matches: the keeper whenever that link is as strong."
    )


class DupePair(BaseModel):
    a: int
    b: int
    reason: Literal["exact", "near", "similar"] = Field(
        description="`exact`: same bytes; `near`: perceptual hashes; `similar`: CLIP cosine."
    )
    score: float = Field(description="1 = identical; near: 1 - bits/128; similar: the cosine.")
    distance: int | None = Field(description="Differing perceptual-hash bits (near only).")


class DupeGroup(BaseModel):
    kind: Literal["copies", "similar"] = Field(
        description="`copies`: exact and near copies; `similar`: CLIP look-alikes, every one "
        "similar to the keeper (never moved together with copies)."
    )
    keeper: DupeMember = Field(
        description="Most pixels; then camera date, earliest file, camera format, largest file."
    )
    others: list[DupeMember]
    reasons: list[str]
    pairs: list[DupePair]


class DupeCalibration(BaseModel):
    """Whether the model tells this library's pictures apart at the threshold."""

    threshold: float
    pictures: int = Field(description="Distinct pictures compared (one per group of copies).")
    nn_median: float | None = Field(description="The median nearest-neighbour cosine.")
    nn_p10: float | None
    nn_p90: float | None
    pair_median: float | None = Field(description="The cosine of a typical pair.")
    used: bool = Field(description="False: similar pairs were left out (see `reason`).")
    reason: str | None


class DupesResponse(BaseModel):
    """Duplicate groups: the same shape as `clipsearch dupes --json`, plus image links."""

    groups: list[DupeGroup]
    images: int
    duplicates: int = Field(description="Images that are not their group's keeper.")
    copies: int = Field(description="Non-keepers of the groups of exact and near copies.")
    similar_images: int = Field(description="Non-keepers of the similar groups.")
    pairs: dict[str, int] = Field(description="Pairs found per reason.")
    hashed: int = Field(description="Older images whose perceptual hashes were computed now.")
    seconds: float
    max_distance: int
    threshold: float | None
    calibration: DupeCalibration | None = Field(
        description="How the model spreads the pictures (null when similar was not asked)."
    )
    warnings: list[str] = Field(description="Why similar images were left out, if they were.")


class MoveRequest(_Request):
    """Images to move into the library's quarantine folder (`LIBRARY/quarantine/STAMP/`)."""

    ids: list[int] = Field(..., min_length=1, max_length=10_000)


class SkippedFile(BaseModel):
    path: str
    reason: str


class MoveResponse(BaseModel):
    moved: list[dict] = Field(description='`{"id", "from", "to"}` per file moved.')
    skipped: list[SkippedFile]
    undo: str | None = Field(description="Pass to `POST /api/duplicates/undo` to restore them.")


class UndoRequest(_Request):
    undo: str = Field(..., min_length=1, max_length=64, pattern=r"^[0-9]{8}-[0-9]{6}$")


class TagCount(BaseModel):
    label: str
    images: int


class TagsResponse(BaseModel):
    vocabulary: dict | None = Field(description="{name, labels, min_score}, or null.")
    tags: list[TagCount]


class TagRequest(_Request):
    """Tag the whole library: a built-in vocabulary or explicit labels (never a file path)."""

    vocabulary: Literal["coco", "imagenet"] | None = None
    labels: list[str] | None = Field(None, min_length=1, max_length=5000)
    min_score: float = Field(0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _one(self) -> TagRequest:
        if (self.vocabulary is None) == (self.labels is None):
            raise ValueError("give exactly one of vocabulary or labels")
        return self


class ClassifyRequest(_Request):
    labels: list[str] = Field(..., min_length=1, max_length=1000)
    ids: list[int] = Field(
        default_factory=list,
        max_length=10_000,
        description="Only these images (default: all, up to `limit`).",
    )
    top: int = Field(3, ge=1, le=20)
    limit: int = Field(500, ge=1, le=10_000)


class LabelScore(BaseModel):
    label: str
    probability: float


class Classified(BaseModel):
    id: int
    path: str
    label: str
    probability: float
    top: list[LabelScore]


class ClassifyResponse(BaseModel):
    results: list[Classified]
    count: int
