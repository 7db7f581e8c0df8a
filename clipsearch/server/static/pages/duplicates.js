// The duplicates page: groups side by side (GET /api/duplicates), choose the keeper of each,
// move the other copies into the library's quarantine folder (POST /api/duplicates/move), and
// undo that (POST /api/duplicates/undo). Nothing is ever deleted.

import { api, formatBytes, formatDate, h, toast } from "../lib.js";

export const title = "Duplicates";

let ui = null;
let groups = [];
let keepers = new Map(); // group index -> chosen keeper id

function members(g) {
  return [g.keeper, ...g.others];
}

function pairFor(g, id) {
  // The strongest link of an image to the rest of its group, for the caption.
  const rank = { exact: 0, near: 1, similar: 2 };
  let best = null;
  for (const p of g.pairs) {
    if (p.a !== id && p.b !== id) continue;
    if (!best || rank[p.reason] < rank[best.reason] || (p.reason === best.reason && p.score > best.score)) best = p;
  }
  return best;
}

function card(g, gi, m) {
  const chosen = keepers.get(gi) === m.id;
  const pair = pairFor(g, m.id);
  const radio = h("input", { type: "radio", name: `keep-${gi}`, value: String(m.id), checked: chosen, "aria-label": `Keep ${m.name}` });
  radio.addEventListener("change", () => {
    keepers.set(gi, m.id);
    renderGroup(gi);
  });
  return h(
    "figure", { class: `dupe ${chosen ? "keep" : "copy"}`, dataset: { id: String(m.id) } },
    h("a", { href: m.file_url, target: "_blank", rel: "noopener" },
      h("img", { src: `${m.thumb_url}?size=320`, alt: m.name, loading: "lazy" })),
    h("figcaption", {},
      h("label", { class: "keep-choice" }, radio, h("span", { class: "badge" }, chosen ? "Keep" : "Copy")),
      h("span", { class: "why" }, pair ? `${pair.reason} · ${pair.score.toFixed(3)}` : ""),
      h("span", {}, `${m.width || "?"}×${m.height || "?"} · ${formatBytes(m.size)}`),
      h("span", { class: "muted" }, formatDate(m.mtime)),
      h("span", { class: "path muted" }, m.path)),
  );
}

function renderGroup(gi) {
  const g = groups[gi];
  const section = ui.list.querySelector(`[data-group="${gi}"]`);
  if (!section || !g) return;
  const copies = members(g).filter((m) => m.id !== keepers.get(gi));
  const move = h("button", { type: "button", class: "primary move-group" },
    `Move ${copies.length} ${copies.length === 1 ? "copy" : "copies"} to quarantine`);
  move.addEventListener("click", () => moveIds(copies.map((m) => m.id), [gi]));
  section.replaceChildren(
    h("header", { class: "row" },
      h("h2", {}, `Group ${gi + 1}`),
      h("span", { class: "muted" }, g.reasons.join(", ")),
      h("span", { class: "grow" }), move),
    h("div", { class: "dupe-row" }, ...members(g).map((m) => card(g, gi, m))),
  );
}

function render(report) {
  groups = report.groups;
  keepers = new Map(groups.map((g, i) => [i, g.keeper.id]));
  const copies = groups.reduce((n, g) => n + g.others.length, 0);
  ui.summary.textContent = groups.length
    ? `${groups.length} group${groups.length === 1 ? "" : "s"}, ${copies} ${copies === 1 ? "copy" : "copies"} among ${report.images.toLocaleString()} images.`
    : `No duplicates among ${report.images.toLocaleString()} images.`;
  ui.moveAll.hidden = !groups.length;
  ui.list.replaceChildren(...groups.map((_, gi) => h("section", { class: "dupe-group", dataset: { group: String(gi) } })));
  groups.forEach((_, gi) => renderGroup(gi));
}

async function load() {
  ui.summary.textContent = "Looking for duplicates…";
  try {
    const report = await api("/api/duplicates", { params: { similar: ui.similar.checked ? "true" : "false" } });
    render(report);
  } catch (e) {
    ui.summary.textContent = "";
    ui.list.replaceChildren(h("p", { class: "error", role: "alert" }, e.message));
  }
}

async function moveIds(ids, groupIndexes) {
  if (!ids.length) return;
  for (const b of document.querySelectorAll(".dupes-page button")) b.disabled = true;
  try {
    const r = await api("/api/duplicates/move", { json: { ids } });
    const skipped = r.skipped.length ? `, ${r.skipped.length} skipped (${r.skipped[0].reason})` : "";
    showDone(`Moved ${r.moved.length} ${r.moved.length === 1 ? "file" : "files"} to quarantine${skipped}.`, r.undo);
    await load();
  } catch (e) {
    toast(e.message, { error: true, ms: 8000 });
  } finally {
    for (const b of document.querySelectorAll(".dupes-page button")) b.disabled = false;
  }
  return groupIndexes;
}

function showDone(message, undoId) {
  const parts = [h("span", {}, message)];
  if (undoId) {
    const undo = h("button", { type: "button", id: "undo-move" }, "Undo");
    undo.addEventListener("click", async () => {
      undo.disabled = true;
      try {
        const r = await api("/api/duplicates/undo", { json: { undo: undoId } });
        showDone(`Restored ${r.moved.length} ${r.moved.length === 1 ? "file" : "files"}.`, null);
        await load();
      } catch (e) {
        undo.disabled = false;
        toast(e.message, { error: true, ms: 8000 });
      }
    });
    parts.push(undo);
  }
  ui.done.replaceChildren(...parts);
  ui.done.hidden = false;
}

export async function mount(root) {
  ui = {
    summary: h("p", { id: "dupes-summary", class: "summary muted", "aria-live": "polite" }),
    similar: h("input", { type: "checkbox", id: "similar", checked: true }),
    moveAll: h("button", { type: "button", id: "move-all", hidden: true }, "Move all copies to quarantine"),
    done: h("div", { id: "dupes-done", class: "row done", role: "status", hidden: true }),
    list: h("div", { id: "groups", class: "dupe-groups" }),
  };
  ui.similar.addEventListener("change", load);
  ui.moveAll.addEventListener("click", () => {
    const ids = groups.flatMap((g, gi) => members(g).filter((m) => m.id !== keepers.get(gi)).map((m) => m.id));
    moveIds(ids, groups.map((_, gi) => gi));
  });
  root.append(h(
    "section", { class: "dupes-page" },
    h("h1", {}, "Duplicates"),
    h("p", { class: "muted" }, "Exact copies, near copies (resized, recompressed, cropped, flipped…) and very similar images. ",
      "Choose the picture to keep; the others move to the library's quarantine folder, never deleted, and can be put back."),
    h("div", { class: "row" },
      h("label", { class: "row" }, ui.similar, "Include similar images (CLIP)"),
      h("span", { class: "grow" }), ui.moveAll),
    ui.done, ui.summary, ui.list,
  ));
  await load();
}

export function unmount() {
  ui = null;
  groups = [];
}
