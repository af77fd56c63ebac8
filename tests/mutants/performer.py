"""Mutants of the Performer random features, the orthogonal sampler and FAVOR+.

Each is a bug that real implementations have (or a near relative of one); the
claims named must report ``failed``. ``orthogonal_unsigned_qr`` and
``favor_sequence_stabilizer`` are also loaded by target
(``mutants.performer:orthogonal_unsigned_qr --as orthogonal_gaussian``) and run
through ``check``.
"""

from __future__ import annotations

import math

import numpy as np

from transformer_theory.impl import performer as F

from . import Mutant, replacing


# --------------------------------------------------------------------------
# the orthogonal sampler
# --------------------------------------------------------------------------

def orthogonal_unsigned_qr(m, d, rng, *, scaling="chi", dtype=np.float64):
    """Blocks Q of np.linalg.qr(G) without the sign correction Q diag(sign(diag R)).

    Householder QR fixes the signs of R's diagonal, so Q is not Haar: entry
    (0, 0) of every block always has the same sign.
    """
    blocks = [np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(-(-m // d))]
    directions = np.concatenate(blocks, axis=0)[:m]                     # (m, d)
    norms = np.sqrt(rng.chisquare(d, size=m)) if scaling == "chi" else np.full(m, math.sqrt(d))
    return (directions * norms[:, None]).astype(dtype)


def _orthogonal_unit_norms(m, d, rng, *, scaling="chi", dtype=np.float64):
    """Haar directions, but the chi (or sqrt(d)) row norms are never applied."""
    w = F.orthogonal_gaussian(m, d, rng, scaling=scaling)
    return (w / np.linalg.norm(w, axis=1, keepdims=True)).astype(dtype)


def _iid_gaussian_rows(m, d, rng, *, scaling="chi", dtype=np.float64):
    """iid N(0, I_d) rows, never orthogonalised: unbiased, with Lemma 2's larger MSE.

    Marginally every row is right (Gaussian, chi_d norm), so only the pairs of
    rows of a block tell it from orthogonal features; ``scaling`` is ignored.
    """
    return rng.standard_normal((m, d)).astype(dtype)


def _orthogonal_ignores_fixed(m, d, rng, *, scaling="chi", dtype=np.float64):
    """scaling='fixed' accepted but chi norms drawn anyway."""
    return F.orthogonal_gaussian(m, d, rng, scaling="chi", dtype=dtype)


# --------------------------------------------------------------------------
# feature maps
# --------------------------------------------------------------------------

def _features_with(trig=None, positive=None, hyperbolic=None):
    """random_features with some kinds replaced by ``fn(x, w, stabilizer)``."""
    replaced = {"trig": trig, "positive": positive, "hyperbolic": hyperbolic}

    def random_features(x, w, kind="positive", *, stabilizer=None):
        fn = replaced.get(kind)
        if fn is None:
            return F.random_features(x, w, kind, stabilizer=stabilizer)
        x, w = np.asarray(x), np.asarray(w)
        return fn(x, w, stabilizer).astype(np.result_type(x, w), copy=False)
    return random_features


def _trig_without_h(x, w, stabilizer):
    wx = x @ w.T                                                         # (..., L, m)
    return np.concatenate([np.sin(wx), np.cos(wx)], axis=-1) / math.sqrt(w.shape[0])


def _exp_without_half_norm(sign_blocks):
    def features(x, w, stabilizer):
        wx = x @ w.T                                                     # (..., L, m)
        expo = np.concatenate([s * wx for s in sign_blocks], axis=-1)    # no - ||x||^2 / 2
        if stabilizer is not None:
            expo = expo - stabilizer
        return np.exp(expo) / math.sqrt(expo.shape[-1])
    return features


def _hyperbolic_without_sign_flip(x, w, stabilizer):
    """Both halves exp(+W x - ||x||^2/2): the positive map with m vectors, twice."""
    half = 0.5 * np.sum(x * x, axis=-1, keepdims=True)
    expo = x @ w.T - half
    if stabilizer is not None:
        expo = expo - stabilizer
    return np.concatenate([np.exp(expo), np.exp(expo)], axis=-1) / math.sqrt(2 * w.shape[0])


def _positive_expm1(x, w, stabilizer):
    """exp replaced by expm1 (a 'numerically safer exp' typo): features can be negative."""
    expo = x @ w.T - 0.5 * np.sum(x * x, axis=-1, keepdims=True)
    if stabilizer is not None:
        expo = expo - stabilizer
    return np.expm1(expo) / math.sqrt(w.shape[0])


def _positive_over_m(x, w, stabilizer):
    """Normalised by 1/m instead of 1/sqrt(m): the estimate shrinks by a factor m."""
    expo = x @ w.T - 0.5 * np.sum(x * x, axis=-1, keepdims=True)
    if stabilizer is not None:
        expo = expo - stabilizer
    return np.exp(expo) / w.shape[0]


#: The fixed feature budget of :func:`_positive_capped_at_64`.
_FEATURE_CAP = 64


def _positive_capped_at_64(x, w, stabilizer):
    """A fixed budget of 64 random vectors: rows of ``W`` beyond the 64th are ignored.

    Each estimate stays unbiased (the 64 features used are normalised by
    1/sqrt(64)), so the normalised output is as good as with m = 64 at every
    m >= 64: its error stops decaying, and MSE(64)/MSE(256) is ~1, not ~4.
    """
    used = w[:_FEATURE_CAP]                                              # (min(m, 64), d)
    expo = x @ used.T - 0.5 * np.sum(x * x, axis=-1, keepdims=True)      # (..., L, 64)
    if stabilizer is not None:
        expo = expo - stabilizer
    return np.exp(expo) / math.sqrt(used.shape[0])


def _stabilizer_ignored(x, w, stabilizer):
    return F.random_features(x, w, "positive")


# --------------------------------------------------------------------------
# FAVOR+
# --------------------------------------------------------------------------

def _scaled(q, k, w, kind, power):
    q, k = np.asarray(q), np.asarray(k)
    scale = q.shape[-1] ** -power
    return F.random_features(q * scale, w, kind), F.random_features(k * scale, w, kind)


def _favor_from(a_hat_fn, normalise=True, power=0.25):
    """favor_attention written explicitly; ``a_hat_fn(a_hat, causal)`` may break A_hat."""
    def favor_attention(q, k, v, w, *, causal=False, kind="positive", mask=None, **_):
        qf, kf = _scaled(q, k, w, kind, power)                           # (..., L, F)
        a_hat = qf @ np.swapaxes(kf, -1, -2)                             # (..., L, Lk)
        a_hat = a_hat_fn(a_hat, causal)
        if mask is not None:
            a_hat = a_hat * np.asarray(mask)[..., None, :]
        out = a_hat @ np.asarray(v)                                      # (..., L, dv)
        if normalise:
            den = a_hat.sum(axis=-1, keepdims=True)
            out = np.divide(out, den, out=np.zeros_like(out), where=den != 0)
        return out.astype(np.asarray(q).dtype)
    return favor_attention


def _lower(a_hat, causal):
    return np.tril(a_hat) if causal else a_hat


def _strictly_lower(a_hat, causal):
    return np.tril(a_hat, -1) if causal else a_hat                       # exclusive prefix sum


def favor_sequence_stabilizer(q, k, v, w, *, causal=False, kind="positive", mask=None, **_):
    """Causal FAVOR+ whose key stabiliser is the maximum over the whole sequence: a
    future key that raises it underflows the earlier keys' features."""
    return F.favor_attention(q, k, v, w, causal=causal, kind=kind, mask=mask,
                             key_stabilizer="sequence")


def _favor_ignores_mask(q, k, v, w, *, causal=False, kind="positive", mask=None, **kw):
    return F.favor_attention(q, k, v, w, causal=causal, kind=kind)


def _favor_mixes_batch(q, k, v, w, *, causal=False, kind="positive", mask=None, **kw):
    """Bidirectional key sums taken over the batch axes too (an einsum over '...')."""
    if causal or np.asarray(q).ndim < 3:
        return F.favor_attention(q, k, v, w, causal=causal, kind=kind, mask=mask)
    qf, kf = _scaled(q, k, w, kind, 0.25)                                # (..., L, F)
    if mask is not None:
        kf = kf * np.asarray(mask)[..., None]
    lead = qf.shape[:-2]
    v = np.asarray(v)
    kv = kf.reshape(-1, kf.shape[-1]).T @ v.reshape(-1, v.shape[-1])   # summed over the batch
    k1 = kf.reshape(-1, kf.shape[-1]).sum(axis=0)
    out = (qf @ kv) / (qf @ k1)[..., None]
    return np.broadcast_to(out, lead + out.shape[-2:]).astype(np.asarray(q).dtype)


def _recurrent_state_lag(q, k, v, w, *, kind="positive"):
    """Reads the state before adding the current key: output t sees keys < t only."""
    qf, kf = _scaled(q, k, w, kind, 0.25)                                # (..., L, F)
    v = np.asarray(v)
    state_kv = np.zeros(qf.shape[:-2] + (qf.shape[-1], v.shape[-1]))
    state_k = np.zeros(qf.shape[:-2] + (qf.shape[-1],))
    out = np.zeros(qf.shape[:-1] + (v.shape[-1],))
    for t in range(qf.shape[-2]):
        num = np.einsum("...f,...fv->...v", qf[..., t, :], state_kv)
        den = np.einsum("...f,...f->...", qf[..., t, :], state_k)[..., None]
        out[..., t, :] = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
        state_kv = state_kv + kf[..., t, :, None] * v[..., t, None, :]
        state_k = state_k + kf[..., t, :]
    return out.astype(np.asarray(q).dtype)


MUTANTS = [
    Mutant("qr_without_sign_fix",
           "an unsigned-QR orthogonal matrix (not Haar): blocks from np.linalg.qr without "
           "Q diag(sign(diag R)), so the first entry of every block is always negative "
           "(LAPACK's Householder sign)",
           ("performer.orthogonal_features",),
           replacing(orthogonal_gaussian=orthogonal_unsigned_qr),
           "mutants.performer:orthogonal_unsigned_qr", "orthogonal_gaussian",
           "performer.orthogonal_features"),
    Mutant("orthogonal_unit_norms", "orthogonal rows left at unit norm (chi_d norms never drawn)",
           ("performer.orthogonal_features", "performer.orthogonal_mse_exact",
            "performer.orthogonal_mse_bound"),
           lambda ref: ref.replace(orthogonal_gaussian=_orthogonal_unit_norms)),
    Mutant("orthogonal_gaussian_iid",
           "orthogonal_gaussian returns iid Gaussian rows (the orthogonalisation skipped): "
           "each estimate unbiased, but the MSE is Lemma 2's, not the orthogonal one",
           ("performer.orthogonal_mse_exact", "performer.orthogonal_mse_bound"),
           replacing(orthogonal_gaussian=_iid_gaussian_rows)),
    Mutant("fixed_scaling_ignored", "scaling='fixed' silently gives chi_d norms",
           ("performer.smreg_kernel",),
           lambda ref: ref.replace(orthogonal_gaussian=_orthogonal_ignores_fixed)),
    Mutant("trig_without_h", "trigonometric features without the factor h(x) = exp(||x||^2/2)",
           ("performer.unbiased", "performer.mse_lemma2", "performer.regimes"),
           lambda ref: ref.replace(random_features=_features_with(trig=_trig_without_h))),
    Mutant("missing_half_norm", "positive and hyperbolic features exp(+-W x) without -||x||^2/2",
           ("performer.unbiased", "performer.regimes", "performer.attention_error_rate"),
           lambda ref: ref.replace(random_features=_features_with(
               positive=_exp_without_half_norm((1,)),
               hyperbolic=_exp_without_half_norm((1, -1))))),
    Mutant("hyperbolic_without_sign_flip",
           "hyperbolic features [exp(Wx), exp(Wx)] instead of [exp(Wx), exp(-Wx)] (times "
           "exp(-||x||^2/2)): unbiased, but only as good as positive features with m vectors",
           ("performer.hyperbolic_beats_positive",),
           lambda ref: ref.replace(random_features=_features_with(
               hyperbolic=_hyperbolic_without_sign_flip))),
    Mutant("positive_expm1", "positive features computed with expm1 instead of exp",
           ("performer.positive_normalizer_positive",),
           lambda ref: ref.replace(random_features=_features_with(positive=_positive_expm1))),
    Mutant("features_capped_at_64",
           "a fixed budget of 64 random features: the rows of W beyond the 64th are silently "
           "dropped (a hard-coded nb_features), so the output error stops decaying at m = 64",
           ("performer.attention_error_rate",),
           lambda ref: ref.replace(random_features=_features_with(
               positive=_positive_capped_at_64))),
    Mutant("features_over_m", "positive features normalised by 1/m instead of 1/sqrt(m)",
           ("performer.unbiased",),
           lambda ref: ref.replace(random_features=_features_with(positive=_positive_over_m))),
    Mutant("stabilizer_ignored", "the stabilizer argument of random_features is accepted and "
           "ignored", ("performer.sequence_stabilizer_leaks",),
           lambda ref: ref.replace(random_features=_features_with(positive=_stabilizer_ignored))),
    Mutant("sequence_key_stabilizer",
           "a causal Performer with a sequence-wide key stabiliser: all keys divided by "
           "exp(max over the whole sequence), as the google-research reference does",
           ("performer.causality",), replacing(favor_attention=favor_sequence_stabilizer),
           "mutants.performer:favor_sequence_stabilizer", "favor_attention",
           "performer.causality"),
    Mutant("missing_normalizer", "FAVOR+ returns Q'((K')^T V) without D^-1",
           ("performer.favor_explicit", "performer.normalization"),
           lambda ref: ref.replace(favor_attention=_favor_from(_lower, normalise=False))),
    Mutant("sqrt_d_scaling", "queries and keys each scaled by d^{-1/2} (logits by 1/d)",
           ("performer.favor_explicit",),
           lambda ref: ref.replace(favor_attention=_favor_from(_lower, power=0.5))),
    Mutant("exclusive_prefix_sum", "causal prefix sums over j < i instead of j <= i",
           ("performer.causal_prefix_sum",),
           lambda ref: ref.replace(favor_attention=_favor_from(_strictly_lower))),
    Mutant("recurrent_state_lag", "recurrent decoding reads the state before adding key t",
           ("performer.recurrent_equals_parallel",),
           lambda ref: ref.replace(favor_attention_recurrent=_recurrent_state_lag)),
    Mutant("favor_ignores_mask", "the key-padding mask is accepted and ignored",
           ("performer.padding_and_batch",),
           lambda ref: ref.replace(favor_attention=_favor_ignores_mask)),
    Mutant("favor_mixes_batch", "key sums (K')^T V taken over the batch axes as well",
           ("performer.padding_and_batch",),
           lambda ref: ref.replace(favor_attention=_favor_mixes_batch)),
]
