"""`clipsearch import`: bring embedding shards (`clipsearch spark embed`) into a library.

No model work: rows, vectors, perceptual hashes and failures are committed as `index` would
have committed them, 2,000 images per transaction. Shards of another model (fingerprint),
precision or vector size than the library's are refused. Importing again changes nothing
for files the library already has with the same content; a file whose content changed is
replaced. Afterwards `clipsearch index FOLDER` finds the imported files unchanged (same size
and modification time) and only embeds what is new.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import numpy as np

from clipsearch.errors import ModelMismatch
from clipsearch.ingest.run import Progress
from clipsearch.spark import shards as sh
from clipsearch.store.store import Changes, FailureRow, NewImage

if TYPE_CHECKING:
    from clipsearch.library import Library

COMMIT_EVERY = 2_000


@dataclass
class ImportSummary:
    source: str
    shards: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    failures: int = 0
    seconds: float = 0.0
    index: dict | None = None  # the prebuilt index adopted (--index)

    def to_dict(self) -> dict:
        return asdict(self)


def adopt_model(lib: Library, manifest: sh.Manifest) -> None:
    """Make sure the library can hold these vectors: a library with vectors must have been
    made by the same weights, precision and vector size; an empty one takes them on."""
    meta = lib.store.all_meta()
    has_vectors = lib.store.vector_count() > 0
    if has_vectors:
        fingerprint = meta.get("model_fingerprint", "")
        problems = []
        if fingerprint and fingerprint != manifest.model_fingerprint:
            problems.append(f"model fingerprint {manifest.model_fingerprint} vs {fingerprint}")
        elif not fingerprint and lib.model != manifest.model:
            problems.append(f"model {manifest.model} vs {lib.model}")
        if meta.get("dim") and int(meta["dim"]) != manifest.dim:
            problems.append(f"{manifest.dim}-d vectors vs {meta['dim']}-d")
        if (meta.get("precision") or "fp32") != manifest.precision:
            problems.append(f"precision {manifest.precision} vs {meta.get('precision')}")
        if problems:
            raise ModelMismatch(
                f"the shards were made by {manifest.model} and cannot join the library "
                f"{lib.path} ({'; '.join(problems)}): vectors of two models are not mixed",
                hint="Import into a new library (--library NEW), or embed again with the "
                f"library's model: clipsearch spark embed ... --model {lib.model}",
            )
    elif lib.model != manifest.model or meta.get("model_fingerprint"):
        lib.vectors.reset({"model": manifest.model, "model_fingerprint": "", "dim": ""})
    lib.store.set_meta(
        {
            "model": manifest.model,
            "model_fingerprint": manifest.model_fingerprint,
            "dim": str(manifest.dim),
            "precision": manifest.precision,
        }
    )


def import_shards(
    lib: Library,
    folder: Path,
    *,
    index_dir: Path | None = None,
    progress: Callable[[Progress], None] | None = None,
    path_map: dict[str, str] | None = None,
) -> ImportSummary:
    """Stream every finished shard under `folder` into `lib` (the caller holds the lock);
    with `index_dir` (`clipsearch spark index`), adopt that index instead of the library's."""
    t0 = time.perf_counter()
    manifest = sh.Manifest.read(folder)
    facts = None
    if index_dir is not None:  # checked before anything is imported
        from clipsearch.spark.index_build import read_facts

        facts = read_facts(index_dir)
        if facts.get("model_fingerprint") != manifest.model_fingerprint:
            raise ModelMismatch(
                f"the index {index_dir} was built from other embeddings than {folder} "
                "(model fingerprints differ)",
                hint="Build it from these shards: clipsearch spark index EMB_DIR --output DIR",
            )
        _check_layout(folder, index_dir, facts)
    adopt_model(lib, manifest)
    numbers = sh.finished_shards(folder)
    summary = ImportSummary(str(folder), shards=len(numbers))
    changes = Changes()
    pending = 0
    # Into an empty library, or with a prebuilt index: commit rows and vectors only, then
    # build (or adopt) the index once, instead of growing one in memory along the way.
    bulk = facts is not None or lib.store.vector_count() == 0

    def commit() -> None:
        nonlocal changes, pending
        if pending:
            lib.vectors.apply(changes, mirror=not bulk)
        changes, pending = Changes(), 0

    for done, number in enumerate(numbers):
        shard = sh.read_shard(folder, number)
        paths = [local_path(r["path_bytes"], path_map) for r in shard.rows]
        known = lib.store.rows_at(
            paths + [local_path(e["path_bytes"], path_map) for e in shard.errors]
        )
        for start in range(0, len(paths), COMMIT_EVERY):
            stop = min(len(paths), start + COMMIT_EVERY)
            vectors = np.asarray(shard.vectors[start:stop], dtype=np.float32)
            batch = zip(paths[start:stop], shard.rows[start:stop], vectors, strict=True)
            for path, row, vec in batch:
                have = known.get(path)
                if (
                    have is not None
                    and have.has_vector
                    and have.content_hash == row["content_hash"]
                ):
                    summary.unchanged += 1
                    if (have.size, have.mtime_ns) != (row["size"], row["mtime_ns"]):
                        changes.touches.append((have.id, row["size"], row["mtime_ns"]))
                        pending += 1
                    continue
                new = _new_image(path, row, vec)
                if have is None:
                    changes.inserts.append(new)
                    summary.added += 1
                else:
                    changes.replaces.append((have.id, new))
                    summary.replaced += 1
                changes.cleared_failures.append(path)
                pending += 1
            if pending >= COMMIT_EVERY:
                commit()
        now = time.time()
        for err in shard.errors:
            path = local_path(err["path_bytes"], path_map)
            if path not in known:  # a file the library has keeps its vector
                changes.failures.append(
                    FailureRow(path, err["size"], err["mtime_ns"], err["error"], now)
                )
                summary.failures += 1
                pending += 1
        commit()
        if progress:
            progress(Progress("import", done + 1, len(numbers)))
    commit()
    if summary.added or summary.replaced:  # pictures no OCR has read: the next index reads them
        lib.store.set_meta({"ocr_complete": ""})
    if facts is not None and index_dir is not None:
        summary.index = adopt_index(lib, folder, index_dir, facts, path_map)
    elif bulk:
        lib.vectors.rebuild()
    else:
        lib.vectors.save()
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def _check_layout(folder: Path, index_dir: Path, facts: dict) -> list[list[int]]:
    from clipsearch.errors import ConfigError
    from clipsearch.spark.index_build import shard_layout

    layout = shard_layout(folder)
    if [list(x) for x in facts.get("shards", [])] != layout:
        raise ConfigError(
            f"the index {index_dir} was built from other shards than {folder} holds now",
            hint="Build it again: clipsearch spark index EMB_DIR --output DIR",
        )
    return layout


def adopt_index(
    lib: Library, folder: Path, index_dir: Path, facts: dict, path_map: dict | None = None
) -> dict:
    """Make the prebuilt index the library's: its row numbers become image ids; vectors the
    library has besides (from before the import) are added. Returns what was adopted."""
    import pyarrow.parquet as pq

    from clipsearch.spark.index_build import INDEX_FILE
    from clipsearch.store.faiss_index import RERANK, RERANK_META, VectorIndex

    layout = _check_layout(folder, index_dir, facts)
    n = sum(rows for _, rows, _ in layout)
    new_ids = np.full(n, -1, np.int64)
    for number, _, offset in layout:
        table = pq.read_table(
            folder / "metadata" / f"metadata_{number}.parquet", columns=["path_bytes"]
        )
        paths = [local_path(b, path_map) for b in table.column("path_bytes").to_pylist()]
        found = lib.store.rows_at(paths)
        for i, path in enumerate(paths):
            row = found.get(path)
            if row is not None and row.has_vector:
                new_ids[offset + i] = row.id
    import faiss

    index = VectorIndex(faiss.read_index(str(index_dir / INDEX_FILE)))
    kept = index.renumber(new_ids)
    others = np.setdiff1d(lib.store.vector_ids(), new_ids[new_ids >= 0])
    if len(others):  # the library's own pictures from before the import
        ids, vecs = lib.store.get_vectors(others, index.dim)
        index.add(ids, vecs)
    lib.vectors.adopt(index)
    if index.compressed:  # how deep its searches re-rank, as `spark index` measured
        lib.store.set_meta({RERANK_META: str(int(facts.get("rerank") or RERANK))})
    return {
        "kind": index.kind,
        "vectors": index.ntotal,
        "from_index": kept,
        "added": len(others),
        "nprobe": index.nprobe,
        "recall_at_10": facts.get("recall_at_10"),
        "compressed": index.compressed,
        "rerank": facts.get("rerank"),
    }


def local_path(raw: bytes, path_map: dict[str, str] | None) -> str:
    """Where a shard's file is here: a local path as it is; a file: URI as its path; another
    URI through the longest `path_map` prefix that fits (else kept: searches leave it out
    until a file is there)."""
    path = os.fsdecode(raw)
    for prefix, local in sorted((path_map or {}).items(), key=lambda kv: -len(kv[0])):
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return local.rstrip("/") + path[len(prefix.rstrip("/")) :]
    if path.startswith("file:"):
        rest = path[len("file:") :]
        if rest.startswith("//"):  # file:///x or file://localhost/x
            rest = "/" + rest[2:].split("/", 1)[-1] if not rest.startswith("///") else rest[2:]
        return unquote(rest) if "%" in rest else rest
    return path


def _new_image(path: str, row: dict[str, Any], vector: np.ndarray) -> NewImage:
    hashes = tuple(row[c] for c in ("phash", "dhash", "phash_mirror", "dhash_mirror"))
    return NewImage(
        path=path,
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        content_hash=row["content_hash"],
        vector=vector,
        width=row["width"],
        height=row["height"],
        format=row["format"],
        taken_at=row["taken_at"],
        hashes=None if any(h is None for h in hashes) else hashes,  # type: ignore[arg-type]
    )
