"""Real-world failures a reliability walk found: odd file names, unmounted drives, full
disks, damaged databases, and the small things a user trips over.

Everything is real: files with Latin-1 names, a real `clipsearch` process, tmpfs and bind
mounts where the test runs as root (skipped, saying why, otherwise), damaged SQLite files.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipsearch import Library
from clipsearch.errors import DiskFull
from clipsearch.store.faiss_index import VectorIndex
from tests.helpers import cs, make_image, run_process

EXE = str(Path(sys.executable).with_name("clipsearch"))
LATIN1 = b"caf\xe9"  # "café" written by an old Windows / FAT / zip: not valid UTF-8


def _latin1_file(folder: Path, stem: bytes, seed: int) -> str:
    """A real JPEG whose name is not valid UTF-8; returns the path as Python sees it."""
    tmp = make_image(folder / f"tmp-{seed}.jpg", seed=seed)
    raw = os.fsencode(folder) + b"/" + stem + b".jpg"
    os.rename(os.fsencode(tmp), raw)
    return os.fsdecode(raw)


def _db_rows(lib: Path) -> dict[bytes, int]:
    """path bytes -> id, straight from SQLite (paths are stored losslessly)."""
    conn = sqlite3.connect(lib / "clipsearch.db")
    conn.text_factory = bytes
    try:
        return dict(conn.execute("SELECT path, id FROM images"))
    finally:
        conn.close()


# --- 1. file names that are not UTF-8 ---------------------------------------------------------


def test_non_utf8_names_are_indexed_searched_and_shown_escaped(tmp_path, tiny_model):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    make_image(photos / "plain.jpg", seed=1)
    odd = _latin1_file(photos, LATIN1, seed=2)
    proc = run_process("--library", str(lib), "--model", tiny_model, "index", str(photos))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "2 added" in proc.stdout
    assert os.fsencode(odd) in _db_rows(lib)  # stored with its real bytes

    table = run_process("--library", str(lib), "search", "anything")
    assert "caf\\xe9.jpg" in table.stdout  # shown escaped, not as a replacement character
    found = json.loads(run_process("--library", str(lib), "search", "x", "--json").stdout)
    assert odd in [r["path"] for r in found]  # JSON round-trips the exact path
    raw = subprocess.run(
        [EXE, "--library", str(lib), "search", "x", "--paths"], capture_output=True, check=True
    )
    assert os.fsencode(odd) in raw.stdout.splitlines()  # raw bytes: `| xargs feh` opens it

    moved = os.fsencode(photos) + b"/d\xe9plac\xe9.jpg"  # renamed: the same vector, no model
    os.rename(os.fsencode(odd), moved)
    again = run_process("--library", str(lib), "index", str(photos), "--json")
    assert json.loads(again.stdout)["moved"] == 1, again.stderr
    assert moved in _db_rows(lib)


def test_an_unreadable_odd_name_is_reported_escaped(tmp_path, tiny_model):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    make_image(photos / "ok.jpg", seed=1)
    bad = os.fsencode(photos) + b"/broken-" + LATIN1 + b".jpg"
    with open(bad, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 not a picture")
    proc = run_process("--library", str(lib), "--model", tiny_model, "index", str(photos))
    assert proc.returncode == 0 and "skipping" in proc.stderr and "caf\\xe9" in proc.stderr
    listed = run_process("--library", str(lib), "status", "--failures")
    assert "broken-caf\\xe9.jpg" in listed.stdout and "Traceback" not in listed.stderr


def test_the_http_api_answers_for_odd_names(tmp_path, tiny_model):
    import httpx

    from clipsearch.server import BackgroundServer, ServerSettings

    photos = tmp_path / "photos"
    odd = _latin1_file(photos, LATIN1, seed=3)
    with Library.open(tmp_path / "lib", model=tiny_model) as lib:
        lib.index([photos])
        with BackgroundServer(lib, ServerSettings(port=0)) as srv:
            http = httpx.Client(base_url=srv.url, timeout=60)
            hits = http.post("/api/search", json={"q": "a photo"})
            assert hits.status_code == 200
            hit = hits.json()["results"][0]
            assert hit["path"] == odd  # lossless (JSON escapes), and the page escapes it
            assert http.get(hit["thumb_url"]).status_code == 200
            assert http.get(hit["file_url"]).status_code == 200


# --- 2. an unmounted drive is offline, never "deleted" --------------------------------------


def test_a_missing_folder_is_offline_and_comes_back_untouched(tmp_path, tiny_model):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    for i in range(4):
        make_image(photos / f"p{i}.jpg", seed=i)
    cs(lib, "--model", tiny_model, "index", str(photos))
    before = _db_rows(lib)
    cs(lib, "tag", "--vocabulary", str(_vocab(tmp_path)))
    photos.rename(tmp_path / "elsewhere")  # the drive is unplugged

    got = cs(lib, "index", str(photos), "--json")
    summary = json.loads(got.stdout)
    assert summary["removed"] == 0
    assert [(o["path"], o["images"]) for o in summary["offline"]] == [(str(photos), 4)]
    assert _db_rows(lib) == before
    assert "offline" in cs(lib, "index", str(photos)).stderr  # said, in words

    assert json.loads(cs(lib, "search", "x", "--json").stdout) == []
    why = cs(lib, "search", "x").stderr
    assert "4 picture(s) of offline folders are left out (--include-offline)" in why
    kept = json.loads(cs(lib, "search", "x", "--include-offline", "--json").stdout)
    assert len(kept) == 4 and all(r["offline"] for r in kept)
    status = json.loads(cs(lib, "status", "--json").stdout)
    assert status["offline_images"] == 4 and status["roots"][0]["offline"]
    assert "OFFLINE" in cs(lib, "status").stdout
    listed = json.loads(cs(lib, "offline", "--json").stdout)
    assert [(r["path"], r["images"]) for r in listed] == [(str(photos), 4)]

    (tmp_path / "elsewhere").rename(photos)  # plugged back in
    back = json.loads(cs(lib, "index", str(photos), "--json").stdout)
    assert (back["added"], back["removed"], back["unchanged"], back["offline"]) == (0, 0, 4, [])
    assert _db_rows(lib) == before  # same ids, nothing re-embedded
    assert len(json.loads(cs(lib, "search", "x", "--json", "--tag", "thing").stdout)) == 4
    assert cs(lib, "offline").stderr.strip() == "No folder is offline."


def _vocab(tmp_path: Path) -> Path:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("thing\n")
    return vocab


def test_only_an_explicit_command_forgets_an_offline_folder(tmp_path, tiny_model):
    photos, other, lib = tmp_path / "photos", tmp_path / "other", tmp_path / "lib"
    make_image(photos / "a.jpg", seed=1)
    make_image(other / "b.jpg", seed=2)
    cs(lib, "--model", tiny_model, "index", str(photos), str(other))
    refused = cs(lib, "offline", "--remove", str(photos), expect=1)
    assert "is online" in refused.stderr
    shutil.rmtree(photos)
    cs(lib, "index", str(photos), str(other))  # the other folder syncs; photos is offline
    assert len(_db_rows(lib)) == 2
    removed = cs(lib, "offline", "--remove", str(photos))
    assert "Removed 1 picture(s)" in removed.stdout
    assert [os.fsdecode(p) for p in _db_rows(lib)] == [str(other / "b.jpg")]
    assert json.loads(cs(lib, "status", "--json").stdout)["offline_images"] == 0


def test_a_deleted_single_file_root_is_removed_not_offline(tmp_path, tiny_model):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    make_image(photos / "keep.jpg", seed=1)
    one = make_image(photos / "one.jpg", seed=2)
    cs(lib, "--model", tiny_model, "index", str(one))
    status = json.loads(cs(lib, "status", "--json").stdout)
    assert [r["kind"] for r in status["roots"]] == ["file"]
    assert "file " in cs(lib, "status").stdout  # listed as a file, not a folder
    one.unlink()
    summary = json.loads(cs(lib, "index", str(photos), "--json").stdout)
    assert summary["offline"] == [] and summary["removed"] == 1


@pytest.fixture
def drive(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(mount point, the drive's own folder): a tmpfs "drive" bind-mounted on a folder."""
    if os.geteuid() != 0:
        pytest.skip("mounting a test drive needs root")
    disk, point = tmp_path / "disk", tmp_path / "mnt" / "usb"
    disk.mkdir()
    point.mkdir(parents=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    (disk / "photos").mkdir()
    try:
        yield point, disk / "photos"
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _mount(source: Path, point: Path) -> None:
    subprocess.run(["mount", "--bind", str(source), str(point)], check=True)


def _umount(point: Path) -> None:
    subprocess.run(["umount", str(point)], check=True)


def test_an_unmounted_drive_keeps_its_pictures(drive, tmp_path, tiny_model):
    point, content = drive
    for i in range(5):
        make_image(content / f"p{i}.jpg", seed=i)
    _mount(content, point)
    lib = tmp_path / "lib"
    cs(lib, "--model", tiny_model, "index", str(point))
    before = _db_rows(lib)
    assert len(before) == 5
    _umount(point)  # the mount point is now an empty folder on another device

    summary = json.loads(cs(lib, "index", str(point), "--json").stdout)
    assert summary["removed"] == 0 and summary["offline"][0]["images"] == 5
    assert "drive is not mounted" in summary["offline"][0]["reason"]
    assert _db_rows(lib) == before

    _mount(content, point)
    back = json.loads(cs(lib, "index", str(point), "--json").stdout)
    assert (back["unchanged"], back["removed"], back["offline"]) == (5, 0, [])
    assert _db_rows(lib) == before


# --- 4. full disks and damaged databases -----------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    disk = tmp_path / "small"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk: Path) -> Path:
    """Fill `disk` up to the last byte; returns the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_is_one_clear_message_and_loses_nothing(small_disk, tmp_path, tiny_model):
    photos, lib = tmp_path / "photos", small_disk / "lib"
    for i in range(3):
        make_image(photos / f"first{i}.jpg", seed=i)
    cs(lib, "--model", tiny_model, "index", str(photos))
    for i in range(3, 60):
        make_image(photos / f"more{i}.jpg", seed=i, size=(64, 48))
    filler = _fill(small_disk)
    proc = run_process("--library", str(lib), "index", str(photos))
    assert proc.returncode == 1, proc.stdout
    assert "disk is full" in proc.stderr and str(lib) in proc.stderr
    assert "Traceback" not in proc.stderr and "INSERT" not in proc.stderr
    filler.unlink()
    conn = sqlite3.connect(lib / "clipsearch.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    done = json.loads(cs(lib, "index", str(photos), "--json").stdout)
    assert done["failed"] == 0 and len(_db_rows(lib)) == 60


def test_an_index_file_that_cannot_be_written_is_a_clear_error(small_disk):
    import numpy as np

    index = VectorIndex.empty(64)
    index.add(np.arange(20_000), np.random.default_rng(0).random((20_000, 64), np.float32))
    _fill(small_disk)
    with pytest.raises(DiskFull, match="disk is full") as err:
        index.save(small_disk, 7)
    assert "Nothing was lost" in (err.value.hint or "")
    assert [p.name for p in small_disk.iterdir()] == ["filler"]  # no half-written file left


def _garble(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = db.stat().st_size
    with open(db, "r+b") as f:
        for offset in range(4096, size, 4096):
            f.seek(offset)
            f.write(os.urandom(4096))


def test_a_damaged_schema_whose_name_is_not_utf8_is_one_message(tmp_path, tiny_model):
    """SQLite's "malformed database schema (NAME)" quoting a name in bytes that are not UTF-8
    reaches Python as a UnicodeDecodeError, not a DatabaseError (seen once in ~30 runs of
    the random damage below): the same message as any damage, no traceback."""
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    for i in range(3):
        make_image(photos / f"p{i}.jpg", seed=i)
    cs(lib, "--model", tiny_model, "index", str(photos))
    conn = sqlite3.connect(lib / "clipsearch.db")
    conn.execute("CREATE TABLE doomed (x)")
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute(
        "UPDATE sqlite_master SET name = CAST(X'41c3d042' AS TEXT), sql = 'CREATE TABLE x(' "
        "WHERE name = 'doomed'"
    )
    conn.commit()
    conn.close()
    for args in (["search", "x"], ["status"], ["index", str(photos)]):
        proc = run_process("--library", str(lib), *args)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "is damaged" in proc.stderr and "Your photos are not touched" in proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr


def test_a_damaged_database_is_one_message_without_sql(tmp_path, tiny_model):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    for i in range(4):
        make_image(photos / f"p{i}.jpg", seed=i)
    cs(lib, "--model", tiny_model, "index", str(photos))
    _garble(lib / "clipsearch.db")
    for args in (["search", "x"], ["status"], ["index", str(photos)]):
        proc = run_process("--library", str(lib), *args)
        assert proc.returncode == 1, args
        assert "is damaged" in proc.stderr and "Your photos are not touched" in proc.stderr
        assert "Traceback" not in proc.stderr and "SELECT" not in proc.stderr
    # The advice works: move the database aside, index again.
    (lib / "clipsearch.db").rename(lib / "clipsearch.db.damaged")
    for extra in ("clipsearch.db-wal", "clipsearch.db-shm"):
        (lib / extra).unlink(missing_ok=True)
    again = json.loads(cs(lib, "--model", tiny_model, "index", str(photos), "--json").stdout)
    assert again["added"] == 4
    assert len(json.loads(cs(lib, "search", "x", "--json").stdout)) == 4


def test_an_empty_database_file_is_refused_not_treated_as_new(tmp_path, tiny_model):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    make_image(photos / "p.jpg", seed=1)
    cs(lib, "--model", tiny_model, "index", str(photos))
    (lib / "clipsearch.db").write_bytes(b"")  # cut short by a full disk or a bad copy
    for extra in ("clipsearch.db-wal", "clipsearch.db-shm"):
        (lib / extra).unlink(missing_ok=True)
    proc = run_process("--library", str(lib), "search", "x")
    assert proc.returncode == 1 and "is empty (0 bytes)" in proc.stderr
    assert (lib / "clipsearch.db").stat().st_size == 0  # nothing was written over it


# --- 8. small things ---------------------------------------------------------------------------


def test_no_results_says_why(tmp_path, tiny_model):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    make_image(photos / "p.jpg", seed=1)
    cs(lib, "--model", tiny_model, "index", str(photos))
    tag = cs(lib, "search", "x", "--tag", "unicorn").stderr
    assert "no image is tagged 'unicorn'" in tag and "clipsearch tag" in tag
    missing = cs(lib, "search", "x", "--in", str(tmp_path / "nowhere")).stderr
    assert "no such file or folder" in missing
    (tmp_path / "empty").mkdir()
    assert (
        "nothing is indexed there" in cs(lib, "search", "x", "--in", str(tmp_path / "empty")).stderr
    )
    assert "date range" in cs(lib, "search", "x", "--after", "2999").stderr


def test_a_broken_link_is_listed_with_the_failures(tmp_path, tiny_model):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    make_image(photos / "p.jpg", seed=1)
    os.symlink(tmp_path / "gone.jpg", photos / "link.jpg")
    summary = json.loads(cs(lib, "--model", tiny_model, "index", str(photos), "--json").stdout)
    assert [f["path"] for f in summary["failures"]] == [str(photos / "link.jpg")]
    listed = cs(lib, "status", "--failures").stdout
    assert f"{photos / 'link.jpg'}: broken link" in listed
    (photos / "link.jpg").unlink()
    cs(lib, "index", str(photos))
    assert json.loads(cs(lib, "status", "--json").stdout)["failures"] == 0


def test_the_model_loading_is_announced_on_a_terminal(tmp_path, tiny_model):
    import pty

    photos, lib = tmp_path / "photos", tmp_path / "lib"
    make_image(photos / "p.jpg", seed=1)
    cs(lib, "--model", tiny_model, "index", str(photos))
    main, follower = pty.openpty()
    proc = subprocess.run(
        [EXE, "--library", str(lib), "search", "x"], stderr=follower, stdout=subprocess.PIPE
    )
    os.close(follower)
    out = b""
    try:
        while chunk := os.read(main, 4096):
            out += chunk
    except OSError:
        pass
    os.close(main)
    assert proc.returncode == 0
    assert b"loading the model" in out
    quiet = run_process("--library", str(lib), "search", "x")  # not a terminal: clean
    assert "loading" not in quiet.stderr


def test_demo_with_a_library_keeps_its_pictures_beside_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "per-user"))
    lib = tmp_path / "my-lib"
    result = cs(lib, "demo", "--images", "24", "--json")
    report = json.loads(result.stdout)
    assert Path(report["photos"]).is_relative_to(tmp_path / "my-lib-demo")
    assert not (tmp_path / "per-user").exists()
