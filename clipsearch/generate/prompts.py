"""Generation prompts: ``"text"`` or ``"text:weight"``; negative weights push away.

    parse_prompts(["sunset over the sea:1", "people:-0.5"])
    -> [Prompt("sunset over the sea", 1.0), Prompt("people", -0.5)]

A colon followed by words is part of the text ("a sign saying: hello"); a colon followed by
one word that is not a number is a mistake and says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from clipsearch.errors import PromptError

_NUMBERISH = re.compile(r"^[-+0-9.eE]+$")


@dataclass(frozen=True)
class Prompt:
    """One text prompt and its weight (negative: steer away from it)."""

    text: str
    weight: float = 1.0


def parse_prompt(raw: str) -> Prompt:
    """Parse ``"text"`` or ``"text:weight"``; raises PromptError with the fix."""
    text, weight = raw.strip(), 1.0
    head, sep, tail = text.rpartition(":")
    tail = tail.strip()
    if sep and (not tail or " " not in tail):
        if not tail:
            raise PromptError(
                f"prompt {raw!r} ends with ':' but has no weight",
                hint='Write a number after the colon, e.g. "people:-0.5", or drop the colon.',
            )
        if not _NUMBERISH.match(tail):
            raise PromptError(
                f"bad weight {tail!r} in prompt {raw!r}: not a number",
                hint='Weights are numbers: "sunset:1", "people:-0.5" (negative pushes away).',
            )
        try:
            weight = float(tail)
        except ValueError:
            raise PromptError(
                f"bad weight {tail!r} in prompt {raw!r}: not a number",
                hint='Weights are numbers: "sunset:1", "people:-0.5" (negative pushes away).',
            ) from None
        text = head.strip()
    if not text:
        raise PromptError(
            f"empty prompt {raw!r}",
            hint='Describe the picture: "a red circle on a white background"',
        )
    if not math.isfinite(weight) or weight == 0:
        raise PromptError(
            f"weight {tail} in prompt {raw!r} does nothing",
            hint="Use a non-zero number: positive pulls towards the text, negative away.",
        )
    return Prompt(text, weight)


def parse_prompts(raw: Sequence[str]) -> list[Prompt]:
    """Parse every prompt; at least one must have a positive weight."""
    if not raw or all(not r.strip() for r in raw):
        raise PromptError(
            "no prompt given",
            hint='Say what to draw: clipsearch generate "a red circle on a white background"',
        )
    prompts = [parse_prompt(r) for r in raw]
    if not any(p.weight > 0 for p in prompts):
        raise PromptError(
            "every prompt has a negative weight: nothing says what to draw",
            hint='Add a prompt with a positive weight, e.g. "a red circle" next to "blue:-1".',
        )
    return prompts
