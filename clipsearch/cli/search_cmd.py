"""`search`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from clipsearch.cli.app import (
    State,
    cli,
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
@click.option(
    "-k",
    "--top",
    type=int,
    default=None,
    help="How many results [10; with --cutoff auto, at most 100].",
)
@click.option(
    "--cutoff",
    type=click.Choice(["auto", "none"]),
    default="none",
    show_default=True,
    help="auto: end the list where relevance drops (the largest score drop that stands out).",
)
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
    top: int | None,
    cutoff: str,
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
    """Search by text, image, or a weighted mix, with filters in the query.

    \b
      clipsearch search a dog on a beach
      clipsearch search --image query.jpg
      clipsearch search beach --image sunset.jpg --not people
      clipsearch search "2:dog + ./pool.jpg - fruit"     (rclip syntax)
      clipsearch search 'beach near:Lisbon after:2023-06 before:2024'
      clipsearch search 'text:"invoice" camera:pixel'   (words in the picture: index --ocr)
      clipsearch search 'whiteboard "project plan"'     (quoted: keywords + semantic, fused)
      clipsearch search dog --cutoff auto

    \b
    Filters: near:PLACE (near:Lisbon, near:"Paris, FR", near:38.72,-9.14~5km),
    after:DATE, before:DATE, camera:WORDS, text:WORDS, in:FOLDER-NAME or in:/path,
    tag:LABEL, source:photos|generated. Quote values with spaces: camera:"EOS 5D".

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
        k=top if top is not None else (100 if cutoff == "auto" else 10),
        min_score=min_score,
        within=within,
        source=source,
        after=after,
        before=before,
        tag=tag,
        include_offline=include_offline,
        cutoff=None if cutoff == "none" else cutoff,
    )
    answer = None if no_server else _search_with_server(state, query)
    if answer is not None:
        results = answer.results
    else:
        warming = _warm_text_tower(state, query)  # beside opening the library: ~0.2 s less
        with state.open_library(create=False) as lib:
            if warming is not None:
                warming.join()
                lib.adopt_encoder(warming.encoder)
            results = lib.run_query(query)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
    elif as_paths:
        for r in results:
            click.echo(r.path)
    elif results:
        _print_results(results)
        if any(getattr(r, "keyword", False) for r in results) and not state.quiet:
            click.echo("* the keyword index matched the quoted words", err=True)
    elif not state.quiet:
        with state.open_library(create=False, check_model=False) as lib:
            click.echo(lib.why_no_results(query), err=True)


class _Warming:
    """The library's text tower, loading in a thread while the main thread opens the library."""

    def __init__(self, settings: Any, model: str, precision: str) -> None:
        import threading

        self.encoder: Any = None
        self._args = (settings, model, precision)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        settings, model, precision = self._args
        try:
            from clipsearch.model.encoder import Encoder

            encoder = Encoder(
                model,
                device=settings.device,
                batch_size=settings.batch_size,
                threads=settings.threads,
                precision=precision,
            )
            encoder.warm_text()
            self.encoder = encoder
        except Exception:  # the library reports any problem when it loads the model itself
            self.encoder = None

    def join(self) -> None:
        self._thread.join()


def _warm_text_tower(state: State, query: Any) -> _Warming | None:
    if not any(t.kind == "text" for t in query.terms):
        return None
    import os
    from pathlib import Path

    from clipsearch.config import Settings
    from clipsearch.model.precision import bf16_runtime
    from clipsearch.store.peek import model_facts

    settings = Settings.resolve(**state.overrides)
    facts = model_facts(Path(os.path.abspath(settings.library)) / "clipsearch.db")
    precision = facts.get("precision") or "fp32"
    if "model" not in facts or (precision == "bf16" and bf16_runtime() != "openvino"):
        return None
    return _Warming(settings, facts["model"], precision)


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
    """An aligned table: rank, score, id, size, path (plain text: rich costs a cold search
    a tenth of its time)."""
    from clipsearch.media.fs import display

    rows = [("#", "score", "id", "size", "path")]
    for rank, r in enumerate(results, 1):
        dims = f"{r.width}x{r.height}" if r.width else ""
        shown = display(r.path) + (" (offline)" if r.offline else "")
        score = "-" if r.score is None else f"{r.score:.3f}"
        mark = "*" if getattr(r, "keyword", False) else ""
        rows.append((str(rank), score + mark, str(r.id), dims, shown))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    for n, row in enumerate(rows):
        cells = [cell.rjust(w) for cell, w in zip(row[:4], widths, strict=True)]
        line = "  ".join([*cells, row[4]])
        click.echo(f"{bold}{line}{plain}" if n == 0 else line)
