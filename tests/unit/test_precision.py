"""The fidelity gate: reduced precision only when it keeps results close to fp32."""

from __future__ import annotations

import numpy as np
import pytest

from clipsearch.errors import ConfigError
from clipsearch.media.images import PreprocessParams
from clipsearch.model import precision
from clipsearch.model.specs import ModelSpec


class Fake:
    """An encoder whose vectors are fp32's plus noise of a given size (and a given speed)."""

    params = PreprocessParams(size=(32, 32))

    def __init__(self, noise: float, delay: float = 0.0) -> None:
        self.noise, self.delay = noise, delay
        self.rng = np.random.default_rng(1)

    def _unit(self, x: np.ndarray) -> np.ndarray:
        if self.noise:
            x = x + self.rng.normal(scale=self.noise, size=x.shape)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def encode_images(self, pixels: np.ndarray, query: bool = False) -> np.ndarray:
        import time

        time.sleep(self.delay)
        base = pixels.reshape(len(pixels), -1)[:, :64].astype(np.float32) - 127
        return self._unit(base)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        seed = np.random.default_rng(5)
        return self._unit(seed.normal(size=(len(texts), 64)))


def _choose(requested: str, candidate: Fake) -> precision.Choice:
    def make(p: str) -> Fake:
        return Fake(0.0, delay=0.05) if p == "fp32" else candidate

    return precision.choose(ModelSpec.parse("tiny-shapes"), requested, [], make)


def test_a_close_and_faster_candidate_is_chosen(monkeypatch):
    monkeypatch.setattr(precision, "candidates", lambda r: ["int8"])
    choice = _choose("auto", Fake(0.0005))
    assert choice.precision == "int8"
    check = choice.checks[0]
    assert check.passed and check.cosine_min > 0.99 and check.neighbours >= 0.95
    assert check.speedup > 1.1 and "int8" in choice.summary()


def test_auto_falls_back_to_fp32_and_says_why(monkeypatch):
    monkeypatch.setattr(precision, "candidates", lambda r: ["int8"])
    choice = _choose("auto", Fake(0.5))
    assert choice.precision == "fp32"
    assert "cosine to fp32" in choice.summary()


def test_an_explicit_precision_that_fails_is_refused():
    with pytest.raises(ConfigError, match="does not keep this model's results close enough"):
        _choose("int8", Fake(0.5))


def test_a_candidate_that_is_not_faster_is_not_taken(monkeypatch):
    monkeypatch.setattr(precision, "candidates", lambda r: ["int8"])
    choice = _choose("auto", Fake(0.0005, delay=0.1))
    assert choice.precision == "fp32" and "not faster" in choice.summary()


def test_fp32_needs_no_check():
    assert _choose("fp32", Fake(0.5)).checks == []
