"""Mutants of the recurrence claims: an attention that ignores the causal flag, and broken
versions of the reference constructions (the subject's ``causal_linear_attention_recurrent``,
``transformer_encoder_graph`` and ``state_jacobian_norms``)."""

from __future__ import annotations

import numpy as np

from transformer_theory.impl import attention as A
from transformer_theory.impl import recurrence as R

from . import Mutant


def _ignores_causal(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        return A.attention(q, k, v, mask=mask, scale=scale, bias=bias)   # causal dropped
    return ref.replace(attention=attention)


def linear_attention_read_before_write(q, k, v, *, feature_map=R.elu_plus_one):
    """The RNN reads its state before adding position ``i``: output ``i`` sees only ``j < i``."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    phi_q, phi_k = feature_map(q), feature_map(k)                       # (..., L, R)
    s = np.zeros((*q.shape[:-2], phi_q.shape[-1], v.shape[-1]), dtype=v.dtype)  # (..., R, Ev)
    z = np.zeros((*q.shape[:-2], phi_q.shape[-1]), dtype=v.dtype)               # (..., R)
    out = np.empty(v.shape, dtype=v.dtype)                                       # (..., L, Ev)
    for i in range(q.shape[-2]):
        num = np.einsum("...r,...re->...e", phi_q[..., i, :], s)        # S_{i-1}: the bug
        den = np.einsum("...r,...r->...", phi_q[..., i, :], z)[..., None]
        out[..., i, :] = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        s = s + phi_k[..., i, :, None] * v[..., i, None, :]
        z = z + phi_k[..., i, :]
    return out


def encoder_graph_sequential_softmax(n, depth):
    """Each attention row accumulated by a left-to-right scan over the keys."""
    return R.transformer_encoder_graph(n, depth, attention_row="scan")


def jacobian_norms_elementwise(w, steps, *, ord=2):
    """Back-propagation through time with ``W * J`` (elementwise) instead of ``W @ J``."""
    w = np.asarray(w, dtype=np.float64)
    jac = np.eye(w.shape[0])                                            # (n, n)
    norms = np.empty(steps)
    for t in range(steps):
        jac = w * jac                                                   # the bug
        norms[t] = np.linalg.norm(jac, ord=ord)
    return norms


MUTANTS = [
    Mutant("attention_ignores_causal", "causal=True accepted but not applied",
           ("recurrence.linear_attention_rnn",), _ignores_causal),
    Mutant("linear_rnn_read_before_write",
           "the RNN reads its state before adding position i (output i sees only j < i)",
           ("recurrence.linear_attention_rnn",),
           lambda ref: ref.replace(causal_linear_attention_recurrent=
                                   linear_attention_read_before_write)),
    Mutant("sequential_softmax_row",
           "each softmax row accumulated by a left-to-right scan over the keys",
           ("recurrence.critical_path", "counting.layer_type_table"),
           lambda ref: ref.replace(transformer_encoder_graph=encoder_graph_sequential_softmax)),
    Mutant("bptt_elementwise_product",
           "back-propagation through time multiplies Jacobians elementwise (W * J, not W @ J)",
           ("recurrence.gradient_spectral_radius",),
           lambda ref: ref.replace(state_jacobian_norms=jacobian_norms_elementwise)),
]


def conv1d_flipped_kernel(x, kernel, **kw):
    """A true convolution (kernel flipped) where the contract's layer is a cross-correlation."""
    from transformer_theory.impl.constructions import convolution as CV
    return CV.conv1d_as_attention(x, np.asarray(kernel)[..., ::-1], **kw)


class _DepthOnlyRecognizer:
    """Accepts iff the brackets balance within depth D, whatever their types (log(D+2) bits)."""

    def __init__(self, k, D):
        self.k, self.D = k, D

    def accepts(self, tokens):
        depth = 0
        for t in np.asarray(tokens).tolist():
            depth += 1 if t < self.k else -1
            if depth < 0 or depth > self.D:
                return False
        return depth == 0

    def accepts_batch(self, tokens, **kw):
        return np.array([self.accepts(t) for t in np.asarray(tokens)], dtype=bool)


def depth_only_recognizer(k, D, attention="hard", n_max=None, **kw):
    return _DepthOnlyRecognizer(k, D)


MUTANTS += [
    Mutant("conv_flipped_kernel",
           "the convolution applies its kernel flipped (a true convolution, not the contract's "
           "cross-correlation)",
           ("recurrence.stateless_rnn_is_convolution",),
           lambda ref: ref.replace(conv1d_as_attention=conv1d_flipped_kernel)),
    Mutant("dyck_depth_only",
           "a Dyck recogniser that keeps only the depth, not the bracket types",
           ("recurrence.dyck_memory_lower_bound",),
           lambda ref: ref.replace(build_dyck_recognizer=depth_only_recognizer)),
]


def elman_rnn_without_recurrence(x, w, u, **kw):
    """``h_t = tanh(U x_t)``: the state update ignores ``h_{t-1}`` (a position-wise layer)."""
    return R.elman_rnn(x, np.zeros_like(np.asarray(w, dtype=np.float64)), u, **kw)


def elman_rnn_state_sign_lost(x, w, u, **kw):
    """``h_t = tanh(-|W| h_{t-1} + U x_t)``: the recurrent weight's sign dropped and negated."""
    return R.elman_rnn(x, -np.abs(np.asarray(w, dtype=np.float64)), u, **kw)


MUTANTS += [
    Mutant("elman_rnn_without_recurrence",
           "the RNN's update ignores its previous state: every position gets the same state",
           ("recurrence.rnn_carries_position",),
           lambda ref: ref.replace(elman_rnn=elman_rnn_without_recurrence)),
    Mutant("elman_rnn_state_sign_lost",
           "the recurrent weight enters as -|W|: the states oscillate instead of increasing",
           ("recurrence.rnn_carries_position",),
           lambda ref: ref.replace(elman_rnn=elman_rnn_state_sign_lost)),
]
