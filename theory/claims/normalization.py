"""Layer and batch normalisation: what LayerNorm standardises, the invariances
of Ba et al.'s Table 1, and the difference between normalising a case over its
features and normalising a feature over the batch.

References
----------
Ba, Kiros & Hinton 2016, "Layer Normalization", §3 (Eq. 4: statistics over
the hidden units of one case), §5.1 and Table 1 (invariance under weight
matrix re-scaling and re-centering and single-case re-scaling; no invariance
under weight-vector re-scaling). Ioffe & Szegedy 2015, "Batch
Normalization", §3, Algorithm 1 (mini-batch statistics). Seed 003 ("Batch
Normalization vs Layer Normalization").
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..checks import Measurement, compare, for_all, holds, single_case
from ..claim import Evidence, Kind
from ..declared import DontCare
from ..registry import ClaimSet
from ..sources import BA_2016, IOFFE_2015, SEED_003, VASWANI_2017, ZHANG_2019
from ..strategies import DTYPES, SEEDS, dtype_seed_rng, normal
from ..tolerance import relative_error, tolerance
from ._common import coarser_dtype

claims = ClaimSet("normalization")

LN_DEFINITION = BA_2016.at("§3, Eq. (4)")
LN_TABLE_1 = BA_2016.at("§5.1, Table 1")
BN_ALGORITHM = IOFFE_2015.at("§3, Algorithm 1")
SEED_003_NORM = SEED_003.at("Batch Normalization vs Layer Normalization")


def row_condition(*inputs) -> np.ndarray:
    """Condition number ``max|h| / sigma(h)`` of standardising each row of each input.

    Rounding errors of order ``eps * |h|`` become errors of order
    ``eps * |h| / sigma(h)`` after centring and dividing by the standard
    deviation. Returns the largest over ``inputs`` per row (``inf`` for an
    exactly constant row, where the standardisation is undefined).
    """
    kappa = None
    for h in inputs:
        h = np.asarray(h, dtype=np.float64)
        sigma = np.std(h, axis=-1)                                 # (...)
        biggest = np.max(np.abs(h), axis=-1)                       # (...)
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.where(sigma > 0, biggest / np.where(sigma > 0, sigma, 1.0), np.inf)
        kappa = k if kappa is None else np.maximum(kappa, k)
    return kappa


def exact_scale(a: float, dtype) -> float:
    """``a``, or in float16/bfloat16 the power of two nearest it (in log scale).

    A half-precision ``a x`` rounds every entry unless ``a`` is a power of two, and
    LayerNorm and RMSNorm amplify that input rounding by their condition number: the
    naive baseline and the subject then differ by how each happens to meet an error
    that is neither's (issue 21's sweep put the reference at 0.62 of the error-ratio
    rule there). With a power of two the scaled input is exact, a correct
    implementation's outputs agree to its own rounding, and the comparison measures
    only the implementation. float32 and float64 draw ``a`` freely.
    """
    if np.dtype(dtype).itemsize > 2:
        return float(a)
    return float(2.0 ** np.round(np.log2(a)))


def conditioned_error(actual, expected, kappa: np.ndarray, tol, note: str,
                      outputs: float = 2) -> Measurement:
    """Largest per-row deviation, each row divided by its condition number.

    LayerNorm outputs are O(1) (each entry at most sqrt(E - 1) in magnitude),
    so the deviation is already relative; dividing by the row's condition
    number ``kappa`` states the error in the units the ill-conditioned
    tolerance bounds. ``outputs`` is the rounding of the subject's outputs in
    those units, in multiples of ``u`` (:class:`~..checks.Measurement`; see
    :func:`output_roundings` where two LN outputs are compared).
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape or not np.all(np.isfinite(a)):
        return Measurement(float("inf"), tol, note)
    kappa = np.broadcast_to(kappa, e.shape[:-1])                   # (...) per row
    diff = np.max(np.abs(a - e), axis=-1)                          # (...) per row
    weighted = np.where(np.isfinite(kappa), diff / np.maximum(kappa, 1.0), 0.0)
    return Measurement(float(np.max(weighted, initial=0.0)), tol, note, outputs=outputs)


def output_roundings(kappa: np.ndarray, *outputs) -> float:
    """The rounding of compared LN outputs, in units of ``u`` of a conditioned error.

    Rounding an output entry ``y`` to the half dtype moves it by at most
    ``u |y|``; :func:`conditioned_error` divides a row's deviation by
    ``max(kappa, 1)``, so the rounded outputs of a row move its conditioned error
    by at most ``u * sum_j max_e |y_j| / max(kappa, 1)``, which this returns
    (the largest over rows). It is at most 2 per output, since
    ``|x_e - mu| <= 2 max|x|`` gives ``|y_e| <= 2 kappa``; for a row with a large
    mean it is near 0, for a zero-mean row near ``sqrt(E - 1) / kappa`` per output.
    The rounded-exact bound of a half-precision run is then ``e* + (this + 1) u``
    (:func:`~..tolerance.rounded_exact_tolerance`), where a fixed count of 2
    undercounted rows whose outputs exceed their condition number.

    References
    ----------
    Higham 2002, Accuracy and Stability of Numerical Algorithms (the standard model:
    one rounding, ``fl(y) = y (1 + d)``, ``|d| <= u``).
    """
    weight = None
    for y in outputs:
        y = np.asarray(y, dtype=np.float64)
        peak = np.max(np.abs(y), axis=-1)                             # (...) per row
        weight = peak if weight is None else weight + peak
    kappa = np.broadcast_to(kappa, weight.shape)
    per_row = np.where(np.isfinite(kappa) & np.isfinite(weight),
                       weight / np.maximum(kappa, 1.0), 0.0)          # (...)
    return float(np.max(per_row, initial=0.0))


@st.composite
def _rows_case(draw, *, min_rows: int = 2):
    rows = draw(st.integers(min_rows, 6))
    e = draw(st.integers(2, 32))
    dt = draw(DTYPES)
    seed = draw(SEEDS)
    scale = draw(st.sampled_from([0.01, 1.0, 100.0]))
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, e))                             # (R, E)
    shift = rng.uniform(-3.0, 3.0, size=(rows, 1))                 # (R, 1), in units of spread
    x = (scale * (z + shift)).astype(dt)                           # (R, E)
    return {"R": rows, "E": e, "dtype": dt, "seed": seed, "scale": scale, "x": x}


@claims.claim("normalization.layernorm_standardizes",
              sources=(LN_DEFINITION, VASWANI_2017.at("§3.1"), SEED_003_NORM), kind=Kind.PROPERTY,
              needs=("layer_norm",))
def layernorm_standardizes(subject, ctx) -> Evidence:
    r"""LayerNorm gives every row mean 0 and variance 1

    .. math:: \varepsilon=0,\ \gamma=\mathbf 1,\ \beta=\mathbf 0:\quad
        \frac1E\sum_{e}\mathrm{LN}(x)_e=0,\qquad \frac1E\sum_{e}\mathrm{LN}(x)_e^2=1\qquad\text{for
        every row with }\sigma(x)>0

    The variance is the biased one (divided by E), as in Ba et al. Eq. (4). Rows with
    non-negligible spread: each row's error is divided by its condition number max|x|/sigma(x), so
    a nearly constant row (where standardising amplifies rounding without bound) carries no weight;
    rows are drawn as shifted Gaussians (|shift| <= 3 sigma) at scales 0.01, 1 and 100.
    """
    def measure(c):
        if np.any(np.ptp(c["x"].astype(np.float64), axis=-1) == 0):
            # a row constant in its dtype (likely once rounded to half precision): with
            # eps = 0 its standardisation is 0/0, outside the statement
            raise DontCare("a constant row")
        y = np.asarray(subject.layer_norm(c["x"], eps=0.0), dtype=np.float64)  # (R, E)
        if y.shape != c["x"].shape:
            return holds(False, f"output has shape {y.shape}")
        kappa = row_condition(c["x"])                              # (R,)
        tol = tolerance("ill_conditioned", coarser_dtype(c["x"]), n=c["E"])
        mean = conditioned_error(y.mean(axis=-1, keepdims=True), np.zeros((c["R"], 1)), kappa,
                                 tol, "a row mean is not 0")
        if not mean.ok:
            return mean
        var = conditioned_error(np.mean(y * y, axis=-1, keepdims=True), np.ones((c["R"], 1)),
                                kappa, tol, "a row's (biased) variance is not 1")
        return max((mean, var), key=lambda m: m.error)
    return for_all(ctx, _rows_case(), measure,
                   detail="With eps = 0, gamma = 1, beta = 0 every row of the output has mean 0 "
                          "and biased variance 1.")


@st.composite
def _linear_case(draw):
    b = draw(st.integers(1, 3))
    length = draw(st.integers(1, 5))
    d_in = draw(st.integers(1, 12))
    e = draw(st.integers(2, 12))
    dt = draw(DTYPES)
    seed = draw(SEEDS)
    a = draw(st.floats(0.01, 100.0))
    alpha = draw(st.floats(0.1, 10.0))
    delta_scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    rng = np.random.default_rng(seed)
    return {"B": b, "L": length, "d_in": d_in, "E": e, "dtype": dt, "seed": seed,
            "a": exact_scale(a, dt), "alpha": exact_scale(alpha, dt),
            "x": normal(rng, (b, length, d_in), dt),
            "W": normal(rng, (d_in, e), dt),
            "delta": normal(rng, (d_in,), dt, delta_scale)}


@claims.claim("normalization.layernorm_invariances", sources=(LN_TABLE_1, SEED_003_NORM),
              kind=Kind.PROPERTY, needs=("layer_norm",), proof="layers.layernorm_invariance")
def layernorm_invariances(subject, ctx) -> Evidence:
    r"""LayerNorm is invariant to input re-scaling and to weight-matrix re-scaling and re-centering

    .. math:: \mathrm{LN}(a\,xW)=\mathrm{LN}(xW)\ \ (a>0),\qquad \mathrm{LN}\big(x(\alpha
        W+\delta\mathbf 1^{\top})\big)=\mathrm{LN}(xW)\ \ (\alpha>0,\ \delta\in\mathbb
        R^{d_{\mathrm{in}}}),\qquad \varepsilon=0

    Single-case re-scaling multiplies the summed inputs xW of a row by a; re-scaling and
    re-centering the weight matrix maps xW to alpha xW + (x·delta) 1^T, a common scale and a
    per-row shift, both removed by the row's mean and standard deviation. The linear maps are
    computed by the check; only LN is the subject's. Errors are divided by each row's condition
    number, as in normalization.layernorm_standardizes.
    """
    def measure(c):
        dt = c["dtype"]
        x, w, delta = c["x"], c["W"], c["delta"]
        # The products are rounded to the data's dtype (numpy's bfloat16 @ returns float32).
        h = (x @ w).astype(dt)                                     # (B, L, E)
        h_case = ((dt.type(c["a"]) * x) @ w).astype(dt)            # (B, L, E): LN(a x W)
        w_mat = (dt.type(c["alpha"]) * w + delta[:, None]).astype(dt)  # (d_in, E): alpha W + delta 1^T
        h_mat = (x @ w_mat).astype(dt)                             # (B, L, E)
        if any(np.any(np.ptp(h.astype(np.float64), axis=-1) == 0) for h in (h, h_case, h_mat)):
            raise DontCare("a constant row")     # LN with eps = 0 is 0/0 there
        base = subject.layer_norm(h, eps=0.0)
        tol = tolerance("ill_conditioned", dt, n=c["d_in"] + c["E"])

        def against_base(h_other, note):
            y = subject.layer_norm(h_other, eps=0.0)
            kappa = row_condition(h, h_other)                      # (B, L)
            return conditioned_error(y, base, kappa, tol, note,
                                     outputs=output_roundings(kappa, y, base))

        m1 = against_base(h_case, f"LN(a x W) != LN(x W) for a = {c['a']:.3g}")
        if not m1.ok:
            return m1
        m2 = against_base(h_mat, "LN(x (alpha W + delta 1^T)) != LN(x W)")
        return max((m1, m2), key=lambda m: m.error)
    return for_all(ctx, _linear_case(), measure,
                   detail="Re-scaling the input by a > 0, and re-scaling and re-centering the "
                          "weight matrix, leave LN(xW) unchanged (eps = 0).")


@claims.claim("normalization.layernorm_weight_vector_limitation",
              sources=(LN_TABLE_1, SEED_003_NORM), kind=Kind.LIMITATION, needs=("layer_norm",))
def layernorm_weight_vector_limitation(subject, ctx) -> Evidence:
    r"""Limitation: LayerNorm is not invariant to re-scaling a single weight vector

    .. math:: W'=W\,\mathrm{diag}(c,1,\dots,1),\ c\ne 1\ \Rightarrow\
        \mathrm{LN}(xW')\ne\mathrm{LN}(xW)

    Table 1 of Ba et al. marks weight-vector re-scaling as an invariance of batch (and weight)
    normalisation but not of layer normalisation: one column of W scales one hidden unit, which
    LN's per-case statistics cannot undo.
    """
    rng = ctx.rng()
    x = rng.standard_normal((6, 4))                                # (N, d_in)
    w = rng.standard_normal((4, 5))                                # (d_in, E)
    w_vec = w.copy()
    w_vec[:, 0] *= 3.0                                             # re-scale one weight vector
    base = np.asarray(subject.layer_norm(x @ w, eps=0.0), dtype=np.float64)
    changed = np.asarray(subject.layer_norm(x @ w_vec, eps=0.0), dtype=np.float64)
    whole = np.asarray(subject.layer_norm(x @ (3.0 * w), eps=0.0), dtype=np.float64)
    gap = float(np.max(np.abs(changed - base)))
    whole_gap = float(np.max(np.abs(whole - base)))
    return single_case(
        [holds(bool(gap > 1e-2),
               f"LN(xW') equals LN(xW) after re-scaling one column (max gap {gap:.2e})")],
        detail=f"Multiplying column 0 of W by 3 moves LN(xW) by up to {gap:.3f}, while "
               f"multiplying all of W by 3 moves it by {whole_gap:.1e}.",
        example={"x": x, "W": w})


@st.composite
def _batch_case(draw):
    b = draw(st.integers(2, 4))
    length = draw(st.integers(1, 5))
    e = draw(st.integers(2, 16))
    dt = draw(DTYPES)
    seed = draw(SEEDS)
    member = draw(st.integers(0, b - 1))
    rng = np.random.default_rng(seed)
    x = normal(rng, (b, length, e), dt)                            # (B, L, E)
    x2 = (3.0 * rng.standard_normal((b, length, e)) + 2.0).astype(dt)   # other members
    x2[member] = x[member]
    return {"B": b, "L": length, "E": e, "dtype": dt, "seed": seed, "member": member,
            "x": x, "x2": x2}


@claims.claim("normalization.layernorm_batch_independent", sources=(LN_DEFINITION, SEED_003_NORM),
              kind=Kind.PROPERTY, needs=("layer_norm",))
def layernorm_batch_independent(subject, ctx) -> Evidence:
    r"""A LayerNorm output does not depend on the other members of the batch

    .. math:: X_b=X'_b\ \Rightarrow\ \mathrm{LN}(X)_b=\mathrm{LN}(X')_b

    Ba et al. compute the statistics over the hidden units of one training case, so LN behaves the
    same in training and at test time and for any batch size.
    """
    def measure(c):
        b = c["member"]
        y = np.asarray(subject.layer_norm(c["x"]))                 # (B, L, E)
        y2 = np.asarray(subject.layer_norm(c["x2"]))               # (B, L, E)
        tol = tolerance("ill_conditioned", c["dtype"], n=c["E"])
        kappa = row_condition(c["x"][b])                           # (L,)
        return conditioned_error(y2[b], y[b], kappa, tol,
                                 f"member {b} changed when the other members changed",
                                 outputs=output_roundings(kappa, y2[b], y[b]))
    return for_all(ctx, _batch_case(), measure,
                   detail="Replacing every other batch member leaves a member's LayerNorm "
                          "output unchanged.")


@claims.claim("normalization.batchnorm_couples_batch", sources=(BN_ALGORITHM, SEED_003_NORM),
              kind=Kind.LIMITATION, needs=("batch_norm",))
def batchnorm_couples_batch(subject, ctx) -> Evidence:
    r"""Limitation: a BatchNorm output depends on the other members of the batch

    .. math:: X_b=X'_b\ \not\Rightarrow\ \mathrm{BN}(X)_b=\mathrm{BN}(X')_b

    In training mode BatchNorm standardises each feature with the mini-batch mean and variance, so
    changing one member moves every other member's output; this is why it needs running averages at
    test time and LayerNorm does not.
    """
    rng = ctx.rng()
    x = rng.standard_normal((4, 3, 5))                             # (B, L, E)
    x2 = x.copy()
    x2[1] = 3.0 * rng.standard_normal((3, 5)) + 2.0                # change member 1 only
    y = np.asarray(subject.batch_norm(x), dtype=np.float64)
    y2 = np.asarray(subject.batch_norm(x2), dtype=np.float64)
    gap = float(np.max(np.abs(y2[0] - y[0])))
    return single_case(
        [holds(bool(gap > 1e-2),
               f"member 0 is unchanged when member 1 changes (max gap {gap:.2e})")],
        detail=f"Changing batch member 1 moves the BatchNorm output of member 0 by up to "
               f"{gap:.3f}.",
        example={"x": x, "x2": x2})


# ---------------------------------------------------------------------------
# RMSNorm (Zhang & Sennrich 2019)
# ---------------------------------------------------------------------------

#: The paper's definition, cited by its words (no equation number checked).
RMS_DEFINITION = ZHANG_2019.at("RMSNorm: a_i / RMS(a) * g_i with RMS(a) = sqrt(mean of a_i^2), "
                               "no re-centering")
RMS_INVARIANCE = ZHANG_2019.at("RMSNorm is invariant to re-scaling of the summed inputs "
                               "(and of the weight matrix), not to re-centering")


def rms_definition(x, gamma, eps: float) -> np.ndarray:
    """The statement: ``x / sqrt(mean(x^2) + eps) * gamma`` over the last axis, in float64
    (a zero row with ``eps = 0`` gives zeros, the contract's limit)."""
    x = np.asarray(x, dtype=np.float64)
    root = np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)          # (..., 1)
    y = np.divide(x, root, out=np.zeros_like(x), where=root > 0)           # (..., E)
    return y if gamma is None else y * np.asarray(gamma, dtype=np.float64)


@st.composite
def _rms_case(draw, *, scales=(0.1, 1.0), eps_values=(1e-6, 1e-3, 0.1)):
    """Rows ``x (R, E)`` (no two rows alike in magnitude), an optional gain, an eps."""
    rows = draw(st.integers(1, 5))
    e = draw(st.integers(2, 32))
    affine = draw(st.booleans())
    eps = draw(st.sampled_from(eps_values))
    scale = draw(st.sampled_from(scales))
    dt, seed, rng = dtype_seed_rng(draw)
    x = normal(rng, (rows, e), dt, scale)                                  # (R, E)
    gamma = (1.0 + 0.5 * rng.standard_normal(e)).astype(dt) if affine else None   # (E,)
    return {"R": rows, "E": e, "dtype": dt, "seed": seed, "eps": eps, "scale": scale,
            "x": x, "gamma": gamma}


def _worst(*measurements: Measurement) -> Measurement:
    """The first failing measurement, else the one closest to its tolerance."""
    failing = [m for m in measurements if not m.ok]
    if failing:
        return failing[0]
    return max(measurements, key=lambda m: m.error / m.rtol if m.rtol > 0 else 0.0)


def _rms_tolerance(c, *arrays):
    """The tolerance of one RMSNorm against another: a mean of E squares, a root, a division."""
    return tolerance("composite", coarser_dtype(c["x"], *arrays), n=c["E"])


@claims.claim("normalization.rmsnorm_scale_invariance", sources=(RMS_INVARIANCE, RMS_DEFINITION),
              kind=Kind.PROPERTY, needs=("rms_norm",))
def rmsnorm_scale_invariance(subject, ctx) -> Evidence:
    r"""RMSNorm is invariant to re-scaling its input; with eps > 0, re-scaling by a is eps / a^2,
    and near zero eps dominates

    .. math:: \mathrm{RMS}_0(ax)=\mathrm{RMS}_0(x)\ (a>0),\qquad
        \mathrm{RMS}_\varepsilon(ax)=\mathrm{RMS}_{\varepsilon/a^2}(x),\qquad
        \Big|\mathrm{RMS}_\varepsilon(tx)-\tfrac{tx}{\sqrt\varepsilon}\odot
        g\Big|\le\tfrac{\delta}{2}\Big|\tfrac{tx}{\sqrt\varepsilon}\odot g\Big|,\
        \delta=\tfrac{t^2\,\overline{x^2}}{\varepsilon}

    RMS_eps(x) = x / sqrt(mean(x^2) + eps) * g. With eps = 0 the output depends only on the
    direction of each row. With eps > 0 it is not scale invariant: a x / sqrt(a^2 m + eps) = x /
    sqrt(m + eps / a^2) (exact identity), so shrinking the input is growing eps, and for t^2 m =
    delta eps << eps the output is the linear map t x / sqrt(eps) * g to relative error at most
    delta / 2 (1 - 1/sqrt(1 + delta) <= delta / 2); checked with delta = 1e-4. a is drawn from
    [0.25, 4] and rows at scales 0.1 and 1, which keeps every sum of squares finite in float16.
    """
    def measure(c):
        x, g, eps, a = c["x"], c["gamma"], c["eps"], c["a"]
        ax = (a * x.astype(np.float64)).astype(c["dtype"])                 # (R, E)
        tol = _rms_tolerance(c, ax)
        m0 = compare(subject.rms_norm(ax, g, eps=0.0), subject.rms_norm(x, g, eps=0.0), tol,
                     note=f"RMS_0(a x) != RMS_0(x) for a = {a:.3g}")
        if not m0.ok:
            return m0
        m1 = compare(subject.rms_norm(ax, g, eps=eps), subject.rms_norm(x, g, eps=eps / a**2),
                     tol, note=f"RMS_eps(a x) != RMS_(eps/a^2)(x) for a = {a:.3g}, eps = {eps:g}")
        if not m1.ok:
            return m1
        x64 = x.astype(np.float64)
        rms = float(np.sqrt(np.max(np.mean(x64 * x64, axis=-1))))
        t = 1e-2 * np.sqrt(eps) / rms                          # t^2 max mean(x^2) = 1e-4 eps
        tx = (t * x64).astype(c["dtype"])                                  # (R, E)
        tx64 = tx.astype(np.float64)
        delta = float(np.max(np.mean(tx64 * tx64, axis=-1))) / eps
        gain = 1.0 if g is None else g.astype(np.float64)
        linear = tx64 / np.sqrt(eps) * gain                                # (R, E)
        exact = tx64 / np.sqrt(np.mean(tx64 * tx64, axis=-1, keepdims=True) + eps) * gain
        # the subject near zero, against the formula (a comparison with rounding headroom);
        # the formula within delta / 2 of the linear map is exact arithmetic, checked in float64
        m2 = compare(subject.rms_norm(tx, g, eps=eps), exact, tol,
                     note=f"RMS_eps(t x) near zero differs from x / sqrt(mean(x^2) + eps) * g "
                          f"(eps = {eps:g})")
        gap = relative_error(exact, linear, linear)
        m3 = holds(gap <= delta / 2 * (1 + 1e-9),
                   f"the formula is {gap:.3g} from t x / sqrt(eps) * g, above delta / 2")
        return _worst(m0, m1, m2, m3)
    return for_all(ctx, _rms_case().flatmap(
        lambda c: st.floats(0.25, 4.0).map(lambda a: {**c, "a": exact_scale(a, c["dtype"])})),
        measure,
        detail="RMS_0(a x) = RMS_0(x); RMS_eps(a x) = RMS_(eps/a^2)(x); near zero RMS_eps(t x) "
               "equals its formula, which is t x / sqrt(eps) * g to relative error delta / 2.")


@st.composite
def _zero_mean_case(draw):
    """Rows ``[v, -v]`` in a random column order: zero mean exactly, in every dtype."""
    rows = draw(st.integers(1, 5))
    half = draw(st.integers(1, 16))
    affine = draw(st.booleans())
    eps = draw(st.sampled_from([0.0, 1e-6, 1e-3, 0.1]))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    dt, seed, rng = dtype_seed_rng(draw)
    v = normal(rng, (rows, half), dt, scale)                               # (R, E/2)
    x = np.concatenate([v, -v], axis=-1)[:, rng.permutation(2 * half)]     # (R, E)
    gamma = (1.0 + 0.5 * rng.standard_normal(2 * half)).astype(dt) if affine else None
    return {"R": rows, "E": 2 * half, "dtype": dt, "seed": seed, "eps": eps, "scale": scale,
            "x": x, "gamma": gamma}


@claims.claim("normalization.rmsnorm_is_layernorm_on_zero_mean",
              sources=(RMS_DEFINITION, LN_DEFINITION), kind=Kind.PROPERTY,
              needs=("rms_norm", "layer_norm"))
def rmsnorm_is_layernorm_on_zero_mean(subject, ctx) -> Evidence:
    r"""On zero-mean rows RMSNorm equals LayerNorm with the same eps

    .. math:: \tfrac1E\sum_e x_e=0\ \Rightarrow\ \mathrm{RMS}_\varepsilon(x)\odot
        g=\mathrm{LN}_\varepsilon(x)\odot g

    With mean 0 the biased variance is the mean square, so the two definitions coincide (RMSNorm
    drops only the re-centering). Rows are [v, -v] in a random column order, zero-mean exactly in
    every dtype; the two computations still sum in different orders, so they are compared under the
    composite rule (a mean of E squares, a root, a division), not bit for bit. The same gain is
    passed to both, no bias.
    """
    def measure(c):
        x, g, eps = c["x"], c["gamma"], c["eps"]
        rms = subject.rms_norm(x, g, eps=eps)
        ln = subject.layer_norm(x, g, None, eps=eps)
        return compare(rms, ln, _rms_tolerance(c, rms, ln),
                       note=f"RMSNorm and LayerNorm differ on a zero-mean row (eps = {eps:g})")
    return for_all(ctx, _zero_mean_case(), measure,
                   detail="On rows of mean 0 RMSNorm and LayerNorm (same eps, same gain) agree "
                          "to rounding.")


@claims.claim("normalization.rmsnorm_eps_inside", sources=(RMS_DEFINITION,), kind=Kind.PROPERTY,
              needs=("rms_norm",))
def rmsnorm_eps_inside(subject, ctx) -> Evidence:
    r"""RMSNorm adds eps inside the square root (visible where mean(x^2) is comparable to eps)

    .. math:: \mathrm{RMS}_\varepsilon(x)=\frac{x}{\sqrt{\overline{x^2}+\varepsilon}}\odot
        g\ne\frac{x}{\sqrt{\overline{x^2}}+\varepsilon}\odot g\quad\text{for
        }\overline{x^2}\approx\varepsilon

    Rows of root mean square about sqrt(eps) (scale sqrt(eps) times 0.3, 1, 3; eps from 1e-6 to 1):
    there the two placements differ by a factor (r + eps) / sqrt(r^2 + eps), up to 1/sqrt(2) at r =
    sqrt(eps), while on O(1) rows with eps = 1e-6 they agree to 1e-6. An implementation that adds
    eps outside fails here unless it declares rms_eps=outside (the convention diagnosis names it).
    """
    def measure(c):
        y = subject.rms_norm(c["x"], c["gamma"], eps=c["eps"])
        return compare(y, rms_definition(c["x"], c["gamma"], c["eps"]), _rms_tolerance(c, y),
                       note=f"RMSNorm of rows with RMS ~ sqrt(eps) (eps = {c['eps']:g}) is not "
                            f"x / sqrt(mean(x^2) + eps) * g")
    strategy = st.sampled_from([1e-6, 1e-4, 1e-2, 1.0]).flatmap(
        lambda eps: _rms_case(scales=tuple(f * np.sqrt(eps) for f in (0.3, 1.0, 3.0)),
                              eps_values=(eps,)))
    return for_all(ctx, strategy, measure,
                   detail="On rows with mean(x^2) comparable to eps the output is "
                          "x / sqrt(mean(x^2) + eps) * g, not x / (sqrt(mean(x^2)) + eps) * g.")


@claims.claim("normalization.rmsnorm_definition", sources=(RMS_DEFINITION,), kind=Kind.PROPERTY,
              needs=("rms_norm",))
def rmsnorm_definition(subject, ctx) -> Evidence:
    r"""RMSNorm is x / sqrt(mean(x^2) + eps) * g, the float64 formula

    .. math:: \mathrm{RMS}_\varepsilon(x)=\frac{x}{\sqrt{\tfrac1E\sum_e x_e^2+\varepsilon}}\odot g

    eps in {0, 1e-6, 1e-3, 1}, rows at scales 0.01, 1 and 30, with and without the gain; no
    re-centering and the gain applied after the division. RMSNorm is well conditioned (no
    centring): the composite rule over the row length.
    """
    def measure(c):
        y = subject.rms_norm(c["x"], c["gamma"], eps=c["eps"])
        return compare(y, rms_definition(c["x"], c["gamma"], c["eps"]), _rms_tolerance(c, y),
                       note="RMSNorm differs from x / sqrt(mean(x^2) + eps) * g")
    return for_all(ctx, _rms_case(scales=(0.01, 1.0, 30.0), eps_values=(0.0, 1e-6, 1e-3, 1.0)),
                   measure, detail="Outputs equal the float64 definition for eps from 0 to 1, "
                                   "with and without the gain.")
