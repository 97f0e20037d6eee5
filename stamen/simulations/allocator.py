"""Keep freed memory in the process, so that a round's large buffers are not faulted in anew.

Every round of a simulation allocates the same large buffers and frees them: each client's
packed reply (4.8 MB for the bucketing CNN), the server's ``(n, d)`` update matrix (120 MB
at n = 25), the attack's, the rules' and ``vmap``'s temporaries. glibc serves blocks over
its mmap threshold (at most 32 MB by default) with fresh ``mmap`` pages and returns freed
memory at the top of the heap to the system above its trim threshold, so each round pays a
page fault per 4 KB page again. Raising both thresholds keeps those pages in the process
for the next round (``benchmarks/allocator.py``; ``benchmarks/throughput.py`` for whole
rounds). The cost is a resident size that stays at its peak, which a simulation process
reaches every round anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger("stamen")

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
# Blocks below the mmap threshold come from the heap and are reused; a glibc that refuses
# the first value (it may cap the threshold at 32 MB) takes the second.
MMAP_THRESHOLDS = (512 * 2**20, 32 * 2**20)
TRIM_THRESHOLD = 1024 * 2**20  # free memory kept at the heap's top before it is returned


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False (and nothing done)
    where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl) or no libc found
        logger.debug("no glibc mallopt: freed memory is returned to the system as usual")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mmap_set = any(mallopt(_M_MMAP_THRESHOLD, value) for value in MMAP_THRESHOLDS)
    return mmap_set and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
