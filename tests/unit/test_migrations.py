"""Migrations build the schema from nothing, and the models match what they build."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from clipsearch.store.db import migrate, open_database, schema_state
from clipsearch.store.models import Base


def test_upgrade_from_empty_matches_models(tmp_path):
    engine = open_database(tmp_path / "x.db")
    assert schema_state(engine)[0] is None
    migrate(engine)
    current, head = schema_state(engine)
    assert current == head
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], diff
    tables = set(inspect(engine).get_table_names())
    assert {"images", "failures", "meta", "vector_log", "roots"} <= tables


def test_migrate_is_idempotent(tmp_path):
    engine = open_database(tmp_path / "x.db")
    migrate(engine)
    migrate(engine)
    assert schema_state(engine)[0] == schema_state(engine)[1]


def test_database_from_a_newer_clipsearch_is_refused(tmp_path):
    import pytest

    from clipsearch.errors import LibraryError

    engine = open_database(tmp_path / "x.db")
    migrate(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(LibraryError, match="newer clipsearch"):
        schema_state(engine)


def test_wal_mode(tmp_path):
    engine = open_database(tmp_path / "x.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
