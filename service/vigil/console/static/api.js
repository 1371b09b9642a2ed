// The REST client of the console: the API key, the session cookie, errors shown in the page.
//
// fetch() sends the key in X-API-Key (kept in sessionStorage: gone when the tab closes).
// <img>, <video> and EventSource cannot send headers, so a key also opens a session
// (POST /api/v1/session): an HttpOnly cookie that the server accepts for GET requests only.

const KEY_ITEM = "vigil.apiKey";

/** An API answer other than 2xx, with the server's `detail` made readable. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Session state from GET /api/v1/session (keys_required, reads_protected, ...). */
export const auth = { keysRequired: false, readsProtected: false, keyId: null };

export function storedKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

/** FastAPI's `detail`: a string, or a list of {loc, msg} (422) → one line per problem. */
export function describeDetail(detail, status) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const where = (d.loc || []).filter((p) => p !== "body").join(".");
        return where ? `${where}: ${d.msg}` : d.msg;
      })
      .join("; ");
  }
  return `HTTP ${status}`;
}

async function errorOf(response) {
  let detail = null;
  try {
    detail = (await response.json()).detail;
  } catch {
    // not JSON: the status says enough
  }
  return new ApiError(response.status, describeDetail(detail, response.status));
}

function send(path, options) {
  const headers = { ...(options.headers || {}) };
  const key = storedKey();
  if (key) headers["X-API-Key"] = key;
  let body = options.body;
  if (body !== undefined && !(body instanceof FormData) && typeof body !== "string") {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  return fetch(path, { method: options.method || "GET", headers, body, credentials: "same-origin" });
}

/**
 * Call the API; parsed JSON (null for 204). On 401/403 the user is asked for a key once
 * and the call is retried; any other failure throws an ApiError with the server's detail.
 */
export async function api(path, options = {}) {
  let response = await send(path, options);
  if ((response.status === 401 || response.status === 403) && !options.noPrompt) {
    const error = await errorOf(response);
    if (await askForKey(error.message)) response = await send(path, options);
    else throw error;
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  return response.json();
}

/** The latest frame of a stream as an object URL (fetched with the key). */
export async function fetchBlobUrl(path) {
  const response = await send(path, {});
  if (!response.ok) throw await errorOf(response);
  return URL.createObjectURL(await response.blob());
}

/** Opens a session cookie for `key`; true when the key is valid. */
async function openSession(key) {
  const response = await fetch("/api/v1/session", {
    method: "POST",
    headers: { "X-API-Key": key },
    credentials: "same-origin",
  });
  if (!response.ok) throw await errorOf(response);
  const opened = await response.json();
  auth.keyId = opened.key_id;
  clearTimeout(renewal);
  if (opened.expires_in_s) {
    // renew well before the cookie expires, or the tiles, videos and feed would stop
    renewal = setTimeout(() => openSession(key).catch(() => {}), (opened.expires_in_s * 1000) / 2);
  }
  return true;
}

let renewal = null;

/** Reads the server's auth settings and reopens the session of a key kept from before. */
export async function initAuth() {
  const state = await (await fetch("/api/v1/session", { credentials: "same-origin" })).json();
  auth.keysRequired = state.keys_required;
  auth.readsProtected = state.reads_protected;
  auth.keyId = state.session_key_id;
  const key = storedKey();
  if (key && auth.keysRequired) {
    try {
      await openSession(key);
    } catch {
      sessionStorage.removeItem(KEY_ITEM); // revoked or changed: ask again
      auth.keyId = null;
    }
  }
  if (auth.readsProtected && !storedKey()) {
    await askForKey("This Vigil protects reads too: enter an API key to see anything.");
  }
  showAuth();
}

export async function signOut() {
  clearTimeout(renewal);
  sessionStorage.removeItem(KEY_ITEM);
  auth.keyId = null;
  await fetch("/api/v1/session", { method: "DELETE", credentials: "same-origin" });
  showAuth();
  window.dispatchEvent(new Event("vigil-auth"));
}

function showAuth() {
  const state = document.getElementById("auth-state");
  const signout = document.getElementById("auth-signout");
  if (!auth.keysRequired) state.textContent = "no key needed";
  else if (storedKey()) state.textContent = `signed in (${auth.keyId || "key"})`;
  else state.textContent = "read-only: no key";
  signout.hidden = !storedKey();
}

let pendingPrompt = null;

/** Asks for a key in a modal dialog (one prompt at a time); true once a valid one is in. */
export function askForKey(reason) {
  if (pendingPrompt) return pendingPrompt;
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  const error = document.getElementById("key-error");
  document.getElementById("key-reason").textContent = reason || "Enter an API key.";
  error.hidden = true;
  input.value = "";
  pendingPrompt = new Promise((resolve) => {
    const form = document.getElementById("key-form");
    const cancel = document.getElementById("key-cancel");
    const finish = (ok) => {
      form.removeEventListener("submit", submit);
      cancel.removeEventListener("click", dismiss);
      dialog.close();
      pendingPrompt = null;
      showAuth();
      if (ok) window.dispatchEvent(new Event("vigil-auth"));
      resolve(ok);
    };
    const submit = async (e) => {
      e.preventDefault();
      const key = input.value.trim();
      try {
        await openSession(key);
        sessionStorage.setItem(KEY_ITEM, key);
        finish(true);
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      }
    };
    const dismiss = () => finish(false);
    form.addEventListener("submit", submit);
    cancel.addEventListener("click", dismiss);
    dialog.showModal();
    input.focus();
  });
  return pendingPrompt;
}

let messageTimer = null;

/** Shows a message above the views (errors stay until dismissed or replaced). */
export function showMessage(text, kind = "error") {
  const box = document.getElementById("messages");
  document.getElementById("message-text").textContent = text;
  box.className = kind;
  box.hidden = false;
  clearTimeout(messageTimer);
  if (kind !== "error") messageTimer = setTimeout(() => (box.hidden = true), 4000);
}

/** Runs `action`, showing its failure (with `what` it was doing) as an error message. */
export async function guarded(what, action) {
  try {
    return await action();
  } catch (err) {
    showMessage(`${what}: ${err.message}`);
    return undefined;
  }
}

/** `el("td", {class: "x"}, "text", child)`: a DOM element; strings become text (never HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/**
 * Puts one row per item in `tbody`, in order, rebuilding a row only when its item changed:
 * a row the user is about to click is not swapped under the pointer by a refresh.
 */
export function syncRows(tbody, items, keyOf, build) {
  const old = new Map([...tbody.rows].map((row) => [row.dataset.key, row]));
  const rows = items.map((item) => {
    const key = String(keyOf(item));
    const signature = JSON.stringify(item);
    const kept = old.get(key);
    if (kept && kept.dataset.signature === signature) return kept;
    const row = build(item);
    row.dataset.key = key;
    row.dataset.signature = signature;
    return row;
  });
  tbody.replaceChildren(...rows);
}

/** Replaces the options of a <select> with `values`, keeping the selection when it stays. */
export function fillSelect(select, values, keepFirst = false) {
  const current = select.value;
  const fixed = keepFirst ? [select.options[0]] : [];
  select.replaceChildren(...fixed, ...values.map((v) => el("option", { value: v }, v)));
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
