"""Unit tests for transformer_theory.impl.positional."""

from __future__ import annotations

import math

import numpy as np
import pytest
from seeded import rng

from transformer_theory.impl import positional as P
from transformer_theory.impl.positional import (
    add_positional_encoding,
    alibi_bias,
    alibi_slopes,
    init_learned_positional,
    learned_encoding,
    one_hot_encoding,
    rope,
    rope_frequencies,
    rope_matrix,
    sinusoidal_encoding,
    sinusoidal_frequencies,
    sinusoidal_shift_matrix,
)


# ---------------------------------------------------------------------------
# sinusoidal
# ---------------------------------------------------------------------------

def test_sinusoidal_frequencies_hand_values():
    np.testing.assert_allclose(sinusoidal_frequencies(4), [1.0, 0.01], rtol=1e-15)
    np.testing.assert_allclose(sinusoidal_frequencies(2), [1.0])
    np.testing.assert_allclose(sinusoidal_frequencies(6, base=8.0), [1.0, 0.5, 0.25], rtol=1e-15)
    assert sinusoidal_frequencies(8).dtype == np.float64


def test_sinusoidal_encoding_hand_values():
    # d = 4, base 10000: omega = [1, 0.01]
    pe = sinusoidal_encoding(3, 4)
    expected = np.array([
        [0.0, 1.0, 0.0, 1.0],
        [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
        [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)],
    ])
    np.testing.assert_allclose(pe, expected, rtol=1e-14, atol=1e-16)


def test_sinusoidal_encoding_matches_definition_elementwise():
    n, d = 30, 10
    pe = sinusoidal_encoding(n, d)
    assert pe.shape == (n, d)
    for p in (0, 1, 7, 29):
        for i in range(d // 2):
            angle = p / 10000.0 ** (2 * i / d)
            assert pe[p, 2 * i] == pytest.approx(math.sin(angle), abs=1e-14)
            assert pe[p, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sinusoidal_encoding_dtype(dtype):
    pe = sinusoidal_encoding(5, 6, dtype=dtype)
    assert pe.dtype == dtype
    np.testing.assert_allclose(pe, sinusoidal_encoding(5, 6), rtol=1e-6, atol=1e-7)


def test_sinusoidal_encoding_bounded_and_pairs_on_unit_circle():
    pe = sinusoidal_encoding(100, 16)
    np.testing.assert_allclose(pe[:, 0::2] ** 2 + pe[:, 1::2] ** 2, 1.0, rtol=1e-14)


def test_sinusoidal_errors():
    with pytest.raises(ValueError, match="d_model: expected an even integer"):
        sinusoidal_encoding(4, 5)
    with pytest.raises(ValueError, match="d_model: expected an even integer"):
        sinusoidal_frequencies(3)
    with pytest.raises(ValueError, match="d_model"):
        sinusoidal_encoding(4, 0)
    with pytest.raises(ValueError, match="n_positions"):
        sinusoidal_encoding(0, 4)
    with pytest.raises(TypeError, match="n_positions"):
        sinusoidal_encoding(4.0, 4)
    with pytest.raises(ValueError, match="base"):
        sinusoidal_encoding(4, 4, base=0.0)
    with pytest.raises(ValueError, match="base"):
        sinusoidal_encoding(4, 4, base=-2.0)
    with pytest.raises(ValueError, match="base"):
        sinusoidal_frequencies(4, base=float("inf"))
    with pytest.raises(TypeError, match="base"):
        sinusoidal_frequencies(4, base="10000")
    with pytest.raises(TypeError, match="dtype"):
        sinusoidal_encoding(4, 4, dtype=np.int32)


# ---------------------------------------------------------------------------
# shift matrix
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 1, 3, 17, -5, 2.5])
def test_shift_matrix_shifts_encoding(k):
    d = 12
    pe = sinusoidal_encoding(60, d)
    m = sinusoidal_shift_matrix(k, d)
    p = np.arange(10, 40)
    # PE(p + k) = M_k PE(p) as column vectors, for every p at once
    shifted = (m @ pe[p].T).T                                    # (30, d)
    if float(k).is_integer():
        np.testing.assert_allclose(shifted, pe[p + int(k)], atol=1e-12)
    else:
        omega = sinusoidal_frequencies(d)
        angles = (p + k)[:, None] * omega[None, :]
        expected = np.empty((len(p), d))
        expected[:, 0::2], expected[:, 1::2] = np.sin(angles), np.cos(angles)
        np.testing.assert_allclose(shifted, expected, atol=1e-12)


def test_shift_matrix_hand_value_and_group_properties():
    # d = 2, omega = 1: M_k = [[cos k, sin k], [-sin k, cos k]]
    m = sinusoidal_shift_matrix(0.7, 2)
    c, s = math.cos(0.7), math.sin(0.7)
    np.testing.assert_allclose(m, [[c, s], [-s, c]], rtol=1e-15)
    d = 8
    a, b = sinusoidal_shift_matrix(3, d), sinusoidal_shift_matrix(4, d)
    np.testing.assert_allclose(a @ b, sinusoidal_shift_matrix(7, d), atol=1e-13)
    np.testing.assert_allclose(a.T @ a, np.eye(d), atol=1e-14)
    np.testing.assert_allclose(sinusoidal_shift_matrix(-3, d), a.T, atol=1e-15)
    np.testing.assert_array_equal(sinusoidal_shift_matrix(0, d), np.eye(d))
    # block diagonal: nothing outside the 2x2 blocks
    mask = np.kron(np.eye(d // 2), np.ones((2, 2))).astype(bool)
    assert np.all(a[~mask] == 0)


def test_shift_matrix_errors():
    with pytest.raises(ValueError, match="k: expected a finite"):
        sinusoidal_shift_matrix(float("nan"), 4)
    with pytest.raises(TypeError, match="k: expected a real number"):
        sinusoidal_shift_matrix("1", 4)
    with pytest.raises(TypeError, match="k: expected a real number"):
        sinusoidal_shift_matrix(True, 4)
    with pytest.raises(ValueError, match="d_model"):
        sinusoidal_shift_matrix(1, 3)
    with pytest.raises(ValueError, match="base"):
        sinusoidal_shift_matrix(1, 4, base=0)


# ---------------------------------------------------------------------------
# one-hot
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_hot_encoding(dtype):
    e = one_hot_encoding(3, 5, dtype=dtype)
    assert e.dtype == dtype
    np.testing.assert_array_equal(e, [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]])
    np.testing.assert_array_equal(one_hot_encoding(4, 4), np.eye(4))


def test_one_hot_breaks_permutation_symmetry():
    # x_i + e_i: equal tokens at different positions become distinct vectors.
    x = np.ones((4, 4))
    y = add_positional_encoding(x, one_hot_encoding(4, 4))
    assert len({tuple(row) for row in y}) == 4


def test_one_hot_errors():
    with pytest.raises(ValueError, match="d_model: expected d_model >= n_positions = 5"):
        one_hot_encoding(5, 4)
    with pytest.raises(ValueError, match="n_positions"):
        one_hot_encoding(0, 4)
    with pytest.raises(TypeError, match="d_model"):
        one_hot_encoding(2, "4")
    with pytest.raises(TypeError, match="dtype"):
        one_hot_encoding(2, 4, dtype=bool)


# ---------------------------------------------------------------------------
# add_positional_encoding
# ---------------------------------------------------------------------------

def test_add_positional_encoding_values():
    x = rng().normal(size=(2, 3, 4))
    pe = sinusoidal_encoding(10, 4)
    y = add_positional_encoding(x, pe)
    assert y.shape == (2, 3, 4)
    np.testing.assert_array_equal(y, x + pe[:3][None])
    np.testing.assert_array_equal(add_positional_encoding(x[0], pe[:3]), x[0] + pe[:3])


def test_add_positional_encoding_dtypes():
    x32 = np.zeros((3, 4), dtype=np.float32)
    assert add_positional_encoding(x32, sinusoidal_encoding(3, 4, dtype=np.float32)).dtype \
        == np.float32
    assert add_positional_encoding(x32, sinusoidal_encoding(3, 4)).dtype == np.float64


def test_add_positional_encoding_errors():
    x = np.zeros((2, 5, 4))
    with pytest.raises(ValueError, match="pe: expected at least L = 5 rows"):
        add_positional_encoding(x, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="pe: expected d_model"):
        add_positional_encoding(x, np.zeros((5, 6)))
    with pytest.raises(ValueError, match="pe: expected a 2-d array"):
        add_positional_encoding(x, np.zeros((1, 5, 4)))
    with pytest.raises(ValueError, match="x: expected at least 2 dimensions"):
        add_positional_encoding(np.zeros(4), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="pe: contains NaN"):
        add_positional_encoding(x, np.full((5, 4), np.nan))
    with pytest.raises(TypeError, match="x: expected dtype"):
        add_positional_encoding(x.astype(np.float16), np.zeros((5, 4)))


# ---------------------------------------------------------------------------
# learned
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_learned_positional(dtype):
    t = init_learned_positional(64, 32, rng(1), dtype=dtype)
    assert t.shape == (64, 32) and t.dtype == dtype
    np.testing.assert_array_equal(t, init_learned_positional(64, 32, rng(1), dtype=dtype))
    # 2048 draws: relative error of the std estimate ~ 1.6 %, tolerance 10 %
    assert float(t.std()) == pytest.approx(0.02, rel=0.1)
    np.testing.assert_array_equal(init_learned_positional(3, 2, rng(), std=0.0), 0.0)


def test_learned_encoding():
    t = init_learned_positional(10, 4, rng(2))
    e = learned_encoding(t, 6)
    np.testing.assert_array_equal(e, t[:6])
    e[0, 0] = 123.0
    assert t[0, 0] != 123.0  # a copy, not a view
    assert learned_encoding(t.astype(np.float32), 10).dtype == np.float32


def test_learned_errors():
    with pytest.raises(TypeError, match="rng"):
        init_learned_positional(4, 4, None)
    with pytest.raises(TypeError, match="rng"):
        init_learned_positional(4, 4, 123)
    with pytest.raises(ValueError, match="std"):
        init_learned_positional(4, 4, rng(), std=-0.1)
    with pytest.raises(ValueError, match="std"):
        init_learned_positional(4, 4, rng(), std=float("nan"))
    with pytest.raises(TypeError, match="dtype"):
        init_learned_positional(4, 4, rng(), dtype=np.int64)
    with pytest.raises(ValueError, match="n_positions"):
        init_learned_positional(0, 4, rng())
    t = np.zeros((5, 3))
    with pytest.raises(ValueError, match="length: expected at most n_positions = 5"):
        learned_encoding(t, 6)
    with pytest.raises(ValueError, match="length"):
        learned_encoding(t, 0)
    with pytest.raises(TypeError, match="length"):
        learned_encoding(t, 2.0)
    with pytest.raises(ValueError, match="table: expected a 2-d array"):
        learned_encoding(np.zeros(5), 2)
    with pytest.raises(ValueError, match="table: contains NaN"):
        learned_encoding(np.full((5, 3), np.inf), 2)


# ---------------------------------------------------------------------------
# RoPE
# ---------------------------------------------------------------------------

def test_rope_frequencies():
    np.testing.assert_allclose(rope_frequencies(4), [1.0, 0.01], rtol=1e-15)
    np.testing.assert_array_equal(rope_frequencies(16, base=500.0),
                                  sinusoidal_frequencies(16, base=500.0))
    with pytest.raises(ValueError, match="d: expected an even integer"):
        rope_frequencies(5)
    with pytest.raises(ValueError, match="base"):
        rope_frequencies(4, base=-1.0)


def test_rope_matrix_hand_value():
    # d = 4, theta = [1, 0.01], position 2: blocks of angle 2 and 0.02
    r = rope_matrix(2, 4)
    c1, s1, c2, s2 = math.cos(2), math.sin(2), math.cos(0.02), math.sin(0.02)
    expected = np.array([
        [c1, -s1, 0, 0],
        [s1, c1, 0, 0],
        [0, 0, c2, -s2],
        [0, 0, s2, c2],
    ])
    np.testing.assert_allclose(r, expected, rtol=1e-15)
    np.testing.assert_array_equal(rope_matrix(0, 6), np.eye(6))


def test_rope_matrix_orthogonal_and_composition():
    d = 10
    a, b = rope_matrix(3.0, d), rope_matrix(-1.5, d)
    np.testing.assert_allclose(a.T @ a, np.eye(d), atol=1e-14)
    np.testing.assert_allclose(a @ b, rope_matrix(1.5, d), atol=1e-14)
    np.testing.assert_allclose(a.T, rope_matrix(-3.0, d), atol=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_rope_relative_property(seed):
    # <R_m q, R_n k> = <q, R_{n-m} k>
    g = rng(seed)
    d = 8
    q, k = g.normal(size=d), g.normal(size=d)
    m, n = g.integers(0, 100, size=2)
    lhs = (rope_matrix(m, d) @ q) @ (rope_matrix(n, d) @ k)
    rhs = q @ (rope_matrix(n - m, d) @ k)
    assert lhs == pytest.approx(rhs, rel=1e-11, abs=1e-11)


def test_rope_equals_matrix_form():
    d, length = 6, 7
    x = rng(3).normal(size=(2, 3, length, d))
    y = rope(x)
    assert y.shape == x.shape and y.dtype == np.float64
    for p in range(length):
        np.testing.assert_allclose(y[..., p, :], x[..., p, :] @ rope_matrix(p, d).T,
                                   atol=1e-14)
    positions = np.array([0.5, 3.0, -2.0, 10.0, 100.25, 7.0, 1e3])
    z = rope(x, positions, base=100.0)
    for p, pos in enumerate(positions):
        np.testing.assert_allclose(z[..., p, :], x[..., p, :] @ rope_matrix(pos, d, base=100.0).T,
                                   atol=1e-12)


def test_rope_hand_value():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    y = rope(x)
    expected = [[1.0, 0.0], [math.cos(1), math.sin(1)], [-math.sin(2), math.cos(2)]]
    np.testing.assert_allclose(y, expected, rtol=1e-15, atol=1e-16)


def test_rope_default_positions_and_integer_positions():
    x = rng(4).normal(size=(5, 4))
    np.testing.assert_array_equal(rope(x), rope(x, np.arange(5)))
    np.testing.assert_array_equal(rope(x), rope(x, [0, 1, 2, 3, 4]))
    np.testing.assert_allclose(rope(x[1:], np.arange(1, 5)), rope(x)[1:], atol=0)


def test_rope_scores_depend_on_offsets_only():
    g = rng(5)
    q, k = g.normal(size=(2, 6, 8)), g.normal(size=(2, 6, 8))
    pos = np.arange(6)
    s0 = rope(q, pos) @ np.swapaxes(rope(k, pos), -1, -2)
    s1 = rope(q, pos + 37) @ np.swapaxes(rope(k, pos + 37), -1, -2)
    np.testing.assert_allclose(s0, s1, atol=1e-11)
    # and the rotation preserves norms
    np.testing.assert_allclose(np.linalg.norm(rope(q), axis=-1), np.linalg.norm(q, axis=-1),
                               rtol=1e-13)


def test_rope_interleaved_vs_rotate_half_convention():
    # Interleaved pairs (2i, 2i+1) equal the split-halves ("rotate_half") form
    # after permuting coordinates to (0, 2, 4, ..., 1, 3, 5, ...).
    d, length = 8, 5
    x = rng(6).normal(size=(length, d))
    perm = np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])
    angles = np.arange(length)[:, None] * rope_frequencies(d)[None, :]   # (L, d/2)
    cos = np.concatenate([np.cos(angles)] * 2, axis=-1)
    sin = np.concatenate([np.sin(angles)] * 2, axis=-1)
    y = x[:, perm]
    rotate_half = np.concatenate([-y[:, d // 2:], y[:, : d // 2]], axis=-1)
    np.testing.assert_allclose(rope(x)[:, perm], y * cos + rotate_half * sin, atol=1e-14)
    assert not np.allclose(rope(x), x * cos + np.concatenate(
        [-x[:, d // 2:], x[:, : d // 2]], axis=-1) * sin)


def test_rope_float32():
    x = rng(7).normal(size=(3, 4, 6)).astype(np.float32)
    y = rope(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, rope(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
    assert rope(x, np.arange(4, dtype=np.float64)).dtype == np.float32


def test_rope_errors():
    x = np.zeros((2, 5, 4))
    with pytest.raises(ValueError, match="x: expected an even last dim"):
        rope(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="x: expected at least 2 dimensions"):
        rope(np.zeros(4))
    with pytest.raises(ValueError, match="positions: expected sequence length L of x = 5"):
        rope(x, np.arange(4))
    with pytest.raises(ValueError, match=r"positions: expected a shape broadcastable to \(2, 5\)"):
        rope(x, np.zeros((3, 5)))
    np.testing.assert_array_equal(rope(x, np.zeros((2, 5))), x)      # one offset per sequence
    with pytest.raises(ValueError, match="positions: contains NaN"):
        rope(x, np.array([0, 1, 2, 3, np.nan]))
    with pytest.raises(TypeError, match="positions: expected dtype"):
        rope(x, np.array(["a"] * 5))
    with pytest.raises(ValueError, match="x: contains NaN"):
        rope(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="base"):
        rope(x, base=0.0)
    with pytest.raises(ValueError, match="position: expected a finite"):
        rope_matrix(float("inf"), 4)
    with pytest.raises(TypeError, match="position"):
        rope_matrix(None, 4)
    with pytest.raises(ValueError, match="d: expected an even integer"):
        rope_matrix(1, 3)


# ---------------------------------------------------------------------------
# ALiBi
# ---------------------------------------------------------------------------

def test_alibi_slopes_eight_heads():
    np.testing.assert_array_equal(alibi_slopes(8), [1 / 2 ** k for k in range(1, 9)])


def test_alibi_slopes_powers_of_two():
    s16 = alibi_slopes(16)
    np.testing.assert_allclose(s16, 2.0 ** (-0.5 * np.arange(1, 17)), rtol=1e-15)
    assert s16[0] == pytest.approx(1 / math.sqrt(2)) and s16[-1] == 2.0 ** -8
    np.testing.assert_array_equal(alibi_slopes(1), [2.0 ** -8])
    np.testing.assert_array_equal(alibi_slopes(2), [2.0 ** -4, 2.0 ** -8])
    np.testing.assert_array_equal(alibi_slopes(4), [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8])
    for n in (1, 2, 4, 8, 16, 32):
        s = alibi_slopes(n)
        np.testing.assert_allclose(s[1:] / s[:-1], s[0], rtol=1e-14)  # ratio = first term


def test_alibi_slopes_other_head_counts():
    # n = 6: slopes(4) then every other slope of slopes(8), first 2 of them
    np.testing.assert_array_equal(
        alibi_slopes(6), [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8, 2.0 ** -1, 2.0 ** -3])
    np.testing.assert_array_equal(alibi_slopes(3), [2.0 ** -4, 2.0 ** -8, 2.0 ** -2])
    s12 = alibi_slopes(12)
    np.testing.assert_array_equal(s12[:8], alibi_slopes(8))
    np.testing.assert_allclose(s12[8:], 2.0 ** (-0.5 * np.array([1, 3, 5, 7])), rtol=1e-15)
    for n in range(1, 40):
        s = alibi_slopes(n)
        assert s.shape == (n,) and s.dtype == np.float64
        assert np.all((s > 0) & (s < 1)) and len(set(s)) == n


@pytest.mark.parametrize("n_heads,err", [(0, ValueError), (8.0, TypeError), (True, TypeError)])
def test_alibi_slopes_errors(n_heads, err):
    with pytest.raises(err, match="n_heads"):
        alibi_slopes(n_heads)


def test_alibi_bias_square_hand_values():
    b = alibi_bias(2, 3, 3)
    assert b.shape == (2, 3, 3) and b.dtype == np.float64
    dist = np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0]])
    np.testing.assert_array_equal(b[0], -dist / 16)
    np.testing.assert_array_equal(b[1], -dist / 256)
    np.testing.assert_array_equal(alibi_bias(2, 3, 3, causal_alignment="top-left"), b)


def test_alibi_bias_alignment():
    # lq = 2, lk = 4, one head with slope 1/256
    m = 2.0 ** -8
    bottom_right = alibi_bias(1, 2, 4)[0]
    # queries at absolute positions 2 and 3
    np.testing.assert_array_equal(bottom_right, -m * np.array([[2, 1, 0, 1], [3, 2, 1, 0]]))
    top_left = alibi_bias(1, 2, 4, causal_alignment="top-left")[0]
    np.testing.assert_array_equal(top_left, -m * np.array([[0, 1, 2, 3], [1, 0, 1, 2]]))
    # more queries than keys, bottom-right: absolute positions -1, 0, 1
    np.testing.assert_array_equal(alibi_bias(1, 3, 2)[0], -m * np.array([[1, 2], [0, 1], [1, 0]]))


def test_alibi_bias_causal_part_is_paper_formula():
    # for j <= i: bias = -m (i - j); the symmetric extension for j > i
    h, n = 4, 6
    b = alibi_bias(h, n, n)
    s = alibi_slopes(h)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    np.testing.assert_allclose(b, -s[:, None, None] * np.abs(i - j)[None], rtol=1e-15)
    lower = j <= i
    np.testing.assert_allclose(b[:, lower], (-s[:, None] * (i - j)[lower][None]), rtol=1e-15)
    np.testing.assert_array_equal(b, np.swapaxes(b, -1, -2))
    assert np.all(b <= 0) and not np.any(np.signbit(b[:, i == j]))


def test_alibi_bias_dtype():
    assert alibi_bias(2, 3, 4, dtype=np.float32).dtype == np.float32


def test_alibi_bias_errors():
    with pytest.raises(ValueError, match="causal_alignment"):
        alibi_bias(2, 3, 3, causal_alignment="center")
    with pytest.raises(ValueError, match="lq"):
        alibi_bias(2, 0, 3)
    with pytest.raises(ValueError, match="lk"):
        alibi_bias(2, 3, 0)
    with pytest.raises(TypeError, match="lk"):
        alibi_bias(2, 3, 3.0)
    with pytest.raises(ValueError, match="n_heads"):
        alibi_bias(0, 3, 3)
    with pytest.raises(TypeError, match="dtype"):
        alibi_bias(2, 3, 3, dtype=np.int32)


def test_module_exports():
    for name in P.__all__:
        assert hasattr(P, name)


def test_rope_partial_rotation_and_interpolation():
    x = np.random.default_rng(0).standard_normal((5, 8))
    part = P.rope(x, rotary_dim=4)
    np.testing.assert_array_equal(part[:, 4:], x[:, 4:])           # the tail passes through
    np.testing.assert_allclose(part[:, :4], P.rope(x[:, :4]), rtol=0, atol=1e-15)
    pos = np.arange(5, dtype=float) * 3
    np.testing.assert_allclose(P.rope(x, pos, position_scale=3.0), P.rope(x, pos / 3.0),
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(rotary_dim=3), ValueError, r"^rotary_dim: expected an even number in \[2, 8\]"),
    (dict(rotary_dim=10), ValueError, "rotary_dim"),
    (dict(rotary_dim=2.0), TypeError, "rotary_dim"),
    (dict(position_scale=0.0), ValueError, "^position_scale: expected a positive number"),
    (dict(position_scale=np.nan), ValueError, "position_scale"),
])
def test_rope_keyword_errors(kw, exc, match):
    with pytest.raises(exc, match=match):
        P.rope(np.ones((3, 8)), **kw)
