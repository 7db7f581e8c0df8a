"""`status`, the library's model record, model mismatch, reindex, offline model message."""

import json

from tests.helpers import run_process


def test_status_json(cli, photos, lib_dir, tiny_model):
    cli("index", str(photos))
    st = json.loads(cli("status", "--json").stdout)
    assert st["images"] == st["photos"] == st["vectors"] == 8
    assert st["failures"] == 0 and st["generated"] == 0
    assert st["model"] == tiny_model and st["dim"] == 32
    assert st["index"] == {
        "kind": "flat",
        "vectors": 8,
        "nprobe": None,
        "file": st["index"]["file"],
        "compressed": False,
        "codes": "float32",
        "unsaved_changes": 0,
    }
    assert st["index"]["file"].startswith("vectors-")
    assert st["roots"][0]["path"] == str(photos) and st["roots"][0]["last_indexed_at"]
    assert st["size_bytes"] > 0 and st["library"] == str(lib_dir)
    human = cli("status").stdout
    assert "8 (8 photos, 0 generated)" in human and tiny_model in human


def test_library_remembers_its_model(cli, photos):
    cli("index", str(photos))
    hits = json.loads(cli("search", "dog", "--json", model=None).stdout)
    assert len(hits) == 8


def test_other_model_on_existing_library_is_refused(cli, photos, other_tiny_model, lib_dir):
    cli("index", str(photos))
    r = cli("search", "dog", model=other_tiny_model, expect=1)
    assert "vectors from two models cannot be mixed" in r.stderr
    assert f"clipsearch --library {lib_dir} reindex --model {other_tiny_model}" in r.stderr
    r = cli("index", str(photos), model=other_tiny_model, expect=1)
    assert "cannot be mixed" in r.stderr
    assert json.loads(cli("status", "--json").stdout)["vectors"] == 8


def test_reindex_switches_model(cli, photos, other_tiny_model):
    cli("index", str(photos))
    out = json.loads(cli("reindex", "--json", model=other_tiny_model).stdout)
    assert out["updated"] == 8 and out["embedded"] == 8
    st = json.loads(cli("status", "--json", model=None).stdout)
    assert st["model"] == other_tiny_model and st["dim"] == 24 and st["index"]["vectors"] == 8
    hits = json.loads(
        cli("search", "--image", str(photos / "img0.jpg"), "--json", model=None).stdout
    )
    assert hits[0]["path"] == str(photos / "img0.jpg")


def test_reindex_with_unloadable_model_changes_nothing(cli, photos, tmp_path):
    cli("index", str(photos))
    r = cli("reindex", model=f"local-dir:{tmp_path}", expect=1)
    assert "has no open_clip_config.json" in r.stderr
    assert json.loads(cli("status", "--json", model=None).stdout)["vectors"] == 8


def test_weights_changed_under_the_library_are_detected(tmp_path, photos):
    from tests.helpers import write_tiny_model

    model_dir = write_tiny_model(tmp_path / "m", seed=3)
    lib = tmp_path / "lib"
    base = ["--library", str(lib), "--model", f"local-dir:{model_dir}"]
    assert run_process(*base, "index", str(photos)).returncode == 0
    write_tiny_model(model_dir, seed=4)  # retrained in place
    proc = run_process(*base, "search", "dog")
    assert proc.returncode == 1 and "weights of model" in proc.stderr
    assert "reindex" in proc.stderr


def test_default_model_offline_gives_one_clear_message(tmp_path, photos):
    env = {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "CLIPSEARCH_LIBRARY": str(tmp_path / "lib"),
    }
    proc = run_process("index", str(photos), env=env)
    assert proc.returncode == 1
    err = proc.stderr
    assert "cannot load model ViT-B-32:laion2b_s34b_b79k" in err
    assert "local-dir:" in err and "--model tiny-shapes" in err
    assert "Traceback" not in err and err.count("error:") == 1
