// The generation page: prompts in, a background job out (POST /api/generate), polled for its
// step, loss and latest frame (GET /api/generate/ID), cancellable (DELETE). When it is done
// the new picture is shown with a link that finds it by search among generated images.
// The drawers come from GET /api/generate/options (the VQGAN one needs a VQGAN for the
// library's model); an error that names a request field marks the control it belongs to.
// The transformer drawers sample N candidates that CLIP re-ranks: the result lists them,
// best first, with their CLIP scores (the best is the picture added to the library).

import { ApiError, api, h, toast } from "../lib.js";

export const title = "Generate";

const POLL_MS = 400;
let ui = null;
let timer = null;
let jobId = null;

function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", {}, label), input, hint || null);
}

const MAX_SIDE = 1024;

function build(root) {
  ui = {
    prompts: h("textarea", { id: "gen-prompts", rows: 3, required: true, placeholder: "a red circle on a white background\npeople:-0.5" }),
    steps: h("input", { id: "gen-steps", type: "number", min: 1, max: 2000, value: 60 }),
    seed: h("input", { id: "gen-seed", type: "number", min: 0, max: 2147483647, placeholder: "random" }),
    size: h("input", { id: "gen-size", placeholder: "default", pattern: "\\s*\\d+\\s*([xX]\\s*\\d+)?\\s*", title: "WIDTHxHEIGHT, e.g. 256x256" }),
    drawer: h("select", { id: "gen-drawer", title: "VQGAN: a picture made of a VQGAN's codes. Pixels: the pixels themselves (needs no VQGAN)." },
      h("option", { value: "vqgan" }, "VQGAN"), h("option", { value: "pixel" }, "Pixels"),
      h("option", { value: "transformer" }, "Transformer"), h("option", { value: "transformer+vqgan" }, "Transformer + VQGAN")),
    candidates: h("input", { id: "gen-candidates", type: "number", min: 1, max: 64, value: 16, title: "Transformer drawers: samples CLIP re-ranks (the best is kept)." }),
    drawerNote: h("small", { id: "gen-drawer-note", class: "muted", hidden: true }),
    start: h("button", { type: "submit", class: "primary", id: "gen-start" }, "Generate"),
    cancel: h("button", { type: "button", id: "gen-cancel", hidden: true, onclick: cancel }, "Cancel"),
    bar: h("progress", { id: "gen-progress", max: 1, value: 0, hidden: true }),
    status: h("p", { id: "gen-status", class: "muted", role: "status", "aria-live": "polite" }),
    preview: h("img", { id: "gen-preview", class: "gen-preview", alt: "The picture so far", hidden: true }),
    result: h("div", { id: "gen-result", class: "gen-result" }),
  };
  const form = h("form", { class: "gen-form", onsubmit: start },
    field("Prompts, one per line (text or text:weight; negative weights steer away)", ui.prompts),
    h("div", { class: "row wrap" },
      field("Steps", ui.steps), field("Seed", ui.seed), field("Size", ui.size), field("Drawer", ui.drawer, ui.drawerNote),
      field("Candidates", ui.candidates)),
    h("div", { class: "row" }, ui.start, ui.cancel),
  );
  ui.prompts.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  root.append(h("section", { class: "generate-page" }, h("h1", {}, "Generate"), form, ui.bar, ui.status,
    h("div", { class: "gen-pictures" }, ui.preview, ui.result)));
}

function body() {
  const prompts = ui.prompts.value.split("\n").map((p) => p.trim()).filter(Boolean);
  if (!prompts.length) {
    throw new ApiError(0, "bad_request", "no prompt given", 'Write what to draw under Prompts, e.g. "a red circle on a white background".', "prompts");
  }
  const out = { prompts, steps: parseInt(ui.steps.value, 10) || 60, drawer: ui.drawer.value, preview_every: 2 };
  if (ui.seed.value !== "") out.seed = parseInt(ui.seed.value, 10);
  if (out.drawer.startsWith("transformer")) out.candidates = parseInt(ui.candidates.value, 10) || 16;
  const m = /^\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*$/.exec(ui.size.value);
  if (m) {
    out.width = parseInt(m[1], 10);
    out.height = parseInt(m[2] || m[1], 10);
    if (Math.min(out.width, out.height) < 8 || Math.max(out.width, out.height) > MAX_SIDE) {
      throw new ApiError(0, "bad_request", `a ${out.width}x${out.height} picture is out of range`, `Width and height go from 8 to ${MAX_SIDE}: try 256x256 under Size.`, "size");
    }
  }
  return out;
}

// The request fields the server may name, and the control each is set with.
function control(name) {
  return { prompts: ui.prompts, size: ui.size, width: ui.size, height: ui.size, drawer: ui.drawer, steps: ui.steps, seed: ui.seed, candidates: ui.candidates }[name] || null;
}

function clearMarks() {
  for (const el of [ui.prompts, ui.size, ui.drawer, ui.steps, ui.seed, ui.candidates]) {
    el.removeAttribute("aria-invalid");
    el.removeAttribute("aria-describedby");
  }
}

const sentence = (text) => (text ? text[0].toUpperCase() + text.slice(1) : "");

/** An error in the page's words: its message and hint, and the control it is about marked. */
function showError(err) {
  clearMarks();
  ui.status.className = "error";
  ui.status.textContent = (err.message || "") + (err.hint ? ` — ${err.hint}` : "");
  // A 422 names the field first ("width: ...") when the server gives no `field`.
  const name = err.field || (/^(\w+)(?:\.\d+)?: /.exec(err.message || "") || [])[1];
  const el = name && control(name);
  if (el) {
    el.setAttribute("aria-invalid", "true");
    el.setAttribute("aria-describedby", "gen-status");
    el.focus();
  }
}

async function start(event) {
  event.preventDefault();
  ui.result.replaceChildren();
  clearMarks();
  try {
    const job = await api("/api/generate", { json: body() });
    follow(job);
  } catch (e) {
    if (e.code === "busy") {
      const running = await runningJob();
      if (running) {
        follow(running);
        toast("Another generation is running: here it is (Cancel stops it).");
        return;
      }
    }
    showError(e);
  }
}

async function runningJob() {
  try {
    const jobs = await api("/api/generate");
    return jobs.find((j) => j.state === "running") || null;
  } catch {
    return null;
  }
}

/** Offer the drawers this library can use; the VQGAN one says why when it cannot. */
async function loadDrawers() {
  let opts;
  try {
    opts = await api("/api/generate/options");
  } catch {
    return; // an older server: both drawers, as built
  }
  if (!ui) return;
  const vqgan = opts.drawers.find((d) => d.name === "vqgan");
  for (const d of opts.drawers) {
    const option = ui.drawer.querySelector(`option[value="${d.name}"]`);
    if (option) option.textContent = d.available ? d.label : `${d.label} (not available)`;
  }
  // The transformer drawers are listed only when the library has a transformer.
  for (const option of ui.drawer.querySelectorAll('option[value^="transformer"]')) {
    if (!opts.drawers.some((d) => d.name === option.value)) option.remove();
  }
  ui.drawer.value = opts.default_drawer;
  if (vqgan && !vqgan.available) {
    ui.drawerNote.textContent = "No VQGAN for this library's model: “Pixels” needs none.";
    ui.drawerNote.title = sentence(vqgan.note); // the whole reason
    ui.drawerNote.hidden = false;
  }
}

async function cancel() {
  if (!jobId) return;
  try {
    show(await api(`/api/generate/${jobId}`, { method: "DELETE" }));
  } catch (e) {
    toast(e.message, { error: true });
  }
}

function follow(job) {
  jobId = job.id;
  show(job);
  clearTimeout(timer);
  const poll = async () => {
    try {
      const j = await api(`/api/generate/${jobId}`);
      show(j);
      if (j.state === "running") timer = setTimeout(poll, POLL_MS);
    } catch (e) {
      ui.status.textContent = e.message;
      timer = setTimeout(poll, POLL_MS * 5);
    }
  };
  if (job.state === "running") timer = setTimeout(poll, POLL_MS);
}

function runningText(job, loss) {
  // The transformer drafts its candidates before any optimiser step (none at all for the
  // plain transformer drawer): say so rather than "Step 0 of 0".
  if (job.step === 0 && String(job.drawer || "").startsWith("transformer")) {
    return `Drawing ${job.candidates} candidates${job.steps ? `, then ${job.steps} steps` : ""}…`;
  }
  return `Step ${job.step} of ${job.steps}${loss}`;
}

function show(job) {
  const running = job.state === "running";
  ui.start.disabled = running;
  ui.cancel.hidden = !running;
  ui.cancel.disabled = job.cancel_requested;
  ui.bar.hidden = !running;
  ui.bar.max = job.steps;
  ui.bar.value = job.step;
  ui.status.className = job.state === "failed" ? "error" : "muted";
  const loss = job.loss === null ? "" : ` · loss ${job.loss.toFixed(3)}`;
  if (job.state === "failed") showError(job.error || { message: "failed" });
  else {
    ui.status.textContent = {
      running: job.cancel_requested ? "Cancelling…" : runningText(job, loss),
      done: job.result && job.result.clip_score !== null && job.result.clip_score !== undefined
        ? `Done: best of ${job.result.candidates.length} candidates${job.steps ? `, refined in ${job.steps} steps` : ""}, CLIP score ${job.result.clip_score.toFixed(3)}. The picture is in the library.`
        : `Done: ${job.steps} steps${loss}. The picture is in the library.`,
      cancelled: "Cancelled; nothing was saved.",
    }[job.state];
  }
  if (job.preview_url && running && ui.preview.getAttribute("src") !== job.preview_url) {
    ui.preview.src = job.preview_url;
    ui.preview.hidden = false;
  }
  if (job.state === "done" && job.result) showResult(job.result);
  else if (!running) ui.preview.hidden = job.state !== "cancelled" || !job.preview_url;
}

function showResult(r) {
  ui.preview.hidden = true;
  const name = r.path.split(/[\\/]/).pop();
  ui.result.replaceChildren(
    h("figure", {},
      h("img", { id: "gen-image", src: `/api/images/${r.image_id}/file`, alt: r.prompts.map((p) => p[0]).join(", "), class: "gen-preview" }),
      h("figcaption", {}, h("span", { class: "path" }, name), h("span", { class: "muted" }, ` · seed ${r.seed}`))),
    h("p", {}, h("a", { id: "gen-search", href: r.search_url }, "Find it by search"), " among generated images."),
  );
  if (r.candidates && r.candidates.length) ui.result.append(candidateList(r.candidates));
}

/** The transformer's candidates, best first, each with its CLIP score; the kept one marked.
 * Styled through the CSSOM (the page's CSP allows no inline style attributes). */
function candidateList(candidates) {
  const item = (c) => {
    const img = h("img", { src: c.image, alt: `candidate ${c.index + 1}, CLIP score ${c.clip_score.toFixed(3)}`, width: 64, height: 64 });
    img.style.imageRendering = "pixelated";
    if (c.kept) img.style.outline = "3px solid currentColor";
    const fig = h("figure", { class: "gen-candidate" }, img,
      h("figcaption", { class: c.kept ? "" : "muted" }, `${c.clip_score.toFixed(3)}${c.kept ? " · kept" : ""}`));
    Object.assign(fig.style, { margin: "0", textAlign: "center" });
    return fig;
  };
  const grid = h("div", {}, ...candidates.filter((c) => c.image).map(item));
  Object.assign(grid.style, { display: "flex", flexWrap: "wrap", gap: ".5rem" });
  const section = h("section", { id: "gen-candidates-list" }, h("h2", {}, "Candidates, re-ranked by CLIP"), grid);
  section.style.width = "100%";
  return section;
}

export async function mount(root) {
  build(root);
  for (const el of [ui.prompts, ui.size, ui.drawer, ui.steps, ui.seed, ui.candidates]) {
    el.addEventListener(el.tagName === "SELECT" ? "change" : "input", () => {
      el.removeAttribute("aria-invalid");
      el.removeAttribute("aria-describedby");
    });
  }
  await loadDrawers();
  if (!ui) return; // navigated away meanwhile
  try {
    const jobs = await api("/api/generate");
    if (jobs.length && jobs[0].state === "running") follow(jobs[0]);
  } catch {
    /* nothing running: a fresh page */
  }
  ui.prompts.focus();
}

export function unmount() {
  clearTimeout(timer);
  timer = null;
  jobId = null;
  ui = null;
}
