"""Claims on numerics at the edges of a dtype: overflow of exp, masks with a bias, long rows,
and magnitudes one dtype holds and another does not.

Each claim runs in float64 and float32 and, for a subject that declares them,
in float16 and bfloat16, where its comparisons follow the error-ratio rule
(``theory/tolerance.py``, :func:`ratio_tolerance`). The inputs are drawn in
float64 and rounded to the case's dtype (hypothesis cannot draw bfloat16),
with magnitudes chosen to reach the dangerous ranges of that dtype on purpose:
logits beyond the point where ``exp`` overflows (about 11.1 in float16, 88.7
in float32 and bfloat16, 709.8 in float64), values beyond float16's largest
finite number (65504) in bfloat16.

The bugs these catch are those of kernel and port authors: ``exp`` without
the row maximum subtracted; an additive mask built from ``finfo(dtype).min``
to which a bias is added (it overflows to ``-inf`` and a fully masked row
becomes NaN); a softmax denominator or ``P V`` accumulated in the input
dtype; a bfloat16 input cast through float16.

References
----------
Milakov & Gimelshein 2018, Online normalizer calculation for softmax (the
maximum subtracted before ``exp``); Press et al. 2022, Train Short, Test Long
(ALiBi, the bias added to masked logits); Kalamkar et al. 2019, A Study of
BFLOAT16 for Deep Learning Training (bfloat16 keeps float32's exponent range);
seed 000 (shared/seeds/000_*.txt): the softmax of the attention scores.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..checks import compare, for_all, holds
from ..claim import Evidence, Kind, seed_note
from ..registry import ClaimSet
from ..sources import KALAMKAR_2019, MILAKOV_2018, PRESS_2022, VASWANI_2017
from ..strategies import dtype_seed_rng, normal, random_mask
from ..tolerance import eps, logit_tolerance, tolerance
from ._common import definition_attention

claims = ClaimSet("precision")

EQ1 = VASWANI_2017.at("§3.2.1, Eq. (1)")
SEED_000 = seed_note("000", "the softmax of the attention scores")
MILAKOV = MILAKOV_2018.at("the safe softmax, with the maximum subtracted")
ALIBI = PRESS_2022.at("the bias added to the logits")
BF16 = KALAMKAR_2019.at("bfloat16 has the dynamic range of float32")


def _finfo_max(dt: np.dtype) -> float:
    return float(np.finfo(dt).max)


@st.composite
def _edge_case(draw) -> dict:
    """Queries and keys scaled so that the largest logit has magnitude ``M``."""
    dt, seed, rng = dtype_seed_rng(draw)
    lq, lk, e = draw(st.integers(1, 6)), draw(st.integers(1, 8)), draw(st.integers(1, 8))
    magnitude = draw(st.sampled_from([30.0, 100.0, 1e3, 1e4]))
    q, k = rng.standard_normal((2, lq, e)), rng.standard_normal((2, lk, e))
    s = np.abs(np.einsum("bqe,bke->bqk", q, k)).max() / np.sqrt(e)
    grow = np.sqrt(magnitude / max(s, 1e-3))          # split between q and k: both stay
    limit = _finfo_max(dt) / 8                        # representable in the dtype
    q, k = (np.clip(a * grow, -limit, limit) for a in (q, k))              # (2, L, E)
    return {"dtype": dt, "seed": seed, "M": magnitude, "Lq": lq, "Lk": lk, "E": e,
            "q": q.astype(dt), "k": k.astype(dt), "v": normal(rng, (2, lk, e), dt)}


@claims.claim("precision.extreme_logits_finite", sources=(MILAKOV, EQ1, SEED_000),
              kind=Kind.PROPERTY, needs=("attention",))
def extreme_logits_finite(subject, ctx) -> Evidence:
    r"""Logits beyond exp's overflow point give finite outputs in the values' hull

    .. math:: |s_{ij}|\le M,\ M\in\{30,10^2,10^3,10^4\}\ \Rightarrow\ \mathrm{Attention}(Q,K,V)\
        \text{finite},\ \min_j v_j\le o_i\le\max_j v_j

    exp overflows at 11.09 in float16 and 88.72 in float32 and bfloat16: only the
    maximum-subtracted softmax keeps every row finite for logits up to 1e4. Each output coordinate
    must lie between the smallest and largest value (plus the policy's 'rounding' allowance of the
    values' magnitude).
    """
    def measure(c):
        out = np.asarray(subject.attention(c["q"], c["k"], c["v"])).astype(np.float64)
        if not np.all(np.isfinite(out)):
            return holds(False, f"non-finite output for logits up to {c['M']:g}")
        v = c["v"].astype(np.float64)                                       # (2, Lk, E)
        # a few rounding steps of the values' magnitude, in the precision the subject
        # declared or returned (the policy's "rounding" rule)
        slack = tolerance("rounding", c["dtype"]).rtol * np.abs(v).max()
        lo, hi = v.min(axis=-2, keepdims=True), v.max(axis=-2, keepdims=True)
        return holds(bool(np.all(out >= lo - slack) and np.all(out <= hi + slack)),
                     "an output left the hull of the values")
    return for_all(ctx, _edge_case(), measure,
                   detail="Logits up to 1e4 in magnitude, beyond exp's overflow point of every "
                          "dtype but float64, give finite outputs inside the values' hull.")


@st.composite
def _mask_bias_case(draw) -> dict:
    """Self-attention of H heads with ALiBi-like slopes, a random mask and a dead row."""
    dt, seed, rng = dtype_seed_rng(draw)
    h, length, e = draw(st.integers(1, 4)), draw(st.integers(2, 10)), draw(st.integers(1, 8))
    slope = draw(st.sampled_from([0.5, 8.0, 1e3]))
    i, j = np.arange(length)[:, None], np.arange(length)[None, :]
    bias = -slope * np.abs(i - j) * (np.arange(1, h + 1)[:, None, None] / h)  # (H, L, L)
    mask = random_mask(rng, (h, length, length), p_true=0.6)
    mask[:, draw(st.integers(0, length - 1)), :] = False                      # a dead row
    return {"dtype": dt, "seed": seed, "H": h, "L": length, "E": e, "slope": slope,
            "q": normal(rng, (h, length, e), dt), "k": normal(rng, (h, length, e), dt),
            "v": normal(rng, (h, length, e), dt), "mask": mask, "bias": bias.astype(dt)}


@claims.claim("precision.mask_with_bias_finite", sources=(ALIBI, EQ1), kind=Kind.PROPERTY,
              needs=("attention",), keywords=(("attention", "bias"),))
def mask_with_bias_finite(subject, ctx) -> Evidence:
    r"""A boolean mask with an additive bias leaves every row that has a key finite

    .. math:: \exists j: M_{ij}=1\ \Rightarrow\ o_i=\mathrm{softmax}(s_i+b_i+\log M_i)V\
        \text{finite}

    Slopes up to 1e3 make the bias reach -1e4; each case has one fully masked row, which must
    follow the declared fully_masked_row convention (the shared machinery checks a declared NaN or
    uniform row and gives the claim the contract's zeros). An additive mask built from
    finfo(dtype).min to which the bias is added overflows to -inf, and the fully masked row becomes
    NaN.
    """
    def measure(c):
        out = subject.attention(c["q"], c["k"], c["v"], mask=c["mask"], bias=c["bias"])
        out = np.asarray(out).astype(np.float64)                            # (H, L, E)
        live = c["mask"].any(axis=-1)                                       # (H, L)
        if not np.all(np.isfinite(out[live])):
            return holds(False, "a row with an allowed key is not finite")
        if not np.all(out[~live] == 0):        # the contract's view of the declared convention
            return holds(False, "a fully masked row is not what the subject declares")
        expected, p, logits = _biased_definition(c)
        # the logits that carry weight are rounded at their own magnitude (a bias of -1e4
        # rounds at 1e4 ulp): the tolerance follows them
        scale = float(np.max(np.abs(logits[p >= eps(c["dtype"])]), initial=0.0))
        tol = logit_tolerance("composite", c["dtype"], c["E"] + c["L"], scale)
        return compare(out[live], expected[live], tol, scale=c["v"].astype(np.float64),
                       note="masked, biased attention differs from its definition")
    return for_all(ctx, _mask_bias_case(), measure,
                   detail="With a boolean mask, a bias down to -1e4 and one fully masked row "
                          "per case, every row with an allowed key is finite and equals the "
                          "definition.")


def _biased_definition(c):
    """softmax(q k^T / sqrt(E) + b + log M) V in float64 (0 on a fully masked row); also the
    weights and the logits (0 where masked)."""
    q, k, v, b = (c[n].astype(np.float64) for n in ("q", "k", "v", "bias"))
    s = np.einsum("hqe,hke->hqk", q, k) / np.sqrt(c["E"]) + b               # (H, L, L)
    s = np.where(c["mask"], s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    p = np.where(c["mask"], np.exp(s - np.where(np.isfinite(m), m, 0.0)), 0.0)
    z = p.sum(axis=-1, keepdims=True)
    p = np.divide(p, z, out=np.zeros_like(p), where=z > 0)
    return p @ v, p, np.where(c["mask"], s, 0.0)


def _against_definition(subject, c, note: str):
    """The subject's attention of the case against the float64 definition: finite, and
    within the policy ('reduction' over E + Lk terms; the error-ratio rule in half precision)."""
    out = np.asarray(subject.attention(c["q"], c["k"], c["v"])).astype(np.float64)
    if not np.all(np.isfinite(out)):
        return holds(False, f"non-finite output: {note}")
    expected, _ = definition_attention(c["q"], c["k"], c["v"])
    tol = tolerance("reduction", c["dtype"], n=c["E"] + c["Lk"])
    return compare(out, expected, tol, scale=c["v"].astype(np.float64), note=note)


@st.composite
def _long_row_case(draw, lengths) -> dict:
    dt, seed, rng = dtype_seed_rng(draw)
    lk = draw(st.sampled_from(lengths))
    e = draw(st.integers(1, 8))
    return {"dtype": dt, "seed": seed, "Lk": lk, "E": e,
            "q": normal(rng, (2, e), dt, 0.5), "k": normal(rng, (lk, e), dt, 0.5),
            "v": (normal(rng, (lk, e), np.float64) + 1.0).astype(dt)}


@claims.claim("precision.long_row_accumulation", sources=(EQ1, MILAKOV), kind=Kind.PROPERTY,
              needs=("attention",))
def long_row_accumulation(subject, ctx) -> Evidence:
    r"""Long rows: the softmax denominator and P·V accumulate without losing the sum

    .. math:: L_k\in\{256,1024\}\ (4096\text{ thorough}):\
        \|\mathrm{Attention}(Q,K,V)-\mathrm{Attention}_{64}\|\ \text{within the policy}

    Values have mean 1, so P·V is a sum of L positive terms: a sum accumulated in bfloat16 stops
    growing after 256 terms of equal size (256 + 1 rounds to 256), and one accumulated in float16
    loses its last bits. In float16 and bfloat16 the error-ratio rule against the naive
    computation, which accumulates in float32, catches it.
    """
    lengths = [256, 1024, 4096] if ctx.profile.name == "thorough" else [256, 1024]

    def measure(c):
        return _against_definition(subject, c, f"row of {c['Lk']} keys")
    return for_all(ctx, _long_row_case(lengths), measure, max_examples=8,
                   detail="One or two queries against 256 to 1024 keys (4096 under thorough), "
                          "values of mean 1: the output equals the float64 definition.")


@st.composite
def _magnitude_case(draw) -> dict:
    dt, seed, rng = dtype_seed_rng(draw)
    lk, e = draw(st.integers(1, 8)), draw(st.integers(1, 6))
    # a quarter of the dtype's largest value, and never more than 1e30 (float64's square
    # would overflow the float64 definition's products otherwise)
    big = min(_finfo_max(dt) / 4, 1e30) * draw(st.sampled_from([1e-3, 1.0]))
    return {"dtype": dt, "seed": seed, "Lk": lk, "E": e, "big": big,
            "q": normal(rng, (2, 3, e), dt), "k": normal(rng, (2, lk, e), dt),
            "v": (np.clip(rng.standard_normal((2, lk, e)), -1, 1) * big).astype(dt)}


@claims.claim("precision.large_values_survive", sources=(BF16, EQ1), kind=Kind.PROPERTY,
              needs=("attention",))
def large_values_survive(subject, ctx) -> Evidence:
    r"""Values up to a quarter of the dtype's largest number survive attention

    .. math:: |v_j|\le \tfrac14\max(\mathrm{dtype})\ \Rightarrow\
        \mathrm{Attention}(Q,K,V)=\textstyle\sum_j A_{ij}v_j\ \text{finite}

    bfloat16 holds values up to 3.4e38 and float16 only up to 65504: a bfloat16 input silently
    routed through float16 becomes inf. The outputs, convex combinations of the values, must be
    finite and equal the definition.
    """
    def measure(c):
        return _against_definition(subject, c, f"values of magnitude {c['big']:.3g} changed")
    return for_all(ctx, _magnitude_case(), measure,
                   detail="Values up to a quarter of the dtype's largest number (1e30 at most) "
                          "give finite outputs equal to the definition.")

