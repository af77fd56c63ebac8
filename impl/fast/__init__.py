"""The accelerated path: numba kernels with the reference's signatures.

``transformer_theory.impl.fast`` mirrors the reference implementation
(``transformer_theory.impl``) function by function: the same names, the same
signatures, the same validation and errors (the reference's own checks run
before any compiled code), the same semantics -- and is held to the same
claims as the ``fast`` subject. Needs numba (the ``fast`` extra).

Kernels are compiled on first use per dtype and cached on disk
(``cache=True``); :func:`warm_up` compiles or loads all of them at once.

Modules: :mod:`.attention` (fused tiled attention, mirroring the reference's
:mod:`~transformer_theory.impl.sdpa`), :mod:`.heads` (multi-head,
grouped-query, cross-attention), :mod:`.kv_cache` (KV-cache decoding),
:mod:`.layers` (layer and RMS norm, feed-forward network),
:mod:`.performer` (random features, FAVOR+). Design notes and references are
in their docstrings; the numerical building blocks (a vectorisable ``exp``,
BLAS threading) in :mod:`._numeric`.
"""

from __future__ import annotations

import os
import sysconfig


def _cache_outside_site_packages() -> None:
    """Keep numba's on-disk cache out of an installed (non-editable) package.

    numba writes its cache next to the source (``__pycache__``) when that
    directory is writable. For an editable install that is the repository;
    for a regular install it would be site-packages, so the cache is then
    redirected to the user's cache directory -- unless NUMBA_CACHE_DIR is
    already set, which always wins.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = os.path.realpath(os.path.dirname(__file__))
    site_dirs = {os.path.realpath(p) for p in (sysconfig.get_paths()["purelib"],
                                               sysconfig.get_paths()["platlib"]) if p}
    if not any(here.startswith(d + os.sep) for d in site_dirs):
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    import numba.core.config as numba_config

    numba_config.CACHE_DIR = os.path.join(base, "transformer_theory", "numba")


_cache_outside_site_packages()

from .attention import attention, attention_weights, softmax  # noqa: E402
from .heads import (  # noqa: E402
    GroupedQueryParams,
    MultiHeadParams,
    cross_attention,
    grouped_query_attention,
    init_grouped_query,
    init_multi_head,
    multi_head_attention,
    self_attention,
)
from .kv_cache import KVCache, decode_sequence, decode_step, init_kv_cache, kv_cache_bytes  # noqa: E402,E501
from .layers import (  # noqa: E402
    FFNParams,
    LayerNormParams,
    feed_forward,
    init_ffn,
    init_layer_norm,
    layer_norm,
    rms_norm,
)
from .performer import (  # noqa: E402
    favor_attention,
    favor_attention_recurrent,
    feature_dimension,
    gaussian_matrix,
    orthogonal_gaussian,
    random_features,
)

__all__ = [
    "softmax",
    "attention",
    "attention_weights",
    "MultiHeadParams",
    "GroupedQueryParams",
    "init_multi_head",
    "init_grouped_query",
    "multi_head_attention",
    "self_attention",
    "cross_attention",
    "grouped_query_attention",
    "KVCache",
    "init_kv_cache",
    "decode_step",
    "decode_sequence",
    "kv_cache_bytes",
    "LayerNormParams",
    "init_layer_norm",
    "layer_norm",
    "rms_norm",
    "FFNParams",
    "init_ffn",
    "feed_forward",
    "feature_dimension",
    "gaussian_matrix",
    "orthogonal_gaussian",
    "random_features",
    "favor_attention",
    "favor_attention_recurrent",
    "warm_up",
]


def warm_up(dtypes=("float32", "float64")) -> None:
    """Compile (or load from the on-disk cache) every kernel for ``dtypes``.

    Runs each public function once on tiny inputs, so that later calls --
    timed benchmarks, Hypothesis examples -- do not pay for compilation.

    Parameters
    ----------
    dtypes : iterable of dtype-likes
        float32 and/or float64.
    """
    import numpy as np

    from ._native import native_threads
    from ._numeric import num_threads
    from .flash import merge_splits

    rng = np.random.default_rng(0)
    for name in dtypes:
        dt = np.dtype(name)
        q = rng.standard_normal((1, 2, 3, 4)).astype(dt)
        mask = np.ones((3, 3), dtype=bool)
        softmax(q)
        attention(q, q, q, mask=mask, causal=True, bias=np.zeros((3, 3), dt))
        attention(q, q, q)
        params = init_grouped_query(4, 2, 1, rng, dtype=dt)
        x = rng.standard_normal((1, 3, 4)).astype(dt)
        grouped_query_attention(x, x, params, causal=True)
        grouped_query_attention(x, x, params, causal=True, rope_base=10.0, window=(1, 0))
        cache = init_kv_cache(params, (1,), 2, dtype=dt)
        decode_step(x[:, :1], params, cache)
        decode_step(x[:, :1], params, cache, positions=np.zeros(1, dtype=int), rope_base=10.0)
        attention(q, q, q, segment_ids=np.array([0, 0, 1]))
        layer_norm(x, np.ones(4, dt), np.zeros(4, dt))
        rms_norm(x, np.ones(4, dt))
        rms_norm(x)
        attention(q, q, q, window=(1, 0), softcap=30.0, bias=np.zeros((3, 3), dt))
        ffn = init_ffn(4, 8, rng, dtype=dt)
        feed_forward(x, ffn)
        feed_forward(x, ffn, activation=lambda h: h)
        w = rng.standard_normal((3, 4)).astype(dt)
        random_features(x, w, "trig")
        favor_attention(q, q, q, w, causal=False)
        favor_attention(q, q, q, w, causal=True)
        favor_attention_recurrent(q, q, q, w)
        # the merge of keys split over threads runs only when tasks are fewer than threads
        parts = np.zeros((2, 1, 1, 4), dt)
        merge_splits(parts, np.zeros((2, 1, 1), dt), np.ones((2, 1, 1), dt),
                     np.empty((1, 1, 4), dt))
        if num_threads() > 1 and native_threads():      # the attention kernel's native launcher
            kv = rng.standard_normal((2, 512, 64)).astype(dt)   # 17 M operations: parallel
            attention(kv[:, :64], kv, kv)
