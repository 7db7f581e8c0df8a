"""Walking photo folders: which files are images, their size and mtime, what to skip.

Hidden files and folders (a name starting with '.') are skipped, as are the library's own
folder and symlinked folders (no loops), and a RAW photo with a JPEG (or other picture) of
the same name beside it: RAW+JPEG shooters get each photo once. Folders that cannot be
listed are reported to `on_error` and the walk goes on.

A walk can keep a `FolderLog`: each folder's modification time as seen before it was listed.
Given the times a previous walk recorded, a folder whose time has not moved is not listed
again (`index --quick`): adding, removing or renaming a file changes its folder's time,
editing a file in place does not (see `FolderLog`).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from clipsearch.errors import ClipsearchError

# Camera RAW formats: decoded with rawpy (LibRaw), see `media.raw`.
RAW_EXTENSIONS = frozenset(
    {
        ".dng",  # Adobe, and many phones
        ".cr2",
        ".cr3",
        ".crw",  # Canon
        ".nef",
        ".nrw",  # Nikon
        ".arw",
        ".srf",
        ".sr2",  # Sony
        ".raf",  # Fujifilm
        ".orf",  # Olympus / OM System
        ".rw2",  # Panasonic (not .raw: too many other kinds of file use it)
        ".rwl",  # Leica
        ".pef",  # Pentax
        ".srw",  # Samsung
        ".3fr",
        ".fff",  # Hasselblad
        ".iiq",  # Phase One
        ".erf",  # Epson
        ".kdc",
        ".dcr",  # Kodak
        ".mrw",  # Minolta
        ".mos",  # Leaf
        ".mef",  # Mamiya
        ".x3f",  # Sigma
    }
)
IMAGE_EXTENSIONS = (
    frozenset(
        {
            ".jpg",
            ".jpeg",
            ".jpe",
            ".jfif",
            ".png",
            ".webp",
            ".gif",
            ".bmp",
            ".dib",
            ".tif",
            ".tiff",
            ".heic",
            ".heif",
            ".hif",
        }
    )
    | RAW_EXTENSIONS
)


def _extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def is_image_name(name: str) -> bool:
    """True if the file name has an image extension clipsearch reads (RAW photos included)."""
    return _extension(name) in IMAGE_EXTENSIONS


def is_raw_name(name: str) -> bool:
    """True if the file name has a camera RAW extension (.dng, .cr2, .nef, .arw...)."""
    return _extension(name) in RAW_EXTENSIONS


def raw_has_sibling(name: str, names: Iterable[str]) -> bool:
    """True if `name` is a RAW photo and `names` (its folder) holds a picture of the same stem.

    A camera shooting RAW+JPEG writes IMG_0001.CR2 next to IMG_0001.JPG: the JPEG is the
    picture people see and search, so the scan indexes it and leaves the RAW out (as rclip
    does); a RAW on its own is indexed. Stems compare without case; hidden files do not count.
    """
    return is_raw_name(name) and _stem(name) in _picture_stems(names)


def _stem(name: str) -> str:
    return name[: name.rfind(".")].casefold()


def _picture_stems(names: Iterable[str]) -> set[str]:
    """Stems of the (non-RAW) pictures among `names`."""
    return {
        _stem(n) for n in names if not n.startswith(".") and is_image_name(n) and not is_raw_name(n)
    }


@dataclass(frozen=True)
class FileStat:
    """A file as the scan saw it."""

    path: str  # absolute
    size: int
    mtime_ns: int


def display(path: str) -> str:
    """`path` for people: a name that is not valid UTF-8 shows its odd bytes escaped.

    Paths from the file system may carry surrogate escapes (PEP 383) for bytes that are not
    UTF-8 (`caf\xe9.jpg` from an old Windows or FAT volume); printing them as-is fails or
    shows a replacement character. Valid paths come back unchanged.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return path


def normalize_root(path: str | Path) -> str:
    """An absolute, symlink-resolved form of a folder or file the user named."""
    return os.path.realpath(os.path.expanduser(str(path)))


def is_under(path: str, root: str) -> bool:
    """True if `path` is `root` or inside it (both normalised)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_roots(
    paths: Iterable[str | Path], *, known: Callable[[str], bool] | None = None
) -> list[str]:
    """Normalise the roots a user asked for; a missing one is an error, not an empty folder.

    (Treating a typo or an unmounted drive as "everything was deleted" would drop a
    whole library.) A missing path for which `known(path)` is true is kept: the library has
    pictures there, and the ingest run keeps them as an offline root.
    """
    roots: list[str] = []
    for raw in paths:
        root = normalize_root(raw)
        if not os.path.exists(root) and not (known and known(root)):
            raise ClipsearchError(
                f"path not found: {raw}",
                hint="Check the spelling, or mount the drive, then run the command again.",
            )
        if root not in roots:
            roots.append(root)
    # A root inside another root adds nothing.
    return [r for r in roots if not any(o != r and is_under(r, o) for o in roots)]


# A folder modified this recently is not recorded as seen: a file added in the same tick of a
# coarse clock (FAT: 2 s; some network file systems: 1 s) would leave its time unchanged.
RACY_NS = 3_000_000_000
UNTRUSTED = -1  # a folder's recorded time when it is not to be trusted: listed next time


@dataclass
class FolderLog:
    """What a walk learns of folders, for walks that skip unchanged ones (`index --quick`).

    `known`: folder -> modification time (ns) recorded by an earlier complete walk; a folder
    whose time is unchanged is not listed (its files are taken as unchanged, its subfolders
    come from `known`) and goes to `skipped`. None lists every folder. `seen`: every folder
    this walk reached, with its time as seen *before* it was listed (a folder changed while
    being listed shows a newer time next time); UNTRUSTED for a time too recent to trust or
    a folder that could not be listed (recorded all the same: an unchanged parent's
    subfolders come from the record). A file edited in place keeps its folder's time: such
    walks miss it, a full walk (or the watch daemon, as it happens) does not.
    """

    known: dict[str, int] | None = None
    since_ns: int = field(default_factory=time.time_ns)
    seen: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    _children: dict[str, list[str]] | None = None

    def visit(self, folder: str, mtime_ns: int) -> bool:
        """Note `folder`; True if it is unchanged since it was recorded (not to be listed)."""
        trusted = mtime_ns < self.since_ns - RACY_NS
        self.seen[folder] = mtime_ns if trusted else UNTRUSTED
        if trusted and self.known is not None and self.known.get(folder) == mtime_ns:
            self.skipped.append(folder)
            return True
        return False

    def known_children(self, folder: str) -> list[str]:
        """The recorded subfolders of `folder` (an unchanged folder has the same ones)."""
        if self._children is None:
            self._children = {}
            for path in sorted(self.known or ()):
                self._children.setdefault(os.path.dirname(path), []).append(path)
        return self._children.get(folder, [])


def scan(
    roots: Iterable[str],
    *,
    exclude: Iterable[str] = (),
    on_error: Callable[[str, str], None] | None = None,
    folders: FolderLog | None = None,
) -> Iterator[FileStat]:
    """Yield every image file under `roots` (normalised paths), skipping `exclude` folders
    (and, with a `folders` log that knows them, folders unchanged since it was recorded)."""
    excluded = [normalize_root(e) for e in exclude]
    for root in roots:
        try:
            st = os.stat(root)
        except OSError as exc:
            if on_error:
                on_error(root, f"cannot read ({exc.strerror or exc})")
            continue
        if stat.S_ISREG(st.st_mode):
            if is_image_name(os.path.basename(root)):
                yield FileStat(root, st.st_size, st.st_mtime_ns)
            continue
        # An excluded folder that contains the root itself (indexing LIBRARY/generated, say)
        # does not apply: exclusions hide folders *below* what the user asked for.
        excluded_here = [e for e in excluded if not is_under(root, e)]
        yield from _walk(root, st.st_mtime_ns, excluded_here, on_error, folders)


def _walk(
    top: str,
    top_mtime_ns: int,
    excluded: list[str],
    on_error: Callable[[str, str], None] | None,
    log: FolderLog | None,
) -> Iterator[FileStat]:
    stack: list[tuple[str, int]] = [(top, top_mtime_ns)]
    while stack:
        folder, mtime_ns = stack.pop()
        if any(is_under(folder, e) for e in excluded):
            continue
        if log is not None and log.visit(folder, mtime_ns):
            stack.extend(reversed(_present_folders(log.known_children(folder))))
            continue
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            if log is not None:
                log.seen[folder] = UNTRUSTED  # not listed: to be listed next time
            if on_error:
                on_error(folder, f"cannot list folder ({exc.strerror or exc})")
            continue
        subfolders: list[tuple[str, int]] = []
        pictures = None  # stems of the folder's pictures, once it holds a RAW photo
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    sub_mtime = entry.stat(follow_symlinks=False).st_mtime_ns if log else 0
                    subfolders.append((entry.path, sub_mtime))
                    continue
                if not is_image_name(entry.name):
                    continue
                if is_raw_name(entry.name):
                    if pictures is None:
                        pictures = _picture_stems(e.name for e in entries)
                    if _stem(entry.name) in pictures:
                        continue  # RAW+JPEG: the JPEG stands for both
                st = entry.stat()  # follows a symlinked file
            except FileNotFoundError:
                if on_error and entry.is_symlink():
                    on_error(entry.path, "broken link: the file it points to is missing")
                continue
            except OSError as exc:
                if on_error:
                    on_error(entry.path, f"cannot stat ({exc.strerror or exc})")
                continue
            if stat.S_ISREG(st.st_mode):
                yield FileStat(entry.path, st.st_size, st.st_mtime_ns)
        stack.extend(reversed(subfolders))


def _present_folders(paths: list[str]) -> list[tuple[str, int]]:
    """(path, mtime) of those of `paths` that are still real folders (not links)."""
    out = []
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            continue  # gone: its pictures are missing, which the caller finds from its rows
        if stat.S_ISDIR(st.st_mode):
            out.append((path, st.st_mtime_ns))
    return out
