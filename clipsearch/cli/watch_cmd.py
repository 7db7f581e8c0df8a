"""`watch`: the daemon that keeps a library in sync with folders, live."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator

import click

from clipsearch.cli.app import EXIT_INTERRUPTED, State, cli

_LOG_FORMAT = "%(asctime)s clipsearch: %(levelname)s: %(message)s"


@cli.command()
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option(
    "--settle",
    type=click.FloatRange(0),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="A file is embedded once unchanged for this long (half-written files wait).",
)
@click.option(
    "--reconcile-interval",
    type=click.FloatRange(0),
    default=900,
    show_default=True,
    metavar="SECONDS",
    help="Re-scan the folders this often for changes events missed; 0: only at start.",
)
@click.option(
    "--save-every",
    type=click.IntRange(1),
    default=2000,
    show_default=True,
    metavar="N",
    help="Rewrite the index file after N vector changes ...",
)
@click.option(
    "--save-interval",
    type=click.FloatRange(0),
    default=300,
    show_default=True,
    metavar="SECONDS",
    help="... or this long after the first unsaved change.",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(0),
    default=10,
    show_default=True,
    metavar="SECONDS",
    help="On stop, wait this long for settling files (the rest: next start).",
)
@click.option(
    "--polling",
    is_flag=True,
    help="Poll the folders instead of kernel events (network file systems).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="Also append the log to FILE.",
)
@click.option(
    "--ocr/--no-ocr",
    default=None,
    help="Read text in pictures with Tesseract; remembered by the library. [off]",
)
@click.option("--ocr-lang", metavar="LANGS", help="Tesseract languages for --ocr. [eng]")
@click.pass_obj
def watch(
    state: State,
    paths: tuple[str, ...],
    settle: float,
    reconcile_interval: float,
    save_every: int,
    save_interval: float,
    drain_timeout: float,
    polling: bool,
    log_file: str | None,
    ocr: bool | None,
    ocr_lang: str | None,
) -> None:
    """Keep the library in sync with folders, live (runs in the foreground).

    New and changed images are embedded once they stop changing, moved and renamed ones keep
    their vectors, deleted ones leave the library. On start, a catch-up scan picks up what
    changed while the daemon was not running. The folders are remembered: `watch` with no
    PATH watches them again. Stop with Ctrl-C (exit 130) or SIGTERM (exit 0). Unless
    --threads says otherwise, the model uses at most half the CPU cores.

    \b
      clipsearch --library ~/clip-lib watch ~/Pictures ~/Downloads
      clipsearch --library ~/clip-lib status          (shows the daemon)
    """
    from clipsearch.cli.index_cmds import ocr_choice
    from clipsearch.ingest.daemon import WatchDaemon, WatchOptions, default_threads
    from clipsearch.media import fs

    options = WatchOptions(
        settle=settle,
        reconcile_interval=reconcile_interval,
        save_every=save_every,
        save_interval=save_interval,
        drain_timeout=drain_timeout,
        polling=polling,
    )
    if state.overrides.get("threads") is None and not os.environ.get("CLIPSEARCH_THREADS"):
        state.overrides["threads"] = default_threads()  # leave cores to the foreground
    roots = fs.check_roots(paths) if paths else None
    for root in roots or ():
        if not os.path.isdir(root):
            raise click.BadParameter(f"{root} is not a folder", param_hint="PATH")
    with _daemon_logging(state, log_file), state.open_library(create=bool(paths)) as lib:
        lib.vectors.long_lived()  # follows commits for hours: no stalls, no creeping memory
        lib.set_ocr(ocr_choice(ocr, ocr_lang))
        if roots is None:
            roots = lib.watched_roots()
            if not roots:
                raise click.UsageError(
                    "no folders to watch yet: name them, e.g. `clipsearch watch ~/Pictures` "
                    "(they are remembered for the next time)"
                )
        daemon = WatchDaemon(lib, roots, options)
        with _stop_on_signals(daemon) as received:
            daemon.run()
    if received and received[0] == signal.SIGINT:
        sys.exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def _stop_on_signals(daemon) -> Iterator[list[int]]:
    """SIGINT/SIGTERM ask the daemon to stop cleanly; a second one hurries it."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        if daemon.request_stop(signal.Signals(signum).name):
            raise KeyboardInterrupt

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield received
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def _daemon_logging(state: State, log_file: str | None) -> Iterator[None]:
    """A daemon logs what it does: INFO by default, -v for debug, -q for errors only.

    Other libraries stay at WARNING (-vv: everything at DEBUG).
    """
    root, ours = logging.getLogger(), logging.getLogger("clipsearch")
    saved = (root.level, ours.level, [h.formatter for h in root.handlers])
    if state.quiet:
        root.setLevel(logging.ERROR)
        ours.setLevel(logging.ERROR)
    else:
        root.setLevel(logging.DEBUG if state.verbose >= 2 else logging.WARNING)
        ours.setLevel(logging.DEBUG if state.verbose else logging.INFO)
    fmt = logging.Formatter(_LOG_FORMAT, "%Y-%m-%d %H:%M:%S")
    for h in root.handlers:
        h.setFormatter(fmt)
    file_handler = None
    if log_file:
        file_handler = logging.FileHandler(log_file, encoding="utf-8", errors="backslashreplace")
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    try:
        yield
    finally:
        if file_handler is not None:
            root.removeHandler(file_handler)
            file_handler.close()
        root.setLevel(saved[0])
        ours.setLevel(saved[1])
        for h, f in zip(root.handlers, saved[2], strict=False):
            h.setFormatter(f)
