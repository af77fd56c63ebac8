"""Position-wise building blocks of a transformer block.

Activations, layer, batch and RMS normalisation, the position-wise feed-forward
network and the residual connection. Every function takes and returns numpy
arrays and follows the reference contract (DESIGN.md, "Contract"): inputs are
validated by :mod:`.contract.validate`, nothing is broadcast silently, non-finite
inputs are refused, and float32 in gives float32 out (float64 as soon as any
float input is float64). The parameter types ``LayerNormParams`` and
``FFNParams`` are those of :mod:`.contract.params` (re-exported here).

Shapes use ``E`` for the model width ``d_model`` and ``F`` for the hidden
width ``d_ff`` of the feed-forward network; ``...`` stands for any leading
batch/position dimensions.

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.1 and §3.3.
Ba, Kiros & Hinton 2016, Layer Normalization, §3.
Ioffe & Szegedy 2015, Batch Normalization, §3 (Algorithm 1).
Zhang & Sennrich 2019, Root Mean Square Layer Normalization (RMSNorm).
Hendrycks & Gimpel 2016, Gaussian Error Linear Units (GELUs), §2.
Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): residual connection,
LayerNorm, activations. Seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt):
dense feed-forward layer, "Batch Normalization vs Layer Normalization".
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import special

from .contract.precision import accepts_half, computes_in_float32
from .contract.params import FFNParams, LayerNormParams
from .contract.validate import (
    ACTIVATION_NAMES,
    as_float_array,
    check_choice,
    check_eps,
    check_float_dtype,
    check_instance,
    check_optional_vector,
    check_positive_int,
    check_rng,
    common_float_dtype,
)

__all__ = [
    "sigmoid",
    "tanh",
    "relu",
    "gelu",
    "ACTIVATIONS",
    "get_activation",
    "resolve_activation",
    "LayerNormParams",
    "init_layer_norm",
    "layer_norm",
    "batch_norm",
    "rms_norm",
    "FFNParams",
    "init_ffn",
    "feed_forward",
    "residual",
]


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------

def sigmoid(x) -> np.ndarray:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, stable for large ``|x|``.

    Only ``exp(-|x|)``, which lies in ``(0, 1]``, is ever evaluated, so no
    overflow occurs: for ``x >= 0`` the result is ``1 / (1 + exp(-x))`` and for
    ``x < 0`` it is the algebraically equal ``exp(x) / (1 + exp(x))``.

    Parameters
    ----------
    x : array_like
        Any shape (a scalar is allowed), float32 or float64, finite.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``x``, values in ``[0, 1]``.

    References
    ----------
    Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt), "Some examples of sigma:
    Sigmoid".
    """
    x = as_float_array(x, "x", ndim_min=0)
    e = np.exp(-np.abs(x))                                  # (...) in (0, 1]
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e)).astype(x.dtype, copy=False)


def tanh(x) -> np.ndarray:
    """Hyperbolic tangent ``(e^x - e^-x) / (e^x + e^-x) = 2 sigmoid(2x) - 1``.

    Parameters
    ----------
    x : array_like
        Any shape (a scalar is allowed), float32 or float64, finite.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``x``, values in ``[-1, 1]``.

    References
    ----------
    Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): tanh as a "resized
    version of sigmoid", i.e. ``tanh(x) = 2 sigmoid(2x) - 1``.
    """
    x = as_float_array(x, "x", ndim_min=0)
    return np.tanh(x)


def relu(x) -> np.ndarray:
    """Rectified linear unit ``max(x, 0)``.

    Parameters
    ----------
    x : array_like
        Any shape (a scalar is allowed), float32 or float64, finite.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``x``.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.3 (eq. 2).
    Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt), "Relu".
    """
    x = as_float_array(x, "x", ndim_min=0)
    return np.maximum(x, x.dtype.type(0))


_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(x, *, approximate: str = "none") -> np.ndarray:
    """Gaussian error linear unit ``x * Phi(x)``.

    ``approximate="none"`` evaluates the exact form
    ``0.5 x (1 + erf(x / sqrt(2)))``; ``approximate="tanh"`` the paper's
    approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
    In the tanh form ``x^3`` may overflow for huge ``|x|``; ``tanh(+-inf)`` is
    then ``+-1`` and the result ``x`` or ``0`` is still correct, so that
    overflow is silenced.

    Parameters
    ----------
    x : array_like
        Any shape (a scalar is allowed), float32 or float64, finite.
    approximate : {"none", "tanh"}
        Which form to evaluate.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``x``.

    References
    ----------
    Hendrycks & Gimpel 2016, Gaussian Error Linear Units (GELUs), §2.
    """
    check_choice(approximate, "approximate", ("none", "tanh"))
    x = as_float_array(x, "x", ndim_min=0)
    t = x.dtype.type
    if approximate == "none":
        phi = t(0.5) * (t(1) + special.erf(x * t(_SQRT_HALF)))           # (...) = Phi(x)
    else:
        with np.errstate(over="ignore"):
            inner = t(_SQRT_2_OVER_PI) * (x + t(0.044715) * x * x * x)  # (...)
            phi = t(0.5) * (t(1) + np.tanh(inner))                       # (...)
    return (x * phi).astype(x.dtype, copy=False)


#: Activation functions by name, for ``feed_forward(..., activation=name)``.
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = dict(
    zip(ACTIVATION_NAMES, (relu, gelu, tanh, sigmoid)))


def get_activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """Look up an activation function in :data:`ACTIVATIONS` by name.

    Parameters
    ----------
    name : str
        One of ``"relu"``, ``"gelu"``, ``"tanh"``, ``"sigmoid"``.

    Returns
    -------
    callable
        The activation, mapping an array to an array of the same shape/dtype.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If ``name`` is not a known activation.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"name: expected an activation name (str), got {type(name).__name__}")
    check_choice(name, "name", ACTIVATIONS)
    return ACTIVATIONS[name]


# ---------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------

@accepts_half
def init_layer_norm(d_model: int, *, dtype=np.float64) -> LayerNormParams:
    """The standard initialisation of a layer norm: ``gamma = 1``, ``beta = 0``.

    Parameters
    ----------
    d_model : int
        Feature width ``E`` (>= 1).
    dtype : float32 or float64

    Returns
    -------
    LayerNormParams
        With ``gamma`` all ones and ``beta`` all zeros, shape ``(E,)`` each.

    References
    ----------
    Ba, Kiros & Hinton 2016, Layer Normalization, §3.
    """
    d_model = check_positive_int(d_model, "d_model")
    dt = check_float_dtype(dtype)
    return LayerNormParams(gamma=np.ones(d_model, dtype=dt), beta=np.zeros(d_model, dtype=dt))


def _standardise(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    """``(x - mean) / sqrt(var + eps)`` with biased statistics over ``axes``.

    A *group* is the set of entries that share their indices outside ``axes``
    (a row for layer norm, a feature column for batch norm).

    Two numerical safeguards keep this exact-arithmetic formula accurate on
    every finite input:

    * each group is divided by its largest ``|x|`` and then its centred values
      by their largest magnitude ``s`` before squaring, with ``eps`` rescaled
      to match, so no square overflows or underflows. In exact arithmetic
      ``c / sqrt(var + eps) = z / sqrt(var_z + eps / s^2)`` with ``z = c / s``;
    * a group whose entries are all equal is centred to exact zeros (not to
      the rounding error of its computed mean) and maps to zeros, also when
      ``eps == 0``.
    """
    t = x.dtype.type
    first = tuple(slice(0, 1) if ax in axes else slice(None) for ax in range(x.ndim))
    constant = np.all(x == x[first], axis=axes, keepdims=True)    # group dims, 1 on axes

    s0 = np.max(np.abs(x), axis=axes, keepdims=True)              # group scale of x
    s0 = np.where(s0 > 0, s0, t(1))
    y = x / s0                                                    # x.shape, in [-1, 1]
    centred = y - np.mean(y, axis=axes, keepdims=True)            # x.shape, in [-2, 2]
    centred = np.where(constant, t(0), centred)
    s1 = np.max(np.abs(centred), axis=axes, keepdims=True)        # group scale of centred
    s1 = np.where(s1 > 0, s1, t(1))
    z = centred / s1                                              # x.shape, max |z| = 1
    var_z = np.mean(z * z, axis=axes, keepdims=True)              # biased: / group size
    if eps > 0:
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            scale = s0 * s1
            eps_z = t(eps) / (scale * scale)   # inf only where the true output is < 1e-19
    else:
        eps_z = t(0)
    denom = np.sqrt(var_z + eps_z)                                # group dims
    denom = np.where(constant, t(1), denom)                       # constant groups: z == 0
    return (z / denom).astype(x.dtype, copy=False)


def _affine(xhat: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None,
            dtype: np.dtype) -> np.ndarray:
    """``xhat * gamma + beta`` over the last axis, in ``dtype``."""
    out = xhat.astype(dtype, copy=False)
    if gamma is not None:
        out = out * gamma.astype(dtype, copy=False)               # (..., E) * (E,)
    if beta is not None:
        out = out + beta.astype(dtype, copy=False)                # (..., E) + (E,)
    return out


def _normalise(x, gamma, beta, eps, *, ndim_min: int, axes) -> np.ndarray:
    """Validate, standardise ``x (..., E)`` over ``axes(x.ndim)``, then the affine map.

    The body shared by :func:`layer_norm` and :func:`batch_norm`, which differ
    only in the axes of the statistics (and the least rank of ``x``).
    """
    x = as_float_array(x, "x", ndim_min=ndim_min)
    e = x.shape[-1]
    gamma = check_optional_vector(gamma, "gamma", e, "d_model (last dim of x)")
    beta = check_optional_vector(beta, "beta", e, "d_model (last dim of x)")
    eps = check_eps(eps)
    dtype = common_float_dtype(x, gamma, beta)
    if x.size == 0:                                               # no row, or rows of width 0
        return np.zeros(x.shape, dtype=dtype)
    xhat = _standardise(x, axes(x.ndim), eps)                     # (..., E)
    return _affine(xhat, gamma, beta, dtype)


@computes_in_float32
def layer_norm(x, gamma=None, beta=None, *, eps: float = 1e-5) -> np.ndarray:
    """Layer normalisation over the last axis.

    Each feature vector ``x[..., :]`` of width ``E`` is standardised with its
    own mean and biased variance (divided by ``E``), ``eps`` inside the square
    root, then scaled and shifted per feature::

        y = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta

    With ``eps == 0`` a row of equal entries (zero variance) has no defined
    standardisation; it is returned as zeros before the affine map (so the
    output row is ``beta``), the limit of the formula as ``eps -> 0+``.

    Parameters
    ----------
    x : array_like, shape (..., E)
        float32 or float64, finite, at least 1-d.
    gamma : array_like, shape (E,), optional
        Per-feature gain; omitted means 1.
    beta : array_like, shape (E,), optional
        Per-feature bias; omitted means 0.
    eps : float
        Finite, ``>= 0``.

    Returns
    -------
    numpy.ndarray, shape (..., E)
        float32 only if ``x`` and every given ``gamma``/``beta`` are float32.

    References
    ----------
    Ba, Kiros & Hinton 2016, Layer Normalization, §3 (eq. 4).
    Vaswani et al. 2017, Attention Is All You Need, §3.1.
    Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt), "LayerNorm"; seed 003
    (shared/seeds/003_8876c6ab28e0baf8.txt), "Batch Normalization vs Layer
    Normalization".
    """
    return _normalise(x, gamma, beta, eps, ndim_min=1,
                      axes=lambda ndim: (ndim - 1,))                # over the features


@computes_in_float32
def rms_norm(x, gamma=None, *, eps: float = 1e-6) -> np.ndarray:
    """Root-mean-square normalisation over the last axis, ``eps`` inside the root.

    Each feature vector ``x[..., :]`` of width ``E`` is divided by its root mean
    square, without centring, then scaled per feature::

        y = x / sqrt(mean(x**2) + eps) * gamma

    With ``eps == 0`` an all-zero row has no defined scale; it is returned as
    zeros (the limit of the formula as ``eps -> 0+``). The row is divided by
    its largest ``|x|`` before squaring (``eps`` rescaled to match), so no
    square overflows or underflows. Where libraries add ``eps`` outside the
    root, ``x / (sqrt(mean(x**2)) + eps)``, a subject declares the option
    ``rms_eps=outside``.

    Parameters
    ----------
    x : array_like, shape (..., E)
        float32 or float64, finite, at least 1-d.
    gamma : array_like, shape (E,), optional
        Per-feature gain; omitted means 1.
    eps : float
        Finite, ``>= 0``.

    Returns
    -------
    numpy.ndarray, shape (..., E)
        float32 only if ``x`` and ``gamma`` (if given) are float32.

    References
    ----------
    Zhang & Sennrich 2019, Root Mean Square Layer Normalization, NeurIPS: the
    summed inputs ``a`` of a layer are divided by ``RMS(a) = sqrt(mean(a_i^2))``
    and multiplied by a gain ``g``, with no re-centering (the paper's RMSNorm
    section; ``eps`` is the implementations' safeguard).
    """
    x = as_float_array(x, "x", ndim_min=1)
    gamma = check_optional_vector(gamma, "gamma", x.shape[-1], "d_model (last dim of x)")
    eps = check_eps(eps)
    dtype = common_float_dtype(x, gamma)
    if x.shape[-1] == 0:                                          # rows of width 0: nothing to scale
        return np.zeros(x.shape, dtype=dtype)
    t = x.dtype.type
    s = np.max(np.abs(x), axis=-1, keepdims=True)                 # (..., 1) row scale
    zero = s == 0
    s = np.where(zero, t(1), s)
    z = x / s                                                     # (..., E) in [-1, 1]
    ms = np.mean(z * z, axis=-1, keepdims=True)                   # (..., 1) mean square of z
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        eps_z = t(eps) / (s * s) if eps > 0 else t(0)             # (..., 1) eps in z's units
    denom = np.where(zero, t(1), np.sqrt(ms + eps_z))             # (..., 1)
    y = np.where(zero, t(0), z / denom)                           # (..., E)
    return _affine(y, gamma, None, dtype)


def batch_norm(x, gamma=None, beta=None, *, eps: float = 1e-5) -> np.ndarray:
    """Batch normalisation in training mode: statistics over all but the last axis.

    Each feature ``k`` is standardised with the mean and biased variance of
    ``x[..., k]`` over every leading axis (batch and positions) — the
    mini-batch statistics of training mode, not running averages::

        y[..., k] = (x[..., k] - mu_k) / sqrt(sigma_k^2 + eps) * gamma[k] + beta[k]

    Compare :func:`layer_norm`, which normalises each position over its
    features instead. With ``eps == 0`` a feature that is constant over the
    batch is returned as zeros before the affine map.

    Parameters
    ----------
    x : array_like, shape (..., E)
        float32 or float64, finite, at least 2-d (e.g. ``(B, L, E)``).
    gamma : array_like, shape (E,), optional
        Per-feature gain; omitted means 1.
    beta : array_like, shape (E,), optional
        Per-feature bias; omitted means 0.
    eps : float
        Finite, ``>= 0``.

    Returns
    -------
    numpy.ndarray, shape (..., E)
        float32 only if ``x`` and every given ``gamma``/``beta`` are float32.

    References
    ----------
    Ioffe & Szegedy 2015, Batch Normalization: Accelerating Deep Network
    Training by Reducing Internal Covariate Shift, §3 (Algorithm 1).
    Seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt), "Batch Normalization vs
    Layer Normalization"; seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt),
    "Other forms of norm: batch norm".
    """
    return _normalise(x, gamma, beta, eps, ndim_min=2,
                      axes=lambda ndim: tuple(range(ndim - 1)))     # over batch and positions


# ---------------------------------------------------------------------------
# position-wise feed-forward network and residual connection
# ---------------------------------------------------------------------------

def check_ffn_init(d_model, d_ff, rng, bias, dtype) -> tuple[int, int, np.random.Generator,
                                                            np.dtype]:
    """The checked arguments of an FFN initialiser: ``(d_model, d_ff, rng, dtype)``.

    Shared by :func:`init_ffn` and ``gated_ffn.init_gated_ffn``; ``bias`` must be a bool.
    """
    d_model = check_positive_int(d_model, "d_model")
    d_ff = check_positive_int(d_ff, "d_ff")
    rng = check_rng(rng)
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"bias: expected a bool, got {type(bias).__name__}")
    return d_model, d_ff, rng, check_float_dtype(dtype)


@accepts_half
def init_ffn(d_model: int, d_ff: int, rng: np.random.Generator, *, bias: bool = True,
             dtype=np.float64) -> FFNParams:
    """Random feed-forward weights.

    ``w1 ~ N(0, 1/E)`` and ``w2 ~ N(0, 1/F)`` (standard deviation
    ``1/sqrt(fan_in)``). Biases, when requested, are small nonzero values
    ``N(0, 0.1^2)`` rather than zeros, so that a bias that is dropped or
    applied twice changes the output visibly in tests. The weights are drawn
    before the biases, so ``w1`` and ``w2`` do not depend on ``bias``; values
    are drawn in float64 and then cast, so float32 and float64 parameters from
    the same seed agree to float32 rounding.

    Parameters
    ----------
    d_model : int
        Model width ``E`` (>= 1).
    d_ff : int
        Hidden width ``F`` (>= 1); Vaswani et al. use ``F = 4E``.
    rng : numpy.random.Generator
    bias : bool
        Whether to create ``b1`` and ``b2`` (otherwise they are ``None``).
    dtype : float32 or float64

    Returns
    -------
    FFNParams

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.3.
    """
    d_model, d_ff, rng, dt = check_ffn_init(d_model, d_ff, rng, bias, dtype)
    w1 = rng.normal(0.0, 1.0 / math.sqrt(d_model), size=(d_model, d_ff))   # (E, F)
    w2 = rng.normal(0.0, 1.0 / math.sqrt(d_ff), size=(d_ff, d_model))      # (F, E)
    b1 = b2 = None
    if bias:
        b1 = rng.normal(0.0, 0.1, size=d_ff).astype(dt)                    # (F,)
        b2 = rng.normal(0.0, 0.1, size=d_model).astype(dt)                 # (E,)
    return FFNParams(w1=w1.astype(dt), b1=b1, w2=w2.astype(dt), b2=b2)


def resolve_activation(activation) -> Callable[[np.ndarray], np.ndarray]:
    """The ``activation`` argument of :func:`feed_forward` as a function.

    Parameters
    ----------
    activation : str or callable
        A name from :data:`ACTIVATIONS` (looked up with :func:`get_activation`),
        or a function of one array, returned as is.

    Returns
    -------
    callable
    """
    if callable(activation):
        return activation
    return get_activation(activation)


@computes_in_float32
def feed_forward(x, params: FFNParams, *, activation="relu") -> np.ndarray:
    """Position-wise feed-forward network ``act(x W1 + b1) W2 + b2``.

    The same two-layer network is applied to every position (every vector
    ``x[..., i, :]``) independently.

    Parameters
    ----------
    x : array_like, shape (..., E)
        float32 or float64, finite, at least 1-d.
    params : FFNParams
        ``w1 (E, F)``, ``b1 (F,)`` or ``None``, ``w2 (F, E)``, ``b2 (E,)`` or
        ``None``.
    activation : str or callable
        A name from :data:`ACTIVATIONS` (``"relu"`` as in Vaswani et al.,
        ``"gelu"``, ``"tanh"``, ``"sigmoid"``) or a function of one array.

    Returns
    -------
    numpy.ndarray, shape (..., E)
        float32 only if ``x`` and all parameters are float32.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.3 (eq. 2).
    Seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt), "Dense Feed Forward
    Layer": R_i = ReLU(Z_i W_1 + b_1) W_2 + b_2.
    """
    check_instance(params, "params", FFNParams)
    act = resolve_activation(activation)
    x = as_float_array(x, "x", ndim_min=1)
    w1, b1, w2, b2 = params.validate(x.shape[-1])
    dtype = common_float_dtype(x, w1, b1, w2, b2)

    x = x.astype(dtype, copy=False)
    h = x @ w1.astype(dtype, copy=False)                          # (..., F)
    if b1 is not None:
        h = h + b1.astype(dtype, copy=False)                      # (..., F)
    h = np.asarray(act(h)).astype(dtype, copy=False)              # (..., F)
    out = h @ w2.astype(dtype, copy=False)                        # (..., E)
    if b2 is not None:
        out = out + b2.astype(dtype, copy=False)                  # (..., E)
    return out


def residual(x, y) -> np.ndarray:
    """Residual (skip) connection ``x + f(x)``, given ``y = f(x)``.

    The two arrays must have exactly the same shape: nothing is broadcast.

    Parameters
    ----------
    x : array_like
        The block input, float32 or float64, finite.
    y : array_like
        The sublayer output, same shape as ``x``.

    Returns
    -------
    numpy.ndarray
        ``x + y``; float32 only if both are float32.

    References
    ----------
    He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition,
    §3.2. Vaswani et al. 2017, Attention Is All You Need, §3.1
    (LayerNorm(x + Sublayer(x))).
    Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt), "Residual Connection".
    """
    x = as_float_array(x, "x", ndim_min=0)
    y = as_float_array(y, "y", ndim_min=0)
    if x.shape != y.shape:
        raise ValueError(
            f"y: expected the same shape as x, {x.shape}, got shape {y.shape} "
            f"(residual connections do not broadcast)")
    dtype = common_float_dtype(x, y)
    return x.astype(dtype, copy=False) + y.astype(dtype, copy=False)
