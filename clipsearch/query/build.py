"""The one builder: the pieces a front end collects (an expression, images, negatives, "more
like" ids, filters) -> a :class:`~clipsearch.query.parse.Query`.

`Library.search`, the CLI (when it asks a running server) and the HTTP API all build their
queries here, so the same words mean the same search everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clipsearch.errors import QueryError
from clipsearch.media import fs
from clipsearch.query.parse import (
    _REPEATABLE,
    Near,
    Query,
    Term,
    image_term,
    parse_expression,
    resolve_near,
    split_query,
)


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
    near: str | Near | None = None,
    camera: str | None = None,
    text: Sequence[str] = (),
    folder_names: Sequence[str] = (),
    keywords: Sequence[str] = (),
    cutoff: str | None = None,
) -> Query:
    """A validated Query; `terms` are extra ready-made terms (the API's likes and uploads).

    Filters written in the expression (`near:Lisbon after:2023`) join those given as
    arguments; one given both ways is an error, except the repeatable `text:` and `in:`.
    """
    parts = split_query(expression) if expression else None
    given: dict[str, object] = {
        "after": after or None,
        "before": before or None,
        "camera": (camera or "").strip() or None,
        "tag": (tag or "").strip() or None,
        "source": source,
        "near": near or None,
    }
    texts, names, paths_in = list(text), list(folder_names), list(within)
    for key, value in parts.filters if parts else ():
        if key in _REPEATABLE:
            if key == "text":
                texts.append(value)
            elif _is_folder_path(value):
                paths_in.append(value if paths else _server_path(value))
            else:
                names.append(value)
            continue
        if given.get(key) not in (None, value):
            raise QueryError(f"{key}: is given twice ({given[key]!r} and {value!r})")
        given[key] = value
    if isinstance(given["near"], str):
        given["near"] = resolve_near(given["near"])
    built = build_terms(
        parts.free if parts else "",
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
        within=tuple(fs.normalize_root(w) for w in paths_in if str(w).strip()),
        source=given["source"],  # type: ignore[arg-type]
        after=given["after"],  # type: ignore[arg-type]
        before=given["before"],  # type: ignore[arg-type]
        tag=given["tag"],  # type: ignore[arg-type]
        include_offline=include_offline,
        near=given["near"],  # type: ignore[arg-type]
        camera=given["camera"],  # type: ignore[arg-type]
        text=tuple(t.strip() for t in texts if t.strip()),
        folder_names=tuple(n.strip() for n in names if n.strip()),
        keywords=tuple(dict.fromkeys([*(parts.phrases if parts else ()), *keywords])),
        cutoff=cutoff,
    )


def _is_folder_path(value: str) -> bool:
    return value.startswith(("/", "~", "./", "../")) or value in (".", "..")


def _server_path(value: str) -> str:
    if value.startswith("/"):
        return value
    raise QueryError(
        f"in:{value}: the server takes folders as absolute paths",
        hint="Write in:/full/path, or in:NAME for a folder with that name.",
    )
