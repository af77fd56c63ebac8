"""Counting: parameters of an encoder block, and FLOPs of softmax versus FAVOR+ attention.

References
----------
Vaswani et al. 2017, Attention Is All You Need, NeurIPS, §3.2.2 (multi-head projections),
§3.3 (position-wise FFN), §4 / Table 1 (per-layer complexity O(n^2 d)).
Kaplan et al. 2020, Scaling Laws for Neural Language Models, arXiv:2001.08361, §2.1, Table 1
(N ~ 2 d_model n_layer (2 d_attn + d_ff) = 12 n_layer d_model^2).
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, §2.2 and §3 (FAVOR+ costs
O(L r d) instead of O(L^2 d)).
seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt): the parameter-count table (10,656).
seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt): "naive implementation does dN^2 scalar multiplications".
"""

from __future__ import annotations

import sympy as sp

from ._common import PERFORMER, SEED, VASWANI
from .derivation import Derivation, given, prove_equal, prove_inequality
from .registry import derivation

__all__ = ["encoder_block_parameters", "matmul_multiplications", "naive_attention_flops",
           "favor_attention_flops"]

KAPLAN = "Kaplan et al. 2020, Scaling Laws for Neural Language Models, arXiv:2001.08361"


def encoder_block_parameters(d, h, d_head, d_ff, L, biases=1, layernorm=1):
    """Parameters of ``L`` post-LN encoder blocks.

    Per block: ``h`` heads of ``W^Q, W^K, W^V`` (``d x d_head`` each, plus biases),
    the output projection ``W^O`` (``h d_head x d`` + bias), the FFN
    ``d -> d_ff -> d`` (+ biases) and two LayerNorms (gain and bias, ``2d`` each).
    ``biases`` and ``layernorm`` are 0/1 indicators.
    """
    attention = h * 3 * (d * d_head + biases * d_head)
    projection = h * d_head * d + biases * d
    ffn = (d * d_ff + biases * d_ff) + (d_ff * d + biases * d)
    norms = layernorm * 2 * (2 * d)
    return L * (attention + projection + ffn + norms)


def matmul_multiplications(a, b, c):
    """Scalar multiplications of an ``(a x b) (b x c)`` product, counted as a triple sum."""
    i, j, k = sp.symbols("i j k", integer=True, positive=True)
    return sp.Sum(1, (i, 1, a), (j, 1, b), (k, 1, c))


def naive_attention_flops(N, d, *, lower_order=False):
    """``Q K^T`` and ``A V``: ``2 N^2 d`` FLOPs each (a multiply-add is 2); softmax ``3 N^2`` if asked."""
    return 2 * N ** 2 * d + 2 * N ** 2 * d + (3 * N ** 2 if lower_order else 0)


def favor_attention_flops(N, m, d, *, lower_order=False):
    """FAVOR+ with ``m`` features: four ``N x m x d`` products, ``8 N m d`` FLOPs.

    Projections ``Q W^T``, ``K W^T`` (``2 N m d`` each), ``phi(K)^T V`` and
    ``phi(Q) (phi(K)^T V)`` (``2 N m d`` each).  Lower-order terms if asked:
    ``exp`` of both feature matrices (``2 N m``), the normaliser ``phi(K)^T 1``
    (``N m``) and ``phi(Q)`` times it (``2 N m``), and the row division (``N d``).
    """
    return 8 * N * m * d + ((5 * N * m + N * d) if lower_order else 0)


@derivation("counting.parameters", claims=("counting.seed003_parameters",))
def parameters() -> Derivation:
    """P(d, h, d_head, d_ff, L, biases) in closed form; 10,656 at seed 003; 12 L d^2 (Kaplan).

    References
    ----------
    seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt): the table (d = 32, 2 heads, d_head = 32,
    d_ff = 32, 1 block, with biases) totalling 10,656.
    Vaswani et al. 2017, Attention Is All You Need, NeurIPS, §3.2.2 and §3.3.
    Kaplan et al. 2020, Scaling Laws for Neural Language Models, §2.1, Table 1.
    """
    d, h, dh, dff, L = sp.symbols("d h d_head d_ff L", positive=True, integer=True)
    beta, lam = sp.symbols("beta lambda", nonnegative=True, integer=True)
    P = encoder_block_parameters(d, h, dh, dff, L, beta, lam)
    seed = {d: 32, h: 2, dh: 32, dff: 32, L: 1, beta: 1, lam: 1}
    kaplan = {dh: d / h, dff: 4 * d, beta: 0}
    steps = [
        given(sp.Symbol("P"), P,
              justification="per block: h (W^Q, W^K, W^V) + W^O + FFN d -> d_ff -> d + 2 LayerNorms; "
                            "beta, lambda = 1 with biases / LayerNorm parameters"),
        prove_equal(sp.Matrix([32 * 32 + 32, 3 * 1056, 2 * 3168]), sp.Matrix([1056, 3168, 6336]),
                    justification="seed 003: W^Q, W^K, W^V are 32 x 32 + 32 = 1,056 each; 3,168 per "
                                  "head; 6,336 for the 2 heads used (its side panel says 1 head)"),
        prove_equal((h * dh * d + beta * d).subs(seed), 2080,
                    justification="seed 003: projection 2 x 32 x 32 + 32 = 2,080"),
        prove_equal(((d * dff + beta * dff) + (dff * d + beta * d)).subs(seed), 2 * 1056,
                    justification="seed 003: DFN1 and DFN2, 1,056 each"),
        prove_equal((lam * 2 * (2 * d)).subs(seed), 128,
                    justification="seed 003: two LayerNorms, 32 x 2 = 64 each"),
        prove_equal(P.subs(kaplan).subs(lam, 0), 12 * L * d ** 2,
                    justification="Kaplan et al.: no biases, d_ff = 4d, h d_head = d, LayerNorm "
                                  "ignored: 12 L d^2", routes=("expand",)),
        prove_equal(P.subs(kaplan).subs(lam, 1), 12 * L * d ** 2 + 4 * L * d,
                    justification="with LayerNorm gains and biases: 12 L d^2 + 4 L d",
                    routes=("expand",)),
        prove_equal(sp.Limit(P.subs(kaplan).subs(lam, 1) / (12 * L * d ** 2), d, sp.oo), 1,
                    justification="the LayerNorm terms are subleading: P / (12 L d^2) -> 1"),
    ]
    result = prove_equal(P.subs(seed), 10656,
                         justification="seed 003's grand total: P(32, 2, 32, 32, 1, biases) = 10,656")
    return Derivation(
        id="counting.parameters",
        title="Encoder-block parameter count P(d, h, d_head, d_ff, L, biases); 10,656 at seed 003",
        assumptions={"d, h, d_head, d_ff, L": "positive integers",
                     "beta, lambda": "0/1 indicators for biases and LayerNorm parameters"},
        sources=(SEED[3], f"{VASWANI}, §3.2.2", f"{VASWANI}, §3.3", f"{KAPLAN}, §2.1, Table 1"),
        steps=steps, result=result)


@derivation("counting.flops", claims=("counting.naive_attention_multiplications",))
def flops() -> Derivation:
    """Naive attention 2 N^2 d FLOPs per product; FAVOR+ 8 N m d; crossover N* = 2m (leading order).

    References
    ----------
    seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt): naive attention does d N^2 multiplications.
    Vaswani et al. 2017, Attention Is All You Need, NeurIPS, §4, Table 1.
    Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, §2.2 (FAVOR+ in O(L r d)).
    """
    N, d, m = sp.symbols("N d m", positive=True, integer=True)
    delta = sp.Symbol("delta", positive=True)
    naive, favor = naive_attention_flops(N, d), favor_attention_flops(N, m, d)
    naive_lo = naive_attention_flops(N, d, lower_order=True)
    favor_lo = favor_attention_flops(N, m, d, lower_order=True)
    n_star_full = (8 * m * d + 5 * m + d) / (4 * d + 3)
    steps = [
        prove_equal(matmul_multiplications(N, d, N), N ** 2 * d,
                    justification="Q K^T, (N x d)(d x N): d N^2 scalar multiplications (seed 000)"),
        prove_equal(matmul_multiplications(N, N, d), N ** 2 * d,
                    justification="A V, (N x N)(N x d): another d N^2"),
        given(sp.Symbol("F_{naive}"), naive,
              justification="counting a multiply-add as 2 FLOPs: 2 N^2 d per product, two products"),
        prove_equal(matmul_multiplications(N, d, m), N * m * d,
                    justification="FAVOR+: each of the four products is N x m x d multiplications"),
        given(sp.Symbol("F_{FAVOR+}"), favor,
              justification="phi(Q), phi(K) projections, phi(K)^T V and phi(Q)(phi(K)^T V): 8 N m d"),
        prove_equal(sp.Limit(favor / N, N, sp.oo), 8 * m * d,
                    justification="FAVOR+ is linear in N: F / N is constant (O(N m d))"),
        prove_inequality(favor.subs(N, 2 * m + delta), naive.subs(N, 2 * m + delta), relation="<",
                         justification="beyond N* (N = 2m + delta, delta > 0) FAVOR+ is cheaper",
                         routes=("expand", "factor")),
        prove_equal(sp.Matrix(sp.solve(sp.Eq(naive_lo, favor_lo), N)), sp.Matrix([n_star_full]),
                    justification="with lower-order terms (softmax 3N^2; exp, normaliser 5Nm + Nd): "
                                  "N* = (8md + 5m + d)/(4d + 3)", routes=("cancel",)),
        prove_equal(sp.Limit(n_star_full, d, sp.oo), 2 * m + sp.Rational(1, 4),
                    justification="for large head dimension d this tends to 2m + 1/4: the "
                                  "leading-order crossover 2m up to a constant"),
    ]
    result = prove_equal(naive - favor, 4 * N * d * (N - 2 * m),
                         justification="F_naive - F_FAVOR+ = 4 N d (N - N*) with crossover N* = 2m",
                         routes=("expand",))
    return Derivation(
        id="counting.flops",
        title="FLOPs: naive attention 2 N^2 d per product, FAVOR+ 8 N m d, crossover N* = 2m",
        assumptions={"N": "sequence length, positive integer", "d": "head dimension, positive integer",
                     "m": "number of random features, positive integer", "delta": "positive"},
        sources=(SEED[0], f"{VASWANI}, §4, Table 1", f"{PERFORMER}, §2.2"),
        steps=steps, result=result)
