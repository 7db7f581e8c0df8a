"""Every command and option is documented for users, and the CLI starts light."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from clipsearch.cli import cli

REPO = Path(__file__).resolve().parents[2]


def _docs() -> str:
    return (REPO / "README.md").read_text() + "".join(
        p.read_text() for p in sorted((REPO / "docs").glob("*.md"))
    )


def _commands(
    cmd: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(cli))


@pytest.mark.parametrize(("name", "cmd"), COMMANDS, ids=[n or "clipsearch" for n, _ in COMMANDS])
def test_command_has_help_and_is_documented(name: str, cmd: click.Command) -> None:
    assert cmd.help and cmd.help.strip(), f"`clipsearch {name}` has no help text"
    docs = _docs()
    if name:
        shown = re.search(rf"clipsearch\b[^\n`]* {re.escape(name)}\b", docs)
        assert shown, f"`clipsearch {name}` is not shown in README.md or docs/"
    for param in cmd.params:
        if not isinstance(param, click.Option) or param.hidden or "--help" in param.opts:
            continue
        assert param.help, f"`clipsearch {name}` option {param.opts} has no help text"
        for opt in param.opts + param.secondary_opts:
            if opt.startswith("--"):
                assert opt in docs, f"`clipsearch {name} {opt}` is not in README.md or docs/"


def test_help_runs_for_every_command() -> None:
    from click.testing import CliRunner

    runner = CliRunner()
    for name, _ in COMMANDS:
        result = runner.invoke(cli, [*name.split(), "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output


def test_importing_the_cli_loads_nothing_heavy() -> None:
    code = (
        "import sys, json, clipsearch.cli; "
        "print(json.dumps(sorted(m for m in ('numpy', 'torch', 'faiss', 'open_clip', "
        "'PIL', 'sqlalchemy', 'fastapi', 'torchvision') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
