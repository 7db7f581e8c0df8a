"""`clipsearch spark embed`: the driver. Spark schedules, retries and scales; each task
embeds one shard (`clipsearch.spark.shards.embed_shard`).

The driver lists the sources once and plans the shards (tasks never list anything), finds
the model's ONNX files once (exporting them if needed) and ships them to the executors of a
cluster, then runs one task per unfinished shard. Spark's own logging is turned down to
errors unless the user has a Spark configuration folder of their own; the one line kept
names the Spark UI.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from clipsearch import __version__
from clipsearch.errors import ClipsearchError, ConfigError, ModelMismatch
from clipsearch.media import fs
from clipsearch.spark import cds
from clipsearch.spark import shards as sh

notice = logging.getLogger("clipsearch.notice")

TASK_RETRIES = 4  # attempts per task (Spark's spark.task.maxFailures)
DTYPES = ("float16", "float32")

_LOG4J = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = spark: %p %c{1}: %m%n
"""


@dataclass
class EmbedSummary:
    output: str
    images: int = 0  # listed
    shards: int = 0
    shards_run: int = 0
    shards_skipped: int = 0
    embedded: int = 0
    errors: int = 0
    seconds: float = 0.0
    model_loads: int = 0
    executor_processes: int = 0
    spark_ui: str | None = None
    tasks: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def with_retries(master: str, attempts: int = TASK_RETRIES) -> str:
    """Local masters take their retry count in the URL (`local[N,F]`); others use
    spark.task.maxFailures."""
    if master == "local":
        return f"local[1,{attempts}]"
    m = re.fullmatch(r"local\[([^,\]]+)\]", master)
    return f"local[{m.group(1)},{attempts}]" if m else master


def is_local(master: str) -> bool:
    return master.startswith("local")


_stopping: threading.Thread | None = None  # a context being stopped in the background
_archive_writers: dict[int, Path | None] = {}  # id(context) -> its JVM's class archive


def spark_session(
    master: str, log_file: Path, app_name: str = "clipsearch", *, own: bool = False
) -> Any:
    """A SparkContext (no SQL session: clipsearch needs none, and it saves ~2 s of start-up)
    whose JVM and Python workers write their logs to `log_file`, not to the user's
    terminal; ConfigError when PySpark or Java is missing. Its JVM maps Spark's classes from
    an archive (cds.py); `own`: the caller ends it with :func:`stop_soon`, so this JVM may
    write that archive when there is none yet."""
    try:
        from pyspark import SparkConf, SparkContext
    except ImportError:
        raise ConfigError(
            "Spark support needs PySpark",
            hint="pip install 'clipsearch[spark]'  (PySpark 4, with Java 17 or newer)",
        ) from None
    if _stopping is not None:
        _stopping.join()  # one SparkContext per process
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    conf = (
        SparkConf()
        .setMaster(with_retries(master))
        .setAppName(app_name)
        .set("spark.ui.showConsoleProgress", "false")
        .set("spark.task.maxFailures", str(TASK_RETRIES))
        .set("spark.python.worker.reuse", "true")  # the model stays loaded between tasks
    )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    archive = None  # where this JVM writes the class archive at exit, if it does
    plain = ""  # the options for a JVM that refuses HotSpot's (OpenJ9, say)
    if "SPARK_CONF_DIR" not in os.environ:  # else the user's configuration owns the JVM
        # Spark's log settings as a system property, not a configuration folder: a folder
        # on the class path stops Java from writing the class archive.
        log_conf = log_file.parent / "log4j2.properties"
        log_conf.write_text(_LOG4J)
        # Spark's classes mapped from an archive (cds.py): the context starts ~1.5 s sooner.
        java_options, archive = cds.java_options(write=own)
        # On one machine the JVM only schedules: its quick first-tier compiler starts it
        # ~0.5 s sooner.
        quick = "-XX:TieredStopAtLevel=1" if is_local(master) else ""
        log_option = f"-Dlog4j2.configurationFile={log_conf.as_uri()}"
        options = " ".join(x for x in (log_option, quick, java_options) if x)
        conf.set("spark.driver.extraJavaOptions", options)
        plain = log_option if options != log_option else ""
    saved = os.dup(2)
    try:
        with open(log_file, "ab") as log:
            os.dup2(log.fileno(), 2)  # the JVM started now keeps this as its stderr
            try:
                try:
                    sc = SparkContext.getOrCreate(conf)
                except Exception:
                    if not plain:
                        raise
                    archive = None  # once more without the start-up options
                    sc = SparkContext.getOrCreate(conf.set("spark.driver.extraJavaOptions", plain))
            finally:
                os.dup2(saved, 2)
        _archive_writers[id(sc)] = archive
    except Exception as exc:  # Java missing or too old, a master that cannot be reached
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot start Spark with master {master}: {first}",
            hint=f"Spark needs Java 17 or newer (java -version) and a reachable master; "
            f"Spark's log: {log_file}",
        ) from None
    finally:
        os.close(saved)
    return sc


def stop_soon(sc: Any) -> None:
    """Stop a context without waiting for it (~1 s): the work is done and written. A later
    context in this process waits for it; at exit the JVM ends with its Python parent.
    A JVM writing the class archive is waited for at exit instead (once per machine)."""
    global _stopping
    archive = _archive_writers.pop(id(sc), None)
    writing = archive is not None
    _stopping = threading.Thread(
        target=(lambda: cds.finish(sc, archive)) if writing else sc.stop,
        name="clipsearch-spark-stop",
        daemon=True,
    )
    _stopping.start()
    if writing:
        notice.info("keeping Spark's classes for a faster start next time (once, a few s) ...")
        atexit.register(_stopping.join)


def _context(spark: Any) -> Any:
    """A SparkContext from a SparkContext or a SparkSession."""
    return getattr(spark, "sparkContext", spark)


def embed(
    sources: Sequence[str],
    output: str | Path,
    *,
    model: str,
    master: str = "local[*]",
    precision: str = "fp32",
    shard_size: int = sh.SHARD_SIZE,
    dtype: str = "float16",
    threads_per_task: int = 1,
    progress: Callable[[Any], None] | None = None,
    spark: Any = None,
    fail_after: int | None = None,
) -> EmbedSummary:
    """Embed every image the sources name into shards under `output` (see shards.py).

    A re-run keeps finished shards and redoes the others (and plans new files into new
    shards). `spark`: an existing SparkContext or SparkSession to use (else one is
    started, and stopped at the end).
    `fail_after` is for tests: each task's process dies once after that many images.
    """
    from clipsearch.model.encoder import Encoder
    from clipsearch.model.specs import ModelSpec

    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be float16 or float32, not {dtype!r}")
    if precision not in ("fp32", "int8", "bf16"):
        raise ConfigError(f"spark embed runs at fp32, int8 or bf16, not {precision!r}")
    if precision == "bf16":
        from clipsearch.model import openvino_runtime

        if not openvino_runtime.available():  # the executors need it too (said in the docs)
            raise ConfigError(
                "bf16 embedding runs on OpenVINO, which is not installed",
                hint="pip install 'clipsearch[openvino]' (on the executors too), or use "
                "--precision fp32 or int8.",
            )
    if shard_size < 1:
        raise ConfigError("--shard-size must be at least 1")
    t0 = time.perf_counter()
    own = spark is None
    log_file = Path(output).expanduser().resolve() / "logs" / "spark.log"
    if spark is None and any(sh.is_uri(x) for x in sources):  # listing needs Spark's Hadoop
        spark = spark_session(master, log_file, own=True)
    notice.info("listing the sources ...")
    hadoop = (lambda uri: hadoop_list(_context(spark), uri)) if spark is not None else None
    try:
        paths, remote = sh.list_sources(sources, hadoop)  # once, here: tasks never list
    except Exception:
        if own and spark is not None:
            stop_soon(_context(spark))
        raise
    out = Path(output).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    spec = ModelSpec.parse(model).canonical
    enc = Encoder(spec, precision=precision).load()  # exports once, here, if it must
    onnx = enc.model
    earlier = sh.Manifest.read(out) if (out / sh.MANIFEST).exists() else None
    if earlier and (
        earlier.model_fingerprint != onnx.fingerprint
        or earlier.precision != precision
        or earlier.dtype != dtype
    ):
        raise ModelMismatch(
            f"{out} holds embeddings of {earlier.model} ({earlier.precision}, {earlier.dtype}), "
            f"not {spec} ({precision}, {dtype}); shards of two kinds are not mixed",
            hint="Use another --output folder, or the same model, precision and dtype.",
        )
    plan = sh.plan_shards(out, paths, earlier.shard_size if earlier else shard_size)
    sh.discard_temp_files(out)
    manifest = sh.Manifest(
        model=spec,
        model_fingerprint=onnx.fingerprint,
        dim=onnx.dim,
        precision=precision,
        dtype=dtype,
        shards=len(plan),
        shard_size=earlier.shard_size if earlier else shard_size,
        created_at=earlier.created_at if earlier else time.time(),
        clipsearch_version=__version__,
    )
    manifest.write(out)
    summary = EmbedSummary(str(out), images=sum(len(s) for s in plan), shards=len(plan))
    todo = [i for i in range(len(plan)) if not sh.shard_done(out, i)]
    summary.shards_skipped = len(plan) - len(todo)
    if not todo and own and spark is not None:
        stop_soon(_context(spark))
    if todo:
        spark = spark or spark_session(master, log_file, own=True)
        try:
            sc = _context(spark)
            summary.spark_ui = sc.uiWebUrl
            if summary.spark_ui:
                notice.info("Spark UI: %s", summary.spark_ui)
            shipped = onnx if is_local(sc.master) else _ship(sc, onnx)
            tasks = [
                sh.ShardTask(
                    number=i,
                    paths=tuple(plan[i]),
                    out=str(out),
                    model=shipped,
                    spec=spec,
                    threads=threads_per_task,
                    dtype=dtype,
                    precision=precision,
                    fail_after=fail_after,
                    remote=tuple((p, *remote[p]) for p in plan[i] if p in remote),
                )
                for i in todo
            ]
            rdd = _tasks_rdd(sc, tasks)
            with _progress(sc, len(tasks), progress):
                try:
                    results = rdd.collect()
                except Exception as exc:  # a task failed every attempt
                    raise EmbedFailed(
                        f"Spark gave up on a shard: {_python_error(exc)}",
                        hint=f"Finished shards are kept; run again to redo the rest. "
                        f"Spark's log: {log_file}",
                    ) from None
        finally:
            if own:
                stop_soon(_context(spark))
        summary.tasks = sorted(results, key=lambda r: r["shard"])
        for r in results:
            summary.shards_run += not r["skipped"]
            summary.shards_skipped += r["skipped"]
            summary.embedded += r["embedded"]
            summary.errors += r["errors"]
            summary.model_loads += r["model_loads"]
        summary.executor_processes = len({r["pid"] for r in results})
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


class EmbedFailed(ClipsearchError):
    """A Spark task failed on every attempt (not a bad picture: those are error rows)."""


def _python_error(exc: BaseException) -> str:
    """The last line of the Python traceback inside a Spark error, else its first line."""
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b", line):
            return line[:300]
    return lines[0][:300] if lines else type(exc).__name__


def hadoop_list(sc: Any, uri: str) -> list[tuple[str, int, int]]:
    """(uri, size, mtime_ns) of every image file under `uri` (a file or a folder, walked
    recursively; hidden files and folders skipped), through the Hadoop file system Spark has
    for its scheme, on the driver: hdfs://, s3a:// (with the connector), file://, ..."""
    jvm = sc._jvm
    root = jvm.org.apache.hadoop.fs.Path(uri)
    try:
        fsys = root.getFileSystem(sc._jsc.hadoopConfiguration())
        if not fsys.exists(root):
            raise sh.RemoteSource(f"{uri}: no such file or folder")
        top = fsys.getFileStatus(root)
        base = top.getPath().toString().rstrip("/")
        statuses = [top] if top.isFile() else _walk(fsys.listFiles(root, True))
    except sh.RemoteSource:
        raise
    except Exception as exc:  # py4j: no file system for the scheme, no connector, no access
        raise sh.RemoteSource(
            f"{uri}: Spark cannot list it ({_python_error(exc)})",
            hint="For s3a:// the cluster's Spark needs the hadoop-aws connector and "
            "credentials; for hdfs:// its Hadoop configuration.",
        ) from None
    out = []
    for st in statuses:
        name = st.getPath().toString()
        below = name[len(base) :].lstrip("/")
        if any(part.startswith(".") for part in below.split("/") if part):
            continue
        if fs.is_image_name(name):
            out.append((name, int(st.getLen()), int(st.getModificationTime()) * 1_000_000))
    return out


def _walk(iterator: Any) -> Iterator[Any]:
    while iterator.hasNext():
        yield iterator.next()


def _escaped(uri: str) -> str:
    """A URI as Hadoop's input paths take it: glob characters escaped, and a comma (which
    separates paths there, unescapably) read as `?`; what else that matches is dropped by
    the task, which keeps only the URIs it was given."""
    return re.sub(r"([\\{}\[\]*?])", r"\\\1", uri).replace(",", "?")


def _tasks_rdd(sc: Any, tasks: list[sh.ShardTask]) -> Any:
    """One partition per task: local shards as a parallelized list; a shard of URIs as
    Spark's binaryFiles of exactly those URIs (read by the executor that embeds them)."""
    rdds = []
    local = [t for t in tasks if not t.remote]
    if local:
        rdds.append(sc.parallelize(local, numSlices=len(local)).map(_run_task))
    for task in (t for t in tasks if t.remote):
        files = sc.binaryFiles(",".join(_escaped(u) for u, _, _ in task.remote), minPartitions=1)
        rdds.append(files.coalesce(1).mapPartitions(lambda it, t=task: [_run_task(t, it)]))
    return rdds[0] if len(rdds) == 1 else sc.union(rdds)


def _run_task(task: sh.ShardTask, contents: Any = None) -> dict:
    if not task.model.visual.exists():  # shipped to this executor: where it is here
        from pyspark import SparkFiles

        root = Path(SparkFiles.get(task.model.folder.name))
        model = replace(
            task.model,
            folder=root,
            visual=root / task.model.visual.relative_to(task.model.folder),
            textual=root / task.model.textual.relative_to(task.model.folder),
        )
        task = replace(task, model=model)
    return sh.embed_shard(task, contents)


def _ship(sc: Any, onnx: Any) -> Any:
    """Send the model's folder to every executor (a cluster's machines do not share ours).
    The towers must be inside it; a quantized tower cached elsewhere goes along."""
    for tower in (onnx.visual, onnx.textual):
        if onnx.folder not in tower.parents:
            raise ConfigError(
                f"the model's tower {tower} is outside its folder {onnx.folder}",
                hint="Use --precision fp32 on a cluster, or an onnx-dir: model folder.",
            )
    sc.addFile(str(onnx.folder), recursive=True)
    return onnx


class _progress:
    """Reports finished tasks from Spark's status tracker while the job runs."""

    def __init__(self, sc: Any, total: int, report: Callable[[Any], None] | None) -> None:
        self.sc, self.total, self.report = sc, total, report
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _progress:
        if self.report is not None:
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
            if exc[0] is None:
                self._tell(self.total)

    def _poll(self) -> None:
        tracker = self.sc.statusTracker()
        while not self.stop.wait(1.0):
            done = 0
            for stage_id in tracker.getActiveStageIds():
                info = tracker.getStageInfo(stage_id)
                if info is not None:
                    done += info.numCompletedTasks
            self._tell(done)

    def _tell(self, done: int) -> None:
        from clipsearch.ingest.run import Progress

        assert self.report is not None
        self.report(Progress("embed", done, self.total))
