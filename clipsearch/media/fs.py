"""Walking photo folders: which files are images, their size and mtime, what to skip.

Hidden files and folders (a name starting with '.') are skipped, as are the library's own
folder and symlinked folders (no loops), and a RAW photo with a JPEG (or other picture) of
the same name beside it: RAW+JPEG shooters get each photo once. Folders that cannot be
listed are reported to `on_error` and the walk goes on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
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


def scan(
    roots: Iterable[str],
    *,
    exclude: Iterable[str] = (),
    on_error: Callable[[str, str], None] | None = None,
) -> Iterator[FileStat]:
    """Yield every image file under `roots` (normalised paths), skipping `exclude` folders."""
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
        yield from _walk(root, [e for e in excluded if not is_under(root, e)], on_error)


def _walk(
    top: str, excluded: list[str], on_error: Callable[[str, str], None] | None
) -> Iterator[FileStat]:
    stack = [top]
    while stack:
        folder = stack.pop()
        if any(is_under(folder, e) for e in excluded):
            continue
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            if on_error:
                on_error(folder, f"cannot list folder ({exc.strerror or exc})")
            continue
        subfolders = []
        pictures = None  # stems of the folder's pictures, once it holds a RAW photo
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(entry.path)
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
