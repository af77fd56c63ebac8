"""Unit tests for transformer_theory.impl.layers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from seeded import rng

from transformer_theory.impl import layers as L
from transformer_theory.impl.layers import (
    ACTIVATIONS,
    FFNParams,
    LayerNormParams,
    batch_norm,
    feed_forward,
    gelu,
    get_activation,
    init_ffn,
    init_layer_norm,
    layer_norm,
    relu,
    residual,
    sigmoid,
    tanh,
)

ACT_FUNCS = [sigmoid, tanh, relu, gelu]


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------

def test_sigmoid_known_values():
    x = np.array([0.0, math.log(3.0), -math.log(3.0)])
    np.testing.assert_allclose(sigmoid(x), [0.5, 0.75, 0.25], rtol=1e-15)


def test_sigmoid_extremes_without_floating_point_errors():
    x = np.array([-1e308, -1000.0, -50.0, 50.0, 1000.0, 1e308])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = sigmoid(x)
    assert np.all(np.isfinite(y))
    assert y[0] == 0.0 and y[-1] == 1.0
    np.testing.assert_allclose(y[2], math.exp(-50.0) / (1 + math.exp(-50.0)), rtol=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y32 = sigmoid(np.array([-3e38, 3e38, -100.0], dtype=np.float32))
    assert y32.dtype == np.float32
    assert list(y32[:2]) == [0.0, 1.0]


def test_sigmoid_symmetry():
    x = rng().normal(scale=10, size=100)
    np.testing.assert_allclose(sigmoid(x) + sigmoid(-x), 1.0, rtol=1e-15)


def test_tanh_is_rescaled_sigmoid():
    # seed 002: tanh is a "resized version of sigmoid": tanh(x) = 2 sigmoid(2x) - 1.
    x = np.linspace(-5, 5, 41)
    np.testing.assert_allclose(tanh(x), 2 * sigmoid(2 * x) - 1, atol=1e-15)
    np.testing.assert_allclose(tanh(np.array([0.0, 1.0])), [0.0, math.tanh(1.0)], rtol=1e-15)


def test_relu_values():
    np.testing.assert_array_equal(relu(np.array([-2.0, -0.0, 0.0, 3.5])), [0.0, 0.0, 0.0, 3.5])


def test_gelu_exact_known_values():
    # GELU(x) = x * Phi(x); Phi(1) = 0.841344746068543, Phi(-1) = 0.158655253931457
    y = gelu(np.array([0.0, 1.0, -1.0, 2.0]))
    np.testing.assert_allclose(
        y, [0.0, 0.841344746068543, -0.158655253931457, 2 * 0.977249868051821], rtol=1e-13)


def test_gelu_odd_part_identity():
    # Phi(-x) = 1 - Phi(x) gives GELU(x) - GELU(-x) = x.
    x = rng(1).normal(scale=3, size=50)
    for approximate in ("none", "tanh"):
        np.testing.assert_allclose(
            gelu(x, approximate=approximate) - gelu(-x, approximate=approximate), x,
            atol=1e-12)


def test_gelu_tanh_approximation_close_to_exact():
    x = np.linspace(-6, 6, 241)
    approx = gelu(x, approximate="tanh")
    exact = gelu(x)
    assert np.max(np.abs(approx - exact)) < 1e-3
    # hand value: 0.5 * (1 + tanh(sqrt(2/pi) * (1 + 0.044715)))
    np.testing.assert_allclose(
        approx[x == 1.0], 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715)), rtol=1e-15)


def test_gelu_tanh_large_inputs_no_warning():
    x = np.array([-3e37, -1e20, 1e20, 3e37], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = gelu(x, approximate="tanh")
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [0.0, 0.0, x[2], x[3]])


@pytest.mark.parametrize("f", ACT_FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_shape_and_dtype(f, dtype):
    x = rng().normal(size=(2, 3, 4)).astype(dtype)
    y = f(x)
    assert y.shape == x.shape and y.dtype == dtype


@pytest.mark.parametrize("f", ACT_FUNCS)
def test_activation_scalar_and_int_input(f):
    y = f(1)
    assert y.shape == () and y.dtype == np.float64
    assert float(f(np.float32(0.0))) == pytest.approx(0.5 if f is sigmoid else 0.0)


@pytest.mark.parametrize("f", ACT_FUNCS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_activation_rejects_non_finite(f, bad):
    with pytest.raises(ValueError, match="x: contains NaN"):
        f(np.array([0.0, bad]))


@pytest.mark.parametrize("f", ACT_FUNCS)
@pytest.mark.parametrize("bad", [np.array([1 + 1j]), np.array([1.0], dtype=np.float16),
                                 np.array(["a"])])
def test_activation_rejects_bad_dtype(f, bad):
    with pytest.raises(TypeError, match="x: expected dtype float32 or float64"):
        f(bad)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        gelu(np.zeros(3), approximate="erf")


def test_activation_registry():
    assert set(ACTIVATIONS) == {"relu", "gelu", "tanh", "sigmoid"}
    for name, f in ACTIVATIONS.items():
        assert get_activation(name) is f
    assert get_activation("relu") is relu


def test_get_activation_errors():
    with pytest.raises(ValueError, match="name: expected one of"):
        get_activation("swish")
    with pytest.raises(TypeError, match="name: expected an activation name"):
        get_activation(None)


# ---------------------------------------------------------------------------
# layer norm
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_layer_norm(dtype):
    p = init_layer_norm(5, dtype=dtype)
    assert isinstance(p, LayerNormParams)
    np.testing.assert_array_equal(p.gamma, np.ones(5))
    np.testing.assert_array_equal(p.beta, np.zeros(5))
    assert p.gamma.dtype == dtype and p.beta.dtype == dtype


def test_init_layer_norm_errors():
    with pytest.raises(ValueError, match="d_model"):
        init_layer_norm(0)
    with pytest.raises(TypeError, match="d_model"):
        init_layer_norm(2.0)
    with pytest.raises(TypeError, match="dtype"):
        init_layer_norm(3, dtype=np.int64)
    with pytest.raises(TypeError, match="dtype"):
        init_layer_norm(3, dtype="not a dtype")


def test_layer_norm_hand_computed():
    # row [1, 2, 3, 4]: mean 2.5, biased var 1.25
    x = np.array([[1.0, 2.0, 3.0, 4.0]])
    expected = np.array([[-1.5, -0.5, 0.5, 1.5]]) / math.sqrt(1.25)
    np.testing.assert_allclose(layer_norm(x, eps=0.0), expected, rtol=1e-14)
    np.testing.assert_allclose(
        layer_norm(x), np.array([[-1.5, -0.5, 0.5, 1.5]]) / math.sqrt(1.25 + 1e-5), rtol=1e-14)
    gamma = np.array([1.0, 2.0, 3.0, 4.0])
    beta = np.array([0.5, 0.0, -0.5, 1.0])
    np.testing.assert_allclose(
        layer_norm(x, gamma, beta, eps=0.0), expected * gamma + beta, rtol=1e-14)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_layer_norm_mean_zero_var_one(dtype, rtol):
    x = (rng(2).normal(size=(3, 5, 16)) * 7 + 3).astype(dtype)
    y = layer_norm(x, eps=0.0)
    assert y.shape == x.shape and y.dtype == dtype
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=10 * rtol)
    np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=10 * rtol)


def test_layer_norm_matches_textbook_formula():
    x = rng(3).normal(size=(4, 6, 10))
    g, b = rng(4).normal(size=10), rng(5).normal(size=10)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-3) * g + b
    np.testing.assert_allclose(layer_norm(x, g, b, eps=1e-3), expected, rtol=1e-12, atol=1e-13)


def test_layer_norm_eps_reduces_variance():
    x = rng(6).normal(size=(8, 4))
    var = x.var(axis=-1)
    y = layer_norm(x, eps=0.5)
    np.testing.assert_allclose(y.var(axis=-1), var / (var + 0.5), rtol=1e-12)


def test_layer_norm_constant_rows():
    x = np.array([[0.1, 0.1, 0.1, 0.1], [2.0, 2.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0]],
                 dtype=np.float32)
    beta = np.array([1.0, -1.0, 0.0, 2.0], dtype=np.float32)
    y = layer_norm(x, beta=beta, eps=0.0)
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(y[:2], np.stack([beta, beta]))
    np.testing.assert_array_equal(layer_norm(x[:2])[:2], 0.0)


def test_layer_norm_single_feature_is_zero():
    np.testing.assert_array_equal(layer_norm(np.array([[3.0], [-2.0]]), eps=0.0), 0.0)


def test_layer_norm_extreme_magnitudes_float32():
    expected = np.array([math.sqrt(2), -math.sqrt(2), 0.0, 0.0])
    for scale in (3e38, 1e-30, 1e-44):
        x = np.array([scale, -scale, 0.0, 0.0], dtype=np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = layer_norm(x, eps=0.0)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, expected, rtol=1e-6)
    # with eps > 0, tiny rows are essentially zero: |x|/sqrt(eps)
    y = layer_norm(np.array([1e-30, -1e-30, 0.0, 0.0], dtype=np.float32))
    np.testing.assert_allclose(y, 0.0, atol=1e-25)


def test_layer_norm_dtype_promotion():
    x32 = rng().normal(size=(2, 4)).astype(np.float32)
    g32 = np.ones(4, dtype=np.float32)
    assert layer_norm(x32).dtype == np.float32
    assert layer_norm(x32, g32, g32).dtype == np.float32
    assert layer_norm(x32, np.ones(4)).dtype == np.float64
    assert layer_norm(x32, beta=np.zeros(4)).dtype == np.float64
    assert layer_norm(x32.astype(np.float64), g32).dtype == np.float64


def test_layer_norm_1d_input():
    y = layer_norm(np.array([1.0, 3.0]), eps=0.0)
    np.testing.assert_allclose(y, [-1.0, 1.0])


def test_layer_norm_errors():
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match="gamma: expected d_model"):
        layer_norm(x, np.ones(3))
    with pytest.raises(ValueError, match="beta: expected d_model"):
        layer_norm(x, None, np.ones(5))
    with pytest.raises(ValueError, match="gamma: expected a 1-d array"):
        layer_norm(x, np.ones((1, 4)))
    with pytest.raises(ValueError, match="x: expected at least 1 dimensions"):
        layer_norm(np.float64(1.0))
    with pytest.raises(ValueError, match="x: contains NaN"):
        layer_norm(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="gamma: contains NaN"):
        layer_norm(x, np.array([1.0, 1.0, np.inf, 1.0]))
    with pytest.raises(TypeError, match="x: expected dtype"):
        layer_norm(np.ones((2, 2), dtype=np.complex128))
    with pytest.raises(ValueError, match="eps"):
        layer_norm(x, eps=-1e-5)
    with pytest.raises(ValueError, match="eps"):
        layer_norm(x, eps=float("nan"))
    with pytest.raises(ValueError, match="eps"):
        layer_norm(x, eps=float("inf"))
    with pytest.raises(TypeError, match="eps"):
        layer_norm(x, eps="1e-5")
    with pytest.raises(TypeError, match="eps"):
        layer_norm(x, eps=True)


# ---------------------------------------------------------------------------
# batch norm
# ---------------------------------------------------------------------------

def test_batch_norm_hand_computed():
    # feature 0 over the batch: [1, 3] -> mean 2, var 1; feature 1: [0, 0] -> constant
    x = np.array([[1.0, 0.0], [3.0, 0.0]])
    np.testing.assert_allclose(batch_norm(x, eps=0.0), [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(
        batch_norm(x, np.array([2.0, 1.0]), np.array([0.0, 5.0]), eps=0.0),
        [[-2.0, 5.0], [2.0, 5.0]])
    np.testing.assert_allclose(batch_norm(x)[:, 0], [-1, 1] / np.sqrt(1 + 1e-5))


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_batch_norm_statistics_over_batch_and_positions(dtype, tol):
    x = (rng(7).normal(size=(4, 6, 5)) * 3 - 2).astype(dtype)
    y = batch_norm(x, eps=0.0)
    assert y.shape == x.shape and y.dtype == dtype
    np.testing.assert_allclose(y.mean(axis=(0, 1)), 0.0, atol=10 * tol)
    np.testing.assert_allclose(y.var(axis=(0, 1)), 1.0, rtol=10 * tol)


def test_batch_norm_matches_textbook_formula():
    x = rng(8).normal(size=(3, 7, 4))
    mean = x.mean(axis=(0, 1))
    var = x.var(axis=(0, 1))
    np.testing.assert_allclose(batch_norm(x), (x - mean) / np.sqrt(var + 1e-5), rtol=1e-12,
                               atol=1e-13)


def test_batch_norm_vs_layer_norm():
    # On a 2-d (samples, features) array, batch norm is layer norm of the transpose.
    x = rng(9).normal(size=(5, 3))
    np.testing.assert_allclose(batch_norm(x), layer_norm(x.T).T, rtol=1e-13)
    assert not np.allclose(batch_norm(x), layer_norm(x))


def test_batch_norm_dtype_promotion():
    x32 = rng().normal(size=(3, 2)).astype(np.float32)
    assert batch_norm(x32).dtype == np.float32
    assert batch_norm(x32, np.ones(2)).dtype == np.float64


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="x: expected at least 2 dimensions"):
        batch_norm(np.ones(4))
    with pytest.raises(ValueError, match="gamma: expected d_model"):
        batch_norm(np.zeros((2, 4)), np.ones(2))
    with pytest.raises(ValueError, match="beta: expected d_model"):
        batch_norm(np.zeros((2, 4)), beta=np.ones(5))
    with pytest.raises(ValueError, match="x: contains NaN"):
        batch_norm(np.array([[np.inf, 1.0]]))
    with pytest.raises(ValueError, match="eps"):
        batch_norm(np.zeros((2, 4)), eps=-1.0)


# ---------------------------------------------------------------------------
# feed-forward network
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_ffn_shapes_and_dtypes(dtype):
    p = init_ffn(4, 16, rng(), dtype=dtype)
    assert isinstance(p, FFNParams)
    assert p.w1.shape == (4, 16) and p.b1.shape == (16,)
    assert p.w2.shape == (16, 4) and p.b2.shape == (4,)
    for a in (p.w1, p.b1, p.w2, p.b2):
        assert a.dtype == dtype
    assert np.all(p.b1 != 0) and np.all(p.b2 != 0)
    assert np.max(np.abs(p.b1)) < 1.0


def test_init_ffn_deterministic_and_bias_independent():
    a = init_ffn(3, 5, rng(42))
    b = init_ffn(3, 5, rng(42))
    c = init_ffn(3, 5, rng(42), bias=False)
    for name in ("w1", "b1", "w2", "b2"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert c.b1 is None and c.b2 is None
    np.testing.assert_array_equal(a.w1, c.w1)
    np.testing.assert_array_equal(a.w2, c.w2)
    f32 = init_ffn(3, 5, rng(42), dtype=np.float32)
    np.testing.assert_array_equal(f32.w1, a.w1.astype(np.float32))


def test_init_ffn_fan_in_scale():
    p = init_ffn(64, 256, rng(3))
    # 16384 draws each: relative error of the std estimate ~ 0.6 %, tolerance 5 %
    assert p.w1.std() == pytest.approx(1 / 8, rel=0.05)
    assert p.w2.std() == pytest.approx(1 / 16, rel=0.05)


def test_init_ffn_errors():
    with pytest.raises(TypeError, match="rng"):
        init_ffn(2, 3, 0)
    with pytest.raises(TypeError, match="rng"):
        init_ffn(2, 3, np.random.RandomState(0))
    with pytest.raises(ValueError, match="d_model"):
        init_ffn(0, 3, rng())
    with pytest.raises(ValueError, match="d_ff"):
        init_ffn(2, -1, rng())
    with pytest.raises(TypeError, match="d_ff"):
        init_ffn(2, 3.0, rng())
    with pytest.raises(TypeError, match="bias"):
        init_ffn(2, 3, rng(), bias=1)
    with pytest.raises(TypeError, match="dtype"):
        init_ffn(2, 3, rng(), dtype=np.longdouble)


def _hand_params():
    # E = 2, F = 3
    w1 = np.array([[1.0, -1.0, 0.5], [2.0, 0.0, -1.0]])
    b1 = np.array([0.0, 1.0, -0.5])
    w2 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b2 = np.array([0.25, -0.25])
    return FFNParams(w1, b1, w2, b2)


def test_feed_forward_hand_computed():
    p = _hand_params()
    x = np.array([1.0, 1.0])
    # x W1 + b1 = [3, -1, -0.5] + [0, 1, -0.5] = [3, 0, -1]; relu -> [3, 0, 0]
    # [3, 0, 0] W2 + b2 = [3, 0] + [0.25, -0.25]
    np.testing.assert_allclose(feed_forward(x, p), [3.25, -0.25])
    # tanh activation: [tanh 3, 0, tanh(-1)] W2 + b2
    t3, tm1 = math.tanh(3.0), math.tanh(-1.0)
    np.testing.assert_allclose(feed_forward(x, p, activation="tanh"),
                               [t3 + tm1 + 0.25, tm1 - 0.25], rtol=1e-14)


def test_feed_forward_is_position_wise():
    p = init_ffn(6, 10, rng(11))
    x = rng(12).normal(size=(2, 5, 6))
    y = feed_forward(x, p, activation="gelu")
    assert y.shape == (2, 5, 6)
    for b in range(2):
        for i in range(5):
            h = gelu(x[b, i] @ p.w1 + p.b1)
            np.testing.assert_allclose(y[b, i], h @ p.w2 + p.b2, rtol=1e-12)


def test_feed_forward_without_biases_and_callable_activation():
    p = init_ffn(3, 4, rng(5), bias=False)
    x = rng(6).normal(size=(4, 3))
    np.testing.assert_allclose(feed_forward(x, p, activation=lambda h: h),
                               x @ p.w1 @ p.w2, rtol=1e-12)
    np.testing.assert_allclose(feed_forward(x, p, activation="sigmoid"),
                               sigmoid(x @ p.w1) @ p.w2, rtol=1e-12)


def test_feed_forward_biases_matter():
    p = init_ffn(3, 4, rng(5))
    q = init_ffn(3, 4, rng(5), bias=False)
    x = rng(6).normal(size=(4, 3))
    assert not np.allclose(feed_forward(x, p), feed_forward(x, q))


def test_feed_forward_dtypes():
    p32 = init_ffn(3, 4, rng(), dtype=np.float32)
    p64 = init_ffn(3, 4, rng())
    x32 = rng().normal(size=(2, 3)).astype(np.float32)
    assert feed_forward(x32, p32).dtype == np.float32
    assert feed_forward(x32, p64).dtype == np.float64
    assert feed_forward(x32.astype(np.float64), p32).dtype == np.float64
    mixed = FFNParams(p32.w1, p32.b1, p32.w2, p64.b2)
    assert feed_forward(x32, mixed).dtype == np.float64


def test_feed_forward_errors():
    p = _hand_params()
    x = np.ones((3, 2))
    with pytest.raises(TypeError, match="params: expected FFNParams"):
        feed_forward(x, (p.w1, p.b1, p.w2, p.b2))
    with pytest.raises(ValueError, match="params.w1: expected d_model"):
        feed_forward(np.ones((3, 4)), p)
    with pytest.raises(ValueError, match=r"params.w2: expected shape \(d_ff, d_model\)"):
        feed_forward(x, FFNParams(p.w1, p.b1, p.w2.T, p.b2))
    with pytest.raises(ValueError, match="params.w1: expected a 2-d array"):
        feed_forward(x, FFNParams(p.w1[None], p.b1, p.w2, p.b2))
    with pytest.raises(ValueError, match="params.b1: expected d_ff"):
        feed_forward(x, FFNParams(p.w1, np.ones(2), p.w2, p.b2))
    with pytest.raises(ValueError, match="params.b2: expected d_model"):
        feed_forward(x, FFNParams(p.w1, p.b1, p.w2, np.ones(3)))
    with pytest.raises(ValueError, match="params.b2: expected a 1-d array"):
        feed_forward(x, FFNParams(p.w1, p.b1, p.w2, np.ones((1, 2))))
    with pytest.raises(ValueError, match="params.w2: contains NaN"):
        feed_forward(x, FFNParams(p.w1, p.b1, np.full((3, 2), np.nan), p.b2))
    with pytest.raises(ValueError, match="x: contains NaN"):
        feed_forward(np.array([np.nan, 1.0]), p)
    with pytest.raises(ValueError, match="activation|name"):
        feed_forward(x, p, activation="softplus")
    with pytest.raises(TypeError, match="name"):
        feed_forward(x, p, activation=3)
    with pytest.raises(ValueError, match="x: expected at least 1 dimensions"):
        feed_forward(np.float64(1.0), p)


# ---------------------------------------------------------------------------
# residual
# ---------------------------------------------------------------------------

def test_residual_values_and_dtype():
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    y = np.array([[0.5, -2.0]], dtype=np.float32)
    out = residual(x, y)
    np.testing.assert_array_equal(out, [[1.5, 0.0]])
    assert out.dtype == np.float32
    assert residual(x, y.astype(np.float64)).dtype == np.float64


def test_residual_no_broadcasting():
    with pytest.raises(ValueError, match="y: expected the same shape as x"):
        residual(np.ones((3, 4)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="y: expected the same shape as x"):
        residual(np.ones((2, 3, 4)), np.ones((3, 4)))


def test_residual_rejects_bad_input():
    with pytest.raises(ValueError, match="x: contains NaN"):
        residual(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(ValueError, match="y: contains NaN"):
        residual(np.array([1.0]), np.array([np.inf]))
    with pytest.raises(TypeError, match="y: expected dtype"):
        residual(np.array([1.0]), np.array([1j]))


def test_module_exports():
    for name in L.__all__:
        assert hasattr(L, name)


@pytest.mark.parametrize("shape", [(2, 0), (0, 3), (0, 0)])
def test_norms_of_empty_inputs_are_empty(shape):
    from transformer_theory.impl import layers as ref

    for f in (ref.layer_norm, ref.rms_norm, ref.batch_norm):
        out = f(np.ones(shape, dtype=np.float32))
        assert out.shape == shape and out.dtype == np.float32
