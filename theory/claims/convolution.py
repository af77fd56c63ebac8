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
    sources=(THEOREM1.at("§3, Theorem 1, 1-D case: K heads express a width-K convolution"),
             SEED000_CONV),
    kind=Kind.CONSTRUCTION, needs=("attention",),
    uses=("conv1d_as_attention",),
    keywords=(("attention", "bias"),))
def conv1d_interior(subject, ctx) -> Evidence:
    r"""K attention heads with a quadratic relative encoding compute a width-K 1-D convolution

    .. math:: \mathrm{MHSA}(X)_i=\sum_{k=0}^{K-1}W_k^{\top}x_{i+k-a}=\big(\mathrm{correlate}(X,W)\big)_{i-a}\quad\text{for
        } a\le i\le L-K+a,\ a=\lfloor (K-1)/2\rfloor

    Head h has no content term and the relative bias -alpha(|delta|^2 - 2 Delta_h delta) with alpha
    = ln((L-1)/eps) + 2, so its softmax leaks at most e^{-2} eps. Checked against
    scipy.signal.correlate (mode 'valid', summed over input channels).
    """
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


@claims.claim("convolution.conv2d_interior", sources=(THEOREM1, SEED000_CONV),
              kind=Kind.CONSTRUCTION, needs=("attention",), uses=("conv2d_as_attention",),
              keywords=(("attention", "bias"),))
def conv2d_interior(subject, ctx) -> Evidence:
    r"""K² attention heads compute a K×K 2-D convolution

    .. math:: \mathrm{MHSA}(X)_{r,s}=\sum_{k_1,k_2}W_{k_1k_2}^{\top}x_{r+k_1-a,\,s+k_2-a}=\big(\mathrm{correlate2d}(X,W)\big)_{r-a,\,s-a}\
        \text{in the interior}

    Pixels are tokens with 2-D integer positions; head (k1, k2) scores -alpha(|delta|^2 - 2<Delta,
    delta>) with Delta = (k1 - a, k2 - a). Checked against scipy.signal.correlate2d (mode 'valid',
    summed over input channels).
    """
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


@claims.claim("convolution.zero_padding_exact", sources=(THEOREM1, SEED000_CONV),
              kind=Kind.CONSTRUCTION, needs=("attention",),
              uses=("conv1d_as_attention", "conv2d_as_attention"),
              keywords=(("attention", "bias"),))
def zero_padding_exact(subject, ctx) -> Evidence:
    r"""With zero-padding tokens the attention convolution is exact everywhere; without them its
    borders replicate the edge

    .. math:: \mathrm{MHSA}([0_a;X;0_{K-1-a}])_{a:a+L}=\mathrm{correlate}(\mathrm{pad}_0(X),W),\qquad
        \mathrm{MHSA}(X)=\mathrm{correlate}(\mathrm{pad}_{\mathrm{edge}}(X),W)

    At a border the target i + Delta does not exist and the nearest key wins (by a margin of at
    least alpha), i.e. the edge token: replicate padding. Zero tokens appended around the sequence
    make the same layer a zero-padded convolution.
    """
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
    sources=(SEED000_CONV, CORDONNIER_2020.at("§1 (attention attends to every position)")),
    kind=Kind.CONSTRUCTION, needs=("attention",), uses=("conv1d_as_attention",),
    keywords=(("attention", "bias"),))
def receptive_field(subject, ctx) -> Evidence:
    r"""L stacked width-k convolutions see L(k−1)+1 inputs; one attention layer sees them all

    .. math:: \mathrm{RF}(\mathrm{conv}_k^{\circ L})=L(k-1)+1,\qquad
        \mathrm{RF}(\mathrm{attention})=N

    Measured, not computed: each of the N = 41 inputs is perturbed in turn and an input counts if
    the middle output moves by more than the composite rounding tolerance (relative to the output's
    scale). Convolutions are the attention construction of convolution.conv1d_interior on the
    subject's attention; the attention layers have random Gaussian W_q, W_k, W_v, W_q scaled down
    where needed so that the logits on the inputs stay within 2 (every weight at least e^-4 / n: a
    weight of e^-30 would move nothing above rounding).
    """
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
        weights, z = [], x
        for _ in range(depth):
            wq, wk, wv = (rng.standard_normal((channels, channels)) for _ in range(3))
            # logits bounded by 2 on the unperturbed inputs: every weight is then at least
            # e^-4 / n, so every input moves the output far above rounding (random Gaussian
            # weights can reach logits of 30, weights of e^-30, which no perturbation shows)
            logits = (z @ wq) @ (z @ wk).T / np.sqrt(channels)                # (n, n)
            wq = wq * min(1.0, 2.0 / max(float(np.max(np.abs(logits))), 1e-300))
            weights.append((wq, wk, wv))
            z = np.asarray(subject.attention(z @ wq, z @ wk, z @ wv), dtype=np.float64)

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


SEED000_LINEAR = SEED_000.at("Comparison against linear layer with Nd: 'less powerful' than "
                             "linear, few params, can learn/gen to other sequence lengths")


def _dense_map(layer, w, n: int, c_in: int) -> np.ndarray:
    """The (N C_out, N C_in) matrix of a linear sequence layer, from the identity basis."""
    basis = np.eye(n * c_in).reshape(n * c_in, n, c_in)                   # (N C_in, N, C_in)
    y = np.asarray(layer(basis, w))                                        # (N C_in, N, C_out)
    return y.reshape(n * c_in, -1).T                                       # (N C_out, N C_in)


def _banded(w, n: int) -> np.ndarray:
    """The convolution's matrix written out: block (i, j) is W[:, :, j - i + a] inside the band."""
    c_out, c_in, width = w.shape
    a = (width - 1) // 2
    m = np.zeros((n, c_out, n, c_in))
    for i in range(n):
        for tap in range(width):
            if 0 <= i + tap - a < n:
                m[i, :, i + tap - a, :] = w[:, :, tap]
    return m.reshape(n * c_out, n * c_in)


@claims.claim("convolution.fewer_parameters_any_length", sources=(SEED000_LINEAR, THEOREM1),
              kind=Kind.CONSTRUCTION, needs=("attention",), uses=("conv1d_as_attention",),
              keywords=(("attention", "bias"),))
def fewer_parameters_any_length(subject, ctx) -> Evidence:
    r"""A width-K convolution is a weight-shared N·d linear layer: K C_in C_out parameters at every
    length, and strictly less expressive

    .. math:: \mathrm{conv}_W=\big[W_{:,:,j-i+a}\big]_{ij}\in\mathcal T_N,\ \dim\mathcal
        T_N=KC_{\mathrm{in}}C_{\mathrm{out}}<N^2C_{\mathrm{in}}C_{\mathrm{out}}=\#\text{linear};\quad
        \frac{\mathrm{dist}(J_N,\mathcal T_N)^2}{\|J_N\|_F^2}\ge 1-\frac{K}{N(N-K+1)}

    Measured on the subject's attention construction (zero padding) at the lengths N = K .. 8: its
    matrix, read off the identity basis, must be the banded block-Toeplitz matrix of the same
    kernel at every N (to the reduction tolerance: one entry off is detected); the matrices of the
    K C_in C_out basis kernels must span a space of exactly that dimension (numerical rank),
    independent of N, against (N C_in)(N C_out) entries of a linear layer; and the reversal J_N
    (y_i = x_{N-1-i}, one channel), which a linear layer represents exactly, stays at least the
    stated distance from every convolution (at most K band diagonals, each meeting J_N once, absorb
    at most K/(N-K+1)).
    """
    conv1d = construction(subject, "conv1d_as_attention", CV.conv1d_as_attention)
    rng = ctx.rng("kernels")

    def layer(x, w):
        return conv1d(x, w, padding="zeros", attention=subject.attention)

    measurements, rows = [], []
    for width, c_in, c_out in ((3, 1, 1), (2, 2, 1), (3, 1, 2)):
        w = rng.standard_normal((c_out, c_in, width))
        for n in range(width, 9):
            m = _dense_map(layer, w, n, c_in)
            tol = tolerance("reduction", np.float64, n=width * c_in + n + width)
            measurements.append(compare(m, _banded(w, n), tol, scale=np.abs(w).max(),
                                        note=f"K={width}, C={c_in}->{c_out}, N={n}: the layer's "
                                             f"matrix is not the banded kernel"))
            if n in (width, 8):
                basis = np.eye(width * c_in * c_out).reshape(-1, c_out, c_in, width)
                span = np.stack([_dense_map(layer, e, n, c_in).ravel() for e in basis])
                rank = int(np.linalg.matrix_rank(span, tol=1e-6 * np.abs(span).max()))
                params = width * c_in * c_out
                measurements.append(holds(rank == params < (n * c_in) * (n * c_out),
                                          f"K={width}, C={c_in}->{c_out}, N={n}: the "
                                          f"convolutions span dimension {rank}, expected "
                                          f"{params} < {(n * c_in) * (n * c_out)}"))
                rows.append(f"K={width}, C={c_in}->{c_out}, N={n}: {rank} parameters vs "
                            f"{(n * c_in) * (n * c_out)}")
    for width in (2, 3):
        for n in range(width + 1, 9):
            basis = np.eye(width).reshape(width, 1, 1, width)
            span = np.stack([_dense_map(layer, e, n, 1).ravel() for e in basis]).T   # (N^2, K)
            flip = np.fliplr(np.eye(n)).ravel()
            coef, *_ = np.linalg.lstsq(span, flip, rcond=None)
            resid = float(np.sum((span @ coef - flip) ** 2)) / n
            bound = 1 - width / (n * (n - width + 1))
            measurements.append(holds(resid >= bound - 1e-9,
                                      f"K={width}, N={n}: the reversal is within relative "
                                      f"squared distance {resid:.3f} < {bound:.3f} of a "
                                      f"convolution"))
    return single_case(measurements,
                       detail="; ".join(rows) + ". The reversal of N = K+1..8 positions stays at "
                                                "the stated distance from every convolution.")
