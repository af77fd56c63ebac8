"""The naive half-precision baseline of the error-ratio rule.

At float16 and bfloat16 a claim's error is not held to a fixed table but
compared with the error of a *naive* computation on the same case
(:func:`transformer_theory.theory.tolerance.ratio_tolerance`). This module is
that naive computation: each contract callable the low-precision claims use,
written so that every operation's result is rounded to the input's half dtype
(:func:`rounded`) while each sum and each dot product accumulates in float32.
That is what a straightforward kernel that keeps its intermediates in the
input dtype does, and what FlashAttention's tests measure with their
same-dtype PyTorch reference.

numpy is not trusted to do this implicitly: numpy's float16 ``sum`` and
``matmul`` accumulate in float32, but a bfloat16 ``sum`` accumulates in
bfloat16 (4096 ones sum to 256) and ``bfloat16 @ bfloat16`` returns float32.
So every array here is float32 holding half-precision values, every
reduction is a float32 numpy reduction, and :func:`rounded` is applied
after each step explicitly.

The functions take and return what the contract's callables do (half arrays
in, half arrays out) and share the reference's argument checks.

References
----------
Dao et al. 2022, FlashAttention: Fast and Memory-Efficient Exact Attention
with IO-Awareness (tests: the kernel's error is compared with that of a
same-dtype naive reference against a float32 reference); Higham 2002,
Accuracy and Stability of Numerical Algorithms (the standard model of rounding
after each floating-point operation).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from transformer_theory.impl import gated_ffn as _gated
from transformer_theory.impl import layers as _layers
from transformer_theory.impl import positional as _positional
from transformer_theory.impl.contract import (GroupedQueryParams, KVCache, MultiHeadParams,
                                              allowed_keys, check_decode_args, check_qkv,
                                              resolve_scale, segment_allowed)
from transformer_theory.impl.contract.precision import half_dtype_of
from transformer_theory.impl.kv_cache import init_kv_cache
from transformer_theory.impl.online_softmax import OnlineState

__all__ = ["rounded", "runs_in_half", "BASELINES", "baseline_callables"]

_F32 = np.dtype(np.float32)


def rounded(x, dtype: np.dtype) -> np.ndarray:
    """``x`` rounded to ``dtype`` (round to nearest even), held in float32.

    Parameters
    ----------
    x : array_like
    dtype : float16 or bfloat16

    Returns
    -------
    np.ndarray, float32
    """
    return np.asarray(x, dtype=_F32).astype(dtype).astype(_F32)


def runs_in_half(args: tuple, kwargs: dict) -> bool:
    """Whether a call is a half-precision call: its first argument (the data: ``q``, ``x``,
    a state) holds half-precision arrays only. Otherwise the baseline is the subject's own
    computation: a claim may pass float32 data it derived itself."""
    if not args:
        return False
    try:
        return half_dtype_of(args[0]) is not None
    except TypeError:
        return False


def _half(*values) -> np.dtype:
    """The half dtype of the arguments (``TypeError`` if there is none)."""
    dt = half_dtype_of(*values)
    if dt is None:
        raise TypeError("the naive baseline runs on float16 or bfloat16 inputs only")
    return dt


def _f32(x) -> np.ndarray | None:
    return None if x is None else np.asarray(x).astype(_F32)


def _softmax_rows(s: np.ndarray, allowed: np.ndarray | None, dt) -> np.ndarray:
    """Max-subtracted softmax over the last axis, rounded after each step; 0 on dead rows."""
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)                                   # (..., n)
    m = np.max(s, axis=-1, keepdims=True)                                   # (..., 1)
    m = np.where(np.isfinite(m), m, 0.0)
    e = rounded(np.exp(rounded(s - m, dt)), dt)                             # (..., n)
    if allowed is not None:
        e = np.where(allowed, e, 0.0)
    z = rounded(np.sum(e, axis=-1, keepdims=True, dtype=_F32), dt)         # (..., 1)
    return rounded(np.divide(e, z, out=np.zeros_like(e), where=z > 0), dt)


def softmax(x, axis: int = -1) -> np.ndarray:
    """Naive half-precision softmax along ``axis``."""
    dt = _half(x)
    s = np.moveaxis(_f32(x), axis, -1)
    return np.moveaxis(_softmax_rows(s, None, dt), -1, axis).astype(dt)


def _weights(q, k, mask, causal, scale, bias, dt, softcap=None, segment_ids=None,
             window=None) -> np.ndarray:
    """Naive attention weights of float32 arrays holding half values, (..., Lq, Lk)."""
    lead, lq, lk = q.shape[:-2], q.shape[-2], k.shape[-2]
    s = rounded(np.matmul(q, np.swapaxes(k, -1, -2)), dt)                  # (..., Lq, Lk)
    s = rounded(s * np.float32(resolve_scale(scale, q.shape[-1])), dt)
    if softcap is not None:                                                # c tanh(s / c)
        c = np.float32(softcap)
        s = rounded(c * rounded(np.tanh(rounded(s / c, dt)), dt), dt)
    if bias is not None:
        s = rounded(s + rounded(bias, dt), dt)
    allowed = allowed_keys(mask, causal, lead, lq, lk, window)              # (..., Lq, Lk) or None
    same_doc = segment_allowed(segment_ids, lead, lq, lk)
    if same_doc is not None:
        allowed = same_doc if allowed is None else allowed & same_doc
    if allowed is not None:
        allowed = np.broadcast_to(allowed, s.shape)
    return _softmax_rows(s, allowed, dt)


def _live(x: np.ndarray) -> np.ndarray:
    """Keys and values no query attends may hold NaN (the contract): they contribute 0."""
    return np.where(np.isfinite(x), x, 0.0).astype(_F32)


def attention_weights(q, k, *, mask=None, causal=False, scale=None, bias=None,
                      softcap=None, segment_ids=None, window=None) -> np.ndarray:
    """Naive half-precision attention weights (``mask``, ``causal`` as the contract)."""
    dt = _half(q, k)
    q, k, _ = check_qkv(_f32(q), _f32(k), finite_kv=False)
    return _weights(q, _live(k), mask, causal, scale, _f32(bias), dt, softcap,
                    segment_ids, window).astype(dt)


def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None,
              softcap=None, segment_ids=None, window=None) -> np.ndarray:
    """Naive half-precision attention: scores, max-subtracted exp, row sum, division, P V.

    Each of the five steps is rounded to the input dtype; the row sum and
    both products accumulate in float32. A fully masked row gives zeros.
    """
    dt = _half(q, k, v)
    q, k, v = check_qkv(_f32(q), _f32(k), _f32(v), finite_kv=False)
    p = _weights(q, _live(k), mask, causal, scale, _f32(bias), dt, softcap,
                 segment_ids, window)                                         # (..., Lq, Lk)
    return rounded(np.matmul(p, _live(v)), dt).astype(dt)                    # (..., Lq, Ev)


def _project(x, w, b, dt) -> np.ndarray:
    """Rounded per-head projections ``x W_h + b_h``: (..., heads, L, D)."""
    y = rounded(np.einsum("...le,hed->...hld", x, _f32(w)), dt)            # (..., heads, L, D)
    return y if b is None else rounded(y + _f32(b)[:, None, :], dt)


def _merge(o, w_o, b_o, dt) -> np.ndarray:
    """Rounded ``Concat(heads) W^O + b_o``: (..., L, E)."""
    h, dv = o.shape[-3], o.shape[-1]
    w = _f32(w_o).reshape(h, dv, -1)                                       # (H, Dv, E)
    y = rounded(np.einsum("...hld,hde->...le", o, w), dt)                  # (..., L, E)
    return y if b_o is None else rounded(y + _f32(b_o), dt)


def _heads(x_q, x_kv, params, mask, causal, bias, dt) -> np.ndarray:
    """Naive projected attention of (grouped-query) multi-head attention, (..., Lq, E)."""
    x_q, x_kv = _f32(x_q), _live(_f32(x_kv))
    h, g = params.n_heads, params.n_kv_heads
    q = _project(x_q, params.w_q, params.b_q, dt)                          # (..., H, Lq, Dh)
    k = _project(x_kv, params.w_k, params.b_k, dt)                         # (..., G, Lk, Dh)
    v = _project(x_kv, params.w_v, params.b_v, dt)                         # (..., G, Lk, Dv)
    group = np.arange(h) // (h // g)                                       # head -> kv group
    k, v = k[..., group, :, :], v[..., group, :, :]                        # (..., H, L, D)
    if mask is not None:
        mask = np.expand_dims(np.asarray(mask, dtype=bool), -3)           # (..., 1, Lq, Lk)
    p = _weights(q, k, mask, causal, 1.0 / math.sqrt(params.d_head), _f32(bias), dt)
    o = rounded(np.matmul(p, v), dt)                                       # (..., H, Lq, Dv)
    return _merge(o, params.w_o, params.b_o, dt)


def multi_head_attention(x_q, x_kv, params: MultiHeadParams, *, mask=None, causal=False,
                         bias=None) -> np.ndarray:
    """Naive half-precision multi-head attention (projections, heads, merge rounded)."""
    dt = _half(x_q, x_kv, params)
    return _heads(x_q, x_kv, params, mask, causal, bias, dt).astype(dt)


def grouped_query_attention(x_q, x_kv, params: GroupedQueryParams, *, mask=None,
                            causal=False, bias=None) -> np.ndarray:
    """Naive half-precision grouped-query attention (head h reads group h // (H // G))."""
    dt = _half(x_q, x_kv, params)
    return _heads(x_q, x_kv, params, mask, causal, bias, dt).astype(dt)


def decode_step(x_t, params, cache: KVCache):
    """Naive half-precision decoding step: rounded projections into the cache, then attention."""
    dt = _half(x_t, params, cache)
    x_t = check_decode_args(_f32(x_t), params, cache)
    t, h, g = cache.length, params.n_heads, params.n_kv_heads
    q = _project(x_t, params.w_q, params.b_q, dt)                          # (..., H, 1, Dh)
    k_all, v_all = _f32(cache.k), _f32(cache.v)                            # (..., G, Lmax, D)
    k_all[..., t:t + 1, :] = _project(x_t, params.w_k, params.b_k, dt)
    v_all[..., t:t + 1, :] = _project(x_t, params.w_v, params.b_v, dt)
    group = np.arange(h) // (h // g)
    k, v = k_all[..., group, :t + 1, :], v_all[..., group, :t + 1, :]      # (..., H, t+1, D)
    p = _weights(q, k, None, False, 1.0 / math.sqrt(params.d_head), None, dt)
    o = rounded(np.matmul(p, v), dt)                                       # (..., H, 1, Dv)
    y = _merge(o, params.w_o, params.b_o, dt)                              # (..., 1, E)
    return y.astype(dt), KVCache(k_all.astype(dt), v_all.astype(dt), t + 1)


def layer_norm(x, gamma=None, beta=None, *, eps: float = 1e-5) -> np.ndarray:
    """Naive half-precision LayerNorm: mean, centring, variance, 1/sqrt, scaling rounded."""
    dt = _half(x, *(a for a in (gamma, beta) if a is not None))
    x = _f32(x)
    n = np.float32(x.shape[-1])
    mu = rounded(rounded(np.sum(x, axis=-1, keepdims=True, dtype=_F32), dt) / n, dt)
    d = rounded(x - mu, dt)                                                # (..., E)
    ss = rounded(np.sum(rounded(d * d, dt), axis=-1, keepdims=True, dtype=_F32), dt)
    var = rounded(ss / n, dt)                                              # (..., 1)
    inv = rounded(1.0 / rounded(np.sqrt(rounded(var + np.float32(eps), dt)), dt), dt)
    y = rounded(d * inv, dt)
    if gamma is not None:
        y = rounded(y * _f32(gamma), dt)
    if beta is not None:
        y = rounded(y + _f32(beta), dt)
    return y.astype(dt)


def rms_norm(x, gamma=None, *, eps: float = 1e-6) -> np.ndarray:
    """Naive half-precision RMSNorm: squares, mean, 1/sqrt and scaling rounded."""
    dt = _half(x, *(a for a in (gamma,) if a is not None))
    x = _f32(x)
    n = np.float32(x.shape[-1])
    ss = rounded(np.sum(rounded(x * x, dt), axis=-1, keepdims=True, dtype=_F32), dt)
    ms = rounded(ss / n, dt)                                               # (..., 1)
    root = rounded(np.sqrt(rounded(ms + np.float32(eps), dt)), dt)         # (..., 1)
    inv = rounded(np.divide(1.0, root, out=np.zeros_like(root), where=root > 0), dt)
    y = rounded(x * inv, dt)                                               # (..., E)
    if gamma is not None:
        y = rounded(y * _f32(gamma), dt)
    return y.astype(dt)


def feed_forward(x, params, *, activation="relu") -> np.ndarray:
    """Naive half-precision position-wise FFN: each product, bias and activation rounded."""
    dt = _half(x, params)
    act = _layers.resolve_activation(activation)
    h = rounded(np.matmul(_f32(x), _f32(params.w1)), dt)                   # (..., F)
    if params.b1 is not None:
        h = rounded(h + _f32(params.b1), dt)
    h = rounded(act(h), dt)
    y = rounded(np.matmul(h, _f32(params.w2)), dt)                         # (..., E)
    if params.b2 is not None:
        y = rounded(y + _f32(params.b2), dt)
    return y.astype(dt)


def gated_feed_forward(x, params, *, activation="silu") -> np.ndarray:
    """Naive half-precision gated FFN: both projections, biases, activation, product rounded."""
    dt = _half(x, params)
    act = _gated.GATED_ACTIVATIONS[activation]
    x = _f32(x)

    def linear(w, b):
        y = rounded(np.matmul(x, _f32(w)), dt)                             # (..., F)
        return y if b is None else rounded(y + _f32(b), dt)

    gate = rounded(act(linear(params.w_gate, params.b_gate)), dt)          # (..., F)
    h = rounded(gate * linear(params.w_up, params.b_up), dt)               # (..., F)
    y = rounded(np.matmul(h, _f32(params.w_down)), dt)                     # (..., E)
    if params.b_down is not None:
        y = rounded(y + _f32(params.b_down), dt)
    return y.astype(dt)


def rope(x, positions=None, *, base: float = 10000.0, rotary_dim=None,
         position_scale: float = 1.0) -> np.ndarray:
    """Naive half-precision RoPE: cos and sin rounded, each product and sum rounded.

    The angles are computed in float32 (as every library does: an angle of
    position p rounded to half precision is off by p * eps). ``rotary_dim``
    and ``position_scale`` as in the reference.
    """
    dt = _half(x)
    x = _f32(x)
    length, d = x.shape[-2], x.shape[-1]
    r = d if rotary_dim is None else int(rotary_dim)
    pos = np.arange(length) if positions is None else np.asarray(positions)
    freq = _positional.rope_frequencies(r, base=base).astype(_F32)         # (r/2,)
    angle = (pos.astype(_F32) / np.float32(position_scale))[..., None] * freq  # (L, r/2)
    c, s = rounded(np.cos(angle), dt), rounded(np.sin(angle), dt)
    even, odd = x[..., 0:r:2], x[..., 1:r:2]                               # (..., L, r/2)
    y = x.copy()
    y[..., 0:r:2] = rounded(rounded(even * c, dt) - rounded(odd * s, dt), dt)
    y[..., 1:r:2] = rounded(rounded(even * s, dt) + rounded(odd * c, dt), dt)
    return y.astype(dt)


def attention_backward(q, k, v, d_out, *, mask=None, causal=False, scale=None):
    """Naive half-precision attention gradients (dq, dk, dv), every product rounded."""
    dt = _half(q, k, v, d_out)
    q, k, v = check_qkv(_f32(q), _f32(k), _f32(v), finite_kv=False)
    k, v, g = _live(k), _live(v), _f32(d_out)
    s = np.float32(resolve_scale(scale, q.shape[-1]))
    p = _weights(q, k, mask, causal, scale, None, dt)                      # (..., Lq, Lk)
    dv = rounded(np.matmul(np.swapaxes(p, -1, -2), g), dt)                 # (..., Lk, Ev)
    dp = rounded(np.matmul(g, np.swapaxes(v, -1, -2)), dt)                 # (..., Lq, Lk)
    row = rounded(np.sum(rounded(dp * p, dt), axis=-1, keepdims=True, dtype=_F32), dt)
    ds = rounded(p * rounded(dp - row, dt), dt)                            # (..., Lq, Lk)
    dq = rounded(rounded(np.matmul(ds, k), dt) * s, dt)                    # (..., Lq, E)
    dk = rounded(rounded(np.matmul(np.swapaxes(ds, -1, -2), q), dt) * s, dt)
    return dq.astype(dt), dk.astype(dt), dv.astype(dt)


def online_merge(a: OnlineState, b: OnlineState) -> OnlineState:
    """Naive half-precision merge of two (m, l, o) states: rescalings and sums rounded."""
    dt = _half(a, b)
    am, al, ao, bm, bl, bo = (_f32(t) for t in (*a, *b))
    m = np.maximum(am, bm)                                                 # (..., Lq)
    finite = np.isfinite(m)
    safe = np.where(finite, m, 0.0)
    alpha = np.where(np.isfinite(am), rounded(np.exp(rounded(am - safe, dt)), dt), 0.0)
    beta = np.where(np.isfinite(bm), rounded(np.exp(rounded(bm - safe, dt)), dt), 0.0)
    ll = rounded(rounded(alpha * al, dt) + rounded(beta * bl, dt), dt)
    oo = rounded(rounded(alpha[..., None] * ao, dt) + rounded(beta[..., None] * bo, dt), dt)
    return OnlineState(m.astype(dt), ll.astype(dt), oo.astype(dt))


#: The naive half-precision version of each contract callable that has one.
#: Callables that take no floating arrays (``alibi_bias``, ``init_kv_cache``)
#: are their own baseline: the reference's.
BASELINES: dict[str, Callable] = {
    "softmax": softmax,
    "attention": attention,
    "attention_weights": attention_weights,
    "multi_head_attention": multi_head_attention,
    "grouped_query_attention": grouped_query_attention,
    "decode_step": decode_step,
    "layer_norm": layer_norm,
    "rms_norm": rms_norm,
    "feed_forward": feed_forward,
    "gated_feed_forward": gated_feed_forward,
    "rope": rope,
    "attention_backward": attention_backward,
    "online_merge": online_merge,
    "alibi_bias": _positional.alibi_bias,
    "init_kv_cache": init_kv_cache,
}


def baseline_callables() -> dict[str, Callable]:
    """A copy of :data:`BASELINES` (what the runner swaps in while the baseline runs)."""
    return dict(BASELINES)

