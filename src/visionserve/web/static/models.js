// "Models & server": every model with its task, backend, devices, input size and state, with load
// and unload buttons; the server's readiness (/readyz), queue depth and request rate (read from
// the Prometheus text of /metrics, every POLL_MS while the view is open); and a small benchmark:
// a warm-up, then N requests of the current image, C at a time, giving images/s and latencies.

import { api, apiUrl } from "./api.js";
import { describe, h, ms, notify, shared } from "./ui.js";

const POLL_MS = 3000;
const WARMUP = 2;
/** Routes whose requests the page itself makes while polling: left out of the request rate. */
const POLLED_ROUTES = new Set(["/metrics", "/readyz", "/healthz", "/v1/models"]);

/** Samples of Prometheus text: [{name, labels: {..}, value}] (comments and bad lines skipped). */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([A-Za-z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return samples;
}

function total(samples, name, keep = () => true) {
  return samples.filter((s) => s.name === name && keep(s.labels)).reduce((sum, s) => sum + s.value, 0);
}

/** The p-th percentile (0-100) of `values` (nearest rank). */
export function percentile(values, p) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function stat(id, label) {
  const value = h("dd", { id }, "–");
  return { value, node: h("div", {}, h("dt", {}, label), value) };
}

function inputSize(model) {
  return model.input ? `${model.input.width}×${model.input.height}` : "any";
}

/** A JPEG to benchmark with when no image was tried yet: a drawn 640×480 scene. */
async function sampleImage() {
  const canvas = h("canvas", { width: 640, height: 480 });
  const ctx = canvas.getContext("2d");
  const gradient = ctx.createLinearGradient(0, 0, 640, 480);
  gradient.addColorStop(0, "#4a7bb7");
  gradient.addColorStop(1, "#e8d9a8");
  ctx.fillStyle = gradient;
  ctx.fillRect(0, 0, 640, 480);
  ctx.fillStyle = "#333";
  ctx.fillRect(220, 160, 200, 240);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

async function timedPredict(model, image) {
  const form = new FormData();
  form.append("image", image, "benchmark.jpg");
  const started = performance.now();
  await api(`/v1/models/${encodeURIComponent(model)}/predict`, { method: "POST", body: form });
  return performance.now() - started;
}

/** Warm up, then `count` requests with at most `concurrency` in flight. */
export async function benchmark(model, image, count, concurrency, onProgress = () => {}) {
  for (let i = 0; i < WARMUP; i += 1) await timedPredict(model, image);
  const latencies = [];
  let next = 0;
  const started = performance.now();
  async function worker() {
    while (next < count) {
      next += 1;
      latencies.push(await timedPredict(model, image));
      onProgress(latencies.length);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const seconds = (performance.now() - started) / 1000;
  return { count, seconds, perSecond: count / seconds, p50: percentile(latencies, 50), p95: percentile(latencies, 95) };
}

function buildHealth() {
  const stats = {
    ready: stat("server-ready", "Readiness"),
    queue: stat("server-queue", "Queue depth"),
    rate: stat("server-rate", "Requests/s"),
    images: stat("server-images", "Images/s"),
    inFlight: stat("server-in-flight", "Requests in flight"),
  };
  const reason = h("p", { id: "server-reason", class: "muted" });
  const node = h("div", {}, h("h3", {}, "Server"), h("dl", { class: "stats" }, Object.values(stats).map((s) => s.node)), reason);
  return { node, stats, reason };
}

function buildBench() {
  const model = h("select", { id: "bench-model" });
  const count = h("input", { id: "bench-count", type: "number", min: 1, max: 1000, value: 20 });
  const concurrency = h("input", { id: "bench-concurrency", type: "number", min: 1, max: 32, value: 4 });
  const run = h("button", { type: "button", id: "bench-run" }, "Run benchmark");
  const result = h("p", { id: "bench-result", role: "status" });
  const field = (id, label, input) => h("div", { class: "field" }, h("label", { for: id }, label), input);
  const node = h(
    "div",
    {},
    h("h3", {}, "Benchmark"),
    h("p", { class: "muted" }, `${WARMUP} warm-up requests, then the requests of the last image tried (or a drawn one).`),
    h("div", { class: "panel controls" }, field("bench-model", "Model", model), field("bench-count", "Requests", count),
      field("bench-concurrency", "At once", concurrency), run),
    result,
  );
  return { node, model, count, concurrency, run, result };
}

function actionFor(model, button) {
  if (model.state === "loaded") return button("Unload", "unload");
  if (model.state !== "loading" && model.state !== "unloading") return button("Load", "load");
  const waiting = button(model.state === "loading" ? "Loading…" : "Unloading…", "load");
  waiting.disabled = true;
  return waiting;
}

function modelRow(model, act) {
  const button = (label, action) =>
    h("button", { type: "button", class: "secondary", "aria-label": `${label} ${model.name}`, onclick: (e) => act(model.name, action, e.currentTarget) }, label);
  const state = h("span", { class: `state-${model.state}` }, model.state);
  return h(
    "tr",
    { dataset: { model: model.name } },
    h("th", { scope: "row" }, model.name),
    h("td", {}, model.task || "–"),
    h("td", {}, model.backend || "–"),
    h("td", {}, (model.devices || []).join(", ") || "–"),
    h("td", {}, inputSize(model)),
    h("td", { class: "model-state", title: model.error || "" }, state),
    h("td", {}, String(model.queue_depth)),
    h("td", {}, h("div", { class: "row" }, actionFor(model, button))),
  );
}

export const view = {
  title: "Models & server",
  mount(el) {
    const health = buildHealth();
    const body = h("tbody", { id: "models-body" });
    const head = ["Model", "Task", "Backend", "Devices", "Input", "State", "Queue", ""].map((t) => h("th", { scope: "col" }, t));
    const table = h("div", { class: "table-wrap" }, h("table", { id: "models-table" }, h("thead", {}, h("tr", {}, head)), body));
    const bench = buildBench();
    el.append(health.node, h("h3", {}, "Models"), table, bench.node);
    let timer = null;
    let previous = null; // {at, requests, images}

    async function act(name, action, button) {
      button.disabled = true; // loading a model takes a while: one click is enough
      button.textContent = action === "load" ? "Loading…" : "Unloading…";
      try {
        await api(`/v1/models/${encodeURIComponent(name)}/${action}`, { method: "POST" });
        notify(`${name}: ${action === "load" ? "loaded" : "unloaded"}`);
      } catch (error) {
        notify(`${name}: ${describe(error)}`, "error");
      }
      await refresh();
    }

    async function refreshModels() {
      const { models, default: preferred } = await api("/v1/models");
      body.replaceChildren(...models.map((m) => modelRow(m, act)));
      const keep = bench.model.value;
      const usable = models.filter((m) => m.task && m.state !== "failed");
      bench.model.replaceChildren(...usable.map((m) => h("option", { value: m.name }, m.name)));
      const fallback = usable.find((m) => m.name === preferred) || usable[0];
      bench.model.value = usable.some((m) => m.name === keep) ? keep : (fallback || {}).name || "";
    }

    async function refreshHealth() {
      // /readyz is public and answers its document with 503 too: read it whatever the status
      const readiness = await (await fetch(apiUrl("/readyz"), { cache: "no-store" })).json();
      health.stats.ready.value.textContent = readiness.status;
      health.stats.ready.value.className = readiness.status === "ready" ? "ok" : "error";
      health.reason.textContent = readiness.status === "ready" ? "" : readiness.reason || "";
      const samples = parseMetrics(await api("/metrics"));
      const now = performance.now();
      const requests = total(samples, "visionserve_requests_total", (l) => !POLLED_ROUTES.has(l.route));
      const images = total(samples, "visionserve_images_total");
      health.stats.queue.value.textContent = String(total(samples, "visionserve_queue_depth"));
      // less this scrape itself, which is in progress while the text is written
      health.stats.inFlight.value.textContent = String(Math.max(0, total(samples, "visionserve_requests_in_progress") - 1));
      if (previous) {
        const seconds = (now - previous.at) / 1000;
        health.stats.rate.value.textContent = ((requests - previous.requests) / seconds).toFixed(1);
        health.stats.images.value.textContent = ((images - previous.images) / seconds).toFixed(1);
      }
      previous = { at: now, requests, images };
    }

    async function refresh() {
      try {
        await Promise.all([refreshModels(), refreshHealth()]);
      } catch (error) {
        health.reason.textContent = `Cannot reach the server: ${describe(error)}`;
      }
    }

    async function runBenchmark() {
      const model = bench.model.value;
      const count = Math.max(1, Math.min(1000, Number(bench.count.value) || 20));
      const concurrency = Math.max(1, Math.min(32, Number(bench.concurrency.value) || 4));
      bench.run.disabled = true;
      bench.result.textContent = `Warming up ${model}…`;
      try {
        const image = shared.image || (await sampleImage());
        const r = await benchmark(model, image, count, concurrency, (done) => {
          bench.result.textContent = `${done} / ${count} requests…`;
        });
        bench.result.textContent =
          `${model}: ${r.perSecond.toFixed(1)} images/s, p50 ${ms(r.p50)}, p95 ${ms(r.p95)} ` +
          `(${r.count} requests, ${concurrency} at once, ${r.seconds.toFixed(2)} s)`;
      } catch (error) {
        bench.result.textContent = `Benchmark failed: ${describe(error)}`;
      } finally {
        bench.run.disabled = false;
      }
    }

    bench.run.addEventListener("click", runBenchmark);
    return {
      show() {
        refresh();
        timer = setInterval(refresh, POLL_MS);
      },
      hide() {
        clearInterval(timer);
        timer = null;
      },
    };
  },
};
