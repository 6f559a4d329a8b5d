"""The process supervisor of ``hmrec run``: the services as child processes on this machine.

:func:`serve` starts Redis if it is local, unreachable and wanted (when ``redis-server``
exists), the model services as uvicorn processes (candidate, ranker, search), then the gateway
(which also serves the page) and the events worker; waits for the gateway's ``/readyz``; then
starts the full-quality background phase (``pipeline.warmup.FullQualityWorker``) and watches
the children. On Ctrl-C / SIGTERM the background step stops first, then every child it started
(by its own pid), gateway first.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse
from urllib.request import urlopen

import click

from pipeline.warmup import FullQualityWorker
from shared.config import PathSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_SERVICES = ("candidate", "ranker", "search")


def echo(message: str) -> None:
    click.echo(f"[hmrec run] {message}", err=True)


# --- one child ---------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if this process dies, even by SIGKILL (no orphans)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()  # own session: Ctrl-C reaches only us, and we stop children in order


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str | None = None

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"


def start_child(name: str, cmd: list[str], env: dict[str, str], log_dir: Path, url: str | None = None) -> Child:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as fh:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )  # only setsid/prctl
    echo(f"started {name} (pid {proc.pid}){' at ' + url if url else ''}; log {log_path}")
    return Child(name, proc, log_path, url)


def stop_children(children: list[Child], timeout_s: float = 10.0) -> None:
    """SIGTERM each (newest first: gateway before what it calls), SIGKILL if it lingers."""
    for child in reversed(children):
        if child.proc.poll() is None:
            child.proc.terminate()
    deadline = time.monotonic() + timeout_s
    for child in reversed(children):
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            echo(f"{child.name} did not stop in {timeout_s:.0f}s; killing pid {child.proc.pid}")
            child.proc.kill()
            child.proc.wait(timeout=5)
    echo("all services stopped")


def ready(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urlopen(url + "/readyz", timeout=timeout_s) as resp:  # loopback URL we built
            return resp.status == 200
    except (URLError, OSError, ValueError):
        return False


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


# --- what each child runs ----------------------------------------------------------------------


def uvicorn_cmd(module: str, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        f"services.{module}.app:create_app",
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "5",
    ]


def redis_cmd(port: int) -> list[str]:
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


def events_drain_cmd(output_dir: Path, redis_url: str) -> list[str]:
    """The events worker: Redis Stream -> output/events/*.parquet."""
    return [
        sys.executable,
        "-m",
        "pipeline.cli",
        "events",
        "drain",
        "--follow",
        "--output-dir",
        str(output_dir),
        "--redis-url",
        redis_url,
    ]


def service_env(base: dict[str, str], paths: PathSettings, name: str) -> dict[str, str]:
    env = dict(base)
    upper = name.upper()
    env.update(
        {
            f"HM_{upper}_MODELS_DIR": str(paths.models_dir),
            f"HM_{upper}_DATA_DIR": str(paths.data_dir),
            f"HM_{upper}_OUTPUT_DIR": str(paths.output_dir),
            f"HM_{upper}_INDEX_DIR": str(paths.search_dir),
            # Four model processes on a few cores: one thread each keeps them from fighting.
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
            "TF_NUM_INTRAOP_THREADS": env.get("TF_NUM_INTRAOP_THREADS", "1"),
            "TF_NUM_INTEROP_THREADS": env.get("TF_NUM_INTEROP_THREADS", "1"),
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    return env


def gateway_env(
    base: dict[str, str], paths: PathSettings, host: str, port: int, urls: dict[str, str]
) -> dict[str, str]:
    env = dict(base)
    env.update(
        {
            "HM_GATEWAY_HOST": host,
            "HM_GATEWAY_PORT": str(port),
            "HM_GATEWAY_CANDIDATE_URL": urls["candidate"],
            "HM_GATEWAY_RANKER_URL": urls["ranker"],
            "HM_GATEWAY_SEARCH_URL": urls["search"],
            "HM_GATEWAY_DATA_DIR": str(paths.data_dir),
            "HM_GATEWAY_OUTPUT_DIR": str(paths.output_dir),
        }
    )
    return env


def _which(exe: str) -> str | None:
    import shutil

    return shutil.which(exe)


# --- starting, watching, stopping --------------------------------------------------------------
# Each starter appends to ``children`` as it goes, so whatever started before a failure is stopped.


def _start_local_redis(children: list[Child], redis_url: str, env: dict[str, str], log_dir: Path, wanted: bool) -> None:
    """A Redis on this machine that is not reachable is started here (``wanted``, and ``redis-server``
    exists); otherwise the gateway uses its in-process cache."""
    parsed = urlparse(redis_url)
    if redis_url and parsed.hostname in ("127.0.0.1", "localhost"):
        rport = parsed.port or 6379
        if port_open(parsed.hostname, rport):
            echo(f"Redis at {redis_url}: reachable")
        elif wanted and _which("redis-server"):
            children.append(start_child("redis", redis_cmd(rport), env, log_dir))
        else:
            echo(f"Redis at {redis_url} not reachable: the gateway uses its in-process cache")


def _start_model_services(
    children: list[Child], paths: PathSettings, ports: dict[str, int], env: dict[str, str], log_dir: Path
) -> dict[str, str]:
    """candidate, ranker and search on the loopback; their URLs."""
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in MODEL_SERVICES}
    for name in MODEL_SERVICES:
        if port_open("127.0.0.1", ports[name]):
            raise click.ClickException(f"port {ports[name]} ({name}) is already in use; pass --{name}-port")
        children.append(
            start_child(
                name,
                uvicorn_cmd(name, "127.0.0.1", ports[name]),
                service_env(env, paths, name),
                log_dir,
                urls[name],
            )
        )
    return urls


def _start_gateway(
    children: list[Child],
    paths: PathSettings,
    host: str,
    port: int,
    urls: dict[str, str],
    env: dict[str, str],
    log_dir: Path,
) -> str:
    """The gateway (and the page) on ``host:port``, calling the model services at ``urls``; its URL."""
    env = gateway_env(env, paths, host, port, urls)
    if port_open(host, port):
        raise click.ClickException(f"port {port} is already in use; set HM_GATEWAY_PORT or --port")
    gateway_url = f"http://{host}:{port}"
    children.append(start_child("gateway", uvicorn_cmd("gateway", host, port), env, log_dir, gateway_url))
    return gateway_url


def start_services(
    children: list[Child],
    paths: PathSettings,
    host: str,
    port: int,
    ports: dict[str, int],
    env: dict[str, str],
    log_dir: Path,
    start_redis: bool,
) -> str:
    """Redis (if local and needed), the model services, the gateway and the events worker, in that
    order, each appended to ``children`` once started; the gateway's URL."""
    redis_url = env.get("HM_GATEWAY_REDIS_URL", "redis://127.0.0.1:6379/0")
    _start_local_redis(children, redis_url, env, log_dir, start_redis)
    urls = _start_model_services(children, paths, ports, env, log_dir)
    gateway_url = _start_gateway(children, paths, host, port, urls, env, log_dir)
    if redis_url:  # the events worker: Redis Stream -> output/events/*.parquet
        children.append(start_child("events-drain", events_drain_cmd(paths.output_dir, redis_url), env, log_dir))
    return gateway_url


def wait_until_ready(children: list[Child], gateway_url: str, timeout_s: float) -> None:
    """Until the gateway's /readyz answers 200; fails if a child exits or ``timeout_s`` passes."""
    echo(f"waiting for the services (up to {timeout_s:.0f}s; models load first)...")
    deadline = time.monotonic() + timeout_s
    while not ready(gateway_url):
        for child in children:
            if child.proc.poll() is not None:
                raise click.ClickException(
                    f"{child.name} exited with code {child.proc.returncode}; its log:\n{child.tail()}"
                )
        if time.monotonic() > deadline:
            waiting = [c.name for c in children if c.url and not ready(c.url)]
            raise click.ClickException(f"not ready after {timeout_s:.0f}s; still waiting for {waiting}")
        time.sleep(0.5)


def _announce(gateway_url: str, log_dir: Path, background: FullQualityWorker | None) -> None:
    """The URL for the user; then the full-quality phase, if anything is left for it."""
    click.echo(
        f"\n  The H&M recommender is running: {gateway_url}/   (API docs: {gateway_url}/docs)\n"
        f"  Logs in {log_dir}. Ctrl-C stops everything.\n"
    )
    if background is not None and background.pending():
        names = ", ".join(step.name for step in background.pending())
        click.echo(f"  Warming up to full quality in the background ({names}); the page says how far.\n")
        background.start()


def watch(children: list[Child]) -> int:
    """Until a child exits (1; its log tail is printed). A stop signal ends it with :class:`Stopping`."""
    while True:
        for child in children:
            if child.proc.poll() is not None:
                echo(
                    f"{child.name} exited with code {child.proc.returncode}; stopping the rest. Log tail:\n"
                    f"{child.tail()}"
                )
                return 1
        time.sleep(0.5)


class Stopping(Exception):
    pass


def _on_stop_signal(signum: int, _frame: object) -> None:
    raise Stopping(signal.Signals(signum).name)


def _trap_stop_signals() -> dict[signal.Signals, Any]:
    """Ctrl-C and SIGTERM raise :class:`Stopping`; the handlers they replace."""
    return {s: signal.signal(s, _on_stop_signal) for s in (signal.SIGINT, signal.SIGTERM)}


def shut_down(children: list[Child], background: FullQualityWorker | None, previous: dict[signal.Signals, Any]) -> None:
    """The background step first, then every child; then the signal handlers as they were."""
    # Ignore further Ctrl-C while children stop, so none is left behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if background is not None and background.is_alive():
        echo("stopping the background step (the served models stay as they are)")
        background.stop()
    stop_children(children)
    for s, handler in previous.items():
        signal.signal(s, handler)


def serve(
    paths: PathSettings,
    host: str,
    port: int,
    ports: dict[str, int],
    env: dict[str, str],
    ready_timeout_s: float,
    start_redis: bool,
    background: FullQualityWorker | None = None,
) -> int:
    """Start every service, wait for the gateway, then (``background``) start the full-quality
    phase; on Ctrl-C / SIGTERM stop the background step first, then the services."""
    children: list[Child] = []
    previous = _trap_stop_signals()
    log_dir = paths.output_dir / "logs"
    try:
        gateway_url = start_services(children, paths, host, port, ports, env, log_dir, start_redis)
        wait_until_ready(children, gateway_url, ready_timeout_s)
        _announce(gateway_url, log_dir, background)
        return watch(children)
    except Stopping as why:
        echo(f"{why}: stopping")
        return 0
    finally:
        shut_down(children, background, previous)
