"""Gradients: the backward passes of softmax, attention, LayerNorm and the FFN.

A subject's gradient callables (``attention_backward``, ``softmax_backward``,
``softmax_jacobian``, ``layer_norm_backward``, ``feed_forward_backward``) are
checked against **central finite differences of the definitions**, and against
the structural facts the chain rule implies: the softmax Jacobian's rows sum to
zero, ``dV = A^T dO``, masked connections carry no gradient, and a causal
output does not depend on later positions.

Finite differences without a tuned tolerance
--------------------------------------------
A central difference ``(L(x + h e_i) - L(x - h e_i)) / 2h`` has a truncation
error ``O(h^2)`` and a cancellation error ``O(u/h)`` (``u`` the unit roundoff).
Both are made negligible by evaluating the definition in 50-digit arithmetic
(mpmath) with ``h = 1e-20``: the error is then about ``1e-40`` relative, far
below float64 rounding, so the finite-difference gradient stands in for the
exact derivative and the subject's gradient is held to the ordinary tolerance
policy for its own floating-point computation.

References
----------
Goodfellow, Bengio & Courville 2016, Deep Learning, §6.5 (back-propagation)
and §11.5 (gradient checking by finite differences). Dao et al. 2022,
FlashAttention, Appendix B.2 (the attention backward pass). Vaswani et al.
2017, §3.2.1 and §3.2.3 (the forward pass and its masks). Ba, Kiros & Hinton
2016, §3 and Table 1 (LayerNorm and its invariances). Seed 000
(shared/seeds/000_dca4bc6ff5cc76c0.txt): vanishing and exploding gradients
make training finicky.
"""

from __future__ import annotations

import mpmath
import numpy as np
from hypothesis import strategies as st

from ..checks import Measurement, compare, for_all, holds
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import BA_2016, DAO_2022, GOODFELLOW_2016, SEED_000, SEED_004, VASWANI_2017
from ..declared import value_dim_equal
from ..strategies import DTYPES, SEEDS, dtype_seed_rng, normal, random_mask
from ..tolerance import conditioned_tolerance, higham_gamma, tolerance
from ._common import coarser_dtype, definition_attention

claims = ClaimSet("gradients")

BACKPROP = GOODFELLOW_2016.at("§6.5 (back-propagation)")
GRADIENT_CHECK = GOODFELLOW_2016.at("§11.5 (numerical gradient checks)")
FLASH_BACKWARD = DAO_2022.at("Appendix B.2 (standard attention backward pass)")
SEED_000_GRAD = SEED_000.at("vanishing/exploding gradients make training finicky")

#: Digits of the finite-difference arithmetic and its step.
_DPS = 50
_STEP = "1e-20"


# ---------------------------------------------------------------------------
# 50-digit definitions and central differences
# ---------------------------------------------------------------------------

_exp = np.frompyfunc(mpmath.exp, 1, 1)
_sqrt = np.frompyfunc(mpmath.sqrt, 1, 1)
_erf = np.frompyfunc(mpmath.erf, 1, 1)
_tanh = np.frompyfunc(mpmath.tanh, 1, 1)
_to_mp = np.frompyfunc(lambda x: mpmath.mpf(float(x)), 1, 1)   # exact for float32/float64


def _mp(a) -> np.ndarray:
    return _to_mp(np.asarray(a, dtype=np.float64)).astype(object)


def _central_difference(loss, x: np.ndarray) -> np.ndarray:
    """dL/dx for every entry of ``x`` by central differences in 50 digits.

    ``loss(X)`` takes ``X`` with a leading axis of perturbed copies of ``x``
    and returns one value of ``L`` per copy.
    """
    with mpmath.workdps(_DPS):
        h = mpmath.mpf(_STEP)
        n = x.size
        base = _mp(x)[None]                                       # (1, *x.shape)
        step = (np.eye(n, dtype=object) * h).reshape((n,) + x.shape)
        up, down = loss(base + step), loss(base - step)           # (n,), (n,)
        grad = [float((a - b) / (2 * h)) for a, b in zip(up, down)]
    return np.array(grad, dtype=np.float64).reshape(x.shape)


def _pairing(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """L = <g, y> per perturbed copy (the leading axis of ``y``)."""
    return np.sum((_mp(g)[None] * y).reshape(y.shape[0], -1), axis=1)


def _mp_softmax(s: np.ndarray, allowed) -> np.ndarray:
    """softmax over the last axis in mpmath; entries not allowed get 0, empty rows 0."""
    e = np.where(allowed, _exp(s), 0)
    z = np.sum(e, axis=-1, keepdims=True)
    return e / np.where(z == 0, 1, z)


def _mp_attention(q, k, v, allowed, scale) -> np.ndarray:
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale              # (n, ..., Lq, Lk)
    return np.matmul(_mp_softmax(s, allowed), v)                  # (n, ..., Lq, Ev)


def _allowed(mask, causal, lead, lq, lk) -> np.ndarray:
    allowed = np.ones(tuple(lead) + (lq, lk), dtype=bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask, allowed.shape)
    if causal:
        offset = (lk - lq) if causal == "bottom-right" else 0
        allowed &= np.tril(np.ones((lq, lk), dtype=bool), k=offset)
    return allowed


def fd_attention(q, k, v, g, *, mask=None, causal=False, scale=None):
    """(dq, dk, dv) of L = <g, Attention(q, k, v)> by 50-digit central differences."""
    lead, lq, lk, e = q.shape[:-2], q.shape[-2], k.shape[-2], q.shape[-1]
    allowed = _allowed(mask, causal, lead, lq, lk)
    with mpmath.workdps(_DPS):
        s = mpmath.mpf(1) / mpmath.sqrt(e) if scale is None else mpmath.mpf(float(scale))
        qm, km, vm = _mp(q), _mp(k), _mp(v)
    return (
        _central_difference(lambda x: _pairing(g, _mp_attention(x, km, vm, allowed, s)), q),
        _central_difference(lambda x: _pairing(g, _mp_attention(qm, x, vm, allowed, s)), k),
        _central_difference(lambda x: _pairing(g, _mp_attention(qm, km, x, allowed, s)), v))


def fd_softmax(x, g):
    """dL/dx of L = <g, softmax(x)> over the last axis (-inf entries stay masked)."""
    allowed = np.isfinite(x)
    return _central_difference(lambda z: _pairing(g, _mp_softmax(z, allowed)), x)


def _mp_layer_norm(x, gamma, beta, eps):
    e = x.shape[-1]
    mean = np.sum(x, axis=-1, keepdims=True) / e
    c = x - mean
    var = np.sum(c * c, axis=-1, keepdims=True) / e
    return c / _sqrt(var + eps) * gamma + beta


def fd_layer_norm(x, g, gamma, beta, eps):
    """(dx, dgamma, dbeta) of L = <g, LN(x)> with biased variance and eps inside the root."""
    with mpmath.workdps(_DPS):
        xm, gm, bm, em = _mp(x), _mp(gamma), _mp(beta), mpmath.mpf(float(eps))
    return (
        _central_difference(lambda z: _pairing(g, _mp_layer_norm(z, gm, bm, em)), x),
        _central_difference(lambda z: _pairing(g, _mp_layer_norm(xm[None], z[:, None], bm, em)), gamma),
        _central_difference(lambda z: _pairing(g, _mp_layer_norm(xm[None], gm, z[:, None], em)), beta))


def _mp_activation(name: str, h):
    if name == "relu":
        return np.where(h > 0, h, 0)
    if name == "gelu":
        return h * (1 + _erf(h / mpmath.sqrt(2))) / 2
    if name == "tanh":
        return _tanh(h)
    return 1 / (1 + _exp(-h))


def _mp_ffn(x, w1, b1, w2, b2, act):
    return np.matmul(_mp_activation(act, np.matmul(x, w1) + b1), w2) + b2


def fd_feed_forward(x, w1, b1, w2, b2, g, act):
    """(dx, dw1, db1, dw2, db2) of L = <g, act(x W1 + b1) W2 + b2>."""
    with mpmath.workdps(_DPS):
        xm, w1m, b1m, w2m, b2m = (_mp(a) for a in (x, w1, b1, w2, b2))
    lead = (slice(None),) + (None,) * (x.ndim - 1)        # perturbed copies broadcast over x
    return (
        _central_difference(lambda z: _pairing(g, _mp_ffn(z, w1m, b1m, w2m, b2m, act)), x),
        _central_difference(lambda z: _pairing(g, _mp_ffn(xm, z[lead], b1m, w2m, b2m, act)), w1),
        _central_difference(lambda z: _pairing(g, _mp_ffn(xm, w1m, z[lead], w2m, b2m, act)), b1),
        _central_difference(lambda z: _pairing(g, _mp_ffn(xm, w1m, b1m, z[lead], b2m, act)), w2),
        _central_difference(lambda z: _pairing(g, _mp_ffn(xm, w1m, b1m, w2m, z[lead], act)), b2))


# ---------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------

@st.composite
def _attention_case(draw, *, masked: bool = True):
    """Small (q, k, v, dO) with an optional mask, causal flag and explicit scale."""
    lead = draw(st.sampled_from([(), (2,)]))
    lq, lk = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    e = draw(st.integers(1, 2))
    ev = e if value_dim_equal() else draw(st.integers(1, 2))
    dt, seed, rng = dtype_seed_rng(draw)
    case = {"lead": lead, "Lq": lq, "Lk": lk, "E": e, "Ev": ev, "dtype": dt, "seed": seed,
            "q": normal(rng, (*lead, lq, e), dt), "k": normal(rng, (*lead, lk, e), dt),
            "v": normal(rng, (*lead, lk, ev), dt), "d_out": normal(rng, (*lead, lq, ev), dt),
            "mask": None, "causal": False, "scale": None}
    if masked:
        if draw(st.booleans()):
            case["mask"] = random_mask(rng, (*lead, lq, lk))
        case["causal"] = draw(st.sampled_from([False, True, "bottom-right"]))
        case["scale"] = draw(st.one_of(st.none(), st.sampled_from([0.25, 0.7, 1.5])))
    return case


def _dead_rows(allowed: np.ndarray) -> np.ndarray:
    """(..., Lq) True where a query may see no key."""
    return ~allowed.any(axis=-1)


def _worst(measurements: list[Measurement]) -> Measurement:
    bad = [m for m in measurements if not m.ok]
    if bad:
        return bad[0]
    return max(measurements, key=lambda m: m.error / m.rtol if m.rtol else 0.0)


# ---------------------------------------------------------------------------
# claims
# ---------------------------------------------------------------------------

@claims.claim("gradients.attention_finite_differences",
              sources=(FLASH_BACKWARD, GRADIENT_CHECK, VASWANI_2017.at("§3.2.1, Eq. (1)")),
              kind=Kind.PROPERTY, needs=("attention_backward",))
def attention_finite_differences(subject, ctx) -> Evidence:
    r"""Attention gradients dQ, dK, dV equal central finite differences of the definition

    .. math:: \frac{\partial L}{\partial x_i}=\lim_{h\to0}\frac{L(x+he_i)-L(x-he_i)}{2h},\quad
        L=\langle dO,\ \mathrm{softmax}(sQK^{\top}+\log M)V\rangle,\ x\in\{Q,K,V\}

    Central differences of the float64-exact inputs in 50-digit arithmetic with step 1e-20 (error
    ~1e-40, negligible), with boolean masks, both causal alignments and explicit scales; dq, dk and
    dv are measured against the largest gradient entry.
    """
    def measure(c):
        dq, dk, dv = (np.asarray(a) for a in subject.attention_backward(
            c["q"], c["k"], c["v"], c["d_out"], mask=c["mask"], causal=c["causal"],
            scale=c["scale"]))
        expected = fd_attention(c["q"], c["k"], c["v"], c["d_out"], mask=c["mask"],
                                causal=c["causal"], scale=c["scale"])
        scale = np.array([max(float(np.max(np.abs(a), initial=0.0)) for a in expected)])
        tol = tolerance("composite", coarser_dtype(dq, c["q"]),
                        n=c["E"] + c["Lk"] + c["Ev"] + c["Lq"])
        return _worst([compare(a, x, tol, scale=scale, note=f"{name} differs from finite differences")
                       for a, x, name in zip((dq, dk, dv), expected, ("dq", "dk", "dv"))])
    return for_all(ctx, _attention_case(), measure,
                   detail="dq, dk, dv agree with 50-digit central differences of "
                          "<dO, softmax(s QK^T + log M) V> for masks, causal alignments and scales.")


@claims.claim("gradients.dv_is_weights_transpose_do", sources=(FLASH_BACKWARD, BACKPROP),
              kind=Kind.PROPERTY, needs=("attention_backward",))
def dv_is_weights_transpose_do(subject, ctx) -> Evidence:
    r"""The value gradient is the transposed attention matrix times the output gradient

    .. math:: O=AV\ \Rightarrow\ \frac{\partial L}{\partial V}=A^{\top}\,\frac{\partial L}{\partial
        O}

    A is the float64 definition of the (masked) attention matrix; the output is linear in V, so
    this is the whole of dV.
    """
    def measure(c):
        _, _, dv = subject.attention_backward(c["q"], c["k"], c["v"], c["d_out"], mask=c["mask"],
                                              causal=c["causal"], scale=c["scale"])
        _, a = definition_attention(c["q"], c["k"], c["v"], mask=c["mask"], causal=c["causal"],
                                    scale=c["scale"])
        expected = np.swapaxes(a, -1, -2) @ np.asarray(c["d_out"], dtype=np.float64)
        tol = tolerance("reduction", coarser_dtype(dv, c["q"]), n=c["E"] + c["Lk"] + c["Lq"])
        return compare(dv, expected, tol, scale=c["d_out"], note="dV != A^T dO")
    return for_all(ctx, _attention_case(), measure,
                   detail="dV equals A^T dO with A the masked attention matrix.")


@claims.claim("gradients.masked_positions_zero",
              sources=(VASWANI_2017.at("§3.2.3"), FLASH_BACKWARD), kind=Kind.PROPERTY,
              needs=("attention_backward",))
def masked_positions_zero(subject, ctx) -> Evidence:
    r"""Masked keys, values and fully masked queries receive exactly zero gradient

    .. math:: M_{\cdot j}=0\Rightarrow \frac{\partial L}{\partial k_j}=\frac{\partial L}{\partial
        v_j}=0,\qquad M_{i\cdot}=0\Rightarrow\frac{\partial L}{\partial q_i}=0

    A masked weight is exactly 0 after the softmax, so dS = A ∘ (dP - D) is exactly 0 there:
    padding gets no gradient, not merely a small one. A subject whose fully_masked_row convention
    is 'nan' may return NaN rows of dq instead of zeros.
    """
    strategy = st.tuples(_attention_case(masked=False), st.data())

    def measure(args):
        c, data = args
        rng = np.random.default_rng(c["seed"] + 1)
        keep = random_mask(rng, (*c["lead"], 1, c["Lk"]))                  # key padding
        pad = data.draw(st.integers(0, c["Lk"] - 1), label="padded_key")
        keep[..., pad] = False
        mask = np.broadcast_to(keep, (*c["lead"], c["Lq"], c["Lk"])).copy()
        dead = data.draw(st.integers(-1, c["Lq"] - 1), label="fully_masked_query")
        if dead >= 0:
            mask[..., dead, :] = False
        dq, dk, dv = (np.asarray(a) for a in subject.attention_backward(
            c["q"], c["k"], c["v"], c["d_out"], mask=mask))
        padded = ~keep[..., 0, :]                                          # (..., Lk)
        if not (np.all(dk[padded] == 0) and np.all(dv[padded] == 0)):
            return holds(False, "a padded key or value received a non-zero gradient")
        rows = _dead_rows(mask)
        return holds(bool(np.all(dq[rows] == 0)), "a fully masked query received a gradient")
    return for_all(ctx, strategy, measure,
                   detail="With a key-padding mask (and sometimes a fully masked query row), "
                          "dk and dv are exactly 0 at padded keys and dq at the masked row.")


@claims.claim("gradients.causal_no_future_gradient",
              sources=(VASWANI_2017.at("§3.2.3"), FLASH_BACKWARD), kind=Kind.PROPERTY,
              needs=("attention_backward",))
def causal_no_future_gradient(subject, ctx) -> Evidence:
    r"""Causal attention: output i has zero gradient with respect to later positions

    .. math:: \frac{\partial o_i}{\partial k_j}=\frac{\partial o_i}{\partial v_j}=0\quad
        (j>i+L_k-L_q\ \text{bottom-right},\ j>i\ \text{top-left})

    dO is zero except at one query row i; then dk and dv vanish exactly at every key i may not see,
    and dq at every other row.
    """
    strategy = st.tuples(_attention_case(masked=False), st.sampled_from([True, "bottom-right"]),
                         st.data())

    def measure(args):
        c, align, data = args
        i = data.draw(st.integers(0, c["Lq"] - 1), label="query_row")
        g = np.zeros_like(c["d_out"])
        g[..., i, :] = c["d_out"][..., i, :]
        dq, dk, dv = (np.asarray(a) for a in subject.attention_backward(
            c["q"], c["k"], c["v"], g, causal=align))
        offset = c["Lk"] - c["Lq"] if align == "bottom-right" else 0
        future = np.arange(c["Lk"]) > i + offset                           # (Lk,)
        if not (np.all(dk[..., future, :] == 0) and np.all(dv[..., future, :] == 0)):
            return holds(False, f"output {i} has a gradient with respect to a later key")
        others = np.arange(c["Lq"]) != i
        return holds(bool(np.all(dq[..., others, :] == 0)),
                     "a query row without upstream gradient received one")
    return for_all(ctx, strategy, measure,
                   detail="With dO non-zero only at row i, dk and dv are exactly 0 at keys after "
                          "i (either alignment) and dq is 0 at every other row.")


@st.composite
def _logits_case(draw):
    rows, n = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    dt = draw(DTYPES)
    seed = draw(SEEDS)
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
    rng = np.random.default_rng(seed)
    x = normal(rng, (rows, n), dt, scale)
    masked = rng.random((rows, n)) < draw(st.sampled_from([0.0, 0.3]))
    masked[:, 0] = False                                      # every row keeps one entry
    x[masked] = -np.inf
    return {"rows": rows, "n": n, "dtype": dt, "seed": seed, "scale": scale, "x": x,
            "d_out": normal(rng, (rows, n), dt)}


@claims.claim("gradients.softmax_jacobian_rows_sum_zero",
              sources=(BACKPROP, VASWANI_2017.at("§3.2.1")), kind=Kind.PROPERTY,
              needs=("softmax_jacobian",), proof="softmax.jacobian")
def softmax_jacobian_rows_sum_zero(subject, ctx) -> Evidence:
    r"""The softmax Jacobian is diag(p) − ppᵀ and its rows sum to zero

    .. math:: J=\frac{\partial\,\mathrm{softmax}(x)}{\partial
        x}=\operatorname{diag}(p)-pp^{\top},\qquad J\mathbf 1=0

    The rows sum to zero because softmax is invariant along the direction 1
    (attention.softmax_shift_invariance). Masked (-inf) logits have zero rows and columns.
    """
    def measure(c):
        jac = np.asarray(subject.softmax_jacobian(c["x"]))
        if jac.shape != (c["rows"], c["n"], c["n"]):
            return holds(False, f"Jacobian has shape {jac.shape}")
        tol = tolerance("reduction", coarser_dtype(jac, c["x"]), n=c["n"])
        sums = compare(jac.sum(axis=-1), np.zeros((c["rows"], c["n"])), tol, scale=np.ones(1),
                       note="a Jacobian row does not sum to 0")
        if not sums.ok:
            return sums
        x = np.asarray(c["x"], dtype=np.float64)
        p = np.exp(x - x.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)                                  # (R, n)
        expected = p[..., :, None] * np.eye(c["n"]) - p[..., :, None] * p[..., None, :]
        return _worst([sums, compare(jac, expected, tol, scale=np.ones(1),
                                     note="J != diag(p) - p p^T")])
    return for_all(ctx, _logits_case(), measure,
                   detail="J equals diag(p) - p p^T and J 1 = 0 for logits with masked entries.")


@claims.claim("gradients.softmax_finite_differences", sources=(BACKPROP, GRADIENT_CHECK),
              kind=Kind.PROPERTY, needs=("softmax_backward",))
def softmax_finite_differences(subject, ctx) -> Evidence:
    r"""The softmax backward pass equals central finite differences

    .. math:: \frac{\partial L}{\partial x}=p\odot\left(g-\langle
        g,p\rangle\right)=\lim_{h\to0}\frac{L(x+he_i)-L(x-he_i)}{2h},\quad L=\langle
        g,\mathrm{softmax}(x)\rangle

    50-digit central differences; -inf (masked) logits must get gradient 0.
    """
    def measure(c):
        dx = np.asarray(subject.softmax_backward(c["x"], c["d_out"], axis=-1))
        expected = fd_softmax(c["x"], c["d_out"])
        tol = tolerance("reduction", coarser_dtype(dx, c["x"]), n=c["n"])
        return compare(dx, expected, tol, scale=c["d_out"], note="dx differs from finite differences")
    return for_all(ctx, _logits_case(), measure,
                   detail="softmax_backward(x, g) agrees with 50-digit central differences of "
                          "<g, softmax(x)>.")


def _row_condition(x, eps: float) -> np.ndarray:
    """max|x| / sqrt(var(x) + eps) per row: how much centring amplifies rounding."""
    x = np.asarray(x, dtype=np.float64)
    sigma = np.sqrt(x.var(axis=-1) + eps)                                  # (R,)
    with np.errstate(divide="ignore"):
        kappa = np.max(np.abs(x), axis=-1) / sigma
    return np.where(np.isfinite(kappa), np.maximum(kappa, 1.0), 1.0)


@st.composite
def _layer_norm_case(draw):
    rows, e = draw(st.integers(1, 3)), draw(st.integers(2, 5))
    dt = draw(DTYPES)
    seed = draw(SEEDS)
    eps = draw(st.sampled_from([1e-5, 0.1, 1.0]))
    affine = draw(st.booleans())
    rng = np.random.default_rng(seed)
    x = normal(rng, (rows, e), dt, draw(st.sampled_from([0.5, 1.0, 4.0])))
    return {"rows": rows, "E": e, "dtype": dt, "seed": seed, "eps": eps, "x": x,
            "gamma": (1.0 + 0.5 * rng.standard_normal(e)).astype(dt) if affine else None,
            "beta": normal(rng, (e,), dt) if affine else None,
            "d_out": normal(rng, (rows, e), dt)}


@claims.claim("gradients.layer_norm_finite_differences",
              sources=(BA_2016.at("§3, Eq. (4)"), BACKPROP, GRADIENT_CHECK), kind=Kind.PROPERTY,
              needs=("layer_norm_backward",))
def layer_norm_finite_differences(subject, ctx) -> Evidence:
    r"""LayerNorm gradients dx, dγ, dβ equal central finite differences

    .. math:: L=\left\langle g,\
        \frac{x-\mu}{\sqrt{\sigma^2+\varepsilon}}\gamma+\beta\right\rangle:\ \nabla_x L,\
        \nabla_\gamma L,\ \nabla_\beta L=\text{central differences}

    Biased variance, eps inside the square root (eps in {1e-5, 0.1, 1}), with and without gamma,
    beta; without them the gradients are taken at gamma = 1, beta = 0. Centring a row whose spread
    is small against its magnitude amplifies rounding by max|x| / sqrt(var + eps), so errors are
    measured relative to the largest gradient times that condition number (as in
    normalization.layernorm_standardizes).
    """
    def measure(c):
        dx, dgamma, dbeta = (np.asarray(a) for a in subject.layer_norm_backward(
            c["x"], c["d_out"], c["gamma"], c["beta"], eps=c["eps"]))
        gamma = np.ones(c["E"]) if c["gamma"] is None else c["gamma"]
        beta = np.zeros(c["E"]) if c["beta"] is None else c["beta"]
        expected = fd_layer_norm(c["x"], c["d_out"], gamma, beta, c["eps"])
        kappa = float(np.max(_row_condition(c["x"], c["eps"])))
        tol = tolerance("ill_conditioned", coarser_dtype(dx, c["x"]), n=c["E"] + c["rows"])
        scale = np.array([max(float(np.max(np.abs(a))) for a in expected) * max(kappa, 1.0)])
        return _worst([compare(a, x_, tol, scale=scale, note=f"{name} differs from finite differences")
                       for a, x_, name in zip((dx, dgamma, dbeta), expected,
                                              ("dx", "dgamma", "dbeta"))])
    return for_all(ctx, _layer_norm_case(), measure,
                   detail="dx, dgamma and dbeta agree with 50-digit central differences of "
                          "<g, LN(x)> (biased variance, eps inside the root).")


@claims.claim(
    "gradients.layer_norm_gradient_orthogonal",
    sources=(BA_2016.at("§5.1, Table 1 (invariance to re-centering and re-scaling of a case)"),
             BACKPROP),
    kind=Kind.PROPERTY, needs=("layer_norm_backward",))
def layer_norm_gradient_orthogonal(subject, ctx) -> Evidence:
    r"""LayerNorm's input gradient is orthogonal to 1 and, for ε = 0, to x − mean

    .. math:: \gamma=\mathbf 1:\quad \sum_e\frac{\partial L}{\partial x_e}=0,\qquad \varepsilon=0:\
        \left\langle\frac{\partial L}{\partial x},\,x-\bar x\mathbf 1\right\rangle=0

    LN(x + c1) = LN(x) and LN(a x) = LN(x) (a > 0, eps = 0): the derivative of L along 1 and along
    x - mean is zero, which is what the two inner products state. Errors are relative to max|g| /
    sigma and max|g|, the sizes of the summed terms, times the row's condition number max|x| /
    sigma.
    """
    def measure(c):
        dx, _, _ = subject.layer_norm_backward(c["x"], c["d_out"], eps=0.0)
        dx = np.asarray(dx, dtype=np.float64)
        x = np.asarray(c["x"], dtype=np.float64)
        g = np.max(np.abs(np.asarray(c["d_out"], dtype=np.float64)), axis=-1)    # (R,)
        centred = x - x.mean(axis=-1, keepdims=True)
        sigma = np.sqrt(np.mean(centred * centred, axis=-1))                      # (R,)
        kappa = _row_condition(x, 0.0)                                           # (R,)
        tol = tolerance("ill_conditioned", coarser_dtype(dx, c["x"]), n=c["E"])
        along_one = float(np.max(np.abs(dx.sum(axis=-1)) * sigma / (g * kappa)))
        along_x = float(np.max(np.abs(np.sum(dx * centred, axis=-1)) / (g * kappa)))
        return _worst([Measurement(along_one, tol, "sum of dx is not 0"),
                       Measurement(along_x, tol, "<dx, x - mean> is not 0")])
    return for_all(ctx, _layer_norm_case(), measure,
                   detail="With gamma = 1 and eps = 0, dx sums to 0 and is orthogonal to x - mean.")


@st.composite
def _ffn_case(draw):
    rows, e, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    dt = draw(DTYPES)
    seed = draw(SEEDS)
    act = draw(st.sampled_from(["relu", "gelu", "tanh", "sigmoid"]))
    rng = np.random.default_rng(seed)
    return {"rows": rows, "E": e, "F": f, "dtype": dt, "seed": seed, "activation": act,
            "x": normal(rng, (rows, e), dt), "w1": normal(rng, (e, f), dt),
            "b1": normal(rng, (f,), dt), "w2": normal(rng, (f, e), dt),
            "b2": normal(rng, (e,), dt), "d_out": normal(rng, (rows, e), dt)}


@claims.claim("gradients.feed_forward_finite_differences",
              sources=(VASWANI_2017.at("§3.3, Eq. (2)"), BACKPROP, GRADIENT_CHECK),
              kind=Kind.PROPERTY, needs=("feed_forward_backward",))
def feed_forward_finite_differences(subject, ctx) -> Evidence:
    r"""FFN gradients dx, dW1, db1, dW2, db2 equal central finite differences

    .. math:: L=\langle g,\ \phi(xW_1+b_1)W_2+b_2\rangle:\
        \nabla_{x,W_1,b_1,W_2,b_2}L=\text{central differences},\quad
        \phi\in\{\mathrm{ReLU},\mathrm{GELU},\tanh,\sigma\}

    GELU is the exact x Phi(x). Random pre-activations are almost surely farther than the step
    1e-20 from ReLU's kink.
    """
    from transformer_theory.impl.contract import FFNParams

    def measure(c):
        params = FFNParams(w1=c["w1"], b1=c["b1"], w2=c["w2"], b2=c["b2"])
        dx, grads = subject.feed_forward_backward(c["x"], params, c["d_out"],
                                                  activation=c["activation"])
        got = [np.asarray(a) for a in (dx, grads.w1, grads.b1, grads.w2, grads.b2)]
        expected = fd_feed_forward(c["x"], c["w1"], c["b1"], c["w2"], c["b2"], c["d_out"],
                                   c["activation"])
        scale = np.array([max(float(np.max(np.abs(a))) for a in expected)])
        tol = tolerance("composite", coarser_dtype(got[0], c["x"]), n=c["E"] + c["F"] + c["rows"])
        return _worst([compare(a, x_, tol, scale=scale, note=f"{name} differs from finite differences")
                       for a, x_, name in zip(got, expected, ("dx", "dW1", "db1", "dW2", "db2"))])
    return for_all(ctx, _ffn_case(), measure,
                   detail="All five FFN gradients agree with 50-digit central differences for "
                          "ReLU, GELU, tanh and sigmoid.")


# ---------------------------------------------------------------------------
# back-propagation through time (seed 004)
# ---------------------------------------------------------------------------

SEED_004_BPTT = SEED_004.at("'Let's first create copies of W and apply the Chain Rule' (dL/dW "
                            "summed over the copies)")


def _mp_rnn_loss(x, w, u, g, perturbed, step=None):
    """L = sum_t <g_t, h_t> of h_t = tanh(W_t h_{t-1} + U x_t) for each perturbed copy.

    ``perturbed`` (P, n, n) replaces W at every step (``step`` None: the tied matrix)
    or at step ``step`` only (one untied copy).
    """
    wm, um, xm, gm = _mp(w), _mp(u), _mp(x), _mp(g)
    h = np.zeros((perturbed.shape[0], w.shape[0]), dtype=object) * mpmath.mpf(0)   # (P, n)
    total = np.zeros(perturbed.shape[0], dtype=object) * mpmath.mpf(0)
    for t in range(x.shape[0]):
        wt = perturbed if step is None or step == t else wm[None]
        h = _tanh(np.matmul(wt, h[..., None])[..., 0] + np.matmul(um, xm[t]))    # (P, n)
        total = total + np.sum(h * gm[t], axis=-1)
    return total


#: numpy's float64 tanh is tested to 2 ulp (its umath validation set), 4 u of |tanh(a)|
TANH_ROUNDING = 4


def bptt_rounding_bound(x, w, u, g) -> tuple[np.ndarray, np.ndarray]:
    """A first-order bound on what float64 rounding does to each entry of BPTT's gradients.

    The running error bound of the forward pass ``h_t = tanh(W h_{t-1} + U x_t)`` and of the
    backward pass ``delta_t = (g_t + W^T delta_{t+1}) * (1 - h_t^2)``, ``dL/dW_t = delta_t
    h_{t-1}^T``: every operation's rounding (``gamma_k`` of the terms' absolute values for a
    sum of ``k + 1`` terms, :func:`~..tolerance.higham_gamma`; ``u`` of a product;
    :data:`TANH_ROUNDING` ``u`` of tanh) and every error carried in from earlier quantities
    (through ``|W|``, ``1 - h^2`` and ``2 |h|``) is added in absolute value, so the bound
    holds however the sums cancel. Terms of order ``u^2`` are dropped.

    Parameters
    ----------
    x : ndarray, (T, m)
    w : ndarray, (n, n)
    u : ndarray, (n, m)
    g : ndarray, (T, n)

    Returns
    -------
    tied : ndarray, (n, n)
        Bound on the error of ``dL/dW = sum_t dL/dW_t`` (including the sum over copies).
    copies : ndarray, (T, n, n)
        Bound on the error of each ``dL/dW_t``.

    References
    ----------
    Higham 2002, Accuracy and Stability of Numerical Algorithms (the constant ``gamma_n``
    and running error analysis).
    """
    from transformer_theory.impl import recurrence as R

    unit = np.finfo(np.float64).eps / 2
    steps, n = g.shape
    aw, au = np.abs(w), np.abs(u)
    hs, _ = R.elman_rnn(x, w, u)                                          # (T + 1, n): h_0 .. h_T
    errs = [np.zeros(n)]                                                  # bounds on h_0 .. h_T
    for t in range(steps):
        h = hs[t + 1]                                                     # (n,)
        err_arg = aw @ errs[-1] + higham_gamma(n + x.shape[1]) * (
            aw @ np.abs(hs[t]) + au @ np.abs(x[t]))                       # (n,)
        errs.append((1 - h ** 2) * err_arg + TANH_ROUNDING * unit * np.abs(h))
    copies = np.zeros((steps, n, n))
    size = np.zeros((steps, n, n))                                        # |dL/dW_t|
    carry, err_carry = np.zeros(n), np.zeros(n)                           # W^T delta_{t+1}
    for t in reversed(range(steps)):
        h, err_h = hs[t + 1], errs[t + 1]
        slope = 1 - h ** 2                                                # (n,) tanh'
        err_slope = 2 * np.abs(h) * err_h + unit * (h ** 2 + slope)       # h*h, 1 - h^2
        total = g[t] + carry                                              # (n,)
        err_total = err_carry + unit * np.abs(total)
        delta = total * slope                                             # (n,)
        err_delta = err_total * slope + np.abs(total) * err_slope + unit * np.abs(delta)
        size[t] = np.outer(np.abs(delta), np.abs(hs[t]))
        copies[t] = (np.outer(err_delta, np.abs(hs[t])) + np.outer(np.abs(delta), errs[t])
                     + unit * size[t])
        carry = w.T @ delta
        err_carry = aw.T @ err_delta + higham_gamma(n) * (aw.T @ np.abs(delta))
    tied = copies.sum(axis=0) + higham_gamma(max(steps - 1, 0)) * size.sum(axis=0)
    return tied, copies


@st.composite
def _rnn_case(draw):
    steps, n, m = draw(st.integers(1, 4), label="T"), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(SEEDS))
    return {"T": steps, "n": n, "x": rng.standard_normal((steps, m)),
            "w": 0.8 * rng.standard_normal((n, n)) / np.sqrt(n),
            "u": rng.standard_normal((n, m)), "g": rng.standard_normal((steps, n))}


@claims.claim(
    "gradients.bptt_sums_tied_copies",
    sources=(SEED_004_BPTT, GOODFELLOW_2016.at("the chapter on sequence modelling: computing the "
                                                "gradient in a recurrent neural network"),
             GRADIENT_CHECK),
    kind=Kind.PROPERTY, needs=(), uses=("elman_bptt",),
    full_precision_only="the recurrence and its 50-digit differences are float64 by definition")
def bptt_sums_tied_copies(subject, ctx) -> Evidence:
    r"""Back-propagation through time sums the gradients of the tied copies of W

    .. math:: h_t=\tanh(W_th_{t-1}+Ux_t),\ W_t\equiv W:\quad \frac{\partial L}{\partial
        W}=\sum_{t=1}^{T}\frac{\partial L}{\partial W_t}\Big|_{W_t=W}=\sum_t\delta_t
        h_{t-1}^{\top},\ \ \delta_t=\Big(g_t+W^{\top}\delta_{t+1}\Big)\odot(1-h_t^2)

    L = sum_t <g_t, h_t> on a small tanh RNN (T = 1..4 steps, state n = 1..3, 1..2 inputs). Each
    copy's gradient dL/dW_t is checked against 50-digit central differences that perturb W at step
    t only, and the tied gradient against differences that perturb W at every step; their sum must
    be the tied gradient. Composite tolerance over T n terms, or where larger the running error
    bound of float64 BPTT on the case over the gradients' scale (bptt_rounding_bound): a gradient
    that drops the recurrent term W^T delta_{t+1} (truncated BPTT) or keeps one copy only is off by
    O(1) of the gradient's scale whenever T >= 2.
    """
    from transformer_theory.impl import recurrence as R
    from ..subject import construction

    bptt = construction(subject, "elman_bptt", R.elman_bptt)

    def measure(c):
        x, w, u, g = c["x"], c["w"], c["u"], c["g"]
        dw, per_copy = (np.asarray(a) for a in bptt(x, w, u, g))
        tied = _central_difference(lambda z: _mp_rnn_loss(x, w, u, g, z), w)
        copies = [_central_difference(lambda z, t=t: _mp_rnn_loss(x, w, u, g, z, t), w)
                  for t in range(c["T"])]
        scale = np.array([max(float(np.max(np.abs(a))) for a in [tied] + copies)])
        # the rounding of float64 BPTT, bounded entry by entry (a running error bound): it is
        # not relative to the gradient, since a cancelling tanh argument (U x_t summing to
        # nearly 0) leaves h_t, and dL/dW = sum delta_t h_{t-1}^T, with an absolute error of its
        # terms' size, and 1 - h^2 read from a rounded h loses 2 h^2 / (1 - h^2) as a step
        # saturates (the composite rule alone failed the reference at 34 of 50 seeds)
        tied_bound, copy_bound = bptt_rounding_bound(x, w, u, g)
        sum_bound = (copy_bound.sum(axis=0) + tied_bound                  # (n, n): the check's
                     + higham_gamma(c["T"]) * np.abs(np.array(copies)).sum(axis=0))  # own sum

        def held_to(bound):             # the composite rule, or the bound over the scale
            base = tolerance("composite", np.float64, c["T"] * c["n"])
            kappa = float(np.max(bound)) / scale[0] / base.rtol if scale[0] > 0 else 1.0
            return conditioned_tolerance("composite", np.float64, c["T"] * c["n"], kappa,
                                         "float64 BPTT's running error bound (forward "
                                         "argument sums, tanh within 2 ulp, 1 - h^2, the "
                                         "backward sums and products) over the gradients' "
                                         "scale")

        return _worst([compare(dw, tied, held_to(tied_bound), scale=scale,
                               note="dL/dW differs from finite differences of the tied W"),
                       compare(per_copy.sum(axis=0), dw, held_to(sum_bound), scale=scale,
                               note="the copies' gradients do not sum to dL/dW")]
                      + [compare(per_copy[t], copies[t], held_to(copy_bound[t]), scale=scale,
                                 note=f"dL/dW_{t + 1} differs from differences of copy {t + 1}")
                         for t in range(c["T"])])
    return for_all(ctx, _rnn_case(), measure,
                   detail="The tied gradient equals 50-digit differences and the sum of the "
                          "per-copy gradients, each of which equals differences of its copy.")
