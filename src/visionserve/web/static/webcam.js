// The "Webcam" view: the browser's camera through WS /v1/detect/ws, with the detections drawn on a
// canvas over the live video and the real frame rate and latency shown.
//
// One frame is in flight at a time: a frame is captured, JPEG-encoded and sent, and the next one
// only when the answer for it came back. So "fps" is the rate of answered frames (what the model
// and the network allow, not the camera's), and "latency" is the time from the capture to its
// answer (encode, upload, queue, inference, download), measured here with performance.now().
import { websocketUrl } from "./api.js";
import { drawPrediction } from "./draw.js";
import { field, fillModels, fmt, h, statusLine } from "./live.js";

const JPEG_QUALITY = 0.8;
const RATE_WINDOW_MS = 2000;
const LATENCY_SAMPLES = 30;
const BOX_TASKS = ["detect", "segment", "pose"];

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

class Webcam {
  constructor() {
    this.running = false;
    this.status = statusLine();
    this.model = h("select", { name: "model", "aria-label": "model" });
    this.conf = h("input", { type: "number", name: "conf", min: 0, max: 1, step: 0.05, placeholder: "model's" });
    this.toggle = h("button", { type: "button", class: "primary", id: "webcam-toggle", onclick: () => this.flip() }, "Start camera");
    this.video = h("video", { class: "live-video", autoplay: true, muted: true, playsinline: true, "aria-label": "camera" });
    this.overlay = h("canvas", { class: "live-overlay", "aria-hidden": "true" });
    this.capture = document.createElement("canvas");
    this.stats = {
      fps: h("output", { id: "webcam-fps" }, "–"),
      latency: h("output", { id: "webcam-latency" }, "–"),
      inference: h("output", { id: "webcam-inference" }, "–"),
      frames: h("output", { id: "webcam-frames" }, "0"),
    };
    this.list = h("ul", { class: "live-detections", id: "webcam-detections", "aria-live": "off" });
    const stat = (label, output) => h("div", { class: "live-stat" }, h("span", {}, label), output);
    this.node = h(
      "div",
      { class: "live-view" },
      h("div", { class: "live-row" }, field("Model", this.model), field("Confidence", this.conf), this.toggle),
      this.status.node,
      h(
        "div",
        { class: "live-split" },
        h("div", { class: "live-media live-stage" }, this.video, this.overlay),
        h(
          "div",
          { class: "live-side" },
          h(
            "div",
            { class: "live-stats" },
            stat("fps", this.stats.fps),
            stat("latency p50", this.stats.latency),
            stat("inference", this.stats.inference),
            stat("frames answered", this.stats.frames),
          ),
          this.list,
        ),
      ),
    );
  }

  flip() {
    if (this.running) this.stop();
    else this.start().catch((error) => this.fail(error));
  }

  async start() {
    if (!navigator.mediaDevices?.getUserMedia) throw new Error("This browser gives no camera here (the page needs https or localhost).");
    this.running = true;
    this.toggle.textContent = "Stop camera";
    this.sent = new Map();
    this.answers = [];
    this.latencies = [];
    this.index = 0;
    this.answered = 0;
    this.status.show("Opening the camera…");
    this.media = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: { ideal: "environment" } }, audio: false });
    if (!this.running) return this.release();
    this.video.srcObject = this.media;
    await this.video.play();
    const url = await websocketUrl({ model: this.model.value || null, conf: this.conf.value || null });
    if (!this.running) return this.release();
    this.socket = new WebSocket(url);
    this.socket.addEventListener("open", () => {
      this.status.show("Connected.");
      this.send();
    });
    this.socket.addEventListener("message", (message) => this.answer(JSON.parse(message.data)));
    this.socket.addEventListener("close", (event) => {
      if (this.running) this.fail(new Error(`The server closed the connection (code ${event.code}${event.reason ? `: ${event.reason}` : ""}).`));
    });
  }

  async send() {
    const socket = this.socket;
    if (!this.running || socket?.readyState !== WebSocket.OPEN || !this.video.videoWidth) {
      if (this.running) setTimeout(() => this.send(), 100);
      return;
    }
    this.capture.width = this.video.videoWidth;
    this.capture.height = this.video.videoHeight;
    this.capture.getContext("2d").drawImage(this.video, 0, 0);
    const started = performance.now();
    const blob = await new Promise((resolve) => this.capture.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
    if (!this.running || socket !== this.socket || !blob) return;
    this.sent.set(this.index, started);
    this.index += 1;
    socket.send(blob);
  }

  answer(message) {
    const now = performance.now();
    const started = this.sent.get(message.frame);
    this.sent.delete(message.frame);
    if (started !== undefined) this.latencies = [...this.latencies, now - started].slice(-LATENCY_SAMPLES);
    this.answers = [...this.answers, now].filter((t) => now - t <= RATE_WINDOW_MS);
    this.answered += 1;
    if (message.error) this.status.fail(new Error(`Frame ${message.frame}: ${message.error.message}`));
    else this.draw(message);
    this.showStats(message);
    this.send();
  }

  draw(message) {
    this.overlay.width = message.width;
    this.overlay.height = message.height;
    const ctx = this.overlay.getContext("2d");
    ctx.clearRect(0, 0, message.width, message.height);
    drawPrediction(ctx, message, {});
    this.list.replaceChildren(
      ...message.detections.map((d) => h("li", {}, `${d.label} ${fmt.score(d.score)}`)),
    );
  }

  showStats(message) {
    const span = this.answers.length > 1 ? this.answers.at(-1) - this.answers[0] : 0;
    this.stats.fps.textContent = span > 0 ? fmt.num(((this.answers.length - 1) * 1000) / span) : "–";
    const p50 = median(this.latencies);
    this.stats.latency.textContent = p50 === null ? "–" : `${fmt.num(p50, 0)} ms`;
    const inference = message.timings?.inference;
    this.stats.inference.textContent = inference === undefined ? "–" : `${fmt.num(inference, 0)} ms`;
    this.stats.frames.textContent = `${this.answered} (${message.skipped ?? 0} skipped)`;
  }

  fail(error) {
    this.stop();
    this.status.fail(error);
  }

  stop() {
    this.running = false;
    this.toggle.textContent = "Start camera";
    this.socket?.close();
    this.socket = null;
    this.release();
    this.status.show("Stopped.");
  }

  release() {
    for (const track of this.media?.getTracks() ?? []) track.stop();
    this.media = null;
    this.video.srcObject = null;
  }
}

export const view = {
  title: "Webcam",
  mount(section) {
    const webcam = new Webcam();
    section.append(webcam.node);
    return {
      show() {
        fillModels(webcam.model, BOX_TASKS).catch((error) => webcam.status.fail(error));
      },
      hide() {
        if (webcam.running) webcam.stop();
      },
    };
  },
};
