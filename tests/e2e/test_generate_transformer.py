"""The transformer drawers end to end, with the shipped tiny CLIP and tiny VQGAN: candidates
re-ranked by CLIP, the best in the library with its provenance, through the Python API, the
CLI and HTTP; checkpoints of another VQGAN refused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from clipsearch import Library
from clipsearch.errors import GenerateError
from clipsearch.generate.collection import read_provenance
from clipsearch.generate.run import GenerateRequest, generate
from clipsearch.generate.tokens import WordTokenizer, shapes_vocabulary
from clipsearch.generate.transformer import (
    TextToImageTransformer,
    TransformerConfig,
    save_checkpoint,
    vqgan_record,
)
from clipsearch.generate.vqgan import load_vqgan
from clipsearch.resources import data_dir

PROMPT = "a small red star on a white background"
SHIPPED = data_dir() / "models" / "tiny-dalle" / "model.pt"


def _checkpoint(folder: Path, *, foreign: bool = False) -> Path:
    """A small randomly initialised transformer over the shipped VQGAN's codes (the
    plumbing needs no trained weights), or one recorded against another VQGAN."""
    vqgan = load_vqgan(data_dir() / "models" / "tiny-vqgan")
    record = vqgan_record(vqgan, 64)
    if foreign:
        record = {**record, "name": "other-vqgan", "fingerprint": "0123456789abcdef01234567"}
    torch.manual_seed(0)
    tok = WordTokenizer(shapes_vocabulary(), 12)
    cfg = TransformerConfig(len(tok), 12, n_codes=512, grid=16, dim=32, layers=1, heads=2)
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(folder / "model.pt", TextToImageTransformer(cfg), tok, record)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen-transformer")
    ckpt = _checkpoint(root / "dalle")
    foreign = _checkpoint(root / "foreign", foreign=True)
    lib = Library.open(root / "library", model="tiny-shapes", threads=1)
    req = GenerateRequest((PROMPT,), seed=11, drawer="transformer", candidates=6)
    result = generate(lib, GenerateRequest(**{**req.__dict__, "transformer": str(ckpt)}))
    yield SimpleNamespace(root=root, lib=lib, ckpt=ckpt, foreign=foreign, result=result)
    lib.close()


def test_the_best_candidate_is_kept_and_the_rest_are_reported(made):
    r = made.result
    scores = [c["clip_score"] for c in r.candidates]
    assert len(scores) == 6 and scores == sorted(scores, reverse=True)
    assert r.candidates[0]["kept"] and not any(c["kept"] for c in r.candidates[1:])
    assert r.clip_score == scores[0] and r.size == (64, 64) and r.steps_done == 0
    assert len(r.candidate_images) == 6 and "candidate_images" not in r.to_dict()
    json.dumps(r.to_dict())  # the --json / API shape stays plain data
    # The kept picture is the best candidate's.
    px = np.array(Image.open(r.path).convert("RGB"))
    assert np.array_equal(px, np.array(r.candidate_images[0]))


def test_provenance_in_the_png_and_the_library(made):
    r = made.result
    meta = read_provenance(r.path)
    assert (meta["drawer"], meta["seed"], meta["candidates"]) == ("transformer", "11", "6")
    assert float(meta["clip_score"]) == pytest.approx(r.clip_score, abs=1e-4)
    assert meta["transformer_model"] == "dalle" and meta["vqgan_model"] == "tiny-vqgan"
    assert json.loads(meta["prompts"]) == [[PROMPT, 1.0]]
    row = made.lib.store.generation(r.image_id)
    assert row["drawer"] == "transformer" and row["seed"] == 11 and row["steps"] == 0
    params = json.loads(row["params"])
    assert params["candidates"] == 6 and params["clip_score"] == pytest.approx(r.clip_score)
    assert [s for _, s in params["candidate_scores"]] == [c["clip_score"] for c in r.candidates]
    assert params["kept_candidate"] == r.candidates[0]["index"] and params["text"] == PROMPT
    hits = made.lib.search("a red star", source="generated", k=5)
    assert [h.id for h in hits] == [r.image_id]


def test_same_seed_same_candidates(made, tmp_path):
    req = GenerateRequest(
        (PROMPT,), seed=11, drawer="transformer", candidates=6, transformer=str(made.ckpt)
    )
    again = generate(made.lib, GenerateRequest(**{**req.__dict__, "out": str(tmp_path)}))
    assert again.candidates == made.result.candidates


def test_transformer_then_vqgan_refines_the_draft(made, tmp_path):
    req = GenerateRequest(
        (PROMPT,),
        steps=4,
        seed=2,
        cutouts=4,
        drawer="transformer+vqgan",
        candidates=3,
        transformer=str(made.ckpt),
        out=str(tmp_path),
    )
    r = generate(made.lib, req)
    assert r.steps_done == 4 and r.loss is not None and len(r.candidates) == 3
    row = made.lib.store.generation(r.image_id)
    params = json.loads(row["params"])
    assert row["drawer"] == "transformer+vqgan" and row["steps"] == 4  # 17 characters
    assert params["draft_clip_score"] == r.candidates[0]["clip_score"]


def test_a_checkpoint_of_another_vqgan_is_refused(made, tmp_path):
    req = GenerateRequest(
        (PROMPT,), drawer="transformer", transformer=str(made.foreign), out=str(tmp_path)
    )
    with pytest.raises(GenerateError, match="trained on the codes of another VQGAN"):
        generate(made.lib, req)
    req = GenerateRequest(
        (PROMPT,), drawer="transformer", transformer=str(made.ckpt), size=(32, 32)
    )
    with pytest.raises(GenerateError, match="draws 64x64 pictures"):
        generate(made.lib, req)
    assert not list(tmp_path.glob("*.png"))


def test_the_cli_drawer(made):
    from clipsearch.cli import cli

    runner = CliRunner()
    base = ["--library", str(made.lib.path), "--threads", "1", "generate", PROMPT]
    base += ["--drawer", "transformer", "--transformer", str(made.ckpt), "--seed", "5"]
    r = runner.invoke(cli, [*base, "--candidates", "4", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["drawer"] == "transformer" and len(out["candidates"]) == 4
    assert out["clip_score"] == out["candidates"][0]["clip_score"]
    r = runner.invoke(cli, [*base, "--candidates", "2", "--top-k", "50", "--top-p", "0.9"])
    assert r.exit_code == 0 and "best of 2 candidates" in r.stdout, r.output
    assert "CLIP score" in r.stdout
    bad = [*base[:-2], "--transformer", str(made.foreign)]
    r = runner.invoke(cli, bad)
    assert r.exit_code != 0 and "another VQGAN" in r.stderr and "Traceback" not in r.output
    r = runner.invoke(cli, [*base, "--candidates", "0"])
    assert r.exit_code == 2 and "--candidates must be from 1 to 64" in r.stderr


@pytest.mark.skipif(not SHIPPED.exists(), reason="the shipped tiny-dalle weights are missing")
def test_the_api_runs_the_shipped_transformer(made):
    from clipsearch.server import BackgroundServer, ServerSettings

    with (
        BackgroundServer(made.lib, ServerSettings(port=0)) as srv,
        httpx.Client(base_url=srv.url, timeout=60) as http,
    ):
        names = {d["name"]: d for d in http.get("/api/generate/options").json()["drawers"]}
        assert names["transformer"]["available"] and names["transformer+vqgan"]["available"]
        body = {"prompts": [PROMPT], "drawer": "transformer", "candidates": 4, "seed": 3}
        r = http.post("/api/generate", json=body)
        assert r.status_code == 202, r.text
        job = r.json()
        deadline = time.monotonic() + 120
        while job["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            job = http.get(f"/api/generate/{job['id']}").json()
        assert job["state"] == "done", job
        res = job["result"]
        assert res["drawer"] == "transformer" and len(res["candidates"]) == 4
        assert all(c["image"].startswith("data:image/png;base64,") for c in res["candidates"])
        assert http.get(f"/api/images/{res['image_id']}").json()["source"] == "generated"
        bad = http.post("/api/generate", json={**body, "candidates": 0})
        assert bad.status_code == 422
