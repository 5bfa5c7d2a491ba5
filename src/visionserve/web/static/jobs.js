// The "Jobs" view: submit many images (files or a whole folder) or one video as a job
// (POST /v1/jobs), follow its progress (GET /v1/jobs/{id}, polled while it runs), browse its
// results a page at a time with their annotated images and crops, and download them as JSON or
// COCO. Images and files come through api() with the key header, as Blobs shown by object URLs.
import { api } from "./api.js";
import { Poller, field, fillModels, fmt, h, statusLine } from "./live.js";

const LIST_EVERY_MS = 2000;
const JOB_EVERY_MS = 1000;
const PAGE = 24;
const CROPS_SHOWN = 8;
const FRAMES_SHOWN = 100;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const jobPath = (id) => `/v1/jobs/${encodeURIComponent(id)}`;

// Object URLs of fetched images, revoked together when the gallery changes.
class Blobs {
  constructor() {
    this.urls = [];
  }

  async image(path, alt) {
    const node = h("img", { alt, loading: "lazy" });
    const blob = await api(path);
    const url = URL.createObjectURL(blob);
    this.urls.push(url);
    node.src = url;
    return node;
  }

  clear() {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
  }
}

function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// Every page of a job's JSON results merged into one document ({job, items}).
async function allResults(id) {
  const items = [];
  let first = null;
  for (let offset = 0; ; ) {
    const page = await api(`${jobPath(id)}/results`, { query: { format: "json", offset, limit: 1000 } });
    first ??= page;
    items.push(...page.items);
    offset += page.items.length;
    if (!page.items.length || offset >= page.page.total) break;
  }
  const { page, ...rest } = first;
  return { ...rest, items };
}

// Images per second, or frames per second of a video job.
function rate(job) {
  const video = job.video;
  if (video?.frames_done && job.timings.elapsed_s) return `${fmt.num(video.frames_done / job.timings.elapsed_s, 1)} frames/s`;
  return `${fmt.num(job.timings.images_per_s, 2)} images/s`;
}

// A finished video job: its tracks, line and zone counts, and its first frames' detections.
async function videoPanel(job) {
  const video = job.video;
  const counts = video.counts ?? {};
  const labels = new Map((video.tracks ?? []).map((t) => [t.id, t.label]));
  const frames = video.frames_url ? (await api(video.frames_url, { query: { limit: FRAMES_SHOWN } })).frames : [];
  const object = ([track, classId, score]) => `${track >= 0 ? `#${track} ${labels.get(track) ?? ""}` : `class ${classId}`} ${fmt.score(score)}`;
  const heads = ["frame", "time", "objects"];
  return h(
    "article",
    { class: "live-item live-video-result" },
    h("h4", {}, `Video: ${(video.tracks ?? []).length} tracks`),
    h("ul", {}, ...(video.tracks ?? []).slice(0, 50).map((t) => h("li", {}, `#${t.id} ${t.label}: frames ${t.first_frame}–${t.last_frame}`))),
    h(
      "ul",
      {},
      ...(counts.lines ?? []).map((l) => h("li", {}, `line ${l.name}: ${l.in} in, ${l.out} out`)),
      ...Object.entries(video.zone_peaks ?? {}).map(([name, peak]) => h("li", {}, `zone ${name}: at most ${peak} inside`)),
    ),
    h(
      "div",
      { class: "live-scroll" },
      h(
        "table",
        { class: "live-table", id: "job-frames" },
        h("caption", {}, `The first ${frames.length} processed frames`),
        h("thead", {}, h("tr", {}, ...heads.map((t) => h("th", {}, t)))),
        h("tbody", {}, ...frames.map((f) => h("tr", {}, h("td", {}, f.frame), h("td", {}, `${fmt.num(f.time_s, 2)} s`), h("td", {}, f.detections.map(object).join(", "))))),
      ),
    ),
  );
}

class SubmitForm {
  constructor(onSubmitted) {
    this.onSubmitted = onSubmitted;
    this.status = statusLine();
    this.files = h("input", { type: "file", multiple: true, accept: "image/*,video/*", name: "files", id: "job-files" });
    this.folder = h("input", { type: "file", multiple: true, webkitdirectory: true, name: "folder", id: "job-folder" });
    this.model = h("select", { name: "model" });
    this.conf = h("input", { type: "number", min: 0, max: 1, step: 0.05, placeholder: "model's", name: "conf" });
    this.stride = h("input", { type: "number", min: 1, max: 10000, step: 1, placeholder: "1", name: "frame_stride" });
    this.crops = h("input", { type: "checkbox", name: "crops", checked: true });
    this.annotate = h("input", { type: "checkbox", name: "annotate", checked: true });
    this.node = h(
      "form",
      { class: "live-form live-card", id: "job-submit", onsubmit: (event) => this.submit(event) },
      h("h3", {}, "Submit a job"),
      h(
        "div",
        { class: "live-grid" },
        field("Images or one video", this.files),
        field("…or a folder of images", this.folder),
        field("Model", this.model),
        field("Confidence", this.conf),
        field("Video: every n-th frame", this.stride),
        field("Cut crops", this.crops),
        field("Annotated copies", this.annotate),
      ),
      h("button", { type: "submit", class: "primary" }, "Submit job"),
      this.status.node,
    );
  }

  // The FormData of the chosen files: "image" fields, or one "video" field.
  body() {
    const chosen = [...this.files.files, ...[...this.folder.files].filter((f) => f.type.startsWith("image/"))];
    const videos = chosen.filter((f) => f.type.startsWith("video/"));
    if (!chosen.length) throw new Error("Choose images, a folder of images or a video first.");
    if (videos.length && chosen.length > 1) throw new Error("A job takes images or one video, not both.");
    const form = new FormData();
    for (const file of chosen) form.append(videos.length ? "video" : "image", file, file.webkitRelativePath || file.name);
    if (this.model.value) form.append("model", this.model.value);
    if (this.conf.value !== "") form.append("conf", this.conf.value);
    if (videos.length && this.stride.value !== "") form.append("frame_stride", this.stride.value);
    form.append("crops", String(this.crops.checked));
    form.append("annotate", String(this.annotate.checked));
    return form;
  }

  async submit(event) {
    event.preventDefault();
    try {
      const body = this.body();
      this.status.show(`Uploading ${body.getAll("image").length || 1} file(s)…`);
      const job = await api("/v1/jobs", { method: "POST", body });
      this.status.show(`Job ${job.id} queued.`);
      this.files.value = "";
      this.folder.value = "";
      await this.onSubmitted(job);
    } catch (error) {
      this.status.fail(error);
    }
  }
}

function progressBar(progress) {
  const bar = h("progress", { max: Math.max(1, progress.total), value: progress.finished });
  bar.setAttribute("aria-label", `${progress.finished} of ${progress.total} finished`);
  return bar;
}

class JobList {
  constructor(onOpen) {
    this.onOpen = onOpen;
    this.body = h("tbody");
    this.status = statusLine();
    const heads = ["job", "model", "state", "progress", "created", ""];
    this.node = h(
      "section",
      { class: "live-card" },
      h("h3", {}, "Recent jobs"),
      h("div", { class: "live-scroll" }, h("table", { class: "live-table", id: "jobs-table" }, h("thead", {}, h("tr", {}, ...heads.map((t) => h("th", {}, t)))), this.body)),
      this.status.node,
    );
  }

  async refresh() {
    const { jobs, total } = await api("/v1/jobs", { query: { limit: 20 } });
    this.status.show(total ? `${total} job(s)` : "No jobs yet.");
    this.body.replaceChildren(
      ...jobs.map((job) =>
        h(
          "tr",
          { dataset: { job: job.id, state: job.state } },
          h("td", {}, job.id),
          h("td", {}, job.model),
          h("td", { class: `live-state live-state-${job.state}` }, job.state),
          h("td", {}, progressBar(job.progress), ` ${job.progress.finished}/${job.progress.total}`),
          h("td", {}, job.created_at ? new Date(job.created_at).toLocaleString() : ""),
          h("td", {}, h("button", { type: "button", onclick: () => this.onOpen(job.id) }, "Open")),
        ),
      ),
    );
  }
}

class JobDetail {
  constructor() {
    this.id = null;
    this.offset = 0;
    this.blobs = new Blobs();
    this.poller = new Poller(() => this.refresh(), JOB_EVERY_MS, (error) => this.status.fail(error));
    this.title = h("h3", { id: "job-title" });
    this.summary = h("div", { class: "live-summary", id: "job-summary" });
    this.actions = h("div", { class: "live-row" });
    this.gallery = h("div", { class: "live-gallery", id: "job-gallery" });
    this.pager = h("div", { class: "live-row" });
    this.status = statusLine();
    this.node = h("section", { class: "live-card", id: "job-detail", hidden: true }, this.title, this.summary, this.actions, this.status.node, this.gallery, this.pager);
  }

  open(id) {
    this.close();
    this.id = id;
    this.offset = 0;
    this.node.hidden = false;
    this.title.textContent = `Job ${id}`;
    this.poller.start();
  }

  close() {
    this.poller.stop();
    this.blobs.clear();
    this.gallery.replaceChildren();
    this.pager.replaceChildren();
    this.id = null;
    this.shown = null;
    this.node.hidden = true;
  }

  async refresh() {
    const id = this.id;
    const job = await api(jobPath(id), { query: { items_offset: this.offset, items_limit: PAGE } });
    if (id !== this.id) return;
    this.showSummary(job);
    if (!TERMINAL.has(job.state)) return;
    this.poller.stop();
    const key = `${job.id}:${this.offset}`;
    if (this.shown !== key) {
      this.shown = key;
      await this.showResults(job);
    }
  }

  showSummary(job) {
    const p = job.progress;
    const video = job.video;
    const lines = [
      h("p", { dataset: { state: job.state }, class: `live-state live-state-${job.state}`, id: "job-state" }, job.state),
      h("p", {}, progressBar(p), ` ${p.finished} of ${p.total} finished · ${p.done} done · ${p.failed} failed · ${p.pending} pending`),
      video ? h("p", {}, `video: ${video.frames_done} of ${video.frames_total ?? "?"} frames`) : null,
      job.timings.elapsed_s ? h("p", {}, `${fmt.num(job.timings.elapsed_s, 1)} s · ${rate(job)}`) : null,
      job.error ? h("p", { class: "live-error" }, job.error) : null,
      ...(job.errors ?? []).slice(0, 10).map((e) => h("p", { class: "live-error" }, `${e.source ?? e.index}: ${e.error ?? e.message ?? ""}`)),
    ];
    this.summary.replaceChildren(...lines.filter(Boolean));
    this.actions.replaceChildren(...this.actionsFor(job));
  }

  // Downloads once the job has ended, a cancel button before.
  actionsFor(job) {
    const act = (text, fn) => h("button", { type: "button", onclick: () => fn().catch((error) => this.status.fail(error)) }, text);
    const path = jobPath(job.id);
    if (!TERMINAL.has(job.state)) {
      return [act("Cancel job", () => api(path, { method: "DELETE" }).then(() => this.poller.start()))];
    }
    const json = async () => {
      const document = JSON.stringify(await allResults(job.id), null, 1);
      saveBlob(new Blob([document], { type: "application/json" }), `job-${job.id}.json`);
    };
    const coco = async () => {
      const response = await api(`${path}/results`, { query: { format: "coco" }, raw: true });
      saveBlob(await response.blob(), `job-${job.id}-coco.json`);
    };
    const video = job.video?.annotated_url;
    const mp4 = async () => saveBlob(await api(video), `job-${job.id}.mp4`);
    return [act("Download JSON", json), act("Download COCO", coco), video ? act("Download annotated video", mp4) : null].filter(Boolean);
  }

  async showResults(job) {
    this.blobs.clear();
    if (job.video) {
      this.gallery.replaceChildren(await videoPanel(job));
      this.pager.replaceChildren();
      return;
    }
    const cards = (job.results ?? []).map((item) => this.card(item));
    this.gallery.replaceChildren(...cards.map((c) => c.node));
    this.pager.replaceChildren(...this.pages(job.results_page));
    await Promise.allSettled(cards.map((c) => c.load()));
  }

  // One result: its annotated image and crops (loaded by load()), detections or classes, error.
  card(item) {
    const media = h("div", { class: "live-item-media" });
    const crops = h("div", { class: "live-crops" });
    const rows = item.classes
      ? item.classes.map((c) => h("li", {}, `${c.label} ${fmt.score(c.score)}`))
      : (item.detections ?? []).map((d) => h("li", {}, `${d.label} ${fmt.score(d.score)}`));
    const node = h(
      "article",
      { class: "live-item", dataset: { index: item.index, state: item.state } },
      h("h4", {}, `${item.index}: ${item.source}`),
      media,
      item.error ? h("p", { class: "live-error" }, item.error) : null,
      h("ul", { class: "live-detections" }, ...rows),
      crops,
    );
    const load = async () => {
      if (item.annotated) media.append(await this.blobs.image(item.annotated, `annotated ${item.source}`));
      for (const [k, path] of (item.crops ?? []).slice(0, CROPS_SHOWN).entries()) {
        crops.append(await this.blobs.image(path, `crop ${k} of ${item.source}`));
      }
      if ((item.crops ?? []).length > CROPS_SHOWN) crops.append(h("span", {}, `+${item.crops.length - CROPS_SHOWN} more`));
    };
    return { node, load };
  }

  pages(page) {
    if (!page || page.total <= PAGE) return [];
    const go = (offset) => () => {
      this.offset = offset;
      this.poller.start();
    };
    const last = Math.min(page.total, this.offset + PAGE);
    return [
      h("button", { type: "button", disabled: this.offset === 0, onclick: go(Math.max(0, this.offset - PAGE)) }, "Previous"),
      h("span", {}, `items ${this.offset + 1}–${last} of ${page.total}`),
      h("button", { type: "button", disabled: last >= page.total, onclick: go(this.offset + PAGE) }, "Next"),
    ];
  }
}

export const view = {
  title: "Jobs",
  mount(section) {
    const detail = new JobDetail();
    const list = new JobList((id) => detail.open(id));
    const form = new SubmitForm(async (job) => {
      await list.refresh();
      detail.open(job.id);
    });
    const poller = new Poller(() => list.refresh(), LIST_EVERY_MS, (error) => list.status.fail(error));
    section.append(h("div", { class: "live-view" }, form.node, detail.node, list.node));
    return {
      show() {
        poller.start();
        if (detail.id !== null) detail.poller.start();
        fillModels(form.model).catch((error) => form.status.fail(error));
      },
      hide() {
        poller.stop();
        detail.poller.stop();
      },
    };
  },
};
