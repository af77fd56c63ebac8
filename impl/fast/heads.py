"""Accelerated multi-head, grouped-query and cross-attention in numba.

Mirrors :mod:`transformer_theory.impl.heads` function by function, with the
same signatures, the same validation (the validators of
:mod:`transformer_theory.impl.contract` run first, in the reference's order)
and the same semantics. The projections ``X W_h + b_h`` and the output map
``Concat(head_1..head_H) W^O + b_o`` are parallel kernels over (batch, head)
and (batch, row block) tasks; the H heads attend in one call of the fused
kernel of :mod:`.attention`, where grouped-query head ``n`` reads kv head
``n // (H / G)`` by index (K and V are never copied per query head). Rotary
position embeddings (``rope_base``) rotate the projected queries and keys in
place, one (batch, head) task each; a sliding ``window`` is the kernel's own
(key blocks outside it are skipped). Initialisation has nothing to accelerate
and is the reference's.

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.2.2-3.2.3.
Ainslie et al. 2023, GQA, §2; Shazeer 2019, Fast Transformer Decoding, §3.
Dao et al. 2022, FlashAttention, Algorithm 1.
Su et al. 2021, RoFormer, §3.4.2 (the rotation without a d x d matrix).
Beltagy, Peters & Cohan 2020, Longformer, §3.1 (sliding window attention).
Seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt): separate Q/K/V matrices per
head, concatenate the heads, multiply by W^O.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import heads as reference
from ..contract.params import GroupedQueryParams, MultiHeadParams, check_attention_params
from ..contract.validate import (
    as_bool_mask,
    causal_alignment,
    check_bias,
    check_finite_where_attended,
    check_projection_inputs,
    check_window,
    common_float_dtype,
)
from ..heads import check_rope_base
from ..heads import (  # noqa: F401  (re-exported: nothing to accelerate)
    init_grouped_query,
    init_multi_head,
)
from ..positional import rope_frequencies
from ._docs import same_contract
from ._numeric import JIT, as_kernel_array, matmul, run_tasks, single_threaded_blas
from ._scan import row_scan
from .attention import as_slabs, run_attention

__all__ = [
    "MultiHeadParams",
    "GroupedQueryParams",
    "init_multi_head",
    "init_grouped_query",
    "multi_head_attention",
    "self_attention",
    "cross_attention",
    "grouped_query_attention",
    "project_heads",
    "merge_heads",
    "rotate_heads",
]

#: Rows per task of the output projection.
_MERGE_ROWS = 256


# ---------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------

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
def _rope_tasks(x, cos, sin, first, stride):
    """Rotary embedding in place: x (B, Hh, L, D), cos and sin (P, L, D/2), P = 1 or B.

    Pair ``(2i, 2i+1)`` of row ``p`` of batch ``b`` turns by the angle whose
    cosine and sine are ``cos[b', p, i]`` and ``sin[b', p, i]`` (``b' = b`` if
    ``P = B``, else 0). A task is one (batch, head) pair.
    """
    n_batch, n_heads, length, d = x.shape
    half = d // 2
    for task in range(first, n_batch * n_heads, stride):
        bb = task // n_heads
        h = task % n_heads
        c_b = cos[bb if cos.shape[0] > 1 else 0]                    # (L, D/2)
        s_b = sin[bb if sin.shape[0] > 1 else 0]
        y = x[bb, h]                                                # (L, D)
        for p in range(length):
            for i in range(half):
                even = y[p, 2 * i]
                odd = y[p, 2 * i + 1]
                y[p, 2 * i] = even * c_b[p, i] - odd * s_b[p, i]
                y[p, 2 * i + 1] = even * s_b[p, i] + odd * c_b[p, i]


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
# Projections
# ---------------------------------------------------------------------------

def project_heads(x3, w, b, dtype):
    """Per-head linear maps ``X W_h + b_h`` with the kernel, one task per (batch, head).

    Parameters
    ----------
    x3 : np.ndarray, (B, L, Ein)
        A kernel array (C-contiguous, ``dtype``).
    w : np.ndarray, (heads, Ein, D)
    b : np.ndarray, (heads, D), or None
    dtype : numpy dtype

    Returns
    -------
    np.ndarray, (B, heads, L, D)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.2.
    """
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


def merge_heads(o4, w_o, b_o, dtype):
    """``Concat(head_1..head_H) W^O + b_o`` with the kernel, one task per (batch, row block).

    Parameters
    ----------
    o4 : np.ndarray, (B, H, L, Dv)
        The head outputs, in ``dtype``.
    w_o : np.ndarray, (H*Dv, E)
    b_o : np.ndarray, (E,), or None
    dtype : numpy dtype

    Returns
    -------
    np.ndarray, (B, L, E)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.2.
    """
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


def rotate_heads(x4, positions, base: float, dtype):
    """Rotary position embedding of per-head queries or keys, in place, with the kernel.

    The rotation of :func:`transformer_theory.impl.positional.rope`
    (interleaved pairs ``(2i, 2i+1)``, frequencies ``base^(-2i/D)``, angles
    computed in float64 and their cosine and sine rounded to ``dtype``), one
    task per (batch, head).

    Parameters
    ----------
    x4 : np.ndarray, (B, heads, L, D)
        A kernel array (C-contiguous, ``dtype``), ``D`` even; overwritten.
    positions : np.ndarray, (L,) or (B, L)
        Each row's position (shared by the batch, or one row per sequence).
    base : float
        Validated RoPE base.
    dtype : numpy dtype

    Returns
    -------
    np.ndarray
        ``x4``, rotated.

    References
    ----------
    Su et al. 2021, RoFormer, §3.2 (eq. 15), §3.4.2 (eq. 34: the rotation
    without forming a ``d x d`` matrix).
    """
    n_batch, n_heads, length, d = x4.shape
    if x4.size == 0:
        return x4
    theta = rope_frequencies(d, base=base)                            # (D/2,)
    pos = np.asarray(positions, dtype=np.float64)
    pos = pos.reshape((1,) * (2 - pos.ndim) + pos.shape)              # (P, L)
    angles = pos[..., None] * theta                                   # (P, L, D/2)
    cos = as_kernel_array(np.cos(angles), dtype)                      # (P, L, D/2)
    sin = as_kernel_array(np.sin(angles), dtype)
    run_tasks(lambda first, stride: _rope_tasks(x4, cos, sin, first, stride),
              n_batch * n_heads, 6.0 * x4.size)
    return x4


def _head_slabs(arr, lead: tuple, n_heads: int, lq: int, lk: int, dtype, per_head: bool):
    """Mask (shared by the heads) or bias (per head) as slabs over (B*H) query slabs."""
    a = np.asarray(arr)
    if per_head:                                                  # broadcastable to lead+(H,Lq,Lk)
        return as_slabs(a, lead + (n_heads,), lq, lk, dtype)
    a = a.reshape((1,) * (len(lead) + 2 - a.ndim) + a.shape)
    a = a.reshape(a.shape[:-2] + (1,) + a.shape[-2:])             # insert a head axis of size 1
    return as_slabs(a, lead + (n_heads,), lq, lk, dtype)


def _attend_projected(x_q, x_kv, params, mask, causal, bias, fallback, rope_base=None,
                      window=None):
    """Shared body of multi-head, grouped-query and cross-attention (fast path).

    Validation is the reference's, in the reference's order; ``fallback()``
    computes the reference result when the logits could overflow.
    """
    x_q, x_kv = check_projection_inputs(x_q, x_kv, params, finite_kv=False)
    lead, lq, lk = x_q.shape[:-2], x_q.shape[-2], x_kv.shape[-2]
    base = check_rope_base(rope_base, lq, lk, params.d_head)
    align = causal_alignment(causal)
    band = check_window(window)                                          # (left, right) or None
    mask_arr = None if mask is None else as_bool_mask(mask, "mask", lead + (lq, lk))
    n_heads, n_kv = params.n_heads, params.n_kv_heads
    bias_arr = check_bias(bias, lead + (n_heads, lq, lk))
    if not row_scan(x_kv)[0]:                                            # one pass, no temporary
        (x_kv,) = check_finite_where_attended([("x_kv", x_kv)], mask, causal, lead, lq,
                                              band)                      # (..., Lk, Ekv)
    extra = [] if bias_arr is None else [bias_arr]
    dtype = common_float_dtype(x_q, x_kv, *params.arrays(), *extra)
    w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o = params.cast(dtype)
    n_batch = math.prod(lead)
    xq3 = as_kernel_array(x_q.reshape((n_batch, lq, x_q.shape[-1])), dtype)     # (B, Lq, E)
    xkv3 = as_kernel_array(x_kv.reshape((n_batch, lk, x_kv.shape[-1])), dtype)  # (B, Lk, Ekv)
    q = project_heads(xq3, w_q, b_q, dtype)                                      # (B, H, Lq, Dh)
    k = project_heads(xkv3, w_k, b_k, dtype)                                     # (B, G, Lk, Dh)
    v = project_heads(xkv3, w_v, b_v, dtype)                                     # (B, G, Lk, Dv)
    if base is not None:                                                 # positions 0 .. L-1
        rotate_heads(q, np.arange(lq), base, dtype)                      # (B, H, Lq, Dh)
        rotate_heads(k, np.arange(lk), base, dtype)                      # (B, G, Lk, Dh)
    scale = 1.0 / math.sqrt(params.d_head)
    dh, dv = params.d_head, params.d_value
    mask_slabs = None if mask_arr is None else _head_slabs(
        mask, lead, n_heads, lq, lk, np.bool_, False)
    bias_slabs = None if bias_arr is None else _head_slabs(
        bias_arr, lead, n_heads, lq, lk, dtype, True)
    o = run_attention(q.reshape(n_batch * n_heads, lq, dh), k.reshape(n_batch * n_kv, lk, dh),
                      v.reshape(n_batch * n_kv, lk, dv), lk, n_heads // n_kv, scale, align,
                      mask_slabs, bias_slabs, dtype, window=band, guard=True)  # (B*H, Lq, Dv)
    if o is None:                     # a logit may overflow: the reference decides
        return fallback()
    y = merge_heads(o.reshape(n_batch, n_heads, lq, dv), w_o, b_o, dtype)        # (B, Lq, E)
    return y.reshape(lead + (lq, y.shape[-1]))


@same_contract(reference.multi_head_attention)
def multi_head_attention(x_q, x_kv, params: MultiHeadParams, *, mask=None, causal=False,
                         bias=None, rope_base=None, window=None) -> np.ndarray:
    """Multi-head attention with the fused kernel for the H heads at once.

    Same contract as :func:`transformer_theory.impl.heads.multi_head_attention`:
    ``Concat(head_1..head_H) W^O + b_o`` with ``head_h = Attention(X_q W^Q_h +
    b^Q_h, X_kv W^K_h + b^K_h, X_kv W^V_h + b^V_h)`` and scale ``1/sqrt(Dh)``.
    A sliding ``window`` is applied inside the kernel (key blocks outside it
    are skipped), never as a mask.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.2; seed 003
    (shared/seeds/003_8876c6ab28e0baf8.txt); Su et al. 2021, RoFormer, §3.4.2;
    Beltagy, Peters & Cohan 2020, Longformer, §3.1.
    """
    check_attention_params(params, allowed=(MultiHeadParams,))
    return _attend_projected(
        x_q, x_kv, params, mask, causal, bias,
        lambda: reference.multi_head_attention(x_q, x_kv, params, mask=mask, causal=causal,
                                               bias=bias, rope_base=rope_base, window=window),
        rope_base, window)


@same_contract(reference.self_attention)
def self_attention(x, params: MultiHeadParams, **kw) -> np.ndarray:
    """Multi-head self-attention: ``multi_head_attention(x, x, params, **kw)``.

    Same contract as :func:`transformer_theory.impl.heads.self_attention`.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3.
    """
    return multi_head_attention(x, x, params, **kw)


@same_contract(reference.grouped_query_attention)
def grouped_query_attention(x_q, x_kv, params: GroupedQueryParams, *, mask=None, causal=False,
                            bias=None, rope_base=None, window=None) -> np.ndarray:
    """Grouped-query attention: ``H`` query heads share ``G`` kv heads, K/V never copied.

    Same contract as :func:`transformer_theory.impl.heads.grouped_query_attention`;
    query head ``h`` reads kv head ``h // (H // G)`` by index inside the kernel.

    References
    ----------
    Ainslie et al. 2023, GQA, §2; Shazeer 2019, Fast Transformer Decoding, §3;
    Su et al. 2021, RoFormer, §3.4.2.
    """
    check_attention_params(params)
    return _attend_projected(
        x_q, x_kv, params, mask, causal, bias,
        lambda: reference.grouped_query_attention(x_q, x_kv, params, mask=mask, causal=causal,
                                                  bias=bias, rope_base=rope_base,
                                                  window=window),
        rope_base, window)


@same_contract(reference.cross_attention)
def cross_attention(x, memory, params: MultiHeadParams, *, memory_mask=None) -> np.ndarray:
    """Encoder-decoder attention: queries from ``x``, keys and values from ``memory``.

    Same contract as :func:`transformer_theory.impl.heads.cross_attention`.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3.
    """
    x_arr, mem_arr, mask = reference.check_cross_attention_args(x, memory, params, memory_mask)
    return _attend_projected(
        x_arr, mem_arr, params, mask, False, None,
        lambda: reference.cross_attention(x_arr, mem_arr, params, memory_mask=memory_mask))
