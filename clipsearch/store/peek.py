"""A glance at a library database with the standard library's sqlite3 alone: which model and
precision made its vectors. A cold search uses it to start loading the model while the rest of
clipsearch (SQLAlchemy, FAISS) loads; the library itself checks everything again."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def model_facts(db_path: Path) -> dict[str, str]:
    """{"model", "precision"} as the library records them ({} if it cannot tell)."""
    if not db_path.is_file():
        return {}
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)
    except (sqlite3.Error, UnicodeDecodeError):  # the latter: a damaged schema (see db.py)
        return {}
    try:
        rows = conn.execute("SELECT key, value FROM meta WHERE key IN ('model', 'precision')")
        return {str(k): str(v) for k, v in rows}
    except (sqlite3.Error, UnicodeDecodeError):
        return {}
    finally:
        conn.close()
