"""Activations and LayerNorm: tanh/sigmoid identities and LayerNorm's invariances.

References
----------
Ba, Kiros & Hinton 2016, Layer Normalization, arXiv:1607.06450, §3 and §5.1
(invariance to re-scaling and re-centering of a single input).
seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): sigmoid, tanh ("resized version of sigmoid"),
and the LayerNorm formula x_hat = (x - mean) / stddev.
"""

from __future__ import annotations

import sympy as sp

from ._common import SEED
from .derivation import Derivation, given, prove_equal, prove_inequality
from .registry import derivation

__all__ = ["sigmoid", "layer_norm"]

BA = "Ba, Kiros & Hinton 2016, Layer Normalization, arXiv:1607.06450"


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``."""
    return 1 / (1 + sp.exp(-x))


def layer_norm(x: sp.Matrix) -> sp.Matrix:
    """LayerNorm without gain/bias and with eps = 0: ``(x - mean) / sqrt(mean((x - mean)^2))``."""
    n = x.shape[0]
    mu = sum(x) / n
    centred = x - mu * sp.ones(n, 1)
    var = sum(c ** 2 for c in centred) / n
    return centred / sp.sqrt(var)


@derivation("layers.tanh_sigmoid", claims=("layers.tanh_sigmoid",))
def tanh_sigmoid() -> Derivation:
    """tanh(x) = 2 sigma(2x) - 1 and sigma' = sigma (1 - sigma).

    References
    ----------
    seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): sigmoid and tanh = (e^x - e^-x)/(e^x + e^-x),
    "a resized version of sigmoid".
    """
    x = sp.Symbol("x", real=True)
    steps = [
        prove_equal((sp.exp(x) - sp.exp(-x)) / (sp.exp(x) + sp.exp(-x)), sp.tanh(x),
                    justification="seed 002's formula is tanh", routes=("rewrite_exp",)),
        prove_equal(sigmoid(-x), 1 - sigmoid(x), justification="symmetry sigma(-x) = 1 - sigma(x)",
                    routes=("cancel", "simplify")),
        prove_equal(sp.diff(sigmoid(x), x), sigmoid(x) * (1 - sigmoid(x)),
                    justification="derivative of the logistic function", routes=("cancel", "simplify")),
        prove_equal(sp.diff(sp.tanh(x), x), 1 - sp.tanh(x) ** 2,
                    justification="derivative of tanh, consistent with tanh' = 4 sigma'(2x)",
                    routes=("simplify",)),
    ]
    result = prove_equal(sp.tanh(x), 2 * sigmoid(2 * x) - 1,
                         justification="tanh is the sigmoid rescaled: tanh(x) = 2 sigma(2x) - 1",
                         routes=("rewrite_exp",))
    return Derivation(
        id="layers.tanh_sigmoid",
        title="tanh(x) = 2 sigma(2x) - 1 and sigma' = sigma (1 - sigma)",
        assumptions={"x": "real"},
        sources=(SEED[2],),
        steps=steps, result=result)


@derivation("layers.layernorm_invariance", claims=("normalization.layernorm_invariances",))
def layernorm_invariance() -> Derivation:
    """LayerNorm (eps = 0) is invariant to x -> a x + b 1 (a > 0), not to per-coordinate scaling (n = 3).

    References
    ----------
    Ba, Kiros & Hinton 2016, Layer Normalization, arXiv:1607.06450, §3 (definition) and §5.1
    (invariance to re-scaling and re-centering of a single case).
    seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): x_hat = (x - mean) / stddev.
    """
    n = 3
    x = sp.Matrix(sp.symbols("x1:4", real=True))
    a = sp.Symbol("a", positive=True)
    b = sp.Symbol("b", real=True)
    ones = sp.ones(n, 1)
    y = a * x + b * ones
    mu = lambda v: sum(v) / n                                     # noqa: E731
    var = lambda v: sum((c - mu(v)) ** 2 for c in v) / n          # noqa: E731
    x0 = sp.Matrix([1, 2, 3])
    Dmat = sp.diag(1, 1, 2)                                       # rescale the last coordinate
    ln_x0 = sp.Matrix([-sp.sqrt(sp.Rational(3, 2)), 0, sp.sqrt(sp.Rational(3, 2))])
    ln_dx0 = sp.Matrix([-2, -1, 3]) * sp.sqrt(sp.Rational(3, 14))
    # x1, x2, x3 not all equal (variance > 0): sample away from the diagonal
    domain = {"x1": (-2.0, -1.0), "x2": (-0.5, 0.5), "x3": (1.0, 2.0)}
    steps = [
        given(sp.Symbol(r"\mathrm{LN}(x)"), sp.Symbol(r"(x - \mu(x) 1) / \sigma(x)"),
              justification="LayerNorm with eps = 0 and no gain/bias; requires sigma(x) > 0"),
        prove_equal(mu(y), a * mu(x) + b, justification="the mean is affine: mu(a x + b 1) = a mu + b"),
        prove_equal(y - mu(y) * ones, a * (x - mu(x) * ones),
                    justification="centring removes b", routes=("expand",)),
        prove_equal(var(y), a ** 2 * var(x), justification="the variance scales by a^2",
                    routes=("expand",)),
        prove_equal(sp.sqrt(a ** 2 * var(x)), a * sp.sqrt(var(x)),
                    justification="sigma(a x + b 1) = a sigma(x) because a > 0"),
        prove_equal(sp.ones(1, n) * layer_norm(x), sp.Matrix([[0]]),
                    justification="LN(x) has mean 0", routes=("cancel",), symbols_domain=domain),
        prove_equal(sp.Matrix([[sum(c ** 2 for c in layer_norm(x)) / n]]), sp.Matrix([[1]]),
                    justification="... and (population) variance 1", routes=("cancel", "simplify"),
                    symbols_domain=domain),
        prove_equal(layer_norm(x0), ln_x0, justification="counterexample: LN((1, 2, 3))",
                    routes=("simplify",)),
        prove_equal(layer_norm(Dmat * x0), ln_dx0,
                    justification="LN(D x) with D = diag(1, 1, 2): LN((1, 2, 6))", routes=("simplify",)),
        prove_inequality(sp.Abs(ln_dx0[0] - ln_x0[0]), 0, relation=">",
                         justification="the first coordinates differ: LN is not invariant to "
                                       "per-coordinate rescaling"),
    ]
    result = prove_equal(layer_norm(y), layer_norm(x),
                         justification="LN(a x + b 1) = LN(x) for a > 0 (n = 3)",
                         routes=("simplify",), symbols_domain=domain)
    return Derivation(
        id="layers.layernorm_invariance",
        title="LayerNorm is invariant to x -> a x + b 1 (a > 0) but not to per-coordinate rescaling",
        assumptions={"x1, x2, x3": "real, not all equal (sigma(x) > 0)", "a": "positive scale",
                     "b": "real shift"},
        sources=(f"{BA}, §3", f"{BA}, §5.1", SEED[2]),
        steps=steps, result=result)
