"""Giving freed memory back to the system after a big job.

glibc keeps the heap pages a job freed (model files loaded and dropped, a retrain's data), so a daemon's RSS
creeps up by the fragments: in bench/ml.py's 30-asset, 30-day run +1.4 MB a day without this, +0.25 MB a day
(tapering) with it after each day's work."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc


def release_free_memory() -> bool:
    """Collect garbage, then ask the C library to return free heap pages (glibc's malloc_trim); False
    where the C library has no such call."""
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to trim
        return False
    return True
