// Recordings: list (GET /api/v1/recordings), in-page playback of a clip's fragmented MP4,
// delete, and start/stop of a recording for a stream.

import { api, el, fillSelect, formatBytes, guarded, showMessage, syncRows } from "./api.js";

const REFRESH_MS = 3000;

function when(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", "").replace("+00:00", "") : "";
}

export class RecordingsView {
  constructor(store) {
    this.store = store;
    this.timer = null;
    store.listeners.push((streams) => fillSelect(document.getElementById("record-stream"), streams.map((s) => s.id)));
    document.getElementById("record-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.start();
    });
    document.getElementById("record-stop").addEventListener("click", () => this.stop());
    document.getElementById("recordings-filter").addEventListener("change", () => this.refresh());
    document.getElementById("recordings-refresh").addEventListener("click", () => this.refresh());
  }

  show() {
    this.refresh();
    this.timer = setInterval(() => this.refresh(true), REFRESH_MS);
  }

  hide() {
    clearInterval(this.timer);
    this.timer = null;
  }

  stream() {
    return document.getElementById("record-stream").value;
  }

  async start() {
    const id = this.stream();
    if (!id) return showMessage("start recording: no stream to record");
    const body = {
      duration_s: Number(document.getElementById("record-duration").value),
      pre_roll_s: Number(document.getElementById("record-preroll").value),
    };
    await guarded(`start recording ${id}`, async () => {
      const recording = await api(`/api/v1/streams/${encodeURIComponent(id)}/recordings`, { method: "POST", body });
      showMessage(`recording ${recording.id} of ${id}: ${recording.state}`, "info");
      await this.refresh();
    });
  }

  async stop() {
    const id = this.stream();
    if (!id) return;
    await guarded(`stop recording ${id}`, async () => {
      const recording = await api(`/api/v1/streams/${encodeURIComponent(id)}/recordings/stop`, { method: "POST" });
      showMessage(`recording ${recording.id} of ${id}: ${recording.state}`, "info");
      await this.refresh();
    });
  }

  async refresh(quiet = false) {
    const filter = document.getElementById("recordings-filter").value;
    const query = new URLSearchParams({ limit: "100" });
    if (filter) query.set("stream_id", filter);
    const run = async () => {
      const list = await api(`/api/v1/recordings?${query}`);
      this.render(list.recordings);
    };
    if (quiet) {
      try {
        await run();
      } catch {
        // the poll fails quietly; the Refresh button shows the error
      }
    } else {
      await guarded("list recordings", run);
    }
  }

  render(recordings) {
    const body = document.querySelector("#recordings-table tbody");
    syncRows(
      body,
      recordings,
      (r) => r.id,
      (r) => {
        const trigger = r.trigger ? [r.trigger.kind, r.trigger.rule].filter(Boolean).join(": ") : "";
        const duration = typeof r.duration_s === "number" ? `${r.duration_s.toFixed(1)} s` : "";
        return el(
          "tr",
          { "data-recording": r.id, "data-state": r.state },
          el("td", { class: "mono" }, r.id),
          el("td", {}, r.stream_id),
          el("td", { title: r.error || "" }, r.state),
          el("td", {}, when(r.start)),
          el("td", { class: "num" }, duration),
          el("td", {}, trigger),
          el("td", { class: "num" }, formatBytes(r.size_bytes)),
          el(
            "td",
            {},
            el("button", { type: "button", class: "play", onclick: () => this.play(r) }, "Play"),
            " ",
            el("a", { href: r.file_url, download: `${r.id}.${r.container || "mp4"}` }, "Download"),
            " ",
            el("button", { type: "button", class: "delete", onclick: () => this.remove(r) }, "Delete"),
          ),
        );
      },
    );
  }

  play(recording) {
    const player = document.getElementById("player");
    const video = document.getElementById("player-video");
    document.getElementById("player-title").textContent = `${recording.stream_id} — ${when(recording.start)}`;
    player.hidden = false;
    video.dataset.recording = recording.id;
    video.src = recording.file_url;
    video.play().catch((err) => {
      // an autoplay refusal is not an error: the controls are there
      if (err.name !== "NotAllowedError") showMessage(`play ${recording.id}: ${err.message}`);
    });
  }

  async remove(recording) {
    await guarded(`delete ${recording.id}`, async () => {
      await api(`/api/v1/recordings/${encodeURIComponent(recording.id)}`, { method: "DELETE" });
      const video = document.getElementById("player-video");
      if (video.dataset.recording === recording.id) {
        video.removeAttribute("src");
        video.load();
        document.getElementById("player").hidden = true;
      }
      await this.refresh();
    });
  }
}
