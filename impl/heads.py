"""Multi-head, grouped-query and cross-attention, and their initialisation.

Each head is the scaled dot-product attention of :mod:`.sdpa` applied to its
own projections of the inputs; the heads are concatenated and multiplied by
``W^O`` (seed 003, shared/seeds/003_8876c6ab28e0baf8.txt: separate Q/K/V
matrices per head, concatenate the heads, multiply by W^O). All heads are
computed at once with einsum; :func:`multi_head_attention_per_head` is the
literal per-head loop, kept as an independent check.

The parameter types (``MultiHeadParams``, ``GroupedQueryParams``) and their
validation are those of :mod:`.contract`.

Grouped-query attention: head mapping
-------------------------------------
With ``H`` query heads and ``G`` key/value heads (``G`` divides ``H``), each kv
head is shared by ``r = H // G`` consecutive query heads: query head ``h``
reads kv group

.. math::  g(h) = \\lfloor h / r \\rfloor ,

so heads ``0..r-1`` use group 0, heads ``r..2r-1`` group 1, and so on. This is
the contiguous-block mapping produced by ``repeat_interleave(r, dim=-3)`` on
the kv head axis, which is what PyTorch's
``scaled_dot_product_attention(..., enable_gqa=True)`` does. ``G = H`` is
ordinary multi-head attention, ``G = 1`` multi-query attention.

Building blocks
---------------
:func:`project_heads`, :func:`merge_heads` and :func:`grouped_attend` are the
unvalidated steps of the projected attentions; :mod:`.kv_cache` decodes with
them.

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.2.2 (multi-head
attention), §3.2.3 (self- and encoder-decoder attention).
Shazeer 2019, Fast Transformer Decoding: One Write-Head is All You Need (MQA).
Ainslie et al. 2023, GQA: Training Generalized Multi-Query Transformer Models
from Multi-Head Checkpoints, §2.
"""

from __future__ import annotations

import math

import numpy as np

from .contract.precision import accepts_half, computes_in_float32
from .contract.params import (
    GroupedQueryParams,
    MultiHeadParams,
    check_attention_params,
)
from .contract.validate import (
    allowed_keys,
    as_float_array,
    check_batch_dims,
    check_bias,
    check_finite_where_attended,
    check_float_dtype,
    check_memory_mask,
    check_optional_positive,
    check_positive_int,
    check_projection_inputs,
    check_rng,
    common_float_dtype,
)
from .positional import rope
from .sdpa import attention, mask_scores, scaled_scores, softmax_unchecked

__all__ = [
    "init_multi_head",
    "init_grouped_query",
    "kv_group_of_head",
    "gqa_to_mha_params",
    "mha_to_gqa_params",
    "multi_head_attention",
    "multi_head_attention_per_head",
    "self_attention",
    "cross_attention",
    "grouped_query_attention",
    "project_heads",
    "merge_heads",
    "grouped_attend",
]


# ---------------------------------------------------------------------------
# Initialisation (the parameter types are in .contract.params)
# ---------------------------------------------------------------------------

def _glorot_normal(rng, shape, fan_in: int) -> np.ndarray:
    """Normal weights with standard deviation 1/sqrt(fan_in) (float64)."""
    return rng.standard_normal(shape) / math.sqrt(fan_in)


def _small_bias(rng, shape) -> np.ndarray:
    """Small random non-zero biases, so a dropped bias term changes the output."""
    return 0.1 * rng.standard_normal(shape)


def _resolve_head_dims(d_model, n_heads, d_head, d_value, d_kv):
    d_model = check_positive_int(d_model, "d_model")
    n_heads = check_positive_int(n_heads, "n_heads")
    if d_head is None:
        if d_model // n_heads < 1:
            raise ValueError(
                f"d_head: default d_model // n_heads is 0 (d_model = {d_model}, "
                f"n_heads = {n_heads}); pass d_head explicitly")
        d_head = d_model // n_heads
    d_head = check_positive_int(d_head, "d_head")
    d_value = d_head if d_value is None else check_positive_int(d_value, "d_value")
    d_kv = d_model if d_kv is None else check_positive_int(d_kv, "d_kv")
    return d_model, n_heads, d_head, d_value, d_kv


def _init_projections(rng, d_model, n_heads, n_kv_heads, d_head, d_value, d_kv, bias, dtype):
    """Draw (w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o) in a fixed order."""
    rng = check_rng(rng)
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"bias: expected a bool, got {type(bias).__name__}")
    dt = check_float_dtype(dtype)
    w_q = _glorot_normal(rng, (n_heads, d_model, d_head), d_model)        # (H, E, Dh)
    w_k = _glorot_normal(rng, (n_kv_heads, d_kv, d_head), d_kv)           # (G, Ekv, Dh)
    w_v = _glorot_normal(rng, (n_kv_heads, d_kv, d_value), d_kv)          # (G, Ekv, Dv)
    w_o = _glorot_normal(rng, (n_heads * d_value, d_model), n_heads * d_value)  # (H*Dv, E)
    if bias:
        b_q = _small_bias(rng, (n_heads, d_head))                         # (H, Dh)
        b_k = _small_bias(rng, (n_kv_heads, d_head))                      # (G, Dh)
        b_v = _small_bias(rng, (n_kv_heads, d_value))                     # (G, Dv)
        b_o = _small_bias(rng, (d_model,))                                # (E,)
    else:
        b_q = b_k = b_v = b_o = None
    cast = (lambda a: None if a is None else a.astype(dt))
    return tuple(cast(a) for a in (w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o))


@accepts_half
def init_multi_head(d_model: int, n_heads: int, rng: np.random.Generator, *, d_head=None,
                    d_value=None, d_kv=None, bias: bool = True,
                    dtype=np.float64) -> MultiHeadParams:
    """Random multi-head attention weights.

    Weights are normal with standard deviation ``1/sqrt(fan_in)`` (a
    Glorot/LeCun-like scale that keeps activations O(1)); biases are small
    random non-zero values (std 0.1) so that a forgotten bias term is visible
    in tests.

    Parameters
    ----------
    d_model : int
        Width E of the queries and of the output.
    n_heads : int
        Number of heads H.
    rng : np.random.Generator
    d_head : int, optional
        Query/key width per head; default ``d_model // n_heads``.
    d_value : int, optional
        Value width per head; default ``d_head``.
    d_kv : int, optional
        Width of the key/value input (cross-attention memory); default ``d_model``.
    bias : bool
        Whether to create the biases (``False`` sets them to None).
    dtype : float32 or float64

    Returns
    -------
    MultiHeadParams

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.2; seed 003
    (shared/seeds/003_8876c6ab28e0baf8.txt).
    """
    d_model, n_heads, d_head, d_value, d_kv = _resolve_head_dims(
        d_model, n_heads, d_head, d_value, d_kv)
    arrays = _init_projections(rng, d_model, n_heads, n_heads, d_head, d_value, d_kv, bias, dtype)
    return MultiHeadParams(*arrays)


@accepts_half
def init_grouped_query(d_model: int, n_heads: int, n_kv_heads: int, rng: np.random.Generator, *,
                       d_head=None, d_value=None, d_kv=None, bias: bool = True,
                       dtype=np.float64) -> GroupedQueryParams:
    """Random grouped-query attention weights (``n_kv_heads`` must divide ``n_heads``).

    Same initialisation as :func:`init_multi_head`; ``n_kv_heads = 1`` gives
    multi-query attention, ``n_kv_heads = n_heads`` multi-head attention.

    Parameters
    ----------
    d_model, n_heads, rng, d_head, d_value, d_kv, bias, dtype
        As in :func:`init_multi_head`.
    n_kv_heads : int
        Number of key/value heads G.

    Returns
    -------
    GroupedQueryParams

    References
    ----------
    Ainslie et al. 2023, GQA, §2; Shazeer 2019, Fast Transformer Decoding.
    """
    d_model, n_heads, d_head, d_value, d_kv = _resolve_head_dims(
        d_model, n_heads, d_head, d_value, d_kv)
    n_kv_heads = check_positive_int(n_kv_heads, "n_kv_heads")
    if n_heads % n_kv_heads != 0:
        raise ValueError(
            f"n_kv_heads: expected a divisor of n_heads = {n_heads}, got {n_kv_heads}")
    arrays = _init_projections(rng, d_model, n_heads, n_kv_heads, d_head, d_value, d_kv,
                               bias, dtype)
    return GroupedQueryParams(*arrays)


def kv_group_of_head(h: int, n_heads: int, n_kv_heads: int) -> int:
    """The kv group read by query head ``h``: ``h // (n_heads // n_kv_heads)``.

    Parameters
    ----------
    h : int
        Query head index, ``0 <= h < n_heads``.
    n_heads : int
        Number of query heads H.
    n_kv_heads : int
        Number of kv heads G, a divisor of H.

    Returns
    -------
    int

    References
    ----------
    Ainslie et al. 2023, GQA, §2 (contiguous groups, as PyTorch's
    ``repeat_interleave`` / ``enable_gqa=True``).
    """
    n_heads = check_positive_int(n_heads, "n_heads")
    n_kv_heads = check_positive_int(n_kv_heads, "n_kv_heads")
    if n_heads % n_kv_heads != 0:
        raise ValueError(
            f"n_kv_heads: expected a divisor of n_heads = {n_heads}, got {n_kv_heads}")
    h = check_positive_int(h, "h", minimum=0)
    if h >= n_heads:
        raise ValueError(f"h: expected a head index in [0, {n_heads - 1}], got {h}")
    return h // (n_heads // n_kv_heads)


def gqa_to_mha_params(params: GroupedQueryParams) -> MultiHeadParams:
    """Equivalent multi-head weights: each kv head repeated for its ``r`` query heads.

    ``np.repeat(w_k, r, axis=0)`` puts kv head ``g`` at query heads
    ``g*r .. g*r + r - 1``, the same mapping ``h -> h // r`` as
    :func:`grouped_query_attention`, so both give the same output.

    Parameters
    ----------
    params : GroupedQueryParams

    Returns
    -------
    MultiHeadParams

    References
    ----------
    Ainslie et al. 2023, GQA, §2.
    """
    check_attention_params(params, allowed=(GroupedQueryParams,))
    r = params.group_size
    rep = (lambda a: None if a is None else np.repeat(a, r, axis=0))
    return MultiHeadParams(
        w_q=params.w_q.copy(), w_k=rep(params.w_k), w_v=rep(params.w_v),   # (H, ., .)
        b_q=None if params.b_q is None else params.b_q.copy(),
        b_k=rep(params.b_k), b_v=rep(params.b_v),
        w_o=params.w_o.copy(), b_o=None if params.b_o is None else params.b_o.copy())


def mha_to_gqa_params(params: MultiHeadParams) -> GroupedQueryParams:
    """The same multi-head weights viewed as grouped-query with ``G = H``.

    Parameters
    ----------
    params : MultiHeadParams

    Returns
    -------
    GroupedQueryParams

    References
    ----------
    Ainslie et al. 2023, GQA, §2 (GQA with G = H is multi-head attention).
    """
    check_attention_params(params, allowed=(MultiHeadParams,))
    cp = (lambda a: None if a is None else a.copy())
    return GroupedQueryParams(*(cp(a) for a in (
        params.w_q, params.w_k, params.w_v, params.b_q, params.b_k, params.b_v,
        params.w_o, params.b_o)))


# ---------------------------------------------------------------------------
# Multi-head and grouped-query attention
# ---------------------------------------------------------------------------

def project_heads(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Per-head linear maps ``X W_h + b_h`` of validated arrays, all heads at once.

    Parameters
    ----------
    x : np.ndarray, (..., L, Ein)
    w : np.ndarray, (heads, Ein, D)
    b : np.ndarray, (heads, D), or None

    Returns
    -------
    np.ndarray, (..., heads, L, D)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.2 (``Q W^Q_i``,
    ``K W^K_i``, ``V W^V_i``).
    """
    y = np.einsum("...le,hed->...hld", x, w, optimize=True)     # (..., heads, L, D)
    if b is not None:
        y = y + b[:, None, :]                                   # (heads, 1, D) broadcast
    return y


def merge_heads(o: np.ndarray, w_o: np.ndarray, b_o: np.ndarray | None) -> np.ndarray:
    """``Concat(head_1..head_H) W^O + b_o``, as one contraction over (head, Dv).

    Parameters
    ----------
    o : np.ndarray, (..., H, L, Dv)
        The head outputs.
    w_o : np.ndarray, (H*Dv, E)
        Rows ``h*Dv .. (h+1)*Dv - 1`` belong to head ``h``.
    b_o : np.ndarray, (E,), or None

    Returns
    -------
    np.ndarray, (..., L, E)
        The H head outputs side by side (width H*Dv), projected to width E.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.2; seed 003
    (shared/seeds/003_8876c6ab28e0baf8.txt): concatenate, multiply by W^O.
    """
    n_heads, d_value = o.shape[-3], o.shape[-1]
    w_o_heads = w_o.reshape(n_heads, d_value, w_o.shape[-1])    # (H, Dv, E): rows of head h
    y = np.einsum("...hld,hde->...le", o, w_o_heads, optimize=True)  # (..., L, E)
    if b_o is not None:
        y = y + b_o
    return y


def grouped_attend(q, k, v, allowed, scale, bias):
    """Attention of H query heads over G shared kv heads, without copying K/V.

    Query head ``h`` reads kv head ``h // (H // G)``: the queries are reshaped
    to ``(..., G, r, Lq, Dh)`` and K, V broadcast over the ``r`` axis as views.

    Parameters
    ----------
    q : np.ndarray, (..., H, Lq, Dh)
    k : np.ndarray, (..., G, Lk, Dh)
    v : np.ndarray, (..., G, Lk, Dv)
        Validated, in one float dtype; ``G`` divides ``H``.
    allowed : np.ndarray of bool or None
        Broadcastable to ``(..., Lq, Lk)``, shared by the heads.
    scale : float
    bias : np.ndarray or None
        Broadcastable to ``(..., H, Lq, Lk)``.

    Returns
    -------
    np.ndarray, (..., H, Lq, Dv)

    References
    ----------
    Ainslie et al. 2023, GQA, §2; Shazeer 2019, Fast Transformer Decoding, §3.
    """
    *lead, n_heads, lq, dh = q.shape
    n_kv, lk, dv = k.shape[-3], k.shape[-2], v.shape[-1]
    r = n_heads // n_kv
    qg = q.reshape(*lead, n_kv, r, lq, dh)                  # (..., G, r, Lq, Dh)
    kg = k[..., :, None, :, :]                              # (..., G, 1, Lk, Dh) view
    vg = v[..., :, None, :, :]                              # (..., G, 1, Lk, Dv) view
    if bias is not None:
        bias = np.broadcast_to(bias, (*lead, n_heads, lq, lk))
        bias = bias.reshape(*lead, n_kv, r, lq, lk)         # (..., G, r, Lq, Lk)
    if allowed is not None:
        allowed = allowed[..., None, None, :, :]            # (..., 1, 1, Lq, Lk)
    scores = mask_scores(scaled_scores(qg, kg, scale, bias), allowed)  # (..., G, r, Lq, Lk)
    weights = softmax_unchecked(scores, -1)                 # (..., G, r, Lq, Lk)
    o = np.matmul(weights, vg)                              # (..., G, r, Lq, Dv)
    return o.reshape(*lead, n_heads, lq, dv)                # (..., H, Lq, Dv)


def check_rope_base(rope_base, lq: int, lk: int, d_head: int) -> float | None:
    """The RoPE base of self-attention heads: None, or a positive finite real with Lq = Lk, Dh even."""
    base = check_optional_positive(rope_base, "rope_base")
    if base is None:
        return None
    if lq != lk:
        raise ValueError(f"rope_base: rotary positions need self-attention (Lq = Lk), got "
                         f"Lq = {lq}, Lk = {lk}")
    if d_head % 2:
        raise ValueError(f"rope_base: rotary pairs need an even head width, got d_head = {d_head}")
    return base


def check_cross_attention_args(x, memory, params, memory_mask):
    """The arguments of :func:`cross_attention`, validated (also for the fast path).

    Parameters
    ----------
    x : array_like, (..., Lq, E)
    memory : array_like, (..., Lk, Ekv)
        Non-finite only at keys no query attends.
    params : MultiHeadParams or GroupedQueryParams
    memory_mask : array_like of bool or None
        As in :func:`cross_attention`.

    Returns
    -------
    x : np.ndarray, (..., Lq, E)
    memory : np.ndarray, (..., Lk, Ekv)
        Its unattended keys made finite.
    mask : np.ndarray of bool or None
        Broadcastable to (..., Lq, Lk).

    Raises
    ------
    ValueError, TypeError
        The errors of the validators in :mod:`.contract`, naming the argument.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3 ("encoder-decoder attention").
    """
    check_attention_params(params)
    x_arr = as_float_array(x, "x", ndim_min=2)
    mem_arr = as_float_array(memory, "memory", ndim_min=2, finite=False)
    check_batch_dims([("x", x_arr), ("memory", mem_arr)], n_trailing=2)
    mask = check_memory_mask(memory_mask, x_arr, mem_arr)
    (mem_arr,) = check_finite_where_attended([("memory", mem_arr)], mask, False,
                                             x_arr.shape[:-2], x_arr.shape[-2])  # (..., Lk, Ekv)
    return x_arr, mem_arr, mask


def _attend_projected(x_q, x_kv, params, mask, causal, bias, rope_base=None, window=None):
    """Shared batched body of multi-head, grouped-query and cross-attention."""
    x_q, x_kv = check_projection_inputs(x_q, x_kv, params, finite_kv=False)
    lead, lq, lk = x_q.shape[:-2], x_q.shape[-2], x_kv.shape[-2]
    rope_base = check_rope_base(rope_base, lq, lk, params.d_head)
    allowed = allowed_keys(mask, causal, lead, lq, lk, window)           # (..., Lq, Lk)
    bias = check_bias(bias, tuple(lead) + (params.n_heads, lq, lk))
    (x_kv,) = check_finite_where_attended([("x_kv", x_kv)], mask, causal,
                                          lead, lq, window)              # (..., Lk, Ekv)
    extra = [] if bias is None else [bias]
    dtype = common_float_dtype(x_q, x_kv, *params.arrays(), *extra)
    w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o = params.cast(dtype)
    x_q, x_kv = x_q.astype(dtype, copy=False), x_kv.astype(dtype, copy=False)
    if bias is not None:
        bias = bias.astype(dtype, copy=False)
    q = project_heads(x_q, w_q, b_q)                                     # (..., H, Lq, Dh)
    k = project_heads(x_kv, w_k, b_k)                                    # (..., G, Lk, Dh)
    v = project_heads(x_kv, w_v, b_v)                                    # (..., G, Lk, Dv)
    if rope_base is not None:                                            # positions 0 .. L-1
        q, k = rope(q, base=rope_base), rope(k, base=rope_base)          # rotated per head
    scale = 1.0 / math.sqrt(params.d_head)
    o = grouped_attend(q, k, v, allowed, scale, bias)                    # (..., H, Lq, Dv)
    return merge_heads(o, w_o, b_o)                                      # (..., Lq, E)


@computes_in_float32
def multi_head_attention(x_q, x_kv, params: MultiHeadParams, *, mask=None, causal=False,
                         bias=None, rope_base=None, window=None) -> np.ndarray:
    """Multi-head attention in batched tensor form.

    ``MultiHead(X_q, X_kv) = Concat(head_1, ..., head_H) W^O + b_o`` with
    ``head_h = Attention(X_q W^Q_h + b^Q_h, X_kv W^K_h + b^K_h, X_kv W^V_h + b^V_h)``
    and scale ``1/sqrt(Dh)``. All heads are computed at once with einsum; the
    literal per-head loop is :func:`multi_head_attention_per_head`.

    Parameters
    ----------
    x_q : array_like, (..., Lq, E)
        Queries' inputs.
    x_kv : array_like, (..., Lk, Ekv)
        Keys'/values' inputs; leading dims must equal those of ``x_q``. A row
        no query may attend may hold NaN/inf (treated as zeros); the others
        must be finite.
    params : MultiHeadParams
    mask : array_like of bool, optional
        Broadcastable to ``(..., Lq, Lk)``, shared by all heads; True = may attend.
    causal : {False, True, "top-left", "bottom-right"}
    bias : array_like, optional
        Additive logit bias broadcastable to ``(..., H, Lq, Lk)`` (per head,
        e.g. ALiBi slopes).
    rope_base : float, optional
        Rotary position embedding of base ``rope_base`` (RoFormer, interleaved
        pairs) applied to each head's queries and keys at positions
        ``0 .. L-1``, after the projections; self-attention only (``Lq = Lk``),
        even ``Dh``. None for none.
    window : (int or None, int or None), optional
        Sliding window ``(left, right)`` shared by the heads, as in
        :func:`.sdpa.attention` (aligned as ``causal``).

    Returns
    -------
    np.ndarray, (..., Lq, E)
        One row per query: its heads' attention outputs merged by ``W^O``.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.2; seed 003
    (shared/seeds/003_8876c6ab28e0baf8.txt); seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt, notes 15-16: multi-head attention
    "efficiently implemented with tensor operations").
    """
    check_attention_params(params, allowed=(MultiHeadParams,))
    return _attend_projected(x_q, x_kv, params, mask, causal, bias, rope_base, window)


def multi_head_attention_per_head(x_q, x_kv, params: MultiHeadParams, *, mask=None,
                                  causal=False) -> np.ndarray:
    """Multi-head attention written literally: one :func:`attention` call per head.

    Loops over heads, concatenates the head outputs along the feature axis and
    multiplies by ``W^O``. Used as an independent check of
    :func:`multi_head_attention`.

    Parameters
    ----------
    x_q, x_kv, params, mask, causal
        As in :func:`multi_head_attention`.

    Returns
    -------
    np.ndarray, (..., Lq, E)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.2; seed 003
    (shared/seeds/003_8876c6ab28e0baf8.txt): "concatenate all the attention
    heads", then "multiply with a weight matrix W^O".
    """
    check_attention_params(params, allowed=(MultiHeadParams,))
    x_q, x_kv = check_projection_inputs(x_q, x_kv, params, finite_kv=False)
    (x_kv,) = check_finite_where_attended([("x_kv", x_kv)], mask, causal,
                                          x_q.shape[:-2], x_q.shape[-2])   # (..., Lk, Ekv)
    dtype = common_float_dtype(x_q, x_kv, *params.arrays())
    w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o = params.cast(dtype)
    x_q, x_kv = x_q.astype(dtype, copy=False), x_kv.astype(dtype, copy=False)
    heads = []
    for h in range(params.n_heads):
        q_h = x_q @ w_q[h] + (0 if b_q is None else b_q[h])      # (..., Lq, Dh)
        k_h = x_kv @ w_k[h] + (0 if b_k is None else b_k[h])     # (..., Lk, Dh)
        v_h = x_kv @ w_v[h] + (0 if b_v is None else b_v[h])     # (..., Lk, Dv)
        heads.append(attention(q_h, k_h, v_h, mask=mask, causal=causal))  # (..., Lq, Dv)
    concat = np.concatenate(heads, axis=-1)                      # (..., Lq, H*Dv)
    y = concat @ w_o                                             # (..., Lq, E)
    return y if b_o is None else y + b_o


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
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3; seed 003
    (shared/seeds/003_8876c6ab28e0baf8.txt, "Self Attention").
    """
    return multi_head_attention(x, x, params, **kw)


def cross_attention(x, memory, params: MultiHeadParams, *, memory_mask=None) -> np.ndarray:
    """Encoder-decoder attention: queries from ``x``, keys and values from ``memory``.

    Parameters
    ----------
    x : array_like, (..., Lq, E)
        Decoder states.
    memory : array_like, (..., Lk, Ekv)
        Encoder output; leading dims equal to those of ``x``. A position the
        mask hides from every query may hold NaN/inf (treated as zeros).
    params : MultiHeadParams or GroupedQueryParams
    memory_mask : array_like of bool, optional
        Either a key-padding mask of shape exactly ``(..., Lk)`` (True = real
        token), or a full mask of rank ``x.ndim`` broadcastable to
        ``(..., Lq, Lk)``.

    Returns
    -------
    np.ndarray, (..., Lq, E)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3 ("encoder-decoder
    attention"); seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt, notes 22-23:
    the output so far is the query, the input encodings are keys and values).
    """
    x_arr, mem_arr, mask = check_cross_attention_args(x, memory, params, memory_mask)
    return _attend_projected(x_arr, mem_arr, params, mask, False, None)


@computes_in_float32
def grouped_query_attention(x_q, x_kv, params: GroupedQueryParams, *, mask=None, causal=False,
                            bias=None, rope_base=None, window=None) -> np.ndarray:
    """Grouped-query attention: ``H`` query heads sharing ``G`` key/value heads.

    Queries are reshaped to ``(..., G, H/G, Lq, Dh)`` and the keys/values
    ``(..., G, Lk, D)`` are broadcast over the group axis, so K and V are
    never copied per query head. Query head ``h`` reads kv group
    ``h // (H // G)``.

    Parameters
    ----------
    x_q : array_like, (..., Lq, E)
    x_kv : array_like, (..., Lk, Ekv)
        Non-finite only in rows no query may attend, as in
        :func:`multi_head_attention`.
    params : GroupedQueryParams (a MultiHeadParams is accepted as G = H)
    mask : array_like of bool, optional
        Broadcastable to ``(..., Lq, Lk)``; True = may attend.
    causal : {False, True, "top-left", "bottom-right"}
    bias : array_like, optional
        Additive logit bias broadcastable to ``(..., H, Lq, Lk)``.
    rope_base, window
        As in :func:`multi_head_attention`.

    Returns
    -------
    np.ndarray, (..., Lq, E)

    References
    ----------
    Ainslie et al. 2023, GQA, §2; Shazeer 2019, Fast Transformer Decoding:
    One Write-Head is All You Need, §3.
    """
    check_attention_params(params)
    return _attend_projected(x_q, x_kv, params, mask, causal, bias, rope_base, window)
