// The page's entry point: token bootstrap, navigation between feature pages, global keys.
//
// Each feature with a page has a module static/pages/NAME.js (listed by GET /api/info):
//   export const title = "...";
//   export async function mount(root, ctx) {...}   // ctx: {info, params, setParams, go}
//   export function update(params) {...}           // optional: same page, new URL params
//   export function unmount() {...}                // optional
// URLs look like #/search?q=dog&source=photos, so links, reloads and Back all work.

import { api, h, sendToken, toast, typing } from "./lib.js";

const main = document.getElementById("main");
let info = null;
let current = { name: null, module: null };

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const cut = raw.indexOf("?");
  const name = (cut < 0 ? raw : raw.slice(0, cut)) || "search";
  const params = new URLSearchParams(cut < 0 ? "" : raw.slice(cut + 1));
  return { name, params };
}

function hashFor(name, params) {
  const qs = new URLSearchParams(params || {}).toString();
  return `#/${name}${qs ? "?" + qs : ""}`;
}

/** Go to a page (adds a history entry). */
export function go(name, params) {
  location.hash = hashFor(name, params);
}

/**
 * Change the current page's URL params: replace (while typing) or push (a new search, so
 * Back returns to the previous one). `state` is kept with the history entry.
 */
function setParams(params, { push = false, state = null } = {}) {
  const url = hashFor(current.name, params);
  if (push && url !== location.hash) history.pushState(state, "", url);
  else history.replaceState(state, "", url);
}

function pages() {
  return info.features.filter((f) => f.page);
}

function renderNav() {
  const nav = document.getElementById("nav");
  nav.replaceChildren(
    ...pages().map((f) =>
      h("a", { href: `#/${f.page}`, dataset: { page: f.page } }, f.title),
    ),
  );
}

function markNav(name) {
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function route() {
  const { name, params } = parseHash();
  const known = pages().find((f) => f.page === name);
  if (!known) {
    go("search");
    return;
  }
  if (current.name === name && current.module) {
    if (current.module.update) current.module.update(params);
    return;
  }
  if (current.module && current.module.unmount) current.module.unmount();
  current = { name, module: null };
  markNav(name);
  main.replaceChildren(h("p", { class: "muted boot" }, "Loading…"));
  try {
    const module = await import(`./pages/${known.page}.js`);
    if (current.name !== name) return; // navigated away meanwhile
    current.module = module;
    main.replaceChildren();
    document.title = `${module.title || known.title} · clipsearch`;
    await module.mount(main, { info, params, setParams, go });
  } catch (e) {
    main.replaceChildren(h("p", { class: "error", role: "alert" }, `Cannot show this page: ${e.message}`));
  }
}

async function showLibraryLine() {
  try {
    const s = await api("/api/status");
    const n = s.images.toLocaleString();
    document.getElementById("libinfo").textContent = `${n} image${s.images === 1 ? "" : "s"}`;
    document.getElementById("libinfo").title = `${s.library}\nmodel ${s.model}`;
  } catch {
    /* the line is a nicety */
  }
}

function globalKeys(event) {
  if (event.defaultPrevented || typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "?") {
    event.preventDefault();
    document.getElementById("help").showModal();
  }
}

async function start() {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token !== null) {
    url.searchParams.delete("token"); // keep it out of history and bookmarks
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    try {
      await sendToken(token);
    } catch {
      toast("The token in the link is wrong.", { error: true });
    }
  }
  try {
    info = await api("/api/info");
  } catch (e) {
    main.replaceChildren(h("p", { class: "error", role: "alert" }, `The server did not answer: ${e.message}`));
    return;
  }
  renderNav();
  document.getElementById("help-btn").addEventListener("click", () => document.getElementById("help").showModal());
  document.addEventListener("keydown", globalKeys);
  window.addEventListener("hashchange", route);
  showLibraryLine();
  await route();
  document.body.dataset.ready = "1";
}

start();
