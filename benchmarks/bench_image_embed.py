"""Photo indexing throughput: the search service's EfficientNet-Lite0 embedder on CPU and GPU.

    .venv/bin/python benchmarks/bench_image_embed.py                       # CPU (and CUDA if torch sees one)
    .venv/bin/python benchmarks/bench_image_embed.py --devices cuda,cpu --images 4096 --json out.json

What the search index build (``hmrec index``) spends its time on: decoding each photo to a
224x224 square (CPU, PIL), the garment colour histogram (CPU, NumPy) and the CNN features
(torch, the only part a GPU can take). The photos are the real H&M sample's, repeated up to
``--images``; decoding is timed once, the CNN per device and batch size (after a warm-up batch),
and the GPU's embeddings are checked against the CPU's (same model, same input: the cosine of
every pair must be ~1, or an index built on a GPU would not match queries embedded on a CPU).

Prints one table: device, batch, CNN images/s, and the whole index step (decode + colour + CNN)
images/s given the measured CPU decode rate; ``bf16`` rows (autocast) are what a GPU could
reach with reduced precision, which the product does not use.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.search.image import ImageEmbedder, garment_colour, load_photo  # noqa: E402

DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "hm_sample" / "images"


def decode(paths: list[Path]) -> tuple[np.ndarray, float, float]:
    """Square pixels of every photo, photos/s of decoding and of the colour histogram."""
    t0 = time.perf_counter()
    pixels = np.stack([load_photo(p) for p in paths])
    t1 = time.perf_counter()
    for p in pixels:
        garment_colour(p)
    t2 = time.perf_counter()
    return pixels, len(paths) / (t1 - t0), len(paths) / (t2 - t1)


def time_cnn(embedder: ImageEmbedder, pixels: np.ndarray, batch: int, bf16: bool = False) -> tuple[float, np.ndarray]:
    """Images/s of the CNN over ``pixels`` in batches (after one warm-up batch) and the features."""
    torch = embedder.torch

    def run(chunk: np.ndarray) -> np.ndarray:
        if not bf16:
            return embedder.cnn_features(chunk)
        with torch.autocast(device_type=embedder.device, dtype=torch.bfloat16):
            return embedder.cnn_features(chunk)

    run(pixels[:batch])
    if embedder.device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    feats = [run(pixels[i : i + batch]) for i in range(0, len(pixels), batch)]
    if embedder.device == "cuda":
        torch.cuda.synchronize()
    return len(pixels) / (time.perf_counter() - t0), np.concatenate(feats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos-dir", type=Path, default=DEFAULT_PHOTOS)
    ap.add_argument("--images", type=int, default=512, help="photos embedded per measurement (the sample repeated)")
    ap.add_argument("--devices", default=None, help="comma-separated (default: cpu, plus cuda when available)")
    ap.add_argument("--batches", default="32,128,512")
    ap.add_argument("--cpu-threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.cpu_threads)
    paths = sorted(args.photos_dir.rglob("*.jpg"))
    if not paths:
        sys.exit(f"no .jpg photos under {args.photos_dir}")
    paths = (paths * (args.images // len(paths) + 1))[: args.images]
    pixels, decode_rate, colour_rate = decode(paths)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    batches = [int(b) for b in args.batches.split(",")]
    gpu_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(
        f"torch {torch.__version__}; {len(pixels)} photos from {args.photos_dir}; CPU threads {args.cpu_threads}"
        + (f"; GPU {gpu_name}" if gpu_name else "")
    )
    print(f"CPU decode to 224x224: {decode_rate:,.0f} photos/s; colour histogram: {colour_rate:,.0f} photos/s")

    rows, reference = [], {}
    cpu_side = 1.0 / decode_rate + 1.0 / colour_rate  # seconds per photo spent on the CPU parts
    for device in devices:
        embedder = ImageEmbedder(device=device)
        for precision in ["fp32", "bf16"] if device == "cuda" else ["fp32"]:
            for batch in batches:
                if device == "cpu" and batch > 128:
                    continue  # CPU throughput is flat beyond 128; not worth the minutes
                rate, feats = time_cnn(embedder, pixels, batch, bf16=precision == "bf16")
                reference.setdefault((device, precision), feats)
                rows.append(
                    {
                        "device": device,
                        "precision": precision,
                        "batch": batch,
                        "cnn_images_per_s": rate,
                        "index_images_per_s": 1.0 / (1.0 / rate + cpu_side),
                    }
                )
    agreement = None
    if ("cpu", "fp32") in reference and ("cuda", "fp32") in reference:
        n = min(len(reference[("cpu", "fp32")]), len(reference[("cuda", "fp32")]))
        cos = np.sum(reference[("cpu", "fp32")][:n] * reference[("cuda", "fp32")][:n], axis=1)
        agreement = {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}

    header = f"{'device':<6} {'precision':<9} {'batch':>5} {'CNN images/s':>13} {'index step images/s':>20}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['device']:<6} {r['precision']:<9} {r['batch']:>5} {r['cnn_images_per_s']:>13,.0f} "
            f"{r['index_images_per_s']:>20,.0f}"
        )
    if agreement:
        print(
            f"CPU vs GPU fp32 embeddings of the same photos: cosine min {agreement['min_cosine']:.6f}, "
            f"mean {agreement['mean_cosine']:.6f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "torch": torch.__version__,
                    "gpu": gpu_name,
                    "images": len(pixels),
                    "cpu_threads": args.cpu_threads,
                    "decode_photos_per_s": decode_rate,
                    "colour_photos_per_s": colour_rate,
                    "rows": rows,
                    "cpu_gpu_agreement": agreement,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
