"""Generate the Helm chart's values.schema.json from Vigil's settings.

``config`` (the chart's vigil.yaml) gets the JSON schema of :class:`vigil.config.Settings`, so
``helm install`` / ``helm template`` refuse a setting Vigil would refuse, naming it; the
chart's own keys (images, resources, probes, secrets, ...) are described here by hand. Every
object the chart or Vigil defines has ``additionalProperties: false``; only Kubernetes objects
passed through verbatim (affinity, tolerations, extra volumes, ...) and plugin options stay
open.

Usage::

    python scripts/helm_values_schema.py          # write k8s/vigil/values.schema.json
    python scripts/helm_values_schema.py --check  # exit 1 if the file is stale
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from vigil.config import Settings

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "k8s" / "vigil" / "values.schema.json"

# Pydantic emits draft 2020-12, but Helm 3.18.0 validates values with xeipuuv/gojsonschema,
# which knows drafts 4, 6 and 7 only: there `prefixItems` (pydantic's tuples, e.g. polygon
# points) would be silently ignored. So the schema is converted to draft 7 (_to_draft7).
DRAFT = "http://json-schema.org/draft-07/schema#"

Schema = dict[str, Any]


def _obj(properties: Schema, description: str, required: list[str] | None = None) -> Schema:
    """A closed object: unknown keys are errors."""
    schema: Schema = {
        "type": "object",
        "description": description,
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def _str(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _bool(description: str) -> Schema:
    return {"type": "boolean", "description": description}


def _int(description: str, minimum: int = 0, **extra: Any) -> Schema:
    return {"type": "integer", "description": description, "minimum": minimum, **extra}


def _open_list(description: str) -> Schema:
    """Kubernetes objects passed through verbatim (checked by the API server, not here)."""
    return {"type": "array", "description": description, "items": {"type": "object"}}


def _open_obj(description: str) -> Schema:
    return {"type": "object", "description": description}


def _string_map(description: str) -> Schema:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {"type": "string"},
    }


_QUANTITY: Schema = {
    "description": "Kubernetes quantity (e.g. 500m, 2Gi, 1)",
    "anyOf": [
        {"type": "string", "pattern": r"^[+-]?[0-9.]+([eE][+-]?[0-9]+)?([a-zA-Z]{1,2})?$"},
        {"type": "number"},
    ],
}


def _resources(description: str) -> Schema:
    quantities: Schema = {"type": "object", "additionalProperties": _QUANTITY}
    return _obj(
        {"requests": quantities, "limits": quantities},
        description,
    )


def _image(description: str) -> Schema:
    return _obj(
        {
            "repository": _str("Image repository", minLength=1),
            "tag": _str("Image tag (empty: the chart's appVersion)"),
            "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
        },
        description,
        required=["repository"],
    )


def _probe(description: str) -> Schema:
    return _obj(
        {
            "periodSeconds": _int("Seconds between checks", 1),
            "failureThreshold": _int("Failures in a row that fail the probe", 1),
            "timeoutSeconds": _int("Seconds one check may take", 1),
        },
        description,
        required=["periodSeconds", "failureThreshold", "timeoutSeconds"],
    )


def _container_probes(name: str) -> Schema:
    return _obj(
        {
            "startup": _probe(
                f"{name} startupProbe; its budget (failureThreshold x periodSeconds) must cover "
                "model loading (TensorRT engine builds)"
            ),
            "liveness": _probe(f"{name} livenessProbe"),
            "readiness": _probe(f"{name} readinessProbe"),
        },
        f"{name} container probes",
    )


def chart_properties(config: Schema) -> Schema:
    """The chart's values, with Vigil's settings schema under ``config``."""
    return {
        "nameOverride": _str("Replaces the chart name in resource names"),
        "fullnameOverride": _str("Replaces the release-chart name of resources"),
        "replicaCount": _int("Pods (each runs Vigil and its Triton)", 0),
        "image": _image("The Vigil image (command `vigil serve`)"),
        "tritonImage": _image("The Triton sidecar image"),
        "imagePullSecrets": _open_list("LocalObjectReference list"),
        "serviceAccount": _obj(
            {
                "create": _bool("Create a ServiceAccount"),
                "name": _str("Its name (default: the release's full name)"),
                "annotations": _string_map("Annotations of the ServiceAccount"),
            },
            "Service account of the pod (no API token is mounted)",
        ),
        "config": config,
        "ota": _obj(
            {
                "enabled": _bool("Keep an OTA override file in the settings ConfigMap"),
                "fileName": _str(
                    "Its name under /etc/vigil", pattern=r"^[-._a-zA-Z0-9]+$", minLength=1
                ),
                "override": _str("Its text (docs/models.md: version:, file:, or DeepStream)"),
            },
            "OTA override file (model.ota_override_file)",
        ),
        "secrets": _obj(
            {
                "existingSecret": _str("Name of a Secret holding the keys named in `keys`"),
                "apiKeys": {
                    "type": "array",
                    "description": "API keys (X-API-Key); the chart stores them in a Secret",
                    "items": {"type": "string", "minLength": 1, "writeOnly": True},
                },
                "kafkaSaslUsername": _str("Kafka SASL user name"),
                "kafkaSaslPassword": _str("Kafka SASL password", writeOnly=True),
                "keys": _obj(
                    {
                        "apiKeys": _str("Key holding a JSON list of API keys", minLength=1),
                        "kafkaSaslUsername": _str("Key holding the SASL user", minLength=1),
                        "kafkaSaslPassword": _str("Key holding the SASL password", minLength=1),
                    },
                    "Key names inside the Secret",
                ),
            },
            "API keys and Kafka SASL credentials (VIGIL_* environment variables)",
        ),
        "service": _obj(
            {
                "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "port": _int("Service port of the REST API", 1, maximum=65535),
                "annotations": _string_map("Service annotations"),
                "tritonMetrics": _bool("Also expose Triton's metrics port 8002"),
            },
            "The Service",
        ),
        "persistence": _obj(
            {
                "existingClaim": _str("Use this PersistentVolumeClaim for the model repository"),
                "storageClass": {
                    "type": ["string", "null"],
                    "description": 'Storage class (null: default; "-": none)',
                },
                "accessModes": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "enum": [
                            "ReadWriteOnce",
                            "ReadOnlyMany",
                            "ReadWriteMany",
                            "ReadWriteOncePod",
                        ]
                    },
                },
                "size": {**_QUANTITY, "description": "Requested storage"},
                "annotations": _string_map("PVC annotations"),
            },
            "The model repository volume (/models)",
        ),
        "state": _obj(
            {"sizeLimit": {**_QUANTITY, "description": "emptyDir size limit"}},
            "Vigil's writable data_dir (emptyDir)",
        ),
        "sharedMemory": _obj(
            {"sizeLimit": {**_QUANTITY, "description": "Size of /dev/shm (memory)"}},
            "/dev/shm shared by Vigil and Triton",
        ),
        "gpu": _obj(
            {
                "enabled": _bool("Request GPUs for the Triton container"),
                "count": _int("GPUs", 1),
                "resourceName": _str("Extended resource name", minLength=1),
            },
            "GPUs for Triton",
        ),
        "resources": _obj(
            {
                "vigil": _resources("Vigil container resources"),
                "triton": _resources("Triton container resources (GPUs come from `gpu`)"),
            },
            "Container resources",
        ),
        "probes": _obj(
            {"vigil": _container_probes("Vigil"), "triton": _container_probes("Triton")},
            "Probe timings",
        ),
        "terminationGracePeriodSeconds": _int("Seconds to drain on SIGTERM", 0),
        "podAnnotations": _string_map("Pod annotations"),
        "podLabels": _string_map("Pod labels"),
        "nodeSelector": _string_map("Node selector"),
        "tolerations": _open_list("Toleration list"),
        "affinity": _open_obj("Affinity"),
        "priorityClassName": _str("Priority class"),
        "extraVolumes": _open_list("Extra pod volumes"),
        "extraVolumeMounts": _open_list("Extra Vigil volume mounts"),
        "extraEnv": _open_list("Extra Vigil environment variables (EnvVar list)"),
        "serviceMonitor": _obj(
            {
                "enabled": _bool("Render a Prometheus Operator ServiceMonitor"),
                "interval": _str("Scrape interval", pattern=r"^[0-9]+(ms|s|m|h)$"),
                "scrapeTimeout": _str("Scrape timeout", pattern=r"^[0-9]+(ms|s|m|h)$"),
                "labels": _string_map("Extra labels (to match Prometheus' selector)"),
            },
            "ServiceMonitor (monitoring.coreos.com/v1)",
        ),
        "podDisruptionBudget": _obj(
            {
                "enabled": _bool("Render a PodDisruptionBudget"),
                "minAvailable": {"type": ["integer", "string", "null"]},
                "maxUnavailable": {"type": ["integer", "string", "null"]},
            },
            "PodDisruptionBudget (one of minAvailable / maxUnavailable)",
        ),
        "networkPolicy": _obj(
            {
                "enabled": _bool("Render a NetworkPolicy"),
                "apiFrom": _open_list("NetworkPolicyPeer list allowed to the API port"),
                "metricsFrom": _open_list("NetworkPolicyPeer list allowed to metrics"),
                "egress": _open_list("NetworkPolicyEgressRule list (DNS is added)"),
            },
            "NetworkPolicy",
        ),
    }


def _strip_secret_defaults(node: Any) -> None:
    """Drop any default of a secret field (pydantic's SecretStr: ``writeOnly``)."""
    if isinstance(node, dict):
        if node.get("writeOnly") and node.get("default") is not None:
            del node["default"]
        for value in node.values():
            _strip_secret_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _strip_secret_defaults(value)


def _to_draft7(node: Any) -> Any:
    """Rewrite pydantic's draft 2020-12 keywords as their draft 7 equivalents.

    ``prefixItems`` becomes the array form of ``items`` (with no further items allowed, as
    pydantic bounds tuples by ``maxItems`` anyway), and ``#/$defs/X`` refs become
    ``#/definitions/X``. Anything else 2020-only is refused, so a new pydantic construct is
    noticed here instead of being ignored by Helm.
    """
    if isinstance(node, list):
        return [_to_draft7(v) for v in node]
    if not isinstance(node, dict):
        return node
    unsupported = {
        "$dynamicRef",
        "$dynamicAnchor",
        "unevaluatedItems",
        "unevaluatedProperties",
        "dependentRequired",
        "dependentSchemas",
        "$anchor",
    } & node.keys()
    if unsupported:
        raise ValueError(f"no draft 7 form for {sorted(unsupported)}")
    out: Schema = {}
    for key, value in node.items():
        if key == "prefixItems":
            out["items"] = _to_draft7(value)
            out["additionalItems"] = False
        elif key == "$ref" and isinstance(value, str):
            out[key] = value.replace("#/$defs/", "#/definitions/")
        else:
            out[key] = _to_draft7(value)
    return out


def build_schema() -> Schema:
    """The whole values schema: the chart's keys, Vigil's settings under ``config``."""
    settings = copy.deepcopy(Settings.model_json_schema())
    # Pydantic refers to "#/$defs/X" from the document root: nested under properties.config
    # those refs would not resolve, so the definitions move to this schema's root (as draft
    # 7's "definitions", see _to_draft7).
    defs = settings.pop("$defs", {})
    settings.pop("title", None)
    settings["description"] = (
        "Vigil's settings (vigil.yaml; service/vigil/config.py). The chart sets api.host, "
        "api.port, triton.url, triton.model_repository, data_dir, run_dir, cache_dir and "
        "model.ota_override_file; credentials go in `secrets`."
    )
    schema: Schema = {
        "$schema": DRAFT,
        "title": "Values of the Vigil Helm chart",
        "type": "object",
        "properties": chart_properties(settings),
        "additionalProperties": False,
        "definitions": defs,
    }
    _strip_secret_defaults(schema)
    return _to_draft7(schema)


def render() -> str:
    """The schema as written to values.schema.json (stable key order, trailing newline)."""
    return json.dumps(build_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema, or with ``--check`` report whether the checked-in one is current."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(
                f"{args.output} is stale: run `make helm-schema` "
                "(or python scripts/helm_values_schema.py)",
                file=sys.stderr,
            )
            return 1
        print(f"{args.output} is current")
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
