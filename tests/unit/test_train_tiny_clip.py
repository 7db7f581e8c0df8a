"""A few real training steps of scripts/train_tiny_clip.py on a very small open_clip CLIP."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from clipsearch.demo import other_renderer, shapes

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
SMALL_CFG = {  # the shipped config's architecture (ModifiedResNet + text transformer), shrunk
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trainer() -> ModuleType:
    return _load("train_tiny_clip")


def test_batches_hold_only_true_negatives(trainer: ModuleType) -> None:
    items = trainer.sample_batch(random.Random(0), 128)
    assert len(items) == 128
    for i, (scene_i, _) in enumerate(items):
        assert (scene_i.description.colour, scene_i.description.kind) not in shapes.HELDOUT_COMBOS
        for j, (_, caption_j) in enumerate(items):
            # caption j describes image i only when i == j
            assert caption_j.matches(scene_i.description) == (i == j)


def test_batches_mix_renderers_but_never_the_held_out_style(trainer: ModuleType) -> None:
    assert set(trainer.STYLES) == {"house", *other_renderer.RENDERERS}
    assert other_renderer.HELDOUT_STYLE not in trainer.STYLES
    pixels, tokens = trainer.make_batch(0, 3, 48, 32, 16)
    assert pixels.shape == (48, 32, 32, 3) and pixels.dtype == np.uint8
    assert tokens.shape == (48, 16)
    again = trainer.make_batch(0, 3, 48, 32, 16)  # a batch depends only on (seed, step)
    assert np.array_equal(pixels, again[0]) and np.array_equal(tokens, again[1])
    scene = shapes.sample_scene(random.Random(1), shapes.Description(1, "large", "red", "star"))
    for style in trainer.STYLES:
        image = trainer.render_item(scene, style, random.Random(2), 32)
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        red = (image[..., 0] > 150) & (image[..., 1] < 110) & (image[..., 2] < 110)
        assert red.sum() > 4, style  # the red star is drawn, whoever draws it


def test_time_budget_decays_the_learning_rate_then_stops(trainer: ModuleType) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steady steps even when another job keeps both cores busy
    trainer.make_batch(0, 0, 8, 32, 16)  # load the tokenizer before the clock starts
    logs: list[str] = []
    try:
        result = trainer.train(
            SMALL_CFG,
            steps=100_000,
            batch_size=8,
            warmup=2,
            time_budget=4.0,
            log_every=1,
            log=logs.append,
        )
    finally:
        torch.set_num_threads(threads)
    assert result["stopped_early"] and 3 < result["steps_done"] < 100_000
    lrs = [float(line.split(" lr ")[1].split()[0]) for line in logs if " lr " in line]
    assert max(lrs) > 1e-3 and lrs[-1] < 1e-4  # warmed up, then decayed within the budget
    assert "time budget of 4s spent" in logs[-1]


def test_few_steps_loss_falls_and_checkpoint_loads(trainer: ModuleType, tmp_path: Path) -> None:
    torch.set_num_threads(2)
    logs: list[str] = []
    result = trainer.train(
        SMALL_CFG,
        steps=40,
        batch_size=32,
        lr=2e-3,
        warmup=4,
        seed=0,
        log=logs.append,
    )
    losses = result["losses"]
    assert len(losses) == 40 and logs
    start, end = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert end < start - 0.3, (start, end)

    # same seed, same first steps, also when a worker process renders the batches
    again = trainer.train(
        SMALL_CFG, steps=3, batch_size=32, lr=2e-3, warmup=4, seed=0, workers=1, log=print
    )
    assert again["losses"] == pytest.approx(losses[:3], rel=1e-4)

    import open_clip

    weights = trainer.save_checkpoint(result["model"], SMALL_CFG, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "open_clip_config.json").read_text())
    assert config["model_cfg"] == SMALL_CFG and config["preprocess_cfg"]["size"] == 32
    name = f"local-dir:{tmp_path / 'm'}"
    loaded, _, preprocess = open_clip.create_model_and_transforms(name)
    loaded.eval()  # BatchNorm in the image tower: always eval() before encoding
    tokenizer = open_clip.get_tokenizer(name)
    assert tokenizer.context_length == 16
    assert weights.stat().st_size < 4_000_000  # float16 matrices (float32: over 6 MB)

    scene = shapes.sample_scene(random.Random(5))
    image = preprocess(shapes.render(scene, 128)).unsqueeze(0)
    text = tokenizer([shapes.caption(scene)])
    with torch.no_grad():
        ref_i = result["model"].encode_image(image, normalize=True)
        ref_t = result["model"].encode_text(text, normalize=True)
        got_i = loaded.encode_image(image, normalize=True)
        got_t = loaded.encode_text(text, normalize=True)
    assert torch.allclose(ref_i, got_i, atol=5e-3) and torch.allclose(ref_t, got_t, atol=5e-3)
