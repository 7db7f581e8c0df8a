"""`dupes`: duplicate groups as a table, JSON or an HTML page; quarantine moves and undo."""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

import click

from clipsearch.cli.app import State, cli, console, human_bytes


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
@click.option(
    "--html",
    "html_path",
    metavar="FILE",
    help="Write a page with the groups side by side (thumbnails).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(-1, 1),
    metavar="T",
    help="Cosine similarity for 'similar' images (default 0.95). Left out, with a warning, "
    "when the model cannot tell this library's pictures apart at T.",
)
@click.option("--no-similar", is_flag=True, help="Only exact and near copies, no CLIP similarity.")
@click.option(
    "--max-distance",
    type=click.IntRange(0, 64),
    metavar="BITS",
    help="Hash bits (of 128) that may differ for 'near' (default 24).",
)
@click.option(
    "--move-to",
    "move_to",
    metavar="DIR",
    help="Move the non-keepers of the groups of exact and near copies into DIR (keeping "
    "paths relative to the indexed folder) and write an undo log. Nothing is deleted.",
)
@click.option(
    "--include-similar",
    is_flag=True,
    help="With --move-to: also move the non-keepers of the similar (CLIP) groups, which "
    "are look-alikes, not copies (by default they stay).",
)
@click.option("--undo", "undo_log", metavar="LOG", help="Move the files of an undo log back.")
@click.pass_obj
def dupes(
    state: State,
    as_json: bool,
    html_path: str | None,
    threshold: float | None,
    no_similar: bool,
    max_distance: int | None,
    move_to: str | None,
    include_similar: bool,
    undo_log: str | None,
) -> None:
    """Find exact copies, near copies (resized, recompressed, cropped, flipped...) and
    similar-looking images; each group names a keeper (most pixels, then the original:
    camera date, earliest file, camera format, largest file).

    Groups of copies are joined transitively; a similar group holds only pictures similar
    to its keeper, and is reported (and moved) apart from the copies.

    \b
      clipsearch dupes
      clipsearch dupes --html dupes.html
      clipsearch dupes --move-to ~/quarantine        (then: dupes --undo LOG)
    """
    if undo_log and (move_to or html_path):
        raise click.UsageError("--undo cannot be combined with --move-to or --html")
    if no_similar and threshold is not None:
        raise click.UsageError("--threshold and --no-similar cannot be used together")
    if include_similar and not move_to:
        raise click.UsageError("--include-similar only applies with --move-to DIR")
    if include_similar and no_similar:
        raise click.UsageError("--include-similar and --no-similar cannot be used together")
    with state.open_library(create=False, check_model=False) as lib:
        if undo_log:
            _report_moves(lib.undo_moves(undo_log), as_json, state)
            return
        report = _find(lib, state, max_distance, threshold, similar=not no_similar)
        if not state.quiet:
            for warning in report.warnings:
                click.secho(f"warning: {warning}", err=True, fg="yellow")
        if html_path:
            from clipsearch.dupes.html import write_report

            write_report(report, html_path, lib.path)
        if move_to:
            ids = report.ids_to_move(include_similar=include_similar)
            moved = lib.move_duplicates(ids, move_to)
            left = 0 if include_similar else report.similar_images
            _report_moves(moved, as_json, state, library=lib.path, similar_left=left)
            return
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_groups(report, state)
        if html_path and not state.quiet:
            click.echo(f"Wrote {html_path}", err=True)


def _find(
    lib: Any, state: State, max_distance: int | None, threshold: float | None, *, similar: bool
) -> Any:
    from clipsearch.cli.app import progress_bar

    with progress_bar(state) as bar:

        def progress(phase: str, done: int, total: int) -> None:
            if bar is not None:
                from clipsearch.ingest.run import Progress

                bar(Progress(phase, done, total))

        options: dict[str, Any] = {"similar": similar, "progress": progress}
        if max_distance is not None:
            options["max_distance"] = max_distance
        if threshold is not None:
            options["threshold"] = threshold
        return lib.duplicates(**options)


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _print_groups(report: Any, state: State) -> None:
    if report.hashed and not state.quiet:
        click.echo(f"Computed perceptual hashes of {report.hashed} older images.", err=True)
    if not report.groups:
        if not state.quiet:
            click.echo(f"No duplicates among {report.images} images.", err=True)
        return
    out = console()
    n = 0
    copies, similar = report.copy_groups, report.similar_groups
    if copies:
        out.print("[bold]Exact and near copies[/bold]")
        n = _print_table(copies, n)
    if similar:
        if copies:
            out.print()
        out.print(
            f"[bold]Similar images[/bold] (CLIP cosine above {report.threshold:g}: look-alikes, "
            "not copies; review them, --move-to leaves them unless --include-similar)"
        )
        _print_table(similar, n)
    if not state.quiet:
        parts = []
        if copies:
            parts.append(
                f"{_plural(len(copies), 'group', 'groups')} of copies ({report.copies} to move)"
            )
        if similar:
            parts.append(
                f"{_plural(len(similar), 'group', 'groups')} of similar images "
                f"({report.similar_images} to review)"
            )
        click.echo(
            f"{', '.join(parts)} among {report.images} images in {report.seconds:.1f}s.",
            err=True,
        )


def _print_table(groups: list[Any], start: int) -> int:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in (
        ("group", "right"),
        ("", "left"),
        ("why", "left"),
        ("score", "right"),
        ("pixels", "right"),
        ("size", "right"),
        ("format", "left"),
        ("modified", "left"),
        ("path", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold" if name == "path" else None)
    n = start
    for g in groups:
        n += 1
        for m in g.members:
            link = g.links.get(m.id)
            table.add_row(
                str(n),
                "keep" if m is g.keeper else "copy",
                link.reason if link else "",
                f"{link.score:.3f}" if link else "",
                f"{m.width}x{m.height}" if m.width else "",
                human_bytes(m.size),
                m.format or "",
                time.strftime("%Y-%m-%d %H:%M", time.localtime(m.mtime)),
                Text(m.path),  # not markup: a folder may be called "[2024] holiday"
            )
    console().print(table)
    return n


def _report_moves(
    report: Any, as_json: bool, state: State, *, library: Any = None, similar_left: int = 0
) -> None:
    """Print a move (`library` given) or an undo (`library` None)."""
    moving = library is not None
    if as_json:
        out = report.to_dict()
        if moving:
            out["similar_not_moved"] = similar_left
        click.echo(json.dumps(out, indent=2))
        return
    if state.quiet:
        return
    for m in report.moved:
        click.echo(f"{m['from']} -> {m['to']}")
    for s in report.skipped:
        click.echo(f"skipping {s.path}: {s.reason}", err=True)
    verb = "moved" if moving else "restored"
    click.echo(f"{len(report.moved)} files {verb}, {len(report.skipped)} skipped.", err=True)
    if similar_left:
        click.echo(
            f"{_plural(similar_left, 'similar image was', 'similar images were')} not moved "
            "(look-alikes, not copies): review them with --html, and add --include-similar "
            "to move them too.",
            err=True,
        )
    if moving and report.log:
        undo = f"clipsearch --library {shlex.quote(str(library))} dupes --undo "
        click.echo(f"Undo log: {report.log}\nUndo with:  {undo}{shlex.quote(report.log)}", err=True)
