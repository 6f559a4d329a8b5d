"""The compose test's replica run: 2 candidates and 2 rankers, one of each killed under load.

``docker compose up --scale candidate=2 --scale ranker=2``, then three load phases through the
page port (uncached ``/recommend``: a new customer/k/offset per request): both replicas up, one
candidate and one ranker container killed five seconds into the phase, and after ``docker
start`` brought them back. Who served what comes from the gateway's own replica counts
(``/readyz`` with details, read inside the gateway container), mapped to containers by their
addresses. Also samples ``docker stats`` under load (CPU and memory per container), the
figures deploy/kubernetes takes its requests and limits from. Standard library only.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

READYZ = (
    "import json, urllib.request, urllib.error\n"
    "try:\n    body = urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=5).read()\n"
    "except urllib.error.HTTPError as err:\n    body = err.read()\n"
    "print(body.decode())"
)
SCALED = ("candidate", "ranker")


@dataclass
class Phase:
    name: str
    statuses: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)
    served: dict[str, Counter] = field(default_factory=dict)  # service -> container -> requests

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def errors_5xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500 or s == 0)


def containers(compose, service: str) -> dict[str, str]:
    """Container name -> its address on the back network, for every container of ``service``."""
    ids = compose.run("ps", "-q", service, capture=True).stdout.split()
    found = {}
    for cid in ids:
        out = subprocess.run(
            [
                "docker",
                "inspect",
                "--format",
                "{{.Name}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                cid,
            ],
            capture_output=True,
            text=True,
        ).stdout.split()
        if out:
            found[out[0].lstrip("/")] = out[1] if len(out) > 1 else ""
    return found


class Load:
    """``workers`` threads of uncached /recommend calls through the page until stopped."""

    def __init__(self, page, customers: list[str], phase: Phase, workers: int = 6) -> None:
        self.page, self.customers, self.phase = page, customers, phase
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, args=(w, workers), daemon=True) for w in range(workers)]

    def _work(self, worker: int, workers: int) -> None:
        i = worker
        while not self._stop.is_set():
            customer = self.customers[i % len(self.customers)]
            k, offset = 1 + (i // len(self.customers)) % 100, (i // 2000 + int(time.time())) % 400
            status, raw = self.page.request(f"/recommend?customer_id={customer}&k={k}&offset={offset}", timeout=10)
            try:
                source = json.loads(raw).get("source", "?") if status == 200 else f"HTTP {status}"
            except ValueError:
                source = "not JSON"
            with self._lock:
                self.phase.statuses[status] += 1
                self.phase.sources[source] += 1
            i += workers

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


def _served(before: dict, after: dict, names: dict[str, dict[str, str]]) -> dict[str, Counter]:
    served = {}
    for service in SCALED:
        by_address = {a: n for n, a in names[service].items()}
        counter: Counter = Counter()
        for address, count in after.get(service, {}).items():
            counter[by_address.get(address, address)] += count - before.get(service, {}).get(address, 0)
        served[service] = counter
    return served


def docker_stats(names: list[str]) -> dict[str, dict[str, str]]:
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{json .}}", *names], capture_output=True, text=True, timeout=60
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {row["Name"]: {"cpu": row["CPUPerc"], "mem": row["MemUsage"]} for row in rows}


# cgroup v2 (cpu.stat, usage_usec) or v1 (cpuacct.usage, nanoseconds), as seen inside the container.
CPU_FILES = "cat /sys/fs/cgroup/cpu.stat 2>/dev/null || cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || cat /sys/fs/cgroup/cpu,cpuacct/cpuacct.usage"


def cpu_seconds(names: list[str]) -> dict[str, float]:
    """CPU seconds each container has used so far (its cgroup's counter, read inside it)."""
    used = {}
    for name in names:
        out = subprocess.run(["docker", "exec", name, "sh", "-c", CPU_FILES], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("usage_usec"):
                used[name] = int(line.split()[1]) / 1e6
            elif line.strip().isdigit():
                used[name] = int(line) / 1e9
    return used


def cpu_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """Milliseconds of CPU per request, per service (its replicas summed)."""
    per_service: dict[str, float] = {}
    for name, seconds in after.items():
        service = name.removeprefix("hmrec-compose-test-").rsplit("-", 1)[0]
        per_service[service] = per_service.get(service, 0.0) + seconds - before.get(name, seconds)
    return {s: round(1000 * v / max(requests, 1), 2) for s, v in sorted(per_service.items())}


def replica_counts_served(compose) -> dict[str, dict[str, int]]:
    """service -> replica address -> answers so far (requests minus failed attempts), from the
    gateway's /readyz details."""
    out = compose.run("exec", "-T", "gateway", "python", "-c", READYZ, capture=True, check=False).stdout
    try:
        deps = json.loads(out)["dependencies"]
    except (ValueError, KeyError):
        return {}
    return {
        service: {
            r["url"].split("://", 1)[1].rsplit(":", 1)[0]: r["requests"] - r["failures"]
            for r in deps.get(service, {}).get("replicas", [])
        }
        for service in SCALED
    }


def _all_healthy(names: list[str]) -> bool:
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Health.Status}}", *names], capture_output=True, text=True
    ).stdout.split()
    return len(out) == len(names) and all(s == "healthy" for s in out)


def _gateway_sees(compose, names: dict[str, dict[str, str]]) -> bool:
    counts = replica_counts_served(compose)
    return all(set(names[s].values()) <= set(counts.get(s, {})) for s in SCALED)


def _load_phase(compose, page, customers, phase: Phase, names, seconds: float) -> Phase:
    before = replica_counts_served(compose)
    with Load(page, customers, phase):
        time.sleep(seconds)
    phase.served = _served(before, replica_counts_served(compose), names)
    return phase


def table(phases: list[Phase]) -> str:
    lines = [
        "",
        "replica run (uncached /recommend through the page, 6 clients)",
        "-" * 78,
        f"{'phase':<26} {'requests':>8} {'5xx':>5}  sources",
    ]
    for p in phases:
        lines.append(
            f"{p.name:<26} {p.requests:>8} {p.errors_5xx:>5}  "
            + ", ".join(f"{s}={n}" for s, n in p.sources.most_common())
        )
        for service in SCALED:
            total = sum(p.served.get(service, {}).values()) or 1
            shares = ", ".join(f"{c} {n} ({n / total:.0%})" for c, n in sorted(p.served.get(service, {}).items()))
            lines.append(f"{'':<4}{service:<10} served by {shares}")
    return "\n".join(lines)


def run(compose, page, report, customers: list[str], poll) -> list[Phase]:
    """The replica run; checks go into ``report``; returns the phases (for the table)."""
    compose.run(
        "up", "-d", "--no-recreate", "--no-deps", "--scale", "candidate=2", "--scale", "ranker=2", "candidate", "ranker"
    )
    names = {s: containers(compose, s) for s in SCALED}
    every = [n for s in SCALED for n in names[s]]
    up = poll(lambda: _all_healthy(every) and _gateway_sees(compose, names), 300, 3)
    if not report.check(
        "replicas: 2 candidate + 2 ranker healthy, the gateway calls all 4",
        bool(up),
        " ".join(f"{s}={sorted(names[s])}" for s in SCALED),
    ):
        return []
    stats: dict[str, dict] = {"idle": docker_stats(every + ["hmrec-compose-test-gateway-1"])}
    with Load(page, customers, Phase("warm-up")):
        time.sleep(10)
        stats["under load"] = docker_stats(every + ["hmrec-compose-test-gateway-1"])
    measured = every + [f"hmrec-compose-test-{s}-1" for s in ("gateway", "redis", "frontend")]
    cpu_before = cpu_seconds(measured)
    phases = [_load_phase(compose, page, customers, Phase("both replicas up"), names, 20)]
    cpu = cpu_per_request(cpu_before, cpu_seconds(measured), phases[0].requests)
    report.notes.append(f"CPU ms per uncached /recommend ({phases[0].requests} requests): {json.dumps(cpu)}")
    stats["cpu_ms_per_request"] = cpu

    victims = {s: sorted(names[s])[-1] for s in SCALED}
    killed = Phase("one of each killed")
    before = replica_counts_served(compose)
    with Load(page, customers, killed):
        time.sleep(5)
        at_kill = replica_counts_served(compose)
        subprocess.run(["docker", "kill", *victims.values()], capture_output=True, check=True)
        time.sleep(25)
    # In two parts: a killed container leaves the DNS name, and with it the gateway's list.
    first, then = _served(before, at_kill, names), _served(at_kill, replica_counts_served(compose), names)
    killed.served = {s: first[s] + then[s] for s in SCALED}
    survivors = _load_phase(compose, page, customers, Phase("killed, 30 s later"), names, 15)
    subprocess.run(["docker", "start", *victims.values()], capture_output=True, check=True)
    names = {s: containers(compose, s) for s in SCALED}  # a restarted container may get a new address
    back = poll(lambda: _all_healthy(every) and _gateway_sees(compose, names), 300, 3)
    restarted = _load_phase(compose, page, customers, Phase("restarted"), names, 20)
    phases += [killed, survivors, restarted]

    report.check(
        "replica run: 0 5xx in every phase",
        all(p.errors_5xx == 0 for p in phases),
        " ".join(f"{p.errors_5xx}/{p.requests}" for p in phases),
    )
    report.check(
        "both replicas served before the kill",
        all(
            min(phases[0].served[s][n] for n in names[s]) >= 0.25 * max(sum(phases[0].served[s].values()), 1)
            for s in SCALED
        ),
        str({s: dict(phases[0].served[s]) for s in SCALED}),
    )
    report.check(
        "after the kill the survivor serves it all",
        all(survivors.served[s][victims[s]] == 0 and sum(survivors.served[s].values()) > 0 for s in SCALED),
        str({s: dict(survivors.served[s]) for s in SCALED}),
    )
    report.check(
        "the restarted replicas are used again",
        bool(back)
        and all(restarted.served[s][victims[s]] >= 0.2 * max(sum(restarted.served[s].values()), 1) for s in SCALED),
        str({s: dict(restarted.served[s]) for s in SCALED}),
    )
    report.notes.append("docker stats (replica run): " + json.dumps(stats))
    return phases
