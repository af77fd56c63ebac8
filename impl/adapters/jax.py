"""JAX as a subject: ``jax.nn.dot_product_attention`` and flax-free functions.

Every callable takes and returns numpy arrays (DESIGN.md, "Contract"):

* ``attention`` is ``jax.nn.dot_product_attention`` (XLA implementation).
  JAX's layout is ``(B, T, N, H)`` (batch, length, heads, head width), the
  contract's ``(..., N, T, H)``: the adapter moves the axes (the ``layout``
  convention). JAX needs the value width equal to the key width; a narrower
  or wider ``v`` is padded with zero columns (and ``q``, ``k`` likewise with an
  explicit scale), which changes no score and no output entry.
  ``attention_weights`` is the same call with the identity matrix as values;
  ``grouped_query_attention`` uses its native grouped heads (``K < N``);
* ``softmax`` is ``jax.nn.softmax``, ``layer_norm`` is ``jax.nn.standardize``
  (``(x - mean) * rsqrt(var + eps)``) times ``gamma`` plus ``beta``,
  ``feed_forward`` is ``jnp.dot`` around ``jax.nn.relu``/``gelu``/``tanh``/``sigmoid``;
* the ``*_backward`` callables and ``softmax_jacobian`` are ``jax.vjp`` and
  ``jax.jacrev`` of the same functions.

Compiled once per shape bucket: each callable is one ``jax.jit`` function,
compiled for its arguments padded up to powers of two (lengths, batch, width,
rows; see "one XLA executable per shape bucket" below, with the proof that the
padding changes no output entry in exact arithmetic: outputs agree with unpadded
eager JAX to a few roundings), and kept in an in-process LRU of at most
``_MAX_EXECUTABLES`` executables (:func:`compile_stats` counts them). Eager JAX
compiled every primitive for every shape the claims drew.

Double precision: JAX keeps arrays in float32 unless ``jax_enable_x64`` is
set; :func:`jax_subject` sets it (a process-wide JAX setting) so that float64
inputs stay float64.

Documented differences (reported by ``transformer-theory check jax``)
--------------------------------------------------------------------
* ``jax.nn.dot_product_attention`` always computes its softmax in float32
  ("Softmax ... is always carried out in fp32", in its source), so float64
  inputs get float32-accurate outputs: claims holding float64 attention to
  float64 tolerances report it (``compute_dtype`` option).
* Masked logits are set to a large finite negative number, so a fully masked
  query row returns the *uniform* average of the values (``fully_masked_row =
  "uniform"``), neither zeros nor NaN.
* ``is_causal=True`` is top-left aligned, as the contract; the contract's
  ``"bottom-right"`` is passed as an explicit mask.

References
----------
JAX documentation, ``jax.nn.dot_product_attention``, ``jax.nn.standardize``,
``jax.vjp``; Vaswani et al. 2017, Attention Is All You Need, §3.2.
"""

from __future__ import annotations

import collections
import functools
import importlib.util
import math

import numpy as np

from .._validate import (as_bool_mask, as_float_array, check_batch_dims,
                         common_float_dtype)
from ..contract.validate import causal_alignment, causal_triangle, resolve_scale
from ._torch_common import check_qkv_arrays

__all__ = [
    "available",
    "compile_stats",
    "jax_target",
    "JAX_OPTIONS",
    "attention",
    "attention_weights",
    "grouped_query_attention",
    "softmax",
    "layer_norm",
    "feed_forward",
    "sigmoid",
    "tanh",
    "softmax_jacobian",
    "softmax_backward",
    "attention_backward",
    "layer_norm_backward",
    "feed_forward_backward",
]

#: The conventions of the jax subject, as its callables follow them (see
#: ``impl.contract.conventions.OPTIONS``). Its callables already move JAX's
#: (B, T, N, H) axes into the contract's order, so no ``layout`` is declared.
JAX_OPTIONS = {
    "fully_masked_row": {"attention": "uniform", "attention_weights": "uniform",
                         "attention_backward": "uniform", "grouped_query_attention": "uniform"},
    "causal_alignment": "top-left",
    "gqa_mapping": "h -> h // (H // G)",
    # dot_product_attention multiplies the zero weight of a masked key by its value: a NaN
    # at a padded position reaches every output (seen with jax 0.10.2 on CPU).
    "masked_inputs": "finite",
    "compute_dtype": {"attention": "float32 softmax", "attention_weights": "float32 softmax",
                      "attention_backward": "float32 softmax",
                      "grouped_query_attention": "float32 softmax"},
}


def available() -> bool:
    """Whether JAX can be imported (without importing it)."""
    return importlib.util.find_spec("jax") is not None


def _jax():
    try:
        import jax
    except ImportError as exc:  # pragma: no cover - exercised only without jax
        raise ImportError("the jax adapter needs JAX: pip install 'transformer-theory[jax]' "
                          "(or pip install jax jaxlib)") from exc
    jax.config.update("jax_enable_x64", True)
    return jax


# ---------------------------------------------------------------------------
# one XLA executable per shape bucket
# ---------------------------------------------------------------------------
#
# Eager JAX compiles each primitive of a call for each new input shape, and the
# claims draw a new shape for nearly every case: ``check jax --profile ci``
# spent most of its 9 minutes and 4.7 GB compiling (issue 19). Each callable is
# therefore one function compiled with ``jax.jit`` once per *bucket*: the axes
# that vary from case to case are padded at their end up to a power of two (at
# least the ``_MIN_*`` below) and the result is sliced back. The padding changes
# no output entry in exact arithmetic and adds only exact zeros in floating point
# (the proof stands next to each padding). What may change is the order in which
# XLA adds the real terms (it depends on the compiled shape) and its fusion of
# operations under jit: results agree with unpadded eager JAX to a few roundings
# of the compute dtype, not always bitwise. The executables live in
# ``_EXECUTABLES``, in this process only (no cache on disk), at most
# ``_MAX_EXECUTABLES`` of them: the least recently used is dropped first, so the
# memory stays bounded however many shapes are drawn.

_MIN_BATCH = 16         # independent problems: batch x heads of attention
_MIN_LENGTH = 16        # query and key lengths; the axes of softmax, rows of LayerNorm, FFN
_MIN_WIDTH = 16         # the head width (q, k and v share one width in JAX)
_MIN_SIZE = 256         # elementwise functions: the flattened size
_SMALL = 1 << 18        # elements of the largest padded array for the buckets above
_MAX_EXECUTABLES = 128


def _bucket(n: int, smallest: int) -> int:
    """The least power of two that is at least ``n`` and ``smallest``."""
    n = max(int(n), smallest)
    return 1 << (n - 1).bit_length()


def _buckets(sizes, smallest, arrays=None) -> tuple:
    """The padded sizes of the axes ``sizes``.

    Small problems (every array, a tuple of axes in ``arrays``, at most
    ``_SMALL`` elements once padded) get powers of two of at least ``smallest``:
    the claims' many small shapes share a few executables. Larger ones (the
    Monte Carlo claims' 175,500 problems of one query) keep their sizes: no
    padded copy of a large array, and their few fixed shapes compile once each.
    """
    lifted = tuple(_bucket(n, m) for n, m in zip(sizes, smallest))
    arrays = arrays or (tuple(range(len(sizes))),)
    if max(math.prod(lifted[i] for i in axes) for axes in arrays) <= _SMALL:
        return lifted
    return tuple(int(n) for n in sizes)


def _pad(a: np.ndarray, shape, fill=0.0) -> np.ndarray:
    """``a`` extended at the end of each axis to ``shape``; the new entries are ``fill``."""
    shape = tuple(shape)
    if a.shape == shape:
        return np.ascontiguousarray(a)
    out = np.full(shape, fill, dtype=a.dtype)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """``a`` (R, ...) extended to ``rows`` rows by repeating its last row (zeros if R = 0).

    A repeated row is as finite as a real one (a zero row is not, for LayerNorm
    with ``eps = 0``), so gradients that add a padded row times a zero
    cotangent add exact zeros.
    """
    if a.shape[0] == rows:
        return np.ascontiguousarray(a)
    if a.shape[0] == 0:
        return np.zeros((rows,) + a.shape[1:], a.dtype)
    return np.concatenate([a, np.repeat(a[-1:], rows - a.shape[0], axis=0)])


class _Executables:
    """Compiled XLA executables keyed by (function, static options, argument shapes and dtypes).

    A least-recently-used cache of at most ``maxsize`` executables: an evicted
    one (and the jitted function that traced it) is released. ``compilations``
    counts the misses, that is the calls that traced and compiled.
    """

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.compilations = 0
        self._lru: collections.OrderedDict = collections.OrderedDict()

    def __call__(self, fn, static: tuple, *arrays: np.ndarray):
        key = (fn.__name__, static, tuple((a.shape, a.dtype.str) for a in arrays))
        exe = self._lru.get(key)
        if exe is None:
            exe = _jax().jit(functools.partial(fn, *static)).lower(*arrays).compile()
            self.compilations += 1
            self._lru[key] = exe
            while len(self._lru) > self.maxsize:
                self._lru.popitem(last=False)
        else:
            self._lru.move_to_end(key)
        return exe(*arrays)

    def __len__(self) -> int:
        return len(self._lru)

    def clear(self) -> None:
        self._lru.clear()


_EXECUTABLES = _Executables(_MAX_EXECUTABLES)


def compile_stats() -> dict:
    """How many executables this process compiled, holds, and may hold at most."""
    return {"compilations": _EXECUTABLES.compilations, "cached": len(_EXECUTABLES),
            "maxsize": _EXECUTABLES.maxsize}


def _np(x, dtype) -> np.ndarray:
    return np.asarray(x).astype(dtype, copy=False)


# ---------------------------------------------------------------------------
# attention through jax.nn.dot_product_attention
# ---------------------------------------------------------------------------
#
# The padded call. Batch and heads of the contract's (..., N, L, H) are one axis
# of R independent problems (JAX's B, with one head), padded to Rp; Lq to Tp,
# Lk to Sp, the width max(E, Ev) to Hp (JAX needs one width for q, k and v).
# Why no output entry changes:
# * a padded key j >= Lk has mask True and bias -inf, so its logit is
#   q . 0 * scale + (-inf) = -inf. Every real query row has a finite logit at
#   each real key (its own, or JAX's finite large negative -0.7 * f32max where
#   masked), so the row maximum m is finite and the padded key's weight is
#   exp(-inf - m) = 0 exactly. A fully masked row therefore stays the uniform
#   average over the Lk real keys (JAX's "uniform" convention), not over Sp;
#   this is why padded keys are removed by the bias and not by the mask.
# * a real key's bias is 0 (s + 0 == s) or the caller's bias, and its mask entry
#   is the caller's mask and causal triangle, as unpadded.
# * the padded width columns of q and k are zero: each logit gains terms 0 * 0;
#   those of v are zero and the output columns >= Ev are sliced off.
# * padded query rows and padded problems only produce rows that are sliced
#   off; their q, k, v are zero, so their logits (0 at the real keys) and
#   weights are finite, and in the backward pass their zero cotangents add
#   exact zeros (0 * finite) to dk and dv. Padded keys get dq, dk, dv terms with
#   the factor weight = 0 and are sliced off.
# So every added term of every sum is an exact zero and x + 0 == x: the result
# is the unpadded one whenever XLA adds the real terms in the same order; it may
# not (a dot over Sp keys is blocked differently from one over Lk), hence a few
# roundings (test_bucketed_calls_equal_unpadded_ones; a masked or padded key's
# weight stays exactly 0: test_padded_keys_get_exactly_zero_weight).

def _attention_j(q, k, v, bias, mask, scale):
    """``dot_product_attention`` of q, k, v (B, T, 1, H), bias and mask (B or 1, 1, T or 1, S)."""
    return _jax().nn.dot_product_attention(q, k, v, bias=bias, mask=mask, scale=scale)


def _attention_vjp_j(q, k, v, bias, mask, scale, d_out):
    jax = _jax()
    _, vjp = jax.vjp(lambda a, b, c: _attention_j(a, b, c, bias, mask, scale), q, k, v)
    return vjp(d_out)


def _allowed(mask, causal, lead, lq, lk):
    """The caller's mask AND the causal triangle, (..., Lq, Lk), or None."""
    align = causal_alignment(causal)
    allowed = None if mask is None else as_bool_mask(mask, "mask", tuple(lead) + (lq, lk))
    if align is not None:
        tri = causal_triangle(lq, lk, align)
        allowed = tri if allowed is None else allowed & tri
    return allowed


class _PaddedAttention:
    """The bucketed arguments of one ``dot_product_attention`` call (see the proof above)."""

    def __init__(self, q, k, v, mask, causal, scale, bias, dtype):
        lead, lq, lk, e, ev = q.shape[:-2], q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
        s = resolve_scale(scale, e)
        allowed = _allowed(mask, causal, lead, lq, lk)
        r = math.prod(lead)
        rp, tp, sp, hp = _buckets((r, lq, lk, max(e, ev)),
                                  (_MIN_BATCH, _MIN_LENGTH, _MIN_LENGTH, _MIN_WIDTH),
                                  ((0, 1, 2), (0, 1, 3), (0, 2, 3)))
        self.lead, self.r, self.lq, self.lk, self.e, self.ev = lead, r, lq, lk, e, ev
        self.dtype, self.shape = dtype, (rp, tp, sp, hp)
        self.q = self.bthd(q, tp)
        self.k = self.bthd(k, sp)
        self.v = self.bthd(v, sp)
        m = np.ones((rp, 1, tp, sp), dtype=bool)
        if allowed is not None:
            m[:r, 0, :lq, :lk] = np.broadcast_to(allowed, tuple(lead) + (lq, lk)).reshape(r, lq, lk)
        self.mask = m
        if bias is None:
            b = np.zeros((1, 1, 1, sp), dtype)
        else:
            b = np.zeros((rp, 1, tp, sp), dtype)
            b[:r, 0, :lq, :lk] = bias.reshape(r, lq, lk)
        b[..., lk:] = -np.inf
        self.bias = b
        self.scale = np.asarray(s, dtype)

    def bthd(self, a, length):
        """(..., L, W) -> (Rp, length, 1, Hp) in the compute dtype, zero padded."""
        rp, hp = self.shape[0], self.shape[3]
        a = a.reshape((self.r,) + a.shape[-2:]).astype(self.dtype, copy=False)
        return _pad(a, (rp, length, hp))[:, :, None, :]

    def args(self):
        return self.q, self.k, self.v, self.bias, self.mask, self.scale

    def back(self, out, length, width):
        """(Rp, T, 1, Hp) -> (..., length, width): padding sliced off."""
        o = np.asarray(out)[:self.r, :length, 0, :width]
        return o.reshape(tuple(self.lead) + (length, width)).astype(self.dtype, copy=False)


def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None) -> np.ndarray:
    """``jax.nn.dot_product_attention`` under the numpy contract.

    Returns
    -------
    np.ndarray, (..., Lq, Ev)

    References
    ----------
    JAX documentation, jax.nn.dot_product_attention; Vaswani et al. 2017, §3.2.1.
    """
    if bias is not None:
        q0 = as_float_array(q, "q", ndim_min=2)
        k0 = as_float_array(k, "k", ndim_min=2)
        bias = np.broadcast_to(as_float_array(bias, "bias", ndim_min=0),
                               q0.shape[:-2] + (q0.shape[-2], k0.shape[-2]))
    q, k, v = check_qkv_arrays(q, k, v)
    p = _PaddedAttention(q, k, v, mask, causal, scale, bias, common_float_dtype(q, k, v))
    return p.back(_EXECUTABLES(_attention_j, (), *p.args()), p.lq, p.ev)


def attention_weights(q, k, *, mask=None, causal=False, scale=None, bias=None) -> np.ndarray:
    """The weights of ``jax.nn.dot_product_attention``: the call with identity values.

    Returns
    -------
    np.ndarray, (..., Lq, Lk)

    References
    ----------
    JAX documentation, jax.nn.dot_product_attention.
    """
    k = as_float_array(k, "k", ndim_min=2)
    lk = k.shape[-2]
    eye = np.broadcast_to(np.eye(lk, dtype=k.dtype), k.shape[:-2] + (lk, lk))
    return attention(q, k, eye, mask=mask, causal=causal, scale=scale, bias=bias)


def _gqa_j(has_b_o, xq, xkv, w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o, bias, mask, scale):
    """Projections, grouped ``dot_product_attention`` (K < N heads) and output projection."""
    jax = _jax()
    jnp = jax.numpy
    q = jnp.einsum("bte,ned->btnd", xq, w_q) + b_q                   # (B, T, N, Dh)
    k = jnp.einsum("bse,ked->bskd", xkv, w_k) + b_k                  # (B, S, K, Dh)
    v = jnp.einsum("bse,ked->bskd", xkv, w_v) + b_v                  # (B, S, K, Dv)
    dh, dv = q.shape[-1], v.shape[-1]
    width = max(dh, dv)
    padw = (lambda a, w: jnp.concatenate([a, jnp.zeros(a.shape[:-1] + (w,), a.dtype)], -1)
            if w else a)
    q, k, v = padw(q, width - dh), padw(k, width - dh), padw(v, width - dv)
    o = jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask, scale=scale)[..., :dv]
    y = o.reshape(o.shape[:2] + (o.shape[2] * dv,)) @ w_o                # (B, T, E)
    return y + b_o if has_b_o else y


def grouped_query_attention(x_q, x_kv, params, *, mask=None, causal=False,
                            bias=None) -> np.ndarray:
    """Projections in ``jnp`` and ``dot_product_attention`` with ``K < N`` kv heads.

    Padded like :func:`attention` (batch, Lq, Lk; not the widths, which the
    parameters fix): padded rows of ``x_q``, ``x_kv`` are zero, so a padded key
    is ``b_k`` and its value ``b_v``, finite; its logit is -inf by the bias and
    its weight exactly 0, so it adds 0 * b_v = 0 to every output.

    Returns
    -------
    np.ndarray, (..., Lq, E)

    References
    ----------
    JAX documentation, jax.nn.dot_product_attention (grouped query attention);
    Ainslie et al. 2023, GQA, §2.
    """
    from transformer_theory.impl.attention import GroupedQueryParams, MultiHeadParams

    if not isinstance(params, (GroupedQueryParams, MultiHeadParams)):
        raise TypeError(f"params: expected GroupedQueryParams, got {type(params).__name__}")
    if bias is not None:
        raise ValueError("bias: the jax adapter's grouped_query_attention takes no bias")
    x_q = as_float_array(x_q, "x_q", ndim_min=2)
    x_kv = as_float_array(x_kv, "x_kv", ndim_min=2)
    check_batch_dims([("x_q", x_q), ("x_kv", x_kv)], n_trailing=2)
    arrays = [a for a in (params.w_q, params.w_k, params.w_v, params.b_q, params.b_k,
                          params.b_v, params.w_o, params.b_o) if a is not None]
    dtype = common_float_dtype(x_q, x_kv, *arrays)
    h, g, dh, dv = params.n_heads, params.n_kv_heads, params.d_head, params.d_value
    lead, lq, lk = x_q.shape[:-2], x_q.shape[-2], x_kv.shape[-2]
    allowed = _allowed(mask, causal, lead, lq, lk)
    r = math.prod(lead)
    rp, tp, sp = _buckets((r, lq, lk), (_MIN_BATCH, _MIN_LENGTH, _MIN_LENGTH))
    xq = _pad(x_q.reshape((r, lq, x_q.shape[-1])).astype(dtype), (rp, tp, x_q.shape[-1]))
    xkv = _pad(x_kv.reshape((r, lk, x_kv.shape[-1])).astype(dtype), (rp, sp, x_kv.shape[-1]))
    m = np.ones((rp, 1, tp, sp), dtype=bool)
    if allowed is not None:
        m[:r, 0, :lq, :lk] = np.broadcast_to(allowed, tuple(lead) + (lq, lk)).reshape(r, lq, lk)
    b = np.zeros((1, 1, 1, sp), dtype)
    b[..., lk:] = -np.inf
    zero = (lambda n, d: np.zeros((n, d)))
    weights = [params.w_q, params.w_k, params.w_v,
               params.b_q if params.b_q is not None else zero(h, dh),
               params.b_k if params.b_k is not None else zero(g, dh),
               params.b_v if params.b_v is not None else zero(g, dv),
               params.w_o, params.b_o if params.b_o is not None else np.zeros(params.d_model)]
    weights = [np.asarray(a, dtype=dtype) for a in weights]
    y = _EXECUTABLES(_gqa_j, (params.b_o is not None,), xq, xkv, *weights, b, m,
                     np.asarray(1.0 / math.sqrt(dh), dtype))
    return _np(np.asarray(y)[:r, :lq], dtype).reshape(tuple(lead) + (lq, params.d_model))


# ---------------------------------------------------------------------------
# softmax, LayerNorm, activations, FFN
# ---------------------------------------------------------------------------
#
# Rows are independent in all of them: padded rows (and, for softmax, padded
# logits -inf, whose weight exp(-inf - m) is exactly 0 next to a finite m) change
# no entry of a real row and are sliced off. The normalised axis of LayerNorm and
# the widths of the FFN are not padded (a padded entry would change the mean).

def _logits(x):
    arr = as_float_array(x, "x", ndim_min=1, finite=False)
    if np.any(np.isnan(arr)) or np.any(np.isposinf(arr)):
        raise ValueError("x: contains NaN or +inf values (only -inf, for masked logits, is allowed)")
    return arr


def _axis(axis, ndim: int) -> int:
    ax = int(axis)
    if not -ndim <= ax < ndim:
        raise ValueError(f"axis: {ax} is out of bounds for an array of {ndim} dims")
    return ax % ndim


def _pad_logits(arr: np.ndarray, axis: int, dtype) -> np.ndarray:
    """Each axis to its bucket: the softmax axis with -inf, the others with rows of zeros.

    A padded row is 0 at the real positions and -inf beyond: finite maximum, no NaN.
    """
    shape = _buckets(arr.shape, (_MIN_LENGTH,) * arr.ndim)
    out = np.zeros(shape, dtype)
    index = [slice(None)] * arr.ndim
    index[axis] = slice(arr.shape[axis], None)
    out[tuple(index)] = -np.inf
    out[tuple(slice(0, n) for n in arr.shape)] = arr
    return out


def _real(arr: np.ndarray, shape) -> np.ndarray:
    return np.asarray(arr)[tuple(slice(0, n) for n in shape)]


def _softmax_j(axis, x):
    return _jax().nn.softmax(x, axis=axis)


def softmax(x, axis: int = -1) -> np.ndarray:
    """``jax.nn.softmax``."""
    arr = _logits(x)
    ax = _axis(axis, arr.ndim)
    out = _EXECUTABLES(_softmax_j, (ax,), _pad_logits(arr, ax, arr.dtype))
    return _np(_real(out, arr.shape), arr.dtype)


def _sigmoid_j(x):
    return _jax().nn.sigmoid(x)


def _tanh_j(x):
    return _jax().numpy.tanh(x)


def _elementwise(fn, x) -> np.ndarray:
    """``fn`` on the flattened ``x`` padded with zeros to a bucket of sizes."""
    arr = as_float_array(x, "x", ndim_min=0)
    flat = _pad(arr.reshape(-1), _buckets((arr.size,), (_MIN_SIZE,)))
    return _np(np.asarray(_EXECUTABLES(fn, (), flat))[:arr.size], arr.dtype).reshape(arr.shape)


def sigmoid(x) -> np.ndarray:
    """``jax.nn.sigmoid``."""
    return _elementwise(_sigmoid_j, x)


def tanh(x) -> np.ndarray:
    """``jnp.tanh``."""
    return _elementwise(_tanh_j, x)


def _layer_norm_j(x, gamma, beta, eps):
    y = _jax().nn.standardize(x, axis=-1, epsilon=eps)
    return y * gamma + beta


def _ln_args(x, gamma, beta):
    x = as_float_array(x, "x", ndim_min=1)
    e = x.shape[-1]
    vec = []
    for name, a in (("gamma", gamma), ("beta", beta)):
        if a is not None:
            a = as_float_array(a, name, ndim=1)
            if a.shape != (e,):
                raise ValueError(f"{name}: expected shape ({e},), got {a.shape}")
        vec.append(a)
    dtype = common_float_dtype(x, *vec)
    gamma = np.ones(e) if vec[0] is None else vec[0]
    beta = np.zeros(e) if vec[1] is None else vec[1]
    return x, gamma, beta, dtype


def _rows(x: np.ndarray, dtype) -> np.ndarray:
    """``x`` (..., E) as (R, E) rows in ``dtype``, padded to a bucket by repeating the last row."""
    rows = x.reshape((-1, x.shape[-1])).astype(dtype, copy=False)
    return _pad_rows(rows, _buckets(rows.shape, (_MIN_LENGTH, 1))[0])


def layer_norm(x, gamma=None, beta=None, *, eps: float = 1e-5) -> np.ndarray:
    """``jax.nn.standardize`` over the last axis, times gamma plus beta."""
    x, gamma, beta, dtype = _ln_args(x, gamma, beta)
    y = _EXECUTABLES(_layer_norm_j, (), _rows(x, dtype), gamma.astype(dtype),
                     beta.astype(dtype), np.asarray(float(eps), dtype))
    return _np(np.asarray(y)[:math.prod(x.shape[:-1])], dtype).reshape(x.shape)


def _activation(name):
    jax = _jax()
    table = {"relu": jax.nn.relu, "gelu": lambda z: jax.nn.gelu(z, approximate=False),
             "tanh": jax.numpy.tanh, "sigmoid": jax.nn.sigmoid}
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"activation: expected one of {tuple(table)}, got {name!r}")
    return table[name]


def _ffn_j(activation, x, w1, b1, w2, b2):
    return _activation(activation)(x @ w1 + b1) @ w2 + b2


def _ffn_args(x, params):
    from transformer_theory.impl.layers import FFNParams

    if not isinstance(params, FFNParams):
        raise TypeError(f"params: expected FFNParams, got {type(params).__name__}")
    x = as_float_array(x, "x", ndim_min=1)
    w1 = as_float_array(params.w1, "params.w1", ndim=2)
    w2 = as_float_array(params.w2, "params.w2", ndim=2)
    if w1.shape[0] != x.shape[-1] or w2.shape != (w1.shape[1], x.shape[-1]):
        raise ValueError(f"params: expected w1 ({x.shape[-1]}, F) and w2 (F, {x.shape[-1]}), "
                         f"got {w1.shape} and {w2.shape}")
    b1 = np.zeros(w1.shape[1]) if params.b1 is None else as_float_array(params.b1, "params.b1", ndim=1)
    b2 = np.zeros(w2.shape[1]) if params.b2 is None else as_float_array(params.b2, "params.b2", ndim=1)
    dtype = common_float_dtype(*(a for a in (x, params.w1, params.b1, params.w2, params.b2)
                                 if a is not None))
    return x, w1, b1, w2, b2, dtype


def feed_forward(x, params, *, activation="relu") -> np.ndarray:
    """``act(x W1 + b1) W2 + b2`` in ``jnp``."""
    _activation(activation)
    x, w1, b1, w2, b2, dtype = _ffn_args(x, params)
    y = _EXECUTABLES(_ffn_j, (activation,), _rows(x, dtype),
                     *(a.astype(dtype) for a in (w1, b1, w2, b2)))
    return _np(np.asarray(y)[:math.prod(x.shape[:-1])], dtype).reshape(x.shape)


# ---------------------------------------------------------------------------
# gradients: jax.vjp and jax.jacrev
# ---------------------------------------------------------------------------
#
# The same paddings; the cotangent of every padded entry is zero. Sums over rows
# (dgamma, dbeta, dW, db) then add a padded row's finite value times 0, exactly
# 0; the softmax gradient y (g - sum(y g)) is 0 at a padded logit, where y = 0.

def _softmax_jacobian_j(rows):
    jax = _jax()
    return jax.vmap(jax.jacrev(jax.nn.softmax))(rows)


def softmax_jacobian(x) -> np.ndarray:
    """``jax.vmap(jax.jacrev(jax.nn.softmax))`` over the rows of the last axis."""
    arr = _logits(x)
    n = arr.shape[-1]
    rows = arr.reshape(-1, n)
    jac = _EXECUTABLES(_softmax_jacobian_j, (), _pad_logits(rows, 1, arr.dtype))
    return _np(_real(jac, rows.shape + (n,)), arr.dtype).reshape(arr.shape + (n,))


def _softmax_vjp_j(axis, x, d_out):
    jax = _jax()
    _, vjp = jax.vjp(lambda z: jax.nn.softmax(z, axis=axis), x)
    return vjp(d_out)[0]


def softmax_backward(x, d_out, axis: int = -1) -> np.ndarray:
    """``jax.vjp`` of ``jax.nn.softmax``."""
    arr = _logits(x)
    g = as_float_array(d_out, "d_out", ndim_min=1)
    if g.shape != arr.shape:
        raise ValueError(f"d_out: expected the forward output's shape {arr.shape}, got {g.shape}")
    dtype = common_float_dtype(arr, g)
    ax = _axis(axis, arr.ndim)
    xp = _pad_logits(arr, ax, dtype)
    dx = _EXECUTABLES(_softmax_vjp_j, (ax,), xp, _pad(g.astype(dtype, copy=False), xp.shape))
    return _np(_real(dx, arr.shape), dtype)


def attention_backward(q, k, v, d_out, *, mask=None, causal=False, scale=None):
    """``jax.vjp`` of ``jax.nn.dot_product_attention``: ``(dq, dk, dv)``."""
    q, k, v = check_qkv_arrays(q, k, v)
    g = as_float_array(d_out, "d_out", ndim_min=2)
    if g.shape != q.shape[:-1] + (v.shape[-1],):
        raise ValueError(f"d_out: expected the forward output's shape "
                         f"{q.shape[:-1] + (v.shape[-1],)}, got {g.shape}")
    p = _PaddedAttention(q, k, v, mask, causal, scale, None, common_float_dtype(q, k, v, g))
    dq, dk, dv = _EXECUTABLES(_attention_vjp_j, (), *p.args(), p.bthd(g, p.shape[1]))
    return p.back(dq, p.lq, p.e), p.back(dk, p.lk, p.e), p.back(dv, p.lk, p.ev)


def _row_gradient(x, d_out, dtype):
    """The rows of ``x`` and of the output gradient ``d_out`` (its shape), padded alike.

    Parameters
    ----------
    x : np.ndarray, (..., E)
        The validated input of a row-wise layer.
    d_out : array_like, (..., E)
    dtype : np.dtype
        The forward computation's dtype; float32 becomes float64 when
        ``d_out`` is float64.

    Returns
    -------
    xr, gr : np.ndarray, (rows, E)
        As :func:`_rows` pads ``x``.
    dtype : np.dtype
    """
    g = as_float_array(d_out, "d_out", ndim_min=1)
    if g.shape != x.shape:
        raise ValueError(f"d_out: expected the forward output's shape {x.shape}, got {g.shape}")
    dtype = common_float_dtype(x, g) if dtype == np.float32 else dtype
    xr = _rows(x, dtype)                                              # (rows, E)
    gr = _pad(g.reshape(-1, g.shape[-1]).astype(dtype, copy=False), xr.shape)
    return xr, gr, dtype


def _layer_norm_vjp_j(x, gamma, beta, eps, d_out):
    jax = _jax()
    _, vjp = jax.vjp(lambda a, b, c: _layer_norm_j(a, b, c, eps), x, gamma, beta)
    return vjp(d_out)


def layer_norm_backward(x, d_out, gamma=None, beta=None, *, eps: float = 1e-5):
    """``jax.vjp`` of :func:`layer_norm`: ``(dx, dgamma, dbeta)``."""
    x, gamma, beta, dtype = _ln_args(x, gamma, beta)
    xr, gr, dtype = _row_gradient(x, d_out, dtype)
    dx, dgamma, dbeta = _EXECUTABLES(_layer_norm_vjp_j, (), xr, gamma.astype(dtype),
                                     beta.astype(dtype), np.asarray(float(eps), dtype), gr)
    dx = np.asarray(dx)[:math.prod(x.shape[:-1])].reshape(x.shape)
    return tuple(_np(a, dtype) for a in (dx, dgamma, dbeta))


def _ffn_vjp_j(activation, x, w1, b1, w2, b2, d_out):
    jax = _jax()
    _, vjp = jax.vjp(lambda *a: _ffn_j(activation, *a), x, w1, b1, w2, b2)
    return vjp(d_out)


def feed_forward_backward(x, params, d_out, *, activation="relu"):
    """``jax.vjp`` of :func:`feed_forward`: ``(dx, FFNParams of gradients)``."""
    from transformer_theory.impl.layers import FFNParams

    _activation(activation)
    x, w1, b1, w2, b2, dtype = _ffn_args(x, params)
    xr, gr, dtype = _row_gradient(x, d_out, dtype)
    grads = _EXECUTABLES(_ffn_vjp_j, (activation,), xr,
                         *(a.astype(dtype) for a in (w1, b1, w2, b2)), gr)
    dx, dw1, db1, dw2, db2 = (_np(a, dtype) for a in grads)
    dx = dx[:math.prod(x.shape[:-1])].reshape(x.shape)
    return dx, FFNParams(w1=dw1, b1=None if params.b1 is None else db1, w2=dw2,
                         b2=None if params.b2 is None else db2)


# ---------------------------------------------------------------------------
# the subject
# ---------------------------------------------------------------------------

def jax_target() -> dict:
    """JAX as a target of the suite (``transformer-theory check jax``).

    Sets ``jax_enable_x64`` (process-wide) so that float64 stays float64. The
    adapter does not build the Subject itself (``impl`` never imports
    ``theory``): ``theory.builtin_subjects.jax_subject`` wraps what this returns.

    Returns
    -------
    dict
        ``name``, ``description``, ``callables`` and ``options``
        (:data:`JAX_OPTIONS`).
    """
    jax = _jax()
    return dict(
        name="jax",
        description=f"JAX {jax.__version__} on CPU: jax.nn.dot_product_attention, "
                    f"jax.nn.softmax/standardize, jax.vjp",
        options=JAX_OPTIONS,
        callables={
            "softmax": softmax,
            "attention": attention,
            "attention_weights": attention_weights,
            "grouped_query_attention": grouped_query_attention,
            "layer_norm": layer_norm,
            "feed_forward": feed_forward,
            "sigmoid": sigmoid,
            "tanh": tanh,
            "softmax_jacobian": softmax_jacobian,
            "softmax_backward": softmax_backward,
            "attention_backward": attention_backward,
            "layer_norm_backward": layer_norm_backward,
            "feed_forward_backward": feed_forward_backward,
        },
    )
