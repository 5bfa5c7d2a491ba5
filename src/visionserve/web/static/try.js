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

export const view = {
  title: "Try a model",
  mount(el) {
    const controls = buildControls();
    const inputs = buildInputs();
    const out = buildResult();
    const status = h("p", { id: "try-status", role: "status", class: "muted" }, "Choose a model and an image.");
    const gallery = h("div", { class: "gallery", id: "try-gallery", hidden: true, "aria-label": "Images of the batch" });
    el.append(controls.panel, inputs.drop, inputs.cameraPanel, status, gallery, out.result);

    const state = { models: [], files: [], items: [], selected: 0, stream: null, busy: null };

    function currentModel() {
      return state.models.find((m) => m.name === controls.model.value);
    }

    function options() {
      const model = currentModel();
      const skeleton = model && model.keypoints ? model.keypoints.skeleton : undefined;
      return { conf: Number(controls.conf.value), iou: Number(controls.iou.value), mode: controls.mode.value, skeleton };
    }

    function showSelected() {
      const item = state.items[state.selected];
      if (!item) return;
      const drawn = paint(out.canvas, item.bitmap, item.prediction, options(), MAX_CANVAS_SIDE);
      const isClass = Boolean(item.prediction.classes);
      out.heading.firstChild.textContent = isClass ? "Top classes" : "Detections";
      out.count.textContent = String(drawn.length);
      out.list.replaceChildren(...drawn.map((d) => listItem(d, isClass)));
      out.json.textContent = JSON.stringify(item.answer, null, 2);
      const t = item.prediction.timings;
      out.timing.textContent = t ? `Server: ${ms(t.total)} (inference ${ms(t.inference)}), round trip ${ms(item.roundTrip)}` : "";
      out.result.hidden = false;
    }

    function redraw() {
      for (const [i, item] of state.items.entries()) {
        if (item.thumb) paint(item.thumb, item.bitmap, item.prediction, options(), THUMB_SIDE);
        if (item.button) item.button.setAttribute("aria-pressed", String(i === state.selected));
      }
      showSelected();
    }

    function buildGallery() {
      gallery.hidden = state.items.length < 2;
      gallery.replaceChildren(
        ...state.items.map((item, i) => {
          item.thumb = h("canvas", { "aria-hidden": "true" });
          item.button = h("button", { type: "button", "aria-label": `Show ${item.name}`, onclick: () => select(i) }, item.thumb);
          return item.button;
        }),
      );
    }

    function select(index) {
      state.selected = index;
      redraw();
    }

    async function predict(files) {
      const model = currentModel();
      if (!model || !files.length) return;
      state.files = files;
      shared.image = files[0];
      if (state.busy) state.busy.abort();
      const abort = new AbortController();
      state.busy = abort;
      const form = new FormData();
      for (const file of files) form.append("image", file, file.name || "image.jpg");
      const query = model.task === "classify"
        ? { top_k: SERVER_TOP_K }
        : { conf: SERVER_CONF, iou: SERVER_IOU, max_det: SERVER_MAX_DET };
      status.textContent = `Sending ${files.length} image(s) to ${model.name}…`;
      const started = performance.now();
      try {
        const answer = await api(`/v1/models/${encodeURIComponent(model.name)}/predict`, { method: "POST", body: form, query, signal: abort.signal });
        const roundTrip = performance.now() - started;
        const predictions = predictionsOf(answer);
        const bitmaps = await Promise.all(files.map((f) => createImageBitmap(f, { imageOrientation: "from-image" })));
        state.items = predictions.map((prediction, i) => ({
          prediction, bitmap: bitmaps[i], name: files[i].name || `image ${i + 1}`, roundTrip,
          answer: predictions.length === 1 ? answer : { model: answer.model, version: answer.version, task: answer.task, ...answer.results[i] },
        }));
        state.selected = 0;
        controls.mode.disabled = model.task === "classify";
        buildGallery();
        redraw();
        status.textContent = `${model.name} answered for ${files.length} image(s) in ${ms(roundTrip)}.`;
        if (model.state !== "loaded") refreshModels();
      } catch (error) {
        if (error.name === "AbortError") return;
        status.textContent = `Error: ${describe(error)}`;
        notify(describe(error), "error");
      }
    }

    function takeFiles(list) {
      const files = [...list].filter((f) => f.type.startsWith("image/") || f.type === "");
      if (files.length) predict(files);
      else notify("No image in what was given.", "error");
    }

    function applyThresholds() {
      const model = currentModel();
      if (!model || !model.thresholds) return;
      const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
      controls.conf.value = clamp(model.thresholds.conf, SERVER_CONF, 1);
      controls.iou.value = clamp(model.thresholds.iou, 0.05, SERVER_IOU);
      for (const input of [controls.conf, controls.iou]) input.dispatchEvent(new Event("input"));
    }

    async function refreshModels() {
      const keep = controls.model.value;
      const answer = await api("/v1/models");
      state.models = answer.models.filter((m) => m.task);
      controls.model.replaceChildren(
        ...state.models.map((m) => h("option", { value: m.name }, `${m.name} (${m.task}${m.state === "loaded" ? "" : `, ${m.state}`})`)),
      );
      const preferred = state.models.find((m) => m.name === answer.default) || state.models[0];
      controls.model.value = keep && state.models.some((m) => m.name === keep) ? keep : (preferred || {}).name || "";
      if (!keep) applyThresholds();
    }

    async function startCamera() {
      try {
        state.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
        inputs.video.srcObject = state.stream;
        inputs.cameraPanel.hidden = false;
      } catch (error) {
        notify(`No camera: ${describe(error)}`, "error");
      }
    }

    function stopCamera() {
      if (state.stream) for (const track of state.stream.getTracks()) track.stop();
      state.stream = null;
      inputs.video.srcObject = null;
      inputs.cameraPanel.hidden = true;
    }

    function capture() {
      const video = inputs.video;
      const canvas = h("canvas", { width: video.videoWidth, height: video.videoHeight });
      canvas.getContext("2d").drawImage(video, 0, 0);
      canvas.toBlob((blob) => {
        stopCamera();
        if (blob) predict([new File([blob], "camera.jpg", { type: "image/jpeg" })]);
      }, "image/jpeg", 0.92);
    }

    function download() {
      const item = state.items[state.selected];
      out.canvas.toBlob((blob) => {
        const url = URL.createObjectURL(blob);
        const base = (item ? item.name : "image").replace(/\.[^.]+$/, "");
        const link = h("a", { href: url, download: `${base}-annotated.png` });
        link.click();
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
      }, "image/png");
    }

    const onPaste = (event) => {
      const files = event.clipboardData ? [...event.clipboardData.files] : [];
      if (files.length) {
        event.preventDefault();
        takeFiles(files);
      }
    };

    inputs.file.addEventListener("change", () => takeFiles(inputs.file.files));
    inputs.drop.addEventListener("dragover", (e) => { e.preventDefault(); inputs.drop.classList.add("over"); });
    inputs.drop.addEventListener("dragleave", () => inputs.drop.classList.remove("over"));
    inputs.drop.addEventListener("drop", (e) => {
      e.preventDefault();
      inputs.drop.classList.remove("over");
      takeFiles(e.dataTransfer.files);
    });
    inputs.camera.addEventListener("click", startCamera);
    inputs.snap.addEventListener("click", capture);
    inputs.cancel.addEventListener("click", stopCamera);
    out.download.addEventListener("click", download);
    for (const input of [controls.conf, controls.iou, controls.mode]) input.addEventListener("input", redraw);
    controls.model.addEventListener("change", () => {
      applyThresholds();
      if (state.files.length) predict(state.files);
    });
    refreshModels().catch((error) => (status.textContent = `Cannot list the models: ${describe(error)}`));

    return {
      show() {
        document.addEventListener("paste", onPaste);
      },
      hide() {
        document.removeEventListener("paste", onPaste);
        stopCamera();
      },
    };
  },
};
