// Drawing a prediction of the native API over an image, on a 2D canvas. Pure functions of their
// arguments (no DOM lookups, no state), shared by every view that shows results.
//
// A prediction is one image's native JSON answer (POST /v1/models/{name}/predict):
//   {task, width, height, detections: [{label, class_id, score, box: {x1, y1, x2, y2},
//     polygons?: [[[x, y], ...], ...], rle?: {size: [H, W], counts}, keypoints?: [{name, x, y, score}]}]}
// or {task: "classify", width, height, classes: [{label, class_id, score}]}.
// Coordinates are pixels of the source image: the caller sizes the canvas (or sets its transform)
// so that one prediction pixel maps where it should, and draws the image first.
//
//   ctx.drawImage(bitmap, 0, 0);
//   drawPrediction(ctx, prediction, {conf: 0.5, iou: 0.45, mode: "boxes_masks"});

/** The render modes of the server's annotated images (render=...), drawn the same way here. */
export const RENDER_MODES = {
  boxes_masks: "Boxes and masks",
  boxes: "Boxes only",
  masks: "Masks only",
  mask_only: "Masks on black",
};

/** COCO's skeleton (0-based keypoint index pairs), used when the model document gives none. */
export const COCO_SKELETON = [
  [15, 13], [13, 11], [16, 14], [14, 12], [11, 12], [5, 11], [6, 12], [5, 6], [5, 7], [6, 8],
  [7, 9], [8, 10], [1, 2], [0, 1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 6],
];

// The server's palette (render/palette.py), as RGB hex.
const PALETTE = [
  "#FF3838", "#FF9D97", "#FF701F", "#FFB21D", "#CFD231", "#48F90A", "#92CC17", "#3DDB86", "#1A9334", "#00D4BB",
  "#2C99A8", "#00C2FF", "#344593", "#6473FF", "#0018EC", "#8438FF", "#520085", "#CB38FF", "#FF95C8", "#FF37C7",
];

/** The colour of a class id (the server's). */
export function colorFor(classId) {
  const index = ((Number(classId) % PALETTE.length) + PALETTE.length) % PALETTE.length;
  return PALETTE[index];
}

function rgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function textColorOn(hex) {
  const [r, g, b] = rgb(hex);
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#000" : "#fff";
}

function area(box) {
  return Math.max(0, box.x2 - box.x1) * Math.max(0, box.y2 - box.y1);
}

/** Intersection over union of two {x1, y1, x2, y2} boxes. */
export function boxIou(a, b) {
  const w = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const hgt = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  if (w <= 0 || hgt <= 0) return 0;
  const inter = w * hgt;
  return inter / (area(a) + area(b) - inter);
}

/**
 * The detections scoring at least `conf`, then greedy non-maximum suppression per class: a box is
 * dropped when it overlaps a higher-scoring box of its class by more than `iou` (iou >= 1 keeps
 * all). Returns a new array, highest score first; the input is not changed.
 */
export function filterDetections(detections, { conf = 0, iou = 1 } = {}) {
  const sorted = (detections || []).filter((d) => d.score >= conf).sort((a, b) => b.score - a.score);
  if (iou >= 1) return sorted;
  const kept = [];
  for (const candidate of sorted) {
    const suppressed = kept.some((k) => k.class_id === candidate.class_id && boxIou(k.box, candidate.box) > iou);
    if (!suppressed) kept.push(candidate);
  }
  return kept;
}

/** The classes scoring at least `conf`, best first. */
export function filterClasses(classes, { conf = 0 } = {}) {
  return (classes || []).filter((c) => c.score >= conf).sort((a, b) => b.score - a.score);
}

/** The run lengths of a COCO compressed RLE string (pycocotools' rleFrString). */
export function rleCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      const c = text.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p += 1;
      k += 1;
      if (!more && c & 0x10) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

/** An H x W RLE ({size: [H, W], counts}) as ImageData filled with `hex` at `alpha` (0-255) where set. */
export function rleImageData(rle, hex, alpha) {
  const [height, width] = rle.size;
  const image = new ImageData(width, height);
  const [r, g, b] = rgb(hex);
  const counts = typeof rle.counts === "string" ? rleCounts(rle.counts) : rle.counts;
  let index = 0;
  counts.forEach((run, i) => {
    if (i % 2 === 1) {
      for (let j = index; j < index + run; j += 1) {
        // column-major (Fortran) order, as COCO stores masks
        const offset = ((j % height) * width + Math.floor(j / height)) * 4;
        image.data[offset] = r;
        image.data[offset + 1] = g;
        image.data[offset + 2] = b;
        image.data[offset + 3] = alpha;
      }
    }
    index += run;
  });
  return image;
}

function lineWidthFor(width, height) {
  return Math.max(1, Math.round(Math.max(width, height) / 400));
}

function drawMask(ctx, detection, color, alpha) {
  if (detection.polygons && detection.polygons.length) {
    ctx.save();
    ctx.globalAlpha = alpha;
    ctx.fillStyle = color;
    ctx.beginPath();
    for (const part of detection.polygons) {
      part.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y)));
      ctx.closePath();
    }
    ctx.fill("evenodd");
    ctx.restore();
  } else if (detection.rle) {
    const layer = document.createElement("canvas");
    [layer.height, layer.width] = detection.rle.size;
    layer.getContext("2d").putImageData(rleImageData(detection.rle, color, Math.round(alpha * 255)), 0, 0);
    ctx.drawImage(layer, 0, 0);
  }
}

function drawLabel(ctx, text, x, y, color, fontSize) {
  ctx.font = `${fontSize}px system-ui, sans-serif`;
  const width = ctx.measureText(text).width + fontSize * 0.6;
  const height = fontSize * 1.4;
  const top = y - height >= 0 ? y - height : y;
  ctx.fillStyle = color;
  ctx.fillRect(x, top, width, height);
  ctx.fillStyle = textColorOn(color);
  ctx.textBaseline = "middle";
  ctx.fillText(text, x + fontSize * 0.3, top + height / 2);
}

function drawKeypoints(ctx, keypoints, skeleton, color, lineWidth, minScore) {
  const visible = keypoints.map((p) => p.score >= minScore);
  ctx.strokeStyle = color;
  ctx.lineWidth = lineWidth;
  for (const [a, b] of skeleton) {
    if (!visible[a] || !visible[b]) continue;
    ctx.beginPath();
    ctx.moveTo(keypoints[a].x, keypoints[a].y);
    ctx.lineTo(keypoints[b].x, keypoints[b].y);
    ctx.stroke();
  }
  ctx.fillStyle = "#fff";
  keypoints.forEach((p, i) => {
    if (!visible[i]) return;
    ctx.beginPath();
    ctx.arc(p.x, p.y, lineWidth * 2 + 1, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  });
}

function drawClasses(ctx, classes, width, height) {
  const fontSize = Math.max(12, Math.round(Math.max(width, height) / 30));
  classes.forEach((c, i) => {
    const text = `${c.label} ${(c.score * 100).toFixed(1)}%`;
    drawLabel(ctx, text, 0, (i + 1) * fontSize * 1.4, colorFor(c.class_id), fontSize);
  });
}

/**
 * Draw `prediction` on `ctx` (see the module comment) and return what was drawn: the filtered
 * detections (or classes), highest score first.
 * Options: conf (minimum score), iou (per-class NMS threshold, 1 = none), mode (a RENDER_MODES key:
 * boxes_masks, boxes, masks or mask_only, which first paints the image black), skeleton (keypoint
 * index pairs; COCO's by default), keypointConf (minimum keypoint score drawn, 0.2), maskAlpha (0.45),
 * topK (classes drawn for a classifier, 5).
 */
export function drawPrediction(ctx, prediction, options = {}) {
  const { conf = 0, iou = 1, mode = "boxes_masks", skeleton = COCO_SKELETON } = options;
  const { keypointConf = 0.2, maskAlpha = 0.45, topK = 5 } = options;
  const { width, height } = prediction;
  if (prediction.classes) {
    const classes = filterClasses(prediction.classes, { conf }).slice(0, topK);
    drawClasses(ctx, classes, width, height);
    return classes;
  }
  const detections = filterDetections(prediction.detections, { conf, iou });
  const lineWidth = lineWidthFor(width, height);
  const fontSize = Math.max(11, lineWidth * 7);
  if (mode === "mask_only") {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
  }
  const masks = mode !== "boxes";
  const boxes = mode === "boxes_masks" || mode === "boxes";
  // lowest score first, so that the best detection is drawn on top
  for (const d of [...detections].reverse()) {
    const color = colorFor(d.class_id);
    if (masks) drawMask(ctx, d, color, mode === "mask_only" ? 1 : maskAlpha);
    if (d.keypoints && mode !== "mask_only") drawKeypoints(ctx, d.keypoints, skeleton, color, lineWidth, keypointConf);
    if (boxes) {
      ctx.strokeStyle = color;
      ctx.lineWidth = lineWidth;
      ctx.strokeRect(d.box.x1, d.box.y1, d.box.x2 - d.box.x1, d.box.y2 - d.box.y1);
    }
    if (mode !== "mask_only") drawLabel(ctx, `${d.label} ${d.score.toFixed(2)}`, d.box.x1, d.box.y1, color, fontSize);
  }
  return detections;
}
