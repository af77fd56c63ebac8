"""Claims 9-14: FAVOR+ attention with the features held fixed.

For a fixed ``W`` FAVOR+ is an exact algorithm: ``D^-1 Q'((K')^T V)`` with
``Q' = phi(Q d^{-1/4})``, ``K' = phi(K d^{-1/4})``. The claims check it
against its explicit form built from the subject's own features (claim 9),
the causal prefix sums (claim 10) and step-by-step decoding (claim 11),
causality and where a sequence-wide stabiliser breaks it (claim 12, with a
limitation), padding and batches (claim 13), and the normaliser (claim 14).

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, §2.2
(Eq. (4)), §2.1 and Appendix B.1 (prefix sums), Appendix B (Algorithm 1:
FAVOR+ bi- and unidirectional). Katharopoulos et
al. 2020, Transformers are RNNs, ICML, §3.2-3.4. google-research/performer,
fast_attention (the sequence-wide key stabiliser).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ...checks import Measurement, compare, for_all, holds, single_case
from ...claim import Evidence, Kind
from ...registry import ClaimSet
from ...sources import KATHAROPOULOS_2020
from ...strategies import DTYPES, SEEDS, leading_dims, normal
from ...tolerance import tolerance
from .sampling import subject_features
from .sources import FAVOR, GOOGLE_FAVOR, PREFIX, SEED_RENORM

claims = ClaimSet("performer")


# ==========================================================================
# FAVOR+ inputs and the explicit formula
# ==========================================================================

#: Feature maps FAVOR+ is checked with (trig normalisers may vanish, claim 5).
FAVOR_KINDS = ("positive", "hyperbolic")


@st.composite
def favor_case(draw, *, causal: bool, lead=None, max_len: int = 10) -> dict:
    """A FAVOR+ input: ``q (..., L, d)``, ``k (..., Lk, d)``, ``v (..., Lk, dv)``, ``w (m, d)``.

    ``Lk = L`` when ``causal``. ``lead`` is a strategy for the leading
    (batch, head) dims, default 0 to 2 dims. Entries are ``N(0, scale^2)`` from
    a numpy seed; ``w`` is iid Gaussian (these claims are about FAVOR+, not the
    sampler).
    """
    lead = draw(leading_dims()) if lead is None else draw(lead)
    length = draw(st.integers(1, max_len))
    lk = length if causal else draw(st.integers(1, max_len))
    d = draw(st.integers(1, 8))
    dv = draw(st.integers(1, 5))
    m = draw(st.integers(1, 24))
    kind = draw(st.sampled_from(FAVOR_KINDS))
    dt = draw(DTYPES)
    seed = draw(SEEDS)
    scale = draw(st.sampled_from([0.3, 0.7, 1.0]))
    rng = np.random.default_rng(seed)
    return {"lead": lead, "L": length, "Lk": lk, "d": d, "dv": dv, "m": m, "kind": kind,
            "dtype": dt, "seed": seed, "scale": scale,
            "q": normal(rng, (*lead, length, d), dt, scale),
            "k": normal(rng, (*lead, lk, d), dt, scale),
            "v": normal(rng, (*lead, lk, dv), dt),
            "w": normal(rng, (m, d), dt)}


def explicit_favor(subject, c: dict, *, causal: bool, mask=None, v=None) -> np.ndarray:
    """``D^{-1} A_hat V`` with ``A_hat = Q' K'^T`` from the subject's own features, in float64.

    ``Q' = phi(Q d^{-1/4})``, ``K' = phi(K d^{-1/4})``; ``A_hat`` is lower
    triangular when ``causal`` and has zero columns where ``mask`` is False.
    Rows with ``D_ii = 0`` give 0.
    """
    dt = c["dtype"]
    scale = dt.type(c["d"] ** -0.25)
    qf = subject_features(subject, c["q"] * scale, c["w"], c["kind"])   # (..., L, F)
    kf = subject_features(subject, c["k"] * scale, c["w"], c["kind"])   # (..., Lk, F)
    a_hat = qf @ np.swapaxes(kf, -1, -2)                                # (..., L, Lk)
    if causal:
        a_hat = np.tril(a_hat)
    if mask is not None:
        a_hat = a_hat * np.asarray(mask, dtype=np.float64)[..., None, :]
    values = np.asarray(c["v"] if v is None else v, dtype=np.float64)   # (..., Lk, dv)
    den = a_hat.sum(axis=-1)                                            # (..., L)
    num = a_hat @ values                                                # (..., L, dv)
    safe = np.where(den == 0, 1.0, den)
    return np.where((den == 0)[..., None], 0.0, num / safe[..., None])  # (..., L, dv)


def _favor_tol(c: dict):
    """Projections (d), feature sums (m or 2m) and key sums (Lk) compose the error."""
    return tolerance("composite", c["dtype"], n=c["d"] + 2 * c["m"] + c["Lk"])


def _check_output(out, c: dict, shape) -> Measurement | None:
    """A failing measurement if the output has the wrong shape or dtype, else None."""
    out = np.asarray(out)
    if out.shape != tuple(shape):
        return holds(False, f"output shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != c["dtype"]:
        return holds(False, f"output dtype {out.dtype} for {c['dtype']} inputs")
    return None


# ==========================================================================
# 9. FAVOR+ equals its explicit formula
# ==========================================================================

@claims.claim("performer.favor_explicit", sources=(FAVOR, SEED_RENORM), kind=Kind.PROPERTY,
              needs=("favor_attention", "random_features"))
def favor_explicit(subject, ctx) -> Evidence:
    r"""Bidirectional FAVOR+ equals D^-1 Q'(K')^T V with the features held fixed

    .. math:: \mathrm{FAVOR}(Q,K,V)=\hat D^{-1}\big(Q'((K')^{\top}V)\big)=\hat
        D^{-1}Q'(K')^{\top}V,\quad \hat D=\mathrm{diag}\big(Q'((K')^{\top}\mathbf 1_L)\big),\
        Q'=\phi(Qd^{-1/4}),\ K'=\phi(Kd^{-1/4})

    The explicit side is built from the subject's own random_features (positive and hyperbolic) in
    float64; the subject may stabilise and reassociate as it likes. Outputs keep the input dtype.
    """
    def measure(c):
        out = subject.favor_attention(c["q"], c["k"], c["v"], c["w"], kind=c["kind"])
        bad = _check_output(out, c, (*c["lead"], c["L"], c["dv"]))
        if bad:
            return bad
        expected = explicit_favor(subject, c, causal=False)
        return compare(out, expected, _favor_tol(c), scale=c["v"],
                       note="FAVOR+ differs from D^-1 Q' K'^T V")
    return for_all(ctx, favor_case(causal=False), measure,
                   detail="Bidirectional FAVOR+ equals the explicit normalised product of the "
                          "subject's features (positive and hyperbolic, float32 and float64).")


# ==========================================================================
# 10. the causal prefix sum
# ==========================================================================

@claims.claim("performer.causal_prefix_sum",
              sources=(PREFIX, KATHAROPOULOS_2020.at("§3.2-3.3 (causal linear attention)")),
              kind=Kind.PROPERTY, needs=("favor_attention", "random_features"))
def causal_prefix_sum(subject, ctx) -> Evidence:
    r"""Unidirectional FAVOR+ (prefix sums) equals the explicit lower-triangular form

    .. math:: o_i=\frac{Q'_i\sum_{j\le i}K_j'^{\top}V_j}{Q'_i\sum_{j\le
        i}K_j'^{\top}}=\big[\mathrm{tril}(Q'K'^{\top})\big]_{i}V\,/\,\big[\mathrm{tril}(Q'K'^{\top})\mathbf
        1\big]_i

    Sequences up to 24 positions so that chunked scans cross chunk borders.
    """
    def measure(c):
        out = subject.favor_attention(c["q"], c["k"], c["v"], c["w"], causal=True, kind=c["kind"])
        bad = _check_output(out, c, (*c["lead"], c["L"], c["dv"]))
        if bad:
            return bad
        expected = explicit_favor(subject, c, causal=True)
        return compare(out, expected, _favor_tol(c), scale=c["v"],
                       note="causal FAVOR+ differs from the lower-triangular formula")
    return for_all(ctx, favor_case(causal=True, max_len=24), measure,
                   detail="Causal FAVOR+ equals tril(Q' K'^T) V normalised by its row sums.")


# ==========================================================================
# 11. recurrent decoding
# ==========================================================================

@claims.claim("performer.recurrent_equals_parallel",
              sources=(PREFIX, KATHAROPOULOS_2020.at("§3.4 (transformers are RNNs)")),
              kind=Kind.PROPERTY, needs=("favor_attention_recurrent", "favor_attention"))
def recurrent_equals_parallel(subject, ctx) -> Evidence:
    r"""Step-by-step (recurrent) FAVOR+ decoding equals the parallel causal output

    .. math:: S_t=S_{t-1}+K_t'^{\top}V_t,\ z_t=z_{t-1}+K_t'^{\top},\
        o_t=\frac{Q'_tS_t}{Q'_tz_t}=\mathrm{FAVOR}_{\text{causal}}(Q,K,V)_t
    """
    def measure(c):
        rec = subject.favor_attention_recurrent(c["q"], c["k"], c["v"], c["w"], kind=c["kind"])
        bad = _check_output(rec, c, (*c["lead"], c["L"], c["dv"]))
        if bad:
            return bad
        par = subject.favor_attention(c["q"], c["k"], c["v"], c["w"], causal=True, kind=c["kind"])
        return compare(rec, par, _favor_tol(c), scale=c["v"],
                       note="recurrent decoding differs from the parallel causal form")
    return for_all(ctx, favor_case(causal=True, max_len=16), measure,
                   detail="Decoding one position at a time with the running state (S, z) "
                          "reproduces causal FAVOR+.")


# ==========================================================================
# 12. causality, and where a sequence-wide stabiliser breaks it
# ==========================================================================

def _exploding_key_example(ctx):
    """Keys whose exponents sit near -880, and a future key that maximises every exponent.

    ``max_x (w^T x - ||x||^2/2) = ||w||^2 / 2``, attained at ``x = w``: the
    future key ``k' = w_max`` (the longest row) is the sequence maximum of the
    exponents whatever the other keys are. Earlier keys of norm 42 have
    exponents ``-882 + 42 w^T u``, at most about ``-780``: representable relative
    to their own maximum (or the sequence maximum before the edit), but
    ``exp(a_j - C)`` underflows (below ``e^{-745}``) once ``C`` is the future
    key's ``+||w||^2/2``.
    """
    rng = ctx.rng("exploding-keys")
    d, length, m, dv, edit = 4, 6, 8, 3, 4
    root = d ** 0.25                                     # keys enter as k d^{-1/4}
    w = rng.standard_normal((m, d))                                    # (m, d)
    q = 0.5 * rng.standard_normal((length, d))                         # (L, d)
    directions = rng.standard_normal((length, d))
    k = 42.0 * root * directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    v = rng.standard_normal((length, dv))                              # (L, dv)
    k2, v2 = k.copy(), v.copy()
    k2[edit] = root * w[np.argmax(np.linalg.norm(w, axis=-1))]         # the maximising key
    k2[edit + 1:] = rng.standard_normal((length - edit - 1, d))
    v2[edit:] = 5.0 * rng.standard_normal((length - edit, dv))
    return {"q": q, "k": k, "v": v, "w": w, "k2": k2, "v2": v2, "edit": edit, "d": d}


@claims.claim("performer.causality", sources=(PREFIX, GOOGLE_FAVOR), kind=Kind.PROPERTY,
              needs=("favor_attention",))
def causality(subject, ctx) -> Evidence:
    r"""Causal FAVOR+ with per-query/per-key stabilisers: output i ignores positions after i

    .. math:: k_j'=k_j,\ v_j'=v_j\ \ \forall j\le i\ \Rightarrow\
        \mathrm{FAVOR}_{\text{causal}}(Q,K',V')_i=\mathrm{FAVOR}_{\text{causal}}(Q,K,V)_i

    Later keys and values are replaced by fresh ones, including the key k = w_max d^{1/4} that
    attains the largest possible exponent ||w||^2/2 (so any sequence-wide maximum changes). A fixed
    example adds keys with exponents near -880: a key maximum taken over the whole sequence then
    underflows the earlier keys once a future key is large, while per-key stabilisers (compensated
    by log-weights) and the per-query maximum (which cancels in D^-1) leave output i exactly
    unchanged.
    """
    strategy = st.tuples(favor_case(causal=True, max_len=12), st.data())

    def measure(args):
        c, data = args
        t = data.draw(st.integers(0, c["L"] - 1), label="last_kept_position")
        rng = np.random.default_rng(c["seed"] + 1)
        k2, v2 = c["k"].copy(), c["v"].copy()
        tail = k2[..., t + 1:, :].shape
        k2[..., t + 1:, :] = normal(rng, tail, c["dtype"], 3.0 * c["scale"])
        v2[..., t + 1:, :] = normal(rng, v2[..., t + 1:, :].shape, c["dtype"], 5.0)
        if t + 1 < c["L"]:
            w64 = np.asarray(c["w"], dtype=np.float64)
            k2[..., t + 1, :] = (c["d"] ** 0.25 * w64[np.argmax(np.linalg.norm(w64, axis=-1))]
                                 ).astype(c["dtype"])
        out = np.asarray(subject.favor_attention(c["q"], c["k"], c["v"], c["w"], causal=True,
                                                 kind=c["kind"]))
        out2 = np.asarray(subject.favor_attention(c["q"], k2, v2, c["w"], causal=True,
                                                  kind=c["kind"]))
        return compare(out2[..., : t + 1, :], out[..., : t + 1, :],
                       tolerance("rounding", c["dtype"]), scale=c["v"],
                       note=f"an output at or before position {t} changed when later keys changed")
    evidence = for_all(ctx, strategy, measure,
                       detail="Replacing every key and value after position t (including a key "
                              "that maximises the exponents) leaves outputs 0..t unchanged.")
    ex = _exploding_key_example(ctx)
    out = np.asarray(subject.favor_attention(ex["q"], ex["k"], ex["v"], ex["w"], causal=True))
    out2 = np.asarray(subject.favor_attention(ex["q"], ex["k2"], ex["v2"], ex["w"], causal=True))
    keep = slice(0, ex["edit"])
    tol = tolerance("rounding", np.float64)
    fixed = compare(out2[keep], out[keep], tol, scale=ex["v"],
                    note="with keys of exponent ~ -880, editing a future key changed earlier "
                         "outputs (a sequence-wide key stabiliser underflows them)")
    finite = holds(bool(np.all(np.isfinite(out)) and np.any(out != 0)),
                   "the example with keys of exponent ~ -880 gives non-finite or zero outputs")
    example = single_case([fixed, finite], detail="", example={k: ex[k] for k in ("q", "k", "v")})
    if example.passed:
        evidence.detail += (" A fixed example with keys of exponent ~ -880 and a maximising "
                            "future key also leaves earlier outputs unchanged.")
        evidence.cases += 1
        return evidence
    return Evidence(passed=False, cases=evidence.cases + 1, max_error=example.max_error,
                    tolerance=example.tolerance, tolerance_reason=example.tolerance_reason,
                    detail=evidence.detail + example.detail,
                    falsifying_example=example.falsifying_example)


@claims.claim("performer.sequence_stabilizer_leaks", sources=(GOOGLE_FAVOR, PREFIX),
              kind=Kind.LIMITATION, needs=("random_features", "favor_attention"),
              keywords=(("random_features", "stabilizer"),))
def sequence_stabilizer_leaks(subject, ctx) -> Evidence:
    r"""Limitation: a key stabiliser taken over the whole sequence breaks causality

    .. math:: K'_j=\phi(k_j)\,e^{-C},\ C=\max_{l\le
        L,\,r}\big(w_r^{\top}k_l-\tfrac{\|k_l\|^2}{2}\big)\ \Rightarrow\ o_i\ \text{depends on}\
        k_{j},\ j>i

    In exact arithmetic a factor e^{-C} common to all keys cancels in D^-1; in floating point C
    depends on future keys, and once a future key raises C the earlier keys' features exp(a_j - C)
    underflow. The causal prefix sums are built here from the subject's random_features with
    stabilizer = C (the sequence max, computed by the claim); the subject's own causal FAVOR+ is
    shown unaffected on the same example.
    """
    ex = _exploding_key_example(ctx)
    d, w = ex["d"], ex["w"]
    scale = d ** -0.25

    def sequence_stabilised(k, v):
        qs, ks = ex["q"] * scale, k * scale                             # (L, d)
        q_expo = qs @ w.T - 0.5 * np.sum(qs * qs, axis=-1, keepdims=True)  # (L, m)
        k_expo = ks @ w.T - 0.5 * np.sum(ks * ks, axis=-1, keepdims=True)  # (L, m)
        qf = _features_stab(subject, qs, w, np.max(q_expo, axis=-1, keepdims=True))
        kf = _features_stab(subject, ks, w, np.max(k_expo).reshape(1, 1))
        a_hat = np.tril(qf @ kf.T)                                      # (L, L)
        den = a_hat.sum(axis=-1)                                        # (L,)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (a_hat @ v) / den[:, None], den                      # (L, dv), (L,)

    out, den = sequence_stabilised(ex["k"], ex["v"])
    out2, den2 = sequence_stabilised(ex["k2"], ex["v2"])
    keep = slice(0, ex["edit"])
    before, after = out[keep], out2[keep]
    changed = ~np.isclose(before, after, rtol=1e-6, atol=1e-9) | ~np.isfinite(after)
    per_key = np.asarray(subject.favor_attention(ex["q"], ex["k"], ex["v"], w, causal=True))
    per_key2 = np.asarray(subject.favor_attention(ex["q"], ex["k2"], ex["v2"], w, causal=True))
    gap = float(np.max(np.abs(per_key2[keep] - per_key[keep])))
    measurements = [
        holds(bool(np.all(np.isfinite(before)) and np.all(den[keep] > 0)),
              "before the edit the sequence-stabilised outputs are not finite"),
        holds(bool(np.any(changed)),
              "editing a future key did not change any earlier output: no leak shown"),
        holds(gap <= tolerance("rounding", np.float64).rtol * float(np.max(np.abs(ex["v"]))),
              f"the subject's own causal FAVOR+ changed by {gap:.2e} on the same edit"),
    ]
    rows = int(np.sum(np.any(changed, axis=-1)))
    zeroed = int(np.sum(den2[keep] == 0))
    return single_case(
        measurements, example={"q": ex["q"], "k": ex["k"], "k_edited": ex["k2"]},
        detail=f"Editing key {ex['edit']} (to the exponent-maximising w_max) changes {rows} of "
               f"the {ex['edit']} earlier outputs of the sequence-stabilised form; {zeroed} "
               f"of their normalisers underflow to 0. The subject's causal FAVOR+ moves by "
               f"{gap:.1e}.")


def _features_stab(subject, x, w, stabilizer) -> np.ndarray:
    out = np.asarray(subject.random_features(x, w, kind="positive", stabilizer=stabilizer),
                     dtype=np.float64)
    return out


# ==========================================================================
# 13. padding and batches
# ==========================================================================

@claims.claim("performer.padding_and_batch", sources=(FAVOR, PREFIX), kind=Kind.PROPERTY,
              needs=("favor_attention",))
def padding_and_batch(subject, ctx) -> Evidence:
    r"""Padded keys have no effect; batch members are independent

    .. math:: M_j=0\Rightarrow o_i\ \text{independent of}\ (k_j,v_j);\quad
        \mathrm{FAVOR}(Q,K,V)_b=\mathrm{FAVOR}(Q_b,K_b,V_b)

    Key-padding masks (..., Lk) with bidirectional and causal FAVOR+: rewriting padded keys and
    values leaves the output unchanged; bidirectionally it equals FAVOR+ on the unpadded keys
    alone; each batch (and head) member equals FAVOR+ run on it alone.
    """
    lead = st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple)
    strategy = st.booleans().flatmap(
        lambda causal: st.tuples(favor_case(causal=causal, lead=lead), st.just(causal)))

    def measure(args):
        c, causal = args
        rng = np.random.default_rng(c["seed"] + 2)
        mask = rng.random((*c["lead"], c["Lk"])) < 0.7                   # (..., Lk)
        mask[..., 0] = True
        out = np.asarray(subject.favor_attention(c["q"], c["k"], c["v"], c["w"], causal=causal,
                                                 kind=c["kind"], mask=mask))
        k2, v2 = c["k"].copy(), c["v"].copy()
        k2[~mask] = normal(rng, k2[~mask].shape, c["dtype"], 3.0)
        v2[~mask] = normal(rng, v2[~mask].shape, c["dtype"], 5.0)
        out2 = np.asarray(subject.favor_attention(c["q"], k2, v2, c["w"], causal=causal,
                                                  kind=c["kind"], mask=mask))
        m = compare(out2, out, tolerance("rounding", c["dtype"]), scale=c["v"],
                    note="rewriting padded keys/values changed the output")
        if not m.ok:
            return m
        tol = _favor_tol(c)
        worst = m
        for idx in np.ndindex(*c["lead"]):           # loop over batch/head members
            alone = subject.favor_attention(c["q"][idx], c["k"][idx], c["v"][idx], c["w"],
                                            causal=causal, kind=c["kind"], mask=mask[idx])
            m = compare(alone, out[idx], tol, scale=c["v"],
                        note=f"batch member {idx} differs when run alone")
            if not m.ok:
                return m
            if not causal:
                keep = mask[idx]
                short = subject.favor_attention(c["q"][idx], c["k"][idx][keep],
                                                c["v"][idx][keep], c["w"], kind=c["kind"])
                m = compare(short, out[idx], tol, scale=c["v"],
                            note=f"member {idx}: masking differs from dropping the padded keys")
                if not m.ok:
                    return m
            worst = m if m.error / m.rtol > worst.error / max(worst.rtol, 1e-300) else worst
        return worst
    return for_all(ctx, strategy, measure,
                   detail="Padded keys are ignored (bidirectional and causal); every batch/head "
                          "member equals FAVOR+ on it alone and, bidirectionally, on its "
                          "unpadded keys.")


# ==========================================================================
# 14. normalisation
# ==========================================================================

@claims.claim("performer.normalization", sources=(FAVOR, SEED_RENORM), kind=Kind.PROPERTY,
              needs=("favor_attention",))
def normalization(subject, ctx) -> Evidence:
    r"""With V = 1 every output is exactly 1: the normaliser is present

    .. math:: V=\mathbf 1\ \Rightarrow\ \hat D^{-1}Q'(K')^{\top}\mathbf 1=\mathbf 1

    Bidirectional and causal, with key-padding masks; rows that see no unpadded key return 0 by the
    contract.
    """
    strategy = st.booleans().flatmap(
        lambda causal: st.tuples(favor_case(causal=causal), st.just(causal), st.booleans()))

    def measure(args):
        c, causal, use_mask = args
        rng = np.random.default_rng(c["seed"] + 3)
        mask = rng.random((*c["lead"], c["Lk"])) < 0.7 if use_mask else None
        ones = np.ones(c["v"].shape, dtype=c["dtype"])
        out = subject.favor_attention(c["q"], c["k"], ones, c["w"], causal=causal,
                                      kind=c["kind"], mask=mask)
        visible = np.ones((*c["lead"], c["L"], c["Lk"]), dtype=bool)
        if causal:
            visible &= np.tril(np.ones((c["L"], c["Lk"]), dtype=bool))
        if mask is not None:
            visible &= mask[..., None, :]
        expected = np.broadcast_to(visible.any(axis=-1)[..., None].astype(np.float64),
                                   ones.shape[:-2] + (c["L"], c["dv"]))
        return compare(out, expected, _favor_tol(c), scale=np.ones(1),
                       note="with V = 1 an output is not 1")
    return for_all(ctx, strategy, measure,
                   detail="FAVOR+ of V = 1 is 1 in every row that sees a key (bidirectional, "
                          "causal, with padding).")
