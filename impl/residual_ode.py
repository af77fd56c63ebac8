"""Residual networks as ODEs: a shared-weight residual stack is the Euler scheme of a flow.

With a fixed vector field ``f(x) = W_2 tanh(W_1 x + b_1) + b_2`` (the
position-wise feed-forward network with a tanh activation) the stack

.. math::  x_{l+1} = x_l + \\frac{T}{L} f(x_l),\\qquad l = 0..L-1,

is forward Euler with step ``h = T/L`` for ``dx/dt = f(x)`` on ``[0, T]``. ``f`` is
smooth with bounded derivatives, so the global error at ``t = T`` is ``C/L + O(1/L^2)``
(first order): doubling the depth halves it. The reference flow is computed by
:func:`scipy.integrate.solve_ivp` (DOP853) at ``rtol = 1e-12``.

With *independent* random weights per layer there is no such limit. Under the
same ``T/L`` scaling the stack is ``x_0 + (T/L) sum_l f_l(x_l)``, a sum of ``L``
independent terms: its fluctuation around the mean field shrinks only like
``L^{-1/2}`` (doubling ``L`` divides the distance between depths by about
``sqrt 2``, not 2), and under the variance-preserving scaling ``sqrt(T/L)`` of
standard initialisations it does not shrink at all (the stack tends to a
diffusion, not to an ODE flow).

References
----------
He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition, CVPR,
§3.2 (x + F(x)).
Chen, Rubanova, Bettencourt & Duvenaud 2018, Neural Ordinary Differential
Equations, NeurIPS, §1-2 (a residual stack is an Euler discretisation).
Hairer, Nørsett & Wanner 1993, Solving Ordinary Differential Equations I, §II.3
(Euler's method has order 1; Theorem 3.4).
Cohen, Cont, Rossier & Xu 2021, Scaling Properties of Deep Residual Networks,
ICML (i.i.d. weights: a diffusion limit, not an ODE).
Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): the residual connection
X + f(X) as a dynamical system, "neural ODEs".
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from scipy.integrate import solve_ivp

from ._validate import as_float_array, check_choice, check_positive_int, check_rng
from .layers import FFNParams, feed_forward as _feed_forward, init_ffn, residual

__all__ = [
    "init_vector_field",
    "vector_field",
    "residual_stack",
    "ode_flow",
    "euler_errors",
    "doubling_ratios",
    "residual_stack_iid",
    "iid_depth_differences",
]


def _check_params(params) -> FFNParams:
    if not isinstance(params, FFNParams):
        raise TypeError(f"params: expected FFNParams, got {type(params).__name__}")
    return params


def _check_horizon(horizon) -> float:
    if isinstance(horizon, (bool, np.bool_)) or not isinstance(horizon, (int, float, np.number)):
        raise TypeError(f"horizon: expected a positive number, got {type(horizon).__name__}")
    if not (math.isfinite(horizon) and horizon > 0):
        raise ValueError(f"horizon: expected a positive finite number, got {horizon!r}")
    return float(horizon)


def init_vector_field(d: int, width: int, rng: np.random.Generator, *,
                      dtype=np.float64) -> FFNParams:
    """Random weights of ``f(x) = W_2 tanh(W_1 x + b_1) + b_2`` (the suite's FFN initialisation)."""
    return init_ffn(d, width, check_rng(rng), dtype=dtype)


def vector_field(x, params: FFNParams, *, feed_forward: Callable | None = None) -> np.ndarray:
    """``f(x) = W_2 tanh(W_1 x + b_1) + b_2`` through ``feed_forward`` (default the reference)."""
    params = _check_params(params)
    ffn = feed_forward or _feed_forward
    return np.asarray(ffn(x, params, activation="tanh"))


def residual_stack(x0, params: FFNParams, horizon: float, depth: int, *,
                   feed_forward: Callable | None = None) -> np.ndarray:
    """``depth`` residual blocks ``x + (T/L) f(x)`` with shared weights.

    Parameters
    ----------
    x0 : array_like, (..., d)
    params : FFNParams
        The shared block weights (``w1 (d, F)``, ``w2 (F, d)``).
    horizon : float
        ``T > 0``.
    depth : int
        ``L >= 1``.
    feed_forward : callable, optional
        ``feed_forward(x, params, activation=...)``; default the reference.

    Returns
    -------
    np.ndarray, (..., d)
        ``x_L``.

    References
    ----------
    Chen et al. 2018, NeurIPS, §2; seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt).
    """
    x = as_float_array(x0, "x0", ndim_min=1)
    params = _check_params(params)
    horizon = _check_horizon(horizon)
    depth = check_positive_int(depth, "depth")
    h = horizon / depth
    for _ in range(depth):                  # one residual block per Euler step
        x = residual(x, h * vector_field(x, params, feed_forward=feed_forward))
    return x


def ode_flow(x0, params: FFNParams, horizon: float, *, rtol: float = 1e-12,
             atol: float = 1e-14) -> np.ndarray:
    """``x(T)`` for ``dx/dt = f(x)``, ``x(0) = x0``, by ``solve_ivp`` (DOP853) in float64.

    Parameters
    ----------
    x0 : array_like, (d,)
    params : FFNParams
    horizon : float
    rtol, atol : float
        Passed to :func:`scipy.integrate.solve_ivp`.

    Returns
    -------
    np.ndarray, (d,)
    """
    x = as_float_array(x0, "x0", ndim=1).astype(np.float64)
    params = _check_params(params)
    horizon = _check_horizon(horizon)
    p64 = FFNParams(*(None if a is None else np.asarray(a, dtype=np.float64)
                      for a in (params.w1, params.b1, params.w2, params.b2)))

    def rhs(_t, y):
        return vector_field(y, p64)

    sol = solve_ivp(rhs, (0.0, horizon), x, method="DOP853", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.y[:, -1]


def euler_errors(x0, params: FFNParams, horizon: float, depths: Sequence[int], *,
                 feed_forward: Callable | None = None, reference=None) -> np.ndarray:
    """``|x_L - x(T)|_2`` for each depth ``L`` (``reference`` defaults to :func:`ode_flow`)."""
    target = ode_flow(x0, params, horizon) if reference is None else np.asarray(reference)
    return np.array([np.linalg.norm(np.asarray(residual_stack(x0, params, horizon, depth,
                                                              feed_forward=feed_forward),
                                               dtype=np.float64) - target)
                     for depth in depths])


def doubling_ratios(errors) -> np.ndarray:
    """``e(L) / e(2L)`` for consecutive entries of errors measured at ``L, 2L, 4L, ...``."""
    e = as_float_array(errors, "errors", ndim=1)
    return e[:-1] / e[1:]


def residual_stack_iid(x0, horizon: float, depth: int, width: int, rng: np.random.Generator, *,
                       scaling: str = "1/L", feed_forward: Callable | None = None) -> np.ndarray:
    """A residual stack whose every block draws *independent* random weights.

    Parameters
    ----------
    x0 : array_like, (..., d)
    horizon : float
    depth : int
    width : int
        Hidden width ``F`` of each block.
    rng : np.random.Generator
        Source of the per-layer weights (:func:`~transformer_theory.impl.layers.init_ffn`).
    scaling : {"1/L", "1/sqrt(L)"}
        Block output multiplied by ``T/L`` (Euler-like) or ``sqrt(T/L)``
        (variance-preserving).
    feed_forward : callable, optional

    Returns
    -------
    np.ndarray, (..., d)

    References
    ----------
    Cohen, Cont, Rossier & Xu 2021, ICML.
    """
    x = as_float_array(x0, "x0", ndim_min=1)
    horizon = _check_horizon(horizon)
    depth = check_positive_int(depth, "depth")
    width = check_positive_int(width, "width")
    rng = check_rng(rng)
    check_choice(scaling, "scaling", ("1/L", "1/sqrt(L)"))
    step = horizon / depth if scaling == "1/L" else math.sqrt(horizon / depth)
    for _ in range(depth):                  # each block has its own weights
        params = init_ffn(x.shape[-1], width, rng, dtype=x.dtype)
        x = residual(x, step * vector_field(x, params, feed_forward=feed_forward))
    return x


def iid_depth_differences(x0, horizon: float, depths: Sequence[int], width: int, *, seed: int,
                          realizations: int, scaling: str = "1/L",
                          feed_forward: Callable | None = None,
                          stack: Callable | None = None) -> np.ndarray:
    """Root-mean-square ``|x_L - x_{2L}|`` over independent draws, for consecutive depths.

    Stack ``r`` at depth ``L`` uses ``default_rng([seed, L, r])``; the returned
    array has one entry per consecutive pair of ``depths``.

    Parameters
    ----------
    x0, horizon, width, scaling, feed_forward
        As in :func:`residual_stack_iid`.
    depths : sequence of int
    seed : int
    realizations : int
        Independent stacks per depth.
    stack : callable, optional
        ``stack(x0, horizon, depth, width, rng, *, scaling, feed_forward)``, the
        random stack measured; default :func:`residual_stack_iid` (a claim
        passes a subject's own).

    Returns
    -------
    np.ndarray, (len(depths) - 1,)
    """
    seed = check_positive_int(seed, "seed", minimum=0)
    realizations = check_positive_int(realizations, "realizations")
    if stack is None:
        stack = residual_stack_iid
    elif not callable(stack):
        raise TypeError(f"stack: expected a callable or None, got {type(stack).__name__}")
    outs = {depth: np.stack([np.asarray(stack(
                x0, horizon, depth, width, np.random.default_rng([seed, depth, r]),
                scaling=scaling, feed_forward=feed_forward),
                dtype=np.float64) for r in range(realizations)])
            for depth in depths}                                           # (R, ..., d) each
    return np.array([math.sqrt(np.mean(np.sum((outs[a] - outs[b]) ** 2, axis=-1)))
                     for a, b in zip(depths[:-1], depths[1:])])
