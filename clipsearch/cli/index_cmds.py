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
@click.option(
    "--accept-device",
    is_flag=True,
    help="Index a folder that is now on another drive than before (a restored or replaced "
    "disk) instead of keeping it offline.",
)
@click.option(
    "--ocr/--no-ocr",
    default=None,
    help="Read text in pictures with Tesseract (searchable with text:WORDS and quoted "
    "words); remembered by the library. [off]",
)
@click.option(
    "--ocr-lang",
    metavar="LANGS",
    help="Tesseract languages for --ocr, e.g. eng+por (installed language data). [eng]",
)
@click.option(
    "--quick",
    is_flag=True,
    help="List again only folders whose modification time moved since the last run: fast "
    "on large or network collections; misses files edited in place (a plain run finds them).",
)
@click.pass_obj
def index(
    state: State,
    paths: tuple[str, ...],
    as_json: bool,
    accept_device: bool,
    ocr: bool | None,
    ocr_lang: str | None,
    quick: bool,
) -> None:
    """Embed every image under PATH..., incrementally.

    Unchanged files are skipped, changed ones re-embedded, moved or renamed ones keep their
    vector, and files gone from PATH leave the library. Unreadable files are reported and
    skipped. Ctrl-C keeps all work committed so far; run again to resume.

    A folder that had pictures and is now missing, empty or on another drive (an unmounted
    disk) is left alone and marked offline: its pictures stay in the library and come back
    with the drive (see `clipsearch offline`).

    Camera, lens and GPS position (with the place it names, resolved offline) are read from
    each photo's EXIF; with --ocr, the text written in each picture too.

    --quick skips folders unchanged since the last run (their modification time has not
    moved): new, deleted, renamed and moved pictures are found without looking at every
    file, which matters on network drives. A picture edited in place does not change its
    folder's time: run without --quick now and then (`watch` sees edits as they happen).
    """
    wanted = ocr_choice(ocr, ocr_lang)
    with state.open_library(create=True) as lib, progress_bar(state) as progress:
        summary = lib.index(
            list(paths), progress=progress, accept_device=accept_device, ocr=wanted, quick=quick
        )
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


def ocr_choice(ocr: bool | None, lang: str | None) -> bool | str | None:
    """--ocr/--no-ocr and --ocr-lang -> Library.index's `ocr`."""
    if ocr is False:
        if lang:
            raise click.UsageError("--ocr-lang goes with --ocr, not --no-ocr")
        return False
    if lang:
        return lang
    return True if ocr else None


# --- offline ---------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--remove",
    "remove",
    metavar="PATH",
    help="Forget the pictures of this offline folder (its drive is gone for good).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def offline(state: State, remove: str | None, as_json: bool) -> None:
    """List folders that are offline (an unmounted drive), or forget one's pictures.

    An offline folder's pictures stay in the library (vectors, tags) and are left out of
    searches (`search --include-offline` shows them); they come back as they were when the
    drive is mounted again and `index` or `watch` sees it. Only --remove drops them.
    """
    from clipsearch.media.fs import display

    with state.open_library(create=False, check_model=False) as lib:
        if remove is not None:
            n = lib.remove_offline(remove)
            if as_json:
                click.echo(json.dumps({"removed": n, "path": remove}))
            elif not state.quiet:
                click.echo(f"Removed {n} picture(s) of {remove} from the library.")
            return
        roots = lib.offline_roots()
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in roots], indent=2))
        return
    if not roots:
        if not state.quiet:
            click.echo("No folder is offline.", err=True)
        return
    for r in roots:
        click.echo(f"{display(r.path)}: {r.images} picture(s) kept; {r.reason}")


# --- reindex -------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def reindex(state: State, as_json: bool) -> None:
    """Re-embed every image, with --model if given (switching the library's model).

    \b
      clipsearch --library ~/clip-lib --model ViT-L-14:laion2b_s32b_b82k reindex
    """
    with state.open_library(create=False, check_model=False, switching=True) as lib:
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
