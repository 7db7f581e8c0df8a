"""Text in pictures (OCR) with Tesseract: receipts, whiteboards, signs, screenshots.

`TextReader(lang="eng").read(img)` returns an `OcrResult`: the words Tesseract is confident
about (one line of the picture per line of text, words separated by single spaces), how many,
and how long it took. `ocr_unavailable()` says, in one sentence, what to install when
Tesseract or its language data is missing (None when OCR can run).

Two engines, chosen at construction (`backend="auto"` takes the first that is here):

- `tesserocr` (pip: the `clipsearch[ocr]` extra; its Linux and Windows wheels bundle
  libtesseract): Tesseract's C++ API in-process, one engine per thread, kept loaded. It
  releases the GIL while it reads.
- `cli`: the `tesseract` program (apt/brew), one process per pass (about 0.1 s more a picture:
  each process loads the language model again).

Both need the language data (`eng.traineddata`, ...; `osd.traineddata` for turned pictures):
found in `tessdata=` if given, else in `$TESSDATA_PREFIX`, else in the usual install folders.

How a picture is read (each step only when the one before found no confident text, so a
plain document costs one pass and a photo without text three cheap ones):

1. greyscale, transparency onto white, the longest side brought down to `max_side` (2000 px:
   letters 14 px tall in a 4000 px photo stay legible); a picture longer than 1280 px is first
   read on a 1024 px probe, and again at full size only when the probe found text too small
   to trust (words under 14 px) or text it could not read;
2. Tesseract's automatic page layout (PSM 3). When it finds columns or lines cut in two, the
   picture is also read as one block and the better reading kept;
3. orientation detection (OSD, on its own engine), when the first pass saw at least two
   words: a picture turned by 90/180/270 degrees is turned back and read again. Without OSD
   data, or when OSD cannot tell, the turns are tried when the first pass saw many words of
   low confidence (the signature of sideways text);
4. the picture as one block of text (PSM 6): reads pages photographed askew on a dark table,
   which the automatic layout takes for an image region. A glance at 0.6x (512 px long at
   most) comes first: on a photo without text it sees nothing (fur, leaves and water are too
   fine there to pass for letters) and the picture is done, for a fraction of a block pass.

Of the readings, the one with the most confident letters wins (each word's letters times its
confidence: a word cut in two does not count twice). Words are kept when Tesseract's
confidence is at least `min_conf` (50; 80 for words of one or two letters, which must also
stand beside a longer word on their line: what noise in a photo mostly reads as) and they hold
a letter or a digit; one letter repeated ("eee") is dropped.

`TextReader` may be shared between threads (each thread gets its own engine); `close()` frees
them all. Nothing heavy is imported before the first `TextReader` or `ocr_unavailable()`.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image

from clipsearch.errors import ClipsearchError

DEFAULT_LANG = "eng"
MAX_SIDE = 2000  # longest side Tesseract sees (see the module doc)
PROBE_SIDE = 1024  # longest side of the first look at a bigger picture
SMALL_TEXT_PX = 14  # words shorter than this on the probe are read again at full size
MIN_SIDE = 8  # a picture thinner than this holds nothing legible
MIN_CONF = 50.0  # Tesseract's word confidence (0-100) below which a word is dropped
SHORT_MIN_CONF = 80.0  # the same for words of one or two letters/digits
CONFIDENT_WORDS = 3  # a pass with this many kept words ...
CONFIDENT_MEAN = 75.0  # ... and this mean confidence needs no second pass
SIDEWAYS_WORDS = 4  # this many words ...
SIDEWAYS_MEAN = 60.0  # ... below this mean confidence look like text read at the wrong turn
# the glance before a block pass (see TextReader._worth_a_block), at this scale: go on when it
# keeps this many words, or sees this many at this mean confidence
GLANCE_SCALE = 0.6
GLANCE_WORDS = 2
GLANCE_SEEN = 6
GLANCE_MEAN = 45.0
GLANCE_MAX_SIDE = 512  # and at most this long (a 1024 px probe is glanced at half size)
GLANCE_MIN_SIDE = 100  # a glance smaller than this is skipped: the block pass is cheap there
OSD_MIN_CONF = 1.5  # OSD orientation confidence needed to turn a picture
OSD_MIN_SEEN = 2  # words the first pass must see for OSD to be asked (text read sideways is
# seen as garbage; a photo without text shows OSD too little to tell, at up to 50 ms)
CLI_TIMEOUT_S = 120.0

PSM_AUTO = 3  # fully automatic page segmentation, no OSD
PSM_BLOCK = 6  # a single uniform block of text

INSTALL_HINT = (
    "install Tesseract (Debian/Ubuntu: `apt-get install tesseract-ocr tesseract-ocr-eng`; "
    "macOS: `brew install tesseract`) and, for speed, `pip install 'clipsearch[ocr]'`"
)

_ALNUM = re.compile(r"[^\W_]", re.UNICODE)
_EDGE_JUNK = " \t|\\_~^*`‘’“”«»<>{}[]=—–"  # stripped from both ends of a word


class OcrError(ClipsearchError):
    """Tesseract failed on a picture (the picture is skipped; the run goes on)."""


class OcrUnavailable(OcrError):
    """Tesseract or its language data is not installed."""


@dataclass(frozen=True)
class OcrResult:
    """What a picture says. `text` is "" when it says nothing Tesseract is sure of."""

    text: str  # kept words, single spaces within a line, "\n" between lines
    words: int  # how many words `text` holds
    seconds: float  # time spent on this picture (conversion and every pass)
    rotation: int = 0  # degrees (counter-clockwise) the picture was turned to read it
    confidence: float = 0.0  # mean Tesseract confidence of the kept words (0-100)


@dataclass(frozen=True)
class _Word:
    text: str
    conf: float
    line: tuple[int, ...]  # words with equal keys share a line, in reading order
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # left, top, right, bottom (as read)

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def letters(self) -> int:
        return len(_ALNUM.findall(self.text))


@dataclass(frozen=True)
class _Pass:
    kept: tuple[_Word, ...]
    seen: int  # words holding a letter or digit, kept or not
    mean_conf: float  # mean confidence of those
    psm: int = PSM_AUTO
    rotation: int = 0

    @property
    def text_height(self) -> float:
        heights = sorted(w.height for w in self.kept)
        return float(heights[len(heights) // 2]) if heights else 0.0

    @property
    def score(self) -> float:
        """Confidence-weighted letters: a word cut in two does not count twice."""
        return sum(w.conf * w.letters for w in self.kept) / 100.0

    @property
    def side_by_side(self) -> bool:
        """Whether two of its lines stand side by side: columns, or one line the layout cut
        in two (which reading the picture as one block mends)."""
        boxes: dict[tuple[int, ...], list[int]] = {}
        for w in self.kept:
            b = boxes.setdefault(w.line, list(w.box))
            b[:] = [
                min(b[0], w.box[0]),
                min(b[1], w.box[1]),
                max(b[2], w.box[2]),
                max(b[3], w.box[3]),
            ]
        lines = list(boxes.values())[:400]
        for i, a in enumerate(lines):
            for b in lines[i + 1 :]:
                overlap = min(a[3], b[3]) - max(a[1], b[1])
                if overlap > 0.5 * min(a[3] - a[1], b[3] - b[1]) and (a[2] <= b[0] or b[2] <= a[0]):
                    return True
        return False

    @property
    def confident(self) -> bool:
        return len(self.kept) >= CONFIDENT_WORDS and self.mean_conf >= CONFIDENT_MEAN

    @property
    def sideways(self) -> bool:
        return self.seen >= SIDEWAYS_WORDS and self.mean_conf < SIDEWAYS_MEAN

    @property
    def surely_sideways(self) -> bool:
        """Sideways enough to try the turns though OSD, which was asked, could not tell."""
        return self.seen >= 2 * SIDEWAYS_WORDS and self.mean_conf < SIDEWAYS_MEAN - 20


# --- finding Tesseract and its data ------------------------------------------------------------


def _langs(lang: str) -> list[str]:
    names = [p.strip() for p in lang.split("+") if p.strip()]
    if not names:
        raise OcrUnavailable(
            f"no OCR language given ({lang!r})", hint='use e.g. "eng" or "eng+por"'
        )
    return names


def _candidate_dirs() -> Iterable[Path]:
    roots = [Path("/usr/share/tesseract-ocr"), Path("/usr/local/share/tesseract-ocr")]
    for root in roots:
        if root.is_dir():  # /usr/share/tesseract-ocr/5/tessdata, .../4.00/tessdata
            yield from sorted(root.glob("*/tessdata"), reverse=True)
            yield root / "tessdata"
    yield from (
        Path("/usr/share/tessdata"),
        Path("/usr/local/share/tessdata"),
        Path("/opt/homebrew/share/tessdata"),
        Path("/opt/local/share/tessdata"),
        Path(r"C:\Program Files\Tesseract-OCR\tessdata"),
    )


@lru_cache(maxsize=8)
def _cli_tessdata(cmd: str) -> Path | None:
    """The folder the `tesseract` program reads its languages from (None without it)."""
    exe = shutil.which(cmd)
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r'"([^"]+)"', out.stdout + out.stderr)
    return Path(found.group(1)) if found else None


def _normalise_prefix(folder: Path) -> Path:
    """TESSDATA_PREFIX is the tessdata folder (Tesseract 4+) or, as in 3.x, its parent."""
    if not any(folder.glob("*.traineddata")) and (folder / "tessdata").is_dir():
        return folder / "tessdata"
    return folder


def find_tessdata(
    lang: str = DEFAULT_LANG, tessdata: str | Path | None = None, tesseract_cmd: str = "tesseract"
) -> Path | None:
    """The folder holding every language of `lang` ("eng+por"), or None.

    `tessdata` (or else `$TESSDATA_PREFIX`), when given, is the only folder looked at, as
    Tesseract itself does; otherwise the usual install folders and the `tesseract` program's own.
    """
    names = _langs(lang)

    def has_all(folder: Path) -> bool:
        return all((folder / f"{n}.traineddata").is_file() for n in names)

    explicit = tessdata if tessdata is not None else os.environ.get("TESSDATA_PREFIX") or None
    if explicit is not None:
        folder = _normalise_prefix(Path(explicit))
        return folder if has_all(folder) else None
    for folder in _candidate_dirs():
        if has_all(folder):
            return folder
    folder = _cli_tessdata(tesseract_cmd)
    return folder if folder is not None and has_all(folder) else None


def _have_tesserocr() -> bool:
    try:
        import tesserocr  # noqa: F401
    except Exception:  # ImportError, or a wheel whose bundled libraries fail to load
        return False
    return True


def _pick_backend(backend: str, tesseract_cmd: str) -> str | None:
    if backend not in ("auto", "tesserocr", "cli"):
        raise ValueError(f"backend must be 'auto', 'tesserocr' or 'cli', not {backend!r}")
    if backend in ("auto", "tesserocr") and _have_tesserocr():
        return "tesserocr"
    if backend in ("auto", "cli") and shutil.which(tesseract_cmd):
        return "cli"
    return None


def _missing_lang_message(names: Sequence[str], tessdata: str | Path | None) -> str:
    where = tessdata if tessdata is not None else os.environ.get("TESSDATA_PREFIX")
    place = f" in {where}" if where else ""
    packages = " ".join(f"tesseract-ocr-{n}" for n in names if n != "osd")
    return (
        f"OCR cannot run: Tesseract's language data for {'+'.join(names)} was not found{place}; "
        f"install it (Debian/Ubuntu: `apt-get install {packages}`; macOS: "
        "`brew install tesseract tesseract-lang`) or point TESSDATA_PREFIX at the folder "
        f"holding {names[0]}.traineddata."
    )


def ocr_unavailable(
    lang: str = DEFAULT_LANG,
    *,
    tessdata: str | Path | None = None,
    backend: str = "auto",
    tesseract_cmd: str = "tesseract",
) -> str | None:
    """None when OCR can run with these settings, else one sentence saying what to install."""
    try:
        names = _langs(lang)
    except OcrUnavailable as exc:
        return f"OCR cannot run: {exc.message}; {exc.hint}."
    if _pick_backend(backend, tesseract_cmd) is None:
        which = {"tesserocr": "the tesserocr package", "cli": f"the `{tesseract_cmd}` program"}
        missing = which.get(backend, "Tesseract")
        return f"OCR needs Tesseract but {missing} was not found: {INSTALL_HINT}."
    if find_tessdata(lang, tessdata, tesseract_cmd) is None:
        return _missing_lang_message(names, tessdata)
    return None


# --- engines ---------------------------------------------------------------------------------


class _TesserocrEngine:
    """Tesseract's C++ API through tesserocr: one per thread."""

    def __init__(self, lang: str, tessdata: Path) -> None:
        import tesserocr

        self._t = tesserocr
        path = str(tessdata) + os.sep
        try:
            self._api = tesserocr.PyTessBaseAPI(path=path, lang=lang, psm=tesserocr.PSM.AUTO)
        except RuntimeError as exc:
            raise OcrUnavailable(
                f"Tesseract could not load {lang} from {tessdata} ({exc})",
                hint="reinstall its language data, or point TESSDATA_PREFIX at a folder holding it",
            ) from None
        # OSD has an API of its own: asking the recognition API aborts the process on some
        # pictures (tesseract 5.5, std::out_of_range).
        self._osd = None
        if (tessdata / "osd.traineddata").is_file():
            try:
                self._osd = tesserocr.PyTessBaseAPI(
                    path=path, lang="osd", psm=tesserocr.PSM.OSD_ONLY
                )
            except RuntimeError:
                self._osd = None

    @property
    def has_osd(self) -> bool:
        return self._osd is not None

    @staticmethod
    def _set(api, gray: Image.Image) -> None:
        api.SetImageBytes(gray.tobytes(), gray.width, gray.height, 1, gray.width)

    def words(self, gray: Image.Image, psm: int) -> list[_Word]:
        t, api = self._t, self._api
        api.SetPageSegMode(psm)
        self._set(api, gray)
        if not api.Recognize():
            raise OcrError("Tesseract could not read the picture")
        out: list[_Word] = []
        line = 0
        it = api.GetIterator()
        for w in t.iterate_level(it, t.RIL.WORD):
            if w.IsAtBeginningOf(t.RIL.TEXTLINE):
                line += 1
            try:
                text = w.GetUTF8Text(t.RIL.WORD)
            except RuntimeError:  # an empty word
                continue
            box = w.BoundingBox(t.RIL.WORD) or (0, 0, 0, 0)
            out.append(_Word(text, w.Confidence(t.RIL.WORD), (line,), tuple(box)))
        api.Clear()
        return out

    def orientation(self, gray: Image.Image) -> tuple[int, float] | None:
        if self._osd is None:
            return None
        self._set(self._osd, gray)
        try:
            found = self._osd.DetectOrientationScript()
        except RuntimeError:
            found = None
        self._osd.Clear()
        if not found:
            return None
        return int(found["orient_deg"]), float(found["orient_conf"])

    def close(self) -> None:
        self._api.End()
        if self._osd is not None:
            self._osd.End()


class _CliEngine:
    """The `tesseract` program: one process per pass."""

    def __init__(self, lang: str, tessdata: Path, cmd: str) -> None:
        self._lang = lang
        self._tessdata = tessdata
        self._cmd = shutil.which(cmd) or cmd
        self.has_osd = (tessdata / "osd.traineddata").is_file()
        self._env = dict(os.environ, OMP_THREAD_LIMIT="1")  # one core a process
        self._env.pop("TESSDATA_PREFIX", None)

    def _run(self, gray: Image.Image, args: list[str]) -> str:
        buf = io.BytesIO()
        gray.save(buf, "PPM")  # PGM: no compression to pay for
        cmd = [self._cmd, "stdin", "stdout", "--tessdata-dir", str(self._tessdata), *args]
        try:
            proc = subprocess.run(
                cmd,
                input=buf.getvalue(),
                capture_output=True,
                timeout=CLI_TIMEOUT_S,
                env=self._env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise OcrError(f"tesseract took over {CLI_TIMEOUT_S:.0f} s on a picture") from None
        except OSError as exc:
            raise OcrUnavailable(f"cannot run {self._cmd} ({exc})", hint=INSTALL_HINT) from None
        if proc.returncode:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise OcrError(f"tesseract failed ({err[-1] if err else proc.returncode})")
        return proc.stdout.decode("utf-8", errors="replace")

    def words(self, gray: Image.Image, psm: int) -> list[_Word]:
        out: list[_Word] = []
        tsv = self._run(gray, ["-l", self._lang, "--psm", str(psm), "tsv"])
        for row in tsv.splitlines()[1:]:
            cols = row.split("\t")
            if len(cols) < 12 or cols[0] != "5" or not cols[11].strip():
                continue
            try:
                conf = float(cols[10])
            except ValueError:
                continue
            line = (int(cols[2]), int(cols[3]), int(cols[4]))
            x, y, w, h = (int(c) for c in cols[6:10])
            out.append(_Word(cols[11], conf, line, (x, y, x + w, y + h)))
        return out

    def orientation(self, gray: Image.Image) -> tuple[int, float] | None:
        if not self.has_osd:
            return None
        try:
            text = self._run(gray, ["--psm", "0"])
        except OcrError:  # "Too few characters", and the like
            return None
        deg = re.search(r"Orientation in degrees:\s*(\d+)", text)
        conf = re.search(r"Orientation confidence:\s*([\d.]+)", text)
        if not deg or not conf:
            return None
        return int(deg.group(1)), float(conf.group(1))

    def close(self) -> None:
        pass


# --- the reader ------------------------------------------------------------------------------


def _clean(word: str) -> str:
    return word.strip(_EDGE_JUNK)


def _noise(text: str, letters: int) -> bool:
    """What photos of fur, grass and water read as: one letter repeated ("eee")."""
    return letters >= 3 and len(set(_ALNUM.findall(text.lower()))) == 1 and not text.isdigit()


def _judge(words: Sequence[_Word], min_conf: float, psm: int, rotation: int) -> _Pass:
    seen: list[_Word] = []
    kept: list[_Word] = []
    for w in words:
        text = _clean(w.text)
        letters = len(_ALNUM.findall(text))
        if not letters:
            continue
        seen.append(w)
        need = max(min_conf, SHORT_MIN_CONF) if letters <= 2 else min_conf
        if w.conf >= need and not _noise(text, letters):
            kept.append(_Word(text, w.conf, w.line, w.box))
    # a word of one or two letters counts only beside a longer word on its line
    long_lines = {w.line for w in kept if w.letters > 2}
    kept = [w for w in kept if w.line in long_lines]
    mean = sum(w.conf for w in seen) / len(seen) if seen else 0.0
    return _Pass(tuple(kept), len(seen), mean, psm, rotation)


def _text(words: Sequence[_Word]) -> str:
    lines: list[list[str]] = []
    last = None
    for w in words:
        if w.line != last:
            lines.append([])
            last = w.line
        lines[-1].append(w.text)
    return "\n".join(" ".join(line) for line in lines)


def _shrink(gray: Image.Image, side: int) -> Image.Image:
    longest = max(gray.size)
    if longest <= side:
        return gray
    scale = side / longest
    size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
    return gray.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def to_gray(img: Image.Image, max_side: int = MAX_SIDE) -> Image.Image | None:
    """The picture as Tesseract gets it: 8-bit grey, transparency on white, at most
    `max_side` pixels long. None when it is too small to hold text."""
    if min(img.size) < MIN_SIDE:
        return None
    if img.mode not in ("L", "RGB"):
        from clipsearch.media.images import to_rgb

        img = to_rgb(img)
    factor = max(img.size) // max_side
    if factor >= 2:  # box-reduce first: cheaper than resizing (and converting) every pixel
        img = img.reduce(factor)
    gray = _shrink(img.convert("L") if img.mode != "L" else img, max_side)
    return gray if min(gray.size) >= MIN_SIDE else None


def _better(a: _Pass, b: _Pass) -> _Pass:
    return b if b.score > a.score else a


class TextReader:
    """Reads the text in pictures with Tesseract.

    One reader may serve several threads: each gets its own engine (tesserocr releases the GIL
    while it reads, so threads do read in parallel). Raises `OcrUnavailable` when Tesseract or
    the language data is missing (the message says what to install).
    """

    def __init__(
        self,
        lang: str = DEFAULT_LANG,
        *,
        tessdata: str | Path | None = None,
        backend: str = "auto",
        max_side: int = MAX_SIDE,
        min_conf: float = MIN_CONF,
        detect_rotation: bool = True,
        tesseract_cmd: str = "tesseract",
    ) -> None:
        problem = ocr_unavailable(
            lang, tessdata=tessdata, backend=backend, tesseract_cmd=tesseract_cmd
        )
        if problem is not None:
            raise OcrUnavailable(problem)
        self.lang = "+".join(_langs(lang))
        self.backend = _pick_backend(backend, tesseract_cmd) or "cli"
        folder = find_tessdata(lang, tessdata, tesseract_cmd)
        assert folder is not None  # checked by ocr_unavailable
        self.tessdata = folder
        self.max_side = max(max_side, MIN_SIDE)
        self.min_conf = min_conf
        self.detect_rotation = detect_rotation
        self._cmd = tesseract_cmd
        self._local = threading.local()
        self._engines: list[_TesserocrEngine | _CliEngine] = []
        self._lock = threading.Lock()

    def __enter__(self) -> TextReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _engine(self) -> _TesserocrEngine | _CliEngine:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            if self.backend == "tesserocr":
                engine = _TesserocrEngine(self.lang, self.tessdata)
            else:
                engine = _CliEngine(self.lang, self.tessdata, self._cmd)
            self._local.engine = engine
            with self._lock:
                self._engines.append(engine)
        return engine

    @property
    def has_osd(self) -> bool:
        """Whether turned pictures are detected with Tesseract's OSD data."""
        return self._engine().has_osd

    def close(self) -> None:
        """Free every thread's engine (a later `read` makes a new one)."""
        with self._lock:
            engines, self._engines = self._engines, []
        for engine in engines:
            engine.close()
        self._local = threading.local()

    def read(self, img: Image.Image) -> OcrResult:
        """The confident text of `img` (any PIL mode and size). Raises `OcrError` when the
        picture's pixels cannot be read or Tesseract fails on it."""
        t0 = time.perf_counter()
        try:
            gray = to_gray(img, self.max_side)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:  # pixels Pillow can't decode
            raise OcrError(f"cannot read the picture's pixels ({exc})") from None
        best = self._read_gray(gray) if gray is not None else None
        seconds = time.perf_counter() - t0
        if best is None or not best.kept:
            return OcrResult("", 0, seconds)
        mean = sum(w.conf for w in best.kept) / len(best.kept)
        return OcrResult(_text(best.kept), len(best.kept), seconds, best.rotation, round(mean, 1))

    def _pass(self, gray: Image.Image, psm: int, rotation: int = 0) -> _Pass:
        turned = gray.rotate(rotation, expand=True) if rotation else gray
        words = self._engine().words(turned, psm)
        return _judge(words, self.min_conf, psm, rotation)

    def _read_gray(self, full: Image.Image) -> _Pass:
        # Everything is tried first on a probe of at most PROBE_SIDE px (a photo without text
        # costs that much); the full size is read only where the probe found text too small
        # to trust, or unreadable text.
        small = max(full.size) > PROBE_SIDE * 1.25
        probe = _shrink(full, PROBE_SIDE) if small else full
        first = best = self._pass(probe, PSM_AUTO)
        if not best.confident:
            best = self._retry(probe, first)
        elif best.side_by_side:
            best = _better(best, self._pass(probe, PSM_BLOCK))
        if not small:
            return best
        if best.kept and best.text_height < SMALL_TEXT_PX:
            best = _better(best, self._pass(full, best.psm, best.rotation))
        elif not best.kept and first.seen >= SIDEWAYS_WORDS:  # text too small for the probe?
            again = self._pass(full, PSM_AUTO)
            best = again if again.confident else self._retry(full, again)
        return best

    def _retry(self, gray: Image.Image, first: _Pass) -> _Pass:
        """After an automatic-layout pass without confident text: turned, then one block."""
        best, turn = first, 0
        if self.detect_rotation and first.seen >= OSD_MIN_SEEN:
            engine = self._engine()
            found = engine.orientation(gray)
            guess = first.surely_sideways if engine.has_osd else first.sideways
            if found is not None and found[0] % 360 and found[1] >= OSD_MIN_CONF:
                turn = found[0] % 360
                best = _better(best, self._pass(gray, PSM_AUTO, turn))
            elif found is None and guess:  # no OSD data, or OSD could not tell: try the turns
                for angle in (180, 90, 270):
                    tried = self._pass(gray, PSM_AUTO, angle)
                    best = _better(best, tried)
                    if tried.confident:
                        turn = angle
                        break
            if best.confident:
                return best
        if turn == 0 and first.seen < SIDEWAYS_WORDS and not self._worth_a_block(gray):
            return best
        return _better(best, self._pass(gray, PSM_BLOCK, turn))

    def _worth_a_block(self, gray: Image.Image) -> bool:
        """A glance at 0.6x, 512 px at most (a fraction of the cost on a photo, whose texture
        is too fine to pass for letters there): does it hold words a block pass would read?"""
        scale = min(GLANCE_SCALE, GLANCE_MAX_SIDE / max(gray.size))
        if min(gray.size) * scale < GLANCE_MIN_SIDE:
            return True
        size = (round(gray.width * scale), round(gray.height * scale))
        look = self._pass(gray.resize(size, Image.Resampling.BILINEAR), PSM_BLOCK)
        return len(look.kept) >= GLANCE_WORDS or (
            look.seen >= GLANCE_SEEN and look.mean_conf >= GLANCE_MEAN
        )
