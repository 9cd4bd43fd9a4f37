"""Compiled (numba) kernels of the recommendation core: item-item top-K, scoring (batch, and one history for the
API's request path), row top-n, simulated draws.

Every kernel works on raw CSR/CSC arrays, one output row at a time with an accumulator (dense; or, for one short
history, its sorted entries), and selects the top entries with a bounded heap under one total order: value
descending, then column index ascending. The selected set does not depend on the order candidates are visited in,
and ties break to the lower index exactly as the numpy reference code did (`lexsort((indices, -values, rows))`).

Modules, by concern
-------------------
``kernel_threads``   the one thread pool every large call runs on (`set_threads`, `thread_count`, `run_rows`)
``bounded_heap``     the bounded heap and selection shared by every kernel (one total order)
``item_neighbours``  item-item top-K: rows of XᵀX (`item_topk_rows`)
``user_scoring``     batch scoring of user rows against a similarity matrix (`recommend_rows`)
``history_scoring``  one history, with the history items that explain each result (`recommend_history`)
``row_topn``         top-n of the stored entries of each CSR row (`csr_rows_topn`)
``fold_in``          MF histories folded into ALS user vectors, batch or one request (`fold_in_rows`)
``weighted_draws``   simulated play logs: weighted draws without replacement (`simulate_select`, `weighted_select`)

Threads
-------
``set_threads(n)`` sets how many threads a large call uses (default, or ``None``: every core this process may run
on); it takes effect at the next call, and values below 1 mean 1. The core does not read the environment: the
Dagster definitions, the scale location and the API apply the ``GAMEREC_THREADS`` setting at start. The kernels are
compiled with ``nogil=True`` and a large call splits its rows into tasks run by that many Python threads, each
task with its own accumulator, so both cores work without numba's threading layer (no OpenMP/TBB dependency, safe
to fork, safe to call from several threads of a web server). When several processes share a machine (Dagster's
multiprocess executor running one item block per process) give each ``GAMEREC_THREADS=1``. Small calls (fewer
than ``PARALLEL_MIN_ROWS`` rows, e.g. a single API request) run on the calling thread with the GIL released.

Results never depend on the thread count: rows are independent and each row is summed in a fixed order.

The numba runtime is initialised when this package is imported (about 0.4 s, once per process) rather than on
the first call, so neither the first fit nor the first API request pays it, and processes forked from a server
that imported the project (Dagster's forkserver preload) inherit it. Compilation is cached on disk
(``cache=True``: ``__pycache__`` next to each module, or ``NUMBA_CACHE_DIR``). The first call on a new machine
compiles each kernel for the argument types it sees (one to three seconds each); later processes load the machine
code in about 10 ms. numba invalidates a kernel's cache when the kernel's own file changes, not when a helper it
calls from another module does: after editing ``bounded_heap.py``, delete the ``*.nbi``/``*.nbc`` files under
this package's ``__pycache__`` (or touch the kernel modules).
"""

from __future__ import annotations

from typing import Any

# The names of the former single module stay importable from here (the constants with `as`: public, outside
# `__all__`).
from gamerec_assets.recsys.kernels import kernel_threads
from gamerec_assets.recsys.kernels.history_scoring import DENSE_HISTORY_RATIO as DENSE_HISTORY_RATIO
from gamerec_assets.recsys.kernels.history_scoring import recommend_history
from gamerec_assets.recsys.kernels.item_neighbours import DENSE_SCAN_RATIO as DENSE_SCAN_RATIO
from gamerec_assets.recsys.kernels.item_neighbours import PREFETCH_OFFSETS as PREFETCH_OFFSETS
from gamerec_assets.recsys.kernels.item_neighbours import PREFETCH_ROWS as PREFETCH_ROWS
from gamerec_assets.recsys.kernels.item_neighbours import item_topk_rows
from gamerec_assets.recsys.kernels.kernel_threads import PARALLEL_MIN_ROWS, set_threads, thread_count
from gamerec_assets.recsys.kernels.kernel_threads import TASKS_PER_THREAD as TASKS_PER_THREAD
from gamerec_assets.recsys.kernels.kernel_threads import _cores as _cores
from gamerec_assets.recsys.kernels.row_topn import csr_rows_topn
from gamerec_assets.recsys.kernels.user_scoring import recommend_rows
from gamerec_assets.recsys.kernels.weighted_draws import simulate_select, weighted_select

__all__ = [
    "PARALLEL_MIN_ROWS",
    "csr_rows_topn",
    "item_topk_rows",
    "recommend_history",
    "recommend_rows",
    "set_threads",
    "simulate_select",
    "thread_count",
    "weighted_select",
]


def _initialise_numba() -> None:
    """Load numba's typing and lowering registries now (what its first dispatch would do)."""
    from numba.core.registry import cpu_target

    cpu_target.typing_context.refresh()
    cpu_target.target_context.refresh()


_initialise_numba()


def __getattr__(name: str) -> Any:
    """`kernels._threads`: the live setting, read where it lives (`kernel_threads`); a copy here would go stale."""
    if name == "_threads":
        return kernel_threads._threads
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
