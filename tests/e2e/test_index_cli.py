"""`clipsearch index`: incremental runs, moves, deletions, and every kind of bad input."""

import json
import os
import shutil

from tests.helpers import make_image, run_process, unprivileged


def index_json(cli, *paths):
    return json.loads(cli("index", *map(str, paths), "--json").stdout)


def search_json(cli, *args):
    return json.loads(cli("search", *args, "--json").stdout)


def ids_by_path(cli, k=100):
    out = json.loads(cli("search", "anything", "-k", str(k), "--json").stdout)
    return {r["path"]: r["id"] for r in out}


def test_first_run_indexes_everything_then_nothing_changes(cli, photos):
    s = index_json(cli, photos)
    assert (s["added"], s["failed"], s["embedded"]) == (8, 0, 8)
    assert s["failures"] == [] and not s["interrupted"]
    again = index_json(cli, photos)
    assert (again["added"], again["unchanged"], again["embedded"]) == (0, 8, 0)


def test_quick_catch_up_finds_new_and_deleted_photos_in_changed_folders(cli, photos):
    """`index --quick` lists only folders whose time moved; search sees the result."""
    long_ago = 1_700_000_000
    for folder, _, _ in os.walk(photos):
        os.utime(folder, (long_ago, long_ago))
    index_json(cli, photos)
    make_image(photos / "sub" / "deep" / "new.jpg", seed=55)
    os.remove(photos / "sub" / "webp7.webp")
    s = json.loads(cli("index", str(photos), "--quick", "--json").stdout)
    assert (s["added"], s["removed"], s["unchanged"], s["embedded"]) == (1, 1, 7, 1)
    found = search_json(cli, "--image", str(photos / "sub" / "deep" / "new.jpg"), "-k", "1")
    assert found[0]["path"] == str(photos / "sub" / "deep" / "new.jpg")
    assert str(photos / "sub" / "webp7.webp") not in ids_by_path(cli)


def test_unchanged_files_are_not_reread(cli, photos):
    index_json(cli, photos)
    target = photos / "img0.jpg"
    st = target.stat()
    target.write_bytes(b"\0" * st.st_size)  # same size, garbage content...
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...same mtime
    s = index_json(cli, photos)
    assert s["unchanged"] == 8 and s["failed"] == 0  # size+mtime said unchanged: never opened


def test_changed_file_is_reembedded_in_place(cli, photos):
    index_json(cli, photos)
    before = ids_by_path(cli)
    make_image(photos / "img1.jpg", seed=101)
    s = index_json(cli, photos)
    assert (s["updated"], s["embedded"], s["unchanged"]) == (1, 1, 7)
    assert ids_by_path(cli)[str(photos / "img1.jpg")] == before[str(photos / "img1.jpg")]
    top = search_json(cli, "--image", str(photos / "img1.jpg"), "-k", "1")[0]
    assert top["path"] == str(photos / "img1.jpg") and top["score"] > 0.999


def test_touched_file_is_not_reembedded(cli, photos):
    index_json(cli, photos)
    os.utime(photos / "img2.jpg", ns=(1, 1_000_000_000))
    s = index_json(cli, photos)
    assert s["embedded"] == 0 and s["unchanged"] == 8 and s["updated"] == 0


def test_moved_and_renamed_files_keep_their_vector(cli, photos, tmp_path):
    index_json(cli, photos)
    before = ids_by_path(cli)
    (photos / "new-place").mkdir()
    shutil.move(photos / "img3.jpg", photos / "new-place" / "renamed.jpg")
    s = index_json(cli, photos)
    assert (s["moved"], s["embedded"], s["removed"], s["added"]) == (1, 0, 0, 0)
    after = ids_by_path(cli)
    assert after[str(photos / "new-place" / "renamed.jpg")] == before[str(photos / "img3.jpg")]
    assert str(photos / "img3.jpg") not in after


def test_move_between_roots_indexed_separately(cli, photos, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    index_json(cli, photos)
    shutil.move(photos / "img4.jpg", other / "img4.jpg")
    s = index_json(cli, other)  # only the new root is scanned
    assert (s["moved"], s["embedded"]) == (1, 0)


def test_deleted_files_and_folders_leave_library_and_results(cli, photos):
    index_json(cli, photos)
    (photos / "img5.jpg").unlink()
    shutil.rmtree(photos / "sub")
    s = index_json(cli, photos)
    assert s["removed"] == 3 and s["unchanged"] == 5
    paths = set(ids_by_path(cli))
    assert len(paths) == 5 and not any("sub" in p or "img5" in p for p in paths)
    status = json.loads(cli("status", "--json").stdout)
    assert status["images"] == status["vectors"] == status["index"]["vectors"] == 5


def test_copies_reuse_the_vector(cli, photos):
    index_json(cli, photos)
    shutil.copy(photos / "img0.jpg", photos / "copy-of-img0.jpg")
    s = index_json(cli, photos)
    assert (s["added"], s["embedded"]) == (1, 0)
    hits = search_json(cli, "--image", str(photos / "img0.jpg"), "-k", "2")
    assert {h["path"] for h in hits} == {str(photos / "img0.jpg"), str(photos / "copy-of-img0.jpg")}


def test_every_format_is_indexed(cli, tmp_path):
    root = tmp_path / "formats"
    for i, suffix in enumerate([".jpg", ".png", ".webp", ".gif", ".bmp", ".tif", ".heic"]):
        make_image(root / f"f{i}{suffix}", seed=i)
    s = index_json(cli, root)
    assert (s["added"], s["failed"]) == (7, 0), s["failures"]


def test_bad_files_are_recorded_and_the_run_goes_on(cli, photos):
    good = make_image(photos / "good.jpg", seed=50)
    (photos / "zero.jpg").write_bytes(b"")
    (photos / "text.png").write_text("definitely not a PNG")
    (photos / "truncated.jpg").write_bytes(good.read_bytes()[:200])
    (photos / "garbage.webp").write_bytes(os.urandom(3000))
    s = index_json(cli, photos)
    assert s["added"] == 9 and s["failed"] == 4
    reasons = {os.path.basename(f["path"]): f["reason"] for f in s["failures"]}
    assert reasons["zero.jpg"] == "empty file (0 bytes)"
    assert "not an image" in reasons["text.png"]
    assert "truncated or corrupt" in reasons["truncated.jpg"]
    assert "garbage.webp" in reasons
    # Known failures are not retried (or double counted) while unchanged...
    again = index_json(cli, photos)
    assert again["failed"] == 4 and again["embedded"] == 0
    status = json.loads(cli("status", "--json").stdout)
    assert status["failures"] == 4
    # ...but a fixed file is picked up, and a deleted one forgotten.
    make_image(photos / "zero.jpg", seed=51)
    (photos / "text.png").unlink()
    fixed = index_json(cli, photos)
    assert fixed["added"] == 1 and fixed["failed"] == 2
    assert json.loads(cli("status", "--json").stdout)["failures"] == 2


def test_human_output_lists_skipped_files(cli, photos):
    (photos / "bad.jpg").write_text("nope")
    result = cli("index", str(photos))
    assert "8 added" in result.stdout and "1 failed" in result.stdout
    assert f"skipping {photos / 'bad.jpg'}: not an image" in result.stderr


def test_unreadable_file_is_recorded_with_permission_reason(lib_dir, photos, tiny_model):
    locked = photos / "locked.jpg"
    make_image(locked, seed=77)
    locked.chmod(0)
    lib_dir.mkdir()
    proc = run_process(
        "--library",
        str(lib_dir),
        "--model",
        tiny_model,
        "index",
        str(photos),
        "--json",
        prefix=unprivileged(),
    )
    locked.chmod(0o644)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["added"] == 8 and s["failures"] == [
        {"path": str(locked), "reason": "permission denied"}
    ]


def test_missing_path_is_an_error_and_deletes_nothing(cli, photos, tmp_path):
    index_json(cli, photos)
    result = cli("index", str(tmp_path / "no-such-folder"), expect=1)
    assert "path not found" in result.stderr and "Traceback" not in result.output
    assert json.loads(cli("status", "--json").stdout)["images"] == 8


def test_library_folder_inside_photos_is_skipped(tmp_path, tiny_model):
    from click.testing import CliRunner

    from clipsearch.cli import cli as command

    photos = tmp_path / "pics"
    make_image(photos / "a.jpg")
    lib = photos / "my-library"
    runner = CliRunner()
    args = ["--library", str(lib), "--model", tiny_model, "index", str(photos), "--json"]
    assert json.loads(runner.invoke(command, args).stdout)["added"] == 1
    make_image(lib / "stray.jpg")  # something inside the library dir
    assert json.loads(runner.invoke(command, args).stdout)["unchanged"] == 1


def test_quiet_non_tty_output_is_clean(lib_dir, photos, tiny_model):
    proc = run_process("--library", str(lib_dir), "--model", tiny_model, "index", str(photos))
    assert proc.returncode == 0
    assert proc.stderr == ""  # no progress bar when not on a terminal
    assert proc.stdout.startswith("Indexed in")
    quiet = run_process("-q", "--library", str(lib_dir), "index", str(photos))
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_not_a_library_folder_is_refused(tmp_path, tiny_model, photos):
    from click.testing import CliRunner

    from clipsearch.cli import cli as command

    result = CliRunner().invoke(
        command, ["--library", str(photos), "--model", tiny_model, "index", str(photos)]
    )
    assert result.exit_code == 1
    assert "is not a clipsearch library" in result.stderr
    assert not (photos / "clipsearch.db").exists()
