"""Accelerated KV-cache decoding in numba.

Mirrors :mod:`transformer_theory.impl.kv_cache` function by function, with
the same signatures, validation and semantics. A decoding step projects the
new token with the kernels of :mod:`.heads` (rotated at its position under
RoPE), writes its key and value into a copy of the cache (rolled by one slot
when a sliding-window cache is full), and attends with the fused kernel of
:mod:`.attention`, which reads only the attended prefix of the cache buffer
(no slicing copy); the left padding of a batch is a key-padding mask of the
kernel. Creating a cache and counting its bytes have nothing to accelerate
and are the reference's.

References
----------
Pope et al. 2023, Efficiently Scaling Transformer Inference, §2 (the KV
cache); Vaswani et al. 2017, Attention Is All You Need, §3.2.3; Dao 2023,
FlashAttention-2, §3.1 (the bottom-right causal alignment of decoding); Su et
al. 2021, RoFormer, §3.4.2; Mistral AI 2023, mistral-src README (the rolling
buffer cache).
"""

from __future__ import annotations

import math

import numpy as np

from .. import kv_cache as reference
from ..contract.params import (KVCache, check_decode_args, check_decode_positions,
                               check_real_tokens_finite)
from ..contract.validate import common_float_dtype
from ..kv_cache import (  # noqa: F401  (re-exported: nothing to accelerate)
    init_kv_cache,
    kv_cache_bytes,
)
from ..heads import check_rope_base
from ._docs import same_contract
from ._numeric import as_kernel_array
from .attention import as_slabs, run_attention
from .heads import merge_heads, project_heads, rotate_heads

__all__ = [
    "KVCache",
    "init_kv_cache",
    "decode_step",
    "decode_sequence",
    "kv_cache_bytes",
]


def _next_slots(arr, dtype, kept: int, full: bool) -> np.ndarray:
    """The next step's cache array in ``dtype``: the ``kept`` earlier slots still attended.

    They are copied to slots ``0 .. kept - 1`` of a new C-contiguous buffer
    (``full``: a full window drops its oldest slot, so slots ``1 .. kept``
    move to the front, as ``np.roll(arr, -1)`` of the reference). Slot
    ``kept`` is left for the new token, and the slots after it are not
    written: :class:`KVCache` lets unwritten slots hold any value. Copying
    the whole buffer, as the reference does, took 0.79 ms of a 1.3 ms step
    with 512 of 4096 slots filled (float32, E = 512).
    """
    out = np.empty(arr.shape, dtype=dtype)                             # (..., G, Lmax, D)
    first = int(full)                                                  # the oldest slot dropped
    out[..., :kept, :] = arr[..., first:first + kept, :]
    return out


@same_contract(reference.decode_step)
def decode_step(x_t, params, cache: KVCache, *, positions=None, rope_base=None):
    """One step of incremental causal self-attention decoding with a KV cache.

    Same contract as :func:`transformer_theory.impl.kv_cache.decode_step`,
    with its checks in its order, but for the finiteness of the attended
    cache slots: the kernel's guard checks the slots as it reads them, and
    on a trip the reference step runs and raises its error. The new token's
    key and value are written at slot ``cache.length`` of a new cache
    holding the attended earlier slots (for a sliding-window cache that is
    full, the oldest slot is dropped first; the slots after the new one are
    left unwritten, as :class:`KVCache` allows), and its query attends over
    the slots ``[start, t]`` with the fused kernel, which reads only that
    prefix of the cache buffer. The input cache is not modified.

    Left-padded batches: ``positions`` gives each sequence's position of this
    token counted from its first real token; the slots before ``start = t -
    positions`` are padding, never attended (a key-padding mask of the
    kernel) and may hold anything, NaN included (zeroed in the attended copy
    only, as in the reference). A padding token (negative position) may be
    non-finite and gets a zero output row.

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2;
    Vaswani et al. 2017, §3.2.3; Su et al. 2021, RoFormer, §3.4.2 (the
    rotation at each position); Mistral AI 2023, mistral-src README (the
    rolling buffer cache of sliding window attention); seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt, note 24).
    """
    x_t = check_decode_args(x_t, params, cache, finite=False, windowed=True)
    start = check_decode_positions(positions, cache)                      # (...,) first real slot
    t = cache.length
    real = start <= t                                                     # (...,) not padding
    check_real_tokens_finite(x_t, real)
    base = check_rope_base(rope_base, 1, 1, params.d_head)
    x_in = x_t
    padded_batch = not np.all(real)
    if padded_batch:
        x_t = np.where(real[..., None, None], x_t, 0)                     # (..., 1, E) padding -> 0
    dtype = common_float_dtype(x_t, cache.k, cache.v, *params.arrays())
    w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o = params.cast(dtype)
    n_heads, n_kv, dh, dv = params.n_heads, params.n_kv_heads, params.d_head, params.d_value
    lmax = cache.max_len
    n_batch = math.prod(cache.batch_shape)
    # not reference.attended_slots: its finiteness scan of the cache took half of a step (2.2 of
    # 3.9 ms, 16.8 MB cache); the kernel's guard checks the slots it reads instead
    kept, full, _, _, allowed = reference.slot_plan(cache, start)   # allowed: (..., n)
    n = kept + 1                                            # slots attended: positions t-kept .. t
    x3 = as_kernel_array(x_t.reshape((n_batch, 1, x_t.shape[-1])), dtype)  # (B, 1, E)
    k_all = _next_slots(cache.k, dtype, kept, full)                       # (..., G, Lmax, Dh)
    v_all = _next_slots(cache.v, dtype, kept, full)                       # (..., G, Lmax, Dv)
    k4 = k_all.reshape(n_batch, n_kv, lmax, dh)                           # views
    v4 = v_all.reshape(n_batch, n_kv, lmax, dv)
    q = project_heads(x3, w_q, b_q, dtype)                                # (B, H, 1, Dh)
    k_t = project_heads(x3, w_k, b_k, dtype)                              # (B, G, 1, Dh)
    if base is not None:                                                  # at each token's position
        pos = (t - start).reshape(n_batch, 1)                             # (B, 1)
        rotate_heads(q, pos, base, dtype)
        rotate_heads(k_t, pos, base, dtype)
    k4[:, :, kept, :] = k_t[:, :, 0, :]                                   # (B, G, Dh)
    v4[:, :, kept, :] = project_heads(x3, w_v, b_v, dtype)[:, :, 0, :]    # (B, G, Dv)
    keys, values, mask_slabs = k4, v4, None
    if not np.all(allowed):                                 # left padding: a key-padding mask
        seen = allowed.reshape(n_batch, 1, n, 1)                          # (B, 1, n, 1)
        keys = np.where(seen, k4[:, :, :n, :], dtype.type(0))             # (B, G, n, Dh)
        values = np.where(seen, v4[:, :, :n, :], dtype.type(0))           # (B, G, n, Dv)
        mask_slabs = as_slabs(allowed.reshape(n_batch, 1, 1, n), (n_batch, n_heads), 1, n,
                              np.bool_)                                   # (B, 1, n)
    scale = 1.0 / math.sqrt(dh)
    width = keys.shape[2]
    o = run_attention(q.reshape(n_batch * n_heads, 1, dh),
                      keys.reshape(n_batch * n_kv, width, dh),
                      values.reshape(n_batch * n_kv, width, dv), n, n_heads // n_kv, scale,
                      None, mask_slabs, None, dtype, guard=True)          # (B*H, 1, Dv)
    if o is None:            # a logit may overflow, or a value is not finite: the reference decides
        return reference.decode_step(x_in, params, cache, positions=positions,
                                     rope_base=rope_base)
    y = merge_heads(o.reshape(n_batch, n_heads, 1, dv), w_o, b_o, dtype)  # (B, 1, E)
    y = y.reshape(x_t.shape[:-1] + (y.shape[-1],))                        # (..., 1, E)
    if padded_batch:
        y = np.where(real[..., None, None], y, dtype.type(0))             # padding tokens: zeros
    return y, KVCache(k_all, v_all, t + 1, cache.window)


@same_contract(reference.decode_sequence)
def decode_sequence(x, params) -> np.ndarray:
    """Causal self-attention computed token by token with :func:`decode_step`.

    Same contract as :func:`transformer_theory.impl.kv_cache.decode_sequence`.

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2.
    """
    return reference.decode_with(decode_step, x, params)
