"""Unit tests for transformer_theory.impl.recurrence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mutants.recurrence import jacobian_norms_elementwise, linear_attention_read_before_write
from seeded import rng

from transformer_theory.impl import recurrence as R
from transformer_theory.impl.attention import attention


# ---------------------------------------------------------------------------
# linear attention as an RNN
# ---------------------------------------------------------------------------

def test_elu_plus_one_known_values():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(R.elu_plus_one(x), [math.exp(-1), 1.0, 3.0])
    assert R.elu_plus_one(np.float32(-100)).dtype == np.float32
    assert np.all(R.elu_plus_one(np.array([-1000.0, 1000.0])) >= 0)   # exp underflows to 0


def test_recurrence_by_hand_one_feature():
    # phi = identity on positive inputs: q = k = 1 everywhere -> o_i = mean(v_1..v_i)
    q = k = np.ones((3, 1))
    v = np.array([[3.0], [5.0], [10.0]])
    out = R.causal_linear_attention_recurrent(q, k, v, feature_map=lambda x: x)
    np.testing.assert_allclose(out[:, 0], [3.0, 4.0, 6.0])
    bug = linear_attention_read_before_write(q, k, v, feature_map=lambda x: x)   # the mutant
    np.testing.assert_allclose(bug[:, 0], [0.0, 3.0, 4.0])


def test_step_state_shapes():
    st = R.init_linear_attention_state((2,), 4, 3)
    assert st.s.shape == (2, 4, 3) and st.z.shape == (2, 4)
    o, st2 = R.linear_attention_step(st, np.ones((2, 4)), np.ones((2, 4)), np.arange(6.).reshape(2, 3))
    assert o.shape == (2, 3)
    np.testing.assert_allclose(o, np.arange(6.).reshape(2, 3))
    assert np.all(st.s == 0)                                       # the old state is untouched


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_recurrent_equals_masked_and_softmax_with_log_bias(dtype):
    r = rng(1)
    q, k = r.standard_normal((2, 3, 7, 4)).astype(dtype)
    v = r.standard_normal((3, 7, 5)).astype(dtype)
    rec = R.causal_linear_attention_recurrent(q, k, v)
    masked = R.causal_linear_attention_masked(q, k, v)
    assert rec.shape == (3, 7, 5) and rec.dtype == dtype
    tol = 100 * np.finfo(dtype).eps
    np.testing.assert_allclose(rec, masked, atol=tol, rtol=tol)
    zeros = np.zeros((3, 7, 1), dtype=dtype)
    via_softmax = attention(zeros, zeros, v, bias=R.kernel_log_bias(q, k), causal=True)
    np.testing.assert_allclose(rec, via_softmax, atol=tol, rtol=tol)


def test_first_output_is_first_value():
    r = rng(2)
    q, k, v = r.standard_normal((3, 5, 2))
    np.testing.assert_allclose(R.causal_linear_attention_recurrent(q, k, v)[0], v[0])


def test_zero_normaliser_gives_zeros():
    out = R.causal_linear_attention_recurrent(np.ones((2, 1)), np.ones((2, 1)), np.ones((2, 1)),
                                              feature_map=lambda x: np.zeros_like(x))
    assert np.all(out == 0)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: R.causal_linear_attention_recurrent(np.ones((3, 2)), np.ones((4, 2)), np.ones((4, 1))),
     ValueError, "L"),
    (lambda: R.causal_linear_attention_recurrent(np.ones((3, 2)), np.ones((3, 1)), np.ones((3, 1))),
     ValueError, "E"),
    (lambda: R.causal_linear_attention_recurrent(np.ones((3, 2)), np.ones((3, 2)), np.ones((2, 1))),
     ValueError, "key length"),
    (lambda: R.causal_linear_attention_recurrent(np.ones((2, 3, 2)), np.ones((1, 3, 2)),
                                                 np.ones((2, 3, 1))), ValueError, "leading"),
    (lambda: R.causal_linear_attention_recurrent(np.ones(3), np.ones(3), np.ones(3)),
     ValueError, "q"),
    (lambda: R.causal_linear_attention_recurrent(np.ones((3, 2), dtype=np.complex128),
                                                 np.ones((3, 2)), np.ones((3, 1))), TypeError, "q"),
    (lambda: R.causal_linear_attention_recurrent(np.full((3, 2), np.inf), np.ones((3, 2)),
                                                 np.ones((3, 1))), ValueError, "q"),
    (lambda: R.causal_linear_attention_recurrent(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)),
                                                 feature_map=lambda x: -x), ValueError,
     "feature_map"),
    (lambda: R.causal_linear_attention_recurrent(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)),
                                                 feature_map=3), TypeError, "feature_map"),
    (lambda: R.kernel_log_bias(np.ones((3, 2)), np.ones((3, 3))), ValueError, "E"),
])
def test_linear_attention_validation(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


# ---------------------------------------------------------------------------
# dependency graphs
# ---------------------------------------------------------------------------

def test_rnn_graph_by_hand():
    g = R.rnn_encoder_graph(3)
    assert g.n_nodes == 3 + 4
    assert set(zip(g.src.tolist(), g.dst.tolist())) == {(3, 4), (4, 5), (5, 6), (0, 4), (1, 5),
                                                        (2, 6)}
    assert R.longest_path(g) == 4                    # h0 -> h1 -> h2 -> h3


@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_longest_paths(n):
    assert R.longest_path(R.rnn_encoder_graph(n)) == n + 1
    for depth in (1, 2, 3):
        assert R.longest_path(R.transformer_encoder_graph(n, depth)) == 4 * depth + 1


def test_transformer_graph_sizes():
    g = R.transformer_encoder_graph(4, 2)
    assert g.n_nodes == 4 + 2 * 6 * 4
    # per layer: 3N projections, N + N^2 into a, N + N^2 into o, 2N into y
    assert g.src.size == 2 * (3 * 4 + 2 * (4 + 16) + 8)
    assert g.labels[0] == "x_1" and g.labels[4] == "q^(1)_1"


def test_scanned_attention_rows_grow_with_n():
    paths = [R.longest_path(R.transformer_encoder_graph(n, 1, attention_row="scan"))
             for n in (1, 2, 8)]
    assert paths == [5, 6, 12]
    with pytest.raises(ValueError, match="attention_row"):
        R.transformer_encoder_graph(2, 1, attention_row="tree")


def test_longest_path_detects_cycles_and_small_graphs():
    cyc = R.DependencyGraph(("a", "b"), np.array([0, 1]), np.array([1, 0]))
    with pytest.raises(ValueError, match="cycle"):
        R.longest_path(cyc)
    assert R.longest_path(R.DependencyGraph(("a",), np.zeros(0, int), np.zeros(0, int))) == 1
    assert R.longest_path(R.DependencyGraph((), np.zeros(0, int), np.zeros(0, int))) == 0
    with pytest.raises(TypeError, match="graph"):
        R.longest_path([(0, 1)])
    with pytest.raises(ValueError, match="n"):
        R.rnn_encoder_graph(0)
    with pytest.raises(ValueError, match="depth"):
        R.transformer_encoder_graph(3, 0)


# ---------------------------------------------------------------------------
# gradients through a linear RNN
# ---------------------------------------------------------------------------

def test_linear_rnn_by_hand():
    w = np.array([[0.0, 1.0], [1.0, 0.0]])
    h = R.linear_rnn(w, [1.0, 2.0], 2)
    np.testing.assert_array_equal(h, [[1, 2], [2, 1], [1, 2]])
    u = np.array([[1.0], [0.0]])
    h = R.linear_rnn(w, [0.0, 0.0], 2, u=u, x=np.array([[1.0], [1.0]]))
    np.testing.assert_array_equal(h, [[0, 0], [1, 0], [1, 1]])


def test_jacobian_norms_of_a_diagonal_matrix():
    w = np.diag([0.5, 2.0])
    np.testing.assert_allclose(R.state_jacobian_norms(w, 4), [2, 4, 8, 16])
    np.testing.assert_allclose(R.state_jacobian_norms(w, 3, ord="fro"),
                               [math.hypot(0.5 ** t, 2.0 ** t) for t in (1, 2, 3)])


def test_jacobian_equals_matrix_power():
    r = rng(3)
    w = r.standard_normal((4, 4)) / 2
    norms = R.state_jacobian_norms(w, 6)
    np.testing.assert_allclose(norms[-1], np.linalg.norm(np.linalg.matrix_power(w, 6), 2),
                               rtol=1e-12)
    bug = jacobian_norms_elementwise(w, 3)                             # the mutant
    # W * I keeps the diagonal: the bug computes diag(W)^t
    np.testing.assert_allclose(bug[-1], np.max(np.abs(np.diag(w))) ** 3, rtol=1e-12)


def test_matrix_with_spectrum():
    w, kappa = R.matrix_with_spectrum([1.2, -0.5, 0.3], rng(4))
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(w).real), [-0.5, 0.3, 1.2], atol=1e-10)
    assert kappa >= 1
    norms = R.state_jacobian_norms(w, 50)
    t = np.arange(1, 51)
    assert np.all(norms >= 1.2 ** t * (1 - 1e-10))
    assert np.all(norms <= kappa * 1.2 ** t * (1 + 1e-10))


def test_least_squares_slope_and_bound():
    t = np.arange(1.0, 6.0)
    slope, intercept = R.least_squares_slope(t, 3 * t + 1)
    assert slope == pytest.approx(3) and intercept == pytest.approx(1)
    # residuals in [0, 1]: worst case is 0 below the mean time and 1 above it
    worst = 2 * t + (t > 3)
    assert abs(R.least_squares_slope(t, worst)[0] - 2) == pytest.approx(R.slope_error_bound(t, 1.0))
    assert R.slope_error_bound(t, 1.0) == pytest.approx(3 / 10)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: R.linear_rnn(np.ones((2, 3)), np.ones(2), 1), ValueError, "w"),
    (lambda: R.linear_rnn(np.eye(2), np.ones(3), 1), ValueError, "h0"),
    (lambda: R.linear_rnn(np.eye(2), np.ones(2), -1), ValueError, "steps"),
    (lambda: R.linear_rnn(np.eye(2), np.ones(2), 1, u=np.ones((2, 1))), ValueError, "u, x"),
    (lambda: R.linear_rnn(np.eye(2), np.ones(2), 2, u=np.ones((2, 1)), x=np.ones((3, 1))),
     ValueError, "x"),
    (lambda: R.state_jacobian_norms(np.ones((2, 3)), 2), ValueError, "w"),
    (lambda: R.state_jacobian_norms(np.eye(2), 0), ValueError, "steps"),
    (lambda: R.matrix_with_spectrum([1.0], 3), TypeError, "rng"),
    (lambda: R.least_squares_slope([1.0], [1.0]), ValueError, "t, y"),
])
def test_rnn_validation(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
