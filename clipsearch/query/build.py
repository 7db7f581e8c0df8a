"""The one builder: the pieces a front end collects (an expression, images, negatives, "more
like" ids, filters) -> a :class:`~clipsearch.query.parse.Query`.

`Library.search`, the CLI (when it asks a running server) and the HTTP API all build their
queries here, so the same words mean the same search everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clipsearch.media import fs
from clipsearch.query.parse import Query, Term, image_term, parse_expression


def build_terms(
    expression: str = "",
    *,
    images: Sequence[str | Path] = (),
    negatives: Sequence[str] = (),
    negative_images: Sequence[str | Path] = (),
    like: Sequence[int] = (),
    paths: bool = True,
) -> list[Term]:
    """Terms from the pieces: an expression, --image, --not, --not-image, --like.

    `paths=False` (the HTTP API) reads the expression as words only.
    """
    terms = parse_expression(expression, paths=paths) if expression else []
    terms += [image_term(str(p)) for p in images]
    terms += [Term("text", n, -1.0) for n in negatives if n.strip()]
    terms += [image_term(str(p), -1.0) for p in negative_images]
    terms += [Term("id", str(int(i))) for i in like]
    return terms


def build_query(
    expression: str = "",
    *,
    images: Sequence[str | Path] = (),
    negatives: Sequence[str] = (),
    negative_images: Sequence[str | Path] = (),
    like: Sequence[int] = (),
    terms: Sequence[Term] = (),
    paths: bool = True,
    k: int = 10,
    min_score: float | None = None,
    within: Sequence[str | Path] = (),
    source: str | None = None,
    after: str | None = None,
    before: str | None = None,
    tag: str | None = None,
    include_offline: bool = False,
) -> Query:
    """A validated Query; `terms` are extra ready-made terms (the API's likes and uploads)."""
    built = build_terms(
        expression,
        images=images,
        negatives=negatives,
        negative_images=negative_images,
        like=like,
        paths=paths,
    )
    return Query(
        (*built, *terms),
        k=k,
        min_score=min_score,
        within=tuple(fs.normalize_root(w) for w in within if str(w).strip()),
        source=source,
        after=after or None,
        before=before or None,
        tag=(tag or "").strip() or None,
        include_offline=include_offline,
    )
