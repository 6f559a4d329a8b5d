"""deploy/kubernetes: rendered (kustomize_render.py, cross-checked with `kubectl kustomize` where it
exists), validated against the Kubernetes OpenAPI schemas bundled in `kubernetes-validate` (no
network), and checked for what the issue asks: probes, requests/limits at least the measured
memory, non-root pods, an autoscaler for gateway and ranker, the pipeline as a Job writing to
ReadWriteMany volumes the services read, and Redis only inside the namespace."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kustomize_render import containers, pod_spec, render

kubernetes_validate = pytest.importorskip("kubernetes_validate")

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kubernetes" / "base"
SMALL = REPO / "deploy" / "kubernetes" / "overlays" / "small"
# The oldest Kubernetes still commonly run, and the newest schemas the package ships.
VERSIONS = ("1.29.0", "1.37.0")
MODEL_SERVICES = ("candidate", "ranker", "search")
SERVICES = (*MODEL_SERVICES, "gateway", "frontend", "redis")
MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


@pytest.fixture(scope="module", params=["base", "small"])
def docs(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(BASE if request.param == "base" else SMALL)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([KMG]i)?", quantity).groups()  # type: ignore[union-attr]
    return float(number) * MEMORY_UNITS.get(unit or "", 1) / 2**20


def cores(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_every_manifest_validates_against_the_kubernetes_schemas(docs):
    for version in VERSIONS:
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)  # raises on any unknown field
    assert {d["kind"] for d in docs} >= {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "Job",
        "PersistentVolumeClaim",
        "ConfigMap",
        "NetworkPolicy",
        "Namespace",
    }


def test_the_validator_refuses_a_broken_manifest(docs):
    broken = yaml.safe_load(yaml.safe_dump(by_kind(docs, "Deployment")["ranker"]))
    broken["spec"]["replica"] = 2  # a typo: strict validation must catch it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)
    broken = yaml.safe_load(yaml.safe_dump(by_kind(docs, "Deployment")["ranker"]))
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = {"cores": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed: the renderer is not cross-checked")
@pytest.mark.parametrize("folder", [BASE, SMALL], ids=["base", "small"])
def test_our_rendering_equals_kubectl_kustomize(folder):
    out = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    theirs = [d for d in yaml.safe_load_all(out.stdout) if d]
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(render(folder), key=key) == sorted(theirs, key=key)


def test_a_deployment_and_a_service_for_every_service(docs):
    deployments, services = by_kind(docs, "Deployment"), by_kind(docs, "Service")
    assert set(deployments) == set(SERVICES) and set(services) == set(SERVICES)
    for name in SERVICES:
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert services[name]["spec"]["selector"].items() <= labels.items(), name
        ports = {p["containerPort"] for c in pod_spec(deployments[name])["containers"] for p in c["ports"]}
        assert {p.get("targetPort") for p in services[name]["spec"]["ports"]} <= {"http", "redis", *ports}, name


def test_every_container_has_probes_and_the_python_services_use_readyz_and_livez(docs):
    for name, deployment in by_kind(docs, "Deployment").items():
        for container in pod_spec(deployment)["containers"]:
            assert container.get("readinessProbe") and container.get("livenessProbe"), name
            if name in MODEL_SERVICES:
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
                assert container["livenessProbe"]["httpGet"]["path"] == "/livez", name
                assert container["startupProbe"]["httpGet"]["path"] == "/livez", name
            if name == "gateway":
                assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
                assert container["readinessProbe"]["httpGet"]["path"].startswith("/recommend?")


def test_every_container_has_requests_and_limits_requests_below_limits(docs):
    for container in containers(docs):
        resources = container["resources"]
        for what in ("cpu", "memory"):
            request, limit = resources["requests"][what], resources["limits"][what]
            convert = cores if what == "cpu" else mebibytes
            assert 0 < convert(request) <= convert(limit), (container["name"], what, request, limit)


def measured_peak_rss() -> dict[str, float]:
    """The soak's peak RSS per process (docs/gateway.md, `tiny` world), in MiB."""
    text = (REPO / "docs" / "gateway.md").read_text()
    table = text.split("| process | start MiB | middle MiB | end MiB | peak MiB |", 1)[1]
    peaks = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        peaks[cells[0]] = float(cells[4].replace(",", ""))
    return peaks


def test_memory_limits_leave_room_over_the_measured_rss(docs):
    peaks = measured_peak_rss()
    assert set(peaks) == {"gateway", "candidate", "ranker", "search"}
    deployments = by_kind(docs, "Deployment")
    for name, peak in peaks.items():
        resources = pod_spec(deployments[name])["containers"][0]["resources"]
        assert mebibytes(resources["requests"]["memory"]) >= peak, (name, peak)
        assert mebibytes(resources["limits"]["memory"]) >= 1.5 * peak, (name, peak)


def test_every_pod_runs_as_non_root_without_privileges(docs):
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        name = doc["metadata"]["name"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert "privileged" not in security and "runAsUser" not in security, name
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_gateway_and_ranker_autoscale(docs):
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    deployments = by_kind(docs, "Deployment")
    assert set(hpas) == {"gateway", "ranker"}
    for name, hpa in hpas.items():
        target = hpa["spec"]["scaleTargetRef"]
        assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name} and name in deployments
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_the_pipeline_job_writes_the_shared_volumes_the_services_read(docs):
    claims = by_kind(docs, "PersistentVolumeClaim")
    assert set(claims) == {"hm-data", "hm-output"}
    assert all(c["spec"]["accessModes"] == ["ReadWriteMany"] for c in claims.values())
    job = pod_spec(by_kind(docs, "Job")["pipeline"])
    assert "--serving-only" in job["containers"][0]["command"]
    assert {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in job["volumes"] if "persistentVolumeClaim" in v
    } == {"data": "hm-data", "output": "hm-output"}
    assert not any(m.get("readOnly") for m in job["containers"][0]["volumeMounts"])  # it writes
    for name in (*MODEL_SERVICES, "gateway"):
        spec = pod_spec(by_kind(docs, "Deployment")[name])
        mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
        assert mounts["/output"]["readOnly"] and mounts["/data"]["readOnly"], name
        assert {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v} == {
            "hm-data",
            "hm-output",
        }, name


def test_redis_lives_in_the_namespace_and_only_the_gateway_reaches_it(docs):
    config = by_kind(docs, "ConfigMap")["hmrec-config"]["data"]
    host = config["HM_GATEWAY_REDIS_URL"].split("://", 1)[1].split(":", 1)[0]
    assert host in by_kind(docs, "Service") and "." not in host  # a Service of this namespace
    policy = by_kind(docs, "NetworkPolicy")["redis-from-gateway-only"]["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "redis"}
    assert [f["podSelector"]["matchLabels"] for f in policy["ingress"][0]["from"]] == [
        {"app.kubernetes.io/name": "gateway"}
    ]
    assert by_kind(docs, "Service")["redis"]["spec"]["type"] == "ClusterIP"


def test_model_services_are_headless_so_the_gateway_sees_every_pod(docs):
    services = by_kind(docs, "Service")
    config = by_kind(docs, "ConfigMap")["hmrec-config"]["data"]
    for name in MODEL_SERVICES:
        assert services[name]["spec"]["clusterIP"] == "None", name
        assert config[f"HM_GATEWAY_{name.upper()}_URL"].startswith(f"http://{name}:"), name


def test_the_small_overlay_builds_the_small_world_from_pinned_images():
    docs = render(SMALL)
    assert by_kind(docs, "ConfigMap")["hmrec-config"]["data"]["HM_SCALE"] == "small"
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"hmrec-small"}
    for container in containers(docs):
        assert ":" in container["image"] and not container["image"].endswith(":latest"), container["image"]
    base_limit = mebibytes(
        pod_spec(by_kind(render(BASE), "Deployment")["candidate"])["containers"][0]["resources"]["limits"]["memory"]
    )
    small_limit = mebibytes(
        pod_spec(by_kind(docs, "Deployment")["candidate"])["containers"][0]["resources"]["limits"]["memory"]
    )
    assert small_limit > base_limit
