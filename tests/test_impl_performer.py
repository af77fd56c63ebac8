"""Unit tests for transformer_theory.impl.performer (random features and FAVOR+)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transformer_theory.impl import performer as P
from transformer_theory.impl import performer_analytic as PA

KINDS = ("trig", "positive", "hyperbolic")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def softmax_attention(q, k, v, causal=False, key_mask=None):
    """Exact softmax(QK^T/sqrt(d)) V, written out for comparison."""
    logits = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    allowed = np.ones(logits.shape[-2:], dtype=bool)
    if causal:
        allowed = np.tril(allowed)
    if key_mask is not None:
        allowed = allowed & key_mask[..., None, :]
    logits = np.where(allowed, logits, -np.inf)
    logits = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(axis=-1, keepdims=True)) @ v


def terms(x, y, w, kind):
    """Per-omega terms of the estimator: the estimate is their mean over the rows of w."""
    m = w.shape[0]
    prod = P.random_features(x, w, kind) * P.random_features(y, w, kind)   # (F,)
    if kind != "positive":                      # [sin, cos] or [+, -] blocks of one omega
        prod = prod[..., :m] + prod[..., m:]
    return prod * m                                                       # (m,)


def qkv(rng, shape_lead=(2, 3), L=7, d=4, dv=5, scale=0.5, dtype=np.float64, Lk=None):
    Lk = L if Lk is None else Lk
    q = (rng.standard_normal(shape_lead + (L, d)) * scale).astype(dtype)
    k = (rng.standard_normal(shape_lead + (Lk, d)) * scale).astype(dtype)
    v = rng.standard_normal(shape_lead + (Lk, dv)).astype(dtype)
    return q, k, v


# --------------------------------------------------------------------------
# kernels and feature maps
# --------------------------------------------------------------------------

def test_feature_dimension():
    assert P.feature_dimension(5, "positive") == 5
    assert P.feature_dimension(5, "trig") == 10
    assert P.feature_dimension(5, "hyperbolic") == 10
    with pytest.raises(ValueError, match="kind"):
        P.feature_dimension(5, "relu")
    with pytest.raises(ValueError, match="m"):
        P.feature_dimension(0)


def test_sm_kernel_known_value_and_dtype():
    x = np.array([1.0, 2.0])
    y = np.array([3.0, -1.0])
    assert P.sm_kernel(x, y) == pytest.approx(math.e)
    out = P.sm_kernel(x.astype(np.float32), y.astype(np.float32))
    assert out.dtype == np.float32
    batch = P.sm_kernel(np.ones((3, 2, 4)), np.full((3, 2, 4), 0.25))
    assert batch.shape == (3, 2)
    np.testing.assert_allclose(batch, math.e)


def test_sm_kernel_rejects_mismatched_shapes_and_bad_values():
    with pytest.raises(ValueError, match="y: expected the shape of x"):
        P.sm_kernel(np.ones((2, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="x: contains NaN"):
        P.sm_kernel(np.array([np.nan, 1.0]), np.ones(2))
    with pytest.raises(TypeError, match="x: expected dtype"):
        P.sm_kernel(np.ones(2, dtype=np.complex128), np.ones(2))


def test_random_features_hand_values():
    w = np.eye(2)
    x = np.array([1.0, 0.0])
    pos = P.random_features(x, w, "positive")
    np.testing.assert_allclose(pos, np.exp([0.5, -0.5]) / math.sqrt(2), rtol=1e-15)
    trig = P.random_features(x, w, "trig")
    expect = math.exp(0.5) / math.sqrt(2) * np.array(
        [math.sin(1), 0.0, math.cos(1), 1.0])
    np.testing.assert_allclose(trig, expect, rtol=1e-15)
    hyp = P.random_features(x, w, "hyperbolic")
    np.testing.assert_allclose(hyp, np.exp([0.5, -0.5, -1.5, -0.5]) / 2, rtol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_random_features_shapes_and_dtypes(kind):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((6, 4))
    out = P.random_features(x, w, kind)
    assert out.shape == (2, 3, 5, P.feature_dimension(6, kind))
    assert out.dtype == np.float64
    out32 = P.random_features(x.astype(np.float32), w.astype(np.float32), kind)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out, rtol=1e-5, atol=1e-6)
    mixed = P.random_features(x.astype(np.float32), w, kind)
    assert mixed.dtype == np.float64


@pytest.mark.parametrize("kind", KINDS)
def test_estimate_is_phi_dot_phi(kind):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2, 3, 4)) * 0.5
    w = rng.standard_normal((7, 4))
    est = P.sm_estimate(x, y, w, kind)
    assert est.shape == (3,)
    direct = np.sum(P.random_features(x, w, kind) * P.random_features(y, w, kind), -1)
    np.testing.assert_allclose(est, direct, rtol=1e-14)


def test_trig_estimate_is_exact_at_x_equal_y():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3))
    w = rng.standard_normal((4, 3))
    np.testing.assert_allclose(P.sm_estimate(x, x, w, "trig"), P.sm_kernel(x, x),
                               rtol=1e-13)


@pytest.mark.parametrize("kind", ("positive", "hyperbolic"))
def test_positive_and_hyperbolic_estimates_are_exact_at_x_equal_minus_y(kind):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3))
    w = rng.standard_normal((4, 3))
    np.testing.assert_allclose(P.sm_estimate(x, -x, w, kind), P.sm_kernel(x, -x),
                               rtol=1e-13)


def test_positive_features_are_positive():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 6)) * 2
    w = rng.standard_normal((16, 6))
    assert np.all(P.random_features(x, w, "positive") > 0)
    assert np.all(P.random_features(x, w, "hyperbolic") > 0)


@pytest.mark.parametrize("kind", ("positive", "hyperbolic"))
def test_stabilizer_multiplies_features_by_exp_minus_c(kind):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 3))
    w = rng.standard_normal((4, 3))
    c = rng.standard_normal((2, 5, 1))
    np.testing.assert_allclose(P.random_features(x, w, kind, stabilizer=c),
                               P.random_features(x, w, kind) * np.exp(-c), rtol=1e-13)
    # a scalar and a per-sequence (.., 1, 1) stabiliser broadcast along L
    np.testing.assert_allclose(P.random_features(x, w, kind, stabilizer=1.5),
                               P.random_features(x, w, kind) * np.exp(-1.5), rtol=1e-13)
    per_seq = P.feature_max_stabilizer(x, w, kind, over="sequence")
    assert per_seq.shape == (2, 1, 1)
    assert P.random_features(x, w, kind, stabilizer=per_seq).shape[:-1] == (2, 5)


@pytest.mark.parametrize("kind", ("positive", "hyperbolic"))
def test_feature_max_stabilizer_caps_features(kind):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 6, 4)) * 5
    w = rng.standard_normal((8, 4))
    c = P.feature_max_stabilizer(x, w, kind)
    assert c.shape == (3, 6, 1)
    f = P.random_features(x, w, kind, stabilizer=c)
    n_feat = P.feature_dimension(8, kind)
    np.testing.assert_allclose(f.max(axis=-1), 1 / math.sqrt(n_feat), rtol=1e-14)
    seq = P.feature_max_stabilizer(x, w, kind, over="sequence")
    np.testing.assert_array_equal(seq[..., 0, 0], c[..., 0].max(axis=-1))


def test_random_features_errors():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 3))
    w = rng.standard_normal((4, 3))
    with pytest.raises(ValueError, match="kind"):
        P.random_features(x, w, "cosine")
    with pytest.raises(ValueError, match="w: expected the input dimension d = 3"):
        P.random_features(x, rng.standard_normal((4, 2)))
    with pytest.raises(ValueError, match="w: expected a 2-d array"):
        P.random_features(x, np.ones(3))
    with pytest.raises(ValueError, match="w: expected at least one random vector"):
        P.random_features(x, np.ones((0, 3)))
    with pytest.raises(ValueError, match="x: contains NaN"):
        P.random_features(np.full((5, 3), np.inf), w)
    with pytest.raises(ValueError, match="w: contains NaN"):
        P.random_features(x, np.full((4, 3), np.nan))
    with pytest.raises(TypeError, match="x: expected dtype"):
        P.random_features(x.astype(np.float16), w)
    with pytest.raises(ValueError, match="stabilizer: only defined"):
        P.random_features(x, w, "trig", stabilizer=0.0)
    with pytest.raises(ValueError, match=r"stabilizer: expected a shape broadcastable to \(5, 1\)"):
        P.random_features(x, w, stabilizer=np.zeros(5))          # (5,) would give (5, 5)
    with pytest.raises(ValueError, match="stabilizer: expected a shape"):
        P.random_features(x, w, stabilizer=np.zeros((2, 5, 1)))  # adds a dim
    with pytest.raises(ValueError, match="stabilizer: contains NaN"):
        P.random_features(x, w, stabilizer=np.nan)
    with pytest.raises(ValueError, match="kind"):
        P.feature_max_stabilizer(x, w, "trig")
    with pytest.raises(ValueError, match="over"):
        P.feature_max_stabilizer(x, w, over="batch")
    with pytest.raises(ValueError, match="x: expected at least 2"):
        P.feature_max_stabilizer(np.ones(3), w, over="sequence")


# --------------------------------------------------------------------------
# random matrices
# --------------------------------------------------------------------------

def test_gaussian_matrix_shape_dtype_determinism():
    w = P.gaussian_matrix(5, 3, np.random.default_rng(0))
    assert w.shape == (5, 3) and w.dtype == np.float64
    np.testing.assert_array_equal(w, P.gaussian_matrix(5, 3, np.random.default_rng(0)))
    w32 = P.gaussian_matrix(5, 3, np.random.default_rng(0), dtype=np.float32)
    assert w32.dtype == np.float32


def test_random_matrix_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="m: expected an integer >= 1"):
        P.gaussian_matrix(0, 3, rng)
    with pytest.raises(TypeError, match="d: expected an integer"):
        P.gaussian_matrix(2, 3.0, rng)
    with pytest.raises(TypeError, match="d: expected an integer"):
        P.orthogonal_gaussian(2, True, rng)
    with pytest.raises(TypeError, match="rng: expected a numpy.random.Generator"):
        P.gaussian_matrix(2, 3, np.random.RandomState(0))
    with pytest.raises(TypeError, match="rng"):
        P.orthogonal_gaussian(2, 3, 0)
    with pytest.raises(TypeError, match="dtype: expected float32 or float64"):
        P.gaussian_matrix(2, 3, rng, dtype=np.float16)
    with pytest.raises(ValueError, match="scaling"):
        P.orthogonal_gaussian(2, 3, rng, scaling="unit")
    with pytest.raises(ValueError, match="scaling"):
        P.redraw_features(2, 3, rng, scaling="unit")
    with pytest.raises(TypeError, match="orthogonal: expected a bool"):
        P.redraw_features(2, 3, rng, orthogonal=1)


@pytest.mark.parametrize("m,d", [(3, 5), (5, 5), (12, 5), (7, 1)])
def test_orthogonal_gaussian_blocks_are_orthogonal(m, d):
    w = P.orthogonal_gaussian(m, d, np.random.default_rng(8), scaling="fixed")
    assert w.shape == (m, d)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), math.sqrt(d), rtol=1e-13)
    gram = w @ w.T
    for start in range(0, m, d):
        block = gram[start:start + d, start:start + d]
        np.testing.assert_allclose(block, d * np.eye(block.shape[0]), atol=1e-12)
    if m > d and d > 1:
        # different blocks are independent draws, not orthogonal to each other
        assert np.abs(gram[:d, d:]).max() > 1e-3


def test_orthogonal_gaussian_chi_norms_and_determinism():
    w = P.orthogonal_gaussian(8, 4, np.random.default_rng(9))
    norms = np.linalg.norm(w, axis=1)
    assert np.ptp(norms) > 1e-3                       # chi-distributed, not fixed
    directions = w / norms[:, None]
    np.testing.assert_allclose(directions[:4] @ directions[:4].T, np.eye(4), atol=1e-12)
    np.testing.assert_array_equal(w, P.orthogonal_gaussian(8, 4, np.random.default_rng(9)))
    assert P.orthogonal_gaussian(3, 4, np.random.default_rng(9), dtype=np.float32).dtype \
        == np.float32


def test_orthogonal_rows_are_marginally_uniform_sign_correction():
    # Without Q diag(sign(diag R)) numpy's QR gives E[Q_00] ~ -0.5 for d = 3.
    d, n = 3, 2000
    w = P.orthogonal_gaussian(n * d, d, np.random.default_rng(10), scaling="fixed")
    first = w[::d, 0] / math.sqrt(d)                  # first row of each block
    se = math.sqrt(1.0 / d / n)                       # Var of a sphere coordinate = 1/d
    assert abs(first.mean()) < 6 * se
    assert abs(np.mean(first ** 2) - 1.0 / d) < 0.05


def test_orthogonal_chi_rows_are_marginally_standard_normal():
    d, n = 4, 4000
    w = P.orthogonal_gaussian(n * d, d, np.random.default_rng(11))
    sq = np.sum(w ** 2, axis=1)                       # chi^2_d: mean d, var 2d
    assert abs(sq.mean() - d) < 6 * math.sqrt(2 * d / sq.size)
    cov = w.T @ w / w.shape[0]
    np.testing.assert_allclose(cov, np.eye(d), atol=0.05)


def test_redraw_features():
    w = P.redraw_features(6, 3, np.random.default_rng(12))
    np.testing.assert_array_equal(w, P.orthogonal_gaussian(6, 3, np.random.default_rng(12)))
    iid = P.redraw_features(6, 3, np.random.default_rng(12), orthogonal=False)
    np.testing.assert_array_equal(iid, P.gaussian_matrix(6, 3, np.random.default_rng(12)))
    fixed = P.redraw_features(6, 3, np.random.default_rng(12), orthogonal=False,
                              scaling="fixed")
    np.testing.assert_allclose(np.linalg.norm(fixed, axis=1), math.sqrt(3), rtol=1e-14)
    assert not np.array_equal(w, P.redraw_features(6, 3, np.random.default_rng(13)))


# --------------------------------------------------------------------------
# regularised softmax kernel
# --------------------------------------------------------------------------

def test_smreg_kernel_closed_forms_small_d():
    # d = 1: omega = +-1, so SMREG = Lambda cosh(|x + y|)
    x, y = np.array([0.7]), np.array([-0.2])
    lam = math.exp(-(0.49 + 0.04) / 2)
    assert P.smreg_kernel(x, y) == pytest.approx(lam * math.cosh(0.5), rel=1e-14)
    # d = 3: 0F1(; 3/2; t^2/4) = sinh(t)/t with t = sqrt(3 s)
    x, y = np.array([0.3, -0.1, 0.2]), np.array([0.1, 0.4, -0.3])
    s = float(np.sum((x + y) ** 2))
    t = math.sqrt(3 * s)
    lam = math.exp(-(x @ x + y @ y) / 2)
    assert P.smreg_kernel(x, y) == pytest.approx(lam * math.sinh(t) / t, rel=1e-13)


def test_smreg_below_sm_with_equality_at_minus():
    rng = np.random.default_rng(14)
    x, y = rng.standard_normal((2, 200, 5))
    assert np.all(P.smreg_kernel(x, y) <= P.sm_kernel(x, y) * (1 + 1e-14))
    assert np.all(P.smreg_kernel(x, y) < P.sm_kernel(x, y))
    np.testing.assert_allclose(P.smreg_kernel(x, -x), P.sm_kernel(x, -x), rtol=1e-14)
    assert P.smreg_kernel(x[0].astype(np.float32), y[0].astype(np.float32)).dtype \
        == np.float32


def test_regularized_features_estimate_smreg_unbiasedly():
    rng = np.random.default_rng(15)
    d, m, n = 4, 4, 20000
    x, y = np.array([0.5, -0.3, 0.2, 0.4]), np.array([0.3, 0.1, -0.2, 0.5])
    w = P.orthogonal_gaussian(n * d, d, rng, scaling="fixed")        # n blocks
    t = terms(x, y, w, "positive").reshape(n, m).mean(axis=1)
    target = float(P.smreg_kernel(x, y))
    se = t.std() / math.sqrt(n)
    assert abs(t.mean() - target) < 6 * se
    assert abs(float(P.sm_kernel(x, y)) - target) > 10 * se          # SMREG != SM here
    phi = P.regularized_features(np.stack([x, y]), w[:m])
    np.testing.assert_allclose(phi, P.random_features(np.stack([x, y]), w[:m]))


def test_regularized_features_rejects_non_fixed_norm_rows():
    rng = np.random.default_rng(16)
    with pytest.raises(ValueError, match=r"w: expected every row norm = sqrt\(d\)"):
        P.regularized_features(np.ones((2, 3)), P.orthogonal_gaussian(3, 3, rng))
    with pytest.raises(ValueError, match="w: expected the input dimension d"):
        P.regularized_features(np.ones((2, 3)), np.ones((2, 2)))


# --------------------------------------------------------------------------
# closed forms: MSE and moments
# --------------------------------------------------------------------------

def test_mse_formulas_hand_values():
    x, y, m = np.array([0.5]), np.array([0.25]), 2
    sm = math.exp(0.125)
    s_plus, s_minus = 0.5625, 0.0625
    trig = math.exp(s_plus) * sm ** -2 * (1 - math.exp(-s_minus)) ** 2 / (2 * m)
    pos = math.exp(s_plus) * sm ** 2 * (1 - math.exp(-s_plus)) / m
    assert P.mse_trig(x, y, m) == pytest.approx(trig, rel=1e-14)
    assert P.mse_positive(x, y, m) == pytest.approx(pos, rel=1e-14)
    assert P.mse_hyperbolic(x, y, m) == pytest.approx(
        0.5 * (1 - math.exp(-s_plus)) * pos, rel=1e-14)


def test_mse_zero_cases_and_dtypes():
    x = np.array([[0.3, -0.2], [1.0, 0.5]])
    np.testing.assert_array_equal(P.mse_trig(x, x, 3), 0.0)
    np.testing.assert_array_equal(P.mse_positive(x, -x, 3), 0.0)
    np.testing.assert_array_equal(P.mse_hyperbolic(x, -x, 3), 0.0)
    x32 = x.astype(np.float32)
    for f in (P.mse_trig, P.mse_positive, P.mse_hyperbolic):
        out = f(x32, x32 * 0.5, 4)
        assert out.dtype == np.float32 and out.shape == (2,)
    assert P.mse_orthogonal_exact(x32, x32, 4).dtype == np.float32
    assert P.mse_orthogonal_bound(x, x32, 4).dtype == np.float64


@pytest.mark.parametrize("kind,mse", [("trig", P.mse_trig), ("positive", P.mse_positive),
                                      ("hyperbolic", P.mse_hyperbolic)])
def test_mse_formulas_match_monte_carlo_iid(kind, mse):
    rng = np.random.default_rng(17)
    d, m, n = 3, 4, 40000
    x, y = np.array([0.4, -0.3, 0.5]), np.array([0.2, 0.3, -0.1])
    w = rng.standard_normal((n * m, d))
    est = terms(x, y, w, kind).reshape(n, m).mean(axis=1)
    err2 = (est - float(P.sm_kernel(x, y))) ** 2
    assert abs(est.mean() - float(P.sm_kernel(x, y))) < 6 * est.std() / math.sqrt(n)
    assert abs(err2.mean() - float(mse(x, y, m))) < 6 * err2.std() / math.sqrt(n)


def test_positive_mse_monte_carlo_with_exact_variance():
    # Chebyshev with the exact variance of the squared error (variance_moments).
    rng = np.random.default_rng(18)
    d, m, n = 2, 3, 50000
    x, y = np.array([0.3, -0.2]), np.array([0.1, 0.4])
    mom = P.variance_moments(x, y, m)
    w = rng.standard_normal((n * m, d))
    est = terms(x, y, w, "positive").reshape(n, m).mean(axis=1)
    err2 = (est - float(mom.mean)) ** 2
    bound = math.sqrt(float(mom.squared_error_variance) / n / 1e-4)  # P(fail) <= 1e-4
    assert abs(err2.mean() - float(mom.mse)) < bound


def test_hyperbolic_beats_positive():
    rng = np.random.default_rng(19)
    x, y = rng.standard_normal((2, 50, 4))
    assert np.all(P.mse_hyperbolic(x, y, 8) <= P.mse_positive(x, y, 8))


def test_same_block_pairs():
    assert PA._same_block_pairs(3, 5) == 6            # m <= d: m(m-1)
    assert PA._same_block_pairs(5, 5) == 20
    assert PA._same_block_pairs(7, 5) == 20 + 2       # one full block and a pair
    assert PA._same_block_pairs(4, 1) == 0            # d = 1: no pairs


def test_mse_orthogonal_exact_reduces_to_iid_without_pairs():
    x, y = np.array([0.4, -0.1, 0.3]), np.array([0.2, 0.5, -0.3])
    assert P.mse_orthogonal_exact(x, y, 1) == pytest.approx(P.mse_positive(x, y, 1),
                                                           rel=1e-13)
    x1, y1 = np.array([0.4]), np.array([0.3])
    assert P.mse_orthogonal_exact(x1, y1, 5, 1) == pytest.approx(
        P.mse_positive(x1, y1, 5), rel=1e-13)


@pytest.mark.parametrize("m", [3, 6])
def test_mse_orthogonal_exact_matches_monte_carlo(m):
    rng = np.random.default_rng(20 + m)
    d, n = 4, 20000
    x, y = np.array([0.3, -0.4, 0.2, 0.1]), np.array([0.2, 0.1, 0.3, -0.2])
    n_blocks = -(-m // d)
    w = P.orthogonal_gaussian(n * n_blocks * d, d, rng)            # n groups of blocks
    t = terms(x, y, w, "positive").reshape(n, n_blocks * d)[:, :m].mean(axis=1)
    err2 = (t - float(P.sm_kernel(x, y))) ** 2
    exact = float(P.mse_orthogonal_exact(x, y, m, d))
    assert abs(err2.mean() - exact) < 6 * err2.std() / math.sqrt(n)
    # and the orthogonal MSE is visibly below the iid one here
    assert exact < 0.95 * float(P.mse_positive(x, y, m))


def test_mse_orthogonal_bound_is_theorem_2_and_holds():
    rng = np.random.default_rng(24)
    x, y = rng.standard_normal((2, 100, 4)) * 0.6
    d = 4
    sm = P.sm_kernel(x, y)
    lam = np.exp(-(np.sum(x * x, -1) + np.sum(y * y, -1)) / 2)
    for m in (1, 2, 4):                                   # m <= d: the paper's formula
        paper = P.mse_positive(x, y, m) - 2 * (m - 1) / (m * (d + 2)) * (sm - lam) ** 2
        np.testing.assert_allclose(P.mse_orthogonal_bound(x, y, m, d), paper, rtol=1e-12)
    for m in (1, 2, 3, 4, 5, 9, 16):
        assert np.all(P.mse_orthogonal_exact(x, y, m, d)
                      <= P.mse_orthogonal_bound(x, y, m, d) * (1 + 1e-12))
    # for m > d the (m-1)/m reduction over-counts pairs and is not a bound
    m, xs, ys = 10, np.full(4, 0.1), np.full(4, 0.05)
    smv = float(P.sm_kernel(xs, ys))
    lamv = math.exp(-(xs @ xs + ys @ ys) / 2)
    paper = float(P.mse_positive(xs, ys, m)) - 2 * (m - 1) / (m * (d + 2)) * (smv - lamv) ** 2
    assert paper < float(P.mse_orthogonal_exact(xs, ys, m, d))


def test_mse_argument_errors():
    x = np.ones(3)
    for f in (P.mse_trig, P.mse_positive, P.mse_hyperbolic, P.mse_orthogonal_exact,
              P.mse_orthogonal_bound, P.variance_moments):
        with pytest.raises(ValueError, match="m: expected an integer >= 1"):
            f(x, x, 0)
        with pytest.raises(TypeError, match="m: expected an integer"):
            f(x, x, 2.0)
        with pytest.raises(ValueError, match="y: expected the shape of x"):
            f(x, np.ones(2), 2)
        with pytest.raises(ValueError, match="x: contains NaN"):
            f(np.array([np.nan, 0, 0]), x, 2)
    with pytest.raises(ValueError, match="d: expected the input dimension"):
        P.mse_orthogonal_exact(x, x, 2, 4)
    with pytest.raises(ValueError, match="d: expected the input dimension"):
        P.mse_orthogonal_bound(x, x, 2, 2)


def test_positive_term_moment():
    x, y = np.array([0.5, -0.2]), np.array([0.1, 0.3])
    assert P.positive_term_moment(x, y, 1) == pytest.approx(float(P.sm_kernel(x, y)),
                                                            rel=1e-14)
    assert P.positive_term_moment(x, y, 0) == 1.0
    # E[T^2] = Var T + (E T)^2 = MSE^+_1 + SM^2
    assert P.positive_term_moment(x, y, 2) == pytest.approx(
        float(P.mse_positive(x, y, 1)) + float(P.sm_kernel(x, y)) ** 2, rel=1e-13)
    s = float(np.sum((x + y) ** 2))
    lam = math.exp(-(x @ x + y @ y) / 2)
    assert P.positive_term_moment(x, y, 2.5) == pytest.approx(
        lam ** 2.5 * math.exp(2.5 ** 2 * s / 2), rel=1e-14)
    with pytest.raises(TypeError, match="k: expected a real number"):
        P.positive_term_moment(x, y, "2")
    with pytest.raises(TypeError, match="k: expected a real number"):
        P.positive_term_moment(x, y, True)
    with pytest.raises(ValueError, match="k: expected a finite number"):
        P.positive_term_moment(x, y, math.inf)


def test_variance_moments_against_raw_moments():
    x, y = np.array([0.5, -0.2, 0.1]), np.array([0.1, 0.3, 0.4])
    raw = {k: float(P.positive_term_moment(x, y, k)) for k in range(1, 5)}
    mu = raw[1]
    var = raw[2] - mu ** 2
    mu4 = raw[4] - 4 * raw[3] * mu + 6 * raw[2] * mu ** 2 - 3 * mu ** 4
    for m in (1, 3):
        mom = P.variance_moments(x, y, m)
        assert mom.mean == pytest.approx(mu, rel=1e-14)
        assert mom.mse == pytest.approx(var / m, rel=1e-12)
        assert mom.mse == pytest.approx(float(P.mse_positive(x, y, m)), rel=1e-12)
        fourth = (mu4 + 3 * (m - 1) * var ** 2) / m ** 3
        assert mom.fourth_central_moment == pytest.approx(fourth, rel=1e-9)
        assert mom.squared_error_variance == pytest.approx(fourth - (var / m) ** 2,
                                                           rel=1e-9)
    tiny = P.variance_moments(np.full(2, 1e-9), np.full(2, 1e-9), 2)
    assert tiny.squared_error_variance > 0            # expanded form, no cancellation


# --------------------------------------------------------------------------
# FAVOR+
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("causal", [False, True])
def test_favor_matches_explicit(kind, causal):
    rng = np.random.default_rng(30)
    q, k, v = qkv(rng)
    w = P.orthogonal_gaussian(8, 4, rng)
    fast = P.favor_attention(q, k, v, w, causal=causal, kind=kind, chunk_size=3)
    slow = P.favor_attention_explicit(q, k, v, w, causal=causal, kind=kind)
    assert fast.shape == (2, 3, 7, 5)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_favor_causal_scan_matches_recurrent_and_any_chunk(kind):
    rng = np.random.default_rng(31)
    q, k, v = qkv(rng, shape_lead=(2,), L=11)
    w = P.gaussian_matrix(6, 4, rng)
    rec = P.favor_attention_recurrent(q, k, v, w, kind=kind)
    for chunk in (1, 4, 11, 64):
        scan = P.favor_attention(q, k, v, w, causal=True, kind=kind, chunk_size=chunk)
        np.testing.assert_allclose(scan, rec, rtol=1e-10, atol=1e-12)


def test_favor_bidirectional_hand_value():
    # one key: the output is that key's value, whatever the features
    rng = np.random.default_rng(32)
    q = rng.standard_normal((3, 2))
    k = rng.standard_normal((1, 2))
    v = np.array([[2.0, -1.0]])
    w = P.gaussian_matrix(4, 2, rng)
    for kind in ("positive", "hyperbolic"):
        np.testing.assert_allclose(P.favor_attention(q, k, v, w, kind=kind),
                                   np.repeat(v, 3, axis=0), rtol=1e-14)
    # causal: the first output is always v_0
    q, k, v = qkv(rng, shape_lead=(), L=5)
    out = P.favor_attention(q, k, v, P.gaussian_matrix(4, 4, rng), causal=True)
    np.testing.assert_allclose(out[0], v[0], rtol=1e-14)


def test_favor_bidirectional_is_algorithm_1_by_hand():
    # Q' = phi(Q d^{-1/4}), K' = phi(K d^{-1/4}); out = D^{-1} Q' (K'^T V)
    rng = np.random.default_rng(33)
    d = 4
    q, k, v = qkv(rng, shape_lead=(), L=3, Lk=5, d=d, dv=2)
    w = P.gaussian_matrix(6, d, rng)
    qp = P.random_features(q * d ** -0.25, w)
    kp = P.random_features(k * d ** -0.25, w)
    num = qp @ (kp.T @ v)
    den = qp @ kp.sum(axis=0)
    np.testing.assert_allclose(P.favor_attention(q, k, v, w), num / den[:, None],
                               rtol=1e-13)
    a_hat = np.tril(qp @ kp[:3].T)
    np.testing.assert_allclose(P.favor_attention(q, k[:3], v[:3], w, causal=True),
                               (a_hat @ v[:3]) / a_hat.sum(1)[:, None], rtol=1e-13)


@pytest.mark.parametrize("causal", [False, True])
def test_favor_approximates_softmax_with_many_features(causal):
    rng = np.random.default_rng(34)
    q, k, v = qkv(rng, shape_lead=(2,), L=6, d=4, scale=0.4)
    w = P.orthogonal_gaussian(4096, 4, rng)
    approx = P.favor_attention(q, k, v, w, causal=causal)
    exact = softmax_attention(q, k, v, causal=causal)
    assert np.abs(approx - exact).max() < 0.05


@pytest.mark.parametrize("kind", ("positive", "hyperbolic"))
@pytest.mark.parametrize("causal", [False, True])
def test_stabilizer_cancels(kind, causal):
    rng = np.random.default_rng(35)
    q, k, v = qkv(rng, scale=1.0)
    w = P.orthogonal_gaussian(8, 4, rng)
    ref = P.favor_attention(q, k, v, w, causal=causal, kind=kind, stabilize=False)
    for ks in P.KEY_STABILIZERS:
        out = P.favor_attention(q, k, v, w, causal=causal, kind=kind, key_stabilizer=ks)
        np.testing.assert_allclose(out, ref, rtol=1e-10)
    np.testing.assert_allclose(
        P.favor_attention_explicit(q, k, v, w, causal=causal, kind=kind, stabilize=False),
        ref, rtol=1e-10)


def test_stabilizer_prevents_underflow_to_zero():
    # large inputs: every unstabilised feature underflows and D = 0 (output 0);
    # the stabilised features keep the information
    rng = np.random.default_rng(36)
    q, k, v = qkv(rng, shape_lead=(), L=6, scale=30.0, dtype=np.float32)
    w = P.gaussian_matrix(8, 4, rng, dtype=np.float32)
    raw = P.favor_attention(q, k, v, w, stabilize=False)
    np.testing.assert_array_equal(raw, 0.0)
    bi = P.favor_attention(q, k, v, w)
    causal = P.favor_attention(q, k, v, w, causal=True)
    rec = P.favor_attention_recurrent(q, k, v, w)
    for out in (bi, causal, rec):
        assert out.dtype == np.float32 and np.all(np.isfinite(out))
        assert np.all(np.abs(out).sum(axis=-1) > 0)
    np.testing.assert_allclose(causal, rec, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bi, P.favor_attention_explicit(q, k, v, w),
                               rtol=1e-4, atol=1e-5)


def test_per_key_stabilizer_is_exactly_causal_and_sequence_is_not():
    rng = np.random.default_rng(37)
    L, i = 9, 4
    q, k, v = qkv(rng, shape_lead=(), L=L, scale=1.0)
    w = P.orthogonal_gaussian(8, 4, rng)
    k2, v2 = k.copy(), v.copy()
    k2[i + 1:] = k2[i + 1:] * 6.0 + 1.0               # edit only future keys
    v2[i + 1:] = -v2[i + 1:]
    for chunk in (1, 3, 64):
        a = P.favor_attention(q, k, v, w, causal=True, chunk_size=chunk)
        b = P.favor_attention(q, k2, v2, w, causal=True, chunk_size=chunk)
        np.testing.assert_array_equal(a[:i + 1], b[:i + 1])     # bit-for-bit
        assert not np.allclose(a[i + 1:], b[i + 1:])
    rec_a = P.favor_attention_recurrent(q, k, v, w)
    rec_b = P.favor_attention_recurrent(q, k2, v2, w)
    np.testing.assert_array_equal(rec_a[:i + 1], rec_b[:i + 1])
    # "sequence": a future key aligned with a row of w raises the shared max C
    k3 = k.copy()
    r = int(np.argmax(np.linalg.norm(w, axis=1)))
    k3[-1] = w[r] * 4 ** 0.25                         # scaled key = w_r: exponent ||w_r||^2/2
    big_c = P.feature_max_stabilizer(k3 * 4 ** -0.25, w, over="sequence")
    assert big_c > P.feature_max_stabilizer(k * 4 ** -0.25, w, over="sequence")
    seq_a = P.favor_attention(q, k, v, w, causal=True, key_stabilizer="sequence")
    seq_b = P.favor_attention(q, k3, v, w, causal=True, key_stabilizer="sequence")
    assert np.any(seq_a[:i + 1] != seq_b[:i + 1])   # future keys leak through rounding
    np.testing.assert_allclose(seq_a[:i + 1], seq_b[:i + 1], rtol=1e-8)
    per_b = P.favor_attention(q, k3, v, w, causal=True)
    np.testing.assert_array_equal(P.favor_attention(q, k, v, w, causal=True)[:L - 1],
                                  per_b[:L - 1])


def test_sequence_stabilizer_underflow_leak_is_large_in_float32():
    # d = 2, W = 8 I. Scaled past key (-6, -6): exponent -84; scaled future key
    # (8, 0): exponent 32 = C. exp(-84 - 32) underflows in float32, so with the
    # per-sequence max the first output collapses to 0 instead of v_0.
    d = 2
    w = 8.0 * np.eye(d, dtype=np.float32)
    up = np.float32(d ** 0.25)
    k = np.array([[-6.0, -6.0], [8.0, 0.0]], dtype=np.float32) * up
    q = np.array([[0.1, 0.2], [0.3, -0.1]], dtype=np.float32)
    v = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    good = P.favor_attention(q, k, v, w, causal=True)
    bad = P.favor_attention(q, k, v, w, causal=True, key_stabilizer="sequence")
    np.testing.assert_allclose(good[0], v[0], rtol=1e-6)
    np.testing.assert_array_equal(bad[0], 0.0)
    np.testing.assert_allclose(good[1], bad[1], rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_favor_key_padding_mask(causal):
    rng = np.random.default_rng(39)
    q, k, v = qkv(rng, shape_lead=(2,), L=6)
    w = P.orthogonal_gaussian(8, 4, rng)
    mask = np.array([[True] * 6, [True, False, True, True, False, True]])
    out = P.favor_attention(q, k, v, w, causal=causal, mask=mask, chunk_size=4)
    np.testing.assert_allclose(
        out, P.favor_attention_explicit(q, k, v, w, causal=causal, mask=mask),
        rtol=1e-10)
    # padded keys contribute nothing: changing them changes nothing
    k2, v2 = k.copy(), v.copy()
    k2[1, [1, 4]] = 50.0
    v2[1, [1, 4]] = 1e6
    np.testing.assert_allclose(
        P.favor_attention(q, k2, v2, w, causal=causal, mask=mask, chunk_size=4), out,
        rtol=1e-12)
    if not causal:
        keep = mask[1]
        np.testing.assert_allclose(out[1], P.favor_attention(q[1], k[1, keep], v[1, keep], w),
                                   rtol=1e-12)


def test_favor_fully_masked_rows_are_zero_not_nan():
    rng = np.random.default_rng(40)
    q, k, v = qkv(rng, shape_lead=(2,), L=5)
    w = P.gaussian_matrix(4, 4, rng)
    mask = np.array([[False] * 5, [False, False, True, True, True]])
    for causal in (False, True):
        out = P.favor_attention(q, k, v, w, causal=causal, mask=mask)
        assert np.all(np.isfinite(out))
        np.testing.assert_array_equal(out[0], 0.0)
        if causal:
            np.testing.assert_array_equal(out[1, :2], 0.0)
        exp = P.favor_attention_explicit(q, k, v, w, causal=causal, mask=mask)
        np.testing.assert_allclose(out, exp, rtol=1e-10, atol=1e-300)


def test_favor_mask_broadcasts_over_heads():
    rng = np.random.default_rng(41)
    q, k, v = qkv(rng, shape_lead=(2, 3), L=5)
    w = P.gaussian_matrix(4, 4, rng)
    mask = rng.random((2, 1, 5)) > 0.3
    mask[..., 0] = True
    full = np.broadcast_to(mask, (2, 3, 5))
    np.testing.assert_array_equal(P.favor_attention(q, k, v, w, mask=mask),
                                  P.favor_attention(q, k, v, w, mask=full))


def test_favor_cross_attention_shapes_and_dtypes():
    rng = np.random.default_rng(42)
    q, k, v = qkv(rng, shape_lead=(3,), L=4, Lk=9, dv=2)
    w = P.gaussian_matrix(5, 4, rng)
    assert P.favor_attention(q, k, v, w).shape == (3, 4, 2)
    q32, k32, v32 = (a.astype(np.float32) for a in (q, k, v))
    w32 = w.astype(np.float32)
    for kind in KINDS:
        out32 = P.favor_attention(q32, k32, v32, w32, kind=kind)
        assert out32.dtype == np.float32
        np.testing.assert_allclose(out32, P.favor_attention(q, k, v, w, kind=kind),
                                   rtol=2e-4, atol=2e-5)
    assert P.favor_attention(q32, k32, v32, w).dtype == np.float64
    q32s, k32s, v32s = (a[:, :4] for a in (q32, k32, v32))
    assert P.favor_attention(q32s, k32s, v32s, w32, causal=True).dtype == np.float32
    assert P.favor_attention_recurrent(q32s, k32s, v32s, w32).dtype == np.float32
    assert P.favor_attention_explicit(q32, k32, v32, w32).dtype == np.float32


def test_favor_errors():
    rng = np.random.default_rng(43)
    q, k, v = qkv(rng, shape_lead=(2,), L=5)
    w = P.gaussian_matrix(4, 4, rng)
    fns = (P.favor_attention, P.favor_attention_explicit)
    for f in fns + (P.favor_attention_recurrent,):
        with pytest.raises(ValueError, match="k: the head dimension d must match q"):
            f(q, k[..., :3], v, w)
        with pytest.raises(ValueError, match="v: the key length Lk must match k"):
            f(q, k, v[:, :4], w)
        with pytest.raises(ValueError, match="leading"):
            f(q, k[:1], v[:1], w)
        with pytest.raises(ValueError, match="w: expected the input dimension d"):
            f(q, k, v, w[:, :3])
        with pytest.raises(ValueError, match="w: expected a 2-d array"):
            f(q, k, v, w[0])
        with pytest.raises(ValueError, match="q: expected at least 2 dimensions"):
            f(q[0, 0], k, v, w)
        q_nan = q.copy()
        q_nan[0, 0, 0] = np.nan
        with pytest.raises(ValueError, match="q: contains NaN"):
            f(q_nan, k, v, w)
        with pytest.raises(TypeError, match="v: expected dtype"):
            f(q, k, v.astype(np.complex64), w)
        with pytest.raises(ValueError, match="kind"):
            f(q, k, v, w, kind="relu")
    with pytest.raises(ValueError, match="causal FAVOR\\+ needs Lq == Lk"):
        P.favor_attention_recurrent(q, k[:, :4], v[:, :4], w)
    for f in fns:
        with pytest.raises(ValueError, match="causal FAVOR\\+ needs Lq == Lk"):
            f(q, k[:, :4], v[:, :4], w, causal=True)
        with pytest.raises(TypeError, match="causal: expected a bool"):
            f(q, k, v, w, causal="yes")
        with pytest.raises(TypeError, match="stabilize: expected a bool"):
            f(q, k, v, w, stabilize=1)
        with pytest.raises(TypeError, match="mask: expected dtype bool"):
            f(q, k, v, w, mask=np.ones((2, 5)))
        with pytest.raises(ValueError, match="mask: expected a key-padding mask"):
            f(q, k, v, w, mask=np.ones((2, 4), dtype=bool))
        with pytest.raises(ValueError, match="mask: expected a key-padding mask"):
            f(q, k, v, w, mask=np.array(True))
        with pytest.raises(ValueError, match="mask: expected a shape broadcastable"):
            f(q, k, v, w, mask=np.ones((3, 5), dtype=bool))
        with pytest.raises(ValueError, match="q, k: expected at least one"):
            f(q[:, :0], k, v, w)
    with pytest.raises(ValueError, match="key_stabilizer"):
        P.favor_attention(q, k, v, w, key_stabilizer="global")
    with pytest.raises(ValueError, match="chunk_size: expected an integer >= 1"):
        P.favor_attention(q, k, v, w, causal=True, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size: expected an integer"):
        P.favor_attention(q, k, v, w, causal=True, chunk_size=2.0)
