"""The transformer drawer's parts: tokenizer, model, sampling (KV cache), re-ranking,
checkpoints, and a few real training steps of scripts/train_transformer.py."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clipsearch.errors import GenerateError
from clipsearch.generate.drafts import draw_candidates
from clipsearch.generate.sampling import SamplingSettings, filter_logits, sample_codes
from clipsearch.generate.tokens import WordTokenizer, shapes_vocabulary
from clipsearch.generate.transformer import (
    LoadedTransformer,
    TextToImageTransformer,
    TransformerConfig,
    load_transformer,
    save_checkpoint,
    vqgan_record,
)
from clipsearch.generate.vqgan import VQGAN, VQGANConfig

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
DD = {
    "double_z": False,
    "z_channels": 8,
    "resolution": 16,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [],
    "dropout": 0.0,
}


def _vqgan(seed: int = 0) -> VQGAN:
    torch.manual_seed(seed)
    return VQGAN(VQGANConfig(DD, n_embed=32, embed_dim=8)).eval().requires_grad_(False)


def _model(seed: int = 0, grid: int = 4) -> tuple[TextToImageTransformer, WordTokenizer]:
    torch.manual_seed(seed)
    tok = WordTokenizer(shapes_vocabulary(), 6)
    cfg = TransformerConfig(len(tok), 6, n_codes=32, grid=grid, dim=32, layers=2, heads=2)
    return TextToImageTransformer(cfg).eval(), tok


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny models run faster on one thread on a busy machine; put it back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_tokenizer_reads_the_worlds_captions() -> None:
    tok = WordTokenizer(shapes_vocabulary(), 12)
    ids = tok.encode("Two small RED circles on a white background")
    assert len(ids) == 12 and ids[0] == tok.bos and ids[-1] == tok.pad
    assert tok.decode(ids) == "two small red circles on a white background"
    assert tok.unknown("a red dragon") == ["dragon"]
    assert tok.encode("a red dragon")[3] == tok.unk
    assert len(set(shapes_vocabulary())) == len(shapes_vocabulary())


def test_the_loss_weights_the_image_more() -> None:
    model, tok = _model()
    text = torch.tensor([tok.encode("a red star")] * 2)
    codes = torch.randint(0, 32, (2, 16))
    total, parts = model.loss(text, codes, tok.pad)
    w = model.cfg.image_loss_weight
    assert total.item() == pytest.approx((parts["text"] + w * parts["image"]) / (1 + w), rel=1e-5)
    text_logits, image_logits = model(text, codes[:, :-1])
    assert text_logits.shape == (2, 5, len(tok)) and image_logits.shape == (2, 16, 32)


def test_sampling_shape_and_determinism() -> None:
    model, tok = _model()
    text = torch.tensor([tok.encode("a blue heart")] * 3)
    s = SamplingSettings(temperature=1.0, top_k=8, top_p=0.9)

    def draw(seed: int) -> torch.Tensor:
        return sample_codes(model, text, generator=torch.Generator().manual_seed(seed), settings=s)

    a, b, c = draw(1), draw(1), draw(2)
    assert a.shape == (3, 16) and a.dtype == torch.long and a.min() >= 0 and a.max() < 32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # the candidates of one batch differ


def test_the_kv_cache_samples_what_the_full_recompute_samples() -> None:
    model, tok = _model(seed=3)
    text = torch.tensor([tok.encode("three large green crosses on a black background")] * 4)
    for settings in (SamplingSettings(), SamplingSettings(0.7, 5, 0.8)):
        cached = sample_codes(
            model, text, generator=torch.Generator().manual_seed(5), settings=settings
        )
        full = sample_codes(
            model,
            text,
            generator=torch.Generator().manual_seed(5),
            settings=settings,
            use_cache=False,
        )
        assert torch.equal(cached, full)
    # and the cached logits are the full forward's
    codes = cached[:, :7].clone()
    with torch.no_grad():
        _, logits = model(text, codes)
        caches: list[dict] = [{} for _ in model.blocks]
        h = model.hidden(model.embed_text(text), caches)
        first_buffer = caches[0]["k"].data_ptr()
        step = [model.image_head(h[:, -1])]
        for i in range(7):
            h = model.hidden(model.embed_image(codes[:, i : i + 1], start=i), caches)
            step.append(model.image_head(h[:, -1]))
            # the cache is written in place: one buffer for the whole sequence, never copied
            assert caches[0]["k"].data_ptr() == first_buffer
    assert torch.allclose(torch.stack(step, 1), logits, atol=1e-5)
    with torch.no_grad(), pytest.raises(ValueError, match="positions long"):  # past the end
        model.hidden(model.embed_image(cached[:, :16].clone()), caches)


def test_top_k_and_top_p_filtering() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).sum() == 2
    kept = torch.isfinite(filter_logits(logits, top_p=0.8))  # 0.5 + 0.2 < 0.8 <= + 0.15
    assert kept.tolist() == [[True, True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).sum() == 1  # the top one stays
    with pytest.raises(GenerateError, match="top-p"):
        SamplingSettings(top_p=0).check()
    with pytest.raises(GenerateError, match="temperature"):
        SamplingSettings(temperature=0).check()


class _RedGuide:
    """A stand-in for ClipGuide whose 'CLIP' likes red: embedding (mean R, mean G)."""

    cutouts = SimpleNamespace(size=16)
    mean = torch.zeros(1, 3, 1, 1)
    text = torch.tensor([[1.0, 0.0]])
    weights = torch.tensor([1.0])

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(images[:, :2].mean((2, 3)), dim=-1)


def test_candidates_come_back_best_first() -> None:
    vqgan = _vqgan()
    model, tok = _model()
    loaded = LoadedTransformer(model, tok, vqgan_record(vqgan, 8), "x", "test", {})
    drafts = draw_candidates(loaded, vqgan, _RedGuide(), "a red circle", n=6, seed=4)
    scores = [c.clip_score for c in drafts.candidates]
    assert len(scores) == 6 and scores == sorted(scores, reverse=True)
    assert sorted(c.index for c in drafts.candidates) == list(range(6))
    best = drafts.best
    px = torch.from_numpy(np.asarray(best.image, dtype=np.float32)).mean((0, 1))
    want = F.normalize(px[:2] / 255, dim=0)[0].item()
    assert best.clip_score == pytest.approx(want, abs=0.02)
    assert best.image.size == (8, 8) and best.codes.shape == (4, 4)  # factor 2
    again = draw_candidates(loaded, vqgan, _RedGuide(), "a red circle", n=6, seed=4)
    assert [c.index for c in again.candidates] == [c.index for c in drafts.candidates]


def test_a_checkpoint_round_trips_and_a_foreign_vqgan_is_refused(tmp_path: Path) -> None:
    vqgan, other = _vqgan(0), _vqgan(1)
    model, tok = _model()
    path = save_checkpoint(tmp_path / "model.pt", model, tok, vqgan_record(vqgan, 8))
    loaded = load_transformer(tmp_path, vqgan=vqgan)
    assert loaded.size == 8 and loaded.name == tmp_path.name
    for a, b in zip(loaded.model.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(GenerateError, match="another VQGAN") as err:
        load_transformer(path, vqgan=other)
    assert "fingerprint" in str(err.value) and "--vqgan" in (err.value.hint or "")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(GenerateError, match="cannot read transformer checkpoint"):
        load_transformer(tmp_path / "junk.pt")
    with pytest.raises(GenerateError, match="no transformer checkpoint"):
        load_transformer(tmp_path / "missing")
    obj = torch.load(path, weights_only=True)
    obj["config"]["dim"] = 64  # weights of another shape
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(GenerateError, match="not hold a transformer of this architecture"):
        load_transformer(tmp_path / "bad.pt")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "train_transformer", SCRIPTS / "train_transformer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_transformer"] = module
    spec.loader.exec_module(module)
    return module


def test_partial_captions_leave_out_the_colour_or_the_shape() -> None:
    trainer = _script()
    caption = "three large green crosses on a black background"
    assert [trainer.partial_caption(caption, f) for f in trainer.FIELDS] == [
        "three large crosses on a black background",
        "three large green shapes on a black background",
    ]
    assert trainer.partial_caption("an orange heart on a white background", "colour") == (
        "a heart on a white background"
    )


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp32+partial"])
def test_a_few_real_training_steps_lower_the_loss(tmp_path: Path, precision: str) -> None:
    """The real script on the real tiny VQGAN's codes of real shapes-world scenes (and under
    bfloat16 autocast, `--bf16`: the checkpoint still float32; and with half the captions
    naming only the colour or only the shape)."""
    trainer = _script()
    args = trainer.parse(
        [
            *("--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")),
            *("--scenes", "48", "--val", "8", "--steps", "60", "--batch-size", "8"),
            *("--dim", "32", "--layers", "1", "--heads", "2", "--lr", "3e-3"),
            *("--warmup", "5", "--log-every", "10", "--threads", "1"),
            *(["--bf16"] if precision == "bf16" else []),
            *(["--partial-captions", "0.5"] if precision.endswith("partial") else []),
        ]
    )
    record = trainer.train(args)
    losses = record["loss_every_log"]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.3, losses
    saved = json.loads((tmp_path / "out" / "training.json").read_text())
    assert saved["finished"] and saved["steps_done"] == 60 and saved["vqgan"]["size"] == 64
    assert saved["autocast"] == ("bfloat16" if precision == "bf16" else None)
    assert saved["data"]["heldout_combos"]
    assert saved["data"]["partial_captions"] == (0.5 if precision.endswith("partial") else 0)
    from clipsearch.generate.vqgan import load_vqgan

    loaded = load_transformer(tmp_path / "out", vqgan=load_vqgan(trainer.DEFAULT_VQGAN))
    assert loaded.model.cfg.grid == 16 and loaded.size == 64
    assert all(
        t.dtype == torch.float32
        for t in loaded.model.state_dict().values()
        if t.is_floating_point()
    )
    assert list((tmp_path / "cache").glob("codes-*.pt"))  # encoded once, cached
