"""The FAISS index: vectors by database id, exact or approximate, saved atomically.

The index is a cache of the store. Its file is named after the last `vector_log` sequence
number it contains (`vectors-000000000042.faiss`), written to a temporary file, fsynced and
renamed, so a reader always finds a complete file and knows which log entries to replay.

Small libraries use an exact inner-product index. Past `APPROX_THRESHOLD` vectors the library
builds an IVF index over 8-bit codes (one byte per dimension, half of the float16 vectors the
database stores; deletions still work) whose `nprobe` is tuned at build time, on a sample of
the library's own vectors, to reach a recall@10 target against exact search. The codes' scores
are close but not exact, so searches ask for SQ8_RERANK x k candidates and re-rank them with
the stored vectors: results and scores are those of the stored vectors, at half the index's
disk and memory. Index files written before (float16 codes, exact scores) are read as they are.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

APPROX_THRESHOLD = 200_000  # vectors; below this exact search is fast enough
RECALL_TARGET = 0.97  # tuned on a sample; the benchmark checks >= 0.95 on fresh queries
_FILE_RE = re.compile(r"^vectors-(\d{12})\.faiss$")


def _faiss():
    import faiss

    return faiss


@dataclass
class SearchHits:
    """Results of one query: ids and cosine scores, best first."""

    ids: np.ndarray
    scores: np.ndarray


class VectorIndex:
    """FAISS index keyed by image id, with the log position it reflects (`seq`)."""

    def __init__(self, index, *, seq: int = 0, mapped: bool = False) -> None:
        self._index = index
        self.seq = seq
        self._view: tuple[np.ndarray, np.ndarray] | None = None  # flat: (vectors, ids)
        self._max_id: int | None = None  # the largest id in the index (None: not known yet)
        self._codes: str | None = None  # how it keeps vectors (known once asked)
        # An IVF index read memory-mapped: its lists are the file's pages, read-only.
        self._mapped = mapped

    # --- construction -------------------------------------------------------------------
    @classmethod
    def empty(cls, dim: int) -> VectorIndex:
        faiss = _faiss()
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    @classmethod
    def build(
        cls,
        dim: int,
        ids: np.ndarray,
        vectors: np.ndarray,
        *,
        approximate: bool | None = None,
        seed: int = 1234,
    ) -> VectorIndex:
        """An index over `vectors`; approximate when there are many (or when asked)."""
        n = len(ids)
        if approximate is None:
            approximate = n >= APPROX_THRESHOLD
        if approximate and n >= 1_000:
            rng = np.random.default_rng(seed)
            pick = np.sort(rng.choice(n, size=min(n, 40 * nlist_for(n)), replace=False))

            def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
                for start in range(0, n, 200_000):
                    yield ids[start : start + 200_000], vectors[start : start + 200_000]

            order = np.argsort(ids, kind="stable")  # once, for every lookup while tuning

            def vectors_of(wanted: np.ndarray) -> np.ndarray:
                at = order[np.searchsorted(ids, wanted, sorter=order)]
                return np.asarray(vectors[at], dtype=np.float32)

            sample = (ids[pick], vectors[pick])
            ivf = build_ivf(dim, n, sample, chunks, vectors_of=vectors_of, seed=seed)
            if ivf is not None:
                return ivf
        index = cls.empty(dim)
        index.add(ids, vectors)
        return index

    # --- properties ---------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def kind(self) -> str:
        return "ivf" if hasattr(self._index, "nprobe") else "flat"

    @property
    def nprobe(self) -> int | None:
        return int(self._index.nprobe) if self.kind == "ivf" else None

    @property
    def codes(self) -> str:
        """How the index keeps vectors: "float32" (exact), "float16", "8-bit" (the library's
        IVF) or "pq" (product-quantised: `spark index --max-memory`)."""
        if self._codes is None:
            self._codes = "float32" if self.kind == "flat" else ivf_codes(self._index)
        return self._codes

    @property
    def compressed(self) -> bool:
        """True when the index's scores are approximate (8-bit or PQ codes): searches re-rank
        its candidates with the stored vectors."""
        return self.codes in ("8-bit", "pq")

    def rerank_depth(self, adopted: str | int | None = None) -> int:
        """Candidates per result a search re-ranks: 1 for exact scores, SQ8_RERANK for
        8-bit codes, and for PQ the depth `spark index` measured (`adopted`, library meta)."""
        codes = self.codes
        if codes == "8-bit":
            return SQ8_RERANK
        if codes == "pq":
            return int(adopted or RERANK)
        return 1

    @property
    def score_margin(self) -> float:
        """How far under a threshold the codes' scores may put a pair that is above it with
        the stored vectors (candidate pairs are then scored again exactly)."""
        return {"8-bit": SQ8_MARGIN, "pq": PQ_MARGIN}.get(self.codes, 0.0)

    def ids(self) -> np.ndarray:
        """Every id in the index (a copy)."""
        faiss = _faiss()
        if self.kind == "flat":
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        invlists = self._index.invlists
        out = []
        for lst in range(self._index.nlist):
            size = invlists.list_size(lst)
            if size:
                ptr = invlists.get_ids(lst)
                out.append(faiss.rev_swig_ptr(ptr, size).copy())
        return np.concatenate(out).astype(np.int64) if out else np.empty(0, np.int64)

    # --- changes ------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; the caller guarantees the ids are not in the index."""
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vector size {vectors.shape[1]} != index size {self.dim}")
        self._view = None
        self._in_memory()
        if self._max_id is not None:
            self._max_id = max(self._max_id, int(np.max(ids)))
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Remove ids (absent ones are ignored); returns how many were removed.

        Removing scans the whole index (and a flat index rebuilds its id map), so ids above
        the largest one in the index, new images, are dropped first: replaying a batch of
        additions costs no scan."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) and self.ntotal:
            if self._max_id is None:
                found = self.ids()
                self._max_id = int(found.max()) if len(found) else -1
            ids = ids[ids <= self._max_id]  # new images (most of a replay) cannot be here
        if len(ids) == 0 or self.ntotal == 0:
            return 0
        faiss = _faiss()
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        self._view = None
        self._in_memory()
        return int(self._index.remove_ids(sel))

    def reserve(self, fraction: float) -> None:
        """Make room now for `fraction` more vectors (every list of an IVF index).

        A loaded index's lists are exactly full: the first additions after loading would
        reallocate (copy) every list they touch, at a million vectors a ~0.2 s stall and
        +30% memory on the first search after a commit. A long-lived process pays it once,
        up front. A flat index gets the same room in its one array (at 100,000 vectors its
        first addition after loading took 0.6 s, then 0.3 ms)."""
        if fraction <= 0 or self.ntotal == 0:
            return
        self._in_memory()
        faiss = _faiss()
        if self._max_id is None:  # known now, so the first replay after a commit does not
            found = self.ids()  # scan every list for it (~50 ms at a million)
            self._max_id = int(found.max()) if len(found) else -1
        if self.kind == "flat":
            self._view = None  # the storage moves
            inner = faiss.downcast_index(self._index.index)
            for vec in (inner.codes, self._index.id_map):
                if hasattr(vec, "resize") and hasattr(vec, "size"):
                    size = vec.size()
                    vec.resize(size + max(1024, int(size * fraction)))
                    vec.resize(size)  # the capacity stays
            return
        lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(self._index).invlists)
        if not hasattr(lists, "resize"):
            return
        code_size = int(lists.code_size)
        for number in range(lists.nlist):
            size = lists.list_size(number)
            room = size + max(16, int(size * fraction))
            lists.resize(number, room)
            lists.resize(number, size)  # the capacity stays
            if size:  # the room was zero-filled: give its pages back until codes fill them
                codes = faiss.rev_swig_ptr(lists.get_codes(number), room * code_size)
                _drop_pages(codes.ctypes.data + size * code_size, (room - size) * code_size)

    def renumber(self, new_ids: np.ndarray) -> int:
        """Give every vector with id i the id new_ids[i]; those mapped to -1 are dropped.
        Returns the vectors kept. (An index built apart, keyed by row numbers, adopted by a
        library keyed by image ids.)"""
        faiss = _faiss()
        self._in_memory()
        self._view = None
        self._max_id = None
        gone = np.flatnonzero(new_ids < 0)
        if len(gone):
            self._index.remove_ids(faiss.IDSelectorBatch(gone.astype(np.int64)))
        if self.kind == "flat":
            id_map = faiss.vector_to_array(self._index.id_map)
            faiss.copy_array_to_vector(new_ids[id_map].astype(np.int64), self._index.id_map)
            self._index.construct_rev_map()
            return self.ntotal
        ivf = faiss.extract_index_ivf(self._index)
        lists = ivf.invlists
        for number in range(ivf.nlist):
            size = lists.list_size(number)
            if size:
                old = faiss.rev_swig_ptr(lists.get_ids(number), size)
                fresh = np.ascontiguousarray(new_ids[old], dtype=np.int64)
                codes = faiss.rev_swig_ptr(lists.get_codes(number), size * ivf.code_size).copy()
                lists.update_entries(number, 0, size, faiss.swig_ptr(fresh), faiss.swig_ptr(codes))
        return self.ntotal

    @property
    def mapped(self) -> bool:
        """Whether the lists are the index file's pages (memory-mapped, read-only)."""
        return self._mapped

    def _in_memory(self) -> None:
        """Before a change: a memory-mapped index's lists are copied into memory (FAISS
        cannot change mapped lists; the file itself is never written in place)."""
        if not self._mapped:
            return
        faiss = _faiss()
        ivf = faiss.extract_index_ivf(self._index)
        mapped = ivf.invlists
        lists = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
        for number in range(ivf.nlist):
            size = mapped.list_size(number)
            if size:
                lists.add_entries(number, size, mapped.get_ids(number), mapped.get_codes(number))
        ivf.replace_invlists(lists, True)
        lists.this.disown()  # the index owns it now
        self._mapped = False

    # --- search -------------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> list[SearchHits]:
        """Top-`k` by inner product (cosine for unit vectors), optionally among `allowed`."""
        faiss = _faiss()
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, self.ntotal if allowed is None else min(self.ntotal, len(allowed)))
        if k <= 0:
            return [SearchHits(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in queries]
        if allowed is None and self.kind == "flat" and len(queries) <= 8:
            return self._flat_search(queries, k)
        params = None
        if self.kind == "ivf":  # one query: its lists scanned by every core (filtered searches
            self._index.parallel_mode = 1 if len(queries) == 1 else 0  # scan them all)
        if allowed is not None:
            sel, _keep = _selector(allowed)
            if self.kind == "ivf":
                # A filter can leave the probed lists empty: scan every list (still skipping
                # everything outside the filter), which keeps filtered results exact.
                params = faiss.SearchParametersIVF(sel=sel, nprobe=int(self._index.nlist))
            else:
                params = faiss.SearchParameters(sel=sel)
        scores, ids = self._index.search(queries, k, params=params)
        out = []
        for row_s, row_i in zip(scores, ids, strict=True):
            keep = row_i >= 0
            out.append(SearchHits(row_i[keep].astype(np.int64), row_s[keep]))
        return out

    def range_search(
        self, queries: np.ndarray, radius: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every vector with inner product above `radius` for each query (an IVF probes its
        tuned `nprobe` lists): (query row, image id, score) arrays."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        lims, scores, ids = self._index.range_search(queries, float(radius))
        rows = np.repeat(np.arange(len(queries)), np.diff(lims).astype(np.int64))
        return rows, ids.astype(np.int64), scores

    def similar_pairs(self, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pair of vectors in this IVF index whose inner product is at least
        `threshold`, as a range search of every vector with the tuned nprobe would find them
        (each vector probing its nprobe nearest lists): (a, b, score) arrays with a < b.

        One matrix product per list instead of a range search per vector: the vectors that
        probe a list against the list's vectors, at BLAS speed (~10x FAISS's scan of float16
        codes). With nprobe 1 a vector probes its own list, so each list is joined with
        itself; otherwise the vectors are gathered once into a float16 matrix (memory: the
        index's size again).
        """
        faiss = _faiss()
        ivf = faiss.extract_index_ivf(self._index)
        lists, d = ivf.invlists, ivf.d
        nprobe = max(1, min(int(ivf.nprobe), int(ivf.nlist)))
        sizes = np.array([lists.list_size(m) for m in range(ivf.nlist)], np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)])

        kind = ivf_codes(ivf)
        ivf = faiss.downcast_index(ivf)  # its quantiser decodes codes

        def members(m: int) -> tuple[np.ndarray, np.ndarray]:
            n = int(sizes[m])
            ids = faiss.rev_swig_ptr(lists.get_ids(m), n).astype(np.int64)
            codes = faiss.rev_swig_ptr(lists.get_codes(m), n * ivf.code_size)
            if kind == "float16":
                return ids, np.frombuffer(codes, dtype="<f2").reshape(n, d)
            codes = np.frombuffer(codes, np.uint8).reshape(n, ivf.code_size)
            if kind == "8-bit":  # decoded (approximate; the caller's margin allows for it)
                return ids, ivf.sq.decode(codes).astype(np.float16)
            vecs = ivf.pq.decode(codes)  # product-quantised: the list's centroid added back
            if ivf.by_residual:
                vecs += ivf.quantizer.reconstruct(m)
            return ids, vecs.astype(np.float16)

        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

        def join(q_ids: np.ndarray, q: np.ndarray, v_ids: np.ndarray, v: np.ndarray) -> None:
            vt = np.ascontiguousarray(v.astype(np.float32).T)
            for start in range(0, len(q), 2048):
                scores = q[start : start + 2048].astype(np.float32) @ vt
                r, c = np.nonzero(scores >= threshold)
                a, b = q_ids[start + r], v_ids[c]
                keep = a != b
                found.append((np.minimum(a, b)[keep], np.maximum(a, b)[keep], scores[r, c][keep]))

        if nprobe == 1:
            for m in range(ivf.nlist):
                if sizes[m]:
                    ids, vecs = members(m)
                    join(ids, vecs, ids, vecs)
        else:
            all_ids = np.empty(int(starts[-1]), np.int64)
            matrix = np.empty((int(starts[-1]), d), np.float16)
            probes = np.empty((int(starts[-1]), nprobe), np.int64)
            for m in range(ivf.nlist):
                if sizes[m]:
                    ids, vecs = members(m)
                    lo, hi = starts[m], starts[m + 1]
                    all_ids[lo:hi], matrix[lo:hi] = ids, vecs
                    _, probes[lo:hi] = ivf.quantizer.search(vecs.astype(np.float32), nprobe)
            flat = probes.ravel()
            order = np.argsort(flat, kind="stable")
            rows = order // nprobe  # the vectors that probe each list, grouped by list
            bounds = np.searchsorted(flat[order], np.arange(ivf.nlist + 1))
            for m in range(ivf.nlist):
                if sizes[m] and bounds[m + 1] > bounds[m]:
                    q_rows = rows[bounds[m] : bounds[m + 1]]
                    lo, hi = starts[m], starts[m + 1]
                    join(all_ids[q_rows], matrix[q_rows], all_ids[lo:hi], matrix[lo:hi])
        if not found:
            empty = np.empty(0, np.int64)
            return empty, empty, np.empty(0, np.float32)
        a, b, scores = (np.concatenate(x) for x in zip(*found, strict=True))
        order = np.lexsort((-scores, b, a))  # each pair once (found from both sides)
        a, b, scores = a[order], b[order], scores[order]
        first = np.ones(len(a), bool)
        first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        return a[first], b[first], scores[first]

    def _flat_search(self, queries: np.ndarray, k: int) -> list[SearchHits]:
        """Exact search for a few queries with BLAS over FAISS's own vector storage.

        FAISS scans a flat index single-threaded below 20 queries; a matrix-vector product
        over the same memory (a zero-copy view) uses every core. Same results.
        """
        vectors, ids = self._flat_arrays()
        out = []
        for q in queries:
            scores = vectors @ q
            top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
            top = top[np.argsort(-scores[top], kind="stable")]
            out.append(SearchHits(ids[top], scores[top].astype(np.float32)))
        return out

    def _flat_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._view is None:
            faiss = _faiss()
            inner = faiss.downcast_index(self._index.index)
            n, d = self.ntotal, self.dim
            vectors = faiss.rev_swig_ptr(inner.get_xb(), n * d).reshape(n, d)
            _huge_pages(vectors)
            self._view = (vectors, faiss.vector_to_array(self._index.id_map).astype(np.int64))
        return self._view

    # --- files --------------------------------------------------------------------------
    def save(self, folder: Path, seq: int) -> Path:
        """Write atomically as `vectors-<seq>.faiss`, then delete older files."""
        faiss = _faiss()
        self._in_memory()  # a mapped index would be written as a reference to its file
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"vectors-{seq:012d}.faiss"
        tmp = folder / f".{final.name}.{os.getpid()}.tmp"
        try:
            faiss.write_index(self._index, str(tmp))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _fsync_dir(folder)
        except (RuntimeError, OSError) as exc:  # FAISS says "write error" on a full disk
            raise _write_error(folder, exc) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self.seq = seq
        for other in index_files(folder):
            if other != final:
                with contextlib.suppress(OSError):
                    other.unlink()
        return final

    @classmethod
    def load_latest(cls, folder: Path, *, mapped: bool = False) -> VectorIndex | None:
        """The newest readable index file in `folder`, or None (damaged files are skipped).

        `mapped`: an IVF index's lists are memory-mapped instead of read (a one-off search
        touches only the lists it probes: a 1 GB file opens in a millisecond); the first
        change copies them into memory. Files are replaced, never written in place, so the
        mapping stays valid; a flat index is always read (exact search reads all of it)."""
        faiss = _faiss()
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mapped else 0
        for path in sorted(index_files(folder), reverse=True):
            try:
                index = faiss.read_index(str(path), flags)
            except RuntimeError as exc:
                log.warning("ignoring damaged index file %s: %s", path, str(exc).splitlines()[0])
                continue
            seq = int(_FILE_RE.match(path.name).group(1))  # type: ignore[union-attr]
            ivf = faiss.try_extract_index_ivf(index)
            lists = None if ivf is None else faiss.downcast_InvertedLists(ivf.invlists)
            is_mapped = isinstance(lists, faiss.OnDiskInvertedLists)
            if is_mapped:
                # FAISS would start threads to read ahead the lists of every search (32 by
                # default): for files in the page cache that doubles a filtered search's time.
                lists.prefetch_nthread = 0
            return cls(index, seq=seq, mapped=is_mapped)
        return None


def steady_memory() -> None:
    """For a long-lived process (serve, watch): freed large blocks go back to the system.

    glibc raises its mmap threshold after the first large free, so the index's reallocated
    lists then come from the heap, and what they free stays in the process: a server's memory
    would climb with every commit. A fixed threshold keeps each large block its own mapping.
    Best effort; glibc only."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _selector(allowed: np.ndarray) -> tuple[object, np.ndarray]:
    """A FAISS id selector for `allowed` ids, and the array it points into (keep it alive
    while the selector is in use): a bitmap over the id range (one bit test per scanned
    vector) unless the ids are too sparse for one, else a hashed batch."""
    faiss = _faiss()
    allowed = np.ascontiguousarray(allowed, dtype=np.int64)
    top = int(allowed.max()) + 1 if len(allowed) else 1
    if top <= max(1 << 20, 64 * len(allowed)) and int(allowed.min(initial=0)) >= 0:
        mask = np.zeros(top, bool)
        mask[allowed] = True
        bits = np.packbits(mask, bitorder="little")
        return faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)), bits  # n: bytes
    return faiss.IDSelectorBatch(allowed), allowed


def _drop_pages(address: int, length: int) -> None:
    """Give back the whole pages of [address, address + length), a buffer's unused capacity
    that holds zeros (MADV_DONTNEED: they read as zeros again, and are written before they
    are read). Room kept in a server's lists costs address space, not memory: at a million
    512-d vectors 10% room was ~50 MB resident. Best effort; Linux only."""
    if length <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        start = (address + page - 1) & ~(page - 1)
        end = (address + length) & ~(page - 1)
        if end > start:
            madvise = _madvise()
            madvise(start, end - start, 4)  # MADV_DONTNEED
    except (OSError, AttributeError, ValueError):
        pass


@functools.cache
def _madvise():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc.madvise


def _huge_pages(array: np.ndarray) -> None:
    """Back a large array with transparent huge pages where Linux allows it (best effort).

    NumPy asks for huge pages for its own large arrays; FAISS's storage does not get them, and
    a scan over it then runs ~20% slower (TLB misses). MADV_HUGEPAGE covers later growth;
    MADV_COLLAPSE (Linux 6.1+) converts the pages already in place, which takes seconds for
    gigabytes: it runs in a background thread, so the first query does not wait for it.
    Errors are ignored.
    """
    if array.nbytes < 1 << 22 or not sys.platform.startswith("linux"):
        return
    try:
        madvise = _madvise()
        page = os.sysconf("SC_PAGE_SIZE")
        start = (array.ctypes.data + page - 1) & ~(page - 1)
        end = (array.ctypes.data + array.nbytes) & ~(page - 1)
        madvise(start, end - start, 14)  # MADV_HUGEPAGE
        threading.Thread(
            target=madvise,
            args=(start, end - start, 25),
            daemon=True,  # MADV_COLLAPSE
        ).start()
    except (OSError, AttributeError, ValueError):
        pass


def _write_error(folder: Path, exc: BaseException) -> Exception:
    import errno
    import shutil

    from clipsearch.errors import DiskFull, LibraryError

    cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    try:
        full = shutil.disk_usage(folder).free < (64 << 20)
    except OSError:
        full = False
    if full or getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(
            f"cannot write the search index in {folder}: the disk is full ({cause[:200]})",
            hint="Nothing was lost: the database holds every vector, and the index file is "
            f"rebuilt from it. Free some space on the disk holding {folder} (see `df -h "
            f"{folder}`), then run the command again.",
        )
    return LibraryError(
        f"cannot write the search index in {folder} ({cause[:200]})",
        hint="Nothing was lost: the database holds every vector and the index is rebuilt from "
        "it. Check that the library folder is writable.",
    )


def index_files(folder: Path) -> list[Path]:
    """Index files in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _FILE_RE.match(p.name))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


Chunks = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]  # -> (ids, vectors), again


def search_reranked(
    index,
    queries: np.ndarray,
    k: int,
    vectors_of: Callable[[np.ndarray], np.ndarray] | None,
    depth: int = 10,
) -> np.ndarray:
    """The ids of each query's top `k`; re-ranked exactly from k x `depth` candidates when
    `vectors_of` is given (-1 pads)."""
    if vectors_of is None:
        return index.search(queries, k)[1]
    _, cand = index.search(queries, k * depth)
    out = np.full((len(queries), k), -1, np.int64)
    for row, (q, c) in enumerate(zip(queries, cand, strict=True)):
        c = c[c >= 0]
        if len(c):
            best, _ = rerank(c, vectors_of(c) @ q, k)
            out[row, : len(best)] = best
    return out


def nlist_for(n: int) -> int:
    """IVF lists for n vectors: about sqrt(n), 64 to 8192; training wants 40 per list."""
    return int(min(max(64, round(np.sqrt(n))), 8192))


def build_ivf(
    dim: int,
    n: int,
    sample: tuple[np.ndarray, np.ndarray],
    chunks: Chunks,
    *,
    vectors_of: Callable[[np.ndarray], np.ndarray] | None = None,
    codes: str = "8-bit",
    seed: int = 1234,
) -> VectorIndex | None:
    """IVF (inner product, 8-bit codes unless told) over `n` vectors that `chunks()` yields,
    trained on `sample` (ids, vectors: a random subset), with nprobe tuned on sample queries to
    reach RECALL_TARGET against exact search, searched as the library searches it (8-bit
    codes: SQ8_RERANK x k candidates re-ranked with `vectors_of`, ids -> stored vectors, which
    8-bit codes need). Memory: the index plus one chunk and the sample.

    Returns None when the data has no structure an IVF can use (the tuned nprobe would scan
    more than a quarter of the lists): exact search is then both faster and exact.
    """
    t0 = time.perf_counter()
    nlist = nlist_for(n)
    sample_ids, sample_vecs = sample
    if codes == "8-bit" and vectors_of is None:
        raise ValueError("an index of 8-bit codes is tuned with the stored vectors (vectors_of)")
    index = trained_ivf(dim, nlist, sample_vecs[: 40 * nlist], codes=codes, seed=seed)
    for ids, vecs in chunks():
        index.add_with_ids(
            np.ascontiguousarray(vecs, dtype=np.float32), np.ascontiguousarray(ids, np.int64)
        )
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(sample_ids), size=min(200, len(sample_ids)), replace=False)
    rerank_with = vectors_of if codes == "8-bit" else None
    index.nprobe, _ = tune_nprobe(
        index, sample_ids[picks], sample_vecs[picks], chunks, None, rerank_with, SQ8_RERANK
    )
    if index.nprobe > nlist // 4:
        log.info("IVF needs nprobe=%d of %d lists here: keeping exact search", index.nprobe, nlist)
        return None
    log.info(
        "built IVF index: %d vectors, nlist=%d, nprobe=%d in %.1fs",
        n,
        nlist,
        index.nprobe,
        time.perf_counter() - t0,
    )
    return VectorIndex(index)


def trained_ivf(
    dim: int, nlist: int, sample: np.ndarray, *, codes: str = "8-bit", seed: int = 1234
):
    """An empty IVF index (inner product) trained on `sample`, vectors kept whole (not
    residuals) as `codes`: "8-bit", the library's and `spark index`'s kind (one byte per
    dimension, each scaled to the range the sample shows; a quarter of float32's memory,
    approximate scores that searches re-rank), or "float16" (what the database stores:
    exact scores, twice the size; what earlier versions built, kept for reading them)."""
    faiss = _faiss()
    quantizer = faiss.IndexFlatIP(dim)
    qtype = {
        "8-bit": faiss.ScalarQuantizer.QT_8bit,
        "float16": faiss.ScalarQuantizer.QT_fp16,
    }[codes]
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, qtype, faiss.METRIC_INNER_PRODUCT)
    index.by_residual = False
    if codes == "8-bit":  # each dimension's range as the sample shows it, widened by a fifth
        index.sq.rangestat = faiss.ScalarQuantizer.RS_minmax  # on each side: a vector beyond
        index.sq.rangestat_arg = 0.2  # it would be clipped (scores off by 0.04 at 32-d)
    index.cp.seed = seed
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


RERANK = 10  # a PQ index is asked for k x RERANK candidates, re-scored exactly
RERANK_META = "index_rerank"  # library meta: the depth an adopted PQ index needs
RERANK_DEPTHS = (10, 30, 100)  # the depths `spark index` tries, smallest first
# 8-bit codes: scores within 0.0035 of the stored vectors' at 512-d (0.01 at 32-d; recall@10
# 0.9973 at depth 2 and 3 on clustered 512-d vectors, as float16's; 0.971 without re-ranking)
SQ8_RERANK = 3
SQ8_MARGIN = 0.015  # similar pairs: 8-bit scores this much under the threshold are rescored
PQ_MARGIN = 0.05  # PQ codes' scores are much rougher


def ivf_codes(index) -> str:
    """How a FAISS IVF index keeps its vectors: "float16", "8-bit", "pq" (or "other")."""
    faiss = _faiss()
    try:
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    except RuntimeError:
        return "other"
    if isinstance(ivf, faiss.IndexIVFPQ):
        return "pq"
    if isinstance(ivf, faiss.IndexIVFScalarQuantizer):
        qtype = ivf.sq.qtype
        if qtype == faiss.ScalarQuantizer.QT_fp16:
            return "float16"
        if qtype in (faiss.ScalarQuantizer.QT_8bit, faiss.ScalarQuantizer.QT_8bit_uniform):
            return "8-bit"
    return "other"


def is_compressed(index) -> bool:
    """Whether a FAISS IVF index keeps approximate codes (8-bit or PQ): re-rank its hits."""
    return ivf_codes(index) in ("8-bit", "pq")


def pq_subquantizers(dim: int, budget_per_vector: float) -> int | None:
    """The most PQ sub-quantisers (bytes per code, 8 bits each) that divide `dim` and fit a
    budget of bytes per vector (the code plus an 8-byte id); None if not even 8 fit."""
    for m in (128, 96, 64, 48, 32, 24, 16, 8):
        if m < dim and dim % m == 0 and m + 8 <= budget_per_vector:
            return m
    return None


def trained_ivfpq(dim: int, nlist: int, m: int, sample: np.ndarray, *, seed: int = 1234):
    """An empty IVF-PQ index (inner product, `m` bytes per vector, residuals to the list's
    centroid encoded): for collections whose float16 vectors do not fit in memory. Its scores
    are approximate; searches re-rank its candidates with exact vectors (RERANK)."""
    faiss = _faiss()
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.pq.cp.seed = seed
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def rerank(ids: np.ndarray, exact: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best `k` of candidates by their exact scores (`exact`, aligned with `ids`)."""
    order = np.argsort(-exact, kind="stable")[:k]
    return ids[order], exact[order].astype(np.float32)


def tune_nprobe(
    index,
    query_ids: np.ndarray,
    queries: np.ndarray,
    chunks: Chunks,
    target: float | None = None,
    vectors_of: Callable[[np.ndarray], np.ndarray] | None = None,
    depth: int = RERANK,
) -> tuple[int, float]:
    """Smallest nprobe whose recall@10 on the queries (each one's own id left out) meets the
    target (RECALL_TARGET), and that recall; the exact answers come from streaming the
    vectors once (no second copy). With `vectors_of` (ids -> exact vectors), the index's
    k x `depth` candidates are re-ranked exactly first, as searches of a compressed index are."""
    target = RECALL_TARGET if target is None else target
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    truth = exact_top10(query_ids, queries, chunks)
    return _smallest_nprobe(index, query_ids, queries, truth, target, vectors_of, depth)


def tune_compressed(
    index,
    query_ids: np.ndarray,
    queries: np.ndarray,
    chunks: Chunks,
    target: float,
    vectors_of: Callable[[np.ndarray], np.ndarray],
) -> tuple[int, float, int]:
    """For a compressed (PQ) index: the smallest re-ranking depth (RERANK_DEPTHS, candidates
    per result) and then nprobe whose re-ranked recall@10 meets `target`: (nprobe, recall,
    depth). PQ codes blur near neighbours together, so depth matters more than nprobe."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    truth = exact_top10(query_ids, queries, chunks)
    best = (int(index.nlist), 0.0, RERANK_DEPTHS[-1])
    for depth in RERANK_DEPTHS:
        nprobe, recall = _smallest_nprobe(
            index, query_ids, queries, truth, target, vectors_of, depth
        )
        if recall >= target:
            return nprobe, recall, depth
        if recall > best[1]:
            best = (nprobe, recall, depth)
    index.nprobe = best[0]
    return best


def exact_top10(query_ids: np.ndarray, queries: np.ndarray, chunks: Chunks) -> list[set[int]]:
    """Each query's exact 10 nearest ids (its own id left out), streaming the vectors once."""
    faiss = _faiss()
    n_q = len(queries)
    exact = faiss.IndexFlatIP(queries.shape[1])
    best_s = np.full((n_q, 11), -np.inf, np.float32)
    best_i = np.full((n_q, 11), -1, np.int64)
    for ids, vecs in chunks():
        exact.reset()
        exact.add(np.ascontiguousarray(vecs, dtype=np.float32))
        s, i = exact.search(queries, 11)
        i = np.where(i >= 0, ids[np.maximum(i, 0)], -1)
        all_s = np.concatenate([best_s, s], axis=1)
        all_i = np.concatenate([best_i, i], axis=1)
        order = np.argsort(-all_s, axis=1)[:, :11]
        best_s = np.take_along_axis(all_s, order, axis=1)
        best_i = np.take_along_axis(all_i, order, axis=1)
    return [set(row[row != q][:10].tolist()) for row, q in zip(best_i, query_ids, strict=True)]


def _smallest_nprobe(
    index,
    query_ids: np.ndarray,
    queries: np.ndarray,
    truth: list[set[int]],
    target: float,
    vectors_of: Callable[[np.ndarray], np.ndarray] | None,
    depth: int,
) -> tuple[int, float]:
    nprobe, recall = 1, 0.0
    while True:
        index.nprobe = min(nprobe, index.nlist)
        got = search_reranked(index, queries, 11, vectors_of, depth)
        hits = sum(
            len(t & set(g[g != q][:10].tolist()))
            for t, g, q in zip(truth, got, query_ids, strict=True)
        )
        recall = hits / max(1, sum(len(t) for t in truth))
        if recall >= target or nprobe >= index.nlist:
            return int(index.nprobe), recall
        nprobe *= 2
