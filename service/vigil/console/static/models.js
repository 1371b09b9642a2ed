// Models: every model's versions (GET /api/v1/models), swap to a version, roll back.

import { api, el, guarded, showMessage } from "./api.js";

export class ModelsView {
  constructor() {
    this.busy = false;
    document.getElementById("models-rollback").addEventListener("click", () => this.rollback());
  }

  show() {
    this.refresh();
  }

  hide() {}

  async refresh() {
    await guarded("list models", async () => this.render(await api("/api/v1/models")));
  }

  render(list) {
    this.serving = list.serving;
    const previous = list.previous.length ? list.previous[list.previous.length - 1] : null;
    document.getElementById("models-serving").textContent =
      `Serving ${list.serving.model} version ${list.serving.version}` +
      (list.swap_in_progress ? " (a swap is running)" : "");
    const rollback = document.getElementById("models-rollback");
    rollback.disabled = !previous || this.busy;
    rollback.title = previous ? `back to ${previous.model} version ${previous.version}` : "nothing to roll back to";
    document.getElementById("models-list").replaceChildren(...list.models.map((m) => this.model(m)));
    document.querySelector("#swaps-table tbody").replaceChildren(
      ...list.swaps
        .slice()
        .reverse()
        .map((s) =>
          el(
            "tr",
            {},
            el("td", {}, s.id),
            el("td", {}, `${s.model}:${s.version}`),
            el("td", {}, `${s.from_model}:${s.from_version}`),
            el("td", {}, s.trigger),
            el("td", {}, s.state),
            el("td", { class: "num" }, s.duration_s === null ? "" : `${s.duration_s.toFixed(2)} s`),
            el("td", { class: "error-text" }, s.error),
          ),
        ),
    );
  }

  model(model) {
    const rows = model.versions.map((v) =>
      el(
        "tr",
        { "data-version": v.version, class: v.serving ? "serving" : "" },
        el("td", {}, v.version),
        el("td", {}, v.state),
        el("td", {}, v.serving ? "serving" : ""),
        el("td", {}, v.format),
        el("td", {}, v.parser),
        el("td", {}, v.origin),
        el("td", {}, (v.added_at || "").replace("T", " ").slice(0, 19)),
        el(
          "td",
          {},
          v.serving
            ? ""
            : el(
                "button",
                {
                  type: "button",
                  disabled: this.busy || !model.loadable_here,
                  title: model.loadable_here ? "" : "this Triton cannot load this format",
                  onclick: () => this.swap(model.name, v.version),
                },
                "Swap to this version",
              ),
        ),
      ),
    );
    return el(
      "div",
      { class: "model", "data-model": model.name },
      el("h3", {}, `${model.name} `, el("small", {}, `${model.format}, max batch ${model.max_batch_size}`)),
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, ...["Version", "Triton", "", "Format", "Parser", "Origin", "Added", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows),
      ),
    );
  }

  async run(what, path, body) {
    this.busy = true;
    showMessage(`${what}: loading and warming up…`, "info");
    await this.refresh();
    try {
      await guarded(what, async () => {
        const swap = await api(path, { method: "POST", body });
        showMessage(`${what}: ${swap.state}, now ${swap.model}:${swap.version}`, "info");
      });
    } finally {
      this.busy = false;
      await this.refresh();
    }
  }

  swap(name, version) {
    return this.run(`swap to ${name}:${version}`, `/api/v1/models/${encodeURIComponent(name)}/swap`, { version });
  }

  rollback() {
    if (!this.serving) return;
    const name = this.serving.model;
    return this.run(`roll back ${name}`, `/api/v1/models/${encodeURIComponent(name)}/rollback`);
  }
}
