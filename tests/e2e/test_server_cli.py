"""`clipsearch serve` as a real process, and `clipsearch search` finding it (or not)."""

from __future__ import annotations

import json
import os
import signal
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
    proc, info = start_server(indexed)
    try:
        again = run_process("--library", str(indexed), "serve", "--port", str(info["port"]))
        assert again.returncode == 2 and "already in use" in again.stderr
        assert read_server_file(indexed)["pid"] == proc.pid  # the first server's file stays
    finally:
        stop(proc)


def test_serve_help_text(cli):
    out = cli("serve", "--help").output
    assert "--host" in out and "--token" in out and "CLIPSEARCH_TOKEN" in out
    assert "--no-server" in cli("search", "--help").output
