"""Which allocator Arrow uses during a sync.

pyarrow's default pool on Linux is mimalloc, which keeps freed pages per thread: a sync's
threads (prefetch, pages in flight, streams, sources) each hold some, and a 200,000-record sync
peaked at ~225 MB with it against ~177 MB with the system allocator, in the same time
(docs/performance.md). kpihub switches to the system pool for its syncs unless the user chose a
pool with Arrow's own ``ARROW_DEFAULT_MEMORY_POOL`` variable; buffers already allocated keep
the pool they came from, so switching is safe at any time.
"""

from __future__ import annotations

import os

import pyarrow as pa


def use_system_pool() -> None:
    """Make the system allocator Arrow's default, unless ``ARROW_DEFAULT_MEMORY_POOL`` is set."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    if pa.default_memory_pool().backend_name == "mimalloc":
        pa.set_memory_pool(pa.system_memory_pool())
