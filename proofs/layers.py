"""Activations and LayerNorm: tanh/sigmoid identities, LayerNorm's invariances, and the
largest gap between GELU and its tanh approximation.

References
----------
Ba, Kiros & Hinton 2016, Layer Normalization, arXiv:1607.06450, §3 and §5.1
(invariance to re-scaling and re-centering of a single input).
seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): sigmoid, tanh ("resized version of sigmoid"),
and the LayerNorm formula x_hat = (x - mean) / stddev.
"""

from __future__ import annotations

import mpmath
import sympy as sp

from ._common import SEED
from .derivation import Derivation, given, prove_equal, prove_inequality
from .registry import derivation

__all__ = ["sigmoid", "layer_norm", "gelu_exact", "gelu_tanh", "gelu_tanh_extremum"]

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


def gelu_exact(x):
    """GELU ``x Phi(x) = x/2 (1 + erf(x / sqrt 2))``."""
    return x / 2 * (1 + sp.erf(x / sp.sqrt(2)))


def gelu_tanh(x):
    """The tanh approximation ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    c = sp.Rational(44715, 1000000)
    return x / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + c * x ** 3)))


#: No closed form exists for these (erf against tanh): go straight to the numeric check.
_NUMERIC_ONLY = ("cancel",)
#: Working precision (decimal digits) of the stationary point and the maximum.
_GELU_DPS = 50


def gelu_tanh_extremum() -> tuple[sp.Float, sp.Float]:
    """``(x*, d(x*))``: where ``d = gelu - gelu_tanh`` is largest in magnitude, at 50 digits.

    ``x*`` is the root of ``d'`` near 2.7 (mpmath ``findroot`` on the exact
    derivative); by symmetry ``-x*`` gives the same value.
    """
    x = sp.Symbol("x", real=True)
    d = gelu_exact(x) - gelu_tanh(x)
    slope = sp.lambdify(x, sp.diff(d, x), "mpmath")
    with mpmath.workdps(_GELU_DPS):
        root = mpmath.findroot(slope, mpmath.mpf("2.7"))
        x_star = sp.Float(mpmath.nstr(root, _GELU_DPS), _GELU_DPS)
    return x_star, sp.Float(d.subs(x, x_star).evalf(_GELU_DPS), 30)


@derivation("layers.gelu_tanh_gap", claims=("layers.gated_ffn_definition",))
def gelu_tanh_gap() -> Derivation:
    """The exact GELU and its tanh approximation differ by at most 4.7324e-4, at |x| = 2.69894.

    No published source states this bound: Hendrycks & Gimpel give the
    approximation (§2) without its error. Derived here: d = GELU - GELU_tanh is
    even, its stationary point x* (root of d', found by mpmath at 50 digits)
    gives d(x*) = -4.73235520687284877e-4, |d| stays below |d(x*)| on a sweep
    of [0, 10], and beyond 10 both forms equal x to within 1e-20.

    References
    ----------
    Hendrycks & Gimpel 2016, Gaussian Error Linear Units (GELUs), §2 (GELU(x) =
    x Phi(x) and the tanh approximation with 0.044715).
    """
    x = sp.Symbol("x", real=True)
    d = gelu_exact(x) - gelu_tanh(x)
    x_star, peak = gelu_tanh_extremum()
    bound = sp.Abs(peak) * (1 + sp.Float("1e-12"))
    steps = [
        given(sp.Symbol(r"d(x)"), sp.Symbol(r"\mathrm{GELU}(x)-\mathrm{GELU}_{\tanh}(x)"),
              justification="GELU(x) = x Phi(x); the tanh form of Hendrycks & Gimpel §2"),
        prove_equal(gelu_exact(x) - gelu_exact(-x), x,
                    justification="GELU(x) - GELU(-x) = x (erf is odd)", routes=("simplify",)),
        prove_equal(gelu_tanh(x) - gelu_tanh(-x), x,
                    justification="the same for the tanh form (tanh is odd): so d(-x) = d(x)",
                    routes=("simplify",)),
        prove_inequality(sp.Abs(sp.diff(d, x).subs(x, x_star)), sp.Float("1e-40"),
                         justification=f"x* = {sp.Float(x_star, 20)} is a stationary point of d "
                                       f"(mpmath findroot at {_GELU_DPS} digits)",
                         numeric=True, dps=_GELU_DPS + 20),
        prove_inequality(sp.Abs(d), bound, symbols_domain={"x": (0.0, 10.0)}, n_points=400,
                         routes=_NUMERIC_ONLY,
                         justification="|d| <= |d(x*)| on a seeded sweep of [0, 10] (the other "
                                       "stationary point, x = 1.3645, gives 2.34e-4)"),
        prove_inequality(sp.Abs(d), sp.Float("1e-20"), symbols_domain={"x": (10.0, 100.0)},
                         routes=_NUMERIC_ONLY,
                         justification="beyond 10 both forms equal x to within 1e-20 "
                                       "(1 - Phi(10) < 1e-23, 1 - tanh(24.6) < 1e-21)"),
    ]
    result = prove_equal(d.subs(x, x_star), peak,
                         justification="the largest difference: d(x*) = d(-x*) = -4.7324e-4",
                         dps=_GELU_DPS, routes=_NUMERIC_ONLY)
    return Derivation(
        id="layers.gelu_tanh_gap",
        title="max |GELU(x) - GELU_tanh(x)| = 4.7324e-4, at |x| = 2.69894",
        assumptions={"x": "real"},
        sources=("Hendrycks & Gimpel 2016, Gaussian Error Linear Units (GELUs), §2 "
                 "(the two forms; the bound is derived here, no published source)",),
        steps=steps, result=result)
