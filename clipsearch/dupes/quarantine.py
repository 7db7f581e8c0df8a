"""Safe actions on duplicates: move copies into a quarantine folder, and undo that.

Nothing is ever deleted and nothing is ever overwritten. Each file moves to
`DEST/<its path relative to the indexed folder it is in>`; the library follows (the image
keeps its id, vector and tags at the new path, see `Library.move_path`). Every move is
appended to an undo log (JSON lines) *after* it happened, so the log is right even if the run
is interrupted: `{"id", "from", "to", "at"}` per line. `undo(LOG)` moves the files back.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clipsearch.errors import QuarantineError
from clipsearch.media import fs
from clipsearch.store.store import Store

QUARANTINE_META = "quarantine_dirs"


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class MoveReport:
    """What a move (or an undo) did. `to_dict()` is the `--json` shape."""

    moved: list[dict[str, Any]] = field(default_factory=list)  # {"id", "from", "to"}
    skipped: list[Skipped] = field(default_factory=list)
    log: str | None = None

    def to_dict(self) -> dict:
        return {
            "moved": self.moved,
            "skipped": [asdict(s) for s in self.skipped],
            "log": self.log,
        }


def check_destination(dest: str | Path, roots: Sequence[str]) -> str:
    """The absolute quarantine folder; refused inside an indexed folder (it would come back)."""
    full = os.path.abspath(os.path.expanduser(str(dest)))
    for root in roots:
        if fs.is_under(full, root) or fs.is_under(root, full):
            raise QuarantineError(
                f"the quarantine folder {full} overlaps the indexed folder {root}",
                hint="Choose a folder outside the folders you index, e.g. ~/clipsearch-quarantine.",
            )
    if os.path.exists(full) and not os.path.isdir(full):
        raise QuarantineError(f"{full} exists and is not a folder")
    return full


def target_for(path: str, dest: str, roots: Sequence[str]) -> str:
    """Where `path` goes inside `dest`: its path relative to the indexed folder holding it."""
    holder = max((r for r in roots if fs.is_under(path, r) and r != path), key=len, default=None)
    rel = os.path.relpath(path, holder) if holder else path.lstrip("/")
    return os.path.join(dest, rel)


def _move_file(src: str, dst: str) -> None:
    """Move without ever overwriting: hard-link then unlink, or copy across filesystems."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.link(src, dst)  # fails with EEXIST rather than replace anything
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "exists", dst) from None
        shutil.copy2(src, dst)  # another filesystem (or no hard links): copy, then remove
    os.unlink(src)


MoveFn = Callable[[str, str], int]  # Library.move_path: the library follows a moved file


def move_files(
    store: Store,
    items: Iterable[tuple[int, str]],
    dest: str,
    *,
    follow: MoveFn,
    log_path: str | None = None,
) -> MoveReport:
    """Move images `(id, path)` into `dest`; `follow(src, dst)` records each move in the
    library. The caller holds the writer lock."""
    roots = [r.path for r in store.roots()]
    dest = check_destination(dest, roots)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = log_path or os.path.join(dest, f"clipsearch-undo-{stamp}.jsonl")
    report = MoveReport(log=log_path)
    os.makedirs(dest, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        for image_id, path in items:
            target = target_for(path, dest, roots)
            reason = _cannot_move(path, target)
            if reason is None:
                try:
                    _move_file(path, target)
                except OSError as exc:
                    reason = "already exists there" if exc.errno == errno.EEXIST else str(exc)
            if reason is not None:
                report.skipped.append(Skipped(path, reason))
                continue
            entry = {"id": image_id, "from": path, "to": target, "at": time.time()}
            log.write(json.dumps(entry) + "\n")
            log.flush()
            follow(path, target)
            report.moved.append({"id": image_id, "from": path, "to": target})
    _remember(store, dest)
    if not report.moved:
        with contextlib.suppress(OSError):
            if os.path.getsize(log_path) == 0:
                os.unlink(log_path)
        report.log = None
    return report


def _cannot_move(path: str, target: str) -> str | None:
    if not os.path.isfile(path):
        return "not on disk any more"
    if os.path.lexists(target):
        return f"{target} already exists (never overwritten)"
    return None


def _remember(store: Store, dest: str) -> None:
    known = quarantine_dirs(store)
    if dest not in known:
        store.set_meta({QUARANTINE_META: json.dumps([*known, dest])})


def quarantine_dirs(store: Store) -> list[str]:
    """Folders duplicates were moved into (left out of later `dupes` runs)."""
    return json.loads(store.get_meta(QUARANTINE_META, "[]") or "[]")


def read_log(log_path: str | Path) -> list[dict[str, Any]]:
    """The entries of an undo log; QuarantineError if it is not one."""
    try:
        lines = Path(log_path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise QuarantineError(f"cannot read undo log {log_path}: {exc.strerror or exc}") from None
    entries = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            ok = isinstance(entry, dict) and all(
                isinstance(entry.get(k), str) for k in ("from", "to")
            )
        except ValueError:
            ok = False
        if not ok:
            raise QuarantineError(
                f"{log_path}, line {n}: not a clipsearch undo log entry",
                hint="Pass the .jsonl file `clipsearch dupes --move-to` wrote.",
            )
        entries.append(entry)
    return entries


def undo(log_path: str | Path, *, follow: MoveFn) -> MoveReport:
    """Move the files of an undo log back where they were (newest first). Lock held by caller."""
    entries = read_log(log_path)
    report = MoveReport(log=str(log_path))
    for entry in reversed(entries):
        src, dst = entry["to"], entry["from"]
        reason = None
        if not os.path.isfile(src):
            reason = "not in the quarantine folder any more"
        elif os.path.lexists(dst):
            reason = f"{dst} exists again (never overwritten)"
        if reason is None:
            try:
                _move_file(src, dst)
            except OSError as exc:
                reason = str(exc)
        if reason is not None:
            report.skipped.append(Skipped(src, reason))
            continue
        follow(src, dst)
        report.moved.append({"id": entry.get("id"), "from": src, "to": dst})
    return report
