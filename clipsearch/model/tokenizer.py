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
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SOT, EOT = 49406, 49407
SHIPPED = Path(__file__).resolve().parent / "clip_bpe.json.gz"
_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


def clean(text: str) -> str:
    """open_clip's cleaning: ftfy, HTML entities (twice), whitespace, lower case."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """Texts -> int64 (N, context_length) token ids, as open_clip makes them."""

    def __init__(self, context_length: int = 77, path: Path | None = None) -> None:
        self.context_length = context_length
        self._path = path or SHIPPED
        self._tok: Tokenizer | None = None
        self._lock = threading.Lock()

    def _tokenizer(self) -> Tokenizer:
        with self._lock:
            if self._tok is None:
                self._tok = _load(self._path, self.context_length)
            return self._tok

    def __call__(self, texts: list[str]) -> np.ndarray:
        tok = self._tokenizer()
        encoded = tok.encode_batch([clean(t) for t in texts])
        out = np.zeros((len(texts), self.context_length), np.int64)
        for i, enc in enumerate(encoded):
            ids = enc.ids[: self.context_length]
            out[i, : len(ids)] = ids
        return out


def _load(path: Path, context_length: int) -> Tokenizer:
    from tokenizers import Tokenizer

    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    tok = Tokenizer.from_str(raw.decode("utf-8"))
    tok.no_padding()  # padded here, with 0 as open_clip pads (Immich's files pad with EOT)
    tok.enable_truncation(max_length=context_length)
    return tok


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
