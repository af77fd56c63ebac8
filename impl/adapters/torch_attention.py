"""PyTorch's attention behind the numpy contract: SDPA and nn.MultiheadAttention.

* ``softmax`` is ``torch.softmax`` (an all ``-inf`` row gives NaN: a torch
  convention the subject declares);
* ``attention`` is ``torch.nn.functional.scaled_dot_product_attention``;
  ``attention_weights`` is the same kernel applied to the identity matrix as
  values (``softmax(s QK^T) I = softmax(s QK^T)``), so the weights are SDPA's
  own and not a re-implementation;
* ``multi_head_attention`` and ``cross_attention`` are
  ``torch.nn.MultiheadAttention`` with the weights of the reference's
  ``MultiHeadParams`` copied in (see :func:`load_multihead` for the mapping);
* ``grouped_query_attention`` projects with the reference weights and calls
  SDPA with ``enable_gqa=True`` (PyTorch's own head mapping).

``is_causal=True`` is top-left aligned, as the contract; the contract's
``causal="bottom-right"`` maps to ``torch.nn.attention.bias.causal_lower_right``.
SDPA has no window or document argument: a sliding ``window`` and packed
``segment_ids`` reach it as an explicit boolean ``attn_mask`` (the band and the
same-document blocks of the contract).
SDPA's boolean ``attn_mask`` uses True = may attend (the contract), but
``nn.MultiheadAttention`` uses True = masked out; the adapter inverts it.

References
----------
PyTorch documentation: ``torch.nn.functional.scaled_dot_product_attention``,
``torch.nn.MultiheadAttention``. Vaswani et al. 2017, Attention Is All You
Need, §3.2 (the maps wrapped); Ainslie et al. 2023, GQA, §2.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .._validate import (as_bool_mask, as_float_array, check_batch_dims, check_same_dim,
                         common_float_dtype)
from ..contract.validate import check_window, segment_allowed, window_band
from ._torch_common import (
    allowed_mask,
    causal_align,
    check_bias_array,
    check_qkv_arrays,
    check_scale,
    flatten_lead,
    import_torch,
    mask_tensor,
    param_arrays,
    serial,
    to_numpy,
    to_tensor,
    torch_dtype,
)

__all__ = [
    "softmax",
    "attention",
    "attention_weights",
    "load_multihead",
    "multi_head_attention",
    "cross_attention",
    "grouped_query_attention",
    "sdpa",
]


# ---------------------------------------------------------------------------
# softmax and scaled dot-product attention
# ---------------------------------------------------------------------------

@serial
def softmax(x, axis: int = -1) -> np.ndarray:
    """``torch.softmax(x, dim=axis)`` (an all ``-inf`` row gives NaN: a torch convention)."""
    arr = as_float_array(x, "x", ndim_min=1, finite=False)
    if np.any(np.isnan(arr)) or np.any(np.isposinf(arr)):
        raise ValueError("x: contains NaN or +inf values (only -inf, for masked logits, is allowed)")
    torch = import_torch()
    with torch.no_grad():
        return to_numpy(torch.softmax(to_tensor(arr, arr.dtype), dim=int(axis)), arr.dtype)


def _sdpa_mask(mask, causal, bias, lead, lq, lk, dtype):
    """SDPA's ``attn_mask``/``is_causal`` for the contract's mask, causal and bias."""
    from torch.nn.attention.bias import causal_lower_right

    align = causal_align(causal)
    if bias is None and mask is None:
        if align == "top-left":
            return None, True
        if align == "bottom-right":
            with warnings.catch_warnings():   # "will produce NaNs when Lq > Lk": on CPU it
                warnings.filterwarnings(      # returns zeros, which the claims check
                    "ignore", message="Lower right causal bias")
                return causal_lower_right(lq, lk), False
        return None, False
    allowed = allowed_mask(mask, causal, lead, lq, lk)
    if bias is None:
        return mask_tensor(np.broadcast_to(allowed, tuple(lead) + (lq, lk))), False
    additive = np.broadcast_to(bias, tuple(lead) + (lq, lk)).astype(dtype)   # (..., Lq, Lk)
    if allowed is not None:
        additive = np.where(allowed, additive, -np.inf)
    return to_tensor(additive, dtype), False


def _explicit_mask(mask, causal, window, segment_ids, lead, lq, lk):
    """``mask`` ANDed with the window's band and the documents' blocks (SDPA takes neither)."""
    extra = None
    if window is not None:
        align = "bottom-right" if causal == "bottom-right" else "top-left"
        extra = window_band(lq, lk, check_window(window), align)                 # (Lq, Lk)
    same_doc = segment_allowed(segment_ids, lead, lq, lk)                         # (..., L, L)
    if same_doc is not None:
        extra = same_doc if extra is None else (extra & same_doc)
    if extra is None:
        return mask
    if mask is None:
        return extra
    return as_bool_mask(mask, "mask", tuple(lead) + (lq, lk)) & extra            # (..., Lq, Lk)


def sdpa(q, k, v, mask, causal, scale, bias, dtype):
    """``F.scaled_dot_product_attention`` on torch tensors with the contract's masks.

    Parameters
    ----------
    q, k, v : torch.Tensor, (..., Lq, E), (..., Lk, E), (..., Lk, Ev)
    mask, causal
        The contract's (True = may attend; ``causal`` any alignment).
    scale : float
    bias : np.ndarray or None
        Checked (:func:`._torch_common.check_bias_array`).
    dtype : numpy dtype

    Returns
    -------
    torch.Tensor, (..., Lq, Ev)

    References
    ----------
    PyTorch documentation, torch.nn.functional.scaled_dot_product_attention.
    """
    torch = import_torch()
    lead, lq, lk = tuple(q.shape[:-2]), q.shape[-2], k.shape[-2]
    attn_mask, is_causal = _sdpa_mask(mask, causal, bias, lead, lq, lk, dtype)
    return torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale)


@serial
def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None, window=None,
              segment_ids=None) -> np.ndarray:
    """``F.scaled_dot_product_attention`` under the numpy contract.

    ``causal=True`` is SDPA's ``is_causal`` (top-left), ``"bottom-right"`` is
    ``causal_lower_right``; a mask and causal together become one boolean
    ``attn_mask`` (SDPA refuses both), and ``bias`` a float ``attn_mask``.
    ``window`` and ``segment_ids`` are folded into the boolean mask.

    Parameters
    ----------
    q, k, v, mask, causal, scale, bias, window, segment_ids
        As in ``transformer_theory.impl.attention.attention``.

    Returns
    -------
    np.ndarray, (..., Lq, Ev)

    References
    ----------
    PyTorch documentation, torch.nn.functional.scaled_dot_product_attention;
    Vaswani et al. 2017, Attention Is All You Need, §3.2.1.
    """
    q, k, v = check_qkv_arrays(q, k, v)
    mask = _explicit_mask(mask, causal, window, segment_ids, q.shape[:-2], q.shape[-2],
                          k.shape[-2])
    b = check_bias_array(bias, q.shape[:-2], q.shape[-2], k.shape[-2])
    dtype = common_float_dtype(q, k, v, b)
    s = check_scale(scale, q.shape[-1])
    torch = import_torch()
    with torch.no_grad():
        tq, tk, tv = (to_tensor(a, dtype) for a in (q, k, v))
        out = sdpa(tq, tk, tv, mask, causal, s, b, dtype)
    return to_numpy(out, dtype)


@serial
def attention_weights(q, k, *, mask=None, causal=False, scale=None, bias=None, window=None,
                      segment_ids=None) -> np.ndarray:
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
    mask = _explicit_mask(mask, causal, window, segment_ids, q.shape[:-2], q.shape[-2], lk)
    b = check_bias_array(bias, q.shape[:-2], q.shape[-2], lk)
    dtype = common_float_dtype(q, k, b)
    eye = np.broadcast_to(np.eye(lk, dtype=dtype), k.shape[:-2] + (lk, lk))   # (..., Lk, Lk)
    s = check_scale(scale, q.shape[-1])
    torch = import_torch()
    with torch.no_grad():
        tq, tk, teye = (to_tensor(a, dtype) for a in (q, k, eye))
        out = sdpa(tq, tk, teye, mask, causal, s, b, dtype)
    return to_numpy(out, dtype)


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
    torch = import_torch()
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
        batch_first=True, dtype=torch_dtype(dtype))
    with torch.no_grad():
        if module._qkv_same_embed_dim:
            module.in_proj_weight.copy_(to_tensor(np.concatenate([wq, wk, wv]), dtype))
        else:
            module.q_proj_weight.copy_(to_tensor(wq, dtype))
            module.k_proj_weight.copy_(to_tensor(wk, dtype))
            module.v_proj_weight.copy_(to_tensor(wv, dtype))
        module.in_proj_bias.copy_(to_tensor(np.concatenate([bq, bk, bv]), dtype))
        module.out_proj.weight.copy_(to_tensor(wo, dtype))
        module.out_proj.bias.copy_(to_tensor(bo, dtype))
    return module.eval(), width


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


def _run_multihead(x_q, x_kv, params, *, attn_allowed=None, key_padding=None, bias=None):
    """nn.MultiheadAttention on (..., L, E) arrays; masks in the contract's polarity."""
    torch = import_torch()
    lead, lq, lk, h = x_q.shape[:-2], x_q.shape[-2], x_kv.shape[-2], params.n_heads
    extra = [] if bias is None else [bias]
    dtype = common_float_dtype(x_q, x_kv, *param_arrays(params), *extra)
    module, width = load_multihead(params, dtype)
    xq = flatten_lead(x_q)                                             # (N, Lq, E)
    xkv = flatten_lead(x_kv)                                           # (N, Lk, Ekv)
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
        attn_mask = to_tensor(additive, dtype)                                 # (N*H, Lq, Lk)
    elif attn_allowed is not None:
        allowed = np.broadcast_to(attn_allowed, tuple(lead) + (lq, lk)).reshape(n, lq, lk)
        blocked = ~np.repeat(allowed, h, axis=0)                        # (N*H, Lq, Lk) True = masked
        attn_mask = mask_tensor(blocked)
    kpm = None
    if key_padding is not None:
        kpm = mask_tensor(~flatten_lead(key_padding[..., None])[..., 0])    # (N, Lk) True = padded
    tq = to_tensor(xq, dtype)
    tkv = to_tensor(xkv, dtype)
    with torch.no_grad():
        out, _ = module(tq, tkv, tkv, attn_mask=attn_mask, key_padding_mask=kpm,
                        need_weights=False)
    y = to_numpy(out, dtype)[..., :params.d_model]                           # (N, Lq, E)
    return y.reshape(tuple(lead) + (lq, params.d_model))


@serial
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
    allowed = allowed_mask(mask, causal, lead, lq, lk)
    b = None if bias is None else check_bias_array(bias, tuple(lead) + (params.n_heads,), lq, lk)
    return _run_multihead(x_q, x_kv, params, attn_allowed=allowed, bias=b)


@serial
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


@serial
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
    torch = import_torch()
    x_q, x_kv = _mha_inputs(x_q, x_kv, params)
    lead, lq, lk = x_q.shape[:-2], x_q.shape[-2], x_kv.shape[-2]
    b = None if bias is None else check_bias_array(bias, tuple(lead) + (params.n_heads,), lq, lk)
    extra = [] if b is None else [b]
    dtype = common_float_dtype(x_q, x_kv, *param_arrays(params), *extra)
    zeros = (lambda n, d: np.zeros((n, d)))
    tp = (lambda a: to_tensor(a, dtype))
    with torch.no_grad():
        xq, xkv = tp(x_q), tp(x_kv)
        bq = params.b_q if params.b_q is not None else zeros(params.n_heads, params.d_head)
        bk = params.b_k if params.b_k is not None else zeros(params.n_kv_heads, params.d_head)
        bv = params.b_v if params.b_v is not None else zeros(params.n_kv_heads, params.d_value)
        q = torch.einsum("...le,hed->...hld", xq, tp(params.w_q)) + tp(bq)[:, None, :]   # (..., H, Lq, Dh)
        k = torch.einsum("...le,hed->...hld", xkv, tp(params.w_k)) + tp(bk)[:, None, :]  # (..., G, Lk, Dh)
        v = torch.einsum("...le,hed->...hld", xkv, tp(params.w_v)) + tp(bv)[:, None, :]  # (..., G, Lk, Dv)
        allowed = allowed_mask(mask, causal, lead, lq, lk)
        attn_mask = None
        if b is not None:
            additive = np.broadcast_to(b, tuple(lead) + (params.n_heads, lq, lk))
            if allowed is not None:
                additive = np.where(np.expand_dims(allowed, -3), additive, -np.inf)
            attn_mask = tp(additive)
        elif allowed is not None:
            attn_mask = mask_tensor(np.expand_dims(np.broadcast_to(allowed, tuple(lead) + (lq, lk)), -3))
        o = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, enable_gqa=True)                       # (..., H, Lq, Dv)
        concat = o.transpose(-3, -2).reshape(tuple(lead) + (lq, -1))            # (..., Lq, H*Dv)
        y = concat @ tp(params.w_o)                                              # (..., Lq, E)
        if params.b_o is not None:
            y = y + tp(params.b_o)
    return to_numpy(y, dtype)
