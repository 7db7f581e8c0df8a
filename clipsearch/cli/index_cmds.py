"""`index` and `reindex`."""

from __future__ import annotations

import json
import sys

import click

from clipsearch.cli.app import (
    EXIT_INTERRUPTED,
    State,
    cli,
    print_index_summary,
    progress_bar,
)

# --- index ---------------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def index(state: State, paths: tuple[str, ...], as_json: bool) -> None:
    """Embed every image under PATH..., incrementally.

    Unchanged files are skipped, changed ones re-embedded, moved or renamed ones keep their
    vector, and files gone from PATH leave the library. Unreadable files are reported and
    skipped. Ctrl-C keeps all work committed so far; run again to resume.
    """
    with state.open_library(create=True) as lib, progress_bar(state) as progress:
        summary = lib.index(list(paths), progress=progress)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    elif not state.quiet:
        print_index_summary(summary)
    if summary.interrupted:
        if not as_json:
            click.echo(
                "Interrupted: everything committed so far is kept; run the same command "
                "again to resume.",
                err=True,
            )
        sys.exit(EXIT_INTERRUPTED)


# --- reindex -------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def reindex(state: State, as_json: bool) -> None:
    """Re-embed every image, with --model if given (switching the library's model).

    \b
      clipsearch --library ~/clip-lib --model ViT-L-14:laion2b_s32b_b82k reindex
    """
    with state.open_library(create=False, check_model=False) as lib:
        model = state.requested_model or lib.model
        with progress_bar(state) as progress:
            summary = lib.reindex(model, progress=progress)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    elif not state.quiet:
        click.echo(f"Re-embedded with {model}.")
        print_index_summary(summary)
    if summary.interrupted:
        sys.exit(EXIT_INTERRUPTED)
