"""Residual networks as forward-Euler discretisations of an ODE.

References
----------
He et al. 2016, Deep Residual Learning for Image Recognition, CVPR (x_{l+1} = x_l + F(x_l)).
Chen et al. 2018, Neural Ordinary Differential Equations, NeurIPS, §1-2 (a residual stack is an
Euler discretisation of dx/dt = f(x, t)).
seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): residual connection X + f(X) as a dynamical
system, dx/dt = F(t), "neural ODEs".
"""

from __future__ import annotations

import sympy as sp

from ._common import SEED
from .derivation import Derivation, prove_equal
from .registry import derivation

__all__ = ["residual_stack"]

CHEN = "Chen et al. 2018, Neural Ordinary Differential Equations, NeurIPS, §2"
HE = "He et al. 2016, Deep Residual Learning for Image Recognition, CVPR"


def residual_stack(a, T, L):
    """Gain of ``L`` residual blocks ``x -> x + (T/L) a x``: ``(1 + a T / L)^L``."""
    return (1 + a * T / L) ** L


@derivation("ode.residual_euler", claims=("ode.residual_euler_convergence",))
def residual_euler() -> Derivation:
    """For dx/dt = a x: (1 + aT/L)^L -> e^{aT}, with error a^2 T^2 e^{aT} / (2L) + O(1/L^2).

    References
    ----------
    Chen et al. 2018, Neural Ordinary Differential Equations, NeurIPS, §2.
    He et al. 2016, Deep Residual Learning for Image Recognition, CVPR.
    seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt).
    """
    a = sp.Symbol("a", real=True)
    T, L, x0 = sp.symbols("T L x_0", positive=True)
    t, eps = sp.symbols("t epsilon", positive=True)
    ell = sp.Symbol("l", integer=True, nonnegative=True)
    xs = sp.Function("x")
    step = 1 + a * T / L
    euler = sp.rsolve(xs(ell + 1) - step * xs(ell), xs(ell), {xs(0): x0})
    stack = residual_stack(a, T, L)
    error_series = sp.series(sp.exp(sp.log(1 + a * T * eps) / eps), eps, 0, 2).removeO()
    steps = [
        prove_equal(sp.diff(x0 * sp.exp(a * t), t), a * x0 * sp.exp(a * t),
                    justification="x(t) = x_0 e^{a t} solves dx/dt = a x; at t = T the gain is e^{aT}"),
        prove_equal(euler, x0 * step ** ell,
                    justification="L residual blocks x_{l+1} = x_l + (T/L) a x_l (Euler, step T/L): "
                                  "x_l = (1 + aT/L)^l x_0", routes=("powsimp", "simplify")),
        prove_equal(sp.Limit(stack, L, sp.oo), sp.exp(a * T),
                    justification="as the depth L -> oo the stack converges to the flow e^{aT}"),
        prove_equal(error_series, sp.exp(a * T) * (1 - a ** 2 * T ** 2 * eps / 2),
                    justification="series in eps = 1/L: (1 + aT eps)^{1/eps} = e^{aT}(1 - a^2 T^2 eps/2) "
                                  "+ O(eps^2)", routes=("expand",)),
    ]
    result = prove_equal(sp.Limit(L * (sp.exp(a * T) - stack), L, sp.oo),
                         a ** 2 * T ** 2 * sp.exp(a * T) / 2,
                         justification="error e^{aT} - (1 + aT/L)^L ~ a^2 T^2 e^{aT} / (2L)")
    return Derivation(
        id="ode.residual_euler",
        title="Residual stacks are Euler steps: (1 + aT/L)^L -> e^{aT}, error ~ a^2 T^2 e^{aT}/(2L)",
        assumptions={"a": "real rate", "T": "positive horizon", "L": "depth (number of blocks), positive",
                     "x_0": "positive initial state", "t": "time, positive", "epsilon": "1/L, positive",
                     "l": "block index, nonnegative integer"},
        sources=(CHEN, HE, SEED[2]),
        steps=steps, result=result)
