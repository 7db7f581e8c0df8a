#!/usr/bin/env python
"""What `pip install clipsearch` puts on disk, against the install that needed torch.

    python scripts/bench_install.py [--keep]

Builds clipsearch from this checkout and installs it into two fresh virtual environments
under `.bench/`, one after the other:

- `core`: `pip install clipsearch` (ONNX Runtime; everything but generation);
- `torch`: `pip install 'clipsearch[torch]'`, which is what every install needed before
  (torch, torchvision, open_clip for indexing and search).

Prints JSON: each venv's size on disk, the ratio, the biggest packages of each, and whether
`clipsearch --help` and `import clipsearch.library` work in the core venv without torch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"


def size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def biggest(venv: Path, n: int = 8) -> list[tuple[str, int]]:
    site = next(venv.glob("lib/python*/site-packages"))
    sizes = [(p.name, size(p)) for p in site.iterdir() if p.is_dir()]
    return [(name, round(b / 1e6, 1)) for name, b in sorted(sizes, key=lambda x: -x[1])[:n]]


def install(name: str, spec: str) -> dict:
    venv = BENCH / f"install-{name}"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    t0 = time.perf_counter()
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", spec], check=True)
    seconds = time.perf_counter() - t0
    py = str(venv / "bin" / "python")
    probe = subprocess.run(
        [
            py,
            "-c",
            "import sys, clipsearch.library, clipsearch.model.encoder; "
            "print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "spec": spec,
        "install_seconds": round(seconds, 1),
        "bytes": size(venv),
        "mb": round(size(venv) / 1e6, 1),
        "biggest_packages_mb": biggest(venv),
        "library_imports": probe.returncode == 0,
        "torch_imported": probe.stdout.strip() == "True",
        "cli_help_works": subprocess.run(
            [str(venv / "bin" / "clipsearch"), "--help"], capture_output=True, check=False
        ).returncode
        == 0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--keep", action="store_true", help="keep the two venvs")
    args = p.parse_args()
    BENCH.mkdir(exist_ok=True)
    core = install("core", str(ROOT))
    torch = install("torch", f"{ROOT}[torch]")
    report = {
        "benchmark": "install",
        "core": core,
        "with_torch": torch,
        "core_vs_with_torch": round(core["bytes"] / torch["bytes"], 3),
    }
    if not args.keep:
        for name in ("core", "torch"):
            shutil.rmtree(BENCH / f"install-{name}", ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
