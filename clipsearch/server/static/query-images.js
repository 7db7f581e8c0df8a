// Query images: pick, drop or paste a picture; it is uploaded once (POST /api/uploads) and
// then referred to by id in searches. The File is kept so an upload the server forgot (it
// restarted) is sent again without bothering the user.

import { ApiError, api, toast } from "./lib.js";

const files = new Map(); // upload id -> {file, url}
const IMAGE_NAME = /\.(jpe?g|jfif|png|webp|gif|bmp|tiff?|heic|heif|hif)$/i;

function looksLikeImage(file) {
  return (file.type && file.type.startsWith("image/")) || IMAGE_NAME.test(file.name || "");
}

/**
 * Upload a query image; resolves to {id, name, url, library_id, ...} or null (with a toast
 * saying why) when it is not an image or is too large.
 */
export async function uploadImage(file, maxBytes) {
  if (!looksLikeImage(file)) {
    toast(`${file.name || "That"} is not an image.`, { error: true });
    return null;
  }
  if (maxBytes && file.size > maxBytes) {
    const mb = (maxBytes / 2 ** 20).toFixed(0);
    toast(`${file.name || "The image"} is too large (the limit is ${mb} MB).`, { error: true });
    return null;
  }
  const form = new FormData();
  form.append("image", file, file.name || "pasted-image");
  let up;
  try {
    up = await api("/api/uploads", { form });
  } catch (e) {
    toast(e.message, { error: true });
    return null;
  }
  const url = URL.createObjectURL(file);
  files.set(up.id, { file, url });
  return { ...up, name: file.name || "pasted image", url };
}

/** Send again the images whose ids the server forgot; returns old id -> new upload. */
export async function reupload(ids, maxBytes) {
  const out = new Map();
  for (const id of ids) {
    const kept = files.get(id);
    if (!kept) throw new ApiError(410, "upload_expired", "Pick the image again.");
    const up = await uploadImage(kept.file, maxBytes);
    if (!up) throw new ApiError(410, "upload_expired", "Pick the image again.");
    out.set(id, up);
  }
  return out;
}

export function forget(id) {
  const kept = files.get(id);
  if (kept) URL.revokeObjectURL(kept.url);
  files.delete(id);
}

export function known(id) {
  return files.has(id);
}

function imageFiles(dataTransfer) {
  if (!dataTransfer) return [];
  const out = [...(dataTransfer.files || [])];
  if (!out.length && dataTransfer.items) {
    for (const item of dataTransfer.items) {
      if (item.kind === "file") {
        const f = item.getAsFile();
        if (f) out.push(f);
      }
    }
  }
  return out.filter(looksLikeImage);
}

function draggingFiles(event) {
  const types = event.dataTransfer ? [...event.dataTransfer.types] : [];
  return types.includes("Files");
}

/**
 * Listen for dropped and pasted images anywhere on the page; `onFile(file)` gets each one.
 * Returns a function that stops listening.
 */
export function catchImages(overlay, onFile) {
  let depth = 0;
  const show = (on) => {
    overlay.hidden = !on;
  };
  const enter = (e) => {
    if (!draggingFiles(e)) return;
    e.preventDefault();
    depth += 1;
    show(true);
  };
  const over = (e) => {
    if (!draggingFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  };
  const leave = (e) => {
    if (!draggingFiles(e)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) show(false);
  };
  const drop = (e) => {
    if (!e.dataTransfer) return;
    e.preventDefault();
    depth = 0;
    show(false);
    const found = imageFiles(e.dataTransfer);
    if (!found.length) toast("Drop an image file to search by it.", { error: true });
    else onFile(found[0]);
  };
  const paste = (e) => {
    const found = imageFiles(e.clipboardData);
    if (!found.length) return; // text pastes go where they were going
    e.preventDefault();
    onFile(found[0]);
  };
  document.addEventListener("dragenter", enter);
  document.addEventListener("dragover", over);
  document.addEventListener("dragleave", leave);
  document.addEventListener("drop", drop);
  document.addEventListener("paste", paste);
  return () => {
    document.removeEventListener("dragenter", enter);
    document.removeEventListener("dragover", over);
    document.removeEventListener("dragleave", leave);
    document.removeEventListener("drop", drop);
    document.removeEventListener("paste", paste);
  };
}
