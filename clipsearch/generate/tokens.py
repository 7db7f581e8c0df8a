"""The transformer drawer's text side: a small word-level vocabulary and its tokenizer.

The vocabulary is every word the shapes world writes in its captions
(:mod:`clipsearch.demo.shapes`: counts, sizes, colours, shapes and their plurals, the
background colours, "on", "a", "background"), in a fixed order, after four special tokens.
Words outside it become ``<unk>``. A caption is lower-cased, split on anything that is not a
letter, and written as ``<bos> w1 ... wn <pad> ...`` in a fixed number of positions
(``text_len``); words beyond ``text_len - 1`` are dropped. Checkpoints carry their own
vocabulary, so a user's checkpoint may use other words.

Pure Python (no torch): the CLI can check prompts without loading a model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)


def shapes_vocabulary() -> list[str]:
    """The specials, then every word of the shapes world's captions (a fixed order)."""
    from clipsearch.demo import shapes

    words: list[str] = ["a", "an", "one", "two", "three", "on", "background", "shape", "shapes"]
    words += list(shapes.SIZES) + list(shapes.COLOURS) + list(shapes.BACKGROUNDS)
    for kind in shapes.SHAPES:
        words += [kind, shapes.PLURALS[kind]]
    seen: list[str] = []
    for w in words:
        if w not in seen:
            seen.append(w)
    return [*SPECIALS, *seen]


def words(text: str) -> list[str]:
    """The caption's words as the tokenizer sees them."""
    return re.findall(r"[a-z]+", text.lower())


class WordTokenizer:
    """Captions -> fixed-length lists of token ids (``<bos>`` first, ``<pad>`` after)."""

    def __init__(self, vocab: Sequence[str], text_len: int) -> None:
        if list(vocab[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(f"a vocabulary starts with {SPECIALS}")
        if text_len < 2:
            raise ValueError("text_len must be at least 2")
        self.vocab = list(vocab)
        self.text_len = text_len
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.pad, self.unk, self.bos = (self.index[t] for t in (PAD, UNK, BOS))

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """One caption -> ``text_len`` ids."""
        ids = [self.bos] + [self.index.get(w, self.unk) for w in words(text)]
        ids = ids[: self.text_len]
        return ids + [self.pad] * (self.text_len - len(ids))

    def unknown(self, text: str) -> list[str]:
        """The words of `text` the vocabulary does not know (they become ``<unk>``)."""
        return [w for w in words(text) if w not in self.index]

    def dropped(self, text: str) -> list[str]:
        """The words beyond ``text_len - 1`` (not seen by the model)."""
        return words(text)[self.text_len - 1 :]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.vocab[i] for i in ids if self.vocab[i] not in (PAD, BOS, EOS))
