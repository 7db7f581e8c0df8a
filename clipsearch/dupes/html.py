"""`dupes --html`: one self-contained page with every group side by side.

Thumbnails are embedded (base64 JPEG, 200 px), so the file can be opened anywhere, mailed or
kept; the paths link to the originals (`file://`).
"""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path
from typing import Any

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.3rem} .group{background:#fff;border:1px solid #ddd;border-radius:8px;
margin:1rem 0;padding:.8rem} .row{display:flex;flex-wrap:wrap;gap:.8rem}
figure{margin:0;width:210px} img{max-width:200px;max-height:200px;display:block;
border-radius:4px;background:#eee} figcaption{font-size:12px;word-break:break-all}
.keep{outline:3px solid #2a7;border-radius:6px;padding:4px} .badge{font-weight:600}
.keep .badge{color:#2a7} .copy .badge{color:#b50} .muted{color:#666}
h2{font-size:1.1rem;margin-top:1.5rem} .similar{border-style:dashed}
.warning{background:#fff4d6;border:1px solid #e0b84c;border-radius:6px;padding:.5rem .8rem}
"""


def _thumb(path: str) -> str | None:
    from clipsearch.errors import UnreadableImage
    from clipsearch.media.images import open_image

    try:
        img, _ = open_image(path, draft_size=200)
    except UnreadableImage:
        return None
    img.thumbnail((200, 200))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(m: Any, keeper: bool, why: str, other: str = "copy") -> str:
    e = html.escape
    src = _thumb(m.path)
    img = f'<img src="{src}" alt="">' if src else '<div class="muted">(cannot show)</div>'
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.mtime))
    dims = f"{m.width}x{m.height}" if m.width else "?"
    label = "keep" if keeper else other
    uri = Path(m.path).as_uri()
    fmt = f" · {e(m.format)}" if m.format else ""
    return (
        f'<figure class="{"keep" if keeper else "copy"}">{img}<figcaption>'
        f'<span class="badge">{label}</span> {e(why)}<br>{dims} · {m.size:,} bytes{fmt} · '
        f'{when}<br><a href="{e(uri)}">{e(m.path)}</a></figcaption></figure>'
    )


def _groups(groups: list[Any], start: int, other: str) -> list[str]:
    parts = []
    for n, g in enumerate(groups, start):
        figures = [_figure(g.keeper, True, "")]
        for m in g.others:
            link = g.links.get(m.id)
            why = f"{link.reason} {link.score:.3f}" if link else ""
            figures.append(_figure(m, False, why, other))
        reasons = ", ".join(g.reasons)
        parts.append(
            f'<section class="group {g.kind}"><div class="muted">group {n} · {reasons}</div>'
            f'<div class="row">{"".join(figures)}</div></section>'
        )
    return parts


def render(report: Any) -> str:
    """The report as an HTML page: the groups of copies, then the similar groups apart."""
    e = html.escape
    copies, similar = report.copy_groups, report.similar_groups
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8><title>clipsearch duplicates</title>",
        f"<style>{_STYLE}</style><h1>Duplicates among {report.images} images</h1>",
    ]
    parts += [f'<p class="warning">{e(w)}</p>' for w in report.warnings]
    parts.append(f"<h2>Exact and near copies: {len(copies)} groups, {report.copies} copies</h2>")
    parts += _groups(copies, 1, "copy")
    if similar:
        parts.append(
            f"<h2>Similar images: {len(similar)} groups, {report.similar_images} look-alikes"
            "</h2><p class=muted>Every picture is similar to its group's keeper (CLIP cosine "
            f"above {report.threshold:g}); they are not copies: review before moving.</p>"
        )
        parts += _groups(similar, len(copies) + 1, "similar")
    return "\n".join(parts) + "\n</html>\n"


def write_report(report: Any, out: str | Path, library: Any = None) -> Path:
    """Write the page to `out`; returns its path."""
    path = Path(out).expanduser()
    path.write_text(render(report), encoding="utf-8")
    return path
