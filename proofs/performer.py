"""Random-feature estimators of the softmax kernel (Performer / FAVOR+), derived with sympy.

The softmax kernel is ``SM(x, y) = exp(x^T y)``.  Every estimator here is an
average over ``m`` random features ``w_i ~ N(0, I_d)``; everything follows from
the one-dimensional Gaussian integrals ``E exp(r g)``, ``E cos(r g)``,
``E cosh(r g)`` for ``g ~ N(0, 1)``, which sympy evaluates, and from the fact
(derivation ``performer.gaussian_mgf``) that ``w^T u`` has the law of
``||u|| g``.  Vectors are written out in ``d = 3`` coordinates wherever a norm
identity is used, so that sympy checks the polarisation algebra too.

Notation: ``s = ||x + y||^2``, ``t = ||x - y||^2``,
``Lambda = exp(-(||x||^2 + ||y||^2) / 2)``, so ``SM = Lambda exp(s/2)``.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, §2.3
(Lemma 1 and the hyperbolic variant) and §3 (Lemma 2, Theorem 2).
Rahimi & Recht 2007, Random Features for Large-Scale Kernel Machines, NeurIPS.
seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): trigonometric and positive
features, the trigonometric MSE formula and the two regimes.
"""

from __future__ import annotations

import sympy as sp

from ._common import (PERFORMER, SEED, dot, gaussian_expectation, mean_of_m_variance, norm2,
                      std_normal_pdf, vec)
from .derivation import Derivation, given, prove_equal, prove_inequality
from .registry import derivation

__all__ = [
    "softmax_kernel", "lambda_factor", "positive_mse_formula", "trig_mse_formula",
    "hyperbolic_mse_formula", "orthogonal_pair_moment", "orthogonal_bound_rhs",
]

# --------------------------------------------------------------------------
# Symbols (d = 3 coordinates where vectors are written out)
# --------------------------------------------------------------------------

X = vec("x", 3, real=True)              # query-side input
Y = vec("y", 3, real=True)              # key-side input
W = vec("w", 3, real=True)              # one random feature w ~ N(0, I_3)
g = sp.Symbol("g", real=True)           # standard normal variable
r = sp.Symbol("r", nonnegative=True)    # a norm ||u||
s = sp.Symbol("s", nonnegative=True)    # ||x + y||^2
t = sp.Symbol("t", nonnegative=True)    # ||x - y||^2
m = sp.Symbol("m", positive=True, integer=True)   # number of random features
d = sp.Symbol("d", positive=True, integer=True)   # input dimension
Lam = sp.Symbol("Lambda", positive=True)          # exp(-(||x||^2 + ||y||^2)/2)
k = sp.Symbol("k", integer=True, nonnegative=True)  # series index
xi = sp.Symbol("xi", nonnegative=True)            # s / 2

_ASSUME_XY = {
    "x1, x2, x3, y1, y2, y3": "real coordinates of x, y in R^3 (norm identities in d = 3)",
    "m": "number of random features, positive integer",
    "g": "standard normal variable, real",
    "r": "a norm ||u||, nonnegative",
}


# --------------------------------------------------------------------------
# Closed forms (public: the claims and tests compare against them)
# --------------------------------------------------------------------------

def softmax_kernel(x, y):
    """``SM(x, y) = exp(x^T y)`` (seed 002)."""
    return sp.exp(dot(x, y))


def lambda_factor(x, y):
    """``Lambda(x, y) = exp(-(||x||^2 + ||y||^2) / 2)`` (Choromanski et al. 2021, Lemma 1)."""
    return sp.exp(-(norm2(x) + norm2(y)) / 2)


def positive_mse_formula(x, y, m):
    """Lemma 2: ``MSE(SM^+_m) = (1/m) exp(||x+y||^2) SM^2 (1 - exp(-||x+y||^2))``."""
    z2 = norm2(x + y)
    return sp.exp(z2) * softmax_kernel(x, y) ** 2 * (1 - sp.exp(-z2)) / m


def trig_mse_formula(x, y, m, coefficient=sp.Rational(1, 2)):
    """Lemma 2 / seed 002: ``MSE(SM^trig_m) = (c/m) exp(||x+y||^2) SM^-2 (1 - exp(-||x-y||^2))^2``.

    ``coefficient`` is ``c = 1/2`` in the paper; other values exist so tests can
    check that a wrong constant is rejected.
    """
    return (coefficient / m * sp.exp(norm2(x + y)) * softmax_kernel(x, y) ** -2
            * (1 - sp.exp(-norm2(x - y))) ** 2)


def hyperbolic_mse_formula(x, y, m):
    """``MSE(SM^hyp+_m) = (1/2) (1 - exp(-||x+y||^2)) MSE(SM^+_m)`` (Choromanski et al. 2021, §3, Lemma 2)."""
    return (1 - sp.exp(-norm2(x + y))) / 2 * positive_mse_formula(x, y, m)


def orthogonal_pair_moment(s_, d_):
    """``E[exp(w1^T z) exp(w2^T z)] = 1F1(d; d/2; s/2)`` for orthogonal ``w1, w2``, ``s = ||z||^2``."""
    return sp.hyper([d_], [d_ / 2], s_ / 2)


def orthogonal_bound_rhs(mse_plus, sm, lam, m_, d_, *, version="final"):
    """Right-hand side of Theorem 2's bound on ``MSE(SM^ort+_m)``.

    ``version="final"``: ``MSE+ - (1 - 1/m) 2/(d+2) (SM - Lambda)^2`` (ICLR 2021);
    ``version="review"``: ``MSE+ - (1 - 1/m) 2/(d+2) SM^2`` (the earlier statement,
    false at ``x = -y``; see ``performer.orthogonal_bound_review_version``).
    """
    if version == "final":
        return mse_plus - (1 - 1 / m_) * 2 / (d_ + 2) * (sm - lam) ** 2
    if version == "review":
        return mse_plus - (1 - 1 / m_) * 2 / (d_ + 2) * sm ** 2
    raise ValueError(f"version: expected 'final' or 'review', got {version!r}")


def _gauss(f):
    """``E_{g ~ N(0,1)} f(g)`` as an unevaluated integral."""
    return gaussian_expectation(f, g)


_LAW = ("w^T u has the law of ||u|| g with g ~ N(0,1) (equal MGFs, performer.gaussian_mgf), "
        "so E f(w^T u) = E f(r g) with r = ||u||")


# --------------------------------------------------------------------------
# 1. Gaussian MGF
# --------------------------------------------------------------------------

def _product_of_exp_route(e):
    """Sound rewrite for finite products: prod_i exp(a_i) = exp(sum_i a_i); then simplify."""
    e = e.replace(lambda q: isinstance(q, sp.Product),
                  lambda q: sp.Product(sp.simplify(q.function.doit()), *q.limits))
    e = e.replace(lambda q: isinstance(q, sp.Product) and isinstance(q.function, sp.exp),
                  lambda q: sp.exp(sp.Sum(q.function.args[0], *q.limits)))
    return sp.simplify(e)


@derivation("performer.gaussian_mgf", claims=("performer.unbiased",))
def gaussian_mgf() -> Derivation:
    """E[exp(w^T z)] = exp(||z||^2 / 2) for w ~ N(0, I_d): 1-d integral, d = 3, general d.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, Lemma 1
    (the Gaussian identity behind positive random features).
    seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): SM as a Gaussian expectation.
    """
    z = sp.Symbol("z", real=True)
    Z = vec("z", 3, real=True)
    tau = sp.Symbol("tau", real=True)
    S = sp.Symbol("S_d", nonnegative=True)
    z_next = sp.Symbol("z_{d+1}", real=True)
    i = sp.Symbol("i", integer=True, positive=True)
    zi = sp.IndexedBase("z", real=True)
    density3 = sp.exp(-norm2(W) / 2) / (2 * sp.pi) ** sp.Rational(3, 2)
    steps = [
        given(sp.Function("p")(g), std_normal_pdf(g),
              justification="density of the standard normal N(0, 1)"),
        prove_equal(sp.Integral(std_normal_pdf(g), (g, -sp.oo, sp.oo)), 1,
                    justification="the density integrates to one"),
        prove_equal(_gauss(sp.exp(g * z)), sp.exp(z ** 2 / 2),
                    justification="one-dimensional MGF: complete the square in the exponent",
                    routes=("simplify",)),
        prove_equal(density3, std_normal_pdf(W[0]) * std_normal_pdf(W[1]) * std_normal_pdf(W[2]),
                    justification="N(0, I_3) has independent coordinates: its density factorises"),
        prove_equal(sp.Integral(sp.exp(dot(W, Z)) * density3, *[(wi, -sp.oo, sp.oo) for wi in W]),
                    sp.exp(norm2(Z) / 2),
                    justification="d = 3: the triple integral factorises into three 1-d MGFs",
                    routes=("simplify", "powsimp")),
        prove_equal(sp.exp(S / 2) * sp.exp(z_next ** 2 / 2), sp.exp((S + z_next ** 2) / 2),
                    justification="induction on d: E_{d+1} = E_d * E_1 by independence, with "
                                  "S_d = z_1^2 + ... + z_d^2",
                    routes=("powsimp",)),
        prove_equal(sp.exp(tau ** 2 * r ** 2 / 2), _gauss(sp.exp(tau * r * g)),
                    justification="the MGF tau -> E exp(tau w^T u) = exp(tau^2 ||u||^2/2) is that of "
                                  "r g, r = ||u||: hence w^T u has the law of ||u|| g",
                    routes=("simplify",)),
    ]
    result = prove_equal(
        sp.Product(_gauss(sp.exp(g * zi[i])), (i, 1, d)),
        sp.exp(sp.Sum(zi[i] ** 2, (i, 1, d)) / 2),
        justification="general d: E exp(w^T z) = prod_i E exp(w_i z_i) (independence) "
                      "= prod_i exp(z_i^2/2) = exp(||z||^2/2)",
        routes=(_product_of_exp_route,), numeric=False)
    return Derivation(
        id="performer.gaussian_mgf",
        title="Gaussian moment generating function E exp(w^T z) = exp(||z||^2/2)",
        assumptions={"z, z1, z2, z3, z_i": "real", "d": "dimension, positive integer",
                     "g, w1, w2, w3": "integration variables (standard normal)", "r": "nonnegative",
                     "tau": "real MGF argument", "S_d": "nonnegative partial sum of squares"},
        sources=(f"{PERFORMER}, Lemma 1", SEED[2]),
        steps=steps, result=result)


# --------------------------------------------------------------------------
# 2. Positive random features: unbiased, MSE (Lemma 2)
# --------------------------------------------------------------------------

def _positive_steps():
    z = X + Y
    lam = lambda_factor(X, Y)
    V = sp.Symbol("V", nonnegative=True)
    return [
        given(sp.Symbol(r"\widehat{SM}^{+}_m"),
              sp.Symbol(r"\frac{1}{m}\sum_{i=1}^m \exp(w_i^T x - \|x\|^2/2)\exp(w_i^T y - \|y\|^2/2)"),
              justification="positive random features phi+(x) = exp(-||x||^2/2) (exp(w_i^T x))_i / "
                            "sqrt(m), w_i i.i.d. N(0, I_d) (seed 002)"),
        prove_equal(sp.exp(dot(W, X) - norm2(X) / 2) * sp.exp(dot(W, Y) - norm2(Y) / 2),
                    lam * sp.exp(dot(W, z)),
                    justification="one feature's product is Lambda exp(w^T z) with z = x + y",
                    routes=("powsimp", "expand")),
        prove_equal(_gauss(sp.exp(r * g)), sp.exp(r ** 2 / 2),
                    justification="first moment: " + _LAW, routes=("simplify",)),
        prove_equal(lam * sp.exp(norm2(z) / 2), softmax_kernel(X, Y),
                    justification="unbiased: Lambda exp(||x+y||^2/2) = exp(x^T y) by polarisation",
                    routes=("powsimp", "expand")),
        prove_equal(_gauss(sp.exp(2 * r * g)), sp.exp(2 * r ** 2),
                    justification="second moment: E exp(2 w^T z) = exp(2 ||z||^2)",
                    routes=("simplify",)),
        prove_equal(lam ** 2 * sp.exp(2 * norm2(z)) - softmax_kernel(X, Y) ** 2,
                    lam ** 2 * (sp.exp(2 * norm2(z)) - sp.exp(norm2(z))),
                    justification="Var of one feature = E[Y^2] - SM^2 = Lambda^2 (e^{2s} - e^{s})",
                    routes=("powsimp", "expand")),
        prove_equal(mean_of_m_variance(V, 0, m), V / m,
                    justification="MSE of an unbiased mean of m i.i.d. terms is Var / m"),
    ]


@derivation("performer.positive_mse", claims=("performer.unbiased", "performer.mse_lemma2"))
def positive_mse() -> Derivation:
    """Positive random features are unbiased with Lemma 2's MSE.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, Lemma 1 and Lemma 2.
    seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): SM as E[exp(w^T x - ||x||^2/2) exp(w^T y - ||y||^2/2)].
    """
    z = X + Y
    lam = lambda_factor(X, Y)
    derived = lam ** 2 * (sp.exp(2 * norm2(z)) - sp.exp(norm2(z))) / m
    result = prove_equal(derived, positive_mse_formula(X, Y, m),
                         justification="Lemma 2: MSE+ = (1/m) exp(||x+y||^2) SM^2 (1 - exp(-||x+y||^2))",
                         routes=("powsimp", "expand"))
    return Derivation(
        id="performer.positive_mse",
        title="Positive random features: unbiased, MSE = (1/m) e^{||x+y||^2} SM^2 (1 - e^{-||x+y||^2})",
        assumptions=dict(_ASSUME_XY, **{"V": "variance, nonnegative",
                                        "w1, w2, w3": "one random feature, real"}),
        sources=(f"{PERFORMER}, Lemma 1", f"{PERFORMER}, Lemma 2", SEED[2]),
        steps=_positive_steps(), result=result)


# --------------------------------------------------------------------------
# 3. Trigonometric random features (Lemma 2, seed 002)
# --------------------------------------------------------------------------

def _trig_derived_mse():
    """exp(||x||^2 + ||y||^2) Var(cos(w^T (x - y))) / m, the MSE as derived."""
    return sp.exp(norm2(X) + norm2(Y)) * (1 - sp.exp(-norm2(X - Y))) ** 2 / (2 * m)


@derivation("performer.trig_mse", claims=("performer.unbiased", "performer.mse_lemma2"))
def trig_mse() -> Derivation:
    """Trigonometric features: E cos(w^T D) = exp(-||D||^2/2), Var = (1 - exp(-||D||^2))^2 / 2, MSE.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, Lemma 2.
    Rahimi & Recht 2007, Random Features for Large-Scale Kernel Machines, NeurIPS.
    seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): the feature map and the MSE formula.
    """
    a, b = sp.symbols("a b", real=True)
    D = X - Y
    V = sp.Symbol("V", nonnegative=True)
    steps = [
        given(sp.Symbol(r"\phi^{trig}(x)"),
              sp.Symbol(r"e^{\|x\|^2/2} m^{-1/2} (\cos w_i^T x, \sin w_i^T x)_{i \le m}"),
              justification="trigonometric features of seed 002, w_i i.i.d. N(0, I_d)"),
        prove_equal(sp.cos(a) * sp.cos(b) + sp.sin(a) * sp.sin(b), sp.cos(a - b),
                    justification="phi(x)^T phi(y) = e^{(||x||^2+||y||^2)/2} (1/m) sum_i cos(w_i^T (x - y))",
                    routes=("trigsimp",)),
        prove_equal(_gauss(sp.cos(r * g)), sp.exp(-r ** 2 / 2),
                    justification="E cos(w^T D) = exp(-||D||^2/2): " + _LAW, routes=("simplify",)),
        prove_equal(sp.exp((norm2(X) + norm2(Y)) / 2) * sp.exp(-norm2(D) / 2), softmax_kernel(X, Y),
                    justification="unbiased: e^{(||x||^2+||y||^2)/2} e^{-||x-y||^2/2} = e^{x^T y}",
                    routes=("powsimp", "expand")),
        prove_equal(_gauss(sp.cos(r * g) ** 2), (1 + sp.exp(-2 * r ** 2)) / 2,
                    justification="second moment E cos^2(w^T D) = (1 + exp(-2||D||^2))/2",
                    routes=("simplify",)),
        prove_equal((1 + sp.exp(-2 * t)) / 2 - sp.exp(-t), (1 - sp.exp(-t)) ** 2 / 2,
                    justification="Var cos(w^T D) = (1 - exp(-||D||^2))^2 / 2, t = ||D||^2",
                    routes=("expand",)),
        prove_equal(mean_of_m_variance(V, 0, m), V / m,
                    justification="MSE of an unbiased mean of m i.i.d. terms is Var / m"),
        prove_equal(_trig_derived_mse(),
                    sp.exp(norm2(X) + norm2(Y)) * ((1 + sp.exp(-2 * norm2(D))) / 2
                                                   - sp.exp(-norm2(D))) / m,
                    justification="MSE = e^{||x||^2+||y||^2} Var / m", routes=("expand",)),
    ]
    result = prove_equal(_trig_derived_mse(), trig_mse_formula(X, Y, m),
                         justification="seed 002 / Lemma 2: (1/2m) exp(||x+y||^2) SM^{-2} "
                                       "(1 - exp(-||x-y||^2))^2",
                         routes=("powsimp", "expand"))
    return Derivation(
        id="performer.trig_mse",
        title="Trigonometric random features: E cos(w^T D) = e^{-||D||^2/2} and Lemma 2's MSE",
        assumptions=dict(_ASSUME_XY, **{"a, b": "real angles", "t": "||x - y||^2, nonnegative",
                                        "V": "variance, nonnegative"}),
        sources=(f"{PERFORMER}, Lemma 2", SEED[2],
                 "Rahimi & Recht 2007, Random Features for Large-Scale Kernel Machines, NeurIPS"),
        steps=steps, result=result)


# --------------------------------------------------------------------------
# 4. Hyperbolic features
# --------------------------------------------------------------------------

def _hyp_derived_mse():
    return lambda_factor(X, Y) ** 2 * (sp.exp(norm2(X + Y)) - 1) ** 2 / (2 * m)


@derivation("performer.hyperbolic_mse", claims=("performer.hyperbolic_beats_positive",))
def hyperbolic_mse() -> Derivation:
    """Hyperbolic positive features: MSE_hyp = (1/2)(1 - exp(-||x+y||^2)) MSE+.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, Lemma 1
    (§2.3, the cosh representation) and Lemma 2 (§3, the MSE of the hyperbolic variant).
    """
    a = sp.Symbol("a", real=True)
    z = X + Y
    lam = lambda_factor(X, Y)
    steps = [
        given(sp.Symbol(r"\phi^{hyp+}(x)"),
              sp.Symbol(r"e^{-\|x\|^2/2} (2m)^{-1/2} (e^{w_i^T x}, e^{-w_i^T x})_{i \le m}"),
              justification="hyperbolic positive features: m Gaussian w_i, 2m positive entries"),
        prove_equal((sp.exp(a) + sp.exp(-a)) / 2, sp.cosh(a),
                    justification="phi(x)^T phi(y) = Lambda (1/m) sum_i cosh(w_i^T z), z = x + y",
                    routes=("rewrite_exp",)),
        prove_equal(_gauss(sp.cosh(r * g)), sp.exp(r ** 2 / 2),
                    justification="unbiased: E cosh(w^T z) = exp(||z||^2/2), same mean as e^{w^T z}",
                    routes=("simplify",)),
        prove_equal(_gauss(sp.cosh(r * g) ** 2), (1 + sp.exp(2 * r ** 2)) / 2,
                    justification="second moment E cosh^2(w^T z) = (1 + exp(2||z||^2))/2",
                    routes=("simplify",)),
        prove_equal((1 + sp.exp(2 * s)) / 2 - sp.exp(s), (sp.exp(s) - 1) ** 2 / 2,
                    justification="Var cosh(w^T z) = (e^s - 1)^2 / 2, s = ||z||^2",
                    routes=("expand",)),
        prove_equal(_hyp_derived_mse(), lam ** 2 * ((1 + sp.exp(2 * norm2(z))) / 2
                                                    - sp.exp(norm2(z))) / m,
                    justification="MSE_hyp = Lambda^2 Var / m (i.i.d. w_i)", routes=("expand",)),
        prove_equal(positive_mse_formula(X, Y, m),
                    lam ** 2 * (sp.exp(2 * norm2(z)) - sp.exp(norm2(z))) / m,
                    justification="MSE+ = Lambda^2 (e^{2s} - e^{s}) / m with s = ||x+y||^2 "
                                  "(performer.positive_mse)",
                    routes=("powsimp", "expand")),
        prove_inequality((1 - sp.exp(-s)) / 2 * Lam ** 2 * (sp.exp(2 * s) - sp.exp(s)) / m,
                         Lam ** 2 * (sp.exp(2 * s) - sp.exp(s)) / (2 * m),
                         justification="since 1 - e^{-s} <= 1 for s >= 0: MSE_hyp <= MSE+/2 <= MSE+",
                         relation="<="),
    ]
    result = prove_equal(_hyp_derived_mse(), hyperbolic_mse_formula(X, Y, m),
                         justification="MSE_hyp = (1/2)(1 - exp(-||x+y||^2)) MSE+",
                         routes=("powsimp", "expand"))
    return Derivation(
        id="performer.hyperbolic_mse",
        title="Hyperbolic features: MSE_hyp = (1/2)(1 - e^{-||x+y||^2}) MSE+",
        assumptions=dict(_ASSUME_XY, **{"a": "real", "s": "||x + y||^2, nonnegative"}),
        sources=(f"{PERFORMER}, §2.3, Lemma 1", f"{PERFORMER}, §3, Lemma 2"),
        steps=steps, result=result)


# --------------------------------------------------------------------------
# 5. Relative MSEs
# --------------------------------------------------------------------------

@derivation("performer.relative_mse", claims=("performer.mse_lemma2",
                                              "performer.hyperbolic_beats_positive"))
def relative_mse() -> Derivation:
    """MSE / SM^2: trig (2/m) sinh^2(t/2), positive (e^s - 1)/m, hyperbolic (2/m) sinh^2(s/2).

    Here ``s = ||x + y||^2`` and ``t = ||x - y||^2``.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, Lemma 2 (§3) and §2.3.
    seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt).
    """
    SM = softmax_kernel(X, Y)
    s_xy, t_xy = norm2(X + Y), norm2(X - Y)
    steps = [
        prove_equal(lambda_factor(X, Y) ** -2 * SM ** -2, sp.exp(t_xy),
                    justification="exp(||x||^2 + ||y||^2) / SM^2 = exp(||x - y||^2) (polarisation)",
                    routes=("powsimp", "expand")),
        prove_equal(sp.exp(t) * (1 - sp.exp(-t)) ** 2 / (2 * m), 2 * sp.sinh(t / 2) ** 2 / m,
                    justification="e^t (1 - e^{-t})^2 = (e^{t/2} - e^{-t/2})^2 = 4 sinh^2(t/2)",
                    routes=("rewrite_exp",)),
        prove_equal(sp.exp(-s) * (sp.exp(s) - 1) ** 2 / (2 * m), 2 * sp.sinh(s / 2) ** 2 / m,
                    justification="(1/2)(1 - e^{-s})(e^s - 1) = 2 sinh^2(s/2)",
                    routes=("rewrite_exp",)),
        prove_inequality(2 * sp.sinh(s / 2) ** 2 / m, (sp.exp(s) - 1) / m,
                         justification="hyperbolic relative MSE <= positive relative MSE",
                         routes=("rewrite_exp", "factor")),
    ]
    lhs = sp.Matrix([trig_mse_formula(X, Y, m), positive_mse_formula(X, Y, m),
                     hyperbolic_mse_formula(X, Y, m)]) / SM ** 2
    rhs = sp.Matrix([2 * sp.sinh(t_xy / 2) ** 2 / m, (sp.exp(s_xy) - 1) / m,
                     2 * sp.sinh(s_xy / 2) ** 2 / m])
    result = prove_equal(lhs, rhs,
                         justification="relative MSEs (trig, positive, hyperbolic) divided by SM^2",
                         routes=("rewrite_exp",))
    return Derivation(
        id="performer.relative_mse",
        title="Relative MSEs: (2/m) sinh^2(||x-y||^2/2), (e^{||x+y||^2}-1)/m, (2/m) sinh^2(||x+y||^2/2)",
        assumptions=dict(_ASSUME_XY, **{"s": "||x + y||^2, nonnegative",
                                        "t": "||x - y||^2, nonnegative"}),
        sources=(f"{PERFORMER}, Lemma 2", f"{PERFORMER}, §2.3", SEED[2]),
        steps=steps, result=result)


# --------------------------------------------------------------------------
# 6. Regimes (seed 002)
# --------------------------------------------------------------------------

@derivation("performer.regimes", claims=("performer.regimes",))
def regimes() -> Derivation:
    """Trig MSE -> 0 as x -> y; positive MSE -> 0 as SM -> 0 along x = -r u, y = r u (+ v).

    References
    ----------
    seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): "trig becomes arbitrarily accurate
    as x -> y; positive ... as SM(x, y) -> 0".
    Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, Lemma 2 and the
    discussion after it.
    """
    eps = sp.Symbol("epsilon", positive=True)
    R = sp.Symbol("R", positive=True)           # path parameter r -> oo
    v2, v3 = sp.symbols("v2 v3", real=True)
    V = vec("v", 3, real=True)
    u = sp.Matrix([1, 0, 0])
    v_perp = sp.Matrix([0, v2, v3])             # v orthogonal to u
    x_a, y_a = -R * u, R * u                    # the path of seed 002
    x_b, y_b = -R * u, R * u + v_perp           # the same path, shifted off x = -y
    steps = [
        prove_equal(sp.Limit(trig_mse_formula(X, X + eps * V, m), eps, 0), 0,
                    justification="trig: y = x + eps v, eps -> 0: (1 - e^{-eps^2 ||v||^2})^2 -> 0",
                    routes=("simplify",)),
        prove_equal(sp.Limit(trig_mse_formula(X, X + eps * V, m) / eps ** 4, eps, 0),
                    norm2(V) ** 2 * sp.exp(2 * norm2(X)) / (2 * m),
                    justification="trig: the MSE vanishes like eps^4 ||v||^4 e^{2||x||^2} / (2m)",
                    routes=("simplify", "expand")),
        prove_equal(positive_mse_formula(x_a, y_a, m), 0,
                    justification="positive on x = -R u, y = R u: x + y = 0, so the MSE is 0 for all R"),
        prove_equal(sp.Limit(softmax_kernel(x_a, y_a), R, sp.oo), 0,
                    justification="... while SM(x, y) = exp(-R^2) -> 0"),
        prove_equal(sp.Limit(positive_mse_formula(x_b, y_b, m), R, sp.oo), 0,
                    justification="off the line (y = R u + v, v perpendicular to u): MSE+ = (1/m) e^{||v||^2}"
                                  "(1 - e^{-||v||^2}) SM^2 -> 0 with SM = e^{-R^2}",
                    routes=("simplify",)),
        prove_equal(sp.Limit(trig_mse_formula(x_a, y_a, m), R, sp.oo), sp.oo,
                    justification="contrast: trig MSE = (1/2m) e^{2R^2} (1 - e^{-4R^2})^2 -> oo there",
                    routes=("simplify",), numeric=False),
    ]
    result = prove_equal(
        sp.Matrix([sp.Limit(trig_mse_formula(X, X + eps * V, m), eps, 0),
                   sp.Limit(positive_mse_formula(x_b, y_b, m), R, sp.oo)]),
        sp.Matrix([0, 0]),
        justification="trig is exact as x -> y; positive is exact as SM -> 0 (x = -R u, y = R u + v)",
        routes=("simplify",))
    return Derivation(
        id="performer.regimes",
        title="Regimes of seed 002: trig MSE -> 0 as x -> y, positive MSE -> 0 as SM -> 0",
        assumptions=dict(_ASSUME_XY, **{"epsilon": "path parameter, positive, -> 0",
                                        "R": "path parameter, positive, -> oo",
                                        "v1, v2, v3": "real direction", "u": "unit vector e_1"}),
        sources=(SEED[2], f"{PERFORMER}, Lemma 2"),
        steps=steps, result=result)


# --------------------------------------------------------------------------
# 7. Orthogonal features: the pair moment
# --------------------------------------------------------------------------

def _chi2_pdf(nu, v):
    """Density of chi^2_nu at v > 0."""
    nu = sp.S(nu)
    return v ** (nu / 2 - 1) * sp.exp(-v / 2) / (2 ** (nu / 2) * sp.gamma(nu / 2))


def _pair_series_term():
    """k-th term: s^k E[R^{2k}] E[u_1^{2k}] / (2k)!, moments already substituted."""
    return s ** k * (2 ** k * sp.rf(d, k)) * (sp.rf(sp.Rational(1, 2), k) / sp.rf(d / 2, k)) \
        / sp.factorial(2 * k)


@derivation("performer.orthogonal_pair_moment", claims=("performer.orthogonal_mse_bound",))
def orthogonal_pair_moment_derivation() -> Derivation:
    """E[exp(w1^T z) exp(w2^T z)] = 1F1(d; d/2; s/2) for orthogonal w1, w2 with chi_d lengths.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, §2.4 (orthogonal
    random features) and the proof of Theorem 2 (§3).
    Yu et al. 2016, Orthogonal Random Features, NeurIPS (orthogonal Gaussian directions).
    """
    W1, W2 = vec("a", 3, real=True), vec("b", 3, real=True)
    v = sp.Symbol("v", positive=True)
    tau = sp.Symbol("tau", negative=True)
    gg = sp.Symbol("g", real=True)
    steps = [
        given(sp.Symbol(r"(w_1, w_2)"), sp.Symbol(r"(\rho_1 Q e_1, \rho_2 Q e_2)"),
              justification="orthogonal features: Q Haar-random orthogonal, rho_i ~ chi_d "
                            "independent, so each w_i ~ N(0, I_d) and w_1 perpendicular to w_2"),
        prove_equal(norm2(W1 + W2), norm2(W1) + norm2(W2) + 2 * dot(W1, W2),
                    justification="||w1 + w2||^2 = ||w1||^2 + ||w2||^2 as w1^T w2 = 0 (Pythagoras)",
                    routes=("expand",)),
        prove_equal(sp.Integral(sp.exp(tau * v) * _chi2_pdf(d, v), (v, 0, sp.oo)) ** 2,
                    sp.Integral(sp.exp(tau * v) * _chi2_pdf(2 * d, v), (v, 0, sp.oo)),
                    justification="R^2 = rho_1^2 + rho_2^2 ~ chi^2_{2d}: the MGF of chi^2_d squared "
                                  "is that of chi^2_{2d} (tau < 0)",
                    routes=("simplify",)),
        prove_equal(sp.Integral(v ** k * _chi2_pdf(2 * d, v), (v, 0, sp.oo)), 2 ** k * sp.rf(d, k),
                    justification="moments E R^{2k} = 2^k (d)_k of chi^2_{2d}",
                    routes=("gammasimp",)),
        given(sp.Symbol(r"z^T (w_1 + w_2)"), sp.Symbol(r"R \sqrt{s}\, u_1"),
              justification="(w1 + w2)/R = u is uniform on S^{d-1} and independent of R "
                            "(Haar Q); rotate z to sqrt(s) e_1"),
        prove_equal(sp.Integral(gg ** (2 * k) * std_normal_pdf(gg), (gg, -sp.oo, sp.oo)),
                    2 ** k * sp.rf(sp.Rational(1, 2), k),
                    justification="Gaussian moments E g_1^{2k} = (2k-1)!! = 2^k (1/2)_k",
                    routes=("gammasimp",)),
        prove_equal(sp.Integral(v ** k * _chi2_pdf(d, v), (v, 0, sp.oo)), 2 ** k * sp.rf(d / 2, k),
                    justification="E ||g||^{2k} = 2^k (d/2)_k for g ~ N(0, I_d); with g = ||g|| u "
                                  "(independent): E u_1^{2k} = (1/2)_k / (d/2)_k",
                    routes=("gammasimp",)),
        prove_equal(_pair_series_term(),
                    sp.rf(d, k) / (sp.rf(d / 2, k) * sp.factorial(k)) * (s / 2) ** k,
                    justification="k-th term of E exp(R sqrt(s) u_1) (odd moments vanish): "
                                  "(2k)! = 4^k k! (1/2)_k",
                    routes=("gammasimp",)),
        prove_equal(sp.hyperexpand(orthogonal_pair_moment(s, 2)), (1 + s / 2) * sp.exp(s / 2),
                    justification="d = 2: 1F1(2; 1; s/2) = (1 + s/2) e^{s/2}",
                    routes=("hyperexpand",)),
        prove_equal(sp.Integral(_chi2_pdf(4, v) * sp.besseli(0, sp.sqrt(s * v)), (v, 0, sp.oo)),
                    (1 + s / 2) * sp.exp(s / 2),
                    justification="d = 2 independently: E_u exp(a u_1) = I_0(a) on the circle, "
                                  "averaged over R^2 ~ chi^2_4",
                    routes=("simplify",)),
        prove_equal(sp.exp(s) - (1 + s / 2) * sp.exp(s / 2),
                    sp.exp(s / 2) * sp.Sum((s / 2) ** k / sp.factorial(k), (k, 2, sp.oo)),
                    justification="d = 2 versus i.i.d. features (pair moment e^{s/2} e^{s/2} = e^s): "
                                  "the difference is e^{s/2} times the exponential series from k = 2",
                    routes=("simplify",)),
        prove_inequality(0, sp.exp(s / 2) * sp.Sum((s / 2) ** k / sp.factorial(k), (k, 2, sp.oo)),
                         justification="every term is >= 0, so the orthogonal pair moment is at most "
                                       "the i.i.d. one: (1 + s/2) e^{s/2} <= e^s"),
    ]
    result = prove_equal(sp.Sum(_pair_series_term(), (k, 0, sp.oo)), orthogonal_pair_moment(s, d),
                         justification="sum over k: E exp(w1^T z) exp(w2^T z) = 1F1(d; d/2; s/2)",
                         routes=("gammasimp", "simplify"))
    return Derivation(
        id="performer.orthogonal_pair_moment",
        title="Orthogonal pair moment E[e^{w1^T z} e^{w2^T z}] = 1F1(d; d/2; ||z||^2/2)",
        assumptions={"d": "dimension, positive integer", "k": "series index, nonnegative integer",
                     "s": "||z||^2, nonnegative", "v": "integration variable, positive",
                     "tau": "MGF argument, negative", "g": "real",
                     "a1, a2, a3, b1, b2, b3": "coordinates of w1, w2 (d = 3), real"},
        sources=(f"{PERFORMER}, Theorem 2 (proof)",
                 "Yu et al. 2016, Orthogonal Random Features, NeurIPS"),
        steps=steps, result=result)


# --------------------------------------------------------------------------
# 8. Theorem 2's bound, and the review version's counterexample
# --------------------------------------------------------------------------

def _P(kk):
    """P_k = (d)_k / (2^k (d/2)_k), the ratio of the 1F1 and e^{2x} coefficients."""
    return sp.rf(d, kk) / (2 ** kk * sp.rf(d / 2, kk))


def _mse_ort(lam, s_, m_, d_):
    """MSE of the orthogonal estimator: MSE+ + (1 - 1/m) Cov, Cov = Lambda^2 (1F1 - e^s)."""
    mse_plus = lam ** 2 * (sp.exp(2 * s_) - sp.exp(s_)) / m_
    return mse_plus + (1 - 1 / m_) * lam ** 2 * (orthogonal_pair_moment(s_, d_) - sp.exp(s_))


@derivation("performer.orthogonal_mse_bound", claims=("performer.orthogonal_mse_bound",))
def orthogonal_mse_bound() -> Derivation:
    """Theorem 2: MSE_ort <= MSE+ - 2(m-1)/(m(d+2)) (SM - Lambda)^2, from the pair moment.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, Theorem 2 (final form).
    """
    V, C = sp.symbols("V C", real=True)
    j = sp.Symbol("j", integer=True, nonnegative=True)
    kk = sp.Symbol("k", integer=True, positive=True)
    mse_plus = Lam ** 2 * (sp.exp(2 * s) - sp.exp(s)) / m
    sm = Lam * sp.exp(s / 2)
    G = sp.exp(2 * xi) - orthogonal_pair_moment(2 * xi, d) - 2 / (d + 2) * (sp.exp(xi) - 1) ** 2
    c_k = (2 ** k - sp.rf(d, k) / sp.rf(d / 2, k) - 2 * (2 ** k - 2) / (d + 2)) / sp.factorial(k)
    steps = [
        given(sp.Symbol(r"\mathbb{E} e^{w_i^T z}"), sp.exp(s / 2),
              justification="each orthogonal w_i is marginally N(0, I_d): the estimator is unbiased, "
                            "SM = Lambda e^{s/2}, and Var of one term equals the i.i.d. one"),
        prove_equal(mean_of_m_variance(V, C, m), V / m + (1 - 1 / m) * C,
                    justification="variance of a mean of m terms with pairwise covariance C"),
        prove_equal(Lam ** 2 * (orthogonal_pair_moment(s, d) - sp.exp(s / 2) ** 2),
                    Lam ** 2 * (orthogonal_pair_moment(s, d) - sp.exp(s)),
                    justification="C = Lambda^2 (E e^{w1^T z} e^{w2^T z} - e^{s}), pair moment from "
                                  "performer.orthogonal_pair_moment", routes=("powsimp",)),
        prove_equal(orthogonal_bound_rhs(mse_plus, sm, Lam, m, d) - _mse_ort(Lam, s, m, d),
                    Lam ** 2 * (1 - 1 / m) * G.subs(xi, s / 2),
                    justification="the bound is equivalent to G(s/2) >= 0, with "
                                  "G(x) = e^{2x} - 1F1(d; d/2; x) - 2/(d+2) (e^x - 1)^2",
                    routes=("expand", "simplify")),
        prove_equal(G, sp.Sum(c_k * xi ** k, (k, 1, sp.oo)),
                    justification="power series of G: c_k = [2^k - (d)_k/(d/2)_k "
                                  "- 2(2^k - 2)/(d+2)] / k!",
                    routes=("gammasimp", "simplify")),
        prove_equal(sp.Matrix([c_k.subs(k, 1), c_k.subs(k, 2)]), sp.Matrix([0, 0]),
                    justification="c_1 = c_2 = 0 (the bound is tight to second order)",
                    routes=("gammasimp", "simplify")),
        prove_equal(sp.factorial(kk) * c_k.subs(k, kk),
                    2 ** kk * ((d + 2 ** (2 - kk)) / (d + 2) - _P(kk)),
                    justification="c_k >= 0  <=>  P_k <= (d + 2^{2-k}) / (d + 2), "
                                  "P_k = (d)_k / (2^k (d/2)_k)",
                    routes=("gammasimp", "expand", "simplify")),
        prove_equal(_P(kk + 1) / _P(kk), (d + kk) / (d + 2 * kk),
                    justification="P_{k+1} = P_k (d + k)/(d + 2k)", routes=("gammasimp",)),
        prove_equal(_P(2), (d + 1) / (d + 2),
                    justification="base case k = 2: P_2 = (d + 1)/(d + 2), equality",
                    routes=("gammasimp", "simplify")),
        prove_equal((d + 2 ** (1 - kk)) * (d + 2 * kk) - (d + 2 ** (2 - kk)) * (d + kk),
                    d * (kk - 2 ** (1 - kk)),
                    justification="induction step: (d + 2^{2-k})(d + k) <= (d + 2^{1-k})(d + 2k) "
                                  "since the difference is d (k - 2^{1-k})",
                    routes=("expand",)),
        prove_inequality(d * (j + 2 - 2 ** (-1 - j)), 0, relation=">=",
                         justification="d (k - 2^{1-k}) >= 0 for k = j + 2 >= 2",
                         symbols_domain={"j": ("int", 0, 60), "d": ("int", 1, 64)}),
    ]
    result = prove_inequality(
        _mse_ort(Lam, s, m, d), orthogonal_bound_rhs(mse_plus, sm, Lam, m, d),
        justification="Theorem 2: all c_k >= 0 and x = s/2 >= 0, so G(s/2) >= 0",
        symbols_domain={"Lambda": (0.05, 1.0), "s": (0.0, 8.0), "m": ("int", 1, 16),
                        "d": ("int", 1, 64)},
        routes=("expand",))
    return Derivation(
        id="performer.orthogonal_mse_bound",
        title="Theorem 2: MSE_ort <= MSE+ - 2(m-1)/(m(d+2)) (SM - Lambda)^2",
        assumptions={"Lambda": "exp(-(||x||^2+||y||^2)/2), positive", "s": "||x+y||^2, nonnegative",
                     "m": "number of orthogonal features, positive integer (m <= d)",
                     "d": "dimension, positive integer", "xi": "s/2, nonnegative",
                     "k": "series index, integer", "j": "k - 2, nonnegative integer",
                     "V, C": "variance and pairwise covariance, real"},
        sources=(f"{PERFORMER}, Theorem 2",),
        steps=steps, result=result)


@derivation("performer.orthogonal_bound_review_version", claims=("performer.orthogonal_mse_bound",),
            expect="fails")
def orthogonal_bound_review_version() -> Derivation:
    """Limitation: the review version's bound MSE+ - (1 - 1/m) 2/(d+2) SM^2 is false at x = -y.

    At ``x = -y`` every positive estimator is exact (``z = x + y = 0``), so
    ``MSE_ort = MSE+ = 0``, while the review bound's right-hand side is
    ``-(1 - 1/m) 2/(d+2) exp(-2||x||^2) < 0`` for ``m >= 2``.  The final
    paper's ``(SM - Lambda)^2`` vanishes there, so its bound holds with equality.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers (OpenReview / arXiv v1
    version of Theorem 2, with SM^2) versus the ICLR 2021 camera-ready Theorem 2.
    """
    n = sp.Symbol("n", integer=True, nonnegative=True)
    mm = n + 2                                                   # m >= 2
    mse_plus = Lam ** 2 * (sp.exp(2 * s) - sp.exp(s)) / mm
    sm = Lam * sp.exp(s / 2)
    mse_ort = _mse_ort(Lam, s, mm, d)

    def at_zero(e):
        """``e`` at s = 0 (i.e. y = -x), kept unevaluated for display."""
        return sp.Subs(e, s, 0)

    steps = [
        prove_equal(sp.Subs(norm2(X + Y), tuple(Y), tuple(-X)), 0,
                    justification="at y = -x: z = x + y = 0, so s = ||x + y||^2 = 0"),
        prove_equal(sp.Subs(lambda_factor(X, Y), tuple(Y), tuple(-X)), sp.exp(-norm2(X)),
                    justification="... and Lambda = exp(-||x||^2) > 0"),
        prove_equal(at_zero(mse_plus), 0, justification="MSE+ = Lambda^2 (e^{2s} - e^{s}) / m = 0 at s = 0"),
        prove_equal(at_zero(mse_ort), 0,
                    justification="MSE_ort = MSE+ + (1 - 1/m) Lambda^2 (1F1(d; d/2; 0) - 1) = 0: "
                                  "the estimator is exact", routes=("hyperexpand",)),
        prove_equal(at_zero(sm), Lam, justification="SM = Lambda e^{s/2} = Lambda > 0 at s = 0"),
        prove_inequality(at_zero(mse_ort),
                         at_zero(orthogonal_bound_rhs(mse_plus, sm, Lam, mm, d, version="final")),
                         justification="the final form holds there (with equality): (SM - Lambda)^2 = 0",
                         routes=("hyperexpand", "simplify")),
    ]
    result = prove_inequality(
        at_zero(mse_ort), at_zero(orthogonal_bound_rhs(mse_plus, sm, Lam, mm, d, version="review")),
        justification="review version at x = -y, m = n + 2 >= 2: 0 <= -(1 - 1/m) 2/(d+2) Lambda^2 "
                      "is false",
        routes=("hyperexpand", "simplify", "factor"))
    return Derivation(
        id="performer.orthogonal_bound_review_version",
        title="Limitation: the review version MSE_ort <= MSE+ - (1-1/m) 2/(d+2) SM^2 fails at x = -y",
        assumptions={"x1, x2, x3, y1, y2, y3": "real coordinates of x and y (evaluated at y = -x)",
                     "Lambda": "exp(-(||x||^2+||y||^2)/2), positive", "s": "||x + y||^2, nonnegative",
                     "n": "m - 2, nonnegative integer",
                     "d": "dimension, positive integer"},
        sources=(f"{PERFORMER} (review version), Theorem 2", f"{PERFORMER}, Theorem 2"),
        steps=steps, result=result, expect="fails")
