"""The public validators of the contract: what every implementation checks, and how.

The contract (DESIGN.md, "Contract"): bad input gets a clear ``ValueError`` or
``TypeError`` that names the argument, the expected and the actual shape or
dtype. Nothing is broadcast silently across sequence or head dimensions, and
non-finite input is refused -- except, in attention, at keys that no query may
attend (see :func:`check_finite_where_attended`).

The reference (:mod:`transformer_theory.impl`), the numba path
(:mod:`transformer_theory.impl.fast`) and the gradients call these functions,
so they raise the same errors in the same order. Every validator either
returns its argument validated (an array, a resolved value) or raises; none
copies data it does not have to.

This module knows nothing of the parameter types; the checks that need them
(``isinstance``, a KV cache against its params) live with the types in
:mod:`.params`.

The general validators of arrays and scalars are in :mod:`.arrays` and are
re-exported here, so every validator of the contract can be imported from this
module.

Sections: attention arguments (masks, causal alignment, scale, bias,
non-finite keys); feed-forward activations; Performer feature maps.

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.2 (the shapes validated
here); PyTorch ``scaled_dot_product_attention`` (the argument conventions).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from . import arrays as _arrays
from .arrays import (
    FLOAT_DTYPES,
    as_bool_mask,
    as_float_array,
    check_batch_dims,
    check_choice,
    check_dim,
    check_eps,
    check_float_dtype,
    check_instance,
    check_optional_positive,
    check_optional_vector,
    check_positive_int,
    check_rng,
    check_same_dim,
    common_float_dtype,
    normalize_axis,
)

__all__ = [
    # arrays and scalars (re-exported from .arrays, all of its names)
    *_arrays.__all__,
    # attention
    "CAUSAL_CHOICES",
    "causal_alignment",
    "causal_triangle",
    "resolve_scale",
    "check_softcap",
    "check_window",
    "window_band",
    "check_bias",
    "check_qkv",
    "check_qkv_arrays",
    "allowed_keys",
    "check_segment_ids",
    "segment_allowed",
    "attended_keys",
    "check_finite_where_attended",
    "check_projection_inputs",
    "check_memory_mask",
    # feed-forward
    "ACTIVATION_NAMES",
    # Performer
    "FEATURE_KINDS",
    "check_feature_kind",
    "check_vector_pair",
    "check_random_matrix",
    "check_feature_args",
    "check_favor_args",
]



# ---------------------------------------------------------------------------
# Attention arguments
# ---------------------------------------------------------------------------

#: The values of ``causal``: ``True`` means ``"top-left"``.
CAUSAL_CHOICES = (False, True, "top-left", "bottom-right")


def causal_alignment(causal) -> str | None:
    """Map the ``causal`` argument to an alignment name, or None for no causal mask.

    Parameters
    ----------
    causal : {False, True, "top-left", "bottom-right"}

    Returns
    -------
    {"top-left", "bottom-right"} or None
    """
    if isinstance(causal, (bool, np.bool_)):
        return "top-left" if causal else None
    if isinstance(causal, str) and causal in ("top-left", "bottom-right"):
        return causal
    raise ValueError(f"causal: expected one of {CAUSAL_CHOICES!r}, got {causal!r}")


def causal_triangle(lq: int, lk: int, align: str) -> np.ndarray:
    """The causal mask of validated lengths and alignment: query ``i`` sees keys ``j <= i + offset``.

    ``offset = 0`` for ``"top-left"`` and ``lk - lq`` for ``"bottom-right"``.

    Parameters
    ----------
    lq, lk : int
        Validated lengths (>= 0).
    align : {"top-left", "bottom-right"}

    Returns
    -------
    np.ndarray of bool, (lq, lk)
        True = may attend.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3; Dao 2023,
    FlashAttention-2, §3.1 (the bottom-right alignment).
    """
    offset = 0 if align == "top-left" else lk - lq
    i = np.arange(lq)[:, None]                    # (Lq, 1)
    j = np.arange(lk)[None, :]                    # (1, Lk)
    return j <= i + offset                        # (Lq, Lk)


def resolve_scale(scale, embed_dim: int) -> float:
    """The softmax temperature: ``1/sqrt(E)`` by default, else a positive finite real.

    Parameters
    ----------
    scale : real number or None
    embed_dim : int
        E, the query/key width.

    Returns
    -------
    float
        A Python float, so float32 computations stay in float32.
    """
    if scale is None:
        return 1.0 / math.sqrt(embed_dim)
    return check_optional_positive(scale, "scale")


def check_softcap(softcap) -> float | None:
    """The logit soft cap ``c`` of ``c * tanh(s / c)``: None (no cap) or a positive finite real.

    Parameters
    ----------
    softcap : real number or None

    Returns
    -------
    float or None

    References
    ----------
    Gemma Team 2024, Gemma 2: Improving Open Language Models at a Practical
    Size (logit soft-capping, ``soft_cap * tanh(logits / soft_cap)``).
    """
    return check_optional_positive(softcap, "softcap")



def check_window(window) -> tuple | None:
    """A sliding window ``(left, right)``: None, or a pair of ints >= 0 or None (unbounded).

    Query ``i`` may attend key ``j`` exactly when ``i - left <= j - offset <= i + right``
    (both ends inclusive), ``offset`` being the call's causal alignment
    (:func:`window_band`).

    Parameters
    ----------
    window : tuple of (int or None, int or None), or None

    Returns
    -------
    tuple or None
        ``(left, right)`` with Python ints (or None for an unbounded side).

    Raises
    ------
    TypeError
        For an int: a single window size is ambiguous between two conventions in use.
        For anything else that is not a pair of ints or None.
    ValueError
        For a negative side.

    References
    ----------
    Beltagy, Peters & Cohan 2020, Longformer, §3.1 (sliding window attention);
    FlashAttention's ``window_size=(left, right)`` (the same inclusive pair).
    """
    if window is None:
        return None
    if isinstance(window, (int, np.integer)) and not isinstance(window, (bool, np.bool_)):
        w = int(window)
        raise TypeError(
            f"window: expected a (left, right) pair, got the int {w}, which is ambiguous: "
            f"|i - j| < {w} (Longformer, Mistral) is ({w - 1}, {w - 1}), or ({w - 1}, 0) when "
            f"causal; FlashAttention's window_size=({w}, {w}) is ({w}, {w})")
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise TypeError(f"window: expected a (left, right) pair of ints or None, got {window!r}")
    sides = []
    for side, name in zip(window, ("left", "right")):
        if side is None:
            sides.append(None)
            continue
        if isinstance(side, (bool, np.bool_)) or not isinstance(side, (int, np.integer)):
            raise TypeError(f"window: expected {name} to be an int >= 0 or None, "
                            f"got {type(side).__name__}")
        if side < 0:
            raise ValueError(f"window: expected {name} >= 0 (or None), got {window!r}")
        sides.append(int(side))
    return tuple(sides)


def window_band(lq: int, lk: int, window: tuple, align: str | None) -> np.ndarray:
    """The band of a validated window: query ``i`` sees key ``j`` iff ``i - left <= j - offset <= i + right``.

    ``offset`` follows the causal alignment of the call, whether or not a causal
    mask is applied: ``lk - lq`` for ``"bottom-right"``, else 0 (the contract's
    top-left). FlashAttention's ``window_size`` is this band with the
    bottom-right alignment.

    Parameters
    ----------
    lq, lk : int
    window : (int or None, int or None)
        From :func:`check_window`.
    align : {"top-left", "bottom-right"} or None
        None (no causal mask) aligns as ``"top-left"``.

    Returns
    -------
    np.ndarray of bool, (lq, lk)

    References
    ----------
    Beltagy, Peters & Cohan 2020, Longformer, §3.1; Dao 2023, FlashAttention-2
    (the bottom-right alignment).
    """
    left, right = window
    offset = lk - lq if align == "bottom-right" else 0
    d = np.arange(lk)[None, :] - offset - np.arange(lq)[:, None]          # (Lq, Lk) j - offset - i
    band = np.ones((lq, lk), dtype=bool)
    if left is not None:
        band &= d >= -left
    if right is not None:
        band &= d <= right
    return band


def check_bias(bias, target_shape: tuple) -> np.ndarray | None:
    """Validate an additive logit bias broadcastable to ``target_shape``.

    Parameters
    ----------
    bias : array_like or None
        Finite everywhere (also at masked logits).
    target_shape : tuple
        ``(..., Lq, Lk)``, or ``(..., H, Lq, Lk)`` for multi-head attention.

    Returns
    -------
    np.ndarray or None
        The bias as given (not broadcast), or None.
    """
    if bias is None:
        return None
    b = as_float_array(bias, "bias", ndim_min=0)
    try:
        shape = np.broadcast_shapes(b.shape, target_shape)
    except ValueError:
        shape = None
    if shape != tuple(target_shape):
        raise ValueError(
            f"bias: expected an array broadcastable to {tuple(target_shape)}, got shape {b.shape}")
    return b


def check_qkv(q, k, v=None, *, finite_kv: bool = True):
    """Validate queries, keys (and values) of scaled dot-product attention.

    Parameters
    ----------
    q : array_like, (..., Lq, E)
        Finite; ``E >= 1``.
    k : array_like, (..., Lk, E)
        Leading dims equal to those of ``q``.
    v : array_like, (..., Lk, Ev), optional
    finite_kv : bool
        Refuse non-finite ``k`` and ``v`` everywhere. Attention-like callables
        pass False and call :func:`check_finite_where_attended` once the mask
        is known.

    Returns
    -------
    q, k, v : np.ndarray (v is None if not given)
    """
    q = as_float_array(q, "q", ndim_min=2)
    k = as_float_array(k, "k", ndim_min=2, finite=finite_kv)
    named = [("q", q), ("k", k)]
    if v is not None:
        v = as_float_array(v, "v", ndim_min=2, finite=finite_kv)
        named.append(("v", v))
    check_batch_dims(named, n_trailing=2)
    check_same_dim(q, "q", k, "k", -1, "embedding dim E")
    if q.shape[-1] == 0:
        raise ValueError(f"q: embedding dim E must be >= 1, got shape {q.shape}")
    if v is not None:
        check_same_dim(k, "k", v, "v", -2, "key length Lk")
    return q, k, v


def check_qkv_arrays(q, k, v):
    """``q (..., Lq, E)``, ``k (..., Lk, E)``, ``v (..., Lk, Ev)`` as finite float arrays.

    The checks that every attention-like callable makes before its own:
    the tiled attention (:mod:`..online_softmax`) and the adapters.

    Parameters
    ----------
    q : array_like, (..., Lq, E)
    k : array_like, (..., Lk, E)
    v : array_like, (..., Lk, Ev)
        Finite; leading dims equal; ``E`` and ``Lk`` must match.

    Returns
    -------
    q, k, v : np.ndarray
        Each in its own float dtype (no common dtype is chosen here).
    """
    q = as_float_array(q, "q", ndim_min=2)
    k = as_float_array(k, "k", ndim_min=2)
    v = as_float_array(v, "v", ndim_min=2)
    check_batch_dims([("q", q), ("k", k), ("v", v)], n_trailing=2)
    check_same_dim(q, "q", k, "k", -1, "embedding dim E")
    check_same_dim(k, "k", v, "v", -2, "key length Lk")
    return q, k, v


def allowed_keys(mask, causal, lead: tuple, lq: int, lk: int,
                 window=None) -> np.ndarray | None:
    """Which key each query may attend: ``mask`` AND the causal mask AND the window.

    Parameters
    ----------
    mask : array_like of bool or None
        Broadcastable to ``lead + (lq, lk)``; True = may attend.
    causal : {False, True, "top-left", "bottom-right"}
    lead : tuple
        The leading (batch/head) dims.
    lq, lk : int
    window : (int or None, int or None), optional
        Sliding window (:func:`check_window`), aligned as ``causal`` is.

    Returns
    -------
    np.ndarray of bool, broadcastable to (..., Lq, Lk), or None
        None when every query may attend every key.
    """
    align = causal_alignment(causal)
    window = check_window(window)
    allowed = None
    if mask is not None:
        allowed = as_bool_mask(mask, "mask", tuple(lead) + (lq, lk))   # (..., Lq, Lk)
    if align is not None:
        tri = causal_triangle(lq, lk, align)                            # (Lq, Lk)
        allowed = tri if allowed is None else (allowed & tri)
    if window is not None:
        band = window_band(lq, lk, window, align)                       # (Lq, Lk)
        allowed = band if allowed is None else (allowed & band)
    return allowed


def check_segment_ids(segment_ids, lead: tuple, lq: int, lk: int) -> np.ndarray | None:
    """The packed-document ids as an integer array broadcastable to ``lead + (L,)``, or None.

    Parameters
    ----------
    segment_ids : array_like of int or None
    lead : tuple
    lq, lk : int

    Returns
    -------
    np.ndarray of int or None
        As given (not broadcast), so a shared ``(L,)`` stays one row.

    Raises
    ------
    TypeError
        If ``segment_ids`` is not an integer array.
    ValueError
        If ``lq != lk`` or its shape does not broadcast to ``lead + (L,)``.
    """
    if segment_ids is None:
        return None
    seg = np.asarray(segment_ids)
    if seg.dtype.kind not in "iu":
        raise TypeError(f"segment_ids: expected an integer array, got dtype {seg.dtype}")
    if lq != lk:
        raise ValueError(f"segment_ids: packed documents need self-attention (Lq = Lk), "
                         f"got Lq = {lq}, Lk = {lk}")
    target = tuple(lead) + (lq,)
    try:
        np.broadcast_to(seg, target)                                         # validates only
    except ValueError:
        raise ValueError(f"segment_ids: expected a shape broadcastable to "
                         f"{target}, got {np.shape(segment_ids)}") from None
    return seg


def segment_allowed(segment_ids, lead: tuple, lq: int, lk: int) -> np.ndarray | None:
    """The keys of each query's own document in a packed batch, from ``segment_ids``.

    Parameters
    ----------
    segment_ids : array_like of int or None
        Shape broadcastable to ``lead + (L,)`` with ``L = lq = lk`` (self-attention over a
        packed sequence): token ``i`` belongs to document ``segment_ids[..., i]``. A
        FlashAttention ``cu_seqlens`` (document starts ``0 = c_0 < c_1 < ... < c_n = L``) is
        ``np.repeat(np.arange(n), np.diff(cu_seqlens))``.
    lead : tuple
    lq, lk : int

    Returns
    -------
    np.ndarray of bool, (..., L, L), or None
        True where query ``i`` and key ``j`` share a document; None without segments.

    Raises
    ------
    TypeError, ValueError
        As :func:`check_segment_ids`.

    References
    ----------
    Krell et al. 2021, Efficient Sequence Packing without Cross-contamination (packed
    documents attend only within themselves); the FlashAttention varlen interface
    (``cu_seqlens``).
    """
    seg = check_segment_ids(segment_ids, lead, lq, lk)
    if seg is None:
        return None
    seg = np.broadcast_to(seg, tuple(lead) + (lq,))                          # (..., L)
    return seg[..., :, None] == seg[..., None, :]                           # (..., L, L)


def attended_keys(mask, causal, lead: tuple, lq: int, lk: int,
                  window=None) -> np.ndarray | None:
    """Which keys some query may attend: the columns of :func:`allowed_keys` with a True.

    A key column that only some queries may attend is attended; a query whose
    every key is masked attends none. Computed from the mask as given (not
    broadcast over the batch), so a shared ``(Lq, Lk)`` mask costs ``Lq Lk``.

    Parameters
    ----------
    mask, causal, lead, lq, lk, window
        As in :func:`allowed_keys`.

    Returns
    -------
    np.ndarray of bool, broadcastable to (..., Lk), or None
        None when every key is attended (the common case).
    """
    align = causal_alignment(causal)
    window = check_window(window)
    if mask is not None:
        as_bool_mask(mask, "mask", tuple(lead) + (lq, lk))             # validates only
    if lq == 0:
        return np.zeros(lk, dtype=bool)                                 # (Lk,) no query at all
    if window is not None:
        own = window_band(lq, lk, window, align)                        # (Lq, Lk)
        if align is not None:
            own = own & causal_triangle(lq, lk, align)
        if mask is not None:
            m = np.asarray(mask)
            own = m.reshape((1,) * (len(lead) + 2 - m.ndim) + m.shape) & own   # (..., Lq, Lk)
        attended = np.any(own, axis=-2)                                 # (..., Lk)
    elif mask is None:
        if align is None:
            return None
        offset = 0 if align == "top-left" else lk - lq
        attended = np.arange(lk) <= lq - 1 + offset                    # (Lk,) the last query's keys
    else:
        own = np.asarray(mask)
        own = own.reshape((1,) * (len(lead) + 2 - own.ndim) + own.shape)   # (..., Lq|1, Lk|1)
        if align is not None:
            own = own & causal_triangle(lq, lk, align)                  # (..., Lq, Lk)
        attended = np.any(own, axis=-2)                                 # (..., Lk|1)
    return None if np.all(attended) else attended


def check_finite_where_attended(arrays: Sequence[tuple[str, np.ndarray]], mask, causal,
                                lead: tuple, lq: int, window=None) -> list[np.ndarray]:
    """Refuse NaN/inf at keys a query may attend; zero the keys no query may attend.

    The NaN-poisoning rule of the contract (issue 14): keys and values (or the
    key/value input ``x_kv``, ``memory``) may hold non-finite values only at
    key positions that no query may attend (:func:`attended_keys`, given
    ``mask``, ``causal`` and the queries). Such a key must not reach any
    output, which must be exactly the output with that key set to 0: the
    arrays are returned with every non-finite key row replaced by zeros, so
    that no ``0 * NaN`` or ``NaN - NaN`` can enter a masked score or a
    weighted sum of values.

    Parameters
    ----------
    arrays : sequence of (name, np.ndarray)
        Each array ``(..., Lk, D)``: row ``j`` is key position ``j``.
    mask, causal, window
        As in :func:`allowed_keys` (already validated by the caller).
    lead : tuple
        The leading (batch/head) dims.
    lq : int
        The number of queries.

    Returns
    -------
    list of np.ndarray
        The arrays, unchanged (not copied) when finite.

    Raises
    ------
    ValueError
        Naming the argument, the key position and its batch index.
    """
    out = []
    attended = None
    for name, arr in arrays:
        if np.all(np.isfinite(arr)):                                    # the common case
            out.append(arr)
            continue
        if attended is None:
            attended = attended_keys(mask, causal, lead, lq, arr.shape[-2], window)
            attended = True if attended is None else attended          # None: every key
        finite_keys = np.all(np.isfinite(arr), axis=-1)                 # (..., Lk)
        poisoned = ~finite_keys & attended                              # (..., Lk)
        if np.any(poisoned):
            *batch, key = (int(i) for i in np.argwhere(poisoned)[0])
            where = f"key {key}" + (f" of batch index {tuple(batch)}" if batch else "")
            raise ValueError(
                f"{name}: contains NaN or infinite values at {where}, which a query may "
                f"attend (only keys that no query may attend may be non-finite)")
        out.append(np.where(finite_keys[..., None], arr, arr.dtype.type(0)))   # (..., Lk, D)
    return out


def check_projection_inputs(x_q, x_kv, params, *, finite_kv: bool = True):
    """Validate the inputs of multi-head or grouped-query attention against ``params``.

    Parameters
    ----------
    x_q : array_like, (..., Lq, E)
        Finite; ``E = params.d_model``.
    x_kv : array_like, (..., Lk, Ekv)
        Leading dims equal to those of ``x_q``; ``Ekv = params.d_kv``.
    params : MultiHeadParams or GroupedQueryParams
        Already type-checked.
    finite_kv : bool
        Refuse non-finite ``x_kv`` everywhere; attention-like callables pass
        False and call :func:`check_finite_where_attended`.

    Returns
    -------
    x_q, x_kv : np.ndarray
    """
    x_q = as_float_array(x_q, "x_q", ndim_min=2)
    x_kv = as_float_array(x_kv, "x_kv", ndim_min=2, finite=finite_kv)
    check_batch_dims([("x_q", x_q), ("x_kv", x_kv)], n_trailing=2)
    if x_q.shape[-1] != params.d_model:
        raise ValueError(
            f"x_q: expected last dim d_model = {params.d_model}, got shape {x_q.shape}")
    if x_kv.shape[-1] != params.d_kv:
        raise ValueError(
            f"x_kv: expected last dim d_kv = {params.d_kv}, got shape {x_kv.shape}")
    return x_q, x_kv


def check_memory_mask(memory_mask, x: np.ndarray, memory: np.ndarray) -> np.ndarray | None:
    """Turn a cross-attention ``memory_mask`` into an attention mask, or raise.

    Parameters
    ----------
    memory_mask : array_like of bool or None
        A key-padding mask of shape exactly ``(..., Lk)`` (True = real token),
        or a full mask of rank ``x.ndim`` broadcastable to ``(..., Lq, Lk)``.
    x : np.ndarray, (..., Lq, E)
        The validated queries' input.
    memory : np.ndarray, (..., Lk, Ekv)
        The validated memory.

    Returns
    -------
    np.ndarray of bool, (..., 1, Lk) or (..., Lq, Lk), or None
    """
    if memory_mask is None:
        return None
    m = np.asarray(memory_mask)
    if m.dtype != np.bool_:
        raise TypeError(
            f"memory_mask: expected dtype bool (True = real token), got {m.dtype}")
    lead, lk = x.shape[:-2], memory.shape[-2]
    if m.ndim == x.ndim - 1:                       # key padding (..., Lk)
        if m.shape != tuple(lead) + (lk,):
            raise ValueError(
                f"memory_mask: a key-padding mask must have shape {tuple(lead) + (lk,)}, "
                f"got {m.shape}")
        return m[..., None, :]                     # (..., 1, Lk)
    if m.ndim == x.ndim:                           # full (..., Lq, Lk)
        return m
    raise ValueError(
        f"memory_mask: expected a key-padding mask of shape {tuple(lead) + (lk,)} or a full "
        f"mask broadcastable to {tuple(lead) + (x.shape[-2], lk)}, got shape {m.shape}")


# ---------------------------------------------------------------------------
# Feed-forward activations
# ---------------------------------------------------------------------------

#: The activation names of the contract (``feed_forward(..., activation=name)``).
ACTIVATION_NAMES = ("relu", "gelu", "tanh", "sigmoid")


# ---------------------------------------------------------------------------
# Performer feature maps
# ---------------------------------------------------------------------------

#: The feature maps of Choromanski et al. 2021, Lemma 1 (and the trigonometric baseline).
FEATURE_KINDS = ("trig", "positive", "hyperbolic")


def check_feature_kind(kind) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of :data:`FEATURE_KINDS`.

    Parameters
    ----------
    kind : str
    """
    check_choice(kind, "kind", FEATURE_KINDS)


def check_vector_pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Two ``(..., d)`` float arrays of exactly the same shape (no broadcasting).

    The arguments of the softmax kernel ``SM(x, y)``, its estimators and their
    closed-form errors.

    Parameters
    ----------
    x, y : array_like, (..., d)
        Finite.

    Returns
    -------
    x, y : np.ndarray
        As validated, not yet cast.
    """
    x = as_float_array(x, "x", ndim_min=1)
    y = as_float_array(y, "y", ndim_min=1)
    if x.shape != y.shape:
        raise ValueError(f"y: expected the shape of x {x.shape}, got shape {y.shape}")
    return x, y


def check_random_matrix(w, d: int, name: str = "w") -> np.ndarray:
    """``w`` as an (m, d) float array of random vectors matching the input dimension.

    Parameters
    ----------
    w : array_like, (m, d)
        ``m >= 1``, finite.
    d : int
        The input dimension.
    name : str

    Returns
    -------
    np.ndarray, (m, d)
    """
    w = as_float_array(w, name, ndim=2)
    if w.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one random vector (m >= 1), "
                         f"got shape {w.shape}")
    check_dim(w, 1, d, name, "the input dimension d")
    return w


def check_feature_args(x, w, kind, stabilizer):
    """The checks of ``random_features(x, w, kind, stabilizer=...)``.

    Parameters
    ----------
    x : array_like, (..., d)
    w : array_like, (m, d)
    kind : {"trig", "positive", "hyperbolic"}
    stabilizer : array_like or None
        Broadcastable to ``x.shape[:-1] + (1,)``; not for ``kind = "trig"``.

    Returns
    -------
    x, w, stabilizer : np.ndarray (stabilizer may be None)
        As validated, not yet cast.
    dtype : np.dtype
        The common float dtype of the output.
    """
    check_feature_kind(kind)
    x = as_float_array(x, "x", ndim_min=1)
    w = check_random_matrix(w, x.shape[-1])
    arrays = [x, w]
    target = x.shape[:-1] + (1,)
    if stabilizer is not None:
        if kind == "trig":
            raise ValueError("stabilizer: only defined for kind 'positive' or "
                             "'hyperbolic' (trig features are not exponentials), "
                             "got kind 'trig'")
        stabilizer = as_float_array(stabilizer, "stabilizer", ndim_min=0)
        try:
            ok = np.broadcast_shapes(stabilizer.shape, target) == target
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"stabilizer: expected a shape broadcastable to {target} "
                             f"(x.shape[:-1] + (1,)), got shape {stabilizer.shape}")
        arrays.append(stabilizer)
    dtype = common_float_dtype(*arrays)
    return x, w, stabilizer, dtype


def check_favor_args(q, k, v, w, causal, mask):
    """The checks of FAVOR+ attention; returns the arrays cast to their common dtype.

    Parameters
    ----------
    q : array_like, (..., L, d)
    k : array_like, (..., Lk, d)
    v : array_like, (..., Lk, dv)
    w : array_like, (m, d)
    causal : bool
        Causal FAVOR+ needs ``L == Lk``.
    mask : array_like of bool or None
        Key-padding mask broadcastable to ``(..., Lk)``, True = real token.

    Returns
    -------
    q, k, v, w : np.ndarray
        In the common dtype.
    mask : np.ndarray of bool, (..., Lk), or None
    dtype : np.dtype
    """
    q = as_float_array(q, "q", ndim_min=2)
    k = as_float_array(k, "k", ndim_min=2)
    v = as_float_array(v, "v", ndim_min=2)
    check_batch_dims([("q", q), ("k", k), ("v", v)], 2)
    check_same_dim(q, "q", k, "k", -1, "the head dimension d")
    check_same_dim(k, "k", v, "v", -2, "the key length Lk")
    if q.shape[-2] < 1 or k.shape[-2] < 1:
        raise ValueError(f"q, k: expected at least one query and one key, got shapes "
                         f"{q.shape} and {k.shape}")
    w = check_random_matrix(w, q.shape[-1])
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal: expected a bool, got {type(causal).__name__}")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"k: causal FAVOR+ needs Lq == Lk, got q shape {q.shape} "
                         f"and k shape {k.shape}")
    lead = q.shape[:-2]
    lk = k.shape[-2]
    if mask is not None:
        mk = np.asarray(mask)
        if mk.dtype != np.bool_:
            raise TypeError(f"mask: expected dtype bool (True = real token), got {mk.dtype}")
        target = lead + (lk,)
        if mk.ndim < 1 or mk.shape[-1] != lk:
            raise ValueError(f"mask: expected a key-padding mask of shape (..., Lk) = "
                             f"{target}, got shape {mk.shape}")
        try:
            mask = np.broadcast_to(mk, target)
        except ValueError:
            raise ValueError(f"mask: expected a shape broadcastable to {target}, "
                             f"got shape {mk.shape}") from None
    dtype = common_float_dtype(q, k, v, w)
    q, k, v, w = (a.astype(dtype, copy=False) for a in (q, k, v, w))
    return q, k, v, w, mask, dtype
