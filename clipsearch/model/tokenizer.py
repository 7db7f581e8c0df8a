"""CLIP's byte-pair tokenizer on Hugging Face `tokenizers` (no torch): texts -> token ids.

The same tokens as open_clip's `SimpleTokenizer` (a test checks it string by string): the
text is cleaned as open_clip cleans it (ftfy, HTML entities, whitespace, lower case), split
with CLIP's pattern, byte-level encoded and merged with CLIP's 48,894 BPE merges; ids are
`<start_of_text>` (49406), the text, `<end_of_text>` (49407), zero-padded to the model's
context length; a longer text keeps its first `context_length - 2` tokens.

The vocabulary ships with clipsearch as `clip_bpe.json.gz` (a `tokenizers` JSON built from
open_clip's `bpe_simple_vocab_16e6.txt.gz` by :func:`build`; see
`scripts/build_clip_tokenizer.py`). A model folder may bring its own `tokenizer.json`
(Immich's exports do).
"""

from __future__ import annotations

import gzip
import html
import json
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SOT, EOT = 49406, 49407
_PLAIN = re.compile(r"[\x20-\x7e\t\n\r]*")
SHIPPED = Path(__file__).resolve().parent / "clip_bpe.json.gz"
# ASCII words and punctuation runs -> their token ids, made by the tokenizer itself
# (`build_words`): a short English query is tokenized without loading the BPE (0.15 s cold).
WORDS = Path(__file__).resolve().parent / "clip_words.txt.gz"  # "piece id[ id...]" a line
_ASCII_PIECES = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+")
_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


def clean(text: str) -> str:
    """open_clip's cleaning: ftfy, HTML entities (twice), whitespace, lower case."""
    if not _PLAIN.fullmatch(text):  # ftfy changes nothing in printable ASCII: skip its import
        import ftfy

        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """Texts -> int64 (N, context_length) token ids, as open_clip makes them."""

    def __init__(self, context_length: int = 77, path: Path | None = None) -> None:
        self.context_length = context_length
        self._path = path or SHIPPED
        self._tok: Tokenizer | None = None
        self._words: str | None = None if path is None else ""
        self._lock = threading.Lock()

    def _tokenizer(self) -> Tokenizer:
        with self._lock:
            if self._tok is None:
                self._tok = _load(self._path, self.context_length)
            return self._tok

    def __call__(self, texts: list[str]) -> np.ndarray:
        cleaned = [clean(t) for t in texts]
        fast = [self._known(t) for t in cleaned]
        slow = [t for t, ids in zip(cleaned, fast, strict=True) if ids is None]
        encoded = iter(self._tokenizer().encode_batch(slow)) if slow else iter(())
        out = np.zeros((len(texts), self.context_length), np.int64)
        for i, ids in enumerate(fast):
            if ids is None:
                ids = next(encoded).ids
            elif len(ids) > self.context_length:
                ids = [*ids[: self.context_length - 1], EOT]
            ids = ids[: self.context_length]
            out[i, : len(ids)] = ids
        return out

    def _known(self, text: str) -> list[int] | None:
        """The ids of a cleaned ASCII text whose pieces are all in the word table, else None."""
        if self._words is None:
            with self._lock:
                if self._words is None:
                    self._words = _load_words()
        if not text.isascii() or not self._words:
            return None
        ids = [SOT]
        for piece in _ASCII_PIECES.findall(text):
            at = self._words.find(f"\n{piece} ")  # a scan of 1 MB: faster than building a dict
            if at < 0:
                return None
            start = at + len(piece) + 2
            ids += [int(i) for i in self._words[start : self._words.index("\n", start)].split()]
        return [*ids, EOT]


def _load(path: Path, context_length: int) -> Tokenizer:
    from tokenizers import Tokenizer

    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    tok = Tokenizer.from_str(raw.decode("utf-8"))
    tok.no_padding()  # padded here, with 0 as open_clip pads (Immich's files pad with EOT)
    tok.enable_truncation(max_length=context_length)
    return tok


def _load_words() -> str:
    """The word table as text, "\npiece id[ id...]" a line (looked up with str.find)."""
    try:
        return "\n" + gzip.decompress(WORDS.read_bytes()).decode("ascii") + "\n"
    except (OSError, ValueError):
        return ""


def words_file(words: dict[str, list[int]]) -> bytes:
    lines = (f"{piece} {' '.join(map(str, ids))}" for piece, ids in words.items())
    return gzip.compress("\n".join(lines).encode("ascii"), mtime=0)


def build_words(tokenizer_json: str) -> dict[str, list[int]]:
    """Every ASCII whole word of the vocabulary, and every ASCII punctuation run up to two
    characters, with the ids the tokenizer itself gives it alone."""
    import itertools
    import string

    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    byte_text = {c: bytes([b]) for b, c in _bytes_to_unicode().items()}
    pieces = set()
    for token in tok.get_vocab():
        if token.endswith("</w>") and len(token) > 4:
            raw = b"".join(byte_text.get(c, b"\xff") for c in token[:-4])
            if raw.isascii() and _ASCII_PIECES.fullmatch(raw.decode("ascii")):
                pieces.add(raw.decode("ascii"))
    punctuation = [c for c in string.punctuation if c != "'"] + ["'"]
    for n in (1, 2):
        pieces.update("".join(p) for p in itertools.product(punctuation, repeat=n))
    pieces = sorted(p for p in pieces if _ASCII_PIECES.fullmatch(p))
    words = {}
    for piece, enc in zip(pieces, tok.encode_batch(pieces), strict=True):
        ids = enc.ids
        assert ids[0] == SOT and ids[-1] == EOT
        words[piece] = ids[1:-1]
    return words


def build(bpe_gz: Path) -> str:
    """A `tokenizers` JSON equivalent to open_clip's SimpleTokenizer, from its BPE file."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import RobertaProcessing

    lines = gzip.decompress(Path(bpe_gz).read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    base = list(_bytes_to_unicode().values())
    vocab_list = base + [v + "</w>" for v in base] + ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(vocab_list)}
    assert vocab["<|startoftext|>"] == SOT and vocab["<|endoftext|>"] == EOT
    model = models.BPE(
        vocab=vocab,
        merges=merges,
        continuing_subword_prefix="",
        end_of_word_suffix="</w>",
        fuse_unk=False,
        unk_token="<|endoftext|>",
    )
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.post_processor = RobertaProcessing(
        ("<|endoftext|>", EOT), ("<|startoftext|>", SOT), trim_offsets=False, add_prefix_space=False
    )
    tok.decoder = decoders.ByteLevel()
    # No added tokens: "<|endoftext|>" typed in a query is text, as it is for open_clip.
    return tok.to_str()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def context_length_of(config_path: Path) -> int:
    """The context length in an open_clip config file (77 when it says nothing)."""
    cfg = json.loads(config_path.read_text())
    cfg = cfg.get("model_cfg", cfg)
    return int(cfg.get("text_cfg", {}).get("context_length", 77))
