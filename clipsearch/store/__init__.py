"""The SQLite store: the library's source of truth (image rows, vectors, failures, roots).

Importing the package is cheap (`store.peek` needs no SQLAlchemy); `Store`, `ImageRow` and
`open_database` load SQLAlchemy when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ImageRow", "Store", "open_database"]

if TYPE_CHECKING:
    from clipsearch.store.db import open_database
    from clipsearch.store.store import ImageRow, Store


def __getattr__(name: str) -> Any:
    if name == "open_database":
        from clipsearch.store.db import open_database

        return open_database
    if name in ("ImageRow", "Store"):
        from clipsearch.store import store

        return getattr(store, name)
    raise AttributeError(name)
