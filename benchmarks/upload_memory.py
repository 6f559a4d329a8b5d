"""Peak RSS of the search service before and after hostile photos (issue 15: an 8 x 60,000 PNG
of 3.7 KB used to be padded to a 60,000² canvas and grow the process to 5.7 GB).

Starts the search service alone as a real uvicorn process on a prepared world (the folder
``benchmarks/fault_table.py --work-dir`` or the e2e fixtures make), or measures a running one
(``--search-url`` + ``--pid``). For each photo it sends it ``--repeat`` times and reads the
process's peak resident set (``VmHWM``, which only ever grows) and current RSS (``VmRSS``).

    .venv/bin/python benchmarks/upload_memory.py --work-dir /tmp/hm_work
    .venv/bin/python benchmarks/upload_memory.py --search-url http://127.0.0.1:8003 --pid 1234

Loopback only; the process it starts is ended at exit.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import zlib
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tests.hostile_corpus import chunk, jpeg, png, text_chunk_bomb_png

GOAL_MB = 100


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def rgb_strip_png(width: int, height: int) -> bytes:
    """An 8-bit RGB PNG (the issue's 3.7 KB file was of this kind), every row white."""
    import struct

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\xff" * (3 * width)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def big_jpeg(size: tuple[int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (30, 90, 160)).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def photos() -> list[tuple[str, bytes, str]]:
    return [
        ("real-size photo 1166x1750 JPEG", big_jpeg((1166, 1750)), "image/jpeg"),
        ("8 x 60,000 PNG, 8-bit RGB", rgb_strip_png(8, 60_000), "image/png"),
        ("60,000 x 8 PNG, 8-bit RGB", rgb_strip_png(60_000, 8), "image/png"),
        ("8 x 60,000 PNG, 1-bit", png(8, 60_000), "image/png"),
        ("8 x 8,000 PNG (under the side limit)", rgb_strip_png(8, 8000), "image/png"),
        ("PNG text-chunk bomb", text_chunk_bomb_png(), "image/png"),
        ("6000 x 6000 JPEG (36 MP, draft-decoded)", big_jpeg((6000, 6000)), "image/jpeg"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", type=Path, default=None, help="prepared world + models (made if missing)")
    ap.add_argument("--search-url", default=None)
    ap.add_argument("--pid", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    proc = None
    if args.search_url:
        if args.pid is None:
            ap.error("--search-url needs --pid")
        url, pid = args.search_url.rstrip("/"), args.pid
        if httpx.URL(url).host not in ("127.0.0.1", "localhost"):
            ap.error("loopback only")
    else:
        from e2e.stack import Stack, prepare_world

        root = args.work_dir or Path(tempfile.mkdtemp(prefix="hm_upload_mem_"))
        if not (root / ".prepared").exists():
            prepare_world(root, root / "logs")
            (root / ".prepared").write_text("ok")
        stack = Stack(data_dir=root / "data", output_dir=root / "output", log_dir=root / "logs", redis_url="")
        proc = stack.procs["search"]
        proc.start()
        proc.wait_ready()
        url, pid = proc.url, proc.proc.pid  # type: ignore[union-attr]
    try:
        with httpx.Client(timeout=60) as client:
            warm = client.post(url + "/search/image", files={"file": ("w.jpg", jpeg((200, 300)), "image/jpeg")})
            assert warm.status_code == 200, warm.text
            rows = []
            for name, data, ctype in photos():
                peak0, rss0 = status_mb(pid, "VmHWM"), status_mb(pid, "VmRSS")
                statuses, worst = set(), 0.0
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    r = client.post(url + "/search/image", files={"file": ("p", data, ctype)})
                    worst = max(worst, time.perf_counter() - t)
                    statuses.add(r.status_code)
                rows.append(
                    (
                        name,
                        len(data),
                        sorted(statuses),
                        1000 * worst,
                        peak0,
                        status_mb(pid, "VmHWM"),
                        rss0,
                        status_mb(pid, "VmRSS"),
                    )
                )
        print(f"search service pid {pid}; each photo sent {args.repeat} times\n")
        print("| photo | bytes | status | slowest | peak RSS before | peak RSS after | growth | RSS after |")
        print("|---|---:|---|---:|---:|---:|---:|---:|")
        for name, size, statuses, ms, p0, p1, _r0, r1 in rows:
            print(
                f"| {name} | {size:,} | {'/'.join(map(str, statuses))} | {ms:.0f} ms | {p0:.0f} MB | {p1:.0f} MB "
                f"| +{p1 - p0:.1f} MB | {r1:.0f} MB |"
            )
        strip = next(r for r in rows if r[0].startswith("8 x 60,000 PNG, 8-bit"))
        grew = strip[5] - strip[4]
        print(
            f"\nRESULT: {'PASS' if grew < GOAL_MB else 'FAIL'}: the 8 x 60,000 PNG grew peak RSS by "
            f"{grew:.1f} MB (goal < {GOAL_MB} MB)"
        )
    finally:
        if proc is not None:
            proc.stop()


if __name__ == "__main__":
    main()
