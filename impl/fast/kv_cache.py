"""Accelerated KV-cache decoding in numba.

Mirrors :mod:`transformer_theory.impl.kv_cache` function by function, with
the same signatures, validation and semantics. A decoding step projects the
new token with the kernels of :mod:`.heads`, writes its key and value into a
copy of the cache, and attends with the fused kernel of :mod:`.attention`,
which reads only the first ``length + 1`` positions of the cache buffer (no
slicing copy). Creating a cache and counting its bytes have nothing to
accelerate and are the reference's.

References
----------
Pope et al. 2023, Efficiently Scaling Transformer Inference, §2 (the KV
cache); Vaswani et al. 2017, Attention Is All You Need, §3.2.3; Dao 2023,
FlashAttention-2, §3.1 (the bottom-right causal alignment of decoding).
"""

from __future__ import annotations

import math

import numpy as np

from .. import kv_cache as reference
from ..contract.params import KVCache, check_attention_params, check_decode_args
from ..contract.validate import as_float_array, common_float_dtype
from ..kv_cache import (  # noqa: F401  (re-exported: nothing to accelerate)
    init_kv_cache,
    kv_cache_bytes,
)
from ._numeric import as_kernel_array
from .attention import run_attention, scores_may_overflow
from .heads import merge_heads, project_heads

__all__ = [
    "KVCache",
    "init_kv_cache",
    "decode_step",
    "decode_sequence",
    "kv_cache_bytes",
]


def decode_step(x_t, params, cache: KVCache):
    """One step of incremental causal self-attention decoding with a KV cache.

    Same contract as :func:`transformer_theory.impl.kv_cache.decode_step`:
    the new token's key and value are written at position ``cache.length`` of
    a copy of the cache, and its query attends over positions
    ``[0, cache.length]`` with the fused kernel, which reads only that prefix
    of the cache (no slicing copy). The input cache is not modified.

    Parameters
    ----------
    x_t : array_like, (..., 1, E)
    params : MultiHeadParams or GroupedQueryParams
        Self-attention weights (``d_kv == d_model``).
    cache : KVCache
        Not full.

    Returns
    -------
    y_t : np.ndarray, (..., 1, E)
    new_cache : KVCache
        ``length`` increased by one; arrays in the output dtype.

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2;
    Vaswani et al. 2017, §3.2.3; seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt, note 24).
    """
    x_t = check_decode_args(x_t, params, cache)
    dtype = common_float_dtype(x_t, cache.k, cache.v, *params.arrays())
    w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o = params.cast(dtype)
    t = cache.length
    n_heads, n_kv, dh, dv = params.n_heads, params.n_kv_heads, params.d_head, params.d_value
    lmax = cache.max_len
    n_batch = math.prod(cache.batch_shape)
    x3 = as_kernel_array(x_t.reshape((n_batch, 1, x_t.shape[-1])), dtype)  # (B, 1, E)
    k_all = np.array(cache.k, dtype=dtype, order="C", copy=True)          # (..., G, Lmax, Dh)
    v_all = np.array(cache.v, dtype=dtype, order="C", copy=True)          # (..., G, Lmax, Dv)
    k4 = k_all.reshape(n_batch, n_kv, lmax, dh)                           # views
    v4 = v_all.reshape(n_batch, n_kv, lmax, dv)
    q = project_heads(x3, w_q, b_q, dtype)                                # (B, H, 1, Dh)
    k4[:, :, t, :] = project_heads(x3, w_k, b_k, dtype)[:, :, 0, :]       # (B, G, Dh)
    v4[:, :, t, :] = project_heads(x3, w_v, b_v, dtype)[:, :, 0, :]       # (B, G, Dv)
    scale = 1.0 / math.sqrt(dh)
    if scores_may_overflow(q, k4[:, :, :t + 1, :], scale, None, dtype):
        return reference.decode_step(x_t, params, cache)
    o = run_attention(q.reshape(n_batch * n_heads, 1, dh), k4.reshape(n_batch * n_kv, lmax, dh),
                      v4.reshape(n_batch * n_kv, lmax, dv), t + 1, n_heads // n_kv, scale,
                      None, None, None, dtype)                            # (B*H, 1, Dv)
    y = merge_heads(o.reshape(n_batch, n_heads, 1, dv), w_o, b_o, dtype)  # (B, 1, E)
    return y.reshape(x_t.shape[:-1] + (y.shape[-1],)), KVCache(k_all, v_all, t + 1)


def decode_sequence(x, params) -> np.ndarray:
    """Causal self-attention computed token by token with :func:`decode_step`.

    Parameters
    ----------
    x : array_like, (..., L, E)
    params : MultiHeadParams or GroupedQueryParams

    Returns
    -------
    np.ndarray, (..., L, E)

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2.
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
        y_t, cache = decode_step(x[..., t:t + 1, :], params, cache)      # (..., 1, E)
        outputs.append(y_t)
    return np.concatenate(outputs, axis=-2)                               # (..., L, E)
