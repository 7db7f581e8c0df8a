"""`classify` and `tag`: zero-shot labels for images."""

from __future__ import annotations

import json

import click

from clipsearch.cli.app import State, cli, console


@cli.command()
@click.argument("labels", nargs=-1, metavar="LABEL...")
@click.option(
    "--where",
    "within",
    multiple=True,
    metavar="PATH",
    help="Only images inside PATH (a folder or file; repeatable).",
)
@click.option(
    "--top",
    default=3,
    show_default=True,
    type=click.IntRange(1, 20),
    help="How many labels to list per image in --json.",
)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_obj
def classify(
    state: State, labels: tuple[str, ...], within: tuple[str, ...], top: int, as_json: bool
) -> None:
    """Score each image against LABELs; print its best label and probability.

    Each label is embedded with several prompt templates ("a photo of a {}.", ...),
    averaged (prompt ensembling).

    \b
      clipsearch classify cat dog person
      clipsearch classify "red circle" "blue square" --where ~/Pictures/shapes --json
    """
    from clipsearch.tags.classify import clean_labels

    clean = clean_labels(labels)  # a clear error before the library opens
    with state.open_library(create=False, check_model=False) as lib:
        results = lib.classify(clean, within=list(within), top=top)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
        return
    if not results:
        if not state.quiet:
            click.echo("No images to classify.", err=True)
        return
    from rich.table import Table

    from clipsearch.media.fs import display

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("label")
    table.add_column("prob", justify="right")
    table.add_column("id", justify="right")
    table.add_column("path", overflow="fold")
    for r in results:
        table.add_row(r.label, f"{r.probability:.3f}", str(r.id), display(r.path))
    console().print(table)


@cli.command()
@click.option(
    "--vocabulary",
    "-V",
    required=True,
    metavar="NAME|FILE",
    help="coco (80 classes), imagenet (1000) or a file, one label a line.",
)
@click.option(
    "--min-score",
    type=float,
    metavar="S",
    help="Keep labels with probability >= S (default 0.1; 5 at most).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def tag(state: State, vocabulary: str, min_score: float | None, as_json: bool) -> None:
    """Tag every image with labels from a vocabulary (replacing earlier tags).

    The vocabulary is remembered: images indexed later are tagged too. Then filter
    searches by tag:

    \b
      clipsearch tag --vocabulary coco
      clipsearch search "on the beach" --tag dog
    """
    from clipsearch.tags.classify import load_vocabulary

    load_vocabulary(vocabulary)  # a clear error before the library opens
    with state.open_library(create=False, check_model=False) as lib:
        options = {} if min_score is None else {"min_score": min_score}
        summary = lib.tag(vocabulary, **options)
    if as_json:
        summary = dict(summary, tags=[{"label": lb, "images": n} for lb, n in summary["tags"]])
        click.echo(json.dumps(summary, indent=2))
        return
    if not state.quiet:
        click.echo(
            f"Tagged {summary['images']} images with {summary['labels']} labels from "
            f"{summary['vocabulary']} (min score {summary['min_score']})."
        )
        common = ", ".join(f"{lb} ({n})" for lb, n in summary["tags"][:10])
        if common:
            click.echo(f"Most common: {common}")
