"""clipsearch: local-first semantic image search with CLIP.

The Python API lives in :mod:`clipsearch.library`::

    from clipsearch import Library

    with Library.open("~/clip-lib") as lib:
        lib.index(["~/Pictures"])
        for hit in lib.search("a dog on a beach", k=5):
            print(hit.score, hit.path)

Nothing heavy (torch, faiss, open_clip) is imported here: models load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["ClipsearchError", "Library", "__version__"]

if TYPE_CHECKING:
    from clipsearch.errors import ClipsearchError
    from clipsearch.library import Library


def __getattr__(name: str) -> Any:
    # Lazy re-exports keep `import clipsearch` cheap.
    if name == "Library":
        from clipsearch.library import Library

        return Library
    if name == "ClipsearchError":
        from clipsearch.errors import ClipsearchError

        return ClipsearchError
    raise AttributeError(name)
