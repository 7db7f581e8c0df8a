"""`spark embed` (embedding on Apache Spark) and `import` (shards into a library)."""

from __future__ import annotations

import json
import os

import click

from clipsearch.cli.app import State, cli, progress_bar


@cli.group()
def spark() -> None:
    """Embed collections beyond one machine on Apache Spark (pip install 'clipsearch[spark]').

    \b
      clipsearch spark embed ~/Pictures --output emb/ --master 'local[*]'
      clipsearch --library L import emb/
    """


_master = click.option(
    "--master",
    default="local[*]",
    show_default=True,
    metavar="URL",
    help="Spark master: local[N], spark://HOST:PORT, yarn, k8s://...",
)


@spark.command("embed")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option("--output", "-o", required=True, metavar="DIR", help="Where the shards go (created).")
@_master
@click.option(
    "--model",
    "model",
    metavar="SPEC",
    help="Model (default: the group's --model, else ViT-B-32:laion2b_s34b_b79k).",
)
@click.option(
    "--precision",
    "precision",
    type=click.Choice(["fp32", "int8", "bf16"]),
    default="fp32",
    show_default=True,
    help="Precision of the vectors (a library takes the shards' precision); bf16 needs "
    "the [openvino] extra on the driver and the executors.",
)
@click.option(
    "--shard-size",
    type=click.IntRange(1),
    default=10_000,
    show_default=True,
    metavar="N",
    help="Images per shard (one Spark task each).",
)
@click.option(
    "--dtype",
    type=click.Choice(["float16", "float32"]),
    default="float16",
    show_default=True,
    help="How img_emb_{i}.npy stores vectors.",
)
@click.option(
    "--threads-per-task",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    metavar="N",
    help="Model threads per task (match spark.task.cpus).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def spark_embed(
    state: State,
    sources: tuple[str, ...],
    output: str,
    master: str,
    model: str | None,
    precision: str,
    shard_size: int,
    dtype: str,
    threads_per_task: int,
    as_json: bool,
) -> None:
    """Embed every image in SOURCE... into shards under --output, on Spark.

    SOURCE is a folder, an image, a text file listing paths (one per line) or a glob. The
    driver lists the sources once; each Spark task embeds one shard and writes
    img_emb/img_emb_{i}.npy and metadata/metadata_{i}.parquet (clip-retrieval's layout) and
    errors/errors_{i}.parquet. Running again redoes only unfinished shards and adds new
    files in new shards. Then: clipsearch --library L import DIR.
    """
    from clipsearch.config import DEFAULT_MODEL
    from clipsearch.spark.job import embed

    with progress_bar(state) as progress:
        summary = embed(
            list(sources),
            output,
            model=model or state.requested_model or DEFAULT_MODEL,
            master=master,
            precision=precision,
            shard_size=shard_size,
            dtype=dtype,
            threads_per_task=threads_per_task,
            progress=progress,
        )
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    elif not state.quiet:
        click.echo(
            f"Embedded in {summary.seconds:.1f}s: {summary.embedded} images in "
            f"{summary.shards_run} shard(s), {summary.shards_skipped} shard(s) already done, "
            f"{summary.errors} unreadable -> {summary.output}"
        )


@spark.command("index")
@click.argument("emb_dir", metavar="EMB_DIR")
@click.option(
    "--output", "-o", required=True, metavar="DIR", help="Where the index goes (created)."
)
@_master
@click.option(
    "--max-memory",
    metavar="SIZE",
    help="Refuse to build an index larger than this in memory (e.g. 4GB).",
)
@click.option(
    "--recall",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.95,
    show_default=True,
    help="recall@10 against exact search that nprobe is tuned for (held-out queries).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def spark_index(
    state: State,
    emb_dir: str,
    output: str,
    master: str,
    max_memory: str | None,
    recall: float,
    as_json: bool,
) -> None:
    """Build an IVF index over the shards in EMB_DIR on Spark.

    Trained on a random sample of all shards, filled shard by shard in parallel and merged;
    nprobe is the smallest reaching --recall (recall@10 against exact search on held-out
    rows), recorded in DIR/index.json. Then: clipsearch --library L import EMB_DIR --index DIR.
    """
    from clipsearch.spark.index_build import build

    summary = build(emb_dir, output, master=master, max_memory=max_memory, recall=recall)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    elif not state.quiet:
        click.echo(
            f"Index of {summary.vectors} vectors in {summary.seconds:.1f}s: {summary.nlist} "
            f"lists, nprobe {summary.nprobe}, recall@10 {summary.recall_at_10:.3f} "
            f"({summary.queries} held-out queries), {summary.bytes_per_vector:.0f} bytes per "
            f"vector -> {summary.output}"
        )


@cli.command("import")
@click.argument("folder", metavar="EMB_DIR")
@click.option(
    "--index",
    "index_dir",
    metavar="INDEX_DIR",
    help="Adopt the index `clipsearch spark index` built over these shards.",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="URI=PATH",
    help="Where files of a URI prefix are mounted here: hdfs://nn/photos=/mnt/photos "
    "(repeatable; file: URIs need none).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_obj
def import_(
    state: State, folder: str, index_dir: str | None, maps: tuple[str, ...], as_json: bool
) -> None:
    """Bring embeddings made by `clipsearch spark embed` into the library (no model work).

    Shards of another model, precision or vector size than the library's are refused; an
    empty library takes on the shards' model. Importing again changes nothing for files
    already there with the same content. Afterwards `clipsearch index FOLDER` finds the
    imported files unchanged and embeds only what is new.
    """
    with state.open_library(create=True, check_model=False) as lib, progress_bar(state) as bar:
        summary = lib.import_embeddings(
            folder, index=index_dir, progress=bar, path_map=_path_map(maps)
        )
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    elif not state.quiet:
        click.echo(
            f"Imported {summary.shards} shard(s) in {summary.seconds:.1f}s: {summary.added} "
            f"added, {summary.replaced} replaced, {summary.unchanged} unchanged, "
            f"{summary.failures} unreadable"
        )
        if summary.index:
            click.echo(
                f"Adopted the prebuilt index: {summary.index['vectors']} vectors, nprobe "
                f"{summary.index['nprobe']}, recall@10 {summary.index['recall_at_10']}"
            )


def _path_map(maps: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in maps:
        prefix, sep, local = item.partition("=")
        if not sep or not prefix or not local:
            raise click.BadParameter(f"{item!r}: write URI=PATH", param_hint="--map")
        out[prefix] = os.path.abspath(os.path.expanduser(local))
    return out
