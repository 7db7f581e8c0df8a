"""The one query parser: expressions, terms and the `Query` every front end builds.

Expression syntax (as rclip's)::

    dog                      a text query
    ./pool.jpg               an image query (an existing image file, or a path-like term)
    2:dog + ./pool.jpg - fruit   weights with `W:`, terms joined by ` + ` and ` - `

The HTTP API parses the same syntax with `paths=False`: there every term is text (the
server never reads a path it is sent; images arrive as uploads).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from clipsearch.errors import QueryError
from clipsearch.media.fs import is_image_name

TermKind = Literal["text", "image", "id", "upload"]
_WEIGHT = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*:\s*(.+?)\s*$")
_SPLIT = re.compile(r"\s+([+-])\s+")


@dataclass(frozen=True)
class Term:
    """One part of a query. `value` is text, an absolute image path, an image id, or an
    upload id (the server's uploaded query images)."""

    kind: TermKind
    value: str
    weight: float = 1.0


@dataclass(frozen=True)
class Query:
    """A search: terms plus how many results and which ones are allowed."""

    terms: tuple[Term, ...]
    k: int = 10
    min_score: float | None = None
    within: tuple[str, ...] = ()  # folders or files (absolute); empty = everywhere
    source: str | None = None  # "photos" | "generated"; None = both
    after: str | None = None  # ISO date(time), inclusive: capture time, else file mtime
    before: str | None = None  # ISO date(time), exclusive
    tag: str | None = None  # only images with this tag (`clipsearch tag`)
    include_offline: bool = False  # also pictures on an offline root (an unmounted drive)

    @property
    def positive_ids(self) -> tuple[int, ...]:
        """Library images the query is "more like" (left out of its results)."""
        return tuple(int(t.value) for t in self.terms if t.kind == "id" and t.weight > 0)

    def __post_init__(self) -> None:
        if not self.terms:
            raise QueryError("empty query: give text, --image PATH or --like ID")
        if self.k < 1:
            raise QueryError(f"the number of results (k, --top) must be at least 1, got {self.k}")
        if self.source not in (None, "photos", "generated"):
            raise QueryError(f"source must be 'photos' or 'generated', got {self.source!r}")
        for name in ("after", "before"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, iso_date(value, name))

    @property
    def filtered(self) -> bool:
        return bool(self.within) or any(
            v is not None for v in (self.source, self.after, self.before, self.tag)
        )


def iso_date(value: str, name: str) -> str:
    """Normalise a YYYY, YYYY-MM, YYYY-MM-DD or ISO datetime to a comparable ISO string."""
    from datetime import datetime

    text = str(value).strip()
    for fmt, width in (("%Y", 4), ("%Y-%m", 7), ("%Y-%m-%d", 10)):
        if len(text) == width:
            try:
                return datetime.strptime(text, fmt).strftime("%Y-%m-%d")
            except ValueError:
                break
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None).isoformat()
    except ValueError:
        raise QueryError(
            f"{name!r} must be a date like 2024, 2024-06 or 2024-06-30, got {value!r}"
        ) from None


def looks_like_image_path(text: str) -> bool:
    """A term that names an image file rather than describing one."""
    if os.path.isfile(os.path.expanduser(text)) and is_image_name(text):
        return True
    pathish = text.startswith(("/", "./", "../", "~")) or os.sep in text
    return pathish and is_image_name(text) and " " not in text.strip()


def parse_expression(text: str, *, paths: bool = True) -> list[Term]:
    """Parse rclip-style `2:dog + ./pool.jpg - fruit` into weighted terms.

    With `paths=False` every term is text, whatever it looks like.
    """
    text = text.strip()
    if not text:
        return []
    parts = _SPLIT.split(text)  # "a + b - c" -> ["a", "+", "b", "-", "c"]
    signs, bodies = ["+", *parts[1::2]], parts[0::2]
    terms = []
    for sign, body in zip(signs, bodies, strict=True):
        weight = 1.0
        m = _WEIGHT.match(body)
        if m:
            weight, body = float(m.group(1)), m.group(2)
        body = body.strip()
        if not body:
            raise QueryError(f"empty term in query {text!r}")
        if sign == "-":
            weight = -weight
        terms.append(_term(body, weight) if paths else Term("text", body, weight))
    return terms


def _term(body: str, weight: float) -> Term:
    if body.startswith(("http://", "https://")):
        raise QueryError(
            f"URL queries are not supported: {body}",
            hint="Download the image and pass its path (--image FILE).",
        )
    if looks_like_image_path(body):
        return image_term(body, weight)
    return Term("text", body, weight)


def image_term(path: str, weight: float = 1.0) -> Term:
    """A term for an image file; the file must exist."""
    full = os.path.realpath(os.path.expanduser(path))
    if not os.path.isfile(full):
        raise QueryError(f"query image not found: {path}")
    return Term("image", full, weight)
