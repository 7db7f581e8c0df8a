"""`generate`: VQGAN+CLIP, pixel or transformer pictures from prompts, added back into the
library."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from clipsearch.cli.app import EXIT_INTERRUPTED, State, cli


@cli.command()
@click.argument("prompts", nargs=-1, metavar='"TEXT[:WEIGHT]"...')
@click.option(
    "--steps",
    type=int,
    help="Optimisation steps (default 200; 40 for transformer+vqgan, which starts from a "
    "draft; none for transformer).",
)
@click.option("--seed", type=int, help="Random seed (same seed, same picture). Default: random.")
@click.option(
    "--size",
    metavar="WxH",
    help="Picture size, e.g. 256x256 (multiples of the VQGAN's factor). "
    "Default: 64x64 for tiny-shapes, else 256x256.",
)
@click.option("--lr", type=float, help="Adam learning rate (default 0.1 vqgan, 0.05 pixel).")
@click.option(
    "--cutouts",
    type=int,
    default=16,
    show_default=True,
    help="Augmented crops scored by CLIP each step.",
)
@click.option(
    "--drawer",
    type=click.Choice(["vqgan", "pixel", "transformer", "transformer+vqgan"]),
    default="vqgan",
    show_default=True,
    help="Optimise a VQGAN latent, or the pixels directly; or sample VQGAN codes with the "
    "text-to-image transformer and keep the candidate CLIP likes best (transformer), then "
    "refine it with VQGAN+CLIP (transformer+vqgan).",
)
@click.option(
    "--candidates",
    type=int,
    default=16,
    show_default=True,
    help="Transformer drawers: samples drawn and re-ranked by CLIP (the best is kept).",
)
@click.option(
    "--transformer",
    metavar="PATH",
    help="Transformer drawers: a checkpoint (model.pt or its folder) from "
    "scripts/train_transformer.py. Default: the shipped tiny one for tiny-shapes.",
)
@click.option(
    "--temperature",
    type=float,
    default=1.0,
    show_default=True,
    help="Transformer drawers: sampling temperature.",
)
@click.option(
    "--top-k",
    type=int,
    default=0,
    show_default=True,
    help="Transformer drawers: sample among the K likeliest codes (0: all).",
)
@click.option(
    "--top-p",
    type=float,
    default=1.0,
    show_default=True,
    help="Transformer drawers: sample within the likeliest codes holding this much "
    "probability (1: all).",
)
@click.option(
    "--vqgan",
    metavar="PATH",
    help="taming VQGAN checkpoint: a .ckpt (with its .yaml next to it) or a folder "
    "holding both. Default: the shipped tiny one for tiny-shapes.",
)
@click.option("--init", "init_image", metavar="IMAGE", help="Start from this picture.")
@click.option("--out", metavar="PATH", help="A .png file or a folder (default LIBRARY/generated/).")
@click.option(
    "--frames",
    "every",
    type=int,
    default=0,
    metavar="N",
    help="Keep a frame every N steps, and an animated GIF of the run.",
)
@click.option(
    "--keep-on-interrupt",
    is_flag=True,
    help="On Ctrl-C, save and index the picture so far instead of nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def generate(
    state: State,
    prompts: tuple[str, ...],
    size: str | None,
    steps: int | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Generate a picture from PROMPTS with CLIP guidance and add it to the library.

    Each prompt is TEXT or TEXT:WEIGHT; negative weights steer away. The picture is saved
    as a PNG (prompts, seed, steps and models in its text chunks), indexed at once with
    source "generated": find it with  search "..." --source generated.

    \b
      clipsearch generate "a red circle on a white background" --steps 200 --seed 7
      clipsearch generate "sunset over the sea:1" "people:-0.5" --size 256x256 --init photo.jpg
      clipsearch generate "a blue star" --drawer pixel --frames 10
      clipsearch generate "a small red star on a white background" --drawer transformer
      clipsearch generate "a red star" --drawer transformer+vqgan --candidates 8
    """
    from clipsearch.generate.run import (
        REFINE_STEPS,
        GenerateRequest,
        check_request,
        generate,
        parse_size,
    )

    if steps is None:
        steps = REFINE_STEPS if options["drawer"] == "transformer+vqgan" else 200
    req = GenerateRequest(
        prompts=prompts, size=parse_size(size) if size else None, steps=steps, **options
    )
    check_request(req)  # bad prompts fail before the library or any model opens
    bar_steps = 0 if req.drawer == "transformer" else req.steps
    with state.open_library(create=True) as lib, _progress(state, bar_steps) as progress:
        try:
            result = generate(lib, req, progress=progress)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing saved (use --keep-on-interrupt to keep it)", err=True)
            sys.exit(EXIT_INTERRUPTED)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    elif not state.quiet:
        what = "Interrupted; kept the picture so far" if result.interrupted else "Generated"
        click.echo(f"{what}: {result.path} ({_summary(result)})")
        if result.candidates:
            scores = " ".join(f"{c['clip_score']:.3f}" for c in result.candidates)
            click.echo(f"Candidates' CLIP scores, best first: {scores}")
        if result.gif:
            click.echo(f"Animation: {result.gif}")
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)


def _summary(result: Any) -> str:
    parts = [f"id {result.image_id}", f"seed {result.seed}"]
    if result.candidates:
        parts.append(f"best of {len(result.candidates)} candidates")
    if result.drawer != "transformer":
        parts.append(f"{result.steps_done} steps")
    if result.loss is not None:
        parts.append(f"loss {result.loss:.3f}")
    if result.clip_score is not None:
        parts.append(f"CLIP score {result.clip_score:.3f}")
    return ", ".join([*parts, f"{result.seconds:.1f}s"])


@contextmanager
def _progress(state: State, steps: int) -> Iterator[Any]:
    """A rich bar with the loss on a terminal; nothing otherwise (or with no steps)."""
    if state.quiet or not sys.stderr.isatty() or steps < 1:
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

    bar = Progress(
        TextColumn("generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("generate", total=steps, loss="-")

    def update(report: Any) -> None:
        bar.update(task, completed=report.step, loss=f"{report.loss:.3f}")

    with bar:
        yield update
