import os
import subprocess
import sys

import pytest

from clipsearch.errors import ClipsearchError
from clipsearch.media.fs import check_roots, is_under, scan
from tests.helpers import make_image, unprivileged


def test_scan_finds_images_recursively_and_skips_the_rest(tmp_path):
    make_image(tmp_path / "a.jpg")
    make_image(tmp_path / "sub" / "b.PNG", fmt="PNG")
    (tmp_path / "notes.txt").write_text("x")
    make_image(tmp_path / ".hidden.jpg")
    make_image(tmp_path / ".cache" / "c.jpg")
    make_image(tmp_path / "lib" / "thumb.jpg")
    found = sorted(
        os.path.relpath(f.path, tmp_path)
        for f in scan([str(tmp_path)], exclude=[str(tmp_path / "lib")])
    )
    assert found == ["a.jpg", "sub/b.PNG"]


def test_scan_a_single_file_and_stat_fields(tmp_path):
    path = make_image(tmp_path / "a.jpg")
    (f,) = list(scan([str(path)]))
    st = os.stat(path)
    assert (f.path, f.size, f.mtime_ns) == (str(path), st.st_size, st.st_mtime_ns)


def test_symlinked_folders_are_not_followed(tmp_path):
    make_image(tmp_path / "real" / "a.jpg")
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real")
    assert [os.path.basename(f.path) for f in scan([str(tmp_path / "real")])] == ["a.jpg"]


def test_unlistable_folder_is_reported(tmp_path):
    locked = tmp_path / "locked"
    make_image(locked / "a.jpg")
    make_image(tmp_path / "ok.jpg")
    locked.chmod(0)
    code = (
        "import sys; from clipsearch.media.fs import scan; errs = []; "
        "found = [f.path for f in scan([sys.argv[1]], on_error=lambda p, r: errs.append((p, r)))]; "
        "print(found, errs)"
    )
    try:
        out = subprocess.run(
            [*unprivileged(), sys.executable, "-c", code, str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        locked.chmod(0o755)
    assert "ok.jpg" in out and f"('{locked}', 'cannot list folder (Permission denied)')" in out


def test_check_roots(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert check_roots([tmp_path / "a", tmp_path / "a" / "b"]) == [str(tmp_path / "a")]
    with pytest.raises(ClipsearchError, match="path not found"):
        check_roots([tmp_path / "missing"])


def test_is_under():
    assert is_under("/a/b/c.jpg", "/a/b") and is_under("/a/b", "/a/b")
    assert not is_under("/a/bc/d.jpg", "/a/b")


def test_exclusion_applies_below_the_root_only(tmp_path):
    make_image(tmp_path / "lib" / "generated" / "g.png", fmt="PNG")
    found = list(scan([str(tmp_path / "lib" / "generated")], exclude=[str(tmp_path / "lib")]))
    assert [os.path.basename(f.path) for f in found] == ["g.png"]
