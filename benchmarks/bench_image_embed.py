"""Photo indexing speed: the index step (``build_image_index``) with each backend, on real photos.

    .venv/bin/python benchmarks/bench_image_embed.py --data-dir REAL --images 1000 --backends torch,onnx --json out.json
    .venv/bin/python benchmarks/bench_image_embed.py --data-dir REAL --sweep          # CNN alone: ONNX batch x threads

What ``hmrec index`` spends its time on: decoding each photo to a 224x224 square (PIL), the garment
colour histogram (NumPy) and the CNN features (ONNX Runtime, or torch as the fallback / on a GPU).
For each backend the first ``--images`` real photos of the H&M sample (articles.csv order) are
embedded into a fresh scratch index exactly as ``hmrec index images`` does (decode of the next
batch overlapped with the CNN), then the build is run again to show that nothing is re-embedded
(photos are reused by sha256). Reported per 1,000 photos: wall seconds and CPU seconds (this
process, all threads: what the step costs when the machine is shared), with the load average.
The two backends' features of the same photos are compared (cosine of every pair).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.search.image import ImageEmbedder, load_photo  # noqa: E402
from services.search.index import IMAGE_FILE, build_image_index, photo_path, read_image_embeddings  # noqa: E402


def build(backend: str, articles, images_dir: Path, batch: int, threads: int) -> dict:
    embedder = ImageEmbedder(backend=backend, device="cpu", threads=threads)
    with tempfile.TemporaryDirectory() as tmp:
        load0 = os.getloadavg()[0]
        first = build_image_index(
            articles, images_dir, Path(tmp), batch_size=batch, progress=False, embedder=embedder, fit_projection=False
        )
        ids, _, cnn, _ = read_image_embeddings(Path(tmp) / IMAGE_FILE)
        again = build_image_index(
            articles, images_dir, Path(tmp), batch_size=batch, progress=False, embedder=embedder, fit_projection=False
        )
    return {
        "backend": embedder.backend,
        "photos": first["images_embedded"],
        "wall_s_per_1000": first["embed_seconds_per_1000"],
        "cpu_s_per_1000": first["embed_cpu_seconds_per_1000"],
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "rerun_embedded": again["images_embedded"],
        "rerun_reused": again["images_reused"],
        "rerun_seconds": again["image_seconds_total"],
        "_features": dict(zip(ids, cnn, strict=True)),
    }


def sweep(paths: list[Path]) -> list[dict]:
    pixels = np.stack([load_photo(p) for p in paths])
    rows = []
    for threads in (1, 2):
        embedder = ImageEmbedder(backend="onnx", threads=threads)
        for batch in (8, 16, 32, 64):
            embedder.cnn_features(pixels[:batch])
            t, c = time.perf_counter(), time.process_time()
            for i in range(0, len(pixels), batch):
                embedder.cnn_features(pixels[i : i + batch])
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            rows.append(
                {
                    "threads": threads,
                    "batch": batch,
                    "cnn_wall_ms_per_photo": 1000 * wall / len(pixels),
                    "cnn_cpu_ms_per_photo": 1000 * cpu / len(pixels),
                    "load_average": round(os.getloadavg()[0], 2),
                }
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True, help="articles.csv + images/ (e.g. the real H&M sample)")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--backends", default="torch,onnx")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (0: one per core)")
    ap.add_argument("--sweep", action="store_true", help="time the ONNX CNN alone per batch size and thread count")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from shared.data import load_articles

    images_dir = args.data_dir / "images"
    articles = load_articles(args.data_dir / "articles.csv")
    articles = articles[[photo_path(images_dir, a).is_file() for a in articles["article_id"]]].head(args.images)
    print(f"{len(articles)} real photos from {images_dir}; {os.cpu_count()} CPUs; load {os.getloadavg()}", flush=True)
    out: dict = {"photos": len(articles), "cpus": os.cpu_count()}
    if args.sweep:
        out["sweep"] = sweep([photo_path(images_dir, a) for a in articles["article_id"][:256]])
    rows = []
    for backend in args.backends.split(","):
        rows.append(build(backend, articles, images_dir, args.batch, args.threads))
        print({k: v for k, v in rows[-1].items() if k != "_features"}, flush=True)
    if len(rows) == 2:
        a, b = rows[0]["_features"], rows[1]["_features"]
        common = sorted(set(a) & set(b))
        cos = np.array([float(a[k] @ b[k]) for k in common])
        diff = max(float(np.abs(a[k] - b[k]).max()) for k in common)
        out["agreement"] = {"min_cosine": float(cos.min()), "max_abs_diff": diff}
        print(f"{rows[0]['backend']} vs {rows[1]['backend']}: min cosine {cos.min():.7f}, max abs diff {diff:.2e}")
    print("\n| backend | photos | wall s / 1,000 | CPU s / 1,000 | load avg (start, end) | re-run: embedded / reused |")
    print("|---|---:|---:|---:|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['photos']} | {r['wall_s_per_1000']} | {r['cpu_s_per_1000']} | "
            f"{r['load_average']} | {r['rerun_embedded']} / {r['rerun_reused']} ({r['rerun_seconds']} s) |"
        )
    out["rows"] = [{k: v for k, v in r.items() if k != "_features"} for r in rows]
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
