// The "Streams" view: the running streams (GET /v1/streams, polled while shown), one stream
// watched live (its MJPEG in an <img> and its Server-Sent Events listed), and a form that starts a
// stream, with zones and lines drawn on a snapshot of the source.
//
// <img> and EventSource cannot send the API key: with keys on, every stream URL carries a
// short-lived signed token (api.js streamUrl; never the key), asked for again when a connection drops.
import { api, streamUrl } from "./api.js";
import { Poller, field, fillModels, fmt, h, statusLine } from "./live.js";
import { ZoneEditor } from "./zones.js";

const LIST_EVERY_MS = 2000;
const SNAPSHOT_TRIES = 60;
const BOX_TASKS = ["detect", "segment", "pose"];

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("no image"));
    image.src = url;
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The newest frame of a just-created stream, once it has processed one (latest.jpg is a 503 before).
async function firstFrame(stream) {
  const path = `/v1/streams/${encodeURIComponent(stream.id)}`;
  for (let i = 0; i < SNAPSHOT_TRIES; i += 1) {
    const { state, stats, last_error: error } = await api(path);
    if (stats.frames_processed > 0) return loadImage(await streamUrl(stream.id, "latest.jpg"));
    if (state === "ended" || state === "error") throw new Error(`The stream ${state} before its first frame${error ? `: ${error}` : ""}.`);
    await sleep(250);
  }
  throw new Error(`The stream gave no frame in ${(SNAPSHOT_TRIES * 250) / 1000} s.`);
}

class StreamList {
  constructor(onWatch, onStop, onChange) {
    this.onWatch = onWatch;
    this.onStop = onStop;
    this.onChange = onChange;
    this.body = h("tbody");
    this.status = statusLine();
    const heads = ["stream", "source", "model", "state", "fps (processed / source)", "latency p50", "viewers", ""];
    this.node = h(
      "section",
      { class: "live-card", "aria-labelledby": "streams-list-title" },
      h("h3", { id: "streams-list-title" }, "Running streams"),
      h(
        "div",
        { class: "live-scroll" },
        h("table", { class: "live-table", id: "streams-table" }, h("thead", {}, h("tr", {}, ...heads.map((t) => h("th", {}, t)))), this.body),
      ),
      this.status.node,
    );
  }

  async refresh() {
    const { streams } = await api("/v1/streams");
    this.status.show(streams.length ? "" : "No streams are running. Start one below.");
    this.body.replaceChildren(...streams.map((s) => this.row(s)));
    return streams;
  }

  row(stream) {
    const stats = stream.stats;
    const act = (text, fn) => h("button", { type: "button", onclick: () => this.act(fn) }, text);
    const base = `/v1/streams/${encodeURIComponent(stream.id)}`;
    const paused = stream.state === "paused";
    const live = ["starting", "running", "reconnecting"].includes(stream.state);
    return h(
      "tr",
      { dataset: { stream: stream.id, state: stream.state } },
      h("td", {}, stream.id),
      h("td", {}, stream.source),
      h("td", {}, stream.model),
      h("td", { class: `live-state live-state-${stream.state}`, title: stream.last_error ?? "" }, stream.state),
      h("td", {}, `${fmt.num(stats.processed_fps)} / ${fmt.num(stats.source_fps)}`),
      h("td", {}, stats.latency_ms.p50 === null ? "–" : `${fmt.num(stats.latency_ms.p50, 0)} ms`),
      h("td", {}, String(stats.viewers + stats.event_consumers)),
      h(
        "td",
        { class: "live-actions" },
        h("button", { type: "button", class: "primary", onclick: () => this.onWatch(stream) }, "Watch"),
        paused || live ? act(paused ? "Resume" : "Pause", () => api(`${base}/${paused ? "resume" : "pause"}`, { method: "POST" })) : null,
        act("Stop", async () => {
          this.onStop(stream.id);
          await api(base, { method: "DELETE" });
        }),
      ),
    );
  }

  async act(fn) {
    try {
      await fn();
      await this.onChange();
    } catch (error) {
      this.status.fail(error);
    }
  }
}

class Viewer {
  constructor() {
    this.id = null;
    this.events = null;
    this.count = 0;
    this.title = h("h3", { id: "stream-viewer-title" }, "Stream");
    this.image = h("img", { class: "live-mjpeg", alt: "the stream's annotated frames" });
    this.image.addEventListener("error", () => this.renew("image"));
    this.info = h("p", { class: "live-hint" });
    this.detections = h("tbody");
    this.counts = h("ul", { class: "live-counts" });
    this.status = statusLine();
    const heads = ["label", "score", "track", "box"];
    this.node = h(
      "section",
      { class: "live-card", hidden: true, "aria-labelledby": "stream-viewer-title", id: "stream-viewer" },
      this.title,
      h("button", { type: "button", onclick: () => this.close() }, "Close"),
      h(
        "div",
        { class: "live-split" },
        h("div", { class: "live-media" }, this.image),
        h(
          "div",
          { class: "live-side" },
          this.info,
          this.counts,
          h("table", { class: "live-table", id: "stream-detections" }, h("thead", {}, h("tr", {}, ...heads.map((t) => h("th", {}, t)))), this.detections),
        ),
      ),
      this.status.node,
    );
  }

  async open(stream) {
    this.close();
    this.id = stream.id;
    this.count = 0;
    this.title.textContent = `Stream ${stream.id} — ${stream.source}`;
    this.node.hidden = false;
    this.info.textContent = "Waiting for events…";
    await this.connect();
  }

  async connect() {
    const id = this.id;
    let mjpeg, events;
    try {
      [mjpeg, events] = await Promise.all([streamUrl(id, "mjpeg"), streamUrl(id, "events")]);
    } catch (error) {
      this.status.fail(error);
      return;
    }
    if (id !== this.id) return;
    this.status.show("");
    this.image.src = mjpeg;
    this.events?.close();
    this.events = new EventSource(events);
    this.events.addEventListener("message", (message) => this.show(JSON.parse(message.data)));
    this.events.addEventListener("error", () => {
      if (this.events?.readyState === EventSource.CLOSED) this.renew("events");
    });
  }

  // A connection failed (token expired, stream ended or gone): one new token, at most every 2 s.
  renew(what) {
    if (this.id === null || this.renewing) return;
    this.renewing = true;
    this.status.show(`The ${what} connection dropped; reconnecting…`);
    setTimeout(async () => {
      this.renewing = false;
      if (this.id !== null) await this.connect();
    }, 2000);
  }

  show(event) {
    this.count += 1;
    this.info.textContent = `frame ${event.frame} · ${fmt.num(event.timestamp, 2)} s · ${event.width}×${event.height} · ${this.count} events`;
    this.detections.replaceChildren(
      ...event.detections.map((d) =>
        h("tr", {}, h("td", {}, d.label), h("td", {}, fmt.score(d.score)), h("td", {}, d.tracker_id ?? "–"), h("td", {}, fmt.box(d.box))),
      ),
    );
    const zones = Array.isArray(event.zones) ? event.zones : [];
    const lines = Array.isArray(event.lines) ? event.lines : [];
    this.counts.replaceChildren(
      ...zones.map((z) => h("li", {}, `zone ${z.name}: ${z.total} inside`)),
      ...lines.map((l) => h("li", {}, `line ${l.name}: ${l.in} in, ${l.out} out`)),
    );
  }

  close() {
    this.id = null;
    this.events?.close();
    this.events = null;
    this.image.removeAttribute("src");
    this.node.hidden = true;
  }
}

class StartForm {
  constructor(onStarted) {
    this.onStarted = onStarted;
    this.editor = new ZoneEditor();
    this.status = statusLine();
    const input = (attrs) => h("input", attrs);
    this.inputs = {
      source: input({ type: "text", required: true, placeholder: "moving.mp4, rtsp://…, device:0", name: "source" }),
      model: h("select", { name: "model" }),
      conf: input({ type: "number", min: 0, max: 1, step: 0.05, placeholder: "model's", name: "conf" }),
      classes: input({ type: "text", placeholder: "person, car", name: "classes" }),
      max_fps: input({ type: "number", min: 0.1, max: 240, step: 0.1, placeholder: "as fast as it goes", name: "max_fps" }),
      name: input({ type: "text", placeholder: "random", pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}", name: "name" }),
      loop: input({ type: "checkbox", name: "loop" }),
      track: input({ type: "checkbox", name: "track", checked: true }),
      motion: input({ type: "checkbox", name: "motion" }),
    };
    const i = this.inputs;
    this.form = h(
      "form",
      { class: "live-form", id: "stream-start", onsubmit: (event) => this.submit(event) },
      h(
        "div",
        { class: "live-grid" },
        field("Source", i.source),
        field("Model", i.model),
        field("Confidence", i.conf),
        field("Classes", i.classes),
        field("Most fps", i.max_fps),
        field("Name", i.name),
        field("Loop a file", i.loop),
        field("Track", i.track),
        field("Only on motion", i.motion),
      ),
      h(
        "div",
        { class: "live-row" },
        h("button", { type: "button", onclick: () => this.snapshot() }, "Snapshot to draw zones"),
        h("button", { type: "button", onclick: () => this.editor.clear() }, "Clear zones"),
        h("button", { type: "submit", class: "primary" }, "Start stream"),
      ),
      this.editor.node,
      this.status.node,
    );
    this.node = h(
      "section",
      { class: "live-card", "aria-labelledby": "stream-start-title" },
      h("h3", { id: "stream-start-title" }, "Start a stream"),
      this.form,
    );
  }

  spec() {
    const i = this.inputs;
    const spec = { source: i.source.value.trim(), track: i.track.checked, loop: i.loop.checked, motion: i.motion.checked };
    if (i.model.value) spec.model = i.model.value;
    if (i.conf.value !== "") spec.conf = Number(i.conf.value);
    if (i.max_fps.value !== "") spec.max_fps = Number(i.max_fps.value);
    if (i.name.value.trim()) spec.name = i.name.value.trim();
    const classes = i.classes.value.split(",").map((c) => c.trim()).filter(Boolean);
    if (classes.length) spec.classes = classes;
    return spec;
  }

  // A stream of the same source started for a moment, its first frame kept, then stopped.
  async snapshot() {
    if (!this.form.reportValidity()) return;
    const { name, ...spec } = this.spec();
    this.status.show("Taking a snapshot…");
    try {
      const stream = await api("/v1/streams", { method: "POST", body: { ...spec, loop: true } });
      let image;
      try {
        image = await firstFrame(stream);
      } finally {
        await api(`/v1/streams/${encodeURIComponent(stream.id)}`, { method: "DELETE" });
      }
      this.editor.setImage(image);
      this.status.show("Click on the snapshot to draw zones and lines, then start the stream.");
    } catch (error) {
      this.status.fail(error);
    }
  }

  async submit(event) {
    event.preventDefault();
    try {
      const stream = await api("/v1/streams", { method: "POST", body: { ...this.spec(), ...this.editor.value() } });
      this.status.show(`Started stream ${stream.id}.`);
      await this.onStarted(stream);
    } catch (error) {
      this.status.fail(error);
    }
  }
}

export const view = {
  title: "Streams",
  mount(section) {
    const viewer = new Viewer();
    const list = new StreamList(
      (stream) => viewer.open(stream),
      (id) => viewer.id === id && viewer.close(),
      () => list.refresh(),
    );
    const form = new StartForm(async (stream) => {
      await list.refresh();
      await viewer.open(stream);
    });
    const poller = new Poller(() => list.refresh(), LIST_EVERY_MS, (error) => list.status.fail(error));
    section.append(h("div", { class: "live-view" }, list.node, viewer.node, form.node));
    return {
      show() {
        poller.start();
        fillModels(form.inputs.model, BOX_TASKS).catch((error) => form.status.fail(error));
      },
      hide() {
        poller.stop();
        viewer.close();
      },
    };
  },
};
