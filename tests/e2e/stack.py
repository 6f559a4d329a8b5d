"""The whole product as real processes on loopback, for end-to-end tests and benchmarks.

``prepare_world`` runs the offline pipeline through the real ``hmrec`` CLI (subprocesses);
``Stack`` starts the four services as real uvicorn processes on free ports, waits for
``/readyz``, and can stop, start, pause (SIGSTOP) and resume any one of them mid-test.
``PrivateRedis`` is a throwaway ``redis-server`` for tests that stop Redis, so the
machine's shared Redis at 127.0.0.1:6379 is never touched.

Every child is started in its own session and ended by its own pid (never by name).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
HMREC = [PYTHON, "-m", "pipeline.cli"]
SERVICES = ("candidate", "ranker", "search", "gateway")
MODEL_SERVICES = ("candidate", "ranker", "search")

# Gateway budgets used by the e2e stack (explicit, so tests can compute latency budgets
# from them). Short breaker/health intervals make "recovers by itself" observable in
# seconds rather than the production defaults' tens of seconds.
GATEWAY_TEST_SETTINGS: dict[str, str] = {
    "HM_GATEWAY_CONNECT_TIMEOUT_S": "0.5",
    "HM_GATEWAY_CANDIDATE_TIMEOUT_S": "1.0",
    "HM_GATEWAY_RANKER_TIMEOUT_S": "0.5",
    "HM_GATEWAY_SEARCH_TIMEOUT_S": "3.0",
    "HM_GATEWAY_SEARCH_IMAGE_TIMEOUT_S": "8.0",
    "HM_GATEWAY_HEALTH_INTERVAL_S": "0.5",
    "HM_GATEWAY_BREAKER_FAILURE_THRESHOLD": "3",
    "HM_GATEWAY_BREAKER_RESET_S": "1.0",
    "HM_GATEWAY_REDIS_RETRY_INTERVAL_S": "0.5",
    "HM_GATEWAY_REDIS_SOCKET_TIMEOUT_S": "0.05",
    "HM_GATEWAY_CACHE_TTL_S": "120",
}
# The most a /recommend may take while a dependency hangs: both budgets plus slack for
# two busy cores (python, JSON, the load generator itself).
RECOMMEND_BUDGET_S = (
    float(GATEWAY_TEST_SETTINGS["HM_GATEWAY_CANDIDATE_TIMEOUT_S"])
    + float(GATEWAY_TEST_SETTINGS["HM_GATEWAY_RANKER_TIMEOUT_S"])
    + 0.75
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


LOAD_ERROR_GRACE_S = 20.0


def _json_field(response: httpx.Response, name: str) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TF_USE_LEGACY_KERAS="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONUNBUFFERED="1",
        # Four model processes share two cores: one thread each keeps them from fighting.
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TF_NUM_INTRAOP_THREADS="1",
        TF_NUM_INTEROP_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


# --- offline pipeline -----------------------------------------------------------------------


def _start_cli(args: list[str], env: Mapping[str, str], log_dir: Path) -> tuple[subprocess.Popen[bytes], Path, float]:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / ("hmrec_" + "_".join(a.strip("-") for a in args[:2]) + ".log")
    with log.open("w") as fh:
        proc = subprocess.Popen([*HMREC, *args], cwd=REPO_ROOT, env=dict(env), stdout=fh, stderr=subprocess.STDOUT)
    return proc, log, time.monotonic()


def _finish_cli(args: list[str], started: tuple[subprocess.Popen[bytes], Path, float], timeout_s: float) -> None:
    """Wait for one ``hmrec`` step; on failure (or timeout) raise with the log's tail."""
    proc, log, t0 = started
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"`hmrec {' '.join(args)}` took over {timeout_s}s; log {log}:\n{_tail(log)}") from None
    print(f"[e2e] hmrec {' '.join(args)}: rc={rc} in {time.monotonic() - t0:.1f}s", flush=True)
    if rc != 0:
        raise RuntimeError(f"`hmrec {' '.join(args)}` failed (rc={rc}); log {log}:\n{_tail(log)}")


def run_cli(args: list[str], env: Mapping[str, str], log_dir: Path, timeout_s: float = 900) -> None:
    _finish_cli(args, _start_cli(args, env, log_dir), timeout_s)


def generate_tiny_world(data_dir: Path) -> None:
    """Synthetic `tiny` world with product images, in a subprocess (keeps numpy state out of pytest)."""
    code = (
        "from pathlib import Path; from pipeline.synthetic import generate_world; "
        f"generate_world(Path({str(data_dir)!r}), scale='tiny', seed=0, images=True)"
    )
    subprocess.run([PYTHON, "-c", code], cwd=REPO_ROOT, env=base_env(), check=True, timeout=300)


def prepare_world(root: Path, log_dir: Path) -> tuple[Path, Path]:
    """Data + every model and index the services need, made by the real CLI. Returns (data, output).

    The first step also writes the parquet cache of the data; after it, the search index
    (torch) is built in the background while the rest of the chain (TensorFlow, NumPy) runs,
    since the two touch different artifacts.
    """
    data_dir, output_dir = root / "data", root / "output"
    if not (data_dir / "transactions_train.csv").exists():
        generate_tiny_world(data_dir)
    env = base_env()
    env.update(HM_DATA_DIR=str(data_dir), HM_OUTPUT_DIR=str(output_dir))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        env.pop(var)  # offline steps: let them use both cores
    common = ["--data-dir", str(data_dir), "--output-dir", str(output_dir)]

    def argv(step: tuple[list[str], dict[str, str | None]]) -> list[str]:
        args, wanted = step
        return [*args, *common, *_supported_options(args, wanted)]

    first, *chain = OFFLINE_STEPS
    run_cli(argv(first), env, log_dir)
    seed_image_embeddings(output_dir)
    index_args = argv(INDEX_STEP)
    index = _start_cli(index_args, env, log_dir)
    try:
        for step in chain:
            run_cli(argv(step), env, log_dir)
    except BaseException:
        index[0].kill()
        index[0].wait()
        raise
    _finish_cli(index_args, index, timeout_s=900)
    keep_image_embeddings(output_dir)
    return data_dir, output_dir


# --- photo embeddings carried between worlds ---------------------------------------------------
# Embedding 600 photos with the CNN is the slowest offline step on two busy cores. The index
# builder is resumable: it reuses any embedding in <search>/image_embeddings.parquet whose
# (article id, SHA-256 of the photo bytes) still match, and embeds the rest. So a copy from an
# earlier world is safe to seed a new one with, as long as the embedder's own code is the
# same: the copy is keyed by a digest of that code (and the pinned dependencies).
IMAGE_EMBEDDINGS = "image_embeddings.parquet"
EMBEDDER_SOURCES = ("services/search/image.py", "services/search/index.py", "pyproject.toml")
EMBEDDINGS_CACHE = REPO_ROOT / "test-artifacts" / "e2e" / "embeddings"


def _embedder_digest() -> str:
    import hashlib

    h = hashlib.sha256()
    for rel in EMBEDDER_SOURCES:
        path = REPO_ROOT / rel
        h.update(rel.encode() + (path.read_bytes() if path.exists() else b"-"))
    return h.hexdigest()[:16]


def seed_image_embeddings(output_dir: Path) -> None:
    cached = EMBEDDINGS_CACHE / f"{_embedder_digest()}-{IMAGE_EMBEDDINGS}"
    target = output_dir / "search" / IMAGE_EMBEDDINGS
    if cached.exists() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, target)
        print(f"[e2e] seeded photo embeddings from {cached.name} (reused only where photo bytes match)", flush=True)


def keep_image_embeddings(output_dir: Path) -> None:
    source = output_dir / "search" / IMAGE_EMBEDDINGS
    if not source.exists():
        return
    EMBEDDINGS_CACHE.mkdir(parents=True, exist_ok=True)
    digest = _embedder_digest()
    for old in EMBEDDINGS_CACHE.glob(f"*-{IMAGE_EMBEDDINGS}"):
        if not old.name.startswith(digest):
            old.unlink(missing_ok=True)
    tmp = EMBEDDINGS_CACHE / f".{digest}.{os.getpid()}.tmp"
    shutil.copyfile(source, tmp)
    tmp.replace(EMBEDDINGS_CACHE / f"{digest}-{IMAGE_EMBEDDINGS}")


def code_fingerprint() -> str:
    """A digest of every source file that makes the world, models and indexes, plus the steps.

    A prepared world is reused only while this is unchanged, so any edit to the code (or
    to the steps' options) rebuilds it through the CLI.
    """
    import hashlib

    h = hashlib.sha256(repr((OFFLINE_STEPS, INDEX_STEP, "tiny", 0)).encode())
    for folder in ("shared", "services", "pipeline"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            h.update(str(path.relative_to(REPO_ROOT)).encode())
            h.update(path.read_bytes())
    for extra in ("pyproject.toml",):
        h.update((REPO_ROOT / extra).read_bytes())
    return h.hexdigest()[:16]


# Each offline step as `hmrec` arguments, with the options that keep it short on a tiny
# world (passed only where the command has them). Same steps as `hmrec run`'s pipeline.
OFFLINE_STEPS: list[tuple[list[str], dict[str, str | None]]] = [
    (["train", "candidate"], {"--epochs": "1"}),
    (["infer"], {}),
    (["train", "ranker"], {"--epochs": "2", "--two-tower-epochs": "1", "--train-weeks": "2", "--no-single-task": None}),
    (["rerank"], {}),
]
INDEX_STEP: tuple[list[str], dict[str, str | None]] = (["index"], {})


def _supported_options(args: list[str], wanted: dict[str, str | None]) -> list[str]:
    """``wanted`` options the command accepts, as argv; raises if the command does not exist."""
    import click

    from pipeline.cli import cli

    command: click.Command = cli
    for part in args:
        sub = command.commands.get(part) if isinstance(command, click.Group) else None
        if sub is None:
            raise RuntimeError(f"`hmrec {' '.join(args)}` does not exist (yet); the e2e stack needs it")
        command = sub
    accepted = {opt for p in command.params for opt in (*p.opts, *getattr(p, "secondary_opts", []))}
    out: list[str] = []
    for opt, value in wanted.items():
        if opt in accepted:
            out += [opt] if value is None else [opt, value]
    return out


# --- processes ----------------------------------------------------------------------------------


@dataclass
class ServiceProcess:
    """One uvicorn process of a service on a fixed loopback port."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.log_path.open("ab")
        cmd = [
            PYTHON,
            "-m",
            "uvicorn",
            f"{self.module}:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "2",
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        fh.close()
        self.paused = False

    def wait_ready(self, timeout_s: float = 180.0, path: str = "/readyz") -> None:
        """Poll ``/readyz`` until 200; fail fast (with the log) if the process dies, or if it
        keeps reporting a model-load error (``last_error``) for ``LOAD_ERROR_GRACE_S``."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        error_since: float | None = None
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(
                    f"{self.name} exited (rc={self.proc and self.proc.returncode}):\n{_tail(self.log_path)}"
                )
            try:
                r = httpx.get(self.url + path, timeout=2.0)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:500]}"
                load_error = _json_field(r, "last_error")
                if load_error and "fail" in str(load_error):
                    error_since = error_since or time.monotonic()
                    if time.monotonic() - error_since > LOAD_ERROR_GRACE_S:
                        raise RuntimeError(
                            f"{self.name} cannot load its model: {load_error}\n(if the code changed after the "
                            f"e2e world was prepared, rerun: the world is rebuilt for the new code)"
                        )
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise TimeoutError(f"{self.name} not ready after {timeout_s}s (last: {last}):\n{_tail(self.log_path)}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """End the process (its own pid only); SIGKILL if it ignores ``sig``."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a hung dependency)."""
        assert self.proc is not None and self.running
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False


class PrivateRedis:
    """A throwaway redis-server (no persistence) that tests may stop and restart at will."""

    def __init__(self, log_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_dir / f"redis_{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found (apt-get install -y redis-server)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        fh.close()
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"private redis on {self.port} did not start:\n{_tail(self.log_path)}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def client(self):  # redis.Redis, imported lazily
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)


@dataclass
class Stack:
    """The four services as processes, wired to each other and to a Redis."""

    data_dir: Path
    output_dir: Path
    log_dir: Path
    redis_url: str
    cache_prefix: str = field(default_factory=lambda: f"hm:e2e:{uuid.uuid4().hex[:8]}")
    procs: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ports = {name: free_port() for name in SERVICES}
        for name in MODEL_SERVICES:
            self.procs[name] = ServiceProcess(
                name,
                f"services.{name}.app",
                ports[name],
                self._service_env(name),
                self.log_dir / f"{name}.log",
            )
        self.procs["gateway"] = self.make_gateway("gateway", ports["gateway"], self.redis_url)

    # -- wiring ---------------------------------------------------------------------------------
    def _common_env(self) -> dict[str, str]:
        env = base_env()
        env.update(HM_DATA_DIR=str(self.data_dir), HM_OUTPUT_DIR=str(self.output_dir))
        return env

    def _service_env(self, name: str) -> dict[str, str]:
        env = self._common_env()
        upper = name.upper()
        models_dir = str(self.output_dir / "models")
        env.update(
            {
                f"HM_{upper}_MODELS_DIR": models_dir,
                f"HM_{upper}_DATA_DIR": str(self.data_dir),
                f"HM_{upper}_OUTPUT_DIR": str(self.output_dir),
                f"HM_{upper}_INDEX_DIR": str(self.output_dir / "search"),
                f"HM_{upper}_POLL_INTERVAL_S": "2",
                f"HM_{upper}_LOG_LEVEL": "INFO",
                f"HM_{upper}_TORCH_THREADS": "1",
            }
        )
        return env

    def make_gateway(
        self, name: str, port: int, redis_url: str, extra: Mapping[str, str] | None = None
    ) -> ServiceProcess:
        env = self._common_env()
        env.update(GATEWAY_TEST_SETTINGS)
        env.update(
            {
                "HM_GATEWAY_PORT": str(port),
                "HM_GATEWAY_CANDIDATE_URL": self.url("candidate"),
                "HM_GATEWAY_RANKER_URL": self.url("ranker"),
                "HM_GATEWAY_SEARCH_URL": self.url("search"),
                "HM_GATEWAY_REDIS_URL": redis_url,
                "HM_GATEWAY_CACHE_PREFIX": self.cache_prefix,
                "HM_EVENTS_PREFIX": f"{self.cache_prefix}:ev",  # sessions removed with the cache at the end
                "HM_GATEWAY_DATA_DIR": str(self.data_dir),
                "HM_GATEWAY_OUTPUT_DIR": str(self.output_dir),
                "HM_GATEWAY_LOG_LEVEL": "INFO",
            }
        )
        env.update(extra or {})
        return ServiceProcess(name, "services.gateway.app", port, env, self.log_dir / f"{name}.log")

    def url(self, name: str) -> str:
        return self.procs[name].url

    @property
    def gateway(self) -> str:
        return self.url("gateway")

    # -- lifecycle ------------------------------------------------------------------------------
    def start_all(self, timeout_s: float = 300.0) -> None:
        """Start the model services together (they load in parallel), then the gateway."""
        for name in MODEL_SERVICES:
            self.procs[name].start()
        for name in MODEL_SERVICES:
            self.procs[name].wait_ready(timeout_s)
        self.procs["gateway"].start()
        self.procs["gateway"].wait_ready(timeout_s)

    def stop(self, name: str) -> None:
        self.procs[name].stop()

    def kill(self, name: str) -> None:
        self.procs[name].kill()

    def start(self, name: str, timeout_s: float = 180.0) -> None:
        self.procs[name].start()
        self.procs[name].wait_ready(timeout_s)

    def ensure_up(self, timeout_s: float = 180.0) -> None:
        """Put the stack back as it was (after a test stopped or paused something)."""
        for name in SERVICES:
            proc = self.procs[name]
            proc.resume()
            if not proc.running:
                proc.start()
        for name in SERVICES:
            self.procs[name].wait_ready(timeout_s)

    def shutdown(self) -> None:
        for name in reversed(SERVICES):
            self.procs[name].stop()
