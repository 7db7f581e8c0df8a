"""`dupes`: duplicate groups as a table, JSON or an HTML page; quarantine moves and undo."""

from __future__ import annotations

import json
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
    help="Cosine similarity for 'similar' images (default 0.95).",
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
    help="Move every non-keeper into DIR (keeping paths relative to the indexed "
    "folder) and write an undo log. Nothing is deleted.",
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
    undo_log: str | None,
) -> None:
    """Find exact copies, near copies (resized, recompressed, cropped, flipped...) and
    very similar images; each group names a keeper (most pixels, then largest file, then
    oldest).

    \b
      clipsearch dupes
      clipsearch dupes --html dupes.html
      clipsearch dupes --move-to ~/quarantine        (then: dupes --undo LOG)
    """
    if undo_log and (move_to or html_path):
        raise click.UsageError("--undo cannot be combined with --move-to or --html")
    if no_similar and threshold is not None:
        raise click.UsageError("--threshold and --no-similar cannot be used together")
    with state.open_library(create=False, check_model=False) as lib:
        if undo_log:
            _report_moves(lib.undo_moves(undo_log), as_json, "restored", state)
            return
        report = _find(lib, state, max_distance, threshold, similar=not no_similar)
        if html_path:
            from clipsearch.dupes.html import write_report

            write_report(report, html_path, lib.path)
        if move_to:
            ids = [m.id for g in report.groups for m in g.others]
            _report_moves(lib.move_duplicates(ids, move_to), as_json, "moved", state)
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


def _print_groups(report: Any, state: State) -> None:
    from rich.table import Table

    if report.hashed and not state.quiet:
        click.echo(f"Computed perceptual hashes of {report.hashed} older images.", err=True)
    if not report.groups:
        if not state.quiet:
            click.echo(f"No duplicates among {report.images} images.", err=True)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in (
        ("group", "right"),
        ("", "left"),
        ("why", "left"),
        ("score", "right"),
        ("pixels", "right"),
        ("size", "right"),
        ("modified", "left"),
        ("path", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold" if name == "path" else None)
    for n, g in enumerate(report.groups, 1):
        best = _best_pair_for(g)
        for m in g.members:
            pair = best.get(m.id)
            table.add_row(
                str(n),
                "keep" if m is g.keeper else "copy",
                pair.reason if pair else "",
                f"{pair.score:.3f}" if pair else "",
                f"{m.width}x{m.height}" if m.width else "",
                human_bytes(m.size),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(m.mtime)),
                m.path,
            )
    console().print(table)
    if not state.quiet:
        click.echo(
            f"{len(report.groups)} groups, {report.duplicates} copies to review "
            f"(of {report.images} images) in {report.seconds:.1f}s.",
            err=True,
        )


def _best_pair_for(group: Any) -> dict[int, Any]:
    """For each non-keeper, its strongest link (to the keeper when there is one)."""
    out: dict[int, Any] = {}
    rank = {"exact": 0, "near": 1, "similar": 2}
    for p in group.pairs:
        for me, other in ((p.a, p.b), (p.b, p.a)):
            if me == group.keeper.id:
                continue
            key = (other != group.keeper.id, rank[p.reason], -p.score)
            old = out.get(me)
            if old is None or key < old[0]:
                out[me] = (key, p)
    return {k: v[1] for k, v in out.items()}


def _report_moves(report: Any, as_json: bool, verb: str, state: State) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif not state.quiet:
        for m in report.moved:
            click.echo(f"{m['from']} -> {m['to']}")
        for s in report.skipped:
            click.echo(f"skipping {s.path}: {s.reason}", err=True)
        click.echo(f"{len(report.moved)} files {verb}, {len(report.skipped)} skipped.", err=True)
        if verb == "moved" and report.log:
            click.echo(
                f"Undo log: {report.log}\nUndo with:  clipsearch dupes --undo {report.log}",
                err=True,
            )
