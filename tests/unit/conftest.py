"""Unit-test fixtures: fresh, migrated library databases (real SQLite files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipsearch.store import Store, open_database
from clipsearch.store.db import migrate


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A new library database with the current schema and a 4-d vector size."""
    engine = open_database(tmp_path / "clipsearch.db")
    migrate(engine)
    s = Store(engine)
    s.set_meta({"model": "fake", "dim": "4"})
    yield s
    engine.dispose()
