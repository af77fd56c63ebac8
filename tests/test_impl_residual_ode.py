"""Unit tests for transformer_theory.impl.residual_ode."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mutants.ode import stack_reseeded_each_layer
from seeded import rng

from transformer_theory.impl import residual_ode as RO
from transformer_theory.impl.layers import FFNParams


def linear_field(a: float, d: int = 1) -> FFNParams:
    """f(x) = a x through the FFN: tanh is odd, so use a tiny first layer and undo its scale.

    With w1 = eps I, w2 = (a / eps) I the field is (a / eps) tanh(eps x) = a x + O(eps^2 x^3).
    """
    eps = 1e-4
    return FFNParams(w1=eps * np.eye(d), b1=np.zeros(d), w2=(a / eps) * np.eye(d), b2=np.zeros(d))


def test_vector_field_known_values():
    p = FFNParams(w1=np.array([[1.0]]), b1=np.array([0.5]), w2=np.array([[2.0]]),
                  b2=np.array([-1.0]))
    np.testing.assert_allclose(RO.vector_field(np.array([0.25]), p), [2 * math.tanh(0.75) - 1])


def test_residual_stack_by_hand():
    # f(x) = b2 = 1 (zero weights): x_L = x_0 + T whatever L
    p = FFNParams(w1=np.zeros((2, 3)), b1=np.zeros(3), w2=np.zeros((3, 2)), b2=np.ones(2))
    np.testing.assert_allclose(RO.residual_stack(np.zeros(2), p, 2.0, 7), [2.0, 2.0])
    # nearly linear field a x: the stack is (1 + aT/L)^L x_0
    lin = linear_field(-0.5)
    np.testing.assert_allclose(RO.residual_stack(np.array([1.0]), lin, 1.0, 4),
                               [(1 - 0.5 / 4) ** 4], rtol=1e-7)


def test_ode_flow_of_a_linear_field():
    lin = linear_field(-0.5)
    np.testing.assert_allclose(RO.ode_flow(np.array([1.0]), lin, 2.0), [math.exp(-1.0)],
                               rtol=1e-7)


def test_euler_error_is_first_order():
    p = RO.init_vector_field(3, 8, rng(1))
    x0 = rng(2).standard_normal(3)
    errors = RO.euler_errors(x0, p, 1.0, [32, 64, 128, 256])
    ratios = RO.doubling_ratios(errors)
    assert ratios.shape == (3,)
    assert np.all((ratios > 1.8) & (ratios < 2.2))


def test_linear_field_error_matches_the_leading_term():
    # e(L) ~ a^2 T^2 e^{aT} / (2L) (proofs/ode.py, ode.residual_euler)
    a, horizon, depth = -0.5, 1.0, 400
    lin = linear_field(a)
    err = RO.euler_errors(np.array([1.0]), lin, horizon, [depth])[0]
    assert err == pytest.approx(a * a * horizon ** 2 * math.exp(a * horizon) / (2 * depth),
                                rel=0.02)


def test_stack_keeps_float32_and_batch_shape():
    p = RO.init_vector_field(4, 8, rng(3), dtype=np.float32)
    out = RO.residual_stack(np.ones((2, 5, 4), dtype=np.float32), p, 1.0, 3)
    assert out.shape == (2, 5, 4) and out.dtype == np.float32


def test_iid_stack_fluctuations_shrink_like_root_depth():
    diffs = RO.iid_depth_differences(np.ones(32), 1.0, [16, 32, 64], 16, seed=5, realizations=20)
    ratios = diffs[:-1] / diffs[1:]
    assert np.all((ratios > 1.1) & (ratios < 1.75))                    # about sqrt 2
    same = RO.iid_depth_differences(np.ones(8), 1.0, [16, 32, 64], 8, seed=5, realizations=2,
                                    stack=stack_reseeded_each_layer)   # the mutant
    assert np.all(same[:-1] / same[1:] > 1.8)                          # shared weights: about 2
    explicit = RO.iid_depth_differences(np.ones(32), 1.0, [16, 32, 64], 16, seed=5,
                                        realizations=20, stack=RO.residual_stack_iid)
    np.testing.assert_array_equal(explicit, diffs)


def test_iid_stack_is_reproducible_and_uses_fresh_weights():
    a = RO.residual_stack_iid(np.ones(4), 1.0, 5, 8, rng(7))
    b = RO.residual_stack_iid(np.ones(4), 1.0, 5, 8, rng(7))
    c = RO.residual_stack_iid(np.ones(4), 1.0, 5, 8, rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    s = RO.residual_stack_iid(np.ones(4), 1.0, 5, 8, rng(7), scaling="1/sqrt(L)")
    assert s.shape == (4,)


def test_custom_feed_forward_is_used():
    calls = []
    from transformer_theory.impl.layers import feed_forward

    def ffn(x, p, **kw):
        calls.append(kw.get("activation"))
        return feed_forward(x, p, **kw)
    RO.residual_stack(np.ones(2), RO.init_vector_field(2, 3, rng()), 1.0, 3, feed_forward=ffn)
    assert calls == ["tanh"] * 3


def test_doubling_ratios_by_hand():
    np.testing.assert_allclose(RO.doubling_ratios([8.0, 4.0, 1.0]), [2.0, 4.0])


@pytest.mark.parametrize("call, exc, words", [
    (lambda p: RO.residual_stack(np.ones(3), p, 1.0, 2), ValueError, "params.w1"),
    (lambda p: RO.residual_stack(np.ones(2), p, 0.0, 2), ValueError, "horizon"),
    (lambda p: RO.residual_stack(np.ones(2), p, "1", 2), TypeError, "horizon"),
    (lambda p: RO.residual_stack(np.ones(2), p, 1.0, 0), ValueError, "depth"),
    (lambda p: RO.residual_stack(np.ones(2), "p", 1.0, 2), TypeError, "params"),
    (lambda p: RO.residual_stack(np.array([np.nan, 1.0]), p, 1.0, 2), ValueError, "x0"),
    (lambda p: RO.ode_flow(np.ones((2, 2)), p, 1.0), ValueError, "x0"),
    (lambda p: RO.residual_stack_iid(np.ones(2), 1.0, 2, 3, 7), TypeError, "rng"),
    (lambda p: RO.residual_stack_iid(np.ones(2), 1.0, 2, 3, rng(), scaling="L"), ValueError,
     "scaling"),
    (lambda p: RO.iid_depth_differences(np.ones(2), 1.0, [2, 4], 3, seed=1, realizations=1,
                                        stack="stack"), TypeError, "stack"),
    (lambda p: RO.iid_depth_differences(np.ones(2), 1.0, [2, 4], 3, seed=1, realizations=0),
     ValueError, "realizations"),
    (lambda p: RO.init_vector_field(2, 3, None), TypeError, "rng"),
])
def test_validation(call, exc, words):
    with pytest.raises(exc, match=words):
        call(RO.init_vector_field(2, 3, rng()))
