"""`clipsearch serve` as a real process, and `clipsearch search` finding it (or not)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from clipsearch.query.parse import Query, Term
from clipsearch.server import client
from clipsearch.server.client import read_server_file, write_server_file
from tests.helpers import make_image, run_process

TOKEN = "a-long-enough-test-token-123"


def start_server(
    lib_dir: Path, *args: str, env: dict | None = None
) -> tuple[subprocess.Popen, dict]:
    exe = Path(sys.executable).with_name("clipsearch")
    proc = subprocess.Popen(
        [str(exe), "--library", str(lib_dir), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        info = read_server_file(lib_dir)
        if info and info.get("pid") == proc.pid:
            return proc, info
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.communicate()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("serve did not start")


def stop(proc: subprocess.Popen) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.fixture
def indexed(cli, photos, lib_dir):
    cli("index", str(photos))
    return lib_dir


def search(lib_dir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_process("-v", "--library", str(lib_dir), "search", *args, env=env)


def in_process(lib_dir: Path, text: str = "", **kw) -> str:
    """What `clipsearch search --json` prints when it searches in-process."""
    from clipsearch import Library

    with Library.open(lib_dir) as lib:
        return json.dumps([r.to_dict() for r in lib.search(text, **kw)], indent=2)


def test_search_uses_the_running_server_with_the_same_output(indexed, photos, tmp_path):
    proc, info = start_server(indexed)
    try:
        assert info["url"].startswith("http://127.0.0.1:") and info["token_required"] is False
        outside = make_image(tmp_path / "q" / "query.png", seed=3)
        img2, sub = str(photos / "img2.jpg"), str(photos / "sub")
        cases = [
            (("a red circle", "-k", "5"), in_process(indexed, "a red circle", k=5)),
            (
                ("--image", img2, "--not", "blue"),
                in_process(indexed, image=img2, negative=["blue"]),
            ),
            (("--image", str(outside), "-k", "3"), in_process(indexed, image=str(outside), k=3)),
            (("2:cat - dog", "--in", sub), in_process(indexed, "2:cat - dog", within=[sub])),
            (("--like", "3", "-k", "4"), in_process(indexed, like=3, k=4)),
            (("x", "--source", "generated"), "[]"),
        ]
        for args, expected in cases:
            via_server = search(indexed, *args, "--json")
            assert via_server.returncode == 0, via_server.stderr
            assert "searched with the server at " + info["url"] in via_server.stderr
            got, want = json.loads(via_server.stdout), json.loads(expected)
            assert [h["id"] for h in got] == [h["id"] for h in want], args
            for a, b in zip(got, want, strict=True):
                assert set(a) == set(b) and a["score"] == pytest.approx(b["score"], abs=1e-5)
        # --no-server searches here even though a server runs; the output is identical.
        local = search(indexed, "a red circle", "-k", "5", "--json", "--no-server")
        assert "searched with the server" not in local.stderr
        assert local.stdout.strip() == in_process(indexed, "a red circle", k=5)
        # Query errors read the same either way.
        bad = search(indexed, "--like", "999")
        assert bad.returncode == 2 and "no image with id 999" in bad.stderr
        assert "searched with the server" not in bad.stderr
    finally:
        code, out, err = stop(proc)
    assert code == 0, err
    assert "Serving " in out and info["url"] in out
    assert read_server_file(indexed) is None  # removed on a clean stop


def test_search_falls_back_when_the_server_is_gone(indexed):
    baseline = in_process(indexed, "a dog")
    write_server_file(
        indexed,
        {
            "pid": 999_999_999,
            "url": "http://127.0.0.1:9",
            "port": 9,
            "library": str(indexed),
            "token_required": False,
        },
    )
    stale = search(indexed, "a dog", "--json")
    assert stale.returncode == 0 and "not running" in stale.stderr
    assert stale.stdout.strip() == baseline
    # A live pid (this test) whose port does not answer: skipped after a short timeout.
    write_server_file(
        indexed,
        {
            "pid": os.getpid(),
            "url": "http://127.0.0.1:9",
            "port": 9,
            "library": str(indexed),
            "token_required": False,
        },
    )
    with pytest.raises(client.Unavailable, match="did not answer"):
        client.connect(indexed)
    query = Query((Term("text", "a dog"),))
    assert client.search(indexed, query) is None  # the CLI then searches in-process


def test_a_token_server_is_used_only_with_the_token(indexed):
    proc, info = start_server(indexed, env={"CLIPSEARCH_TOKEN": TOKEN})
    try:
        assert info["token_required"] is True
        assert "CLIPSEARCH_TOKEN" not in json.dumps(info) and TOKEN not in json.dumps(info)
        with pytest.raises(client.Unavailable, match="needs a token"):
            client.connect(indexed, token="")
        with_token = search(indexed, "a cat", "--json", env={"CLIPSEARCH_TOKEN": TOKEN})
        assert "searched with the server" in with_token.stderr
        assert with_token.stdout.strip() == in_process(indexed, "a cat")
        assert httpx.get(info["url"] + "/api/status").status_code == 401
    finally:
        stop(proc)


def test_serve_refuses_unsafe_or_impossible_setups(cli, indexed, tmp_path):
    exposed = cli("serve", "--host", "0.0.0.0", expect=2)
    assert "without a token" in exposed.stderr and "--token" in exposed.stderr
    weak = cli("serve", "--host", "0.0.0.0", "--token", "1234", expect=2)
    assert "too short" in weak.stderr
    missing = run_process("--library", str(tmp_path / "nothing"), "serve", "--port", "0")
    assert missing.returncode == 1 and "no library" in missing.stderr
    assert not (tmp_path / "nothing").exists()


def test_serve_reports_a_port_in_use(indexed):
    with socket.socket() as taken:  # something else (not a clipsearch server) holds the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        again = run_process("--library", str(indexed), "serve", "--port", str(port))
    assert again.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in again.stderr
    assert read_server_file(indexed) is None


def serve_once(lib_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`clipsearch serve` expected to stop by itself (a refusal), not to serve."""
    return run_process("--library", str(lib_dir), "serve", *args, timeout=90)


def test_a_second_serve_on_the_same_library_is_refused(indexed, tmp_path):
    first, info = start_server(indexed)
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            free_port = s.getsockname()[1]
        # Any port: the default one, a free one given with --port, the first one's own.
        for args in (
            (),
            ("--port", "0"),
            ("--port", str(free_port)),
            ("--port", str(info["port"])),
        ):
            second = serve_once(indexed, *args)
            assert second.returncode == 3, (args, second.stderr)
            assert info["url"] in second.stderr and f"pid {first.pid}" in second.stderr, args
            assert "already serves" in second.stderr and "Loading the model" not in second.stderr
            assert "Serving" not in second.stdout
        # The first server is untouched: its file, and `search` still goes through it.
        assert read_server_file(indexed) == info
        assert first.poll() is None
        found = search(indexed, "a red circle", "--json")
        assert (
            found.returncode == 0 and "searched with the server at " + info["url"] in found.stderr
        )
        # Another library is not this one: a server for it starts as usual.
        other = tmp_path / "other-lib"
        shutil.copytree(indexed, other, ignore=shutil.ignore_patterns("server.*"))
        proc, other_info = start_server(other)
        assert stop(proc)[0] == 0 and other_info["url"] != info["url"]
    finally:
        code, _, err = stop(first)
    assert code == 0, err
    assert read_server_file(indexed) is None
    # Once the first has stopped, a new one starts.
    again, again_info = start_server(indexed)
    assert again_info["pid"] == again.pid
    assert stop(again)[0] == 0 and read_server_file(indexed) is None


def test_a_killed_servers_leftover_file_does_not_block_the_next_one(indexed):
    first, _ = start_server(indexed)
    first.kill()  # SIGKILL: no chance to remove server.json
    first.communicate(timeout=60)
    assert read_server_file(indexed)["pid"] == first.pid  # left behind
    second, info2 = start_server(indexed)  # not refused
    try:
        assert info2["pid"] == second.pid and read_server_file(indexed) == info2
        found = search(indexed, "a dog", "--json")
        assert (
            found.returncode == 0 and "searched with the server at " + info2["url"] in found.stderr
        )
    finally:
        code, _, err = stop(second)
    assert code == 0, err
    assert read_server_file(indexed) is None
    # A leftover file whose pid now belongs to a live process (reused pid) is still stale:
    # no server holds the library, so the CLI does not wait on that address.
    write_server_file(indexed, {**info2, "pid": os.getpid()})
    with pytest.raises(client.Unavailable, match="not running"):
        client.connect(indexed)
    leftover = search(indexed, "a dog", "--json")
    assert leftover.returncode == 0 and "not running" in leftover.stderr


def test_serve_help_text(cli):
    out = cli("serve", "--help").output
    assert "--host" in out and "--token" in out and "CLIPSEARCH_TOKEN" in out
    assert "--no-server" in cli("search", "--help").output
