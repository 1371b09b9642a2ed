// The console's entry point: tabs, the streams view, and the stream list the others share.

import { api, askForKey, auth, el, fillSelect, guarded, initAuth, showMessage, signOut, syncRows } from "./api.js";
import { EditorView } from "./editor.js";
import { EventsView } from "./events.js";
import { LiveView } from "./live.js";
import { ModelsView } from "./models.js";
import { RecordingsView } from "./recordings.js";

const POLL_MS = 2000;

/** What every view sees: the streams as last listed. */
export const store = { streams: [], listeners: [] };

const views = {
  live: new LiveView(store),
  events: new EventsView(store),
  recordings: new RecordingsView(store),
  models: new ModelsView(),
  analytics: new EditorView(store),
};
let current = "streams";

function show(name) {
  if (name === current) return;
  const before = views[current];
  if (before) before.hide();
  current = name;
  for (const section of document.querySelectorAll("section.view")) {
    section.hidden = section.id !== `view-${name}`;
  }
  for (const tab of document.querySelectorAll("#tabs button")) {
    tab.classList.toggle("active", tab.dataset.view === name);
  }
  const view = views[name];
  if (view) view.show();
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

function dropped(stream) {
  const total = Object.values(stream.dropped || {}).reduce((a, b) => a + b, 0);
  const detail = Object.entries(stream.dropped || {})
    .map(([why, n]) => `${why}: ${n}`)
    .join(", ");
  return el("td", { title: detail || "none" }, total);
}

function streamRow(stream) {
  const running = stream.state !== "stopped" && stream.state !== "error";
  const toggle = el(
    "button",
    {
      type: "button",
      onclick: () =>
        guarded(`${running ? "stop" : "start"} ${stream.id}`, async () => {
          await api(`/api/v1/streams/${encodeURIComponent(stream.id)}`, {
            method: "PATCH",
            body: { state: running ? "stopped" : "running" },
          });
          await refreshStreams();
        }),
    },
    running ? "Stop" : "Start",
  );
  return el(
    "tr",
    { "data-stream": stream.id },
    el("td", {}, stream.id),
    el("td", {}, stream.name),
    el("td", {}, el("span", { class: `state state-${stream.state}`, title: stream.reason }, stream.state)),
    el("td", { class: "num" }, stream.fps.toFixed(1)),
    el("td", { class: "num" }, stream.frames_processed),
    dropped(stream),
    el("td", { class: "num" }, stream.reconnects),
    el("td", { class: "error-text" }, stream.last_error || ""),
    el("td", {}, toggle),
  );
}

let polling = false;

async function refreshStreams() {
  const list = await api("/api/v1/streams", { noPrompt: !auth.readsProtected });
  store.streams = list.streams;
  const body = document.querySelector("#streams-table tbody");
  syncRows(body, store.streams, (s) => s.id, streamRow);
  document.getElementById("streams-empty").hidden = store.streams.length > 0;
  for (const listener of store.listeners) listener(store.streams);
}

async function poll() {
  if (polling) return;
  polling = true;
  try {
    await refreshStreams();
  } catch (err) {
    showMessage(`list streams: ${err.message}`);
  } finally {
    polling = false;
  }
}

function wire() {
  for (const tab of document.querySelectorAll("#tabs button")) {
    tab.addEventListener("click", () => show(tab.dataset.view));
  }
  document.getElementById("message-close").addEventListener("click", () => {
    document.getElementById("messages").hidden = true;
  });
  document.getElementById("auth-button").addEventListener("click", () => askForKey("Enter an API key."));
  document.getElementById("auth-signout").addEventListener("click", () => signOut());
  document.getElementById("stream-add").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.target;
    const body = { id: form.elements.id.value.trim(), url: form.elements.url.value.trim() };
    guarded(`add stream ${body.id}`, async () => {
      await api("/api/v1/streams", { method: "POST", body });
      form.reset();
      showMessage(`stream ${body.id} added`, "info");
      await refreshStreams();
    });
  });
  window.addEventListener("vigil-auth", () => poll());
  store.listeners.push((streams) => {
    for (const select of document.querySelectorAll("select.stream-filter")) {
      fillSelect(select, streams.map((s) => s.id), true);
    }
  });
  for (const id of ["events-stream", "recordings-filter"]) {
    document.getElementById(id).classList.add("stream-filter");
  }
}

async function start() {
  wire();
  await guarded("sign-in", () => initAuth());
  await poll();
  setInterval(poll, POLL_MS);
  const wanted = location.hash.slice(1);
  if (wanted && document.getElementById(`view-${wanted}`)) show(wanted);
  document.body.dataset.ready = "true"; // for tests: the first listing is on the page
}

start();
