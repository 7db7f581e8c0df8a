// The library page: what the library holds (GET /api/status) and the files that could not be
// indexed (GET /api/failures).

import { api, formatBytes, formatDate, h } from "../lib.js";

export const title = "Library";

function fact(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

export async function mount(root) {
  const section = h("section", { class: "library-page" }, h("h1", {}, "Library"));
  root.append(section);
  let st;
  let failures = [];
  try {
    [st, failures] = await Promise.all([api("/api/status"), api("/api/failures", { params: { limit: 500 } })]);
  } catch (e) {
    section.append(h("p", { class: "error", role: "alert" }, e.message));
    return;
  }
  const idx = st.index || {};
  section.append(
    h("dl", { class: "facts" },
      ...fact("Folder", h("span", { class: "path" }, st.library)),
      ...fact("Images", `${st.images.toLocaleString()} (${st.photos.toLocaleString()} photos, ${st.generated.toLocaleString()} generated)`),
      ...fact("Model", `${st.model}${st.dim ? ` (${st.dim}-d vectors)` : ""}`),
      ...fact("Index", `${idx.kind || "none"} · ${(idx.vectors || 0).toLocaleString()} vectors${idx.nprobe ? ` · nprobe ${idx.nprobe}` : ""}`),
      ...fact("Size on disk", formatBytes(st.size_bytes)),
      ...fact("Created", formatDate(st.created_at)),
      ...fact("Writing now", st.writer && st.writer.pid ? `pid ${st.writer.pid}${st.writer.command ? ` (${st.writer.command})` : ""}` : "nobody"),
    ),
    h("h2", {}, "Indexed folders"),
    st.roots.length
      ? h("ul", { class: "roots" }, ...st.roots.map((r) => h("li", {},
        h("a", { href: `#/search?folder=${encodeURIComponent(r.path)}`, class: "path" }, r.path),
        h("span", { class: "muted" }, r.last_indexed_at ? ` — indexed ${formatDate(r.last_indexed_at)}` : " — never finished"))))
      : h("p", { class: "muted" }, "None yet: run ", h("code", {}, "clipsearch index PATH"), "."),
    h("h2", {}, `Files that could not be indexed (${st.failures.toLocaleString()})`),
    failures.length
      ? h("ul", { class: "failures" }, ...failures.map((f) => h("li", {}, h("span", { class: "path" }, f.path), h("span", { class: "muted" }, ` — ${f.reason}`))))
      : h("p", { class: "muted" }, "None."),
  );
}
