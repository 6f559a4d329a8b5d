"""``hmrec run``: the whole product on this machine (what ``make run`` calls).

1. Data: a synthetic world (``small`` by default) if the data folder has no CSVs.
2. The first page: each missing servable artifact by its quick step (a one-epoch two-tower,
   a one-week ranker, the text search index; ``pipeline.warmup``), each an ``hmrec`` step in
   a subprocess. ``--full-first`` (and ``--pipeline-only``, Docker's job) trains everything at
   full quality here instead.
3. The services as uvicorn processes (candidate, ranker, search, then the gateway, which
   also serves the page), Redis if reachable (or started here if ``redis-server`` exists).
4. Waits for the gateway's ``/readyz`` and prints the URL; then the full-quality phase runs
   in the background (photo index, full two-tower and ranker, batch files), each swapped in
   by the services' hot swap, its progress in ``output/warmup.json`` (the page shows it).
   On Ctrl-C / SIGTERM the background step stops first, then every child it started (by its
   own pid), gateway first.
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
from urllib.error import URLError
from urllib.parse import urlparse
from urllib.request import urlopen

import click

from pipeline.options import path_options, paths_from
from pipeline.warmup import FULL_QUALITY, FullQualityWorker, StepFailed, WarmupRecord, run_foreground, run_quick_steps
from shared.config import PathSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_SERVICES = ("candidate", "ranker", "search")
DEFAULT_PORTS = {"candidate": 8001, "ranker": 8002, "search": 8003}


def echo(message: str) -> None:
    click.echo(f"[hmrec run] {message}", err=True)


# --- offline steps ------------------------------------------------------------------------------


def _has_data(data_dir: Path) -> bool:
    """CSVs we may use: a complete synthetic world, or data the generator did not write
    (Kaggle's). A world whose generation was interrupted is regenerated, not trusted."""
    from pipeline.synthetic.world import world_status

    status = world_status(data_dir)
    if status == "incomplete":
        echo(
            f"{data_dir} holds a synthetic world whose generation did not finish (or whose CSVs changed): "
            "generating it again"
        )
    return status in ("complete", "external")


def _run_step(args: list[str], env: dict[str, str], label: str) -> None:
    try:
        run_foreground(args, env, label, echo)
    except StepFailed as exc:
        raise click.ClickException(str(exc)) from exc


def _ensure_data(paths: PathSettings, scale: str, env: dict[str, str]) -> None:
    if not _has_data(paths.data_dir):
        _run_step(
            ["data", "synth", "--scale", scale, "--out", str(paths.data_dir)],
            env,
            f"no data in {paths.data_dir}: synthetic `{scale}` world",
        )


def prepare(paths: PathSettings, scale: str, env: dict[str, str], serving_only: bool = False) -> None:
    """Full quality before anything serves (``--pipeline-only``, ``--full-first``): synthesise data
    if the folder is empty, then every full-quality step whose output is missing (or is still a
    quick model); ``serving_only``: only what the services load, not the batch files."""
    _ensure_data(paths, scale, env)
    record = WarmupRecord(paths.warmup_file)
    for step in FULL_QUALITY:
        if serving_only and not step.serving:
            continue
        if not step.needed(paths, record):
            echo(f"{step.name}: present")
            continue
        _run_step(step.args(paths), env, step.name)


def prepare_first_page(paths: PathSettings, scale: str, env: dict[str, str]) -> WarmupRecord:
    """What the page needs, fast (pipeline.warmup): data, then a quick step for each missing
    servable artifact. The rest is the background's (:class:`FullQualityWorker`)."""
    _ensure_data(paths, scale, env)
    record = WarmupRecord(paths.warmup_file)
    try:
        run_quick_steps(paths, env, record, echo)
    except StepFailed as exc:
        raise click.ClickException(str(exc)) from exc
    return record


# --- processes ---------------------------------------------------------------------------------


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


class Stopping(Exception):
    pass


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

    def on_signal(signum: int, _frame: object) -> None:
        raise Stopping(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    log_dir = paths.output_dir / "logs"
    try:
        redis_url = env.get("HM_GATEWAY_REDIS_URL", "redis://127.0.0.1:6379/0")
        parsed = urlparse(redis_url)
        if redis_url and parsed.hostname in ("127.0.0.1", "localhost"):
            rport = parsed.port or 6379
            if port_open(parsed.hostname, rport):
                echo(f"Redis at {redis_url}: reachable")
            elif start_redis and _which("redis-server"):
                children.append(
                    start_child(
                        "redis",
                        [
                            "redis-server",
                            "--port",
                            str(rport),
                            "--bind",
                            "127.0.0.1",
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                        ],
                        env,
                        log_dir,
                    )
                )
            else:
                echo(f"Redis at {redis_url} not reachable: the gateway uses its in-process cache")

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
        gateway_env = dict(env)
        gateway_env.update(
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
        if port_open(host, port):
            raise click.ClickException(f"port {port} is already in use; set HM_GATEWAY_PORT or --port")
        gateway_url = f"http://{host}:{port}"
        children.append(start_child("gateway", uvicorn_cmd("gateway", host, port), gateway_env, log_dir, gateway_url))

        if redis_url:  # the events worker: Redis Stream -> output/events/*.parquet
            children.append(
                start_child(
                    "events-drain",
                    [
                        sys.executable,
                        "-m",
                        "pipeline.cli",
                        "events",
                        "drain",
                        "--follow",
                        "--output-dir",
                        str(paths.output_dir),
                        "--redis-url",
                        redis_url,
                    ],
                    env,
                    log_dir,
                )
            )
        echo(f"waiting for the services (up to {ready_timeout_s:.0f}s; models load first)...")
        deadline = time.monotonic() + ready_timeout_s
        while not ready(gateway_url):
            for child in children:
                if child.proc.poll() is not None:
                    raise click.ClickException(
                        f"{child.name} exited with code {child.proc.returncode}; its log:\n{child.tail()}"
                    )
            if time.monotonic() > deadline:
                waiting = [c.name for c in children if c.url and not ready(c.url)]
                raise click.ClickException(f"not ready after {ready_timeout_s:.0f}s; still waiting for {waiting}")
            time.sleep(0.5)
        click.echo(
            f"\n  The H&M recommender is running: {gateway_url}/   (API docs: {gateway_url}/docs)\n"
            f"  Logs in {log_dir}. Ctrl-C stops everything.\n"
        )
        if background is not None and background.pending():
            names = ", ".join(step.name for step in background.pending())
            click.echo(f"  Warming up to full quality in the background ({names}); the page says how far.\n")
            background.start()
        while True:
            for child in children:
                if child.proc.poll() is not None:
                    echo(
                        f"{child.name} exited with code {child.proc.returncode}; stopping the rest. Log tail:\n"
                        f"{child.tail()}"
                    )
                    return 1
            time.sleep(0.5)
    except Stopping as why:
        echo(f"{why}: stopping")
        return 0
    finally:
        # Ignore further Ctrl-C while children stop, so none is left behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if background is not None and background.is_alive():
            echo("stopping the background step (the served models stay as they are)")
            background.stop()
        stop_children(children)
        for s, handler in previous.items():
            signal.signal(s, handler)


def _which(exe: str) -> str | None:
    import shutil

    return shutil.which(exe)


@click.command("run")
@path_options
@click.option("--scale", default="small", show_default=True, help="Synthetic world to generate when data/ is empty.")
@click.option(
    "--skip-pipeline",
    "--services-only",
    "skip_pipeline",
    is_flag=True,
    help="Start the services on whatever artifacts exist; run no offline step.",
)
@click.option("--pipeline-only", is_flag=True, help="Prepare data, models and indexes, then exit (Docker's job).")
@click.option(
    "--serving-only",
    is_flag=True,
    help="Only the steps the services need (models, search index); skip the batch files.",
)
@click.option(
    "--full-first",
    is_flag=True,
    help="Train every model and index at full quality before starting the services (no quick first page).",
)
@click.option("--host", default=None, help="Gateway host (default $HM_GATEWAY_HOST or 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Gateway port (default $HM_GATEWAY_PORT or 8000)."
)
@click.option("--candidate-port", type=click.IntRange(1, 65535), default=DEFAULT_PORTS["candidate"], show_default=True)
@click.option("--ranker-port", type=click.IntRange(1, 65535), default=DEFAULT_PORTS["ranker"], show_default=True)
@click.option("--search-port", type=click.IntRange(1, 65535), default=DEFAULT_PORTS["search"], show_default=True)
@click.option("--ready-timeout", type=float, default=900.0, show_default=True, help="Seconds to wait for /readyz.")
@click.option("--no-redis-start", is_flag=True, help="Never start a local redis-server.")
def run_command(
    data_dir: Path | None,
    output_dir: Path | None,
    scale: str,
    skip_pipeline: bool,
    pipeline_only: bool,
    host: str | None,
    port: int | None,
    candidate_port: int,
    ranker_port: int,
    search_port: int,
    ready_timeout: float,
    no_redis_start: bool,
    serving_only: bool,
    full_first: bool,
) -> None:
    """Data, models and indexes if missing, then every service and the page; Ctrl-C stops all."""
    if skip_pipeline and pipeline_only:
        raise click.UsageError("--skip-pipeline and --pipeline-only exclude each other")
    paths = paths_from(data_dir, output_dir)
    paths = PathSettings(data_dir=paths.data_dir.resolve(), output_dir=paths.output_dir.resolve())
    env = dict(os.environ)
    env.update(
        HM_DATA_DIR=str(paths.data_dir),
        HM_OUTPUT_DIR=str(paths.output_dir),
        TF_USE_LEGACY_KERAS="1",
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    background = None
    if pipeline_only or (full_first and not skip_pipeline):
        prepare(paths, scale, env, serving_only)
    elif not skip_pipeline:
        record = prepare_first_page(paths, scale, env)
        background = FullQualityWorker(paths, env, record, paths.output_dir / "logs", echo)
    if pipeline_only:
        echo("pipeline finished")
        return
    host = host or os.environ.get("HM_GATEWAY_HOST", "127.0.0.1")
    port = port or int(os.environ.get("HM_GATEWAY_PORT", "8000"))
    ports = {"candidate": candidate_port, "ranker": ranker_port, "search": search_port}
    code = serve(paths, host, port, ports, env, ready_timeout, start_redis=not no_redis_start, background=background)
    if code:
        sys.exit(code)


def register(cli: click.Group) -> None:
    cli.add_command(run_command)
