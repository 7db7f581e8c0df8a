"""What `index` reads from pictures besides their vectors: photo facts and text (OCR).

- **Facts** (camera, lens, GPS and the place it names, resolved offline) come from the same
  decode as the vector for every new picture. `fill_facts` reads them for images that have
  none yet: libraries made before facts existed (once, on the next `index`) and copies of
  pictures the library already had (their vector is reused, their file is not decoded).
- **Text** (libraries with `--ocr`): `read_texts` runs Tesseract over the images it has not
  read yet, after the embedding pass, in worker threads (Tesseract works outside the GIL).
  Libraries without `--ocr` never load it: their indexing costs what it did.

Both commit in batches and stop cleanly on Ctrl-C: what was committed stays, the rest is
read by the next run.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from clipsearch.errors import UnreadableImage
from clipsearch.media.images import open_image, read_file
from clipsearch.store.facts import set_facts, set_ocr
from clipsearch.store.store import Store

notice = logging.getLogger("clipsearch.notice")
log = logging.getLogger(__name__)

BATCH = 256
FACTS_DONE = "facts_complete"  # meta: every image has been read for facts once
OCR_DONE = "ocr_complete"  # meta: the OCR language every image has been read with
OCR_DRAFT = 1000  # JPEGs decode at a scale keeping the shorter side >= this (OCR reads <= 2000)


def facts_row(facts: object) -> dict:
    """`media.metadata.PhotoFacts` -> the photo_facts columns, with the place resolved."""
    from clipsearch.media.places import PlaceDataMissing, place_at

    row: dict = {
        "camera_make": getattr(facts, "camera_make", None),
        "camera_model": getattr(facts, "camera_model", None),
        "lens": getattr(facts, "lens", None),
        "lat": getattr(facts, "lat", None),
        "lon": getattr(facts, "lon", None),
    }
    if row["lat"] is not None and row["lon"] is not None:
        try:
            place = place_at(row["lat"], row["lon"])
        except PlaceDataMissing:
            place = None
        if place is not None:
            row.update(
                city=place.city,
                region=place.region,
                country=place.country,
                country_code=place.country_code,
            )
    return row


def facts_of_file(path: str) -> dict:
    """A file's facts from its header (no pixels decoded; RAW files through their preview)."""
    from clipsearch.media.metadata import facts_from_exif

    try:
        with warnings.catch_warnings():  # a header is read, no pixels: no bomb to warn of
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return facts_row(facts_from_exif(img))
    except Exception:  # not a format Pillow opens by itself (RAW): the full reader
        _, info = open_image(path)
        return facts_row(info.facts) if info.facts is not None else {}


@dataclass
class PassSummary:
    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False


Report = Callable[[int, int], None]


def fill_facts(
    store: Store,
    items: Sequence[tuple[int, str]],
    *,
    workers: int = 2,
    report: Report | None = None,
) -> PassSummary:
    """Read facts for (id, path) items and record them (an unreadable file: empty facts)."""

    def read(item: tuple[int, str]) -> tuple[int, dict | None]:
        image_id, path = item
        try:
            return image_id, facts_of_file(path)
        except (UnreadableImage, OSError):
            return image_id, None  # gone or unreadable now: read again next time
        except Exception as exc:  # a broken file must not stop the pass
            log.debug("facts of %s: %s", path, exc)
            return image_id, {}

    return _run_pass(items, read, lambda got: set_facts(store, got), workers, report)


def read_texts(
    store: Store,
    items: Sequence[tuple[int, str]],
    *,
    lang: str,
    workers: int = 2,
    report: Report | None = None,
) -> PassSummary:
    """OCR the (id, path) items and record their text ('' when there is none)."""
    import threading

    from clipsearch.media.ocr import TextReader

    local = threading.local()

    def read(item: tuple[int, str]) -> tuple[int, str | None]:
        image_id, path = item
        reader = getattr(local, "reader", None)
        if reader is None:
            reader = local.reader = TextReader(lang=lang)
        try:
            img, _ = open_image(read_file(path), name=path, draft_size=OCR_DRAFT)
        except UnreadableImage:
            return image_id, None
        try:
            return image_id, reader.read(img).text
        except Exception as exc:  # Tesseract failing on one picture must not stop the pass
            log.debug("OCR of %s: %s", path, exc)
            return image_id, ""

    return _run_pass(items, read, lambda got: set_ocr(store, got), workers, report)


def _run_pass(
    items: Sequence[tuple[int, str]],
    read: Callable[[tuple[int, str]], tuple[int, object]],
    record: Callable[[dict], None],
    workers: int,
    report: Report | None,
) -> PassSummary:
    summary = PassSummary()
    start = time.perf_counter()
    total = len(items)
    got: dict = {}
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="clipsearch-read")
    try:
        for n, (image_id, value) in enumerate(pool.map(read, items), 1):
            if value is None:
                summary.failed += 1
            else:
                got[image_id] = value
            if len(got) >= BATCH:
                record(got)
                summary.done += len(got)
                got = {}
            if report and (n % 16 == 0 or n == total):
                report(n, total)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if got:
            record(got)
            summary.done += len(got)
    summary.seconds = time.perf_counter() - start
    return summary
