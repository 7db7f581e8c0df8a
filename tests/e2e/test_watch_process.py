"""The watch daemon as a real process: status, a second writer, signals, kill -9.

These run the `clipsearch` console script and read the library the way other processes do
(the SQLite file, `status --json`, `search --json`), with timeouts but no timing assertions.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import make_image, run_process

CLI = str(Path(sys.executable).with_name("clipsearch"))
TIMEOUT = 60.0


def start_watch(lib: Path, model: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            CLI,
            "--library",
            str(lib),
            "--model",
            model,
            "--batch-size",
            "8",
            "watch",
            "--settle",
            "0.3",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_for(cond, what: str, proc: subprocess.Popen | None = None, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = cond()
        except (OSError, ValueError, sqlite3.Error):
            value = None
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the daemon exited ({proc.returncode}): {proc.communicate()[1]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def daemon_file(lib: Path) -> dict:
    return json.loads((lib / "daemon.json").read_text())


def wait_watching(lib: Path, proc: subprocess.Popen) -> dict:
    return wait_for(
        lambda: (d := daemon_file(lib))["pid"] == proc.pid and d["state"] == "watching" and d,
        "the daemon to start watching",
        proc,
    )


def indexed(lib: Path) -> list[str]:
    with sqlite3.connect(lib / "clipsearch.db") as conn:
        rows = conn.execute("SELECT path FROM images JOIN vectors ON image_id = images.id")
        return sorted(p for (p,) in rows)


def on_disk(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.jpg"))


def status(lib: Path) -> dict:
    proc = run_process("--library", str(lib), "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


READER = """
import json, sys, time
from pathlib import Path
from clipsearch import Library
lib_dir, stop = Path(sys.argv[1]), Path(sys.argv[2])
queries, sizes = 0, set()
with Library.open(lib_dir, create=False) as lib:
    while True:
        last = stop.exists()
        paths = [h.path for h in lib.search("anything", k=1000)]
        assert len(paths) == len(set(paths)), "a file appeared twice"
        queries, sizes = queries + 1, sizes | {len(paths)}
        if last:
            break
print(json.dumps({"queries": queries, "sizes": sorted(sizes), "last": len(paths)}))
"""


def test_status_second_writer_searches_and_sigterm(tmp_path: Path, tiny_model: str) -> None:
    root, lib = tmp_path / "photos", tmp_path / "lib"
    for i in range(3):
        make_image(root / f"{i}.jpg", seed=i)
    log_file = tmp_path / "watch.log"
    proc = start_watch(lib, tiny_model, str(root), "--log-file", str(log_file))
    reader = None
    try:
        wait_watching(lib, proc)
        # Another process searches in a loop the whole time the daemon writes.
        stop_reader = tmp_path / "stop-reader"
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(lib), str(stop_reader)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        make_image(root / "new.jpg", seed=7)
        wait_for(lambda: indexed(lib) == on_disk(root), "the new file", proc)
        wait_for(lambda: daemon_file(lib)["totals"]["added"] == 4, "daemon.json to follow", proc)

        info = status(lib)
        d = info["daemon"]
        assert d["pid"] == proc.pid and d["state"] == "watching" and d["roots"] == [str(root)]
        assert d["queue"] == 0 and d["last_reconcile"]["reason"] == "start"
        assert d["last_event"]["path"] == str(root / "new.jpg")
        assert d["totals"]["added"] == 4  # 3 by the catch-up scan at start, 1 live
        human = run_process("--library", str(lib), "status").stdout
        assert f"watching (pid {proc.pid})" in human and "last event" in human

        # A second writer is refused with a message that names the daemon.
        second = run_process("--library", str(lib), "watch", str(root))
        assert second.returncode == 3
        assert (
            f"watch daemon (pid {proc.pid})" in second.stderr and "Traceback" not in second.stderr
        )
        other = run_process("--library", str(lib), "index", str(root))
        assert other.returncode == 3 and "kill" in other.stderr

        for i in range(60):
            make_image(root / "burst" / f"{i}.jpg", seed=100 + i)
        wait_for(lambda: indexed(lib) == on_disk(root), "the burst", proc)
        stop_reader.touch()
        out, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err
        seen = json.loads(out)
        assert seen["queries"] > 1 and seen["last"] == 64, seen
    finally:
        if reader is not None and reader.poll() is None:
            reader.kill()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "INFO: stopped" in err
    logged = log_file.read_text()  # the same log, with timestamps, in the file
    assert "catch-up scan (start)" in logged and "INFO: stopped" in logged
    info = status(lib)
    assert info["daemon"] is None and info["writer"] is None
    assert info["images"] == info["vectors"] == info["index"]["vectors"] == 64


def test_watch_without_paths_needs_remembered_folders(cli, photos: Path) -> None:
    cli("index", str(photos))
    result = cli("watch", expect=2)
    assert "no folders to watch yet" in result.output


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path, tiny_model: str) -> None:
    """kill -9 mid-batch, mid-commit or mid-save: after a restart every file is there once."""
    root, lib, staging = tmp_path / "photos", tmp_path / "lib", tmp_path / "staging"
    for i in range(120):
        make_image(staging / f"s{i:03d}.jpg", seed=1000 + i, size=(160, 120))
    for i in range(20):
        make_image(root / "old" / f"o{i}.jpg", seed=i)
    rng = random.Random(11)
    sources = sorted(staging.iterdir())
    for round_ in range(3):
        proc = start_watch(lib, tiny_model, str(root), "--save-every", "7")
        try:
            wait_watching(lib, proc)
            for src in sources[round_ * 40 : (round_ + 1) * 40]:  # files keep arriving
                shutil.copyfile(src, root / f"r{round_}_{src.name}")
            victims = sorted(root.rglob("*.jpg"))
            os.rename(victims[0], root / f"renamed{round_}.jpg")
            victims[1].unlink()
            time.sleep(rng.uniform(0.2, 1.5))
        finally:
            proc.kill()
            proc.wait(timeout=30)
        # After every kill the library opens and its index agrees with the database.
        info = status(lib)
        assert info["vectors"] == info["index"]["vectors"] and info["daemon"] is None
    proc = start_watch(lib, tiny_model)  # the remembered folder; catches up, carries on
    try:
        wait_watching(lib, proc)
        wait_for(lambda: indexed(lib) == on_disk(root), "the library to catch up", proc)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    found = run_process("--library", str(lib), "search", "anything", "-k", "1000", "--json")
    paths = [h["path"] for h in json.loads(found.stdout)]
    assert sorted(paths) == on_disk(root)  # every file on disk, each exactly once
    info = status(lib)
    assert info["images"] == info["vectors"] == info["index"]["vectors"] == len(paths)
