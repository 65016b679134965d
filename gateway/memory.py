"""Keep a long-running gateway's memory flat under large, short-lived buffers.

Upload parts are multi-megabyte buffers allocated and freed on many threads.
glibc raises its mmap threshold after the first such free, after which parts
come from per-thread arenas that are rarely given back, so RSS creeps up with
the number of threads that ever held a part. Pinning the threshold at 1 MiB
keeps every part in its own mapping, returned to the OS when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def tune_allocator(mmap_threshold: int = 1 << 20, arena_max: int = 4) -> bool:
    """Best effort: True if glibc accepted the settings (no-op elsewhere)."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    return bool(mallopt(M_ARENA_MAX, arena_max) == 1 and ok)
