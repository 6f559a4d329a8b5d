"""The process's own memory, for progress lines of the long offline stages."""

from __future__ import annotations

import ctypes
import gc
import resource
import sys


def memory_note() -> str:
    """``"rss 3.1 GiB, peak 4.0 GiB"``: resident set now and the process's maximum so far (Linux)."""
    try:
        with open("/proc/self/statm") as f:
            now = int(f.read().split()[1]) * resource.getpagesize() / 2**30
    except OSError:  # not Linux: the peak alone
        return f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB"
    return f"rss {now:.1f} GiB, peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB"


def release_free_memory() -> None:
    """Give what the process has freed back to the system, between the big steps of a stage.

    NumPy arrays under glibc's dynamic mmap threshold (up to 32 MB) live on the malloc heap,
    arrow keeps its own pool, and both hold freed pages: after the ranker's candidates (a
    Kaggle-scale week, two threads) that was GBs of resident set the next step's peak stood on.
    """
    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except Exception:  # an allocator without the call: nothing to give back
        pass
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # another C library (musl): no malloc_trim
            pass
