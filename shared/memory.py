"""The process's own memory, for progress lines of the long offline stages."""

from __future__ import annotations

import resource


def memory_note() -> str:
    """``"rss 3.1 GiB, peak 4.0 GiB"``: resident set now and the process's maximum so far (Linux)."""
    try:
        with open("/proc/self/statm") as f:
            now = int(f.read().split()[1]) * resource.getpagesize() / 2**30
    except OSError:  # not Linux: the peak alone
        return f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB"
    return f"rss {now:.1f} GiB, peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB"
