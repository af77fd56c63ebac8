"""Accelerated attention: fused, tiled scaled dot-product attention in numba.

Mirrors :mod:`transformer_theory.impl.attention` function by function, with
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

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.2.1-3.2.3.
Dao, Fu, Ermon, Rudra & Ré 2022, FlashAttention: Fast and Memory-Efficient
Exact Attention with IO-Awareness, §3.1 (Algorithm 1: tiling and the online
softmax); Dao 2023, FlashAttention-2, §3.1 (parallelism over the query blocks,
the bottom-right causal alignment).
Milakov & Gimelshein 2018, Online normalizer calculation for softmax, §3 (the
running max and sum recurrence).
Ainslie et al. 2023, GQA, §2; Pope et al. 2023, Efficiently Scaling
Transformer Inference, §2 (KV cache).
Seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt): attention as a soft
dictionary look-up.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import attention as reference
from ..attention import (  # noqa: F401  (re-exported: nothing to accelerate)
    init_grouped_query,
    init_kv_cache,
    init_multi_head,
    kv_cache_bytes,
)
from ..contract.params import (
    GroupedQueryParams,
    KVCache,
    MultiHeadParams,
    check_attention_params,
    check_decode_args,
)
from ..contract.validate import (
    as_bool_mask,
    as_float_array,
    causal_alignment,
    check_batch_dims,
    check_bias,
    check_finite_where_attended,
    check_memory_mask,
    check_projection_inputs,
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
    "MultiHeadParams",
    "GroupedQueryParams",
    "init_multi_head",
    "init_grouped_query",
    "multi_head_attention",
    "self_attention",
    "cross_attention",
    "grouped_query_attention",
    "KVCache",
    "init_kv_cache",
    "decode_step",
    "decode_sequence",
    "kv_cache_bytes",
    "BLOCK_Q",
    "BLOCK_K",
]

#: Query rows per task of the attention kernel.
BLOCK_Q = 256
#: Key columns per step of the online softmax (the score block is BLOCK_Q x BLOCK_K).
BLOCK_K = 512
#: Smallest query block used when blocks are shrunk to give every thread work.
_MIN_BLOCK_Q = 32
#: Rows per task of the output projection.
_MERGE_ROWS = 256

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
    as the reference's ``_softmax_unchecked``.
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

    Same contract as :func:`transformer_theory.impl.attention.softmax`: the
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
            row_max = neg_inf
            for j in range(visible):
                row_max = fmax(row_max, row[j])
            if row_max == neg_inf:                       # nothing visible in this block
                for j in range(bk):
                    row[j] = zero
                continue
            m_new = fmax(m[i], step * row_max)
            correction = fast_exp_nonpositive(m[i] - m_new)   # 0 on the first visible block
            total = zero
            for j in range(visible):                     # P = exp(logit - m'), and its sum
                p = fast_exp_nonpositive(step * row[j] - m_new)
                row[j] = p
                total += p
            for j in range(visible, bk):
                row[j] = zero
            l[i] = l[i] * correction + total
            m[i] = m_new
            if correction != one:
                for e in range(ev):
                    acc[i, e] *= correction
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


@njit(**JIT)
def _project_tasks(x, w, b, use_bias, first, stride, out):
    """Per-head linear maps: x (B, L, Ein), w (Hh, Ein, D), b (Hh, D) -> out (B, Hh, L, D).

    A task is one (batch, head) pair.
    """
    n_batch, length, _ = x.shape
    n_heads, _, d = w.shape
    for task in range(first, n_batch * n_heads, stride):
        bb = task // n_heads
        h = task % n_heads
        y = out[bb, h]                                              # (L, D)
        matmul(x[bb], w[h], y)
        if use_bias:
            for i in range(length):
                for e in range(d):
                    y[i, e] += b[h, e]


@njit(**JIT)
def _merge_tasks(o, w_o, b_o, use_bias, rows, first, stride, y):
    """Concat(head_1..head_H) W^O + b_o: o (B, H, L, Dv), w_o (H*Dv, E) -> y (B, L, E).

    A task is one (batch, block of ``rows`` positions) pair.
    """
    n_batch, n_heads, length, dv = o.shape
    e_out = w_o.shape[1]
    n_blocks = (length + rows - 1) // rows
    tmp = np.empty((rows, e_out), dtype=o.dtype)
    for task in range(first, n_batch * n_blocks, stride):
        bb = task // n_blocks
        r0 = (task % n_blocks) * rows
        r1 = min(r0 + rows, length)
        acc = y[bb, r0:r1]                                          # (R, E)
        part = tmp[:r1 - r0]
        matmul(o[bb, 0, r0:r1], w_o[0:dv], acc)
        for h in range(1, n_heads):                                 # sum_h head_h W^O_h
            matmul(o[bb, h, r0:r1], w_o[h * dv:(h + 1) * dv], part)
            for i in range(r1 - r0):
                for e in range(e_out):
                    acc[i, e] += part[i, e]
        if use_bias:
            for i in range(r1 - r0):
                for e in range(e_out):
                    acc[i, e] += b_o[e]


# ---------------------------------------------------------------------------
# Preparing the kernel arguments
# ---------------------------------------------------------------------------

def _slabs(arr, lead: tuple, lq: int, lk: int, dtype):
    """A mask or bias broadcastable to ``lead + (lq, lk)`` as kernel slabs.

    Returns ``(slabs, index)``: ``slabs`` (S, R, lk) C-contiguous with ``R`` 1
    (one row shared by every query) or ``lq``, and ``index`` (prod(lead),) the
    slab of each flattened leading position. Only the array's own leading dims
    are stored; broadcasting over the others is done by ``index``, so e.g. a
    causal-style (Lq, Lk) mask shared by all heads is stored once.
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


def _scores_may_overflow(q, k, scale: float, bias, dtype) -> bool:
    """Whether some logit ``scale q.k + bias`` could overflow ``dtype``.

    By Cauchy-Schwarz ``|q_i . k_j| <= |q_i| |k_j|``, and every partial sum of the
    dot product obeys the same bound, so below the threshold neither the block
    products nor the logits can overflow. Above it the reference is used, which
    raises its overflow error (or computes the result when the bound was loose).
    The squared norms are summed in the input dtype (no float64 copy of q or k);
    if they overflow, the bound is inf and the check errs on the safe side.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        qn = math.sqrt(float(np.max(np.einsum("...e,...e->...", q, q), initial=0.0)))
        kn = math.sqrt(float(np.max(np.einsum("...e,...e->...", k, k), initial=0.0)))
        bound = scale * qn * kn
        if bias is not None and bias.size:
            bound += float(np.max(np.abs(bias)))
    return not bound < np.finfo(dtype).max / 8


def _run_attention(q3, k3, v3, lk, group, scale, align, mask_slabs, bias_slabs, dtype):
    """Call the kernel on prepared (N, L, .) arrays; returns (N, Lq, Ev)."""
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

    Same contract as :func:`transformer_theory.impl.attention.attention`; the
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
    mask_arr = None if mask is None else as_bool_mask(mask, "mask", lead + (lq, lk))
    bias_arr = check_bias(bias, lead + (lq, lk))
    k_arr, v_arr = check_finite_where_attended([("k", k_arr), ("v", v_arr)], mask, causal,
                                               lead, lq)
    dtype = common_float_dtype(*(a for a in (q_arr, k_arr, v_arr, bias_arr) if a is not None))
    if _scores_may_overflow(q_arr, k_arr, scale_value, bias_arr, dtype):
        return reference.attention(q_arr, k_arr, v_arr, mask=mask, causal=causal, scale=scale,
                                   bias=bias)
    n, e, ev = math.prod(lead), q_arr.shape[-1], v_arr.shape[-1]
    q3 = as_kernel_array(q_arr.reshape((n, lq, e)), dtype)        # (N, Lq, E)
    k3 = as_kernel_array(k_arr.reshape((n, lk, e)), dtype)        # (N, Lk, E)
    v3 = as_kernel_array(v_arr.reshape((n, lk, ev)), dtype)       # (N, Lk, Ev)
    mask_slabs = None if mask is None else _slabs(mask, lead, lq, lk, np.bool_)
    bias_slabs = None if bias_arr is None else _slabs(bias_arr, lead, lq, lk, dtype)
    out = _run_attention(q3, k3, v3, lk, 1, scale_value, align, mask_slabs, bias_slabs, dtype)
    return out.reshape(lead + (lq, ev))


# ---------------------------------------------------------------------------
# Multi-head and grouped-query attention
# ---------------------------------------------------------------------------

def _project(x3, w, b, dtype):
    """(B, L, Ein) -> (B, heads, L, D) with the kernel (bias optional)."""
    use_bias = b is not None
    w = as_kernel_array(w, dtype)
    b_arr = as_kernel_array(b, dtype) if use_bias else np.zeros((1, 1), dtype=dtype)
    n_batch, length, e_in = x3.shape
    n_heads, _, d = w.shape
    out = np.empty((n_batch, n_heads, length, d), dtype=dtype)      # (B, Hh, L, D)
    if out.size == 0:
        return out
    with single_threaded_blas():
        run_tasks(lambda first, stride: _project_tasks(x3, w, b_arr, use_bias, first, stride, out),
                  n_batch * n_heads, 2.0 * out.size * e_in)
    return out


def _merge(o4, w_o, b_o, dtype):
    """(B, H, L, Dv) -> (B, L, E) with the kernel (bias optional)."""
    use_bias = b_o is not None
    w_o = as_kernel_array(w_o, dtype)
    b_arr = as_kernel_array(b_o, dtype) if use_bias else np.zeros(1, dtype=dtype)
    n_batch, n_heads, length, dv = o4.shape
    y = np.zeros((n_batch, length, w_o.shape[1]), dtype=dtype)      # (B, L, E)
    if y.size == 0 or n_heads * dv == 0:
        return y if not use_bias else y + b_arr
    rows = min(_MERGE_ROWS, length)
    with single_threaded_blas():
        run_tasks(lambda first, stride: _merge_tasks(o4, w_o, b_arr, use_bias, rows, first,
                                                     stride, y),
                  n_batch * -(-length // rows), 2.0 * y.size * n_heads * dv)
    return y


def _head_slabs(arr, lead: tuple, n_heads: int, lq: int, lk: int, dtype, per_head: bool):
    """Mask (shared by the heads) or bias (per head) as slabs over (B*H) query slabs."""
    a = np.asarray(arr)
    if per_head:                                                  # broadcastable to lead+(H,Lq,Lk)
        return _slabs(a, lead + (n_heads,), lq, lk, dtype)
    a = a.reshape((1,) * (len(lead) + 2 - a.ndim) + a.shape)
    a = a.reshape(a.shape[:-2] + (1,) + a.shape[-2:])             # insert a head axis of size 1
    return _slabs(a, lead + (n_heads,), lq, lk, dtype)


def _attend_projected(x_q, x_kv, params, mask, causal, bias, fallback):
    """Shared body of multi-head, grouped-query and cross-attention (fast path).

    Validation is the reference's, in the reference's order; ``fallback()``
    computes the reference result when the logits could overflow.
    """
    x_q, x_kv = check_projection_inputs(x_q, x_kv, params, finite_kv=False)
    lead, lq, lk = x_q.shape[:-2], x_q.shape[-2], x_kv.shape[-2]
    align = causal_alignment(causal)
    mask_arr = None if mask is None else as_bool_mask(mask, "mask", lead + (lq, lk))
    n_heads, n_kv = params.n_heads, params.n_kv_heads
    bias_arr = check_bias(bias, lead + (n_heads, lq, lk))
    (x_kv,) = check_finite_where_attended([("x_kv", x_kv)], mask, causal, lead, lq)  # (..., Lk, Ekv)
    extra = [] if bias_arr is None else [bias_arr]
    dtype = common_float_dtype(x_q, x_kv, *params.arrays(), *extra)
    w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o = params.cast(dtype)
    n_batch = math.prod(lead)
    xq3 = as_kernel_array(x_q.reshape((n_batch, lq, x_q.shape[-1])), dtype)     # (B, Lq, E)
    xkv3 = as_kernel_array(x_kv.reshape((n_batch, lk, x_kv.shape[-1])), dtype)  # (B, Lk, Ekv)
    q = _project(xq3, w_q, b_q, dtype)                                      # (B, H, Lq, Dh)
    k = _project(xkv3, w_k, b_k, dtype)                                     # (B, G, Lk, Dh)
    v = _project(xkv3, w_v, b_v, dtype)                                     # (B, G, Lk, Dv)
    scale = 1.0 / math.sqrt(params.d_head)
    if _scores_may_overflow(q, k, scale, bias_arr, dtype):
        return fallback()
    dh, dv = params.d_head, params.d_value
    mask_slabs = None if mask_arr is None else _head_slabs(
        mask, lead, n_heads, lq, lk, np.bool_, False)
    bias_slabs = None if bias_arr is None else _head_slabs(
        bias_arr, lead, n_heads, lq, lk, dtype, True)
    o = _run_attention(q.reshape(n_batch * n_heads, lq, dh), k.reshape(n_batch * n_kv, lk, dh),
                       v.reshape(n_batch * n_kv, lk, dv), lk, n_heads // n_kv, scale, align,
                       mask_slabs, bias_slabs, dtype)                       # (B*H, Lq, Dv)
    y = _merge(o.reshape(n_batch, n_heads, lq, dv), w_o, b_o, dtype)        # (B, Lq, E)
    return y.reshape(lead + (lq, y.shape[-1]))


def multi_head_attention(x_q, x_kv, params: MultiHeadParams, *, mask=None, causal=False,
                         bias=None) -> np.ndarray:
    """Multi-head attention with the fused kernel for the H heads at once.

    Same contract as :func:`transformer_theory.impl.attention.multi_head_attention`:
    ``Concat(head_1..head_H) W^O + b_o`` with ``head_h = Attention(X_q W^Q_h +
    b^Q_h, X_kv W^K_h + b^K_h, X_kv W^V_h + b^V_h)`` and scale ``1/sqrt(Dh)``.

    Parameters
    ----------
    x_q : array_like, (..., Lq, E)
    x_kv : array_like, (..., Lk, Ekv)
    params : MultiHeadParams
    mask : array_like of bool, optional
        Broadcastable to ``(..., Lq, Lk)``, shared by all heads.
    causal : {False, True, "top-left", "bottom-right"}
    bias : array_like, optional
        Additive logit bias broadcastable to ``(..., H, Lq, Lk)``.

    Returns
    -------
    np.ndarray, (..., Lq, E)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.2; seed 003
    (shared/seeds/003_8876c6ab28e0baf8.txt).
    """
    check_attention_params(params, allowed=(MultiHeadParams,))
    return _attend_projected(
        x_q, x_kv, params, mask, causal, bias,
        lambda: reference.multi_head_attention(x_q, x_kv, params, mask=mask, causal=causal,
                                               bias=bias))


def self_attention(x, params: MultiHeadParams, **kw) -> np.ndarray:
    """Multi-head self-attention: ``multi_head_attention(x, x, params, **kw)``.

    Parameters
    ----------
    x : array_like, (..., L, E)
    params : MultiHeadParams
    **kw
        ``mask``, ``causal``, ``bias`` as in :func:`multi_head_attention`.

    Returns
    -------
    np.ndarray, (..., L, E)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3.
    """
    return multi_head_attention(x, x, params, **kw)


def grouped_query_attention(x_q, x_kv, params: GroupedQueryParams, *, mask=None, causal=False,
                            bias=None) -> np.ndarray:
    """Grouped-query attention: ``H`` query heads share ``G`` kv heads, K/V never copied.

    Same contract as :func:`transformer_theory.impl.attention.grouped_query_attention`;
    query head ``h`` reads kv head ``h // (H // G)`` by index inside the kernel.

    Parameters
    ----------
    x_q : array_like, (..., Lq, E)
    x_kv : array_like, (..., Lk, Ekv)
    params : GroupedQueryParams (a MultiHeadParams is accepted as G = H)
    mask : array_like of bool, optional
    causal : {False, True, "top-left", "bottom-right"}
    bias : array_like, optional
        Broadcastable to ``(..., H, Lq, Lk)``.

    Returns
    -------
    np.ndarray, (..., Lq, E)

    References
    ----------
    Ainslie et al. 2023, GQA, §2; Shazeer 2019, Fast Transformer Decoding, §3.
    """
    check_attention_params(params)
    return _attend_projected(
        x_q, x_kv, params, mask, causal, bias,
        lambda: reference.grouped_query_attention(x_q, x_kv, params, mask=mask, causal=causal,
                                                  bias=bias))


def cross_attention(x, memory, params: MultiHeadParams, *, memory_mask=None) -> np.ndarray:
    """Encoder-decoder attention: queries from ``x``, keys and values from ``memory``.

    Same contract as :func:`transformer_theory.impl.attention.cross_attention`.

    Parameters
    ----------
    x : array_like, (..., Lq, E)
    memory : array_like, (..., Lk, Ekv)
    params : MultiHeadParams or GroupedQueryParams
    memory_mask : array_like of bool, optional
        Key-padding mask ``(..., Lk)`` or a full mask of rank ``x.ndim``.

    Returns
    -------
    np.ndarray, (..., Lq, E)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3.
    """
    check_attention_params(params)
    x_arr = as_float_array(x, "x", ndim_min=2)
    mem_arr = as_float_array(memory, "memory", ndim_min=2, finite=False)
    check_batch_dims([("x", x_arr), ("memory", mem_arr)], n_trailing=2)
    mask = check_memory_mask(memory_mask, x_arr, mem_arr)
    (mem_arr,) = check_finite_where_attended([("memory", mem_arr)], mask, False,
                                             x_arr.shape[:-2], x_arr.shape[-2])  # (..., Lk, Ekv)
    return _attend_projected(
        x_arr, mem_arr, params, mask, False, None,
        lambda: reference.cross_attention(x_arr, mem_arr, params, memory_mask=memory_mask))


# ---------------------------------------------------------------------------
# KV cache and incremental decoding
# ---------------------------------------------------------------------------

def decode_step(x_t, params, cache: KVCache):
    """One step of incremental causal self-attention decoding with a KV cache.

    Same contract as :func:`transformer_theory.impl.attention.decode_step`:
    the new token's key and value are written at position ``cache.length`` of
    a copy of the cache, and its query attends over positions
    ``[0, cache.length]`` with the fused kernel, which reads only that prefix
    of the cache (no slicing copy). The input cache is not modified.

    Parameters
    ----------
    x_t : array_like, (..., 1, E)
    params : MultiHeadParams or GroupedQueryParams
        Self-attention weights (``d_kv == d_model``).
    cache : KVCache
        Not full.

    Returns
    -------
    y_t : np.ndarray, (..., 1, E)
    new_cache : KVCache
        ``length`` increased by one; arrays in the output dtype.

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2;
    Vaswani et al. 2017, §3.2.3; seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt, note 24).
    """
    x_t = check_decode_args(x_t, params, cache)
    dtype = common_float_dtype(x_t, cache.k, cache.v, *params.arrays())
    w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o = params.cast(dtype)
    t = cache.length
    n_heads, n_kv, dh, dv = params.n_heads, params.n_kv_heads, params.d_head, params.d_value
    lmax = cache.max_len
    n_batch = math.prod(cache.batch_shape)
    x3 = as_kernel_array(x_t.reshape((n_batch, 1, x_t.shape[-1])), dtype)  # (B, 1, E)
    k_all = np.array(cache.k, dtype=dtype, order="C", copy=True)          # (..., G, Lmax, Dh)
    v_all = np.array(cache.v, dtype=dtype, order="C", copy=True)          # (..., G, Lmax, Dv)
    k4 = k_all.reshape(n_batch, n_kv, lmax, dh)                           # views
    v4 = v_all.reshape(n_batch, n_kv, lmax, dv)
    q = _project(x3, w_q, b_q, dtype)                                     # (B, H, 1, Dh)
    k4[:, :, t, :] = _project(x3, w_k, b_k, dtype)[:, :, 0, :]            # (B, G, Dh)
    v4[:, :, t, :] = _project(x3, w_v, b_v, dtype)[:, :, 0, :]            # (B, G, Dv)
    scale = 1.0 / math.sqrt(dh)
    if _scores_may_overflow(q, k4[:, :, :t + 1, :], scale, None, dtype):
        return reference.decode_step(x_t, params, cache)
    o = _run_attention(q.reshape(n_batch * n_heads, 1, dh), k4.reshape(n_batch * n_kv, lmax, dh),
                       v4.reshape(n_batch * n_kv, lmax, dv), t + 1, n_heads // n_kv, scale,
                       None, None, None, dtype)                           # (B*H, 1, Dv)
    y = _merge(o.reshape(n_batch, n_heads, 1, dv), w_o, b_o, dtype)       # (B, 1, E)
    return y.reshape(x_t.shape[:-1] + (y.shape[-1],)), KVCache(k_all, v_all, t + 1)


def decode_sequence(x, params) -> np.ndarray:
    """Causal self-attention computed token by token with :func:`decode_step`.

    Parameters
    ----------
    x : array_like, (..., L, E)
    params : MultiHeadParams or GroupedQueryParams

    Returns
    -------
    np.ndarray, (..., L, E)

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2.
    """
    check_attention_params(params)
    x = as_float_array(x, "x", ndim_min=2)
    length = x.shape[-2]
    if length == 0:
        raise ValueError(f"x: expected at least one position, got shape {x.shape}")
    dtype = common_float_dtype(x, *params.arrays())
    cache = init_kv_cache(params, x.shape[:-2], length, dtype=dtype)
    outputs = []
    for t in range(length):       # inherently sequential: one position per step
        y_t, cache = decode_step(x[..., t:t + 1, :], params, cache)      # (..., 1, E)
        outputs.append(y_t)
    return np.concatenate(outputs, axis=-2)                               # (..., L, E)
