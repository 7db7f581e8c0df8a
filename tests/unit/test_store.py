"""The store: one transaction per commit, the vector log, moves, filters (real SQLite)."""

from __future__ import annotations

import numpy as np

from clipsearch.store.store import Changes, FailureRow, NewImage, Store


def _img(path: str, seed: int, **kw) -> NewImage:
    vec = np.random.default_rng(seed).normal(size=4).astype(np.float32)
    return NewImage(path, 10 + seed, 1_000 + seed, f"hash{seed}", vec / np.linalg.norm(vec), **kw)


def test_apply_inserts_rows_and_vectors_and_logs_each_change(store: Store) -> None:
    new_ids, seq = store.apply(Changes(inserts=[_img("/p/a.jpg", 1), _img("/p/b.jpg", 2)]))
    assert len(new_ids) == 2 and seq is not None
    ids, vecs = store.get_vectors(new_ids, 4)
    assert sorted(ids.tolist()) == sorted(new_ids) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-6)
    assert [op for _, _, op in store.log_since(0)] == ["add", "add"]
    assert store.counts() == {"images": 2, "vectors": 2, "failures": 0, "photos": 2, "generated": 0}


def test_replace_and_remove_are_logged_and_prune_forgets_saved_entries(store: Store) -> None:
    (a, b), _ = store.apply(Changes(inserts=[_img("/p/a.jpg", 1), _img("/p/b.jpg", 2)]))
    before = store.max_seq()
    _, seq = store.apply(Changes(replaces=[(a, _img("/p/a.jpg", 3))], removes=[b]))
    assert [(i, op) for _, i, op in store.log_since(before)] == [(a, "add"), (b, "remove")]
    assert store.get_rows([b]) == {} and store.get_rows([a])[a].content_hash == "hash3"
    store.prune_log(seq)
    assert store.log_since(0) == [] and store.max_seq() == seq  # the position survives pruning


def test_a_failure_is_recorded_once_and_cleared_when_the_file_is_indexed(store: Store) -> None:
    bad = FailureRow("/p/bad.jpg", 5, 7, "truncated or corrupt image data", 0.0)
    store.apply(Changes(failures=[bad]))
    store.apply(Changes(failures=[bad]))
    assert [f.reason for f in store.failures()] == ["truncated or corrupt image data"]
    store.apply(Changes(inserts=[_img("/p/bad.jpg", 1)], cleared_failures=["/p/bad.jpg"]))
    assert store.failures() == []


def test_rows_under_a_folder_are_exactly_the_folder_and_its_contents(store: Store) -> None:
    store.apply(Changes(inserts=[_img("/p/a/x.jpg", 1), _img("/p/ab/y.jpg", 2), _img("/p/a", 3)]))
    assert sorted(store.rows_under(["/p/a"])) == ["/p/a", "/p/a/x.jpg"]
    assert sorted(store.rows_under(["/p/a/"])) == ["/p/a", "/p/a/x.jpg"]


def test_moving_a_folder_keeps_ids_and_replaces_what_was_at_the_target(store: Store) -> None:
    (x, y, old), _ = store.apply(
        Changes(inserts=[_img("/p/a/x.jpg", 1), _img("/p/a/s/y.jpg", 2), _img("/p/b/x.jpg", 3)])
    )
    moved, removed, seq = store.move_paths("/p/a", "/p/b")
    assert moved == 2 and removed == [old] and seq is not None
    rows = store.rows_under(["/p"])
    assert {p: r.id for p, r in rows.items()} == {"/p/b/x.jpg": x, "/p/b/s/y.jpg": y}
    assert store.log_since(seq - 1) == [(seq, old, "remove")]


def test_filters_by_folder_source_and_date(store: Store) -> None:
    ids, _ = store.apply(
        Changes(
            inserts=[
                _img("/p/2023.jpg", 1, taken_at="2023-05-01T10:00:00"),
                _img("/p/2024.jpg", 2, taken_at="2024-07-01T10:00:00"),
                _img("/q/gen.png", 3, source="generated", taken_at="2024-08-01T00:00:00"),
            ]
        )
    )
    old, new, gen = ids
    assert store.filter_ids(roots=["/p"]).tolist() == [old, new]
    assert store.filter_ids(source="generated").tolist() == [gen]
    assert store.filter_ids(after="2024-01-01").tolist() == [new, gen]
    assert store.filter_ids(after="2024-01-01", before="2024-08-01").tolist() == [new]


def test_clearing_vectors_keeps_rows_and_logs_removals(store: Store) -> None:
    ids, _ = store.apply(Changes(inserts=[_img("/p/a.jpg", 1), _img("/p/b.jpg", 2)]))
    seq = store.max_seq()
    assert store.clear_vectors({"model": "other", "dim": "8"}) == 2
    assert store.counts()["images"] == 2 and store.vector_count() == 0
    assert sorted(i for _, i, op in store.log_since(seq) if op == "remove") == sorted(ids)
    assert store.get_meta("model") == "other" and store.dim() == 8


def test_vectors_are_kept_in_float16_apart_from_the_rows(store: Store) -> None:
    import sqlite3

    img = _img("/p/a.jpg", 1)
    (i,), _ = store.apply(Changes(inserts=[img]))
    with sqlite3.connect(store.path) as conn:
        (blob,) = conn.execute("SELECT data FROM vectors WHERE image_id = ?", (i,)).fetchone()
        columns = [c[1] for c in conn.execute("PRAGMA table_info(images)")]
    assert len(blob) == 4 * 2 and "embedding" not in columns  # 2 bytes a dimension
    _, vecs = store.get_vectors([i], 4)
    assert float(vecs[0] @ img.vector) > 0.9999


def _scanned(store: Store) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(store.path) as conn:
        one = lambda q: conn.execute(q).fetchone()[0]  # noqa: E731
        return {
            "images": one("SELECT count(*) FROM images"),
            "vectors": one("SELECT count(*) FROM vectors"),
            "failures": one("SELECT count(*) FROM failures"),
            "photos": one("SELECT count(*) FROM images WHERE source = 'photos'"),
            "generated": one("SELECT count(*) FROM images WHERE source = 'generated'"),
        }


def test_counts_are_kept_through_every_kind_of_change(store: Store) -> None:
    bad = FailureRow("/p/bad.jpg", 5, 7, "truncated", 0.0)
    (a, b, c, g), _ = store.apply(
        Changes(
            inserts=[
                _img("/p/a.jpg", 1),
                _img("/p/b.jpg", 2),
                _img("/p/c.jpg", 3),
                _img("/q/g.png", 4, source="generated"),
            ],
            failures=[bad, FailureRow("/p/worse.jpg", 5, 7, "truncated", 0.0)],
        )
    )
    first = {"images": 4, "vectors": 4, "failures": 2, "photos": 3, "generated": 1}
    assert store.counts() == _scanned(store) == first
    store.apply(Changes(failures=[bad]))  # recorded again: still one failure
    store.apply(Changes(replaces=[(a, _img("/p/a.jpg", 9))], removes=[b]))
    store.apply(Changes(cleared_failures=["/p/bad.jpg"], inserts=[_img("/p/bad.jpg", 5)]))
    store.move_paths("/p/c.jpg", "/p/bad.jpg")  # replaces what was at the target
    made = {"prompts": "[]", "seed": 1, "steps": 1, "width": 8, "height": 8, "drawer": "pixel"}
    store.record_generation(c, made | {"clip_model": "m", "params": "{}", "created_at": 0.0})
    assert store.counts() == _scanned(store) and store.counts()["generated"] == 2
    store.clear_vectors({"model": "other", "dim": "4"})
    assert store.counts() == _scanned(store) and store.vector_count() == 0
    store.apply(Changes(removes=[a, c, g]))
    last = {"images": 0, "vectors": 0, "failures": 1, "photos": 0, "generated": 0}
    assert store.counts() == _scanned(store) == last


def test_dates_without_a_capture_time_use_the_file_time_through_one_index(store: Store) -> None:
    import sqlite3
    from datetime import datetime

    mtime_2022 = int(datetime(2022, 3, 4, 12, 0).timestamp() * 1e9)
    mtime_2021 = int(datetime(2021, 3, 4, 12, 0).timestamp() * 1e9)
    plain = NewImage("/p/scan.jpg", 1, mtime_2022, "h1", _img("/x", 1).vector)
    ids, _ = store.apply(
        Changes(inserts=[plain, _img("/p/exif.jpg", 2, taken_at="2023-05-01T10:00:00")])
    )
    scan, exif = ids
    assert store.filter_ids(after="2022-01-01", before="2023-01-01").tolist() == [scan]
    assert store.filter_ids(after="2023-01-01").tolist() == [exif]
    store.apply(Changes(touches=[(scan, 2, mtime_2021), (exif, 3, mtime_2021)]))
    assert store.filter_ids(before="2022-01-01").tolist() == [scan]  # the file time moved
    assert store.filter_ids(after="2023-01-01").tolist() == [exif]  # the capture time did not
    with sqlite3.connect(store.path) as conn:
        stored = dict(conn.execute("SELECT id, dated FROM images"))
        plan = " ".join(
            str(r)
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM images "
                "WHERE coalesce(taken_at, dated) >= '2022-01-01'"
            )
        )
    assert stored[exif] is None and stored[scan].startswith("2021-03-04")  # no repeated dates
    assert "ix_images_dated" in plan


def test_changes_since_gives_the_log_and_the_vectors_of_what_was_last_added(store: Store) -> None:
    (a, b, _), _ = store.apply(
        Changes(inserts=[_img("/p/a.jpg", 1), _img("/p/b.jpg", 2), _img("/p/c.jpg", 3)])
    )
    seq = store.max_seq()
    new = _img("/p/a.jpg", 9)
    (d,), _ = store.apply(Changes(inserts=[_img("/p/d.jpg", 4)], replaces=[(a, new)]))
    store.apply(Changes(removes=[b, d]))
    entries, ids, vecs = store.changes_since(seq, 4)
    assert [(i, op) for _, i, op in entries] == [
        (d, "add"),
        (a, "add"),
        (b, "remove"),
        (d, "remove"),
    ]
    assert ids.tolist() == [a] and float(vecs[0] @ new.vector) > 0.999  # the new vector only
    assert store.changes_since(store.max_seq(), 4)[0] == []
