"""Data benchmark at Kaggle scale: synthesis, CSV -> parquet, parquet load, statistics.

    python benchmarks/bench_data.py                    # kaggle: 31.8M transactions (a few minutes)
    python benchmarks/bench_data.py --scale medium     # a tenth of it, for a quick check

Each step runs in its own child process, so its peak memory (max RSS, from
``resource.getrusage``) is its own and not the previous step's. Prints one table:
step, seconds, transactions per second, peak RSS. Photos are off by default (``--images``
adds them to the synthesis step).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEPS = ("synthesise", "csv_to_parquet", "parquet_load", "stats")


def run_step(step: str, data_dir: Path, cache_dir: Path, scale: str, seed: int, images: bool) -> dict:
    """Run one step in this process and return its timing (called inside the child)."""
    from pipeline.data_stats import world_stats
    from pipeline.synthetic import generate_world
    from shared.data import load_dataset

    started = time.perf_counter()
    rows = 0
    if step == "synthesise":
        generate_world(data_dir, scale=scale, seed=seed, images=images)
    elif step == "csv_to_parquet":
        shutil.rmtree(cache_dir, ignore_errors=True)
        rows = len(load_dataset(data_dir, cache_dir).transactions)
    elif step == "parquet_load":
        rows = len(load_dataset(data_dir, cache_dir).transactions)
    elif step == "stats":
        ds = load_dataset(data_dir, cache_dir)
        started = time.perf_counter()  # the statistics alone, not the load measured above
        world_stats(ds.transactions, ds.customers, ds.articles)
        rows = len(ds.transactions)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"step": step, "seconds": seconds, "rows": rows, "peak_rss_gib": peak_kib / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="kaggle", choices=["tiny", "small", "medium", "kaggle"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=None, help="Where the world is written (default: temp)")
    parser.add_argument("--images", action="store_true", help="Also render product photos while synthesising")
    parser.add_argument("--keep", action="store_true", help="Keep the generated files")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)  # internal: run one step
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix=f"hm_bench_{args.scale}_"))
    data_dir, cache_dir = work / "data", work / "cache"
    if args.step:
        print(json.dumps(run_step(args.step, data_dir, cache_dir, args.scale, args.seed, args.images)))
        return

    from pipeline.synthetic import get_scale

    spec = get_scale(args.scale)
    n_tx = spec.n_transactions
    print(
        f"scale {args.scale}: {spec.n_articles:,} articles, {spec.n_customers:,} customers, "
        f"{n_tx:,} transactions; work dir {work}",
        flush=True,
    )
    results = []
    try:
        for step in STEPS:
            cmd = [
                sys.executable,
                __file__,
                "--step",
                step,
                "--scale",
                args.scale,
                "--seed",
                str(args.seed),
                "--work-dir",
                str(work),
            ] + (["--images"] if args.images else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            result["rows"] = result["rows"] or n_tx
            results.append(result)
            print(f"  {step}: {result['seconds']:.1f}s", flush=True)
        sizes = {p.name: p.stat().st_size for p in [*data_dir.glob("*.csv"), *cache_dir.glob("*.parquet")]}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'step':<16} {'seconds':>9} {'rows/s':>12} {'peak RSS GiB':>13}")
    for r in results:
        print(f"{r['step']:<16} {r['seconds']:>9.1f} {r['rows'] / r['seconds']:>12,.0f} {r['peak_rss_gib']:>13.2f}")
    print()
    for name, size in sorted(sizes.items()):
        print(f"{name:<28} {size / 2**20:>9.1f} MiB")
    if args.json:
        args.json.write_text(json.dumps({"scale": args.scale, "steps": results, "file_bytes": sizes}, indent=2))


if __name__ == "__main__":
    main()
