// Bootstraps the page: sign-in when API keys are on, then the views behind the nav.
//
// Views are listed in VIEWS below, name -> module file; adding a view is one line there (its nav
// entry is already in index.html: a nav link whose view is not listed stays hidden). A view
// module is imported the first time its tab is opened and must export
//
//   export const view = {
//     title: "Try a model",            // the heading of its section
//     mount(el) { ...; return {show() {}, hide() {}}; },
//   };
//
// mount(el) runs once, with the view's empty <section> (its <h2> already there); it may return
// hooks: show() each time the view is opened (also right after mount), hide() each time another
// view is opened (stop cameras, timers, streams there). The open view is the location hash
// (#try, #models, ...), so views can be linked to and the back button works.

import { api, ApiError, clearKey, getKey, setKey } from "./api.js";
import { describe, h, notify } from "./ui.js";

const VIEWS = {
  try: "./try.js",
  webcam: "./webcam.js",
  streams: "./streams.js",
  jobs: "./jobs.js",
  models: "./models.js",
};
const DEFAULT_VIEW = "try";

const mounted = new Map(); // name -> {section, hooks}
let current = null;

function byId(id) {
  return document.getElementById(id);
}

async function mountView(name) {
  if (mounted.has(name)) return mounted.get(name);
  const { view } = await import(VIEWS[name]);
  const heading = h("h2", { id: `view-${name}-title` }, view.title);
  const section = h("section", { id: `view-${name}`, class: "view", "aria-labelledby": heading.id, hidden: true }, heading);
  byId("views").append(section);
  const entry = { section, hooks: view.mount(section) || {} };
  mounted.set(name, entry);
  return entry;
}

async function open(name) {
  if (!(name in VIEWS)) name = DEFAULT_VIEW;
  if (current === name) return;
  if (current !== null) {
    const previous = mounted.get(current); // undefined while its module is still loading
    if (previous) previous.section.hidden = true;
    if (previous && previous.hooks.hide) previous.hooks.hide();
  }
  current = name;
  for (const link of document.querySelectorAll("#nav a[data-view]")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    const entry = await mountView(name);
    if (current !== name) return; // another tab was opened meanwhile
    entry.section.hidden = false;
    if (entry.hooks.show) entry.hooks.show();
  } catch (error) {
    notify(`Cannot open ${name}: ${describe(error)}`, "error");
  }
}

function showApp() {
  byId("loading").hidden = true;
  byId("signin").hidden = true;
  byId("nav").hidden = false;
  byId("views").hidden = false;
  byId("sign-out").hidden = !getKey();
  for (const link of document.querySelectorAll("#nav a[data-view]")) {
    link.parentElement.hidden = !(link.dataset.view in VIEWS);
  }
  open(location.hash.slice(1));
}

function showSignIn(message = "") {
  byId("loading").hidden = true;
  byId("nav").hidden = true;
  byId("views").hidden = true;
  byId("sign-out").hidden = true;
  byId("signin").hidden = false;
  byId("signin-error").textContent = message;
  byId("signin-key").focus();
}

/** Whether the API answers with the current key (or none); false on 401, throws otherwise. */
async function authorized() {
  try {
    await api("/v1/models");
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return false;
    throw error;
  }
}

async function signIn(event) {
  event.preventDefault();
  const input = byId("signin-key");
  setKey(input.value.trim());
  if (await authorized()) {
    input.value = "";
    showApp();
  } else {
    clearKey();
    showSignIn("That key was refused. Check it and try again.");
  }
}

async function start() {
  byId("signin-form").addEventListener("submit", (event) => {
    signIn(event).catch((error) => showSignIn(describe(error)));
  });
  byId("sign-out").addEventListener("click", () => {
    clearKey();
    location.reload();
  });
  window.addEventListener("hashchange", () => open(location.hash.slice(1)));
  window.addEventListener("visionserve:unauthorized", () => {
    if (byId("signin").hidden) showSignIn(getKey() ? "The server no longer accepts this key." : "");
    clearKey();
  });
  try {
    if (await authorized()) showApp();
    else showSignIn(getKey() ? "The server no longer accepts this key." : "");
  } catch (error) {
    byId("loading").textContent = `The server did not answer: ${describe(error)}`;
  }
}

start();
