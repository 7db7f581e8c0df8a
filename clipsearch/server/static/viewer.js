// The image viewer: a dialog with the picture, its metadata and actions, stepping through a
// list of results (← →, the ‹ › buttons, or a swipe on a touch screen). Shared by every page
// that shows images (search now; duplicates later).
//
//   openViewer({items, index, onMoreLike(id), onFolder(path), onClose(index)})

import { api, copy, displayText, formatBytes, formatDate, formatScore, h } from "./lib.js";

let dialog = null;
let els = null;
let state = null;
let loadToken = 0;

const SWIPE_MIN_PX = 50; // a shorter drag is a tap or a wobble, not a swipe

function build() {
  els = {
    img: h("img", { id: "viewer-img", alt: "", draggable: "false" }),
    title: h("h2", { id: "viewer-title" }),
    score: h("p", { class: "viewer-score" }),
    meta: h("dl", { class: "meta" }),
    open: h("a", { class: "button", target: "_blank", rel: "noopener", title: "Open the original (o)" }, "Open original"),
    more: h("button", { class: "primary", type: "button", title: "More like this (m)" }, "More like this"),
    copyPath: h("button", { type: "button" }, "Copy path"),
    prev: h("button", { class: "nav prev", type: "button", "aria-label": "Previous image (←)" }, "‹"),
    next: h("button", { class: "nav next", type: "button", "aria-label": "Next image (→)" }, "›"),
    close: h("button", { class: "icon-btn close", type: "button", "aria-label": "Close (Esc)" }, "×"),
    counter: h("span", { class: "muted counter" }),
  };
  dialog = h(
    "dialog",
    { id: "viewer", class: "viewer", "aria-labelledby": "viewer-title" },
    h(
      "div",
      { class: "viewer-body" },
      (els.figure = h("figure", { class: "viewer-figure" }, els.img, els.prev, els.next)),
      h(
        "aside",
        { class: "viewer-side" },
        h("div", { class: "viewer-head" }, els.title, els.close),
        h("div", { class: "row" }, els.score, els.counter),
        els.meta,
        h("div", { class: "actions" }, els.more, els.open, els.copyPath),
      ),
    ),
  );
  document.body.append(dialog);
  els.close.addEventListener("click", () => dialog.close());
  els.prev.addEventListener("click", () => step(-1));
  els.next.addEventListener("click", () => step(1));
  els.more.addEventListener("click", () => moreLike());
  els.copyPath.addEventListener("click", () => state && state.detail && copy(state.detail.path, "Path copied"));
  dialog.addEventListener("keydown", onKey);
  swipes(els.figure);
  dialog.addEventListener("close", () => {
    if (state && state.onClose) state.onClose(state.index);
  });
  dialog.addEventListener("click", (e) => {
    if (e.target === dialog) dialog.close(); // a click on the backdrop
  });
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "ArrowLeft") step(-1);
  else if (event.key === "ArrowRight") step(1);
  else if (event.key === "m") moreLike();
  else if (event.key === "o") els.open.click();
  else return;
  event.preventDefault();
}

/**
 * Swipe left for the next picture, right for the previous one. The picture follows the finger
 * (reluctantly where there is nothing further) and settles back. A mostly vertical drag, a
 * short one or a pinch is left to the browser.
 */
function swipes(figure) {
  let drag = null;
  const follow = (dx) => {
    els.img.classList.toggle("dragging", dx !== 0);
    els.img.style.transform = dx ? `translateX(${dx}px)` : "";
  };
  const end = () => {
    drag = null;
    follow(0);
  };
  figure.addEventListener("touchstart", (e) => {
    if (e.touches.length !== 1) return end();
    const t = e.touches[0];
    drag = { x: t.clientX, y: t.clientY, dx: 0, dy: 0, horizontal: null };
  }, { passive: true });
  figure.addEventListener("touchmove", (e) => {
    if (!drag) return;
    if (e.touches.length !== 1) return end();
    const t = e.touches[0];
    drag.dx = t.clientX - drag.x;
    drag.dy = t.clientY - drag.y;
    if (drag.horizontal === null && Math.hypot(drag.dx, drag.dy) > 10) {
      drag.horizontal = Math.abs(drag.dx) > Math.abs(drag.dy);
    }
    if (!drag.horizontal) return;
    const more = drag.dx < 0 ? state.index < state.items.length - 1 : state.index > 0;
    follow(more ? drag.dx : drag.dx / 4);
  }, { passive: true });
  figure.addEventListener("touchend", () => {
    if (!drag) return;
    const { dx, dy, horizontal } = drag;
    end();
    if (horizontal && Math.abs(dx) >= SWIPE_MIN_PX && Math.abs(dx) > 1.5 * Math.abs(dy)) {
      step(dx < 0 ? 1 : -1);
    }
  });
  figure.addEventListener("touchcancel", end);
}

function step(delta) {
  if (!state) return;
  const i = state.index + delta;
  if (i < 0 || i >= state.items.length) return;
  state.index = i;
  show();
}

function moreLike() {
  if (!state || !state.onMoreLike) return;
  const id = state.items[state.index].id;
  dialog.close();
  state.onMoreLike(id);
}

function row(label, value, extra) {
  if (value === null || value === undefined || value === "") return [];
  return [h("dt", {}, label), h("dd", {}, value, extra || null)];
}

async function show() {
  const item = state.items[state.index];
  const token = ++loadToken;
  els.title.textContent = displayText(item.name || `#${item.id}`);
  const score = item.score !== undefined && item.score !== null ? `score ${formatScore(item.score)}` : "";
  els.score.textContent = [score, item.keyword ? "≡ keyword match" : ""].filter(Boolean).join(" · ");
  els.counter.textContent = state.items.length > 1 ? `${state.index + 1} / ${state.items.length}` : "";
  els.prev.disabled = state.index === 0;
  els.next.disabled = state.index === state.items.length - 1;
  els.img.alt = item.name || "";
  els.img.src = `${item.thumb_url}?size=640`; // at once; the full picture replaces it
  els.open.href = item.file_url;
  els.meta.replaceChildren(h("dt", {}, "Path"), h("dd", { class: "path" }, item.path));
  state.detail = { path: item.path };
  let detail;
  try {
    detail = await api(`/api/images/${item.id}`);
  } catch (e) {
    if (token === loadToken) els.meta.append(h("dt", {}, "Error"), h("dd", { class: "error" }, e.message));
    return;
  }
  if (token !== loadToken) return;
  state.detail = detail;
  const full = new Image();
  full.onload = () => {
    if (token === loadToken) els.img.src = full.src;
  };
  full.src = detail.preview_url;
  const folder = h("button", { type: "button", class: "link", title: "Search only in this folder" }, detail.folder);
  folder.addEventListener("click", () => {
    dialog.close();
    if (state.onFolder) state.onFolder(detail.folder);
  });
  els.meta.replaceChildren(
    ...row("Path", h("span", { class: "path" }, detail.path)),
    ...row("Folder", folder),
    ...row("Size", detail.width ? `${detail.width} × ${detail.height} px · ${formatBytes(detail.size)}` : formatBytes(detail.size)),
    ...row("Format", detail.format),
    ...row("Taken", detail.taken_at ? formatDate(detail.taken_at) : ""),
    ...row("Place", where(detail), mapLink(detail)),
    ...row("Camera", detail.camera),
    ...row("Lens", detail.lens),
    ...row("Text", readText(detail.text)),
    ...row("Modified", formatDate(detail.mtime)),
    ...row("Source", detail.source),
    ...row("Indexed", formatDate(detail.added_at)),
    ...row("Id", String(detail.id)),
    ...(detail.exists ? [] : row("Note", h("span", { class: "error" }, "the file is gone from disk"))),
  );
}

/** "Lisbon, Portugal", or the coordinates when no place name is known. */
function where(detail) {
  if (detail.place) return detail.place;
  if (detail.lat === null || detail.lat === undefined || detail.lon === null || detail.lon === undefined) return "";
  return `${detail.lat.toFixed(5)}, ${detail.lon.toFixed(5)}`;
}

function mapLink(detail) {
  if (!detail.map_url) return null;
  return [" · ", h("a", { class: "map-link", href: detail.map_url, target: "_blank", rel: "noopener", title: "Show on OpenStreetMap (new tab)" }, "map")];
}

const TEXT_SHORT = 160; // longer text read in the picture starts folded

/** The text read in the picture (OCR): as it is, or folded behind its first words. */
function readText(text) {
  if (!text || !text.trim()) return "";
  const clean = text.trim();
  if (clean.length <= TEXT_SHORT && clean.split("\n").length <= 4) return h("span", { class: "ocr" }, clean);
  const first = clean.replace(/\s+/g, " ").slice(0, 60).trim();
  return h("details", { class: "ocr" }, h("summary", {}, `${first}…`), h("div", { class: "ocr-full" }, clean));
}

/** Open the viewer on items[index]. */
export function openViewer({ items, index = 0, onMoreLike, onFolder, onClose }) {
  if (!dialog) build();
  state = { items, index, onMoreLike, onFolder, onClose, detail: null };
  els.more.hidden = !onMoreLike;
  show();
  if (!dialog.open) dialog.showModal();
  els.close.focus();
}

export function viewerOpen() {
  return Boolean(dialog && dialog.open);
}
