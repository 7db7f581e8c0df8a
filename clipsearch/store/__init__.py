"""The SQLite store: the library's source of truth (image rows, vectors, failures, roots)."""

from clipsearch.store.db import open_database
from clipsearch.store.store import ImageRow, Store

__all__ = ["ImageRow", "Store", "open_database"]
