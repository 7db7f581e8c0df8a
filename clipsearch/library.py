"""Library: a directory holding one photo collection's database, index and extras.

This is the Python API; the CLI is a thin layer over it::

    from clipsearch import Library

    with Library.open("~/clip-lib") as lib:
        summary = lib.index(["~/Pictures"])
        hits = lib.search("a dog on a beach", k=5)
        hits = lib.search(image="query.jpg")
        hits = lib.search("beach", image="sunset.jpg", negative=["people"])

Layout of a library directory::

    clipsearch.db          SQLite (WAL): images, vectors, failures, roots, meta
    vectors-<seq>.faiss    the FAISS index, a cache of the vectors in the database
    lock                   the writer lock (one writer, any number of readers)

On open, the index file is checked against the database: it is caught up from the vector
log, or rebuilt when it is missing, damaged or disagrees.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipsearch.config import DEFAULT_MODEL, Settings
from clipsearch.dupes.find import DEFAULT_MAX_DISTANCE, DEFAULT_THRESHOLD
from clipsearch.errors import (
    ClipsearchError,
    LibraryDamaged,
    LibraryError,
    LibraryLocked,
    ModelMismatch,
)
from clipsearch.ingest.roots import OfflineRoot
from clipsearch.ingest.roots import probe as probe_root
from clipsearch.ingest.run import IngestRun, IngestSummary, ProgressFn
from clipsearch.media import fs
from clipsearch.media.thumbs import THUMB_DIR
from clipsearch.model.encoder import Encoder
from clipsearch.model.precision import bf16_runtime, sample_pictures
from clipsearch.model.precision import choose as choose_precision
from clipsearch.model.specs import ModelSpec
from clipsearch.query.build import build_query
from clipsearch.query.parse import Query
from clipsearch.query.search import Searcher, SearchResult
from clipsearch.store import Store, open_database
from clipsearch.store.db import migrate, schema_state
from clipsearch.store.faiss_index import index_files
from clipsearch.store.lock import WriterLock
from clipsearch.store.store import Changes
from clipsearch.store.vector_cache import VectorCache
from clipsearch.tags.classify import DEFAULT_MIN_SCORE, Labeller

if TYPE_CHECKING:
    from clipsearch.dupes.find import DupesReport
    from clipsearch.dupes.quarantine import MoveReport
    from clipsearch.ingest.importer import ImportSummary
    from clipsearch.model.torch_encoder import TorchEncoder
    from clipsearch.tags.classify import Classification

log = logging.getLogger(__name__)
notice = logging.getLogger("clipsearch.notice")

DB_NAME = "clipsearch.db"


class Library:
    """An open library. Create with :meth:`Library.open`; close (or use `with`)."""

    def __init__(self, path: Path, settings: Settings, store: Store) -> None:
        self.path = path
        self.settings = settings
        self.store = store
        self._lock = WriterLock(path)
        self._encoder: Encoder | None = None
        self._torch_encoder: TorchEncoder | None = None
        self._encoder_checked: tuple[int, int | None] | None = None
        self.vectors = VectorCache(path, store, self._lock)  # the FAISS index, kept in step

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        model: str | None = None,
        create: bool = True,
        settings: Settings | None = None,
        check_precision: bool = True,
        **overrides: Any,
    ) -> Library:
        """Open the library at `path` (default: settings / CLIPSEARCH_LIBRARY / per-user).

        `model` picks the model for a new library; for an existing one it must match the
        model the library was made with (or be left out). `create=False` refuses to create.
        `check_precision=False` lets a --precision differ from the library's (`reindex`).
        Other keyword arguments override settings: device, batch_size, threads, workers.
        """
        if settings is None:
            settings = Settings.resolve(library=path, model=model, **overrides)
        else:
            settings = settings.with_(
                **{k: v for k, v in dict(overrides, model=model).items() if v is not None}
            )
            if path is not None:
                settings = settings.with_(library=Path(path).expanduser())
        folder = Path(os.path.abspath(settings.library))
        db_path = folder / DB_NAME
        is_new = not db_path.exists()
        if is_new:
            _check_new_library_dir(folder, create)
            folder.mkdir(parents=True, exist_ok=True)
            for stale in index_files(folder):  # a cache of a database that is gone
                stale.unlink()
        elif _is_empty_database(db_path):
            raise LibraryDamaged(
                f"the library database {db_path} is empty (0 bytes): it was damaged, e.g. by "
                "a full disk or a copy cut short",
                hint="Your photos are not touched. Restore it from a backup, or move it aside "
                f"(mv {db_path} {db_path}.damaged) and index your folders again.",
            )
        store = Store(open_database(db_path))
        lib = cls(folder, settings, store)
        try:
            lib._prepare_schema(is_new)
            lib._check_model(settings.model)
            if check_precision:
                lib._check_precision(settings.precision)
        except BaseException:
            lib.close()
            raise
        return lib

    def _prepare_schema(self, is_new: bool) -> None:
        current, head = schema_state(self.store.engine)
        if current == head:
            return
        with self._lock.holding("upgrading the library"):
            migrate(self.store.engine)
            if is_new or self.store.get_meta("model") is None:
                self.store.set_meta(
                    {
                        "model": ModelSpec.parse(self.settings.model or DEFAULT_MODEL).canonical,
                        "created_at": str(time.time()),
                    }
                )

    def _check_model(self, requested: str | None) -> None:
        if requested is None:
            return
        wanted = ModelSpec.parse(requested).canonical
        current = self.model
        if wanted == current:
            return
        if self.store.vector_count() == 0:  # nothing to mix yet: just switch
            with self._lock.holding("setting the library's model"):
                self.vectors.reset({"model": wanted, "model_fingerprint": "", "dim": ""})
            return
        n = self.store.counts()["images"]
        raise ModelMismatch(
            f"the library {self.path} was indexed with model {current}, not {wanted}; "
            "vectors from two models cannot be mixed",
            hint=f"Leave out --model to search with {current}, or re-embed all {n} images with "
            f"the new model:  clipsearch --library {self.path} reindex --model {requested}\n"
            "(or use another --library for the other model).",
        )

    # --- parts, built on first use -------------------------------------------------------
    @property
    def model(self) -> str:
        """The canonical spec of the model this library's vectors come from."""
        return self.store.get_meta("model") or ModelSpec.parse(DEFAULT_MODEL).canonical

    @property
    def precision(self) -> str:
        """The precision this library's vectors are made at (see clipsearch.model.precision)."""
        return self.store.get_meta("precision") or "fp32"

    @property
    def encoder(self) -> Encoder:
        """The library's encoder, at its precision (the model loads on first encode)."""
        if self._encoder is None:
            self._encoder = self._make_encoder(self.precision)
        return self._encoder

    def _make_encoder(self, precision: str, model: str | None = None) -> Encoder:
        s = self.settings
        options = {"device": s.device, "batch_size": s.batch_size, "threads": s.threads}
        if precision == "bf16" and bf16_runtime() == "torch":  # no OpenVINO: torch's bf16
            from clipsearch.model.torch_encoder import TorchEncoder

            return TorchEncoder(model or self.model, precision="bf16", **options)  # type: ignore[return-value]
        return Encoder(model or self.model, precision=precision, **options)

    def _runtime_name(self, precision: str) -> str:
        """The runtime this library's images are encoded with (as `status` says it)."""
        if precision == "bf16":
            return bf16_runtime() or "none (bf16 needs the [openvino] or [torch] extra)"
        if self._encoder is not None and self._encoder.loaded:
            return getattr(self._encoder, "runtime", "onnxruntime")
        from clipsearch.model import openvino_runtime

        device = (self.settings.device or "auto").lower()
        if openvino_runtime.available() and device in ("auto", "openvino") and precision == "fp32":
            return "openvino"
        return "onnxruntime"

    def adopt_encoder(self, encoder: Encoder | None) -> None:
        """Use an encoder made (and warmed) elsewhere, if it is this library's model at its
        precision; otherwise it is ignored."""
        if (
            encoder is not None
            and self._encoder is None
            and encoder.canonical == self.model
            and getattr(encoder, "precision", None) == self.precision
        ):
            self._encoder = encoder

    def torch_encoder(self) -> TorchEncoder:
        """The library's model on torch (for generation: it needs gradients). Needs the
        `[torch]` extra; raises ModelError saying so when it is missing."""
        from clipsearch.model.torch_encoder import TorchEncoder

        if self._torch_encoder is None:
            s = self.settings
            self._torch_encoder = TorchEncoder(
                self.model, device=s.device, batch_size=s.batch_size, threads=s.threads
            )
        return self._torch_encoder.load()

    def _settle_precision(self, roots: Sequence[str]) -> None:
        """Choose this library's precision before its first vectors (the fidelity gate)."""
        if self.store.get_meta("precision"):
            return
        if self.store.vector_count():  # vectors from before precisions were recorded
            self.store.set_meta({"precision": "fp32"})
            return
        requested = (self.settings.precision or "auto").lower()
        sample = [] if requested == "fp32" else sample_pictures(roots, [str(self.path)])
        if requested != "fp32" and not sample:
            return  # nothing to embed yet: decided when there is
        made: dict[str, Encoder] = {}

        def make(precision: str) -> Encoder:
            made[precision] = self._make_encoder(precision)
            return made[precision]

        choice = choose_precision(ModelSpec.parse(self.model), requested, sample, make)
        self.store.set_meta(
            {"precision": choice.precision, "precision_check": json.dumps(choice.to_dict())}
        )
        if choice.checks:
            notice.info("%s", choice.summary())
        # The chosen one is loaded already (one model in memory, not a third); the others go.
        self._encoder = made.pop(choice.precision, None)
        made.clear()

    def _check_precision(self, requested: str | None) -> None:
        """An explicit --precision that differs from the library's would mix vectors."""
        wanted = (requested or "auto").lower()
        current = self.store.get_meta("precision")
        if wanted == "auto" or current is None or wanted == current:
            return
        if not self.store.vector_count():
            with self._lock.holding("setting the library's precision"):
                self.store.set_meta({"precision": "", "precision_check": ""})
            return
        raise ModelMismatch(
            f"the library {self.path} holds {current} vectors, not {wanted}; "
            "vectors of two precisions are not mixed",
            hint=f"Leave out --precision to use {current}, or re-embed every image: "
            f"clipsearch --library {self.path} --precision {wanted} reindex",
        )

    def _loaded_encoder(self) -> Encoder:
        """The encoder, loaded and checked against what the library recorded (again only
        when the database changed since)."""
        enc = self.encoder.load()
        version = self.store.data_version()
        if version is not None and self._encoder_checked == (id(enc), version):
            return enc
        meta = self.store.all_meta()
        recorded_fp, recorded_dim = meta.get("model_fingerprint", ""), meta.get("dim", "")
        if recorded_fp and enc.fingerprint and recorded_fp != enc.fingerprint:
            raise ModelMismatch(
                f"the weights of model {self.model} changed since this library was indexed",
                hint=f"Re-embed with the new weights: clipsearch --library {self.path} "
                f"reindex --model {self.model}",
            )
        if recorded_dim and int(recorded_dim) != enc.dim:
            raise ModelMismatch(
                f"model {self.model} makes {enc.dim}-d vectors but the library holds "
                f"{recorded_dim}-d ones",
                hint=f"Re-embed: clipsearch --library {self.path} reindex --model {self.model}",
            )
        if ((not recorded_fp and enc.fingerprint) or not recorded_dim) and self._lock.held:
            self.store.set_meta({"model_fingerprint": enc.fingerprint, "dim": str(enc.dim)})
        self._encoder_checked = (id(enc), self.store.data_version())
        return enc

    @property
    def dim(self) -> int | None:
        return self.store.dim()

    # --- operations ---------------------------------------------------------------------
    def index(
        self,
        paths: Sequence[str | Path],
        *,
        progress: ProgressFn | None = None,
        source: str = "photos",
        accept_device: bool = False,
        ocr: bool | str | None = None,
        quick: bool = False,
    ) -> IngestSummary:
        """Index images under `paths` incrementally; returns what changed.

        `quick=True` lists again only the folders whose modification time moved since the
        last complete run (new, deleted, renamed and moved files change it): a catch-up
        proportional to what changed. A file edited in place keeps its folder's time and is
        caught by the next run without `quick` (or by `watch`, as it happens).

        `ocr=True` (or Tesseract languages, "eng+por") turns on reading text in pictures for
        this library, `ocr=False` turns it off; None keeps what the library does (remembered).

        New files are embedded, changed ones re-embedded, moved/renamed ones keep their
        vector, files gone from these paths leave the library. Unreadable files are recorded
        with their reason and skipped. Ctrl-C keeps everything committed so far.

        A folder that held pictures and is now missing, empty or on another device (an
        unmounted drive) is left as it is, marked offline (`summary.offline`); its pictures
        come back when it does. `accept_device=True` trusts a folder that moved to another
        device (a restored or replaced drive).
        """
        roots = fs.check_roots(paths, known=lambda p: self.store.count_under([p]) > 0)
        with self._lock.holding("clipsearch index"):
            self.set_ocr(ocr)
            return self._ingest(
                roots, progress=progress, source=source, accept_device=accept_device, quick=quick
            )

    @property
    def ocr(self) -> str | None:
        """Tesseract's language(s) when this library reads text in pictures, else None."""
        return self.store.get_meta("ocr") or None

    def set_ocr(self, ocr: bool | str | None) -> None:
        """Turn reading text in pictures on (True: English, or languages "eng+por") or off
        (False); None changes nothing. Another language reads every picture again."""
        if ocr is None:
            return
        lang = ("eng" if ocr is True else str(ocr).strip()) if ocr else ""
        if lang == (self.ocr or ""):
            return
        if lang and self.ocr:  # other languages: read again
            from clipsearch.store.facts import clear_ocr

            clear_ocr(self.store)
        self.store.set_meta({"ocr": lang})

    def _ingest(
        self,
        roots: list[str],
        *,
        progress: ProgressFn | None,
        source: str,
        remember: bool = True,
        save: bool = True,
        defer_failure: Callable[[str, str], bool] | None = None,
        accept_device: bool = False,
        quick: bool = False,
    ) -> IngestSummary:
        if remember and source == "photos":
            self._settle_precision(roots)
        if remember:
            self.store.remember_roots(
                {r: "file" if os.path.isfile(r) else "folder" for r in roots if os.path.exists(r)}
            )
        run = IngestRun(
            self.store,
            self.vectors,
            self._loaded_encoder,
            exclude=[str(self.path)],
            workers=self.settings.workers,
            batch_size=self.settings.batch_size,
            progress=progress,
            source=source,
            defer_failure=defer_failure,
            accept_device=accept_device,
            ocr=self.ocr,
            quick=quick,
        )
        summary = run.run(roots)  # a full disk raises here: what was committed stays
        states = run.root_states
        self.store.set_roots_offline({p: o.reason for p, o in states.offline.items()})
        self.store.set_roots_online(states.online)
        if save:
            self.vectors.save()
        self._tag_new(run.vector_ids)
        if remember and not summary.interrupted:
            self.store.mark_indexed(r for r in roots if r not in states.offline)
        return summary

    # --- keeping up with a watched folder (the watch daemon) ------------------------------
    def writer(self, purpose: str) -> contextlib.AbstractContextManager[None]:
        """Hold the writer lock for a long job (the watch daemon); raises LibraryLocked."""
        return self._lock.holding(purpose)

    def check_writable(self) -> None:
        """Raise LibraryLocked now if another process writes (for work that writes at its end)."""
        self._lock.ensure_free()

    def warm_up(self) -> None:
        """Load the model and the index now (so the first file a writer sees is fast)."""
        with self._lock.holding("clipsearch (loading)"):
            if self.dim is None:
                self._loaded_encoder()  # records the vector size (the writer lock is held)
            self.vectors.index()
            self.vectors.discard_temp_files()

    def sync_paths(
        self,
        paths: Sequence[str | Path],
        *,
        remember: bool = False,
        save: bool = False,
        defer_failure: Callable[[str, str], bool] | None = None,
        quick: bool = False,
    ) -> IngestSummary:
        """Bring exactly these files or folders in line with the disk (the watch daemon's step).

        Like :meth:`index`, but paths that no longer exist are not an error: their images
        leave the library. By default the paths are not remembered as indexed folders and the
        index file is not rewritten (readers replay the change log; see :meth:`VectorCache.save`).
        `defer_failure(path, reason)` returning True leaves a failure unrecorded. `quick` as
        in :meth:`index`.
        """
        roots = [os.path.abspath(p) for p in paths]
        with self._lock.holding("clipsearch (syncing files)"):
            return self._ingest(
                roots,
                progress=None,
                source="photos",
                remember=remember,
                save=save,
                defer_failure=defer_failure,
                quick=quick,
            )

    def move_path(self, src: str | Path, dst: str | Path) -> int:
        """Record that a file or folder moved on disk: its images keep ids and vectors.

        An image recorded at a destination path is replaced. Returns the images moved.
        """
        src, dst = os.path.abspath(src), os.path.abspath(dst)
        with self._lock.holding("clipsearch (recording a move)"):
            return self.vectors.move(src, dst)

    def watched_roots(self) -> list[str]:
        """The folders `clipsearch watch` was last asked to watch."""
        return json.loads(self.store.get_meta("watched_roots", "[]") or "[]")

    def set_watched_roots(self, roots: Sequence[str]) -> None:
        with self._lock.holding("clipsearch (remembering watched folders)"):
            self.store.set_meta({"watched_roots": json.dumps(list(roots))})

    def reindex(self, model: str, *, progress: ProgressFn | None = None) -> IngestSummary:
        """Switch the library to `model` and re-embed every image with it (the precision is
        chosen again, from --precision or auto).

        The new model is loaded first, so a model that cannot load changes nothing.
        """
        spec = ModelSpec.parse(model)
        with self._lock.holding("clipsearch reindex"):
            new_encoder = self._make_encoder("fp32", spec.canonical).load()
            self.vectors.reset(
                {
                    "model": spec.canonical,
                    "model_fingerprint": new_encoder.fingerprint,
                    "dim": str(new_encoder.dim),
                    "precision": "",
                    "precision_check": "",
                }
            )
            self._encoder = None
            roots = [
                r.path
                for r in self.store.roots()
                if os.path.exists(r.path) or self.store.count_under([r.path])
            ]
            summary = self._ingest(roots, progress=progress, source="photos")
            return self._reembed_generated(summary, progress)

    def _reembed_generated(
        self, summary: IngestSummary, progress: ProgressFn | None
    ) -> IngestSummary:
        """Generated pictures live outside the indexed folders: re-embed them by path."""
        paths = [r.path for r in self.store.ids_without_vectors() if r.source == "generated"]
        if summary.interrupted or not paths:
            return summary
        summary.add(self._ingest(paths, progress=progress, source="generated", remember=False))
        return summary

    def add_generated(self, path: str | Path, provenance: dict[str, Any]) -> int:
        """Index one generated picture at once (source 'generated') with its provenance.

        `provenance` holds the `generations` columns (prompts, seed, steps, ...). Returns the
        image id. Works for files inside the library folder, which `index` runs skip.
        """
        target = fs.normalize_root(path)
        with self._lock.holding("clipsearch generate"):
            summary = self._ingest([target], progress=None, source="generated", remember=False)
            row = self.store.row_by_path(target)
            if row is None or not row.has_vector:
                reason = summary.failures[0].reason if summary.failures else "not indexed"
                raise LibraryError(f"could not add {target} to the library: {reason}")
            self.store.record_generation(row.id, provenance)
            return row.id

    def search(
        self,
        text: str | None = None,
        *,
        image: str | Path | Sequence[str | Path] | None = None,
        negative: Sequence[str] = (),
        negative_image: Sequence[str | Path] = (),
        like: int | Sequence[int] = (),
        k: int = 10,
        min_score: float | None = None,
        within: Sequence[str | Path] = (),
        source: str | None = None,
        after: str | None = None,
        before: str | None = None,
        tag: str | None = None,
        include_offline: bool = False,
        near: str | None = None,
        camera: str | None = None,
        cutoff: str | None = None,
    ) -> list[SearchResult]:
        """Search by text, image(s), "more like" ids, with negatives and filters.

        Filters: `within` folders/files, `source` ("photos" or "generated"), `tag` (a label
        `tag()` gave the image), and a date
        range `after` (inclusive) / `before` (exclusive) on the capture time, or the file's
        modification time when the picture has none (e.g. "2024", "2024-06-30").

        `near` a place ("Lisbon", "Paris, FR", "38.72,-9.14~5km") and `camera` words of the
        camera's make, model or lens.

        `text` accepts rclip's expression syntax (`"2:dog + ./pool.jpg - fruit"`) and the
        query language's filters and quoted phrases (`'beach near:Lisbon after:2023'`,
        `'whiteboard "project plan"'`, `'text:invoice'`). `cutoff="auto"` ends the list where
        relevance drops. Results are best first; files gone from disk never appear.
        """
        images = [image] if isinstance(image, (str, Path)) else list(image or [])
        query = build_query(
            text or "",
            images=images,
            negatives=negative,
            negative_images=negative_image,
            like=[like] if isinstance(like, int) else list(like),
            k=k,
            min_score=min_score,
            within=within,
            source=source,
            after=after,
            before=before,
            tag=tag,
            include_offline=include_offline,
            near=near,
            camera=camera,
            cutoff=cutoff,
        )
        return self.run_query(query)

    def run_query(self, query: Query) -> list[SearchResult]:
        """Run a prepared :class:`Query`."""
        dim = self.vectors.current_dim()
        if dim is None:
            return []
        searcher = Searcher(self.store, self.vectors.reading, self._loaded_encoder, dim)
        return searcher.search(query)

    def _why_not_found_facts(self, query: Query) -> list[str]:
        """Reasons from the place, camera, text and folder-name filters, one by one."""
        from clipsearch.query.parse import Query as Q
        from clipsearch.query.search import Searcher

        searcher = Searcher(self.store, self.vectors.reading, self._loaded_encoder, 1)
        reasons = []
        if query.near is not None:
            alone = Q((), near=query.near)
            if not len(searcher.allowed_ids(alone)):
                where = query.near.label
                reasons.append(f"no picture has a GPS position near {where}")
        checks = [("camera", query.camera, Q((), camera=query.camera))] if query.camera else []
        checks += [("text", t, Q((), text=(t,))) for t in query.text]
        checks += [("in", n, Q((), folder_names=(n,))) for n in query.folder_names]
        for key, value, alone in checks:
            if not len(searcher.allowed_ids(alone)):
                hint = {
                    "camera": "no picture was taken with such a camera",
                    "text": "no picture has these words written in it"
                    + ("" if self.store.get_meta("ocr") else " (OCR is off: index --ocr)"),
                    "in": "no folder of that name holds pictures",
                }[key]
                reasons.append(f"{key}:{value}: {hint}")
        return reasons

    def why_no_results(self, query: Query) -> str:
        """Why `query` found nothing, in words a user can act on."""
        from clipsearch.store import features

        if self.store.vector_count() == 0:
            return "No images in this library yet: run `clipsearch index PATH` first."
        reasons = []
        if query.tag is not None and len(features.ids_with_tag(self.store, query.tag)) == 0:
            used = [label for label, _ in features.tag_counts(self.store)[:8]]
            reasons.append(
                f"no image is tagged {query.tag!r} ("
                + (f"tags in use: {', '.join(used)}" if used else "run `clipsearch tag` first")
                + ")"
            )
        for path in query.within:
            if not os.path.exists(path) and not self.store.count_under([path]):
                reasons.append(f"--in {fs.display(path)}: no such file or folder")
            elif not self.store.count_under([path]):
                reasons.append(f"--in {fs.display(path)}: nothing is indexed there")
        if query.source is not None and not len(self.store.filter_ids(source=query.source)):
            reasons.append(f"the library has no {query.source}")
        if (query.after or query.before) and not len(
            self.store.filter_ids(after=query.after, before=query.before)
        ):
            reasons.append("no picture was taken in that date range")
        reasons += self._why_not_found_facts(query)
        if query.min_score is not None and not reasons:
            reasons.append(f"no picture scores at least {query.min_score} (lower --min-score)")
        offline = self.store.count_under(r.path for r in self.store.roots() if r.offline)
        if offline and not query.include_offline:
            reasons.append(
                f"{offline} picture(s) of offline folders are left out (--include-offline)"
            )
        return "No results: " + "; ".join(reasons) + "." if reasons else "No results."

    def status(self) -> dict[str, Any]:
        """Counts and facts about the library (the `status --json` shape)."""
        counts = self.store.counts()
        meta = self.store.all_meta()
        holder = self._lock.holder()
        roots = self.store.roots()
        return {
            "library": str(self.path),
            "model": self.model,
            "dim": int(meta["dim"]) if meta.get("dim") else None,
            "precision": meta.get("precision") or None,
            "precision_check": json.loads(meta["precision_check"])
            if meta.get("precision_check")
            else None,
            "runtime": self._runtime_name(meta.get("precision") or "fp32"),
            "images": counts["images"],
            "photos": counts["photos"],
            "generated": counts["generated"],
            "failures": counts["failures"],
            "vectors": counts["vectors"],
            "index": self.vectors.describe(),
            "roots": [
                {
                    "path": r.path,
                    "kind": r.kind,
                    "last_indexed_at": r.last_indexed_at,
                    "offline": r.offline,
                    "offline_since": r.offline_since,
                    "offline_reason": r.offline_reason,
                }
                for r in roots
            ],
            "offline_images": self.store.count_under(r.path for r in roots if r.offline),
            "size_bytes": _folder_size(self.path),
            "created_at": float(meta["created_at"]) if meta.get("created_at") else None,
            "writer": holder or None,
            "daemon": _daemon_status(self.path, holder),
            "vocabulary": _vocabulary_status(meta),
            "ocr": meta.get("ocr") or None,
            "ocr_complete": bool(meta.get("ocr")) and meta.get("ocr_complete") == meta.get("ocr"),
            "facts_complete": meta.get("facts_complete") == "1",
        }

    def offline_roots(self) -> list[OfflineRoot]:
        """Roots that are offline (an unmounted drive): their pictures are kept, unsearched."""
        return [
            OfflineRoot(r.path, r.offline_reason or "offline", self.store.count_under([r.path]))
            for r in self.store.roots()
            if r.offline
        ]

    def remove_offline(self, path: str | Path) -> int:
        """Forget an offline root and its pictures (vectors, tags); returns how many.

        The explicit way to drop pictures whose drive is gone for good: `index` and `watch`
        never remove an offline root's pictures. A root that is back online is refused.
        """
        root = fs.normalize_root(path)
        with self._lock.holding("clipsearch offline --remove"):
            known = {r.path: r for r in self.store.roots()}
            if root not in known:
                raise LibraryError(
                    f"{fs.display(root)} is not a folder this library indexed",
                    hint="`clipsearch offline` lists the offline folders.",
                )
            images = self.store.count_under([root])
            _, reason = probe_root(known[root], images)
            if reason is None and images:
                raise LibraryError(
                    f"{fs.display(root)} is online (its pictures are there)",
                    hint=f"To bring the library in step with it, run: clipsearch --library "
                    f"{self.path} index {fs.display(root)}",
                )
            ids = [r.id for r in self.store.rows_under([root]).values()]
            gone = list(self.store.failures_under([root]))
            self.vectors.apply(Changes(removes=ids, cleared_failures=gone))
            self.store.forget_root(root)
            return len(ids)

    def failures(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Files that could not be indexed, with reasons."""
        return [
            {"path": f.path, "reason": f.reason, "failed_at": f.failed_at}
            for f in self.store.failures(limit)
        ]

    # --- duplicates ---------------------------------------------------------------------
    def duplicates(
        self,
        *,
        max_distance: int = DEFAULT_MAX_DISTANCE,
        threshold: float = DEFAULT_THRESHOLD,
        similar: bool = True,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> DupesReport:
        """Duplicate groups; see clipsearch.dupes.find.

        Groups of exact and near copies (`kind` "copies") come first, then groups of
        similar pictures (`kind` "similar", every member similar to its keeper). Images
        indexed before perceptual hashes existed are hashed first (and the hashes stored
        when no other process is writing). `similar=False` leaves out CLIP-similar pairs;
        they are also left out, with `report.warnings` saying why, when the model cannot
        tell this library's pictures apart at `threshold` (`report.calibration`).
        """
        from clipsearch.dupes import find, quarantine

        try:
            with self._lock.holding("clipsearch dupes (hashing older images)"):
                hashed, extra = find.ensure_hashes(self.store, progress=progress)
        except LibraryLocked:  # somebody writes: hash in memory only
            hashed, extra = find.ensure_hashes(self.store, save=False, progress=progress)
        report = find.find_duplicates(
            self.store,
            dim=self.dim,
            max_distance=max_distance,
            threshold=threshold if similar else None,
            exclude=quarantine.quarantine_dirs(self.store),
            extra_hashes=extra,
            reading=self.vectors.reading if self.dim is not None else None,
        )
        report.hashed = hashed
        return report

    def move_duplicates(self, ids: Sequence[int], dest: str | Path) -> MoveReport:
        """Move these images into quarantine folder `dest` (never deleting or overwriting);
        the library follows. The report names the undo log."""
        from clipsearch.dupes import quarantine

        with self._lock.holding("clipsearch dupes --move-to"):
            rows = self.store.get_rows(ids)
            items = [(i, rows[i].path) for i in ids if i in rows]
            return quarantine.move_files(self.store, items, str(dest), follow=self.move_path)

    def undo_moves(self, log_path: str | Path) -> MoveReport:
        """Move the files of an undo log back."""
        from clipsearch.dupes import quarantine

        with self._lock.holding("clipsearch dupes --undo"):
            return quarantine.undo(log_path, follow=self.move_path)

    # --- zero-shot classification and tags ----------------------------------------------------
    def labeller(self) -> Labeller:
        """Label vectors and probabilities with this library's model."""
        return Labeller(self.encoder, self.model, self.path / "labels")

    def classify(
        self,
        labels: Sequence[str],
        *,
        within: Sequence[str] = (),
        ids: Sequence[int] = (),
        top: int = 3,
    ) -> list[Classification]:
        """Zero-shot: each image's best labels (all images, or those `within` / `ids`)."""
        from clipsearch.tags import classify

        return classify.classify(
            self.store, self.labeller(), labels, within=within, ids=ids, top=top
        )

    def tag(
        self,
        vocabulary: str | Sequence[str],
        *,
        min_score: float = DEFAULT_MIN_SCORE,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Tag every image with a vocabulary (coco, imagenet, a file, or labels); images
        indexed later are tagged too."""
        from clipsearch.tags import classify

        with self._lock.holding("clipsearch tag"):
            return classify.tag_library(
                self.store, self.labeller(), vocabulary, min_score=min_score, progress=progress
            )

    def tag_vocabulary(self) -> dict[str, Any] | None:
        """The vocabulary `tag` set ({"name", "labels", "min_score"}), or None."""
        from clipsearch.tags.classify import current_vocabulary

        return current_vocabulary(self.store)

    def _tag_new(self, ids: Sequence[int]) -> None:
        if not ids or not self.store.get_meta("tag_vocabulary"):
            return
        from clipsearch.tags import classify

        try:
            classify.tag_new(self.store, self.labeller(), ids)
        except ClipsearchError as exc:  # tags are extra: indexing itself succeeded
            log.warning("could not tag the new images: %s", exc.message)

    def import_embeddings(
        self,
        folder: str | Path,
        *,
        index: str | Path | None = None,
        progress: ProgressFn | None = None,
        path_map: dict[str, str] | None = None,
    ) -> ImportSummary:
        """Bring shards written by `clipsearch spark embed` into the library: rows, vectors,
        hashes and failures, no model work. Refuses shards of another model. `index`: a
        folder written by `clipsearch spark index` over these shards, adopted as the
        library's index. `path_map` turns URI prefixes into local folders where the same
        files are mounted ({"hdfs://nn/photos": "/mnt/photos"}); file: URIs need none."""
        from clipsearch.ingest.importer import import_shards

        index_dir = None if index is None else Path(index).expanduser().resolve()
        with self._lock.holding("clipsearch import"):
            return import_shards(
                self,
                Path(folder).expanduser().resolve(),
                index_dir=index_dir,
                progress=progress,
                path_map=path_map,
            )

    # --- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        self.vectors.stop_following()
        self._lock.release()
        self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Library({str(self.path)!r}, model={self.model!r})"


# What a library folder holds besides its database (a database moved aside leaves these).
_LIBRARY_FILE = re.compile(
    r"^(lock|daemon\.json|server\.json|labels|thumbs|generated|vectors-\d+\.faiss"
    rf"|{re.escape(DB_NAME)}.*)$"
)


def _is_empty_database(db_path: Path) -> bool:
    """A 0-byte database with nothing in its write-ahead log: damaged, not new."""
    try:
        if db_path.stat().st_size > 0:
            return False
        wal = db_path.with_name(db_path.name + "-wal")
        return not wal.exists() or wal.stat().st_size == 0
    except OSError:
        return False


def _check_new_library_dir(folder: Path, create: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise LibraryError(f"{folder} is a file, not a library folder")
    if not create:
        raise LibraryError(
            f"no library at {folder} yet",
            hint=f"Index some photos first: clipsearch --library {folder} index ~/Pictures",
        )
    if folder.is_dir() and any(
        not p.name.startswith(".") and not _LIBRARY_FILE.match(p.name) for p in folder.iterdir()
    ):
        raise LibraryError(
            f"{folder} is not a clipsearch library (no {DB_NAME}) and is not empty",
            hint="Choose a new or empty folder for the library (it is not the photo folder).",
        )


def _vocabulary_status(meta: dict[str, str]) -> dict[str, Any] | None:
    raw = meta.get("tag_vocabulary")
    if not raw:
        return None
    v = json.loads(raw)
    return {
        "name": v.get("name"),
        "labels": len(v.get("labels", [])),
        "min_score": v.get("min_score"),
    }


def _daemon_status(folder: Path, holder: dict) -> dict[str, Any] | None:
    from clipsearch.ingest.daemon import daemon_status

    return daemon_status(folder, holder)


def _folder_size(folder: Path) -> int:
    """The library's own files: database, index, generated pictures, label vectors. The
    thumbnail cache is left out: walking a million thumbnails would take longer than the
    rest of `status` (it can be deleted at any time; it is made again on demand)."""
    total = 0
    for dirpath, dirs, names in os.walk(folder):
        if dirpath == str(folder):
            dirs[:] = [d for d in dirs if d != THUMB_DIR]
        for name in names:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total
