"""Choosing a library's precision: reduced precision only behind a fidelity gate.

When a library is first indexed (and on `reindex`), each reduced precision that may help is
measured against fp32 on the library's own pictures (up to 48 of them, topped up with
rendered shapes-world pictures when there are few) and a fixed set of captions:

- every vector's cosine to its fp32 vector >= 0.99 (the lowest one counts);
- nearest-neighbour agreement >= 0.95 (each picture's nearest other picture, and each
  caption's nearest picture, are the same as with fp32);
- for the shipped tiny-shapes model, zero-shot colour+shape accuracy on rendered pictures
  within 1 point of fp32;
- and it must be faster: at least 10% more images per second than fp32 here.

`auto` takes the fastest candidate that passes, else fp32, and says why; an explicit
`int8` or `bf16` that fails the gate is refused. The choice and its measurements are recorded
with the library's model (`meta.precision`, `meta.precision_check`): one library never mixes
precisions.

Candidates, fastest first: `bf16` on OpenVINO (the `[openvino]` extra, on CPUs with bf16
instructions: 4.4x fp32 for ViT-B-32 on this project's 2-core AVX-512 machine), `int8` (ONNX
Runtime's dynamic quantization: 2.7x) and, without OpenVINO, `bf16` on torch (1.9x, where
torch is installed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch.errors import ConfigError
from clipsearch.model.specs import ModelSpec

log = logging.getLogger(__name__)
notice = logging.getLogger("clipsearch.notice")

PRECISIONS = ("auto", "fp32", "int8", "bf16")
MIN_COSINE = 0.99
MIN_NEIGHBOURS = 0.95
MAX_ZERO_SHOT_DROP = 0.01
MIN_SPEEDUP = 1.10
SAMPLE = 48
CAPTIONS = (
    "a photo of a dog",
    "a cat sleeping on a sofa",
    "a red car parked on a street",
    "people walking on a beach at sunset",
    "a bowl of fruit on a wooden table",
    "a snowy mountain landscape",
    "a child riding a bicycle",
    "a plate of pasta",
    "a close-up of a flower",
    "a city skyline at night",
    "a receipt from a hardware store",
    "a whiteboard with a project plan",
    "two birds on a branch",
    "a boat on a lake",
    "a birthday cake with candles",
    "a red circle",
    "three small blue stars on a black background",
    "a green square",
    "a large yellow heart",
    "a purple triangle on a white background",
)


@dataclass
class Check:
    """One candidate's measurements against fp32."""

    precision: str
    cosine_min: float | None = None
    neighbours: float | None = None
    zero_shot: tuple[float, float] | None = None  # (fp32, candidate) accuracy
    images_per_s: float | None = None
    speedup: float | None = None
    passed: bool = False
    reason: str | None = None


@dataclass
class Choice:
    """The precision a library uses, and why."""

    precision: str
    requested: str
    checks: list[Check] = field(default_factory=list)
    fp32_images_per_s: float | None = None
    pictures: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        chosen = next((c for c in self.checks if c.precision == self.precision), None)
        if chosen is not None:
            return (
                f"precision {self.precision}: cosine to fp32 >= {chosen.cosine_min:.4f}, "
                f"neighbours {chosen.neighbours:.2f}, {chosen.speedup:.1f}x fp32's speed"
            )
        why = "; ".join(f"{c.precision}: {c.reason}" for c in self.checks if c.reason)
        return f"precision fp32{f' ({why})' if why else ''}"


def check_name(precision: str | None) -> str:
    value = (precision or "auto").lower()
    if value not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return value


def candidates(requested: str) -> list[str]:
    """The reduced precisions to try for a request, fastest first: bf16 on OpenVINO (4.4x
    fp32 for ViT-B-32 here), int8 on ONNX Runtime (2.7x), bf16 on torch (1.9x)."""
    if requested in ("int8", "bf16"):
        return [requested]
    if requested == "fp32":
        return []
    runtime = bf16_runtime() if cpu_has_bf16() else None
    if runtime == "openvino":
        return ["bf16", "int8"]
    return ["int8", "bf16"] if runtime == "torch" else ["int8"]


def bf16_runtime() -> str | None:
    """What encodes a bf16 library here: "openvino" (the `[openvino]` extra), else "torch"
    (the `[torch]` extra), else None."""
    from clipsearch.model import openvino_runtime
    from clipsearch.model.prepare import torch_available

    if openvino_runtime.available():
        return "openvino"
    return "torch" if torch_available() else None


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def choose(
    spec: ModelSpec,
    requested: str,
    pictures: Sequence[str],
    make_encoder: Callable[[str], Any],
) -> Choice:
    """Measure the candidates for `requested` on `pictures` (paths) and pick one.

    `make_encoder(precision)` builds an encoder for the library's model at a precision.
    Raises ConfigError when an explicitly requested precision fails the gate.
    """
    choice = Choice("fp32", requested)
    todo = candidates(requested)
    if not todo:
        return choice
    notice.info("checking reduced precision for %s (once per library) ...", spec)
    fp32 = make_encoder("fp32")
    pixels = _calibration_pixels(pictures, fp32.params)
    choice.pictures = len(pixels)
    base = _vectors(fp32, pixels)
    choice.fp32_images_per_s = base["speed"]
    zero_shot = _zero_shot_set(fp32) if spec.canonical == "tiny-shapes" else None
    base_zs = _zero_shot(fp32, zero_shot) if zero_shot else None
    for precision in todo:
        check = Check(precision)
        choice.checks.append(check)
        try:
            enc = make_encoder(precision)
            got = _vectors(enc, pixels)
        except Exception as exc:  # a runtime that cannot do it here: not a candidate
            check.reason = f"not available here ({str(exc).splitlines()[0][:120]})"
            continue
        _compare(check, base, got)
        if zero_shot and base_zs is not None:
            check.zero_shot = (base_zs, _zero_shot(enc, zero_shot))
        check.passed, check.reason = _verdict(check)
        if check.passed:
            choice.precision = precision
            break
    if requested in ("int8", "bf16") and choice.precision != requested:
        raise ConfigError(
            f"--precision {requested} does not keep this model's results close enough to fp32 "
            f"here ({choice.checks[-1].reason})",
            hint="Use --precision auto (it falls back to fp32) or fp32.",
        )
    return choice


def _verdict(check: Check) -> tuple[bool, str | None]:
    if check.cosine_min is not None and check.cosine_min < MIN_COSINE:
        return False, f"cosine to fp32 {check.cosine_min:.4f} < {MIN_COSINE}"
    if check.neighbours is not None and check.neighbours < MIN_NEIGHBOURS:
        return False, f"nearest-neighbour agreement {check.neighbours:.2f} < {MIN_NEIGHBOURS}"
    if check.zero_shot and check.zero_shot[1] < check.zero_shot[0] - MAX_ZERO_SHOT_DROP:
        a, b = check.zero_shot
        return False, f"zero-shot accuracy {b:.3f} vs fp32 {a:.3f}"
    if check.speedup is not None and check.speedup < MIN_SPEEDUP:
        return False, f"not faster here ({check.speedup:.2f}x fp32)"
    return True, None


def _compare(check: Check, base: dict[str, Any], got: dict[str, Any]) -> None:
    cos_i = (base["images"] * got["images"]).sum(1)
    cos_t = (base["texts"] * got["texts"]).sum(1)
    check.cosine_min = float(min(cos_i.min(), cos_t.min()))
    agree = np.concatenate(
        [
            _nearest(base["images"], base["images"]) == _nearest(got["images"], got["images"]),
            _nearest(base["texts"], base["images"], same=False)
            == _nearest(got["texts"], got["images"], same=False),
        ]
    )
    check.neighbours = float(agree.mean())
    check.images_per_s = got["speed"]
    check.speedup = got["speed"] / base["speed"] if base["speed"] else None


def _nearest(queries: np.ndarray, items: np.ndarray, *, same: bool = True) -> np.ndarray:
    sims = queries @ items.T
    if same:
        np.fill_diagonal(sims, -np.inf)
    return sims.argmax(axis=1)


def _vectors(enc: Any, pixels: np.ndarray) -> dict[str, Any]:
    enc.encode_images(pixels[: min(len(pixels), 8)])  # warm up: sessions, caches
    start = time.perf_counter()
    images = enc.encode_images(pixels)
    speed = len(pixels) / max(time.perf_counter() - start, 1e-9)
    return {"images": images, "texts": enc.encode_texts(list(CAPTIONS)), "speed": speed}


def _calibration_pixels(pictures: Sequence[str], params: Any) -> np.ndarray:
    from clipsearch.errors import UnreadableImage
    from clipsearch.media.images import load_for_model

    out = []
    for path in pictures:
        try:
            out.append(load_for_model(path, params)[0])
        except UnreadableImage:
            continue
        if len(out) >= SAMPLE:
            break
    if len(out) < 16:  # few pictures: top up with rendered ones (a weaker check, but a check)
        out += [_render(params, i) for i in range(32 - len(out))]
    return np.stack(out)


def _render(params: Any, seed: int) -> np.ndarray:
    import random

    from clipsearch.demo import shapes
    from clipsearch.media.images import prepare

    scene = shapes.sample_scene(random.Random(10_000 + seed), heldout="include")
    return prepare(shapes.render(scene, size=max(params.size)), params)


def _zero_shot_set(enc: Any) -> tuple[np.ndarray, list[int], list[str]]:
    """Rendered single-object pictures with their colour+shape label index."""
    import random

    from clipsearch.demo import shapes
    from clipsearch.media.images import prepare

    labels = [f"{c} {k}" for c in shapes.COLOURS for k in shapes.SHAPES]
    rng = random.Random(7)
    pixels, truth = [], []
    for _ in range(160):
        colour, kind = rng.choice(list(shapes.COLOURS)), rng.choice(shapes.SHAPES)
        desc = shapes.Description(count=1, colour=colour, kind=kind)
        scene = shapes.sample_scene(rng, desc, heldout="include")
        pixels.append(prepare(shapes.render(scene, size=max(enc.params.size)), enc.params))
        truth.append(labels.index(f"{colour} {kind}"))
    return np.stack(pixels), truth, labels


def _zero_shot(enc: Any, data: tuple[np.ndarray, list[int], list[str]]) -> float:
    pixels, truth, labels = data
    images = enc.encode_images(pixels)
    texts = enc.encode_texts([f"a {label}." for label in labels])
    guess = (images @ texts.T).argmax(axis=1)
    return float((guess == np.asarray(truth)).mean())


def sample_pictures(roots: Sequence[str], exclude: Sequence[str], n: int = SAMPLE) -> list[str]:
    """Up to `n` image files under `roots`, spread over the first ones found."""
    from clipsearch.media import fs

    found = []
    for st in fs.scan(roots, exclude=exclude):
        found.append(st.path)
        if len(found) >= n * 4:
            break
    step = max(1, len(found) // n)
    return found[::step][:n]
