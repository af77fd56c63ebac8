"""Counting: parameters of an encoder stack and multiplications of naive attention.

References
----------
Seed 003 ("Counting Number of Parameters": the table for E = 32, two heads,
dense dimension 32, one block, total 10,656). Seed 000 ("Remark
(computation). Naive implementation does dN^2 scalar multiplications").
Kaplan et al. 2020, "Scaling Laws for Neural Language Models", §2.1 and
Table 1 (N ≈ 2 d_model n_layer (2 d_attn + d_ff) = 12 n_layer d_model^2).
Vaswani et al. 2017, §3.2.2–3.3 (the weights counted), §4 and Table 1
(O(n^2 d) per self-attention layer).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..checks import for_all, holds, single_case
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import KAPLAN_2020, SEED_000, SEED_003, VASWANI_2017
from ..strategies import SEEDS

claims = ClaimSet("counting")

SEED_003_TABLE = SEED_003.at("Counting Number of Parameters (table, grand total 10,656)")
SEED_000_FLOPS = SEED_000.at("Remark (computation): naive implementation does dN^2 "
                             "scalar multiplications")
KAPLAN_COUNT = KAPLAN_2020.at("§2.1, Table 1")

#: Seed 003's example: E = 32, two heads of width 32, dense dimension 32, one block.
SEED_003_TOTAL = 10656


def closed_form_parameters(config) -> int:
    """The statement's count for an encoder stack with ``b = 1`` iff biases.

    Per layer: queries ``H (E Dh + b Dh)``, keys and values ``G (E Dh + b Dh)``
    each, output projection ``H Dh E + b E``, FFN ``2 E F + b (F + E)``, two
    LayerNorms of ``2 E``.
    """
    e, h, g = config.d_model, config.n_heads, config.kv_heads
    dh, f, b = config.head_dim, config.d_ff, int(config.bias)
    per_layer = ((h + 2 * g) * (e * dh + b * dh) + h * dh * e + b * e
                 + 2 * e * f + b * (f + e) + 4 * e)
    return config.n_layers * per_layer


@claims.claim(
    "counting.seed003_parameters",
    title="Seed 003's one-block encoder has 10,656 parameters",
    statement=r"E=32,\ H=2,\ D_h=32,\ F=32,\ n_{\mathrm{layers}}=1,\ \text{biases}:\quad "
              r"\underbrace{3H(ED_h+D_h)}_{6{,}336}+\underbrace{HD_hE+E}_{2{,}080}"
              r"+\underbrace{2(EF)+F+E}_{2{,}112}+\underbrace{2\cdot 2E}_{128}=10{,}656",
    sources=(SEED_003_TABLE, VASWANI_2017.at("§3.2.2–3.3")),
    kind=Kind.CONSTRUCTION,
    needs=("count_parameters", "count_array_parameters"), proof="counting.parameters",
    notes="A fixed configuration, so a construction rather than a property: the weights are "
          "built by the reference init_encoder (inputs may come from the reference); both "
          "the subject's count of those arrays and its closed form must give the table's "
          "grand total.")
def seed003_parameters(subject, ctx) -> Evidence:
    from transformer_theory.impl.transformer import EncoderConfig, init_encoder

    config = EncoderConfig(d_model=32, n_heads=2, d_head=32, d_ff=32, n_layers=1, bias=True)
    params = init_encoder(config, ctx.rng())
    counted = int(subject.count_array_parameters(params))
    closed = int(subject.count_parameters(config))
    return single_case(
        [holds(counted == SEED_003_TOTAL, f"count_array_parameters gives {counted:,}"),
         holds(closed == SEED_003_TOTAL, f"count_parameters gives {closed:,}")],
        detail=f"Counted arrays: {counted:,}; closed form: {closed:,}; seed 003: "
               f"{SEED_003_TOTAL:,}.",
        example={"counted": counted, "closed_form": closed})


@st.composite
def _config(draw):
    from transformer_theory.impl.transformer import EncoderConfig

    h = draw(st.integers(1, 4))
    g = draw(st.sampled_from([None] + [d for d in range(1, h + 1) if h % d == 0]))
    e = draw(st.integers(h, 24))
    d_head = draw(st.one_of(st.none(), st.integers(1, 12)))
    return EncoderConfig(d_model=e, n_heads=h, d_ff=draw(st.integers(1, 48)),
                         n_layers=draw(st.integers(1, 3)), d_head=d_head, n_kv_heads=g,
                         bias=draw(st.booleans()), norm=draw(st.sampled_from(["post", "pre"])))


@claims.claim(
    "counting.parameters_closed_form",
    title="The closed-form parameter count equals the arrays actually built",
    statement=r"n_{\mathrm{layers}}\big[(H+2G)(ED_h+bD_h)+HD_hE+bE+2EF+b(F+E)+4E\big]"
              r"=\#\{\text{entries of the built arrays}\}",
    sources=(SEED_003_TABLE, VASWANI_2017.at("§3.2.2–3.3")),
    kind=Kind.PROPERTY, needs=("count_parameters", "count_array_parameters"),
    notes="G is the number of key/value heads (G = H for multi-head attention, fewer for "
          "grouped-query attention), b = 1 with biases. Configs are drawn with and without "
          "biases, GQA, explicit head widths and both LayerNorm placements; the arrays come "
          "from the reference init_encoder. Both the subject's closed form and its count of "
          "the arrays must equal the statement's formula.")
def parameters_closed_form(subject, ctx) -> Evidence:
    from transformer_theory.impl.transformer import init_encoder

    strategy = st.tuples(_config(), SEEDS)

    def measure(args):
        config, seed = args
        params = init_encoder(config, np.random.default_rng(seed))
        counted = int(subject.count_array_parameters(params))
        closed = int(subject.count_parameters(config))
        formula = closed_form_parameters(config)
        return holds(counted == closed == formula,
                     f"closed form {closed}, counted arrays {counted}, formula {formula}")
    return for_all(ctx, strategy, measure,
                   detail="count_parameters(config) equals the number of entries of the "
                          "arrays init_encoder builds, and the stated formula.")


def naive_matmul(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """The schoolbook product ``a @ b`` with its scalar multiplications counted.

    Three explicit loops, one multiplication per innermost step, so the count
    is what the loops perform rather than a formula.
    """
    n, m = a.shape
    p = b.shape[1]
    out = np.zeros((n, p))
    count = 0
    for i in range(n):
        for j in range(p):
            for r in range(m):
                out[i, j] += a[i, r] * b[r, j]
                count += 1
    return out, count


@st.composite
def _flops_case(draw):
    from transformer_theory.impl.transformer import EncoderConfig

    h = draw(st.integers(1, 3))
    g = draw(st.sampled_from([None] + [d for d in range(1, h + 1) if h % d == 0]))
    d_head = draw(st.integers(1, 6))
    e = draw(st.integers(1, 16))
    config = EncoderConfig(d_model=e, n_heads=h, d_ff=draw(st.integers(1, 16)),
                           d_head=d_head, n_kv_heads=g, bias=draw(st.booleans()))
    return {"config": config, "N": draw(st.integers(1, 10)), "seed": draw(SEEDS)}


@claims.claim(
    "counting.naive_attention_multiplications",
    title="Naive attention costs H N² D_h multiplications per matrix product",
    statement=r"\#\mathrm{mult}\big(QK^{\top}\big)=H\,N^2D_h,\qquad "
              r"\#\mathrm{mult}\big(AV\big)=H\,N^2D_v\qquad(=dN^2\ \text{for } HD_h=d)",
    sources=(SEED_000_FLOPS, VASWANI_2017.at("§4, Table 1")),
    kind=Kind.PROPERTY, needs=("attention_flops",), proof="counting.flops",
    notes="attention_flops(config, N)['scores'] and ['weighted_values'] are compared with the "
          "formula and with the number of multiplications an explicit triple loop performs "
          "for Q_h K_h^T and A_h V_h, head by head, on random (N, D_h) matrices; the loop's "
          "products are checked against numpy so that it is a real matrix product. Counted, "
          "not timed; D_v = D_h in the config.")
def naive_attention_multiplications(subject, ctx) -> Evidence:
    def measure(c):
        config, n = c["config"], c["N"]
        h, dh = config.n_heads, config.head_dim
        counts = subject.attention_flops(config, n)
        rng = np.random.default_rng(c["seed"])
        looped_scores = looped_values = 0
        for _ in range(h):                                         # one product per head
            q, k, v = (rng.standard_normal((n, dh)) for _ in range(3))   # (N, Dh) each
            s, count_s = naive_matmul(q, k.T)                      # (N, N)
            o, count_v = naive_matmul(s, v)                        # (N, Dv)
            if not (np.allclose(s, q @ k.T) and np.allclose(o, s @ v)):
                return holds(False, "the counting loop is not a matrix product")
            looped_scores += count_s
            looped_values += count_v
        scores, values = int(counts["scores"]), int(counts["weighted_values"])
        ok = (scores == h * n * n * dh == looped_scores
              and values == h * n * n * dh == looped_values)
        return holds(ok, f"scores {scores} (loop {looped_scores}), weighted_values {values} "
                         f"(loop {looped_values}) for H={h}, N={n}, D_h={dh}")
    return for_all(ctx, _flops_case(), measure,
                   detail="The counts equal H N^2 D_h for both products and the multiplications "
                          "of an explicit triple loop.")


@st.composite
def _kaplan_config(draw):
    from transformer_theory.impl.transformer import EncoderConfig

    h = draw(st.integers(1, 8))
    d_head = draw(st.integers(1, 16))
    d = h * d_head
    return EncoderConfig(d_model=d, n_heads=h, d_ff=4 * d, n_layers=draw(st.integers(1, 4)),
                         bias=False, norm=draw(st.sampled_from(["post", "pre"])))


@claims.claim(
    "counting.kaplan_approximation",
    title="Without biases, with d_ff = 4d and H·D_h = d, a layer has 12d² + 4d parameters",
    statement=r"b=0,\ F=4d,\ HD_h=d,\ G=H:\quad \frac{N_{\mathrm{params}}}{n_{\mathrm{layers}}}"
              r"=\underbrace{4d^2}_{W_Q,W_K,W_V,W_O}+\underbrace{8d^2}_{W_1,W_2}"
              r"+\underbrace{4d}_{\text{2 LayerNorms}}=12d^2+4d",
    sources=(KAPLAN_COUNT, SEED_003_TABLE),
    kind=Kind.PROPERTY, needs=("count_parameters", "count_array_parameters"),
    proof="counting.parameters",
    notes="Kaplan et al. approximate the non-embedding count by N ≈ 12 n_layer d^2, dropping "
          "biases and other sub-leading terms; the closed form gives exactly 12 d^2 + 4 d per "
          "layer, the 4 d being the gains and biases of the two LayerNorms (relative excess "
          "1/(3d)). Checked on the closed form and on arrays built by the reference "
          "init_encoder.")
def kaplan_approximation(subject, ctx) -> Evidence:
    from transformer_theory.impl.transformer import init_encoder

    def measure(args):
        config, seed = args
        d, layers = config.d_model, config.n_layers
        exact = layers * (12 * d * d + 4 * d)
        closed = int(subject.count_parameters(config))
        counted = int(subject.count_array_parameters(
            init_encoder(config, np.random.default_rng(seed))))
        return holds(closed == counted == exact,
                     f"d={d}, n_layers={layers}: closed form {closed}, counted {counted}, "
                     f"12d^2+4d per layer gives {exact}")
    return for_all(ctx, st.tuples(_kaplan_config(), SEEDS), measure,
                   detail="Per layer the count is 12 d^2 + 4 d exactly: Kaplan's 12 d^2 plus "
                          "the LayerNorm parameters.")
