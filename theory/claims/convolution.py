"""Convolution as attention (Cordonnier et al. 2020) and receptive fields (seed 000).

The constructions (:mod:`transformer_theory.impl.constructions.convolution`)
run on the subject's ``attention`` with an additive relative-position bias, so
any implementation of the contract can be checked through them.

References
----------
Cordonnier, Loukas & Jaggi 2020, On the Relationship between Self-Attention and
Convolutional Layers, ICLR, §3 (Theorem 1, quadratic encoding).
Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt): convolution vs attention,
"computing a function with interacting patches requires multiple layers &
overlapping patches".
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from transformer_theory.impl.constructions import convolution as CV

from ..checks import compare, for_all, holds, single_case
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import CORDONNIER_2020, SEED_000
from ..strategies import dtype_seed_rng, normal
from ..subject import construction
from ..tolerance import tolerance

claims = ClaimSet("convolution")

THEOREM1 = CORDONNIER_2020.at("§3, Theorem 1 (proof with the quadratic relative positional encoding)")
SEED000_CONV = SEED_000.at("convolution vs attention; interacting patches need multiple layers")


@st.composite
def _conv1d_case(draw, *, min_extra: int = 0):
    width = draw(st.integers(1, 5), label="K")
    length = draw(st.integers(width + min_extra, 16), label="L")
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dt, seed, rng = dtype_seed_rng(draw)
    return {"K": width, "L": length, "C_in": c_in, "C_out": c_out, "dtype": dt, "seed": seed,
            "x": normal(rng, (length, c_in), dt), "w": normal(rng, (c_out, c_in, width), dt)}


@st.composite
def _conv2d_case(draw):
    width = draw(st.integers(1, 3), label="K")
    rows = draw(st.integers(width, 7), label="H")
    cols = draw(st.integers(width, 7), label="W")
    c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    dt, seed, rng = dtype_seed_rng(draw)
    return {"K": width, "H": rows, "W": cols, "C_in": c_in, "C_out": c_out, "dtype": dt,
            "seed": seed, "x": normal(rng, (rows, cols, c_in), dt),
            "w": normal(rng, (c_out, c_in, width, width), dt)}


def _tol(c, n_tokens: int):
    # the attention's sum over the keys and the output projection over K^d C_in terms
    return tolerance("reduction", c["dtype"], n=c["w"][0].size + n_tokens)


@claims.claim(
    "convolution.conv1d_interior",
    title="K attention heads with a quadratic relative encoding compute a width-K 1-D convolution",
    statement=r"\mathrm{MHSA}(X)_i=\sum_{k=0}^{K-1}W_k^{\top}x_{i+k-a}=\big(\mathrm{correlate}(X,W)\big)_{i-a}"
              r"\quad\text{for } a\le i\le L-K+a,\ a=\lfloor (K-1)/2\rfloor",
    sources=(THEOREM1.at("§3, Theorem 1, 1-D case: K heads express a width-K convolution"),
             SEED000_CONV),
    kind=Kind.CONSTRUCTION, needs=("attention",),
    uses=("conv1d_as_attention",),
    keywords=(("attention", "bias"),),
    notes="Head h has no content term and the relative bias -alpha(|delta|^2 - 2 Delta_h delta) "
          "with alpha = ln((L-1)/eps) + 2, so its softmax leaks at most e^{-2} eps. Checked "
          "against scipy.signal.correlate (mode 'valid', summed over input channels).")
def conv1d_interior(subject, ctx) -> Evidence:
    conv1d = construction(subject, "conv1d_as_attention", CV.conv1d_as_attention)

    def measure(c):
        y = conv1d(c["x"], c["w"], attention=subject.attention)
        ref = CV.correlate1d(c["x"], c["w"], mode="valid")
        a = (c["K"] - 1) // 2
        interior = np.asarray(y)[a:a + ref.shape[0]]
        scale = CV.correlate1d(np.abs(c["x"]), np.abs(c["w"]), mode="valid")
        return compare(interior, ref, _tol(c, c["L"]), scale=scale,
                       note="interior outputs differ from scipy.signal.correlate")
    return for_all(ctx, _conv1d_case(), measure,
                   detail="For K = 1..5, L = K..16 and 1..3 channels in and out, the interior "
                          "outputs equal scipy.signal.correlate to rounding error.")


@claims.claim(
    "convolution.conv2d_interior",
    title="K² attention heads compute a K×K 2-D convolution",
    statement=r"\mathrm{MHSA}(X)_{r,s}=\sum_{k_1,k_2}W_{k_1k_2}^{\top}x_{r+k_1-a,\,s+k_2-a}"
              r"=\big(\mathrm{correlate2d}(X,W)\big)_{r-a,\,s-a}\ \text{in the interior}",
    sources=(THEOREM1, SEED000_CONV),
    kind=Kind.CONSTRUCTION, needs=("attention",),
    uses=("conv2d_as_attention",),
    keywords=(("attention", "bias"),),
    notes="Pixels are tokens with 2-D integer positions; head (k1, k2) scores "
          "-alpha(|delta|^2 - 2<Delta, delta>) with Delta = (k1 - a, k2 - a). Checked against "
          "scipy.signal.correlate2d (mode 'valid', summed over input channels).")
def conv2d_interior(subject, ctx) -> Evidence:
    conv2d = construction(subject, "conv2d_as_attention", CV.conv2d_as_attention)

    def measure(c):
        y = conv2d(c["x"], c["w"], attention=subject.attention)
        ref = CV.correlate2d(c["x"], c["w"], mode="valid")
        a = (c["K"] - 1) // 2
        interior = np.asarray(y)[a:a + ref.shape[0], a:a + ref.shape[1]]
        scale = CV.correlate2d(np.abs(c["x"]), np.abs(c["w"]), mode="valid")
        return compare(interior, ref, _tol(c, c["H"] * c["W"]), scale=scale,
                       note="interior outputs differ from scipy.signal.correlate2d")
    return for_all(ctx, _conv2d_case(), measure,
                   detail="For K = 1..3 (up to 9 heads) on grids up to 7x7 with 1..2 channels, "
                          "the interior outputs equal scipy.signal.correlate2d to rounding error.")


@claims.claim(
    "convolution.zero_padding_exact",
    title="With zero-padding tokens the attention convolution is exact everywhere; without "
          "them its borders replicate the edge",
    statement=r"\mathrm{MHSA}([0_a;X;0_{K-1-a}])_{a:a+L}=\mathrm{correlate}(\mathrm{pad}_0(X),W),"
              r"\qquad \mathrm{MHSA}(X)=\mathrm{correlate}(\mathrm{pad}_{\mathrm{edge}}(X),W)",
    sources=(THEOREM1, SEED000_CONV),
    kind=Kind.CONSTRUCTION, needs=("attention",),
    uses=("conv1d_as_attention", "conv2d_as_attention"),
    keywords=(("attention", "bias"),),
    notes="At a border the target i + Delta does not exist and the nearest key wins (by a "
          "margin of at least alpha), i.e. the edge token: replicate padding. Zero tokens "
          "appended around the sequence make the same layer a zero-padded convolution.")
def zero_padding_exact(subject, ctx) -> Evidence:
    conv1d = construction(subject, "conv1d_as_attention", CV.conv1d_as_attention)
    conv2d = construction(subject, "conv2d_as_attention", CV.conv2d_as_attention)
    strategy = st.one_of(_conv1d_case().map(lambda c: {**c, "dims": 1}),
                         _conv2d_case().map(lambda c: {**c, "dims": 2}))

    def measure(c):
        layer = conv1d if c["dims"] == 1 else conv2d
        ref_fn = CV.correlate1d if c["dims"] == 1 else CV.correlate2d
        n_tokens = c["L"] if c["dims"] == 1 else c["H"] * c["W"]
        n_tokens += c["K"] ** c["dims"]
        worst = None
        for padding, ref_padding in (("zeros", "zeros"), ("none", "edge")):
            y = layer(c["x"], c["w"], padding=padding, attention=subject.attention)
            ref = ref_fn(c["x"], c["w"], mode="same", padding=ref_padding)
            scale = ref_fn(np.abs(c["x"]), np.abs(c["w"]), mode="same", padding=ref_padding)
            m = compare(y, ref, _tol(c, n_tokens), scale=scale,
                        note=f"padding={padding!r} differs from {ref_padding} padding")
            if not m.ok:
                return m
            worst = m if worst is None or m.error > worst.error else worst
        return worst
    return for_all(ctx, strategy, measure,
                   detail="Every output (borders included) equals the zero-padded correlation "
                          "when zero tokens are added, and the edge-padded one when not; 1-D "
                          "and 2-D.")


@claims.claim(
    "convolution.receptive_field",
    title="L stacked width-k convolutions see L(k−1)+1 inputs; one attention layer sees them all",
    statement=r"\mathrm{RF}(\mathrm{conv}_k^{\circ L})=L(k-1)+1,\qquad "
              r"\mathrm{RF}(\mathrm{attention})=N",
    sources=(SEED000_CONV, CORDONNIER_2020.at("§1 (attention attends to every position)")),
    kind=Kind.CONSTRUCTION, needs=("attention",),
    uses=("conv1d_as_attention",),
    keywords=(("attention", "bias"),),
    notes="Measured, not computed: each of the N = 41 inputs is perturbed in turn and an input "
          "counts if the middle output moves by more than the composite rounding tolerance "
          "(relative to the output's scale). Convolutions are the attention construction of "
          "convolution.conv1d_interior on the subject's attention; the attention layers have "
          "random Gaussian W_q, W_k, W_v.")
def receptive_field(subject, ctx) -> Evidence:
    conv1d = construction(subject, "conv1d_as_attention", CV.conv1d_as_attention)
    rng = ctx.rng("receptive field")
    n, channels, center = 41, 2, 20
    x = rng.standard_normal((n, channels))
    depths = (1, 2, 3, 4)
    measurements, series = [], []
    for width in (2, 3, 5):
        a = (width - 1) // 2
        measured = []
        for depth in depths:
            kernels = [rng.standard_normal((channels, channels, width)) for _ in range(depth)]

            def conv_stack(z, kernels=kernels):
                for w in kernels:              # one layer at a time, as in the seed's picture
                    z = conv1d(z, w, attention=subject.attention)
                return z
            infl = CV.influence(conv_stack, x, center)
            scale = float(np.max(np.abs(conv_stack(x)[center]))) + float(np.max(infl))
            tol = tolerance("composite", np.float64, n=depth * (width * channels + n))
            field = np.flatnonzero(infl > tol.rtol * scale)
            expected = np.arange(center - depth * a, center + depth * (width - 1 - a) + 1)
            measured.append(int(field.size))
            ok = field.size == expected.size and np.array_equal(field, expected)
            measurements.append(holds(ok, f"k={width}, depth {depth}: inputs {field.tolist()} "
                                          f"move the middle output, expected "
                                          f"{expected[0]}..{expected[-1]}"))
        series.append({"label": f"convolution k={width} (measured)", "x": list(depths),
                       "y": measured, "yerr": None, "style": "points"})
        series.append({"label": f"L(k-1)+1, k={width}", "x": list(depths),
                       "y": [d * (width - 1) + 1 for d in depths], "yerr": None, "style": "line"})
    attn_measured = []
    for depth in depths:
        weights = [[rng.standard_normal((channels, channels)) for _ in range(3)]
                   for _ in range(depth)]

        def attn_stack(z, weights=weights):
            for wq, wk, wv in weights:
                z = np.asarray(subject.attention(z @ wq, z @ wk, z @ wv))
            return z
        infl = CV.influence(attn_stack, x, center)
        scale = float(np.max(np.abs(attn_stack(x)[center]))) + float(np.max(infl))
        tol = tolerance("composite", np.float64, n=depth * (3 * channels + n))
        field = np.flatnonzero(infl > tol.rtol * scale)
        attn_measured.append(int(field.size))
        measurements.append(holds(field.size == n, f"attention, depth {depth}: only "
                                                   f"{field.size} of {n} inputs move the "
                                                   f"middle output"))
    series.append({"label": "attention (measured)", "x": list(depths), "y": attn_measured,
                   "yerr": None, "style": "points"})
    figure = {"type": "lines", "title": f"Receptive field of the middle output (N = {n})",
              "xlabel": "number of layers L", "ylabel": "inputs that change the output",
              "xscale": "linear", "yscale": "linear", "series": series}
    return single_case(
        measurements, figure=figure,
        detail=f"Perturbing each of the {n} inputs: stacks of 1..4 attention-built convolutions "
               f"of width 2, 3, 5 see exactly L(k-1)+1 contiguous inputs; one random attention "
               f"layer (and every stack of them) sees all {n}.")
