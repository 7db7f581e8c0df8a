"""Offline roots: an unmounted drive must never look like deleted photos.

A root (a folder or file the user indexed) that holds pictures in the library is *offline*
when it is now

- **missing** (an unmounted drive whose mount point is gone, a folder moved away),
- **on another device** than when it was last indexed (the mount point is now an empty folder
  on the parent file system), or
- **empty** (a mount point with nothing mounted), or a scan of it finds no pictures at all.

Its pictures stay in the library, untouched (vectors, tags, ids), and are left out of search
results until the root is back; then the next `index` or `watch` catch-up brings it online
again. Only `clipsearch offline --remove ROOT` forgets them. (Immich treats offline libraries
the same way.)
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from clipsearch.media import fs
from clipsearch.store.store import RootRow, Store

MISSING = "missing: its drive is not mounted, or it was moved or renamed"
OTHER_DEVICE = "on another device than when it was indexed: its drive is not mounted?"
EMPTY = "empty: its drive is not mounted?"
NO_PICTURES = "no pictures found in it any more: its drive is not mounted?"


@dataclass(frozen=True)
class OfflineRoot:
    """An offline root, why, and how many pictures it keeps in the library."""

    path: str
    reason: str
    images: int


@dataclass
class RootStates:
    """The registered roots an ingest run touches: online ones (with their device) and
    offline ones (with the reason)."""

    online: dict[str, int]  # path -> st_dev
    offline: dict[str, OfflineRoot]

    def offline_root_of(self, path: str) -> str | None:
        """The offline root `path` is at or under, if any."""
        return next((r for r in self.offline if fs.is_under(path, r)), None)


def related(roots: list[RootRow], paths: list[str]) -> list[RootRow]:
    """Registered roots at, above or below any of `paths`."""
    return [
        r for r in roots if any(fs.is_under(p, r.path) or fs.is_under(r.path, p) for p in paths)
    ]


def probe(
    root: RootRow, images: int, *, accept_device: bool = False
) -> tuple[int | None, str | None]:
    """(device, None) when `root` is online; (None, reason) when it is offline.

    A root without pictures in the library (`images` of them) is never offline: there is
    nothing to keep. `accept_device` trusts a root that moved to another device (a restored
    or new drive).
    """
    device, reason = _looks(root, accept_device)
    if reason is not None and images:
        return None, reason
    return device, None


def _looks(root: RootRow, accept_device: bool) -> tuple[int | None, str | None]:
    """What the disk says, as if the library held pictures under `root`."""
    try:
        st = os.stat(root.path)
    except FileNotFoundError:
        if root.kind == "file" and _has_entries(os.path.dirname(root.path)):
            return None, None  # a single file was deleted; its folder is still there
        return None, MISSING
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if root.device is not None and st.st_dev != root.device and not accept_device:
        return st.st_dev, OTHER_DEVICE
    if stat.S_ISDIR(st.st_mode):
        try:
            with os.scandir(root.path) as entries:
                if next(entries, None) is None:
                    return st.st_dev, EMPTY
        except OSError as exc:
            return st.st_dev, f"cannot be listed ({exc.strerror or exc})"
    return st.st_dev, None


def _has_entries(folder: str) -> bool:
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is not None
    except OSError:
        return False


def check(store: Store, paths: list[str], *, accept_device: bool = False) -> RootStates:
    """The states of the registered roots related to `paths` (before scanning)."""
    states = RootStates({}, {})
    for root in related(store.roots(), paths):
        device, reason = _looks(root, accept_device)
        if reason is not None:  # count what it holds only when it looks offline (cheap path)
            images = store.count_under([root.path])
            if images:
                states.offline[root.path] = OfflineRoot(root.path, reason, images)
                continue
        if device is not None:
            states.online[root.path] = device
    return states
