"""Positional encodings: the sinusoidal shift matrix and RoPE's relative-position identity.

References
----------
Vaswani et al. 2017, Attention Is All You Need, NeurIPS, §3.5 (sinusoidal encodings and the
remark that PE_{pos+k} is a linear function of PE_pos).
Su et al. 2024, RoFormer: Enhanced Transformer with Rotary Position Embedding,
Neurocomputing 568 (arXiv:2104.09864), §3.2.
seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt) and seed 004
(shared/seeds/004_d5b314f5ea1e15da.txt): sinusoids of different frequencies added to the inputs.
"""

from __future__ import annotations

import sympy as sp

from ._common import SEED, VASWANI
from .derivation import Derivation, given, prove_equal
from .registry import derivation

__all__ = ["rotation", "sinusoidal_pe", "shift_matrix", "rope_matrix"]

SU = ("Su et al. 2024, RoFormer: Enhanced Transformer with Rotary Position Embedding, "
      "Neurocomputing (arXiv:2104.09864)")


def rotation(angle) -> sp.Matrix:
    """2x2 rotation by ``angle``: ``[[cos, -sin], [sin, cos]]``."""
    return sp.Matrix([[sp.cos(angle), -sp.sin(angle)], [sp.sin(angle), sp.cos(angle)]])


def sinusoidal_pe(pos, omegas) -> sp.Matrix:
    """``PE(pos) = (sin(w_1 pos), cos(w_1 pos), sin(w_2 pos), cos(w_2 pos), ...)`` (Vaswani §3.5)."""
    return sp.Matrix([f(w * pos) for w in omegas for f in (sp.sin, sp.cos)])


def shift_matrix(k, omegas) -> sp.Matrix:
    """``M_k``: block-diagonal, block ``[[cos w k, sin w k], [-sin w k, cos w k]]`` per frequency."""
    return sp.diag(*[rotation(-w * k) for w in omegas])


def rope_matrix(pos, thetas) -> sp.Matrix:
    """``R_pos``: block-diagonal rotations by ``pos * theta_i`` (RoFormer §3.2.2)."""
    return sp.diag(*[rotation(pos * th) for th in thetas])


@derivation("positional.sinusoidal_shift", claims=("positional.sinusoidal_shift_matrix",
                                                   "positional.sinusoidal_dot_product_relative"))
def sinusoidal_shift() -> Derivation:
    """PE(p + k) = M_k PE(p) with M_k block-diagonal rotations; PE(p).PE(p+k) = sum_i cos(w_i k).

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, NeurIPS, §3.5.
    seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt), seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt).
    """
    p, k = sp.symbols("p k", real=True)
    w = sp.Symbol("omega", positive=True)
    omegas = sp.symbols("omega1:3", positive=True)       # d_model = 4: two frequencies
    i = sp.Symbol("i", integer=True, nonnegative=True)
    dm = sp.Symbol("d_model", integer=True, positive=True)
    pe_p, pe_pk = sinusoidal_pe(p, omegas), sinusoidal_pe(p + k, omegas)
    dot = (pe_p.T * pe_pk)[0, 0]
    relative = sum(sp.cos(om * k) for om in omegas)
    steps = [
        given(sp.Symbol(r"\omega_i"), 10000 ** (-2 * i / dm),
              justification="frequencies of Vaswani et al. §3.5; the algebra below holds for "
                            "any omega_i > 0"),
        prove_equal(sinusoidal_pe(p + k, [w]), shift_matrix(k, [w]) * sinusoidal_pe(p, [w]),
                    justification="one frequency: angle-addition formulas; the block depends on k only",
                    routes=("trigsimp",)),
        prove_equal(shift_matrix(k, [w]).T * shift_matrix(k, [w]), sp.eye(2),
                    justification="each block is a rotation (orthogonal, det 1)", routes=("trigsimp",)),
        prove_equal(shift_matrix(k, [w]).det(), 1, justification="det M_k = cos^2 + sin^2 = 1",
                    routes=("trigsimp",)),
        prove_equal(dot, relative,
                    justification="PE(p)^T PE(p+k) = sum_i cos(omega_i k): "
                                  "sin a sin b + cos a cos b = cos(a - b)",
                    routes=("trigsimp",)),
        prove_equal(sp.diff(dot, p), 0, justification="the dot product does not depend on p",
                    routes=("trigsimp",)),
        prove_equal(dot.subs(k, -k).subs(p, p + k), dot,
                    justification="even in k: PE(p+k)^T PE(p) = PE(p)^T PE(p+k) "
                                  "(the value at -k from base point p + k)",
                    routes=("trigsimp",)),
        prove_equal(relative.subs(k, -k), relative, justification="sum_i cos(omega_i k) is even in k"),
    ]
    result = prove_equal(pe_pk, shift_matrix(k, omegas) * pe_p,
                         justification="d_model = 4: PE(p + k) = M_k PE(p), M_k = blockdiag of rotations",
                         routes=("trigsimp",))
    return Derivation(
        id="positional.sinusoidal_shift",
        title="Sinusoidal encodings: PE(p+k) = M_k PE(p); PE(p).PE(p+k) = sum_i cos(omega_i k)",
        assumptions={"p, k": "real positions/offsets", "omega, omega1, omega2": "positive frequencies",
                     "i": "frequency index, nonnegative integer", "d_model": "positive integer"},
        sources=(f"{VASWANI}, §3.5", SEED[0], SEED[4]),
        steps=steps, result=result)


@derivation("positional.rope_relative", claims=("positional.rope_relative",))
def rope_relative() -> Derivation:
    """RoPE: R_m^T R_n = R_{n-m}, so (R_m q)^T (R_n k) = q^T R_{n-m} k depends on n - m only.

    References
    ----------
    Su et al. 2024, RoFormer: Enhanced Transformer with Rotary Position Embedding, §3.2.1 (2-d case)
    and §3.2.2 (general form, block-diagonal R_{Theta,m}).
    """
    mpos, npos = sp.symbols("m n", real=True)
    th = sp.Symbol("theta", positive=True)
    thetas = sp.symbols("theta1:3", positive=True)       # d = 4: two rotation planes
    q = sp.Matrix(sp.symbols("q1:5", real=True))
    kv = sp.Matrix(sp.symbols("k1:5", real=True))
    Rm, Rn = rope_matrix(mpos, thetas), rope_matrix(npos, thetas)
    steps = [
        prove_equal(rotation(mpos * th).T * rotation(npos * th), rotation((npos - mpos) * th),
                    justification="one plane: R(m theta)^T R(n theta) = R((n - m) theta)",
                    routes=("trigsimp",)),
        prove_equal(rotation(mpos * th).T * rotation(mpos * th), sp.eye(2),
                    justification="R is orthogonal: RoPE preserves norms", routes=("trigsimp",)),
        prove_equal(((Rm * q).T * (Rn * kv))[0, 0], (q.T * rope_matrix(npos - mpos, thetas) * kv)[0, 0],
                    justification="(R_m q)^T (R_n k) = q^T R_{n-m} k: the score depends on n - m only",
                    routes=("trigsimp",)),
    ]
    result = prove_equal(Rm.T * Rn, rope_matrix(npos - mpos, thetas),
                         justification="d = 4: R_m^T R_n = R_{n-m} blockwise", routes=("trigsimp",))
    return Derivation(
        id="positional.rope_relative",
        title="RoPE: R_m^T R_n = R_{n-m}",
        assumptions={"m, n": "real positions", "theta, theta1, theta2": "positive frequencies",
                     "q1..q4, k1..k4": "real query/key entries"},
        sources=(f"{SU}, §3.2.1", f"{SU}, §3.2.2"),
        steps=steps, result=result)
