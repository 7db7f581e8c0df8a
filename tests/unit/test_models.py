"""Model specs, resolution, and the offline message (no traceback, names the fixes)."""

import time
from pathlib import Path

import pytest

from clipsearch.errors import ModelError
from clipsearch.model.encoder import Encoder
from clipsearch.model.specs import ModelSpec, resolve


@pytest.mark.parametrize(
    ("text", "kind", "canonical"),
    [
        ("ViT-B-32:laion2b_s34b_b79k", "tag", "ViT-B-32:laion2b_s34b_b79k"),
        ("ViT-B-32", "tag", "ViT-B-32:laion2b_s34b_b79k"),
        ("ViT-B-32:random", "random", "ViT-B-32:random"),
        (
            "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
            "hf-hub",
            "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        ),
        ("tiny-shapes", "shipped", "tiny-shapes"),
        ("ViT-B-32:/models/w.safetensors", "file", "ViT-B-32:/models/w.safetensors"),
    ],
)
def test_parse_forms(text, kind, canonical):
    spec = ModelSpec.parse(text)
    assert spec.kind == kind
    assert spec.canonical == canonical


def test_local_dir_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    assert ModelSpec.parse("local-dir:m").canonical == f"local-dir:{tmp_path / 'm'}"
    assert ModelSpec.parse("m").canonical == f"local-dir:{tmp_path / 'm'}"  # a bare folder


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty model spec"),
        ("hf-hub:nope", "expected hf-hub:ORG/REPO"),
        ("local-dir:", "empty folder"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(ModelError, match=message):
        ModelSpec.parse(text)


def test_bare_weights_file_needs_architecture(tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    with pytest.raises(ModelError) as err:
        ModelSpec.parse(str(weights))
    assert "ViT-B-32:" in err.value.hint


def test_offline_pretrained_tag_fails_fast_with_instructions(monkeypatch, tmp_path):
    # An empty cache and a hub that refuses connections: what an offline machine sees.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(ModelError) as err:
        resolve(ModelSpec.parse("ViT-B-32:laion2b_s34b_b79k"))
    assert time.monotonic() - start < 30  # no minute of retries
    text = str(err.value)
    assert "ViT-B-32:laion2b_s34b_b79k" in text
    assert "local-dir:" in text and "https://huggingface.co/laion/CLIP-ViT-B-32" in text
    assert "Traceback" not in text


def test_offline_hub_model_fails_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="cannot load model hf-hub:org/repo") as err:
        resolve(ModelSpec.parse("hf-hub:org/repo"))
    assert "local-dir:" in err.value.hint


def test_unknown_tag_lists_known_ones():
    with pytest.raises(ModelError, match=r"unknown pretrained tag 'nope'") as err:
        resolve(ModelSpec.parse("ViT-B-32:nope"))
    assert "laion2b_s34b_b79k" in err.value.hint


def test_unknown_architecture():
    with pytest.raises(ModelError, match="unknown open_clip architecture"):
        resolve(ModelSpec.parse("NotAModel-9:random"))


def test_local_dir_missing_pieces(tmp_path):
    with pytest.raises(ModelError, match="folder not found"):
        resolve(ModelSpec("local-dir", source=str(tmp_path / "nope")))
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelError, match=r"has no open_clip_config\.json"):
        resolve(ModelSpec("local-dir", source=str(tmp_path / "m")))
    (tmp_path / "m" / "open_clip_config.json").write_text('{"model_cfg": {}}')
    with pytest.raises(ModelError, match="has no weights file"):
        resolve(ModelSpec("local-dir", source=str(tmp_path / "m")))


def test_weights_file_with_architecture_loads(tiny_model, tmp_path):
    # The same tiny weights as a file path with an architecture registered from its config.
    folder = Path(tiny_model.removeprefix("local-dir:"))
    enc = Encoder(tiny_model).load()
    assert enc.dim == 32
    assert enc.fingerprint  # local files get a content fingerprint
    vec = enc.encode_texts(["a red circle", "a blue square"])
    assert vec.shape == (2, 32)
    assert abs(float((vec**2).sum(axis=1)[0]) - 1.0) < 1e-5
    assert (folder / "open_clip_model.safetensors").is_file()


def test_wrong_weights_for_architecture_is_a_clear_error(tiny_model):
    weights = tiny_model.removeprefix("local-dir:") + "/open_clip_model.safetensors"
    with pytest.raises(ModelError, match="cannot load model ViT-B-32:") as err:
        Encoder(f"ViT-B-32:{weights}").load()
    assert "Traceback" not in str(err.value)
