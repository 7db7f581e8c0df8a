"""Deterministic pictures with text in them (and a few without), for OCR tests and benchmarks.

`text_pictures()` renders them with Pillow: several fonts and sizes (14-60 px), dark on light
and light on dark, a receipt, a whiteboard, a screenshot, a sign on a real photo, text turned
by 90/180/270 degrees, and a "photographed" page (perspective, skew, uneven light, blur, noise,
JPEG). Each comes with the words it shows (lower case, as `words_of` splits text).
`photos_without_text()` opens real photos (animals) from `../shared/datasets/imagenet-sample`
where they lie; they are never copied.

Fonts: the TrueType fonts of fonts-dejavu-core (DejaVu Sans/Serif/Mono) and, where installed,
fonts-liberation; without any of them, Pillow's own built-in font (the pictures still render,
with less variety).

Shared by tests/unit/test_ocr.py and scripts/bench_ocr.py; nothing here imports clipsearch.
"""

from __future__ import annotations

import io
import re
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "datasets" / "imagenet-sample"

_FONT_DIRS = (
    Path("/usr/share/fonts/truetype"),
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path("/Library/Fonts"),
    Path("/System/Library/Fonts/Supplemental"),
)
FONT_FILES = {
    "sans": ("DejaVuSans.ttf",),
    "serif": ("DejaVuSerif.ttf",),
    "mono": ("DejaVuSansMono.ttf",),
    "sans-bold": ("DejaVuSans-Bold.ttf",),
    "oblique": ("DejaVuSans-Oblique.ttf",),
    "liberation-sans": ("LiberationSans-Regular.ttf",),
    "liberation-serif": ("LiberationSerif-Regular.ttf",),
}

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def words_of(text: str) -> list[str]:
    """The words of a text as OCR recall counts them: runs of letters/digits, lower-cased."""
    return [t.lower() for t in _TOKEN.findall(text)]


class TextPicture(NamedTuple):
    name: str  # "<kind>/<detail>", e.g. "plain/serif-24-light"
    image: Image.Image
    words: list[str]  # expected words (lower case, in order); empty for a picture without text

    @property
    def kind(self) -> str:
        return self.name.split("/", 1)[0]


@cache
def _font_path(key: str) -> str | None:
    for name in FONT_FILES[key]:
        for root in _FONT_DIRS:
            if root.is_dir():
                hit = next(iter(sorted(root.rglob(name))), None)
                if hit is not None:
                    return str(hit)
    return None


def have_truetype_fonts() -> bool:
    """True when DejaVu Sans is installed (Debian: fonts-dejavu-core)."""
    return _font_path("sans") is not None


def font(key: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = _font_path(key) or _font_path("sans")
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size)


def available_fonts() -> list[str]:
    """The font keys that resolve to a real file here (at least "sans" when any do)."""
    return [k for k in FONT_FILES if _font_path(k)] or ["sans"]


# --- texts -----------------------------------------------------------------------------------

PARAGRAPHS = (
    "The quarterly report shows strong growth\nin every region except the northern office.",
    "Please remember to water the garden plants\nand close the kitchen window before leaving.",
    "Our museum opens daily at nine o'clock\nwith guided tours of the ancient pottery.",
    "The library will be closed for maintenance\nuntil further notice from the council.",
)

RECEIPT = """\
MAPLE STREET HARDWARE
123 Maple Street, Springfield
INVOICE 20931     2024-03-18
Hammer claw 16oz        12.50
Wood screws box          4.99
Paint brush set          8.25
Masking tape             3.40
SUBTOTAL                29.14
TAX                      2.33
TOTAL                   31.47
VISA CARD PAYMENT APPROVED
Thank you for shopping with us"""

WHITEBOARD = """\
Sprint planning Monday
- migrate database schema
- fix login timeout bug
- review design mockups
Deadline Friday: release candidate"""

SCREENSHOT = (
    "File  Edit  View  Window  Help",
    "Settings",
    "Enable automatic backups every night",
    "Storage location: external drive",
    "Notifications are turned off",
    "Cancel     Save changes",
)

SIGN = "PARKING\nEMERGENCY VEHICLES ONLY"


# --- drawing helpers -------------------------------------------------------------------------


def _text_block(
    text: str,
    fnt,
    fg: tuple[int, ...],
    bg: tuple[int, ...],
    margin: int = 30,
    spacing: int = 8,
) -> Image.Image:
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = probe.multiline_textbbox((0, 0), text, font=fnt, spacing=spacing)
    w, h = right - left + 2 * margin, bottom - top + 2 * margin
    img = Image.new("RGB", (w, h), bg)
    ImageDraw.Draw(img).multiline_text(
        (margin - left, margin - top), text, font=fnt, fill=fg, spacing=spacing
    )
    return img


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def _perspective_coeffs(src: list[tuple[float, float]], dst: list[tuple[float, float]]):
    """Coefficients for Image.transform(PERSPECTIVE): output point -> input point."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, float), np.array(rhs, float)).tolist()


def photographed(page: Image.Image, seed: int, angle: float = 6.0) -> Image.Image:
    """A page as a phone might see it: on a table, in perspective, turned a few degrees,
    lit unevenly, slightly out of focus, noisy and JPEG-compressed."""
    rng = np.random.default_rng(seed)
    w, h = page.size
    # perspective: the far edge narrower, corners jittered
    j = lambda s: float(rng.uniform(-s, s))  # noqa: E731
    inset = 0.06 * w
    dst = [
        (inset + j(8), j(8)),
        (w - inset + j(8), j(8)),
        (w + j(8), h + j(8)),
        (j(8), h + j(8)),
    ]
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    warped = page.transform(
        (w, h), Image.Transform.PERSPECTIVE, _perspective_coeffs(src, dst), Image.Resampling.BICUBIC
    )
    mask = Image.new("L", (w, h), 255).transform(
        (w, h), Image.Transform.PERSPECTIVE, _perspective_coeffs(src, dst), Image.Resampling.BICUBIC
    )
    pad = max(w, h) // 6
    table = Image.new("RGB", (w + 2 * pad, h + 2 * pad), (92, 70, 52))
    table.paste(warped, (pad, pad), mask)
    shot = table.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=(92, 70, 52))
    arr = np.asarray(shot, dtype=np.float32)
    hh, ww = arr.shape[:2]
    yy, xx = np.mgrid[0:hh, 0:ww]
    light = 0.62 + 0.45 * (xx / ww) * 0.6 + 0.45 * (yy / hh) * 0.4  # a lamp off to one side
    arr = arr * light[..., None]
    arr += rng.normal(0, 7, arr.shape)
    shot = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    shot = shot.filter(ImageFilter.GaussianBlur(1.1))
    return _jpeg(shot, 55)


# --- the set ---------------------------------------------------------------------------------


def _plain_pictures() -> list[TextPicture]:
    out = []
    keys = [k for k in ("sans", "serif", "mono", "liberation-serif") if k in available_fonts()]
    sizes = (14, 20, 32, 60)
    n = 0
    for key in keys:
        for size in sizes:
            text = PARAGRAPHS[n % len(PARAGRAPHS)]
            light = n % 2 == 1  # alternate: dark on light, light on dark
            fg, bg = ((235, 235, 235), (30, 34, 40)) if light else ((20, 20, 20), (250, 250, 245))
            img = _text_block(text, font(key, size), fg, bg, margin=max(20, size))
            out.append(
                TextPicture(
                    f"plain/{key}-{size}-{'light' if light else 'dark'}", img, words_of(text)
                )
            )
            n += 1
    # coloured text on a coloured background
    text = PARAGRAPHS[1]
    img = _text_block(text, font("sans-bold", 28), (255, 230, 0), (20, 60, 150))
    out.append(TextPicture("plain/colour-yellow-on-blue", img, words_of(text)))
    return out


def receipt() -> TextPicture:
    img = _text_block(RECEIPT, font("mono", 22), (40, 40, 40), (248, 246, 238), margin=40)
    return TextPicture("receipt/mono-22", img, words_of(RECEIPT))


def whiteboard() -> TextPicture:
    fnt = font("oblique", 44)
    block = _text_block(WHITEBOARD, fnt, (25, 45, 140), (242, 243, 240), margin=70, spacing=22)
    arr = np.asarray(block, dtype=np.float32)
    hh, ww = arr.shape[:2]
    yy, xx = np.mgrid[0:hh, 0:ww]
    glare = 1.0 + 0.06 * np.exp(
        -(((xx - 0.7 * ww) / (0.25 * ww)) ** 2 + ((yy - 0.3 * hh) / (0.4 * hh)) ** 2)
    )
    shade = 0.9 + 0.1 * (1 - yy / hh)
    arr = np.clip(arr * shade[..., None] * glare[..., None], 0, 255)
    img = Image.fromarray(arr.astype(np.uint8))
    # a red underline under the first line, as someone might draw it
    first = ImageDraw.Draw(img).textbbox((70, 70), WHITEBOARD.split("\n")[0], font=fnt)
    y = first[3] + 8
    ImageDraw.Draw(img).line([(first[0], y), (first[2], y + 4)], fill=(190, 30, 30), width=5)
    return TextPicture("whiteboard/oblique-44", _jpeg(img, 85), words_of(WHITEBOARD))


def screenshot() -> TextPicture:
    img = Image.new("RGB", (900, 420), (246, 246, 248))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, 900, 30], fill=(225, 225, 230))
    small, title = font("sans", 14), font("sans-bold", 22)
    d.text((12, 8), SCREENSHOT[0], font=small, fill=(30, 30, 30))
    d.text((40, 60), SCREENSHOT[1], font=title, fill=(10, 10, 10))
    for i, line in enumerate(SCREENSHOT[2:5]):
        y = 120 + 50 * i
        d.rectangle([40, y, 56, y + 16], outline=(90, 90, 90), width=2)
        d.text((70, y), line, font=font("sans", 16), fill=(30, 30, 30))
    d.rounded_rectangle([560, 350, 860, 395], 8, fill=(40, 110, 220))
    d.text((590, 362), SCREENSHOT[5], font=font("sans", 16), fill=(255, 255, 255))
    return TextPicture("screenshot/sans-14-16", img, words_of(" ".join(SCREENSHOT)))


def sign_on_photo() -> TextPicture | None:
    base = _photo("n09332890_lakeside.JPEG")
    if base is None:
        return None
    base = base.resize((base.width * 2, base.height * 2), Image.Resampling.BICUBIC)
    sign = _text_block(SIGN, font("sans-bold", 34), (255, 255, 255), (190, 20, 30), margin=24)
    sign = sign.rotate(-4, expand=True, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))
    mask = sign.convert("L").point(lambda v: 255 if v > 0 else 0)
    base.paste(sign, (base.width // 2 - sign.width // 2, base.height // 5), mask)
    return TextPicture("sign/on-photo", _jpeg(base, 80), words_of(SIGN))


def rotated() -> list[TextPicture]:
    text = PARAGRAPHS[2] + "\n" + PARAGRAPHS[3]
    page = _text_block(text, font("serif", 26), (20, 20, 20), (250, 250, 250))
    turns = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180}
    turns[270] = Image.Transpose.ROTATE_270
    return [
        TextPicture(f"rotated/{deg}", page.transpose(t), words_of(text)) for deg, t in turns.items()
    ]


def photographed_pages() -> list[TextPicture]:
    out = []
    text = PARAGRAPHS[0] + "\n" + PARAGRAPHS[1]
    page = _text_block(text, font("sans", 30), (25, 25, 25), (245, 245, 240), margin=60)
    out.append(TextPicture("photo/page-skew6", photographed(page, seed=1, angle=6), words_of(text)))
    rec = receipt()
    out.append(
        TextPicture("photo/receipt-skew-8", photographed(rec.image, seed=2, angle=-8), rec.words)
    )
    return out


def large_page() -> TextPicture:
    """A 4000 px wide scan-like page (what a camera or scanner gives): text of 90 px."""
    text = PARAGRAPHS[3] + "\n" + PARAGRAPHS[0]
    img = _text_block(text, font("serif", 90), (15, 15, 15), (252, 252, 250), margin=200)
    canvas = Image.new("RGB", (max(4000, img.width), max(3000, img.height)), (252, 252, 250))
    canvas.paste(img, (0, 0))
    return TextPicture("large/serif-90-4000px", canvas, words_of(text))


# ImageNet classes whose photos hold no writing (animals); a few of the sample's animal photos
# do carry a watermark or a caption, which is why the tests allow a word or two.
NO_TEXT = (
    "n01440764_tench.JPEG",
    "n01530575_brambling.JPEG",
    "n01644373_tree_frog.JPEG",
    "n01742172_boa_constrictor.JPEG",
    "n02085620_Chihuahua.JPEG",
    "n02123045_tabby.JPEG",
)


def _photo(name: str) -> Image.Image | None:
    path = DATASET / name
    if not path.is_file():
        return None
    with Image.open(path) as im:
        return im.convert("RGB")


def photos_without_text(n: int | None = None) -> list[TextPicture]:
    """Real animal photos from the shared sample (none when it is absent).

    n=None: the fixed short list NO_TEXT; else n photos spread over the sample's first 398
    classes (its animals), in a fixed order.
    """
    if n is None:
        names = list(NO_TEXT)
    else:
        animals = sorted(p.name for p in DATASET.glob("*.JPEG"))[:398]
        step = max(1, len(animals) // max(n, 1))
        names = animals[::step][:n]
    out = []
    for name in names:
        img = _photo(name)
        if img is not None:
            out.append(TextPicture(f"notext/{Path(name).stem}", img, []))
    return out


def text_pictures(include_large: bool = True) -> list[TextPicture]:
    """Every rendered picture with text, in a fixed order (same pixels on every run)."""
    pics = [*_plain_pictures(), receipt(), whiteboard(), screenshot(), *rotated()]
    pics += photographed_pages()
    sign = sign_on_photo()
    if sign is not None:
        pics.append(sign)
    if include_large:
        pics.append(large_page())
    return pics


def all_pictures(include_large: bool = True) -> list[TextPicture]:
    """text_pictures() and the short list of photos without text."""
    return [*text_pictures(include_large), *photos_without_text()]


if __name__ == "__main__":  # python -m tests.ocr_pictures OUT_DIR: look at them
    import sys

    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "ocr-pictures")
    out_dir.mkdir(parents=True, exist_ok=True)
    for pic in all_pictures():
        pic.image.save(out_dir / (pic.name.replace("/", "__") + ".png"))
        print(pic.name, pic.image.size, len(pic.words))
