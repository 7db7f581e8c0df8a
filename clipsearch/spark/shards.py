"""Embedding shards: the file layout, the plan, and the work of one shard.

Nothing here imports Spark: the driver (`clipsearch.spark.job`) hands each task one shard
and `embed_shard` does the work, in whatever process runs it. `clipsearch import` reads the
same files back (`read_shard`).

Layout of an embeddings folder (clip-retrieval's, so its tools and autofaiss read it as is):

    manifest.json                   model, fingerprint, dim, precision, dtype, shard count
    plan.parquet                    which file goes in which shard (shard, path_bytes)
    img_emb/img_emb_{i}.npy         (rows, dim) float16 or float32, L2-normalised
    metadata/metadata_{i}.parquet   one row per embedding, in the same order
    errors/errors_{i}.parquet       files that could not be read, and why

A shard is finished when its metadata file exists: the task writes its files under
temporary names and renames the metadata file last, so a task killed half way leaves no
finished-looking shard, and a retried (or speculative) task writes the same files again.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch.errors import ConfigError, UnreadableImage
from clipsearch.media import fs

LAYOUT = "clipsearch-embeddings/1"
MANIFEST = "manifest.json"
PLAN = "plan.parquet"
SHARD_SIZE = 10_000
BATCH = 32

# The columns of metadata_{i}.parquet (one row per row of img_emb_{i}.npy, same order).
METADATA_COLUMNS = (
    "image_path",  # the path as text (clip-retrieval's name); odd bytes shown escaped
    "path_bytes",  # the path's exact bytes (file names need not be UTF-8)
    "size",
    "mtime_ns",
    "content_hash",
    "width",
    "height",
    "format",
    "taken_at",
    "phash",
    "dhash",
    "phash_mirror",
    "dhash_mirror",
)
ERROR_COLUMNS = ("image_path", "path_bytes", "size", "mtime_ns", "error")


class RemoteSource(ConfigError):
    """A URI source that cannot be listed (no Spark, no such file system, nothing there)."""


@dataclass(frozen=True)
class Manifest:
    """What made the shards: checked by `import` against the library's model."""

    model: str
    model_fingerprint: str
    dim: int
    precision: str
    dtype: str  # float16 | float32
    shards: int
    shard_size: int
    layout: str = LAYOUT
    created_at: float = 0.0
    clipsearch_version: str = ""

    def write(self, folder: Path) -> None:
        atomic_write(folder / MANIFEST, json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"{folder} holds no {MANIFEST}: not a folder written by `clipsearch spark embed`"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        if raw.get("layout") != LAYOUT:
            raise ConfigError(f"{path}: layout {raw.get('layout')!r}, expected {LAYOUT!r}")
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


# --- the driver's side: listing and planning ------------------------------------------------


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(source: str) -> bool:
    """`hdfs://nn/photos`, `s3a://bucket/x`, `file:///data`: read through Spark's Hadoop
    file systems, not as a local path."""
    return bool(_URI.match(source))


def list_sources(
    sources: Iterable[str], hadoop: Callable[[str], list[tuple[str, int, int]]] | None = None
) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Every image the sources name, once each, sorted (done once, on the driver): local
    paths, and URIs with their (size, mtime_ns) as `hadoop(uri)` lists them.

    A source is a folder (walked as `index` walks it), an image file, a text file listing
    one path or URI per line, a glob (`photos/**/*.jpg`), or a URI of a file or folder on any
    file system Spark's Hadoop reads (`hdfs://`, `s3a://` with the connector, `file://`).
    """
    found: set[str] = set()
    remote: dict[str, tuple[int, int]] = {}

    def uri(source: str) -> None:
        if hadoop is None:
            raise RemoteSource(f"{source}: a URI is read through Spark's Hadoop file systems")
        remote.update((u, (size, mtime)) for u, size, mtime in hadoop(source))

    for source in sources:
        if is_uri(source):
            uri(source)
            continue
        path = source
        if any(c in path for c in "*?["):
            matches = [m for m in glob.glob(path, recursive=True) if os.path.isfile(m)]
            found.update(os.path.abspath(m) for m in matches if fs.is_image_name(m))
            continue
        if os.path.isdir(path):
            found.update(st.path for st in fs.scan([fs.normalize_root(path)]))
        elif os.path.isfile(path) and fs.is_image_name(path):
            found.add(os.path.abspath(path))
        elif os.path.isfile(path):  # a list of paths or URIs, one per line
            with open(path, "rb") as f:
                for line in f:
                    name = os.fsdecode(line.rstrip(b"\r\n"))
                    if not name.strip():
                        continue
                    if is_uri(name):
                        uri(name)
                    else:
                        found.add(os.path.abspath(name))
        else:
            raise ConfigError(f"{fs.display(path)}: no such file or folder")
    return sorted(found) + sorted(remote), remote


def plan_shards(out: Path, paths: list[str], shard_size: int) -> list[list[str]]:
    """The shards' file lists: those of an earlier run as they were (so its finished shards
    stay valid), and new paths in new shards after them. Written to plan.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards: list[list[str]] = []
    if (out / PLAN).exists():
        table = pq.read_table(out / PLAN)
        numbers = table.column("shard").to_numpy()
        names = [os.fsdecode(b) for b in table.column("path_bytes").to_pylist()]
        shards = [[] for _ in range(int(numbers.max()) + 1 if len(numbers) else 0)]
        for number, name in zip(numbers, names, strict=True):
            shards[int(number)].append(name)
    planned = {p for shard in shards for p in shard}
    new = [p for p in paths if p not in planned]
    for start in range(0, len(new), shard_size):
        shards.append(new[start : start + shard_size])
    if new or not (out / PLAN).exists():
        table = pa.table(
            {
                "shard": pa.array([i for i, s in enumerate(shards) for _ in s], pa.int32()),
                "path_bytes": pa.array([os.fsencode(p) for s in shards for p in s], pa.binary()),
            }
        )
        atomic_write_with(out / PLAN, lambda tmp: pq.write_table(table, tmp))
    return shards


def shard_done(out: Path, number: int) -> bool:
    return (out / "metadata" / f"metadata_{number}.parquet").exists()


def discard_temp_files(out: Path) -> None:
    """Files of tasks killed before their rename (a new task writes under new names)."""
    for sub in ("img_emb", "metadata", "errors"):
        for tmp in (out / sub).glob(".*.tmp-*"):
            with contextlib.suppress(OSError):
                tmp.unlink()


# --- the executor's side: one shard ------------------------------------------------------------


@dataclass(frozen=True)
class ShardTask:
    """Everything a task needs (pickled to the executor)."""

    number: int
    paths: tuple[str, ...]
    out: str
    model: Any  # clipsearch.model.onnx_model.OnnxModel, its files readable where this runs
    spec: str
    threads: int = 1
    dtype: str = "float16"
    precision: str = ""  # the encoder's, when it is not the files' own (bf16 runs fp32 files)
    fail_after: int | None = None  # testing: the process dies after this many images, once
    # (size, mtime_ns) of the shard's URIs, as the driver listed them: a task reads their
    # bytes through Spark (SparkContext.binaryFiles), never listing or stat-ing anything
    remote: tuple[tuple[str, int, int], ...] = ()


_ENCODERS: dict[tuple, Any] = {}  # one model per executor process, for all its tasks
_LOADS = {"count": 0}


def _encoder(task: ShardTask) -> Any:
    precision = task.precision or task.model.precision
    key = (task.spec, task.model.fingerprint, precision, str(task.model.visual))
    enc = _ENCODERS.get(key)
    if enc is None:
        from clipsearch.model.encoder import Encoder

        enc = Encoder.from_model(
            task.spec, task.model, threads=task.threads, batches=True, precision=precision
        )
        _ENCODERS[key] = enc
        _LOADS["count"] += 1
    return enc


def embed_shard(task: ShardTask, contents: Iterable[tuple[str, bytes]] | None = None) -> dict:
    """Embed one shard's files and write its three files; returns what it did.

    Local paths are read here; a shard of URIs gets their `contents` ((uri, bytes), as
    Spark's binaryFiles reads them). A file that cannot be read or decoded becomes a row of
    errors_{i}.parquet; nothing a file contains fails the task. Skips a finished shard."""
    from clipsearch.media import phash
    from clipsearch.media.images import content_hash, open_image, prepare, read_file

    out = Path(task.out)
    t0 = time.perf_counter()
    facts = {"shard": task.number, "pid": os.getpid(), "skipped": False}
    if shard_done(out, task.number):
        return facts | {"skipped": True, "embedded": 0, "errors": 0, "model_loads": 0}
    loads_before = _LOADS["count"]
    enc = _encoder(task)
    params = enc.params
    # The tower loads (~1 s for ViT-B-32) while the first batch is decoded.
    warming = threading.Thread(target=enc.warm_images, daemon=True)
    warming.start()
    rows: list[dict] = []
    errors: list[dict] = []
    vectors: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    marker = out / f".fail-once-{task.number}"

    def flush() -> None:
        if batch:
            warming.join()
            vectors.append(enc.encode_images(np.stack(batch)))
            batch.clear()

    listed = {u: (size, mtime) for u, size, mtime in task.remote}
    local = [p for p in task.paths if p not in listed]
    items: Iterable[tuple[str, bytes | None]] = ((p, None) for p in local)
    if listed:
        items = itertools.chain(items, _remote_items(contents or (), listed, errors))
    for done, (path, given) in enumerate(items):
        if task.fail_after is not None and done == task.fail_after and not marker.exists():
            marker.touch()
            os._exit(3)  # an executor dying mid-partition (testing only)
        if given is not None:
            size, mtime_ns = len(given), listed[path][1]
        else:
            try:
                st = os.stat(path)
                size, mtime_ns = st.st_size, st.st_mtime_ns
            except OSError as exc:
                size, mtime_ns = -1, -1
                errors.append(_error_row(path, size, mtime_ns, f"cannot read ({exc.strerror})"))
                continue
        try:
            data = given if given is not None else read_file(path)
            img, info = open_image(data, draft_size=min(params.size), name=path)
            pixels = prepare(img, params)
            hashes = phash.compute(img).as_tuple()
        except UnreadableImage as exc:
            errors.append(_error_row(path, size, mtime_ns, exc.reason))
            continue
        batch.append(pixels)
        rows.append(
            {
                "image_path": fs.display(path),
                "path_bytes": os.fsencode(path),
                "size": size,
                "mtime_ns": mtime_ns,
                "content_hash": content_hash(data),
                "width": info.width,
                "height": info.height,
                "format": info.format,
                "taken_at": info.taken_at,
                **dict(zip(METADATA_COLUMNS[-4:], hashes, strict=True)),
            }
        )
        if len(batch) >= BATCH:
            flush()
    flush()
    matrix = np.concatenate(vectors) if vectors else np.empty((0, enc.dim), np.float32)
    write_shard(out, task.number, matrix.astype(task.dtype), rows, errors)
    return facts | {
        "embedded": len(rows),
        "errors": len(errors),
        "model_loads": _LOADS["count"] - loads_before,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _remote_items(
    contents: Iterable[tuple[str, bytes]],
    listed: dict[str, tuple[int, int]],
    errors: list[dict],
) -> Iterator[tuple[str, bytes]]:
    """The URIs' bytes as Spark delivers them; a listed URI that never came is an error row."""
    seen: set[str] = set()
    for uri, data in contents:
        if uri in listed and uri not in seen:
            seen.add(uri)
            yield uri, bytes(data)
    for uri in listed.keys() - seen:
        size, mtime = listed[uri]
        errors.append(_error_row(uri, size, mtime, "not read (gone since it was listed?)"))


def _error_row(path: str, size: int, mtime_ns: int, reason: str) -> dict:
    return {
        "image_path": fs.display(path),
        "path_bytes": os.fsencode(path),
        "size": size,
        "mtime_ns": mtime_ns,
        "error": reason,
    }


def _schemas() -> tuple[Any, Any]:
    import pyarrow as pa

    metadata = pa.schema(
        [
            ("image_path", pa.string()),
            ("path_bytes", pa.binary()),
            ("size", pa.int64()),
            ("mtime_ns", pa.int64()),
            ("content_hash", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("format", pa.string()),
            ("taken_at", pa.string()),
            ("phash", pa.int64()),
            ("dhash", pa.int64()),
            ("phash_mirror", pa.int64()),
            ("dhash_mirror", pa.int64()),
        ]
    )
    errors = pa.schema(
        [
            ("image_path", pa.string()),
            ("path_bytes", pa.binary()),
            ("size", pa.int64()),
            ("mtime_ns", pa.int64()),
            ("error", pa.string()),
        ]
    )
    return metadata, errors


def write_shard(
    out: Path, number: int, matrix: np.ndarray, rows: list[dict], errors: list[dict]
) -> None:
    """Write shard `number`: embeddings, errors, then metadata (its presence: finished)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta_schema, error_schema = _schemas()
    for sub in ("img_emb", "metadata", "errors"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    def save_npy(tmp: str) -> None:
        with open(tmp, "wb") as f:  # np.save given a name would append ".npy" to it
            np.save(f, matrix)

    atomic_write_with(out / "img_emb" / f"img_emb_{number}.npy", save_npy)
    error_table = pa.Table.from_pylist(errors, schema=error_schema)
    atomic_write_with(
        out / "errors" / f"errors_{number}.parquet",
        lambda tmp: pq.write_table(error_table, tmp),
    )
    meta_table = pa.Table.from_pylist(rows, schema=meta_schema)
    atomic_write_with(  # last: its presence says the shard is finished
        out / "metadata" / f"metadata_{number}.parquet",
        lambda tmp: pq.write_table(meta_table, tmp),
    )


def atomic_write(path: Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write_with(path, write)


def atomic_write_with(path: Path, write: Any) -> None:
    """`write(tmp)` then fsync and rename into place: readers see all of it or nothing."""
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        write(str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --- reading shards back ----------------------------------------------------------------------


@dataclass
class Shard:
    number: int
    vectors: np.ndarray  # (rows, dim), as stored
    rows: list[dict]  # METADATA_COLUMNS
    errors: list[dict]  # ERROR_COLUMNS


def finished_shards(folder: Path) -> list[int]:
    found = []
    for path in (folder / "metadata").glob("metadata_*.parquet"):
        with contextlib.suppress(ValueError):
            found.append(int(path.stem.split("_", 1)[1]))
    return sorted(found)


def read_shard(folder: Path, number: int) -> Shard:
    """One finished shard: its vectors, its rows and its errors (checked to agree)."""
    import pyarrow.parquet as pq

    meta = pq.read_table(folder / "metadata" / f"metadata_{number}.parquet").to_pylist()
    vectors = np.load(folder / "img_emb" / f"img_emb_{number}.npy", mmap_mode="r")
    errors_path = folder / "errors" / f"errors_{number}.parquet"
    errors = pq.read_table(errors_path).to_pylist() if errors_path.exists() else []
    if len(vectors) != len(meta):
        raise ConfigError(
            f"shard {number} in {folder} is inconsistent: {len(vectors)} embeddings for "
            f"{len(meta)} metadata rows",
            hint="Delete its three files and run `clipsearch spark embed` again: it redoes "
            "only missing shards.",
        )
    return Shard(number, vectors, meta, errors)


def iter_shards(folder: Path) -> Iterator[Shard]:
    for number in finished_shards(folder):
        yield read_shard(folder, number)
