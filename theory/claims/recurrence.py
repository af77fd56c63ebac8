"""Recurrence: linear attention is an RNN; RNN vs transformer critical paths; gradients
through a linear RNN scale as the spectral radius to the power T.

References
----------
Katharopoulos et al. 2020, Transformers are RNNs, ICML, §3.2 and §3.4.
Vaswani et al. 2017, §4 (Table 1, maximum path lengths).
Pascanu, Mikolov & Bengio 2013, On the difficulty of training recurrent neural
networks, ICML, §2.
Seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt): RNN path linear in N, the
transformer's constant. Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt):
vanishing/exploding gradients.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import strategies as st

from transformer_theory.impl import recurrence as R

from ..checks import Measurement, compare, for_all, holds, single_case
from ..claim import Evidence, Kind, Source
from ..registry import ClaimSet
from ..sources import KATHAROPOULOS_2020, SEED_000, SEED_003, SEED_004, VASWANI_2017, YAO_2021
from ..declared import value_dim_equal
from ..strategies import DTYPES, SEEDS, leading_dims, normal
from ..subject import construction
from ..tolerance import tolerance
from ._common import coarser_dtype

claims = ClaimSet("recurrence")

PASCANU_2013 = Source("Pascanu, Mikolov & Bengio 2013",
                      "On the difficulty of training recurrent neural networks, ICML")

#: Sequence lengths of the critical-path claim: every N up to 16, then a grid up to 256.
CRITICAL_PATH_N = tuple(range(1, 17)) + (24, 32, 48, 64, 96, 128, 192, 256)


@st.composite
def _linear_case(draw):
    lead = draw(leading_dims())
    length = draw(st.integers(1, 12), label="L")
    e = draw(st.integers(1, 8))
    ev = e if value_dim_equal() else draw(st.integers(1, 8))
    dt, seed, scale = draw(DTYPES), draw(SEEDS), draw(st.sampled_from([0.3, 1.0, 3.0]))
    rng = np.random.default_rng(seed)
    return {"lead": lead, "L": length, "E": e, "Ev": ev, "dtype": dt, "seed": seed,
            "q": normal(rng, (*lead, length, e), dt, scale),
            "k": normal(rng, (*lead, length, e), dt, scale),
            "v": normal(rng, (*lead, length, ev), dt)}


@claims.claim(
    "recurrence.linear_attention_rnn",
    sources=(KATHAROPOULOS_2020.at("§3.4 (causal masking) and §3.2, eq. 7 (phi = elu + 1)"),
             SEED_004.at("RNN encoders"), SEED_000.at("RNN: if state = phi, similar to convolution")),
    kind=Kind.PROPERTY, needs=("attention",),
    uses=("causal_linear_attention_recurrent",),
    keywords=(("attention", "bias"),), proof="attention.linear_recurrence")
def linear_attention_rnn(subject, ctx) -> Evidence:
    r"""Causal linear attention computed as an RNN equals the masked quadratic form

    .. math:: S_i=S_{i-1}+\phi(k_i)v_i^{\top},\ z_i=z_{i-1}+\phi(k_i):\quad
        \frac{\phi(q_i)^{\top}S_i}{\phi(q_i)^{\top}z_i}=\frac{\sum_{j\le
        i}\phi(q_i)^{\top}\phi(k_j)\,v_j}{\sum_{j\le i}\phi(q_i)^{\top}\phi(k_j)}

    The right-hand side is computed by the subject's softmax attention with zero content scores,
    the additive bias log(phi(q_i).phi(k_j)) and causal=True: softmax(log A + log M) =
    (A*M)/rowsum(A*M). The left-hand side is the reference recurrence, one position at a time.
    """
    recurrent = construction(subject, "causal_linear_attention_recurrent",
                             R.causal_linear_attention_recurrent)

    def measure(c):
        rnn = recurrent(c["q"], c["k"], c["v"])
        bias = R.kernel_log_bias(c["q"], c["k"]).astype(c["dtype"])
        zeros = np.zeros((*c["lead"], c["L"], 1), dtype=c["dtype"])
        masked = subject.attention(zeros, zeros, c["v"], bias=bias, causal=True)
        tol = tolerance("composite", c["dtype"], n=c["E"] + c["L"])
        return compare(rnn, masked, tol, scale=c["v"],
                       note="the recurrence differs from masked linear attention")
    return for_all(ctx, _linear_case(), measure,
                   detail="The (S_i, z_i) recurrence reproduces causal linear attention with "
                          "phi = elu + 1 (computed by the subject as softmax attention with a "
                          "log-kernel bias), for L up to 12 and batch/head dims.")


@claims.claim(
    "recurrence.critical_path",
    sources=(SEED_004.at("items 2-3 and 14: the longest path is linear for the RNN, "
                         "constant for the transformer"),
             SEED_003.at("Problems with RNNs: path length grows with sequence"),
             VASWANI_2017.at("§4, Table 1 (maximum path length)")),
    kind=Kind.CONSTRUCTION, needs=(), uses=("transformer_encoder_graph",))
def critical_path(subject, ctx) -> Evidence:
    r"""An RNN encoder's critical path grows linearly in N; a transformer's is constant

    .. math:: \mathrm{path}_{\mathrm{RNN}}(N)=N+1,\qquad
        \mathrm{path}_{\mathrm{Transformer}}(N,D)=4D+1\quad(1\le N\le 256)

    Nodes are computed vectors (x_i, h_t; q_i, k_i, v_i, the attention row a_i, its output o_i, the
    FFN output y_i); an N-ary reduction (a softmax row) is one node. Longest paths are counted in
    nodes on the dependency graphs built for every N up to 16 and then N = 24, 32, ..., 256, with D
    = 1, 2, 3 layers.
    """
    encoder_graph = construction(subject, "transformer_encoder_graph", R.transformer_encoder_graph)
    rnn = [R.longest_path(R.rnn_encoder_graph(n)) for n in CRITICAL_PATH_N]
    measurements = [holds(p == n + 1, f"RNN, N={n}: longest path {p}, expected {n + 1}")
                    for n, p in zip(CRITICAL_PATH_N, rnn)]
    slope, _ = R.least_squares_slope(np.array(CRITICAL_PATH_N, float), np.array(rnn, float))
    series = [{"label": "RNN encoder", "x": list(CRITICAL_PATH_N), "y": rnn, "yerr": None,
               "style": "line"}]
    constant = {}
    for depth in (1, 2, 3):
        paths = []
        for n in CRITICAL_PATH_N:
            p = R.longest_path(encoder_graph(n, depth))
            paths.append(p)
            measurements.append(holds(p == 4 * depth + 1,
                                      f"transformer, D={depth}, N={n}: longest path {p}, "
                                      f"expected {4 * depth + 1}"))
            if p != 4 * depth + 1:
                break
        constant[depth] = sorted(set(paths))
        series.append({"label": f"transformer encoder, D={depth}",
                       "x": list(CRITICAL_PATH_N[:len(paths)]), "y": paths, "yerr": None,
                       "style": "line"})
    figure = {"type": "lines", "title": "Critical path of the encoder's dependency graph",
              "xlabel": "sequence length N", "ylabel": "nodes on the longest path",
              "xscale": "log", "yscale": "log", "series": series}
    return single_case(
        measurements, figure=figure,
        detail=f"RNN: longest paths from {rnn[0]} to {rnn[-1]} nodes for N = 1..256 "
               f"(least-squares slope {slope:.3f} nodes per token); transformer: "
               + ", ".join(f"D={d}: {v} nodes" for d, v in constant.items())
               + " over the same N.")


def _spectra(rng):
    """(label, W, rho, kappa): real spectra with rho in {0.8, 0.95, 1, 1.05, 1.2}, plus a
    Gaussian matrix (complex eigenvalues, rho near 1)."""
    n = 6
    out = []
    for rho in (0.8, 0.95, 1.0, 1.05, 1.2):
        lam = np.concatenate([[rho], rho * rng.uniform(-0.9, 0.9, n - 1)])
        w, kappa = R.matrix_with_spectrum(lam, rng)
        out.append((f"rho={rho}", w, rho, kappa))
    g = rng.standard_normal((n, n)) / math.sqrt(n)
    lam, p = np.linalg.eig(g)
    out.append((f"Gaussian, rho={np.max(np.abs(lam)):.3f}", g, float(np.max(np.abs(lam))),
                float(np.linalg.cond(p))))
    return out


@claims.claim(
    "recurrence.gradient_spectral_radius",
    sources=(PASCANU_2013.at("§2.1 (exploding and vanishing gradients, spectral radius)"),
             SEED_000.at("RNN: vanishing/exploding gradients")),
    kind=Kind.CONSTRUCTION, needs=(), uses=("state_jacobian_norms",))
def gradient_spectral_radius(subject, ctx) -> Evidence:
    r"""Gradients through a linear RNN vanish or explode as ρ(W)^T

    .. math:: \rho(W)^T\le\Bigl\|\frac{\partial h_T}{\partial
        h_0}\Bigr\|_2=\|W^T\|_2\le\kappa(P)\,\rho(W)^T,\quad\text{so the slope of }\log\|\partial
        h_T/\partial h_0\|\text{ in }T\text{ is }\log\rho(W)

    W = P diag(lambda) P^{-1} (kappa(P) its eigenvector condition number). The Jacobian is
    accumulated by the chain rule through T = 1..150 steps. Every log-norm must lie in [T log rho,
    T log rho + log kappa] (up to the composite rounding tolerance), and the least-squares slope
    within the bound that residual band implies.
    """
    jacobian_norms = construction(subject, "state_jacobian_norms", R.state_jacobian_norms)
    rng = ctx.rng("spectra")
    steps = 150
    t = np.arange(1, steps + 1, dtype=float)
    measurements, series, slopes = [], [], []
    for label, w, rho, kappa in _spectra(rng):
        norms = jacobian_norms(w, steps)                                     # (T,)
        resid = np.log(norms) - t * math.log(rho)                            # in [0, log kappa]
        tol = tolerance("composite", np.float64, n=steps * w.shape[0]).rtol * max(kappa, 1.0)
        low = float(np.max(-resid))
        high = float(np.max(resid - math.log(kappa)))
        measurements.append(Measurement(max(low, high, 0.0), tol,
                                        f"{label}: log-norm leaves [T log rho, T log rho + log "
                                        f"kappa] by {max(low, high):.3g}"))
        slope, _ = R.least_squares_slope(t, np.log(norms))
        bound = R.slope_error_bound(t, math.log(kappa)) + tol
        slopes.append((label, slope, math.log(rho), bound))
        measurements.append(Measurement(abs(slope - math.log(rho)), bound,
                                        f"{label}: slope {slope:.4f} vs log rho "
                                        f"{math.log(rho):.4f}"))
        every = t[::10].astype(int)
        series.append({"label": f"{label} (measured)", "x": every.tolist(),
                       "y": norms[every - 1].tolist(), "yerr": None, "style": "points"})
        series.append({"label": f"{label}: rho^T", "x": every.tolist(),
                       "y": (rho ** every.astype(float)).tolist(), "yerr": None, "style": "line"})
    figure = {"type": "lines", "title": "Norm of dh_T/dh_0 through a linear RNN",
              "xlabel": "T (steps)", "ylabel": "||dh_T/dh_0||_2", "xscale": "linear",
              "yscale": "log", "series": series}
    ev = single_case(
        measurements, figure=figure,
        detail="Measured slopes of log||dh_T/dh_0|| (T = 1..150) against log rho: " +
               "; ".join(f"{lab}: {s:.4f} vs {lr:.4f} (± {b:.3f})" for lab, s, lr, b in slopes))
    ev.tolerance_reason = ("per-step band [0, log kappa(P)] from W = P diag P^-1 (plus composite "
                           "rounding), and the least-squares slope error that band implies")
    return ev


# ---------------------------------------------------------------------------
# seed 000: an RNN with empty state is a convolution; fixed-size memory and Dyck_{k,D}
# ---------------------------------------------------------------------------

HEWITT_2020 = Source("Hewitt et al. 2020",
                     "RNNs can generate bounded hierarchical languages with optimal memory, EMNLP")


@st.composite
def _patch_case(draw):
    width = draw(st.integers(1, 5), label="K")
    length = draw(st.integers(1, 12), label="L")
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dt, seed = draw(DTYPES), draw(SEEDS)
    rng = np.random.default_rng(seed)
    return {"K": width, "L": length, "C_in": c_in, "C_out": c_out, "dtype": dt, "seed": seed,
            "x": normal(rng, (length, c_in), dt), "w": normal(rng, (c_out, c_in, width), dt)}


@claims.claim(
    "recurrence.stateless_rnn_is_convolution",
    sources=(SEED_000.at("RNN: 'if state = phi, similar to convolution' (convolutional, with "
                         "pre-extracted patches)"),
             VASWANI_2017.at("§4 (recurrent and convolutional layers compared)")),
    kind=Kind.CONSTRUCTION, needs=("attention",), uses=("conv1d_as_attention",),
    keywords=(("attention", "bias"),))
def stateless_rnn_is_convolution(subject, ctx) -> Evidence:
    r"""An RNN over pre-extracted patches with an empty state is a convolution

    .. math:: h_t\in\mathbb{R}^0:\quad y_t=R\,p_t,\ \ p_t=(x_{t-a},\dots,x_{t+K-1-a})\
        \Longrightarrow\ y=\mathrm{correlate}(\mathrm{pad}_0(X),W),\quad W_{o,c,k}=R_{o,(k,c)}

    The RNN is elman_rnn with state dimension n = 0 run over the zero-padded patches; the
    convolution is the subject's attention construction (conv1d_as_attention, zero padding) with
    the read-out R as its kernel. Every output of every case (K = 1..5, L = 1..12, 1..3 channels)
    must agree to the reduction tolerance over K C_in + L terms: the smallest detected deviation is
    one output off by more than that, e.g. a kernel applied flipped (convolution instead of
    cross-correlation) for K >= 2.
    """
    from transformer_theory.impl.constructions import convolution as CV

    conv1d = construction(subject, "conv1d_as_attention", CV.conv1d_as_attention)

    def measure(c):
        k, c_in = c["K"], c["C_in"]
        p = R.patches(c["x"], k).reshape(c["L"], k * c_in)                     # (L, K C_in)
        readout = np.transpose(c["w"], (0, 2, 1)).reshape(c["C_out"], k * c_in)  # (C_out, K C_in)
        _, rnn = R.elman_rnn(p, np.zeros((0, 0)), np.zeros((0, k * c_in)), r=readout)
        conv = conv1d(c["x"], c["w"], padding="zeros", attention=subject.attention)
        scale = CV.correlate1d(np.abs(c["x"]), np.abs(c["w"]), mode="same")
        tol = tolerance("reduction", c["dtype"], n=k * c_in + c["L"] + k)
        return compare(conv, rnn, tol, scale=scale,
                       note="the stateless RNN differs from the convolution")
    return for_all(ctx, _patch_case(), measure,
                   detail="With no state, the RNN's output at t is a fixed linear map of the "
                          "patch around t: the zero-padded convolution, for every drawn K, L "
                          "and channel count.")


def _stacks(k: int, D: int) -> list[tuple[int, ...]]:
    """Every stack content of depth <= D: the opener sequences over k types."""
    return [s for depth in range(D + 1) for s in itertools.product(range(k), repeat=depth)]


def _closing(stack: tuple[int, ...], k: int) -> tuple[int, ...]:
    return tuple(t + k for t in reversed(stack))


def truncated_stack_accepts(tokens, k: int, D: int, memory: int) -> bool:
    """A left-to-right reader with a depth counter and only the top ``memory`` stack types.

    Below its memory it cannot know a closer's partner and assumes type 0: its state
    takes ``memory ceil(log2 k) + ceil(log2(D + 2))`` bits.
    """
    depth, top = 0, []
    for t in tokens:
        if t < k:
            depth += 1
            if depth > D:
                return False
            top = (top + [t])[-memory:] if memory else []
        else:
            if depth == 0:
                return False
            want = top.pop() if top else 0
            if t - k != want:
                return False
            depth -= 1
    return depth == 0


@claims.claim(
    "recurrence.dyck_memory_lower_bound",
    sources=(SEED_000.at("RNN: 'state limits how far back interactions may be calculated "
                         "(fixed-size memory)'"),
             HEWITT_2020.at("abstract: 'no algorithm, even with unbounded computation, can "
                            "suffice with o(m log k) hidden units' (m the depth bound)"),
             YAO_2021.at("abstract, in its words: the recogniser uses 'O(log k) memory size "
                         "(per token per layer)', and experiments 'verify the theoretical "
                         "memory advantage of self-attention networks over recurrent "
                         "networks' (the Omega(D log k) statement itself not located in the "
                         "text available here)")),
    kind=Kind.LIMITATION, needs=("feed_forward",), uses=("build_dyck_recognizer",))
def dyck_memory_lower_bound(subject, ctx) -> Evidence:
    r"""A fixed-memory left-to-right reader of Dyck_{k,D} needs at least D log₂ k bits

    .. math:: s\ne s'\in[k]^{\le D}:\ s\,\bar s\in\mathrm{Dyck}_{k,D}\not\ni s'\,\bar s\
        \Rightarrow\ \#\text{states}\ge\sum_{j=0}^{D}k^j,\ \ \text{memory}\ge\log_2\!\sum_{j\le
        D}k^j\ge D\log_2 k\ \text{bits}

    For (k, D) in {(2,1), (2,2), (2,3), (3,2), (4,2)}: every ordered pair of the sum_j k^j stack
    contents is separated by the closing suffix of the first, as the subject's Dyck recogniser (Yao
    et al.'s hard-attention construction) must confirm on every one of the strings s s-bar and s'
    s-bar; so by pigeonhole a reader with fewer states merges two of them and errs on one of the
    two strings. Concretely, a reader keeping the top D - 1 stack types errs on an explicit string,
    one keeping D is exact on all of them. Power: a single misjudged separating string, i.e. any
    recogniser that confuses two stack contents (for instance one tracking only the depth).
    """
    from transformer_theory.impl.constructions.dyck import build_recognizer, is_dyck
    from transformer_theory.impl.constructions.toolkit import Ops

    build = construction(subject, "build_dyck_recognizer", build_recognizer)
    measurements, rows = [], []
    for k, D in ((2, 1), (2, 2), (2, 3), (3, 2), (4, 2)):
        net = build(k, D, "hard", ops=Ops.from_mapping(subject.callables))
        stacks = _stacks(k, D)
        by_length: dict[int, list[tuple[tuple[int, ...], bool]]] = {}
        for s in stacks:
            for s2 in stacks:
                text = s2 + _closing(s, k)
                by_length.setdefault(len(text), []).append((text, s2 == s))
        wrong = []
        for n, items in by_length.items():
            if n == 0:
                continue
            got = net.accepts_batch(np.array([t for t, _ in items], dtype=np.int64))
            wrong += [t for (t, want), g in zip(items, got) if bool(g) != want]
        measurements.append(holds(not wrong, f"k={k}, D={D}: the recogniser misjudges "
                                             f"{len(wrong)} separating strings, e.g. {wrong[:1]}"))
        n_states = len(stacks)
        bound = math.log2(n_states)
        measurements.append(holds(n_states == sum(k ** j for j in range(D + 1))
                                  and bound >= D * math.log2(k),
                                  f"k={k}, D={D}: {n_states} stack contents, log2 {bound:.3f}"))
        strings = [s2 + _closing(s, k) for s in stacks for s2 in stacks]
        full = [t for t in strings if truncated_stack_accepts(t, k, D, D) != is_dyck(t, k, D)]
        short = [t for t in strings
                 if truncated_stack_accepts(t, k, D, D - 1) != is_dyck(t, k, D)]
        measurements.append(holds(not full, f"k={k}, D={D}: a reader with the whole stack errs "
                                            f"on {full[:1]}"))
        measurements.append(holds(bool(short) == (k > 1),
                                  f"k={k}, D={D}: a reader with D-1 stack types misjudges "
                                  f"{len(short)} strings"))
        rows.append(f"k={k}, D={D}: {n_states} distinguishable prefixes, >= {bound:.2f} bits "
                    f"(D log2 k = {D * math.log2(k):.2f}); D-1 types misjudge e.g. "
                    f"{list(short[0]) if short else '-'}")
    return single_case(measurements, detail="; ".join(rows))


def _monotone_horizon(w: float, b: float, steps: int, floor: float) -> int:
    """How many steps of ``h_t = tanh(w h_{t-1} + b)`` provably move the state by more than
    ``floor``.

    The map is increasing with slope at least ``w (1 - h*^2)`` on ``[0, h*]`` (``h*`` its
    fixed point, the states' limit from below), so the increments satisfy
    ``Delta_t >= tanh(b) (w (1 - h*^2))^(t-1)``: the first ``t`` for which that bound is
    below ``floor`` ends the steps whose order rounding cannot blur.
    """
    fixed = 1.0
    for _ in range(200):                                   # a contraction on [0, 1]: converges
        fixed = math.tanh(w * fixed + b)
    rate = w * (1.0 - fixed * fixed)
    horizon, bound = 1, math.tanh(b)
    while horizon < steps and bound * rate > floor:
        horizon, bound = horizon + 1, bound * rate
    return horizon


@claims.claim(
    "recurrence.rnn_carries_position",
    sources=(SEED_003.at("Positional Encoding: 'Positional information arises naturally in "
                         "RNN/LSTMs'; 'Transformer Architecture is invariant to permutations "
                         "of the input sequence'"),
             VASWANI_2017.at("§3.5 (no recurrence and no convolution: positions must be "
                             "injected)")),
    kind=Kind.PROPERTY, needs=("attention",), uses=("elman_rnn",))
def rnn_carries_position(subject, ctx) -> Evidence:
    r"""An RNN's state carries position; attention without a positional encoding does not

    .. math:: x_t\equiv x:\quad h_t=\tanh(w\,h_{t-1}+u\,x),\ w,ux>0,\ h_0=0\ \Rightarrow\
        0<h_1<h_2<\dots<h_T;\qquad \mathrm{Att}(X,X,X)_t=x\ \ \forall t

    Fed the same token T times, the scalar Elman RNN h_t = tanh(w h_{t-1} + u x) with w, u x > 0
    and h_0 = 0 has strictly increasing states (h_1 = tanh(u x) > h_0, and the map is increasing,
    so h_t > h_{t-1} gives h_{t+1} > h_t): the position is the rank of the state. The subject's
    elman_rnn is run on drawn w in [0.25, 1.5], u x in [0.05, 1] and T <= 24; order is checked over
    the first steps whose increments provably exceed 64 ulps (the slope bound of
    _monotone_horizon). The subject's attention on the same repeated token (queries = keys =
    values) gives every position the same output to rounding. Power: an RNN that drops the
    recurrence (h_t = tanh(u x_t)) has equal states; one whose update does not use the state's sign
    (w < 0 behaviour) is not monotone.
    """
    rnn = construction(subject, "elman_rnn", R.elman_rnn)
    case = st.fixed_dictionaries({
        "w": st.floats(0.25, 1.5), "ux": st.floats(0.05, 1.0),
        "T": st.integers(2, 24), "m": st.integers(1, 4), "E": st.integers(1, 8),
        "seed": SEEDS, "dtype": DTYPES})

    def measure(c):
        rng = np.random.default_rng(c["seed"])
        token = rng.normal(size=c["m"])                                 # (m,)
        u = (c["ux"] / float(token @ token)) * token[None, :]           # (1, m): u x = ux
        x = np.repeat(token[None, :], c["T"], axis=0)                   # (T, m)
        states, _ = rnn(x, np.array([[c["w"]]]), u)                     # (T + 1, 1)
        h = np.asarray(states, dtype=np.float64)[:, 0]
        horizon = _monotone_horizon(c["w"], c["ux"], c["T"], 64 * np.finfo(np.float64).eps)
        steps = np.diff(h[:horizon + 1])                                # h_1 - h_0, ...
        if not (h.shape == (c["T"] + 1,) and np.all(steps > 0)):
            return holds(False, f"the states are not strictly increasing over the first "
                                f"{horizon} steps: {np.round(h[:horizon + 1], 6).tolist()}")
        row = normal(rng, (c["E"],), c["dtype"])                        # (E,): the token
        seq = np.repeat(row[None, :], c["T"], axis=0)                   # (T, E)
        out = np.asarray(subject.attention(seq, seq, seq))              # (T, E)
        tol = tolerance("reduction", coarser_dtype(out, seq), n=c["T"])
        return compare(out, np.broadcast_to(row, out.shape), tol,
                       note="attention on a repeated token does not return the token at "
                            "every position")
    return for_all(ctx, case, measure,
                   detail="Fed one token repeatedly, the RNN's states increase strictly (the "
                          "position can be read from the state); attention without a "
                          "positional encoding returns the same vector at every position.")
