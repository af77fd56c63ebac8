"""Conformance claims: whole sequence maps, and the LayerNorm definition.

For a whole model declared as a sequence map (``transformer-theory check
--as encoder`` or ``--as causal``) the claims that hold of any transformer
without positional encoding, or of any causal one; and LayerNorm against its
definition (Ba et al. 2016) for implementations of ``layer_norm`` alone.

References
----------
Vaswani et al. 2017, §3.1, §3.2.3, §3.5; Ba et al. 2016, §3; seeds 003 and 004.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ._common import causal_allowed, coarser_dtype
from ..checks import compare, for_all, holds
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import BA_2016, SEED_003, SEED_004, VASWANI_2017
from ..strategies import DTYPES, SEEDS, attention_case, normal, sequence_case
from ..tolerance import tolerance

claims = ClaimSet("conformance")

NO_POSITION = VASWANI_2017.at("§3.5")
DECODER_MASK = VASWANI_2017.at("§3.2.3")


def _map_width(subject) -> int:
    width = subject.options.get("d_model")
    if not isinstance(width, int):
        raise ValueError("subject option d_model: a sequence map needs its width "
                         "(--option d_model=E)")
    return width


def _map_tolerance(subject, dtype, length: int):
    """Composite tolerance over the reductions of n_layers transformer blocks of width E.

    Per block: the Q/K/V and output projections and the FFN's two layers
    (about 4E + d_ff terms) and the attention average over L positions. An
    opaque map declares its depth and FFN width with the options ``n_layers``
    (default 1) and ``d_ff`` (default 4E).
    """
    e = _map_width(subject)
    layers = int(subject.options.get("n_layers", 1))
    d_ff = int(subject.options.get("d_ff", 4 * e))
    return tolerance("composite", dtype, n=layers * (4 * e + length + d_ff))


def _map_case(subject, **kw) -> st.SearchStrategy:
    """A sequence case of the map's width and ``st.data()`` for draws that depend on it."""
    return st.tuples(sequence_case(_map_width(subject), **kw), st.data())


@claims.claim(
    "conformance.encoder_map_permutation_equivariance",
    sources=(NO_POSITION, SEED_003.at("Transformer Architecture is invariant to permutations")),
    kind=Kind.PROPERTY, needs=("encoder_map",))
def encoder_map_permutation_equivariance(subject, ctx) -> Evidence:
    r"""A sequence map without positional encoding is permutation equivariant

    .. math:: f(PX)=P\,f(X)\quad\forall\ \text{permutations }P\ \text{of the positions}

    For a whole model declared as an encoder (transformer-theory check --as encoder): attention,
    FFN, LayerNorm and residuals treat positions as a set unless position is injected.
    """
    width = _map_width(subject)

    def measure(c):
        out = np.asarray(subject.encoder_map(c["x"]))
        if out.shape[:2] != (c["B"], c["L"]):
            return holds(False, f"output shape {out.shape} for input {c['x'].shape}")
        permuted = np.asarray(subject.encoder_map(c["x"][:, c["perm"]]))
        tol = _map_tolerance(subject, coarser_dtype(out, c["x"]), c["L"])
        return compare(permuted, out[:, c["perm"]], tol, note="f(PX) != P f(X)")
    return for_all(ctx, sequence_case(width), measure,
                   detail="Permuting the positions of the input permutes the outputs the same way.")


@claims.claim("conformance.encoder_map_batch_independence",
              sources=(VASWANI_2017.at("§3.1"), BA_2016.at("§3 (statistics per training case)")),
              kind=Kind.PROPERTY, needs=("encoder_map",))
def encoder_map_batch_independence(subject, ctx) -> Evidence:
    r"""A sequence map treats batch members independently

    .. math:: X_b=X'_b\ \Rightarrow\ f(X)_b=f(X')_b,\qquad f(X)_b=f(X_b)

    Changing the other members of the batch, or running the member alone, leaves its output
    unchanged: no batch statistics, no mixing across the batch axis.
    """
    return _batch_independence(subject, ctx, "encoder_map")


def _batch_independence(subject, ctx, name: str) -> Evidence:
    fn = getattr(subject, name)
    strategy = _map_case(subject, min_batch=2)

    def measure(args):
        c, data = args
        b = data.draw(st.integers(0, c["B"] - 1), label="member")
        rng = np.random.default_rng(c["seed"] + 1)
        other = (3.0 * rng.standard_normal(c["x"].shape) + 2.0).astype(c["dtype"])
        other[b] = c["x"][b]
        out = np.asarray(fn(c["x"]))
        tol = _map_tolerance(subject, coarser_dtype(out, c["x"]), c["L"])
        changed = compare(np.asarray(fn(other))[b], out[b], tol,
                          note=f"member {b} changed when the other members changed")
        if not changed.ok:
            return changed
        alone = compare(np.asarray(fn(c["x"][b:b + 1]))[0], out[b], tol,
                        note=f"member {b} alone differs from member {b} in the batch")
        return max((changed, alone), key=lambda m: m.error)
    return for_all(ctx, strategy, measure,
                   detail="Replacing the other batch members, or running a member alone, leaves "
                          "its output unchanged.")


@claims.claim("conformance.causal_map_future_invariance",
              sources=(DECODER_MASK, SEED_004.at("items 24–26")), kind=Kind.PROPERTY,
              needs=("causal_map",))
def causal_map_future_invariance(subject, ctx) -> Evidence:
    r"""A causal sequence map: output i ignores every input after i

    .. math:: x'_{\le t}=x_{\le t}\ \Rightarrow\ f(x')_{\le t}=f(x)_{\le t}

    For a whole model declared causal (transformer-theory check --as causal): rewriting the inputs
    after position t leaves outputs 0..t unchanged.
    """
    strategy = _map_case(subject, min_seq=2)

    def measure(args):
        c, data = args
        t = data.draw(st.integers(0, c["L"] - 2), label="last_kept_position")
        rng = np.random.default_rng(c["seed"] + 2)
        x2 = c["x"].copy()
        x2[:, t + 1:] = normal(rng, x2[:, t + 1:].shape, c["dtype"], 3.0)
        out = np.asarray(subject.causal_map(c["x"]))
        out2 = np.asarray(subject.causal_map(x2))
        tol = _map_tolerance(subject, coarser_dtype(out, c["x"]), c["L"])
        return compare(out2[:, :t + 1], out[:, :t + 1], tol,
                       note=f"an output up to position {t} changed when later inputs changed")
    return for_all(ctx, strategy, measure,
                   detail="Changing inputs after position t leaves the outputs at 0..t unchanged.")


@claims.claim(
    "conformance.causal_map_prefix_consistency",
    sources=(DECODER_MASK, SEED_004.at("items 24–26: all predictions at once with a mask")),
    kind=Kind.PROPERTY, needs=("causal_map",))
def causal_map_prefix_consistency(subject, ctx) -> Evidence:
    r"""A causal sequence map is prefix consistent

    .. math:: f(x_{1:t})=f(x_{1:L})_{1:t}\qquad\text{for all }t\le L

    Running the map on a prefix gives the prefix of its outputs on the whole sequence: what makes
    teacher forcing and incremental decoding agree.
    """
    strategy = _map_case(subject, min_seq=2)

    def measure(args):
        c, data = args
        t = data.draw(st.integers(1, c["L"] - 1), label="prefix_length")
        full = np.asarray(subject.causal_map(c["x"]))
        prefix = np.asarray(subject.causal_map(c["x"][:, :t]))
        tol = _map_tolerance(subject, coarser_dtype(full, c["x"]), c["L"])
        return compare(prefix, full[:, :t], tol, note=f"f(x[:{t}]) != f(x)[:{t}]")
    return for_all(ctx, strategy, measure,
                   detail="The map on x[:t] equals the first t outputs of the map on x.")


@st.composite
def _layer_norm_rows(draw):
    rows, e = draw(st.integers(1, 6)), draw(st.integers(2, 32))
    dt = draw(DTYPES)
    seed = draw(SEEDS)
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.1, 1.0]))
    affine = draw(st.booleans())
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    rng = np.random.default_rng(seed)
    return {"R": rows, "E": e, "dtype": dt, "seed": seed, "eps": eps,
            "x": normal(rng, (rows, e), dt, scale),
            "gamma": normal(rng, (e,), dt) if affine else None,
            "beta": normal(rng, (e,), dt) if affine else None}


@claims.claim("conformance.layer_norm_definition",
              sources=(BA_2016.at("§3, Eq. (4)"), VASWANI_2017.at("§3.1")), kind=Kind.PROPERTY,
              needs=("layer_norm",))
def layer_norm_definition(subject, ctx) -> Evidence:
    r"""LayerNorm is (x − mean)/√(var + ε)·γ + β with the biased variance

    .. math:: \mathrm{LN}(x)=\frac{x-\mu}{\sqrt{\sigma^2+\varepsilon}}\odot\gamma+\beta,\quad
        \mu=\tfrac1E\sum_e x_e,\ \sigma^2=\tfrac1E\sum_e(x_e-\mu)^2

    eps in {1e-5, 1e-3, 0.1, 1} so that an eps outside the square root (sigma + eps) or an unbiased
    variance shows; errors are divided by each row's condition number max|x| / sqrt(var + eps), as
    in normalization.layernorm_standardizes.
    """
    from .normalization import conditioned_error

    def measure(c):
        y = subject.layer_norm(c["x"], c["gamma"], c["beta"], eps=c["eps"])
        x = np.asarray(c["x"], dtype=np.float64)
        mu = x.mean(axis=-1, keepdims=True)
        var = np.mean((x - mu) ** 2, axis=-1, keepdims=True)
        expected = (x - mu) / np.sqrt(var + c["eps"])
        size = 1.0                                   # the output's scale: |gamma| + |beta|
        if c["gamma"] is not None:
            expected = expected * c["gamma"]
            size = max(size, float(np.max(np.abs(c["gamma"]))))
        if c["beta"] is not None:
            expected = expected + c["beta"]
            size += float(np.max(np.abs(c["beta"])))
        kappa = np.max(np.abs(x), axis=-1) / np.sqrt(var[..., 0] + c["eps"])     # (R,)
        tol = tolerance("ill_conditioned", coarser_dtype(y, c["x"]), n=c["E"])
        return conditioned_error(y, expected, size * np.maximum(kappa, 1.0), tol,
                                 "LN(x) differs from (x - mean)/sqrt(var + eps) * gamma + beta")
    return for_all(ctx, _layer_norm_rows(), measure,
                   detail="Outputs equal the float64 definition for eps from 1e-5 to 1, with and "
                          "without gamma and beta.")


# ---------------------------------------------------------------------------
# Padding and NaN poisoning: what real batches do to an attention kernel
# ---------------------------------------------------------------------------

@st.composite
def _padded_case(draw):
    c = draw(attention_case(lead=draw(st.sampled_from([(), (2,), (2, 3)]))))
    pad_k = draw(st.integers(1, 4))
    pad_q = draw(st.integers(0, 3))
    causal = draw(st.sampled_from([False, True, "bottom-right"]))
    rng = np.random.default_rng(c["seed"] + 11)
    lead, lk = c["lead"], c["Lk"]
    keep = rng.random((*lead, 1, lk)) < 0.8                                   # (..., 1, Lk)
    keep[..., 0] = True
    c.update(pad_k=pad_k, pad_q=pad_q, causal=causal, keep=keep,
             k_pad=normal(rng, (*lead, pad_k, c["E"]), c["dtype"], 3.0),
             v_pad=normal(rng, (*lead, pad_k, c["Ev"]), c["dtype"], 3.0),
             q_pad=normal(rng, (*lead, pad_q, c["E"]), c["dtype"], 3.0))
    return c


def _causal_mask(lq: int, lk: int, causal) -> np.ndarray:
    """Boolean (Lq, Lk): the causal part of the mask (all True without causality)."""
    if not causal:
        return np.ones((lq, lk), dtype=bool)
    return causal_allowed(lq, lk, "bottom-right" if causal == "bottom-right" else "top-left")


@claims.claim(
    "conformance.padding_invariance",
    sources=(VASWANI_2017.at("§3.2.3 (masking out illegal connections)"),
             SEED_004.at("items 24–26: masking")),
    kind=Kind.PROPERTY, needs=("attention",))
def padding_invariance(subject, ctx) -> Evidence:
    r"""Padded keys and padded queries leave the other outputs unchanged

    .. math:: \mathrm{Attn}\big([Q;Q_p],[K;K_p],[V;V_p],\,M\oplus
        0\big)_{1:L_q}=\mathrm{Attn}(Q,K,V,M)

    A batch padded to a common length: keys appended with a key-padding mask that excludes them,
    queries appended after the real ones. The real queries' outputs must equal those of the
    unpadded call (same mask on the real keys, causal masks built explicitly so that padding cannot
    move their alignment). A kernel that normalises over the padded length, or lets a padded key
    in, fails.
    """
    def measure(c):
        lq, lk, pk, pq = c["Lq"], c["Lk"], c["pad_k"], c["pad_q"]
        causal_mask = _causal_mask(lq, lk, c["causal"])                        # (Lq, Lk)
        mask = c["keep"] & causal_mask                                         # (..., Lq, Lk)
        plain = np.asarray(subject.attention(c["q"], c["k"], c["v"], mask=mask))
        padded_mask = np.zeros((*c["lead"], lq + pq, lk + pk), dtype=bool)
        padded_mask[..., :lq, :lk] = mask
        padded_mask[..., lq:, 0] = True                    # padded queries see one real key
        q = np.concatenate([c["q"], c["q_pad"]], axis=-2)                      # (..., Lq+pq, E)
        k = np.concatenate([c["k"], c["k_pad"]], axis=-2)                      # (..., Lk+pk, E)
        v = np.concatenate([c["v"], c["v_pad"]], axis=-2)                      # (..., Lk+pk, Ev)
        padded = np.asarray(subject.attention(q, k, v, mask=padded_mask))
        if padded.shape[-2] != lq + pq:
            return holds(False, f"output shape {padded.shape} for {lq + pq} queries")
        tol = tolerance("reduction", c["dtype"], n=c["E"] + lk + pk)
        return compare(padded[..., :lq, :], plain, tol, scale=c["v"],
                       note="padding changed an output of a real query")
    return for_all(ctx, _padded_case(), measure,
                   detail="Appending 1-4 padded keys (masked out) and 0-3 padded queries leaves "
                          "every real query's output unchanged, with and without causal masks.")


@claims.claim(
    "conformance.nan_poisoning",
    sources=(VASWANI_2017.at("§3.2.3 (masking out illegal connections)"),
             SEED_004.at("items 24–26: masking")),
    kind=Kind.PROPERTY, needs=("attention",))
def nan_poisoning(subject, ctx) -> Evidence:
    r"""NaN or inf at keys no query may attend reaches no output

    .. math:: M_{\cdot j}=0\ \Rightarrow\ \mathrm{Attn}(Q,K,V,M)\ \text{is unchanged by any value
        of}\ (k_j,v_j),\ \text{NaN and}\ \pm\infty\ \text{included}

    Padded keys and values are often uninitialised memory. A masked weight is exactly 0, but 0 x
    NaN is NaN: a kernel that multiplies the masked weights by the values (or adds -inf to a NaN
    score) leaks the padding into every row. The contract accepts non-finite values exactly at
    positions no query may attend. A target that needs finite inputs everywhere declares
    masked_inputs=finite, and this claim is then not applicable to it.
    """
    strategy = st.tuples(_padded_case(), st.sampled_from([np.nan, np.inf, -np.inf]))

    def measure(args):
        c, poison = args
        lq, lk, pk = c["Lq"], c["Lk"], c["pad_k"]
        mask = np.zeros((*c["lead"], lq, lk + pk), dtype=bool)
        mask[..., :lk] = c["keep"] & _causal_mask(lq, lk, c["causal"])      # (..., Lq, Lk+pk)
        k = np.concatenate([c["k"], c["k_pad"]], axis=-2)                      # (..., Lk+pk, E)
        v = np.concatenate([c["v"], c["v_pad"]], axis=-2)                      # (..., Lk+pk, Ev)
        clean = np.asarray(subject.attention(c["q"], k, v, mask=mask))
        k_bad, v_bad = k.copy(), v.copy()
        k_bad[..., lk:, :] = poison
        v_bad[..., lk:, :] = poison
        dirty = np.asarray(subject.attention(c["q"], k_bad, v_bad, mask=mask))
        if not np.all(np.isfinite(dirty)):
            return holds(False, f"{poison} at a masked key reached the output")
        tol = tolerance("reduction", c["dtype"], n=c["E"] + lk + pk)
        return compare(dirty, clean, tol, scale=c["v"],
                       note=f"{poison} at a masked key changed an output")
    return for_all(ctx, strategy, measure,
                   detail="Keys and values at 1-4 masked positions set to NaN, +inf or -inf "
                          "leave every output finite and unchanged.")


@claims.claim(
    "conformance.nan_poisoning_heads",
    sources=(VASWANI_2017.at("§3.2.3 (masking out illegal connections)"),
             SEED_004.at("items 24–26: masking")),
    kind=Kind.PROPERTY, needs=("multi_head_attention", "grouped_query_attention"))
def nan_poisoning_heads(subject, ctx) -> Evidence:
    r"""NaN or inf at key inputs no query may attend reaches no MHA or GQA output

    .. math:: M_{\cdot j}=0\ \Rightarrow\ \mathrm{MHA}(X_q,X_{kv},M)\ \text{is unchanged by any
        value of}\ x^{kv}_j,\ \text{NaN and}\ \pm\infty\ \text{included}

    conformance.nan_poisoning through the projections: the key/value inputs of 1-4 padded positions
    (masked for every query) are set to NaN, +inf or -inf; the outputs of multi-head and
    grouped-query attention (H/G = 2) must stay finite and equal those with finite padding.
    Projected, a NaN input row is a NaN key and value in every head: a kernel that multiplies
    weights by a zero mask fails.
    """
    from transformer_theory.impl.attention import init_grouped_query, init_multi_head

    strategy = st.tuples(SEEDS, st.integers(1, 2), st.integers(1, 6), st.integers(1, 6),
                         st.integers(1, 4), st.sampled_from(["mha", "gqa"]),
                         st.sampled_from([np.nan, np.inf, -np.inf]), DTYPES)

    def measure(args):
        seed, b, lq, lk, pad, kind, poison, dt = args
        rng = np.random.default_rng(seed)
        e = 8
        params = (init_multi_head(e, 2, rng, dtype=dt) if kind == "mha"
                  else init_grouped_query(e, 4, 2, rng, dtype=dt))
        fn = subject.multi_head_attention if kind == "mha" else subject.grouped_query_attention
        x_q = normal(rng, (b, lq, e), dt)
        x_kv = normal(rng, (b, lk + pad, e), dt)
        mask = np.zeros((b, lq, lk + pad), dtype=bool)
        mask[..., :lk] = rng.random((b, 1, lk)) < 0.8
        mask[..., 0] = True
        clean = np.asarray(fn(x_q, x_kv, params, mask=mask))
        bad = x_kv.copy()
        bad[:, lk:, :] = poison
        dirty = np.asarray(fn(x_q, bad, params, mask=mask))
        if not np.all(np.isfinite(dirty)):
            return holds(False, f"{kind}: {poison} at a masked key input reached the output")
        tol = tolerance("composite", dt, n=3 * e + lk + pad)
        return compare(dirty, clean, tol, note=f"{kind}: {poison} at a masked key input "
                                               f"changed an output")
    return for_all(ctx, strategy, measure,
                   detail="Key/value inputs at 1-4 masked positions set to NaN, +inf or -inf "
                          "leave every MHA and GQA output finite and unchanged.")
