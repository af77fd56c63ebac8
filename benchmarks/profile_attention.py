"""Where the time of the fused attention kernel goes (``make bench`` part).

The block loop of ``impl/fast/flash.py`` (``attend_query_block``, no
mask, no bias) with three parts that can be switched off one by one:

* ``scores``  -- the block product ``S = Q_b K_b^T`` (np.dot);
* ``softmax`` -- the row passes: the exp and the sum against the row's
  reference, and the max and the rescaling of the accumulator where the
  reference moves (the kernel's own ``online_softmax_row``, not a copy);
* ``values``  -- the block product ``P V_b`` (np.dot) and the accumulation.

Timing the kernel with one part off gives the cost of that part in context
(same blocks, same caches, same threads). Used by ``bench.py``; run alone with
``python benchmarks/profile_attention.py``.
"""

from __future__ import annotations

import importlib
import time

import numpy as np
from numba import njit

from transformer_theory.impl.fast.attention import BLOCK_K, BLOCK_Q, online_softmax_row
from transformer_theory.impl.fast.flash import fold_row_exact

_numeric = importlib.import_module("transformer_theory.impl.fast._numeric")
typed = _numeric.typed
prefer_wide_vectors = _numeric.prefer_wide_vectors

SCORES, SOFTMAX, VALUES = 1, 2, 4
ALL = SCORES | SOFTMAX | VALUES


@njit(**_numeric.JIT)
def _block(q_blk, k_n, v_n, scale, causal, row0, block_k, parts, out_blk):
    prefer_wide_vectors()
    bq = q_blk.shape[0]
    lk = k_n.shape[0]
    ev = v_n.shape[1]
    one = typed(scale, 1.0)
    zero = typed(scale, 0.0)
    neg_inf = typed(scale, -np.inf)
    m = np.full(bq, neg_inf)
    l = np.zeros(bq, dtype=q_blk.dtype)
    acc = np.zeros((bq, ev), dtype=q_blk.dtype)
    pv = np.empty((bq, ev), dtype=q_blk.dtype)
    s_buf = np.full(bq * block_k, zero)
    key_end = min(lk, row0 + bq) if causal else lk
    for j0 in range(0, key_end, block_k):
        j1 = min(j0 + block_k, key_end)
        bk = j1 - j0
        s = s_buf[:bq * bk].reshape((bq, bk))
        if parts & 1:
            np.dot(q_blk, k_n[j0:j1].T, s)
        if parts & 2:
            for i in range(bq):
                visible = min(bk, max(0, row0 + i - j0 + 1)) if causal else bk
                if not online_softmax_row(s[i], visible, scale, i, m, l, acc):
                    s[i, :visible] = np.dot(k_n[j0:j0 + visible], q_blk[i])   # past the slack
                    fold_row_exact(s[i], visible, scale, i, m, l, acc)
        if parts & 4:
            np.dot(s, v_n[j0:j1], pv)
            for i in range(bq):
                for e in range(ev):
                    acc[i, e] += pv[i, e]
    for i in range(bq):
        inv = one / l[i] if l[i] > zero else zero
        for e in range(ev):
            out_blk[i, e] = acc[i, e] * inv


@njit(**_numeric.JIT)
def _tasks(q, k, v, scale, causal, block_q, block_k, parts, first, stride, out):
    n_slabs, lq, _ = q.shape
    n_blocks = (lq + block_q - 1) // block_q
    for task in range(first, n_slabs * n_blocks, stride):
        n = task // n_blocks
        i0 = (task % n_blocks) * block_q
        i1 = min(i0 + block_q, lq)
        _block(q[n, i0:i1], k[n], v[n], scale, causal, i0, block_k, parts, out[n, i0:i1])


def run(q, k, v, causal, parts=ALL, block_q=BLOCK_Q, block_k=BLOCK_K):
    """The copied kernel on (N, L, d) arrays with only ``parts`` switched on."""
    out = np.zeros((q.shape[0], q.shape[1], v.shape[2]), dtype=q.dtype)
    scale = q.dtype.type(1 / np.sqrt(q.shape[-1]))
    with _numeric.single_threaded_blas():
        _numeric.run_tasks(lambda first, stride: _tasks(q, k, v, scale, causal, block_q, block_k,
                                                        parts, first, stride, out),
                           q.shape[0] * -(-q.shape[1] // block_q), float("inf"))
    return out


def profile(q, k, v, causal, repeats=5, pause=0.3, **blocks) -> dict:
    """Median seconds of the whole kernel and of each part in context.

    The cost of a part is the time of the full kernel minus the time with that
    part switched off. Returns ``{"total", "scores", "softmax", "values",
    "other"}`` in seconds.
    """
    variants = {"all": ALL, "no_scores": ALL & ~SCORES, "no_softmax": ALL & ~SOFTMAX,
                "no_values": ALL & ~VALUES, "none": 0}
    for parts in variants.values():
        run(q, k, v, causal, parts, **blocks)                       # compile / warm up
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, parts in variants.items():
            time.sleep(pause)
            t0 = time.perf_counter()
            run(q, k, v, causal, parts, **blocks)
            times[name].append(time.perf_counter() - t0)
    med = {name: float(np.median(t)) for name, t in times.items()}
    return {
        "total": med["all"],
        "scores": med["all"] - med["no_scores"],
        "softmax": med["all"] - med["no_softmax"],
        "values": med["all"] - med["no_values"],
        "other": med["none"],
    }


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        q, k, v = (rng.standard_normal((8, 4096, 64)).astype(dtype) for _ in range(3))
        for causal in (False, True):
            p = profile(q, k, v, causal, repeats=3)
            print(dtype.__name__, "causal" if causal else "full", {key: round(val, 4) for key, val in p.items()})
