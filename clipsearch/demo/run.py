"""`clipsearch demo`: a small collection, indexed and searched offline, end to end.

It renders a collection from the procedural shapes world (`clipsearch.demo.shapes`), indexes it
with the shipped `tiny-shapes` model (no download), and runs a few text and image queries.
Every file name carries its true caption, so each hit can be marked right or wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from clipsearch.ingest.run import IngestSummary, ProgressFn
from clipsearch.library import Library
from clipsearch.query.search import SearchResult

if TYPE_CHECKING:
    from clipsearch.demo import shapes

DEMO_MODEL = "tiny-shapes"
TEXT_QUERIES = (
    "a red circle",
    "three small stars",
    "two large blue squares on a black background",
    "a green cross on a beige background",
    "a yellow heart",  # yellow hearts were held out of training
)


@dataclass
class DemoQuery:
    """One query and its hits, each marked by whether it truly matches."""

    label: str
    hits: list[SearchResult]
    correct: list[bool]


@dataclass
class DemoReport:
    photos: Path
    library: Path
    model: str
    summary: IngestSummary
    queries: list[DemoQuery] = field(default_factory=list)


def default_demo_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("clipsearch", appauthor=False)) / "demo"


def run_demo(
    folder: Path,
    *,
    n_images: int = 160,
    k: int = 3,
    library: Path | None = None,
    model: str | None = None,
    progress: ProgressFn | None = None,
    on_step: Callable[[str], None] | None = None,
    **settings: object,
) -> DemoReport:
    """Build (or reuse) the demo collection under `folder`, index it, and query it.

    The collection mixes random scenes with `k` scenes that truly match each text query, so
    every query has right answers to find among distractors.
    """
    from clipsearch.demo import shapes

    step = on_step or (lambda _msg: None)
    photos = folder / "photos"
    library = library or folder / "library"
    model = model or DEMO_MODEL
    wanted = [shapes.parse_caption(text) for text in TEXT_QUERIES]
    planted = len(wanted) * k
    step(f"rendering {n_images} shapes-world pictures into {photos}")
    shapes.write_collection(
        photos / "album-1", max(0, n_images - planted), seed=0, size=224, suffix=".jpg"
    )
    shapes.write_collection(
        photos / "album-2", planted, seed=1, size=224, suffix=".jpg", descriptions=wanted
    )
    step(f"indexing them into {library} with model {model}")
    with Library.open(library, model=model, **settings) as lib:  # type: ignore[arg-type]
        summary = lib.index([photos], progress=progress)
        report = DemoReport(photos, library, lib.model, summary)
        for text, want in zip(TEXT_QUERIES, wanted, strict=True):
            hits = lib.search(text, k=k)
            report.queries.append(DemoQuery(f'"{text}"', hits, _grade(hits, want)))
        example = sorted((photos / "album-2").glob("*.jpg"))[-1]
        truth = shapes.parse_caption(example.stem)
        same_look = shapes.Description(colour=truth.colour, kind=truth.kind)
        hits = lib.search(image=example, k=k)
        report.queries.append(
            DemoQuery(
                f"image {example.name} (same colour and shape)", hits, _grade(hits, same_look)
            )
        )
    return report


def _grade(hits: list[SearchResult], want: shapes.Description) -> list[bool]:
    from clipsearch.demo import shapes

    return [want.matches(shapes.parse_caption(Path(h.path).stem)) for h in hits]
