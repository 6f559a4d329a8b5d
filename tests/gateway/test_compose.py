"""The compose file's structure, the Dockerfiles it names and what each image installs.

These run everywhere, without Docker; the real `docker compose up` is tests/compose
(`make compose-test`), which CI runs after `make test`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read docker-compose.yml (pip install pyyaml)")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
MODEL_SERVICES = {"candidate": 8001, "ranker": 8002, "search": 8003}
EXPECTED = {"redis", "pipeline", "candidate", "ranker", "search", "gateway", "frontend", "events-drain"}


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} and ${VAR-default} with nothing set in the environment -> default."""
    return re.sub(r"\$\{[A-Z_]+:?-([^}]*)\}", r"\1", value)


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
            elif (name, dep) == ("gateway", "search"):
                # a broken search index must not keep the page down (it shows as degraded)
                assert condition == "service_started", condition
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
            assert [interpolate(p) for p in svc["ports"]] == ["0.0.0.0:8080:8080"]
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


def _stages(text: str) -> dict[str, tuple[str, str]]:
    """A Dockerfile's stages in order: name (``#i`` when unnamed) -> (what it is FROM, its lines)."""
    stages: dict[str, tuple[str, str]] = {}
    for i, part in enumerate(re.split(r"(?m)^FROM\s+", text)[1:]):
        head, _, body = part.partition("\n")
        match = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", head, flags=re.I)
        assert match, head
        stages[match.group(2) or f"#{i}"] = (match.group(1), body)
    return stages


def _chain(stages: dict[str, tuple[str, str]], target: str) -> tuple[list[str], str]:
    """The stages an image is made of, its base stage first, and the image it finally starts FROM."""
    chain, name = [], target
    while name in stages:
        chain.insert(0, name)
        name = stages[name][0]
    return chain, name


@pytest.mark.parametrize("name", sorted(EXPECTED - {"redis"}))
def test_images_build_from_existing_slim_multistage_nonroot_dockerfiles(services, name):
    path = dockerfile_of(services[name])
    assert path.is_file(), path
    text = path.read_text()
    stages = _stages(text)
    assert len(stages) >= 2, f"{path}: not multi-stage"
    target = services[name]["build"].get("target") or list(stages)[-1]
    assert target in stages, f"{path}: no stage {target}"
    chain, base = _chain(stages, target)
    assert "slim" in base or "alpine" in base or "busybox" in base, base
    # the image's own stages, not the file's last one: the last USER of its chain is not root
    users = [u for stage in chain for u in re.findall(r"^USER\s+(\S+)", stages[stage][1], flags=re.M)]
    assert users and users[-1] not in ("root", "0"), f"{path} {target}: runs as root"
    if base.startswith("python:"):  # (an nginx base image brings its own command)
        assert any(re.search(r"^CMD\s", stages[s][1], flags=re.M) for s in chain), f"{path} {target}: no CMD"
    # every COPY source from the build context exists (no broken image builds), ARGs at their defaults
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S*)$", text, flags=re.M))
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, flags=re.M):
        *sources, _dest = line.split()
        for src in sources:
            src = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], src)
            assert (ROOT / src).exists(), f"{path}: COPY {src} does not exist"


def test_dockerignore_keeps_local_state_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data", "output"} <= ignored


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
HEAVY = ("tensorflow", "tf-keras", "torch", "scikit-learn", "scipy", "matplotlib")
# What each image installs from pyproject: `dependencies` plus these optional groups.
IMAGE_GROUPS = {
    "gateway": [],
    "candidate": ["tf"],
    "ranker": [],
    "search": ["search"],
    "pipeline": ["search", "tf", "train"],
}


def _name(requirement: str) -> str:
    return re.split(r"[=\[<>~ ]", requirement)[0].lower()


def test_serving_core_has_no_training_or_torch_dependencies():
    core = {_name(r) for r in PYPROJECT["dependencies"]}
    assert not core & set(HEAVY), core & set(HEAVY)
    assert {"torch"} <= {_name(r) for r in PYPROJECT["optional-dependencies"]["search"]}
    assert {"tensorflow", "tf-keras"} <= {_name(r) for r in PYPROJECT["optional-dependencies"]["tf"]}


def test_dev_installs_everything():
    """`make test` installs `.[dev]`: it must pull every group the images use."""
    dev = PYPROJECT["optional-dependencies"]["dev"]
    groups = {g for r in dev if _name(r) == "hmrec" for g in re.findall(r"\[(.*)\]", r)[0].split(",")}
    assert groups >= {g for gs in IMAGE_GROUPS.values() for g in gs}


@pytest.mark.parametrize("name", sorted(IMAGE_GROUPS))
def test_each_image_installs_only_its_groups(services, name):
    text = dockerfile_of(services[name]).read_text()
    assert "requirements-from-pyproject $TORCH_EXTRAS $EXTRAS" in text, "installs from pyproject"
    # the groups are build arguments of the shared venv stage, one set per compose service
    args = services[name]["build"].get("args", {})
    assert sorted(f"{args.get('TORCH_EXTRAS', '')} {args.get('EXTRAS', '')}".split()) == sorted(IMAGE_GROUPS[name])
    if "search" in IMAGE_GROUPS[name]:  # torch's index is a build argument, never a fixed URL
        assert "ARG EXTRA_INDEX_URL=" in text and "--find-links /wheels" in text
        assert "args" in services[name]["build"], f"{name}: compose does not pass the index argument"
    assert "download.pytorch.org" not in text.split("ARG EXTRA_INDEX_URL=")[-1].split("\n", 1)[-1]


@pytest.mark.parametrize("module", ["services.gateway.app", "services.ranker.app"])
def test_core_services_import_without_training_or_torch_packages(module):
    """The gateway and ranker images lack TF, torch, sklearn, scipy, matplotlib: their apps
    must import (and build) without them (loading a model is the compose test's to prove)."""
    blocked = [
        "tensorflow",
        "tf_keras",
        "tensorflow_recommenders",
        "torch",
        "sklearn",
        "scipy",
        "matplotlib",
        "PIL",
        "click",
        "tqdm",
    ]
    code = (
        "import sys\n"
        f"BLOCKED = {blocked!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(f'{name} is not in this image')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"import importlib; importlib.import_module({module!r}).create_app()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_gateway_image_does_not_carry_the_frontend_files():
    text = dockerfile_of(yaml.safe_load(COMPOSE.read_text())["services"]["gateway"]).read_text()
    assert "frontend" not in re.findall(r"^COPY.*$", text, flags=re.M).__str__()


def test_gateway_healthcheck_means_it_can_answer_recommend(services):
    assert "/recommend?" in services["gateway"]["healthcheck"]["test"][-1]


def test_no_setting_that_nothing_reads(services):
    """Every HM_SEARCH_* variable compose sets is a SearchSettings field."""
    from services.search.settings import SearchSettings

    fields = {f.upper() for f in SearchSettings.model_fields}
    for var in services["search"]["environment"]:
        if var.startswith("HM_SEARCH_"):
            assert var.removeprefix("HM_SEARCH_") in fields, var


def test_nginx_proxies_unknown_paths_to_the_gateway():
    conf = (ROOT / "frontend" / "nginx.conf").read_text()
    assert "server gateway:8000" in conf and "try_files $uri @gateway" in conf
    assert "listen 8080" in conf and "location = /healthz" in conf


def test_nginx_keeps_operational_routes_off_the_page_port_by_default(services):
    text = (ROOT / "frontend" / "Dockerfile").read_text()
    assert "ARG HM_OPS_ROUTES=closed" in text
    assert interpolate(services["frontend"]["build"]["args"]["HM_OPS_ROUTES"]) == "closed"
    assert "include /etc/nginx/hmrec/ops-routes.conf;" in (ROOT / "frontend" / "nginx.conf").read_text()
    closed = (ROOT / "frontend" / "ops-routes-closed.conf").read_text()
    for route in ("readyz", "metrics", "docs", "redoc", "openapi"):
        assert route in closed
    assert "return 404" in closed
    assert "location" not in (ROOT / "frontend" / "ops-routes-open.conf").read_text()


def test_gateway_serves_only_the_page_files_and_a_public_readyz(make_gateway):
    gw = make_gateway()
    assert gw.get("/").status_code == 200 and gw.get("/app.js").status_code == 200
    for leak in ("/Dockerfile", "/nginx.conf", "/ops-routes-closed.conf"):
        assert gw.get(leak).status_code == 404, leak
    body = gw.get("/readyz").text
    assert "127.0.0.1" not in body and "http://" not in body
    assert gw.get("/readyz").json()["dependencies"]["ranker"]["model_version"] == "v1"
    detailed = make_gateway(readyz_details=True).get("/readyz").json()
    assert detailed["dependencies"]["ranker"]["url"].startswith("http://127.0.0.1:")


def test_the_compose_job_runs_only_what_serving_loads(services, tmp_path, monkeypatch):
    """`--serving-only` (the pipeline job's command): models and the search index, no batch files."""
    from pipeline.commands import run as run_module
    from shared.config import PathSettings

    assert "--serving-only" in services["pipeline"]["command"]
    data = tmp_path / "data"
    data.mkdir()
    for name in ("articles.csv", "transactions_train.csv"):
        (data / name).write_text("x\n")
    ran: list[list[str]] = []
    monkeypatch.setattr(run_module, "_run_step", lambda args, env, label: ran.append(args))
    run_module.prepare(PathSettings(data_dir=data, output_dir=tmp_path / "output"), "tiny", {}, serving_only=True)
    assert ran == [["index"], ["train", "candidate"], ["train", "ranker"]]
