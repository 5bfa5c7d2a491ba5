// Small DOM helpers shared by the views: build elements from text, never from HTML strings (the
// server's labels are never parsed as markup), show a passing message, format numbers.

/**
 * h("button", {type: "button", class: "x", onclick: fn, dataset: {id: 1}}, "text", child...)
 * Attributes starting with "on" become listeners; `dataset` fills data-*; booleans set or drop the
 * attribute; null/undefined children are skipped; strings become text nodes.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name === "class") {
      element.className = value;
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Show `message` for a few seconds in the page's live region; kind: "info" or "error". */
export function notify(message, kind = "info") {
  const area = document.getElementById("toasts");
  if (!area) return;
  const toast = h("p", { class: `toast ${kind}` }, message);
  area.append(toast);
  setTimeout(() => toast.remove(), kind === "error" ? 8000 : 4000);
}

/** A score in [0, 1] as "0.87". */
export function score(value) {
  return Number(value).toFixed(2);
}

/** Milliseconds as "12.3 ms". */
export function ms(value) {
  return `${Number(value).toFixed(1)} ms`;
}

/** The message of an error, for people. */
export function describe(error) {
  return error && error.message ? error.message : String(error);
}

/** What the views share in this tab: `image`, the last image given to "Try a model" (a Blob), which
 * the benchmark of "Models & server" sends. */
export const shared = { image: null };
