"""The one thread pool of the kernels: how many threads a large call uses, and how its rows are split into tasks.

Every kernel entry point runs its rows through `run_rows`; nothing else in the kernels starts threads. The core
never reads the environment: `set_threads` is called with the GAMEREC_THREADS setting by whoever starts the process
(`gamerec_assets.settings.ThreadSettings.apply`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# Below this many rows a call runs on the calling thread only.
PARALLEL_MIN_ROWS = 256
# Tasks per thread: more tasks balance uneven rows (popular items) at the cost of one accumulator each.
TASKS_PER_THREAD = 8


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_threads: int | None = None  # None: every core; set by the caller's settings through set_threads


def set_threads(threads: int | None) -> None:
    """How many threads large calls use from now on: None for every core, values below 1 mean 1.

    The core never reads the environment: the Dagster definitions, the scale location and the API apply the
    GAMEREC_THREADS setting (`gamerec_assets.settings.ThreadSettings.apply`) when they start.
    """
    global _threads
    _threads = None if threads is None else max(1, int(threads))


def thread_count() -> int:
    """Threads for large calls: what `set_threads` chose, default all the cores this process may use."""
    return _cores() if _threads is None else _threads


def run_rows(
    n_rows: int, task: Callable[[int, int, int], None], interleave: bool = False, threads: int | None = None
) -> None:
    """Call task(lo, hi, step) over row sets covering range(n_rows): once on this thread for small calls, else as
    TASKS_PER_THREAD tasks per thread (contiguous ranges, or rows dealt round-robin when `interleave`)."""
    threads = (thread_count() if threads is None else max(1, threads)) if n_rows >= PARALLEL_MIN_ROWS else 1
    if threads == 1:
        task(0, n_rows, 1)
        return
    n_tasks = min(n_rows, threads * TASKS_PER_THREAD)
    if interleave:
        parts = [(c, n_rows, n_tasks) for c in range(n_tasks)]
    else:
        per = -(-n_rows // n_tasks)
        parts = [(lo, min(lo + per, n_rows), 1) for lo in range(0, n_rows, per)]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gamerec-kernel") as pool:
        for future in [pool.submit(task, *p) for p in parts]:
            future.result()
