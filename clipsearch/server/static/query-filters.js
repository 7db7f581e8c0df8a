// Filters written in the query text, on the page: how the server reads a text (its one parser,
// GET /api/query), chips for what it found, the parser's complaint with the place marked, and
// the small text edits the controls make (`key:value` written, replaced or cut out).

import { h } from "./lib.js";

/** `key:value`, quoted when the value has spaces (a quote cannot be written inside one). */
export function filterToken(key, value) {
  const v = String(value).replace(/"/g, "").trim();
  if (!v) return "";
  return /\s/.test(v) ? `${key}:"${v}"` : `${key}:${v}`;
}

/** `text` without [start, end), one space where the two sides meet. */
export function cut(text, start, end, insert = "") {
  const left = text.slice(0, start).replace(/\s+$/, "");
  const right = text.slice(end).replace(/^\s+/, "");
  return [left, insert, right].filter(Boolean).join(" ");
}

/** A filter's value as a date input shows it: 2023 -> 2023-01-01, 2023-06 -> 2023-06-01. */
export function asDate(value) {
  const m = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?/.exec(value || "");
  return m ? `${m[1]}-${m[2] || "01"}-${m[3] || "01"}` : "";
}

/** The parser's complaint: message, the text with the place marked, and how to fix it. */
export function errorParts(text, error) {
  const parts = [h("strong", {}, error.message)];
  if (error.position) {
    const at = Math.min(error.position - 1, text.length);
    const rest = text.slice(at);
    const word = rest.slice(0, rest.search(/\s|$/)) || " ";
    parts.push(h("code", { class: "where" }, text.slice(0, at), h("mark", {}, word), rest.slice(word.trim() ? word.length : 0)));
  }
  if (error.hint) parts.push(h("span", { class: "hint" }, error.hint));
  return parts;
}


/** One chip per filter the parser found: its label and a × calling `onRemove(filter)`. */
export function filterChips(parse, onRemove) {
  return parse.filters.map((f) => {
    const written = parse.text.slice(f.start, f.end);
    const remove = h("button", { type: "button", class: "icon-btn", "aria-label": `Remove ${f.label}`, title: `Remove ${written}` }, "×");
    remove.addEventListener("click", () => onRemove(f));
    return h("span", { class: "chip filter", dataset: { key: f.key }, title: written },
      h("span", { class: "chip-label" }, f.label), remove);
  });
}
