"""The `clipsearch` command. The only module that parses flags, prints and picks exit codes.

Exit codes: 0 ok, 1 error, 2 bad usage or query, 3 library busy (another writer),
130 interrupted (Ctrl-C / SIGTERM; everything committed is kept).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
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

    def open_library(self, *, create: bool, check_model: bool = True):  # -> Library
        from clipsearch.library import Library

        overrides = dict(self.overrides)
        model = overrides.pop("model", None)
        return Library.open(
            overrides.pop("library", None), model=model if check_model else None,
            create=create, **overrides,
        )  # fmt: skip

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
    "--library", "-L", metavar="DIR",
    help="Library folder (default: $CLIPSEARCH_LIBRARY, else a per-user data folder).",
)  # fmt: skip
@click.option(
    "--model", "-m", metavar="SPEC",
    help="Model for a new library: ARCH:TAG (default ViT-B-32:laion2b_s34b_b79k), "
    "hf-hub:ORG/REPO, local-dir:DIR, ARCH:/path/weights, or tiny-shapes.",
)  # fmt: skip
@click.option("--device", metavar="DEV", help="auto (default), cpu, cuda, cuda:N or mps.")
@click.option("--batch-size", type=int, metavar="N", help="Images per model batch (default 32).")
@click.option("--threads", type=int, metavar="N", help="CPU threads for the model.")
@click.option("--workers", type=int, metavar="N", help="Image decoding threads.")
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
    ctx.obj = State(overrides={k: v for k, v in options.items() if v is not None},
                    quiet=quiet, verbose=verbose)  # fmt: skip


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _setup_logging(quiet: bool, verbose: int) -> None:
    level = (
        logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    )
    logging.basicConfig(level=level, format="clipsearch: %(levelname)s: %(message)s")
    logging.getLogger().setLevel(level)


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
    with state.open_library(create=True) as lib, _progress(state) as progress:
        summary = lib.index(list(paths), progress=progress)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    elif not state.quiet:
        _print_index_summary(summary)
    if summary.interrupted:
        if not as_json:
            click.echo(
                "Interrupted: everything committed so far is kept; run the same command "
                "again to resume.",
                err=True,
            )
        sys.exit(EXIT_INTERRUPTED)


def _print_index_summary(summary: Any) -> None:
    s = summary
    rate = f" ({s.embedded / s.seconds:.1f} img/s)" if s.embedded and s.seconds else ""
    click.echo(
        f"Indexed in {s.seconds:.1f}s{rate}: {s.added} added, {s.updated} updated, "
        f"{s.moved} moved, {s.removed} removed, {s.unchanged} unchanged, {s.failed} failed"
    )
    shown = s.failures[:20]
    for f in shown:
        click.echo(f"skipping {f.path}: {f.reason}", err=True)
    if len(s.failures) > len(shown):
        click.echo(
            f"... and {len(s.failures) - len(shown)} more (clipsearch status --failures)",
            err=True,
        )


@contextmanager
def _progress(state: State) -> Iterator[Any]:
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
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(""),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    )  # fmt: skip
    tasks: dict[str, Any] = {}
    labels = {"scan": "scanning", "embed": "embedding", "remove": "removing"}

    def update(p: Any) -> None:
        if p.phase not in tasks:
            tasks[p.phase] = bar.add_task(labels.get(p.phase, p.phase), total=p.total)
        bar.update(tasks[p.phase], completed=p.done, total=p.total)

    with bar:
        yield update


# --- search --------------------------------------------------------------------------------


@cli.command()
@click.argument("query", nargs=-1)
@click.option("--image", "-i", "images", multiple=True, metavar="FILE",
              help="Search by example image (repeatable).")  # fmt: skip
@click.option("--not", "negatives", multiple=True, metavar="TEXT",
              help="Push results away from TEXT (repeatable).")  # fmt: skip
@click.option("--not-image", "negative_images", multiple=True, metavar="FILE",
              help="Push results away from an image (repeatable).")  # fmt: skip
@click.option("--like", "likes", type=int, multiple=True, metavar="ID",
              help="More like the library image with this id.")  # fmt: skip
@click.option("-k", "--top", default=10, show_default=True, help="How many results.")
@click.option("--min-score", type=float, metavar="S", help="Only results scoring at least S.")
@click.option("--in", "within", multiple=True, metavar="PATH",
              help="Only images inside PATH (a folder or file; repeatable).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.option("--paths", "as_paths", is_flag=True, help="Print one path per line.")
@click.pass_obj
def search(
    state: State, query: tuple[str, ...], images: tuple[str, ...], negatives: tuple[str, ...],
    negative_images: tuple[str, ...], likes: tuple[int, ...], top: int,
    min_score: float | None, within: tuple[str, ...], as_json: bool, as_paths: bool,
) -> None:  # fmt: skip
    """Search by text, image, or a weighted mix.

    \b
      clipsearch search a dog on a beach
      clipsearch search --image query.jpg
      clipsearch search beach --image sunset.jpg --not people
      clipsearch search "2:dog + ./pool.jpg - fruit"     (rclip syntax)
    """
    if as_json and as_paths:
        raise click.UsageError("--json and --paths cannot be used together")
    with state.open_library(create=False) as lib:
        results = lib.search(
            " ".join(query), image=list(images), negative=list(negatives),
            negative_image=list(negative_images), like=list(likes), k=top,
            min_score=min_score, within=list(within),
        )  # fmt: skip
        empty_library = not results and lib.store.vector_count() == 0
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
    elif as_paths:
        for r in results:
            click.echo(r.path)
    elif results:
        _print_results(results)
    elif not state.quiet:
        click.echo(
            "No images in this library yet: run `clipsearch index PATH` first."
            if empty_library
            else "No results.",
            err=True,
        )


def _console():  # -> rich.console.Console
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def _print_results(results: list[Any]) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("id", justify="right")
    table.add_column("size", justify="right")
    table.add_column("path", overflow="fold")
    for rank, r in enumerate(results, 1):
        dims = f"{r.width}x{r.height}" if r.width else ""
        table.add_row(str(rank), f"{r.score:.3f}", str(r.id), dims, r.path)
    _console().print(table)


# --- status --------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print status as JSON.")
@click.option("--failures", "show_failures", is_flag=True, help="List every file that failed.")
@click.pass_obj
def status(state: State, as_json: bool, show_failures: bool) -> None:
    """Show what the library holds: images, failures, model, index, size."""
    with state.open_library(create=False, check_model=False) as lib:
        info = lib.status()
        failures = lib.failures() if show_failures else []
    if show_failures:
        info["failure_list"] = failures
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    _print_status(info)
    for f in failures:
        click.echo(f"{f['path']}: {f['reason']}")


def _print_status(info: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    idx = info["index"]
    rows = [
        ("library", info["library"]),
        ("model", f"{info['model']}" + (f" ({info['dim']}-d)" if info["dim"] else "")),
        ("images", f"{info['images']} ({info['photos']} photos, {info['generated']} generated)"),
        ("failures", str(info["failures"])),
        ("vectors", f"{info['vectors']} in store, {idx['vectors']} in index ({idx['kind'] or '-'}"
                    + (f", nprobe {idx['nprobe']}" if idx["nprobe"] else "") + ")"),
        ("size", _human_bytes(info["size_bytes"])),
    ]  # fmt: skip
    for root in info["roots"]:
        when = root["last_indexed_at"]
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(when)) if when else "never"
        rows.append(("folder", f"{root['path']} (indexed {stamp})"))
    if info.get("writer"):
        rows.append(("writer", f"pid {info['writer'].get('pid')}: {info['writer'].get('command')}"))
    for k, v in rows:
        table.add_row(k, v)
    _console().print(table)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


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
        with _progress(state) as progress:
            summary = lib.reindex(model, progress=progress)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    elif not state.quiet:
        click.echo(f"Re-embedded with {model}.")
        _print_index_summary(summary)
    if summary.interrupted:
        sys.exit(EXIT_INTERRUPTED)


# --- demo ----------------------------------------------------------------------------------


@cli.command()
@click.option("--dir", "folder", metavar="DIR",
              help="Folder for the demo photos and library (default: per-user).")  # fmt: skip
@click.option("--images", "n_images", default=160, show_default=True,
              help="How many pictures to render.")  # fmt: skip
@click.option("-k", "--top", default=3, show_default=True, help="Results per query.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_obj
def demo(state: State, folder: str | None, n_images: int, top: int, as_json: bool) -> None:
    """Run the whole thing offline on a small demo collection.

    Renders pictures from the procedural shapes world, indexes them with the small model the
    project ships (tiny-shapes; it knows only shapes, not photos), and runs text and image
    queries. Each hit is marked by whether it truly matches the query.
    """
    from pathlib import Path

    from clipsearch.demo import default_demo_dir, run_demo

    options = dict(state.overrides)
    library = options.pop("library", None)
    model = options.pop("model", None)
    base = Path(folder).expanduser() if folder else default_demo_dir()
    say = (lambda m: None) if (state.quiet or as_json) else (lambda m: click.echo(f"- {m}"))
    with _progress(state) as progress:
        report = run_demo(
            base, n_images=n_images, k=top, library=Path(library) if library else None,
            model=model, progress=progress, on_step=say, **options,
        )  # fmt: skip
    if as_json:
        click.echo(json.dumps({
            "photos": str(report.photos), "library": str(report.library), "model": report.model,
            "index": report.summary.to_dict(),
            "queries": [{"query": q.label, "results": [
                dict(h.to_dict(), correct=ok) for h, ok in zip(q.hits, q.correct, strict=True)
            ]} for q in report.queries],
        }, indent=2))  # fmt: skip
        return
    if not state.quiet:
        _print_index_summary(report.summary)
    right = total = 0
    for q in report.queries:
        click.echo(f"\nsearch {q.label}")
        for rank, (hit, ok) in enumerate(zip(q.hits, q.correct, strict=True), 1):
            click.echo(f"  {rank}. {hit.score:.3f}  {'ok   ' if ok else 'wrong'}  "
                       f"{Path(hit.path).name}")  # fmt: skip
            right, total = right + ok, total + 1
    click.echo(f"\n{right} of {total} results match their query.")
    click.echo(
        f'\nTry your own:  clipsearch --library {report.library} search "a pink star"\n'
        f"Pictures are in {report.photos}. This model knows the shapes world only; for your "
        "photos use the default model (see README)."
    )


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cli(prog_name="clipsearch")


if __name__ == "__main__":
    main()
