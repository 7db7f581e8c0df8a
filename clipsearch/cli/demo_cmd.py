"""`demo`."""

from __future__ import annotations

import json

import click

from clipsearch.cli.app import (
    State,
    cli,
    print_index_summary,
    progress_bar,
)

# --- demo ----------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--dir",
    "folder",
    metavar="DIR",
    help="Folder for the demo photos and library (default: per-user, or LIBRARY-demo/ "
    "beside --library).",
)
@click.option(
    "--images", "n_images", default=160, show_default=True, help="How many pictures to render."
)
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

    from clipsearch.demo.run import default_demo_dir, run_demo

    options = dict(state.overrides)
    library = options.pop("library", None)
    model = options.pop("model", None)
    if folder:
        base = Path(folder).expanduser()
    elif library:  # keep everything the demo makes beside the library it was given
        lib_path = Path(library).expanduser().absolute()
        base = lib_path.parent / f"{lib_path.name}-demo"
    else:
        base = default_demo_dir()
    say = (lambda m: None) if (state.quiet or as_json) else (lambda m: click.echo(f"- {m}"))
    with progress_bar(state) as progress:
        report = run_demo(
            base,
            n_images=n_images,
            k=top,
            library=Path(library) if library else None,
            model=model,
            progress=progress,
            on_step=say,
            **options,
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "photos": str(report.photos),
                    "library": str(report.library),
                    "model": report.model,
                    "index": report.summary.to_dict(),
                    "queries": [
                        {
                            "query": q.label,
                            "results": [
                                dict(h.to_dict(), correct=ok)
                                for h, ok in zip(q.hits, q.correct, strict=True)
                            ],
                        }
                        for q in report.queries
                    ],
                },
                indent=2,
            )
        )
        return
    if not state.quiet:
        print_index_summary(report.summary)
    right = total = 0
    for q in report.queries:
        click.echo(f"\nsearch {q.label}")
        for rank, (hit, ok) in enumerate(zip(q.hits, q.correct, strict=True), 1):
            mark = "match" if ok else "-    "
            click.echo(f"  {rank}. {hit.score:.3f}  {mark}  {Path(hit.path).name}")
            right, total = right + ok, total + 1
    click.echo(f"\n{right} of {total} results match their query.")
    click.echo(
        f'\nTry your own:  clipsearch --library {report.library} search "a pink star"\n'
        f"Pictures are in {report.photos}. This model knows the shapes world only; for your "
        "photos use the default model (see README)."
    )
