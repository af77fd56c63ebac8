"""Threads started from compiled code: numba's parallel layer, where it is safe to use.

:func:`._numeric.run_tasks` starts a kernel's threads in one of two ways:

* **native**: a ``parallel=True`` launcher compiled beside the kernel (for
  example :func:`.flash.flash_parallel`) runs ``prange(threads)`` copies of
  the task-claiming kernel on numba's own thread pool. The hand-off costs a
  few microseconds, because the pool's threads wait in compiled code;
* **pool**: a Python ``ThreadPoolExecutor`` whose threads call the ``nogil``
  kernel. Each helper must take the GIL to make the call, so a hand-off costs
  tens of microseconds.

Measured on this project's 2-core machine (AMD EPYC, numba 0.68, ``omp``
layer), one round trip through two threads doing nothing: native 3.5 us,
pool 50 us. A decode step that reads 16 MB of keys and values (float32,
B*H = 8, Lk = 4096) took 214 us native against 387 us with the pool
(torch SDPA: 239 us); see ``make bench``.

The native way is used only when numba's threading layer is one that numba
documents as thread-safe, ``omp`` or ``tbb``: its ``workqueue`` layer
aborts the process when two threads launch at once, and a program may call
the kernels from several threads. It is also switched off in a process
forked from one that may have used it: GNU OpenMP does not survive a fork,
and numba terminates a child that launches a parallel region after its
parent did. Such a process falls back to the pool, which
:func:`._numeric._forget_pool_in_child` makes safe. And it waits for torch,
where torch is installed: see :func:`native_threads`.
``TT_FAST_THREADS=pool`` chooses the pool throughout, ``native`` the native
way without waiting for torch (read at each call until the choice is made).

References
----------
numba documentation, "The Threading Layers" (which layers are thread-safe
and fork-safe; GNU OpenMP is not fork-safe). pytorch/pytorch issue 98836,
"PyTorch's packaged libgomp causes significant performance penalties on CPU
when used together with other Python packages" (the order in which modules
load their OpenMP runtimes changes torch's threading).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading

import numpy as np
from numba import njit, prange

__all__ = ["native_threads", "describe"]

#: The layers that numba documents as safe to launch from several threads.
_THREAD_SAFE_LAYERS = ("omp", "tbb")

_STATE = {"native": None, "why": "", "torch": None}   # native: None until decided
_LOCK = threading.Lock()


@njit(parallel=True, cache=True)
def _probe(n):
    out = np.zeros(n)
    for r in prange(n):
        out[r] = r
    return out


def _choice() -> str:
    """``TT_FAST_THREADS``: ``auto`` (the default), ``native`` or ``pool``."""
    raw = os.environ.get("TT_FAST_THREADS", "auto")
    choice = raw.strip().lower()
    if choice not in ("auto", "native", "pool"):
        raise ValueError(f"TT_FAST_THREADS: expected 'auto', 'native' or 'pool', got {raw!r}")
    return choice


def _torch_pending() -> bool:
    """Whether torch is installed but not imported yet (found once, then a dict lookup)."""
    if "torch" in sys.modules:
        return False
    if _STATE["torch"] is None:
        try:
            _STATE["torch"] = importlib.util.find_spec("torch") is not None
        except (ImportError, ValueError):
            _STATE["torch"] = False
    return _STATE["torch"]


def native_threads() -> bool:
    """Whether kernels with a compiled launcher start their threads natively.

    Decided at the first call that may start them, then kept: True when
    numba's threading layer is thread-safe (``omp`` or ``tbb``; a trivial
    parallel loop is launched once so that numba loads it) and
    ``TT_FAST_THREADS`` is not ``pool``. Always False in a process forked after
    the module was imported. Under ``TT_FAST_THREADS=auto`` (the default), while
    torch is installed but not imported, the answer is False and nothing is
    decided: numba's GNU OpenMP runtime, started first, would be shared by the
    torch imported later, whose CPU kernels then ran 4-5 times slower
    (measured: SDPA, L = 2048, 2 threads, 53 ms against 244-285 ms); with
    torch imported first each keeps its own runtime and neither slows down.
    ``TT_FAST_THREADS=native`` launches natively regardless.
    """
    state = _STATE["native"]
    if state is not None:
        return state
    choice = _choice()
    if choice == "auto" and _torch_pending():
        return False
    with _LOCK:
        if _STATE["native"] is None:
            native, why = False, "TT_FAST_THREADS=pool"
            if choice != "pool":
                import numba

                _probe(1)                             # loads the threading layer
                layer = numba.threading_layer()
                native = layer in _THREAD_SAFE_LAYERS
                why = f"numba {layer} layer" + ("" if native else ", not thread-safe")
            _STATE["native"], _STATE["why"] = native, why
    return _STATE["native"]


def describe() -> str:
    """How parallel calls start their threads now, for a benchmark's environment.

    ``"native (numba omp layer)"``, or ``"pool"`` with the reason in brackets.
    """
    if native_threads():
        return f"native ({_STATE['why']})"
    if _STATE["native"] is None:
        return "pool (torch is installed but not imported yet)"
    return f"pool ({_STATE['why']})"


def _pool_in_child() -> None:
    """After ``fork``: never launch natively (GNU OpenMP is not fork-safe)."""
    global _LOCK
    _STATE["native"], _STATE["why"] = False, "forked process"
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):                  # POSIX; Windows cannot fork
    os.register_at_fork(after_in_child=_pool_in_child)
