"""Generation prompts: text, weights, and clear errors for what cannot be meant."""

from __future__ import annotations

import pytest

from clipsearch.errors import GenerateError, PromptError
from clipsearch.generate.prompts import Prompt, parse_prompt, parse_prompts
from clipsearch.generate.run import parse_size


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a red circle", Prompt("a red circle", 1.0)),
        ("sunset over the sea:1", Prompt("sunset over the sea", 1.0)),
        ("people:-0.5", Prompt("people", -0.5)),
        ("  blue : 2.5 ", Prompt("blue", 2.5)),
        ("a sign saying: hello world", Prompt("a sign saying: hello world", 1.0)),
        ("x:1e-1", Prompt("x", 0.1)),
    ],
)
def test_prompts_and_weights(raw, expected):
    assert parse_prompt(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("people:high", "bad weight 'high'"),
        ("people:1.2.3", "bad weight '1.2.3'"),
        ("people:--1", "bad weight '--1'"),
        ("people:", "has no weight"),
        ("", "empty prompt"),
        ("   :2", "empty prompt"),
        ("cat:0", "does nothing"),
        ("cat:nan", "bad weight"),
    ],
)
def test_bad_prompts_say_what_is_wrong(raw, message):
    with pytest.raises(PromptError, match=message) as err:
        parse_prompt(raw)
    assert err.value.hint  # and what to do instead


def test_a_run_needs_something_to_draw():
    with pytest.raises(PromptError, match="no prompt given"):
        parse_prompts([])
    with pytest.raises(PromptError, match="no prompt given"):
        parse_prompts(["  "])
    with pytest.raises(PromptError, match="every prompt has a negative weight"):
        parse_prompts(["people:-1", "cars:-0.5"])
    assert parse_prompts(["sea", "people:-0.5"]) == [Prompt("sea"), Prompt("people", -0.5)]


def test_sizes():
    assert parse_size("256x128") == (256, 128)
    assert parse_size("64") == (64, 64)
    with pytest.raises(GenerateError, match="bad size"):
        parse_size("big")
