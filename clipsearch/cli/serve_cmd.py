"""`serve`: the HTTP API and the web page."""

from __future__ import annotations

import contextlib
import os

import click

from clipsearch.cli.app import State, cli


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but this machine needs --token.",
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0 picks a free one).",
)
@click.option(
    "--token",
    envvar="CLIPSEARCH_TOKEN",
    show_envvar=True,
    metavar="TOKEN",
    help="Require this token (16+ characters) on every API request.",
)
@click.option(
    "--max-upload-mb",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0.01),
    help="Largest query image accepted.",
)
@click.pass_obj
def serve(state: State, host: str, port: int, token: str | None, max_upload_mb: float) -> None:
    """Serve the web page and the HTTP API for the library.

    \b
      clipsearch --library ~/clip-lib serve          # then open http://127.0.0.1:8765
      clipsearch --library ~/clip-lib serve --host 0.0.0.0 --token "$(openssl rand -hex 16)"

    While it runs, `clipsearch search` on the same library asks it instead of loading the
    model again. One server per library: a second `serve` on it (on any port) stops with
    exit code 3, naming the running one. API docs: /docs.
    """
    from clipsearch.server.settings import ServerSettings

    settings = ServerSettings(
        host=host,
        port=port,
        token=token or None,
        max_upload_bytes=int(max_upload_mb * 2**20),
    )
    # One CPU thread per query for the model and for BLAS: queries then run side by side,
    # and a busy machine does not stall them (thread teams spin-waiting for a core can turn a
    # 1 ms query into 40 ms). Set before numpy loads; --threads / CLIPSEARCH_THREADS win.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "threads" not in state.overrides and not os.environ.get("CLIPSEARCH_THREADS"):
        state.overrides["threads"] = 1
    from clipsearch.server.runner import run

    log_level = ("warning", "info", "debug")[min(state.verbose, 2)]

    def ready(url: str) -> None:
        if state.quiet:
            return
        click.echo(f"Serving {lib.path} at {url}  (Ctrl-C to stop)")
        if settings.token:
            click.echo(f"A token is required: open {url}/?token=TOKEN once, or log in on the page.")

    def loading() -> None:
        if not state.quiet:
            click.echo(f"Loading the model and the index of {lib.path} ...", err=True)

    # Ctrl-C / SIGTERM: a clean stop. A second server for this library (on any port) is
    # refused before the model loads, with exit code 3 (ServerRunning).
    with state.open_library(create=False) as lib, contextlib.suppress(KeyboardInterrupt):
        lib.vectors.long_lived(follow=True)  # follows commits for hours: no stalls, no creep
        run(lib, settings, on_ready=ready, on_loading=loading, log_level=log_level)
    if not state.quiet:
        click.echo("Stopped.", err=True)
