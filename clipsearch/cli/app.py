"""The `clipsearch` command group, shared options and output helpers.

The `clipsearch.cli` package is the only place that parses flags, prints and picks exit codes;
each command lives in a module of its own and registers itself on `cli`.

Exit codes: 0 ok, 1 error, 2 bad usage or query, 3 library busy (another writer, or for
`serve` another server on the library),
130 interrupted (Ctrl-C / SIGTERM; everything committed is kept).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import click

from clipsearch import __version__
from clipsearch.errors import ClipsearchError

log = logging.getLogger("clipsearch")

EXIT_INTERRUPTED = 130


@dataclass
class State:
    """What the group options decided, handed to every command."""

    overrides: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False
    verbose: int = 0

    def open_library(
        self, *, create: bool, check_model: bool = True, switching: bool = False
    ):  # -> Library
        """`switching`: the command re-embeds everything (`reindex`): --model and
        --precision may differ from the library's."""
        from clipsearch.library import Library

        overrides = dict(self.overrides)
        model = overrides.pop("model", None)
        return Library.open(
            overrides.pop("library", None),
            model=model if check_model else None,
            create=create,
            check_precision=not switching,
            **overrides,
        )

    @property
    def requested_model(self) -> str | None:
        return self.overrides.get("model")


class _Group(click.Group):
    """Turns expected failures into one clear message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClipsearchError as exc:
            _print_error(exc)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def _print_error(exc: ClipsearchError) -> None:
    click.secho(f"error: {exc.message}", err=True, fg="red")
    if exc.hint:
        click.echo(exc.hint, err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--library",
    "-L",
    metavar="DIR",
    help="Library folder (default: $CLIPSEARCH_LIBRARY, else a per-user data folder).",
)
@click.option(
    "--model",
    "-m",
    metavar="SPEC",
    help="Model for a new library: ARCH:TAG (default ViT-B-32:laion2b_s34b_b79k), "
    "hf-hub:ORG/REPO, local-dir:DIR, ARCH:/path/weights, or tiny-shapes.",
)
@click.option(
    "--device", metavar="DEV", help="auto (default), cpu, cuda, cuda:N, openvino or coreml."
)
@click.option("--batch-size", type=int, metavar="N", help="Images per model batch (default 32).")
@click.option("--threads", type=int, metavar="N", help="CPU threads for the model.")
@click.option("--workers", type=int, metavar="N", help="Image decoding threads.")
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "int8", "bf16"], case_sensitive=False),
    help="Precision for a new library's vectors (default auto: the fastest that passes a "
    "fidelity check against fp32 on your photos).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only results and errors.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(__version__, prog_name="clipsearch")
@click.pass_context
def cli(ctx: click.Context, quiet: bool, verbose: int, **options: Any) -> None:
    """Search your photos in plain words, by example image, or both.

    \b
      clipsearch --library ~/clip-lib index ~/Pictures
      clipsearch --library ~/clip-lib search "a dog on a beach"
      clipsearch --library ~/clip-lib search --image query.jpg
      clipsearch --library ~/clip-lib status
    """
    _setup_logging(quiet, verbose)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    ctx.obj = State(
        overrides={k: v for k, v in options.items() if v is not None}, quiet=quiet, verbose=verbose
    )


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (not when it was made)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(quiet: bool, verbose: int) -> None:
    level = (
        logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    )
    logging.basicConfig(level=level, format="clipsearch: %(levelname)s: %(message)s")
    logging.getLogger().setLevel(level)
    # Notices ("loading the model ...") say what a pause at a terminal is about; output
    # that is not a terminal stays clean, and so does --quiet.
    notice = logging.getLogger("clipsearch.notice")
    notice.propagate = False
    shown = not quiet and (verbose > 0 or sys.stderr.isatty())
    notice.setLevel(logging.INFO if shown else logging.ERROR)
    if not notice.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("clipsearch: %(message)s"))
        notice.addHandler(handler)


# --- output shared by commands ----------------------------------------------------------


def print_index_summary(summary: Any) -> None:
    s = summary
    rate = f" ({s.embedded / s.seconds:.1f} img/s)" if s.embedded and s.seconds else ""
    click.echo(
        f"Indexed in {s.seconds:.1f}s{rate}: {s.added} added, {s.updated} updated, "
        f"{s.moved} moved, {s.removed} removed, {s.unchanged} unchanged, {s.failed} failed"
    )
    from clipsearch.media.fs import display

    for off in s.offline:
        click.echo(
            f"offline: {display(off.path)} ({off.reason}): its {off.images} picture(s) stay "
            "in the library, left out of searches until it is back "
            f"(`clipsearch offline --remove {display(off.path)}` forgets them)",
            err=True,
        )
    if s.texts_read:
        click.echo(f"read text in {s.texts_read} picture(s) (OCR)")
    if s.ocr_skipped:
        click.echo(f"OCR skipped: {s.ocr_skipped}", err=True)
    shown = s.failures[:20]
    for f in shown:
        click.echo(f"skipping {display(f.path)}: {f.reason}", err=True)
    if len(s.failures) > len(shown):
        click.echo(
            f"... and {len(s.failures) - len(shown)} more (clipsearch status --failures)",
            err=True,
        )


@contextmanager
def progress_bar(state: State) -> Iterator[Any]:
    """A rich progress bar on a terminal; nothing otherwise."""
    if state.quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class _Rate(TextColumn):
        def render(self, task: Any) -> Any:  # images per second
            speed = task.finished_speed or task.speed
            from rich.text import Text

            return Text(f"{speed:5.1f} img/s" if speed else "   -- img/s")

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(""),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, Any] = {}
    labels = {
        "scan": "scanning",
        "embed": "embedding",
        "remove": "removing",
        "facts": "reading EXIF",
        "ocr": "reading text",
    }

    def update(p: Any) -> None:
        if p.phase not in tasks:
            tasks[p.phase] = bar.add_task(labels.get(p.phase, p.phase), total=p.total)
        bar.update(tasks[p.phase], completed=p.done, total=p.total)

    with bar:
        yield update


def console():  # -> rich.console.Console
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cli(prog_name="clipsearch")
