// The duplicates page: groups side by side (GET /api/duplicates), choose the keeper of each,
// move the other pictures into the library's quarantine folder (POST /api/duplicates/move)
// after saying what will move, and undo that (POST /api/duplicates/undo). Nothing is ever
// deleted. Exact and near copies and similar (CLIP) look-alikes are shown in two sections;
// "Move all" moves copies only, a similar group moves only on its own button.

import { api, formatBytes, formatDate, h, toast } from "../lib.js";

export const title = "Duplicates";

let ui = null;
let groups = [];
let keepers = new Map(); // group index -> chosen keeper id

const plural = (n, one, many) => `${n.toLocaleString()} ${n === 1 ? one : many}`;

function members(g) {
  return [g.keeper, ...g.others];
}

function movable(gi) {
  return members(groups[gi]).filter((m) => m.id !== keepers.get(gi));
}

function linkFor(g, m) {
  // Why a picture is in its group: the server's link for a non-keeper (a byte-identical copy
  // is always "exact"), else its strongest pair (exact before near before similar).
  if (m.reason) return { reason: m.reason, score: m.score };
  const rank = { exact: 0, near: 1, similar: 2 };
  let best = null;
  for (const p of g.pairs) {
    if (p.a !== m.id && p.b !== m.id) continue;
    if (!best || rank[p.reason] < rank[best.reason] || (p.reason === best.reason && p.score > best.score)) best = p;
  }
  return best;
}

function card(g, gi, m) {
  const chosen = keepers.get(gi) === m.id;
  const link = linkFor(g, m);
  const radio = h("input", { type: "radio", name: `keep-${gi}`, value: String(m.id), checked: chosen, "aria-label": `Keep ${m.name}` });
  radio.addEventListener("change", () => {
    keepers.set(gi, m.id);
    renderGroup(gi);
  });
  const other = g.kind === "similar" ? "Similar" : "Copy";
  return h(
    "figure", { class: `dupe ${chosen ? "keep" : "copy"}`, dataset: { id: String(m.id) } },
    h("a", { href: m.file_url, target: "_blank", rel: "noopener" },
      h("img", { src: `${m.thumb_url}?size=320`, alt: m.name, loading: "lazy" })),
    h("figcaption", {},
      h("label", { class: "keep-choice" }, radio, h("span", { class: "badge" }, chosen ? "Keep" : other)),
      h("span", { class: "why" }, link ? `${link.reason} · ${link.score.toFixed(3)}` : ""),
      h("span", {}, `${m.width || "?"}×${m.height || "?"} · ${formatBytes(m.size)}${m.format ? ` · ${m.format}` : ""}`),
      h("span", { class: "muted" }, formatDate(m.mtime)),
      h("span", { class: "path muted" }, m.path)),
  );
}

function renderGroup(gi) {
  const g = groups[gi];
  const section = ui.root.querySelector(`[data-group="${gi}"]`);
  if (!section || !g) return;
  const similar = g.kind === "similar";
  const n = movable(gi).length;
  const move = h("button", { type: "button", class: "primary move-group" },
    `Move ${plural(n, similar ? "picture" : "copy", similar ? "pictures" : "copies")} to quarantine`);
  move.addEventListener("click", () => moveGroup(gi));
  const number = groups.slice(0, gi + 1).filter((x) => x.kind === g.kind).length;
  section.replaceChildren(
    h("header", { class: "row" },
      h("h3", {}, `${similar ? "Similar" : "Group"} ${number}`),
      h("span", { class: "muted" }, g.reasons.join(", ")),
      h("span", { class: "grow" }), move),
    h("div", { class: "dupe-row" }, ...members(g).map((m) => card(g, gi, m))),
  );
}

function render(report) {
  groups = report.groups.map((g) => ({ ...g, kind: g.kind || "copies" }));
  keepers = new Map(groups.map((g, i) => [i, g.keeper.id]));
  const copyGroups = groups.filter((g) => g.kind === "copies");
  const similarGroups = groups.filter((g) => g.kind === "similar");
  const copies = copyGroups.reduce((n, g) => n + g.others.length, 0);
  const lookalikes = similarGroups.reduce((n, g) => n + g.others.length, 0);
  const among = `among ${plural(report.images, "image", "images")}`;
  const parts = [];
  if (copyGroups.length) parts.push(`${plural(copyGroups.length, "group", "groups")} of copies (${plural(copies, "copy", "copies")})`);
  if (similarGroups.length) parts.push(`${plural(similarGroups.length, "group", "groups")} of similar images (${lookalikes} to review)`);
  ui.summary.textContent = parts.length ? `${parts.join(", ")} ${among}.` : `No duplicates ${among}.`;
  ui.warnings.replaceChildren(...(report.warnings || []).map((w) => h("p", { class: "dupes-warning" }, w.charAt(0).toUpperCase() + w.slice(1))));
  ui.warnings.hidden = !ui.warnings.childElementCount;

  const section = (list, kind) => list.map((g) => {
    const gi = groups.indexOf(g);
    return h("section", { class: `dupe-group ${kind}`, dataset: { group: String(gi), kind } });
  });
  ui.copiesSection.hidden = !copyGroups.length;
  ui.moveAll.textContent = copies === 1 ? "Move 1 copy to quarantine" : `Move all ${copies.toLocaleString()} copies to quarantine`;
  ui.copyList.replaceChildren(...section(copyGroups, "copies"));
  ui.similarSection.hidden = !similarGroups.length;
  ui.similarList.replaceChildren(...section(similarGroups, "similar"));
  groups.forEach((_, gi) => renderGroup(gi));
}

async function load() {
  ui.summary.textContent = "Looking for duplicates…";
  try {
    const report = await api("/api/duplicates", { params: { similar: ui.similar.checked ? "true" : "false" } });
    render(report);
  } catch (e) {
    ui.summary.textContent = "";
    ui.copyList.replaceChildren(h("p", { class: "error", role: "alert" }, e.message));
  }
}

function confirmMove(count, detail) {
  // Resolves true when the user confirms in the page's own dialog (Esc or Cancel: false).
  return new Promise((resolve) => {
    const d = ui.confirm;
    d.querySelector("#confirm-move-title").textContent = `Move ${plural(count, "file", "files")} to quarantine?`;
    d.querySelector("#confirm-move-detail").textContent = detail;
    const done = (ok) => {
      d.removeEventListener("close", onClose);
      resolve(ok);
    };
    const onClose = () => done(d.returnValue === "move");
    d.returnValue = "";
    d.addEventListener("close", onClose);
    d.showModal();
    d.querySelector("#confirm-move-cancel").focus();
  });
}

const QUARANTINE = "They go to the library's quarantine folder: nothing is deleted, and Undo puts them back.";

async function moveGroup(gi) {
  const g = groups[gi];
  const ids = movable(gi).map((m) => m.id);
  const keeper = members(g).find((m) => m.id === keepers.get(gi));
  const detail = g.kind === "similar"
    ? `These pictures only look similar to ${keeper.name}; they are not copies of it. ${QUARANTINE}`
    : `Copies of ${keeper.name}, which stays. ${QUARANTINE}`;
  await moveIds(ids, detail);
}

async function moveAllCopies() {
  const ids = groups.flatMap((g, gi) => (g.kind === "copies" ? movable(gi).map((m) => m.id) : []));
  const n = groups.filter((g) => g.kind === "copies").length;
  const similar = groups.some((g) => g.kind === "similar") ? " Similar images are not included." : "";
  await moveIds(ids, `Every copy in ${plural(n, "group", "groups")} of exact and near copies; each group's keeper stays.${similar} ${QUARANTINE}`);
}

async function moveIds(ids, detail) {
  if (!ids.length || !(await confirmMove(ids.length, detail))) return;
  for (const b of ui.root.querySelectorAll("button")) b.disabled = true;
  try {
    const r = await api("/api/duplicates/move", { json: { ids } });
    const skipped = r.skipped.length ? `, ${r.skipped.length} skipped (${r.skipped[0].reason})` : "";
    showDone(`Moved ${plural(r.moved.length, "file", "files")} to quarantine${skipped}.`, r.undo);
    await load();
  } catch (e) {
    toast(e.message, { error: true, ms: 8000 });
  } finally {
    if (ui) for (const b of ui.root.querySelectorAll("button")) b.disabled = false;
  }
}

function showDone(message, undoId) {
  const parts = [h("span", {}, message)];
  if (undoId) {
    const undo = h("button", { type: "button", id: "undo-move" }, "Undo");
    undo.addEventListener("click", async () => {
      undo.disabled = true;
      try {
        const r = await api("/api/duplicates/undo", { json: { undo: undoId } });
        showDone(`Restored ${plural(r.moved.length, "file", "files")}.`, null);
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

function confirmDialog() {
  return h("dialog", { id: "confirm-move", "aria-labelledby": "confirm-move-title", "aria-describedby": "confirm-move-detail" },
    h("form", { method: "dialog" },
      h("h2", { id: "confirm-move-title" }, ""),
      h("p", { id: "confirm-move-detail" }, ""),
      h("div", { class: "row end" },
        h("button", { type: "submit", value: "cancel", id: "confirm-move-cancel" }, "Cancel"),
        h("button", { type: "submit", value: "move", id: "confirm-move-ok", class: "primary" }, "Move"))));
}

export async function mount(root) {
  ui = {
    summary: h("p", { id: "dupes-summary", class: "summary muted", "aria-live": "polite" }),
    warnings: h("div", { id: "dupes-warnings", role: "status", hidden: true }),
    similar: h("input", { type: "checkbox", id: "similar", checked: true }),
    moveAll: h("button", { type: "button", id: "move-all" }, "Move all copies to quarantine"),
    done: h("div", { id: "dupes-done", class: "row done", role: "status", hidden: true }),
    copyList: h("div", { id: "groups", class: "dupe-groups" }),
    similarList: h("div", { id: "similar-groups", class: "dupe-groups" }),
    confirm: confirmDialog(),
  };
  ui.copiesSection = h("section", { id: "copies-section", class: "dupe-section", hidden: true },
    h("div", { class: "row" },
      h("h2", {}, "Exact and near copies"), h("span", { class: "grow" }), ui.moveAll),
    ui.copyList);
  ui.similarSection = h("section", { id: "similar-section", class: "dupe-section", hidden: true },
    h("h2", {}, "Similar images (CLIP)"),
    h("p", { class: "muted" }, "Look-alikes, not copies: every picture is similar to its group's keeper. ",
      "Review each group on its own; they are never moved with the copies."),
    ui.similarList);
  ui.similar.addEventListener("change", load);
  ui.moveAll.addEventListener("click", moveAllCopies);
  ui.root = h(
    "section", { class: "dupes-page" },
    h("h1", {}, "Duplicates"),
    h("p", { class: "muted" }, "Exact copies, near copies (resized, recompressed, cropped, flipped…) and similar-looking images. ",
      "Choose the picture to keep; the others move to the library's quarantine folder, never deleted, and can be put back."),
    h("div", { class: "row" },
      h("label", { class: "row" }, ui.similar, "Include similar images (CLIP)")),
    ui.done, ui.summary, ui.warnings, ui.copiesSection, ui.similarSection, ui.confirm,
  );
  root.append(ui.root);
  await load();
}

export function unmount() {
  if (ui?.confirm.open) ui.confirm.close();
  ui = null;
  groups = [];
}
