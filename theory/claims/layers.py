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
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..checks import compare, for_all, holds
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import GOODFELLOW_2016, SEED_002, SEED_003, VASWANI_2017
from ..strategies import DTYPES, SEEDS, normal
from ..tolerance import tolerance
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


@claims.claim(
    "layers.ffn_position_wise",
    title="The feed-forward network acts on each position separately and identically",
    statement=r"\mathrm{FFN}(X)_i=\phi(x_iW_1+b_1)W_2+b_2=\mathrm{FFN}(x_i),\qquad "
              r"X_i=X'_i\ \Rightarrow\ \mathrm{FFN}(X)_i=\mathrm{FFN}(X')_i",
    sources=(FFN_SECTION, SEED_003_FFN),
    kind=Kind.PROPERTY, needs=("feed_forward",),
    notes="The sequence (B, L, E) is compared with the same vectors fed as B*L sequences of "
          "length 1, and position i with every other position rewritten. Weights come from "
          "the reference init_ffn; the activation phi is drawn from relu, gelu, tanh, sigmoid.")
def ffn_position_wise(subject, ctx) -> Evidence:
    def measure(c):
        params, act, i = c["params"], c["activation"], c["position"]
        out = np.asarray(subject.feed_forward(c["x"], params, activation=act))   # (B, L, E)
        alone = np.asarray(subject.feed_forward(c["x"].reshape(-1, 1, c["E"]), params,
                                                activation=act))                # (B*L, 1, E)
        tol = tolerance("composite", coarser_dtype(out), n=c["E"] + c["F"])
        m1 = compare(out, alone.reshape(out.shape), tol,
                     note="FFN of the sequence differs from FFN of each position alone")
        if not m1.ok:
            return m1
        out2 = np.asarray(subject.feed_forward(c["x2"], params, activation=act))
        m2 = compare(out2[:, i], out[:, i], tol,
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


@claims.claim(
    "layers.tanh_sigmoid",
    title="tanh is a resized sigmoid; the sigmoid is finite and in [0, 1] everywhere",
    statement=r"\tanh(x)=2\sigma(2x)-1\ \ (|x|\le10^{4}),\qquad \sigma(x)\in[0,1]\ \ \forall x,"
              r"\qquad \sigma(x)\in(0,1)\ \ (|x|\le 30,\ \text{float64})",
    sources=(SEED_002_ACT, GOODFELLOW_SIGMOID),
    kind=Kind.PROPERTY, needs=("sigmoid", "tanh"), proof="layers.tanh_sigmoid",
    notes="Values are drawn by Hypothesis (they shrink): x with |x| <= 1e4, y anywhere in the "
          "finite range of the dtype, z in [-30, 30] in float64 (sigma(30) = 1 - 9.4e-14 is "
          "representable there, not in float32). The identity is measured against the range "
          "of tanh (absolute error), since 2 sigma(2x) - 1 cancels for small x. A "
          "1/(1 + exp(-x)) or exp(x)/(1 + exp(x)) that overflows gives NaN.")
def tanh_sigmoid(subject, ctx) -> Evidence:
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
