"""A few real training steps of scripts/train_tiny_clip.py on a very small open_clip CLIP."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from clipsearch.demo import shapes

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
