from pathlib import Path

import pytest

from clipsearch.config import DEFAULT_MODEL, Settings, default_library_dir
from clipsearch.errors import ConfigError


def test_defaults_without_env():
    s = Settings.resolve(env={})
    assert s.library == default_library_dir()
    assert s.model is None and s.batch_size == 32 and s.device == "auto"
    assert DEFAULT_MODEL == "ViT-B-32:laion2b_s34b_b79k"


def test_env_overrides_defaults_and_flags_override_env(tmp_path):
    env = {
        "CLIPSEARCH_LIBRARY": str(tmp_path / "env-lib"),
        "CLIPSEARCH_BATCH_SIZE": "8",
        "CLIPSEARCH_MODEL": "tiny-shapes",
    }
    s = Settings.resolve(env=env)
    assert s.library == tmp_path / "env-lib" and s.batch_size == 8 and s.model == "tiny-shapes"
    s = Settings.resolve(env=env, library=tmp_path / "flag-lib", batch_size=4, model=None)
    assert s.library == tmp_path / "flag-lib" and s.batch_size == 4 and s.model == "tiny-shapes"


def test_library_path_expands_user(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Settings.resolve(env={}, library="~/lib").library == Path(tmp_path) / "lib"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLIPSEARCH_BATCH_SIZE": "lots"}, "CLIPSEARCH_BATCH_SIZE must be a whole number"),
        ({"CLIPSEARCH_BATCH_SIZE": "0"}, "batch size must be at least 1"),
        ({"CLIPSEARCH_THREADS": "-2"}, "threads must be at least 1"),
    ],
)
def test_bad_values_are_named(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.resolve(env=env)
