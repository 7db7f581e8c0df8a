"""Real processes: Ctrl-C and kill -9 lose nothing committed; progress shows on a terminal."""

import json
import os
import pty
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import make_image, run_process

CLI = str(Path(sys.executable).with_name("clipsearch"))


@pytest.fixture(scope="module")
def many_photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    for i in range(240):
        make_image(root / f"d{i % 7}" / f"p{i:04d}.jpg", seed=1000 + i, size=(320, 240))
    return root


def start_index(lib, model, photos, *extra):
    return subprocess.Popen(
        [
            CLI,
            "--library",
            str(lib),
            "--model",
            model,
            "--batch-size",
            "4",
            "--workers",
            "1",
            "index",
            str(photos),
            "--json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_as_from_a_terminal,
    )


def _as_from_a_terminal() -> None:
    """Ctrl-C as a terminal delivers it: whatever this test process's own state (a library
    loaded earlier in the suite may leave SIGINT ignored or blocked, and a child inherits
    both across exec), the child starts with the default disposition, unblocked."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def wait_for_db(lib: Path, timeout=60):
    deadline = time.monotonic() + timeout
    while not (lib / "clipsearch.db").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def committed(lib: Path) -> int:
    import sqlite3

    with sqlite3.connect(lib / "clipsearch.db") as conn:
        return conn.execute("SELECT count(*) FROM vectors").fetchone()[0]


def wait_for_commits(lib: Path, at_least: int, timeout=90, poll=0.05):
    wait_for_db(lib)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if committed(lib) >= at_least:
                return
        except Exception:
            pass
        assert time.monotonic() < deadline, "indexing made no progress"
        time.sleep(poll)


def check_every_file_once(lib, model, photos):
    files = sorted(str(p) for p in photos.rglob("*.jpg"))
    proc = run_process("--library", str(lib), "search", "anything", "-k", "1000", "--json")
    assert proc.returncode == 0, proc.stderr
    paths = [h["path"] for h in json.loads(proc.stdout)]
    assert sorted(paths) == files  # every file exactly once
    status = json.loads(run_process("--library", str(lib), "status", "--json").stdout)
    assert status["images"] == status["vectors"] == status["index"]["vectors"] == len(files)


def test_ctrl_c_keeps_committed_work_and_the_next_run_resumes(tmp_path, tiny_model, many_photos):
    lib = tmp_path / "lib"
    proc = start_index(lib, tiny_model, many_photos)
    wait_for_commits(lib, 20, poll=0.002)  # the tiny model is fast: signal it early on
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out[-400:], err[-400:])
    first = json.loads(out)
    assert first["interrupted"] is True
    kept = committed(lib)
    assert kept >= 20 and kept == first["added"]
    resumed = run_process("--library", str(lib), "index", str(many_photos), "--json")
    second = json.loads(resumed.stdout)
    assert second["added"] == 240 - kept and second["unchanged"] == kept
    assert second["embedded"] == second["added"]  # nothing committed was embedded again
    check_every_file_once(lib, tiny_model, many_photos)


def test_sigterm_stops_cleanly(tmp_path, tiny_model, many_photos):
    lib = tmp_path / "lib"
    proc = start_index(lib, tiny_model, many_photos)
    wait_for_commits(lib, 8)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "run the same command again to resume" not in err  # --json keeps stderr quiet


def test_kill_9_at_random_moments_loses_nothing(tmp_path, tiny_model, many_photos):
    lib = tmp_path / "lib"
    rng = random.Random(7)
    for round_ in range(3):
        start = committed(lib) if round_ else 0
        proc = start_index(lib, tiny_model, many_photos)
        # A random moment of the run, picked by progress rather than by time (the tiny
        # model indexes 240 photos in well under a second): somewhere in the next third.
        wait_for_commits(lib, start + rng.randint(1, (240 - start) // 3), poll=0.002)
        proc.kill()
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
        before = committed(lib)
        assert before < 240
        # The library opens, agrees with itself and searches fine after every kill.
        status = json.loads(run_process("--library", str(lib), "status", "--json").stdout)
        assert status["vectors"] == status["index"]["vectors"] == before
    final = json.loads(
        run_process("--library", str(lib), "index", str(many_photos), "--json").stdout
    )
    assert final["added"] + final["unchanged"] == 240 and final["failed"] == 0
    check_every_file_once(lib, tiny_model, many_photos)


def test_progress_bar_on_a_terminal(tmp_path, tiny_model, many_photos):
    lib = tmp_path / "lib"
    pid, fd = pty.fork()
    if pid == 0:  # child: stdout/stderr are the terminal
        os.execv(
            CLI,
            [
                CLI,
                "--library",
                str(lib),
                "--model",
                tiny_model,
                "--batch-size",
                "4",
                "index",
                str(many_photos),
            ],
        )
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0
    assert "embedding" in text and "img/s" in text and "eta" in text
    assert "Indexed in" in text
