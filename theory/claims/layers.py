"""Position-wise layers: the feed-forward network acts on each position alone,
and the activations it may use are well behaved.

References
----------
Vaswani et al. 2017, "Attention Is All You Need", §3.3 (Eq. 2: "applied to
each position separately and identically"). Seed 003 ("Dense Feed Forward
Layer": R_i = ReLU(Z_i W_1 + b_1) W_2 + b_2, i = 1..N). Seed 002 (sigmoid,
and tanh as a "resized version of sigmoid").
"""

from __future__ import annotations

import numpy as np
from transformer_theory.impl.layers import get_activation
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..checks import compare, for_all, holds
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import GOODFELLOW_2016, HENDRYCKS_2016, SEED_002, SEED_003, SHAZEER_2020, VASWANI_2017
from ..strategies import DTYPES, SEEDS, dtype_seed_rng, normal
from ..tolerance import conditioned_tolerance, tolerance
from ._common import coarser_dtype

claims = ClaimSet("layers")

FFN_SECTION = VASWANI_2017.at("§3.3, Eq. (2)")
SEED_003_FFN = SEED_003.at("Dense Feed Forward Layer: R_i = ReLU(Z_i W_1 + b_1) W_2 + b_2")
SEED_002_ACT = SEED_002.at("Some examples of sigma: sigmoid; tanh a resized version of sigmoid")
#: tanh(z) = 2 sigma(2z) - 1 is stated with the sigmoid hidden units.
GOODFELLOW_SIGMOID = GOODFELLOW_2016.at("§6.3.2 (logistic sigmoid and hyperbolic tangent)")


@st.composite
def _ffn_case(draw):
    from transformer_theory.impl.layers import init_ffn

    b = draw(st.integers(1, 3))
    length = draw(st.integers(2, 8))
    e = draw(st.integers(1, 8))
    f = draw(st.integers(1, 16))
    bias = draw(st.booleans())
    activation = draw(st.sampled_from(["relu", "gelu", "tanh", "sigmoid"]))
    dt = draw(DTYPES)
    seed = draw(SEEDS)
    position = draw(st.integers(0, length - 1))
    rng = np.random.default_rng(seed)
    params = init_ffn(e, f, rng, bias=bias, dtype=dt)
    x = normal(rng, (b, length, e), dt)                            # (B, L, E)
    x2 = normal(rng, (b, length, e), dt, 3.0)                      # other positions rewritten
    x2[:, position] = x[:, position]
    return {"B": b, "L": length, "E": e, "F": f, "bias": bias, "activation": activation,
            "dtype": dt, "seed": seed, "position": position, "params": params,
            "x": x, "x2": x2}


def _ffn_condition(x, params, activation) -> float:
    """How much an FFN output can carry rounding of its terms: ``>= 1``, from float64.

    The computed ``y = phi(h) W2 + b2``, ``h = x W1 + b1``, is off by at most
    ``gamma (|phi(h)| |W2| + |b2|) + L gamma (|x| |W1| + |b1|) |W2|`` (the forward error
    of inner products, Higham 2002; ``L <= 1.13`` the activation's Lipschitz
    constant, gelu's), so relative to ``|y|`` the rule's ``gamma`` is amplified by
    this ratio of norms when the output is small against its terms (cancellation).
    """
    x = np.asarray(x, dtype=np.float64)
    w1, w2 = (np.asarray(w, dtype=np.float64) for w in (params.w1, params.w2))
    b1 = 0.0 if params.b1 is None else np.asarray(params.b1, dtype=np.float64)
    b2 = 0.0 if params.b2 is None else np.asarray(params.b2, dtype=np.float64)
    phi = get_activation(activation)(x @ w1 + b1)                      # (..., F)
    y = phi @ w2 + b2                                                  # (..., E)
    terms = np.abs(phi) @ np.abs(w2) + np.abs(b2) \
        + 1.13 * (np.abs(x) @ np.abs(w1) + np.abs(b1)) @ np.abs(w2)    # (..., E)
    size = np.linalg.norm(y)
    return float(np.linalg.norm(terms) / size) if size > 0 else float("inf")


@claims.claim("layers.ffn_position_wise", sources=(FFN_SECTION, SEED_003_FFN), kind=Kind.PROPERTY,
              needs=("feed_forward",))
def ffn_position_wise(subject, ctx) -> Evidence:
    r"""The feed-forward network acts on each position separately and identically

    .. math:: \mathrm{FFN}(X)_i=\phi(x_iW_1+b_1)W_2+b_2=\mathrm{FFN}(x_i),\qquad X_i=X'_i\
        \Rightarrow\ \mathrm{FFN}(X)_i=\mathrm{FFN}(X')_i

    The sequence (B, L, E) is compared with the same vectors fed as B*L sequences of length 1, and
    position i with every other position rewritten. Weights come from the reference init_ffn; the
    activation phi is drawn from relu, gelu, tanh, sigmoid.
    """
    def measure(c):
        params, act, i = c["params"], c["activation"], c["position"]
        out = np.asarray(subject.feed_forward(c["x"], params, activation=act))   # (B, L, E)
        alone = np.asarray(subject.feed_forward(c["x"].reshape(-1, 1, c["E"]), params,
                                                activation=act))                # (B*L, 1, E)
        why = "the FFN output against the size of its terms (cancellation)"
        tol = conditioned_tolerance("composite", coarser_dtype(out), c["E"] + c["F"],
                                    _ffn_condition(c["x"], params, act), why)
        m1 = compare(out, alone.reshape(out.shape), tol,
                     note="FFN of the sequence differs from FFN of each position alone")
        if not m1.ok:
            return m1
        out2 = np.asarray(subject.feed_forward(c["x2"], params, activation=act))
        tol_i = conditioned_tolerance("composite", coarser_dtype(out), c["E"] + c["F"],
                                      _ffn_condition(c["x"][:, i], params, act), why)
        m2 = compare(out2[:, i], out[:, i], tol_i,
                     note=f"output {i} changed when the other positions changed")
        return max((m1, m2), key=lambda m: m.error)
    return for_all(ctx, _ffn_case(), measure,
                   detail="Every output position equals the FFN of its own input vector and "
                          "ignores the other positions.")


@st.composite
def _activation_case(draw):
    dt = draw(DTYPES)
    width = 32 if dt == np.float32 else 64
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=8))
    moderate = draw(hnp.arrays(dt, shape, elements=st.floats(
        -1e4, 1e4, allow_nan=False, allow_infinity=False, width=width)))
    anywhere = draw(hnp.arrays(dt, shape, elements=st.floats(
        allow_nan=False, allow_infinity=False, width=width)))
    strict = draw(hnp.arrays(np.float64, shape, elements=st.floats(-30.0, 30.0)))
    return {"dtype": dt, "x": moderate, "y": anywhere, "z": strict}


@claims.claim("layers.tanh_sigmoid", sources=(SEED_002_ACT, GOODFELLOW_SIGMOID),
              kind=Kind.PROPERTY, needs=("sigmoid", "tanh"), proof="layers.tanh_sigmoid")
def tanh_sigmoid(subject, ctx) -> Evidence:
    r"""tanh is a resized sigmoid; the sigmoid is finite and in [0, 1] everywhere

    .. math:: \tanh(x)=2\sigma(2x)-1\ \ (|x|\le10^{4}),\qquad \sigma(x)\in[0,1]\ \ \forall x,\qquad
        \sigma(x)\in(0,1)\ \ (|x|\le 30,\ \text{float64})

    Values are drawn by Hypothesis (they shrink): x with |x| <= 1e4, y anywhere in the finite range
    of the dtype, z in [-30, 30] in float64 (sigma(30) = 1 - 9.4e-14 is representable there, not in
    float32). The identity is measured against the range of tanh (absolute error), since 2
    sigma(2x) - 1 cancels for small x. A 1/(1 + exp(-x)) or exp(x)/(1 + exp(x)) that overflows
    gives NaN.
    """
    def measure(c):
        x, y, z, dt = c["x"], c["y"], c["z"], c["dtype"]
        s_y = np.asarray(subject.sigmoid(y))
        if not np.all(np.isfinite(s_y)):
            return holds(False, "sigmoid returned NaN or inf")
        if np.any(s_y < 0) or np.any(s_y > 1):
            return holds(False, "sigmoid left [0, 1]")
        s_z = np.asarray(subject.sigmoid(z))
        if not (np.all(s_z > 0) and np.all(s_z < 1)):
            return holds(False, "sigmoid reached 0 or 1 for |x| <= 30 in float64")
        t = np.asarray(subject.tanh(x))
        resized = 2.0 * np.asarray(subject.sigmoid(2 * x), dtype=np.float64) - 1.0
        return compare(t, resized, tolerance("rounding", coarser_dtype(t, x)), scale=np.ones(1),
                       note="tanh(x) != 2 sigmoid(2x) - 1")
    return for_all(ctx, _activation_case(), measure,
                   detail="tanh(x) = 2 sigma(2x) - 1 for |x| <= 1e4; sigma is finite in [0, 1] "
                          "for every finite input and strictly inside for |x| <= 30.")


# ---------------------------------------------------------------------------
# Gated feed-forward networks (Shazeer 2020)
# ---------------------------------------------------------------------------

#: The variants, cited by their words (no equation number checked).
GLU_VARIANTS = SHAZEER_2020.at("FFN_SwiGLU(x, W, V, W_2) = (Swish_1(xW) * xV) W_2, FFN_GEGLU "
                               "with GELU; three weight matrices, no biases")
GATED = ("silu", "gelu", "gelu_tanh")


def gated_definition(x, params, activation: str) -> np.ndarray:
    """The statement in float64: ``(act(x W_g + b_g) * (x W_u + b_u)) W_d + b_d``."""
    from scipy.special import erf

    f64 = (lambda a: None if a is None else np.asarray(a, dtype=np.float64))
    x = f64(x)
    gate, up = x @ f64(params.w_gate), x @ f64(params.w_up)               # (..., F)
    if params.b_gate is not None:
        gate = gate + f64(params.b_gate)
    if params.b_up is not None:
        up = up + f64(params.b_up)
    if activation == "silu":
        act = gate / (1.0 + np.exp(-gate))
    elif activation == "gelu":
        act = 0.5 * gate * (1.0 + erf(gate / np.sqrt(2.0)))
    else:
        act = 0.5 * gate * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (gate + 0.044715 * gate**3)))
    out = (act * up) @ f64(params.w_down)                                  # (..., E)
    return out if params.b_down is None else out + f64(params.b_down)


def gated_magnitude(x, params, activation):
    """The scale of the gated FFN's terms in float64, |phi(g)| |u| |W_down| + |b_down|: what
    its rounding errors are relative to (Higham's componentwise bound), so that outputs that
    cancel do not inflate the error of a correct implementation."""
    exact = (lambda a: None if a is None else np.abs(np.asarray(a, dtype=np.float64)))
    signed = (lambda a: None if a is None else np.asarray(a, dtype=np.float64))
    x = signed(x)
    g = x @ signed(params.w_gate) + (0.0 if params.b_gate is None else signed(params.b_gate))
    u = x @ signed(params.w_up) + (0.0 if params.b_up is None else signed(params.b_up))
    act = g / (1.0 + np.exp(-g)) if activation == "silu" else get_activation("gelu")(g)
    out = (np.abs(act) * np.abs(u)) @ exact(params.w_down)                          # (..., E)
    return out if params.b_down is None else out + exact(params.b_down)


@st.composite
def _gated_case(draw):
    from transformer_theory.impl.gated_ffn import init_gated_ffn

    b = draw(st.integers(1, 3))
    length = draw(st.integers(2, 8))
    # widths of at least 4 and 8: in float16/bfloat16 the error-ratio rule compares one
    # case's error with the naive computation's, and on a 1-3 wide layer that is a ratio of
    # two or three rounding errors, which luck alone takes past 2 (seen with torch: 2.2)
    e = draw(st.integers(4, 12))
    f = draw(st.integers(8, 24))
    bias = draw(st.booleans())
    activation = draw(st.sampled_from(GATED))
    dt, seed, rng = dtype_seed_rng(draw)
    params = init_gated_ffn(e, f, rng, bias=bias, dtype=dt)
    return {"B": b, "L": length, "E": e, "F": f, "bias": bias, "activation": activation,
            "dtype": dt, "seed": seed, "params": params,
            "x": normal(rng, (b, length, e), dt), "perm": rng.permutation(length)}


def _gated_tolerance(c, out):
    return tolerance("composite", coarser_dtype(out, c["x"]), n=c["E"] + c["F"])


@claims.claim("layers.gated_ffn_position_wise", sources=(GLU_VARIANTS, FFN_SECTION),
              kind=Kind.PROPERTY, needs=("gated_feed_forward",))
def gated_ffn_position_wise(subject, ctx) -> Evidence:
    r"""The gated FFN acts on each position alone: permuting positions commutes with it

    .. math:: \mathrm{GFFN}(PX)=P\,\mathrm{GFFN}(X)\ \text{for every permutation }P\text{ of the
        positions}

    Shazeer's variants replace the FFN sublayer, which Vaswani et al. apply to each position
    separately and identically. Weights from the reference init_gated_ffn, with and without biases;
    the activation drawn from silu, gelu, gelu_tanh.
    """
    def measure(c):
        params, act, perm = c["params"], c["activation"], c["perm"]
        out = np.asarray(subject.gated_feed_forward(c["x"], params, activation=act))
        moved = np.asarray(subject.gated_feed_forward(c["x"][:, perm], params, activation=act))
        return compare(moved, out[:, perm], _gated_tolerance(c, out),
                       note="GFFN of the permuted sequence is not the permuted GFFN")
    return for_all(ctx, _gated_case(), measure,
                   detail="Permuting the positions of the input permutes the output the same way.")


@claims.claim("layers.gated_ffn_zero_gate",
              sources=(GLU_VARIANTS, HENDRYCKS_2016.at("GELU(x) = x Phi(x)")), kind=Kind.PROPERTY,
              needs=("gated_feed_forward",))
def gated_ffn_zero_gate(subject, ctx) -> Evidence:
    r"""A zero gate projection gives a zero output (act(0) = 0 for SiLU and GELU)

    .. math:: W_{\mathrm{gate}}=0,\ b_{\mathrm{gate}}=0\ \Rightarrow\
        \mathrm{GFFN}(x)=b_{\mathrm{down}}\ (0\text{ without biases})

    silu(0) = 0 * sigmoid(0) = 0 and gelu(0) = 0 * Phi(0) = 0 (also in the tanh form), so the gate
    closes every hidden unit whatever the up projection: the output is exactly the down bias. A
    sigmoid gate (the original GLU) would pass half of x W_up.
    """
    from transformer_theory.impl.contract.params import GatedFFNParams

    def measure(c):
        p = c["params"]
        closed = GatedFFNParams(np.zeros_like(p.w_gate), p.w_up, p.w_down,
                                None if p.b_gate is None else np.zeros_like(p.b_gate),
                                p.b_up, p.b_down)
        out = np.asarray(subject.gated_feed_forward(c["x"], closed, activation=c["activation"]))
        expected = np.zeros(out.shape) if p.b_down is None else \
            np.broadcast_to(p.b_down.astype(np.float64), out.shape)
        return holds(bool(np.array_equal(out.astype(np.float64), expected)),
                     f"a zero gate ({c['activation']}) lets something through: max "
                     f"|out - b_down| = {np.max(np.abs(out - expected), initial=0.0):.3g}")
    return for_all(ctx, _gated_case(), measure,
                   detail="With the gate projection zero the output is exactly b_down (zero "
                          "without biases) for silu, gelu and gelu_tanh.")


@claims.claim("layers.gated_ffn_parameter_count", sources=(GLU_VARIANTS,), kind=Kind.PROPERTY,
              needs=("init_gated_ffn",),
              full_precision_only="counts array sizes: no arithmetic to round")
def gated_ffn_parameter_count(subject, ctx) -> Evidence:
    r"""A gated FFN has 3 d d_ff weights (2 d_ff + d more with biases)

    .. math:: |W_{\mathrm{gate}}|+|W_{\mathrm{up}}|+|W_{\mathrm{down}}|=3\,d\,d_{ff}

    Shazeer keeps the parameter count of the two-matrix FFN by shrinking d_ff to 2/3; here the
    count is stated for the d_ff given: three matrices of d x d_ff, plus b_gate, b_up (d_ff each)
    and b_down (d) when biases are asked for.
    """
    @st.composite
    def case(draw):
        return {"E": draw(st.integers(1, 16)), "F": draw(st.integers(1, 64)),
                "bias": draw(st.booleans()), "seed": draw(SEEDS)}

    def measure(c):
        p = subject.init_gated_ffn(c["E"], c["F"], np.random.default_rng(c["seed"]),
                                   bias=c["bias"])
        arrays = (p.w_gate, p.w_up, p.w_down, p.b_gate, p.b_up, p.b_down)
        count = sum(int(np.size(a)) for a in arrays if a is not None)
        e, f = c["E"], c["F"]
        expected = 3 * e * f + ((2 * f + e) if c["bias"] else 0)
        shapes = (np.shape(p.w_gate), np.shape(p.w_up), np.shape(p.w_down))
        return holds(count == expected and shapes == ((e, f), (e, f), (f, e)),
                     f"{count} parameters in shapes {shapes}, expected {expected}")
    return for_all(ctx, case(), measure,
                   detail="init_gated_ffn(d, d_ff) holds 3 d d_ff weights, plus 2 d_ff + d biases "
                          "when asked for.")


@claims.claim(
    "layers.gated_ffn_definition",
    sources=(GLU_VARIANTS, HENDRYCKS_2016.at("GELU x Phi(x) and its tanh approximation")),
    kind=Kind.PROPERTY, needs=("gated_feed_forward",), proof="layers.gelu_tanh_gap")
def gated_ffn_definition(subject, ctx) -> Evidence:
    r"""The gated FFN is (act(x W_gate + b_gate) * (x W_up + b_up)) W_down + b_down

    .. math:: \mathrm{GFFN}(x)=\big(\phi(xW_{\mathrm{gate}}+b_{\mathrm{gate}})\odot(xW_{\mathrm{up}}+b_{\mathrm{up}})\big)W_{\mathrm{down}}+b_{\mathrm{down}},\
        \phi\in\{\mathrm{SiLU},\mathrm{GELU},\mathrm{GELU}_{\tanh}\}

    Against the float64 formula: the activation on the gate, not on the up projection, and the
    exact GELU distinct from its tanh approximation (they differ by up to 4.7e-4,
    proofs/layers.gelu_tanh_gap, far above float32 rounding).
    """
    def measure(c):
        out = np.asarray(subject.gated_feed_forward(c["x"], c["params"],
                                                    activation=c["activation"]))
        return compare(out, gated_definition(c["x"], c["params"], c["activation"]),
                       _gated_tolerance(c, out),
                       scale=gated_magnitude(c["x"], c["params"], c["activation"]),
                       note=f"GFFN ({c['activation']}) differs from the float64 definition")
    return for_all(ctx, _gated_case(), measure,
                   detail="Outputs equal the float64 definition for silu, gelu and gelu_tanh, "
                          "with and without biases.")
