"""FAVOR+ attention: linear-cost softmax attention through random features.

FAVOR+ (Fast Attention Via positive Orthogonal Random features) replaces the
``L x L`` attention matrix ``A = exp(Q K^T / sqrt(d))`` by ``Q' K'^T`` with
``Q' = phi(Q d^{-1/4})`` and ``K' = phi(K d^{-1/4})`` (the feature maps of
:mod:`.performer_features`) and reassociates the products, so that
bidirectional attention costs ``O(L m d)`` and causal (unidirectional)
attention is a prefix sum -- a scan over the sequence, or one position at a
time in the recurrent (RNN) form. The ``O(L^2)`` form is kept for checking.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR 2021
(arXiv:2009.14794): §2.2 (kernelised attention, Eq. (4)), Appendix B
(Algorithm 1: FAVOR+, bi- and unidirectional; B.1: prefix sums). Katharopoulos et al. 2020, Transformers are
RNNs, §3.2-3.4 (causal linear attention as a prefix sum, the recurrent form).
"""

from __future__ import annotations

import numpy as np

from .contract.validate import (
    check_choice,
    check_favor_args,
    check_feature_kind,
    check_positive_int,
)
from .performer_features import feature_max_stabilizer, random_features

__all__ = [
    "KEY_STABILIZERS",
    "check_favor_options",
    "favor_attention",
    "favor_attention_explicit",
    "favor_attention_recurrent",
]

#: Key stabilisers of ``favor_attention`` (see its docstring).
KEY_STABILIZERS = ("per-key", "sequence")


def check_favor_options(kind, stabilize, key_stabilizer="per-key", chunk_size=1) -> int:
    """The option checks of FAVOR+ attention, in the order every form reports them.

    Parameters
    ----------
    kind : {"positive", "hyperbolic", "trig"}
        Feature map.
    stabilize : bool
        Whether the max exponents are subtracted.
    key_stabilizer : {"per-key", "sequence"}
        The key stabiliser (forms without the option pass the default).
    chunk_size : int
        Positions per block of the causal scan (forms without it pass the default).

    Returns
    -------
    int
        ``chunk_size``, checked.

    Raises
    ------
    ValueError, TypeError
        As :func:`check_feature_kind`, :func:`check_choice` and
        :func:`check_positive_int`; ``TypeError`` for a non-bool ``stabilize``.
    """
    check_feature_kind(kind)
    check_choice(key_stabilizer, "key_stabilizer", KEY_STABILIZERS)
    if not isinstance(stabilize, (bool, np.bool_)):
        raise TypeError(f"stabilize: expected a bool, got {type(stabilize).__name__}")
    return check_positive_int(chunk_size, "chunk_size")


def _query_features(qs, w, kind, stabilize):
    """``Q'``; for exp-features the per-query max is subtracted (cancels in D^{-1})."""
    if kind == "trig" or not stabilize:
        return random_features(qs, w, kind)                            # (..., L, F)
    c = feature_max_stabilizer(qs, w, kind, over="features")           # (..., L, 1)
    return random_features(qs, w, kind, stabilizer=c)                  # (..., L, F)


def _key_features(ks, w, kind, stabilize, key_stabilizer, mask):
    """``K'`` as stabilised features times ``exp(log_weight)`` per key.

    Returns ``(kf, log_w)``: ``K'_j = exp(log_w_j) kf_j``. Padded keys get
    ``log_w = -inf`` and ``kf = 0`` so they contribute nothing.

    * per-key: ``kf_j = phi(k_j) exp(-c_j)`` with ``c_j`` the key's own max
      exponent (depends on ``k_j`` only) and ``log_w_j = c_j``; the scans
      re-reference the ``c_j`` to a running max, which cancels in ``D^{-1}``.
    * sequence: ``kf_j = phi(k_j) exp(-C)`` with ``C`` the max over all
      (unpadded) keys of the sequence, ``log_w_j = 0``.
    * no stabiliser (or trig): ``kf_j = phi(k_j)``, ``log_w_j = 0``.
    """
    lead_l = ks.shape[:-1]                                             # (..., Lk)
    log_w = np.zeros(lead_l, dtype=ks.dtype)                           # (..., Lk)
    if kind == "trig" or not stabilize:
        kf = random_features(ks, w, kind)                              # (..., Lk, F)
    else:
        c = feature_max_stabilizer(ks, w, kind, over="features")       # (..., Lk, 1)
        if key_stabilizer == "per-key":
            kf = random_features(ks, w, kind, stabilizer=c)            # (..., Lk, F)
            log_w = c[..., 0]                                          # (..., Lk)
        else:
            if mask is not None:
                c = np.where(mask[..., None], c, -np.inf)
            big_c = np.max(c, axis=-2, keepdims=True)                  # (..., 1, 1)
            big_c = np.where(np.isfinite(big_c), big_c, 0.0).astype(ks.dtype)
            kf = random_features(ks, w, kind, stabilizer=big_c)        # (..., Lk, F)
    if mask is not None:
        kf = np.where(mask[..., None], kf, 0.0).astype(ks.dtype, copy=False)
        log_w = np.where(mask, log_w, -np.inf).astype(ks.dtype, copy=False)
    return kf, log_w


def _exp_minus(a, ref):
    """``exp(a - ref)``, and 0 where ``ref = -inf`` (then ``a = -inf`` too)."""
    with np.errstate(invalid="ignore"):
        diff = np.where(np.isneginf(ref), -np.inf, a - ref)
    return np.exp(diff)


def _normalise(num, den):
    """``D^{-1}`` applied row by row; rows with no weight give 0 (never NaN)."""
    zero = den == 0                                                    # (..., L)
    safe = np.where(zero, 1.0, den).astype(den.dtype, copy=False)
    out = num / safe[..., None]                                        # (..., L, dv)
    return np.where(zero[..., None], 0.0, out).astype(num.dtype, copy=False)


def _favor_bidirectional(qf, kf, log_w, v):
    """``D^{-1} (Q' ((K')^T V))``, ``D = diag(Q' ((K')^T 1))``; never L x L."""
    ref = np.max(log_w, axis=-1, keepdims=True)                        # (..., 1)
    a = _exp_minus(log_w, ref)                                         # (..., Lk)
    kw = kf * a[..., None]                                             # (..., Lk, F)
    kv = np.swapaxes(kw, -1, -2) @ v                                   # (..., F, dv)
    k1 = np.sum(kw, axis=-2)                                           # (..., F)
    num = qf @ kv                                                      # (..., L, dv)
    den = np.einsum("...lf,...f->...l", qf, k1)                        # (..., L)
    return _normalise(num, den)


def _favor_causal_scan(qf, kf, log_w, v, chunk):
    """Unidirectional FAVOR+: a chunked prefix-sum scan over the sequence.

    The state after position ``t`` is ``S_t = sum_{j<=t} K'_j V_j^T`` (F, dv)
    and ``z_t = sum_{j<=t} K'_j`` (F,), held relative to ``exp(M_t)``, the
    running max of the key log-weights, so nothing overflows. Inside a chunk
    of ``C`` positions the causal part is the ``C x C`` lower-triangular block
    of ``Q' K'^T``; memory is ``O(C^2 + C F + F dv)``, never ``L x L``.
    """
    lead, L = qf.shape[:-2], qf.shape[-2]
    n_feat, dv = qf.shape[-1], v.shape[-1]
    dtype = qf.dtype
    state_kv = np.zeros(lead + (n_feat, dv), dtype=dtype)              # (..., F, dv)
    state_k = np.zeros(lead + (n_feat,), dtype=dtype)                  # (..., F)
    ref_prev = np.full(lead, -np.inf, dtype=dtype)                     # (...,)
    out = np.empty(lead + (L, dv), dtype=dtype)                        # (..., L, dv)
    for start in range(0, L, chunk):                                   # loop over chunks
        sl = slice(start, min(start + chunk, L))
        qc, kc, vc, lw = qf[..., sl, :], kf[..., sl, :], v[..., sl, :], log_w[..., sl]
        c = lw.shape[-1]
        run = np.maximum.accumulate(lw, axis=-1)                       # (..., C)
        ref = np.maximum(ref_prev[..., None], run)                     # (..., C)
        carry = _exp_minus(ref_prev[..., None], ref)                   # (..., C)
        tril = np.tril(np.ones((c, c), dtype=bool))                    # (C, C)
        rel = np.where(tril, lw[..., None, :], -np.inf)                # (..., C, C)
        a = _exp_minus(rel, ref[..., :, None])                         # (..., C, C)
        scores = (qc @ np.swapaxes(kc, -1, -2)) * a                    # (..., C, C)
        num = (qc @ state_kv) * carry[..., None] + scores @ vc         # (..., C, dv)
        den = np.einsum("...cf,...f->...c", qc, state_k) * carry + np.sum(scores, axis=-1)
        out[..., sl, :] = _normalise(num, den)
        # advance the state to the reference of the chunk's last position
        ref_new = ref[..., -1]                                         # (...,)
        decay = _exp_minus(ref_prev, ref_new)                          # (...,)
        wj = _exp_minus(lw, ref_new[..., None])                        # (..., C)
        kw = kc * wj[..., None]                                        # (..., C, F)
        state_kv = state_kv * decay[..., None, None] + np.swapaxes(kw, -1, -2) @ vc
        state_k = state_k * decay[..., None] + np.sum(kw, axis=-2)
        ref_prev = ref_new
    return out


def favor_attention(q, k, v, w, *, causal: bool = False, kind: str = "positive",
                    mask=None, stabilize: bool = True, key_stabilizer: str = "per-key",
                    chunk_size: int = 64) -> np.ndarray:
    """FAVOR+ attention: linear-cost approximation of ``softmax(Q K^T / sqrt(d)) V``.

    Queries and keys are scaled by ``d^{-1/4}`` so that ``exp(q'^T k') =
    exp(q^T k / sqrt(d))``; then ``Q' = phi(Q d^{-1/4})``, ``K' = phi(K
    d^{-1/4})`` and

    * bidirectional: ``D^{-1} (Q' ((K')^T V))`` with ``D = diag(Q' ((K')^T 1))``;
    * unidirectional (``causal=True``, needs ``Lq == Lk``): output ``i`` uses
      the prefix sums ``sum_{j<=i} K'_j V_j^T`` and ``sum_{j<=i} K'_j``,
      computed by a chunked scan (never an ``L x L`` matrix).

    Stabiliser (``stabilize=True``, positive/hyperbolic only). Every query's
    features are divided by ``exp(c_i)``, ``c_i`` the query's max exponent
    (:func:`feature_max_stabilizer`, ``over="features"``); this scales row
    ``i`` of numerator and ``D`` alike and cancels exactly. For keys, a
    factor common to *all* keys cancels, a factor varying per key does not.
    ``key_stabilizer`` selects:

    * ``"per-key"`` (default): each key is divided by ``exp(c_j)`` of its own
      max exponent (a function of ``k_j`` alone), and the ``c_j`` are kept as
      log-weights that the scan re-references to the running max
      ``M_i = max_{j<=i} c_j``. The result is mathematically unchanged and
      output ``i`` depends on keys ``j <= i`` only -- exactly, in floating
      point: editing a key ``j > i`` leaves output ``i`` bit-for-bit equal.
    * ``"sequence"``: all keys are divided by ``exp(C)``, ``C`` the max over
      the whole (unpadded) key sequence, as some implementations do (the
      google-research reference takes one max over all keys). Exact in real
      arithmetic, but in the causal form ``C`` depends on keys after ``i``, so
      future keys leak into output ``i`` through rounding and underflow (a
      large future key can underflow every earlier key to 0). Kept to exhibit
      that limitation.

    Parameters
    ----------
    q : array_like, shape (..., L, d)
    k : array_like, shape (..., Lk, d)
    v : array_like, shape (..., Lk, dv)
    w : array_like, shape (m, d)
        Random vectors (e.g. :func:`orthogonal_gaussian`).
    causal : bool
        Unidirectional attention (query ``i`` sees keys ``j <= i``).
    kind : {"positive", "hyperbolic", "trig"}
        Feature map; trig features are never stabilised and may make ``D``
        vanish or turn negative.
    mask : array_like of bool, shape (..., Lk), optional
        Key-padding mask, True = real token; leading dims may broadcast.
        Padded keys contribute nothing.
    stabilize : bool
        Subtract the max exponents as above (no effect for trig).
    key_stabilizer : {"per-key", "sequence"}
        The key stabiliser, as above.
    chunk_size : int
        Positions per block of the causal scan (results agree up to rounding
        for any value).

    Returns
    -------
    ndarray, shape (..., L, dv)
        Rows whose normaliser ``D_ii`` is 0 (no unpadded key visible, or total
        underflow) are 0, never NaN.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Algorithm 1
    (FAVOR+, Appendix B), §2.2 Eq. (4) (bidirectional) and Appendix B.1 (the
    prefix-sum unidirectional form); Katharopoulos et al. 2020, Transformers are RNNs, §3.2-3.4 (causal
    linear attention as a prefix sum).
    """
    chunk_size = check_favor_options(kind, stabilize, key_stabilizer, chunk_size)
    q, k, v, w, mask, dtype = check_favor_args(q, k, v, w, causal, mask)
    scale = dtype.type(q.shape[-1] ** -0.25)
    qf = _query_features(q * scale, w, kind, stabilize)                     # (..., L, F)
    kf, log_w = _key_features(k * scale, w, kind, stabilize, key_stabilizer, mask)
    if causal:
        return _favor_causal_scan(qf, kf, log_w, v, chunk_size)            # (..., L, dv)
    return _favor_bidirectional(qf, kf, log_w, v)                          # (..., L, dv)


def favor_attention_explicit(q, k, v, w, *, causal: bool = False,
                             kind: str = "positive", mask=None,
                             stabilize: bool = True) -> np.ndarray:
    """The ``O(L^2)`` form ``D^{-1} A_hat V``, ``A_hat = Q' K'^T``, for checking.

    ``A_hat`` is lower-triangular when ``causal``; padded keys are zero
    columns. With ``stabilize`` the same per-query and per-key stabilisers as
    :func:`favor_attention` are used (the key log-weights are referenced to
    the max over the keys row ``i`` can see), so the two agree up to rounding.

    Parameters
    ----------
    q, k, v, w, causal, kind, mask, stabilize
        As in :func:`favor_attention`.

    Returns
    -------
    ndarray, shape (..., L, dv)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.2,
    Eq. (4) (``A_hat``, ``D``) and Algorithm 1 (Appendix B).
    """
    check_favor_options(kind, stabilize)
    q, k, v, w, mask, dtype = check_favor_args(q, k, v, w, causal, mask)
    scale = dtype.type(q.shape[-1] ** -0.25)
    qf = _query_features(q * scale, w, kind, stabilize)                     # (..., L, F)
    kf, log_w = _key_features(k * scale, w, kind, stabilize, "per-key", mask)
    L, lk = q.shape[-2], k.shape[-2]
    visible = np.ones((L, lk), dtype=bool)                                  # (L, Lk)
    if causal:
        visible = np.tril(visible)
    log_a = np.where(visible, log_w[..., None, :], -np.inf)                 # (..., L, Lk)
    ref = np.max(log_a, axis=-1, keepdims=True)                             # (..., L, 1)
    a_hat = (qf @ np.swapaxes(kf, -1, -2)) * _exp_minus(log_a, ref)         # (..., L, Lk)
    return _normalise(a_hat @ v, np.sum(a_hat, axis=-1))                    # (..., L, dv)


def favor_attention_recurrent(q, k, v, w, *, kind: str = "positive") -> np.ndarray:
    """Causal FAVOR+ decoded one position at a time (the RNN view).

    State after step ``t``: ``S (F, dv) = sum_{j<=t} K'_j V_j^T`` and
    ``z (F,) = sum_{j<=t} K'_j``, stored relative to ``exp(M_t)``, the running
    max of the per-key stabilisers (rescaled when the max grows). Output
    ``t`` is ``(Q'_t S) / (Q'_t z)``. Equal to ``favor_attention(...,
    causal=True)`` up to rounding.

    Parameters
    ----------
    q : array_like, shape (..., L, d)
    k : array_like, shape (..., L, d)
    v : array_like, shape (..., L, dv)
    w : array_like, shape (m, d)
    kind : {"positive", "hyperbolic", "trig"}

    Returns
    -------
    ndarray, shape (..., L, dv)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Algorithm 1
    and Appendix B.1 (unidirectional case, prefix sums); Katharopoulos et al. 2020,
    Transformers are RNNs, §3.4 (the recurrent form).
    """
    check_feature_kind(kind)
    q, k, v, w, _, dtype = check_favor_args(q, k, v, w, True, None)
    scale = dtype.type(q.shape[-1] ** -0.25)
    qf = _query_features(q * scale, w, kind, True)                          # (..., L, F)
    kf, log_w = _key_features(k * scale, w, kind, True, "per-key", None)    # (..., L, F)
    lead, L = q.shape[:-2], q.shape[-2]
    state_kv = np.zeros(lead + (qf.shape[-1], v.shape[-1]), dtype=dtype)    # (..., F, dv)
    state_k = np.zeros(lead + (qf.shape[-1],), dtype=dtype)                 # (..., F)
    ref = np.full(lead, -np.inf, dtype=dtype)                               # (...,)
    out = np.empty(lead + (L, v.shape[-1]), dtype=dtype)                    # (..., L, dv)
    for t in range(L):                                                      # decoding steps
        ref_new = np.maximum(ref, log_w[..., t])                            # (...,)
        decay = _exp_minus(ref, ref_new)                                    # (...,)
        weight = _exp_minus(log_w[..., t], ref_new)                         # (...,)
        k_t = kf[..., t, :] * weight[..., None]                             # (..., F)
        state_kv = (state_kv * decay[..., None, None]
                    + k_t[..., :, None] * v[..., t, None, :])               # (..., F, dv)
        state_k = state_k * decay[..., None] + k_t                          # (..., F)
        ref = ref_new
        num = np.einsum("...f,...fv->...v", qf[..., t, :], state_kv)        # (..., dv)
        den = np.einsum("...f,...f->...", qf[..., t, :], state_k)           # (...,)
        out[..., t, :] = _normalise(num[..., None, :], den[..., None])[..., 0, :]
    return out
