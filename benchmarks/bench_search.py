"""Search latency and index-build speed, printed as a table.

    python benchmarks/bench_search.py --index-dir output/search --data-dir REAL   # real articles.csv + images/

- text query p50/p99 per mode (goal: p99 < 30 ms), in process (what a request spends in
  the route, without HTTP), over queries worded from the catalogue;
- image query p50/p99 including decoding the upload and the CPU embedding (goal p99 < 150 ms),
  with real catalogue photos as uploads;
- index build: seconds per 1,000 photos, embedding ``--build-photos`` photos into a scratch dir.

Torch runs one thread per query (the service's setting): parallelism comes from concurrent
requests, not from splitting one small forward pass.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, default=Path("output/search"))
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="articles.csv + images/ (e.g. the real H&M sample)"
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--photos", type=int, default=100, help="image queries to time")
    parser.add_argument("--build-photos", type=int, default=200, help="photos to embed for the build timing")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from services.search.engine import SearchIndex
    from services.search.evaluate import text_queries
    from services.search.index import build_image_index, photo_path
    from services.search.settings import SearchSettings
    from services.search.upload import configure_pillow, decode_upload
    from shared.data import load_articles

    settings = SearchSettings(index_dir=args.index_dir, personal_source="off")
    configure_pillow(settings.max_image_pixels)
    t = time.perf_counter()
    index = SearchIndex.load(args.index_dir, settings)
    load_s = time.perf_counter() - t
    articles = load_articles(args.data_dir / "articles.csv")
    queries = [q for q, _ in text_queries(articles, min_relevant=1)]
    queries = (queries * (args.queries // max(len(queries), 1) + 1))[: args.queries]
    # name, wall p50, wall p99, CPU p50, CPU p99 (this thread's CPU time: what the query costs
    # when it does not wait for a busy machine), goal
    rows: list[tuple[str, float, float, float, float, str]] = []

    for mode in ("tfidf", "semantic", "hybrid"):
        for q in queries[:5]:
            index.text_search(q, mode=mode)  # warm-up
        times, cpu = [], []
        for q in queries:
            t, c = time.perf_counter(), time.thread_time()
            index.text_search(q, k=12, mode=mode)
            times.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
        rows.append((f"text query ({mode})", *percentiles(times), *percentiles(cpu), "p99 < 30 ms"))

    ids = [a for a in articles["article_id"] if photo_path(args.data_dir / "images", a).is_file()]
    uploads = [photo_path(args.data_dir / "images", a).read_bytes() for a in ids[: args.photos]]
    if index.has_images and uploads:
        for mode in ("default", "embedder"):
            index.image_search(decode_upload(uploads[0], settings.max_image_pixels), mode=mode)
            times, cpu = [], []
            for data in uploads:
                t, c = time.perf_counter(), time.thread_time()
                image = decode_upload(data, settings.max_image_pixels)
                index.image_search(image, k=12, mode=mode, photo_sha256=hashlib.sha256(data).hexdigest())
                times.append(time.perf_counter() - t)
                cpu.append(time.thread_time() - c)
            rows.append(
                (f"image query ({mode}, decode+embed+search)", *percentiles(times), *percentiles(cpu), "p99 < 150 ms")
            )

    build = {}
    if args.build_photos:
        torch.set_num_threads(2)  # an offline step uses the whole machine
        subset = articles[articles["article_id"].isin(set(ids[: args.build_photos]))]
        with tempfile.TemporaryDirectory() as tmp:
            build = build_image_index(subset, args.data_dir / "images", Path(tmp), progress=False)

    print(
        f"\nsearch index {index.version}: {len(index.catalogue)} articles, "
        f"{0 if index.image_rows is None else len(index.image_rows)} photos; loaded in {load_s:.1f} s; "
        f"torch threads per query {args.threads}\n"
    )
    print(f"| {'measure':<44} | {'p50 ms':>8} | {'p99 ms':>8} | {'CPU p50':>8} | {'CPU p99':>8} | goal |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|------|")
    for name, p50, p99, c50, c99, goal in rows:
        print(f"| {name:<44} | {p50:8.1f} | {p99:8.1f} | {c50:8.1f} | {c99:8.1f} | {goal} |")
    import os

    print(f"\nload average during the run: {os.getloadavg()} on {os.cpu_count()} CPUs")
    if build:
        print(
            f"\nindex build: {build['images_embedded']} photos embedded in {build['embed_seconds']:.1f} s "
            f"= {build['embed_seconds_per_1000']:.0f} s per 1,000 photos (2 CPU threads, batch 32); "
            f"projection fit {build['projection_fit_seconds']:.1f} s"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "latency_ms": {n: {"p50": a, "p99": b, "cpu_p50": c, "cpu_p99": d} for n, a, b, c, d, _ in rows},
                    "build": build,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
