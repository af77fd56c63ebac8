"""Accelerated Performer features and FAVOR+ attention.

Mirrors :mod:`transformer_theory.impl.performer` with the same signatures,
validation (the validators of :mod:`transformer_theory.impl.contract`, in the
reference's order) and semantics, including
the query and per-key/per-sequence key stabilisers, key-padding masks and the
``chunk_size`` of the causal scan:

* :func:`random_features`: ``W x`` for a block of rows by ``np.dot``, then the
  exponent, the optional stabiliser and the (vectorised) exponential of every
  feature in one pass over the block;
* :func:`favor_attention` bidirectional: ``D^{-1} Q' ((K')^T V)``, one slab
  (batch*head) per parallel task, never ``L x L``;
* :func:`favor_attention` causal: the chunked prefix scan of the reference in
  ``O(L m d)`` time and ``O(m d + C^2)`` memory per slab -- within a chunk of
  ``C`` positions the lower-triangular block of ``Q' K'^T``, across chunks the
  running state ``S = sum_j K'_j V_j^T`` and ``z = sum_j K'_j``;
* :func:`favor_attention_recurrent`: the same state updated one position at a
  time (the RNN view), the state rescaled only when the running stabiliser
  maximum grows.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR 2021,
§2.2-2.4, Lemma 1 and Algorithm 1 (FAVOR+, bi- and unidirectional).
Katharopoulos et al. 2020, Transformers are RNNs, §3.2-3.4 (causal linear
attention as a prefix sum; the recurrent form).
Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): the positive and
trigonometric feature maps.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import performer as reference
from ..contract.validate import (
    check_favor_args,
    check_feature_args,
    check_feature_kind,
)
from ..performer import (  # noqa: F401  (re-exported: random matrices are not kernels)
    FEATURE_KINDS,
    KEY_STABILIZERS,
    feature_dimension,
    gaussian_matrix,
    orthogonal_gaussian,
)
from ..performer_favor import check_favor_options
from ._docs import same_contract
from ._numeric import (
    JIT,
    JIT_INLINE,
    as_kernel_array,
    fast_exp,
    fmax,
    matmul,
    matmul_nt,
    matmul_tn,
    matvec,
    prefer_wide_vectors,
    run_tasks,
    single_threaded_blas,
    typed,
)

__all__ = [
    "FEATURE_KINDS",
    "KEY_STABILIZERS",
    "feature_dimension",
    "gaussian_matrix",
    "orthogonal_gaussian",
    "random_features",
    "favor_attention",
    "favor_attention_recurrent",
]

#: Kind codes of the kernels.
_KIND_CODES = {"trig": 0, "positive": 1, "hyperbolic": 2}
#: Stabiliser modes of the feature kernel.
_NO_SHIFT, _OWN_MAX, _GIVEN_SHIFT = 0, 1, 2
#: Rows per task of the feature kernel.
_FEATURE_ROWS = 128


# ---------------------------------------------------------------------------
# Feature maps
# ---------------------------------------------------------------------------

@njit(**JIT_INLINE)
def _features_of_block(x_blk, w, kind, mode, shift_blk, feats, c_blk):
    """phi of the rows of x_blk (R, d) into feats (R, F); c_blk (R,) gets the shifts.

    kind 0 trig, 1 positive, 2 hyperbolic. mode 0: no stabiliser; 1: each
    row's own largest exponent (``feature_max_stabilizer``); 2: ``shift_blk``.
    """
    prefer_wide_vectors()
    n_rows, d = x_blk.shape
    m = w.shape[0]
    n_feat = feats.shape[1]
    half = typed(feats, 0.5)
    zero = typed(feats, 0.0)
    wx = np.empty((n_rows, m), dtype=x_blk.dtype)                  # (R, m)
    matmul_nt(x_blk, w, wx)
    root = np.sqrt(typed(feats, n_feat))
    for i in range(n_rows):
        sq = zero
        for e in range(d):
            sq += x_blk[i, e] * x_blk[i, e]
        half_sq = half * sq                                          # ||x||^2 / 2
        row = feats[i]
        if kind == 0:                                                # trig: h(x)/sqrt(m) [sin, cos]
            scale = fast_exp(half_sq) / np.sqrt(typed(half, m))
            for j in range(m):
                row[j] = scale * np.sin(wx[i, j])
                row[m + j] = scale * np.cos(wx[i, j])
            c_blk[i] = zero
            continue
        for j in range(m):                                           # exponents W x - ||x||^2/2
            row[j] = wx[i, j] - half_sq
        if kind == 2:
            for j in range(m):
                row[m + j] = -wx[i, j] - half_sq
        c = zero
        if mode == 1:
            c = row[0]
            for j in range(n_feat):
                c = fmax(c, row[j])
        elif mode == 2:
            c = shift_blk[i]
        c_blk[i] = c
        if mode != 0:
            for j in range(n_feat):
                row[j] = row[j] - c
        for j in range(n_feat):
            row[j] = fast_exp(row[j]) / root


@njit(**JIT)
def _features_tasks(x, w, kind, mode, shift, rows, first, stride, feats, shifts):
    """phi of the rows of x (N, d) into feats (N, F), shifts (N,); a task is a row block."""
    n_rows = x.shape[0]
    n_blocks = (n_rows + rows - 1) // rows
    for task in range(first, n_blocks, stride):
        r0 = task * rows
        r1 = min(r0 + rows, n_rows)
        _features_of_block(x[r0:r1], w, kind, mode, shift[r0:r1], feats[r0:r1], shifts[r0:r1])


def _features(x2, w, kind: str, mode: int, shift=None):
    """Kernel call: (features (N, F), shifts (N,)) of the rows of x2 (N, d)."""
    dtype = x2.dtype
    x2, w = as_kernel_array(x2, dtype), as_kernel_array(w, dtype)
    n_rows, m = x2.shape[0], w.shape[0]
    n_feat = m if kind == "positive" else 2 * m
    shift_arr = np.zeros(n_rows, dtype) if shift is None else as_kernel_array(shift, dtype)
    feats = np.empty((n_rows, n_feat), dtype=dtype)                          # (N, F)
    shifts = np.zeros(n_rows, dtype=dtype)                                   # (N,)
    code, rows = _KIND_CODES[kind], _FEATURE_ROWS
    with single_threaded_blas():
        run_tasks(lambda first, stride: _features_tasks(x2, w, code, mode, shift_arr, rows,
                                                        first, stride, feats, shifts),
                  -(-n_rows // rows), 2.0 * n_rows * m * (x2.shape[1] + 8))
    return feats, shifts


@same_contract(reference.random_features)
def random_features(x, w, kind: str = "positive", *, stabilizer=None) -> np.ndarray:
    """The random feature map ``phi(x)`` with ``E[phi(x)^T phi(y)] = exp(x^T y)``.

    Same contract as :func:`transformer_theory.impl.performer.random_features`.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.3,
    Lemma 1; Rahimi & Recht 2007 (trig). Seed 002
    (shared/seeds/002_c6f7e64caf2ae364.txt).
    """
    x, w, stabilizer, dtype = check_feature_args(x, w, kind, stabilizer)
    target = x.shape[:-1] + (1,)
    d = x.shape[-1]
    x2 = as_kernel_array(x.reshape((math.prod(x.shape[:-1]), d)), dtype)     # (N, d)
    if stabilizer is None:
        feats, _ = _features(x2, w, kind, _NO_SHIFT)
    else:
        shift = np.broadcast_to(stabilizer.astype(dtype, copy=False), target).reshape(-1)
        feats, _ = _features(x2, w, kind, _GIVEN_SHIFT, shift)
    return feats.reshape(x.shape[:-1] + (feats.shape[-1],))


# ---------------------------------------------------------------------------
# FAVOR+
# ---------------------------------------------------------------------------

@njit(**JIT_INLINE)
def _exp_minus(a, ref):
    """``exp(a - ref)``, and 0 where ``ref = -inf`` (then ``a = -inf`` too)."""
    if ref == -np.inf:
        return typed(a, 0.0)
    return fast_exp(a - ref)


@njit(**JIT_INLINE)
def _normalise_rows(num, den, out):
    """out = num / den row by row; rows with den == 0 give 0 (never NaN)."""
    zero = typed(den[0], 0.0)
    for i in range(num.shape[0]):
        if den[i] == zero:
            for e in range(num.shape[1]):
                out[i, e] = zero
        else:
            for e in range(num.shape[1]):
                out[i, e] = num[i, e] / den[i]


@njit(**JIT)
def _favor_bidirectional_tasks(qf, kf, log_w, v, first, stride, out):
    """D^{-1} (Q' ((K')^T V)): qf (N, L, F), kf (N, Lk, F), v (N, Lk, dv) -> out (N, L, dv).

    A task is one slab.
    """
    prefer_wide_vectors()
    n_slabs, length, n_feat = qf.shape
    lk, dv = v.shape[1], v.shape[2]
    kw = np.empty((lk, n_feat), dtype=qf.dtype)                     # (Lk, F) K' with weights
    k1 = np.empty(n_feat, dtype=qf.dtype)                           # (F,) (K')^T 1
    kv = np.empty((n_feat, dv), dtype=qf.dtype)                     # (F, dv) (K')^T V
    num = np.empty((length, dv), dtype=qf.dtype)                    # (L, dv)
    den = np.empty(length, dtype=qf.dtype)                          # (L,)
    for n in range(first, n_slabs, stride):
        ref = typed(log_w[n, 0], -np.inf)
        for j in range(lk):
            ref = fmax(ref, log_w[n, j])
        k1[:] = 0
        for j in range(lk):
            a = _exp_minus(log_w[n, j], ref)
            for f in range(n_feat):
                kw[j, f] = kf[n, j, f] * a
                k1[f] += kw[j, f]
        matmul_tn(kw, v[n], kv)                                     # (F, dv)
        matmul(qf[n], kv, num)                                      # (L, dv)
        matvec(qf[n], k1, den)                                      # (L,)
        _normalise_rows(num, den, out[n])


@njit(**JIT)
def _favor_causal_tasks(qf, kf, log_w, v, chunk, first, stride, out):
    """Unidirectional FAVOR+ as the reference's chunked prefix scan, per slab.

    State after a chunk: S = sum_j K'_j V_j^T (F, dv) and z = sum_j K'_j (F,)
    relative to exp(M), M the running max of the key log-weights. Inside a
    chunk of C positions: the lower-triangular C x C block of Q' K'^T, whose
    entries past the diagonal are exact zeros (output i never reads key j > i).
    A task is one slab; writes out (N, L, dv).
    """
    prefer_wide_vectors()
    n_slabs, length, n_feat = qf.shape
    dv = v.shape[2]
    dt = qf.dtype
    zero = typed(qf, 0.0)
    neg_inf = typed(qf, -np.inf)
    state_kv = np.empty((n_feat, dv), dtype=dt)                     # (F, dv)
    state_k = np.empty(n_feat, dtype=dt)                            # (F,)
    ref = np.empty(chunk, dtype=dt)                                 # (C,) per-row reference
    carry = np.empty(chunk, dtype=dt)                               # (C,) exp(ref_prev - ref)
    kw_buf = np.empty(chunk * n_feat, dtype=dt)                     # (C, F)
    scores_buf = np.empty(chunk * chunk, dtype=dt)                  # (C, C)
    num_buf = np.empty(chunk * dv, dtype=dt)                        # (C, dv)
    intra_buf = np.empty(chunk * dv, dtype=dt)                      # (C, dv)
    den = np.empty(chunk, dtype=dt)                                 # (C,)
    update = np.empty((n_feat, dv), dtype=dt)                       # (F, dv)
    for n in range(first, n_slabs, stride):
        state_kv[:, :] = 0
        state_k[:] = 0
        ref_prev = neg_inf
        for start in range(0, length, chunk):
            stop = min(start + chunk, length)
            c = stop - start
            qc, kc, vc = qf[n, start:stop], kf[n, start:stop], v[n, start:stop]
            lw = log_w[n, start:stop]
            scores = scores_buf[:c * c].reshape((c, c))
            num = num_buf[:c * dv].reshape((c, dv))
            intra = intra_buf[:c * dv].reshape((c, dv))
            kw = kw_buf[:c * n_feat].reshape((c, n_feat))
            run = neg_inf
            for t in range(c):
                run = fmax(run, lw[t])
                ref[t] = fmax(ref_prev, run)
                carry[t] = _exp_minus(ref_prev, ref[t])
            matmul_nt(qc, kc, scores)                               # (C, C) Q' K'^T
            for i in range(c):
                for j in range(c):
                    scores[i, j] = scores[i, j] * _exp_minus(lw[j], ref[i]) if j <= i else zero
            matmul(qc, state_kv, num)                               # (C, dv)
            matvec(qc, state_k, den)                                # (C,)
            matmul(scores, vc, intra)                               # (C, dv)
            for i in range(c):
                total = zero
                for j in range(i + 1):
                    total += scores[i, j]
                den[i] = den[i] * carry[i] + total
                for e in range(dv):
                    num[i, e] = num[i, e] * carry[i] + intra[i, e]
            _normalise_rows(num, den, out[n, start:stop])
            ref_new = ref[c - 1]                                    # advance the state
            decay = _exp_minus(ref_prev, ref_new)
            for t in range(c):
                wj = _exp_minus(lw[t], ref_new)
                for f in range(n_feat):
                    kw[t, f] = kc[t, f] * wj
            matmul_tn(kw, vc, update)                               # (F, dv) K'^T V
            for f in range(n_feat):
                total = zero
                for t in range(c):
                    total += kw[t, f]
                state_k[f] = state_k[f] * decay + total
                for e in range(dv):
                    state_kv[f, e] = state_kv[f, e] * decay + update[f, e]
            ref_prev = ref_new


@njit(**JIT)
def _favor_recurrent_tasks(qf, kf, log_w, v, first, stride, out):
    """Causal FAVOR+ one position at a time (the RNN view); a task is one slab."""
    prefer_wide_vectors()
    n_slabs, length, n_feat = qf.shape
    dv = v.shape[2]
    for n in range(first, n_slabs, stride):
        zero = typed(log_w[n, 0], 0.0)
        one = typed(log_w[n, 0], 1.0)
        state_kv = np.zeros((n_feat, dv), dtype=qf.dtype)          # (F, dv)
        state_k = np.zeros(n_feat, dtype=qf.dtype)                  # (F,)
        num = np.empty(dv, dtype=qf.dtype)
        ref = typed(log_w[n, 0], -np.inf)
        for t in range(length):                                     # decoding steps
            ref_new = fmax(ref, log_w[n, t])
            decay = _exp_minus(ref, ref_new)
            weight = _exp_minus(log_w[n, t], ref_new)
            ref = ref_new
            if decay != one:                                        # the max grew: rescale
                for f in range(n_feat):
                    state_k[f] *= decay
                    for e in range(dv):
                        state_kv[f, e] *= decay
            for f in range(n_feat):
                k_tf = kf[n, t, f] * weight
                state_k[f] += k_tf
                for e in range(dv):
                    state_kv[f, e] += k_tf * v[n, t, e]
            den = zero
            for e in range(dv):
                num[e] = zero
            for f in range(n_feat):
                q_tf = qf[n, t, f]
                den += q_tf * state_k[f]
                for e in range(dv):
                    num[e] += q_tf * state_kv[f, e]
            for e in range(dv):
                out[n, t, e] = zero if den == zero else num[e] / den


def _run_slabs(kernel, qf3, v3, work, *extra):
    """Run a FAVOR+ slab kernel over all slabs into a new (N, L, dv) array."""
    out = np.empty(qf3.shape[:2] + (v3.shape[2],), dtype=qf3.dtype)        # (N, L, dv)
    with single_threaded_blas():
        run_tasks(lambda first, stride: kernel(*extra, first, stride, out), qf3.shape[0], work)
    return out


def _slabbed(a: np.ndarray, last: int, dtype) -> np.ndarray:
    """(..., L, last) -> (N, L, last) C-contiguous in ``dtype``."""
    return as_kernel_array(a.reshape((-1,) + a.shape[-2:-1] + (last,)), dtype)


def _query_features(q2, w, kind, stabilize):
    """``Q'`` rows; exp-features get each query's own max subtracted (cancels in D^{-1})."""
    mode = _OWN_MAX if (kind != "trig" and stabilize) else _NO_SHIFT
    return _features(q2, w, kind, mode)[0]


def _key_features(k2, w, kind, stabilize, key_stabilizer, mask2, lk):
    """``K'`` as (kf (N, Lk, F), log_w (N, Lk)), as the reference's ``_key_features``.

    ``K'_j = exp(log_w_j) kf_j``; padded keys get ``kf = 0``, ``log_w = -inf``.
    """
    dtype = k2.dtype
    log_w = np.zeros(k2.shape[0], dtype)                                    # (N*Lk,)
    if kind == "trig" or not stabilize:
        kf, _ = _features(k2, w, kind, _NO_SHIFT)
    elif key_stabilizer == "per-key":
        kf, log_w = _features(k2, w, kind, _OWN_MAX)                        # log_w_j = c_j
    else:                                                                   # one C per sequence
        _, c = _features(k2, w, kind, _OWN_MAX)                             # per-key maxima c_j
        c = c.reshape((-1, lk))                                             # (N, Lk)
        if mask2 is not None:
            c = np.where(mask2, c, -np.inf)
        big_c = np.max(c, axis=-1, keepdims=True)                           # (N, 1)
        big_c = np.where(np.isfinite(big_c), big_c, 0.0).astype(dtype)
        kf, _ = _features(k2, w, kind, _GIVEN_SHIFT, np.broadcast_to(big_c, c.shape).reshape(-1))
    kf = kf.reshape((-1, lk, kf.shape[-1]))                                 # (N, Lk, F)
    log_w = log_w.reshape((-1, lk))                                         # (N, Lk)
    if mask2 is not None:
        kf = np.where(mask2[..., None], kf, 0.0).astype(dtype, copy=False)
        log_w = np.where(mask2, log_w, -np.inf).astype(dtype, copy=False)
    return kf, log_w


@same_contract(reference.favor_attention)
def favor_attention(q, k, v, w, *, causal: bool = False, kind: str = "positive",
                    mask=None, stabilize: bool = True, key_stabilizer: str = "per-key",
                    chunk_size: int = 64) -> np.ndarray:
    """FAVOR+ attention, linear in the sequence length, with numba kernels.

    Same contract as :func:`transformer_theory.impl.performer.favor_attention`
    (scaling by ``d^{-1/4}``, stabilisers, key-padding mask, zero rows where
    ``D_ii = 0``); the causal form is the chunked prefix scan with
    ``chunk_size`` positions per block.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Algorithm 1
    and §2.2 Eq. (5); Katharopoulos et al. 2020, Transformers are RNNs,
    §3.2-3.4.
    """
    chunk_size = check_favor_options(kind, stabilize, key_stabilizer, chunk_size)
    q, k, v, w, mask, dtype = check_favor_args(q, k, v, w, causal, mask)
    lead, length, lk, d, dv = q.shape[:-2], q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    if q.size == 0 or v.size == 0:
        return reference.favor_attention(q, k, v, w, causal=causal, kind=kind, mask=mask,
                                    stabilize=stabilize, key_stabilizer=key_stabilizer,
                                    chunk_size=chunk_size)
    scale = dtype.type(d ** -0.25)
    qs = (q * scale).reshape((-1, d))                                       # (N*L, d)
    ks = (k * scale).reshape((-1, d))                                       # (N*Lk, d)
    mask2 = None if mask is None else np.ascontiguousarray(mask).reshape((-1, lk))  # (N, Lk)
    qf = _query_features(qs, w, kind, stabilize)                            # (N*L, F)
    n_feat = qf.shape[-1]
    kf, log_w = _key_features(ks, w, kind, stabilize, key_stabilizer, mask2, lk)
    qf3 = as_kernel_array(qf.reshape((-1, length, n_feat)), dtype)          # (N, L, F)
    kf3, lw2 = as_kernel_array(kf, dtype), as_kernel_array(log_w, dtype)
    v3 = _slabbed(v, dv, dtype)                                             # (N, Lk, dv)
    work = 4.0 * qf3.shape[0] * (length + lk) * n_feat * dv
    if causal:
        chunk = min(chunk_size, length)
        out = _run_slabs(_favor_causal_tasks, qf3, v3, work * (1 + chunk / dv),
                         qf3, kf3, lw2, v3, chunk)
    else:
        out = _run_slabs(_favor_bidirectional_tasks, qf3, v3, work, qf3, kf3, lw2, v3)
    return out.reshape(lead + (length, dv))


@same_contract(reference.favor_attention_recurrent)
def favor_attention_recurrent(q, k, v, w, *, kind: str = "positive") -> np.ndarray:
    """Causal FAVOR+ decoded one position at a time (the RNN view), in numba.

    Same contract as
    :func:`transformer_theory.impl.performer.favor_attention_recurrent`:
    per-query and per-key stabilisers, the state relative to the running max
    of the key stabilisers. Equal to ``favor_attention(..., causal=True)`` up
    to rounding.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Algorithm 1
    (unidirectional); Katharopoulos et al. 2020, Transformers are RNNs, §3.4.
    """
    check_feature_kind(kind)
    q, k, v, w, _, dtype = check_favor_args(q, k, v, w, True, None)
    lead, length, d, dv = q.shape[:-2], q.shape[-2], q.shape[-1], v.shape[-1]
    if q.size == 0 or v.size == 0:
        return reference.favor_attention_recurrent(q, k, v, w, kind=kind)
    scale = dtype.type(d ** -0.25)
    qf = _query_features((q * scale).reshape((-1, d)), w, kind, True)       # (N*L, F)
    kf, log_w = _key_features((k * scale).reshape((-1, d)), w, kind, True, "per-key", None,
                              length)                                       # (N, L, F), (N, L)
    qf3 = as_kernel_array(qf.reshape((-1, length, qf.shape[-1])), dtype)    # (N, L, F)
    kf3, lw2 = as_kernel_array(kf, dtype), as_kernel_array(log_w, dtype)
    v3 = _slabbed(v, dv, dtype)                                             # (N, L, dv)
    out = _run_slabs(_favor_recurrent_tasks, qf3, v3, 4.0 * qf3.size * dv, qf3, kf3, lw2, v3)
    return out.reshape(lead + (length, dv))
