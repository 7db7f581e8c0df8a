// The search page: instant text search, search by image (pick / drop / paste), "more like
// this", weights, negatives, filters; a keyboard-driven thumbnail grid and the viewer.
//
// The URL holds the query (#/search?q=dog+near:Lisbon&like=4&folder=...&source=photos), so
// reloads, links and Back work; uploaded images live in the history entry's state.
//
// Filters written in the query text (near:Lisbon after:2023 camera:pixel text:"invoice") are
// the one truth: the server's parser (GET /api/query) reads the text into chips, and the
// place / camera / text / date controls only write `key:value` into the text.

import { ApiError, api, formatScore, h, typing } from "../lib.js";
import { catchImages, forget, known, reupload, uploadImage } from "../query-images.js";
import { asDate, cut, errorParts, filterChips, filterToken } from "../query-filters.js";
import { openViewer, viewerOpen } from "../viewer.js";

export const title = "Search";

const K_CHOICES = [30, 60, 120, 240];
const FILTERS = ["folder", "source", "tag", "min"]; // URL params and request fields
// Controls that write a filter into the query text: control id -> the filter's key.
const TEXT_FILTERS = { after: "after", before: "before", near: "near", camera: "camera", "in-text": "text" };
const TYPING_MS = 250; // search this long after the last key
// The automatic cutoff never leaves fewer than this many results on the page: a drop after
// the first one or two pictures is as often noise as an edge (the rest is one click away).
const CUT_FLOOR = 12;
let s = null; // page state
let ui = null; // elements
let ctx = null;
let cleanup = [];

function fresh() {
  return {
    q: "", not: "", likes: [], uploads: [], folder: "", source: "", tag: "", min: "", k: 60,
    results: [], rest: [], active: 0, seq: 0, ctrl: null, timer: null, parsed: new Map(), parse: null,
  };
}

function fromParams(params) {
  const st = history.state || {};
  s.q = params.get("q") || "";
  s.not = params.get("not") || "";
  s.likes = params.getAll("like").map((v) => parseInt(v, 10)).filter((v) => v > 0)
    .map((id) => ({ id, weight: 1 }));
  s.uploads = (st.uploads || []).filter((u) => known(u.id));
  for (const f of FILTERS) s[f] = params.get(f) || "";
  for (const key of ["after", "before"]) { // older links: the dates were params
    const v = params.get(key);
    if (v && !s.q.includes(`${key}:`)) s.q = `${s.q.trim()} ${filterToken(key, v)}`.trim();
  }
  const k = parseInt(params.get("k") || "", 10);
  s.k = K_CHOICES.includes(k) ? k : 60;
}

function toParams() {
  const p = new URLSearchParams();
  if (s.q) p.set("q", s.q);
  if (s.not) p.set("not", s.not);
  for (const l of s.likes) p.append("like", l.id);
  for (const f of FILTERS) if (s[f]) p.set(f, s[f]);
  if (s.k !== 60) p.set("k", s.k);
  return p;
}

function remember({ push = false } = {}) {
  ctx.setParams(toParams(), { push, state: { uploads: s.uploads } });
}

// --- building the page ----------------------------------------------------------------------

function field(label, input) {
  return h("label", { class: "field" }, h("span", {}, label), input);
}

function build(root) {
  ui = {
    q: h("input", {
      id: "q", type: "search", autocomplete: "off", spellcheck: "false", enterkeyhint: "search",
      "aria-label": "Search", placeholder: "Describe a picture, or drop / paste / pick one…",
    }),
    pick: h("button", { type: "button", class: "icon-btn", id: "pick", title: "Search by an image (or drop / paste one)", "aria-label": "Search by an image" }, "Image…"),
    file: h("input", { type: "file", id: "file", accept: "image/*,.heic,.heif", hidden: true }),
    toggle: h("button", { type: "button", id: "toggle-filters", "aria-expanded": "false", "aria-controls": "filters", title: "Filters (f)" }, "Filters"),
    chips: h("div", { class: "chips", id: "chips" }),
    filterChips: h("div", { class: "chips filter-chips", id: "filter-chips", "aria-label": "Filters in the query" }),
    error: h("div", { class: "query-error", id: "query-error", role: "alert", hidden: true }),
    not: h("input", { id: "not", type: "text", autocomplete: "off", placeholder: "e.g. people" }),
    folder: h("input", { id: "folder", type: "text", list: "roots", autocomplete: "off", placeholder: "/path/to/folder" }),
    roots: h("datalist", { id: "roots" }),
    tag: h("input", { id: "tag", type: "text", list: "tag-list", autocomplete: "off", placeholder: "e.g. dog" }),
    tagList: h("datalist", { id: "tag-list" }),
    source: h("select", { id: "source" }, h("option", { value: "" }, "All"), h("option", { value: "photos" }, "Photos"), h("option", { value: "generated" }, "Generated")),
    after: h("input", { id: "after", type: "date" }),
    before: h("input", { id: "before", type: "date" }),
    near: h("input", { id: "near", type: "text", autocomplete: "off", placeholder: "e.g. Lisbon" }),
    camera: h("input", { id: "camera", type: "text", autocomplete: "off", placeholder: "e.g. pixel" }),
    "in-text": h("input", { id: "in-text", type: "text", autocomplete: "off", placeholder: "e.g. invoice" }),
    min: h("input", { id: "min", type: "number", step: "0.01", min: "-1", max: "1", placeholder: "0.20" }),
    k: h("select", { id: "k" }, ...K_CHOICES.map((n) => h("option", { value: String(n) }, String(n)))),
    clear: h("button", { type: "button", id: "clear-filters" }, "Clear filters"),
    summary: h("p", { id: "summary", class: "summary muted", "aria-live": "polite" }),
    grid: h("ul", { id: "grid", class: "grid", "aria-label": "Results" }),
    more: h("button", { type: "button", id: "show-more", class: "show-more", hidden: true, title: "The results past the point where relevance drops" }, "Show more"),
    empty: h("div", { id: "welcome", class: "welcome" }),
    drop: h("div", { id: "dropzone", class: "dropzone", hidden: true }, h("p", {}, "Drop the image to find similar ones")),
  };
  ui.filters = h(
    "fieldset", { id: "filters", class: "filters", hidden: true },
    h("legend", { class: "visually-hidden" }, "Filters"),
    field("Not like", ui.not), field("In folder", ui.folder), ui.roots, field("Source", ui.source),
    field("Tag", ui.tag), ui.tagList,
    field("Near (place)", ui.near), field("Camera", ui.camera), field("Text in picture", ui["in-text"]),
    field("From", ui.after), field("Before", ui.before), field("Min score", ui.min),
    field("Results", ui.k), h("div", { class: "field end" }, ui.clear),
  );
  const form = h(
    "form", { class: "searchbar", role: "search" },
    h("div", { class: "query" }, ui.q, ui.pick, ui.toggle), ui.file, ui.error, ui.filterChips, ui.chips,
    ui.filters,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    search({ push: true });
    focusTile(0);
  });
  root.append(h("section", { class: "search-page" }, form, ui.summary, ui.empty, ui.grid, ui.more), ui.drop);
  wire();
}

function wire() {
  ui.q.addEventListener("input", () => {
    s.q = ui.q.value;
    later();
  });
  ui.q.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && s.results.length) {
      e.preventDefault();
      focusTile(0);
    } else if (e.key === "Escape" && !ui.q.value && (s.likes.length || s.uploads.length)) {
      clearAll();
    }
  });
  ui.not.addEventListener("input", () => {
    s.not = ui.not.value;
    later();
  });
  for (const name of ["folder", "tag", "min"]) {
    ui[name].addEventListener("input", () => {
      s[name] = ui[name].value.trim();
      later();
    });
  }
  ui.source.addEventListener("change", () => {
    s.source = ui.source.value;
    search({ push: true });
  });
  for (const [id, key] of Object.entries(TEXT_FILTERS)) {
    ui[id].addEventListener("change", () => setFilter(key, ui[id].value));
    ui[id].addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      e.preventDefault(); // not a form submit: the value goes into the query text first
      setFilter(key, ui[id].value);
    });
  }
  ui.more.addEventListener("click", showMore);
  ui.k.addEventListener("change", () => {
    s.k = parseInt(ui.k.value, 10);
    search({ push: true });
  });
  ui.clear.addEventListener("click", async () => {
    for (const f of FILTERS) s[f] = "";
    s.not = "";
    const parse = await currentParse();
    if (!s) return;
    for (const f of [...parse.filters].sort((a, b) => b.start - a.start)) s.q = cut(s.q, f.start, f.end);
    sync();
    search({ push: true });
  });
  ui.toggle.addEventListener("click", () => toggleFilters());
  ui.pick.addEventListener("click", () => ui.file.click());
  ui.file.addEventListener("change", () => {
    if (ui.file.files && ui.file.files[0]) addImage(ui.file.files[0]);
    ui.file.value = "";
  });
  ui.grid.addEventListener("keydown", gridKeys);
  ui.grid.addEventListener("click", gridClick);
  cleanup.push(catchImages(ui.drop, addImage));
  const keys = (e) => pageKeys(e);
  document.addEventListener("keydown", keys);
  cleanup.push(() => document.removeEventListener("keydown", keys));
}

function toggleFilters(open) {
  const show = open === undefined ? ui.filters.hidden : open;
  ui.filters.hidden = !show;
  ui.toggle.setAttribute("aria-expanded", String(show));
  if (show) ui.not.focus();
}

function sync() {
  ui.q.value = s.q;
  ui.not.value = s.not;
  for (const f of FILTERS) ui[f].value = s[f];
  ui.k.value = String(s.k);
  const inText = s.parse && s.parse.text === s.q ? s.parse.filters.length : 0;
  const n = FILTERS.filter((f) => s[f]).length + (s.not ? 1 : 0) + inText;
  ui.toggle.textContent = n ? `Filters (${n})` : "Filters";
  if (n - inText && ui.filters.hidden && !sync.done) toggleFilters(true);
  sync.done = true;
  renderChips();
}

function renderChips() {
  const chip = (kind, item, label, img) => {
    const weight = h("input", {
      type: "range", min: "-1", max: "3", step: "0.25", value: String(item.weight),
      "aria-label": `Weight of ${label}`, title: "Weight (negative: less like this)",
    });
    const shown = h("output", {}, item.weight.toFixed(2));
    weight.addEventListener("input", () => {
      item.weight = parseFloat(weight.value);
      shown.textContent = item.weight.toFixed(2);
      later();
    });
    const remove = h("button", { type: "button", class: "icon-btn", "aria-label": `Remove ${label}` }, "×");
    remove.addEventListener("click", () => {
      if (kind === "like") s.likes = s.likes.filter((l) => l !== item);
      else {
        s.uploads = s.uploads.filter((u) => u !== item);
        forget(item.id);
      }
      renderChips();
      search({ push: true });
    });
    const pic = h("img", { src: img, alt: "", width: "36", height: "36" });
    pic.addEventListener("error", () => pic.classList.add("broken"));
    return h("div", { class: `chip ${kind}`, dataset: { id: String(item.id) } }, pic, h("span", { class: "chip-label" }, label), weight, shown, remove);
  };
  ui.chips.replaceChildren(
    ...s.likes.map((l) => chip("like", l, `like #${l.id}`, `/api/images/${l.id}/thumb?size=160`)),
    ...s.uploads.map((u) => chip("upload", u, u.name, u.library_id ? `/api/images/${u.library_id}/thumb?size=160` : u.url)),
  );
}

// --- filters in the query text -------------------------------------------------------------

const NOTHING = { filters: [], keywords: [], error: null };

/** How the server reads `text` (GET /api/query), remembered per text. */
async function readQuery(text, signal) {
  if (!text.trim()) return { ...NOTHING, text };
  if (s.parsed.has(text)) return s.parsed.get(text);
  const answer = { ...(await api("/api/query", { params: { q: text }, signal })), text };
  if (s.parsed.size > 50) s.parsed.delete(s.parsed.keys().next().value);
  s.parsed.set(text, answer);
  return answer;
}

/** The parse of the box's text as it is now (however it changes while we wait). */
async function currentParse() {
  for (;;) {
    const text = s.q;
    let parse;
    try {
      parse = await readQuery(text);
    } catch {
      parse = { ...NOTHING, text };
    }
    if (s && s.q === text) return parse;
    if (!s) return { ...NOTHING, text };
  }
}

/** A control changed: write its filter into the query text (replace, add or remove it). */
async function setFilter(key, value) {
  const parse = await currentParse();
  if (!s) return; // the page is gone
  const token = filterToken(key, value);
  const found = parse.filters.find((f) => f.key === key);
  let q = s.q;
  if (found) {
    if (token === filterToken(key, found.value)) return;
    q = cut(q, found.start, found.end, token);
  } else if (token) {
    q = [q.trim(), token].filter(Boolean).join(" ");
  } else {
    return;
  }
  s.q = q;
  ui.q.value = q;
  search({ push: true });
}

/** Remove one chip's filter from the query text and search again. */
function removeFilter(parse, f) {
  const written = parse.text.slice(f.start, f.end);
  let { start, end } = f;
  if (s.q !== parse.text) { // typed meanwhile: find what the chip stood for
    start = s.q.indexOf(written);
    end = start + written.length;
    if (start < 0) return;
  }
  s.q = cut(s.q, start, end);
  ui.q.value = s.q;
  ui.q.focus();
  search({ push: true });
}

function showParse(parse) {
  s.parse = parse;
  const error = parse.error;
  if (error) ui.q.setAttribute("aria-invalid", "true");
  else ui.q.removeAttribute("aria-invalid");
  ui.error.hidden = !error;
  ui.error.replaceChildren(...(error ? errorParts(parse.text, error) : []));
  ui.filterChips.replaceChildren(...filterChips(parse, (f) => removeFilter(parse, f)));
  if (error) return; // the controls keep what they had until the text reads again
  for (const [id, key] of Object.entries(TEXT_FILTERS)) {
    if (document.activeElement === ui[id]) continue; // being typed in
    const found = parse.filters.find((f) => f.key === key);
    const value = found ? found.value : "";
    ui[id].value = ui[id].type === "date" ? asDate(value) : value;
  }
}

// --- searching ------------------------------------------------------------------------------

function later() {
  clearTimeout(s.timer);
  s.timer = setTimeout(() => search(), TYPING_MS);
}

function request() {
  const terms = [];
  if (s.not.trim()) terms.push({ text: s.not.trim(), weight: -1 });
  for (const l of s.likes) terms.push({ like: l.id, weight: l.weight });
  for (const u of s.uploads) terms.push({ upload: u.id, weight: u.weight });
  const body = {
    terms, k: s.k,
    filters: { folders: s.folder ? [s.folder] : [], source: s.source || null, tag: s.tag || null },
  };
  if (s.q.trim()) body.q = s.q.trim();
  const min = parseFloat(s.min);
  if (s.min !== "" && !Number.isNaN(min)) body.min_score = min;
  return body;
}

function hasQuery() {
  return Boolean(s.q.trim() || s.likes.length || s.uploads.length);
}

async function search({ push = false, retried = false } = {}) {
  clearTimeout(s.timer);
  remember({ push });
  sync();
  if (s.ctrl) s.ctrl.abort();
  const seq = ++s.seq;
  if (!hasQuery()) {
    showParse({ ...NOTHING, text: s.q });
    s.results = [];
    render();
    welcome();
    return;
  }
  s.ctrl = new AbortController();
  const { signal } = s.ctrl;
  document.body.classList.add("busy");
  try {
    const parse = await readQuery(s.q, signal).catch((e) => {
      if (e.name === "AbortError") throw e;
      return { ...NOTHING, text: s.q }; // the chips are a help; the search says what is wrong
    });
    if (seq !== s.seq) return;
    showParse(parse);
    sync();
    if (parse.error) { // nothing to ask the server: the box says what to fix
      ui.grid.classList.add("stale");
      ui.more.hidden = true;
      ui.summary.textContent = "";
      return;
    }
    const answer = await cutSearch(request(), signal);
    if (seq !== s.seq) return;
    s.results = answer.results;
    s.rest = answer.rest;
    s.active = 0;
    ui.empty.replaceChildren();
    render(answer);
  } catch (e) {
    if (e.name === "AbortError" || seq !== s.seq) return;
    if (e instanceof ApiError && e.code === "upload_expired" && !retried) {
      try {
        const fresh = await reupload(s.uploads.map((u) => u.id), ctx.info.max_upload_bytes);
        s.uploads = s.uploads.map((u) => ({ ...fresh.get(u.id), weight: u.weight }));
        return search({ retried: true });
      } catch (e2) {
        s.uploads = [];
        return showError(e2);
      }
    }
    showError(e);
  } finally {
    if (seq === s.seq) document.body.classList.remove("busy");
  }
}

/**
 * Search with the automatic cutoff; when it cut the list, the results past the cut come too
 * (the same ranking, uncut) and wait behind "Show more". At least CUT_FLOOR results show.
 */
async function cutSearch(body, signal) {
  const answer = await api("/api/search", { json: { ...body, cutoff: "auto" }, signal });
  if (!answer.count || answer.count >= body.k) return { ...answer, rest: [] };
  const full = await api("/api/search", { json: body, signal });
  if (full.count <= answer.count) return { ...answer, rest: [] };
  const keep = Math.max(answer.count, CUT_FLOOR);
  return {
    ...full, results: full.results.slice(0, keep), rest: full.results.slice(keep),
    count: Math.min(keep, full.count), took_ms: answer.took_ms + full.took_ms,
  };
}

function showMore() {
  const start = s.results.length;
  const more = s.rest;
  s.results = [...s.results, ...more];
  s.rest = [];
  ui.grid.append(...more.map((r, j) => tile(r, start + j)));
  ui.more.hidden = true;
  summarize(s.results.length, null);
  focusTile(start);
}

function showError(e) {
  s.results = [];
  s.rest = [];
  ui.more.hidden = true;
  ui.grid.replaceChildren();
  ui.summary.className = "summary error";
  ui.summary.setAttribute("role", "alert");
  ui.summary.textContent = e.hint ? `${e.message} — ${e.hint}` : e.message;
}

function render(answer) {
  ui.summary.className = "summary muted";
  ui.summary.removeAttribute("role");
  ui.grid.classList.remove("stale");
  const rest = (answer && answer.rest) || [];
  ui.more.hidden = !rest.length;
  ui.more.textContent = `Show ${rest.length} more`;
  if (!answer) {
    ui.summary.textContent = "";
    ui.grid.replaceChildren();
    return;
  }
  if (answer.library_empty) {
    ui.summary.textContent = "The library is empty: run `clipsearch index PATH` to add photos.";
  } else if (!answer.count) {
    ui.summary.textContent = "No results. Try other words, or loosen the filters.";
  } else {
    summarize(answer.count, answer.took_ms, rest.length);
  }
  ui.grid.replaceChildren(...s.results.map(tile));
}

function summarize(n, ms, hidden = 0) {
  const took = ms === null ? "" : ` · ${Math.round(ms)} ms`;
  const tail = hidden ? " · the rest match less well" : "";
  ui.summary.textContent = `${n} result${n === 1 ? "" : "s"}${took}${tail}`;
}

function tile(r, i) {
  const label = r.score === null ? r.name : `${r.name} — score ${formatScore(r.score)}`;
  const img = h("img", {
    src: r.thumb_url, alt: r.name, loading: "lazy", decoding: "async",
    width: String(r.width || 320), height: String(r.height || 320),
  });
  const link = h(
    "a", { class: "tile", href: r.file_url, title: label, tabindex: i === 0 ? "0" : "-1", dataset: { index: String(i), id: String(r.id) } },
    img, h("span", { class: "score", "aria-hidden": "true" }, formatScore(r.score)),
    r.keyword ? h("span", { class: "kw", title: "The quoted words match this picture: its name, folder, tags, place, camera or the text in it" }, "≡ keyword") : null,
  );
  const more = h("button", { type: "button", class: "more-btn", title: "More like this (m)", "aria-label": `More like ${r.name}`, dataset: { more: String(r.id) } }, "≈");
  return h("li", {}, link, more);
}

function welcome() {
  ui.summary.textContent = "";
  ui.empty.replaceChildren(
    h("h1", {}, "Find a photo by describing it"),
    h("p", { class: "muted" }, "Type a few words — “a dog on a beach” — and results appear as you type. Or drop, paste or pick an image to find similar ones."),
    h("ul", { class: "tips muted" },
      h("li", {}, "Weights and negatives: ", h("code", {}, "2:beach + sunset - people")),
      h("li", {}, "Filters and exact words: ", h("code", {}, 'tram near:Lisbon after:2023 camera:pixel text:"menu" "yellow tram"')),
      h("li", {}, "Press ", h("kbd", {}, "?"), " for keyboard shortcuts.")),
  );
}

// --- the grid: keyboard and clicks ----------------------------------------------------------

function tiles() {
  return [...ui.grid.querySelectorAll("a.tile")];
}

function focusTile(i) {
  const all = tiles();
  if (!all.length) return;
  const n = Math.max(0, Math.min(all.length - 1, i));
  for (const t of all) t.tabIndex = -1;
  all[n].tabIndex = 0;
  all[n].focus();
  s.active = n;
}

function columns() {
  const all = tiles();
  if (all.length < 2) return 1;
  const top = all[0].getBoundingClientRect().top;
  const n = all.findIndex((t) => Math.abs(t.getBoundingClientRect().top - top) > 2);
  return n < 0 ? all.length : n;
}

function gridKeys(e) {
  const el = e.target.closest("a.tile");
  if (!el || e.ctrlKey || e.metaKey || e.altKey) return;
  const i = parseInt(el.dataset.index, 10);
  const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns(), ArrowDown: columns(), Home: -i, End: s.results.length };
  if (e.key in moves) {
    e.preventDefault();
    if (e.key === "ArrowUp" && i < columns()) ui.q.focus();
    else focusTile(i + moves[e.key]);
  } else if (e.key === "m") {
    e.preventDefault();
    moreLike(s.results[i].id);
  }
}

function gridClick(e) {
  const more = e.target.closest("button[data-more]");
  if (more) {
    moreLike(parseInt(more.dataset.more, 10));
    return;
  }
  const el = e.target.closest("a.tile");
  if (!el || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return; // new tab: the file
  e.preventDefault();
  open(parseInt(el.dataset.index, 10));
}

function open(i) {
  s.active = i;
  openViewer({
    items: s.results, index: i,
    onMoreLike: (id) => moreLike(id),
    onFolder: (folder) => {
      s.folder = folder;
      search({ push: true });
    },
    onClose: (index) => focusTile(index),
  });
}

function moreLike(id) {
  s.q = "";
  s.likes = [{ id, weight: 1 }];
  s.uploads = [];
  search({ push: true });
  window.scrollTo({ top: 0 });
}

async function addImage(file) {
  ui.summary.className = "summary muted";
  ui.summary.textContent = "Reading the image…";
  const up = await uploadImage(file, ctx.info.max_upload_bytes);
  if (!up) {
    ui.summary.textContent = "";
    return;
  }
  s.uploads = [...s.uploads, { ...up, weight: 1 }];
  search({ push: true });
}

function clearAll() {
  s.q = "";
  s.likes = [];
  for (const u of s.uploads) forget(u.id);
  s.uploads = [];
  search({ push: true });
}

function pageKeys(e) {
  if (e.defaultPrevented || viewerOpen() || e.ctrlKey || e.metaKey || e.altKey) return;
  if (document.querySelector("dialog[open]")) return;
  if (typing(e)) {
    if (e.key === "Escape" && e.target === ui.q && !ui.q.value) ui.q.blur();
    return;
  }
  if (e.key === "/") {
    e.preventDefault();
    ui.q.focus();
    ui.q.select();
  } else if (e.key === "f") {
    e.preventDefault();
    toggleFilters();
  } else if (e.key === "Escape" && hasQuery()) {
    clearAll();
    ui.q.focus();
  }
}

async function loadRoots() {
  try {
    const st = await api("/api/status");
    ui.roots.replaceChildren(...st.roots.map((r) => h("option", { value: r.path })));
  } catch {
    /* suggestions only */
  }
}

async function loadTags() {
  try {
    const t = await api("/api/tags");
    ui.tagList.replaceChildren(...t.tags.map((x) => h("option", { value: x.label }, `${x.images}`)));
  } catch {
    /* suggestions only */
  }
}

// --- page lifecycle -------------------------------------------------------------------------

export async function mount(root, context) {
  ctx = context;
  s = fresh();
  build(root);
  fromParams(context.params);
  sync();
  loadRoots();
  loadTags();
  if (hasQuery()) await search();
  else welcome();
  ui.q.focus();
}

export function update(params) {
  const ids = ((history.state && history.state.uploads) || []).map((u) => u.id).join();
  if (toParams().toString() === params.toString() && ids === s.uploads.map((u) => u.id).join()) return;
  fromParams(params);
  sync();
  search();
}

export function unmount() {
  for (const fn of cleanup) fn();
  cleanup = [];
  if (s && s.ctrl) s.ctrl.abort();
  s = null;
  ui = null;
}
