"""The optimisation loop: a drawer's parameters, Adam, CLIP guidance, progress and frames.

    out = optimise(drawer, guide, Settings(steps=200, seed=7), progress=print)
    out.image  # a PIL image

Same seed, same settings, same models, same thread count: the same picture.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image

from clipsearch.generate.guide import ClipGuide


class Drawer(Protocol):
    kind: str
    width: int
    height: int

    @property
    def name(self) -> str: ...
    def init(self, g: torch.Generator, init: torch.Tensor | None = None) -> list[torch.Tensor]: ...
    def image(self) -> torch.Tensor: ...
    def after_step(self) -> None: ...


@dataclass(frozen=True)
class Settings:
    """How to optimise. `every`: keep a frame every N steps (0: none); `preview`: hand the
    progress callback a picture every N steps (0: only at the end)."""

    steps: int = 200
    seed: int = 0
    lr: float = 0.1
    every: int = 0
    preview: int = 0
    init: torch.Tensor | None = None

    def params(self) -> dict[str, Any]:
        return {"lr": self.lr, "every": self.every}


@dataclass(frozen=True)
class StepReport:
    """One step done: `image` is set on frame steps and the last step."""

    step: int
    steps: int
    loss: float
    image: Image.Image | None = None


@dataclass
class Outcome:
    """What a run produced. `interrupted`: stopped early (Ctrl-C or a cancel)."""

    image: Image.Image
    steps_done: int
    losses: list[float] = field(default_factory=list)
    frames: list[Image.Image] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0


def to_pil(image: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) in [0, 1] -> an RGB PIL image."""
    arr = image.detach()[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu()
    return Image.fromarray(arr.contiguous().numpy(), "RGB")


def optimise(
    drawer: Drawer,
    guide: ClipGuide,
    settings: Settings,
    *,
    progress: Callable[[StepReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    keep_on_interrupt: bool = True,
) -> Outcome:
    """Run the optimisation. Ctrl-C (KeyboardInterrupt) or `should_stop()` ends it early:
    the picture so far is returned with `interrupted=True` (Ctrl-C re-raises if
    `keep_on_interrupt` is False)."""
    torch.manual_seed(settings.seed)
    g = torch.Generator().manual_seed(settings.seed)
    params = drawer.init(g, settings.init)
    opt = torch.optim.Adam(params, lr=settings.lr)
    out = Outcome(image=_snapshot(drawer), steps_done=0)
    if settings.every:
        out.frames.append(out.image)
    start = time.perf_counter()
    try:
        for step in range(1, settings.steps + 1):
            if should_stop is not None and should_stop():
                out.interrupted = True
                break
            opt.zero_grad(set_to_none=True)
            loss = guide.loss(drawer.image(), g)
            loss.backward()
            opt.step()
            drawer.after_step()
            out.losses.append(float(loss.detach()))
            out.steps_done = step
            frame = None
            keep = bool(settings.every) and step % settings.every == 0
            show = bool(settings.preview) and step % settings.preview == 0
            if keep or show or step == settings.steps:
                frame = _snapshot(drawer)
                if keep:
                    out.frames.append(frame)
            if progress is not None:
                progress(StepReport(step, settings.steps, out.losses[-1], frame))
    except KeyboardInterrupt:
        if not keep_on_interrupt:
            raise
        out.interrupted = True
    out.image = _snapshot(drawer)
    out.seconds = time.perf_counter() - start
    return out


def _snapshot(drawer: Drawer) -> Image.Image:
    with torch.no_grad():
        return to_pil(drawer.image())


def save_gif(frames: list[Image.Image], path: Path, *, ms_per_frame: int = 120) -> Path:
    """An animated GIF of the run (the last frame held a little longer)."""
    if not frames:
        raise ValueError("no frames to animate")
    durations = [ms_per_frame] * (len(frames) - 1) + [ms_per_frame * 8]
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=False
    )
    return path
