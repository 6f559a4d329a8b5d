"""`docker compose up` on a real engine, checked through the published page port only.

Run by tests/compose/run.sh (``make compose-test``), which sets up the engine first. Steps: a
clean copy of the repository (``git archive HEAD``, or ``--source worktree`` for uncommitted
work), each image built and timed, ``docker compose up --build -d`` with a tiny world, then
checks against http://127.0.0.1:<port>: the page, /recommend (12 items from the ranker),
text and photo search, the ranker killed and started again, a retrained ranker hot-swapped,
operational routes and build files not public, a replica run (2 candidates, 2 rankers, one
of each killed under load: tests/compose/replica_run.py), and ``down -v`` leaving nothing behind.
Prints a table; exits 1 if any check failed. Standard library only (runs on the system python).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import replica_run

REPO = Path(__file__).resolve().parents[2]
PROJECT = "hmrec-compose-test"
# Built in this order (the core dependency layer is shared, so the first model image pays it).
BUILT = ["frontend", "gateway", "ranker", "candidate", "search", "pipeline"]
SERVERS = ["redis", "candidate", "ranker", "search", "gateway", "frontend"]
TORCH_INDEX = "https://download.pytorch.org/whl/cpu/"
CUSTOMER_COUNT = 20


@dataclass
class Report:
    builds: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((name, bool(ok), detail))
        print(f"[compose-test] {'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        return bool(ok)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def table(self) -> str:
        lines = ["", "compose test", "-" * 78]
        lines.append(f"{'image':<12} {'build s':>8} {'size MB':>9}")
        for name in BUILT:
            b = self.builds.get(name)
            s = self.sizes.get(name)
            lines.append(f"{name:<12} {b if b is None else f'{b:.0f}':>8} {'-' if s is None else f'{s / 1e6:.0f}':>9}")
        lines.append("-" * 78)
        for name, seconds in self.timings.items():
            lines.append(f"{name:<40} {seconds:>8.0f} s")
        lines.append("-" * 78)
        for name, ok, detail in self.checks:
            lines.append(f"{'PASS' if ok else 'FAIL'}  {name:<44} {detail[:60]}")
        for note in self.notes:
            lines.append(f"note: {note}")
        lines.append("-" * 78)
        lines.append("result: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)


def log(message: str) -> None:
    print(f"[compose-test] {message}", flush=True)


# --- the copy of the repository ------------------------------------------------------------------


def clean_copy(source: str, dest: Path) -> None:
    """HEAD as committed (``git archive``), or the working tree's tracked and unignored files."""
    if source == "head":
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"], check=True, capture_output=True
        ).stdout
        with tempfile.TemporaryFile() as tmp:
            tmp.write(archive)
            tmp.seek(0)
            with tarfile.open(fileobj=tmp) as tar:
                tar.extractall(dest, filter="tar")
        return
    files = (
        subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"], check=True, capture_output=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def reachable(url: str, timeout_s: float = 5.0) -> bool:
    try:
        urllib.request.urlopen(url, timeout=timeout_s).close()
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def local_torch_wheel() -> Path | None:
    """The CPU torch wheel in pip's find-links folders on this machine, if any."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    folders = []
    for line in out.splitlines():
        if "find-links" in line and "=" in line:
            folders += line.split("=", 1)[1].strip().strip("'\"").split()
    for folder in folders:
        for wheel in sorted(Path(folder).glob("torch-2.13.0*cpu*.whl")) if Path(folder).is_dir() else []:
            return wheel
    return None


# --- docker --------------------------------------------------------------------------------------


class Compose:
    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir = workdir
        self.env = env

    def run(
        self, *args: str, check: bool = True, capture: bool = False, timeout: float = 1800
    ) -> subprocess.CompletedProcess:
        cmd = ["docker", "compose", "-p", PROJECT, *args]
        result = subprocess.run(cmd, cwd=self.workdir, env=self.env, text=True, timeout=timeout, capture_output=capture)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} exited {result.returncode}"
                + (f"\n{result.stdout}\n{result.stderr}" if capture else "")
            )
        return result

    def states(self) -> dict[str, dict]:
        out = self.run("ps", "-a", "--format", "json", capture=True).stdout
        rows = []
        for line in out.splitlines():
            line = line.strip()
            if not line:
                continue
            parsed = json.loads(line)
            rows += parsed if isinstance(parsed, list) else [parsed]
        return {row["Service"]: row for row in rows}


def image_size(name: str) -> int | None:
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", name], capture_output=True, text=True)
    return int(out.stdout.strip()) if out.returncode == 0 else None


def wait_healthy(compose: Compose, timeout_s: float) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        states = compose.states()
        pipeline = states.get("pipeline", {})
        if pipeline.get("State") == "exited" and pipeline.get("ExitCode") not in (0, None):
            return False, f"pipeline exited {pipeline.get('ExitCode')}"
        health = {s: states.get(s, {}).get("Health") or states.get(s, {}).get("State", "missing") for s in SERVERS}
        now = ", ".join(f"{s}={h}" for s, h in health.items())
        if now != last:
            log(f"waiting for health: {now}")
            last = now
        if all(h == "healthy" for h in health.values()):
            return True, now
        time.sleep(3)
    return False, f"not healthy after {timeout_s:.0f} s: {last}"


# --- HTTP through the page port ------------------------------------------------------------------


class Page:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def request(
        self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(self.base + path, data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except (urllib.error.URLError, OSError) as err:
            return 0, str(err).encode()

    def json(self, path: str, payload: dict | None = None) -> tuple[int, dict | list | None]:
        body = None if payload is None else json.dumps(payload).encode()
        status, raw = self.request(path, body, {"Content-Type": "application/json"} if body else None)
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None

    def multipart(self, path: str, filename: str, content: bytes, content_type: str) -> tuple[int, dict | None]:
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, raw = self.request(path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None


def poll(what, timeout_s: float, interval_s: float = 2.0):
    """Call ``what()`` until it returns a truthy value or time runs out; returns the last value."""
    deadline = time.monotonic() + timeout_s
    value = what()
    while not value and time.monotonic() < deadline:
        time.sleep(interval_s)
        value = what()
    return value


# --- the checks ----------------------------------------------------------------------------------


def run_checks(compose: Compose, page: Page, report: Report) -> None:
    status, raw = page.request("/")
    report.check(
        "page loads (GET /)",
        status == 200 and b"<html" in raw.lower() and b"app.js" in raw,
        f"HTTP {status}, {len(raw)} bytes",
    )
    status, _ = page.request("/app.js")
    report.check("page script (GET /app.js)", status == 200, f"HTTP {status}")

    status, customers = page.json(f"/customers?limit={CUSTOMER_COUNT}")
    ids = [c["customer_id"] for c in customers] if status == 200 and isinstance(customers, list) else []
    if not report.check("customers for the page", len(ids) >= 4, f"HTTP {status}, {len(ids)} customers"):
        return
    fresh = iter(range(1, 10_000))  # a new k per request: never a cached answer

    def feed(customer: str, k: int = 12) -> tuple[int, dict]:
        status, body = page.json(f"/recommend?customer_id={customer}&k={k}")
        return status, body if isinstance(body, dict) else {}

    status, body = feed(ids[0])
    items = body.get("items", [])
    report.check(
        "/recommend: 12 items from the ranker",
        status == 200 and len(items) == 12 and body.get("source") == "ranker",
        f"HTTP {status}, {len(items)} items, source={body.get('source')}, degraded={body.get('degraded')}",
    )
    versions = body.get("model_versions", {})

    status, body = page.json("/search", {"query": "black dress", "k": 12})
    results = body.get("items", []) if isinstance(body, dict) else []
    report.check("/search text", status == 200 and len(results) > 0, f"HTTP {status}, {len(results)} results")

    article = (items or results or [{}])[0].get("article_id")
    status, photo = page.request(f"/articles/{article}/image") if article else (0, b"")
    if report.check(
        "article photo (GET /articles/<id>/image)",
        status == 200 and photo[:2] == b"\xff\xd8",
        f"HTTP {status}, {len(photo)} bytes",
    ):
        status, body = page.multipart("/search", "photo.jpg", photo, "image/jpeg")
        results = (body or {}).get("items", [])
        report.check(
            "/search photo upload",
            status == 200 and (body or {}).get("kind") == "image" and results,
            f"HTTP {status}, {len(results)} results",
        )

    leaks = {}
    for path in ("/Dockerfile", "/nginx.conf", "/readyz", "/metrics", "/docs", "/openapi.json"):
        leaks[path], _ = page.request(path)
    report.check(
        "build files and ops routes not public",
        all(s == 404 for s in leaks.values()),
        " ".join(f"{p}={s}" for p, s in leaks.items()),
    )

    # The ranker down: the feed still answers, in candidate order.
    compose.run("kill", "ranker")
    started = time.monotonic()
    got = poll(
        lambda: (lambda r: r if r[0] == 200 and r[1].get("source") == "candidates" else None)(
            feed(ids[1], next(fresh))
        ),
        60,
    )
    report.check(
        "ranker killed -> 200, source=candidates",
        bool(got),
        f"after {time.monotonic() - started:.1f} s" if got else "never",
    )
    compose.run("start", "ranker")
    started = time.monotonic()
    got = poll(
        lambda: (lambda r: r if r[0] == 200 and r[1].get("source") == "ranker" else None)(feed(ids[2], next(fresh))),
        180,
        3,
    )
    report.check(
        "ranker started -> source=ranker again",
        bool(got),
        f"after {time.monotonic() - started:.1f} s" if got else "never",
    )

    # A retrained ranker, published by the pipeline job, is swapped in without a restart.
    old = versions.get("ranker")
    new = f"compose-{time.strftime('%Y%m%dT%H%M%S')}"
    started = time.monotonic()
    # --force where the CLI has it: publish even if the gate prefers a baseline (what is checked
    # here is the swap, not the gate; tiny worlds are too small to judge models by).
    force = ["--force"] if '"--force"' in (compose.workdir / "pipeline/commands/ranker.py").read_text() else []
    result = compose.run(
        "run",
        "--rm",
        "--no-deps",
        "pipeline",
        "python",
        "-m",
        "pipeline.cli",
        "train",
        "ranker",
        "--model-version",
        new,
        *force,
        check=False,
        capture=True,
    )
    report.timings["pipeline job: retrain the ranker"] = time.monotonic() - started
    if report.check(
        "pipeline job re-run (train ranker) exits 0",
        result.returncode == 0,
        (result.stderr or result.stdout).strip().splitlines()[-1][:60] if result.returncode else new,
    ):
        started = time.monotonic()
        got = poll(
            lambda: (
                lambda r: (
                    r
                    if r[0] == 200
                    and r[1].get("model_versions", {}).get("ranker") == new
                    and r[1].get("source") == "ranker"
                    else None
                )
            )(feed(ids[3], next(fresh))),
            180,
            3,
        )
        report.check(
            "new ranker version hot-swapped",
            bool(got),
            f"{old} -> {new} after {time.monotonic() - started:.0f} s" if got else f"still {old}",
        )


def run_replica_checks(compose: Compose, page: Page, report: Report) -> list[replica_run.Phase]:
    """2 candidates + 2 rankers, one of each killed under load (tests/compose/replica_run.py);
    the docker stats it samples go to test-artifacts/compose/docker-stats.json."""
    status, customers = page.json(f"/customers?limit={CUSTOMER_COUNT}")
    ids = [c["customer_id"] for c in customers] if status == 200 and isinstance(customers, list) else []
    started = time.monotonic()
    phases = replica_run.run(compose, page, report, ids, poll)
    report.timings["replica run"] = time.monotonic() - started
    for note in report.notes:
        if note.startswith("docker stats"):
            out = REPO / "test-artifacts" / "compose" / "docker-stats.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(note.split(": ", 1)[1])
    return phases


def left_behind() -> list[str]:
    label = f"label=com.docker.compose.project={PROJECT}"
    found = []
    for kind, cmd in (
        ("container", ["docker", "ps", "-aq", "--filter", label]),
        ("volume", ["docker", "volume", "ls", "-q", "--filter", label]),
        ("network", ["docker", "network", "ls", "-q", "--filter", label]),
    ):
        out = subprocess.run(cmd, capture_output=True, text=True).stdout.split()
        found += [f"{kind} {x}" for x in out]
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        choices=["head", "worktree"],
        default="head",
        help="head: git archive of HEAD (CI); worktree: tracked + unignored files",
    )
    parser.add_argument("--scale", default="tiny")
    parser.add_argument("--health-timeout", type=float, default=900)
    parser.add_argument("--keep", action="store_true", help="leave the stack running (no down -v)")
    args = parser.parse_args()

    # A TERM (CI's timeout) unwinds like an error: the `finally` below still takes the stack down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report = Report()
    phases: list[replica_run.Phase] = []
    workdir = Path(tempfile.mkdtemp(prefix="hmrec-compose-"))
    port = free_port()
    env = dict(
        os.environ,
        HM_SCALE=args.scale,
        HM_FRONTEND_BIND="127.0.0.1",
        HM_FRONTEND_PORT=str(port),
        DOCKER_BUILDKIT="0",
        COMPOSE_DOCKER_CLI_BUILD="0",
        HM_GATEWAY_READYZ_DETAILS="true",
    )  # the replica run reads who served what there
    compose = Compose(workdir, env)
    try:
        clean_copy(args.source, workdir)
        log(f"clean copy ({args.source}) in {workdir}; page port 127.0.0.1:{port}")
        if "HM_PIP_EXTRA_INDEX_URL" not in os.environ and not reachable(TORCH_INDEX):
            wheel = local_torch_wheel()
            if wheel:
                os.link(wheel, workdir / "wheels" / wheel.name) if os.stat(wheel).st_dev == os.stat(
                    workdir
                ).st_dev else shutil.copy2(wheel, workdir / "wheels" / wheel.name)
                env["HM_PIP_EXTRA_INDEX_URL"] = ""
                report.notes.append(f"PyTorch index unreachable: torch from wheels/{wheel.name}, no extra index")
        compose.run("down", "-v", "--remove-orphans", check=False, capture=True)  # a previous run's leftovers

        retries = 0
        for name in BUILT:
            started = time.monotonic()
            built = compose.run("build", name, check=False, capture=True)
            report.builds[name] = time.monotonic() - started
            output = built.stdout + built.stderr
            retries += output.count("Retrying (Retry(")  # pip waiting on an unreachable index
            if built.returncode != 0:
                print(output[-4000:])
                raise RuntimeError(f"docker compose build {name} exited {built.returncode}")
            report.sizes[name] = image_size(f"{PROJECT}-{name}")
            log(f"built {name} in {report.builds[name]:.0f} s ({(report.sizes[name] or 0) / 1e6:.0f} MB)")
        report.sizes["redis"] = image_size("redis:7.4-alpine")
        report.check("builds never wait on an unreachable index", retries == 0, f"{retries} pip retries")

        started = time.monotonic()
        compose.run("up", "--build", "-d")
        ok, detail = wait_healthy(compose, args.health_timeout)
        report.timings["up -> every service healthy"] = time.monotonic() - started
        pipeline_log = compose.run("logs", "--no-log-prefix", "pipeline", capture=True, check=False).stdout
        for line in pipeline_log.splitlines():
            if line.startswith("[hmrec run]") and ("done in" in line or "present" in line):
                report.notes.append("pipeline job: " + line.removeprefix("[hmrec run]").strip())
        if report.check("up: pipeline done, every service healthy", ok, detail if not ok else ""):
            run_checks(compose, Page(port), report)
            phases = run_replica_checks(compose, Page(port), report)
        else:
            print(compose.run("logs", "--tail", "40", capture=True, check=False).stdout)
    except Exception as exc:  # reported as a failed check, the stack still comes down
        report.check("test ran to the end", False, f"{type(exc).__name__}: {exc}"[:200])
    finally:
        if not args.keep:
            compose.run("down", "-v", "--remove-orphans", check=False, capture=True)
            rest = left_behind()
            report.check("down -v leaves nothing running", not rest, ", ".join(rest)[:60])
        shutil.rmtree(workdir, ignore_errors=True)
    print(replica_run.table(phases) if phases else "replica run: did not run")
    print(report.table())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
