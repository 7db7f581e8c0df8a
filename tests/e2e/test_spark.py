"""Embedding on real Spark (local[2]) over real photos, and importing the shards.

The shards must be readable by plain numpy/pyarrow, equal to what `clipsearch index` makes,
redone shard by shard, and survive a worker dying mid-partition; importing them must give a
library that searches as one indexed locally.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from clipsearch.errors import ConfigError
from clipsearch.library import Library
from clipsearch.spark import shards as sh
from tests.helpers import cs, run_process

REPO = Path(__file__).resolve().parents[2]
PHOTOS = sorted((REPO.parent / "shared" / "datasets" / "imagenet-sample").glob("*.JPEG"))[:36]

pytestmark = [pytest.mark.timeout(600)]


def _java_ok() -> bool:
    try:
        return subprocess.run(["java", "-version"], capture_output=True).returncode == 0
    except OSError:
        return False


if not _java_ok():
    pytest.skip("Spark needs Java 17+ (java is not installed here)", allow_module_level=True)
pyspark = pytest.importorskip("pyspark", reason="pip install 'clipsearch[spark]'")


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from clipsearch.spark.job import spark_session

    log = tmp_path_factory.mktemp("spark-log") / "spark.log"
    session = spark_session("local[2]", log)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """36 real photos (copied: the odd ones join them), one corrupt JPEG and one file whose
    name is not UTF-8."""
    if not PHOTOS:
        pytest.skip("the real photos of ../shared/datasets/imagenet-sample are not here")
    root = tmp_path_factory.mktemp("photos")
    for i, src in enumerate(PHOTOS):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        shutil.copy(src, sub / src.name)
    (root / "a" / "broken.jpg").write_bytes(PHOTOS[0].read_bytes()[:300])
    odd = os.fsencode(str(root / "b")) + b"/caf\xe9.jpg"
    shutil.copy(PHOTOS[1], os.fsdecode(odd))
    return root


def _embed(spark, photos: Path, out: Path, **kw):
    from clipsearch.spark.job import embed

    kw.setdefault("shard_size", 10)
    return embed([str(photos)], out, model="tiny-shapes", spark=spark, **kw)


def test_shards_are_clip_retrieval_files_equal_to_local_indexing(spark, photos, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "emb"
    summary = _embed(spark, photos, out)
    assert summary.images == 38 and summary.shards == 4 and summary.shards_run == 4
    assert summary.embedded == 37 and summary.errors == 1
    # the model is loaded once per executor process, not per shard
    assert 1 <= summary.model_loads <= summary.executor_processes <= 2

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == "tiny-shapes" and manifest["dim"] == 128
    assert manifest["layout"] == sh.LAYOUT and manifest["dtype"] == "float16"
    vectors, names = [], []
    for i in range(4):  # plain numpy and pyarrow, the documented names and columns
        emb = np.load(out / "img_emb" / f"img_emb_{i}.npy")
        meta = pq.read_table(out / "metadata" / f"metadata_{i}.parquet")
        assert emb.dtype == np.float16 and emb.shape == (meta.num_rows, 128)
        assert meta.column_names == list(sh.METADATA_COLUMNS)
        assert np.allclose(np.linalg.norm(emb.astype(np.float32), axis=1), 1, atol=2e-3)
        vectors.append(emb.astype(np.float32))
        names += [os.fsdecode(b) for b in meta.column("path_bytes").to_pylist()]
    errors = [
        row
        for i in range(4)
        for row in pq.read_table(out / "errors" / f"errors_{i}.parquet").to_pylist()
    ]
    assert [e["image_path"].rsplit("/", 1)[1] for e in errors] == ["broken.jpg"]
    assert "truncated" in errors[0]["error"] or "corrupt" in errors[0]["error"]
    assert len(names) == len(set(names)) == 37
    odd = [n for n in names if n.endswith("caf\udce9.jpg")]
    assert odd and os.path.exists(odd[0])  # the exact bytes of a non-UTF-8 name

    lib_dir = tmp_path / "local"
    cs(lib_dir, "--model", "tiny-shapes", "--precision", "fp32", "index", str(photos))
    with Library.open(lib_dir) as lib:
        rows = lib.store.rows_at(names)
        ids, local = lib.store.get_vectors([rows[n].id for n in names], 128)
    by_id = dict(zip(ids.tolist(), local, strict=True))
    spark_vecs = np.concatenate(vectors)
    local_vecs = np.stack([by_id[rows[n].id] for n in names])
    assert float((spark_vecs * local_vecs).sum(axis=1).min()) >= 0.9999


def test_a_rerun_redoes_only_the_missing_shard_and_plans_new_files(spark, photos, tmp_path):
    out = tmp_path / "emb"
    _embed(spark, photos, out)
    kept = {p: p.stat().st_mtime_ns for p in out.glob("*/*_[023].*")}
    for name in ("img_emb/img_emb_1.npy", "metadata/metadata_1.parquet", "errors/errors_1.parquet"):
        (out / name).unlink()
    again = _embed(spark, photos, out)
    assert (again.shards_run, again.shards_skipped, again.embedded) == (1, 3, 10)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished shards untouched
    assert sh.shard_done(out, 1)
    more = photos / "c"  # new files go into a new shard; the old plan stands
    more.mkdir()
    shutil.copy(PHOTOS[-1], more / "new.jpg")
    try:
        third = _embed(spark, photos, out)
    finally:
        shutil.rmtree(more)
    assert (third.shards, third.shards_run, third.embedded) == (5, 1, 1)


def test_a_worker_dying_mid_partition_still_gives_every_image_once(spark, photos, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "emb"
    summary = _embed(spark, photos, out, fail_after=4)  # each task's process dies once
    assert sorted(out.glob(".fail-once-*")) and summary.shards_run == 4
    names = [
        b
        for i in range(4)
        for b in pq.read_table(out / "metadata" / f"metadata_{i}.parquet")
        .column("path_bytes")
        .to_pylist()
    ]
    assert len(names) == len(set(names)) == 37
    assert not list(out.glob("*/.*.tmp-*"))  # no half-written files left behind


def test_import_then_search_gives_the_local_top_10(spark, photos, tmp_path):
    out = tmp_path / "emb"
    _embed(spark, photos, out)
    local, imported = tmp_path / "local", tmp_path / "imported"
    cs(local, "--model", "tiny-shapes", "--precision", "fp32", "index", str(photos))
    got = json.loads(cs(imported, "import", str(out), "--json").stdout)
    assert (got["added"], got["failures"], got["shards"]) == (37, 1, 4)
    again = json.loads(cs(imported, "import", str(out), "--json").stdout)
    assert (again["added"], again["replaced"], again["unchanged"]) == (0, 0, 37)
    for query in ("a red circle", "a dog"):
        a = json.loads(cs(local, "search", query, "--json", "--no-server").stdout)
        b = json.loads(cs(imported, "search", query, "--json", "--no-server").stdout)
        assert [r["path"] for r in a] == [r["path"] for r in b]
    status = json.loads(cs(imported, "status", "--json").stdout)
    assert status["images"] == 37 and status["failures"] == 1
    # the imported files are what `index` would have recorded: nothing to embed again
    summary = json.loads(cs(imported, "index", str(photos), "--json").stdout)
    assert summary["unchanged"] == 37 and summary["added"] == 0


def test_bf16_shards_run_on_openvino_and_import_into_a_bf16_library(
    spark, photos, tmp_path, monkeypatch
):
    pytest.importorskip("openvino", reason="bf16 runs on the [openvino] extra")
    from clipsearch.model import precision

    # The local library's gate keeps its fidelity checks; its speed check (the tiny model is
    # too small for bf16 to win here) is set aside, as in test_openvino_runtime.
    monkeypatch.setattr(precision, "MIN_SPEEDUP", 0.0)
    out = tmp_path / "emb"
    summary = _embed(spark, photos, out, precision="bf16", dtype="float32")
    assert summary.images == 38 and sh.Manifest.read(out).precision == "bf16"
    # The tasks encoded in bf16 (not the fp32 the files hold): nearer bf16's vectors than fp32's.
    from clipsearch.media.images import load_for_model
    from clipsearch.model.encoder import Encoder

    rows = list(_vectors(out))
    bf16, fp32 = Encoder("tiny-shapes", precision="bf16"), Encoder("tiny-shapes", device="cpu")
    pixels = np.stack(
        [load_for_model(os.fsdecode(r["path_bytes"]), bf16.params)[0] for r, _ in rows]
    )
    got = np.stack([v for _, v in rows])
    off_bf16 = np.abs(got - bf16.encode_images(pixels)).max()
    off_fp32 = np.abs(got - fp32.encode_images(pixels)).max()
    assert off_bf16 < 1e-4 < off_fp32, (off_bf16, off_fp32)
    local, imported = tmp_path / "local", tmp_path / "imported"
    cs(local, "--model", "tiny-shapes", "--precision", "bf16", "index", str(photos))
    got = json.loads(cs(imported, "import", str(out), "--json").stdout)
    assert got["added"] == 37
    for lib in (local, imported):
        with Library.open(lib) as opened:
            assert opened.store.get_meta("precision") == "bf16"
    with Library.open(local) as a, Library.open(imported) as b:
        ids_a, vec_a = a.store.get_vectors(a.store.vector_ids(), a.dim)
        ids_b, vec_b = b.store.get_vectors(b.store.vector_ids(), b.dim)
        rows_a, rows_b = a.store.get_rows(ids_a), b.store.get_rows(ids_b)
        by_path_a = {rows_a[int(i)].path: v for i, v in zip(ids_a, vec_a, strict=True)}
        by_path_b = {rows_b[int(i)].path: v for i, v in zip(ids_b, vec_b, strict=True)}
    assert by_path_a.keys() == by_path_b.keys()
    assert min(float(by_path_a[p] @ by_path_b[p]) for p in by_path_a) >= 0.999
    for query in ("a red circle", "a dog"):
        x = json.loads(cs(local, "search", query, "--json", "--no-server").stdout)
        y = json.loads(cs(imported, "search", query, "--json", "--no-server").stdout)
        assert [r["path"] for r in x] == [r["path"] for r in y]


def test_shards_of_another_model_are_refused(spark, photos, tmp_path, tiny_model):
    out = tmp_path / "emb"
    _embed(spark, photos, out)
    lib = tmp_path / "other"
    cs(lib, "--model", tiny_model, "index", str(photos / "a"))
    refused = cs(lib, "import", str(out), expect=1)
    assert "cannot join the library" in refused.stderr and "fingerprint" in refused.stderr
    with Library.open(lib) as opened:
        assert opened.store.counts()["images"] == 18  # nothing imported


def test_the_command_line_keeps_spark_logs_out_of_the_way(photos, tmp_path):
    out = tmp_path / "emb"
    proc = run_process(
        "--model",
        "tiny-shapes",
        "spark",
        "embed",
        str(photos / "a"),
        "--output",
        str(out),
        "--master",
        "local[2]",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "Embedded" in proc.stdout and "18 images" in proc.stdout and "1 unreadable" in proc.stdout
    )
    assert proc.stderr.strip() == "", proc.stderr  # Spark's chatter went to its log file
    assert (out / "logs" / "spark.log").stat().st_size > 0
    # a cluster file system this Spark cannot reach: one clear line, no Java stack
    bad = run_process("spark", "embed", "nosuchfs://nn/photos", "--output", str(tmp_path / "x"))
    assert bad.returncode == 2 and "nosuchfs://nn/photos: Spark cannot list it" in bad.stderr
    assert "Traceback" not in bad.stderr and "at org.apache" not in bad.stderr


def test_sparks_classes_are_archived_once_then_mapped_and_a_cut_archive_is_replaced(
    photos, tmp_path
):
    """The first run that owns its context leaves Java a class archive in the cache (written
    at its JVM's exit, put in place only when complete); the next JVM maps Spark's classes
    from it; an archive cut short (Java would die of SIGBUS mapping it) is never mapped."""
    cache = tmp_path / "the cache"  # a space in the path: one Java option all the same
    folder = cache / "spark-cds"

    def embed(out: str, **env: str) -> subprocess.CompletedProcess:
        args = ["--model", "tiny-shapes", "spark", "embed", str(photos / "b")]
        proc = run_process(
            *args,
            "--output",
            str(tmp_path / out),
            "--master",
            "local[2]",
            env={"CLIPSEARCH_CACHE": str(cache), **env},
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        assert "Embedded" in proc.stdout and "[warning]" not in proc.stdout, proc.stdout
        return proc

    embed("first")
    archives = list(folder.glob("*.jsa"))
    assert len(archives) == 1 and archives[0].name.count(".") == 1  # no temporary file left
    size = archives[0].stat().st_size
    assert archives[0].stem.endswith(f"-{size}") and size > 10_000_000

    classes = tmp_path / "classes"
    classes.mkdir()
    embed("second", JDK_JAVA_OPTIONS=f"-Xlog:class+load=info:file={classes}/%p.log")
    loaded = "".join(f.read_text() for f in classes.glob("*.log"))
    assert "org.apache.spark.SparkContext source: shared objects file (top)" in loaded

    with archives[0].open("r+b") as f:  # cut: the header still says how long it should be
        f.truncate(size // 2)
    embed("third")
    now = list(folder.glob("*.jsa"))
    assert len(now) == 1  # the cut one dropped, and a whole one written again
    assert now[0].stat().st_size == int(now[0].stem.rpartition("-")[2]) > size // 2


def test_a_java_that_refuses_hotspots_start_up_options_still_runs_the_job(photos, tmp_path):
    """The class archive and the quick compiler are HotSpot options; a JVM that does not
    take them (OpenJ9, say) runs the job without them."""
    java = os.path.realpath(shutil.which("java") or "java")
    fake = tmp_path / "jdk" / "bin" / "java"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in -XX:*Archive*|-XX:Tiered*|-Xlog:*) '
        'echo "Unrecognized VM option $a" >&2; exit 1;; esac; done\n'
        f'exec "{java}" "$@"\n'
    )
    fake.chmod(0o755)
    out = tmp_path / "emb"
    args = ["--model", "tiny-shapes", "spark", "embed", str(photos / "b"), "--output", str(out)]
    proc = run_process(
        *args,
        "--master",
        "local[2]",
        env={"JAVA_HOME": str(fake.parent.parent), "CLIPSEARCH_CACHE": str(tmp_path / "c")},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Embedded" in proc.stdout and "19 images" in proc.stdout, proc.stdout
    assert "Unrecognized VM option -XX:" in (out / "logs" / "spark.log").read_text()
    assert not list((tmp_path / "c").glob("spark-cds/*.jsa"))  # no archive from this JVM


# --- the index, built on Spark --------------------------------------------------------------


def _synthetic_shards(out: Path, n: int, shards: int, seed: int = 5, start: int = 0) -> None:
    """Shards in the documented layout, written directly: clustered 128-d unit vectors as
    tiny-shapes would make them (the index does no model work)."""
    from clipsearch.model.encoder import Encoder

    fingerprint = Encoder("tiny-shapes").fingerprint
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((30, 128))
    vecs = centres[rng.integers(0, 30, n)] + 0.25 * rng.standard_normal((n, 128))
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float16)
    per = -(-n // shards)
    for i in range(shards):
        rows = [
            {
                "image_path": f"/synthetic/{start + j}.jpg",
                "path_bytes": f"/synthetic/{start + j}.jpg".encode(),
                "size": 100 + j,
                "mtime_ns": 10**18 + j,
                "content_hash": f"{start + j:032x}",
                "width": 64,
                "height": 64,
                "format": "JPEG",
                "taken_at": None,
                "phash": None,
                "dhash": None,
                "phash_mirror": None,
                "dhash_mirror": None,
            }
            for j in range(i * per, min(n, (i + 1) * per))
        ]
        sh.write_shard(out, i, vecs[i * per : (i + 1) * per], rows, [])
    sh.Manifest("tiny-shapes", fingerprint, 128, "fp32", "float16", shards, per).write(out)


def test_spark_index_trains_on_a_random_sample_and_records_its_recall(spark, tmp_path):
    import faiss

    from clipsearch.spark.index_build import build

    emb, out = tmp_path / "emb", tmp_path / "index"
    _synthetic_shards(emb, 6_000, 3)
    summary = build(emb, out, spark=spark, recall=0.95)
    facts = json.loads((out / "index.json").read_text())
    assert facts["vectors"] == 6_000 and facts["queries"] == 1_000
    assert facts["recall_at_10"] >= 0.95 and 1 <= facts["nprobe"] < facts["nlist"]
    assert facts["shards"] == [[0, 2_000, 0], [1, 2_000, 2_000], [2, 2_000, 4_000]]
    index = faiss.read_index(str(out / "index.faiss"))
    assert index.ntotal == 6_000 and index.nprobe == summary.nprobe
    assert not (out / "parts").exists()
    assert 128 <= summary.bytes_per_vector < 128 + 40  # 8-bit codes and an id
    assert facts["compressed"] and facts["rerank"] == 3  # its hits re-ranked exactly


def test_import_adopts_the_prebuilt_index_and_keeps_the_librarys_own_pictures(spark, tmp_path):
    from clipsearch.spark.index_build import build

    emb, out, first = tmp_path / "emb", tmp_path / "index", tmp_path / "first"
    _synthetic_shards(emb, 6_000, 3)
    _synthetic_shards(first, 300, 1, seed=6, start=50_000)  # a library with pictures already
    build(emb, out, spark=spark)
    lib = tmp_path / "lib"
    cs(lib, "import", str(first))
    got = json.loads(cs(lib, "import", str(emb), "--index", str(out), "--json").stdout)
    assert got["added"] == 6_000
    assert got["index"]["vectors"] == 6_300 and got["index"]["added"] == 300
    status = json.loads(cs(lib, "status", "--json").stdout)
    assert status["index"]["kind"] == "ivf" and status["index"]["vectors"] == 6_300
    with Library.open(lib) as opened:
        ids, vecs = opened.store.get_vectors(opened.store.vector_ids(), 128)
        index = opened.vectors.index()
        assert index.kind == "ivf" and set(index.ids().tolist()) == set(ids.tolist())
        assert index.codes == "8-bit"  # its hits re-ranked with the stored vectors
        from clipsearch.query.search import Searcher

        searcher = Searcher(opened.store, opened.vectors.reading, lambda: None, 128)
        picks = np.random.default_rng(0).choice(len(ids), 50, replace=False)
        hits = [searcher.nearest(vecs[p], 10, None) for p in picks]
        exact = np.argsort(-(vecs[picks] @ vecs.T), axis=1)[:, :10]
        overlap = np.mean(
            [
                len(set(h.ids.tolist()) & set(ids[e].tolist())) / 10
                for h, e in zip(hits, exact, strict=True)
            ]
        )
        assert overlap >= 0.95  # the adopted index answers with the library's ids
        assert all(h.ids[0] == ids[p] for h, p in zip(hits, picks, strict=True))


def test_an_index_of_other_shards_is_refused_before_anything_is_imported(spark, tmp_path):
    from clipsearch.spark.index_build import build

    emb, other, out = tmp_path / "emb", tmp_path / "other", tmp_path / "index"
    _synthetic_shards(emb, 3_000, 2)
    _synthetic_shards(other, 3_000, 3)
    build(other, out, spark=spark)
    lib = tmp_path / "lib"
    refused = cs(lib, "import", str(emb), "--index", str(out), expect=2)
    assert "built from other shards" in refused.stderr
    with Library.open(lib) as opened:
        assert opened.store.counts()["images"] == 0


def test_a_memory_budget_gives_a_compressed_index_reranked_to_full_quality(spark, tmp_path):
    from clipsearch.spark.index_build import build

    emb, out = tmp_path / "emb", tmp_path / "index"
    _synthetic_shards(emb, 20_000, 2)
    # 8-bit codes would need ~3 MB here: 2 MB asks for product-quantised codes
    summary = build(emb, out, spark=spark, max_memory="2MB", recall=0.95)
    facts = json.loads((out / "index.json").read_text())
    assert facts["compressed"] and facts["rerank"] in (10, 30, 100) and 8 <= summary.pq_bytes <= 64
    assert summary.bytes_per_vector < 128  # under 8-bit codes' 128 bytes
    assert facts["recall_at_10"] >= 0.95  # measured after re-ranking
    with pytest.raises(ConfigError, match="even compressed"):
        build(emb, tmp_path / "tiny", spark=spark, max_memory="100KB")

    lib = tmp_path / "lib"
    got = json.loads(cs(lib, "import", str(emb), "--index", str(out), "--json").stdout)
    assert got["index"]["vectors"] == 20_000 and got["index"]["rerank"] == facts["rerank"]
    assert json.loads(cs(lib, "status", "--json").stdout)["index"]["compressed"]
    from clipsearch.query.search import Searcher

    with Library.open(lib) as opened:  # (the synthetic files do not exist: the index level)
        ids, vecs = opened.store.get_vectors(opened.store.vector_ids(), 128)
        searcher = Searcher(opened.store, opened.vectors.reading, lambda: None, 128)
        picks = np.random.default_rng(1).choice(len(ids), 20, replace=False)
        found = 0
        for p in picks:  # searches re-rank: exact scores, (nearly) the exact top 10
            hits = searcher.nearest(vecs[p], 10, None)
            exact = set(ids[np.argsort(-(vecs @ vecs[p]))[:10]].tolist())
            found += len(set(hits.ids.tolist()) & exact)
            want = vecs[np.searchsorted(ids, hits.ids)] @ vecs[p]
            assert np.allclose(hits.scores, want, atol=1e-5)
            assert list(hits.scores) == sorted(hits.scores, reverse=True)
        assert found / (10 * len(picks)) >= 0.95


def test_uri_sources_are_listed_once_and_read_through_sparks_hadoop(spark, photos, tmp_path):
    # file:// goes the way hdfs:// and s3a:// go: listed on the driver by Spark's Hadoop file
    # system, read by the executors through SparkContext.binaryFiles; the same vectors.
    by_path = _embed(spark, photos, tmp_path / "local", shard_size=10)
    from clipsearch.spark.job import embed

    uri = photos.as_uri()  # file:///...
    by_uri = embed([uri], tmp_path / "uri", model="tiny-shapes", spark=spark, shard_size=10)
    local = {_name(r): v for r, v in _vectors(tmp_path / "local")}
    remote = {_name(r): v for r, v in _vectors(tmp_path / "uri")}
    # Hadoop's file systems name files in Unicode: caf\xe9.jpg (Latin-1) is not listed there
    assert set(local) - set(remote) == {os.fsdecode(b"caf\xe9.jpg")}, set(local) ^ set(remote)
    assert by_uri.images == by_path.images - 1 and by_uri.errors == by_path.errors
    assert all(float(local[k] @ remote[k]) > 0.999 for k in remote)  # float16, other batches
    paths = [os.fsdecode(r["path_bytes"]) for r, _ in _vectors(tmp_path / "uri")]
    assert all(p.startswith("file:/") for p in paths)
    # brought home: file: URIs are the local files; other URIs map onto a mount (--map)
    lib = tmp_path / "lib"
    cs(lib, "import", str(tmp_path / "uri"))
    hits = json.loads(cs(lib, "search", "--image", paths[0][len("file:") :], "--json").stdout)
    assert hits[0]["path"] == paths[0][len("file:") :] and hits[0]["score"] > 0.999
    mapped = tmp_path / "mapped"
    cs(mapped, "import", str(tmp_path / "uri"), "--map", f"file:{photos}=/mnt/photos")
    with Library.open(mapped) as opened:
        assert all(
            r.path.startswith("/mnt/photos/") for r in opened.store.rows_under(["/mnt"]).values()
        )
        assert len(opened.store.rows_under(["/mnt/photos"])) == by_uri.embedded
    with pytest.raises(sh.RemoteSource, match="no such file"):
        embed(
            [(tmp_path / "missing").as_uri()], tmp_path / "none", model="tiny-shapes", spark=spark
        )


def _vectors(folder: Path):
    for shard in sh.iter_shards(folder):
        yield from zip(shard.rows, np.asarray(shard.vectors, np.float32), strict=True)


def _name(row: dict) -> str:
    return os.path.basename(os.fsdecode(row["path_bytes"]))
