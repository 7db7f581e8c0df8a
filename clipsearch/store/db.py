"""Opening the SQLite database: pragmas for one writer + many readers, and migrations.

Alembic migrations in `migrations/` are applied automatically when a library is opened by a
process that may write; a database made by a newer clipsearch is refused with a clear error.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DatabaseError, OperationalError

from clipsearch.errors import DiskFull, LibraryDamaged, LibraryError
from clipsearch.resources import migrations_dir

notice = logging.getLogger("clipsearch.notice")
PAGE_SIZE = 16_384  # bytes per database page (new libraries, and on compaction)
_FULL = ("database or disk is full", "disk i/o error")
_DAMAGED = ("malformed", "file is not a database", "database corrupt")


def open_database(path: Path, *, readonly: bool = False) -> Engine:
    """An engine for the library database at `path` (WAL, NORMAL sync, busy timeout)."""
    url = f"sqlite:///{path}"
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # TEXT that is not valid UTF-8 (file names, see tables.FsPath) decodes losslessly.
        dbapi_conn.text_factory = _decode_text
        cur = dbapi_conn.cursor()
        try:
            if not readonly:
                # Only a new, empty database takes it (an existing one keeps its page size
                # until compacted, see `migrate`): 16 KB pages hold 15 float16 512-d vectors
                # where 4 KB pages hold 3 with a quarter of each page unused.
                cur.execute(f"PRAGMA page_size={PAGE_SIZE}")
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
        except UnicodeDecodeError as exc:  # a damaged schema (see storage_error)
            raise (storage_error(path, exc) or exc) from None
        finally:
            cur.close()

    @event.listens_for(engine, "handle_error")
    def _translate(ctx: object) -> None:
        error = storage_error(path, getattr(ctx, "original_exception", None))
        if error is not None:
            raise error from None

    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
    except LibraryError:
        engine.dispose()
        raise
    except (DatabaseError, OperationalError) as exc:
        engine.dispose()
        raise LibraryError(
            f"cannot open the library database {path}: {exc.orig}",
            hint="If the file is damaged, move it aside and index again: the photos are not "
            "touched, only their vectors need re-computing.",
        ) from None
    return engine


def storage_error(db: Path, exc: BaseException | None) -> LibraryError | None:
    """A clear error for a full disk or a damaged database (None for anything else).

    SQLite rolls the transaction back in both cases: what was committed before stays.
    """
    if isinstance(exc, UnicodeDecodeError) and isinstance(exc.object, bytes):
        # SQLite's own message quoting a damaged schema's name in bytes that are not UTF-8:
        # Python's sqlite3 fails to decode the message and raises this instead of the error.
        exc = sqlite3.DatabaseError(exc.object.decode("utf-8", "replace"))
    if not isinstance(exc, sqlite3.Error):
        return None
    text = str(exc).lower()
    folder = db.parent
    if any(s in text for s in _FULL):
        return DiskFull(
            f"cannot write to the library {folder}: the disk is full ({exc})",
            hint="Nothing committed was lost; the last batch was not saved and will be redone. "
            f"Free some space on the disk holding {folder} (see `df -h {folder}`), then run "
            "the command again.",
        )
    if any(s in text for s in _DAMAGED):
        return LibraryDamaged(
            f"the library database {db} is damaged ({exc})",
            hint="Your photos are not touched. Move the damaged file aside "
            f"(mv {db} {db}.damaged) and run your index command again (the library is "
            f"rebuilt from your photos), or restore {db} from a backup; "
            f"`sqlite3 {db}.damaged .recover` may salvage tags and provenance.",
        )
    if "readonly" in text or "read-only" in text:
        return LibraryError(
            f"cannot write to the library {folder}: it is read-only ({exc})",
            hint="Check the permissions of the library folder and its files, or use another "
            "--library.",
        )
    return None


def _decode_text(raw: bytes) -> str:
    return str(raw, "utf-8", "surrogateescape")


def _alembic_config():  # -> alembic.config.Config
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


SCHEMA_HEAD = "0009"  # the newest migration (a test checks it against Alembic's head)


def schema_state(engine: Engine) -> tuple[str | None, str]:
    """(current revision of the database, newest revision this clipsearch knows).

    A database already at SCHEMA_HEAD is recognised without importing Alembic (half a second
    of a cold search); anything else asks Alembic.
    """
    try:
        with engine.connect() as conn:
            current = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except (DatabaseError, OperationalError):
        current = None
    if current == SCHEMA_HEAD:
        return current, SCHEMA_HEAD
    return _alembic_state(engine)


def _alembic_state(engine: Engine) -> tuple[str | None, str]:
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


COMPACT_BEFORE = "0005"  # upgrading from an older schema frees much space: compact after


def migrate(engine: Engine) -> None:
    """Bring the database schema up to date (no-op when it already is)."""
    from alembic import command

    current, head = schema_state(engine)
    if current == head:
        return
    cfg = _alembic_config()
    if current is not None:
        notice.info("upgrading the library database (once) ...")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    if current is not None and current < COMPACT_BEFORE:
        compact(engine)


def compact(engine: Engine) -> None:
    """VACUUM the database into PAGE_SIZE pages (out of WAL mode for it, then back)."""
    notice.info("compacting the library database (once) ...")
    engine.dispose()  # pooled connections would keep the database in WAL mode
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
        conn.exec_driver_sql(f"PRAGMA page_size={PAGE_SIZE}")
        conn.exec_driver_sql("VACUUM")
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
