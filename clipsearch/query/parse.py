"""The one query parser: expressions, terms and the `Query` every front end builds.

Expression syntax (as rclip's)::

    dog                      a text query
    ./pool.jpg               an image query (an existing image file, or a path-like term)
    2:dog + ./pool.jpg - fruit   weights with `W:`, terms joined by ` + ` and ` - `

Filters and keywords can be written in the same text (see `split_query`)::

    beach near:Lisbon after:2023-06 before:2024
    text:"invoice" camera:pixel
    whiteboard "project plan"        quoted words: keyword ranking fused with the semantic one

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
class Near:
    """`near:` resolved: a circle around a point, or a whole country."""

    text: str  # as the user wrote it
    label: str  # what it was understood as ("Lisbon, Portugal")
    lat: float | None = None
    lon: float | None = None
    radius_km: float | None = None
    country_code: str | None = None


@dataclass(frozen=True)
class Query:
    """A search: terms plus how many results and which ones are allowed.

    A query may have no terms when it has a filter or keywords: the results are then the
    keyword matches (best first) or, with filters alone, the newest pictures first.
    """

    terms: tuple[Term, ...]
    k: int = 10
    min_score: float | None = None
    within: tuple[str, ...] = ()  # folders or files (absolute); empty = everywhere
    source: str | None = None  # "photos" | "generated"; None = both
    after: str | None = None  # ISO date(time), inclusive: capture time, else file mtime
    before: str | None = None  # ISO date(time), exclusive
    tag: str | None = None  # only images with this tag (`clipsearch tag`)
    include_offline: bool = False  # also pictures on an offline root (an unmounted drive)
    near: Near | None = None  # taken near a place (GPS)
    camera: str | None = None  # camera make/model/lens words (prefix of the last)
    text: tuple[str, ...] = ()  # words written in the picture (OCR); each must be there
    folder_names: tuple[str, ...] = ()  # `in:NAME`: a folder with this name above the file
    keywords: tuple[str, ...] = ()  # quoted phrases: keyword matches fused with the semantic
    cutoff: str | None = None  # "auto": end the list where relevance drops

    @property
    def positive_ids(self) -> tuple[int, ...]:
        """Library images the query is "more like" (left out of its results)."""
        return tuple(int(t.value) for t in self.terms if t.kind == "id" and t.weight > 0)

    def __post_init__(self) -> None:
        if not self.terms and not (self.filtered or self.keywords):
            raise QueryError("empty query: give text, --image PATH or --like ID")
        if self.k < 1:
            raise QueryError(f"the number of results (k, --top) must be at least 1, got {self.k}")
        if self.cutoff not in (None, "auto"):
            raise QueryError(f"cutoff must be 'auto', got {self.cutoff!r}")
        if self.source not in (None, "photos", "generated"):
            raise QueryError(f"source must be 'photos' or 'generated', got {self.source!r}")
        for name in ("after", "before"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, iso_date(value, name))

    @property
    def filtered(self) -> bool:
        return bool(self.within or self.text or self.folder_names) or any(
            v is not None
            for v in (self.source, self.after, self.before, self.tag, self.near, self.camera)
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


# --- filters written in the query text ---------------------------------------------------

FILTER_KEYS = ("near", "after", "before", "camera", "text", "in", "tag", "source")
_REPEATABLE = ("text", "in")
_FILTER_HELP = {
    "near": 'near:Lisbon, near:"New York", near:"Paris, FR", near:38.72,-9.14~5km',
    "after": "after:2023-06 (on or after; 2023, 2023-06 or 2023-06-30)",
    "before": "before:2024 (before; 2024, 2024-06 or 2024-06-30)",
    "camera": 'camera:pixel, camera:"EOS 5D" (make, model or lens)',
    "text": 'text:invoice, text:"project plan" (words written in the picture)',
    "in": "in:Holidays (a folder's name) or in:~/Pictures/2023 (a folder)",
    "tag": "tag:beach (a zero-shot tag)",
    "source": "source:photos or source:generated",
}
_KEY = re.compile(r"([A-Za-z][A-Za-z_]*):(?=\S)")
_NOT_FILTERS = ("http", "https", "file", "ftp")


@dataclass(frozen=True)
class QueryParts:
    """A query text split: the words left for the model, filters and quoted phrases."""

    free: str
    filters: tuple[tuple[str, str], ...] = ()  # (key, value) in the order written
    phrases: tuple[str, ...] = ()
    spans: tuple[tuple[int, int], ...] = ()  # where each filter is in the text: [start, end)


def filter_help() -> str:
    return "; ".join(_FILTER_HELP.values())


def split_query(text: str) -> QueryParts:
    """Take `key:value` filters and "quoted phrases" out of a query text.

    A filter is a known key right after the start or a space, a colon, and a value without
    spaces or in double quotes. A quoted phrase stays in the words the model reads and is also
    looked up in the keyword index. An unknown `key:value` or an unclosed quote is an error
    naming its position (1-based) and the fix.
    """
    free: list[str] = []
    filters: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    phrases: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise QueryError(
                    f"unclosed quote at position {i + 1}: {text[i:][:30]!r}",
                    hint='Close it: whiteboard "project plan"',
                    position=i + 1,
                )
            phrase = text[i + 1 : end].strip()
            if phrase:
                phrases.append(phrase)
                free.append(phrase)
            i = end + 1
            continue
        m = _KEY.match(text, i) if (i == 0 or text[i - 1].isspace()) else None
        if m and m.group(1).lower() not in _NOT_FILTERS:
            key, start = m.group(1).lower(), m.end()
            if key not in FILTER_KEYS:
                raise QueryError(
                    f"unknown filter {m.group(1)!r} at position {i + 1}",
                    hint=_unknown_hint(m.group(1), text[i:].split()[0]),
                    position=i + 1,
                )
            if text[start] == '"':
                end = text.find('"', start + 1)
                if end < 0:
                    raise QueryError(
                        f"unclosed quote in {key}: at position {start + 1}",
                        hint=f'Close it: {key}:"..."',
                        position=start + 1,
                    )
                value, i = text[start + 1 : end].strip(), end + 1
            else:
                end = start
                while end < n and not text[end].isspace():
                    end += 1
                value, i = text[start:end], end
            if not value:
                raise QueryError(
                    f"empty {key}: at position {m.start() + 1}",
                    hint=f"For example {_FILTER_HELP[key]}",
                    position=m.start() + 1,
                )
            filters.append((key, value))
            spans.append((m.start(), i))
            continue
        free.append(c)
        i += 1
    joined = re.sub(r"\s+", " ", "".join(_spaced(free))).strip()
    return QueryParts(joined, tuple(filters), tuple(phrases), tuple(spans))


def _spaced(pieces: list[str]) -> list[str]:
    """Characters and phrases as they were, phrases kept apart from their neighbours."""
    return [p if len(p) == 1 else f" {p} " for p in pieces]


def _unknown_hint(key: str, written: str) -> str:
    import difflib

    close = difflib.get_close_matches(key.lower(), FILTER_KEYS, n=1)
    did = f"Did you mean {close[0]}:? " if close else ""
    return (
        f"{did}Filters are {', '.join(k + ':' for k in FILTER_KEYS)}. "
        f'To search for the words themselves, put them in quotes: "{written}".'
    )


_RADIUS = re.compile(r"^(.*?)\s*~\s*(\d+(?:\.\d+)?)\s*(km|m|mi)?$", re.IGNORECASE)
_COORDS = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*,\s*([+-]?\d+(?:\.\d+)?)\s*$")


def resolve_near(value: str) -> Near:
    """`near:` text -> a circle or a country: "Lisbon", "Paris, FR", "38.72,-9.14~5km"."""
    text, radius = value.strip(), None
    m = _RADIUS.match(text)
    if m:
        unit = (m.group(3) or "km").lower()
        radius = float(m.group(2)) * {"km": 1.0, "m": 0.001, "mi": 1.609344}[unit]
        text = m.group(1).strip()
        if radius <= 0:
            raise QueryError(f"near:{value}: the distance must be above 0")
    c = _COORDS.match(text)
    if c:
        lat, lon = float(c.group(1)), float(c.group(2))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise QueryError(
                f"near:{value}: latitude must be within -90..90 and longitude -180..180"
            )
        return Near(value, f"{lat:.4f}, {lon:.4f}", lat, lon, radius or 10.0)
    from clipsearch.media.places import find_places

    hits = find_places(text)
    if not hits:
        raise QueryError(
            f"near:{value}: no place of that name is known",
            hint='Check the spelling, add the country (near:"Paris, FR"), or give '
            "coordinates: near:38.72,-9.14~5km",
        )
    hit = hits[0]
    if hit.kind == "country" and radius is None:
        return Near(value, hit.label, country_code=hit.country_code)
    return Near(value, hit.label, hit.lat, hit.lon, radius or hit.radius_km)
