"""Generation with the shipped tiny CLIP + tiny VQGAN: it must really draw what it is asked,
land in the library as a generated image, and fail clearly when it cannot."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from clipsearch import Library
from clipsearch.demo import shapes
from clipsearch.errors import GenerateError, VQGANError
from clipsearch.generate.collection import read_provenance
from clipsearch.generate.run import GenerateRequest, generate

RED = "a red circle on a white background"
BLUE = "a blue square on a black background"
STEPS = 40


def _request(*prompts: str, **kw) -> GenerateRequest:
    return GenerateRequest(prompts=prompts, **{"steps": STEPS, "seed": 7, "cutouts": 8, **kw})


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tiny-shapes library with some photos and two generated pictures."""
    root = tmp_path_factory.mktemp("gen")
    photos = root / "photos"
    shapes.write_collection(photos, 12, seed=3, size=64)
    lib = Library.open(root / "library", model="tiny-shapes", threads=1)
    lib.index([photos])
    red = generate(lib, _request(RED, every=STEPS))
    blue = generate(lib, _request(BLUE))
    yield SimpleNamespace(lib=lib, root=root, photos=photos, red=red, blue=blue)
    lib.close()


def _sims(lib: Library, path: str | Path, texts: list[str]) -> np.ndarray:
    pixels = np.array(Image.open(path).convert("RGB").resize((64, 64)))[None]
    return (lib.encoder.encode_images(pixels) @ lib.encoder.encode_texts(texts).T)[0]


def test_the_picture_shows_what_the_prompt_says(made):
    start = Path(made.red.frames[0])  # frame 0: the random start
    before = _sims(made.lib, start, [RED, "a blue square"])
    after = _sims(made.lib, made.red.path, [RED, "a blue square"])
    assert after[0] > before[0] + 0.25, (before, after)  # far above its start
    assert after[0] > after[1] + 0.1  # and closer to its prompt than to another
    px = np.asarray(Image.open(made.red.path).convert("RGB")).reshape(-1, 3).astype(int)
    red = (px[:, 0] > 150) & (px[:, 1] < 110) & (px[:, 2] < 110)
    white = (px > 190).all(1)
    assert red.mean() > 0.1 and white.mean() > 0.3 and (red | white).mean() > 0.6


def test_search_finds_it_among_generated_images(made):
    hits = made.lib.search("a red circle", source="generated", k=5)
    assert [h.id for h in hits][:1] == [made.red.image_id]
    assert {h.source for h in hits} == {"generated"}
    hits = made.lib.search("a blue square", source="generated", k=5)
    assert hits[0].id == made.blue.image_id
    photos = made.lib.search("a red circle", source="photos", k=50)
    assert photos and made.red.image_id not in {h.id for h in photos}


def test_it_is_saved_with_its_provenance(made):
    path = Path(made.red.path)
    assert path.parent == made.lib.path / "generated" and path.suffix == ".png"
    meta = read_provenance(path)
    assert json.loads(meta["prompts"]) == [[RED, 1.0]]
    assert (meta["seed"], meta["steps"], meta["drawer"]) == ("7", str(STEPS), "vqgan")
    assert meta["clip_model"] == "tiny-shapes" and meta["vqgan_model"] == "tiny-vqgan"
    assert meta["prompt"] == f"{RED}:1"
    row = made.lib.store.generation(made.red.image_id)
    assert row["seed"] == 7 and row["steps"] == STEPS and (row["width"], row["height"]) == (64, 64)
    assert json.loads(row["prompts"]) == [[RED, 1.0]] and row["vqgan_model"] == "tiny-vqgan"
    st = made.lib.status()
    assert (st["generated"], st["photos"]) == (2, 12)


def test_frames_and_an_animation(made):
    assert len(made.red.frames) == 2  # the start and step 40
    with Image.open(made.red.gif) as gif:
        assert gif.n_frames == 2  # the start and the final picture


def test_index_and_reindex_keep_generated_images(made):
    # A photo root that contains the library: its generated/ folder is skipped, not "deleted".
    summary = made.lib.index([made.root])
    assert summary.removed == 0 and made.lib.status()["generated"] == 2
    made.lib.index([made.photos])
    summary = made.lib.reindex("tiny-shapes")
    st = made.lib.status()
    assert st["generated"] == 2 and st["vectors"] == st["images"]
    hits = made.lib.search("a red circle", source="generated", k=5)
    assert hits[0].id == made.red.image_id


def test_same_seed_same_picture(made, tmp_path):
    a = generate(made.lib, _request("a green star", steps=6, seed=3, out=str(tmp_path / "a.png")))
    b = generate(made.lib, _request("a green star", steps=6, seed=3, out=str(tmp_path / "b.png")))
    c = generate(made.lib, _request("a green star", steps=6, seed=4, out=str(tmp_path / "c.png")))
    pa, pb, pc = (np.asarray(Image.open(r.path)) for r in (a, b, c))
    assert np.array_equal(pa, pb) and not np.array_equal(pa, pc)
    assert made.lib.store.get_rows([a.image_id])[a.image_id].source == "generated"


def test_init_image_is_the_starting_point(made, tmp_path):
    init = next(made.photos.glob("*.png"))
    out = generate(
        made.lib,
        _request("a purple heart", steps=1, lr=0.001, init_image=str(init), out=str(tmp_path)),
    )
    got = np.asarray(Image.open(out.path).convert("RGB")).astype(float)
    want = np.asarray(Image.open(init).convert("RGB").resize((64, 64))).astype(float)
    assert np.abs(got - want).mean() < 20  # the VQGAN's reconstruction of the init picture


def test_ctrl_c_keeps_the_picture_so_far_only_if_asked(made, tmp_path):
    def interrupt(report):
        if report.step == 3:
            raise KeyboardInterrupt

    before = made.lib.status()["images"]
    with pytest.raises(KeyboardInterrupt):
        generate(made.lib, _request(RED, out=str(tmp_path / "lost")), progress=interrupt)
    assert not list((tmp_path / "lost").glob("*.png"))
    assert made.lib.status()["images"] == before
    kept = generate(
        made.lib,
        _request(RED, keep_on_interrupt=True, out=str(tmp_path / "kept")),
        progress=interrupt,
    )
    assert kept.interrupted and kept.steps_done == 3 and Path(kept.path).exists()
    assert read_provenance(kept.path)["steps"] == "3"
    assert made.lib.status()["images"] == before + 1


def test_a_size_the_vqgan_cannot_make(made, tmp_path):
    with pytest.raises(GenerateError, match=r"cannot make 66x64.*multiples of 4") as err:
        generate(made.lib, _request(RED, size=(66, 64), out=str(tmp_path)))
    assert "--size 64x64" in str(err.value)
    assert not list(tmp_path.glob("*.png"))


def test_missing_vqgan_checkpoint(made, tmp_path):
    with pytest.raises(VQGANError, match="no VQGAN checkpoint"):
        generate(made.lib, _request(RED, vqgan=str(tmp_path / "nope.ckpt"), out=str(tmp_path)))


# --- the command line ----------------------------------------------------------------------


def test_cli_errors_are_one_clear_message(cli, lib_dir):
    r = cli("generate", "", expect=2)
    assert "no prompt given" in r.stderr and "Traceback" not in r.output + r.stderr
    r = cli("generate", "a cat", ":2", expect=2)
    assert "empty prompt ':2'" in r.stderr
    r = cli("generate", "sunset:1", "people:lots", expect=2)
    assert "bad weight 'lots'" in r.stderr
    # A library whose model is not tiny-shapes has no default VQGAN: say where to get one.
    r = cli("generate", "a cat", "--steps", "2", expect=1)
    assert "vqgan_imagenet_f16_16384" in r.stderr and "--drawer pixel" in r.stderr
    assert not (lib_dir / "generated").exists() or not list((lib_dir / "generated").iterdir())


def test_cli_pixel_drawer_needs_no_vqgan(cli, lib_dir):
    r = cli(
        "--threads",
        "1",
        "generate",
        "a cat:1",
        "dogs:-0.5",
        "--drawer",
        "pixel",
        "--steps",
        "3",
        "--size",
        "32x24",
        "--seed",
        "1",
        "--json",
    )
    out = json.loads(r.stdout)
    assert out["drawer"] == "pixel" and out["vqgan_model"] is None and out["steps_done"] == 3
    assert Image.open(out["path"]).size == (32, 24)
    assert out["prompts"] == [["a cat", 1.0], ["dogs", -0.5]]
    r = cli("search", "a cat", "--source", "generated", "--json")
    assert [h["id"] for h in json.loads(r.stdout)] == [out["image_id"]]
    r = cli("status", "--json")
    assert json.loads(r.stdout)["generated"] == 1


@pytest.mark.parametrize("keep", [True, False])
def test_ctrl_c_in_a_real_process(tmp_path, keep):
    """SIGINT mid-run: exit 130; the picture so far is kept only with --keep-on-interrupt."""
    import os
    import signal
    import subprocess
    import sys

    lib = tmp_path / "library"
    exe = Path(sys.executable).with_name("clipsearch")
    args = [
        str(exe),
        "-v",
        "--library",
        str(lib),
        "--model",
        "tiny-shapes",
        "--threads",
        "1",
        "generate",
        RED,
        "--steps",
        "100000",
        "--seed",
        "1",
        "--cutouts",
        "2",
    ]
    if keep:
        args.append("--keep-on-interrupt")
    # A background shell hands children SIGINT ignored (and Python then leaves it so): restore.
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in proc.stderr:  # wait until the loop runs (logged just before it starts)
            if "drawing 64x64" in line:
                break
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    pngs = list((lib / "generated").glob("*.png"))
    if keep:
        assert "Interrupted; kept the picture so far" in out and len(pngs) == 1
        steps = int(read_provenance(pngs[0])["steps"])
        assert 0 < steps < 100000
        with Library.open(lib) as opened:
            assert opened.status()["generated"] == 1
    else:
        assert "nothing saved" in err and pngs == []


def test_another_writer_is_reported_before_any_drawing(made, tmp_path):
    from clipsearch.errors import LibraryLocked

    other = Library.open(made.lib.path)
    try:
        with other.writer("clipsearch watch /photos"), pytest.raises(LibraryLocked):
            generate(made.lib, _request(RED, out=str(tmp_path)))
    finally:
        other.close()
    assert not list(tmp_path.glob("*.png"))
