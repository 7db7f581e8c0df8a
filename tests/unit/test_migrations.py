"""Migrations build the schema from nothing, and the models match what they build."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from clipsearch.store.db import SCHEMA_HEAD, migrate, open_database, schema_state
from clipsearch.store.tables import include_object, metadata


@pytest.mark.filterwarnings("ignore:.*expression-based index")  # checked apart below
def test_upgrade_from_empty_matches_models(tmp_path):
    engine = open_database(tmp_path / "x.db")
    assert schema_state(engine)[0] is None
    migrate(engine)
    current, head = schema_state(engine)
    assert current == head
    with engine.connect() as conn:
        opts = {"include_object": include_object}
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)
    assert diff == [], diff
    tables = set(inspect(engine).get_table_names())
    assert {"images", "failures", "meta", "vector_log", "roots", "counters"} <= tables
    with engine.connect() as conn:  # what compare_metadata cannot see: triggers, expressions
        sql = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master").all())
        kept = dict(conn.exec_driver_sql("SELECT name, n FROM counters").all())
    assert "coalesce(taken_at, dated)" in sql["ix_images_dated"]
    assert sum(name.startswith("counters_") for name in sql) == 7
    assert set(kept) == {"images", "vectors", "failures", "source:photos", "source:generated"}


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


def test_wal_mode_and_large_pages(tmp_path):
    engine = open_database(tmp_path / "x.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 16_384


def test_existing_library_upgrades_in_place_and_keeps_its_data(tmp_path):
    import sqlite3

    import numpy as np
    from alembic import command
    from sqlalchemy import text

    from clipsearch.store.db import _alembic_config

    old = sqlite3.connect(tmp_path / "old.db")  # made by a release with 4 KB pages
    old.execute("PRAGMA page_size=4096")
    old.execute("CREATE TABLE made_by_sqlite (x)")
    old.close()
    engine = open_database(tmp_path / "old.db")
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")  # a library made by the first release
    vec = np.array([0.5, -0.5, 0.5, 0.5], "<f4")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO images (id, path, size, mtime_ns, content_hash, source, embedding, "
                "added_at, updated_at) VALUES (7, '/p/a.jpg', 1, 2, 'h', 'photos', :e, 0, 0)"
            ),
            {"e": vec.tobytes()},
        )
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")  # the release before vectors moved out of the rows
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tags (image_id, label, score) VALUES (7, 'dog', 0.9)"))
        conn.execute(
            text(
                "INSERT INTO images (id, path, size, mtime_ns, content_hash, source, embedding, "
                "taken_at, added_at, updated_at) "
                "VALUES (8, '/p/b.jpg', 1, 2, 'h', 'generated', :e, '2020-01-02T03:04:05', 0, 0)"
            ),
            {"e": vec.tobytes()},
        )
    migrate(engine)
    assert schema_state(engine)[0] == schema_state(engine)[1]
    with engine.begin() as conn:
        assert conn.execute(text("SELECT path FROM images WHERE id = 7")).scalar() == "/p/a.jpg"
        assert conn.execute(text("SELECT count(*) FROM tags")).scalar() == 1  # kept
        stored = conn.execute(text("SELECT data FROM vectors WHERE image_id = 7")).scalar()
        assert np.array_equal(np.frombuffer(stored, "<f2").astype(np.float32), vec)
        assert conn.execute(text("SELECT dated FROM images WHERE id = 7")).scalar()
        assert conn.execute(text("SELECT dated FROM images WHERE id = 8")).scalar() is None
        kept = dict(conn.execute(text("SELECT name, n FROM counters")).all())
        assert kept == {
            "images": 2,
            "vectors": 2,
            "failures": 0,
            "source:photos": 1,
            "source:generated": 1,
        }
        conn.execute(text("DELETE FROM images WHERE id = 8"))
        conn.execute(text("DELETE FROM images WHERE id = 7"))
        assert conn.execute(text("SELECT count(*) FROM tags")).scalar() == 0  # cascades
        assert conn.execute(text("SELECT count(*) FROM vectors")).scalar() == 0
        assert conn.execute(text("SELECT sum(n) FROM counters")).scalar() == 0  # kept
        # compacted once, into 16 KB pages, and back in WAL mode
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 16_384
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_the_fast_schema_check_knows_the_newest_migration():
    from alembic.script import ScriptDirectory

    from clipsearch.store.db import SCHEMA_HEAD, _alembic_config

    assert ScriptDirectory.from_config(_alembic_config()).get_current_head() == SCHEMA_HEAD


def test_generations_from_0007_keep_their_rows_and_take_every_drawer_name(tmp_path):
    from alembic import command
    from sqlalchemy import text

    from clipsearch.store import Store
    from clipsearch.store.db import _alembic_config

    engine = open_database(tmp_path / "old.db")
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0007")  # a library made before the transformer drawers
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO images (id, path, size, mtime_ns, content_hash, source, "
                "added_at, updated_at) VALUES (3, '/g/a.png', 1, 2, 'h', 'generated', 0, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO generations (image_id, prompts, seed, steps, width, height, drawer, "
                "clip_model, vqgan_model, params, created_at) VALUES (3, '[[\"a cat\", 1.0]]', "
                "5, 20, 64, 64, 'vqgan', 'tiny', 'tiny-vqgan', '{\"lr\": 0.1}', 12.5)"
            )
        )
    assert _drawer_width(engine) == 16

    migrate(engine)
    assert schema_state(engine) == (SCHEMA_HEAD, SCHEMA_HEAD)
    assert _drawer_width(engine) == 32
    store = Store(engine)
    kept = store.generation(3)
    assert kept is not None
    assert (kept["drawer"], kept["seed"], kept["vqgan_model"]) == ("vqgan", 5, "tiny-vqgan")
    assert (kept["prompts"], kept["created_at"]) == ('[["a cat", 1.0]]', 12.5)

    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO images (id, path, size, mtime_ns, content_hash, source, "
                "added_at, updated_at) VALUES (4, '/g/b.png', 1, 2, 'h', 'photos', 0, 0)"
            )
        )
    values = dict(kept, drawer="transformer+vqgan", seed=6)
    del values["image_id"]
    store.record_generation(4, values)
    assert store.generation(4)["drawer"] == "transformer+vqgan"
    with engine.begin() as conn:  # the copied table still cascades from its image
        conn.execute(text("DELETE FROM images WHERE id = 3"))
        assert conn.execute(text("SELECT image_id FROM generations")).scalars().all() == [4]
    engine.dispose()


def _drawer_width(engine) -> int:
    (drawer,) = [c for c in inspect(engine).get_columns("generations") if c["name"] == "drawer"]
    return drawer["type"].length
