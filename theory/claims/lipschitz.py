"""Lipschitz: dot-product self-attention is not Lipschitz on an unbounded domain.

References
----------
Kim, Papamakarios & Mnih 2021, "The Lipschitz Constant of Self-Attention", ICML. Abstract:
"We prove that the standard dot-product self-attention is not Lipschitz for unbounded input
domain, and propose an alternative L2 self-attention that is Lipschitz."
"""

from __future__ import annotations

import numpy as np

from ..checks import Measurement, holds, single_case
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import KIM_2021
from ..tolerance import conditioned_tolerance

claims = ClaimSet("lipschitz")

KIM_ABSTRACT = KIM_2021.at('abstract: "the standard dot-product self-attention is not Lipschitz '
                           'for unbounded input domain"')

#: The family's parameter t: the Jacobian entry grows as t^2 / 4.
T_VALUES = (1.0, 4.0, 16.0, 64.0, 256.0)


def dot_product_self_attention(attention, x: np.ndarray) -> np.ndarray:
    """``F(X) = softmax(X X^T) X`` for ``X`` of shape (N, 1): W_Q = W_K = W_V = 1, d = 1."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1)             # (N, 1)
    return np.asarray(attention(x, x, x), dtype=np.float64).reshape(-1)


def _row_two(t: float, x2: float) -> float:
    """Row 2 of F at X = (t, x2) written out: (t e^{x2 t} + x2 e^{x2^2}) / (e^{x2 t} + e^{x2^2})."""
    a, b = x2 * t, x2 * x2
    m = max(a, b)
    ea, eb = np.exp(a - m), np.exp(b - m)
    return float((t * ea + x2 * eb) / (ea + eb))


def jacobian_entry(t: float) -> float:
    """``dF_2/dx_2`` at ``X = (t, 0)``: ``t^2/4 + 1/2`` (derivation in the claim's notes)."""
    return t * t / 4 + 0.5


@claims.claim(
    "lipschitz.dot_product_unbounded_jacobian",
    sources=(KIM_ABSTRACT,),
    full_precision_only=(
        'a central difference at t up to 256 divides rounding by a step of 1e-4/t; in half '
        'precision the rounding would swamp the derivative'),
    kind=Kind.LIMITATION, needs=("attention",))
def dot_product_unbounded_jacobian(subject, ctx) -> Evidence:
    r"""Limitation: dot-product self-attention is not Lipschitz; its Jacobian grows like t^2/4

    .. math:: F(X)=\mathrm{softmax}(XX^{\top})X,\ X\in\mathbb R^{2\times1}:\quad \frac{\partial
        F_2}{\partial x_2}\Big|_{X=(t,0)^{\top}}=\frac{t^2}{4}+\frac12\ \xrightarrow[t\to\infty]{}\
        \infty,\quad\text{so }\sup_X\|J_F(X)\|_2=\infty

    N = 2 tokens of width 1, W_Q = W_K = W_V = 1, scale 1/sqrt(1). Row 2 of F is (x_1 e^{x_2 x_1} +
    x_2 e^{x_2^2}) / (e^{x_2 x_1} + e^{x_2^2}); at (t, 0) its x_2-derivative is t^2/4 + 1/2 (sympy:
    diff and substitute). The subject's F is differentiated by a central difference with step h =
    1e-4/t and compared with the same difference of the row written out, so truncation cancels and
    only rounding over 2h remains; the written-out quotient is within 1e-6 of t^2/4 + 1/2 at t = 1,
    4, 16, 64, 256. So ||J_F||_2 >= t^2/4 grows without bound: no Lipschitz constant on R^{2x1}.
    Power: an attention whose logits are bounded or normalised (cosine/QK-normalised attention) has
    a bounded Jacobian here and is rejected at the first t where it departs from the written-out
    row by more than its rounding over 2h (1e-10 relative at t = 1).
    """
    measurements, rows = [], []
    for t in T_VALUES:
        h = 1e-4 / t
        plus = dot_product_self_attention(subject.attention, np.array([t, h]))
        minus = dot_product_self_attention(subject.attention, np.array([t, -h]))
        # (the tolerance is made after the calls: it follows the precision seen)
        derivative = float((plus[1] - minus[1]) / (2 * h))
        exact_quotient = (_row_two(t, h) - _row_two(t, -h)) / (2 * h)
        exact = jacobian_entry(t)
        # the written-out row's quotient differs from the derivative by truncation only
        measurements.append(holds(abs(exact_quotient - exact) <= 1e-6 * exact,
                                  f"t = {t:g}: the row's quotient {exact_quotient:.9g} is not "
                                  f"t^2/4 + 1/2 = {exact:.9g}"))
        tol = conditioned_tolerance(
            "composite", np.float64, 2, 2 * max(1.0, t) / (2 * h) / exact,
            "the same central difference of the written-out row: the two differ by the "
            "rounding of F (|F| <= t) at both points, over 2h, relative to t^2/4 + 1/2")
        measurements.append(Measurement(abs(derivative - exact_quotient) / exact, tol,
                                        f"t = {t:g}: dF_2/dx_2 = {derivative:.9g}, the row's "
                                        f"quotient {exact_quotient:.9g}"))
        rows.append(f"t={t:g}: {derivative:.6g}")
    return single_case(measurements, cases=len(T_VALUES),
                       detail="dF_2/dx_2 at X = (t, 0): " + ", ".join(rows)
                              + " (t^2/4 + 1/2: unbounded).")
