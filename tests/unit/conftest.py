"""Unit-test fixtures: fresh, migrated library databases (real SQLite files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipsearch.store import Store, open_database
from clipsearch.store.db import migrate
from clipsearch.store.lock import WriterLock
from clipsearch.store.vector_cache import VectorCache


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A new library database with the current schema and a 4-d vector size."""
    engine = open_database(tmp_path / "clipsearch.db")
    migrate(engine)
    s = Store(engine)
    s.set_meta({"model": "fake", "dim": "4"})
    yield s
    engine.dispose()


@pytest.fixture
def library(tmp_path: Path, store: Store):
    """(folder, VectorCache) of a library on `store`, its writer lock held."""
    folder = tmp_path / "lib"
    folder.mkdir()
    lock = WriterLock(folder)
    lock.acquire("test")
    yield folder, VectorCache(folder, store, lock)
    lock.release()
