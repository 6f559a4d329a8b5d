"""No Docker engine runs here: check the compose file's structure and the Dockerfiles it names."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read docker-compose.yml (pip install pyyaml)")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
MODEL_SERVICES = {"candidate": 8001, "ranker": 8002, "search": 8003}
EXPECTED = {"redis", "pipeline", "candidate", "ranker", "search", "gateway", "frontend"}


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set in the environment -> default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def test_every_service_is_there_and_has_a_healthcheck(services):
    assert set(services) == EXPECTED
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert "container_name" not in svc, f"{name}: a fixed container name prevents --scale"


def test_dependencies_wait_on_health_or_completion(services):
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            condition = spec["condition"]
            if dep == "pipeline":
                assert condition == "service_completed_successfully", name
            else:
                assert condition == "service_healthy", f"{name} -> {dep}: {condition}"
                assert services[dep].get("healthcheck"), dep
    for name in MODEL_SERVICES:
        assert services[name]["depends_on"] == {"pipeline": {"condition": "service_completed_successfully"}}
    assert set(services["gateway"]["depends_on"]) == {"redis", *MODEL_SERVICES}
    assert set(services["frontend"]["depends_on"]) == {"gateway"}
    assert services["pipeline"].get("restart") == "no"  # a one-shot job


def test_networks_keep_redis_and_models_on_the_back(compose, services):
    assert compose["networks"]["back"].get("internal") is True
    for name in ("redis", *MODEL_SERVICES):
        assert services[name]["networks"] == ["back"], name
    assert set(services["gateway"]["networks"]) == {"back", "front"}
    assert services["frontend"]["networks"] == ["front"]


def test_only_the_page_publishes_a_host_port(services):
    for name, svc in services.items():
        if name == "frontend":
            assert [interpolate(p) for p in svc["ports"]] == ["8080:8080"]
        else:
            assert "ports" not in svc, f"{name} publishes a host port (breaks --scale)"
    for name, port in MODEL_SERVICES.items():
        assert services[name]["expose"] == [str(port)]
        assert f"127.0.0.1:{port}/readyz" in services[name]["healthcheck"]["test"][-1]
    env = services["gateway"]["environment"]
    for name, port in MODEL_SERVICES.items():
        assert env[f"HM_GATEWAY_{name.upper()}_URL"] == f"http://{name}:{port}"
    assert env["HM_GATEWAY_REDIS_URL"] == "redis://redis:6379/0"


def test_volumes_share_data_and_models(compose, services):
    declared = set(compose["volumes"])
    assert {"hm-data", "hm-output"} <= declared
    pipeline = [interpolate(v) for v in services["pipeline"]["volumes"]]
    assert pipeline == ["hm-data:/data", "hm-output:/output"]  # the job writes
    for name in (*MODEL_SERVICES, "gateway"):
        mounts = [interpolate(v) for v in services[name]["volumes"]]
        assert mounts == ["hm-data:/data:ro", "hm-output:/output:ro"], name  # servers only read


def dockerfile_of(svc: dict) -> Path:
    build = svc["build"]
    context = ROOT / build["context"]
    assert context.is_dir()
    return context / build.get("dockerfile", "Dockerfile")


@pytest.mark.parametrize("name", sorted(EXPECTED - {"redis"}))
def test_images_build_from_existing_slim_multistage_nonroot_dockerfiles(services, name):
    path = dockerfile_of(services[name])
    assert path.is_file(), path
    text = path.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert len(froms) >= 2, f"{path}: not multi-stage"
    assert all(("slim" in f or "alpine" in f or "busybox" in f) for f in froms), froms
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users and users[-1] not in ("root", "0"), f"{path}: runs as root"
    # every COPY source from the build context exists (no broken image builds)
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, flags=re.M):
        *sources, _dest = line.split()
        for src in sources:
            assert (ROOT / src).exists(), f"{path}: COPY {src} does not exist"


def test_dockerignore_keeps_local_state_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data", "output"} <= ignored


def test_gateway_requirements_match_pyproject_pins():
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    by_name = {re.split(r"[=\[]", p)[0].lower(): p for p in pins}
    lines = [ln.strip() for ln in (ROOT / "services/gateway/requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines
    for line in lines:
        name = re.split(r"[=\[]", line)[0].lower()
        assert by_name.get(name) == line, f"{line} differs from pyproject's {by_name.get(name)}"
    assert not any(heavy in name for name in map(str.lower, lines) for heavy in ("tensorflow", "torch"))


def test_nginx_proxies_unknown_paths_to_the_gateway():
    conf = (ROOT / "frontend" / "nginx.conf").read_text()
    assert "server gateway:8000" in conf and "try_files $uri @gateway" in conf
    assert "listen 8080" in conf and "location = /healthz" in conf
