// The generation page: prompts in, a background job out (POST /api/generate), polled for its
// step, loss and latest frame (GET /api/generate/ID), cancellable (DELETE). When it is done
// the new picture is shown with a link that finds it by search among generated images.

import { api, h, toast } from "../lib.js";

export const title = "Generate";

const POLL_MS = 400;
let ui = null;
let timer = null;
let jobId = null;

function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", { class: "muted" }, hint) : null);
}

function build(root) {
  ui = {
    prompts: h("textarea", { id: "gen-prompts", rows: 3, required: true, placeholder: "a red circle on a white background\npeople:-0.5" }),
    steps: h("input", { id: "gen-steps", type: "number", min: 1, max: 2000, value: 60 }),
    seed: h("input", { id: "gen-seed", type: "number", min: 0, placeholder: "random" }),
    size: h("input", { id: "gen-size", placeholder: "default", pattern: "\\d+(x\\d+)?", title: "WIDTHxHEIGHT, e.g. 256x256" }),
    drawer: h("select", { id: "gen-drawer" }, h("option", { value: "vqgan" }, "VQGAN"), h("option", { value: "pixel" }, "Pixels")),
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
      field("Steps", ui.steps), field("Seed", ui.seed), field("Size", ui.size), field("Drawer", ui.drawer)),
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
  const out = { prompts, steps: parseInt(ui.steps.value, 10) || 60, drawer: ui.drawer.value, preview_every: 2 };
  if (ui.seed.value !== "") out.seed = parseInt(ui.seed.value, 10);
  const m = /^\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*$/.exec(ui.size.value);
  if (m) {
    out.width = parseInt(m[1], 10);
    out.height = parseInt(m[2] || m[1], 10);
  }
  return out;
}

async function start(event) {
  event.preventDefault();
  ui.result.replaceChildren();
  try {
    const job = await api("/api/generate", { json: body() });
    follow(job);
  } catch (e) {
    ui.status.textContent = e.hint ? `${e.message} ${e.hint}` : e.message;
    ui.status.className = "error";
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
  ui.status.textContent = {
    running: job.cancel_requested ? "Cancelling…" : `Step ${job.step} of ${job.steps}${loss}`,
    done: `Done: ${job.steps} steps${loss}. The picture is in the library.`,
    cancelled: "Cancelled; nothing was saved.",
    failed: job.error ? `${job.error.message}${job.error.hint ? ` — ${job.error.hint}` : ""}` : "Failed.",
  }[job.state];
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
}

export async function mount(root) {
  build(root);
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
