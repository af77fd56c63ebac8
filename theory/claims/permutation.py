"""Permutation symmetry: without positional information attention cannot tell
where a token is.

References
----------
Vaswani et al. 2017, §3.5 ("since our model contains no recurrence and no
convolution, ... we must inject some information about the relative or
absolute position"). Seed 000 ("attention is permutation invariant wrt
sequence structure"); seed 003 ("Transformer Architecture is invariant to
permutations of the input sequence"); seed 004 item 18 ("bag-of-words").
Seed 003, "Classification using Transformers" (pooled heads).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..checks import compare, for_all, holds, single_case
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import SEED_000, SEED_003, SEED_004, VASWANI_2017
from ..strategies import DTYPES, SEEDS, attention_case, normal
from ..tolerance import tolerance
from ._common import coarser_dtype

claims = ClaimSet("permutation")

NO_POSITION = VASWANI_2017.at("§3.5")
SEED000_PERM = SEED_000.at("attention is permutation invariant wrt sequence structure")


@claims.claim("permutation.attention_equivariance", sources=(NO_POSITION, SEED000_PERM),
              kind=Kind.PROPERTY, needs=("attention",))
def attention_equivariance(subject, ctx) -> Evidence:
    r"""Self-attention without positional encoding is permutation equivariant

    .. math:: \mathrm{Attention}(PQ,PK,PV)=P\,\mathrm{Attention}(Q,K,V)\quad\forall\
        \text{permutation matrices }P
    """
    def measure(c):
        perm = np.random.default_rng(c["seed"] + 1).permutation(c["Lq"])
        out = np.asarray(subject.attention(c["q"], c["k"], c["v"]))
        permuted = subject.attention(c["q"][..., perm, :], c["k"][..., perm, :], c["v"][..., perm, :])
        tol = tolerance("reduction", coarser_dtype(c["q"]), n=c["E"] + c["Lk"])
        return compare(permuted, out[..., perm, :], tol, scale=c["v"])
    return for_all(ctx, attention_case(self_attention=True), measure,
                   detail="Permuting the positions of q, k and v together permutes the outputs.")


@st.composite
def _model_case(draw, max_len: int = 8):
    seed = draw(SEEDS)
    b = draw(st.integers(1, 2))
    length = draw(st.integers(1, max_len))
    dt = draw(DTYPES)
    rng = np.random.default_rng(seed)
    return {"seed": seed, "B": b, "L": length, "dtype": dt, "x": normal(rng, (b, length, 8), dt),
            "perm": rng.permutation(length)}


@claims.claim("permutation.mha_equivariance", sources=(NO_POSITION, SEED000_PERM),
              kind=Kind.PROPERTY, needs=("multi_head_attention",))
def mha_equivariance(subject, ctx) -> Evidence:
    r"""Multi-head self-attention is permutation equivariant

    .. math:: \mathrm{MultiHead}(PX,PX)=P\,\mathrm{MultiHead}(X,X)
    """
    from transformer_theory.impl.attention import init_multi_head

    def measure(c):
        p = init_multi_head(8, 2, np.random.default_rng(c["seed"] + 1), dtype=c["dtype"])
        x, perm = c["x"], c["perm"]
        out = np.asarray(subject.multi_head_attention(x, x, p))
        permuted = subject.multi_head_attention(x[:, perm], x[:, perm], p)
        tol = tolerance("composite", c["dtype"], n=3 * 8 + c["L"])
        return compare(permuted, out[:, perm], tol)
    return for_all(ctx, _model_case(), measure,
                   detail="Permuting the tokens permutes the multi-head outputs the same way.")


@claims.claim(
    "permutation.encoder_equivariance",
    sources=(NO_POSITION, SEED_003.at("Transformer Architecture is invariant to permutations"),
             SEED000_PERM),
    kind=Kind.PROPERTY, needs=("encoder",))
def encoder_equivariance(subject, ctx) -> Evidence:
    r"""The encoder stack without positional encoding is permutation equivariant

    .. math:: \mathrm{Encoder}(PX)=P\,\mathrm{Encoder}(X)\quad\text{(attention, FFN, LayerNorm,
        residual)}
    """
    from transformer_theory.impl.transformer import EncoderConfig, init_encoder

    strategy = st.tuples(_model_case(), st.integers(1, 3), st.sampled_from(["post", "pre"]))

    def measure(args):
        c, n_layers, norm = args
        config = EncoderConfig(d_model=8, n_heads=2, d_ff=16, n_layers=n_layers, norm=norm)
        params = init_encoder(config, np.random.default_rng(c["seed"] + 2), dtype=c["dtype"])
        x, perm = c["x"], c["perm"]
        out = np.asarray(subject.encoder(x, params))
        permuted = subject.encoder(x[:, perm], params)
        tol = tolerance("composite", c["dtype"], n=n_layers * (3 * 8 + c["L"] + 16))
        return compare(permuted, out[:, perm], tol)
    return for_all(ctx, strategy, measure,
                   detail="Whole encoder stacks (1–3 layers, post- and pre-LN) commute with "
                          "permutations of the tokens.")


@claims.claim(
    "permutation.cross_attention_invariance",
    sources=(VASWANI_2017.at("§3.2.3 (encoder-decoder attention)"), SEED_004.at("item 23")),
    kind=Kind.PROPERTY, needs=("cross_attention",))
def cross_attention_invariance(subject, ctx) -> Evidence:
    r"""Cross-attention is invariant to a joint permutation of the memory's keys and values

    .. math:: \mathrm{CrossAttn}(X, PM)=\mathrm{CrossAttn}(X, M)
    """
    from transformer_theory.impl.attention import init_multi_head

    def measure(c):
        rng = np.random.default_rng(c["seed"] + 3)
        p = init_multi_head(8, 2, rng, dtype=c["dtype"])
        lm = int(rng.integers(1, 9))
        memory = normal(rng, (c["B"], lm, 8), c["dtype"])
        keep = rng.random((c["B"], lm)) < 0.8                       # key-padding mask
        perm = rng.permutation(lm)
        out = subject.cross_attention(c["x"], memory, p, memory_mask=keep)
        permuted = subject.cross_attention(c["x"], memory[:, perm], p, memory_mask=keep[:, perm])
        tol = tolerance("composite", c["dtype"], n=3 * 8 + lm)
        return compare(permuted, out, tol)
    return for_all(ctx, _model_case(), measure,
                   detail="Permuting the memory tokens (with their padding mask) leaves every "
                          "cross-attention output unchanged.")


@claims.claim("permutation.pooled_classifier_invariance",
              sources=(SEED_003.at("Classification using Transformers"), NO_POSITION),
              kind=Kind.PROPERTY, needs=("classify",))
def pooled_classifier_invariance(subject, ctx) -> Evidence:
    r"""A mean-pooled classifier without positional encoding is permutation invariant

    .. math:: \mathrm{Classify}(PX)=\mathrm{Classify}(X)\quad\text{(mean pooling)}
    """
    from transformer_theory.impl.transformer import EncoderConfig, init_classifier

    def measure(c):
        config = EncoderConfig(d_model=8, n_heads=2, d_ff=16, n_layers=2)
        params = init_classifier(config, 3, np.random.default_rng(c["seed"] + 4), pooling="mean",
                                 dtype=c["dtype"])
        x, perm = c["x"], c["perm"]
        tol = tolerance("composite", c["dtype"], n=2 * (3 * 8 + c["L"] + 16))
        return compare(subject.classify(x[:, perm], params), subject.classify(x, params), tol)
    return for_all(ctx, _model_case(), measure,
                   detail="Class logits of a mean-pooled encoder do not change when the tokens "
                          "are permuted.")


@claims.claim(
    "permutation.positional_breaks_equivariance",
    sources=(NO_POSITION, SEED_000.at("AlphaFold x_i + e_i, d >= N"),
             SEED_004.at("item 19: encode position by adding a function of it")),
    kind=Kind.LIMITATION, needs=("attention", "sinusoidal_encoding", "one_hot_encoding"))
def positional_breaks_equivariance(subject, ctx) -> Evidence:
    r"""Limitation: with sinusoidal or one-hot positional encoding, equivariance fails

    .. math:: f(X)=\mathrm{Attention}(X+E,X+E,X+E):\ f(PX)\ne P f(X)\ \text{for generic }X

    A deterministic counterexample for each encoding: a seeded X and the reversal permutation.
    """
    rng = ctx.rng()
    n, d = 6, 8
    x = rng.standard_normal((n, d))
    perm = np.arange(n)[::-1]
    gaps, measurements = {}, []
    for name, pe in (("sinusoidal", subject.sinusoidal_encoding(n, d)),
                     ("one-hot", subject.one_hot_encoding(n, d))):
        pe = np.asarray(pe, dtype=np.float64)

        def f(z, pe=pe):
            h = z + pe                                            # (n, d)
            return np.asarray(subject.attention(h, h, h), dtype=np.float64)

        gap = float(np.max(np.abs(f(x[perm]) - f(x)[perm])) / np.max(np.abs(x)))
        gaps[name] = gap
        measurements.append(holds(gap > 1e-3, f"{name}: equivariance still holds (gap {gap:.1e})"))
    return single_case(
        measurements,
        detail="Reversing 6 tokens of width 8: max |f(PX) - P f(X)| / max|X| is "
               + ", ".join(f"{k} {v:.3f}" for k, v in gaps.items()) + ".",
        example={"x": x, "perm": perm})
