"""The gated feed-forward network of today's transformers (SwiGLU, GeGLU).

``(act(x W_gate + b_gate) * (x W_up + b_up)) W_down + b_down``, the activation
on the gate projection only, the same network applied to every position. The
parameter type is :class:`.contract.params.GatedFFNParams`.

References
----------
Shazeer 2020, GLU Variants Improve Transformer, arXiv:2002.05202 (FFN_SwiGLU,
FFN_GEGLU: three weight matrices, no biases). Dauphin et al. 2017, Language
Modeling with Gated Convolutional Networks (the gated linear unit).
Hendrycks & Gimpel 2016, Gaussian Error Linear Units (GELUs), §2 (GELU and its
tanh approximation). Ramachandran et al. 2017, Searching for Activation
Functions (Swish_1 = x sigmoid(x) = SiLU).
"""

from __future__ import annotations

import math

import numpy as np

from .contract.params import GatedFFNParams
from .contract.precision import accepts_half, computes_in_float32
from .contract.validate import as_float_array, check_choice, check_instance, common_float_dtype
from .layers import check_ffn_init, gelu, sigmoid

__all__ = ["GATED_ACTIVATIONS", "silu", "GatedFFNParams", "init_gated_ffn",
           "gated_feed_forward"]


def silu(x) -> np.ndarray:
    """SiLU (Swish with beta = 1): ``x * sigmoid(x)``.

    Parameters
    ----------
    x : array_like
        Any shape, float32 or float64, finite.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``x``.

    References
    ----------
    Ramachandran et al. 2017, Searching for Activation Functions (Swish);
    Shazeer 2020, GLU Variants Improve Transformer (Swish_1 in SwiGLU).
    """
    x = as_float_array(x, "x", ndim_min=0)
    return (x * sigmoid(x)).astype(x.dtype, copy=False)


#: The gate activations of :func:`gated_feed_forward`, by name.
GATED_ACTIVATIONS = {
    "silu": silu,
    "gelu": gelu,
    "gelu_tanh": lambda x: gelu(x, approximate="tanh"),
}


@accepts_half
def init_gated_ffn(d_model: int, d_ff: int, rng: np.random.Generator, *, bias: bool = False,
                   dtype=np.float64) -> GatedFFNParams:
    """Random gated-FFN weights: ``w_gate, w_up ~ N(0, 1/E)``, ``w_down ~ N(0, 1/F)``.

    Biases, when requested, are ``N(0, 0.1^2)`` (nonzero, so that a dropped
    bias shows); the weights are drawn first, in float64, then cast.

    Parameters
    ----------
    d_model, d_ff : int
        Widths ``E`` and ``F`` (>= 1).
    rng : numpy.random.Generator
    bias : bool
        Whether to create ``b_gate``, ``b_up``, ``b_down`` (Shazeer's variants have none).
    dtype : float32 or float64

    Returns
    -------
    GatedFFNParams
        ``3 E F`` weights, plus ``2 F + E`` biases with ``bias=True``.

    References
    ----------
    Shazeer 2020, GLU Variants Improve Transformer.
    """
    e, f, rng, dt = check_ffn_init(d_model, d_ff, rng, bias, dtype)
    w_gate = rng.normal(0.0, 1.0 / math.sqrt(e), size=(e, f))           # (E, F)
    w_up = rng.normal(0.0, 1.0 / math.sqrt(e), size=(e, f))             # (E, F)
    w_down = rng.normal(0.0, 1.0 / math.sqrt(f), size=(f, e))           # (F, E)
    biases = (rng.normal(0.0, 0.1, size=f), rng.normal(0.0, 0.1, size=f),
              rng.normal(0.0, 0.1, size=e)) if bias else (None, None, None)
    b_gate, b_up, b_down = (None if b is None else b.astype(dt) for b in biases)
    return GatedFFNParams(w_gate.astype(dt), w_up.astype(dt), w_down.astype(dt),
                          b_gate, b_up, b_down)


@computes_in_float32
def gated_feed_forward(x, params: GatedFFNParams, *, activation: str = "silu") -> np.ndarray:
    """Gated position-wise FFN ``(act(x W_gate + b_gate) * (x W_up + b_up)) W_down + b_down``.

    Parameters
    ----------
    x : array_like, shape (..., E)
        float32 or float64, finite, at least 1-d.
    params : GatedFFNParams
        ``w_gate (E, F)``, ``w_up (E, F)``, ``w_down (F, E)``, optional biases.
    activation : {"silu", "gelu", "gelu_tanh"}
        The gate's activation: SiLU (SwiGLU), exact GELU or its tanh
        approximation (GeGLU).

    Returns
    -------
    numpy.ndarray, shape (..., E)
        float32 only if ``x`` and all parameters are float32.

    References
    ----------
    Shazeer 2020, GLU Variants Improve Transformer: FFN_SwiGLU(x, W, V, W_2) =
    (Swish_1(xW) * xV) W_2 and FFN_GEGLU(x, W, V, W_2) = (GELU(xW) * xV) W_2.
    """
    check_instance(params, "params", GatedFFNParams)
    check_choice(activation, "activation", GATED_ACTIVATIONS)
    x = as_float_array(x, "x", ndim_min=1)
    arrays = params.validate(x.shape[-1])
    dtype = common_float_dtype(x, *arrays)
    w_gate, b_gate, w_up, b_up, w_down, b_down = (
        None if a is None else a.astype(dtype, copy=False) for a in arrays)
    x = x.astype(dtype, copy=False)
    gate = x @ w_gate                                             # (..., F)
    up = x @ w_up                                                 # (..., F)
    if b_gate is not None:
        gate = gate + b_gate                                      # (..., F)
    if b_up is not None:
        up = up + b_up                                            # (..., F)
    h = np.asarray(GATED_ACTIVATIONS[activation](gate)).astype(dtype, copy=False) * up  # (..., F)
    out = h @ w_down                                              # (..., E)
    if b_down is not None:
        out = out + b_down                                        # (..., E)
    return out
