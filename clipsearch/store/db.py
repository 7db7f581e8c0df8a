"""Opening the SQLite database: pragmas for one writer + many readers, and migrations.

Alembic migrations in `migrations/` are applied automatically when a library is opened by a
process that may write; a database made by a newer clipsearch is refused with a clear error.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DatabaseError, OperationalError

from clipsearch.errors import LibraryError
from clipsearch.resources import migrations_dir


def open_database(path: Path, *, readonly: bool = False) -> Engine:
    """An engine for the library database at `path` (WAL, NORMAL sync, busy timeout)."""
    url = f"sqlite:///{path}"
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        cur = dbapi_conn.cursor()
        if not readonly:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
    except (DatabaseError, OperationalError) as exc:
        engine.dispose()
        raise LibraryError(
            f"cannot open the library database {path}: {exc.orig}",
            hint="If the file is damaged, move it aside and index again: the photos are not "
            "touched, only their vectors need re-computing.",
        ) from None
    return engine


def _alembic_config():  # -> alembic.config.Config
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


def schema_state(engine: Engine) -> tuple[str | None, str]:
    """(current revision of the database, newest revision this clipsearch knows)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    head = script.get_current_head()
    assert head is not None
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current is not None and current != head:
        try:
            script.get_revision(current)
        except Exception:
            raise LibraryError(
                f"this library was made by a newer clipsearch (schema {current})",
                hint="Upgrade clipsearch to open it.",
            ) from None
    return current, head


def migrate(engine: Engine) -> None:
    """Bring the database schema up to date (no-op when it already is)."""
    from alembic import command

    current, head = schema_state(engine)
    if current == head:
        return
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
