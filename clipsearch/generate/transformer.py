"""A DALL-E-style drawer: a decoder-only transformer over ``[text tokens][image tokens]``.

One sequence per picture: ``text_len`` word tokens (:mod:`clipsearch.generate.tokens`), then
the ``grid x grid`` codes of a VQGAN, row by row. The transformer is causal over the whole
sequence: text positions predict the next text token (a text head), the last text position
and the image positions predict the next image code (an image head). The loss weights the
image part ``image_loss_weight`` times the text part (7, as DALLE-pytorch does; minDALL-E
weights it likewise). Image positions get learned row + column embeddings (axial, as in
DALLE-pytorch), text positions a learned embedding each.

A checkpoint (``torch.save`` of plain dicts, lists and tensors; loaded with
``weights_only=True``) holds the config, the vocabulary, the weights and the VQGAN it was
trained on (its fingerprint, codebook size and grid): :func:`load_transformer` refuses a
checkpoint whose VQGAN is not the one it is asked to draw with.

torch is imported here: import this module only where the drawer is used.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clipsearch.errors import GenerateError
from clipsearch.generate.tokens import WordTokenizer

FORMAT = "clipsearch-dalle"
VERSION = 1
CHECKPOINT_NAME = "model.pt"


@dataclass(frozen=True)
class TransformerConfig:
    """The architecture. `n_codes` and `grid` must match the VQGAN's codebook and grid."""

    text_vocab: int
    text_len: int = 12
    n_codes: int = 512
    grid: int = 16
    dim: int = 128
    layers: int = 4
    heads: int = 4
    mlp: int = 4
    dropout: float = 0.0
    image_loss_weight: float = 7.0

    @property
    def image_len(self) -> int:
        return self.grid * self.grid

    @property
    def seq_len(self) -> int:
        """Input length in training: all text and every image code but the last."""
        return self.text_len + self.image_len - 1


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError(f"dim {cfg.dim} is not a multiple of heads {cfg.heads}")
        self.heads = cfg.heads
        self.max_len = cfg.text_len + cfg.image_len  # the KV cache's room
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.dropout = cfg.dropout

    def forward(
        self, x: torch.Tensor, cache: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Causal self-attention over x (B, L, D). With `cache` (a dict, filled in place),
        x continues the sequence whose keys and values the cache holds."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        past = 0
        if cache is not None:
            past = cache.get("len", 0)
            k, v = self._remember(cache, k, v, past)
        drop = self.dropout if self.training else 0.0
        if past and n == 1:  # one new position sees every key: two small matmuls are
            # ~5x faster than SDPA's kernel at this size (sampling's inner loop)
            att = (q @ k.transpose(-2, -1)).mul_(q.shape[-1] ** -0.5).softmax(-1)
            out = att @ v
        elif past == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=n > 1, dropout_p=drop)
        else:  # new queries see everything before them and each other causally
            mask = torch.ones(n, past + n, dtype=torch.bool, device=x.device).tril(past)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    def _remember(
        self, cache: dict, k: torch.Tensor, v: torch.Tensor, past: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, H, n, hd) after the `past` positions the cache holds; the keys and
        values of all past + n positions. The buffers hold the whole sequence from the first
        call (concatenating per step copied the growing cache at every position)."""
        end = past + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"the sequence is {self.max_len} positions long, not {end}")
        if "k" not in cache:
            cache["k"] = k.new_empty(*k.shape[:2], self.max_len, k.shape[3])
            cache["v"] = v.new_empty(*v.shape[:2], self.max_len, v.shape[3])
        cache["k"][:, :, past:end] = k
        cache["v"][:, :, past:end] = v
        cache["len"] = end
        return cache["k"][:, :, :end], cache["v"][:, :, :end]


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.dim)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.dim, cfg.mlp * cfg.dim),
            nn.GELU(),
            nn.Linear(cfg.mlp * cfg.dim, cfg.dim),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


class TextToImageTransformer(nn.Module):
    """The model. `forward(text, image)` gives (text logits, image logits)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.text_emb = nn.Embedding(cfg.text_vocab, cfg.dim)
        self.text_pos = nn.Parameter(torch.zeros(cfg.text_len, cfg.dim))
        self.image_emb = nn.Embedding(cfg.n_codes, cfg.dim)
        self.row_pos = nn.Parameter(torch.zeros(cfg.grid, cfg.dim))
        self.col_pos = nn.Parameter(torch.zeros(cfg.grid, cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.dim)
        self.text_head = nn.Linear(cfg.dim, cfg.text_vocab, bias=False)
        self.image_head = nn.Linear(cfg.dim, cfg.n_codes, bias=False)
        self.apply(_init)
        for p in (self.text_pos, self.row_pos, self.col_pos):
            nn.init.normal_(p, std=0.02)
        for name, p in self.named_parameters():  # GPT-2's scaled residual projections
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.layers))

    def image_positions(self, start: int, n: int) -> torch.Tensor:
        """Position embeddings of image codes start..start+n-1 (row-major)."""
        idx = torch.arange(start, start + n, device=self.row_pos.device)
        return self.row_pos[idx // self.cfg.grid] + self.col_pos[idx % self.cfg.grid]

    def embed_text(self, text: torch.Tensor) -> torch.Tensor:
        return self.text_emb(text) + self.text_pos[: text.shape[1]]

    def embed_image(self, codes: torch.Tensor, start: int = 0) -> torch.Tensor:
        return self.image_emb(codes) + self.image_positions(start, codes.shape[1])

    def hidden(self, x: torch.Tensor, caches: list[dict] | None = None) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        return self.ln_f(x)

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """text (B, text_len), image (B, m) with m < image_len: logits for text tokens
        1..text_len-1 (B, text_len-1, text_vocab) and image codes 0..m (B, m+1, n_codes)."""
        x = torch.cat([self.embed_text(text), self.embed_image(image)], 1)
        h = self.hidden(x)
        t = self.cfg.text_len
        return self.text_head(h[:, : t - 1]), self.image_head(h[:, t - 1 :])

    def loss(
        self, text: torch.Tensor, image: torch.Tensor, pad: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted loss of full sequences: text (B, text_len), image codes (B, grid^2)."""
        text_logits, image_logits = self(text, image[:, :-1])
        lt = F.cross_entropy(
            text_logits.reshape(-1, text_logits.shape[-1]),
            text[:, 1:].reshape(-1),
            ignore_index=pad,
        )
        li = F.cross_entropy(image_logits.reshape(-1, image_logits.shape[-1]), image.reshape(-1))
        w = self.cfg.image_loss_weight
        total = (lt + w * li) / (1 + w)
        return total, {"text": float(lt.detach()), "image": float(li.detach())}


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, std=0.02)


# --- the VQGAN a checkpoint belongs to ------------------------------------------------------


def vqgan_fingerprint(vqgan: nn.Module) -> str:
    """A hash of the VQGAN's weights (codebook, encoder, decoder), in a fixed order."""
    h = hashlib.sha256()
    for name, tensor in sorted(vqgan.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def vqgan_record(vqgan: Any, size: int) -> dict[str, Any]:
    """What a checkpoint says about its VQGAN (`size`: the picture side it was trained at)."""
    return {
        "name": vqgan.name,
        "fingerprint": vqgan_fingerprint(vqgan),
        "n_embed": int(vqgan.config.n_embed),
        "factor": int(vqgan.factor),
        "size": size,
    }


# --- checkpoints ---------------------------------------------------------------------------


@dataclass
class LoadedTransformer:
    """A checkpoint, ready to sample: the model (eval mode), its tokenizer and its record."""

    model: TextToImageTransformer
    tokenizer: WordTokenizer
    vqgan: dict[str, Any]
    path: str
    name: str
    meta: dict[str, Any]

    @property
    def size(self) -> int:
        """The picture side the model draws (grid x the VQGAN's factor)."""
        return int(self.vqgan["size"])


def save_checkpoint(
    path: str | Path,
    model: TextToImageTransformer,
    tokenizer: WordTokenizer,
    vqgan: dict[str, Any],
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (a temp file, then a rename)."""
    path = Path(path)
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "config": asdict(model.cfg),
        "vocab": list(tokenizer.vocab),
        "vqgan": dict(vqgan),
        "meta": dict(meta or {}),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
    return path


def find_transformer(path: str | Path) -> Path:
    """The checkpoint file for a file or a folder holding ``model.pt``."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise GenerateError(
            f"no transformer checkpoint at {p}",
            hint="Pass a checkpoint written by scripts/train_transformer.py (a model.pt, or "
            "the folder holding it), or leave --transformer out to use the shipped one.",
        )
    return p


def load_transformer(
    path: str | Path, *, vqgan: Any | None = None, device: str = "cpu"
) -> LoadedTransformer:
    """Load a checkpoint; with `vqgan`, refuse it unless it was trained on that VQGAN."""
    ckpt = find_transformer(path)
    try:
        obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GenerateError(
            f"cannot read transformer checkpoint {ckpt}: {str(exc).splitlines()[0][:200]}",
            hint="The file may be truncated or not a clipsearch transformer checkpoint.",
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise GenerateError(
            f"{ckpt} is not a clipsearch transformer checkpoint",
            hint="Train one with scripts/train_transformer.py.",
        )
    if int(obj.get("version", 0)) > VERSION:
        raise GenerateError(f"{ckpt} was written by a newer clipsearch (format {obj['version']})")
    try:
        cfg = TransformerConfig(**obj["config"])
        tokenizer = WordTokenizer(obj["vocab"], cfg.text_len)
        model = TextToImageTransformer(cfg)
        model.load_state_dict(obj["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise GenerateError(
            f"{ckpt} does not hold a transformer of this architecture "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            hint="Only checkpoints of clipsearch's transformer drawer load.",
        ) from None
    record = dict(obj["vqgan"])
    if vqgan is not None:
        check_vqgan(ckpt, record, cfg, vqgan)
    folder = ckpt.parent.name if ckpt.name == CHECKPOINT_NAME else ckpt.stem
    return LoadedTransformer(
        model.eval().requires_grad_(False).to(device),
        tokenizer,
        record,
        str(ckpt),
        folder,
        dict(obj.get("meta", {})),
    )


def check_vqgan(ckpt: Path, record: dict[str, Any], cfg: TransformerConfig, vqgan: Any) -> None:
    """GenerateError unless `vqgan` is the VQGAN the checkpoint was trained on."""
    mine = vqgan_fingerprint(vqgan)
    if record.get("fingerprint") != mine or int(vqgan.config.n_embed) != cfg.n_codes:
        raise GenerateError(
            f"transformer checkpoint {ckpt} was trained on the codes of another VQGAN "
            f"({record.get('name', '?')}, fingerprint {record.get('fingerprint', '?')}, "
            f"{record.get('n_embed', '?')} codes) than the one this generation uses "
            f"({vqgan.name}, fingerprint {mine}, {vqgan.config.n_embed} codes): its pictures "
            "would be noise",
            hint="Use the VQGAN the checkpoint was trained with (--vqgan), or a checkpoint "
            "trained on this VQGAN's codes (scripts/train_transformer.py --vqgan).",
        )
