// The analytics editor: draw a line or a polygon on a stream's snapshot and save it as a
// rule through PUT /api/v1/streams/{id}/analytics (hot reload, counts of other rules kept).
//
// The canvas over the snapshot has the snapshot's own size in pixels (the source's), so a
// click maps to source pixels by the ratio of drawn to shown size; points are then written
// in the config's own terms (pixels, pixels of its reference_size, or normalized 0..1).

import { api, el, fetchBlobUrl, fillSelect, guarded, showMessage } from "./api.js";

const POLYGON_KINDS = { rois: "ROI filter", crowding: "crowding zone", dwell: "dwell zone" };
const THRESHOLDS = { crowding: ["objects", 3, 1], dwell: ["seconds", 5, 0.1] };
const KIND_NAMES = { lines: "line", rois: "roi", crowding: "crowd", dwell: "dwell" };

export class EditorView {
  constructor(store) {
    this.store = store;
    this.stream = "";
    this.config = null;
    this.points = [];
    this.closed = false; // a polygon whose last point is in
    this.size = null; // [width, height] of the snapshot
    this.blobUrl = null;
    this.canvas = document.getElementById("editor-canvas");
    this.image = document.getElementById("editor-snapshot");
    store.listeners.push((streams) => {
      const select = document.getElementById("editor-stream");
      fillSelect(select, streams.map((s) => s.id));
      if (this.visible && select.value && select.value !== this.stream) this.load();
    });
    document.getElementById("editor-stream").addEventListener("change", () => this.load());
    document.getElementById("editor-reload").addEventListener("click", () => this.load());
    document.getElementById("editor-kind").addEventListener("change", () => this.kindChanged());
    document.getElementById("editor-undo").addEventListener("click", () => {
      this.points.pop();
      this.closed = false;
      this.draw();
    });
    document.getElementById("editor-finish").addEventListener("click", () => {
      if (this.points.length < 3) return showMessage("a polygon needs at least 3 points");
      this.closed = true;
      this.draw();
    });
    document.getElementById("editor-save").addEventListener("click", () => this.save());
    this.canvas.addEventListener("click", (e) => this.click(e));
    this.kindChanged();
  }

  show() {
    this.visible = true;
    if (!this.stream || this.stream !== document.getElementById("editor-stream").value) this.load();
  }

  hide() {
    this.visible = false;
  }

  kind() {
    return document.getElementById("editor-kind").value;
  }

  kindChanged() {
    const kind = this.kind();
    const threshold = THRESHOLDS[kind];
    document.getElementById("editor-threshold-label").hidden = !threshold;
    if (threshold) {
      const [unit, value, step] = threshold;
      document.getElementById("editor-threshold-name").textContent = `threshold (${unit})`;
      const input = document.getElementById("editor-threshold");
      input.value = value;
      input.step = step;
    }
    document.getElementById("editor-finish").hidden = kind === "lines";
    document.getElementById("editor-hint").textContent =
      kind === "lines"
        ? "Click the line's two ends on the snapshot; objects crossing towards its right-hand side count as in."
        : `Click the corners of the ${POLYGON_KINDS[kind]}, then Finish polygon.`;
    document.getElementById("editor-name").value = this.freeName(kind);
    this.points = [];
    this.closed = false;
    this.draw();
  }

  freeName(kind) {
    const taken = new Set(((this.config && this.config[kind]) || []).map((r) => r.name));
    let n = 1;
    while (taken.has(`${KIND_NAMES[kind]}-${n}`)) n += 1;
    return `${KIND_NAMES[kind]}-${n}`;
  }

  async load() {
    this.stream = document.getElementById("editor-stream").value;
    if (!this.stream) return;
    const id = encodeURIComponent(this.stream);
    await guarded(`analytics of ${this.stream}`, async () => {
      const info = await api(`/api/v1/streams/${id}/analytics`);
      this.config = info.config;
      this.showCounts(info.counts);
    });
    await guarded(`snapshot of ${this.stream}`, async () => {
      const url = await fetchBlobUrl(`/api/v1/streams/${id}/snapshot.jpg?bbox=1&zones=0&timestamp=0`);
      await new Promise((resolve, reject) => {
        this.image.onload = resolve;
        this.image.onerror = () => reject(new Error("the snapshot is not an image"));
        this.image.src = url;
      });
      if (this.blobUrl) URL.revokeObjectURL(this.blobUrl);
      this.blobUrl = url;
      this.size = [this.image.naturalWidth, this.image.naturalHeight];
      this.canvas.width = this.size[0];
      this.canvas.height = this.size[1];
    });
    this.newShape();
  }

  // Forget the shape being drawn; offer a free name for the next rule.
  newShape() {
    this.points = [];
    this.closed = false;
    document.getElementById("editor-name").value = this.freeName(this.kind());
    this.renderRules();
    this.draw();
  }

  showCounts(counts) {
    document.getElementById("editor-counts").textContent = JSON.stringify(counts, null, 1);
  }

  // Source pixels ⇄ the config's coordinates.
  toConfig([x, y]) {
    const [w, h] = this.size;
    const c = this.config || {};
    if (c.coordinates === "normalized") return [round(x / w, 4), round(y / h, 4)];
    if (c.reference_size) return [round((x * c.reference_size[0]) / w, 1), round((y * c.reference_size[1]) / h, 1)];
    return [Math.round(x), Math.round(y)];
  }

  fromConfig([x, y]) {
    const [w, h] = this.size;
    const c = this.config || {};
    if (c.coordinates === "normalized") return [x * w, y * h];
    if (c.reference_size) return [(x * w) / c.reference_size[0], (y * h) / c.reference_size[1]];
    return [x, y];
  }

  click(e) {
    if (!this.size) return showMessage("no snapshot: nothing to draw on");
    const rect = this.canvas.getBoundingClientRect();
    const x = ((e.clientX - rect.left) * this.canvas.width) / rect.width;
    const y = ((e.clientY - rect.top) * this.canvas.height) / rect.height;
    const max = this.kind() === "lines" ? 2 : 64;
    if (this.closed || this.points.length >= max) {
      this.points = [];
      this.closed = false;
    }
    this.points.push([x, y]);
    this.draw();
  }

  ready() {
    return this.kind() === "lines" ? this.points.length === 2 : this.closed;
  }

  rule() {
    const kind = this.kind();
    const name = document.getElementById("editor-name").value.trim();
    const points = this.points.map((p) => this.toConfig(p));
    const threshold = Number(document.getElementById("editor-threshold").value);
    if (kind === "lines") return { name, line: points };
    if (kind === "rois") return { name, polygon: points, mode: "include" };
    if (kind === "crowding") return { name, polygon: points, threshold };
    return { name, polygon: points, threshold_s: threshold };
  }

  async save() {
    if (!this.stream) return showMessage("save rule: no stream chosen");
    if (!this.ready()) {
      return showMessage(this.kind() === "lines" ? "save rule: click the line's two ends first" : "save rule: draw the polygon and finish it first");
    }
    const kind = this.kind();
    if (this.isEmpty() && !(this.config && this.config.coordinates === "normalized")) {
      // A fresh config says which picture its pixels are of: the snapshot may be scaled
      // down from the source (live.default_height), and the server scales them back.
      this.config = { ...(this.config || {}), coordinates: "pixels", reference_size: [...this.size] };
    }
    const rule = this.rule();
    const config = structuredClone(this.config);
    config[kind] = (config[kind] || []).filter((r) => r.name !== rule.name).concat([rule]);
    await this.put(config, `rule ${rule.name} saved on ${this.stream}`);
  }

  async remove(kind, name) {
    const config = structuredClone(this.config || {});
    config[kind] = (config[kind] || []).filter((r) => r.name !== name);
    await this.put(config, `rule ${name} removed from ${this.stream}`);
  }

  async put(config, done) {
    await guarded(`save analytics of ${this.stream}`, async () => {
      const info = await api(`/api/v1/streams/${encodeURIComponent(this.stream)}/analytics`, { method: "PUT", body: config });
      this.config = info.config;
      this.showCounts(info.counts);
      this.newShape();
      showMessage(done, "info");
    });
  }

  isEmpty() {
    const c = this.config || {};
    return ["rois", "lines", "crowding", "dwell", "directions"].every((k) => !(c[k] || []).length);
  }

  rules() {
    const c = this.config || {};
    const found = [];
    for (const line of c.lines || []) found.push(["lines", line.name, line.line, false]);
    for (const kind of Object.keys(POLYGON_KINDS)) {
      for (const rule of c[kind] || []) found.push([kind, rule.name, rule.polygon, true]);
    }
    return found;
  }

  renderRules() {
    document.getElementById("editor-rules").replaceChildren(
      ...this.rules().map(([kind, name, points]) =>
        el(
          "li",
          { "data-kind": kind, "data-name": name },
          `${KIND_NAMES[kind]} ${name}: ${JSON.stringify(points)} `,
          el("button", { type: "button", onclick: () => this.remove(kind, name) }, "Delete"),
        ),
      ),
    );
  }

  draw() {
    const ctx = this.canvas.getContext("2d");
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.size) return;
    const width = Math.max(2, this.size[0] / 320);
    ctx.lineWidth = width;
    ctx.font = `${Math.round(width * 7)}px sans-serif`;
    for (const [, name, points, closed] of this.rules()) {
      path(ctx, points.map((p) => this.fromConfig(p)), closed, "rgba(0, 200, 255, 0.9)");
      const [x, y] = this.fromConfig(points[0]);
      ctx.fillStyle = "rgba(0, 200, 255, 0.9)";
      // the name above the first point, or below it when that is at the top edge
      const size = width * 7;
      ctx.fillText(name, x + width * 2, y - width * 2 < size ? y + size + width * 2 : y - width * 2);
    }
    if (this.points.length) {
      path(ctx, this.points, this.closed, "rgba(255, 220, 0, 1)");
      ctx.fillStyle = "rgba(255, 220, 0, 1)";
      for (const [x, y] of this.points) {
        ctx.beginPath();
        ctx.arc(x, y, width * 2, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
  }
}

function path(ctx, points, closed, color) {
  ctx.strokeStyle = color;
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  if (closed) ctx.closePath();
  ctx.stroke();
}

function round(value, digits) {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
