// The live event feed: GET /api/v1/events/live as Server-Sent Events (EventSource).
//
// Each message is one event in nvmsgconv's full schema. The feed opens the first time the
// view is shown and stays open (events keep arriving while other views are shown); rows
// are added at most every FLUSH_MS, and only the newest MAX_ROWS are kept.

import { el } from "./api.js";

const MAX_ROWS = 200;
const FLUSH_MS = 200;

const NOT_A_CLASS = new Set(["bbox", "location", "coordinate", "analytics", "mask", "embedding", "pose"]);

// The full schema keys the object's attributes by its class label ("person": {...}).
function objectText(object, type) {
  if (!object) return "";
  if (type === "recording" && object.recording) {
    const clip = object.recording;
    return `clip ${clip.recording_id} (${clip.state}, ${Number(clip.duration_s).toFixed(1)} s)`;
  }
  const label = Object.keys(object).find(
    (k) => !NOT_A_CLASS.has(k) && object[k] !== null && typeof object[k] === "object",
  );
  const attrs = label ? object[label] : {};
  const id = object.id && object.id !== "-1" ? ` #${object.id}` : "";
  const confidence = typeof attrs.confidence === "number" ? ` ${(attrs.confidence * 100).toFixed(0)}%` : "";
  return `${label || ""}${id}${confidence}`.trim();
}

function detailText(event) {
  const type = event.event && event.event.type;
  if (type === "recording") return event.videoPath || "";
  const object = event.object || {};
  const analytics = object.analytics;
  if (analytics && Object.keys(analytics).length) {
    return Object.entries(analytics)
      .filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length))
      .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`)
      .join(" ");
  }
  const b = object.bbox;
  return b ? `box ${b.topleftx},${b.toplefty} – ${b.bottomrightx},${b.bottomrighty}` : "";
}

export class EventsView {
  constructor(store) {
    this.store = store;
    this.source = null;
    this.paused = false;
    this.pending = [];
    this.received = 0;
    this.lost = 0;
    this.stream = "";
    document.getElementById("events-stream").addEventListener("change", (e) => {
      this.stream = e.target.value;
      if (this.source) this.connect();
    });
    document.getElementById("events-pause").addEventListener("click", (e) => {
      this.paused = !this.paused;
      e.target.textContent = this.paused ? "Resume" : "Pause";
    });
    document.getElementById("events-clear").addEventListener("click", () => {
      document.querySelector("#events-table tbody").replaceChildren();
    });
    window.addEventListener("vigil-auth", () => {
      if (this.source) this.connect();
    });
  }

  show() {
    if (!this.source) this.connect();
  }

  hide() {}

  status(text, kind) {
    const badge = document.getElementById("events-status");
    badge.textContent = text;
    badge.className = `badge ${kind}`;
  }

  connect() {
    if (this.source) this.source.close();
    const query = this.stream ? `?stream_id=${encodeURIComponent(this.stream)}` : "";
    const source = new EventSource(`/api/v1/events/live${query}`);
    this.source = source;
    this.status("connecting…", "pending");
    source.onopen = () => this.status("connected", "ok");
    source.onerror = () => {
      // EventSource reconnects by itself (retry: 3 s) unless the server refused it
      this.status(source.readyState === EventSource.CLOSED ? "refused (see the server's log)" : "reconnecting…", "bad");
    };
    source.onmessage = (message) => {
      this.received += 1;
      if (this.paused) return;
      this.pending.push(message.data);
      // one DOM update per FLUSH_MS, not per event (a timer, not requestAnimationFrame:
      // the feed also fills while another view is shown, when frames may not be drawn)
      if (this.pending.length === 1) setTimeout(() => this.flush(), FLUSH_MS);
    };
    source.addEventListener("dropped", (message) => {
      this.lost += JSON.parse(message.data).dropped;
    });
  }

  flush() {
    const body = document.querySelector("#events-table tbody");
    const rows = this.pending.splice(0).slice(-MAX_ROWS).map((data) => {
      const event = JSON.parse(data);
      return el(
        "tr",
        { "data-type": event.event && event.event.type },
        el("td", {}, (event["@timestamp"] || "").replace("T", " ").replace("Z", "")),
        el("td", {}, event.sensor && event.sensor.id),
        el("td", {}, event.event && event.event.type),
        el("td", {}, objectText(event.object, event.event && event.event.type)),
        el("td", { class: "details" }, detailText(event)),
      );
    });
    body.prepend(...rows.reverse());
    while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
    const lost = this.lost ? `, ${this.lost} dropped (too slow)` : "";
    document.getElementById("events-count").textContent = `${this.received} events${lost}`;
  }
}
