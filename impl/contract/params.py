"""The parameter types of the contract, each validating itself.

Every callable of the contract that takes weights takes one of these types;
the reference (:mod:`transformer_theory.impl`), the numba path and the
adapters all use the same classes (``impl.attention.MultiHeadParams`` is this
module's ``MultiHeadParams``).

Two ways of validating, chosen per type so that existing callers keep working:

* attention weights (:class:`MultiHeadParams`, :class:`GroupedQueryParams`),
  the KV cache and the model containers (:class:`EncoderConfig`,
  :class:`EncoderParams`, :class:`DecoderParams`, :class:`Seq2SeqParams`,
  :class:`ClassifierParams`) are checked when they are built
  (``__post_init__``): a bad shape raises at construction, naming the field
  (``MultiHeadParams.w_k: expected shape ...``);
* :class:`FFNParams` and :class:`LayerNormParams` are plain containers (the
  gradients come back as an ``FFNParams``, and tests build deliberately wrong
  ones): :meth:`FFNParams.validate` checks them against the input width when
  they are used, naming ``params.w1`` etc.

The type-level checks that involve several arguments (is this an attention
params object? does this KV cache fit these params?) are here as well:
:func:`check_attention_params`, :func:`check_decode_args`. Array-level
validators are in :mod:`.validate`.

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.1-3.3 (the weights of a
transformer); Ainslie et al. 2023, GQA, §2; Pope et al. 2023, Efficiently
Scaling Transformer Inference, §2 (the KV cache).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validate import (
    as_float_array,
    check_dim,
    check_instance,
    check_optional_vector,
    check_positive_int,
)
from .params_gated import GatedFFNParams  # noqa: F401  (its own module; re-exported here)

__all__ = [
    "AttentionParams",
    "MultiHeadParams",
    "GroupedQueryParams",
    "ATTENTION_PARAMS",
    "check_attention_params",
    "KVCache",
    "check_decode_args",
    "check_decode_positions",
    "check_real_tokens_finite",
    "check_attended_slots_finite",
    "LayerNormParams",
    "FFNParams",
    "GatedFFNParams",
]


# ---------------------------------------------------------------------------
# Attention weights
# ---------------------------------------------------------------------------

def _param(value, owner: str, field_name: str, shape: tuple, *, optional: bool = False):
    """Validate one parameter array against its expected shape (None allowed if optional)."""
    name = f"{owner}.{field_name}"
    if value is None:
        if optional:
            return None
        raise TypeError(f"{name}: expected an array, got None")
    arr = as_float_array(value, name, ndim=len(shape), ndim_min=0, half=True)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}")
    return arr


def _head_weights(value, owner: str, field_name: str):
    """A 3-d per-head weight (heads, d_in, d_out); only its rank is checked here."""
    name = f"{owner}.{field_name}"
    if value is None:
        raise TypeError(f"{name}: expected an array, got None")
    arr = as_float_array(value, name, ndim=3, half=True)
    if 0 in arr.shape:
        raise ValueError(f"{name}: expected non-empty dims, got shape {arr.shape}")
    return arr


@dataclass
class AttentionParams:
    """Projection weights of attention with ``H`` query heads and ``G`` key/value heads.

    The base of :class:`MultiHeadParams` (``G = H``) and
    :class:`GroupedQueryParams` (``G`` divides ``H``); not built directly.
    Shapes are checked on construction; a subclass says how many kv heads
    its ``w_k`` must have.

    Attributes
    ----------
    w_q : (H, E, Dh)      per-head query projections
    w_k : (G, Ekv, Dh)    per-head key projections (``Ekv = E`` for self-attention)
    w_v : (G, Ekv, Dv)    per-head value projections
    b_q : (H, Dh) or None
    b_k : (G, Dh) or None
    b_v : (G, Dv) or None
    w_o : (H*Dv, E)       output projection applied to the concatenated heads
                          (rows ``h*Dv:(h+1)*Dv`` belong to head ``h``)
    b_o : (E,) or None

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.2.
    """

    w_q: np.ndarray
    w_k: np.ndarray
    w_v: np.ndarray
    b_q: np.ndarray | None
    b_k: np.ndarray | None
    b_v: np.ndarray | None
    w_o: np.ndarray
    b_o: np.ndarray | None

    def __post_init__(self):
        owner = type(self).__name__
        self.w_q = _head_weights(self.w_q, owner, "w_q")
        h, e, dh = self.w_q.shape
        self.w_k = _head_weights(self.w_k, owner, "w_k")
        g, ekv = self._kv_heads(h), self.w_k.shape[1]
        self.w_k = _param(self.w_k, owner, "w_k", (g, ekv, dh))
        self.w_v = _head_weights(self.w_v, owner, "w_v")
        dv = self.w_v.shape[2]
        self.w_v = _param(self.w_v, owner, "w_v", (g, ekv, dv))
        self.b_q = _param(self.b_q, owner, "b_q", (h, dh), optional=True)
        self.b_k = _param(self.b_k, owner, "b_k", (g, dh), optional=True)
        self.b_v = _param(self.b_v, owner, "b_v", (g, dv), optional=True)
        self.w_o = _param(self.w_o, owner, "w_o", (h * dv, e))
        self.b_o = _param(self.b_o, owner, "b_o", (e,), optional=True)

    def _kv_heads(self, n_heads: int) -> int:
        """The number of kv heads ``w_k`` must have, given ``H`` (raises if it cannot)."""
        raise TypeError(
            f"{type(self).__name__}: build MultiHeadParams or GroupedQueryParams, "
            f"not the base class")

    @property
    def n_heads(self) -> int:
        """Number of query heads H."""
        return self.w_q.shape[0]

    @property
    def n_kv_heads(self) -> int:
        """Number of key/value heads G (H for multi-head attention)."""
        return self.w_k.shape[0]

    @property
    def d_model(self) -> int:
        """Query/output width E."""
        return self.w_q.shape[1]

    @property
    def d_kv(self) -> int:
        """Width Ekv of the key/value input."""
        return self.w_k.shape[1]

    @property
    def d_head(self) -> int:
        """Query/key width per head Dh."""
        return self.w_q.shape[2]

    @property
    def d_value(self) -> int:
        """Value width per head Dv."""
        return self.w_v.shape[2]

    def weights(self) -> list:
        """``[w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o]`` (absent biases are None)."""
        return [self.w_q, self.w_k, self.w_v, self.b_q, self.b_k, self.b_v, self.w_o, self.b_o]

    def arrays(self) -> list[np.ndarray]:
        """The weights that are present, e.g. for :func:`.validate.common_float_dtype`."""
        return [a for a in self.weights() if a is not None]

    def cast(self, dtype) -> list:
        """:meth:`weights` in ``dtype`` (no copy when already in it; None stays None).

        Parameters
        ----------
        dtype : np.dtype
        """
        return [None if a is None else a.astype(dtype, copy=False) for a in self.weights()]


@dataclass
class MultiHeadParams(AttentionParams):
    """Weights of multi-head attention with ``H`` heads (``G = H`` kv heads).

    Attributes
    ----------
    w_q : (H, E, Dh)      per-head query projections
    w_k : (H, Ekv, Dh)    per-head key projections
    w_v : (H, Ekv, Dv)    per-head value projections
    b_q : (H, Dh) or None
    b_k : (H, Dh) or None
    b_v : (H, Dv) or None
    w_o : (H*Dv, E)       output projection applied to the concatenated heads
                          (rows ``h*Dv:(h+1)*Dv`` belong to head ``h``)
    b_o : (E,) or None

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.2; seed 003
    (shared/seeds/003_8876c6ab28e0baf8.txt): separate Q/K/V weight matrices
    per head, concatenation, then W^O.
    """

    def _kv_heads(self, n_heads: int) -> int:
        return n_heads


@dataclass
class GroupedQueryParams(AttentionParams):
    """Weights of grouped-query attention: ``H`` query heads, ``G`` kv heads.

    Query head ``h`` uses kv group ``h // (H // G)`` (contiguous blocks, as
    PyTorch's ``enable_gqa``). ``G = 1`` is multi-query attention.

    Attributes
    ----------
    w_q : (H, E, Dh)
    w_k : (G, Ekv, Dh)     ``Ekv = E`` for self-attention; ``G`` divides ``H``
    w_v : (G, Ekv, Dv)
    b_q : (H, Dh) or None
    b_k : (G, Dh) or None
    b_v : (G, Dv) or None
    w_o : (H*Dv, E)
    b_o : (E,) or None

    References
    ----------
    Ainslie et al. 2023, GQA, §2; Shazeer 2019, Fast Transformer Decoding:
    One Write-Head is All You Need, §3 (multi-query attention).
    """

    def _kv_heads(self, n_heads: int) -> int:
        g = self.w_k.shape[0]
        if n_heads % g != 0:
            raise ValueError(
                f"{type(self).__name__}.w_k: the number of kv heads G must divide the number "
                f"of query heads H = {n_heads}, got G = {g} (w_k shape {self.w_k.shape})")
        return g

    @property
    def group_size(self) -> int:
        """Query heads per kv head, r = H // G."""
        return self.n_heads // self.n_kv_heads


#: The attention parameter types every attention callable accepts.
ATTENTION_PARAMS = (MultiHeadParams, GroupedQueryParams)


def check_attention_params(params, name: str = "params", *, allowed=ATTENTION_PARAMS):
    """Return ``params`` if it is one of the ``allowed`` attention types, else raise ``TypeError``.

    Parameters
    ----------
    params
    name : str
    allowed : tuple of types
        :data:`ATTENTION_PARAMS` by default; ``(MultiHeadParams,)`` where only
        multi-head weights make sense.

    Returns
    -------
    MultiHeadParams or GroupedQueryParams
    """
    return check_instance(params, name, allowed)


# ---------------------------------------------------------------------------
# KV cache
# ---------------------------------------------------------------------------

@dataclass
class KVCache:
    """Keys and values of the positions decoded so far.

    Attributes
    ----------
    k : (..., G, Lmax, Dh)
        Cached keys; positions ``[0, length)`` are filled. Slots not yet
        written (and left-padding slots) may hold any value, NaN included.
    v : (..., G, Lmax, Dv)
        Cached values.
    length : int
        Number of positions decoded, ``0 <= length <= Lmax`` (unbounded for a
        sliding-window cache).
    window : int or None
        Sliding-window cache: only the last ``window + 1`` keys and values are
        kept (slots in decoding order, the oldest first), for attention with
        the window ``(window, 0)``; ``Lmax = min(capacity, window + 1)``.
        None: every position is kept.

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2
    (the KV cache and its memory); Shazeer 2019, Fast Transformer Decoding, §2.
    """

    k: np.ndarray
    v: np.ndarray
    length: int
    window: int | None = None

    def __post_init__(self):
        # Storage: unwritten and padding slots may hold anything (np.empty memory); the
        # decode step refuses non-finite values where it attends.
        self.k = as_float_array(self.k, "KVCache.k", ndim_min=3, half=True, finite=False)
        self.v = as_float_array(self.v, "KVCache.v", ndim_min=3, half=True, finite=False)
        if self.k.shape[:-1] != self.v.shape[:-1]:
            raise ValueError(
                f"KVCache.v: expected shape {self.k.shape[:-1]} + (Dv,) to match KVCache.k, "
                f"got {self.v.shape} (k has shape {self.k.shape})")
        self.length = check_positive_int(self.length, "KVCache.length", minimum=0)
        if self.window is not None:
            self.window = check_positive_int(self.window, "KVCache.window", minimum=0)
            if self.max_len > self.window + 1:
                raise ValueError(f"KVCache.k: a window-{self.window} cache keeps at most "
                                 f"{self.window + 1} slots, got {self.max_len}")
        elif self.length > self.max_len:
            raise ValueError(
                f"KVCache.length: expected at most max_len = {self.max_len}, got {self.length}")

    @property
    def max_len(self) -> int:
        """Capacity Lmax in positions."""
        return self.k.shape[-2]

    @property
    def n_kv_heads(self) -> int:
        """Number of cached kv heads G."""
        return self.k.shape[-3]

    @property
    def batch_shape(self) -> tuple:
        """Leading dims of the cached arrays."""
        return self.k.shape[:-3]

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached key and value arrays."""
        return int(self.k.nbytes + self.v.nbytes)


def check_decode_args(x_t, params, cache, *, finite: bool = True,
                      windowed: bool = False) -> np.ndarray:
    """The checks of ``decode_step(x_t, params, cache)``; returns ``x_t`` as an array.

    Parameters
    ----------
    x_t : array_like, (..., 1, E)
        The new token; leading dims equal to the cache's batch shape.
    params : MultiHeadParams or GroupedQueryParams
        Self-attention weights (``d_kv == d_model``).
    cache : KVCache
        Shaped for ``params`` and not full.
    finite : bool
        Refuse a non-finite ``x_t``. A decoder of left-padded batches passes
        False and refuses non-finite real tokens itself (a padding token may
        be anything).
    windowed : bool
        The caller decodes sliding-window caches; others refuse them.

    Returns
    -------
    np.ndarray, (..., 1, E)
    """
    check_attention_params(params)
    check_instance(cache, "cache", KVCache)
    if params.d_kv != params.d_model:
        raise ValueError(
            f"params: self-attention decoding needs d_kv == d_model, got d_kv = {params.d_kv}, "
            f"d_model = {params.d_model}")
    x_t = as_float_array(x_t, "x_t", ndim_min=2, finite=finite)
    if x_t.shape[-2] != 1 or x_t.shape[-1] != params.d_model:
        raise ValueError(
            f"x_t: expected shape (..., 1, {params.d_model}), got {x_t.shape}")
    if x_t.shape[:-2] != cache.batch_shape:
        raise ValueError(
            f"x_t: leading dims must equal the cache's batch shape {cache.batch_shape}, "
            f"got shape {x_t.shape}")
    expected_k = cache.batch_shape + (params.n_kv_heads, cache.max_len, params.d_head)
    expected_v = cache.batch_shape + (params.n_kv_heads, cache.max_len, params.d_value)
    if cache.k.shape != expected_k or cache.v.shape != expected_v:
        raise ValueError(
            f"cache: expected k {expected_k} and v {expected_v} for these params, "
            f"got k {cache.k.shape} and v {cache.v.shape}")
    if cache.window is not None and not windowed:
        raise ValueError(f"cache: a sliding-window cache (window = {cache.window}) needs a "
                         f"decoder of windowed caches")
    if cache.window is None and cache.length >= cache.max_len:
        raise ValueError(f"cache: full (length = max_len = {cache.max_len})")
    return x_t


def check_decode_positions(positions, cache) -> np.ndarray:
    """Each sequence's first cache slot from ``positions`` of a left-padded batch decode.

    Parameters
    ----------
    positions : array_like of int or None
        Broadcastable to the cache's batch shape: the position of the step's
        token counted from its sequence's first real token (negative: a left
        padding token). None: every sequence starts at slot 0.
    cache : KVCache

    Returns
    -------
    np.ndarray of int, (...,) the cache's batch shape
        ``start = cache.length - positions``: slots before it are padding.

    Raises
    ------
    TypeError
        If ``positions`` is not an integer array.
    ValueError
        If it does not broadcast to the batch shape, or a position exceeds
        ``cache.length`` (a sequence cannot start before slot 0).
    """
    batch = cache.batch_shape
    if positions is None:
        return np.zeros(batch, dtype=np.int64)
    pos = np.asarray(positions)
    if pos.dtype.kind not in "iu":
        raise TypeError(f"positions: expected an integer array, got dtype {pos.dtype}")
    try:
        pos = np.broadcast_to(pos, batch).astype(np.int64)
    except ValueError:
        raise ValueError(f"positions: expected a shape broadcastable to the cache's batch "
                         f"shape {batch}, got {np.shape(positions)}") from None
    if np.any(pos > cache.length):
        raise ValueError(f"positions: expected at most the cache length {cache.length} (a "
                         f"sequence cannot start before slot 0), got {int(pos.max())}")
    return cache.length - pos


# ---------------------------------------------------------------------------
# Position-wise layers
# ---------------------------------------------------------------------------

@dataclass
class LayerNormParams:
    """Affine parameters of a layer norm (checked by ``layer_norm`` where used).

    Attributes
    ----------
    gamma : numpy.ndarray
        Gain, shape ``(E,)``.
    beta : numpy.ndarray
        Bias, shape ``(E,)``.
    """

    gamma: np.ndarray  # (E,)
    beta: np.ndarray   # (E,)


@dataclass
class FFNParams:
    """Weights of the position-wise feed-forward network ``act(x W1 + b1) W2 + b2``.

    A plain container: :meth:`validate` checks it against the input width
    where it is used (it also carries gradients, and may be built with any
    contents).

    Attributes
    ----------
    w1 : numpy.ndarray
        First linear map, shape ``(E, F)``.
    b1 : numpy.ndarray or None
        First bias, shape ``(F,)``, or ``None`` for no bias.
    w2 : numpy.ndarray
        Second linear map, shape ``(F, E)``.
    b2 : numpy.ndarray or None
        Second bias, shape ``(E,)``, or ``None`` for no bias.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.3 (eq. 2).
    """

    w1: np.ndarray          # (E, F)
    b1: np.ndarray | None   # (F,)
    w2: np.ndarray          # (F, E)
    b2: np.ndarray | None   # (E,)

    def validate(self, d_model: int):
        """The weights checked against the input width ``E = d_model``.

        Parameters
        ----------
        d_model : int
            The last dim of the input ``x``.

        Returns
        -------
        w1 : np.ndarray, (E, F)
        b1 : np.ndarray, (F,), or None
        w2 : np.ndarray, (F, E)
        b2 : np.ndarray, (E,), or None
            Finite float arrays, not cast.

        Raises
        ------
        ValueError, TypeError
            Naming ``params.w1``, ``params.b1``, ``params.w2`` or ``params.b2``.
        """
        e = d_model
        w1 = as_float_array(self.w1, "params.w1", ndim=2)
        check_dim(w1, 0, e, "params.w1", "d_model (last dim of x)")
        f = w1.shape[1]
        w2 = as_float_array(self.w2, "params.w2", ndim=2)
        if w2.shape != (f, e):
            raise ValueError(
                f"params.w2: expected shape (d_ff, d_model) = {(f, e)}, got shape {w2.shape}")
        b1 = check_optional_vector(self.b1, "params.b1", f, "d_ff (columns of w1)")
        b2 = check_optional_vector(self.b2, "params.b2", e, "d_model (last dim of x)")
        return w1, b1, w2, b2


def check_real_tokens_finite(x_t, real) -> None:
    """Refuse a non-finite token that is not padding (a padding token may hold anything).

    Parameters
    ----------
    x_t : np.ndarray, (..., 1, E)
    real : np.ndarray of bool, (...,)
        False for a padding token (negative position).

    Raises
    ------
    ValueError
        Naming the batch index of the first non-finite real token.
    """
    finite = np.all(np.isfinite(x_t), axis=(-2, -1))                 # (...,)
    if np.any(real & ~finite):
        where = tuple(int(i) for i in np.argwhere(real & ~finite)[0])
        raise ValueError("x_t: contains NaN or infinite values"
                         + (f" at batch index {where}" if where else "")
                         + " (only a padding token, of negative position, may)")


def check_attended_slots_finite(cache, previous: slice, index, allowed) -> None:
    """Refuse NaN or inf in the earlier cache slots a decode step attends.

    Parameters
    ----------
    cache : KVCache
    previous : slice
        The slots of ``cache`` that stay attended (the oldest dropped from a full window).
    index : np.ndarray of int, (n,)
        The position of each attended slot, the new one last.
    allowed : np.ndarray of bool, (..., n)
        False at left padding.

    Raises
    ------
    ValueError
        Naming ``k`` or ``v``, the position and the batch index.
    """
    for name, arr in (("k", cache.k), ("v", cache.v)):
        bad = ~np.all(np.isfinite(arr[..., previous, :]), axis=(-3, -1)) & allowed[..., :-1]
        if np.any(bad):
            *batch, slot = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"cache: {name} holds NaN or infinite values at position "
                             f"{int(index[slot])}" + (f" of batch index {tuple(batch)}" if batch
                                                       else "") + ", which this step attends")
