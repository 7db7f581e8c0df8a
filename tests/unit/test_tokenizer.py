"""The tokenizer the ONNX runtime uses gives open_clip's tokens, string by string."""

from __future__ import annotations

import random

import numpy as np
import pytest

from clipsearch.model.tokenizer import EOT, SHIPPED, SOT, ClipTokenizer, clean
from tests.helpers import REPO

open_clip = pytest.importorskip("open_clip", reason="the reference tokenizer is open_clip's")


def _strings() -> list[str]:
    vocab = REPO / "clipsearch" / "tags" / "vocab"
    labels = [
        line.strip()
        for name in ("imagenet.txt", "coco.txt")
        for line in (vocab / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    texts = labels + [f"a photo of a {label}, taken at night." for label in labels]
    texts += [
        "Don’t “quote” me — it’s fine…",  # curly quotes and dashes (ftfy straightens them)
        "café au lait, naïve façade, Ελληνικά, Привет мир, 日本語のテキスト, 한국어",
        "emoji 🐶🐱 party 🎉🎉",
        "&amp; &lt;b&gt;bold&lt;/b&gt; &#39;entities&#39;",  # HTML entities
        "ﬁnal ﬂight",  # ligatures
        "ｆｕｌｌｗｉｄｔｈ ＡＢＣ",
        "  many   spaces\ttabs\nnewlines  ",
        "It's I'm we've you'll he'd THEY'RE",
        "1234567890 3.14159 2024-06-30 10:15",
        "UPPER lower MiXeD",
        "a-b_c.d/e\\f (g) [h] {i} <j> #k @l $m %n ^o *p",
        "x" * 300,
        " ".join(["word"] * 100),  # longer than the context: truncated, EOT kept last
        "<|startoftext|> and <|endoftext|> typed as text",
        "",
        " ",
    ]
    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .,!?'’-éüßçñ漢字😀\t"
    texts += [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 120))) for _ in range(2000)
    ]
    return texts


def test_same_tokens_as_open_clip_on_thousands_of_strings():
    texts = _strings()
    assert len(texts) > 4000
    reference = open_clip.get_tokenizer("ViT-B-32")(texts).numpy()
    ours = ClipTokenizer(77)(texts)
    assert ours.dtype == np.int64 and ours.shape == reference.shape
    different = [
        t for t, a, b in zip(texts, reference, ours, strict=True) if not np.array_equal(a, b)
    ]
    assert different == []


def test_the_word_table_fast_path_gives_the_same_tokens():
    texts = [clean(t) for t in _strings()]
    fast = ClipTokenizer(77)
    slow = ClipTokenizer(77, path=SHIPPED)  # a tokenizer file given: no word table
    used = 0
    for text in texts:
        ids = fast._known(text)
        if ids is None:
            continue
        used += 1
        padded = np.zeros(77, np.int64)
        ids = ids if len(ids) <= 77 else [*ids[:76], EOT]
        padded[: len(ids)] = ids
        assert np.array_equal(padded, slow([text])[0]), text
    assert used > 1000  # most English queries never load the BPE
    quick = ClipTokenizer(77)
    quick(["a dog running on the beach, at sunset!"])
    assert quick._tok is None


def test_context_length_truncation_keeps_the_end_token():
    ids = ClipTokenizer(16)(["one two three four five six seven eight nine ten " * 3, "cat"])
    assert ids.shape == (2, 16)
    assert ids[0, 0] == SOT and ids[0, -1] == EOT  # truncated: SOT, 14 tokens, EOT
    assert list(ids[1, :3]) == [SOT, ids[1, 1], EOT] and not ids[1, 3:].any()  # zero-padded


def test_the_one_known_difference_is_open_clips_own_special_token_names():
    # open_clip reads "<start_of_text>" typed in a query as its special token; we read text.
    ours = ClipTokenizer(77)(["<start_of_text> x"])[0]
    assert list(ours[:2]) != [SOT, SOT]
