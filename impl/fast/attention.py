"""Accelerated attention: fused, tiled scaled dot-product attention in numba.

Mirrors :mod:`transformer_theory.impl.sdpa` function by function (softmax,
scaled dot-product attention and its weights), with
the same signatures, the same validation (the validators of
:mod:`transformer_theory.impl.contract` run first, in the reference's order,
so bad input raises exactly the reference's error before any compiled code is
entered) and the same semantics: boolean masks (True = may attend),
``causal=True`` (top-left) and ``causal="bottom-right"``, an explicit
``scale``, an additive ``bias``, fully masked rows -> zeros, non-finite keys
allowed only where no query may attend (they are zeroed before the kernel,
which multiplies whole key blocks), float32 and float64 (outputs keep the
input dtype).

The kernel (FlashAttention)
---------------------------
Scores are never materialised as an ``Lq x Lk`` matrix. Queries are cut into
blocks of ``block_q`` rows; every (batch*head, query block) pair is one task of
a parallel loop. A task walks over key blocks of ``block_k`` columns and keeps,
per query row ``i``, the running maximum ``m_i`` of its logits, the running sum
``l_i`` of ``exp(logit - m_i)`` and the unnormalised output ``acc_i``. A new key
block with scores ``S`` (one ``np.dot`` on contiguous blocks) updates them by
the online-softmax recurrence

.. math::  m_i' = \\max(m_i, \\max_j S_{ij}), \\quad
           P_{ij} = e^{S_{ij} - m_i'}, \\quad
           l_i' = e^{m_i - m_i'} l_i + \\textstyle\\sum_j P_{ij}, \\quad
           acc_i' = e^{m_i - m_i'} acc_i + (P V)_i,

and the output row is ``acc_i / l_i`` (zeros when no key was visible). Under
``causal`` the key blocks past the diagonal are skipped, so causal attention
costs about half. Memory per task is ``O(block_q * (block_k + Ev))``.

Grouped-query attention indexes the kv head ``n // (H / G)`` of query head
``n`` inside the kernel: keys and values are never copied per query head.
:mod:`.heads` (multi-head, grouped-query, cross-attention) and
:mod:`.kv_cache` (decoding) call the kernel through :func:`run_attention`,
with :func:`as_slabs` and :func:`scores_may_overflow`.

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.2.1-3.2.3.
Dao, Fu, Ermon, Rudra & Ré 2022, FlashAttention: Fast and Memory-Efficient
Exact Attention with IO-Awareness, §3.1 (Algorithm 1: tiling and the online
softmax); Dao 2023, FlashAttention-2, §3.1 (parallelism over the query blocks,
the bottom-right causal alignment).
Milakov & Gimelshein 2018, Online normalizer calculation for softmax, §3 (the
running max and sum recurrence).
Ainslie et al. 2023, GQA, §2 (the kv head of a query head).
Seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt): attention as a soft
dictionary look-up.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import sdpa as reference
from ..contract.validate import (
    as_bool_mask,
    as_float_array,
    causal_alignment,
    check_bias,
    check_finite_where_attended,
    check_qkv,
    common_float_dtype,
    normalize_axis,
    resolve_scale,
)
from ._numeric import (
    JIT,
    JIT_INLINE,
    as_kernel_array,
    fast_exp_nonpositive,
    fmax,
    matmul,
    matmul_nt,
    num_threads,
    prefer_wide_vectors,
    run_tasks,
    single_threaded_blas,
    typed,
)

__all__ = [
    "softmax",
    "attention",
    "attention_weights",
    "BLOCK_Q",
    "BLOCK_K",
    "as_slabs",
    "scores_may_overflow",
    "run_attention",
    "online_softmax_row",
]

#: Query rows per task of the attention kernel.
BLOCK_Q = 256
#: Key columns per step of the online softmax (the score block is BLOCK_Q x BLOCK_K).
BLOCK_K = 512
#: Smallest query block used when blocks are shrunk to give every thread work.
_MIN_BLOCK_Q = 32

# ``attention_weights`` returns the Lq x Lk matrix itself, so there is nothing
# to fuse: the fast path uses the reference.
attention_weights = reference.attention_weights


# ---------------------------------------------------------------------------
# Softmax
# ---------------------------------------------------------------------------

@njit(**JIT)
def _softmax_tasks(x, first, stride, out):
    """Softmax of rows ``first, first + stride, ...`` of x (N, n) into out.

    Max-subtracted; ``-inf`` entries give 0 and an all ``-inf`` row gives zeros,
    as the reference's ``softmax_unchecked``.
    """
    prefer_wide_vectors()
    zero = typed(x, 0.0)
    neg_inf = typed(x, -np.inf)
    for i in range(first, x.shape[0], stride):
        row, p = x[i], out[i]
        m = neg_inf
        for j in range(row.shape[0]):
            m = fmax(m, row[j])
        if m == neg_inf:                                 # fully masked row
            m = zero
        for j in range(row.shape[0]):
            p[j] = fast_exp_nonpositive(row[j] - m)      # every entry in [0, 1]
        total = zero
        for j in range(row.shape[0]):
            total += p[j]
        if total == zero:
            total = typed(x, 1.0)
        for j in range(row.shape[0]):
            p[j] = p[j] / total


def softmax(x, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``, one row per task.

    Same contract as :func:`transformer_theory.impl.sdpa.softmax`: the
    row maximum is subtracted first, ``-inf`` entries get probability 0, an
    all ``-inf`` row gives zeros; ``NaN`` and ``+inf`` are refused.

    Parameters
    ----------
    x : array_like, float32 or float64, at least 1-d
    axis : int

    Returns
    -------
    np.ndarray
        Same shape and dtype as ``x``.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.1; seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt).
    """
    arr = as_float_array(x, "x", ndim_min=1, finite=False)
    if np.any(np.isnan(arr)) or np.any(np.isposinf(arr)):
        raise ValueError("x: contains NaN or +inf values (only -inf, for masked logits, is allowed)")
    ax = normalize_axis(axis, arr.ndim)
    moved = np.moveaxis(arr, ax, -1)                               # (..., n)
    n = moved.shape[-1]
    rows = as_kernel_array(moved.reshape((math.prod(moved.shape[:-1]), n)), arr.dtype)  # (N, n)
    out = np.empty_like(rows)
    run_tasks(lambda first, stride: _softmax_tasks(rows, first, stride, out),
              rows.shape[0], 20.0 * rows.size)
    return np.moveaxis(out.reshape(moved.shape), -1, ax)


# ---------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------

@njit(**JIT_INLINE)
def online_softmax_row(row, visible, step, i, m, l, acc):
    """Fold one row of a score block into the online softmax of query ``i``.

    Parameters
    ----------
    row : ndarray, (bk,)
        The block's scores of query ``i``; the logits are ``step * row[j]``
        for ``j < visible`` (the rest is hidden). Overwritten with
        ``P = exp(logit - m')`` (0 where hidden, all 0 if nothing is visible).
    visible : int
        Number of visible keys at the start of the row.
    step : float32 or float64
        Factor from the stored scores to the logits (the softmax scale, or 1
        when the row already holds the logits).
    i : int
        The query's row in ``m``, ``l`` and ``acc``.
    m, l : ndarray, (bq,)
        Running max of the logits and running sum of ``exp(logit - m)``;
        entry ``i`` is updated.
    acc : ndarray, (bq, Ev)
        Unnormalised output; row ``i`` is rescaled to the new max (the
        caller adds ``P V`` of the block).

    References
    ----------
    Milakov & Gimelshein 2018, Online normalizer calculation for softmax;
    Dao et al. 2022, FlashAttention, Algorithm 1.
    """
    one = typed(step, 1.0)
    zero = typed(step, 0.0)
    neg_inf = typed(step, -np.inf)
    row_max = neg_inf
    for j in range(visible):
        row_max = fmax(row_max, row[j])
    if row_max == neg_inf:                               # nothing visible in this block
        for j in range(row.shape[0]):
            row[j] = zero
        return
    m_new = fmax(m[i], step * row_max)
    correction = fast_exp_nonpositive(m[i] - m_new)      # 0 on the first visible block
    total = zero
    for j in range(visible):                             # P = exp(logit - m'), and its sum
        p = fast_exp_nonpositive(step * row[j] - m_new)
        row[j] = p
        total += p
    for j in range(visible, row.shape[0]):
        row[j] = zero
    l[i] = l[i] * correction + total
    m[i] = m_new
    if correction != one:
        for e in range(acc.shape[1]):
            acc[i, e] *= correction


@njit(**JIT_INLINE)
def _attend_query_block(q_blk, k_n, v_n, lk, scale, causal, offset, row0,
                        mask_n, use_mask, bias_n, use_bias, block_k, m, l, acc, pv, s_buf,
                        out_blk):
    """Online-softmax attention of one block of queries over keys ``[0, lk)``.

    q_blk (bq, E), k_n (>= lk, E), v_n (>= lk, Ev), out_blk (bq, Ev); query
    ``row0 + i`` may see key ``j`` iff ``j <= row0 + i + offset`` (if causal)
    and ``mask_n[row, j]``; ``bias_n[row, j]`` is added to its logit. ``mask_n``
    and ``bias_n`` have 1 row (shared by all queries) or one per query.
    ``m``, ``l`` (>= bq,), ``acc``, ``pv`` (>= bq, Ev) and ``s_buf``
    (>= bq * block_k,) are the caller's work buffers (allocated once per thread).
    """
    prefer_wide_vectors()
    bq = q_blk.shape[0]
    ev = v_n.shape[1]
    one = typed(scale, 1.0)
    zero = typed(scale, 0.0)
    neg_inf = typed(scale, -np.inf)
    m = m[:bq]                                           # (bq,) running max of the logits
    l = l[:bq]                                           # (bq,) running sum of exp(logit - m)
    acc = acc[:bq]                                       # (bq, Ev) unnormalised output
    pv = pv[:bq]                                         # (bq, Ev) P V of one key block
    m[:] = neg_inf
    l[:] = zero
    acc[:, :] = zero
    key_end = lk
    if causal:                                           # the last row sees keys < row0+bq+offset
        key_end = min(lk, max(0, row0 + bq + offset))
    for j0 in range(0, key_end, block_k):
        j1 = min(j0 + block_k, key_end)
        bk = j1 - j0
        s = s_buf[:bq * bk].reshape((bq, bk))            # (bq, bk)
        matmul_nt(q_blk, k_n[j0:j1], s)                  # raw scores q . k
        for i in range(bq):
            row = s[i]
            visible = bk
            if causal:
                visible = min(bk, max(0, row0 + i + offset - j0 + 1))
            step = scale                                 # logit = step * row[j]
            if use_mask or use_bias:                     # write the logits themselves
                r = row0 + i
                if use_bias:
                    b_row = bias_n[r if bias_n.shape[0] > 1 else 0]
                    for j in range(visible):
                        row[j] = scale * row[j] + b_row[j0 + j]
                else:
                    for j in range(visible):
                        row[j] = scale * row[j]
                if use_mask:
                    m_row = mask_n[r if mask_n.shape[0] > 1 else 0]
                    for j in range(visible):
                        if not m_row[j0 + j]:
                            row[j] = neg_inf
                step = one
            online_softmax_row(row, visible, step, i, m, l, acc)
        matmul(s, v_n[j0:j1], pv)                        # (bq, Ev)
        for i in range(bq):
            for e in range(ev):
                acc[i, e] += pv[i, e]
    for i in range(bq):
        if l[i] > zero:
            inv = one / l[i]
            for e in range(ev):
                out_blk[i, e] = acc[i, e] * inv
        else:                                            # fully masked row -> zeros
            for e in range(ev):
                out_blk[i, e] = zero


@njit(**JIT)
def _flash_tasks(q, k, v, lk, group, scale, causal, offset, mask, mask_index, use_mask,
                 bias, bias_index, use_bias, block_q, block_k, order, first, stride, out):
    """Tasks ``order[first], order[first + stride], ...`` of attention of q (N, Lq, E).

    Task ``t`` is the (query slab ``n = t // n_blocks``, query block
    ``t % n_blocks``) pair; slab ``n`` reads kv slab ``n // group`` (grouped-query
    attention: K/V are indexed, never copied), mask slab ``mask_index[n]`` and
    bias slab ``bias_index[n]``, over the first ``lk`` keys. Writes out (N, Lq, Ev).
    """
    n_slabs, lq, _ = q.shape
    ev = v.shape[2]
    n_blocks = (lq + block_q - 1) // block_q
    m = np.empty(block_q, dtype=q.dtype)                 # work buffers of this thread
    l = np.empty(block_q, dtype=q.dtype)
    acc = np.empty((block_q, ev), dtype=q.dtype)
    pv = np.empty((block_q, ev), dtype=q.dtype)
    s_buf = np.empty(block_q * block_k, dtype=q.dtype)
    for position in range(first, n_slabs * n_blocks, stride):
        task = order[position]
        n = task // n_blocks
        i0 = (task % n_blocks) * block_q
        i1 = min(i0 + block_q, lq)
        kv = n // group
        _attend_query_block(q[n, i0:i1], k[kv], v[kv], lk, scale, causal, offset, i0,
                            mask[mask_index[n]], use_mask, bias[bias_index[n]], use_bias,
                            block_k, m, l, acc, pv, s_buf, out[n, i0:i1])


# ---------------------------------------------------------------------------
# Preparing the kernel arguments
# ---------------------------------------------------------------------------

def as_slabs(arr, lead: tuple, lq: int, lk: int, dtype):
    """A mask or bias broadcastable to ``lead + (lq, lk)`` as kernel slabs.

    Only the array's own leading dims are stored; broadcasting over the others
    is done by ``index``, so e.g. a causal-style (Lq, Lk) mask shared by all
    heads is stored once.

    Parameters
    ----------
    arr : array_like
        A validated mask (bool) or bias (float), broadcastable to
        ``lead + (lq, lk)``.
    lead : tuple of int
        The leading dims of the queries.
    lq, lk : int
    dtype : numpy dtype
        ``np.bool_`` for a mask, the compute dtype for a bias.

    Returns
    -------
    slabs : np.ndarray, (S, R, lk)
        C-contiguous; ``R`` is 1 (one row shared by every query) or ``lq``.
    index : np.ndarray of int64, (prod(lead),)
        The slab of each flattened leading position.

    References
    ----------
    Dao et al. 2022, FlashAttention, Algorithm 1 (masks read block by block).
    """
    a = np.asarray(arr)
    a = a.reshape((1,) * (len(lead) + 2 - a.ndim) + a.shape)       # rank of the target
    own = a.shape[:-2]                                             # broadcastable to lead
    rows = a.shape[-2]                                             # 1 or lq
    slabs = np.broadcast_to(a, own + (rows, lk)).reshape(-1, rows, lk)
    slabs = as_kernel_array(slabs, dtype)                          # (S, R, lk)
    count = int(np.prod(own, dtype=np.int64))
    index = np.broadcast_to(np.arange(count, dtype=np.int64).reshape(own), lead).ravel()
    return slabs, as_kernel_array(index, np.int64)


def _no_slabs(n: int, dtype):
    """Placeholder (1, 1, 1) slabs and an all-zero index for an absent mask/bias."""
    return np.zeros((1, 1, 1), dtype=dtype), np.zeros(n, dtype=np.int64)


def _block_sizes(n_slabs: int, lq: int, lk: int) -> tuple[int, int]:
    """Query/key block sizes: BLOCK_Q x BLOCK_K, shrunk for small or few problems."""
    block_q = max(1, min(BLOCK_Q, lq))
    threads = num_threads()
    while block_q > _MIN_BLOCK_Q and n_slabs * -(-lq // block_q) < 2 * threads:
        block_q //= 2                                  # more tasks than threads
    block_k = max(1, min(BLOCK_K, lk))
    return block_q, block_k


def _task_order(n_slabs: int, n_blocks: int, causal: bool, threads: int) -> np.ndarray:
    """The order in which the threads take the (slab, query block) tasks.

    Thread ``r`` of ``T`` takes positions ``r, r + T, ...``. Without a causal
    mask all tasks cost the same and the order is the natural one. With it, a
    task's cost grows with its query block; tasks are then sorted by cost and
    dealt out in a snake (``0..T-1``, then ``T-1..0``, ...), so that every
    thread gets an equal share of heavy and light blocks.
    """
    tasks = np.arange(n_slabs * n_blocks, dtype=np.int64)
    if not causal or threads <= 1:
        return tasks
    by_cost = tasks.reshape(n_slabs, n_blocks)[:, ::-1].T.ravel()      # heaviest blocks first
    order = by_cost.copy()
    full = len(order) // threads * threads
    rounds = order[:full].reshape(-1, threads)
    rounds[1::2] = rounds[1::2, ::-1]                                   # snake
    order[:full] = rounds.ravel()
    return order


def scores_may_overflow(q, k, scale: float, bias, dtype) -> bool:
    """Whether some logit ``scale q.k + bias`` could overflow ``dtype``.

    By Cauchy-Schwarz ``|q_i . k_j| <= |q_i| |k_j|``, and every partial sum of the
    dot product obeys the same bound, so below the threshold neither the block
    products nor the logits can overflow. Above it the reference is used, which
    raises its overflow error (or computes the result when the bound was loose).
    The squared norms are summed in the input dtype (no float64 copy of q or k);
    if they overflow, the bound is inf and the check errs on the safe side.

    Parameters
    ----------
    q : np.ndarray, (..., Lq, E)
    k : np.ndarray, (..., Lk, E)
    scale : float
    bias : np.ndarray or None
    dtype : numpy dtype
        The compute dtype.

    Returns
    -------
    bool

    References
    ----------
    Cauchy-Schwarz inequality; Dao et al. 2022, FlashAttention, §3.1 (the
    scores are never formed, so their range is bounded beforehand).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        qn = math.sqrt(float(np.max(np.einsum("...e,...e->...", q, q), initial=0.0)))
        kn = math.sqrt(float(np.max(np.einsum("...e,...e->...", k, k), initial=0.0)))
        bound = scale * qn * kn
        if bias is not None and bias.size:
            bound += float(np.max(np.abs(bias)))
    return not bound < np.finfo(dtype).max / 8


def run_attention(q3, k3, v3, lk, group, scale, align, mask_slabs, bias_slabs, dtype):
    """Call the fused kernel on prepared, validated ``(N, L, .)`` arrays.

    Parameters
    ----------
    q3 : np.ndarray, (N, Lq, E)
    k3 : np.ndarray, (N / group, >= lk, E)
    v3 : np.ndarray, (N / group, >= lk, Ev)
        Kernel arrays (C-contiguous, ``dtype``); only the first ``lk`` keys
        are read (a KV cache passes its whole buffer).
    lk : int
        Number of keys attended.
    group : int
        Query slabs per kv slab: slab ``n`` reads kv slab ``n // group``.
    scale : float
    align : {None, "top-left", "bottom-right"}
        The causal alignment, None for no causal mask.
    mask_slabs, bias_slabs : tuple or None
        From :func:`as_slabs`.
    dtype : numpy dtype

    Returns
    -------
    np.ndarray, (N, Lq, Ev)

    References
    ----------
    Dao et al. 2022, FlashAttention, Algorithm 1; Dao 2023, FlashAttention-2,
    §3.1 (parallel over the query blocks).
    """
    n_slabs, lq, e = q3.shape
    ev = v3.shape[2]
    out = np.zeros((n_slabs, lq, ev), dtype=dtype)                  # (N, Lq, Ev)
    if out.size == 0:
        return out
    causal = align is not None
    offset = (lk - lq) if align == "bottom-right" else 0
    use_mask = mask_slabs is not None
    use_bias = bias_slabs is not None
    mask, mask_index = mask_slabs if use_mask else _no_slabs(n_slabs, np.bool_)
    bias, bias_index = bias_slabs if use_bias else _no_slabs(n_slabs, dtype)
    block_q, block_k = _block_sizes(n_slabs, lq, lk)
    n_blocks = -(-lq // block_q)
    order = _task_order(n_slabs, n_blocks, causal, min(num_threads(), n_slabs * n_blocks))
    scale = dtype.type(scale)

    def kernel(first, stride):
        _flash_tasks(q3, k3, v3, lk, group, scale, causal, offset, mask, mask_index, use_mask,
                     bias, bias_index, use_bias, block_q, block_k, order, first, stride, out)

    with single_threaded_blas():
        run_tasks(kernel, len(order), 2.0 * n_slabs * lq * lk * (e + ev))
    return out


# ---------------------------------------------------------------------------
# Scaled dot-product attention
# ---------------------------------------------------------------------------

def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None) -> np.ndarray:
    """Scaled dot-product attention ``softmax(scale * q k^T + bias) v``, fused and tiled.

    Same contract as :func:`transformer_theory.impl.sdpa.attention`; the
    ``Lq x Lk`` score matrix is never formed (see the module docstring).

    Parameters
    ----------
    q : array_like, (..., Lq, E)
    k : array_like, (..., Lk, E)
    v : array_like, (..., Lk, Ev)
        Leading dims of ``q``, ``k``, ``v`` must be equal. ``k`` and ``v``
        may hold NaN/inf only at keys no query may attend (zeroed here).
    mask : array_like of bool, optional
        Broadcastable to ``(..., Lq, Lk)``; True = may attend.
    causal : {False, True, "top-left", "bottom-right"}
        ``True`` is top-left aligned; combined with ``mask`` by AND.
    scale : float, optional
        Positive temperature; default ``1/sqrt(E)``.
    bias : array_like, optional
        Additive logit bias broadcastable to ``(..., Lq, Lk)``.

    Returns
    -------
    np.ndarray, (..., Lq, Ev)
        A fully masked query row is zeros. float32 only if every float input
        is float32.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.1 (Eq. 1); Dao et al.
    2022, FlashAttention, Algorithm 1; seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt).
    """
    q_arr, k_arr, v_arr = check_qkv(q, k, v, finite_kv=False)
    lead, lq, lk = q_arr.shape[:-2], q_arr.shape[-2], k_arr.shape[-2]
    scale_value = resolve_scale(scale, q_arr.shape[-1])
    align = causal_alignment(causal)
    if mask is not None:
        as_bool_mask(mask, "mask", lead + (lq, lk))      # validated; the slabs broadcast it
    bias_arr = check_bias(bias, lead + (lq, lk))
    k_arr, v_arr = check_finite_where_attended([("k", k_arr), ("v", v_arr)], mask, causal,
                                               lead, lq)
    dtype = common_float_dtype(*(a for a in (q_arr, k_arr, v_arr, bias_arr) if a is not None))
    if scores_may_overflow(q_arr, k_arr, scale_value, bias_arr, dtype):
        return reference.attention(q_arr, k_arr, v_arr, mask=mask, causal=causal, scale=scale,
                                   bias=bias)
    n, e, ev = math.prod(lead), q_arr.shape[-1], v_arr.shape[-1]
    q3 = as_kernel_array(q_arr.reshape((n, lq, e)), dtype)        # (N, Lq, E)
    k3 = as_kernel_array(k_arr.reshape((n, lk, e)), dtype)        # (N, Lk, E)
    v3 = as_kernel_array(v_arr.reshape((n, lk, ev)), dtype)       # (N, Lk, Ev)
    mask_slabs = None if mask is None else as_slabs(mask, lead, lq, lk, np.bool_)
    bias_slabs = None if bias_arr is None else as_slabs(bias_arr, lead, lq, lk, dtype)
    out = run_attention(q3, k3, v3, lk, 1, scale_value, align, mask_slabs, bias_slabs, dtype)
    return out.reshape(lead + (lq, ev))
