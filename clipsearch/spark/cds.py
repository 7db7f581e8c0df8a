"""Spark's JVM starts faster from a class-data-sharing archive of the classes it loads.

Starting a SparkContext loads ~10,000 classes from Spark's jars: 2.7-3.2 s on this project's
2-core machine, most of a small job's fixed cost. Java 13+ can write the classes an
application loaded to an archive when it exits (``-XX:ArchiveClassesAtExit``) and map them
at the next start (``-XX:SharedArchiveFile``): the context then starts in ~1.4 s.

    options, temp = java_options(write=True)   # for spark.driver.extraJavaOptions
    ... start the SparkContext, run the job ...
    finish(sc, temp)                           # stop; if it writes the archive, wait for it

The archive lives in the model cache (``$CLIPSEARCH_CACHE/spark-cds/KEY-SIZE.jsa``, ~70 MB),
one per Java binary and PySpark version (KEY). A run that finds none (and owns its
context) asks its JVM to write one to a temporary name when it exits; :func:`finish` ends
that JVM, waits for it (a few seconds, once) and renames the file into place only if the
JVM exited cleanly. Java maps an archive without reading it, so a cut one kills the JVM
(SIGBUS): a half-written one is never put in place, and one whose size is not SIZE any more
is deleted. Java itself checks the rest (its own build, Spark's class path) and starts
without an archive that does not fit. Nothing here raises: a cache that cannot be written
means no archive. ``CLIPSEARCH_SPARK_CDS=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

_QUIET = "-Xlog:all=off:stdout -Xlog:all=warning:stderr"  # warnings to the log, not stdout
_WRITE = "-XX:ArchiveClassesAtExit="
_READ = "-XX:SharedArchiveFile="
ABANDONED_AFTER_S = 24 * 3600  # a temporary archive this old belongs to a run that died
EXIT_WAIT_S = 120.0


def archive_dir() -> Path:
    from clipsearch.model.prepare import cache_dir

    return cache_dir() / "spark-cds"


def _java() -> str | None:
    """The java that spark-submit runs: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def archive_key() -> str | None:
    """Which Java and PySpark an archive is for (None: no java, or no PySpark)."""
    java = _java()
    if java is None:
        return None
    try:
        import pyspark

        real = os.path.realpath(java)
        facts = f"{real}|{os.stat(real).st_mtime_ns}|{pyspark.__version__}"
    except (ImportError, OSError):
        return None
    return hashlib.sha256(facts.encode()).hexdigest()[:16]


def find_archive(folder: Path, key: str) -> Path | None:
    """The archive `KEY-SIZE.jsa` whose size is still the one it was written with. Java maps
    an archive without reading it, and a cut one kills it (SIGBUS): one that changed is
    deleted (the next owning run writes a new one)."""
    for path in folder.glob(f"{key}-*.jsa"):
        size = path.stem.rpartition("-")[2]
        try:
            if size.isdigit() and path.stat().st_size == int(size):
                return path
            path.unlink()
        except OSError:
            continue
    return None


def java_options(*, write: bool) -> tuple[str, Path | None]:
    """The driver JVM's options, to map the archive or else (with `write`) to write one at
    exit; and the temporary file it is written to (for :func:`finish`), if so."""
    key = archive_key()
    if key is None or os.environ.get("CLIPSEARCH_SPARK_CDS", "1") == "0":
        return "", None
    folder = archive_dir()
    try:
        found = find_archive(folder, key) if folder.is_dir() else None
        if found is not None:
            return f"{_QUIET} {_quoted(_READ + str(found))}", None
        if not write or os.name != "posix":  # the JVM must end when its stdin closes
            return "", None
        folder.mkdir(parents=True, exist_ok=True)
        _clear_abandoned(folder, key)
    except OSError:
        return "", None
    temp = folder / f"{key}.{uuid.uuid4().hex[:12]}.tmp.jsa"
    return f"{_QUIET} {_quoted(_WRITE + str(temp))}", temp


def _quoted(arg: str) -> str:
    """One argument as Spark splits extraJavaOptions (double quotes keep spaces together)."""
    if not any(c.isspace() or c in "\"'\\" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def finish(sc: Any, temp: Path | None) -> bool:
    """Stop the context; when its JVM writes the archive to `temp`, end the JVM, wait for it
    and put the archive in place if it exited cleanly. True when an archive was put in place."""
    sc.stop()
    if temp is None:
        return False
    try:
        from pyspark import SparkContext

        gateway = SparkContext._gateway
        proc = getattr(gateway, "proc", None)
        if proc is None or proc.stdin is None:
            return False
        gateway.shutdown()
        proc.stdin.close()  # PySpark's JVM exits when its stdin closes; it writes then
        code = proc.wait(timeout=EXIT_WAIT_S)
        SparkContext._gateway = None  # a later context in this process starts a new JVM
        SparkContext._jvm = None
        size = temp.stat().st_size if temp.exists() else 0
        if code == 0 and size > 0:
            os.replace(temp, temp.with_name(f"{temp.name.split('.')[0]}-{size}.jsa"))
            return True
    except Exception:  # py4j, a JVM that does not exit, the file system: only a speed-up
        return False
    finally:
        if temp.exists():
            temp.unlink(missing_ok=True)
    return False


def _clear_abandoned(folder: Path, key: str) -> None:
    now = time.time()
    for temp in folder.glob(f"{key}.*.tmp.jsa"):
        try:
            if now - temp.stat().st_mtime > ABANDONED_AFTER_S:
                temp.unlink()
        except OSError:
            continue
