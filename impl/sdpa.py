"""Softmax, attention masks and scaled dot-product attention (soft and hard).

The core of the attention contract of DESIGN.md; multi-head, grouped-query and
cross-attention (:mod:`.heads`) and KV-cache decoding (:mod:`.kv_cache`) are
built from it, and :mod:`.attention` gathers the three. Shapes follow
PyTorch's ``scaled_dot_product_attention``: queries ``(..., Lq, E)``, keys
``(..., Lk, E)``, values ``(..., Lk, Ev)``, with leading batch/head dims that
must be *equal* (never broadcast silently).

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
``k`` and ``v`` are refused only where some query may attend, and a key no
query may attend is replaced by zeros before any product, so the output is
exactly that with the key set to 0. Queries must be finite.

Building blocks
---------------
:func:`softmax_unchecked`, :func:`scaled_scores` and :func:`mask_scores` are
the unvalidated steps of :func:`attention`; :mod:`.heads` and
:mod:`.kv_cache` compose them on already validated, projected arrays.

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.2.1 (scaled dot-product
attention), §3.2.3 (masking in the decoder).
Pérez, Barceló & Marinkovic 2021, Attention is Turing-Complete, §2 (averaging
hard attention); Hahn 2020, Theoretical Limitations of Self-Attention in Neural
Sequence Models, §3 (hard attention).
Beltagy, Peters & Cohan 2020, Longformer, §3.1 (sliding window attention).
"""

from __future__ import annotations

import numpy as np

from .contract.precision import computes_in_float32
from .contract.validate import (
    allowed_keys,
    as_float_array,
    causal_triangle,
    check_bias,
    check_finite_where_attended,
    check_positive_int,
    check_qkv,
    check_softcap,
    check_window,
    common_float_dtype,
    segment_allowed,
    normalize_axis,
    resolve_scale,
    window_band,
)

__all__ = [
    "softmax",
    "causal_mask",
    "sliding_window_mask",
    "window_mask",
    "attention_weights",
    "attention",
    "hard_attention",
    "HARD_ATTENTION_TIE_RTOL",
    "softmax_unchecked",
    "scaled_scores",
    "mask_scores",
]


#: Relative tolerance under which two hard-attention scores count as tied.
HARD_ATTENTION_TIE_RTOL = 1e-9


# ---------------------------------------------------------------------------
# Softmax and masks
# ---------------------------------------------------------------------------

def softmax_unchecked(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Max-subtracted softmax of validated logits; rows that are entirely -inf give zeros.

    The step :func:`softmax` performs after its checks, for callers whose
    logits are already validated (float, no NaN, no ``+inf``).

    Parameters
    ----------
    x : np.ndarray, float32 or float64
        Logits; ``-inf`` marks a masked entry.
    axis : int
        A valid axis of ``x`` (not normalised here).

    Returns
    -------
    np.ndarray
        Same shape and dtype as ``x``.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.1.
    """
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    m = np.where(np.isneginf(m), 0, m)           # fully masked rows: avoid (-inf) - (-inf)
    e = np.exp(x - m)                             # every entry in [0, 1]
    total = np.sum(e, axis=axis, keepdims=True)
    return e / np.where(total == 0, 1, total)


@computes_in_float32
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
    return softmax_unchecked(arr, ax)


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


def window_mask(lq: int, lk: int, window, *, align: str = "top-left") -> np.ndarray:
    """Boolean sliding-window mask: query ``i`` sees key ``j`` iff ``i - left <= j - offset <= i + right``.

    Parameters
    ----------
    lq, lk : int
        Number of queries and keys (>= 0).
    window : (int or None, int or None)
        ``(left, right)``, inclusive; None is unbounded on that side. An int
        is refused (``TypeError``): it means different windows in different
        libraries.
    align : {"top-left", "bottom-right"}
        ``offset`` is 0 for ``"top-left"`` (the contract) and ``lk - lq`` for
        ``"bottom-right"`` (FlashAttention's ``window_size``).

    Returns
    -------
    np.ndarray of bool, shape (lq, lk)
        ``attention(..., window=window)`` equals ``attention(..., mask=window_mask(...))``
        under the same alignment.

    References
    ----------
    Beltagy, Peters & Cohan 2020, Longformer, §3.1 (sliding window attention).
    """
    lq = _check_length(lq, "lq")
    lk = _check_length(lk, "lk")
    if align not in ("top-left", "bottom-right"):
        raise ValueError(f"align: expected one of ('top-left', 'bottom-right'), got {align!r}")
    return window_band(lq, lk, check_window(window), align)          # (Lq, Lk)


def sliding_window_mask(lq: int, lk: int, window: int, *, causal: bool = True) -> np.ndarray:
    """Boolean local-attention mask of window size ``w``: ``|i - j| < w`` (and ``j <= i`` if causal).

    The Longformer/Mistral spelling of a window as one size. In the
    ``(left, right)`` form of :func:`window_mask` it is ``(w - 1, 0)`` when
    causal and ``(w - 1, w - 1)`` otherwise, top-left aligned (query ``i`` and
    key ``i`` are the same position).

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
    window = check_positive_int(window, "window", minimum=1)
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal: expected a bool, got {type(causal).__name__}")
    return window_mask(lq, lk, (window - 1, 0 if causal else window - 1))


# ---------------------------------------------------------------------------
# Scaled dot-product attention
# ---------------------------------------------------------------------------

def scaled_scores(q: np.ndarray, k: np.ndarray, scale: float,
                  bias: np.ndarray | None, softcap: float | None = None) -> np.ndarray:
    """Scaled logits ``s q k^T + bias``, soft-capped before the bias when ``softcap`` is set;
    refuses overflow to inf rather than returning NaN.

    Parameters
    ----------
    q : np.ndarray, (..., Lq, E)
    k : np.ndarray, (..., Lk, E)
        Validated, in one float dtype; leading dims broadcast (the heads
        broadcast kv groups over query heads).
    scale : float
        Positive temperature ``s``.
    bias : np.ndarray or None
        Additive logit bias broadcastable to ``(..., Lq, Lk)``.
    softcap : float or None
        ``c``: the scaled logits become ``c * tanh(s / c)`` (in ``(-c, c)``)
        before the bias is added and the masks applied.

    Returns
    -------
    np.ndarray, (..., Lq, Lk)

    Raises
    ------
    ValueError
        If a logit overflows the dtype (``"q, k: attention scores overflow ..."``).

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.1 (Eq. 1); Gemma Team
    2024, Gemma 2 (logit soft-capping, ``soft_cap * tanh(logits / soft_cap)``).
    """
    with np.errstate(over="ignore", invalid="ignore"):        # overflow is reported below
        scores = scale * np.matmul(q, np.swapaxes(k, -1, -2))  # (..., Lq, Lk)
        if softcap is not None:
            scores = softcap * np.tanh(scores / softcap)        # (..., Lq, Lk) in (-c, c)
        if bias is not None:
            scores = scores + bias
    if not np.all(np.isfinite(scores)):
        raise ValueError(
            f"q, k: attention scores overflow {scores.dtype} (inputs too large for this dtype)")
    return scores


def mask_scores(scores: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """Logits with ``-inf`` where a key may not be attended.

    Parameters
    ----------
    scores : np.ndarray, (..., Lq, Lk)
    allowed : np.ndarray of bool or None
        Broadcastable to ``scores``; True = may attend; None = every key.

    Returns
    -------
    np.ndarray, (..., Lq, Lk)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3 (masking by
    setting illegal logits to ``-inf``).
    """
    if allowed is None:
        return scores
    return np.where(allowed, scores, -np.inf)     # (..., Lq, Lk)


def _weights(q, k, mask, causal, scale, bias, segment_ids=None, window=None):
    """Shared checks of attention_weights/attention after q, k are validated."""
    lead, lq, lk = q.shape[:-2], q.shape[-2], k.shape[-2]
    scale = resolve_scale(scale, q.shape[-1])
    allowed = allowed_keys(mask, causal, lead, lq, lk, window)      # (..., Lq, Lk) or None
    same_doc = segment_allowed(segment_ids, lead, lq, lk)           # (..., L, L) or None
    if same_doc is not None:
        allowed = same_doc if allowed is None else (allowed & same_doc)
    bias = check_bias(bias, tuple(lead) + (lq, lk))
    return scale, allowed, bias


def _unpoisoned(q, named, mask, causal, window=None):
    """The key-side arrays ``named`` ((name, (..., Lk, D)) pairs) after the NaN-poisoning check.

    Non-finite values are refused at keys some query may attend and zeroed at
    the others (:func:`.contract.validate.check_finite_where_attended`).
    """
    return check_finite_where_attended(named, mask, causal, q.shape[:-2], q.shape[-2], window)


@computes_in_float32
def attention_weights(q, k, *, mask=None, causal=False, scale=None, bias=None,
                      softcap=None, segment_ids=None, window=None) -> np.ndarray:
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
    softcap : float, optional
        Logit soft cap ``c``: ``c * tanh(s / c)`` after scaling, before the
        bias and the masks (Gemma 2); None for none.
    segment_ids : array_like of int, optional
        Packed documents, ``(..., L)`` with ``Lq = Lk = L``: a query attends
        only keys of its own document (ANDed with ``mask`` and ``causal``).
    window : (int or None, int or None), optional
        Sliding window ``(left, right)``, as in :func:`attention`.

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
    scale, allowed, bias = _weights(q, k, mask, causal, scale, bias, segment_ids, window)
    cap = check_softcap(softcap)
    (k,) = _unpoisoned(q, [("k", k)], mask, causal, window)
    dtype = common_float_dtype(q, k, bias)
    q, k = q.astype(dtype, copy=False), k.astype(dtype, copy=False)
    b = None if bias is None else bias.astype(dtype, copy=False)
    scores = mask_scores(scaled_scores(q, k, scale, b, cap), allowed)  # (..., Lq, Lk)
    return softmax_unchecked(scores, -1)                               # (..., Lq, Lk)


@computes_in_float32
def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None,
              softcap=None, segment_ids=None, window=None) -> np.ndarray:
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
    softcap : float, optional
        Logit soft cap ``c``: the scaled logits become ``c * tanh(s / c)``
        before the bias is added and the masks applied (the order of Gemma 2,
        which has no bias); None for none.
    segment_ids : array_like of int, optional
        Packed documents, ``(..., L)`` with ``Lq = Lk = L``: a query attends
        only keys of its own document (ANDed with ``mask`` and ``causal``);
        ``cu_seqlens`` is ``np.repeat(np.arange(n), np.diff(cu_seqlens))``.
    window : (int or None, int or None), optional
        Sliding window ``(left, right)``, inclusive: query ``i`` attends key
        ``j`` only if ``i - left <= j - offset <= i + right``, ``offset``
        being the causal alignment of the call (``Lk - Lq`` for
        ``causal="bottom-right"``, else 0) whether or not ``causal`` is set;
        None on a side is unbounded. ANDed with ``mask`` and ``causal``. An
        int is a ``TypeError`` (ambiguous between libraries).

    Returns
    -------
    np.ndarray, (..., Lq, Ev)
        A fully masked query row returns zeros, never NaN. float32 only if
        every float input is float32.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.1 (Eq. 1); seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt): attention as a differentiable
    dictionary look-up.
    """
    q, k, v = check_qkv(q, k, v, finite_kv=False)
    scale, allowed, bias = _weights(q, k, mask, causal, scale, bias, segment_ids, window)
    cap = check_softcap(softcap)
    k, v = _unpoisoned(q, [("k", k), ("v", v)], mask, causal, window)
    dtype = common_float_dtype(q, k, v, bias)
    q, k, v = (a.astype(dtype, copy=False) for a in (q, k, v))
    b = None if bias is None else bias.astype(dtype, copy=False)
    scores = mask_scores(scaled_scores(q, k, scale, b, cap), allowed)  # (..., Lq, Lk)
    weights = softmax_unchecked(scores, -1)                            # (..., Lq, Lk)
    return np.matmul(weights, v)                                       # (..., Lq, Ev)


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
    q64, k64 = q.astype(np.float64), k.astype(np.float64)
    scores = scaled_scores(q64, k64, scale, None)                              # (..., Lq, Lk)
    weights = _hard_weights(scores, allowed).astype(dtype)                     # (..., Lq, Lk)
    return np.matmul(weights, v.astype(dtype, copy=False))                     # (..., Lq, Ev)
