#!/usr/bin/env python
"""Build clipsearch/model/clip_bpe.json.gz (CLIP's BPE tokenizer as a `tokenizers` JSON) and
clip_words.json.gz (ASCII words with their ids, the cold-query fast path).

    python scripts/build_clip_tokenizer.py        # needs open_clip (the [torch] extra)

It reads open_clip's own vocabulary file (`bpe_simple_vocab_16e6.txt.gz`, from OpenAI's CLIP,
MIT licence) and writes the tokenizer the ONNX runtime uses; tests/unit/test_tokenizer.py
checks it gives open_clip's tokens.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from open_clip.tokenizer import default_bpe

    from clipsearch.model.tokenizer import SHIPPED, WORDS, build, build_words, words_file

    text = build(Path(default_bpe()))
    SHIPPED.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    print(f"wrote {SHIPPED} ({SHIPPED.stat().st_size} bytes)")
    WORDS.write_bytes(words_file(build_words(text)))
    print(f"wrote {WORDS} ({WORDS.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
