"""Where the files the package ships live (models, migrations).

A wheel carries them inside the package (`clipsearch/_data`, `clipsearch/_migrations`);
an editable install or a source checkout reads the top-level `data/` and `migrations/`.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent
_REPO = _PKG.parent


def data_dir() -> Path:
    """The folder holding shipped data (tiny models, demo inputs)."""
    inside = _PKG / "_data"
    return inside if inside.is_dir() else _REPO / "data"


def migrations_dir() -> Path:
    """The Alembic script folder."""
    inside = _PKG / "_migrations"
    return inside if inside.is_dir() else _REPO / "migrations"


def model_configs_dir() -> Path:
    """open_clip model configs (JSON) that the project defines."""
    return _PKG / "model" / "configs"
