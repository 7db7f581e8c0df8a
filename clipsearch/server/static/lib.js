// Shared helpers for the page and its feature pages: the API client, DOM building, toasts,
// formatting. No framework, no build step.

export class ApiError extends Error {
  constructor(status, code, message, hint, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint;
    this.field = field || null; // the request field at fault, when the server names one
  }
}

let loginPromise = null;

/** Ask for the token (once, however many requests are waiting for it). */
function login() {
  if (loginPromise) return loginPromise;
  const dialog = document.getElementById("login");
  const form = document.getElementById("login-form");
  const input = document.getElementById("login-token");
  const error = document.getElementById("login-error");
  loginPromise = new Promise((resolve) => {
    const submit = async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        await sendToken(input.value);
        form.removeEventListener("submit", submit);
        dialog.close();
        input.value = "";
        loginPromise = null;
        resolve();
      } catch (e) {
        error.textContent = e.message;
        input.select();
      }
    };
    form.addEventListener("submit", submit);
    dialog.addEventListener("cancel", (e) => e.preventDefault()); // nothing works without it
    dialog.showModal();
    input.focus();
  });
  return loginPromise;
}

/** Exchange the token for an HttpOnly session cookie. */
export async function sendToken(token) {
  const r = await fetch("/api/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
  if (!r.ok) throw new ApiError(r.status, "unauthorized", "Wrong token.");
}

/**
 * Call the API: `api("/api/search", {json: {...}})`, `api(path, {form: FormData})`.
 * Resolves to the parsed JSON; rejects with ApiError (the server's message) or AbortError.
 * A 401 shows the login dialog and retries.
 */
export async function api(path, { json, form, method, signal, params } = {}) {
  let url = path;
  if (params) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      for (const item of Array.isArray(v) ? v : [v]) {
        if (item !== undefined && item !== null && item !== "") qs.append(k, item);
      }
    }
    if ([...qs].length) url += "?" + qs;
  }
  const init = { method: method || (json || form ? "POST" : "GET"), signal, headers: {} };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form;
  }
  init.headers.Accept = "application/json";
  const r = await fetch(url, init);
  if (r.status === 401) {
    await login();
    return api(path, { json, form, method, signal, params });
  }
  const text = await r.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!r.ok) {
    const err = (body && body.error) || {};
    throw new ApiError(r.status, err.code || "error", err.message || `HTTP ${r.status}`, err.hint, err.field);
  }
  return body;
}

/** Build an element: h("a", {href, class: "x", onclick}, "text", child, ...). */
/**
 * Text for people: a file name that is not UTF-8 reaches the page with lone surrogates
 * (U+DC80..U+DCFF stand for its odd bytes); show each as \xNN, as the CLI does. The data
 * itself stays as it came, so it goes back to the server unchanged.
 */
export function displayText(s) {
  return String(s).replace(/[\uDC80-\uDCFF]/g, (c) => "\\x" + (c.charCodeAt(0) - 0xdc00).toString(16));
}

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, k === "href" || k === "src" || k === "value" ? v : displayText(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(displayText(c)));
  }
  return el;
}

let toastTimer = null;

/** A short message at the bottom of the screen (read out by screen readers). */
export function toast(message, { error = false, ms = 4000 } = {}) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.classList.toggle("error", error);
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), ms);
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function formatDate(value) {
  if (value === null || value === undefined || value === "") return "";
  const d = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A score as the page shows it; none (a search by filters only) is a dash. */
export function formatScore(s) {
  if (s === null || s === undefined) return "—";
  return (Math.round(s * 1000) / 1000).toFixed(3);
}

/** True when the key event comes from a place where typing means text. */
export function typing(event) {
  const t = event.target;
  if (!t || !t.tagName) return false;
  const tag = t.tagName.toLowerCase();
  return tag === "input" || tag === "textarea" || tag === "select" || t.isContentEditable;
}

/** Copy text, with a toast either way. */
export async function copy(text, what = "Copied") {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what}.`);
  } catch {
    toast("Copying is not allowed here; select the text instead.", { error: true });
  }
}
