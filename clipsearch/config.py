"""Settings: built-in defaults < CLIPSEARCH_* environment variables < explicit arguments.

`Settings` is frozen; build one with :meth:`Settings.resolve`, which the CLI calls with its
flags and the Python API with its keyword arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from clipsearch.errors import ConfigError

DEFAULT_MODEL = "ViT-B-32:laion2b_s34b_b79k"
PRECISIONS = ("auto", "fp32", "int8", "bf16")
ENV_PREFIX = "CLIPSEARCH_"


def default_library_dir() -> Path:
    """The per-user library used when neither --library nor CLIPSEARCH_LIBRARY is set."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("clipsearch", appauthor=False)) / "library"


@dataclass(frozen=True)
class Settings:
    """Everything that tunes a run. `None` means "decide at run time"."""

    library: Path
    # Model spec for a *new* library; an existing library uses the model it was made with.
    model: str | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    batch_size: int = 32
    threads: int | None = None  # model threads for batches; None = every core
    workers: int | None = None  # image decode threads; None = min(4, cpus)
    # Precision for a library's first index (or reindex): auto | fp32 | int8 | bf16.
    precision: str | None = None

    @classmethod
    def resolve(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Merge defaults, `CLIPSEARCH_*` variables from `env` and non-None `overrides`."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw not in (None, ""):
                values[f.name] = _coerce(f.name, raw, source=ENV_PREFIX + f.name.upper())
        for name, value in overrides.items():
            if value is not None:
                values[name] = _coerce(name, value, source=f"--{name.replace('_', '-')}")
        library = values.pop("library", None) or default_library_dir()
        settings = cls(library=Path(library).expanduser(), **values)
        return settings.validated()

    def validated(self) -> Settings:
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be at least 1, got {self.threads}")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"workers must be 0 or more, got {self.workers}")
        if self.precision is not None and self.precision.lower() not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        return self

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes).validated()


_INT_FIELDS = {"batch_size", "threads", "workers"}


def _coerce(name: str, value: Any, *, source: str) -> Any:
    if name not in {f.name for f in fields(Settings)}:
        raise ConfigError(f"unknown setting {name!r}")
    if name in _INT_FIELDS:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source} must be a whole number, got {value!r}") from None
    if name == "library":
        return Path(str(value)).expanduser()
    return str(value)
