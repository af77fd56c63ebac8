"""Depth: pure self-attention loses rank doubly exponentially; skip connections stop it.

A self-attention network (SAN) of depth L without skip connections or MLPs maps
``X_{l+1} = SA(X_l) = softmax(X_l W_Q (X_l W_K)^T / sqrt(d_qk)) X_l W_V``. Its residual
to the matrices with identical rows, measured in the composite norm
``||M||_{1,inf} = sqrt(||M||_1 ||M||_inf)`` (largest column sum times largest row sum of
absolute values), falls with a cubic rate per layer, so doubly exponentially in depth.

The one-layer bound checked here is derived in :func:`one_layer_constant` (its proof is
in the docstring); it has the paper's form ``C^{(3^L-1)/2} ||res(X)||^{3^L}`` with an
explicit constant ``C`` in place of the paper's ``4 gamma beta / sqrt(d_qk)``, whose term
gamma ("depends on the attention entries") we could not read in the paper's own text.

References
----------
Dong, Cordonnier & Loukas 2021, "Attention is not all you need: pure attention loses rank
doubly exponentially with depth", ICML. Abstract: "without skip connections or multi-layer
perceptrons (MLPs), the output converges doubly exponentially to a rank-1 matrix. On the
other hand, skip connections and MLPs stop the output from degeneration."
Introduction: "we prove that the output converges with a cubic rate to a rank one matrix
that has identical rows".
"""

from __future__ import annotations

import numpy as np

from ..checks import Measurement, single_case
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import DONG_2021
from ..tolerance import Tolerance, tolerance

claims = ClaimSet("depth")

DONG_ABSTRACT = DONG_2021.at('abstract: "without skip connections or multi-layer perceptrons '
                             '(MLPs), the output converges doubly exponentially to a rank-1 '
                             'matrix"')
DONG_CUBIC = DONG_2021.at('introduction: "the output converges with a cubic rate to a rank one '
                          'matrix that has identical rows"')
DONG_SKIP = DONG_2021.at('abstract: "skip connections and MLPs stop the output from '
                         'degeneration"')

#: Depths checked (a layer at most 4 deep: beyond, the bound is below float64 rounding).
DEPTHS = 4
#: Instances per run.
INSTANCES = 6
#: The small-residual condition: max |E_ij| = max |R_i W_QK R_j^T| / sqrt(d_qk) <= 1/2.
SMALL = 0.5

_FULL64 = ("a doubly exponential decay is visible only above the rounding floor: in float64 "
           "for about four layers, in half precision (eps ~ 1e-3) for none")


def composite_norm(m: np.ndarray) -> float:
    """``||M||_{1,inf} = sqrt(||M||_1 ||M||_inf)``: largest column and row sums of |M|."""
    a = np.abs(np.asarray(m, dtype=np.float64))
    return float(np.sqrt(a.sum(axis=0).max() * a.sum(axis=1).max()))


def residual_lower_bound(x: np.ndarray) -> float:
    """A lower bound on ``min_z ||X - 1 z^T||_{1,inf}`` from the differences of rows.

    For ``M = X - 1 z^T``: a column holds ``X_ik - z_k`` and ``X_jk - z_k``, so
    ``||M||_1 >= max_{i,j,k} |X_ik - X_jk|``; two rows give
    ``2 ||M||_inf >= max_{i,j} sum_k |X_ik - X_jk|``. Hence the bound
    ``sqrt(delta D / 2)``, whatever ``z``.
    """
    x = np.asarray(x, dtype=np.float64)
    diff = np.abs(x[:, None, :] - x[None, :, :])                  # (n, n, d)
    return float(np.sqrt(diff.max() * diff.sum(axis=-1).max() / 2.0))


def one_layer_constant(w_qk: np.ndarray, w_v: np.ndarray, n: int, d_qk: int) -> float:
    """``C`` with ``||res(SA(X))||_{1,inf} <= C ||R||_{1,inf}^3`` under the small-residual condition.

    Proof. Write ``X = 1 x^T + R``, ``W = W_Q W_K^T``. The logits
    ``X W X^T / sqrt(d_qk)`` are ``1 r^T + E`` plus terms constant along each row
    (which softmax ignores), with ``r = R W^T x / sqrt(d_qk)`` and
    ``E = R W R^T / sqrt(d_qk)``. Let ``q = softmax(r)``; then
    ``P_ij = q_j e^{E_ij} / sum_k q_k e^{E_ik}`` and, with ``m = max |E_ij|``,
    ``|P_ij - q_j| <= q_j (e^{2m} - 1)``. Since ``P 1 = 1``,
    ``SA(X) - 1 (x^T W_V + q^T R W_V) = (P - 1 q^T) R W_V =: Delta R W_V``, with
    ``||Delta||_inf <= e^{2m} - 1`` and ``||Delta||_1 <= n (e^{2m} - 1)``; both norms
    are submultiplicative, so
    ``||Delta R W_V||_{1,inf} <= sqrt(n) (e^{2m} - 1) ||R||_{1,inf} ||W_V||_{1,inf}``.
    Finally ``e^{2m} - 1 <= 2 m e^{2m}``,
    ``m <= max|W| ||R||_inf^2 / sqrt(d_qk)`` and ``||R||_inf <= d ||R||_1`` (d columns), so
    ``||R||_inf^2 <= d ||R||_{1,inf}^2``. Under ``m <= 1/2``:
    ``C = 2 e sqrt(n) d max|W| ||W_V||_{1,inf} / sqrt(d_qk)``.
    """
    d = w_qk.shape[0]
    return float(2.0 * np.e * np.sqrt(n) * d * np.abs(w_qk).max() * composite_norm(w_v)
                 / np.sqrt(d_qk))


def _instance(rng: np.random.Generator, *, identity_values: bool):
    n = int(rng.integers(3, 7))
    d = int(rng.integers(2, 5))
    d_qk = int(rng.integers(1, d + 1))
    w_q, w_k = rng.standard_normal((d, d_qk)), rng.standard_normal((d, d_qk))
    w_v = np.eye(d) if identity_values else rng.standard_normal((d, d)) / np.sqrt(d)
    w_qk = w_q @ w_k.T
    c = one_layer_constant(w_qk, w_v, n, d_qk)
    x = rng.standard_normal(d)
    g = rng.standard_normal((n, d))
    rho = float(rng.uniform(0.3, 0.8))          # sqrt(C) ||R_0|| = rho < 1: the bound falls
    r0 = g * (rho / np.sqrt(c) / composite_norm(g))
    return dict(n=n, d=d, d_qk=d_qk, w_q=w_q, w_k=w_k, w_v=w_v, w_qk=w_qk, C=c, rho=rho,
                x0=x, r0=r0)


def _sa(subject, x: np.ndarray, inst) -> np.ndarray:
    q, k, v = x @ inst["w_q"], x @ inst["w_k"], x @ inst["w_v"]     # (n, d_qk), (n, d_qk), (n, d)
    return np.asarray(subject.attention(q, k, v), dtype=np.float64)


def _floor(inst, x: np.ndarray) -> float:
    """Rounding allowance of one layer's output residual, in the composite norm."""
    tol = tolerance("composite", np.float64, n=inst["n"] + 2 * inst["d"])
    scale = float(np.abs(x).max()) * max(1.0, composite_norm(inst["w_v"]))
    return tol.rtol * scale * np.sqrt(inst["n"] * inst["d"])


@claims.claim("depth.rank_collapse_doubly_exponential", sources=(DONG_ABSTRACT, DONG_CUBIC),
              full_precision_only=_FULL64, kind=Kind.PROPERTY, needs=("attention",))
def rank_collapse_doubly_exponential(subject, ctx) -> Evidence:
    r"""Pure self-attention: the residual to rank one shrinks doubly exponentially with depth

    .. math:: X_{l+1}=\mathrm{softmax}\!\Big(\tfrac{X_lW_Q(X_lW_K)^{\top}}{\sqrt{d_{qk}}}\Big)X_lW_V:\
        \|\mathrm{res}(X_L)\|_{1,\infty}\le
        C^{\frac{3^L-1}{2}}\|\mathrm{res}(X_0)\|_{1,\infty}^{3^L},\ C=\frac{2e\sqrt
        n\,d\,\max_{ij}|(W_QW_K^{\top})_{ij}|\,\|W_V\|_{1,\infty}}{\sqrt{d_{qk}}},\ \text{if
        }\max_{ij}|(R_lW_QW_K^{\top}R_l^{\top})_{ij}|\le\tfrac{\sqrt{d_{qk}}}{2}

    res(X) = X - 1 x^T for the decomposition the proof carries (x_{l+1} = W_V^T(x_l + R_l^T q_l)),
    an upper bound on the distance to identical rows; ||M||_{1,inf} = sqrt(||M||_1 ||M||_inf). The
    constant C is derived in depth.one_layer_constant (the paper's own constant has a term gamma
    that depends on the attention entries; its doubly exponential form (3^L - 1)/2, 3^L is the
    same). Six random instances (n = 3..6 tokens, width d = 2..4, d_qk <= d) start at
    sqrt(C)||R_0|| = rho in [0.3, 0.8], so the bound falls as rho^{3^L}: four layers reach 0.8^81 ~
    1e-8 of sqrt(C)^-1, a fifth would be below float64 rounding. Each layer's residual must stay
    below B_{l+1} = C B_l^3 + f_l (f_l: the layer's rounding allowance in the composite norm),
    which is the statement's bound while f is negligible. Power: the subject's output is decomposed
    by the checker, so any part of the input that survives a layer linearly (a leak alpha X W_V, a
    row-stochastic but not softmax mixing) leaves a residual ~ alpha ||R_l||, rejected once alpha^l
    exceeds rho^{3^l}: alpha = 0.05 by layer 2, alpha >= 1e-3 by layer 4.
    """
    rng = ctx.rng("instances")
    measurements, rows = [], []
    for _ in range(INSTANCES):
        inst = _instance(rng, identity_values=False)
        c = inst["C"]
        x, r = inst["x0"], inst["r0"]
        big_x = x[None, :] + r
        bound = composite_norm(r)
        history = [bound]
        for depth in range(1, DEPTHS + 1):
            e_max = float(np.abs(r @ inst["w_qk"] @ r.T).max() / np.sqrt(inst["d_qk"]))
            if e_max > SMALL:
                measurements.append(Measurement(np.inf, 0.0, f"small-residual condition fails "
                                                            f"at layer {depth}: max|E| = {e_max:.3g}"))
                break
            logits_r = r @ inst["w_qk"].T @ x / np.sqrt(inst["d_qk"])       # (n,)
            qv = np.exp(logits_r - logits_r.max())
            qv /= qv.sum()
            x_next = inst["w_v"].T @ (x + r.T @ qv)                          # (d,)
            out = _sa(subject, big_x, inst)                                  # (n, d)
            r_next = out - x_next[None, :]
            bound = c * bound ** 3 + _floor(inst, big_x)
            measured = composite_norm(r_next)
            tol = Tolerance(bound, "composite",
                            "the statement's bound C B^3 plus the layer's rounding allowance "
                            "(composite rule times the output's scale, in the composite norm)")
            measurements.append(Measurement(measured, tol, f"n={inst['n']}, d={inst['d']}, "
                                                           f"rho={inst['rho']:.2f}, layer {depth}: "
                                                           f"||res|| = {measured:.3g} > bound "
                                                           f"{bound:.3g}"))
            history.append(measured)
            x, r, big_x = x_next, r_next, out
        rows.append(", ".join(f"{h:.1e}" for h in history))
    return single_case(measurements, cases=INSTANCES,
                       detail="Residual ||res(X_l)||_{1,inf}, l = 0..4, per instance: "
                              + "; ".join(rows) + ".")


@claims.claim("depth.skip_connections_keep_rank", sources=(DONG_SKIP, DONG_ABSTRACT),
              full_precision_only=_FULL64, kind=Kind.LIMITATION, needs=("attention",))
def skip_connections_keep_rank(subject, ctx) -> Evidence:
    r"""Limitation: with skip connections the residual does not shrink; the pure-attention bound
    fails

    .. math:: X_{l+1}=X_l+\mathrm{SA}(X_l),\ W_V=I:\quad \min_z\|X_L-\mathbf
        1z^{\top}\|_{1,\infty}\ \ge\
        \sqrt{\tfrac12\max_{ijk}|X_{ik}-X_{jk}|\,\max_{ij}\textstyle\sum_k|X_{ik}-X_{jk}|}\ >\
        C^{\frac{3^L-1}{2}}\|\mathrm{res}(X_0)\|_{1,\infty}^{3^L},\quad L=4

    The same instances as depth.rank_collapse_doubly_exponential with W_V = I, each layer adding
    its input back. The left side is a rigorous lower bound on the distance to identical rows
    (depth.residual_lower_bound); it must exceed the pure-attention bound at every depth 1..4 (it
    stays near its start while the bound falls like rho^{3^L}). Power: an attention that cancels
    the skip (returns P v - v, so X + SA(X) = P X) is a pure SAN again and falls under the bound by
    the second layer.
    """
    rng = ctx.rng("instances")
    measurements, rows = [], []
    for _ in range(INSTANCES):
        inst = _instance(rng, identity_values=True)
        c = inst["C"]
        big_x = inst["x0"][None, :] + inst["r0"]
        bound = composite_norm(inst["r0"])
        start = residual_lower_bound(big_x)
        history = [start]
        for depth in range(1, DEPTHS + 1):
            big_x = big_x + _sa(subject, big_x, inst)
            bound = c * bound ** 3
            lower = residual_lower_bound(big_x)
            history.append(lower)
        # the limitation: at the last depth, where the pure-attention bound has fallen doubly
        # exponentially, the residual with skips is still above it (at depth 1 the bound
        # C r^3 may still exceed r when C r^2 > 1, which says nothing about collapse)
        measurements.append(Measurement(bound / lower if lower > 0 else np.inf, Tolerance(
            1.0, "exact", "the limitation: lower bound / pure-SAN bound must exceed 1"),
            f"n={inst['n']}, layer {DEPTHS}: lower bound {lower:.3g} <= pure-SAN bound "
            f"{bound:.3g}"))
        rows.append(f"{history[0]:.2e} -> {history[-1]:.2e}")
    return single_case(measurements, cases=INSTANCES,
                       detail="With skip connections the lower bound on the residual goes from "
                              "layer 0 to layer 4: " + "; ".join(rows) + ", above the pure-"
                              "attention bound at every depth.")
