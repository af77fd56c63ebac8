"""Scaled dot-product attention, multi-head and grouped-query attention, KV cache.

The reference implementation of the attention contract of DESIGN.md. Shapes
follow PyTorch's ``scaled_dot_product_attention``: queries ``(..., Lq, E)``,
keys ``(..., Lk, E)``, values ``(..., Lk, Ev)``, with leading batch/head dims
that must be *equal* (never broadcast silently).

Attention as a soft dictionary look-up (seed 004,
shared/seeds/004_d5b314f5ea1e15da.txt): a query is compared with every key,
the scores are turned into a probability vector by a softmax, and the output
is the matching convex combination of the values,

.. math::  \\mathrm{Attention}(Q, K, V) = \\mathrm{softmax}(s\\, Q K^T + B) V,
           \\qquad s = 1/\\sqrt{E} \\text{ by default.}

Masks
-----
Boolean, ``True`` = may attend. A ``mask`` argument and ``causal`` combine by
logical AND. Two alignments of the causal mask exist when ``Lq != Lk``:

* ``"top-left"`` (``causal=True``, PyTorch ``is_causal``): query ``i`` sees keys
  ``j <= i``;
* ``"bottom-right"`` (FlashAttention, KV-cache decoding): the last query is
  aligned with the last key, query ``i`` sees keys ``j <= i + Lk - Lq``.

A query whose every key is masked receives the zero vector (never NaN).

Keys no query may attend may hold NaN or inf (NaN poisoning, issue 14):
``k`` and ``v`` (``x_kv``, ``memory``) are refused only where some query may
attend, and a key no query may attend is replaced by zeros before any product,
so the output is exactly that with the key set to 0. Queries must be finite.

The parameter types (``MultiHeadParams``, ``GroupedQueryParams``,
``KVCache``) and the validators are those of :mod:`.contract`; they are
re-exported here.

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

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.2.1 (scaled dot-product
attention), §3.2.2 (multi-head attention), §3.2.3 (masking in the decoder).
Shazeer 2019, Fast Transformer Decoding: One Write-Head is All You Need (MQA).
Ainslie et al. 2023, GQA: Training Generalized Multi-Query Transformer Models
from Multi-Head Checkpoints, §2.
Pérez, Barceló & Marinkovic 2021, Attention is Turing-Complete, §2 (averaging
hard attention); Hahn 2020, Theoretical Limitations of Self-Attention in Neural
Sequence Models, §3 (hard attention).
Seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt): separate Q/K/V matrices per
head, concatenate the heads, multiply by W^O.
"""

from __future__ import annotations

import math

import numpy as np

from .contract.params import (  # noqa: F401  (re-exported: the contract's types)
    AttentionParams,
    GroupedQueryParams,
    KVCache,
    MultiHeadParams,
    check_attention_params,
    check_decode_args,
)
from .contract.validate import (
    allowed_keys,
    as_float_array,
    causal_triangle,
    check_batch_dims,
    check_bias,
    check_finite_where_attended,
    check_float_dtype,
    check_memory_mask,
    check_positive_int,
    check_projection_inputs,
    check_qkv,
    check_rng,
    common_float_dtype,
    normalize_axis,
    resolve_scale,
)

__all__ = [
    "softmax",
    "causal_mask",
    "sliding_window_mask",
    "attention_weights",
    "attention",
    "hard_attention",
    "MultiHeadParams",
    "init_multi_head",
    "multi_head_attention",
    "multi_head_attention_per_head",
    "self_attention",
    "cross_attention",
    "GroupedQueryParams",
    "init_grouped_query",
    "kv_group_of_head",
    "grouped_query_attention",
    "gqa_to_mha_params",
    "mha_to_gqa_params",
    "KVCache",
    "init_kv_cache",
    "decode_step",
    "decode_sequence",
    "kv_cache_bytes",
]

#: Relative tolerance under which two hard-attention scores count as tied.
HARD_ATTENTION_TIE_RTOL = 1e-9


# ---------------------------------------------------------------------------
# Softmax and masks
# ---------------------------------------------------------------------------

def _softmax_unchecked(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Max-subtracted softmax; rows that are entirely -inf give zeros."""
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    m = np.where(np.isneginf(m), 0, m)           # fully masked rows: avoid (-inf) - (-inf)
    e = np.exp(x - m)                             # every entry in [0, 1]
    total = np.sum(e, axis=axis, keepdims=True)
    return e / np.where(total == 0, 1, total)


def softmax(x, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``.

    The row maximum is subtracted before exponentiating, so float32 logits of
    magnitude up to 1e4 (and beyond) give neither ``inf`` nor ``NaN``. ``-inf``
    entries (masked logits) get probability 0, and a row that is entirely
    ``-inf`` returns all zeros instead of ``NaN``.

    Parameters
    ----------
    x : array_like, float32 or float64, at least 1-d
        Logits. ``-inf`` is allowed; ``NaN`` and ``+inf`` are refused.
    axis : int
        The axis to normalise over.

    Returns
    -------
    np.ndarray
        Same shape and dtype as ``x``; non-negative, summing to 1 along
        ``axis`` (or to 0 for an all ``-inf`` row).

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.1; seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt): softmax magnifies the largest
    query-key match.
    """
    arr = as_float_array(x, "x", ndim_min=1, finite=False)
    if np.any(np.isnan(arr)) or np.any(np.isposinf(arr)):
        raise ValueError("x: contains NaN or +inf values (only -inf, for masked logits, is allowed)")
    ax = normalize_axis(axis, arr.ndim)
    return _softmax_unchecked(arr, ax)


def _check_length(value, name: str) -> int:
    return check_positive_int(value, name, minimum=0)


def causal_mask(lq: int, lk: int, *, align: str = "top-left") -> np.ndarray:
    """Boolean causal mask of shape ``(lq, lk)``, ``True`` = may attend.

    Parameters
    ----------
    lq, lk : int
        Number of queries and keys (>= 0).
    align : {"top-left", "bottom-right"}
        ``"top-left"`` (PyTorch ``is_causal``): query ``i`` sees keys
        ``j <= i``. ``"bottom-right"`` (FlashAttention, KV-cache decoding):
        query ``i`` sees keys ``j <= i + lk - lq``, so the last query sees
        every key.

    Returns
    -------
    np.ndarray of bool, shape (lq, lk)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3; seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt, note 26: the mask that keeps
    earlier outputs from seeing later ones).
    """
    lq = _check_length(lq, "lq")
    lk = _check_length(lk, "lk")
    if align not in ("top-left", "bottom-right"):
        raise ValueError(f"align: expected one of ('top-left', 'bottom-right'), got {align!r}")
    return causal_triangle(lq, lk, align)         # (Lq, Lk)


def sliding_window_mask(lq: int, lk: int, window: int, *, causal: bool = True) -> np.ndarray:
    """Boolean local-attention mask: ``|i - j| < window`` (and ``j <= i`` if causal).

    Positions are top-left aligned (query ``i`` and key ``i`` are the same
    position).

    Parameters
    ----------
    lq, lk : int
        Number of queries and keys (>= 0).
    window : int
        Window size (>= 1); ``window = 1`` lets a query see only its own
        position.
    causal : bool
        Also forbid keys in the future (``j > i``).

    Returns
    -------
    np.ndarray of bool, shape (lq, lk)

    References
    ----------
    Beltagy, Peters & Cohan 2020, Longformer, §3.1 (sliding window attention);
    Child et al. 2019, Generating Long Sequences with Sparse Transformers, §4.
    """
    lq = _check_length(lq, "lq")
    lk = _check_length(lk, "lk")
    window = check_positive_int(window, "window", minimum=1)
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal: expected a bool, got {type(causal).__name__}")
    i = np.arange(lq)[:, None]                    # (Lq, 1)
    j = np.arange(lk)[None, :]                    # (1, Lk)
    allowed = np.abs(i - j) < window              # (Lq, Lk)
    if causal:
        allowed &= j <= i
    return allowed


# ---------------------------------------------------------------------------
# Scaled dot-product attention
# ---------------------------------------------------------------------------

def _scores(q: np.ndarray, k: np.ndarray, scale: float, bias: np.ndarray | None) -> np.ndarray:
    """Scaled logits ``s q k^T + bias``; refuses overflow to inf rather than returning NaN."""
    with np.errstate(over="ignore", invalid="ignore"):        # overflow is reported below
        scores = scale * np.matmul(q, np.swapaxes(k, -1, -2))  # (..., Lq, Lk)
        if bias is not None:
            scores = scores + bias
    if not np.all(np.isfinite(scores)):
        raise ValueError(
            f"q, k: attention scores overflow {scores.dtype} (inputs too large for this dtype)")
    return scores


def _mask_scores(scores: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    if allowed is None:
        return scores
    return np.where(allowed, scores, -np.inf)     # (..., Lq, Lk)


def _weights(q, k, mask, causal, scale, bias):
    """Shared checks of attention_weights/attention after q, k are validated."""
    lead, lq, lk = q.shape[:-2], q.shape[-2], k.shape[-2]
    scale = resolve_scale(scale, q.shape[-1])
    allowed = allowed_keys(mask, causal, lead, lq, lk)              # (..., Lq, Lk) or None
    bias = check_bias(bias, tuple(lead) + (lq, lk))
    return scale, allowed, bias


def _unpoisoned(q, named, mask, causal):
    """The key-side arrays ``named`` ((name, (..., Lk, D)) pairs) after the NaN-poisoning check.

    Non-finite values are refused at keys some query may attend and zeroed at
    the others (:func:`.contract.validate.check_finite_where_attended`).
    """
    return check_finite_where_attended(named, mask, causal, q.shape[:-2], q.shape[-2])


def attention_weights(q, k, *, mask=None, causal=False, scale=None, bias=None) -> np.ndarray:
    """Attention probabilities ``softmax(scale * q k^T + bias)`` over the allowed keys.

    Parameters
    ----------
    q : array_like, (..., Lq, E)
        Finite.
    k : array_like, (..., Lk, E)
        Leading dims must equal those of ``q``. Finite at every key some
        query may attend; a key no query may attend may hold NaN/inf, and
        its (zero) weights are those of a zero key.
    mask : array_like of bool, optional
        Broadcastable to ``(..., Lq, Lk)``; ``True`` = may attend.
    causal : {False, True, "top-left", "bottom-right"}
        Causal mask (``True`` means ``"top-left"``); combined with ``mask`` by AND.
    scale : float, optional
        Positive temperature; default ``1/sqrt(E)``.
    bias : array_like, optional
        Additive logit bias broadcastable to ``(..., Lq, Lk)`` (e.g. ALiBi).

    Returns
    -------
    np.ndarray, (..., Lq, Lk)
        Each row sums to 1 over its allowed keys; a fully masked row is all
        zeros. float32 only if every float input is float32.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.1 (Eq. 1).
    """
    q, k, _ = check_qkv(q, k, finite_kv=False)
    scale, allowed, bias = _weights(q, k, mask, causal, scale, bias)
    (k,) = _unpoisoned(q, [("k", k)], mask, causal)
    dtype = common_float_dtype(*(a for a in (q, k, bias) if a is not None))
    q, k = q.astype(dtype, copy=False), k.astype(dtype, copy=False)
    b = None if bias is None else bias.astype(dtype, copy=False)
    scores = _mask_scores(_scores(q, k, scale, b), allowed)  # (..., Lq, Lk)
    return _softmax_unchecked(scores, -1)                    # (..., Lq, Lk)


def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None) -> np.ndarray:
    """Scaled dot-product attention ``softmax(scale * q k^T + bias) v``.

    Parameters
    ----------
    q : array_like, (..., Lq, E)
        Finite.
    k : array_like, (..., Lk, E)
    v : array_like, (..., Lk, Ev)
        The leading dims of ``q``, ``k`` and ``v`` must be equal (no
        broadcasting between them). Finite at every key some query may
        attend (``ValueError`` otherwise); a key that no query may attend
        (given ``mask`` and ``causal``) may hold NaN/inf, and the output is
        exactly that with the key and value set to 0.
    mask : array_like of bool, optional
        Broadcastable to ``(..., Lq, Lk)``; ``True`` = may attend. A non-bool
        mask is a ``TypeError``, a non-broadcastable one a ``ValueError``.
    causal : {False, True, "top-left", "bottom-right"}
        ``True`` is ``"top-left"`` (PyTorch ``is_causal``); ``"bottom-right"``
        aligns the last query with the last key. Combined with ``mask`` by AND.
    scale : float, optional
        Positive temperature; default ``1/sqrt(E)``.
    bias : array_like, optional
        Additive float logit bias broadcastable to ``(..., Lq, Lk)``.

    Returns
    -------
    np.ndarray, (..., Lq, Ev)
        A fully masked query row returns zeros, never NaN.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.1 (Eq. 1); seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt): attention as a differentiable
    dictionary look-up.
    """
    q, k, v = check_qkv(q, k, v, finite_kv=False)
    scale, allowed, bias = _weights(q, k, mask, causal, scale, bias)
    k, v = _unpoisoned(q, [("k", k), ("v", v)], mask, causal)
    dtype = common_float_dtype(*(a for a in (q, k, v, bias) if a is not None))
    q, k, v = (a.astype(dtype, copy=False) for a in (q, k, v))
    b = None if bias is None else bias.astype(dtype, copy=False)
    scores = _mask_scores(_scores(q, k, scale, b), allowed)  # (..., Lq, Lk)
    weights = _softmax_unchecked(scores, -1)                  # (..., Lq, Lk)
    return np.matmul(weights, v)                              # (..., Lq, Ev)


def _hard_weights(scores: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """Uniform weights over the (near-)maximal allowed scores; zeros if none allowed."""
    if allowed is None:
        allowed = np.ones(scores.shape[-2:], dtype=bool)
    allowed = np.broadcast_to(allowed, scores.shape)                           # (..., Lq, Lk)
    masked = np.where(allowed, scores, -np.inf)                                # (..., Lq, Lk)
    best = np.max(masked, axis=-1, keepdims=True, initial=-np.inf)             # (..., Lq, 1)
    magnitude = np.max(np.where(allowed, np.abs(scores), 0.0), axis=-1,
                       keepdims=True, initial=0.0)                             # (..., Lq, 1)
    winners = allowed & (masked >= best - HARD_ATTENTION_TIE_RTOL * magnitude)  # (..., Lq, Lk)
    count = np.sum(winners, axis=-1, keepdims=True)                            # (..., Lq, 1)
    return winners / np.where(count == 0, 1, count)                            # (..., Lq, Lk)


def hard_attention(q, k, v, *, mask=None, causal=False, scale=None) -> np.ndarray:
    """Averaging hard attention: the ``beta -> infinity`` limit of ``attention``.

    Each query averages, with equal weights, the values of the keys that attain
    its maximal allowed score. Scores within a relative ``1e-9`` of the maximum
    (relative to the largest allowed score magnitude of the row) count as
    tied. Scores are computed in float64 whatever the input dtype, so ties
    that are exact in real arithmetic are not broken by float32 rounding.
    A fully masked row returns zeros.

    Parameters
    ----------
    q : array_like, (..., Lq, E)
    k : array_like, (..., Lk, E)
    v : array_like, (..., Lk, Ev)
    mask, causal, scale
        As in :func:`attention` (a positive ``scale`` does not change which
        keys win).

    Returns
    -------
    np.ndarray, (..., Lq, Ev)

    References
    ----------
    Pérez, Barceló & Marinkovic 2021, Attention is Turing-Complete, §2
    (averaging hard attention); Hahn 2020, Theoretical Limitations of
    Self-Attention in Neural Sequence Models, §3 (unique hard attention, which
    this equals when the maximiser is unique).
    """
    q, k, v = check_qkv(q, k, v)
    scale, allowed, _ = _weights(q, k, mask, causal, scale, None)
    dtype = common_float_dtype(q, k, v)
    scores = _scores(q.astype(np.float64), k.astype(np.float64), scale, None)  # (..., Lq, Lk)
    weights = _hard_weights(scores, allowed).astype(dtype)                     # (..., Lq, Lk)
    return np.matmul(weights, v.astype(dtype, copy=False))                     # (..., Lq, Ev)


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

def _project(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Per-head linear map: x (..., L, Ein), w (heads, Ein, D) -> (..., heads, L, D)."""
    y = np.einsum("...le,hed->...hld", x, w, optimize=True)     # (..., heads, L, D)
    if b is not None:
        y = y + b[:, None, :]                                   # (heads, 1, D) broadcast
    return y


def _merge_heads(o: np.ndarray, w_o: np.ndarray, b_o: np.ndarray | None) -> np.ndarray:
    """Concat(head_1..head_H) W^O, as one contraction: o (..., H, L, Dv) -> (..., L, E)."""
    n_heads, d_value = o.shape[-3], o.shape[-1]
    w_o_heads = w_o.reshape(n_heads, d_value, w_o.shape[-1])    # (H, Dv, E): rows of head h
    y = np.einsum("...hld,hde->...le", o, w_o_heads, optimize=True)  # (..., L, E)
    if b_o is not None:
        y = y + b_o
    return y


def _grouped_attend(q, k, v, allowed, scale, bias):
    """Attention of H query heads over G shared kv heads, without copying K/V.

    q (..., H, Lq, Dh), k (..., G, Lk, Dh), v (..., G, Lk, Dv); ``allowed``
    broadcastable to (..., Lq, Lk) or None; ``bias`` broadcastable to
    (..., H, Lq, Lk) or None. Returns (..., H, Lq, Dv).
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
    scores = _mask_scores(_scores(qg, kg, scale, bias), allowed)  # (..., G, r, Lq, Lk)
    weights = _softmax_unchecked(scores, -1)                # (..., G, r, Lq, Lk)
    o = np.matmul(weights, vg)                              # (..., G, r, Lq, Dv)
    return o.reshape(*lead, n_heads, lq, dv)                # (..., H, Lq, Dv)


def _attend_projected(x_q, x_kv, params, mask, causal, bias):
    """Shared batched body of multi-head, grouped-query and cross-attention."""
    x_q, x_kv = check_projection_inputs(x_q, x_kv, params, finite_kv=False)
    lead, lq, lk = x_q.shape[:-2], x_q.shape[-2], x_kv.shape[-2]
    allowed = allowed_keys(mask, causal, lead, lq, lk)                   # (..., Lq, Lk)
    bias = check_bias(bias, tuple(lead) + (params.n_heads, lq, lk))
    (x_kv,) = _unpoisoned(x_q, [("x_kv", x_kv)], mask, causal)            # (..., Lk, Ekv)
    extra = [] if bias is None else [bias]
    dtype = common_float_dtype(x_q, x_kv, *params.arrays(), *extra)
    w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o = params.cast(dtype)
    x_q, x_kv = x_q.astype(dtype, copy=False), x_kv.astype(dtype, copy=False)
    if bias is not None:
        bias = bias.astype(dtype, copy=False)
    q = _project(x_q, w_q, b_q)                                          # (..., H, Lq, Dh)
    k = _project(x_kv, w_k, b_k)                                         # (..., G, Lk, Dh)
    v = _project(x_kv, w_v, b_v)                                         # (..., G, Lk, Dv)
    o = _grouped_attend(q, k, v, allowed, 1.0 / math.sqrt(params.d_head), bias)  # (..., H, Lq, Dv)
    return _merge_heads(o, w_o, b_o)                                     # (..., Lq, E)


def multi_head_attention(x_q, x_kv, params: MultiHeadParams, *, mask=None, causal=False,
                         bias=None) -> np.ndarray:
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

    Returns
    -------
    np.ndarray, (..., Lq, E)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.2; seed 003
    (shared/seeds/003_8876c6ab28e0baf8.txt); seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt, notes 15-16: multi-head attention
    "efficiently implemented with tensor operations").
    """
    check_attention_params(params, allowed=(MultiHeadParams,))
    return _attend_projected(x_q, x_kv, params, mask, causal, bias)


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
    (x_kv,) = _unpoisoned(x_q, [("x_kv", x_kv)], mask, causal)            # (..., Lk, Ekv)
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
    check_attention_params(params)
    x_arr = as_float_array(x, "x", ndim_min=2)
    mem_arr = as_float_array(memory, "memory", ndim_min=2, finite=False)
    check_batch_dims([("x", x_arr), ("memory", mem_arr)], n_trailing=2)
    mask = check_memory_mask(memory_mask, x_arr, mem_arr)
    (mem_arr,) = _unpoisoned(x_arr, [("memory", mem_arr)], mask, False)   # (..., Lk, Ekv)
    return _attend_projected(x_arr, mem_arr, params, mask, False, None)


def grouped_query_attention(x_q, x_kv, params: GroupedQueryParams, *, mask=None, causal=False,
                            bias=None) -> np.ndarray:
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

    Returns
    -------
    np.ndarray, (..., Lq, E)

    References
    ----------
    Ainslie et al. 2023, GQA, §2; Shazeer 2019, Fast Transformer Decoding:
    One Write-Head is All You Need, §3.
    """
    check_attention_params(params)
    return _attend_projected(x_q, x_kv, params, mask, causal, bias)


# ---------------------------------------------------------------------------
# KV cache and incremental decoding
# ---------------------------------------------------------------------------

def _batch_shape(batch_shape) -> tuple:
    if isinstance(batch_shape, (int, np.integer)) and not isinstance(batch_shape, (bool, np.bool_)):
        batch_shape = (batch_shape,)
    if not isinstance(batch_shape, (tuple, list)):
        raise TypeError(
            f"batch_shape: expected a tuple of ints, got {type(batch_shape).__name__}")
    return tuple(check_positive_int(b, "batch_shape", minimum=0) for b in batch_shape)


def init_kv_cache(params, batch_shape, max_len: int, dtype=np.float64) -> KVCache:
    """An empty KV cache for ``params`` (multi-head or grouped-query).

    Parameters
    ----------
    params : MultiHeadParams or GroupedQueryParams
        ``G`` is ``n_heads`` for multi-head and ``n_kv_heads`` for grouped-query.
    batch_shape : tuple of int (or int)
        Leading dims of the inputs that will be decoded.
    max_len : int
        Capacity in positions (>= 1).
    dtype : float32 or float64

    Returns
    -------
    KVCache
        Zero arrays ``k (*batch_shape, G, max_len, Dh)``,
        ``v (*batch_shape, G, max_len, Dv)``, ``length = 0``.

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2.
    """
    check_attention_params(params)
    batch = _batch_shape(batch_shape)
    max_len = check_positive_int(max_len, "max_len")
    dt = check_float_dtype(dtype)
    g = params.n_kv_heads
    k = np.zeros(batch + (g, max_len, params.d_head), dtype=dt)    # (..., G, Lmax, Dh)
    v = np.zeros(batch + (g, max_len, params.d_value), dtype=dt)   # (..., G, Lmax, Dv)
    return KVCache(k, v, 0)


def decode_step(x_t, params, cache: KVCache):
    """One step of incremental (causal) self-attention decoding with a KV cache.

    Projects the new token, writes its key and value at position
    ``cache.length`` and attends over positions ``[0, cache.length]``. The
    result equals row ``cache.length`` of the causal full forward pass; with
    one query against ``length + 1`` keys this is the bottom-right causal
    alignment. The input cache is not modified: a new cache is returned.

    Parameters
    ----------
    x_t : array_like, (..., 1, E)
        The new token's input; leading dims equal to the cache's batch shape.
    params : MultiHeadParams or GroupedQueryParams
        Self-attention weights (``d_kv == d_model``).
    cache : KVCache
        From :func:`init_kv_cache` or a previous step; must not be full.

    Returns
    -------
    y_t : np.ndarray, (..., 1, E)
    new_cache : KVCache
        ``length`` increased by one. Its arrays have the output dtype.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3 (masked decoder
    self-attention); Pope et al. 2023, Efficiently Scaling Transformer
    Inference, §2; seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt, note 24:
    teacher forcing computes all positions at once; decoding does one at a time).
    """
    x_t = check_decode_args(x_t, params, cache)
    dtype = common_float_dtype(x_t, cache.k, cache.v, *params.arrays())
    w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o = params.cast(dtype)
    x_t = x_t.astype(dtype, copy=False)
    t = cache.length
    q = _project(x_t, w_q, b_q)                          # (..., H, 1, Dh)
    k_all = cache.k.astype(dtype, copy=True)             # (..., G, Lmax, Dh)
    v_all = cache.v.astype(dtype, copy=True)             # (..., G, Lmax, Dv)
    k_all[..., t:t + 1, :] = _project(x_t, w_k, b_k)     # (..., G, 1, Dh)
    v_all[..., t:t + 1, :] = _project(x_t, w_v, b_v)     # (..., G, 1, Dv)
    o = _grouped_attend(q, k_all[..., :t + 1, :], v_all[..., :t + 1, :], None,
                        1.0 / math.sqrt(params.d_head), None)   # (..., H, 1, Dv)
    y_t = _merge_heads(o, w_o, b_o)                      # (..., 1, E)
    return y_t, KVCache(k_all, v_all, t + 1)


def decode_sequence(x, params) -> np.ndarray:
    """Causal self-attention computed token by token with :func:`decode_step`.

    Equals ``multi_head_attention(x, x, params, causal=True)`` (or the
    grouped-query version) up to rounding.

    Parameters
    ----------
    x : array_like, (..., L, E)
    params : MultiHeadParams or GroupedQueryParams

    Returns
    -------
    np.ndarray, (..., L, E)

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2;
    Vaswani et al. 2017, §3.2.3.
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
        y_t, cache = decode_step(x[..., t:t + 1, :], params, cache)   # (..., 1, E)
        outputs.append(y_t)
    return np.concatenate(outputs, axis=-2)                           # (..., L, E)


def kv_cache_bytes(n_layers: int, n_kv_heads: int, d_head: int, seq_len: int, batch: int,
                   dtype=np.float64) -> int:
    """Memory of a KV cache: ``2 * layers * kv_heads * d_head * seq_len * batch * itemsize``.

    The factor 2 counts keys and values (value width taken equal to ``d_head``).
    Grouped-query attention shrinks it by ``H / G`` relative to multi-head.

    Parameters
    ----------
    n_layers, n_kv_heads, d_head, seq_len, batch : int
    dtype : float32 or float64 (or any numpy dtype, for its itemsize)

    Returns
    -------
    int
        Bytes.

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §3.3;
    Ainslie et al. 2023, GQA, §1.
    """
    n_layers = check_positive_int(n_layers, "n_layers")
    n_kv_heads = check_positive_int(n_kv_heads, "n_kv_heads")
    d_head = check_positive_int(d_head, "d_head")
    seq_len = check_positive_int(seq_len, "seq_len", minimum=0)
    batch = check_positive_int(batch, "batch")
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:
        raise TypeError(f"dtype: expected a numpy dtype, got {dtype!r}") from None
    return 2 * n_layers * n_kv_heads * d_head * seq_len * batch * itemsize
