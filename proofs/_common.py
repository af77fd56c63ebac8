"""Shared building blocks for the derivations: vectors, Gaussian expectations, citations.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR (the
Gaussian-expectation notation E_{w ~ N(0, I_d)}).
"""

from __future__ import annotations

import sympy as sp

#: Citations of the lecture notes in shared/seeds/ (DESIGN.md: cite the note a statement comes from).
SEED = {
    0: "seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt)",
    1: "seed 001 (shared/seeds/001_227b4b6d6a829452.txt)",
    2: "seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt)",
    3: "seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt)",
    4: "seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt)",
}

PERFORMER = "Choromanski et al. 2021, Rethinking Attention with Performers, ICLR"
VASWANI = "Vaswani et al. 2017, Attention Is All You Need, NeurIPS"


def vec(name: str, n: int, **assumptions) -> sp.Matrix:
    """Column vector ``(name1, ..., name_n)`` of sympy symbols with the given assumptions."""
    return sp.Matrix(sp.symbols(f"{name}1:{n + 1}", **assumptions))


def dot(a: sp.Matrix, b: sp.Matrix):
    """Euclidean inner product ``a^T b``."""
    return (a.T * b)[0, 0]


def norm2(a: sp.Matrix):
    """Squared Euclidean norm ``||a||^2``."""
    return dot(a, a)


def std_normal_pdf(g: sp.Symbol):
    """Density of N(0, 1): ``exp(-g^2/2) / sqrt(2 pi)``."""
    return sp.exp(-g ** 2 / 2) / sp.sqrt(2 * sp.pi)


def gaussian_expectation(f, g: sp.Symbol) -> sp.Integral:
    """``E_{g ~ N(0,1)} f(g)`` as an unevaluated integral over the real line."""
    return sp.Integral(f * std_normal_pdf(g), (g, -sp.oo, sp.oo))


def mean_of_m_variance(V, C, m):
    """Variance of the mean of ``m`` identically distributed terms, as unevaluated sums.

    ``(1/m^2) (sum_i V + sum_{i != j} C)``: ``m`` diagonal variances ``V`` and
    ``m (m-1)`` off-diagonal covariances ``C`` (``C = 0`` for i.i.d. terms, which
    is then left out).  ``doit`` gives ``(m V + m (m-1) C) / m^2``.
    """
    i, j = sp.symbols("i j", integer=True, positive=True)
    total = sp.Sum(V, (i, 1, m))
    if C != 0:
        total = total + sp.Sum(C, (i, 1, m), (j, 1, m - 1))
    return sp.Mul(sp.Pow(m, -2), total, evaluate=False)
