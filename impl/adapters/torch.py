"""PyTorch as a subject: torch's own kernels behind the numpy contract.

Every callable takes and returns numpy arrays (DESIGN.md, "Contract") and does
its work in PyTorch on the CPU, in the input dtype (float64 if any float input
is float64, else float32):

* ``attention`` is ``torch.nn.functional.scaled_dot_product_attention``;
  ``attention_weights`` is the same kernel applied to the identity matrix as
  values (``softmax(s QK^T) I = softmax(s QK^T)``), so the weights are SDPA's
  own and not a re-implementation;
* ``multi_head_attention`` and ``cross_attention`` are
  ``torch.nn.MultiheadAttention`` with the weights of the reference's
  :class:`~transformer_theory.impl.attention.MultiHeadParams` copied in (see
  :func:`load_multihead` for the mapping), so outputs can be compared
  numerically with the reference as well as by properties;
* ``grouped_query_attention`` projects with the reference weights and calls SDPA
  with ``enable_gqa=True`` (PyTorch's own head mapping);
* ``layer_norm`` is ``F.layer_norm``, ``batch_norm`` is ``F.batch_norm`` in
  training mode, ``feed_forward`` is two ``F.linear`` around torch's activation;
* ``encoder`` runs a stack of ``nn.TransformerEncoderLayer`` loaded from the
  reference's :class:`~transformer_theory.impl.transformer.EncoderParams`;
* ``encoder_map`` is one fixed ``nn.TransformerEncoderLayer`` and ``causal_map``
  one fixed ``nn.TransformerDecoderLayer`` under a causal target mask with a
  fixed memory: whole sequence maps of width :data:`SEQUENCE_D_MODEL`;
* the ``*_backward`` callables and ``softmax_jacobian`` are torch autograd
  through the same kernels, checked by the ``gradients`` claims against central
  finite differences and the reference gradients.

Modules run the way inference code runs them: ``eval()`` mode, under
``torch.no_grad()``, dropout 0. Weights are copied in, never drawn from torch's
global generator (modules are built with ``torch.nn.utils.skip_init``).

Conventions (reported as subject options, never failures)
----------------------------------------------------------
* A fully masked query row: SDPA returns zeros (the contract), but
  ``torch.softmax`` of an all ``-inf`` row, its gradient, and
  ``nn.MultiheadAttention``'s inference fast path return NaN
  (``fully_masked_row`` option, per callable).
* ``is_causal=True`` is top-left aligned, as the contract; the contract's
  ``causal="bottom-right"`` maps to ``torch.nn.attention.bias.causal_lower_right``.
* Boolean masks: SDPA's ``attn_mask`` uses True = may attend (the contract), but
  ``nn.MultiheadAttention``/``nn.Transformer*`` use True = masked out; the
  adapter inverts them.

References
----------
PyTorch documentation: ``torch.nn.functional.scaled_dot_product_attention``,
``torch.nn.MultiheadAttention``, ``torch.nn.TransformerEncoderLayer``,
``torch.nn.TransformerDecoderLayer``, ``torch.nn.functional.layer_norm``.
Vaswani et al. 2017, Attention Is All You Need, §3.2 (the maps wrapped).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import warnings
from functools import lru_cache

import numpy as np

from .._validate import (as_bool_mask, as_float_array, check_batch_dims, check_same_dim,
                         common_float_dtype)

__all__ = [
    "available",
    "torch_target",
    "TORCH_OPTIONS",
    "SEQUENCE_D_MODEL",
    "softmax",
    "attention",
    "attention_weights",
    "multi_head_attention",
    "grouped_query_attention",
    "cross_attention",
    "layer_norm",
    "batch_norm",
    "feed_forward",
    "sigmoid",
    "tanh",
    "encoder",
    "encoder_map",
    "causal_map",
    "softmax_jacobian",
    "softmax_backward",
    "attention_backward",
    "layer_norm_backward",
    "feed_forward_backward",
    "load_multihead",
]

#: Width of the built-in sequence maps ``encoder_map`` and ``causal_map``.
SEQUENCE_D_MODEL = 8

#: The conventions of the torch subject, as its callables follow them
#: (see :data:`transformer_theory.impl.contract.conventions.OPTIONS`).
TORCH_OPTIONS = {
    "fully_masked_row": {
        "softmax": "nan", "softmax_backward": "nan", "softmax_jacobian": "nan",
        "multi_head_attention": "nan", "cross_attention": "nan", "encoder": "nan",
        "attention": "zeros", "attention_weights": "zeros", "attention_backward": "zeros",
        "grouped_query_attention": "zeros",
    },
    "causal_alignment": "top-left",
    "layout": "(B, H, L, E)",
    "gqa_mapping": "h -> h // (H // G)",
    # F.scaled_dot_product_attention multiplies the zero weight of a masked key by its
    # value: a NaN value at a padded position reaches every output row (seen with 2.13.0,
    # math and default backends alike). Callers must sanitise padding.
    "masked_inputs": "finite",
    "d_model": SEQUENCE_D_MODEL,
}


def available() -> bool:
    """Whether PyTorch can be imported (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def _serial(fn):
    """Run ``fn`` with torch's intra-op parallelism off, restoring the setting after.

    The claims' inputs are tiny: starting OpenMP threads for them costs far
    more than the arithmetic (milliseconds per SDPA call on a loaded 2-core
    machine, against tens of microseconds on one thread).
    """
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        torch = _torch()
        threads = torch.get_num_threads()
        if threads != 1:
            torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            if threads != 1:
                torch.set_num_threads(threads)
    return wrapped


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "the torch adapter needs PyTorch: pip install 'transformer-theory[torch]' "
            "(or pip install torch)") from exc
    return torch


# ---------------------------------------------------------------------------
# numpy <-> torch at the boundary
# ---------------------------------------------------------------------------

def _tdtype(dtype: np.dtype):
    torch = _torch()
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def _t(a: np.ndarray, dtype: np.dtype, requires_grad: bool = False):
    """A torch tensor holding a copy of ``a`` in ``dtype``."""
    torch = _torch()
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=dtype).copy())
    return t.requires_grad_(True) if requires_grad else t


def _np(t, dtype: np.dtype) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype, copy=False)


def _mask_t(mask):
    torch = _torch()
    return torch.from_numpy(np.array(mask, dtype=bool, order="C"))


def _allowed(mask, causal, lead: tuple, lq: int, lk: int) -> np.ndarray | None:
    """The contract's mask and causal flag combined by AND (True = may attend)."""
    allowed = None
    if mask is not None:
        allowed = as_bool_mask(mask, "mask", tuple(lead) + (lq, lk))      # (..., Lq, Lk)
    align = _alignment(causal)
    if align is not None:
        offset = 0 if align == "top-left" else lk - lq
        tri = np.tril(np.ones((lq, lk), dtype=bool), k=offset)           # (Lq, Lk)
        allowed = tri if allowed is None else (allowed & tri)
    return allowed


def _alignment(causal) -> str | None:
    if isinstance(causal, (bool, np.bool_)):
        return "top-left" if causal else None
    if causal in ("top-left", "bottom-right"):
        return causal
    raise ValueError(
        f"causal: expected one of (False, True, 'top-left', 'bottom-right'), got {causal!r}")


def _scale(scale, e: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(e)
    if isinstance(scale, (bool, np.bool_)) or not isinstance(
            scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"scale: expected a real number or None, got {type(scale).__name__}")
    if not math.isfinite(float(scale)) or float(scale) <= 0:
        raise ValueError(f"scale: expected a positive finite number, got {scale!r}")
    return float(scale)


def _qkv(q, k, v):
    q = as_float_array(q, "q", ndim_min=2)
    k = as_float_array(k, "k", ndim_min=2)
    v = as_float_array(v, "v", ndim_min=2)
    check_batch_dims([("q", q), ("k", k), ("v", v)], n_trailing=2)
    check_same_dim(q, "q", k, "k", -1, "embedding dim E")
    check_same_dim(k, "k", v, "v", -2, "key length Lk")
    return q, k, v


# ---------------------------------------------------------------------------
# softmax, activations, scaled dot-product attention
# ---------------------------------------------------------------------------

@_serial
def softmax(x, axis: int = -1) -> np.ndarray:
    """``torch.softmax(x, dim=axis)`` (an all ``-inf`` row gives NaN: a torch convention)."""
    arr = as_float_array(x, "x", ndim_min=1, finite=False)
    if np.any(np.isnan(arr)) or np.any(np.isposinf(arr)):
        raise ValueError("x: contains NaN or +inf values (only -inf, for masked logits, is allowed)")
    torch = _torch()
    with torch.no_grad():
        return _np(torch.softmax(_t(arr, arr.dtype), dim=int(axis)), arr.dtype)


@_serial
def sigmoid(x) -> np.ndarray:
    """``torch.sigmoid``."""
    arr = as_float_array(x, "x", ndim_min=0)
    torch = _torch()
    return _np(torch.sigmoid(_t(arr, arr.dtype)), arr.dtype)


@_serial
def tanh(x) -> np.ndarray:
    """``torch.tanh``."""
    arr = as_float_array(x, "x", ndim_min=0)
    torch = _torch()
    return _np(torch.tanh(_t(arr, arr.dtype)), arr.dtype)


def _sdpa_mask(mask, causal, bias, lead, lq, lk, dtype):
    """SDPA's ``attn_mask``/``is_causal`` for the contract's mask, causal and bias."""
    from torch.nn.attention.bias import causal_lower_right

    align = _alignment(causal)
    if bias is None and mask is None:
        if align == "top-left":
            return None, True
        if align == "bottom-right":
            with warnings.catch_warnings():   # "will produce NaNs when Lq > Lk": on CPU it
                warnings.filterwarnings(      # returns zeros, which the claims check
                    "ignore", message="Lower right causal bias")
                return causal_lower_right(lq, lk), False
        return None, False
    allowed = _allowed(mask, causal, lead, lq, lk)
    if bias is None:
        return _mask_t(np.broadcast_to(allowed, tuple(lead) + (lq, lk))), False
    additive = np.broadcast_to(bias, tuple(lead) + (lq, lk)).astype(dtype)   # (..., Lq, Lk)
    if allowed is not None:
        additive = np.where(allowed, additive, -np.inf)
    return _t(additive, dtype), False


def _sdpa(q, k, v, mask, causal, scale, bias, dtype):
    """SDPA on torch tensors with the contract's mask semantics."""
    torch = _torch()
    lead, lq, lk = tuple(q.shape[:-2]), q.shape[-2], k.shape[-2]
    attn_mask, is_causal = _sdpa_mask(mask, causal, bias, lead, lq, lk, dtype)
    return torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale)


def _bias(bias, lead, lq, lk):
    if bias is None:
        return None
    b = as_float_array(bias, "bias", ndim_min=0)
    try:
        np.broadcast_to(b, tuple(lead) + (lq, lk))
    except ValueError:
        raise ValueError(f"bias: expected an array broadcastable to "
                         f"{tuple(lead) + (lq, lk)}, got shape {b.shape}") from None
    return b


@_serial
def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None) -> np.ndarray:
    """``F.scaled_dot_product_attention`` under the numpy contract.

    ``causal=True`` is SDPA's ``is_causal`` (top-left), ``"bottom-right"`` is
    ``causal_lower_right``; a mask and causal together become one boolean
    ``attn_mask`` (SDPA refuses both), and ``bias`` a float ``attn_mask``.

    Parameters
    ----------
    q, k, v, mask, causal, scale, bias
        As in ``transformer_theory.impl.attention.attention``.

    Returns
    -------
    np.ndarray, (..., Lq, Ev)

    References
    ----------
    PyTorch documentation, torch.nn.functional.scaled_dot_product_attention;
    Vaswani et al. 2017, Attention Is All You Need, §3.2.1.
    """
    q, k, v = _qkv(q, k, v)
    b = _bias(bias, q.shape[:-2], q.shape[-2], k.shape[-2])
    dtype = common_float_dtype(*(a for a in (q, k, v, b) if a is not None))
    s = _scale(scale, q.shape[-1])
    torch = _torch()
    with torch.no_grad():
        out = _sdpa(_t(q, dtype), _t(k, dtype), _t(v, dtype), mask, causal, s, b, dtype)
    return _np(out, dtype)


@_serial
def attention_weights(q, k, *, mask=None, causal=False, scale=None, bias=None) -> np.ndarray:
    """SDPA's attention weights: SDPA with the identity matrix as values.

    ``softmax(s QK^T + B) I = softmax(s QK^T + B)``, so the weights come out of
    the same kernel as :func:`attention`.

    Returns
    -------
    np.ndarray, (..., Lq, Lk)

    References
    ----------
    PyTorch documentation, torch.nn.functional.scaled_dot_product_attention.
    """
    q = as_float_array(q, "q", ndim_min=2)
    k = as_float_array(k, "k", ndim_min=2)
    check_batch_dims([("q", q), ("k", k)], n_trailing=2)
    check_same_dim(q, "q", k, "k", -1, "embedding dim E")
    lk = k.shape[-2]
    b = _bias(bias, q.shape[:-2], q.shape[-2], lk)
    dtype = common_float_dtype(*(a for a in (q, k, b) if a is not None))
    eye = np.broadcast_to(np.eye(lk, dtype=dtype), k.shape[:-2] + (lk, lk))   # (..., Lk, Lk)
    s = _scale(scale, q.shape[-1])
    torch = _torch()
    with torch.no_grad():
        out = _sdpa(_t(q, dtype), _t(k, dtype), _t(eye, dtype), mask, causal, s, b, dtype)
    return _np(out, dtype)


# ---------------------------------------------------------------------------
# nn.MultiheadAttention loaded from MultiHeadParams
# ---------------------------------------------------------------------------

def _head_width(params) -> int:
    """Per-head width D' of the torch module holding ``params`` (see load_multihead)."""
    return max(params.d_head, params.d_value, -(-params.d_model // params.n_heads))


def load_multihead(params, dtype):
    """An ``nn.MultiheadAttention`` computing the reference's multi-head attention.

    PyTorch's module has ``H`` heads of one width ``D = embed_dim / H`` for
    queries, keys and values, and takes queries of width ``embed_dim``. The
    reference allows any ``d_head`` and ``d_value``. When ``H * d_head ==
    d_model`` and ``d_value == d_head`` (the usual case) the weights are copied
    as they are. Otherwise they are embedded exactly: ``D' = max(d_head,
    d_value, ceil(E / H))``, each head's projections fill the first columns of
    its ``D'``-wide slot and the rest are zero (zero query/key columns add 0 to
    the scores, zero value columns meet zero rows of ``W_O``), queries are
    zero-padded to width ``H D'``, the output is cut back to ``E``, and the
    query weights are multiplied by ``sqrt(D' / d_head)`` so that torch's
    ``1/sqrt(D')`` scale becomes the reference's ``1/sqrt(d_head)``.

    Parameters
    ----------
    params : MultiHeadParams
    dtype : float32 or float64

    Returns
    -------
    (module, width)
        The module in eval mode and its ``embed_dim`` ``H D'``.

    References
    ----------
    Vaswani et al. 2017, §3.2.2; PyTorch documentation, torch.nn.MultiheadAttention.
    """
    torch = _torch()
    from transformer_theory.impl.attention import MultiHeadParams

    if not isinstance(params, MultiHeadParams):
        raise TypeError(f"params: expected MultiHeadParams, got {type(params).__name__}")
    h, e, ekv = params.n_heads, params.d_model, params.d_kv
    dh, dv = params.d_head, params.d_value
    d = _head_width(params)
    width = h * d
    c = math.sqrt(d / dh)
    wq = np.zeros((width, width))                          # (out, in) as torch stores it
    wk = np.zeros((width, ekv))
    wv = np.zeros((width, ekv))
    bq = np.zeros(width)
    bk = np.zeros(width)
    bv = np.zeros(width)
    wo = np.zeros((width, width))
    bo = np.zeros(width)
    for i in range(h):                                      # one D'-wide slot per head
        slot = slice(i * d, i * d + dh)
        vslot = slice(i * d, i * d + dv)
        wq[slot, :e] = c * params.w_q[i].T                  # (Dh, E)
        wk[slot, :] = params.w_k[i].T                       # (Dh, Ekv)
        wv[vslot, :] = params.w_v[i].T                      # (Dv, Ekv)
        if params.b_q is not None:
            bq[slot] = c * params.b_q[i]
        if params.b_k is not None:
            bk[slot] = params.b_k[i]
        if params.b_v is not None:
            bv[vslot] = params.b_v[i]
        wo[:e, vslot] = params.w_o[i * dv:(i + 1) * dv, :].T    # (E, Dv)
    if params.b_o is not None:
        bo[:e] = params.b_o
    module = torch.nn.utils.skip_init(
        torch.nn.MultiheadAttention, width, h, dropout=0.0, bias=True, kdim=ekv, vdim=ekv,
        batch_first=True, dtype=_tdtype(dtype))
    with torch.no_grad():
        if module._qkv_same_embed_dim:
            module.in_proj_weight.copy_(_t(np.concatenate([wq, wk, wv]), dtype))
        else:
            module.q_proj_weight.copy_(_t(wq, dtype))
            module.k_proj_weight.copy_(_t(wk, dtype))
            module.v_proj_weight.copy_(_t(wv, dtype))
        module.in_proj_bias.copy_(_t(np.concatenate([bq, bk, bv]), dtype))
        module.out_proj.weight.copy_(_t(wo, dtype))
        module.out_proj.bias.copy_(_t(bo, dtype))
    return module.eval(), width


def _flatten_lead(x: np.ndarray) -> np.ndarray:
    """(..., L, E) -> (N, L, E) with N the product of the leading dims."""
    return x.reshape((-1,) + x.shape[-2:])


def _mha_inputs(x_q, x_kv, params):
    from transformer_theory.impl.attention import GroupedQueryParams, MultiHeadParams

    if not isinstance(params, (MultiHeadParams, GroupedQueryParams)):
        raise TypeError(f"params: expected MultiHeadParams, got {type(params).__name__}")
    x_q = as_float_array(x_q, "x_q", ndim_min=2)
    x_kv = as_float_array(x_kv, "x_kv", ndim_min=2)
    check_batch_dims([("x_q", x_q), ("x_kv", x_kv)], n_trailing=2)
    if x_q.shape[-1] != params.d_model:
        raise ValueError(f"x_q: expected last dim d_model = {params.d_model}, got shape {x_q.shape}")
    if x_kv.shape[-1] != params.d_kv:
        raise ValueError(f"x_kv: expected last dim d_kv = {params.d_kv}, got shape {x_kv.shape}")
    return x_q, x_kv


def _param_arrays(params):
    return [a for a in (params.w_q, params.w_k, params.w_v, params.b_q, params.b_k, params.b_v,
                        params.w_o, params.b_o) if a is not None]


def _run_multihead(x_q, x_kv, params, *, attn_allowed=None, key_padding=None, bias=None):
    """nn.MultiheadAttention on (..., L, E) arrays; masks in the contract's polarity."""
    torch = _torch()
    lead, lq, lk, h = x_q.shape[:-2], x_q.shape[-2], x_kv.shape[-2], params.n_heads
    extra = [] if bias is None else [bias]
    dtype = common_float_dtype(x_q, x_kv, *_param_arrays(params), *extra)
    module, width = load_multihead(params, dtype)
    xq = _flatten_lead(x_q)                                             # (N, Lq, E)
    xkv = _flatten_lead(x_kv)                                           # (N, Lk, Ekv)
    n = xq.shape[0]
    if width > params.d_model:
        xq = np.concatenate([xq, np.zeros(xq.shape[:-1] + (width - params.d_model,))], -1)
    attn_mask = None
    if bias is not None:
        additive = np.broadcast_to(bias, tuple(lead) + (h, lq, lk)).reshape(n * h, lq, lk)
        if attn_allowed is not None:
            allowed = np.broadcast_to(attn_allowed, tuple(lead) + (lq, lk)).reshape(n, 1, lq, lk)
            allowed = np.broadcast_to(allowed, (n, h, lq, lk)).reshape(n * h, lq, lk)
            additive = np.where(allowed, additive, -np.inf)
        attn_mask = _t(additive, dtype)                                 # (N*H, Lq, Lk)
    elif attn_allowed is not None:
        allowed = np.broadcast_to(attn_allowed, tuple(lead) + (lq, lk)).reshape(n, lq, lk)
        blocked = ~np.repeat(allowed, h, axis=0)                        # (N*H, Lq, Lk) True = masked
        attn_mask = _mask_t(blocked)
    kpm = None if key_padding is None else _mask_t(~_flatten_lead(key_padding[..., None])[..., 0])
    tq = _t(xq, dtype)
    tkv = _t(xkv, dtype)
    with torch.no_grad():
        out, _ = module(tq, tkv, tkv, attn_mask=attn_mask, key_padding_mask=kpm,
                        need_weights=False)
    y = _np(out, dtype)[..., :params.d_model]                           # (N, Lq, E)
    return y.reshape(tuple(lead) + (lq, params.d_model))


@_serial
def multi_head_attention(x_q, x_kv, params, *, mask=None, causal=False, bias=None) -> np.ndarray:
    """``nn.MultiheadAttention`` loaded with ``params`` (see :func:`load_multihead`).

    Parameters
    ----------
    x_q, x_kv, params, mask, causal, bias
        As in ``transformer_theory.impl.attention.multi_head_attention``; the
        mask and causal flag become one boolean ``attn_mask`` of torch's
        polarity (True = masked out) per (batch, head), ``bias`` a float mask.

    Returns
    -------
    np.ndarray, (..., Lq, E)

    References
    ----------
    PyTorch documentation, torch.nn.MultiheadAttention; Vaswani et al. 2017, §3.2.2.
    """
    x_q, x_kv = _mha_inputs(x_q, x_kv, params)
    lead, lq, lk = x_q.shape[:-2], x_q.shape[-2], x_kv.shape[-2]
    allowed = _allowed(mask, causal, lead, lq, lk)
    b = None if bias is None else _bias(bias, tuple(lead) + (params.n_heads,), lq, lk)
    return _run_multihead(x_q, x_kv, params, attn_allowed=allowed, bias=b)


@_serial
def cross_attention(x, memory, params, *, memory_mask=None) -> np.ndarray:
    """Encoder-decoder attention with ``nn.MultiheadAttention`` (``key_padding_mask``).

    ``memory_mask`` is a key-padding mask ``(..., Lk)`` (True = real token),
    passed inverted as ``key_padding_mask``, or a full mask ``(..., Lq, Lk)``
    passed as ``attn_mask``.

    Returns
    -------
    np.ndarray, (..., Lq, E)

    References
    ----------
    PyTorch documentation, torch.nn.MultiheadAttention; Vaswani et al. 2017, §3.2.3.
    """
    x, memory = _mha_inputs(x, memory, params)
    if memory_mask is None:
        return _run_multihead(x, memory, params)
    m = np.asarray(memory_mask)
    if m.dtype != np.bool_:
        raise TypeError(f"memory_mask: expected dtype bool (True = real token), got {m.dtype}")
    lead, lk = x.shape[:-2], memory.shape[-2]
    if m.ndim == x.ndim - 1:
        if m.shape != tuple(lead) + (lk,):
            raise ValueError(f"memory_mask: a key-padding mask must have shape "
                             f"{tuple(lead) + (lk,)}, got {m.shape}")
        return _run_multihead(x, memory, params, key_padding=m)
    allowed = as_bool_mask(m, "memory_mask", tuple(lead) + (x.shape[-2], lk))
    return _run_multihead(x, memory, params, attn_allowed=allowed)


@_serial
def grouped_query_attention(x_q, x_kv, params, *, mask=None, causal=False,
                            bias=None) -> np.ndarray:
    """Grouped-query attention: torch projections and SDPA with ``enable_gqa=True``.

    Query head ``h`` reads kv head ``h // (H // G)`` because that is what
    SDPA's ``enable_gqa`` does (``repeat_interleave`` on the kv head axis).

    Returns
    -------
    np.ndarray, (..., Lq, E)

    References
    ----------
    PyTorch documentation, torch.nn.functional.scaled_dot_product_attention
    (enable_gqa); Ainslie et al. 2023, GQA, §2.
    """
    torch = _torch()
    x_q, x_kv = _mha_inputs(x_q, x_kv, params)
    lead, lq, lk = x_q.shape[:-2], x_q.shape[-2], x_kv.shape[-2]
    b = None if bias is None else _bias(bias, tuple(lead) + (params.n_heads,), lq, lk)
    extra = [] if b is None else [b]
    dtype = common_float_dtype(x_q, x_kv, *_param_arrays(params), *extra)
    zeros = (lambda n, d: np.zeros((n, d)))
    tp = (lambda a: _t(a, dtype))
    with torch.no_grad():
        xq, xkv = tp(x_q), tp(x_kv)
        bq = params.b_q if params.b_q is not None else zeros(params.n_heads, params.d_head)
        bk = params.b_k if params.b_k is not None else zeros(params.n_kv_heads, params.d_head)
        bv = params.b_v if params.b_v is not None else zeros(params.n_kv_heads, params.d_value)
        q = torch.einsum("...le,hed->...hld", xq, tp(params.w_q)) + tp(bq)[:, None, :]   # (..., H, Lq, Dh)
        k = torch.einsum("...le,hed->...hld", xkv, tp(params.w_k)) + tp(bk)[:, None, :]  # (..., G, Lk, Dh)
        v = torch.einsum("...le,hed->...hld", xkv, tp(params.w_v)) + tp(bv)[:, None, :]  # (..., G, Lk, Dv)
        allowed = _allowed(mask, causal, lead, lq, lk)
        attn_mask = None
        if b is not None:
            additive = np.broadcast_to(b, tuple(lead) + (params.n_heads, lq, lk))
            if allowed is not None:
                additive = np.where(np.expand_dims(allowed, -3), additive, -np.inf)
            attn_mask = tp(additive)
        elif allowed is not None:
            attn_mask = _mask_t(np.expand_dims(np.broadcast_to(allowed, tuple(lead) + (lq, lk)), -3))
        o = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, enable_gqa=True)                       # (..., H, Lq, Dv)
        concat = o.transpose(-3, -2).reshape(tuple(lead) + (lq, -1))            # (..., Lq, H*Dv)
        y = concat @ tp(params.w_o)                                              # (..., Lq, E)
        if params.b_o is not None:
            y = y + tp(params.b_o)
    return _np(y, dtype)


# ---------------------------------------------------------------------------
# normalisation and the feed-forward network
# ---------------------------------------------------------------------------

def _vector(v, name, e):
    if v is None:
        return None
    arr = as_float_array(v, name, ndim=1)
    if arr.shape != (e,):
        raise ValueError(f"{name}: expected shape ({e},), got {arr.shape}")
    return arr


@_serial
def layer_norm(x, gamma=None, beta=None, *, eps: float = 1e-5) -> np.ndarray:
    """``F.layer_norm`` over the last axis.

    Returns
    -------
    np.ndarray, (..., E)

    References
    ----------
    PyTorch documentation, torch.nn.functional.layer_norm; Ba et al. 2016, §3.
    """
    torch = _torch()
    x = as_float_array(x, "x", ndim_min=1)
    e = x.shape[-1]
    gamma, beta = _vector(gamma, "gamma", e), _vector(beta, "beta", e)
    dtype = common_float_dtype(*(a for a in (x, gamma, beta) if a is not None))
    opt = (lambda a: None if a is None else _t(a, dtype))
    with torch.no_grad():
        y = torch.nn.functional.layer_norm(_t(x, dtype), (e,), opt(gamma), opt(beta), float(eps))
    return _np(y, dtype)


@_serial
def batch_norm(x, gamma=None, beta=None, *, eps: float = 1e-5) -> np.ndarray:
    """``F.batch_norm`` in training mode: statistics over every axis but the last.

    Returns
    -------
    np.ndarray, (..., E)

    References
    ----------
    PyTorch documentation, torch.nn.functional.batch_norm; Ioffe & Szegedy 2015, §3.
    """
    torch = _torch()
    x = as_float_array(x, "x", ndim_min=2)
    e = x.shape[-1]
    gamma, beta = _vector(gamma, "gamma", e), _vector(beta, "beta", e)
    dtype = common_float_dtype(*(a for a in (x, gamma, beta) if a is not None))
    opt = (lambda a: None if a is None else _t(a, dtype))
    with torch.no_grad():
        y = torch.nn.functional.batch_norm(_t(x.reshape(-1, e), dtype), None, None, opt(gamma),
                                           opt(beta), training=True, momentum=0.0, eps=float(eps))
    return _np(y, dtype).reshape(x.shape)


def _activation(name):
    torch = _torch()
    table = {"relu": torch.relu, "gelu": torch.nn.functional.gelu, "tanh": torch.tanh,
             "sigmoid": torch.sigmoid}
    if not isinstance(name, str):
        raise TypeError(f"activation: the torch adapter takes an activation name "
                        f"{tuple(table)}, got {type(name).__name__}")
    if name not in table:
        raise ValueError(f"activation: expected one of {tuple(table)}, got {name!r}")
    return table[name]


def _ffn_arrays(x, params):
    from transformer_theory.impl.layers import FFNParams

    if not isinstance(params, FFNParams):
        raise TypeError(f"params: expected FFNParams, got {type(params).__name__}")
    x = as_float_array(x, "x", ndim_min=1)
    e = x.shape[-1]
    w1 = as_float_array(params.w1, "params.w1", ndim=2)
    if w1.shape[0] != e:
        raise ValueError(f"params.w1: expected {e} rows (d_model), got shape {w1.shape}")
    f = w1.shape[1]
    w2 = as_float_array(params.w2, "params.w2", ndim=2)
    if w2.shape != (f, e):
        raise ValueError(f"params.w2: expected shape {(f, e)}, got {w2.shape}")
    b1 = _vector(params.b1, "params.b1", f)
    b2 = _vector(params.b2, "params.b2", e)
    return x, w1, b1, w2, b2


def _ffn_torch(x, w1, b1, w2, b2, act):
    torch = _torch()
    h = torch.nn.functional.linear(x, w1.T, b1)              # (..., F)
    return torch.nn.functional.linear(act(h), w2.T, b2)       # (..., E)


@_serial
def feed_forward(x, params, *, activation="relu") -> np.ndarray:
    """``F.linear(act(F.linear(x, W1^T, b1)), W2^T, b2)`` with torch's activation.

    Returns
    -------
    np.ndarray, (..., E)

    References
    ----------
    PyTorch documentation, torch.nn.functional.linear; Vaswani et al. 2017, §3.3.
    """
    torch = _torch()
    act = _activation(activation)
    x, w1, b1, w2, b2 = _ffn_arrays(x, params)
    dtype = common_float_dtype(*(a for a in (x, w1, b1, w2, b2) if a is not None))
    opt = (lambda a: None if a is None else _t(a, dtype))
    with torch.no_grad():
        y = _ffn_torch(_t(x, dtype), _t(w1, dtype), opt(b1), _t(w2, dtype), opt(b2), act)
    return _np(y, dtype)


# ---------------------------------------------------------------------------
# nn.TransformerEncoderLayer / nn.TransformerDecoderLayer
# ---------------------------------------------------------------------------

def _check_native_attention(params, config, what: str):
    from transformer_theory.impl.attention import MultiHeadParams

    if not isinstance(params, MultiHeadParams):
        raise ValueError(f"params: {what} has multi-head attention only, got "
                         f"{type(params).__name__} (n_kv_heads = {config.n_kv_heads})")
    if params.n_heads * params.d_head != config.d_model or params.d_value != params.d_head:
        raise ValueError(
            f"params: {what} needs n_heads * d_head == d_model and d_value == d_head, got "
            f"n_heads = {params.n_heads}, d_head = {params.d_head}, d_value = "
            f"{params.d_value}, d_model = {config.d_model}")


def _copy_attention(module_attn, params, dtype):
    torch = _torch()
    loaded, _ = load_multihead(params, dtype)
    with torch.no_grad():   # a bias-free module has no bias entries: the loaded zeros are dropped
        module_attn.load_state_dict(loaded.state_dict(), strict=False)


def _copy_linear(linear, w, b, dtype):
    torch = _torch()
    with torch.no_grad():
        linear.weight.copy_(_t(np.asarray(w).T, dtype))
        if linear.bias is not None:
            linear.bias.copy_(_t(b if b is not None else np.zeros(np.asarray(w).shape[1]), dtype))


def _copy_norm(norm, ln, dtype):
    torch = _torch()
    with torch.no_grad():
        norm.weight.copy_(_t(ln.gamma, dtype))
        if norm.bias is not None:
            norm.bias.copy_(_t(ln.beta, dtype))
        elif np.any(np.asarray(ln.beta) != 0):
            raise ValueError("params: a bias-free nn.Transformer*Layer has no LayerNorm bias, "
                             "but a LayerNorm beta of params is non-zero")


def _torch_activation_name(config):
    if config.activation not in ("relu", "gelu"):
        raise ValueError(f"params: nn.TransformerEncoderLayer supports the activations 'relu' "
                         f"and 'gelu', got {config.activation!r}")
    return config.activation


def _encoder_layers(params, dtype):
    """nn.TransformerEncoderLayer modules holding the reference's EncoderParams."""
    torch = _torch()
    config = params.config
    layers = []
    for layer in params.layers:
        _check_native_attention(layer.attn, config, "nn.TransformerEncoderLayer")
        module = torch.nn.utils.skip_init(
            torch.nn.TransformerEncoderLayer, config.d_model, config.n_heads,
            dim_feedforward=config.d_ff, dropout=0.0,
            activation=_torch_activation_name(config), layer_norm_eps=config.eps,
            batch_first=True, norm_first=(config.norm == "pre"), bias=config.bias,
            dtype=_tdtype(dtype))
        _copy_attention(module.self_attn, layer.attn, dtype)
        _copy_linear(module.linear1, layer.ffn.w1, layer.ffn.b1, dtype)
        _copy_linear(module.linear2, layer.ffn.w2, layer.ffn.b2, dtype)
        _copy_norm(module.norm1, layer.ln1, dtype)
        _copy_norm(module.norm2, layer.ln2, dtype)
        layers.append(module.eval())
    return layers


def _blocked_mask(allowed, lead, length, n_heads):
    """torch's (N*H, L, L) boolean attn_mask (True = masked) for a contract mask."""
    n = int(np.prod(lead)) if lead else 1
    a = np.broadcast_to(allowed, tuple(lead) + (length, length)).reshape(n, length, length)
    return _mask_t(~np.repeat(a, n_heads, axis=0))


@_serial
def encoder(x, params, *, mask=None, causal=False) -> np.ndarray:
    """A stack of ``nn.TransformerEncoderLayer`` loaded from ``EncoderParams``.

    Supported: multi-head attention with ``n_heads * d_head == d_model``, the
    activations relu and gelu, post- and pre-LN (``norm_first``), with or
    without biases; anything else is a ``ValueError`` naming the limitation.

    Returns
    -------
    np.ndarray, (..., L, E)

    References
    ----------
    PyTorch documentation, torch.nn.TransformerEncoderLayer; Vaswani et al. 2017, §3.1.
    """
    torch = _torch()
    from transformer_theory.impl.transformer import EncoderParams

    if not isinstance(params, EncoderParams):
        raise TypeError(f"params: expected EncoderParams, got {type(params).__name__}")
    x = as_float_array(x, "x", ndim_min=2)
    config = params.config
    if x.shape[-1] != config.d_model:
        raise ValueError(f"x: expected shape (..., L, d_model = {config.d_model}), got {x.shape}")
    lead, length = x.shape[:-2], x.shape[-2]
    arrays = [a for layer in params.layers for a in (
        *_param_arrays(layer.attn), layer.ffn.w1, layer.ffn.w2, layer.ln1.gamma)]
    dtype = common_float_dtype(x, *arrays)
    layers = _encoder_layers(params, dtype)
    allowed = _allowed(mask, causal, lead, length, length)
    src_mask = None if allowed is None else _blocked_mask(allowed, lead, length, config.n_heads)
    h = _t(_flatten_lead(x), dtype)                                      # (N, L, E)
    with torch.no_grad():
        for module in layers:            # one block after another, as the reference
            h = module(h, src_mask=src_mask)
    return _np(h, dtype).reshape(x.shape)


@lru_cache(maxsize=None)
def _sequence_params():
    """Fixed reference weights for the built-in sequence maps (seeded numpy, no torch RNG)."""
    from transformer_theory.impl.transformer import EncoderConfig, init_decoder, init_encoder

    config = EncoderConfig(d_model=SEQUENCE_D_MODEL, n_heads=2, d_ff=16, n_layers=1)
    enc = init_encoder(config, np.random.default_rng(20170612))
    dec = init_decoder(config, np.random.default_rng(20170613))
    memory = np.random.default_rng(20170614).standard_normal((1, 5, SEQUENCE_D_MODEL))
    return enc, dec, memory


@_serial
def encoder_map(x) -> np.ndarray:
    """One fixed ``nn.TransformerEncoderLayer`` (d_model 8, 2 heads) as a sequence map.

    No positional encoding: permutation equivariant and batch independent.

    Parameters
    ----------
    x : array_like, (B, L, 8)

    Returns
    -------
    np.ndarray, (B, L, 8)

    References
    ----------
    PyTorch documentation, torch.nn.TransformerEncoderLayer; Vaswani et al. 2017, §3.1, §3.5.
    """
    enc, _, _ = _sequence_params()
    return encoder(x, enc)


@_serial
def causal_map(x) -> np.ndarray:
    """One fixed ``nn.TransformerDecoderLayer`` under a causal target mask, as a sequence map.

    The target is ``x``; the memory is a fixed sequence of 5 vectors, shared by
    every batch member. Output ``i`` depends on ``x[:, :i+1]`` only.

    Parameters
    ----------
    x : array_like, (B, L, 8)

    Returns
    -------
    np.ndarray, (B, L, 8)

    References
    ----------
    PyTorch documentation, torch.nn.TransformerDecoderLayer and
    nn.Transformer.generate_square_subsequent_mask; Vaswani et al. 2017, §3.2.3.
    """
    torch = _torch()
    _, dec, memory = _sequence_params()
    x = as_float_array(x, "x", ndim=3)
    if x.shape[-1] != SEQUENCE_D_MODEL:
        raise ValueError(f"x: expected shape (B, L, {SEQUENCE_D_MODEL}), got {x.shape}")
    dtype = x.dtype
    config, layer = dec.config, dec.layers[0]
    module = torch.nn.utils.skip_init(
        torch.nn.TransformerDecoderLayer, config.d_model, config.n_heads,
        dim_feedforward=config.d_ff, dropout=0.0, activation=config.activation,
        layer_norm_eps=config.eps, batch_first=True, norm_first=(config.norm == "pre"),
        dtype=_tdtype(dtype))
    _copy_attention(module.self_attn, layer.self_attn, dtype)
    _copy_attention(module.multihead_attn, layer.cross_attn, dtype)
    _copy_linear(module.linear1, layer.ffn.w1, layer.ffn.b1, dtype)
    _copy_linear(module.linear2, layer.ffn.w2, layer.ffn.b2, dtype)
    _copy_norm(module.norm1, layer.ln1, dtype)
    _copy_norm(module.norm2, layer.ln2, dtype)
    _copy_norm(module.norm3, layer.ln3, dtype)
    module.eval()
    b, length = x.shape[0], x.shape[1]
    mem = np.broadcast_to(memory, (b,) + memory.shape[1:])
    tgt_mask = torch.nn.Transformer.generate_square_subsequent_mask(length, dtype=_tdtype(dtype))
    with torch.no_grad():
        y = module(_t(x, dtype), _t(mem, dtype), tgt_mask=tgt_mask, tgt_is_causal=True)
    return _np(y, dtype)


# ---------------------------------------------------------------------------
# gradients by autograd
# ---------------------------------------------------------------------------

@_serial
def softmax_jacobian(x) -> np.ndarray:
    """``torch.func.jacrev`` of ``torch.softmax`` over the last axis, row by row (vmap).

    Returns
    -------
    np.ndarray, (..., n, n)

    References
    ----------
    PyTorch documentation, torch.func.jacrev and torch.func.vmap.
    """
    torch = _torch()
    arr = as_float_array(x, "x", ndim_min=1, finite=False)
    if np.any(np.isnan(arr)) or np.any(np.isposinf(arr)):
        raise ValueError("x: contains NaN or +inf values (only -inf, for masked logits, is allowed)")
    n = arr.shape[-1]
    rows = _t(arr.reshape(-1, n), arr.dtype)                               # (R, n)
    jac = torch.func.vmap(torch.func.jacrev(lambda r: torch.softmax(r, dim=-1)))(rows)
    return _np(jac, arr.dtype).reshape(arr.shape + (n,))


@_serial
def softmax_backward(x, d_out, axis: int = -1) -> np.ndarray:
    """Autograd of ``torch.softmax``: ``dL/dx`` given ``dL/dp``.

    References
    ----------
    PyTorch documentation, torch.autograd.
    """
    torch = _torch()
    arr = as_float_array(x, "x", ndim_min=1, finite=False)
    if np.any(np.isnan(arr)) or np.any(np.isposinf(arr)):
        raise ValueError("x: contains NaN or +inf values (only -inf, for masked logits, is allowed)")
    g = as_float_array(d_out, "d_out", ndim_min=1)
    if g.shape != arr.shape:
        raise ValueError(f"d_out: expected the forward output's shape {arr.shape}, got {g.shape}")
    dtype = common_float_dtype(arr, g)
    tx = _t(arr, dtype, requires_grad=True)
    torch.softmax(tx, dim=int(axis)).backward(_t(g, dtype))
    return _np(tx.grad, dtype)


@_serial
def attention_backward(q, k, v, d_out, *, mask=None, causal=False, scale=None):
    """Autograd of ``F.scaled_dot_product_attention``: ``(dq, dk, dv)``.

    References
    ----------
    PyTorch documentation, torch.nn.functional.scaled_dot_product_attention
    and torch.autograd.
    """
    q, k, v = _qkv(q, k, v)
    g = as_float_array(d_out, "d_out", ndim_min=2)
    expected = q.shape[:-1] + (v.shape[-1],)
    if g.shape != expected:
        raise ValueError(f"d_out: expected the forward output's shape {expected}, got {g.shape}")
    dtype = common_float_dtype(q, k, v, g)
    s = _scale(scale, q.shape[-1])
    tq, tk, tv = (_t(a, dtype, requires_grad=True) for a in (q, k, v))
    _sdpa(tq, tk, tv, mask, causal, s, None, dtype).backward(_t(g, dtype))
    return _np(tq.grad, dtype), _np(tk.grad, dtype), _np(tv.grad, dtype)


@_serial
def layer_norm_backward(x, d_out, gamma=None, beta=None, *, eps: float = 1e-5):
    """Autograd of ``F.layer_norm``: ``(dx, dgamma, dbeta)`` (gain 1 and bias 0 if omitted).

    References
    ----------
    PyTorch documentation, torch.nn.functional.layer_norm and torch.autograd.
    """
    torch = _torch()
    x = as_float_array(x, "x", ndim_min=1)
    e = x.shape[-1]
    gamma, beta = _vector(gamma, "gamma", e), _vector(beta, "beta", e)
    g = as_float_array(d_out, "d_out", ndim_min=1)
    if g.shape != x.shape:
        raise ValueError(f"d_out: expected the forward output's shape {x.shape}, got {g.shape}")
    dtype = common_float_dtype(*(a for a in (x, gamma, beta, g) if a is not None))
    tx = _t(x, dtype, requires_grad=True)
    tg = _t(np.ones(e) if gamma is None else gamma, dtype, requires_grad=True)
    tb = _t(np.zeros(e) if beta is None else beta, dtype, requires_grad=True)
    torch.nn.functional.layer_norm(tx, (e,), tg, tb, float(eps)).backward(_t(g, dtype))
    return _np(tx.grad, dtype), _np(tg.grad, dtype), _np(tb.grad, dtype)


@_serial
def feed_forward_backward(x, params, d_out, *, activation="relu"):
    """Autograd of :func:`feed_forward`: ``(dx, FFNParams of gradients)``.

    References
    ----------
    PyTorch documentation, torch.autograd.
    """
    from transformer_theory.impl.layers import FFNParams

    act = _activation(activation)
    x, w1, b1, w2, b2 = _ffn_arrays(x, params)
    g = as_float_array(d_out, "d_out", ndim_min=1)
    if g.shape != x.shape:
        raise ValueError(f"d_out: expected the forward output's shape {x.shape}, got {g.shape}")
    dtype = common_float_dtype(*(a for a in (x, w1, b1, w2, b2, g) if a is not None))
    leaf = (lambda a: None if a is None else _t(a, dtype, requires_grad=True))
    tx, tw1, tb1, tw2, tb2 = (leaf(a) for a in (x, w1, b1, w2, b2))
    _ffn_torch(tx, tw1, tb1, tw2, tb2, act).backward(_t(g, dtype))
    grad = (lambda t: None if t is None else _np(t.grad, dtype))
    return grad(tx), FFNParams(w1=grad(tw1), b1=grad(tb1), w2=grad(tw2), b2=grad(tb2))


# ---------------------------------------------------------------------------
# the subject
# ---------------------------------------------------------------------------

def torch_target() -> dict:
    """PyTorch as a target of the suite (``transformer-theory check torch``).

    The adapter does not build the Subject itself (``impl`` never imports
    ``theory``): ``theory.subjects.torch_subject`` wraps what this returns.

    Returns
    -------
    dict
        ``name``, ``description``, ``callables`` (those of this module) and
        ``options`` (:data:`TORCH_OPTIONS`, its documented conventions).
    """
    torch = _torch()
    return dict(
        name="torch",
        description=f"PyTorch {torch.__version__} on CPU: SDPA, nn.MultiheadAttention, "
                    f"F.layer_norm, nn.TransformerEncoderLayer/DecoderLayer, autograd",
        options=TORCH_OPTIONS,
        callables={
            "softmax": softmax,
            "attention": attention,
            "attention_weights": attention_weights,
            "multi_head_attention": multi_head_attention,
            "grouped_query_attention": grouped_query_attention,
            "cross_attention": cross_attention,
            "layer_norm": layer_norm,
            "batch_norm": batch_norm,
            "feed_forward": feed_forward,
            "sigmoid": sigmoid,
            "tanh": tanh,
            "encoder": encoder,
            "encoder_map": encoder_map,
            "causal_map": causal_map,
            "softmax_jacobian": softmax_jacobian,
            "softmax_backward": softmax_backward,
            "attention_backward": attention_backward,
            "layer_norm_backward": layer_norm_backward,
            "feed_forward_backward": feed_forward_backward,
        },
    )
