// "Try a model": pick a model, give it images (choose, drop, paste, or a webcam photo), see the
// prediction drawn over each image, its detections listed and the raw JSON; the confidence and IoU
// sliders and the render mode re-filter and redraw at once, without asking the server again.
//
// The request asks for everything above SERVER_CONF with the server's NMS loosened to SERVER_IOU,
// so the sliders can only tighten what came back (conf from SERVER_CONF to 1, IoU from 0.05 to
// SERVER_IOU, per-class NMS done here). Several images go as one request (repeated `image`
// fields) and show as a gallery; the model's answer for each is drawn by draw.js.

import { api } from "./api.js";
import { drawPrediction, RENDER_MODES, colorFor } from "./draw.js";
import { describe, h, ms, notify, score, shared } from "./ui.js";

const SERVER_CONF = 0.05;
const SERVER_IOU = 0.9;
const SERVER_MAX_DET = 300;
const SERVER_TOP_K = 10;
const MAX_CANVAS_SIDE = 1600;
const THUMB_SIDE = 240;

function slider(id, label, min, max, value) {
  const input = h("input", { id, type: "range", min, max, step: 0.01, value });
  const output = h("output", { for: id }, Number(value).toFixed(2));
  input.addEventListener("input", () => (output.value = Number(input.value).toFixed(2)));
  return { input, output, field: h("div", { class: "field" }, h("label", { for: id }, label, " ", output), input) };
}

function buildControls() {
  const model = h("select", { id: "try-model" });
  const conf = slider("try-conf", "Confidence", SERVER_CONF, 1, 0.4);
  const iou = slider("try-iou", "IoU (overlap kept)", 0.05, SERVER_IOU, 0.45);
  const mode = h("select", { id: "try-mode" }, Object.entries(RENDER_MODES).map(([v, t]) => h("option", { value: v }, t)));
  const panel = h(
    "div",
    { class: "panel controls" },
    h("div", { class: "field" }, h("label", { for: "try-model" }, "Model"), model),
    conf.field,
    iou.field,
    h("div", { class: "field" }, h("label", { for: "try-mode" }, "Render"), mode),
  );
  return { panel, model, conf: conf.input, iou: iou.input, mode };
}

function buildInputs() {
  const file = h("input", { id: "try-file", type: "file", accept: "image/*", multiple: true });
  const camera = h("button", { type: "button", class: "secondary", id: "try-camera" }, "Take a photo");
  camera.hidden = !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  const drop = h(
    "div",
    { class: "drop", id: "try-drop" },
    h("p", {}, h("label", { for: "try-file" }, "Choose images"), ", drop them here, or paste one (Ctrl+V)."),
    file,
    h("div", { class: "row" }, camera),
  );
  const video = h("video", { autoplay: true, playsinline: true, muted: true, "aria-label": "Camera preview" });
  const snap = h("button", { type: "button" }, "Capture");
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  const cameraPanel = h("div", { class: "panel", hidden: true }, h("div", { class: "canvas-wrap" }, video), h("div", { class: "row" }, snap, cancel));
  return { drop, file, camera, video, snap, cancel, cameraPanel };
}

function buildResult() {
  const canvas = h("canvas", { id: "try-canvas", role: "img", "aria-label": "The image with the prediction drawn over it" });
  const download = h("button", { type: "button", id: "try-download" }, "Download annotated image");
  const count = h("span", { id: "try-count" }, "0");
  const heading = h("h3", {}, h("span", { id: "try-list-title" }, "Detections"), " (", count, ")");
  const list = h("ol", { id: "try-list", class: "list", "aria-labelledby": "try-list-title" });
  const json = h("pre", { id: "try-json", class: "json", tabindex: 0 });
  const timing = h("p", { id: "try-timing", class: "muted" });
  const result = h(
    "div",
    { class: "result", id: "try-result", hidden: true },
    h("div", {}, h("div", { class: "canvas-wrap" }, canvas), h("div", { class: "row" }, download), timing),
    h("div", {}, heading, list, h("details", { open: true }, h("summary", {}, "Raw JSON"), json)),
  );
  return { result, canvas, download, count, heading, list, json, timing };
}

/** The predictions of a native answer, one per image (a single image answers without `results`). */
function predictionsOf(answer) {
  const items = answer.results || [answer];
  return items.map((item) => ({ ...item, task: answer.task, model: answer.model }));
}

function paint(canvas, bitmap, prediction, options, maxSide) {
  const scale = Math.min(1, maxSide / Math.max(prediction.width, prediction.height));
  canvas.width = Math.max(1, Math.round(prediction.width * scale));
  canvas.height = Math.max(1, Math.round(prediction.height * scale));
  const ctx = canvas.getContext("2d");
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  ctx.drawImage(bitmap, 0, 0, prediction.width, prediction.height);
  return drawPrediction(ctx, prediction, options);
}

function listItem(item, isClass) {
  const detail = isClass
    ? null
    : h("span", { class: "num" }, `[${[item.box.x1, item.box.y1, item.box.x2, item.box.y2].map(Math.round).join(", ")}]`);
  const swatch = h("span", { class: "swatch", "aria-hidden": "true" });
  swatch.style.background = colorFor(item.class_id); // CSSOM, which the CSP allows (a style attribute it would not)
  return h(
    "li",
    {},
    swatch,
    h("span", { class: "label" }, item.label),
    h("span", { class: "num" }, score(item.score)),
    detail,
  );
}

/** One result per image: its prediction, decoded image, name and answer document. */
function resultItems(answer, files, bitmaps, roundTrip) {
  return predictionsOf(answer).map((prediction, i) => ({
    prediction,
    bitmap: bitmaps[i],
    name: files[i].name || `image ${i + 1}`,
    roundTrip,
    answer: answer.results ? { model: answer.model, version: answer.version, task: answer.task, ...answer.results[i] } : answer,
  }));
}

/** The browser's camera in a panel: start, capture one JPEG (given to `onPhoto`), stop. */
class Camera {
  constructor(inputs, onPhoto) {
    this.inputs = inputs;
    this.onPhoto = onPhoto;
    this.stream = null;
    inputs.camera.addEventListener("click", () => this.start());
    inputs.snap.addEventListener("click", () => this.capture());
    inputs.cancel.addEventListener("click", () => this.stop());
  }

  async start() {
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
      this.inputs.video.srcObject = this.stream;
      this.inputs.cameraPanel.hidden = false;
    } catch (error) {
      notify(`No camera: ${describe(error)}`, "error");
    }
  }

  stop() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    this.inputs.video.srcObject = null;
    this.inputs.cameraPanel.hidden = true;
  }

  capture() {
    const video = this.inputs.video;
    const canvas = h("canvas", { width: video.videoWidth, height: video.videoHeight });
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((blob) => {
      this.stop();
      if (blob) this.onPhoto(new File([blob], "camera.jpg", { type: "image/jpeg" }));
    }, "image/jpeg", 0.92);
  }
}

class TryView {
  constructor(el) {
    this.controls = buildControls();
    this.inputs = buildInputs();
    this.out = buildResult();
    this.status = h("p", { id: "try-status", role: "status", class: "muted" }, "Choose a model and an image.");
    this.gallery = h("div", { class: "gallery", id: "try-gallery", hidden: true, "aria-label": "Images of the batch" });
    el.append(this.controls.panel, this.inputs.drop, this.inputs.cameraPanel, this.status, this.gallery, this.out.result);
    this.models = [];
    this.files = [];
    this.items = [];
    this.selected = 0;
    this.pending = null; // the AbortController of the request in flight
    this.camera = new Camera(this.inputs, (file) => this.predict([file]));
    this.onPaste = (event) => this.paste(event);
    this.listen();
    this.refreshModels().catch((error) => (this.status.textContent = `Cannot list the models: ${describe(error)}`));
  }

  listen() {
    const { inputs, controls } = this;
    inputs.file.addEventListener("change", () => this.take(inputs.file.files));
    inputs.drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      inputs.drop.classList.add("over");
    });
    inputs.drop.addEventListener("dragleave", () => inputs.drop.classList.remove("over"));
    inputs.drop.addEventListener("drop", (e) => {
      e.preventDefault();
      inputs.drop.classList.remove("over");
      this.take(e.dataTransfer.files);
    });
    this.out.download.addEventListener("click", () => this.download());
    for (const input of [controls.conf, controls.iou, controls.mode]) input.addEventListener("input", () => this.redraw());
    controls.model.addEventListener("change", () => {
      this.applyThresholds();
      if (this.files.length) this.predict(this.files);
    });
  }

  model() {
    return this.models.find((m) => m.name === this.controls.model.value);
  }

  options() {
    const model = this.model();
    const skeleton = model && model.keypoints ? model.keypoints.skeleton : undefined;
    const { conf, iou, mode } = this.controls;
    return { conf: Number(conf.value), iou: Number(iou.value), mode: mode.value, skeleton };
  }

  showSelected() {
    const item = this.items[this.selected];
    if (!item) return;
    const out = this.out;
    const drawn = paint(out.canvas, item.bitmap, item.prediction, this.options(), MAX_CANVAS_SIDE);
    const isClass = Boolean(item.prediction.classes);
    out.heading.firstChild.textContent = isClass ? "Top classes" : "Detections";
    out.count.textContent = String(drawn.length);
    out.list.replaceChildren(...drawn.map((d) => listItem(d, isClass)));
    out.json.textContent = JSON.stringify(item.answer, null, 2);
    const t = item.prediction.timings;
    out.timing.textContent = t ? `Server: ${ms(t.total)} (inference ${ms(t.inference)}), round trip ${ms(item.roundTrip)}` : "";
    out.result.hidden = false;
  }

  redraw() {
    for (const [i, item] of this.items.entries()) {
      if (item.thumb) paint(item.thumb, item.bitmap, item.prediction, this.options(), THUMB_SIDE);
      if (item.button) item.button.setAttribute("aria-pressed", String(i === this.selected));
    }
    this.showSelected();
  }

  buildGallery() {
    this.gallery.hidden = this.items.length < 2;
    const select = (index) => {
      this.selected = index;
      this.redraw();
    };
    this.gallery.replaceChildren(
      ...this.items.map((item, i) => {
        item.thumb = h("canvas", { "aria-hidden": "true" });
        item.button = h("button", { type: "button", "aria-label": `Show ${item.name}`, onclick: () => select(i) }, item.thumb);
        return item.button;
      }),
    );
  }

  /** One request for all of `files` (repeated `image` fields), then their results drawn. */
  async predict(files) {
    const model = this.model();
    if (!model || !files.length) return;
    this.files = files;
    shared.image = files[0];
    if (this.pending) this.pending.abort();
    const pending = (this.pending = new AbortController());
    const body = new FormData();
    for (const file of files) body.append("image", file, file.name || "image.jpg");
    const query = model.task === "classify" ? { top_k: SERVER_TOP_K } : { conf: SERVER_CONF, iou: SERVER_IOU, max_det: SERVER_MAX_DET };
    this.status.textContent = `Sending ${files.length} image(s) to ${model.name}…`;
    const started = performance.now();
    try {
      const path = `/v1/models/${encodeURIComponent(model.name)}/predict`;
      const answer = await api(path, { method: "POST", body, query, signal: pending.signal });
      const roundTrip = performance.now() - started;
      const bitmaps = await Promise.all(files.map((f) => createImageBitmap(f, { imageOrientation: "from-image" })));
      this.show(model, resultItems(answer, files, bitmaps, roundTrip));
      this.status.textContent = `${model.name} answered for ${files.length} image(s) in ${ms(roundTrip)}.`;
    } catch (error) {
      if (error.name === "AbortError") return;
      this.status.textContent = `Error: ${describe(error)}`;
      notify(describe(error), "error");
    }
  }

  show(model, items) {
    this.items = items;
    this.selected = 0;
    this.controls.mode.disabled = model.task === "classify";
    this.buildGallery();
    this.redraw();
    if (model.state !== "loaded") this.refreshModels(); // it has loaded for this request
  }

  take(list) {
    const files = [...list].filter((f) => f.type.startsWith("image/") || f.type === "");
    if (files.length) this.predict(files);
    else notify("No image in what was given.", "error");
  }

  paste(event) {
    const files = event.clipboardData ? [...event.clipboardData.files] : [];
    if (files.length) {
      event.preventDefault();
      this.take(files);
    }
  }

  applyThresholds() {
    const model = this.model();
    if (!model || !model.thresholds) return;
    const { conf, iou } = this.controls;
    const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    conf.value = clamp(model.thresholds.conf, SERVER_CONF, 1);
    iou.value = clamp(model.thresholds.iou, 0.05, SERVER_IOU);
    for (const input of [conf, iou]) input.dispatchEvent(new Event("input"));
  }

  async refreshModels() {
    const select = this.controls.model;
    const keep = select.value;
    const answer = await api("/v1/models");
    this.models = answer.models.filter((m) => m.task);
    const text = (m) => `${m.name} (${m.task}${m.state === "loaded" ? "" : `, ${m.state}`})`;
    select.replaceChildren(...this.models.map((m) => h("option", { value: m.name }, text(m))));
    const preferred = this.models.find((m) => m.name === answer.default) || this.models[0];
    select.value = keep && this.models.some((m) => m.name === keep) ? keep : (preferred || {}).name || "";
    if (!keep) this.applyThresholds();
  }

  download() {
    const item = this.items[this.selected];
    this.out.canvas.toBlob((blob) => {
      const url = URL.createObjectURL(blob);
      const base = (item ? item.name : "image").replace(/\.[^.]+$/, "");
      h("a", { href: url, download: `${base}-annotated.png` }).click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    }, "image/png");
  }
}

export const view = {
  title: "Try a model",
  mount(el) {
    const tryView = new TryView(el);
    return {
      show() {
        document.addEventListener("paste", tryView.onPaste);
      },
      hide() {
        document.removeEventListener("paste", tryView.onPaste);
        tryView.camera.stop();
      },
    };
  },
};
