"""Attention is a weighted average: the definition, its softmax, its scale, and
its sharp (lookup) limit.

References
----------
Vaswani et al. 2017, "Attention Is All You Need", §3.2.1 (Eq. 1, the 1/sqrt(d_k)
scale and its variance argument, footnote 4). Seed 004 (attention as a soft
dictionary lookup). Seed 000 (softmax of the scores).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..capabilities import missing_keyword
from ..checks import Measurement, compare, for_all, holds
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import GEMMA_2024, SEED_000, SEED_004, VASWANI_2017
from ..statistics import MAX_FALSE_FAILURE, mean_test, statistical_evidence
from ..strategies import DTYPES, SEEDS, attention_case, logits, normal, random_mask
from ..tolerance import score_tolerance, tolerance
from ._common import coarser_dtype, definition_attention
from ._figures import floats, with_figure
from ._masks import mask_with_dead_row

claims = ClaimSet("attention")

EQ1 = VASWANI_2017.at("§3.2.1, Eq. (1)")


@st.composite
def _masked_case(draw, **kw):
    case = draw(attention_case(**kw))
    rng = np.random.default_rng(case["seed"] + 1)
    use_mask = draw(st.booleans())
    case["mask"] = random_mask(rng, (*case["lead"], case["Lq"], case["Lk"])) if use_mask else None
    case["causal"] = draw(st.sampled_from([False, True, "bottom-right"]))
    return case


@claims.claim("attention.scaled_dot_product",
              sources=(EQ1, SEED_000.at("softmax of X W_q^T W_k X^T")), kind=Kind.PROPERTY,
              needs=("attention",))
def scaled_dot_product(subject, ctx) -> Evidence:
    r"""Attention is softmax(QKᵀ/√d)V

    .. math:: \mathrm{Attention}(Q,K,V)=\mathrm{softmax}\!\left(\frac{QK^{\top}}{\sqrt{d_k}}+\log
        M\right)V

    M is the boolean mask (log 0 = -inf), combined by AND with the causal mask; the default scale
    is 1/sqrt(d_k).
    """
    def measure(c):
        out = subject.attention(c["q"], c["k"], c["v"], mask=c["mask"], causal=c["causal"])
        expected, _ = definition_attention(c["q"], c["k"], c["v"], mask=c["mask"],
                                           causal=c["causal"])
        tol = tolerance("reduction", coarser_dtype(out, c["q"]), n=c["E"] + c["Lk"])
        return compare(out, expected, tol, scale=c["v"])
    return for_all(ctx, _masked_case(), measure,
                   detail="Outputs equal the float64 definition with masks, both causal "
                          "alignments and the default scale.")


@claims.claim("attention.explicit_scale", sources=(EQ1,), kind=Kind.PROPERTY, needs=("attention",))
def explicit_scale(subject, ctx) -> Evidence:
    r"""The scale argument multiplies the logits

    .. math:: \mathrm{Attention}_{s}(Q,K,V)=\mathrm{softmax}(s\,QK^{\top})V
    """
    strategy = st.tuples(attention_case(), st.floats(0.01, 4.0))

    def measure(args):
        c, s = args
        out = subject.attention(c["q"], c["k"], c["v"], scale=s)
        expected, _ = definition_attention(c["q"], c["k"], c["v"], scale=s)
        # scores s q.k up to ~4 E: their rounding, not the reduction, dominates (derived bound)
        tol = score_tolerance("reduction", coarser_dtype(out, c["q"]), c["E"] + c["Lk"],
                              c["q"], c["k"], s)
        return compare(out, expected, tol, scale=c["v"])
    return for_all(ctx, strategy, measure,
                   detail="Outputs equal the definition for explicit scales in [0.01, 4].")


@claims.claim("attention.rows_are_distributions", sources=(EQ1,), kind=Kind.PROPERTY,
              needs=("attention_weights",))
def rows_are_distributions(subject, ctx) -> Evidence:
    r"""Attention rows are probability vectors

    .. math:: A_{ij}\ge 0,\qquad \sum_j A_{ij}=1\ \text{(0 for a fully masked row)}
    """
    def measure(c):
        w = subject.attention_weights(c["q"], c["k"], mask=c["mask"], causal=c["causal"])
        if w.shape != (*c["lead"], c["Lq"], c["Lk"]):
            return holds(False, f"weights have shape {w.shape}")
        _, expected_w = definition_attention(c["q"], c["k"], c["v"], mask=c["mask"],
                                             causal=c["causal"])
        live = expected_w.sum(axis=-1)                          # 1 or 0 per row
        tol = tolerance("reduction", w.dtype, n=c["Lk"])
        if np.any(w < 0):
            return holds(False, "negative attention weight")
        # summed in float64: the measurement must not add roundings of its own (numpy sums
        # bfloat16 in bfloat16, which would quantise every row sum to 1 +- 2^-8 steps)
        return compare(np.asarray(w, dtype=np.float64).sum(axis=-1), live, tol, note="row sums")
    return for_all(ctx, _masked_case(), measure,
                   detail="Weights are non-negative and each row sums to 1 (0 when fully masked).")


@claims.claim("attention.convex_hull",
              sources=(EQ1, SEED_004.at("outputs are linear combinations of array elements")),
              kind=Kind.PROPERTY, needs=("attention",))
def convex_hull(subject, ctx) -> Evidence:
    r"""Each output lies in the convex hull of the values it may see

    .. math:: o_i=\sum_j A_{ij}v_j\in\operatorname{conv}\{v_j : M_{ij}=1\}

    Checked through support functions: for 16 random directions u and every axis, min_j u·v_j <=
    u·o_i <= max_j u·v_j over the visible j.
    """
    def measure(c):
        out = np.asarray(subject.attention(c["q"], c["k"], c["v"], mask=c["mask"],
                                           causal=c["causal"]), dtype=np.float64)
        _, w = definition_attention(c["q"], c["k"], c["v"], mask=c["mask"], causal=c["causal"])
        visible = w > 0                                           # (..., Lq, Lk)
        v = np.asarray(c["v"], dtype=np.float64)
        ev = v.shape[-1]
        rng = np.random.default_rng(c["seed"] + 2)
        dirs = np.concatenate([np.eye(ev), -np.eye(ev), rng.standard_normal((16, ev))])
        proj_v = np.einsum("...ke,de->...dk", v, dirs)            # (..., D, Lk)
        proj_o = np.einsum("...qe,de->...qd", out, dirs)          # (..., Lq, D)
        vis = visible[..., :, None, :]                            # (..., Lq, 1, Lk)
        hi = np.max(np.where(vis, proj_v[..., None, :, :], -np.inf), axis=-1)   # (..., Lq, D)
        lo = np.min(np.where(vis, proj_v[..., None, :, :], np.inf), axis=-1)
        live = visible.any(axis=-1)[..., None]
        excess = np.where(live, np.maximum(proj_o - hi, lo - proj_o), 0.0)
        scale = max(float(np.max(np.abs(v))), np.finfo(float).tiny) * np.sqrt(ev)
        tol = tolerance("reduction", coarser_dtype(c["q"]), n=c["E"] + c["Lk"])
        err = float(np.max(excess, initial=0.0)) / scale
        return Measurement(max(err, 0.0), tol, "output outside the convex hull")
    return for_all(ctx, _masked_case(), measure,
                   detail="Every output's projections lie within those of the visible values.")


@claims.claim(
    "attention.softmax_shift_invariance",
    sources=(VASWANI_2017.at("§3.2.1"), SEED_000),
    full_precision_only=(
        'its logits are drawn value by value in float64 (they shrink to the smallest failing '
        'logit); s + c is not representable exactly in half precision, so the shift is not an'
        ' invariance there'),
    kind=Kind.PROPERTY, needs=("softmax",), proof="softmax.shift_invariance")
def softmax_shift_invariance(subject, ctx) -> Evidence:
    r"""Softmax is invariant to adding a constant to the logits

    .. math:: \mathrm{softmax}(s+c\mathbf{1})=\mathrm{softmax}(s)
    """
    strategy = st.tuples(logits(bound=30.0, dtype=np.float64), st.floats(-50.0, 50.0))

    def measure(args):
        s, c = args
        p = subject.softmax(s, axis=-1)
        p_shift = subject.softmax(s + c, axis=-1)
        return compare(p_shift, p, tolerance("ill_conditioned", np.float64, n=s.shape[-1]),
                       scale=np.ones(1))
    return for_all(ctx, strategy, measure,
                   detail="softmax(s + c) = softmax(s) for logits |s| <= 30 and shifts |c| <= 50.")


@claims.claim(
    "attention.extreme_logits_finite", sources=(VASWANI_2017.at("§3.2.1"), SEED_000),
    full_precision_only=("fixed at float32 logits up to 1e4; its half-precision statement is "
                         "precision.extreme_logits_finite, with the dtype's own overflow point"),
    kind=Kind.PROPERTY, needs=("softmax", "attention"))
def extreme_logits_finite(subject, ctx) -> Evidence:
    r"""Extreme logits stay finite

    .. math:: |s_{ij}|\le 10^4\ \text{in float32}\ \Rightarrow\ \mathrm{softmax}(s),\
        \mathrm{Attention}(Q,K,V)\ \text{finite, rows sum to } 1

    Needs the max-subtraction: exp(1e4) overflows every float format.
    """
    strategy = st.tuples(logits(bound=1e4, dtype=np.float32), SEEDS, st.integers(1, 8))

    def measure(args):
        s, seed, e = args
        p = np.asarray(subject.softmax(s, axis=-1))
        if not np.all(np.isfinite(p)):
            return holds(False, "softmax returned inf or NaN")
        tol = tolerance("reduction", np.float32, n=s.shape[-1])
        m = compare(p.sum(axis=-1), np.ones(s.shape[:-1]), tol, note="softmax row sums")
        if not m.ok:
            return m
        rng = np.random.default_rng(seed)
        lq = lk = s.shape[-1]
        # Scores of magnitude up to ~1e4: |q| ~ |k| ~ 100 * 10**0.5 along e dims.
        q = normal(rng, (lq, e), np.float32, 100.0)
        k = normal(rng, (lk, e), np.float32, 100.0 * np.sqrt(e))
        v = normal(rng, (lk, e), np.float32)
        out = np.asarray(subject.attention(q, k, v))
        if not np.all(np.isfinite(out)):
            return holds(False, "attention returned inf or NaN for large logits")
        return m
    return for_all(ctx, strategy, measure,
                   detail="float32 logits up to ±1e4: softmax and attention stay finite and "
                          "softmax rows sum to 1.")


@claims.claim("attention.fully_masked_row_zero", sources=(VASWANI_2017.at("§3.2.3"),),
              kind=Kind.PROPERTY, needs=("attention",))
def fully_masked_row_zero(subject, ctx) -> Evidence:
    r"""A fully masked row returns zeros, never NaN

    .. math:: M_{i\cdot}=0\ \Rightarrow\ o_i=0

    The contract's convention (DESIGN.md). PyTorch's math kernel returns NaN there and JAX the
    uniform average, documented conventions: a subject declaring fully_masked_row = 'nan' or
    'uniform' is checked against its declaration by the shared machinery (theory/conventions.py)
    and by contract.fully_masked_row, and this claim sees the contract's zeros.
    """
    strategy = st.tuples(attention_case(lead=(2,)), st.data())

    def measure(args):
        c, data = args
        mask, dead = mask_with_dead_row(c, data, seed_offset=3)
        out = np.asarray(subject.attention(c["q"], c["k"], c["v"], mask=mask))
        if not np.all(np.isfinite(out)):
            return holds(False, "NaN or inf in the output")
        return holds(bool(np.all(out[:, dead, :] == 0)), "fully masked row is not zero")
    return for_all(ctx, strategy, measure,
                   detail="A row whose mask is all False gives an all-zero output row.")


@claims.claim("attention.unit_logit_variance", sources=(VASWANI_2017.at("§3.2.1, footnote 4"),),
              kind=Kind.STATISTICAL, needs=("attention_weights",))
def unit_logit_variance(subject, ctx) -> Evidence:
    r"""With scale 1/√d the logits of unit-variance q, k have variance 1

    .. math:: q,k\overset{iid}{\sim}\mathcal{N}(0,I_d)\ \Rightarrow\
        \operatorname{Var}\!\left(\tfrac{q^{\top}k}{\sqrt d}\right)=1

    The logit is read back from the subject's default-scaled weights against a zero key: s =
    log(p_1/p_0). Its square has exact mean 1 and variance 2 + 6/d (E s^4 = 3 + 6/d for products of
    Gaussians), which bounds a median-of-means test.
    """
    tests = []
    for d in (4, 64):
        rng = ctx.rng(f"d={d}")
        n = 117 * 1500 * ctx.profile.mc_scale      # 117 = ceil(8 ln(1 / 5e-7)) groups
        q = rng.standard_normal((n, 1, d))                        # (n, 1, d)
        k = np.zeros((n, 2, d))
        k[:, 1, :] = rng.standard_normal((n, d))                  # (n, 2, d), key 0 is zero
        w = np.asarray(subject.attention_weights(q, k), dtype=np.float64)   # (n, 1, 2)
        with np.errstate(divide="ignore"):
            s = np.log(w[:, 0, 1]) - np.log(w[:, 0, 0])           # (n,) logits
        if not np.all(np.isfinite(s)):
            return Evidence(False, cases=n, detail="non-finite logits read back")
        # Two tests share the claim's budget: 5e-7 each, 1e-6 in all (DESIGN.md).
        tests.append(mean_test(f"d={d}", s**2, 1.0, 2.0 + 6.0 / d, MAX_FALSE_FAILURE / 2))
    return statistical_evidence(
        tests, delta_total=sum(t.test.delta for t in tests),
        tolerance_reason="median-of-means half-width from the exact variance 2 + 6/d, "
                         "false-failure probability 5e-7 for each d (1e-6 in all)",
        detail="; ".join(f"{t.label}: E[s^2] ≈ {t.test.estimate:.4f} ± {t.test.halfwidth:.4f}"
                         for t in tests) + ".")


@claims.claim(
    "attention.temperature_limit",
    sources=(SEED_004.at("softmax magnifies the differences"),),
    full_precision_only=(
        'a limit statement about float64 logits up to beta = 200 (the bound exp(-beta gap) is'
        ' below every half-precision rounding step long before the limit)'),
    kind=Kind.PROPERTY, needs=("softmax",), proof="softmax.temperature_bound")
def temperature_limit(subject, ctx) -> Evidence:
    r"""Softmax at high inverse temperature approaches hard attention

    .. math:: \left|\mathrm{softmax}(\beta s)_j-\mathbb{1}[j=\arg\max s]\right|\le
        (n-1)\,e^{-\beta\,\mathrm{gap}(s)}

    gap(s) is the difference between the largest and second largest logit.
    """
    strategy = st.tuples(SEEDS, st.integers(2, 12), st.floats(0.0, 200.0))

    def measure(args):
        seed, n, beta = args
        s = np.random.default_rng(seed).standard_normal(n)
        order = np.sort(s)
        gap = order[-1] - order[-2]
        p = np.asarray(subject.softmax(beta * s, axis=-1), dtype=np.float64)
        hard = np.zeros(n)
        hard[np.argmax(s)] = 1.0
        bound = (n - 1) * np.exp(-beta * gap)
        excess = float(np.max(np.abs(p - hard) - bound))
        return Measurement(max(excess, 0.0), tolerance("rounding", np.float64),
                           f"exceeds (n-1)exp(-beta gap) = {bound:.3g}")
    evidence = for_all(ctx, strategy, measure,
                       detail="For random logits and beta in [0, 200] every entry is within "
                              "the bound.")
    return with_figure(evidence, _temperature_figure, subject)


def _temperature_figure(subject) -> dict:
    """The subject's softmax(beta s) on eight fixed logits as beta grows, against the bound."""
    s = np.array([0.3, 1.1, -0.4, 1.5, 0.9, -1.2, 0.2, 1.0])        # (n,) fixed logits
    n = s.size
    gap = float(s.max() - np.sort(s)[-2])
    hard = (s == s.max()).astype(np.float64)                        # (n,)
    grid = np.geomspace(0.1, 100.0, 120)                            # (B,)
    p = np.asarray(subject.softmax(grid[:, None] * s[None, :], axis=-1), dtype=np.float64)
    dist = np.max(np.abs(p - hard), axis=-1)                        # (B,)
    bars = [{"x": list(range(n)), "label": f"β = {beta:g}", "style": "bars",
             "y": floats(subject.softmax(beta * s, axis=-1))} for beta in (0.25, 1, 4, 16, 64)]
    return {"type": "panels", "title": "Softmax temperature → hard attention",
            "caption": "Left: the subject's softmax(βs) over eight fixed logits as β grows. "
                       "Right: its largest distance to the hard (argmax) weights, with the "
                       "claimed bound (n−1)e^(−β·gap).",
            "panels": [
                {"type": "lines", "title": "weights sharpen onto the argmax",
                 "xlabel": "logit s_j", "ylabel": "softmax(β s)_j", "series": bars,
                 "xticks": list(range(n)), "xticklabels": [f"{v:g}" for v in s]},
                {"type": "lines", "title": "exponential convergence", "xscale": "log",
                 "yscale": "log", "ylim": [1e-16, 2], "xlabel": "inverse temperature β",
                 "ylabel": "distance to hard attention", "series": [
                     {"x": floats(grid), "y": floats(dist),
                      "label": "max_j |softmax(βs)_j − hard_j|"},
                     {"x": floats(grid), "y": floats(np.minimum((n - 1) * np.exp(-grid * gap), 1)),
                      "label": f"(n−1) e^(−β·gap), gap = {gap:.2f}", "style": "dashed"}]}]}


@claims.claim("attention.dictionary_lookup",
              sources=(SEED_004.at("looking up V[j] with a query q = k_j"), EQ1),
              kind=Kind.PROPERTY, needs=("attention",))
def dictionary_lookup(subject, ctx) -> Evidence:
    r"""Sharp attention over orthogonal keys is a dictionary lookup

    .. math:: K^{\top}K=r^2I,\ q=c\,k_j\ \Rightarrow\ \|o-v_j\|_\infty\le (n-1)\,e^{-c r^2/\sqrt
        d}\max_i\|v_i-v_j\|_\infty\to 0
    """
    strategy = st.tuples(SEEDS, st.integers(1, 8), st.integers(2, 8), st.floats(0.1, 20.0),
                         st.floats(0.5, 3.0), DTYPES)

    def measure(args):
        seed, n, extra, c, r, dt = args
        d = n + extra - 1
        rng = np.random.default_rng(seed)
        basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
        keys = r * basis[:n]                                        # (n, d) orthogonal rows
        values = rng.standard_normal((n, 3))                        # (n, 3)
        j = int(rng.integers(n))
        q = (c * keys[j])[None, :]                                  # (1, d)
        out = np.asarray(subject.attention(q.astype(dt), keys.astype(dt), values.astype(dt)),
                         dtype=np.float64)[0]
        spread = np.max(np.abs(values - values[j]))
        bound = (n - 1) * np.exp(-c * r * r / np.sqrt(d)) * spread
        tol = tolerance("reduction", dt, n=d + n)
        excess = max(float(np.max(np.abs(out - values[j]))) - bound, 0.0)
        return Measurement(excess / max(np.max(np.abs(values)), 1e-300), tol,
                           f"lookup error above the bound {bound:.3g}")
    return for_all(ctx, strategy, measure,
                   detail="With orthogonal equal-norm keys and q = c k_j the output is within "
                          "(n-1)exp(-c r^2/sqrt d) of v_j.")


# ---------------------------------------------------------------------------
# Logit soft-capping
# ---------------------------------------------------------------------------

GEMMA2 = GEMMA_2024.at("logit soft-capping: soft_cap * tanh(logits / soft_cap)")


@claims.claim("attention.softcap_definition", sources=(GEMMA2, EQ1), kind=Kind.PROPERTY,
              needs=("attention",), keywords=(("attention", "softcap"),))
def softcap_definition(subject, ctx) -> Evidence:
    r"""Soft-capped attention is softmax(c·tanh(s/c) + b + log M)V

    .. math:: \mathrm{Attention}_c(Q,K,V)=\mathrm{softmax}\!\left(c\tanh\!\left(\tfrac{QK^{\top}}{c\sqrt{d_k}}\right)+B+\log
        M\right)V

    The contract's order: c tanh(s / c) on the scaled logits, then the bias, then the masks (Gemma
    2 has no bias). Capping after the mask turns a masked -inf into -c, which gives masked keys
    weight. Caps 0.5 to 50, masks and both causal alignments, and a bias when the subject takes one
    (a target without bias=, as Gemma 2's attention, is checked on the cap and the masks alone).
    """
    takes_bias = missing_keyword(subject, (("attention", "bias"),)) is None
    strategy = st.tuples(_masked_case(), st.sampled_from([0.5, 2.0, 10.0, 50.0]),
                         st.booleans() if takes_bias else st.just(False))

    def measure(args):
        c, cap, with_bias = args
        bias = (normal(np.random.default_rng(c["seed"] + 2), (c["Lq"], c["Lk"]), c["dtype"])
                if with_bias else None)
        extra = {} if bias is None else {"bias": bias}
        out = subject.attention(c["q"], c["k"], c["v"], mask=c["mask"], causal=c["causal"],
                                softcap=cap, **extra)
        expected, _ = definition_attention(c["q"], c["k"], c["v"], mask=c["mask"],
                                           causal=c["causal"], bias=bias, softcap=cap)
        tol = tolerance("composite", coarser_dtype(out, c["q"]), n=c["E"] + c["Lk"])
        return compare(out, expected, tol, scale=c["v"], note=f"softcap {cap:g}")
    return for_all(ctx, strategy, measure,
                   detail="Soft-capped attention equals its float64 definition, the cap applied "
                          "after scaling and before the bias and the masks.")


@claims.claim(
    "attention.softcap_bounds_logits",
    sources=(GEMMA2,),
    kind=Kind.PROPERTY, needs=("attention_weights",), keywords=(("attention_weights", "softcap"),),
    full_precision_only=("the ratio bound is reached at saturation, where a half-precision "
                         "weight is one rounding step of its own away from it; "
                         "attention.softcap_definition checks the cap in half precision"))
def softcap_bounds_logits(subject, ctx) -> Evidence:
    r"""Soft-capped weights keep the order of the scores within a ratio of exp(2c)

    .. math:: s_{ij}\ge s_{ik}\Rightarrow A_{ij}\ge A_{ik},\qquad \max_j A_{ij}/\min_j A_{ij}\le
        e^{2c}

    c tanh(s / c) lies in (-c, c) and is increasing, so the weights of a row keep the order of its
    logits and no two differ by more than a factor e^{2c}, however large the logits (scaled up to
    |s| ~ 100 here).
    """
    strategy = st.tuples(attention_case(), st.sampled_from([0.25, 1.0, 2.0]),
                         st.sampled_from([1.0, 30.0]))

    def measure(args):
        c, cap, grow = args
        q = (c["q"] * c["dtype"].type(grow)).astype(c["dtype"])
        w = np.asarray(subject.attention_weights(q, c["k"], softcap=cap), dtype=np.float64)
        s = np.einsum("...qe,...ke->...qk", q.astype(np.float64),
                      c["k"].astype(np.float64)) / np.sqrt(c["E"])      # (..., Lq, Lk)
        if np.any(w <= 0):
            return holds(False, "a weight is not positive")
        spread = np.log(w.max(axis=-1)) - np.log(w.min(axis=-1))          # (..., Lq)
        rounding = tolerance("rounding", coarser_dtype(w, q)).rtol
        if np.any(spread > 2 * cap * (1 + rounding) + rounding):
            return holds(False, f"weights differ by more than exp(2c) = exp({2 * cap:g})")
        order = np.argsort(s, axis=-1, kind="stable")
        ws = np.take_along_axis(w, order, axis=-1)
        return holds(bool(np.all(np.diff(ws, axis=-1) >= -rounding * ws[..., 1:])),
                     "the weights do not follow the order of the logits")
    return for_all(ctx, strategy, measure,
                   detail="For caps 0.25 to 2 and logits up to ~100, the weights of every row "
                          "follow the order of its logits and stay within a factor exp(2c).")


@claims.claim(
    "attention.softcap_limit",
    sources=(GEMMA2, EQ1),
    kind=Kind.PROPERTY, needs=("attention",), keywords=(("attention", "softcap"),),
    full_precision_only=("s / c underflows in half precision for the caps that make the "
                         "limit exact to rounding (c = 1e12)"))
def softcap_limit(subject, ctx) -> Evidence:
    r"""As the cap grows, soft-capped attention becomes plain attention

    .. math:: c\tanh(s/c)=s-\tfrac{s^3}{3c^2}+O(c^{-4})\ \Rightarrow\
        \lim_{c\to\infty}\mathrm{Attention}_c=\mathrm{Attention}

    With c = 1e12 and logits below 100, |c tanh(s/c) - s| <= |s|^3 / (3 c^2) < 1e-18: the capped
    attention equals plain attention to rounding.
    """
    def measure(c):
        capped = subject.attention(c["q"], c["k"], c["v"], mask=c["mask"], causal=c["causal"],
                                   softcap=1e12)
        plain = subject.attention(c["q"], c["k"], c["v"], mask=c["mask"], causal=c["causal"])
        tol = tolerance("reduction", coarser_dtype(capped, c["q"]), n=c["E"] + c["Lk"])
        return compare(capped, plain, tol, scale=c["v"], note="cap 1e12 changed the output")
    return for_all(ctx, _masked_case(), measure,
                   detail="With c = 1e12 the soft-capped attention equals plain attention.")


# ---------------------------------------------------------------------------
# seed 000: an average loses the pair; seed 004: the numeric softmax example
# ---------------------------------------------------------------------------

SEED_000_MIDPOINT = SEED_000.at("Remark: p_i^T X = 1/2 (x_i^T + x_i'^T), 'unclear a priori how to "
                                "compute arbitrary g(x_i, x_i') via f(1/2 (x_i + x_i'))'")


@claims.claim("attention.midpoint_loses_pairs", sources=(SEED_000_MIDPOINT, EQ1),
              kind=Kind.LIMITATION, needs=("attention",))
def midpoint_loses_pairs(subject, ctx) -> Evidence:
    r"""A row attending ½–½ to x_i and x_i′ returns their midpoint, from which no f computes g(x_i,
    x_i′) = ‖x_i − x_i′‖²

    .. math:: p_i=\tfrac12(e_i+e_{i'})\Rightarrow o_i=\tfrac12(x_i+x_{i'});\
        (x,x')\ne(x+\delta,x'-\delta)\ \text{give the same } o_i,\ \|x-x'\|^2\ne\|x-x'+2\delta\|^2\
        \Rightarrow\ \nexists f:\ f(o_i)=g(x_i,x_{i'})

    The row's scores are equal (query zero), so softmax gives weights (1/2, 1/2). On the explicit
    pairs (1, -1) and (0, 0) (midpoint 0, g = 4 and 0) and on 8 random pairs with delta = t (x -
    x')/|x - x'|, t in [0.5, 2] (so g grows by 4t|x - x'| + 4t^2 > 0), the subject's outputs must
    equal the common midpoint to the rounding tolerance, so any f misses one of the two values of g
    by at least half their difference. Detects any attention whose output tells the two pairs apart
    by more than rounding (hard attention that picks one token, an unnormalised sum).
    """
    from ..checks import single_case

    rng = ctx.rng("pairs")
    pairs = [(np.array([1.0]), np.array([-1.0]), np.array([-1.0]))]     # (x, x', delta)
    for _ in range(8):
        e = int(rng.integers(1, 5))
        x, x2 = rng.standard_normal(e), rng.standard_normal(e)
        pairs.append((x, x2, rng.uniform(0.5, 2.0) * (x - x2) / np.linalg.norm(x - x2)))
    measurements, gaps = [], []
    for x, x2, delta in pairs:
        e = x.shape[0]
        q = np.zeros((1, e))
        mid = (x + x2) / 2
        outs = [np.asarray(subject.attention(q, np.stack([a, b]), np.stack([a, b])))[0]
                for a, b in ((x, x2), (x + delta, x2 - delta))]
        tol = tolerance("rounding", np.float64)
        for o in outs:
            measurements.append(compare(o, mid, tol, scale=np.abs(np.stack([x, x2])).max(),
                                        note="the output is not the midpoint"))
        g1, g2 = float(np.sum((x - x2) ** 2)), float(np.sum((x - x2 + 2 * delta) ** 2))
        gaps.append(abs(g1 - g2) / 2)
        measurements.append(holds(g1 != g2, "the two pairs have the same g"))
    return single_case(measurements,
                       detail=f"{len(pairs)} pairs of inputs with equal midpoints are mapped to "
                              f"the same output, while g differs: any f errs by at least "
                              f"{min(gaps):.3g} on one of each pair (explicit: (1, -1) and "
                              f"(0, 0), g = 4 and 0).")


SEED_004_SOFTMAX = SEED_004.at("item 10: q.k = (2.0, 2.4, -10, 1.8, -12.5), 'Softmax(...) "
                               "≈ (.3, .45, 0, .25, 0)' and the output .3V[1] + .45V[2] + .25V[4]")
SEED_004_SCORES = np.array([2.0, 2.4, -10.0, 1.8, -12.5])
SEED_004_ROUNDED = np.array([0.30, 0.45, 0.00, 0.25, 0.00])


@claims.claim("attention.seed004_softmax_example", sources=(SEED_004_SOFTMAX, EQ1),
              kind=Kind.CONSTRUCTION, needs=("softmax", "attention"))
def seed004_softmax_example(subject, ctx) -> Evidence:
    r"""softmax(2.0, 2.4, −10, 1.8, −12.5) ≈ (0.30, 0.45, 0.00, 0.25, 0.00)

    .. math:: \mathrm{softmax}(2.0,2.4,-10,1.8,-12.5)=(0.3021,0.4507,1.9\cdot10^{-6},0.2473,1.5\cdot10^{-7})\approx(0.30,0.45,0.00,0.25,0.00),\quad
        o\approx .3V_1+.45V_2+.25V_4

    A fixed example, so a construction: the subject's softmax of the five scores must equal
    exp(s_j)/sum exp(s) (float64, rounding tolerance) and round to the seed's two decimals; its
    attention with keys k_j = s_j e_1, query e_1, scale 1 and values V = I must return the same
    weights. Power: any change of a weight beyond 16 eps (e.g. an implicit extra zero logit gives
    0.29, 0.44, 0.24).
    """
    from ..checks import single_case

    s = SEED_004_SCORES
    exact = np.exp(s - s.max()) / np.sum(np.exp(s - s.max()))
    weights = np.asarray(subject.softmax(s[None]), dtype=np.float64)[0]
    k = np.zeros((5, 4))
    k[:, 0] = s
    q = np.zeros((1, 4))
    q[0, 0] = 1.0
    out = np.asarray(subject.attention(q, k, np.eye(5), scale=1.0), dtype=np.float64)[0]
    tol = tolerance("rounding", np.float64)
    measurements = [compare(weights, exact, tol, note="softmax differs from exp(s)/sum exp(s)"),
                    compare(out, exact, tol, note="the attention weights differ"),
                    holds(bool(np.array_equal(np.round(weights, 2), SEED_004_ROUNDED)),
                          f"rounded to two decimals: {np.round(weights, 2).tolist()}")]
    return single_case(measurements,
                       detail=f"softmax = {np.array2string(weights, precision=7)}; rounded "
                              f"{np.round(weights, 2).tolist()} as the seed; the attention "
                              f"output with V = I gives the same weights.")
