"""Softmax and attention identities: shift invariance, Jacobian, temperature, online merge,
causal linear attention.

References
----------
Vaswani et al. 2017, Attention Is All You Need, NeurIPS, §3.2.1 (softmax attention).
Milakov & Gimelshein 2018, Online normalizer calculation for softmax, arXiv:1805.02867.
Dao et al. 2022, FlashAttention, NeurIPS, §3.1 (tiling with the (m, l, o) statistics).
Katharopoulos et al. 2020, Transformers are RNNs, ICML, §3.4 (causal linear attention).
seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt): softmax magnifies the largest score.
"""

from __future__ import annotations

import sympy as sp

from ._common import SEED, VASWANI
from .derivation import Derivation, given, prove_equal, prove_inequality
from .registry import derivation

__all__ = ["softmax_vector", "online_state", "online_merge", "ONLINE_IDENTITY"]

MILAKOV = "Milakov & Gimelshein 2018, Online normalizer calculation for softmax, arXiv:1805.02867"
DAO = ("Dao et al. 2022, FlashAttention: Fast and Memory-Efficient Exact Attention with "
       "IO-Awareness, NeurIPS, §3.1")
KATHAROPOULOS = ("Katharopoulos et al. 2020, Transformers are RNNs: Fast Autoregressive Transformers "
                 "with Linear Attention, ICML, §3.4")


def softmax_vector(scores) -> sp.Matrix:
    """``softmax(s)_i = exp(s_i) / sum_j exp(s_j)`` for a column of scores."""
    e = sp.Matrix([sp.exp(v) for v in scores])
    return e / sum(e)


def _scores(n: int, name: str = "s") -> sp.Matrix:
    return sp.Matrix(sp.symbols(f"{name}1:{n + 1}", real=True))


# --------------------------------------------------------------------------
# 9. Shift invariance
# --------------------------------------------------------------------------

@derivation("softmax.shift_invariance", claims=("attention.softmax_shift_invariance",))
def shift_invariance() -> Derivation:
    """softmax(s + c 1) = softmax(s): the factor e^c cancels.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, NeurIPS, §3.2.1.
    Milakov & Gimelshein 2018, arXiv:1805.02867, §2 (the "safe" softmax subtracts max s).
    """
    c = sp.Symbol("c", real=True)
    s = _scores(4)
    n = sp.Symbol("n", integer=True, positive=True)
    i, j = sp.symbols("i j", integer=True, positive=True)
    sv = sp.IndexedBase("s", real=True)
    steps = [
        prove_equal(sp.Sum(sp.exp(sv[j] + c), (j, 1, n)), sp.exp(c) * sp.Sum(sp.exp(sv[j]), (j, 1, n)),
                    justification="general n: e^c factors out of the normaliser",
                    routes=("simplify",)),
        prove_equal(sp.exp(sv[i] + c) / sp.Sum(sp.exp(sv[j] + c), (j, 1, n)),
                    sp.exp(sv[i]) / sp.Sum(sp.exp(sv[j]), (j, 1, n)),
                    justification="general n: and cancels against e^c in the numerator",
                    routes=("simplify",)),
    ]
    result = prove_equal(softmax_vector(s + c * sp.ones(4, 1)), softmax_vector(s),
                         justification="n = 4: softmax(s + c 1) = softmax(s) entrywise",
                         routes=("powsimp", "cancel", "simplify"))
    return Derivation(
        id="softmax.shift_invariance",
        title="Softmax is invariant to adding a constant to every score",
        assumptions={"s1, s2, s3, s4, s_i": "real scores", "c": "real shift",
                     "n": "number of scores, positive integer"},
        sources=(f"{VASWANI}, §3.2.1", f"{MILAKOV}, §2"),
        steps=steps, result=result)


# --------------------------------------------------------------------------
# 10. Jacobian
# --------------------------------------------------------------------------

@derivation("softmax.jacobian")
def jacobian() -> Derivation:
    """d softmax(s) / d s = diag(p) - p p^T, whose rows sum to zero (n = 4).

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, NeurIPS, §3.2.1 (softmax); the Jacobian is
    the standard derivative of the normalised exponential.
    """
    n = 4
    s = _scores(n)
    p = softmax_vector(s)
    J = p.jacobian(s)
    target = sp.diag(*p) - p * p.T
    steps = [
        given(sp.Symbol("p_i"), sp.exp(s[0]) / sum(sp.exp(v) for v in s),
              justification="p = softmax(s), written for i = 1 (n = 4)"),
        prove_equal(sp.diff(p[0], s[0]), p[0] * (1 - p[0]),
                    justification="diagonal entry: quotient rule gives p_i (1 - p_i)",
                    routes=("cancel",)),
        prove_equal(sp.diff(p[0], s[1]), -p[0] * p[1],
                    justification="off-diagonal entry: -p_i p_j", routes=("cancel",)),
        prove_equal(J * sp.ones(n, 1), sp.zeros(n, 1),
                    justification="rows sum to 0: softmax is invariant along the direction 1",
                    routes=("cancel",)),
        prove_equal(sp.ones(1, n) * p, sp.Matrix([[1]]),
                    justification="the probabilities sum to 1", routes=("cancel",)),
    ]
    result = prove_equal(J, target, justification="Jacobian of softmax = diag(p) - p p^T",
                         routes=("cancel",))
    return Derivation(
        id="softmax.jacobian",
        title="Softmax Jacobian diag(p) - p p^T, rows sum to zero",
        assumptions={"s1, s2, s3, s4": "real scores (n = 4)"},
        sources=(f"{VASWANI}, §3.2.1",),
        steps=steps, result=result)


# --------------------------------------------------------------------------
# 11. Temperature bound
# --------------------------------------------------------------------------

@derivation("softmax.temperature_bound", claims=("attention.temperature_limit",))
def temperature_bound() -> Derivation:
    """|softmax(beta s)_j - 1[j = argmax]| <= (n - 1) exp(-beta gap) (n = 4), and the beta -> oo limit.

    By shift invariance and relabelling take ``s_1 = 0 = max`` and
    ``s_j = -(gap + delta_j)`` with ``delta_j >= 0`` for ``j = 2, 3, 4``.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, NeurIPS, §3.2.1 (the scaling of dot products
    and the saturation of softmax).
    seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt): softmax magnifies the largest score
    ("hash" lookup of the best-matching key).
    """
    beta, gap = sp.symbols("beta gamma", positive=True)
    deltas = sp.symbols("delta2:5", nonnegative=True)
    s = sp.Matrix([0] + [-(gap + dl) for dl in deltas])
    p = softmax_vector(beta * s)
    S = sum(sp.exp(-beta * (gap + dl)) for dl in deltas)
    bound = 3 * sp.exp(-beta * gap)
    steps = [
        given(sp.Symbol("s"), s.T,
              justification="WLOG (shift invariance, relabelling): s_1 = 0 is the maximum, "
                            "gap gamma > 0 to the rest"),
        prove_equal(1 - p[0], S / (1 + S),
                    justification="1 - p_1 = S / (1 + S), S = sum_{j>=2} exp(-beta (gamma + delta_j))",
                    routes=("cancel", "powsimp")),
        prove_inequality(S / (1 + S), S, justification="S / (1 + S) <= S as S >= 0"),
        prove_inequality(S, bound,
                         justification="each of the n - 1 = 3 terms is <= exp(-beta gamma) as "
                                       "delta_j >= 0"),
        prove_inequality(p[1], 1 - p[0],
                         justification="for j != 1: |p_j - 0| = p_j <= sum_{k != 1} p_k = 1 - p_1, "
                                       "so max_j |p_j - 1[j = 1]| = 1 - p_1",
                         routes=("cancel", "factor")),
        prove_equal(p.applyfunc(lambda q: sp.Limit(q, beta, sp.oo)), sp.Matrix([1, 0, 0, 0]),
                    justification="hence softmax(beta s) -> e_argmax as beta -> oo (temperature -> 0)",
                    routes=("simplify",)),
    ]
    result = prove_inequality(1 - p[0], bound,
                              justification="|softmax(beta s)_j - 1[j = argmax]| <= 1 - p_1 "
                                            "<= (n - 1) exp(-beta gap)",
                              routes=("cancel", "factor"))
    return Derivation(
        id="softmax.temperature_bound",
        title="Temperature bound |softmax(beta s)_j - 1[j = argmax]| <= (n - 1) e^{-beta gap}",
        assumptions={"beta": "inverse temperature, positive", "gamma": "score gap, positive",
                     "delta2, delta3, delta4": "extra gaps, nonnegative"},
        sources=(f"{VASWANI}, §3.2.1", SEED[4]),
        steps=steps, result=result)


# --------------------------------------------------------------------------
# 12. Online softmax merge
# --------------------------------------------------------------------------

#: The identity state (m, l, o) = (-oo, 0, 0) of the online-softmax merge.
ONLINE_IDENTITY = sp.Matrix([-sp.oo, 0, 0])


def online_state(scores, values) -> sp.Matrix:
    """State of one block: ``(m, l, o) = (max s, sum e^{s - m}, sum e^{s - m} v)``."""
    M = sp.Max(*scores)
    w = [sp.exp(v - M) for v in scores]
    return sp.Matrix([M, sum(w), sum(wi * vi for wi, vi in zip(w, values))])


def online_merge(a: sp.Matrix, b: sp.Matrix) -> sp.Matrix:
    """Merge two states: ``m = max(m_a, m_b)``, ``l, o`` rescaled by ``e^{m_a - m}``, ``e^{m_b - m}``."""
    M = sp.Max(a[0], b[0])
    ca, cb = sp.exp(a[0] - M), sp.exp(b[0] - M)
    return sp.Matrix([M, ca * a[1] + cb * b[1], ca * a[2] + cb * b[2]])


@derivation("softmax.online_merge", claims=("online_softmax.any_split_any_order", "online_softmax.merge_monoid"))
def online_merge_derivation() -> Derivation:
    """The (m, l, o) merge is associative, commutative, has identity (-oo, 0, 0), and o/l = softmax(s) v.

    References
    ----------
    Milakov & Gimelshein 2018, Online normalizer calculation for softmax, arXiv:1805.02867, §3.
    Dao et al. 2022, FlashAttention, NeurIPS, §3.1 (the same statistics per tile).
    """
    A, B, C = (sp.Matrix([sp.Symbol(f"m_{t}", real=True), sp.Symbol(f"l_{t}", positive=True),
                          sp.Symbol(f"o_{t}", real=True)]) for t in "ABC")
    s = list(_scores(5))
    v = list(sp.symbols("v1:6", real=True))
    exact = (softmax_vector(s).T * sp.Matrix(v))[0, 0]

    def ratio(state):
        return state[2] / state[1]

    two = online_merge(online_state(s[:2], v[:2]), online_state(s[2:], v[2:]))
    three = online_merge(online_merge(online_state(s[:2], v[:2]), online_state(s[2:3], v[2:3])),
                         online_state(s[3:], v[3:]))
    steps = [
        prove_equal(online_merge(online_merge(A, B), C), online_merge(A, online_merge(B, C)),
                    justification="associative: both give max(m_A, m_B, m_C) and the same rescaled sums",
                    routes=("powsimp",)),
        prove_equal(online_merge(A, B), online_merge(B, A),
                    justification="commutative: max and + are symmetric", routes=("powsimp",)),
        prove_equal(online_merge(A, ONLINE_IDENTITY), A,
                    justification="identity (-oo, 0, 0): max(m, -oo) = m and e^{-oo} 0 = 0"),
        prove_equal(online_state(s, v)[2] / online_state(s, v)[1], exact,
                    justification="one block: o / l = softmax(s)^T v (the e^{-max} cancels)",
                    routes=("powsimp",)),
        prove_equal(ratio(two), exact,
                    justification="split into 2 blocks {1, 2}, {3, 4, 5}: merged o/l = softmax(s)^T v",
                    routes=("powsimp",)),
    ]
    result = prove_equal(ratio(three), exact,
                         justification="split into 3 blocks {1, 2}, {3}, {4, 5}: merged o/l = "
                                       "softmax(s)^T v", routes=("powsimp",))
    return Derivation(
        id="softmax.online_merge",
        title="Online softmax: the (m, l, o) merge is a commutative monoid and o/l = softmax(s)^T v",
        assumptions={"m_A, m_B, m_C, o_A, o_B, o_C": "real", "l_A, l_B, l_C": "positive",
                     "s1..s5, v1..v5": "real scores and (scalar) values"},
        sources=(f"{MILAKOV}, §3", DAO),
        steps=steps, result=result)


# --------------------------------------------------------------------------
# 13. Causal linear attention as a recurrence
# --------------------------------------------------------------------------

@derivation("attention.linear_recurrence", claims=("recurrence.linear_attention_rnn",))
def linear_recurrence() -> Derivation:
    """S_i = S_{i-1} + phi(k_i) v_i^T, z_i = z_{i-1} + phi(k_i) equals masked linear attention (L = 3).

    References
    ----------
    Katharopoulos et al. 2020, Transformers are RNNs: Fast Autoregressive Transformers with Linear
    Attention, ICML, §3.4 (causal masking), eqs. for S_i and Z_i.
    """
    L, r, e = 3, 2, 2
    F = sp.Matrix(L, r, lambda i, j: sp.Symbol(f"f{i + 1}{j + 1}", positive=True))   # phi(k_i)^T rows
    G = sp.Matrix(L, r, lambda i, j: sp.Symbol(f"g{i + 1}{j + 1}", positive=True))   # phi(q_i)^T rows
    V = sp.Matrix(L, e, lambda i, j: sp.Symbol(f"v{i + 1}{j + 1}", real=True))       # values
    mask = sp.Matrix(L, L, lambda i, j: 1 if j <= i else 0)                          # causal
    A = (G * F.T).multiply_elementwise(mask)                                          # (L, L)
    quadratic = sp.diag(*[1 / sum(A.row(i)) for i in range(L)]) * A * V               # (L, e)

    S, z = sp.zeros(r, e), sp.zeros(r, 1)
    rows = []
    for i in range(L):     # the recurrence itself: one step per position
        S = S + F.row(i).T * V.row(i)                                                  # (r, e)
        z = z + F.row(i).T                                                             # (r, 1)
        rows.append((G.row(i) * S) / (G.row(i) * z)[0, 0])                            # (1, e)
    recurrent = sp.Matrix.vstack(*rows)
    steps = [
        given(sp.Symbol("A_{ij}"), sp.Symbol(r"\phi(q_i)^T \phi(k_j)\, [j \le i]"),
              justification="masked linear attention: out_i = sum_{j<=i} A_ij v_j / sum_{j<=i} A_ij"),
        prove_equal(G.row(2) * (F.T * V), sp.Matrix([[sum(A[2, j] * V[j, c] for j in range(L))
                                                       for c in range(e)]]),
                    justification="last row: phi(q_3)^T S_3 with S_3 = sum_j phi(k_j) v_j^T "
                                  "(associativity of the matrix product)",
                    routes=("expand",)),
        prove_equal(sp.Matrix([sum(A.row(i)) for i in range(L)]),
                    sp.Matrix([(G.row(i) * F[:i + 1, :].T * sp.ones(i + 1, 1))[0, 0] for i in range(L)]),
                    justification="normalisers: phi(q_i)^T z_i with z_i = sum_{j<=i} phi(k_j)",
                    routes=("expand",)),
    ]
    result = prove_equal(recurrent, quadratic,
                         justification="the recurrence reproduces causal linear attention row by row",
                         routes=("cancel",))
    return Derivation(
        id="attention.linear_recurrence",
        title="Causal linear attention: the (S_i, z_i) recurrence equals the masked quadratic form",
        assumptions={"f_ij, g_ij": "feature-map entries phi(k_i), phi(q_i), positive",
                     "v_ij": "values, real", "L": "3 positions, feature dim 2, value dim 2"},
        sources=(KATHAROPOULOS,),
        steps=steps, result=result)
