"""Write the Grafana dashboard that `docker compose up` provisions (docker/grafana/dashboards).

The panels are declared here, once, so the JSON stays consistent; the test
``tests/deploy/test_compose.py`` checks that every metric a panel queries is one that a
running Vigil really exposes on ``/metrics``.

Usage: ``python scripts/grafana_dashboard.py [--check]`` (``--check``: fail if the file is
stale instead of writing it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docker" / "grafana" / "dashboards" / "vigil.json"
DATASOURCE = {"type": "prometheus", "uid": "vigil-prometheus"}

# (title, unit, [(PromQL, legend)], width) per panel, in rows of 24 grid units.
PANELS: list[tuple[str, str, list[tuple[str, str]], int]] = [
    ("Frames per second, per stream", "fps", [("vigil_stream_fps", "{{stream}}")], 12),
    (
        "Streams by state",
        "short",
        [("sum by (state) (vigil_stream_state)", "{{state}}")],
        12,
    ),
    (
        "Dropped frames per second, by stream and reason",
        "fps",
        [("sum by (stream, reason) (rate(vigil_stream_dropped_frames_total[1m]))",
          "{{stream}} {{reason}}")],
        12,
    ),
    (
        "Reconnects per minute, per stream",
        "short",
        [("sum by (stream) (increase(vigil_stream_reconnects_total[1m]))", "{{stream}}")],
        12,
    ),
    (
        "Latency, capture to events",
        "s",
        [
            ("histogram_quantile(0.5, sum by (le) (rate(vigil_frame_latency_seconds_bucket[1m])))",
             "p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(vigil_frame_latency_seconds_bucket[1m])))",
             "p99"),
        ],
        12,
    ),
    (
        "Triton request latency",
        "s",
        [
            ("histogram_quantile(0.99, sum by (le) "
             "(rate(vigil_triton_request_seconds_bucket[1m])))", "p99"),
        ],
        12,
    ),
    (
        "Events per second to Kafka (stored, acknowledged)",
        "ops",
        [
            ("rate(vigil_kafka_events_stored_total[1m])", "stored"),
            ("rate(vigil_kafka_events_acked_total[1m])", "acknowledged"),
        ],
        12,
    ),
    (
        "Outbox depth",
        "decbytes",
        [("vigil_kafka_outbox_bytes", "bytes waiting")],
        6,
    ),
    ("Kafka connected", "short", [("vigil_kafka_connected", "connected")], 6),
    (
        "Frames per model version",
        "fps",
        [("sum by (model, version) (rate(vigil_model_frames_total[1m]))",
          "{{model}} v{{version}}")],
        12,
    ),
    (
        "Line crossings per minute",
        "short",
        [("sum by (stream, line, direction) (increase(vigil_line_crossings_total[1m]))",
          "{{stream}} {{line}} {{direction}}")],
        12,
    ),
    (
        "Objects in zones",
        "short",
        [("sum by (stream, zone) (vigil_zone_objects)", "{{stream}} {{zone}}")],
        12,
    ),
    (
        "Plugin stage time per frame (p99)",
        "s",
        [
            ("histogram_quantile(0.99, sum by (le, plugin) "
             "(rate(vigil_plugin_seconds_bucket[1m])))", "{{plugin}} p99"),
        ],
        12,
    ),
]  # fmt: skip


def _target(index: int, expr: str, legend: str) -> dict:
    return {
        "refId": chr(ord("A") + index),
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
    }


def dashboard() -> dict:
    """The dashboard as Grafana's JSON model."""
    panels, x, y = [], 0, 0
    for i, (title, unit, queries, width) in enumerate(PANELS, start=1):
        if x + width > 24:
            x, y = 0, y + 8
        panels.append(
            {
                "id": i,
                "type": "timeseries",
                "title": title,
                "datasource": DATASOURCE,
                "gridPos": {"x": x, "y": y, "w": width, "h": 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [_target(j, expr, legend) for j, (expr, legend) in enumerate(queries)],
            }
        )
        x += width
    return {
        "uid": "vigil-overview",
        "title": "Vigil",
        "tags": ["vigil"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": panels,
    }


def render() -> str:
    """The file's content."""
    return json.dumps(dashboard(), indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args()
    content = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != content:
            print(f"{OUT} is stale: run python scripts/grafana_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(content)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
