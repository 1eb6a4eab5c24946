"""Which allocator Arrow uses during a sync, and how many heaps glibc's malloc keeps for it.

pyarrow's default pool on Linux is mimalloc, which keeps freed pages per thread: a sync's
threads (prefetch, pages in flight, streams, sources) each hold some, and a 200,000-record sync
peaked at ~225 MB with it against ~177 MB with the system allocator, in the same time
(docs/performance.md). kpihub switches to the system pool for its syncs unless the user chose a
pool with Arrow's own ``ARROW_DEFAULT_MEMORY_POOL`` variable; buffers already allocated keep
the pool they came from, so switching is safe at any time.

glibc's malloc (the system pool's, and Python's for large objects) gives threads that contend for
it arenas of their own, up to 8 per core, and memory freed in one arena serves only that arena:
a 2,000,000-record HTTP sync peaked at 432 MB with the default against 233 MB with two arenas
(``MALLOC_ARENA_MAX=2``), memory that grew with the records. kpihub caps the arenas at
:data:`MALLOC_ARENAS` for its syncs unless ``MALLOC_ARENA_MAX`` is set. A sync's threads spend
their time under the GIL or in I/O, so they rarely contend for malloc.
"""

from __future__ import annotations

import ctypes
import os
import sys

import pyarrow as pa

#: malloc arenas a syncing process keeps (glibc; ``MALLOC_ARENA_MAX`` overrides).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def use_system_pool() -> None:
    """Make the system allocator Arrow's default, unless ``ARROW_DEFAULT_MEMORY_POOL`` is set."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    if pa.default_memory_pool().backend_name == "mimalloc":
        pa.set_memory_pool(pa.system_memory_pool())


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` unless ``MALLOC_ARENA_MAX`` is set; True when capped.

    Takes effect for arenas made after the call (glibc sizes its limit when it first needs more than
    eight), so it is called before a sync starts its threads; a no-op off glibc.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no mallopt: not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_ARENA_MAX, arenas) == 1
