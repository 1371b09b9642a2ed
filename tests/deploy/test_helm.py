"""The Helm chart (k8s/vigil), checked offline with the real Helm 3.18 and kubernetes-validate.

Renders come from `helm template`; the Kubernetes objects are validated against the
Kubernetes 1.30 and 1.33 OpenAPI schemas with `kubernetes-validate --strict` (unknown fields
are errors). No cluster is needed. `make test` installs Helm; without it these tests fail.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helm import helm_binary, kubernetes_validate_binary
from vigil.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "k8s" / "vigil"
BAD_VALUES = Path(__file__).with_name("values")
KUBE_VERSIONS = ["1.30.0", "1.33.0"]
# Vigil's API needs keys (or allow_insecure) to listen on 0.0.0.0: without any the chart
# makes one up (kept in its Secret); WITH_KEY gives one.
WITH_KEY = ("--set", "secrets.apiKeys={test-key}")
CASES: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "defaults+key": WITH_KEY,
    "defaults+insecure": ("--set", "config.api.allow_insecure=true"),
    "ci-gpu": ("-f", str(CHART / "ci" / "gpu-values.yaml")),
    "ci-cpu": ("-f", str(CHART / "ci" / "cpu-values.yaml")),
    "cluster": (
        *WITH_KEY,
        *("--set", "replicaCount=3", "--set", "config.cluster.enabled=true"),
        *("--set", "config.kafka.bootstrap_servers=kafka:9092"),
    ),
}
# Kinds kubernetes-validate knows nothing about (CRDs): checked by hand below instead.
CRD_KINDS = {"ServiceMonitor"}

Doc = dict[str, Any]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run helm with a throwaway home, so no user repositories or plugins are read."""
    env = {**os.environ, "HELM_CACHE_HOME": "/nonexistent", "HELM_CONFIG_HOME": "/nonexistent"}
    return subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, timeout=60, env=env
    )


@functools.cache
def _render_text(args: tuple[str, ...], kube_version: str) -> str:
    result = helm(
        "template", "rel", str(CHART), "--namespace", "vision", "--kube-version", kube_version,
        *args,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(args: tuple[str, ...], kube_version: str = "1.33.0") -> list[Doc]:
    """The documents `helm template` renders for these arguments."""
    return [d for d in yaml.safe_load_all(_render_text(args, kube_version)) if d]


def one(docs: list[Doc], kind: str) -> Doc:
    """The single document of ``kind``."""
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} documents"
    return found[0]


def pod_spec(docs: list[Doc]) -> Doc:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def container(docs: list[Doc], name: str) -> Doc:
    return next(c for c in pod_spec(docs)["containers"] if c["name"] == name)


def vigil_yaml(docs: list[Doc]) -> Doc:
    return yaml.safe_load(one(docs, "ConfigMap")["data"]["vigil.yaml"])


def kube_validate(docs: list[Doc], kube_version: str, tmp_path: Path) -> None:
    """Validate the documents, failing the test with kubernetes-validate's report."""
    path = tmp_path / f"rendered-{kube_version}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    result = subprocess.run(
        [str(kubernetes_validate_binary()), "--strict", "-k", kube_version, "--quiet",
         str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# --- tools ---------------------------------------------------------------------------------


def test_missing_helm_fails_instead_of_skipping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_CACHE_DIR", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="run `make test`"):
        helm_binary()


# --- lint and render -------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_lint_strict(case: str) -> None:
    result = helm("lint", "--strict", str(CHART), *CASES[case])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_render_validates_against_kubernetes(case: str, kube_version: str, tmp_path: Path) -> None:
    docs = render(CASES[case], kube_version)
    core = [d for d in docs if d["kind"] not in CRD_KINDS]
    assert {d["kind"] for d in core} >= {"Deployment", "ConfigMap", "Service"}
    kube_validate(core, kube_version, tmp_path)


def test_validator_catches_a_misspelt_field(tmp_path: Path) -> None:
    """kubernetes-validate really checks: a misspelt container field fails --strict."""
    docs = render(WITH_KEY)
    container(docs, "vigil")["readOnlyRootFilesystem"] = True  # belongs in securityContext
    with pytest.raises(AssertionError, match="readOnlyRootFilesystem"):
        kube_validate([one(docs, "Deployment")], "1.33.0", tmp_path)


def test_optional_objects_render_only_when_enabled() -> None:
    default_kinds = {d["kind"] for d in render(WITH_KEY)}
    assert not default_kinds & {"ServiceMonitor", "PodDisruptionBudget", "NetworkPolicy"}
    gpu = render(CASES["ci-gpu"])
    # The ServiceMonitor CRD is unknown to kubernetes-validate: its essentials are checked
    # here instead.
    monitor = one(gpu, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    endpoints = {e["port"]: e["path"] for e in monitor["spec"]["endpoints"]}
    assert endpoints == {"http": "/metrics", "triton-metrics": "/metrics"}
    service_ports = {p["name"] for p in one(gpu, "Service")["spec"]["ports"]}
    assert set(endpoints) <= service_ports
    assert monitor["spec"]["selector"]["matchLabels"] == one(gpu, "Service")["spec"]["selector"]
    assert one(gpu, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in one(gpu, "PodDisruptionBudget")["spec"]
    policy = one(gpu, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress_ports == {"http", "triton-metrics"}  # never Triton's gRPC/HTTP


# --- values the chart must refuse ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values_file", "named"),
    [
        ("wrong-type-config.yaml", "config.pipeline.max_batch_size"),
        ("wrong-type-chart.yaml", "gpu.enabled"),
        ("unknown-key-config.yaml", "max_batchsize"),
        ("unknown-key-chart.yaml", "startUp"),
    ],
)
def test_schema_rejects_bad_values(values_file: str, named: str) -> None:
    result = helm("template", "rel", str(CHART), "-f", str(BAD_VALUES / values_file))
    assert result.returncode != 0, f"{values_file} rendered"
    assert "don't meet the specifications of the schema" in result.stderr
    assert named in result.stderr, result.stderr


def test_default_values_make_up_an_api_key_and_give_it_to_vigil() -> None:
    """Vigil refuses to listen on 0.0.0.0 without keys: with none given, the chart makes a
    random one (kept across upgrades by looking the Secret up in the cluster)."""
    docs = render(())
    secret = one(docs, "Secret")
    keys = json.loads(secret["stringData"]["api-keys"])
    assert len(keys) == 1
    assert len(keys[0]) == 40
    again = helm("template", "rel", str(CHART))  # uncached: a new render, a new key
    assert keys[0] not in again.stdout, "random, not a fixed default"
    vigil = next(c for c in pod_spec(docs)["containers"] if c["name"] == "vigil")
    env = {e["name"]: e for e in vigil["env"]}
    ref = env["VIGIL_API__API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret["metadata"]["name"], "key": "api-keys"}
    insecure = render(("--set", "config.api.allow_insecure=true"))
    assert not [d for d in insecure if d["kind"] == "Secret"], "no key made up when told not to"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "config.api.host=10.0.0.1"), "config.api.host is set by the chart"),
        (("--set", "config.triton.url=triton:8001"), "config.triton.url is set by the chart"),
        (("--set", "config.data_dir=/data"), "config.data_dir is set by the chart"),
        (("--set-json", 'config.api.api_keys=["leak"]'), "would put keys in a ConfigMap"),
        (
            ("--set", "config.kafka.security.sasl_password=leak"),
            "config.kafka.security.sasl_password would put a credential in a ConfigMap",
        ),
        (
            ("--set", "serviceMonitor.enabled=true", "--set", "config.api.protect_reads=true"),
            "cannot send",
        ),
        (("--set", "replicaCount=2"), "replicaCount > 1 needs config.cluster.enabled"),
        (("--set", "config.cluster.enabled=true"), "needs config.kafka.bootstrap_servers"),
        (
            ("--set", "config.cluster.worker_id=w1"),
            "config.cluster.worker_id is set by the chart",
        ),
    ],
)
def test_chart_refuses_settings_it_owns_or_that_leak(args: tuple[str, ...], message: str) -> None:
    result = helm("template", "rel", str(CHART), *WITH_KEY, *args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# --- the schema ------------------------------------------------------------------------------


def test_values_schema_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "helm_values_schema.py"), "--check"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_values_schema_is_closed_and_holds_no_secret_defaults() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    open_objects: list[str] = []
    secret_defaults: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(path)
            if node.get("writeOnly") and node.get("default") not in (None, "", []):
                secret_defaults.append(path)
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(schema, "#")
    assert not open_objects
    assert not secret_defaults
    # Draft 7 only (what Helm 3.18's gojsonschema knows); pydantic's 2020-12 forms converted.
    text = (CHART / "values.schema.json").read_text()
    assert "$defs" not in text
    assert "prefixItems" not in text
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["secrets"]["apiKeys"] == []
    assert not values["secrets"]["kafkaSaslPassword"]


# --- what the rendered pod must be -----------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_settings_are_a_config_vigil_accepts(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """vigil.yaml from the ConfigMap plus the Secret's variables load as Vigil's Settings and
    pass the API bind rule (Vigil would otherwise refuse to start)."""
    docs = render(CASES[case])  # before the environment is cleared (VIGIL_CACHE_DIR)
    for name in list(os.environ):
        if name.startswith("VIGIL_"):
            monkeypatch.delenv(name)
    secrets = [d for d in docs if d["kind"] == "Secret"]
    string_data = secrets[0]["stringData"] if secrets else {}
    for env in container(docs, "vigil").get("env", []):
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["key"] in string_data:
            monkeypatch.setenv(env["name"], string_data[ref["key"]])
        elif ref and env["name"] == "VIGIL_API__API_KEYS":
            monkeypatch.setenv(env["name"], '["from-existing-secret"]')  # an existing Secret
    settings = Settings(**vigil_yaml(docs))
    assert settings.api.host == "0.0.0.0"
    assert settings.api.insecure_bind() is None
    assert settings.triton.url == "localhost:8001"
    if case == "ci-cpu":
        assert [k.get_secret_value() for k in settings.api.api_keys] == [
            "ci-key-one",
            "ci-key-two",
        ]
        assert settings.kafka.security.sasl_username == "vigil"
        password = settings.kafka.security.sasl_password
        assert password is not None
        assert password.get_secret_value() == "ci-sasl-password"
        assert "ci-sasl-password" not in one(docs, "ConfigMap")["data"]["vigil.yaml"]


def test_replicas_share_the_streams_as_cluster_workers_named_after_their_pods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With cluster.enabled each pod joins the worker group as itself, reachable at its own
    address (the kubelet expands $(POD_NAME) and $(POD_IP); here with sample values)."""
    docs = render(CASES["cluster"])
    assert one(docs, "Deployment")["spec"]["replicas"] == 3
    env = {e["name"]: e for e in container(docs, "vigil")["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    for name in list(os.environ):
        if name.startswith("VIGIL_"):
            monkeypatch.delenv(name)
    pod = {"POD_NAME": "rel-vigil-7d9f-x2k4q", "POD_IP": "10.1.2.3"}
    for name in ("VIGIL_CLUSTER__WORKER_ID", "VIGIL_CLUSTER__ADVERTISED_URL"):
        value = env[name]["value"]
        for var, sample in pod.items():
            value = value.replace(f"$({var})", sample)
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VIGIL_API__API_KEYS", '["k"]')
    settings = Settings(**vigil_yaml(docs))
    assert settings.cluster.enabled
    assert settings.cluster.worker == "rel-vigil-7d9f-x2k4q"
    assert settings.cluster.advertised_url == "http://10.1.2.3:8080"
    assert not any(e.get("name", "").startswith("VIGIL_CLUSTER") for e in container(
        render(CASES["defaults+key"]), "vigil").get("env", []))  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_config_map_is_mounted_as_a_directory(case: str) -> None:
    docs = render(CASES[case])
    spec = pod_spec(docs)
    config_volumes = [v["name"] for v in spec["volumes"] if "configMap" in v]
    assert [v for v in spec["volumes"] if v["name"] == "config"] == [
        {"name": "config", "configMap": {"name": one(docs, "ConfigMap")["metadata"]["name"]}}
    ]
    for c in spec["containers"]:
        for mount in c["volumeMounts"]:
            if mount["name"] in config_volumes:
                assert "subPath" not in mount, (c["name"], mount)
                assert "subPathExpr" not in mount, (c["name"], mount)
    mounts = {m["name"]: m for m in container(docs, "vigil")["volumeMounts"]}
    assert mounts["config"]["mountPath"] == "/etc/vigil"
    assert container(docs, "vigil")["command"][-1] == "/etc/vigil/vigil.yaml"
    ota_file = vigil_yaml(docs).get("model", {}).get("ota_override_file")
    if ota_file is not None:
        # The OTA file sits in the mounted directory, so ConfigMap edits reach it.
        assert Path(ota_file).parent == Path("/etc/vigil")
        assert Path(ota_file).name in one(docs, "ConfigMap")["data"]


def test_ota_edits_do_not_restart_pods_but_settings_changes_do() -> None:
    base = CASES["ci-gpu"]

    def checksum(*extra: str) -> str:
        template = one(render((*base, *extra)), "Deployment")["spec"]["template"]
        return template["metadata"]["annotations"]["checksum/settings"]

    assert checksum() == checksum("--set", "ota.override=version: 2")
    assert checksum() != checksum("--set", "config.pipeline.max_batch_size=8")


@pytest.mark.parametrize("case", list(CASES))
def test_rolling_update_keeps_every_pod_until_its_replacement_is_ready(case: str) -> None:
    strategy = one(render(CASES[case]), "Deployment")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_default_startup_probes_cover_a_tensorrt_build() -> None:
    docs = render(WITH_KEY)
    for name in ("vigil", "triton"):
        probe = container(docs, name)["startupProbe"]
        assert probe["failureThreshold"] * probe["periodSeconds"] >= 1800, name


def test_probes_hit_the_health_endpoints_without_keys() -> None:
    """Live and ready need no key even with protect_reads (health.py): probes send none."""
    docs = render(CASES["ci-cpu"])
    vigil, triton = container(docs, "vigil"), container(docs, "triton")
    assert vigil["startupProbe"]["httpGet"]["path"] == "/api/v1/live"
    assert vigil["livenessProbe"]["httpGet"]["path"] == "/api/v1/live"
    assert vigil["readinessProbe"]["httpGet"]["path"] == "/api/v1/ready"
    assert triton["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert "httpHeaders" not in vigil[probe]["httpGet"]


@pytest.mark.parametrize("case", list(CASES))
def test_both_containers_run_non_root_on_a_read_only_root(case: str) -> None:
    docs = render(CASES[case])
    spec = pod_spec(docs)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert {c["name"] for c in spec["containers"]} == {"vigil", "triton"}
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True, c["name"]
        assert sc["runAsUser"] == 10001, c["name"]
        assert sc["runAsGroup"] == 10001, c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert sc["seccompProfile"]["type"] == "RuntimeDefault", c["name"]
    # Vigil's writable places are volumes, since the root filesystem is not.
    volumes = {v["name"]: v for v in spec["volumes"]}
    settings = vigil_yaml(docs)
    writable = {m["mountPath"]: m["name"] for m in container(docs, "vigil")["volumeMounts"]}
    for path in (settings["data_dir"], settings["run_dir"], "/tmp"):
        assert path in writable, path
        assert "emptyDir" in volumes[writable[path]], path


@pytest.mark.parametrize("case", list(CASES))
def test_dev_shm_is_one_memory_volume_shared_by_both_containers(case: str) -> None:
    spec = pod_spec(render(CASES[case]))
    shm_volumes = set()
    for c in spec["containers"]:
        names = [m["name"] for m in c["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        assert len(names) == 1, c["name"]
        shm_volumes.add(names[0])
    assert len(shm_volumes) == 1
    volume = next(v for v in spec["volumes"] if v["name"] in shm_volumes)
    assert volume["emptyDir"]["medium"] == "Memory"
    assert volume["emptyDir"]["sizeLimit"]


@pytest.mark.parametrize("case", list(CASES))
def test_both_containers_share_the_model_repository(case: str) -> None:
    docs = render(CASES[case])
    spec = pod_spec(docs)
    repository = vigil_yaml(docs)["triton"]["model_repository"]
    claim = next(v for v in spec["volumes"] if "persistentVolumeClaim" in v)
    for name in ("vigil", "triton"):
        mounts = [m for m in container(docs, name)["volumeMounts"] if m["name"] == claim["name"]]
        assert [m["mountPath"] for m in mounts] == [repository], name
    # Vigil adds model versions; Triton only reads them.
    assert not next(
        m for m in container(docs, "vigil")["volumeMounts"] if m["name"] == claim["name"]
    ).get("readOnly")
    assert f"--model-repository={repository}" in container(docs, "triton")["command"]
    claim_name = claim["persistentVolumeClaim"]["claimName"]
    claims = [d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"]
    if case == "ci-gpu":
        assert claim_name == "vigil-model-repository"  # existingClaim
        assert not claims
    else:
        assert claims == [claim_name]


def test_gpu_goes_to_triton_only() -> None:
    gpu_docs = render(CASES["ci-gpu"])
    assert container(gpu_docs, "triton")["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in str(container(gpu_docs, "vigil")["resources"])
    cpu_docs = render(CASES["ci-cpu"])
    for name in ("vigil", "triton"):
        resources = container(cpu_docs, name)["resources"]
        assert "nvidia.com/gpu" not in str(resources)
        assert resources["requests"]["cpu"]
        assert resources["limits"]["memory"]


def test_triton_sidecar_listens_where_vigil_connects() -> None:
    docs = render(WITH_KEY)
    triton = container(docs, "triton")
    assert triton["command"][:1] == ["tritonserver"]
    assert "--model-control-mode=explicit" in triton["command"]
    assert "--strict-model-config=false" in triton["command"]
    ports = {p["name"]: p["containerPort"] for p in triton["ports"]}
    assert ports == {"triton-http": 8000, "triton-grpc": 8001, "triton-metrics": 8002}
    host, port = vigil_yaml(docs)["triton"]["url"].split(":")
    assert host == "localhost"
    assert int(port) == ports["triton-grpc"]


def test_secret_variables_carry_vigil_setting_names() -> None:
    """The env names are real settings (Vigil rejects unknown VIGIL_* variables)."""
    docs = render(CASES["ci-gpu"])
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(docs, "vigil")["env"]
           if "valueFrom" in e}  # fmt: skip
    assert set(env) == {
        "VIGIL_API__API_KEYS",
        "VIGIL_KAFKA__SECURITY__SASL_USERNAME",
        "VIGIL_KAFKA__SECURITY__SASL_PASSWORD",
    }
    assert {ref["name"] for ref in env.values()} == {"vigil-credentials"}
    assert not env["VIGIL_API__API_KEYS"].get("optional")
    assert not [d for d in docs if d["kind"] == "Secret"]  # existingSecret: none made
