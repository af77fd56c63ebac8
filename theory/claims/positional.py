"""Positional information: the sinusoidal table and its shift structure, one-hot
positions, rotary embeddings and ALiBi.

Self-attention alone sees a set; these claims check that each encoding carries
position in the way its paper says: the sinusoidal table is bounded and shifts
linearly, its dot products depend only on offsets, one-hot positions are
orthonormal, RoPE scores depend only on relative positions, and ALiBi does not
care where in a longer window a sequence sits.

References
----------
Vaswani et al. 2017, "Attention Is All You Need", §3.5. Seed 000 ("positional
encoding", "Example (Vaswani et al.)", "AlphaFold paper: x_i -> x_i + e_i
assuming d >= N"). Seed 004, items 18–20 (adding sinusoids of different
frequencies to encode position). Su et al. 2021 (RoFormer), §3.2, §3.4.
Press, Smith & Lewis 2022 (ALiBi), §3.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from ..checks import Measurement, compare, for_all, holds, single_case
from ._figures import matrix, with_figure
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import CHEN_2023, POPE_2023, PRESS_2022, SEED_000, SEED_004, SU_2021, VASWANI_2017
from ..strategies import DTYPES, SEEDS, dtype_seed_rng, normal
from ..tolerance import relative_error, tolerance
from ._common import causal_allowed, coarser_dtype, definition_rope as _rope64
from ._figures import floats, matrix, with_figure

claims = ClaimSet("positional")

PE_SECTION = VASWANI_2017.at("§3.5")
SEED_004_PE = SEED_004.at("items 18–20: position added as sinusoids of different frequencies")
SEED_000_PE = SEED_000.at("positional encoding, Example (Vaswani et al.)")

#: The base of the sinusoidal and rotary frequencies in both papers.
BASE = 10000.0

#: Even model widths d = 2, 4, ..., 64.
EVEN_WIDTHS = st.integers(1, 32).map(lambda half: 2 * half)


def definition_sinusoidal(n_positions: int, d: int) -> np.ndarray:
    """PE[p, 2i] = sin(p / 10000^{2i/d}), PE[p, 2i+1] = cos(...), in float64 (§3.5)."""
    p = np.arange(n_positions, dtype=np.float64)                  # (N,)
    i = np.arange(d // 2, dtype=np.float64)                       # (d/2,)
    angles = p[:, None] / BASE ** (2.0 * i / d)                   # (N, d/2)
    pe = np.empty((n_positions, d))                               # (N, d)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles)
    return pe


def _lowest_frequency(d: int) -> float:
    """omega_{d/2-1} = 10000^{-(d-2)/d}, the slowest sinusoid of the table."""
    return BASE ** (-(d - 2) / d)


@claims.claim("positional.sinusoidal_definition", sources=(PE_SECTION, SEED_000_PE, SEED_004_PE),
              kind=Kind.PROPERTY, needs=("sinusoidal_encoding",))
def sinusoidal_definition(subject, ctx) -> Evidence:
    r"""The sinusoidal encoding is sin at even, cos at odd coordinates

    .. math:: PE_{(p,2i)}=\sin\!\left(\frac{p}{10000^{2i/d}}\right),\qquad
        PE_{(p,2i+1)}=\cos\!\left(\frac{p}{10000^{2i/d}}\right)

    Positions p = 0..N-1. The angle p/10000^{2i/d} carries a relative rounding error, i.e. an
    absolute error growing like p*eps, so the tolerance is a reduction of length N.
    """
    strategy = st.fixed_dictionaries({"N": st.integers(1, 128), "d": EVEN_WIDTHS})

    def measure(c):
        pe = np.asarray(subject.sinusoidal_encoding(c["N"], c["d"]))
        expected = definition_sinusoidal(c["N"], c["d"])
        tol = tolerance("reduction", coarser_dtype(pe), n=c["N"])
        return compare(pe, expected, tol, scale=np.ones(1),
                       note="table differs from sin/cos(p / 10000^(2i/d))")
    return for_all(ctx, strategy, measure,
                   detail="The table equals the definition of §3.5 for N <= 128 positions and "
                          "even widths d <= 64.")


@claims.claim("positional.sinusoidal_bounded", sources=(PE_SECTION, SEED_004_PE),
              kind=Kind.PROPERTY, needs=("sinusoidal_encoding",))
def sinusoidal_bounded(subject, ctx) -> Evidence:
    r"""Every sinusoidal entry lies in [-1, 1]

    .. math:: -1\le PE_{(p,j)}\le 1\qquad\forall\,p,\,j

    Unlike adding the raw position p, the encoding never dwarfs the token embedding.
    """
    strategy = st.fixed_dictionaries({"N": st.integers(1, 4096), "d": EVEN_WIDTHS})

    def measure(c):
        pe = np.asarray(subject.sinusoidal_encoding(c["N"], c["d"]))
        if pe.shape != (c["N"], c["d"]):
            return holds(False, f"table has shape {pe.shape}")
        if not np.all(np.isfinite(pe)):
            return holds(False, "non-finite entry")
        excess = float(np.max(np.abs(pe))) - 1.0
        return Measurement(max(excess, 0.0), 0.0, f"an entry has magnitude 1 + {excess:.3g}")
    return for_all(ctx, strategy, measure,
                   detail="max |PE| <= 1 for tables of up to 4096 positions.")


@st.composite
def _shift_case(draw):
    d = draw(st.integers(1, 16).map(lambda half: 2 * half))
    k = draw(st.integers(1, 64))
    seed = draw(SEEDS)
    # Positions spanning one full period of the slowest sinusoid, so that the
    # rows PE(p) of a random sample span R^d with a small condition number.
    span = max(math.ceil(2 * math.pi / _lowest_frequency(d)) + 1, 16 * d)
    rng = np.random.default_rng(seed)
    drawn = rng.choice(span, size=6 * d, replace=False)            # (6d,) distinct positions
    return {"d": d, "k": k, "seed": seed, "span": span,
            "fit": np.sort(drawn[: 3 * d]), "verify": np.sort(drawn[3 * d:])}


@claims.claim(
    "positional.sinusoidal_shift_matrix",
    sources=(PE_SECTION.at("§3.5 (\"PE_{pos+k} can be represented as a linear function of "
                           "PE_{pos}\")"), SEED_004_PE),
    kind=Kind.PROPERTY, needs=("sinusoidal_encoding",), proof="positional.sinusoidal_shift")
def sinusoidal_shift_matrix(subject, ctx) -> Evidence:
    r"""A fixed offset acts on the sinusoidal encoding as a linear map

    .. math:: \forall k\ \exists M_k\in\mathbb{R}^{d\times d}\ \forall p:\quad PE(p+k)=M_k\,PE(p)

    Checked only through the subject's table: M_k is fitted by least squares on pairs (PE(p),
    PE(p+k)) for 3d positions p and then verified on 3d other positions. The positions cover one
    period of the slowest frequency so that the fitted rows span R^d; the fit divides by their
    singular values, hence the ill-conditioned tolerance over the largest position.
    """
    def measure(c):
        d, k = c["d"], c["k"]
        pe = np.asarray(subject.sinusoidal_encoding(c["span"] + k, d), dtype=np.float64)
        x_fit, y_fit = pe[c["fit"]], pe[c["fit"] + k]              # (3d, d) each
        if np.linalg.matrix_rank(x_fit) < d:
            return holds(False, "the encoded positions do not span R^d")
        m_t, *_ = np.linalg.lstsq(x_fit, y_fit, rcond=None)        # (d, d) = M_k^T
        predicted = pe[c["verify"]] @ m_t                          # (3d, d)
        tol = tolerance("ill_conditioned", coarser_dtype(pe), n=c["span"] + k)
        return compare(predicted, pe[c["verify"] + k], tol, scale=np.ones(1),
                       note=f"the map fitted for offset k={k} fails on other positions")
    evidence = for_all(ctx, _shift_case(), measure,
                       detail="The linear map fitted on one set of positions predicts PE(p+k) "
                              "from PE(p) on a disjoint set.")
    return with_figure(evidence, _next_word_figure, subject)


#: Seed 003's example sentence (BERT attention visualisation, "Visualizing Attention").
SEED003_TOKENS = ("[CLS]", "went", "to", "the", "store", "[SEP]", "at", "the", "store",
                  "bought", "fresh", "straw", "##berries", "[SEP]")


def _next_word_figure(subject) -> dict:
    """A head that attends to the next word, built from the subject's table with M_1.

    Queries ``q_i = M_1 PE(i) = PE(i+1)``, keys ``k_j = PE(j)``: since
    ``PE(i+1) . PE(j) = sum_w cos(w (j - i - 1))`` peaks at ``j = i + 1`` the
    head looks one word ahead, like a backwards RNN (seed 003).
    """
    tokens = SEED003_TOKENS
    n, d = len(tokens), 64
    pe = np.asarray(subject.sinusoidal_encoding(n + 1, d), dtype=np.float64)  # (n+1, d)
    scores = 3.0 * pe[1:] @ pe[:n].T                                # (n, n): PE(i+1).PE(j)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)                  # (n, n) softmax rows
    return {"type": "heatmap", "title": "attend to the next word (q = M₁PE(i) = PE(i+1), "
                                        "k = PE(j), scale 3)",
            "matrix": matrix(weights), "xlabels": list(tokens), "ylabels": list(tokens),
            "cmap": "Blues", "vmin": 0.0, "vmax": 1.0, "aspect": "equal",
            "colorbar": "attention weight",
            "caption": "Seed 003's sentence. Because PE(i+1) = M₁PE(i), a head with queries "
                       "M₁PE(i) against keys PE(j) attends to the next word (a backwards RNN); "
                       "it blurs a little onto the neighbours, as trained heads do. Softmax "
                       "of the subject's encodings, d = 64."}


@claims.claim("positional.sinusoidal_dot_product_relative", sources=(PE_SECTION, SEED_004_PE),
              kind=Kind.PROPERTY, needs=("sinusoidal_encoding",),
              proof="positional.sinusoidal_shift")
def sinusoidal_dot_product_relative(subject, ctx) -> Evidence:
    r"""Dot products of sinusoidal encodings depend only on the offset

    .. math:: PE(p)^{\top}PE(p+k)=f(k)\ \text{independent of } p,\qquad f(-k)=f(k)

    The Gram matrix G = PE PE^T of the subject's table must be the symmetric Toeplitz matrix G[p,
    q] = G[0, |q - p|]; by the angle-difference formula f(k) = sum_i cos(k omega_i), which is not
    used by the check.
    """
    strategy = st.fixed_dictionaries({"N": st.integers(2, 256), "d": EVEN_WIDTHS})

    def measure(c):
        pe = np.asarray(subject.sinusoidal_encoding(c["N"], c["d"]), dtype=np.float64)
        gram = pe @ pe.T                                           # (N, N)
        offset = np.abs(np.arange(c["N"])[None, :] - np.arange(c["N"])[:, None])   # (N, N)
        toeplitz = gram[0][offset]                                 # (N, N): f(|q - p|)
        tol = tolerance("reduction", coarser_dtype(pe), n=c["N"] + c["d"])
        return compare(gram, toeplitz, tol, scale=np.array([c["d"] / 2]),
                       note="PE(p)·PE(p+k) depends on p")
    evidence = for_all(ctx, strategy, measure,
                       detail="PE(p)·PE(q) equals PE(0)·PE(|q-p|) for every pair of positions.")
    return with_figure(evidence, _sinusoidal_figure, subject)


def _sinusoidal_figure(subject) -> dict:
    """The subject's table for p < 64, d = 64, and PE(p)·PE(p+k) against k at three p."""
    d = 64
    pe = np.asarray(subject.sinusoidal_encoding(256, d), dtype=np.float64)   # (256, d)
    ks = np.arange(-60, 61)                                          # (K,)
    curves = [{"x": ks.tolist(), "y": floats(pe[p + ks] @ pe[p]), "label": f"p = {p}",
               "style": "line" if i == 0 else "dashed"} for i, p in enumerate((60, 100, 150))]
    return {"type": "panels", "title": "The sinusoidal positional encoding",
            "caption": "Left: PE(p) for p < 64, d = 64; low dimensions oscillate fast, high "
                       "ones slowly. Right: PE(p)·PE(p+k) for three positions p: the curves "
                       "coincide, so the dot product depends on the offset k only.",
            "panels": [
                {"type": "heatmap", "title": f"PE(p), d = {d}", "matrix": matrix(pe[:64]),
                 "cmap": "RdBu_r", "vmin": -1.0, "vmax": 1.0,
                 "xlabel": "dimension (sin at even, cos at odd)", "ylabel": "position p"},
                {"type": "lines", "title": "depends on k only, symmetric, peaks at k = 0",
                 "xlabel": "offset k", "ylabel": "PE(p) · PE(p+k)", "series": curves}]}


@claims.claim(
    "positional.one_hot_distinguishable",
    sources=(SEED_000.at("AlphaFold paper: x_i -> x_i + e_i assuming d >= N"), PE_SECTION),
    kind=Kind.PROPERTY, needs=("one_hot_encoding",))
def one_hot_distinguishable(subject, ctx) -> Evidence:
    r"""One-hot positions are orthonormal, so every position is distinguishable

    .. math:: PE=[e_1,\dots,e_N]^{\top}\ (d\ge N):\quad PE\,PE^{\top}=I_N,\quad
        e_i^{\top}(x_j+PE_j)-e_i^{\top}x_j=\delta_{ij},\quad x_j=x_{j'}\ \Rightarrow\ x_j+PE_j\ne
        x_{j'}+PE_{j'}\ (j\ne j')

    e_i is the i-th standard basis vector of R^d, fixed by the check; PE is the subject's table.
    Equal token vectors x_j become pairwise distinct (at distance sqrt 2) once positions are added.
    """
    strategy = st.fixed_dictionaries({"N": st.integers(1, 16), "extra": st.integers(0, 8),
                                      "dtype": DTYPES, "seed": SEEDS})

    def measure(c):
        n, d, dt = c["N"], c["N"] + c["extra"], c["dtype"]
        pe = np.asarray(subject.one_hot_encoding(n, d))
        if pe.shape != (n, d):
            return holds(False, f"table has shape {pe.shape}, expected {(n, d)}")
        basis = np.eye(n, d)                                       # (N, d): rows e_i
        ortho = compare(pe @ pe.T, np.eye(n), tolerance("exact", dt),
                        note="rows are not orthonormal")
        if not ortho.ok:
            return ortho
        rng = np.random.default_rng(c["seed"])
        x = normal(rng, (n, d), dt)                                # (N, d) token vectors
        # read[j, i] = e_i·(x_j + PE_j) - e_i·x_j
        read = (x + pe.astype(dt)) @ basis.T - x @ basis.T         # (N, N)
        delta = compare(read, np.eye(n), tolerance("rounding", dt),
                        scale=np.array([1.0 + float(np.max(np.abs(x)))]),
                        note="e_i·(x_j + PE_j) - e_i·x_j is not delta_ij")
        if not delta.ok:
            return delta
        same = np.broadcast_to(x[:1], (n, d)) + pe.astype(dt)      # (N, d): equal tokens + PE
        dist = np.linalg.norm(same[:, None, :] - same[None, :, :], axis=-1)   # (N, N)
        distinct = bool(np.all(dist[~np.eye(n, dtype=bool)] > 0))  # vacuous for N = 1
        if not distinct:
            return holds(False, "two positions with equal tokens are indistinguishable")
        return delta
    return for_all(ctx, strategy, measure,
                   detail="PE PE^T = I, adding PE moves coordinate i by delta_ij, and equal "
                          "tokens get pairwise distinct rows.")


@st.composite
def _rope_case(draw):
    n = draw(st.integers(1, 12))
    d = draw(st.integers(1, 16).map(lambda half: 2 * half))
    dt, seed, rng = dtype_seed_rng(draw)
    return {"n": n, "d": d, "dtype": dt, "seed": seed,
            "q": normal(rng, (n, d), dt), "k": normal(rng, (n, d), dt),
            "m": rng.integers(0, 512, size=n).astype(np.float64),
            "n_pos": rng.integers(0, 512, size=n).astype(np.float64),
            "t": float(draw(st.integers(-256, 512)))}


@claims.claim("positional.rope_relative", sources=(SU_2021.at("§3.2.2, Eq. (16); §3.4.1"),),
              kind=Kind.PROPERTY, needs=("rope",), proof="positional.rope_relative")
def rope_relative(subject, ctx) -> Evidence:
    r"""Rotary scores depend only on the relative position

    .. math:: \langle R_m q,\,R_n k\rangle=\langle q,\,R_{n-m}k\rangle,\qquad \langle
        R_{m+t}q,\,R_{n+t}k\rangle=\langle R_m q,\,R_n k\rangle

    Each row l of q and k is rotated by its own position (m_l, n_l) through the subject's positions
    argument; the row-wise dot products are compared. Angles up to ~1000 radians carry absolute
    rounding errors ~1000 eps, hence a reduction tolerance over d plus the largest position.
    """
    def measure(c):
        q, k, m, n, t = c["q"], c["k"], c["m"], c["n_pos"], c["t"]
        rq = np.asarray(subject.rope(q, positions=m), dtype=np.float64)       # (L, d)
        rk = np.asarray(subject.rope(k, positions=n), dtype=np.float64)       # (L, d)
        score = np.einsum("ld,ld->l", rq, rk)                                 # (L,)
        relative = np.asarray(subject.rope(k, positions=n - m), dtype=np.float64)
        score_rel = np.einsum("ld,ld->l", q.astype(np.float64), relative)     # (L,)
        shifted_q = np.asarray(subject.rope(q, positions=m + t), dtype=np.float64)
        shifted_k = np.asarray(subject.rope(k, positions=n + t), dtype=np.float64)
        score_shift = np.einsum("ld,ld->l", shifted_q, shifted_k)             # (L,)
        scale = np.linalg.norm(q.astype(np.float64), axis=-1) * np.linalg.norm(
            k.astype(np.float64), axis=-1)                                    # (L,) Cauchy-Schwarz
        largest = int(np.max(np.abs(np.concatenate([m, n, m + t, n + t])))) + 1
        tol = tolerance("reduction", c["dtype"], n=c["d"] + largest)
        # each rotated vector rounded to a half dtype moves its scores by u |q| |k| at most
        m1 = compare(score, score_rel, tol, scale=scale, outputs=3,
                     note="<R_m q, R_n k> != <q, R_{n-m} k>")
        if not m1.ok:
            return m1
        m2 = compare(score_shift, score, tol, scale=scale, outputs=4,
                     note="<R_{m+t} q, R_{n+t} k> != <R_m q, R_n k>")
        return max((m1, m2), key=lambda mm: mm.error)
    return for_all(ctx, _rope_case(), measure,
                   detail="For positions in [0, 512) and shifts t in [-256, 512] the rotated "
                          "scores equal the scores at the relative position and are shift "
                          "invariant.")


@claims.claim(
    "positional.rope_definition",
    sources=(SU_2021.at("the computationally efficient realisation of the rotary matrix "
                        "multiplication"),),
    kind=Kind.PROPERTY, needs=("rope",))
def rope_definition(subject, ctx) -> Evidence:
    r"""RoPE rotates coordinate pairs (2i, 2i+1) by the angle p·θ_i, θ_i = 10000^(−2i/d)

    .. math:: \begin{pmatrix}y_{2i}\\y_{2i+1}\end{pmatrix}=\begin{pmatrix}\cos p\theta_i&-\sin
        p\theta_i\\\sin p\theta_i&\cos
        p\theta_i\end{pmatrix}\begin{pmatrix}x_{2i}\\x_{2i+1}\end{pmatrix},\quad\theta_i=10000^{-2i/d}

    Each row is rotated at its own position through the positions argument and compared with the
    RoFormer formula in float64. It tells the contract's interleaved pairs from the split-halves
    pairing of GPT-NeoX (declare rope_pairing=half), which rope_relative cannot: both pairings are
    relative. Angles up to ~512 radians carry absolute rounding errors ~512 eps, hence a reduction
    tolerance over the largest position.
    """
    def measure(c):
        x, pos = c["q"], c["m"]
        out = subject.rope(x, positions=pos)
        expected = _rope64(x, pos)                                           # (L, d)
        return compare(out, expected, _rope_tol(c), scale=x.astype(np.float64),
                       note="rope(x, p) differs from the RoFormer rotation of pairs (2i, 2i+1)")
    return for_all(ctx, _rope_case(), measure,
                   detail="Rows rotated at positions in [0, 512) equal the RoFormer rotation of "
                          "the interleaved pairs with theta_i = 10000^(-2i/d).")


@st.composite
def _alibi_case(draw):
    h = draw(st.integers(1, 8))
    length = draw(st.integers(1, 8))
    t = draw(st.integers(0, 8))
    e = draw(st.integers(1, 8))
    dt, seed, rng = dtype_seed_rng(draw)
    w = length + t
    return {"H": h, "L": length, "t": t, "E": e, "dtype": dt, "seed": seed,
            "q": normal(rng, (h, w, e), dt, 2.0), "k": normal(rng, (h, w, e), dt, 2.0),
            "v": normal(rng, (h, w, e), dt)}


@claims.claim("positional.alibi_shift_invariance", sources=(PRESS_2022.at("§3, Figure 3"),),
              kind=Kind.PROPERTY, needs=("alibi_bias", "attention"),
              keywords=(("attention", "bias"),))
def alibi_shift_invariance(subject, ctx) -> Evidence:
    r"""ALiBi attention does not depend on where the sequence sits in the window

    .. math:: \mathrm{Attn}\big(X_{t:t+L};\,B^{(L)},\
        \text{causal}\big)=\mathrm{Attn}\big(X_{0:t+L};\,B^{(t+L)},\ M_{ij}=[t\le j\le
        i]\big)_{t:t+L},\qquad B_{h,i,j}=-m_h\,(i-j)

    The bias depends only on the query-key distance, so a sequence embedded at positions t..t+L-1
    of a longer causal window, with the t leading keys masked out for every query, attends exactly
    as it does alone. The subject's alibi_bias (H, Lq, Lk) is passed as attention(q, k, v,
    bias=...) with q, k, v of shape (H, L, E).
    """
    def measure(c):
        h, length, t, dt = c["H"], c["L"], c["t"], c["dtype"]
        w = length + t
        bias_long = np.asarray(subject.alibi_bias(h, w, w)).astype(dt)       # (H, W, W)
        bias_short = np.asarray(subject.alibi_bias(h, length, length)).astype(dt)   # (H, L, L)
        allowed = causal_allowed(w, w) & (np.arange(w) >= t)[None, :]        # (W, W)
        long = np.asarray(subject.attention(c["q"], c["k"], c["v"], mask=allowed,
                                            bias=bias_long))                # (H, W, E)
        alone = np.asarray(subject.attention(c["q"][:, t:], c["k"][:, t:], c["v"][:, t:],
                                             causal=True, bias=bias_short))  # (H, L, E)
        tol = tolerance("reduction", coarser_dtype(long, c["q"]), n=c["E"] + w)
        return compare(long[:, t:], alone, tol, scale=c["v"],
                       note=f"outputs change when the sequence is moved to offset t={t}")
    return for_all(ctx, _alibi_case(), measure,
                   detail="Outputs of a sequence alone equal those of the same sequence placed "
                          "after t masked positions, for H <= 8 heads.")


def _official_alibi_slopes(n: int) -> list[float]:
    """The slopes of Press et al.'s released ``get_slopes``, restated: for a power of two n,
    2^(-8 (i+1) / n); otherwise those of the largest power of two c <= n, then every other
    slope (0, 2, 4, ...) of 2c heads, the first n - c of them."""
    def power_of_two(m):
        return [2.0 ** (-8.0 * (i + 1) / m) for i in range(m)]
    c = 1 << (n.bit_length() - 1)
    return power_of_two(c) + ([] if c == n else power_of_two(2 * c)[0::2][: n - c])


@claims.claim(
    "positional.alibi_slopes_official",
    sources=(PRESS_2022.at("the slopes m: a geometric sequence starting at 2^(-8/n) with ratio "
                           "2^(-8/n); the non-power-of-two rule of the authors' get_slopes"),),
    kind=Kind.PROPERTY, needs=("alibi_bias",),
    full_precision_only="the slopes are float64 constants of the head count: no array input")
def alibi_slopes_official(subject, ctx) -> Evidence:
    r"""ALiBi slopes follow the authors' rule for every head count 1..64

    .. math:: m_h=2^{-8(h+1)/H}\ (H=2^a);\quad
        m=\big(m^{(c)},\,m^{(2c)}_{0,2,4,\dots}\big)_{1..H},\ c=2^{\lfloor\log_2 H\rfloor}\
        \text{otherwise}

    Read from alibi_bias(H, 2, 2) as m_h = -B[h, 1, 0] (one key behind the query). The
    non-power-of-two rule interleaves the slopes of 2c heads, so the official slopes are not
    monotone in h (for H = 3: 1/16, 1/256, 1/4): monotonicity is not a property, and a geometric
    2^(-8(h+1)/H) for every H is the common bug.
    """
    measurements = []
    for n in range(1, 65):
        bias = np.asarray(subject.alibi_bias(n, 2, 2), dtype=np.float64)      # (H, 2, 2)
        slopes = -bias[:, 1, 0] if bias.shape == (n, 2, 2) else np.full(n, np.nan)
        measurements.append(compare(slopes, np.array(_official_alibi_slopes(n)),
                                    tolerance("rounding", np.float64),
                                    note=f"slopes for H = {n} differ from the authors' rule"))
    return single_case(measurements, cases=64,
                       detail="For every head count H = 1..64 the slopes of alibi_bias equal "
                              "those of the authors' get_slopes.")


@claims.claim("positional.alibi_bias_definition",
              sources=(PRESS_2022.at("§3, Figure 3 (the bias m * [-(i-1), ..., -2, -1, 0])"),),
              kind=Kind.PROPERTY, needs=("alibi_bias",),
              full_precision_only="the bias is a float64 constant of the shape: no array input")
def alibi_bias_definition(subject, ctx) -> Evidence:
    r"""The ALiBi bias is -m_h (i - j) behind the query and -m_h |i - j| ahead of it

    .. math:: B_{h,i,j}=-m_h\,|i+\delta-j|,\qquad \delta=L_k-L_q\ \text{(bottom-right)}

    Every entry of alibi_bias(H, Lq, Lk) for H = 1..12 and Lq, Lk = 1..6, with the authors' slopes.
    The keys behind the query (j <= i + delta) carry the paper's -m (i - j); ahead of it (what only
    a non-causal use sees) the contract's symmetric -m |i - j|. A target extending the paper's line
    linearly (+m (j - i) ahead) declares alibi_noncausal=linear.
    """
    measurements = []
    for n in range(1, 13):
        slopes = np.array(_official_alibi_slopes(n))                           # (H,)
        for lq in range(1, 7):
            for lk in range(1, 7):
                bias = np.asarray(subject.alibi_bias(n, lq, lk), dtype=np.float64)
                i_abs = np.arange(lq)[:, None] + (lk - lq)                    # (Lq, 1)
                dist = np.abs(i_abs - np.arange(lk)[None, :])                 # (Lq, Lk)
                expected = -slopes[:, None, None] * dist                      # (H, Lq, Lk)
                if bias.shape != expected.shape:
                    measurements.append(holds(False, f"alibi_bias({n}, {lq}, {lk}) has shape "
                                                     f"{bias.shape}"))
                    continue
                measurements.append(compare(bias, expected, tolerance("rounding", np.float64),
                                            note=f"alibi_bias({n}, {lq}, {lk}) differs"))
    return single_case(measurements, cases=len(measurements),
                       detail="Every entry of the bias for H = 1..12, Lq, Lk = 1..6 (bottom-right "
                              "aligned) equals -m_h |i + Lk - Lq - j|.")


# ---------------------------------------------------------------------------
# RoPE as libraries use it: offsets, pairing layouts, partial rotation, interpolation
# ---------------------------------------------------------------------------

CHEN = CHEN_2023.at("positions m scaled down to m L / L'")


def _rope_tol(c):
    return tolerance("reduction", c["dtype"], n=2 + int(np.max(c["m"], initial=0)) + 1)


@claims.claim("positional.rope_decode_offset",
              sources=(SU_2021.at("§3.4.2"), POPE_2023.at("§2 (KV cache)")), kind=Kind.PROPERTY,
              needs=("rope",))
def rope_decode_offset(subject, ctx) -> Evidence:
    r"""Rotating row p of a sequence equals rotating that token alone at offset p

    .. math:: \mathrm{RoPE}(X)_p=\mathrm{RoPE}(x_p;\ \text{position } p)\quad \text{for every } p

    What KV-cache decoding relies on: the token decoded at step p is rotated alone, with its
    position (or offset) p, and must match row p of the whole sequence. A decoder that rotates
    every new token at position 0 fails.
    """
    def measure(c):
        x = c["q"]
        whole = np.asarray(subject.rope(x))                                  # (n, d)
        rows = [np.asarray(subject.rope(x[p:p + 1], positions=np.array([float(p)])))
                for p in range(c["n"])]
        return compare(np.concatenate(rows, axis=0), whole, _rope_tol(c), scale=x,
                       note="a token rotated alone at its offset differs from its row")
    return for_all(ctx, _rope_case(), measure,
                   detail="Each row p of rope(X) equals rope of that row alone at position p.")


@claims.claim("positional.rope_pairing", sources=(SU_2021.at("§3.4.2"),), kind=Kind.PROPERTY,
              needs=("rope",))
def rope_pairing(subject, ctx) -> Evidence:
    r"""Interleaved and split-halves RoPE agree after the fixed permutation, and only then

    .. math:: \mathrm{RoPE}_{\text{interleaved}}(x)=P^{-1}\,\mathrm{RoPE}_{\text{half}}(Px)\ne\mathrm{RoPE}_{\text{half}}(x),\qquad
        P:(0,2,\dots,1,3,\dots)

    The subject's rope (the contract's interleaved pairs, or a declared rope_pairing converted) is
    compared with the split-halves form conjugated by the permutation P that lists even coordinates
    first; it must also differ from the unconjugated split-halves form (by at least half their
    distance, where the layouts differ by 5% or more). Converting GPT-J weights to the NeoX layout
    without permuting the q and k projections is exactly that difference; relative-position claims
    cannot see it, since both layouts satisfy them.
    """
    def measure(c):
        x, d = c["q"], c["d"]
        out = np.asarray(subject.rope(x, positions=c["m"]))                  # (n, d)
        perm = np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])
        conj = np.empty((c["n"], d))
        conj[:, perm] = _rope64(x[:, perm], c["m"], pairs="half")
        m = compare(out, conj, _rope_tol(c), scale=x,
                    note="rope differs from the split-halves form conjugated by P")
        plain = _rope64(x, c["m"], pairs="half")
        gap = relative_error(conj, plain, x)           # how far apart the two layouts are
        if gap > 0.05 and relative_error(out, plain, x) < gap / 2:
            return holds(False, "rope is the split-halves form without P")
        return m
    evidence = for_all(ctx, _rope_case(), measure,
                       detail="rope equals P^-1 RoPE_half(P x) and, where the layouts differ, "
                              "not RoPE_half(x).")
    return with_figure(evidence, _pairing_figure, subject)


def _pairing_figure(subject) -> dict:
    """Which coordinates rotate together: the subject's rope of the basis vectors at position
    1, next to the split-halves layout and the permutation P between them."""
    d = 8
    eye = np.eye(d)                                                          # (d, d) rows e_k
    basis = eye[:, None, :] * np.ones((1, 2, 1))                            # (d, 2, d)
    out = np.asarray(subject.rope(basis, positions=np.arange(2.0), base=1.0),
                     dtype=np.float64)[:, 1, :]                              # (d, d)
    half = _rope64(basis, np.arange(2.0), base=1.0, pairs="half")[:, 1, :]
    perm = np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])
    p = np.zeros((d, d))
    p[np.arange(d), perm] = 1.0                                              # (P x)_i = x_perm(i)
    labels = list(range(d))
    panel = {"type": "heatmap", "cmap": "Blues", "vmin": 0.0, "vmax": 1.0, "aspect": "equal",
             "xlabels": labels, "ylabels": labels}
    return {"type": "panels", "title": "RoPE pairing: which coordinates rotate together",
            "panels": [
                {**panel, "title": "the subject's rope (contract: interleaved)",
                 "matrix": matrix(np.abs(out)), "xlabel": "output coordinate",
                 "ylabel": "input e_k"},
                {**panel, "title": "split halves (GPT-NeoX rotate_half)",
                 "matrix": matrix(np.abs(half)), "xlabel": "output coordinate",
                 "ylabel": "input e_k"},
                {**panel, "title": "the permutation P", "matrix": matrix(p),
                 "xlabel": "input coordinate", "ylabel": "output coordinate"}],
            "caption": "|R_1 e_k| for d = 8 at position 1, base 1 (every pair turns by one "
                       "radian, so every pair shows): a nonzero at (k, l) means "
                       "coordinates k and l rotate together. Interleaved pairs (2i, 2i+1) "
                       "form 2 x 2 diagonal blocks; split halves pair i with i + d/2. P lists "
                       "the even coordinates first and carries one layout into the other; "
                       "converting weights between the layouts without it corrupts q and k."}


@st.composite
def _partial_case(draw):
    c = draw(_rope_case())
    c["r"] = 2 * draw(st.integers(1, c["d"] // 2))
    return c


@claims.claim("positional.rope_partial_rotation", sources=(SU_2021.at("§3.4.2"),),
              kind=Kind.PROPERTY, needs=("rope",), keywords=(("rope", "rotary_dim"),))
def rope_partial_rotation(subject, ctx) -> Evidence:
    r"""Partial rotation rotates the first rotary_dim coordinates as a rotary_dim-wide RoPE

    .. math:: \mathrm{RoPE}_r(x)=\big(\mathrm{RoPE}(x_{1..r}),\ x_{r+1..d}\big)

    GPT-NeoX's rotary_pct: the frequencies are those of an r-wide embedding, base^(-2i/r), not of
    the full width, and the last d - r coordinates pass unchanged.
    """
    def measure(c):
        x, r = c["q"], c["r"]
        out = np.asarray(subject.rope(x, positions=c["m"], rotary_dim=r))  # (n, d)
        if not np.array_equal(out[:, r:], x[:, r:]):
            return holds(False, f"coordinates beyond rotary_dim = {r} changed")
        return compare(out[:, :r], _rope64(x[:, :r], c["m"]), _rope_tol(c), scale=x,
                       note=f"the rotated part differs from a {r}-wide RoPE")
    return for_all(ctx, _partial_case(), measure,
                   detail="With rotary_dim = r the first r coordinates equal a r-wide RoPE and "
                          "the rest equal the input.")


@claims.claim("positional.rope_position_interpolation", sources=(CHEN, SU_2021),
              kind=Kind.PROPERTY, needs=("rope",), keywords=(("rope", "position_scale"),))
def rope_position_interpolation(subject, ctx) -> Evidence:
    r"""Linear position interpolation divides the positions by the scale

    .. math:: \mathrm{RoPE}(x;\ m,\ s)=\mathrm{RoPE}(x;\ m/s)

    position_scale s = L'/L lets a model trained on L positions read L' (Chen et al. 2023).
    Multiplying instead of dividing is the bug this catches.
    """
    strategy = st.tuples(_rope_case(), st.sampled_from([2.0, 4.0, 8.0]))

    def measure(args):
        c, s = args
        out = np.asarray(subject.rope(c["q"], positions=c["m"], position_scale=s))
        return compare(out, _rope64(c["q"], c["m"] / s), _rope_tol(c), scale=c["q"],
                       note=f"position_scale {s:g} is not positions / {s:g}")
    return for_all(ctx, strategy, measure,
                   detail="rope(x, m, position_scale=s) equals rope(x, m / s) for s = 2, 4, 8.")
