"""The Python API mirrors the CLI."""

import pytest

from clipsearch import ClipsearchError, Library
from clipsearch.errors import LibraryLocked
from clipsearch.store.faiss_index import index_files


def test_open_index_search_status(lib_dir, photos, tiny_model):
    with Library.open(lib_dir, model=tiny_model) as lib:
        summary = lib.index([photos])
        assert summary.added == 8 and summary.to_dict()["failures"] == []
        hits = lib.search(image=photos / "img1.jpg", k=3)
        assert hits[0].path == str(photos / "img1.jpg") and len(hits) == 3
        assert lib.search("a cat", k=2, within=[photos / "sub"])[0].path.startswith(
            str(photos / "sub")
        )
        like = lib.search(like=hits[0].id, k=2)
        assert hits[0].id not in [h.id for h in like]
        st = lib.status()
        assert st["images"] == 8 and st["model"] == tiny_model
    assert "Library(" in repr(lib)


def test_progress_callback_reports_phases(lib_dir, photos, tiny_model):
    seen = []
    with Library.open(lib_dir, model=tiny_model) as lib:
        lib.index([photos], progress=seen.append)
    phases = {p.phase for p in seen}
    assert {"scan", "embed"} <= phases
    last_embed = [p for p in seen if p.phase == "embed"][-1]
    assert last_embed.done == last_embed.total == 8


def test_one_writer_at_a_time(lib_dir, photos, tiny_model):
    with Library.open(lib_dir, model=tiny_model) as lib:
        lib.index([photos])
        with lib.writer("test holds the lock"):
            other = Library.open(lib_dir)
            with pytest.raises(LibraryLocked, match="being written by another") as err:
                other.index([photos])
            assert "test holds the lock" in str(err.value)
            # Readers are never blocked.
            assert len(other.search(image=photos / "img0.jpg", k=1)) == 1
            other.close()


def test_index_file_is_saved_with_its_log_position(lib_dir, photos, tiny_model):
    with Library.open(lib_dir, model=tiny_model) as lib:
        lib.index([photos])
        (f,) = index_files(lib_dir)
        assert int(f.stem.split("-")[1]) == lib.store.max_seq()
        assert lib.store.log_since(lib.store.max_seq()) == []
        assert lib.vectors.unsaved_changes() == 0


def test_errors_share_a_base_class(tmp_path):
    with pytest.raises(ClipsearchError):
        Library.open(tmp_path / "missing", create=False)


def test_long_lived_reader_sees_a_writers_changes(lib_dir, photos, tiny_model, tmp_path):
    from tests.helpers import make_image

    with Library.open(lib_dir, model=tiny_model) as writer:
        writer.index([photos])
    reader = Library.open(lib_dir)
    assert len(reader.search("x", k=50)) == 8
    more = tmp_path / "more"
    for i in range(3):
        make_image(more / f"m{i}.jpg", seed=300 + i)
    (photos / "img0.jpg").unlink()
    with Library.open(lib_dir) as writer:  # another writer: saves a new file, prunes the log
        writer.index([photos, more])
    paths = {h.path for h in reader.search("x", k=50)}
    assert len(paths) == 10 and str(more / "m2.jpg") in paths
    assert str(photos / "img0.jpg") not in paths
    reader.close()


def test_a_noop_index_run_never_saves_a_stale_index(lib_dir, photos, tiny_model, tmp_path):
    from clipsearch.store.faiss_index import VectorIndex
    from tests.helpers import make_image

    a = Library.open(lib_dir, model=tiny_model)
    a.index([photos])
    assert len(a.search("x", k=50)) == 8  # `a` holds its index in memory
    more = tmp_path / "more"
    make_image(more / "m.jpg", seed=500)
    with Library.open(lib_dir) as b:  # another writer adds a vector and saves
        b.index([more])
    a.index([photos])  # nothing changes under `photos`
    a.close()
    on_disk = VectorIndex.load_latest(lib_dir)
    with Library.open(lib_dir) as c:
        assert on_disk.ntotal == c.store.vector_count() == 9
        assert on_disk.seq <= c.store.max_seq()
