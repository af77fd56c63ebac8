"""KV cache and incremental (causal) decoding.

Autoregressive decoding computes one position at a time. The keys and values
of the positions already decoded do not change, so they are kept in a cache
``(..., G, Lmax, D)`` (``G`` kv heads: grouped-query attention shrinks the
cache by ``H / G``), and each step projects only the new token, writes its key
and value, and attends with one query over the cached prefix -- the
bottom-right causal alignment of :mod:`.sdpa`. Step ``t`` equals row ``t`` of
the causal full forward pass of :mod:`.heads`.

The cache type (``KVCache``) and the checks of a decoding step are those of
:mod:`.contract`.

References
----------
Pope et al. 2023, Efficiently Scaling Transformer Inference, §2 (the KV
cache), §3.3 (its memory); Vaswani et al. 2017, Attention Is All You Need,
§3.2.3 (masked decoder self-attention); Ainslie et al. 2023, GQA, §1; seed 004
(shared/seeds/004_d5b314f5ea1e15da.txt, note 24: teacher forcing computes all
positions at once; decoding does one at a time).
"""

from __future__ import annotations

import math

import numpy as np

from .contract.precision import accepts_half, computes_in_float32
from .contract.params import KVCache, check_attention_params, check_decode_args
from .contract.validate import (
    as_float_array,
    check_float_dtype,
    check_positive_int,
    common_float_dtype,
)
from .heads import grouped_attend, merge_heads, project_heads

__all__ = [
    "init_kv_cache",
    "decode_step",
    "decode_sequence",
    "kv_cache_bytes",
]


def _batch_shape(batch_shape) -> tuple:
    if isinstance(batch_shape, (int, np.integer)) and not isinstance(batch_shape, (bool, np.bool_)):
        batch_shape = (batch_shape,)
    if not isinstance(batch_shape, (tuple, list)):
        raise TypeError(
            f"batch_shape: expected a tuple of ints, got {type(batch_shape).__name__}")
    return tuple(check_positive_int(b, "batch_shape", minimum=0) for b in batch_shape)


@accepts_half
def init_kv_cache(params, batch_shape, max_len: int, dtype=np.float64) -> KVCache:
    """An empty KV cache for ``params`` (multi-head or grouped-query).

    Parameters
    ----------
    params : MultiHeadParams or GroupedQueryParams
        ``G`` is ``n_heads`` for multi-head and ``n_kv_heads`` for grouped-query.
    batch_shape : tuple of int (or int)
        Leading dims of the inputs that will be decoded.
    max_len : int
        Capacity in positions (>= 1).
    dtype : float32 or float64

    Returns
    -------
    KVCache
        Zero arrays ``k (*batch_shape, G, max_len, Dh)``,
        ``v (*batch_shape, G, max_len, Dv)``, ``length = 0``.

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2.
    """
    check_attention_params(params)
    batch = _batch_shape(batch_shape)
    max_len = check_positive_int(max_len, "max_len")
    dt = check_float_dtype(dtype)
    g = params.n_kv_heads
    k = np.zeros(batch + (g, max_len, params.d_head), dtype=dt)    # (..., G, Lmax, Dh)
    v = np.zeros(batch + (g, max_len, params.d_value), dtype=dt)   # (..., G, Lmax, Dv)
    return KVCache(k, v, 0)


@computes_in_float32
def decode_step(x_t, params, cache: KVCache):
    """One step of incremental (causal) self-attention decoding with a KV cache.

    Projects the new token, writes its key and value at position
    ``cache.length`` and attends over positions ``[0, cache.length]``. The
    result equals row ``cache.length`` of the causal full forward pass; with
    one query against ``length + 1`` keys this is the bottom-right causal
    alignment. The input cache is not modified: a new cache is returned.

    Parameters
    ----------
    x_t : array_like, (..., 1, E)
        The new token's input; leading dims equal to the cache's batch shape.
    params : MultiHeadParams or GroupedQueryParams
        Self-attention weights (``d_kv == d_model``).
    cache : KVCache
        From :func:`init_kv_cache` or a previous step; must not be full.

    Returns
    -------
    y_t : np.ndarray, (..., 1, E)
    new_cache : KVCache
        ``length`` increased by one. Its arrays have the output dtype.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3 (masked decoder
    self-attention); Pope et al. 2023, Efficiently Scaling Transformer
    Inference, §2; seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt, note 24:
    teacher forcing computes all positions at once; decoding does one at a time).
    """
    x_t = check_decode_args(x_t, params, cache)
    dtype = common_float_dtype(x_t, cache.k, cache.v, *params.arrays())
    w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o = params.cast(dtype)
    x_t = x_t.astype(dtype, copy=False)
    t = cache.length
    q = project_heads(x_t, w_q, b_q)                         # (..., H, 1, Dh)
    k_all = cache.k.astype(dtype, copy=True)                 # (..., G, Lmax, Dh)
    v_all = cache.v.astype(dtype, copy=True)                 # (..., G, Lmax, Dv)
    k_all[..., t:t + 1, :] = project_heads(x_t, w_k, b_k)    # (..., G, 1, Dh)
    v_all[..., t:t + 1, :] = project_heads(x_t, w_v, b_v)    # (..., G, 1, Dv)
    o = grouped_attend(q, k_all[..., :t + 1, :], v_all[..., :t + 1, :], None,
                       1.0 / math.sqrt(params.d_head), None)  # (..., H, 1, Dv)
    y_t = merge_heads(o, w_o, b_o)                           # (..., 1, E)
    return y_t, KVCache(k_all, v_all, t + 1)


def decode_sequence(x, params) -> np.ndarray:
    """Causal self-attention computed token by token with :func:`decode_step`.

    Equals ``multi_head_attention(x, x, params, causal=True)`` (or the
    grouped-query version) up to rounding.

    Parameters
    ----------
    x : array_like, (..., L, E)
    params : MultiHeadParams or GroupedQueryParams

    Returns
    -------
    np.ndarray, (..., L, E)

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2;
    Vaswani et al. 2017, §3.2.3.
    """
    check_attention_params(params)
    x = as_float_array(x, "x", ndim_min=2)
    length = x.shape[-2]
    if length == 0:
        raise ValueError(f"x: expected at least one position, got shape {x.shape}")
    dtype = common_float_dtype(x, *params.arrays())
    cache = init_kv_cache(params, x.shape[:-2], length, dtype=dtype)
    outputs = []
    for t in range(length):       # inherently sequential: one position per step
        y_t, cache = decode_step(x[..., t:t + 1, :], params, cache)   # (..., 1, E)
        outputs.append(y_t)
    return np.concatenate(outputs, axis=-2)                           # (..., L, E)


def kv_cache_bytes(n_layers: int, n_kv_heads: int, d_head: int, seq_len: int, batch: int,
                   dtype=np.float64) -> int:
    """Memory of a KV cache: ``2 * layers * kv_heads * d_head * seq_len * batch * itemsize``.

    The factor 2 counts keys and values (value width taken equal to ``d_head``).
    Grouped-query attention shrinks it by ``H / G`` relative to multi-head.

    Parameters
    ----------
    n_layers, n_kv_heads, d_head, seq_len, batch : int
    dtype : float32 or float64 (or any numpy dtype, for its itemsize)

    Returns
    -------
    int
        Bytes.

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §3.3;
    Ainslie et al. 2023, GQA, §1.
    """
    n_layers = check_positive_int(n_layers, "n_layers")
    n_kv_heads = check_positive_int(n_kv_heads, "n_kv_heads")
    d_head = check_positive_int(d_head, "d_head")
    seq_len = check_positive_int(seq_len, "seq_len", minimum=0)
    batch = check_positive_int(batch, "batch")
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:
        raise TypeError(f"dtype: expected a numpy dtype, got {dtype!r}") from None
    return 2 * n_layers * n_kv_heads * d_head * seq_len * batch * itemsize
