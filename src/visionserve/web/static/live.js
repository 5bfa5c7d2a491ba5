// Helpers shared by the live views (streams.js, webcam.js, jobs.js): labelled fields, model
// pickers, number formats, a status line, and a poller that runs only while its view is shown.
// (DOM building is ui.js's h(), re-exported here.)
import { api } from "./api.js";
import { h } from "./ui.js";

export { h };

// A labelled form control: <label>text <control></label>.
export function field(text, control) {
  return h("label", { class: "live-field" }, h("span", {}, text), control);
}

export const fmt = {
  num: (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(digits)),
  score: (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(2)),
  box: (b) => (b ? `${Math.round(b.x1)},${Math.round(b.y1)} – ${Math.round(b.x2)},${Math.round(b.y2)}` : ""),
};

// Fill a <select> with the repository's models, loaded ones first; the current choice stays, else
// the server's default model when it is loaded, else the first loaded one. `tasks` limits the
// choice (e.g. ["detect", "segment", "pose"]). Answers the models list.
export async function fillModels(select, tasks = null) {
  const { models, default: preferred } = await api("/v1/models");
  const chosen = select.value;
  const usable = models.filter((m) => !tasks || !m.task || tasks.includes(m.task));
  usable.sort((a, b) => Number(b.state === "loaded") - Number(a.state === "loaded") || a.name.localeCompare(b.name));
  select.replaceChildren(...usable.map((m) => h("option", { value: m.name }, `${m.name} (${m.task ?? "?"}, ${m.state})`)));
  const loaded = (name) => usable.some((m) => m.name === name && m.state === "loaded");
  if (usable.some((m) => m.name === chosen)) select.value = chosen;
  else if (loaded(preferred)) select.value = preferred;
  return models;
}

// Calls tick() every `ms` milliseconds from start() until stop(); a tick runs only after the
// previous one ended, so a slow server never piles up requests. Errors go to onError.
export class Poller {
  constructor(tick, ms, onError = () => {}) {
    this.tick = tick;
    this.ms = ms;
    this.onError = onError;
    this.timer = null;
    this.running = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.run();
  }

  async run() {
    if (!this.running) return;
    try {
      await this.tick();
    } catch (error) {
      this.onError(error);
    }
    if (this.running) this.timer = setTimeout(() => this.run(), this.ms);
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
  }
}

// A status line: show(text) for information, fail(error) for errors (role=alert for readers).
export function statusLine() {
  const node = h("p", { class: "live-status", role: "status", "aria-live": "polite" });
  return {
    node,
    show(text) {
      node.classList.remove("live-error");
      node.textContent = text;
    },
    fail(error) {
      node.classList.add("live-error");
      node.textContent = error instanceof Error ? error.message : String(error);
    },
  };
}
