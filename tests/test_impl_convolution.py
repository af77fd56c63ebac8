"""Unit tests for transformer_theory.impl.constructions.convolution."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mutants.convolution import conv1d_anchor_off_by_one
from scipy import signal
from seeded import rng

from transformer_theory.impl.attention import attention, hard_attention
from transformer_theory.impl.constructions import convolution as CV


def test_kernel_shifts_known_values():
    assert CV.kernel_shifts(1).tolist() == [0]
    assert CV.kernel_shifts(2).tolist() == [0, 1]
    assert CV.kernel_shifts(3).tolist() == [-1, 0, 1]
    assert CV.kernel_shifts(4).tolist() == [-1, 0, 1, 2]
    assert CV.kernel_shifts(3, anchor=2).tolist() == [-2, -1, 0]
    assert CV.kernel_shifts(1, anchor=1).tolist() == [-1]


def test_default_alpha_known_value():
    assert CV.default_alpha(11, np.float64) == pytest.approx(math.log(10 / 2.0**-52) + 2)
    assert CV.default_alpha(1, np.float32) == pytest.approx(math.log(1 / 2.0**-23) + 2)


def test_quadratic_scores_by_hand():
    # 3 tokens at 0, 1, 2; one head with Delta = 1, alpha = 2: -2 (d^2 - 2 d)
    s = CV.quadratic_relative_scores(np.arange(3)[:, None], [[1]], 2.0)
    d = np.arange(3)[None, :] - np.arange(3)[:, None]
    assert s.shape == (1, 3, 3)
    np.testing.assert_array_equal(s[0], -2.0 * (d ** 2 - 2 * d))
    # row i is maximal at j = i + 1 where it exists
    assert np.argmax(s[0, 0]) == 1 and np.argmax(s[0, 1]) == 2
    assert np.argmax(s[0, 2]) == 2                  # border: the nearest existing key


def test_quadratic_scores_validation():
    with pytest.raises(ValueError, match="positions, shifts"):
        CV.quadratic_relative_scores(np.zeros((3, 1)), np.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match="alpha"):
        CV.quadratic_relative_scores(np.zeros((3, 1)), np.zeros((2, 1)), -1.0)


def test_identity_kernel_returns_the_input():
    x = rng().standard_normal((7, 2))
    w = np.zeros((2, 2, 3))
    w[:, :, 1] = np.eye(2)                           # centre tap = identity
    np.testing.assert_allclose(CV.conv1d_as_attention(x, w), x, rtol=0, atol=1e-15)


def test_shift_kernel_by_hand():
    x = np.arange(5.0)[:, None]                      # 0, 1, 2, 3, 4
    w = np.array([[[0.0, 0.0, 1.0]]])                # y_i = x_{i+1}
    y = CV.conv1d_as_attention(x, w)[:, 0]
    np.testing.assert_allclose(y, [1, 2, 3, 4, 4], atol=1e-14)        # edge replicated
    yz = CV.conv1d_as_attention(x, w, padding="zeros")[:, 0]
    np.testing.assert_allclose(yz, [1, 2, 3, 4, 0], atol=1e-14)       # zero padded


@pytest.mark.parametrize("width, anchor", [(1, 0), (1, 1), (3, 0), (3, 2), (4, 3), (2, -1)])
def test_anchor_shifts_the_zero_padded_convolution(width, anchor):
    # y_i = sum_k W_k x_{i+k-a}, zero outside: the correlation of x padded by a zeros before
    r = rng(10 + width)
    x = r.standard_normal((9, 2))
    w = r.standard_normal((3, 2, width))
    before, after = max(anchor, 0), max(width - 1 - anchor, 0)
    padded = np.pad(x, [(before, after), (0, 0)])
    ref = CV.correlate1d(padded, w, mode="valid")                       # (before + 9 + after - K + 1, 3)
    start = before - anchor                                             # output i reads padded[i + before - a]
    y = CV.conv1d_as_attention(x, w, padding="zeros", anchor=anchor)
    np.testing.assert_allclose(y, ref[start:start + 9], atol=1e-13)
    y2 = CV.conv2d_as_attention(x[:, None, :], w[..., None], padding="zeros", anchor=(anchor, 0))
    np.testing.assert_allclose(y2[:, 0], y, atol=1e-13)
    centred = CV.conv1d_as_attention(x, w, anchor=(width - 1) // 2)
    np.testing.assert_array_equal(centred, CV.conv1d_as_attention(x, w))


def test_anchor_mutant_is_shifted():
    # the mutant of tests/mutants/convolution.py: one position off in the interior
    x = np.arange(6.0)[:, None]
    w = np.array([[[0.0, 1.0, 0.0]]])                                  # centre tap: identity
    y = conv1d_anchor_off_by_one(x, w, padding="zeros")[:, 0]
    np.testing.assert_allclose(y, [0, 0, 1, 2, 3, 4], atol=1e-14)    # x_{i-1}


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv1d_matches_scipy(width, dtype):
    r = rng(width)
    x = r.standard_normal((12, 3)).astype(dtype)
    w = r.standard_normal((2, 3, width)).astype(dtype)
    y = CV.conv1d_as_attention(x, w)
    assert y.shape == (12, 2) and y.dtype == dtype
    ref = sum(signal.correlate(x[:, c].astype(float), w[0, c].astype(float), mode="valid")
              for c in range(3))
    a = (width - 1) // 2
    tol = 50 * np.finfo(dtype).eps
    np.testing.assert_allclose(y[a:a + ref.size, 0], ref, atol=tol * np.abs(ref).max() + tol)
    np.testing.assert_allclose(y, CV.correlate1d(x, w, mode="same", padding="edge"),
                               atol=tol * 10)
    np.testing.assert_allclose(CV.conv1d_as_attention(x, w, padding="zeros"),
                               CV.correlate1d(x, w, mode="same"), atol=tol * 10)


def test_conv1d_batch_dims_and_hard_attention():
    r = rng(3)
    x = r.standard_normal((2, 3, 9, 2))
    w = r.standard_normal((4, 2, 3))
    y = CV.conv1d_as_attention(x, w)
    assert y.shape == (2, 3, 9, 4)
    np.testing.assert_allclose(y[1, 2], CV.conv1d_as_attention(x[1, 2], w), atol=1e-14)

    def hard(q, k, v, *, bias=None, **kw):
        # hard attention on the bias alone: give it as scores through one-hot features
        b = np.broadcast_to(bias, q.shape[:-1] + (k.shape[-2],))
        w_ = (b == b.max(axis=-1, keepdims=True)).astype(float)
        return (w_ / w_.sum(axis=-1, keepdims=True)) @ v
    np.testing.assert_allclose(CV.conv1d_as_attention(x[0, 0], w, attention=hard),
                               CV.correlate1d(x[0, 0], w, mode="same", padding="edge"),
                               atol=1e-13)


@pytest.mark.parametrize("width", [1, 2, 3])
def test_conv2d_matches_scipy(width):
    r = rng(10 + width)
    x = r.standard_normal((5, 6, 2))
    w = r.standard_normal((3, 2, width, width))
    y = CV.conv2d_as_attention(x, w)
    assert y.shape == (5, 6, 3)
    ref = CV.correlate2d(x, w)
    a = (width - 1) // 2
    np.testing.assert_allclose(y[a:a + ref.shape[0], a:a + ref.shape[1]], ref, atol=1e-13)
    np.testing.assert_allclose(y, CV.correlate2d(x, w, mode="same", padding="edge"), atol=1e-13)
    np.testing.assert_allclose(CV.conv2d_as_attention(x, w, padding="zeros"),
                               CV.correlate2d(x, w, mode="same"), atol=1e-13)
    direct = sum(signal.correlate2d(x[:, :, c], w[0, c], mode="valid") for c in range(2))
    np.testing.assert_allclose(ref[..., 0], direct, atol=1e-13)


def test_conv2d_rectangular_kernel():
    r = rng(5)
    x = r.standard_normal((4, 5, 1))
    w = r.standard_normal((1, 1, 2, 3))
    np.testing.assert_allclose(CV.conv2d_as_attention(x, w, padding="zeros"),
                               CV.correlate2d(x, w, mode="same"), atol=1e-13)


def test_float32_output_only_for_float32_inputs():
    x = np.ones((4, 1), dtype=np.float32)
    assert CV.conv1d_as_attention(x, np.ones((1, 1, 2), dtype=np.float32)).dtype == np.float32
    assert CV.conv1d_as_attention(x, np.ones((1, 1, 2))).dtype == np.float64


def test_influence_and_receptive_field_of_a_stack():
    r = rng(7)
    x = r.standard_normal((21, 1))
    w1, w2 = r.standard_normal((1, 1, 3)), r.standard_normal((1, 1, 3))

    def stack(z):
        return CV.conv1d_as_attention(CV.conv1d_as_attention(z, w1), w2)
    infl = CV.influence(stack, x, 10)
    assert infl.shape == (21,)
    assert CV.receptive_field(stack, x, 10, threshold=1e-12).tolist() == [8, 9, 10, 11, 12]

    def attn(z):
        return attention(z, z, z)
    assert CV.receptive_field(attn, x, 10, threshold=1e-12).size == 21


def test_correlate_reference_known_values():
    x = np.array([[1.0], [2.0], [3.0]])
    w = np.array([[[1.0, 10.0]]])
    np.testing.assert_array_equal(CV.correlate1d(x, w)[:, 0], [21.0, 32.0])
    np.testing.assert_array_equal(CV.correlate1d(x, w, mode="same")[:, 0], [21.0, 32.0, 3.0])
    np.testing.assert_array_equal(CV.correlate1d(x, w, mode="same", padding="edge")[:, 0],
                                  [21.0, 32.0, 33.0])


@pytest.mark.parametrize("call, exc, words", [
    (lambda: CV.conv1d_as_attention(np.ones(3), np.ones((1, 1, 1))), ValueError, "x"),
    (lambda: CV.conv1d_as_attention(np.ones((3, 2)), np.ones((1, 1, 1))), ValueError, "kernel"),
    (lambda: CV.conv1d_as_attention(np.ones((3, 1)), np.ones((1, 1))), ValueError, "kernel"),
    (lambda: CV.conv1d_as_attention(np.ones((3, 1)), np.ones((1, 1, 0))), ValueError, "kernel"),
    (lambda: CV.conv1d_as_attention(np.ones((3, 1), dtype=np.float16), np.ones((1, 1, 1))),
     TypeError, "x"),
    (lambda: CV.conv1d_as_attention(np.full((3, 1), np.nan), np.ones((1, 1, 1))), ValueError, "x"),
    (lambda: CV.conv1d_as_attention(np.ones((3, 1)), np.ones((1, 1, 1)), padding="same"),
     ValueError, "padding"),
    (lambda: CV.conv1d_as_attention(np.ones((3, 1)), np.ones((1, 1, 1)), attention=3),
     TypeError, "attention"),
    (lambda: CV.conv2d_as_attention(np.ones((3, 3)), np.ones((1, 1, 1, 1))), ValueError, "x"),
    (lambda: CV.conv2d_as_attention(np.ones((3, 3, 2)), np.ones((1, 1, 1, 1))), ValueError,
     "kernel"),
    (lambda: CV.correlate1d(np.ones((3, 1)), np.ones((1, 1, 1)), mode="full"), ValueError, "mode"),
    (lambda: CV.correlate2d(np.ones((3, 3, 1)), np.ones((1, 1, 1, 1)), padding="wrap"),
     ValueError, "padding"),
    (lambda: CV.influence(lambda z: z, np.ones((3, 1)), 3), ValueError, "position"),
    (lambda: CV.kernel_shifts(0), ValueError, "width"),
    (lambda: CV.kernel_shifts(3, anchor=1.0), TypeError, "anchor"),
    (lambda: CV.conv1d_as_attention(np.ones((3, 1)), np.ones((1, 1, 1)), anchor="0"),
     TypeError, "anchor"),
    (lambda: CV.conv2d_as_attention(np.ones((3, 3, 1)), np.ones((1, 1, 1, 1)), anchor=0),
     TypeError, "anchor"),
])
def test_validation(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_hard_attention_on_quadratic_scores_picks_the_shift():
    # the same heads with hard attention over positional one-hot features give the exact shift
    positions = np.arange(6)[:, None]
    s = CV.quadratic_relative_scores(positions, [[-1]], 1.0)[0]          # (6, 6)
    v = np.arange(6.0)[:, None]
    out = hard_attention(np.eye(6), s.T, v, scale=1.0)                   # q_i . k_j = s[i, j]
    np.testing.assert_array_equal(out[:, 0], [0, 0, 1, 2, 3, 4])
