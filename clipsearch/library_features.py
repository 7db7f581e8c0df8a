"""The Library's duplicate and tag operations (a mixin, to keep library.py to its core).

See clipsearch.dedup, clipsearch.quarantine and clipsearch.tags for the work itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clipsearch.errors import ClipsearchError, LibraryLocked

log = logging.getLogger("clipsearch.library")


class DupesAndTags:
    """Mixed into :class:`clipsearch.library.Library`."""

    # provided by Library
    store: Any
    path: Path

    def _writing(self, purpose: str) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    @property
    def dim(self) -> int | None:
        raise NotImplementedError

    def duplicates(
        self, *, max_distance: int | None = None, threshold: float | None = -1.0,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> Any:  # fmt: skip
        """Duplicate groups (a `dedup.DupesReport`); see clipsearch.dedup.

        Images indexed before perceptual hashes existed are hashed first (and the hashes
        stored when no other process is writing). `threshold=None` leaves out "similar".
        """
        from clipsearch import dedup, quarantine

        try:
            with self._writing("clipsearch dupes (hashing older images)"):
                hashed, extra = dedup.ensure_hashes(self.store, progress=progress)
        except LibraryLocked:  # somebody writes: hash in memory only
            hashed, extra = dedup.ensure_hashes(self.store, save=False, progress=progress)
        report = dedup.find_duplicates(
            self.store, dim=self.dim,
            max_distance=dedup.DEFAULT_MAX_DISTANCE if max_distance is None else max_distance,
            threshold=dedup.DEFAULT_THRESHOLD if threshold == -1.0 else threshold,
            exclude=quarantine.quarantine_dirs(self), extra_hashes=extra,
        )  # fmt: skip
        report.hashed = hashed
        return report

    def move_duplicates(self, ids: Sequence[int], dest: str | Path) -> Any:
        """Move these images into quarantine folder `dest` (never deleting or overwriting);
        the library follows. Returns a `quarantine.MoveReport` naming the undo log."""
        from clipsearch import quarantine

        with self._writing("clipsearch dupes --move-to"):
            rows = self.store.get_rows(ids)
            items = [(i, rows[i].path) for i in ids if i in rows]
            return quarantine.move_files(self, items, str(dest))

    def undo_moves(self, log: str | Path) -> Any:
        """Move the files of an undo log back (`quarantine.MoveReport`)."""
        from clipsearch import quarantine

        with self._writing("clipsearch dupes --undo"):
            return quarantine.undo(self, log)

    def classify(self, labels: Sequence[str], **kwargs: Any) -> list[Any]:
        """Zero-shot: each image's best label (`tags.Classification`); see `tags.classify`."""
        from clipsearch import tags

        return tags.classify(self, labels, **kwargs)

    def tag(
        self, vocabulary: str | Sequence[str], *, min_score: float | None = None,
        progress: Any = None,
    ) -> dict:  # fmt: skip
        """Tag every image with a vocabulary (coco, imagenet or a file); later images too."""
        from clipsearch import tags

        with self._writing("clipsearch tag"):
            return tags.tag_library(
                self, vocabulary, progress=progress,
                min_score=tags.DEFAULT_MIN_SCORE if min_score is None else min_score,
            )  # fmt: skip

    def _tag_new(self, ids: Sequence[int]) -> None:
        if not ids or not self.store.get_meta("tag_vocabulary"):
            return
        from clipsearch import tags

        try:
            tags.tag_new(self, ids)
        except ClipsearchError as exc:  # tags are extra: indexing itself succeeded
            log.warning("could not tag the new images: %s", exc.message)
