"""The main job without torch (ONNX Runtime only), and a library's precision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clipsearch.demo import shapes
from clipsearch.model import precision
from tests.helpers import cs, run_process

BLOCK_TORCH = '''
import sys

class _NoTorch:
    """As if the [torch] extra were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "open_clip"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoTorch())
'''


@pytest.fixture
def without_torch(tmp_path: Path) -> dict[str, str]:
    """Environment for a `clipsearch` process that cannot import torch or open_clip."""
    site = tmp_path / "no-torch"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_TORCH)
    return {"PYTHONPATH": str(site), "CLIPSEARCH_CACHE": str(tmp_path / "empty-cache")}


def _shapes(folder: Path, n: int = 24) -> Path:
    shapes.write_collection(folder, n, seed=3, size=96, suffix=".jpg")
    return folder


def test_index_search_dupes_and_tags_need_no_torch(tmp_path, without_torch):
    photos, lib = _shapes(tmp_path / "photos"), str(tmp_path / "lib")
    env = without_torch
    check = run_process("--library", lib, "--model", "tiny-shapes", "index", str(photos), env=env)
    assert check.returncode == 0, check.stderr
    assert "24 added" in check.stdout
    found = run_process("--library", lib, "search", "a red circle", "--json", env=env)
    assert found.returncode == 0 and len(json.loads(found.stdout)) == 10, found.stderr
    status = json.loads(run_process("--library", lib, "status", "--json", env=env).stdout)
    # no torch: ONNX Runtime, or OpenVINO where the [openvino] extra is installed
    assert status["runtime"] in ("onnxruntime", "openvino") and status["vectors"] == 24
    tags = run_process("--library", lib, "classify", "red circle", "blue star", env=env)
    assert tags.returncode == 0, tags.stderr
    assert run_process("--library", lib, "dupes", "--json", env=env).returncode == 0
    blocked = run_process("--library", lib, "generate", "a red circle", env=env)
    assert blocked.returncode == 2
    assert "pip install 'clipsearch[generate]'" in blocked.stderr
    assert "Traceback" not in blocked.stderr


def test_a_model_that_needs_an_export_says_how_without_torch(tmp_path, tiny_model, without_torch):
    photos = _shapes(tmp_path / "photos", 3)
    proc = run_process(
        "--library",
        str(tmp_path / "lib"),
        "--model",
        tiny_model,
        "index",
        str(photos),
        env=without_torch,
    )
    assert proc.returncode == 1
    assert "exporting it needs torch" in proc.stderr
    assert "pip install 'clipsearch[torch]'" in proc.stderr and "onnx-dir:" in proc.stderr


def test_an_export_made_once_serves_a_machine_without_torch(
    tmp_path, tiny_model, without_torch, model_cache
):
    photos = _shapes(tmp_path / "photos", 4)
    # One precision for both (the automatic choice measures speed, which varies with load).
    cs(tmp_path / "with", "--model", tiny_model, "--precision", "fp32", "index", str(photos))
    exported = next(p for p in (model_cache / "onnx").iterdir() if (p / "visual.onnx").exists())
    carried = tmp_path / "carried-onnx"
    shutil.copytree(exported, carried)
    lib = str(tmp_path / "without")
    proc = run_process(
        "--library",
        lib,
        "--model",
        f"onnx-dir:{carried}",
        "--precision",
        "fp32",
        "index",
        str(photos),
        env=without_torch,
    )
    assert proc.returncode == 0 and "4 added" in proc.stdout, proc.stderr
    with_torch = json.loads(cs(tmp_path / "with", "search", "x", "--json").stdout)
    no_torch = run_process("--library", lib, "search", "x", "--json", env=without_torch)
    scores_a = [r["score"] for r in with_torch]
    scores_b = [r["score"] for r in json.loads(no_torch.stdout)]
    assert scores_b == pytest.approx(scores_a, abs=1e-4)


def test_a_librarys_precision_is_chosen_once_and_never_mixed(tmp_path):
    photos, lib = _shapes(tmp_path / "photos", 40), tmp_path / "lib"
    cs(lib, "--model", "tiny-shapes", "index", str(photos))
    status = json.loads(cs(lib, "status", "--json").stdout)
    chosen = status["precision"]
    assert chosen in ("int8", "fp32", "bf16")  # bf16 where OpenVINO or torch and the CPU offer it
    check = status["precision_check"]
    assert check["requested"] == "auto"
    assert check["checks"][0]["precision"] == precision.candidates("auto")[0]
    assert check["checks"][0]["cosine_min"] is not None
    other = "int8" if chosen == "fp32" else "fp32"
    refused = cs(lib, "--precision", other, "search", "x", expect=1)
    assert "not mixed" in refused.stderr and "reindex" in refused.stderr
    cs(lib, "--precision", "fp32", "reindex")
    assert json.loads(cs(lib, "status", "--json").stdout)["precision"] == "fp32"
    assert len(json.loads(cs(lib, "search", "a red circle", "--json").stdout)) == 10


def test_the_default_model_offline_without_torch_says_where_its_onnx_files_are(
    tmp_path, without_torch
):
    photos = _shapes(tmp_path / "photos", 2)
    env = {**without_torch, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = run_process("--library", str(tmp_path / "lib"), "index", str(photos), env=env)
    assert proc.returncode == 1
    assert "immich-app/ViT-B-32__laion2b-s34b-b79k" in proc.stderr
    assert "--model onnx-dir:FOLDER" in proc.stderr and "Traceback" not in proc.stderr
