// Drawing a stream's zones (polygons) and counting lines by clicking on a snapshot.
// Coordinates are kept in the snapshot's own pixels (the stream's source pixels), whatever size
// the canvas is shown at; value() gives the `zones` and `lines` of a StreamSpec.
import { h } from "./live.js";

const ZONE_COLOUR = "#ffb000";
const LINE_COLOUR = "#00c8ff";

export class ZoneEditor {
  constructor() {
    this.image = null;
    this.zones = [];
    this.lines = [];
    this.points = [];
    this.canvas = h("canvas", { class: "live-zone-canvas", "aria-label": "snapshot: click to add points" });
    this.canvas.addEventListener("click", (event) => this.click(event));
    this.kind = h(
      "select",
      { "aria-label": "what a click draws", onchange: () => this.reset() },
      h("option", { value: "zone" }, "zone (polygon)"),
      h("option", { value: "line" }, "counting line"),
    );
    this.name = h("input", { type: "text", placeholder: "name", "aria-label": "zone or line name", maxlength: 100 });
    this.classes = h("input", { type: "text", placeholder: "classes (optional)", "aria-label": "zone classes" });
    this.close = h("button", { type: "button", onclick: () => this.finishZone(), disabled: true }, "Close zone");
    this.undo = h("button", { type: "button", onclick: () => this.undoPoint() }, "Undo point");
    this.list = h("ul", { class: "live-shapes" });
    this.hint = h("p", { class: "live-hint" });
    this.node = h(
      "div",
      { class: "live-zones", hidden: true },
      this.canvas,
      h("div", { class: "live-row" }, this.kind, this.name, this.classes, this.close, this.undo),
      this.hint,
      this.list,
    );
    this.reset();
  }

  // Show `image` (a loaded HTMLImageElement or ImageBitmap) to draw on; keeps drawn shapes.
  setImage(image) {
    this.image = image;
    this.canvas.width = image.naturalWidth ?? image.width;
    this.canvas.height = image.naturalHeight ?? image.height;
    this.node.hidden = false;
    this.redraw();
  }

  value() {
    return { zones: this.zones, lines: this.lines };
  }

  clear() {
    this.zones = [];
    this.lines = [];
    this.reset();
  }

  reset() {
    this.points = [];
    const line = this.kind.value === "line";
    this.hint.textContent = line
      ? "Click the start and the end of a counting line (crossing left to right, seen from start to end, is 'in')."
      : "Click three or more corners, then 'Close zone'.";
    this.render();
  }

  // Source-pixel coordinates of a click on the (scaled) canvas.
  at(event) {
    const rect = this.canvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) / rect.width) * this.canvas.width;
    const y = ((event.clientY - rect.top) / rect.height) * this.canvas.height;
    return [Math.round(x), Math.round(y)];
  }

  click(event) {
    if (!this.image) return;
    this.points.push(this.at(event));
    if (this.kind.value === "line" && this.points.length === 2) {
      const [start, end] = this.points;
      this.lines.push({ name: this.takeName("line", this.lines), start, end, ...this.takeClasses() });
      this.points = [];
    }
    this.render();
  }

  finishZone() {
    if (this.points.length < 3) return;
    this.zones.push({ name: this.takeName("zone", this.zones), polygon: this.points, ...this.takeClasses() });
    this.points = [];
    this.render();
  }

  undoPoint() {
    this.points.pop();
    this.render();
  }

  takeName(prefix, existing) {
    const given = this.name.value.trim();
    this.name.value = "";
    const names = new Set([...this.zones, ...this.lines].map((s) => s.name));
    if (given && !names.has(given)) return given;
    let n = existing.length + 1;
    while (names.has(`${prefix}-${n}`)) n += 1;
    return `${prefix}-${n}`;
  }

  takeClasses() {
    const classes = this.classes.value.split(",").map((c) => c.trim()).filter(Boolean);
    return classes.length ? { classes } : {};
  }

  remove(shape) {
    this.zones = this.zones.filter((z) => z !== shape);
    this.lines = this.lines.filter((l) => l !== shape);
    this.render();
  }

  render() {
    this.close.disabled = this.kind.value !== "zone" || this.points.length < 3;
    const item = (shape, text) =>
      h("li", {}, text, " ", h("button", { type: "button", onclick: () => this.remove(shape) }, "remove"));
    this.list.replaceChildren(
      ...this.zones.map((z) => item(z, `zone ${z.name}: ${z.polygon.map((p) => p.join(",")).join(" ")}`)),
      ...this.lines.map((l) => item(l, `line ${l.name}: ${l.start.join(",")} → ${l.end.join(",")}`)),
    );
    this.redraw();
  }

  redraw() {
    if (!this.image) return;
    const ctx = this.canvas.getContext("2d");
    ctx.drawImage(this.image, 0, 0, this.canvas.width, this.canvas.height);
    ctx.lineWidth = Math.max(2, this.canvas.width / 320);
    ctx.font = `${Math.max(12, this.canvas.width / 40)}px sans-serif`;
    for (const zone of this.zones) path(ctx, zone.polygon, true, ZONE_COLOUR, zone.name);
    for (const line of this.lines) path(ctx, [line.start, line.end], false, LINE_COLOUR, line.name);
    if (this.points.length) path(ctx, this.points, false, "#ffffff", "");
  }
}

function path(ctx, points, closed, colour, label) {
  ctx.strokeStyle = colour;
  ctx.fillStyle = colour;
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  if (closed) ctx.closePath();
  ctx.stroke();
  for (const [x, y] of points) ctx.fillRect(x - 3, y - 3, 6, 6);
  if (label) ctx.fillText(label, points[0][0] + 4, points[0][1] - 4);
}
