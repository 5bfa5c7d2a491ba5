// The page's only door to the server: the public API, as every other client uses it.
//
// api(path, {method, body, query, signal, headers, raw}) fetches `path` (e.g. "/v1/models"),
// resolved against the page's own URL (so a reverse proxy that serves the page under a prefix
// works), and returns the parsed JSON (text for text/*, a Blob for images; the Response itself
// with raw: true). A non-2xx answer throws an ApiError carrying the server's
// {"error": {"code", "message"}} (status, code and message). Nothing is cached: every request is
// `cache: "no-store"` and the server answers `Cache-Control: no-store`.
//
// API keys: when the server has keys on, /v1/... answers 401 and the page shows only its sign-in
// form. The key is kept in sessionStorage (this tab only, gone when it closes) and sent as
// `Authorization: Bearer <key>` on every request. It is never put in a URL.
//
// URLs that cannot carry a header (<img src> of an MJPEG stream or a snapshot, EventSource, the
// WebSocket frame endpoint) use short-lived signed tokens instead of the key:
//   const url = await streamUrl(id, "mjpeg", {fps: 10});   // /v1/streams/{id}/mjpeg?fps=10&token=...
//   const ws = new WebSocket(await websocketUrl());        // ws(s)://.../v1/detect/ws?token=...
// A token comes from POST /v1/streams/{id}/token (or POST /v1/detect/ws/token), opens only that
// stream's GET routes (or only the WebSocket), and expires after the server's stream_token_ttl; ask
// again for a new URL when reconnecting. Without keys no token is asked for.

const KEY_STORAGE = "visionserve.apiKey";

/** An error answer of the server: HTTP status, error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function setKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

/** The headers that authenticate a request (none without a key). */
export function authHeaders() {
  const key = getKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** The absolute URL of API `path` with `query` ({name: value or [values]}; null/undefined skipped). */
export function apiUrl(path, query = {}) {
  const url = new URL(path.replace(/^\//, ""), document.baseURI);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === null || value === undefined || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(name, String(one));
  }
  return url.toString();
}

function requestBody(body, headers) {
  if (body === undefined || body === null) return undefined;
  if (body instanceof FormData || body instanceof Blob || body instanceof ArrayBuffer || typeof body === "string") {
    return body;
  }
  headers["Content-Type"] = "application/json";
  return JSON.stringify(body);
}

/** The ApiError of a non-2xx `response`, whatever shape its body has. */
export async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    const error = body && body.error;
    if (error && typeof error === "object") {
      code = error.code || code;
      message = error.message || message;
    } else if (typeof error === "string") {
      message = error;
    } else if (body && typeof body.message === "string") {
      message = body.message;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message);
}

/** Fetch an API path; see the module comment. A 401 also fires "visionserve:unauthorized" on window. */
export async function api(path, { method = "GET", body, query, signal, headers = {}, raw = false } = {}) {
  const sent = { ...authHeaders(), ...headers };
  const init = { method, signal, headers: sent, cache: "no-store", body: requestBody(body, sent) };
  const response = await fetch(apiUrl(path, query), init);
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) window.dispatchEvent(new CustomEvent("visionserve:unauthorized", { detail: error }));
    throw error;
  }
  if (raw) return response;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) return response.json();
  if (type.startsWith("text/")) return response.text();
  return response.blob();
}

/** A signed token for `subjectPath` ("/v1/streams/{id}" or "/v1/detect/ws"), or null without a key. */
async function token(subjectPath) {
  if (!getKey()) return null;
  const answer = await api(`${subjectPath}/token`, { method: "POST" });
  return answer.token;
}

/** The URL of a stream's GET route `what` ("mjpeg", "latest.jpg", "events"), with a token when keys are on. */
export async function streamUrl(streamId, what, query = {}) {
  const base = `/v1/streams/${encodeURIComponent(streamId)}`;
  return apiUrl(`${base}/${what}`, { ...query, token: await token(base) });
}

/** The ws:// or wss:// URL of the WebSocket frame endpoint, with a token when keys are on. */
export async function websocketUrl(query = {}) {
  const url = new URL(apiUrl("/v1/detect/ws", { ...query, token: await token("/v1/detect/ws") }));
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}
