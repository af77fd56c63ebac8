"""Heads: multi-head, grouped-query and multi-query attention, the KV cache,
and the rank of the attention logits.

References
----------
Vaswani et al. 2017, §3.2.2 (MultiHead(Q,K,V) = Concat(head_1..head_h) W^O).
Seed 003: separate Q/K/V matrices per head, concatenate, multiply by W^O.
Shazeer 2019 (MQA); Ainslie et al. 2023 (GQA), §2.
Pope et al. 2023, §2 (KV-cache memory). Seed 000: "X W_q^T W_k X^T ... often low rank".
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..capabilities import missing_keyword
from ..checks import Measurement, compare, for_all, holds, single_case
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import (AINSLIE_2023, BHOJANAPALLI_2020, POPE_2023, SEED_000, SEED_003,
                       SHAZEER_2019, VASWANI_2017)
from ..declared import self_attention_only
from ..strategies import DTYPES, SEEDS, attention_case, normal, random_mask
from ..tolerance import tolerance, weyl_tolerance
from ._common import coarser_dtype

claims = ClaimSet("heads")

#: Why GQA against MHA has no half-precision baseline (two claims compare them).
_GQA_AGAINST_MHA = (
    'it compares two different computations of the subject (grouped-query against multi-'
    'head attention): in half precision two correct kernels differ by the rounding of '
    'their intermediates (the q, k, v projections), which the naive baseline, computing '
    'both sides by one formula, does not show; PyTorch 2.13.0 differs by 1.1 to 1.4 '
    'eps there')

MHA = VASWANI_2017.at("§3.2.2")


@st.composite
def _mha_case(draw, *, gqa: bool = False):
    seed = draw(SEEDS)
    h = draw(st.integers(1, 4))
    g = draw(st.sampled_from([d for d in range(1, h + 1) if h % d == 0])) if gqa else h
    e = draw(st.sampled_from([4, 6, 8]))
    d_head = draw(st.integers(1, 5))
    b = draw(st.integers(1, 2))
    lq = draw(st.integers(1, 7))
    lk = draw(st.integers(1, 7))
    dt = draw(DTYPES)
    causal = draw(st.sampled_from([False, True]))
    rng = np.random.default_rng(seed)
    x_q = normal(rng, (b, lq, e), dt)
    if self_attention_only():                  # a self-attention target (--as gqa_self)
        lk, x_kv = lq, x_q
    else:
        x_kv = normal(rng, (b, lk, e), dt)
    return {"seed": seed, "H": h, "G": g, "E": e, "d_head": d_head, "B": b, "Lq": lq, "Lk": lk,
            "dtype": dt, "causal": causal, "x_q": x_q, "x_kv": x_kv}


@claims.claim(
    "heads.concat_then_project",
    sources=(MHA, SEED_003.at("Multi-Headed Attention: concatenate, then multiply with W^O")),
    full_precision_only=(
        'it compares two different computations of the subject (multi-head attention against '
        'its heads run one by one): in half precision two correct kernels differ by the '
        'rounding of their intermediates, which the naive baseline, computing both sides by '
        'one formula, does not show'),
    kind=Kind.PROPERTY, needs=("multi_head_attention", "attention"))
def concat_then_project(subject, ctx) -> Evidence:
    r"""Multi-head attention is per-head attention, concatenated, then projected by W_O

    .. math:: \mathrm{MultiHead}(X_q,X_{kv})=\mathrm{Concat}(\mathrm{head}_1,\dots,\mathrm{head}_h)W^O+b^O,\
        \mathrm{head}_i=\mathrm{Attention}(X_qW_i^Q+b_i^Q,\,X_{kv}W_i^K+b_i^K,\,X_{kv}W_i^V+b_i^V)
    """
    from transformer_theory.impl.attention import init_multi_head

    def measure(c):
        rng = np.random.default_rng(c["seed"] + 1)
        p = init_multi_head(c["E"], c["H"], rng, d_head=c["d_head"], dtype=c["dtype"])
        out = subject.multi_head_attention(c["x_q"], c["x_kv"], p, causal=c["causal"])
        heads = []
        for i in range(c["H"]):
            q = c["x_q"] @ p.w_q[i] + p.b_q[i]                    # (B, Lq, Dh)
            k = c["x_kv"] @ p.w_k[i] + p.b_k[i]                   # (B, Lk, Dh)
            v = c["x_kv"] @ p.w_v[i] + p.b_v[i]                   # (B, Lk, Dv)
            heads.append(np.asarray(subject.attention(q, k, v, causal=c["causal"])))
        expected = np.concatenate(heads, axis=-1) @ p.w_o + p.b_o   # (B, Lq, E)
        tol = tolerance("composite", c["dtype"], n=2 * c["E"] + c["Lk"] + c["H"] * c["d_head"])
        return compare(out, expected, tol)
    return for_all(ctx, _mha_case(), measure,
                   detail="The subject's multi-head output equals its single-head attention run "
                          "per head on the projected inputs, concatenated and projected.")


@claims.claim("heads.batched_equals_loop",
              sources=(VASWANI_2017.at("§3.2.2 (heads computed in parallel)"),),
              kind=Kind.PROPERTY, needs=("attention",))
def batched_equals_loop(subject, ctx) -> Evidence:
    r"""Attention over batch and head dimensions equals a loop over them

    .. math:: \mathrm{Attention}(Q,K,V)_{b,h}=\mathrm{Attention}(Q_{b,h},K_{b,h},V_{b,h})

    The batched tensor form (B, H, L, E) against one call per (b, h); masks of shape (B, 1, Lq, Lk)
    broadcast over heads.
    """
    strategy = attention_case(lead=(2, 3))

    def measure(c):
        rng = np.random.default_rng(c["seed"] + 2)
        mask = random_mask(rng, (2, 1, c["Lq"], c["Lk"]))
        out = np.asarray(subject.attention(c["q"], c["k"], c["v"], mask=mask))
        looped = np.empty_like(out)
        for b in range(2):
            for h in range(3):
                looped[b, h] = subject.attention(c["q"][b, h], c["k"][b, h], c["v"][b, h],
                                                 mask=mask[b, 0])
        tol = tolerance("reduction", coarser_dtype(c["q"]), n=c["E"] + c["Lk"])
        return compare(out, looped, tol, scale=c["v"])
    return for_all(ctx, strategy, measure,
                   detail="One call on (B=2, H=3, L, E) equals six calls on (L, E).")


@claims.claim("heads.gqa_equals_repeated_mha", sources=(AINSLIE_2023.at("§2"), SHAZEER_2019),
              full_precision_only=_GQA_AGAINST_MHA, kind=Kind.PROPERTY,
              needs=("grouped_query_attention", "multi_head_attention"))
def gqa_equals_repeated_mha(subject, ctx) -> Evidence:
    r"""Grouped-query attention is multi-head attention with K/V heads repeated by the mapping

    .. math:: \mathrm{GQA}(X;W^Q_{1..H},W^K_{1..G},W^V_{1..G})=\mathrm{MHA}(X;W^Q_h,W^K_{g(h)},W^V_{g(h)}),\quad
        g(h)=\lfloor h/(H/G)\rfloor

    The head-to-group mapping is contiguous blocks (PyTorch enable_gqa / repeat_interleave).
    """
    from transformer_theory.impl.attention import gqa_to_mha_params, init_grouped_query

    def measure(c):
        rng = np.random.default_rng(c["seed"] + 3)
        p = init_grouped_query(c["E"], c["H"], c["G"], rng, d_head=c["d_head"], dtype=c["dtype"])
        out = subject.grouped_query_attention(c["x_q"], c["x_kv"], p, causal=c["causal"])
        ref = subject.multi_head_attention(c["x_q"], c["x_kv"], gqa_to_mha_params(p),
                                           causal=c["causal"])
        tol = tolerance("composite", c["dtype"], n=2 * c["E"] + c["Lk"] + c["H"] * c["d_head"])
        return compare(out, ref, tol, note=f"H={c['H']}, G={c['G']}")
    return for_all(ctx, _mha_case(gqa=True), measure,
                   detail="For every divisor G of H, GQA equals MHA with each query head h using "
                          "K/V group h // (H/G).")


@claims.claim("heads.gqa_extremes", sources=(AINSLIE_2023.at("§2"), SHAZEER_2019.at("§3")),
              full_precision_only=_GQA_AGAINST_MHA, kind=Kind.PROPERTY,
              needs=("grouped_query_attention", "multi_head_attention"))
def gqa_extremes(subject, ctx) -> Evidence:
    r"""GQA with G = H is multi-head attention; with G = 1 it is multi-query attention

    .. math:: \mathrm{GQA}_{G=H}=\mathrm{MHA},\qquad \mathrm{GQA}_{G=1}=\mathrm{MQA}:\ W^K_h=W^K,\
        W^V_h=W^V\ \forall h
    """
    from transformer_theory.impl.attention import (init_grouped_query, init_multi_head,
                                                   mha_to_gqa_params)
    from transformer_theory.impl.contract import MultiHeadParams

    def measure(c):
        rng = np.random.default_rng(c["seed"] + 4)
        h, e, dh, dt = c["H"], c["E"], c["d_head"], c["dtype"]
        mha = init_multi_head(e, h, rng, d_head=dh, dtype=dt)
        tol = tolerance("composite", dt, n=2 * e + c["Lk"] + h * dh)
        full = compare(subject.grouped_query_attention(c["x_q"], c["x_kv"], mha_to_gqa_params(mha)),
                       subject.multi_head_attention(c["x_q"], c["x_kv"], mha), tol, note="G = H")
        if not full.ok:
            return full
        mq = init_grouped_query(e, h, 1, rng, d_head=dh, dtype=dt)
        shared = MultiHeadParams(
            w_q=mq.w_q, b_q=mq.b_q, w_o=mq.w_o, b_o=mq.b_o,
            w_k=np.repeat(mq.w_k, h, axis=0), b_k=np.repeat(mq.b_k, h, axis=0),
            w_v=np.repeat(mq.w_v, h, axis=0), b_v=np.repeat(mq.b_v, h, axis=0))
        return compare(subject.grouped_query_attention(c["x_q"], c["x_kv"], mq),
                       subject.multi_head_attention(c["x_q"], c["x_kv"], shared), tol,
                       note="G = 1")
    return for_all(ctx, _mha_case(), measure,
                   detail="G = H reproduces MHA with the same weights; G = 1 reproduces MHA whose "
                          "heads all share one K/V projection.")


@claims.claim(
    "heads.kv_cache_size",
    sources=(POPE_2023.at("§2"), SHAZEER_2019.at("§2 (memory bandwidth of incremental decoding)")),
    kind=Kind.PROPERTY, needs=("kv_cache_bytes", "init_kv_cache"))
def kv_cache_size(subject, ctx) -> Evidence:
    r"""KV-cache size is 2 · layers · kv_heads · d_head · L · batch · bytes

    .. math:: \text{bytes}=2\cdot n_{\text{layers}}\cdot G\cdot d_{\text{head}}\cdot L\cdot
        B\cdot\text{sizeof(dtype)}

    The formula and the bytes of the arrays an empty cache actually allocates (one layer), for H/G
    = 1..3. When the subject's init_kv_cache takes window=w, a sliding-window cache allocates
    min(L, w + 1) positions instead of L.
    """
    from transformer_theory.impl.attention import init_grouped_query

    windows = (st.one_of(st.none(), st.integers(0, 80))
               if missing_keyword(subject, (("init_kv_cache", "window"),)) is None
               else st.just(None))
    strategy = st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 8), st.integers(1, 64),
                         st.integers(1, 3), DTYPES, st.integers(1, 3), windows)

    def measure(args):
        layers, g, dh, length, b, dt, r, window = args
        expected = 2 * layers * g * dh * length * b * dt.itemsize
        got = subject.kv_cache_bytes(layers, g, dh, length, b, dt)
        if got != expected:
            return holds(False, f"kv_cache_bytes gave {got}, expected {expected}")
        p = init_grouped_query(8, g * r, g, np.random.default_rng(0), d_head=dh, dtype=dt)
        extra = {} if window is None else {"window": window}
        cache = subject.init_kv_cache(p, (b,), length, dt, **extra)
        actual = getattr(cache, "nbytes", None)
        if actual is None:
            actual = int(cache.k.nbytes + cache.v.nbytes)
        kept = length if window is None else min(length, window + 1)
        one_layer = 2 * g * dh * kept * b * dt.itemsize
        return holds(int(actual) == one_layer,
                     f"an allocated cache (window {window}) holds {actual} bytes, the formula "
                     f"says {one_layer}")
    return for_all(ctx, strategy, measure,
                   detail="The formula holds and equals the bytes of the allocated cache arrays; "
                          "a window-w cache holds min(L, w + 1) positions.")


@claims.claim(
    "heads.low_rank_logits",
    sources=(SEED_000.at("X W_q^T W_k X^T ... often low rank"), MHA),
    full_precision_only=(
        'a rank statement computed by SVD in float64 on float64 weights; rounding to half '
        'precision perturbs the rank-revealing singular values by eps * |W|, which the claim '
        'does not model'),
    kind=Kind.PROPERTY, needs=("attention_weights",))
def low_rank_logits(subject, ctx) -> Evidence:
    r"""Attention logits have rank at most min(d_head, L)

    .. math:: \operatorname{rank}(XW_QW_K^{\top}X^{\top})\le\operatorname{rank}(W_QW_K^{\top})\le\min(d_{\text{head}},L)

    The logits are read back from the subject's weights as log A_ij minus its row mean (which
    removes the row's log-sum-exp and cannot raise the rank), with q = X W_Q and k = X W_K for
    d_head < d_model, q scaled so that the largest |logit| is 30 (rank is scale invariant; the
    spread is bounded below, and no weight underflows even in a float32 softmax). The (d_head +
    1)-th singular value, relative to the largest, must stay within Weyl's bound for the
    read-back's entry errors (the log turns each weight's relative error into an absolute one),
    which divides by sigma_1: the conditioning of reading logits back through a log.
    """
    strategy = st.tuples(SEEDS, st.integers(1, 3), st.integers(1, 4), st.integers(0, 6),
                         st.integers(0, 6))

    def measure(args):
        seed, dh, extra_e, extra_q, extra_k = args
        rng = np.random.default_rng(seed)
        e = dh + extra_e
        lq, lk = dh + 1 + extra_q, dh + 1 + extra_k
        wq, wk = rng.standard_normal((e, dh)), rng.standard_normal((e, dh))    # (E, Dh)
        x_q, x_k = rng.standard_normal((lq, e)), rng.standard_normal((lk, e))
        q, k = x_q @ wq, x_k @ wk                                  # (Lq, Dh), (Lk, Dh)
        # Rank is scale invariant: put the largest |logit| at 30, so that the spread of the
        # logits is bounded below (the read-back is conditioned by sigma_1) and no weight
        # underflows, even in a float32 softmax (exp(-60) ~ 1e-26 is a normal float32).
        q = q * (30.0 / (float(np.max(np.abs(q @ k.T))) / np.sqrt(dh)))
        w = np.asarray(subject.attention_weights(q, k), dtype=np.float64)
        if np.any(w <= 0):
            return holds(False, "a weight underflowed to 0; logits cannot be read back")
        logw = np.log(w)                                           # (Lq, Lk)
        centred = logw - logw.mean(axis=-1, keepdims=True)
        sv = np.linalg.svd(centred, compute_uv=False)
        r = min(dh, lq, lk)
        tail = float(sv[r] / sv[0]) if sv.size > r else 0.0
        # Each read-back entry's absolute error, in eps (first order): the logits s carry
        # dh eps A (A = max scale sum_l |q_il k_jl|), exp(s - m) adds it twice more plus
        # 2 S eps (S = max |s|) and the row sum Lk eps, so w_ij is within (4 dh A + 4 S + Lk
        # + 4) eps relatively, which log turns into an absolute error, plus eps |log w| <=
        # eps (2 S + log Lk); the row mean at most doubles it and adds Lk eps (2 S + log Lk).
        a = float(np.max(np.abs(q) @ np.abs(k).T)) / np.sqrt(dh)
        s_max = 30.0
        log_w = 2 * s_max + np.log(lk)
        units = 2 * (4 * dh * a + 4 * s_max + lk + 4 + log_w) + lk * log_w
        tol = weyl_tolerance(np.float64, (lq, lk), units, float(sv[0]))
        return Measurement(tail, tol, f"singular value {r + 1} is {tail:.2e} of the largest "
                                      f"(rank exceeds d_head = {dh})")
    return for_all(ctx, strategy, measure,
                   detail="With d_head < d_model the read-back logit matrix has no singular value "
                          "beyond the d_head-th (relative to the largest) above rounding.")


# --------------------------------------------------------------------------
# the low-rank bottleneck as a limitation (Bhojanapalli et al. 2020)
# --------------------------------------------------------------------------

BOTTLENECK = BHOJANAPALLI_2020.at(
    'abstract: "the scaling between the number of heads and the size of each head in the '
    'current architecture gives rise to a low-rank bottleneck in attention heads"')

#: The explicit target: n = 3, T_ij = e^{[i = j]} / (e + 2). Its log is I - log(e + 2), so
#: its centred log is J = I - 11^T/3, of rank 2 with singular values 1, 1, 0.
BOTTLENECK_N = 3


def bottleneck_target() -> np.ndarray:
    """The positive row-stochastic target ``T = softmax(I)`` (rows), n = 3."""
    t = np.exp(np.eye(BOTTLENECK_N))
    return t / t.sum(axis=1, keepdims=True)


def _centred_log(w: np.ndarray) -> np.ndarray:
    logw = np.log(w)
    return logw - logw.mean(axis=-1, keepdims=True)


@claims.claim(
    "heads.low_rank_bottleneck_target",
    sources=(BOTTLENECK, SEED_000.at("X W_q^T W_k X^T ... often low rank")),
    full_precision_only=(
        'the distance is read back through a log and the rank through an SVD, both in float64; '
        'rounding to half precision moves them by eps |logit|, which the claim does not model'),
    kind=Kind.LIMITATION, needs=("attention_weights",))
def low_rank_bottleneck_target(subject, ctx) -> Evidence:
    r"""Limitation: with d_head = 1 a head reaches full-rank weights, yet not the target softmax(I)

    .. math:: d_{\text{head}}=1,\ n=6:\ \operatorname{rank}\mathrm{softmax}(qk^{\top})=6\ \text{is
        possible};\ \text{but } T=\mathrm{softmax}(I_3)\ \big(T_{ii}=\tfrac{e}{e+2},\
        T_{ij}=\tfrac1{e+2}\big):\ \forall q,k\in\mathbb R^{3\times1}:\
        \big\|\log\mathrm{softmax}(qk^{\top})J-\log T\,J\big\|_F\ \ge\ \sigma_2(J)=1,\quad
        J=I-\tfrac13\mathbf 1\mathbf 1^{\top}

    rank(P) itself is not bounded by d_head: q_i = k_i = i - 5/2 (i = 0..5) give P_ij proportional
    to e^{q_i k_j} = a_i^{j - 5/2}, a_i = e^{q_i} distinct, a Vandermonde matrix between two
    diagonals: rank 6 (its sixth singular value is 6.8e-3 of the first, above Weyl's bound for the
    read-back in float64 and in float32, 2.6e-4, so that a subject computing in float32, such as
    jax, shows it too). What is bounded is log P minus its row constants: log P J = S J for the
    logits S = q k^T, so rank(log P J) <= d_head, and by Eckart-Young its Frobenius distance to the
    target's centred log J is at least sqrt(sigma_2(J)^2 + sigma_3(J)^2) = 1: J is a symmetric
    projection of rank 2, singular values 1, 1, 0 (checked exactly in rationals with sympy). The
    check minimises that distance over q, k in R^{3x1} with the subject's weights (Nelder-Mead from
    q = k = 0 and five random starts) and requires it to stay >= 1 up to the read-back's rounding.
    Power: a head whose weights are not softmax of a rank-1 logit matrix (a hard-wired diagonal
    bias, softmax(qk^T + I), reaches T at q = 0) is rejected with distance 0; any extra term that
    lowers the reachable distance below 1 - 1e-12 is rejected.
    """
    import sympy as sp
    from scipy.optimize import minimize

    # exact: log T J = J (log T = I - log(e + 2) 1 1^T) and J has singular values 1, 1, 0
    j_exact = sp.eye(3) - sp.ones(3, 3) / 3
    log_t = sp.Matrix(3, 3, lambda i, j: sp.log(sp.exp(int(i == j)) / (sp.E + 2)))
    centred_ok = sp.simplify(sp.expand_log(log_t, force=True) * j_exact - j_exact) == sp.zeros(3, 3)
    spectrum_ok = sorted((j_exact.T * j_exact).eigenvals(multiple=True)) == [0, 1, 1]
    measurements = [holds(bool(centred_ok and spectrum_ok),
                          "exact: log T J = J with singular values 1, 1, 0 does not hold")]
    target = _centred_log(bottleneck_target())                   # = J
    # rank(P) = 6 with d_head = 1
    q = (np.arange(6.0) - 2.5)[:, None]                          # (6, 1), centred positions
    k = q.copy()                                                 # (6, 1)
    w = np.asarray(subject.attention_weights(q, k), dtype=np.float64)
    sv = np.linalg.svd(w, compute_uv=False)
    tol = weyl_tolerance(np.float64, (6, 6), 4 * 6 * 15 + 8, float(sv[0]))
    measurements.append(Measurement(
        float(tol.rtol / (sv[-1] / sv[0])), type(tol)(1.0, tol.rule, tol.reason),
        f"sigma_6/sigma_1 = {sv[-1] / sv[0]:.2e}: rank(P) < 6 within rounding"))

    def distance(params):
        qq, kk = params[:3, None], params[3:, None]              # (3, 1) each
        ww = np.asarray(subject.attention_weights(qq, kk), dtype=np.float64)
        if np.any(ww <= 0):
            return np.inf
        return float(np.linalg.norm(_centred_log(ww) - target))

    rng = ctx.rng("starts")
    starts = [np.zeros(6)] + [rng.standard_normal(6) for _ in range(5)]
    best, best_x = np.inf, None
    for x0 in starts:
        res = minimize(distance, x0, method="Nelder-Mead",
                       options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 400})
        if res.fun < best:
            best, best_x = float(res.fun), res.x
    s_max = float(np.max(np.abs(best_x[:3, None] * best_x[None, 3:]))) if best_x is not None else 0
    read_back = tolerance("composite", np.float64, n=BOTTLENECK_N)
    allowance = read_back.rtol * 3 * (1 + 2 * s_max + np.log(BOTTLENECK_N))
    measurements.append(Measurement(
        max(0.0, 1.0 - best), type(read_back)(allowance, read_back.rule,
                                              "the read-back log's rounding: composite rule times "
                                              "(1 + 2 max|s| + log n), over the 3 x 3 entries"),
        f"the distance reached {best:.6f} < sigma_2(J) = 1"))
    return single_case(measurements, cases=1 + len(starts),
                       detail=f"With d_head = 1: rank(P) = 6 for n = 6 (sigma_6/sigma_1 = "
                              f"{sv[-1] / sv[0]:.2e}); the least centred-log distance to "
                              f"softmax(I_3) found over q, k is {best:.6f} (>= 1 claimed).")
