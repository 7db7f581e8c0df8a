"""`status`."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from clipsearch.cli.app import (
    State,
    cli,
    console,
    human_bytes,
)

# --- status --------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print status as JSON.")
@click.option("--failures", "show_failures", is_flag=True, help="List every file that failed.")
@click.pass_obj
def status(state: State, as_json: bool, show_failures: bool) -> None:
    """Show what the library holds: images, failures, model, index, size."""
    with state.open_library(create=False, check_model=False) as lib:
        info = lib.status()
        failures = lib.failures() if show_failures else []
    if show_failures:
        info["failure_list"] = failures
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    _print_status(info)
    from clipsearch.media.fs import display

    for f in failures:
        click.echo(f"{display(f['path'])}: {f['reason']}")


def _print_status(info: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    idx = info["index"]
    rows = [
        ("library", info["library"]),
        (
            "model",
            f"{info['model']}"
            + (f" ({info['dim']}-d)" if info["dim"] else "")
            + (f", {info['precision']} on {info['runtime']}" if info.get("precision") else ""),
        ),
        ("images", f"{info['images']} ({info['photos']} photos, {info['generated']} generated)"),
        ("failures", str(info["failures"])),
        (
            "vectors",
            f"{info['vectors']} in store, {idx['vectors']} in index ({idx['kind'] or '-'}"
            + (f", {idx['codes']} codes" if idx["kind"] == "ivf" and idx.get("codes") else "")
            + (f", nprobe {idx['nprobe']}" if idx["nprobe"] else "")
            + ")"
            + (
                f"; {idx['unsaved_changes']} changes not yet in the index file"
                if idx.get("unsaved_changes")
                else ""
            ),
        ),
        (
            "read",
            "EXIF: camera, GPS, place"
            + ("" if info.get("facts_complete") else " (the next `index` reads older pictures)")
            + (
                f"; text (OCR, {info['ocr']})"
                + ("" if info.get("ocr_complete") else ": not every picture yet")
                if info.get("ocr")
                else "; no text (index --ocr reads it)"
            ),
        ),
        ("size", human_bytes(info["size_bytes"])),
    ]
    for root in info["roots"]:
        when = root["last_indexed_at"]
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(when)) if when else "never"
        state = f"OFFLINE: {root['offline_reason']}; " if root["offline"] else ""
        rows.append((root["kind"], f"{root['path']} ({state}indexed {stamp})"))
    if info["offline_images"]:
        rows.append(
            (
                "offline",
                f"{info['offline_images']} picture(s) kept for offline folders, left out of "
                "searches (clipsearch offline)",
            )
        )
    vocab = info.get("vocabulary")
    if vocab:
        rows.append(
            ("tags", f"{vocab['name']} ({vocab['labels']} labels, min score {vocab['min_score']})")
        )
    if info.get("writer"):
        rows.append(("writer", f"pid {info['writer'].get('pid')}: {info['writer'].get('command')}"))
    if info.get("daemon"):
        rows.extend(_daemon_rows(info["daemon"]))
    from clipsearch.media.fs import display

    for k, v in rows:
        table.add_row(k, display(v))
    console().print(table)


def _daemon_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    """The watch daemon's lines: state, queue, last event, last catch-up scan."""

    def ago(t: float | None) -> str:
        return "never" if not t else f"{max(0.0, time.time() - t):.0f}s ago"

    rows = [("daemon", f"{d.get('state', '?')} (pid {d.get('pid')}), queue {d.get('queue', 0)}")]
    if d.get("roots"):
        rows.append(("watching", ", ".join(d["roots"])))
    ev = d.get("last_event")
    rows.append(("last event", f"{ago(ev['at'])}: {ev['kind']} {ev['path']}" if ev else "none"))
    rec = d.get("last_reconcile")
    if rec:
        rows.append(
            (
                "last catch-up",
                f"{ago(rec['at'])} ({rec['seconds']:.1f}s, {rec['added']} "
                f"added, {rec['removed']} removed)",
            )
        )
    totals = d.get("totals")
    if totals:
        rows.append(("since start", ", ".join(f"{v} {k}" for k, v in totals.items())))
    return rows
