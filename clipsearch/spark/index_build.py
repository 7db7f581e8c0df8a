"""`clipsearch spark index`: an IVF index over embedding shards, built on Spark.

1. The driver trains the IVF (the library's kind: inner product, 8-bit codes whose hits
   searches re-rank with the exact vectors, lists about sqrt(N)) on a **random** sample of
   all shards' rows (autofaiss takes the first vectors in file order, which is biased when
   the shards follow folders). When 8-bit codes would not fit in --max-memory, the IVF keeps
   product-quantised codes instead (PQ: as many bytes per vector as fit, 8 to 128), and
   every search of it re-ranks 10, 30 or 100 candidates per result (the smallest depth that
   reaches --recall) with the exact vectors (the shards here, the library's store after
   import).
2. Spark adds the shards in parallel: each task fills a copy of the trained, empty index
   with one shard and writes it as a part file.
3. The driver merges the parts (memory: the index and one part), then measures recall@10
   against exact search for held-out queries (rows not in the training sample), choosing
   the smallest nprobe that reaches --recall (after re-ranking, for PQ), and records it.

The ids in the index are row numbers across the shards (shard offsets in index.json);
`clipsearch import EMB_DIR --index INDEX_DIR` maps them to the library's image ids and
adopts the index, so the library need not train or fill one itself.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch.errors import ConfigError
from clipsearch.spark import shards as sh

notice = logging.getLogger("clipsearch.notice")

INDEX_FILE = "index.faiss"
INDEX_FACTS = "index.json"
INDEX_LAYOUT = "clipsearch-ivf/1"
QUERIES = 1_000  # held-out queries for recall@10


@dataclass
class IndexSummary:
    output: str
    vectors: int = 0
    dim: int = 0
    nlist: int = 0
    nprobe: int = 0
    recall_at_10: float = 0.0
    recall_target: float = 0.95
    queries: int = 0
    bytes_per_vector: float = 0.0
    index_bytes: int = 0
    train_seconds: float = 0.0
    add_seconds: float = 0.0
    merge_seconds: float = 0.0
    recall_seconds: float = 0.0
    seconds: float = 0.0
    peak_task_rss_mb: float = 0.0
    pq_bytes: int = 0  # bytes per code of a PQ index; 0: 8-bit codes (one per dimension)
    rerank: int = 0  # the re-ranking depth of its searches (candidates per result)
    shards: list[list[int]] = field(default_factory=list)  # [number, rows, offset]

    def to_dict(self) -> dict:
        return asdict(self)


def parse_memory(text: str | None) -> int | None:
    """'4GB', '512M', '2g' -> bytes; None stays None."""
    if text is None:
        return None
    units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    raw = text.strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = raw.rstrip("kmgt"), raw[len(raw.rstrip("kmgt")) :]
    try:
        return int(float(number) * units[unit])
    except (ValueError, KeyError):
        raise ConfigError(f"--max-memory: cannot read {text!r} (e.g. 4GB, 512MB)") from None


def shard_layout(folder: Path) -> list[list[int]]:
    """[number, rows, offset] of every finished shard (rows from the .npy headers)."""
    out, offset = [], 0
    for number in sh.finished_shards(folder):
        rows = int(np.load(folder / "img_emb" / f"img_emb_{number}.npy", mmap_mode="r").shape[0])
        out.append([number, rows, offset])
        offset += rows
    return out


def _rows(folder: Path, layout: list[list[int]], wanted: np.ndarray) -> np.ndarray:
    """The vectors of global rows `wanted` (sorted), read from the shards' memory maps."""
    parts = []
    for number, rows, offset in layout:
        lo, hi = np.searchsorted(wanted, [offset, offset + rows])
        if hi > lo:
            emb = np.load(folder / "img_emb" / f"img_emb_{number}.npy", mmap_mode="r")
            parts.append(np.asarray(emb[wanted[lo:hi] - offset], dtype=np.float32))
    return np.concatenate(parts) if parts else np.empty((0, 0), np.float32)


def _vectors_of(folder: Path, layout: list[list[int]], ids: np.ndarray) -> np.ndarray:
    """Exact vectors of global rows `ids`, in the order given (re-ranking PQ candidates)."""
    ids = np.asarray(ids, np.int64)
    order = np.argsort(ids, kind="stable")
    found = _rows(folder, layout, ids[order])
    out = np.empty_like(found)
    out[order] = found
    return out


def _chunks(folder: Path, layout: list[list[int]]) -> Callable[[], Iterator]:
    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for number, rows, offset in layout:
            emb = np.load(folder / "img_emb" / f"img_emb_{number}.npy", mmap_mode="r")
            for start in range(0, rows, 100_000):
                stop = min(rows, start + 100_000)
                ids = np.arange(offset + start, offset + stop, dtype=np.int64)
                yield ids, np.asarray(emb[start:stop], dtype=np.float32)

    return chunks


def build(
    emb_dir: str | Path,
    output: str | Path,
    *,
    master: str = "local[*]",
    max_memory: str | None = None,
    recall: float = 0.95,
    spark: Any = None,
    seed: int = 1234,
) -> IndexSummary:
    from clipsearch.spark.job import _context, spark_session, stop_soon
    from clipsearch.store.faiss_index import (
        SQ8_RERANK,
        nlist_for,
        pq_subquantizers,
        trained_ivf,
        trained_ivfpq,
        tune_compressed,
        tune_nprobe,
    )

    t0 = time.perf_counter()
    folder = Path(emb_dir).expanduser().resolve()
    out = Path(output).expanduser().resolve()
    manifest = sh.Manifest.read(folder)
    if not 0 < recall <= 1:
        raise ConfigError("--recall must be between 0 and 1")
    layout = shard_layout(folder)
    n = sum(rows for _, rows, _ in layout)
    dim = manifest.dim
    if n < 1_000:
        raise ConfigError(
            f"{folder} holds {n} embeddings: an approximate index pays off from thousands",
            hint="Import the shards without --index: the library searches them exactly.",
        )
    nlist = min(nlist_for(n), n // 39)
    need = int(n * (dim + 8) * 1.1 + nlist * dim * 4)  # 8-bit codes, ids, centroids
    budget = parse_memory(max_memory)
    pq = None  # bytes per vector of a PQ index, when 8-bit codes do not fit
    if budget is not None and need > budget:
        room = (budget - nlist * dim * 4 - 256 * dim * 4) / (n * 1.1)
        pq = pq_subquantizers(dim, room)
        if pq is None:
            raise ConfigError(
                f"an index of {n} {dim}-d vectors needs at least "
                f"{(n * 16 * 1.1 + nlist * dim * 4) / 2**30:.1f} GB in memory even compressed "
                f"to 8 bytes per vector, over --max-memory {max_memory}",
                hint="Raise --max-memory, or use a machine with more memory for this step.",
            )
        notice.info(
            "8-bit codes would need %.1f GB: building a smaller index (PQ, %d bytes "
            "per vector) whose candidates are re-ranked with the exact vectors",
            need / 2**30,
            pq,
        )
    summary = IndexSummary(str(out), vectors=n, dim=dim, nlist=nlist, recall_target=recall)
    summary.shards = layout
    summary.pq_bytes = pq or 0
    rng = np.random.default_rng(seed)
    size = min(n, max(40 * nlist, 256 * 40 if pq else 0))  # PQ codebooks want 40 per code
    picked = np.sort(rng.choice(n, size=size, replace=False))
    notice.info("training the IVF (%d lists) on %d random rows ...", nlist, len(picked))
    t1 = time.perf_counter()
    sample = _rows(folder, layout, picked)
    if pq:
        trained = trained_ivfpq(dim, nlist, pq, sample, seed=seed)
    else:
        trained = trained_ivf(dim, nlist, sample[: 40 * nlist], seed=seed)  # 8-bit codes
    del sample
    summary.train_seconds = round(time.perf_counter() - t1, 3)

    import faiss

    out.mkdir(parents=True, exist_ok=True)
    parts = out / "parts"
    parts.mkdir(exist_ok=True)
    empty = faiss.serialize_index(trained).tobytes()
    tasks = [(str(folder), number, offset, str(parts)) for number, _, offset in layout]
    own = spark is None
    spark = spark or spark_session(master, out / "logs" / "spark.log", own=True)
    t1 = time.perf_counter()
    try:
        sc = _context(spark)
        shared = sc.broadcast(empty)
        done = (
            sc.parallelize(tasks, numSlices=len(tasks))
            .map(lambda t: _fill_part(shared.value, *t))
            .collect()
        )
    finally:
        if own:
            stop_soon(_context(spark))
    summary.add_seconds = round(time.perf_counter() - t1, 3)
    summary.peak_task_rss_mb = max(d["peak_rss_mb"] for d in done)

    t1 = time.perf_counter()
    index = trained
    for d in sorted(done, key=lambda d: d["shard"]):
        part = faiss.read_index(d["path"])
        index.merge_from(part, 0)
        del part
    if index.ntotal != n:
        raise ConfigError(f"merged {index.ntotal} vectors, expected {n}: a part is missing")
    summary.merge_seconds = round(time.perf_counter() - t1, 3)

    t1 = time.perf_counter()
    held_out = np.setdiff1d(np.arange(n), picked, assume_unique=True)
    if len(held_out) < 10:
        held_out = np.arange(n)
    queries = np.sort(rng.choice(held_out, size=min(QUERIES, len(held_out)), replace=False))
    q_vecs = _rows(folder, layout, queries)
    tuning = (index, queries, q_vecs, _chunks(folder, layout), recall)

    def exact(ids: np.ndarray) -> np.ndarray:
        return _vectors_of(folder, layout, ids)

    if pq:
        nprobe, got, summary.rerank = tune_compressed(*tuning, exact)
    else:  # 8-bit codes: searched as the library searches them, hits re-ranked exactly
        nprobe, got = tune_nprobe(*tuning, exact, SQ8_RERANK)
        summary.rerank = SQ8_RERANK
    index.nprobe = nprobe
    summary.nprobe, summary.recall_at_10 = nprobe, round(got, 4)
    summary.queries = len(queries)
    summary.recall_seconds = round(time.perf_counter() - t1, 3)

    path = out / INDEX_FILE
    sh.atomic_write_with(path, lambda tmp: faiss.write_index(index, tmp))
    for d in done:
        Path(d["path"]).unlink(missing_ok=True)
    parts.rmdir()
    summary.index_bytes = path.stat().st_size
    summary.bytes_per_vector = round(summary.index_bytes / n, 1)
    summary.seconds = round(time.perf_counter() - t0, 3)
    facts = {
        "layout": INDEX_LAYOUT,
        "compressed": True,  # 8-bit or PQ codes: searches re-rank with the stored vectors
        "rerank": summary.rerank or None,
        "model": manifest.model,
        "model_fingerprint": manifest.model_fingerprint,
        "precision": manifest.precision,
        "embeddings": str(folder),
        **summary.to_dict(),
    }
    sh.atomic_write(out / INDEX_FACTS, json.dumps(facts, indent=2).encode())
    if got < recall:
        notice.warning(
            "recall@10 %.3f is under the target %.2f even scanning every list", got, recall
        )
    return summary


def _fill_part(empty: bytes, folder: str, number: int, offset: int, parts: str) -> dict:
    """A Spark task: the trained, empty index filled with one shard, written as a part."""
    import resource

    import faiss

    index = faiss.deserialize_index(np.frombuffer(empty, dtype=np.uint8))
    emb = np.load(Path(folder) / "img_emb" / f"img_emb_{number}.npy", mmap_mode="r")
    for start in range(0, len(emb), 50_000):
        vecs = np.asarray(emb[start : start + 50_000], dtype=np.float32)
        ids = np.arange(offset + start, offset + start + len(vecs), dtype=np.int64)
        index.add_with_ids(vecs, ids)
    path = Path(parts) / f"part_{number}.faiss"
    sh.atomic_write_with(path, lambda tmp: faiss.write_index(index, tmp))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"shard": number, "path": str(path), "vectors": int(index.ntotal), "peak_rss_mb": peak}


def read_facts(index_dir: Path) -> dict:
    try:
        facts = json.loads((index_dir / INDEX_FACTS).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{index_dir} is not an index made by `clipsearch spark index` ({exc})"
        ) from None
    if facts.get("layout") != INDEX_LAYOUT:
        raise ConfigError(f"{index_dir}: layout {facts.get('layout')!r}, not {INDEX_LAYOUT!r}")
    return facts
