"""Convolution as multi-head self-attention with a quadratic relative positional encoding.

The construction (Cordonnier, Loukas & Jaggi 2020, §3)
------------------------------------------------------
A convolution of width ``K`` (cross-correlation, as in deep learning) computes

.. math::  y_i = \\sum_{k=0}^{K-1} W_k^{\\top} x_{i + \\Delta_k},
           \\qquad \\Delta_k = k - c,\\quad c = \\lfloor (K-1)/2 \\rfloor,

with ``W_k`` of shape ``(C_in, C_out)``. Give multi-head self-attention one
head per shift ``Delta_h``, no content term (``W_qry = W_key = 0``), and the
*quadratic* relative positional score

.. math::  A^{(h)}_{ij} = v^{(h)\\top} r_{\\delta},\\qquad
           v^{(h)} = -\\alpha\\,(1, -2\\Delta^{(h)}),\\quad r_\\delta = (\\|\\delta\\|^2, \\delta),
           \\quad \\delta = j - i,

that is ``A_ij = -alpha (||delta - Delta||^2 - ||Delta||^2)``. Row ``i`` is maximal
at the key ``j = i + Delta`` and every other key scores at least ``alpha`` lower,
so the softmax puts weight at least ``1 - (L - 1) e^{-alpha}`` on it: head ``h``
returns ``x_{i + Delta_h}`` up to ``(L - 1) e^{-alpha}`` of the value scale. With
value matrices ``W_val^(h) = I`` and output blocks ``W_out^(h) = W_{k(h)}`` the
concatenated heads give the convolution:

.. math::  \\mathrm{MHSA}(X)_i = \\sum_h \\mathrm{SA}_h(X)_i\\, W^{(h)}_{\\mathrm{out}}
           = \\sum_h W_{k(h)}^{\\top} x_{i+\\Delta_h} .

``K`` heads give a width-``K`` 1-D convolution; ``K^2`` heads with 2-D shifts
``Delta = (k_1 - c, k_2 - c)`` and ``delta`` the 2-D offset between pixels give a
``K x K`` 2-D convolution (Theorem 1). The default ``alpha`` makes the leakage
``(L - 1) e^{-alpha}`` a fraction ``e^{-2}`` of the dtype's epsilon, so the
interior agrees with :func:`scipy.signal.correlate` to rounding error.

Borders
-------
When ``i + Delta`` falls outside the sequence the nearest existing key wins (the
squared distance is minimised by clamping each coordinate, uniquely and with a
gap of at least ``alpha``). So at the borders the layer is exactly a convolution
with *replicate* ("edge") padding, not zero padding. Appending explicit zero
tokens (``padding="zeros"``) turns it into zero padding, exact everywhere.

References
----------
Cordonnier, Loukas & Jaggi 2020, On the Relationship between Self-Attention and
Convolutional Layers, ICLR, §3 (Theorem 1 and its proof with the quadratic
relative positional encoding; the 1-D case, K heads for width K).
Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt): "Attention: convolution + fix
to allow interacting patches", "computing a function with interacting patches
requires multiple layers & overlapping patches".
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import signal

from .._validate import as_float_array, check_choice, check_positive_int
from ..attention import attention as _reference_attention

__all__ = [
    "kernel_shifts",
    "default_alpha",
    "quadratic_relative_scores",
    "conv1d_as_attention",
    "conv2d_as_attention",
    "correlate1d",
    "correlate2d",
    "influence",
    "receptive_field",
]


def _check_anchor(anchor, width: int, name: str = "anchor") -> int:
    """``anchor``, or the centred default ``floor((K-1)/2)`` when it is None."""
    if anchor is None:
        return (width - 1) // 2
    if isinstance(anchor, (bool, np.bool_)) or not isinstance(anchor, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer or None, got {type(anchor).__name__}")
    return int(anchor)


def kernel_shifts(width: int, *, anchor: int | None = None) -> np.ndarray:
    """The relative offsets ``Delta_k = k - a``, ``k = 0..K-1``.

    Parameters
    ----------
    width : int
        ``K``.
    anchor : int, optional
        The tap ``a`` aligned with the output position; default
        ``floor((K-1)/2)``, the centre (``scipy.signal.correlate`` with
        ``mode="same"``, PyTorch's ``padding="same"``).

    Returns
    -------
    np.ndarray of int, (K,)
    """
    width = check_positive_int(width, "width")
    return np.arange(width) - _check_anchor(anchor, width)                # (K,)


def default_alpha(n_tokens: int, dtype) -> float:
    """``ln((L - 1) / eps) + 2``: the softmax leakage ``(L-1) e^{-alpha}`` is ``e^{-2} eps``."""
    n_tokens = check_positive_int(n_tokens, "n_tokens")
    eps = float(np.finfo(np.dtype(dtype)).eps)
    return math.log(max(n_tokens - 1, 1) / eps) + 2.0


def quadratic_relative_scores(positions, shifts, alpha: float) -> np.ndarray:
    """Scores ``v^(h)T r_delta = -alpha (||delta||^2 - 2 <Delta^(h), delta>)``, ``delta = p_j - p_i``.

    Parameters
    ----------
    positions : array_like, (L, D)
        Integer coordinates of the tokens (``D = 1`` for sequences, 2 for images).
    shifts : array_like, (H, D)
        One offset ``Delta^(h)`` per head.
    alpha : float
        Positive sharpness.

    Returns
    -------
    np.ndarray, (H, L, L)
        Additive attention logits (a relative positional bias).

    References
    ----------
    Cordonnier, Loukas & Jaggi 2020, ICLR, §3 (the quadratic encoding in the proof of Theorem 1).
    """
    p = np.asarray(positions, dtype=np.float64)
    s = np.asarray(shifts, dtype=np.float64)
    if p.ndim != 2 or s.ndim != 2 or p.shape[1] != s.shape[1]:
        raise ValueError(f"positions, shifts: expected (L, D) and (H, D) with the same D, got "
                         f"shapes {p.shape} and {s.shape}")
    if not (isinstance(alpha, (int, float, np.floating)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha: expected a positive finite number, got {alpha!r}")
    delta = p[None, :, :] - p[:, None, :]                                 # (L, L, D): p_j - p_i
    sq = np.sum(delta * delta, axis=-1)                                   # (L, L) ||delta||^2
    cross = np.einsum("hd,ijd->hij", s, delta)                            # (H, L, L) <Delta, delta>
    return -alpha * (sq[None] - 2.0 * cross)                              # (H, L, L)


def _check_attention(attention) -> Callable:
    if attention is None:
        return _reference_attention
    if not callable(attention):
        raise TypeError(f"attention: expected a callable, got {type(attention).__name__}")
    return attention


def _multi_head_conv(x: np.ndarray, positions: np.ndarray, shifts: np.ndarray,
                     w_out: np.ndarray, alpha: float, attention: Callable) -> np.ndarray:
    """``sum_h SA_h(X) W_out^(h)`` with ``SA_h`` = attention with zero content and the quadratic bias.

    x (..., L, C_in); w_out (H, C_in, C_out).
    """
    lead, length, c_in = x.shape[:-2], x.shape[-2], x.shape[-1]
    n_heads = shifts.shape[0]
    bias = quadratic_relative_scores(positions, shifts, alpha).astype(x.dtype)   # (H, L, L)
    zeros = np.zeros((*lead, n_heads, length, 1), dtype=x.dtype)                 # W_qry = W_key = 0
    values = np.broadcast_to(x[..., None, :, :], (*lead, n_heads, length, c_in))  # W_val = I
    heads = np.asarray(attention(zeros, zeros, np.ascontiguousarray(values), bias=bias),
                       dtype=x.dtype)                                            # (..., H, L, C_in)
    concat = np.moveaxis(heads, -3, -2).reshape(*lead, length, n_heads * c_in)    # (..., L, H C_in)
    return concat @ w_out.reshape(n_heads * c_in, -1).astype(x.dtype)            # (..., L, C_out)


def _check_kernel(kernel, ndim: int, name: str = "kernel") -> np.ndarray:
    w = as_float_array(kernel, name, ndim=ndim)
    if min(w.shape) < 1:
        raise ValueError(f"{name}: expected non-empty dimensions, got shape {w.shape}")
    return w


def _conv_inputs(x, kernel, kernel_ndim, padding, attention):
    """The checks shared by the 1-D and 2-D layers: ``x``, kernel, padding, attention.

    Parameters
    ----------
    x : array_like, (..., *spatial, C_in)
        ``kernel_ndim - 2`` spatial dims.
    kernel : array_like, (C_out, C_in, *K)
    kernel_ndim : int
        3 for 1-D, 4 for 2-D.
    padding, attention
        As in :func:`conv1d_as_attention`.

    Returns
    -------
    x : np.ndarray
        Cast to the common dtype of ``x`` and the kernel.
    w : np.ndarray
        The checked kernel.
    attend : callable
    dtype : np.dtype
    """
    x = as_float_array(x, "x", ndim_min=kernel_ndim - 1)
    w = _check_kernel(kernel, kernel_ndim)
    c_in = w.shape[1]
    if x.shape[-1] != c_in:
        raise ValueError(f"kernel: expected C_in = {x.shape[-1]} (last dim of x) in axis 1, "
                         f"got shape {w.shape}")
    check_choice(padding, "padding", ("none", "zeros"))
    attend = _check_attention(attention)
    dtype = np.result_type(x.dtype, w.dtype)
    x = x.astype(dtype, copy=False)
    return x, w, attend, dtype


def conv1d_as_attention(x, kernel, *, alpha: float | None = None, padding: str = "none",
                        attention: Callable | None = None,
                        anchor: int | None = None) -> np.ndarray:
    """A width-``K`` 1-D convolution computed by ``K``-head self-attention.

    Parameters
    ----------
    x : array_like, (..., L, C_in)
    kernel : array_like, (C_out, C_in, K)
        ``y_i[o] = sum_{c,k} kernel[o, c, k] x_{i+k-a}[c]``.
    alpha : float, optional
        Sharpness of the quadratic encoding; default :func:`default_alpha`.
    padding : {"none", "zeros"}
        ``"none"``: the ``L`` tokens only (replicate padding at the borders);
        ``"zeros"``: ``max(a, 0)`` zero tokens before and ``max(K-1-a, 0)``
        after, removed from the output (zero padding, exact everywhere).
    attention : callable, optional
        ``attention(q, k, v, *, bias=...)`` following the contract; default the
        reference softmax attention.
    anchor : int, optional
        The kernel tap ``a`` aligned with output position ``i``; default
        ``(K-1)//2`` (:func:`kernel_shifts`).

    Returns
    -------
    np.ndarray, (..., L, C_out)

    References
    ----------
    Cordonnier, Loukas & Jaggi 2020, ICLR, §3 (Theorem 1, the 1-D case).
    """
    x, w, attend, dtype = _conv_inputs(x, kernel, 3, padding, attention)
    c_out, c_in, width = w.shape
    a = _check_anchor(anchor, width)
    shifts = kernel_shifts(width, anchor=a)                              # (K,)
    before, after = max(a, 0), max(width - 1 - a, 0)
    if padding == "zeros":
        pad = [(0, 0)] * (x.ndim - 2) + [(before, after), (0, 0)]
        x = np.pad(x, pad)                                               # (..., before + L + after, C_in)
    length = x.shape[-2]
    alpha = default_alpha(length, dtype) if alpha is None else alpha
    positions = np.arange(length)[:, None]                               # (L, 1)
    w_out = np.transpose(w, (2, 1, 0))                                   # (K, C_in, C_out)
    y = _multi_head_conv(x, positions, shifts[:, None], w_out, alpha, attend)
    if padding == "zeros":
        y = y[..., before:length - after, :]
    return y


def conv2d_as_attention(x, kernel, *, alpha: float | None = None, padding: str = "none",
                        attention: Callable | None = None,
                        anchor: tuple[int, int] | None = None) -> np.ndarray:
    """A ``K x K`` 2-D convolution computed by ``K^2``-head self-attention over pixels.

    Parameters
    ----------
    x : array_like, (..., H, W, C_in)
        Pixels become ``H W`` tokens (row-major) with 2-D integer positions.
    kernel : array_like, (C_out, C_in, K1, K2)
        ``y[r, s, o] = sum kernel[o, c, k1, k2] x[r + k1 - a1, s + k2 - a2, c]``.
    alpha, padding, attention
        As in :func:`conv1d_as_attention`.
    anchor : (int, int), optional
        ``(a1, a2)``; default ``((K1-1)//2, (K2-1)//2)``.

    Returns
    -------
    np.ndarray, (..., H, W, C_out)

    References
    ----------
    Cordonnier, Loukas & Jaggi 2020, ICLR, §3 (Theorem 1: K^2 heads express a
    K x K convolution).
    """
    x, w, attend, dtype = _conv_inputs(x, kernel, 4, padding, attention)
    c_out, c_in, k1, k2 = w.shape
    if anchor is None:
        anchor = (None, None)
    elif not isinstance(anchor, (tuple, list)) or len(anchor) != 2:
        raise TypeError(f"anchor: expected a pair (a1, a2) or None, got {anchor!r}")
    a1, a2 = _check_anchor(anchor[0], k1, "anchor[0]"), _check_anchor(anchor[1], k2, "anchor[1]")
    (b1, e1), (b2, e2) = (max(a1, 0), max(k1 - 1 - a1, 0)), (max(a2, 0), max(k2 - 1 - a2, 0))
    if padding == "zeros":
        pad = [(0, 0)] * (x.ndim - 3) + [(b1, e1), (b2, e2), (0, 0)]
        x = np.pad(x, pad)
    lead, rows, cols = x.shape[:-3], x.shape[-3], x.shape[-2]
    tokens = x.reshape(*lead, rows * cols, c_in)                          # (..., H W, C_in)
    alpha = default_alpha(rows * cols, dtype) if alpha is None else alpha
    rr, cc = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    positions = np.stack([rr.ravel(), cc.ravel()], axis=-1)              # (H W, 2)
    s1 = kernel_shifts(k1, anchor=a1)
    s2 = kernel_shifts(k2, anchor=a2)
    shifts = np.stack(np.meshgrid(s1, s2, indexing="ij"), axis=-1).reshape(k1 * k2, 2)  # (K1 K2, 2)
    w_out = np.transpose(w, (2, 3, 1, 0)).reshape(k1 * k2, c_in, c_out)  # (K1 K2, C_in, C_out)
    y = _multi_head_conv(tokens, positions, shifts, w_out, alpha, attend)
    y = y.reshape(*lead, rows, cols, c_out)
    if padding == "zeros":
        y = y[..., b1:rows - e1, b2:cols - e2, :]
    return y


def correlate1d(x, kernel, *, mode: str = "valid", padding: str = "zeros") -> np.ndarray:
    """Multi-channel cross-correlation through :func:`scipy.signal.correlate` (the reference).

    Parameters
    ----------
    x : array_like, (L, C_in)
    kernel : array_like, (C_out, C_in, K)
    mode : {"valid", "same"}
        ``"valid"``: the ``L - K + 1`` interior outputs; ``"same"``: ``L`` outputs
        with the input padded by ``(K-1)//2`` before and the rest after.
    padding : {"zeros", "edge"}
        How ``"same"`` pads (``np.pad`` modes ``constant`` and ``edge``).

    Returns
    -------
    np.ndarray, (L_out, C_out), float64
    """
    x = as_float_array(x, "x", ndim=2).astype(np.float64)
    w = _check_kernel(kernel, 3).astype(np.float64)
    check_choice(mode, "mode", ("valid", "same"))
    check_choice(padding, "padding", ("zeros", "edge"))
    width = w.shape[2]
    if mode == "same":
        before = (width - 1) // 2
        x = np.pad(x, [(before, width - 1 - before), (0, 0)],
                   mode="constant" if padding == "zeros" else "edge")
    out = [sum(signal.correlate(x[:, c], w[o, c], mode="valid") for c in range(w.shape[1]))
           for o in range(w.shape[0])]
    return np.stack(out, axis=-1)                                            # (L_out, C_out)


def correlate2d(x, kernel, *, mode: str = "valid", padding: str = "zeros") -> np.ndarray:
    """Multi-channel 2-D cross-correlation through :func:`scipy.signal.correlate2d`.

    ``x`` (H, W, C_in), ``kernel`` (C_out, C_in, K1, K2); ``mode`` and ``padding``
    as in :func:`correlate1d`.
    """
    x = as_float_array(x, "x", ndim=3).astype(np.float64)
    w = _check_kernel(kernel, 4).astype(np.float64)
    check_choice(mode, "mode", ("valid", "same"))
    check_choice(padding, "padding", ("zeros", "edge"))
    k1, k2 = w.shape[2:]
    if mode == "same":
        b1, b2 = (k1 - 1) // 2, (k2 - 1) // 2
        x = np.pad(x, [(b1, k1 - 1 - b1), (b2, k2 - 1 - b2), (0, 0)],
                   mode="constant" if padding == "zeros" else "edge")
    out = [sum(signal.correlate2d(x[:, :, c], w[o, c], mode="valid") for c in range(w.shape[1]))
           for o in range(w.shape[0])]
    return np.stack(out, axis=-1)                                            # (H_out, W_out, C_out)


def influence(fn: Callable, x, position: int, *, delta: float = 1.0) -> np.ndarray:
    """``|fn(x + delta e_j)[position] - fn(x)[position]|`` for every input position ``j``.

    All ``L`` perturbed inputs are evaluated in one batched call, so ``fn`` must
    map ``(..., L, C)`` to ``(..., L, C_out)``.

    Parameters
    ----------
    fn : callable
    x : array_like, (L, C)
    position : int
        The output position whose dependence is measured.
    delta : float
        Added to every channel of one input position.

    Returns
    -------
    np.ndarray, (L,)
        The largest change over output channels, per perturbed input position.
    """
    x = as_float_array(x, "x", ndim=2)
    length = x.shape[0]
    position = check_positive_int(position, "position", minimum=0)
    if position >= length:
        raise ValueError(f"position: expected an index in [0, {length}), got {position}")
    eye = np.eye(length, dtype=x.dtype)[:, :, None]                       # (L, L, 1)
    batch = np.concatenate([x[None], x[None] + delta * eye], axis=0)     # (L + 1, L, C)
    out = np.asarray(fn(batch), dtype=np.float64)                        # (L + 1, L, C_out)
    base = out[0, position]                                              # (C_out,)
    return np.max(np.abs(out[1:, position] - base), axis=-1)             # (L,)


def receptive_field(fn: Callable, x, position: int, *, threshold: float) -> np.ndarray:
    """Input positions whose perturbation changes output ``position`` by more than ``threshold``."""
    return np.flatnonzero(influence(fn, x, position) > threshold)
