// Live tiles: each stream's MJPEG (GET /api/v1/streams/{id}/live.mjpeg) in an <img>.
//
// The server draws the overlay only while someone watches, so tiles stream only while this
// view is shown: hiding it (or unticking a stream) closes the connection (src removed).

import { el } from "./api.js";

const OPTIONS = ["bbox", "labels", "zones", "timestamp"];

export class LiveView {
  constructor(store) {
    this.store = store;
    this.visible = false;
    this.chosen = null; // stream ids shown; null: every stream (until the user picks)
    this.tiles = new Map(); // stream id → {figure, img, url}
    store.listeners.push(() => this.sync());
    for (const id of [...OPTIONS.map((o) => `live-${o}`), "live-fps", "live-height"]) {
      document.getElementById(id).addEventListener("change", () => this.restart());
    }
    window.addEventListener("vigil-auth", () => this.restart());
  }

  show() {
    this.visible = true;
    this.sync();
  }

  hide() {
    this.visible = false;
    for (const id of [...this.tiles.keys()]) this.drop(id);
  }

  url(id) {
    const params = new URLSearchParams({
      fps: document.getElementById("live-fps").value,
      height: document.getElementById("live-height").value,
    });
    for (const option of OPTIONS) {
      params.set(option, document.getElementById(`live-${option}`).checked ? "1" : "0");
    }
    return `/api/v1/streams/${encodeURIComponent(id)}/live.mjpeg?${params}`;
  }

  pickers() {
    const box = document.getElementById("live-streams");
    const ids = this.store.streams.map((s) => s.id);
    const shown = [...box.querySelectorAll("input")].map((i) => i.value);
    if (shown.join("\n") === ids.join("\n")) return;
    box.replaceChildren(
      ...ids.map((id) =>
        el(
          "label",
          {},
          el("input", {
            type: "checkbox",
            value: id,
            checked: this.chosen === null || this.chosen.has(id),
            onchange: () => {
              this.chosen = new Set(
                [...box.querySelectorAll("input:checked")].map((i) => i.value),
              );
              this.sync();
            },
          }),
          ` ${id} `,
        ),
      ),
    );
  }

  sync() {
    this.pickers();
    if (!this.visible) return;
    const live = new Set(this.store.streams.map((s) => s.id));
    const wanted = [...live].filter((id) => this.chosen === null || this.chosen.has(id));
    for (const id of [...this.tiles.keys()]) {
      if (!wanted.includes(id)) this.drop(id);
    }
    const grid = document.getElementById("tiles");
    for (const id of wanted) {
      if (this.tiles.has(id)) continue;
      const img = el("img", { class: "tile-image", alt: `live view of ${id}`, "data-stream": id });
      const status = el("span", { class: "tile-status" }, "connecting…");
      img.addEventListener("load", () => (status.textContent = ""), { once: true });
      img.addEventListener("error", () => (status.textContent = "no picture: the stream is gone, or too many viewers (live settings)"));
      const figure = el("figure", { class: "tile", "data-stream": id }, img, el("figcaption", {}, id, " ", status));
      grid.append(figure);
      img.src = this.url(id);
      this.tiles.set(id, { figure, img });
    }
  }

  drop(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    tile.img.removeAttribute("src"); // closes the MJPEG connection
    tile.figure.remove();
    this.tiles.delete(id);
  }

  restart() {
    for (const id of [...this.tiles.keys()]) this.drop(id);
    this.sync();
  }
}
