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

import importlib.util
import math

import numpy as np

from .._validate import (as_bool_mask, as_float_array, check_batch_dims,
                         common_float_dtype)
from ..contract.validate import causal_alignment, resolve_scale
from ._torch_common import check_qkv_arrays

__all__ = [
    "available",
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


def _j(a, dtype):
    import jax.numpy as jnp

    return jnp.asarray(np.asarray(a, dtype=dtype))


def _np(x, dtype) -> np.ndarray:
    return np.asarray(x).astype(dtype, copy=False)


# ---------------------------------------------------------------------------
# attention through jax.nn.dot_product_attention
# ---------------------------------------------------------------------------

def _bthd(a: np.ndarray) -> np.ndarray:
    """Contract (..., N, T, H) -> JAX (B, T, N, H): missing dims of size 1, extra ones in B."""
    full = a.reshape((1,) * max(0, 4 - a.ndim) + a.shape)
    full = full.reshape((-1,) + full.shape[-3:])                    # (B, N, T, H)
    return np.swapaxes(full, 1, 2)                                  # (B, T, N, H)


def _mask4(allowed, lead, lq, lk):
    """The contract's (..., Lq, Lk) mask as JAX's (B, N, T, S)."""
    full = np.broadcast_to(allowed, tuple(lead) + (lq, lk))
    full = full.reshape((1,) * max(0, 4 - full.ndim) + full.shape)
    return np.ascontiguousarray(full.reshape((-1,) + full.shape[-3:]))


def _dpa_args(q, k, v, mask, causal, scale):
    """Validated, padded JAX arguments for one dot_product_attention call."""
    q, k, v = check_qkv_arrays(q, k, v)
    lead, lq, lk, e, ev = q.shape[:-2], q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    dtype = common_float_dtype(q, k, v)
    s = resolve_scale(scale, e)
    width = max(e, ev)                                       # JAX: value width = key width
    pad = (lambda a, w: np.concatenate([a, np.zeros(a.shape[:-1] + (w,), a.dtype)], -1)
           if w else a)
    q, k, v = pad(q, width - e), pad(k, width - e), pad(v, width - ev)
    align = causal_alignment(causal)
    is_causal = align == "top-left" and mask is None
    allowed = None
    if mask is not None:
        allowed = as_bool_mask(mask, "mask", tuple(lead) + (lq, lk))
    if align is not None and not is_causal:
        offset = 0 if align == "top-left" else lk - lq
        tri = np.tril(np.ones((lq, lk), dtype=bool), k=offset)
        allowed = tri if allowed is None else allowed & tri
    m4 = None if allowed is None else _mask4(allowed, lead, lq, lk)
    return (_bthd(q), _bthd(k), _bthd(v), m4, is_causal, s, dtype, lead, lq, ev)


def _dpa(qj, kj, vj, m4, is_causal, s):
    jax = _jax()
    return jax.nn.dot_product_attention(qj, kj, vj, mask=m4, is_causal=is_causal, scale=s)


def _from_bthd(out, lead, lq, ev, dtype):
    o = np.swapaxes(np.asarray(out), 1, 2)[..., :ev]                # (B, N, T, Ev)
    return o.reshape(tuple(lead) + (lq, ev)).astype(dtype, copy=False)


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
        b = np.broadcast_to(as_float_array(bias, "bias", ndim_min=0),
                            q0.shape[:-2] + (q0.shape[-2], k0.shape[-2]))
    qb, kb, vb, m4, is_causal, s, dtype, lead, lq, ev = _dpa_args(q, k, v, mask, causal, scale)
    jax = _jax()
    bias4 = None if bias is None else _j(_mask4(b, lead, lq, b.shape[-1]), dtype)
    out = jax.nn.dot_product_attention(_j(qb, dtype), _j(kb, dtype), _j(vb, dtype),
                                       bias=bias4, mask=m4, is_causal=is_causal, scale=s)
    return _from_bthd(out, lead, lq, ev, dtype)


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


def grouped_query_attention(x_q, x_kv, params, *, mask=None, causal=False,
                            bias=None) -> np.ndarray:
    """Projections in ``jnp`` and ``dot_product_attention`` with ``K < N`` kv heads.

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
    jnp = _jax().numpy
    arrays = [a for a in (params.w_q, params.w_k, params.w_v, params.b_q, params.b_k,
                          params.b_v, params.w_o, params.b_o) if a is not None]
    dtype = common_float_dtype(x_q, x_kv, *arrays)
    h, g, dh, dv = params.n_heads, params.n_kv_heads, params.d_head, params.d_value
    lead, lq, lk = x_q.shape[:-2], x_q.shape[-2], x_kv.shape[-2]
    xq = _j(x_q.reshape((-1, lq, x_q.shape[-1])), dtype)                     # (B, T, E)
    xkv = _j(x_kv.reshape((-1, lk, x_kv.shape[-1])), dtype)                  # (B, S, E)
    zero = (lambda n, d: np.zeros((n, d)))
    bq = params.b_q if params.b_q is not None else zero(h, dh)
    bk = params.b_k if params.b_k is not None else zero(g, dh)
    bv = params.b_v if params.b_v is not None else zero(g, dv)
    q = jnp.einsum("bte,ned->btnd", xq, _j(params.w_q, dtype)) + _j(bq, dtype)   # (B, T, N, Dh)
    k = jnp.einsum("bse,ked->bskd", xkv, _j(params.w_k, dtype)) + _j(bk, dtype)  # (B, S, K, Dh)
    v = jnp.einsum("bse,ked->bskd", xkv, _j(params.w_v, dtype)) + _j(bv, dtype)  # (B, S, K, Dv)
    width = max(dh, dv)
    padw = (lambda a, w: jnp.concatenate([a, jnp.zeros(a.shape[:-1] + (w,), a.dtype)], -1)
            if w else a)
    q, k, v = padw(q, width - dh), padw(k, width - dh), padw(v, width - dv)
    align = causal_alignment(causal)
    allowed = None if mask is None else as_bool_mask(mask, "mask", tuple(lead) + (lq, lk))
    is_causal = align == "top-left" and allowed is None
    if align is not None and not is_causal:
        offset = 0 if align == "top-left" else lk - lq
        tri = np.tril(np.ones((lq, lk), dtype=bool), k=offset)
        allowed = tri if allowed is None else allowed & tri
    m4 = None
    if allowed is not None:
        full = np.broadcast_to(allowed, tuple(lead) + (lq, lk)).reshape((-1, 1, lq, lk))
        m4 = np.ascontiguousarray(full)
    o = _jax().nn.dot_product_attention(q, k, v, mask=m4, is_causal=is_causal,
                                        scale=1.0 / math.sqrt(dh))[..., :dv]   # (B, T, N, Dv)
    y = o.reshape(o.shape[:2] + (h * dv,)) @ _j(params.w_o, dtype)            # (B, T, E)
    if params.b_o is not None:
        y = y + _j(params.b_o, dtype)
    return _np(y, dtype).reshape(tuple(lead) + (lq, params.d_model))


# ---------------------------------------------------------------------------
# softmax, LayerNorm, activations, FFN
# ---------------------------------------------------------------------------

def _logits(x):
    arr = as_float_array(x, "x", ndim_min=1, finite=False)
    if np.any(np.isnan(arr)) or np.any(np.isposinf(arr)):
        raise ValueError("x: contains NaN or +inf values (only -inf, for masked logits, is allowed)")
    return arr


def softmax(x, axis: int = -1) -> np.ndarray:
    """``jax.nn.softmax``."""
    arr = _logits(x)
    return _np(_jax().nn.softmax(_j(arr, arr.dtype), axis=int(axis)), arr.dtype)


def sigmoid(x) -> np.ndarray:
    """``jax.nn.sigmoid``."""
    arr = as_float_array(x, "x", ndim_min=0)
    return _np(_jax().nn.sigmoid(_j(arr, arr.dtype)), arr.dtype)


def tanh(x) -> np.ndarray:
    """``jnp.tanh``."""
    arr = as_float_array(x, "x", ndim_min=0)
    return _np(_jax().numpy.tanh(_j(arr, arr.dtype)), arr.dtype)


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
    dtype = common_float_dtype(*(a for a in (x, *vec) if a is not None))
    gamma = np.ones(e) if vec[0] is None else vec[0]
    beta = np.zeros(e) if vec[1] is None else vec[1]
    return x, gamma, beta, dtype


def layer_norm(x, gamma=None, beta=None, *, eps: float = 1e-5) -> np.ndarray:
    """``jax.nn.standardize`` over the last axis, times gamma plus beta."""
    x, gamma, beta, dtype = _ln_args(x, gamma, beta)
    return _np(_layer_norm_j(_j(x, dtype), _j(gamma, dtype), _j(beta, dtype), float(eps)), dtype)


def _activation(name):
    jax = _jax()
    table = {"relu": jax.nn.relu, "gelu": lambda z: jax.nn.gelu(z, approximate=False),
             "tanh": jax.numpy.tanh, "sigmoid": jax.nn.sigmoid}
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"activation: expected one of {tuple(table)}, got {name!r}")
    return table[name]


def _ffn_j(x, w1, b1, w2, b2, act):
    return act(x @ w1 + b1) @ w2 + b2


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
    act = _activation(activation)
    x, w1, b1, w2, b2, dtype = _ffn_args(x, params)
    return _np(_ffn_j(*(_j(a, dtype) for a in (x, w1, b1, w2, b2)), act), dtype)


# ---------------------------------------------------------------------------
# gradients: jax.vjp and jax.jacrev
# ---------------------------------------------------------------------------

def softmax_jacobian(x) -> np.ndarray:
    """``jax.vmap(jax.jacrev(jax.nn.softmax))`` over the rows of the last axis."""
    jax = _jax()
    arr = _logits(x)
    n = arr.shape[-1]
    rows = _j(arr.reshape(-1, n), arr.dtype)
    jac = jax.vmap(jax.jacrev(jax.nn.softmax))(rows)
    return _np(jac, arr.dtype).reshape(arr.shape + (n,))


def softmax_backward(x, d_out, axis: int = -1) -> np.ndarray:
    """``jax.vjp`` of ``jax.nn.softmax``."""
    jax = _jax()
    arr = _logits(x)
    g = as_float_array(d_out, "d_out", ndim_min=1)
    if g.shape != arr.shape:
        raise ValueError(f"d_out: expected the forward output's shape {arr.shape}, got {g.shape}")
    dtype = common_float_dtype(arr, g)
    _, vjp = jax.vjp(lambda z: jax.nn.softmax(z, axis=int(axis)), _j(arr, dtype))
    return _np(vjp(_j(g, dtype))[0], dtype)


def attention_backward(q, k, v, d_out, *, mask=None, causal=False, scale=None):
    """``jax.vjp`` of ``jax.nn.dot_product_attention``: ``(dq, dk, dv)``."""
    jax = _jax()
    qb, kb, vb, m4, is_causal, s, dtype, lead, lq, ev = _dpa_args(q, k, v, mask, causal, scale)
    q0, k0, v0 = (np.asarray(a) for a in (q, k, v))
    g = as_float_array(d_out, "d_out", ndim_min=2)
    if g.shape != q0.shape[:-1] + (v0.shape[-1],):
        raise ValueError(f"d_out: expected the forward output's shape "
                         f"{q0.shape[:-1] + (v0.shape[-1],)}, got {g.shape}")
    dtype = common_float_dtype(q0, k0, v0, g)
    gpad = np.concatenate([g, np.zeros(g.shape[:-1] + (vb.shape[-1] - ev,))], -1) \
        if vb.shape[-1] > ev else g
    fn = (lambda a, b, c: jax.nn.dot_product_attention(a, b, c, mask=m4, is_causal=is_causal,
                                                       scale=s))
    _, vjp = jax.vjp(fn, _j(qb, dtype), _j(kb, dtype), _j(vb, dtype))
    dq, dk, dv = vjp(_j(_bthd(gpad), dtype))
    back = (lambda a, shape: np.swapaxes(np.asarray(a), 1, 2).reshape(
        shape[:-1] + (np.asarray(a).shape[-1],))[..., :shape[-1]].astype(dtype))
    return back(dq, q0.shape), back(dk, k0.shape), back(dv, v0.shape)


def layer_norm_backward(x, d_out, gamma=None, beta=None, *, eps: float = 1e-5):
    """``jax.vjp`` of :func:`layer_norm`: ``(dx, dgamma, dbeta)``."""
    jax = _jax()
    x, gamma, beta, dtype = _ln_args(x, gamma, beta)
    g = as_float_array(d_out, "d_out", ndim_min=1)
    if g.shape != x.shape:
        raise ValueError(f"d_out: expected the forward output's shape {x.shape}, got {g.shape}")
    dtype = common_float_dtype(x, g) if dtype == np.float32 else dtype
    _, vjp = jax.vjp(lambda a, b, c: _layer_norm_j(a, b, c, float(eps)),
                     _j(x, dtype), _j(gamma, dtype), _j(beta, dtype))
    return tuple(_np(a, dtype) for a in vjp(_j(g, dtype)))


def feed_forward_backward(x, params, d_out, *, activation="relu"):
    """``jax.vjp`` of :func:`feed_forward`: ``(dx, FFNParams of gradients)``."""
    from transformer_theory.impl.layers import FFNParams

    jax = _jax()
    act = _activation(activation)
    x, w1, b1, w2, b2, dtype = _ffn_args(x, params)
    g = as_float_array(d_out, "d_out", ndim_min=1)
    if g.shape != x.shape:
        raise ValueError(f"d_out: expected the forward output's shape {x.shape}, got {g.shape}")
    dtype = common_float_dtype(x, g) if dtype == np.float32 else dtype
    _, vjp = jax.vjp(lambda *a: _ffn_j(*a, act), *(_j(a, dtype) for a in (x, w1, b1, w2, b2)))
    dx, dw1, db1, dw2, db2 = (_np(a, dtype) for a in vjp(_j(g, dtype)))
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
