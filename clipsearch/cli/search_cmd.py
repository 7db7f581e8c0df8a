"""`search`."""

from __future__ import annotations

import json
from typing import Any

import click

from clipsearch.cli.app import (
    State,
    cli,
    console,
)

# --- search --------------------------------------------------------------------------------


@cli.command()
@click.argument("query_words", metavar="QUERY...", nargs=-1)
@click.option(
    "--image",
    "-i",
    "images",
    multiple=True,
    metavar="FILE",
    help="Search by example image (repeatable).",
)
@click.option(
    "--not",
    "negatives",
    multiple=True,
    metavar="TEXT",
    help="Push results away from TEXT (repeatable).",
)
@click.option(
    "--not-image",
    "negative_images",
    multiple=True,
    metavar="FILE",
    help="Push results away from an image (repeatable).",
)
@click.option(
    "--like",
    "likes",
    type=int,
    multiple=True,
    metavar="ID",
    help="More like the library image with this id.",
)
@click.option("-k", "--top", default=10, show_default=True, help="How many results.")
@click.option("--min-score", type=float, metavar="S", help="Only results scoring at least S.")
@click.option(
    "--in",
    "within",
    multiple=True,
    metavar="PATH",
    help="Only images inside PATH (a folder or file; repeatable).",
)
@click.option(
    "--source",
    type=click.Choice(["photos", "generated"]),
    help="Only photos, or only generated images.",
)
@click.option("--tag", metavar="LABEL", help="Only images tagged LABEL (see `clipsearch tag`).")
@click.option("--after", metavar="DATE", help="Taken on/after DATE (2024, 2024-06, 2024-06-30).")
@click.option("--before", metavar="DATE", help="Taken before DATE.")
@click.option(
    "--include-offline",
    is_flag=True,
    help="Also pictures of offline folders (an unmounted drive), marked as such.",
)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.option("--paths", "as_paths", is_flag=True, help="Print one path per line.")
@click.option(
    "--no-server",
    is_flag=True,
    help="Search in this process even if a server runs for the library.",
)
@click.pass_obj
def search(
    state: State,
    query_words: tuple[str, ...],
    images: tuple[str, ...],
    negatives: tuple[str, ...],
    negative_images: tuple[str, ...],
    likes: tuple[int, ...],
    top: int,
    min_score: float | None,
    within: tuple[str, ...],
    source: str | None,
    tag: str | None,
    after: str | None,
    before: str | None,
    include_offline: bool,
    as_json: bool,
    as_paths: bool,
    no_server: bool,
) -> None:
    """Search by text, image, or a weighted mix.

    \b
      clipsearch search a dog on a beach
      clipsearch search --image query.jpg
      clipsearch search beach --image sunset.jpg --not people
      clipsearch search "2:dog + ./pool.jpg - fruit"     (rclip syntax)

    When `clipsearch serve` runs for the library, the search goes to it (the model is
    already loaded there); otherwise it runs here. The output is the same either way.
    """
    if as_json and as_paths:
        raise click.UsageError("--json and --paths cannot be used together")
    from clipsearch.query.build import build_query

    query = build_query(
        " ".join(query_words),
        images=images,
        negatives=negatives,
        negative_images=negative_images,
        like=likes,
        k=top,
        min_score=min_score,
        within=within,
        source=source,
        after=after,
        before=before,
        tag=tag,
        include_offline=include_offline,
    )
    answer = None if no_server else _search_with_server(state, query)
    if answer is not None:
        results = answer.results
    else:
        with state.open_library(create=False) as lib:
            results = lib.run_query(query)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
    elif as_paths:
        for r in results:
            click.echo(r.path)
    elif results:
        _print_results(results)
    elif not state.quiet:
        with state.open_library(create=False, check_model=False) as lib:
            click.echo(lib.why_no_results(query), err=True)


def _search_with_server(state: State, query: Any) -> Any:
    """Ask the library's running server, if there is one (see clipsearch.server.client)."""
    import os

    from clipsearch.config import Settings
    from clipsearch.server import client

    library = os.path.abspath(Settings.resolve(library=state.overrides.get("library")).library)
    if client.read_server_file(library) is None:
        return None
    return client.search(library, query, model=state.requested_model)


def _print_results(results: list[Any]) -> None:
    from rich.table import Table

    from clipsearch.media.fs import display

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("id", justify="right")
    table.add_column("size", justify="right")
    table.add_column("path", overflow="fold")
    for rank, r in enumerate(results, 1):
        dims = f"{r.width}x{r.height}" if r.width else ""
        shown = display(r.path) + (" (offline)" if r.offline else "")
        table.add_row(str(rank), f"{r.score:.3f}", str(r.id), dims, shown)
    console().print(table)
