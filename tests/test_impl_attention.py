"""Unit tests for transformer_theory.impl.attention."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transformer_theory.impl import attention as A
from transformer_theory.impl import gradients as G
from transformer_theory.theory.tolerance import relative_error, tolerance


def assert_close(actual, expected, kind="composite", dtype=np.float64, n=64):
    tol = tolerance(kind, dtype, n)
    err = relative_error(actual, expected)
    assert tol.allows(err), f"relative error {err:.3e} > {tol.rtol:.3e} ({tol.reason})"


def naive_attention(q, k, v, allowed=None, scale=None, bias=None):
    """Loop-over-queries reference, written independently of the module."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    lead = q.shape[:-2]
    out = np.zeros(lead + (q.shape[-2], v.shape[-1]))
    for idx in np.ndindex(*lead):
        for i in range(q.shape[-2]):
            s = scale * (k[idx] @ q[idx][i])
            if bias is not None:
                s = s + np.broadcast_to(bias, lead + (q.shape[-2], k.shape[-2]))[idx][i]
            ok = np.ones(k.shape[-2], bool) if allowed is None else \
                np.broadcast_to(allowed, lead + (q.shape[-2], k.shape[-2]))[idx][i]
            if not ok.any():
                continue
            w = np.where(ok, np.exp(s - s[ok].max()), 0.0)
            out[idx][i] = (w / w.sum()) @ v[idx]
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# --------------------------------------------------------------------------- softmax

def test_softmax_known_values():
    out = A.softmax(np.array([0.0, math.log(2.0)]))
    np.testing.assert_allclose(out, [1 / 3, 2 / 3], rtol=1e-15)
    out = A.softmax(np.array([[1.0, 1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(out, np.full((1, 4), 0.25), rtol=1e-15)


def test_softmax_axis_and_sum(rng):
    x = rng.standard_normal((3, 4, 5))
    out = A.softmax(x, axis=1)
    assert out.shape == x.shape
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(A.softmax(x, axis=-2), out)


def test_softmax_float32_extreme_logits():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=np.float32)
    out = A.softmax(x)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]], rtol=1e-6)


def test_softmax_all_neg_inf_row_is_zero():
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    out = A.softmax(x)
    np.testing.assert_array_equal(out, [[0.0, 0.0], [1.0, 0.0]])


def test_softmax_int_input_becomes_float64():
    assert A.softmax(np.array([1, 2, 3])).dtype == np.float64


@pytest.mark.parametrize("bad", [np.array([np.nan, 0.0]), np.array([np.inf, 0.0])])
def test_softmax_rejects_nan_and_pos_inf(bad):
    with pytest.raises(ValueError, match="x"):
        A.softmax(bad)


def test_softmax_errors():
    with pytest.raises(TypeError, match="x"):
        A.softmax(np.array([1 + 1j]))
    with pytest.raises(TypeError, match="x"):
        A.softmax(np.array([1.0], dtype=np.longdouble))     # float16 is the contract's now
    with pytest.raises(ValueError, match="x"):
        A.softmax(np.float64(1.0))
    with pytest.raises(ValueError, match="axis"):
        A.softmax(np.zeros((2, 3)), axis=2)
    with pytest.raises(TypeError, match="axis"):
        A.softmax(np.zeros((2, 3)), axis=1.0)


# --------------------------------------------------------------------------- masks

def test_causal_mask_top_left():
    np.testing.assert_array_equal(
        A.causal_mask(3, 3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(
        A.causal_mask(2, 4), [[1, 0, 0, 0], [1, 1, 0, 0]])
    assert A.causal_mask(2, 4).dtype == np.bool_


def test_causal_mask_bottom_right():
    np.testing.assert_array_equal(
        A.causal_mask(2, 4, align="bottom-right"), [[1, 1, 1, 0], [1, 1, 1, 1]])
    # more queries than keys: the first query sees no key
    np.testing.assert_array_equal(
        A.causal_mask(3, 2, align="bottom-right"), [[0, 0], [1, 0], [1, 1]])
    np.testing.assert_array_equal(
        A.causal_mask(4, 4, align="bottom-right"), A.causal_mask(4, 4))


def test_causal_mask_errors():
    with pytest.raises(ValueError, match="align"):
        A.causal_mask(2, 2, align="top-right")
    with pytest.raises(ValueError, match="lq"):
        A.causal_mask(-1, 2)
    with pytest.raises(TypeError, match="lk"):
        A.causal_mask(2, 2.0)


def test_sliding_window_mask():
    np.testing.assert_array_equal(
        A.sliding_window_mask(4, 4, 2),
        [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
    np.testing.assert_array_equal(
        A.sliding_window_mask(4, 4, 2, causal=False),
        [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]])
    np.testing.assert_array_equal(A.sliding_window_mask(3, 3, 1), np.eye(3, dtype=bool))
    np.testing.assert_array_equal(A.sliding_window_mask(3, 5, 10), A.causal_mask(3, 5))


@pytest.mark.parametrize("window,causal,err,match", [
    (0, True, ValueError, "window"),
    (1.5, True, TypeError, "window"),         # causal=True is the default
    (2, "yes", TypeError, "causal"),
])
def test_sliding_window_mask_errors(window, causal, err, match):
    with pytest.raises(err, match=match):
        A.sliding_window_mask(3, 3, window, causal=causal)


def test_window_mask_by_hand():
    # FlashAttention's docstring: query i sees [i + Lk - Lq - left, i + Lk - Lq + right]
    np.testing.assert_array_equal(
        A.window_mask(3, 5, (1, 0), align="bottom-right"),
        [[0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]])
    np.testing.assert_array_equal(
        A.window_mask(3, 5, (1, 0)), [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0]])
    np.testing.assert_array_equal(A.window_mask(4, 4, (None, 0)), A.causal_mask(4, 4))
    np.testing.assert_array_equal(A.window_mask(3, 3, (None, None)), np.ones((3, 3), bool))
    for w in (1, 2, 5):
        np.testing.assert_array_equal(A.window_mask(6, 6, (w - 1, 0)), A.sliding_window_mask(6, 6, w))
        np.testing.assert_array_equal(A.window_mask(6, 6, (w - 1, w - 1)),
                                      A.sliding_window_mask(6, 6, w, causal=False))


@pytest.mark.parametrize("window, exc, match", [
    (3, TypeError, r"int 3, which is ambiguous: \|i - j\| < 3 .* is \(2, 2\), or \(2, 0\) when "
                   r"causal; FlashAttention's window_size=\(3, 3\) is \(3, 3\)"),
    ((1,), TypeError, "window: expected a \\(left, right\\) pair"),
    ((1, 2.0), TypeError, "right"),
    ((True, 1), TypeError, "left"),
    ((-1, 0), ValueError, "left >= 0"),
])
def test_window_refused(window, exc, match):
    q = np.ones((3, 2))
    with pytest.raises(exc, match=match):
        A.attention(q, q, q, window=window)
    with pytest.raises(exc, match=match):
        A.window_mask(3, 3, window)


@pytest.mark.parametrize("causal", [False, True, "bottom-right"])
@pytest.mark.parametrize("window", [(0, 0), (2, 1), (None, 1), (1, None)])
def test_attention_window_against_naive(causal, window):
    r = np.random.default_rng(3)
    q, k, v = r.standard_normal((4, 2)), r.standard_normal((6, 2)), r.standard_normal((6, 3))
    align = "bottom-right" if causal == "bottom-right" else "top-left"
    allowed = A.window_mask(4, 6, window, align=align)
    if causal:
        allowed &= A.causal_mask(4, 6, align=align)
    assert_close(A.attention(q, k, v, causal=causal, window=window),
                 naive_attention(q, k, v, allowed))
    w = A.attention_weights(q, k, causal=causal, window=window)
    assert np.array_equal(w > 0, allowed)


def test_window_keys_nobody_attends_may_be_nan():
    # with window (0, 0) over Lq = 2 < Lk = 4 (top-left), keys 2 and 3 are attended by no query
    r = np.random.default_rng(4)
    q, k, v = r.standard_normal((2, 3)), r.standard_normal((4, 3)), r.standard_normal((4, 2))
    k_bad, v_bad = k.copy(), v.copy()
    k_bad[3], v_bad[2] = np.nan, np.inf
    clean = k.copy(), v.copy()
    clean[0][3], clean[1][2] = 0, 0
    np.testing.assert_array_equal(A.attention(q, k_bad, v_bad, window=(0, 0)),
                                  A.attention(q, *clean, window=(0, 0)))
    with pytest.raises(ValueError, match="k: contains NaN .* key 3"):
        A.attention(q, k_bad, v, window=(0, 2))


# --------------------------------------------------------------------------- attention

def test_attention_known_values():
    q = np.array([[1.0, 0.0]])
    k = np.array([[1.0, 0.0], [0.0, 1.0]])
    v = np.array([[1.0, 2.0], [3.0, 4.0]])
    w1 = math.e / (1 + math.e)
    out = A.attention(q, k, v, scale=1.0)
    np.testing.assert_allclose(out, [[w1 * 1 + (1 - w1) * 3, w1 * 2 + (1 - w1) * 4]], rtol=1e-15)
    np.testing.assert_allclose(A.attention_weights(q, k, scale=1.0), [[w1, 1 - w1]], rtol=1e-15)
    # default scale 1/sqrt(2)
    w = 1 / (1 + math.exp(-1 / math.sqrt(2)))
    np.testing.assert_allclose(A.attention_weights(q, k), [[w, 1 - w]], rtol=1e-15)


def test_attention_zero_query_averages_values(rng):
    k = rng.standard_normal((5, 3))
    v = rng.standard_normal((5, 2))
    out = A.attention(np.zeros((1, 3)), k, v)
    np.testing.assert_allclose(out, v.mean(axis=0, keepdims=True), rtol=1e-14)


@pytest.mark.parametrize("causal", [False, True, "top-left", "bottom-right"])
@pytest.mark.parametrize("shape", [((4, 3), (6, 3)), ((2, 5, 4), (2, 3, 4)), ((2, 3, 4, 2), (2, 3, 4, 2))])
def test_attention_matches_naive(rng, causal, shape):
    (qs, ks) = shape
    q, k = rng.standard_normal(qs), rng.standard_normal(ks)
    v = rng.standard_normal(ks[:-1] + (5,))
    mask = rng.random(qs[:-1] + (ks[-2],)) < 0.7
    out = A.attention(q, k, v, mask=mask, causal=causal)
    allowed = mask
    align = {True: "top-left"}.get(causal, causal)
    if align:
        allowed = mask & A.causal_mask(qs[-2], ks[-2], align=align)
    assert out.shape == qs[:-1] + (5,)
    assert_close(out, naive_attention(q, k, v, allowed))


def test_attention_causal_true_is_top_left(rng):
    q, k, v = (rng.standard_normal((3, 5, 4)) for _ in range(3))
    np.testing.assert_array_equal(A.attention(q, k, v, causal=True),
                                  A.attention(q, k, v, causal="top-left"))
    np.testing.assert_array_equal(A.attention(q, k, v, causal=True),
                                  A.attention(q, k, v, mask=A.causal_mask(5, 5)))


def test_attention_fully_masked_rows_are_zero(rng):
    q, k, v = rng.standard_normal((3, 2)), rng.standard_normal((4, 2)), rng.standard_normal((4, 3))
    mask = np.ones((3, 4), bool)
    mask[1] = False
    out = A.attention(q, k, v, mask=mask)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[1], 0.0)
    w = A.attention_weights(q, k, mask=mask)
    np.testing.assert_array_equal(w[1], 0.0)
    np.testing.assert_allclose(w[[0, 2]].sum(-1), 1.0, rtol=1e-15)
    # bottom-right with more queries than keys: first row sees nothing
    out = A.attention(rng.standard_normal((3, 2)), k[:2], v[:2], causal="bottom-right")
    np.testing.assert_array_equal(out[0], 0.0)


def test_attention_mask_and_causal_combine(rng):
    q, k, v = (rng.standard_normal((4, 3)) for _ in range(3))
    mask = np.array([[True, False, True, True]])
    out = A.attention(q, k, v, mask=mask, causal=True)
    expected = naive_attention(q, k, v, mask & A.causal_mask(4, 4))
    assert_close(out, expected)
    np.testing.assert_array_equal(A.attention_weights(q, k, mask=mask, causal=True)[:, 1], 0)


def test_attention_scale_and_bias(rng):
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 2))
    bias = rng.standard_normal((3, 5))
    assert_close(A.attention(q, k, v, scale=0.3, bias=bias),
                 naive_attention(q, k, v, scale=0.3, bias=bias))
    # a bias of -log(c) on one key is the same as dividing its weight by c
    w = A.attention_weights(q, k, bias=np.where(np.arange(5) == 0, -math.log(2), 0.0)[None, :])
    w0 = A.attention_weights(q, k)
    ratio = (w[..., 0] / w[..., 1]) / (w0[..., 0] / w0[..., 1])
    np.testing.assert_allclose(ratio, 0.5, rtol=1e-12)


def test_attention_dtypes(rng):
    q, k, v = (rng.standard_normal((2, 3, 4)).astype(np.float32) for _ in range(3))
    assert A.attention(q, k, v).dtype == np.float32
    assert A.attention_weights(q, k).dtype == np.float32
    assert A.attention(q, k, v.astype(np.float64)).dtype == np.float64
    assert A.attention(q, k, v, bias=np.zeros((3, 3))).dtype == np.float64
    assert A.attention(q, k, v, bias=np.zeros((3, 3), np.float32)).dtype == np.float32
    assert A.attention(q, k, v, scale=np.float64(0.5)).dtype == np.float32
    out32 = A.attention(q, k, v, causal=True)
    out64 = A.attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), causal=True)
    assert_close(out32, out64, dtype=np.float32, n=4)


def test_attention_float32_large_scores_finite():
    q = np.array([[100.0, 0.0], [0.0, 100.0]], np.float32)
    k = np.array([[100.0, 0.0], [-100.0, 0.0]], np.float32)
    v = np.array([[1.0], [2.0]], np.float32)
    out = A.attention(q, k, v, scale=1.0)       # scores +-1e4
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [[1.0], [1.5]], rtol=1e-6)


def test_attention_empty_keys_return_zeros():
    out = A.attention(np.ones((2, 3)), np.ones((0, 3)), np.ones((0, 4)))
    np.testing.assert_array_equal(out, np.zeros((2, 4)))


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(q=np.ones(3)), ValueError, "q"),
    (dict(k=np.ones((1, 4, 3))), ValueError, "k: leading"),
    (dict(k=np.ones((2, 4, 2))), ValueError, "k: embedding dim"),
    (dict(v=np.ones((2, 3, 5))), ValueError, "v: key length"),
    (dict(v=np.ones((3, 4, 5))), ValueError, "v: leading"),
    (dict(q=np.full((2, 5, 3), np.nan)), ValueError, "q"),
    (dict(k=np.ones((2, 4, 3), np.complex128)), TypeError, "k"),
    (dict(v=np.ones((2, 4, 5), np.float16)), TypeError, "v"),
    (dict(q=np.ones((2, 5, 0)), k=np.ones((2, 4, 0))), ValueError, "E must be >= 1"),
    (dict(mask=np.ones((5, 4), np.int64)), TypeError, "mask"),
    (dict(mask=np.ones((5, 3), bool)), ValueError, "mask"),
    (dict(mask=np.ones((3, 5, 4), bool)), ValueError, "mask"),
    (dict(mask=np.ones(4, bool)), ValueError, "mask"),
    (dict(causal="yes"), ValueError, "causal"),
    (dict(causal=1), ValueError, "causal"),
    (dict(causal=None), ValueError, "causal"),
    (dict(scale=0.0), ValueError, "scale"),
    (dict(scale=-1.0), ValueError, "scale"),
    (dict(scale=np.inf), ValueError, "scale"),
    (dict(scale="1"), TypeError, "scale"),
    (dict(scale=True), TypeError, "scale"),
    (dict(bias=np.ones((5, 3))), ValueError, "bias"),
    (dict(bias=np.ones((3, 5, 4))), ValueError, "bias"),
    (dict(bias=np.full((5, 4), np.nan)), ValueError, "bias"),
    (dict(bias=np.ones((5, 4), np.complex64)), TypeError, "bias"),
    (dict(softcap=0.0), ValueError, "softcap: expected a positive finite number"),
    (dict(softcap=np.inf), ValueError, "softcap"),
    (dict(softcap="30"), TypeError, "softcap: expected a real number or None"),
    (dict(segment_ids=np.zeros(4)), TypeError, "^segment_ids: expected an integer array"),
    (dict(segment_ids=np.zeros(4, int)), ValueError, r"^segment_ids: packed documents need"),
])
def test_attention_errors(kwargs, exc, match):
    args = dict(q=np.ones((2, 5, 3)), k=np.ones((2, 4, 3)), v=np.ones((2, 4, 5)))
    args.update(kwargs)
    q, k, v = args.pop("q"), args.pop("k"), args.pop("v")
    with pytest.raises(exc, match=match):
        A.attention(q, k, v, **args)
    if "v" not in kwargs:
        with pytest.raises(exc, match=match):
            A.attention_weights(q, k, **args)


def test_attention_score_overflow_is_an_error():
    big = np.full((2, 3), 1e30, np.float32)
    with pytest.raises(ValueError, match="overflow"):
        A.attention(big, big, big)


# --------------------------------------------------------------------------- hard attention

def test_hard_attention_unique_max():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    k = np.array([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]])
    v = np.array([[1.0], [2.0], [3.0]])
    np.testing.assert_array_equal(A.hard_attention(q, k, v), [[1.0], [2.0]])


def test_hard_attention_ties_are_averaged():
    q = np.array([[1.0, 0.0]])
    k = np.array([[1.0, 0.0], [1.0, 5.0], [0.0, 1.0], [1.0, -3.0]])
    v = np.array([[1.0], [2.0], [10.0], [6.0]])
    np.testing.assert_allclose(A.hard_attention(q, k, v), [[3.0]], rtol=1e-15)
    # float32 inputs whose scores tie in exact arithmetic (2^24 + 1 - 2^24 = 1) but not in
    # float32 arithmetic (2^24 + 1 rounds to 2^24): scores are computed in float64
    q32 = np.array([[1.0, 1.0, 1.0]], np.float32)
    k32 = np.array([[2.0 ** 24, 1.0, -2.0 ** 24], [1.0, 0.0, 0.0], [0.0, 0.0, 0.5]], np.float32)
    v32 = np.array([[0.0], [2.0], [9.0]], np.float32)
    out = A.hard_attention(q32, k32, v32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1.0]])


def test_hard_attention_masks(rng):
    q, k, v = (rng.standard_normal((4, 3)) for _ in range(3))
    out = A.hard_attention(q, k, v, causal=True)
    np.testing.assert_array_equal(out[0], v[0])        # the first query sees only key 0
    mask = np.ones((4, 4), bool)
    mask[2] = False
    out = A.hard_attention(q, k, v, mask=mask)
    np.testing.assert_array_equal(out[2], 0.0)


def test_hard_attention_is_the_large_scale_limit(rng):
    q, k, v = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 6, 3)), rng.standard_normal((2, 6, 2))
    hard = A.hard_attention(q, k, v, causal="bottom-right")
    soft = A.attention(q, k, v, causal="bottom-right", scale=1e6)
    np.testing.assert_allclose(soft, hard, atol=1e-9)


def test_hard_attention_errors():
    with pytest.raises(ValueError, match="k: leading"):
        A.hard_attention(np.ones((2, 3, 4)), np.ones((3, 3, 4)), np.ones((3, 3, 4)))
    with pytest.raises(TypeError, match="mask"):
        A.hard_attention(np.ones((3, 4)), np.ones((3, 4)), np.ones((3, 4)), mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match="causal"):
        A.hard_attention(np.ones((3, 4)), np.ones((3, 4)), np.ones((3, 4)), causal="no")
    with pytest.raises(ValueError, match="scale"):
        A.hard_attention(np.ones((3, 4)), np.ones((3, 4)), np.ones((3, 4)), scale=-2.0)


# --------------------------------------------------------------------------- multi-head

def test_init_multi_head_shapes_and_defaults(rng):
    p = A.init_multi_head(12, 3, rng)
    assert p.w_q.shape == (3, 12, 4) and p.w_k.shape == (3, 12, 4) and p.w_v.shape == (3, 12, 4)
    assert p.b_q.shape == (3, 4) and p.b_v.shape == (3, 4) and p.w_o.shape == (12, 12)
    assert p.b_o.shape == (12,)
    assert (p.n_heads, p.d_model, p.d_head, p.d_value, p.d_kv) == (3, 12, 4, 4, 12)
    assert np.all(p.b_q != 0) and np.all(p.b_o != 0)
    p = A.init_multi_head(6, 2, rng, d_head=5, d_value=7, d_kv=9, bias=False, dtype=np.float32)
    assert p.w_k.shape == (2, 9, 5) and p.w_v.shape == (2, 9, 7) and p.w_o.shape == (14, 6)
    assert p.b_q is None and p.b_k is None and p.b_v is None and p.b_o is None
    assert p.w_q.dtype == np.float32


def test_init_multi_head_deterministic_and_scaled():
    a = A.init_multi_head(64, 4, np.random.default_rng(7))
    b = A.init_multi_head(64, 4, np.random.default_rng(7))
    np.testing.assert_array_equal(a.w_q, b.w_q)
    np.testing.assert_array_equal(a.b_o, b.b_o)
    assert abs(a.w_q.std() * math.sqrt(64) - 1) < 0.1


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((8, 2, None), {}, TypeError, "rng"),
    ((8, 2, 0), {}, TypeError, "rng"),
    ((8, 0, "rng"), {}, ValueError, "n_heads"),
    ((2, 3, "rng"), {}, ValueError, "d_head"),
    ((8, 2, "rng"), dict(d_head=0), ValueError, "d_head"),
    ((8, 2, "rng"), dict(d_value=1.5), TypeError, "d_value"),
    ((8, 2, "rng"), dict(dtype=np.longdouble), TypeError, "dtype"),
    ((8, 2, "rng"), dict(bias=1), TypeError, "bias"),
    ((8.0, 2, "rng"), {}, TypeError, "d_model"),
])
def test_init_multi_head_errors(rng, args, kwargs, exc, match):
    args = tuple(rng if a == "rng" else a for a in args)
    with pytest.raises(exc, match=match):
        A.init_multi_head(*args, **kwargs)


def _mha_arrays(rng, h=2, e=4, dh=3, dv=5, ekv=None):
    ekv = e if ekv is None else ekv
    return dict(w_q=rng.standard_normal((h, e, dh)), w_k=rng.standard_normal((h, ekv, dh)),
                w_v=rng.standard_normal((h, ekv, dv)), b_q=rng.standard_normal((h, dh)),
                b_k=rng.standard_normal((h, dh)), b_v=rng.standard_normal((h, dv)),
                w_o=rng.standard_normal((h * dv, e)), b_o=rng.standard_normal(e))


@pytest.mark.parametrize("field, bad, exc", [
    ("w_q", np.ones((4, 3)), ValueError),
    ("w_q", None, TypeError),
    ("w_k", np.ones((3, 4, 3)), ValueError),
    ("w_k", np.ones((2, 4, 2)), ValueError),
    ("w_v", np.ones((2, 5, 5)), ValueError),
    ("b_q", np.ones((2, 4)), ValueError),
    ("b_k", np.ones(3), ValueError),
    ("b_v", np.ones((2, 3)), ValueError),
    ("w_o", np.ones((8, 4)), ValueError),
    ("b_o", np.ones(5), ValueError),
    ("w_o", np.full((10, 4), np.nan), ValueError),
    ("w_q", np.ones((2, 4, 3), np.complex128), TypeError),
])
def test_multi_head_params_validation(rng, field, bad, exc):
    arrays = _mha_arrays(rng)
    arrays[field] = bad
    with pytest.raises(exc, match=f"MultiHeadParams.{field}"):
        A.MultiHeadParams(**arrays)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("causal", [False, True, "bottom-right"])
def test_multi_head_batched_equals_per_head(rng, bias, causal):
    p = A.init_multi_head(8, 4, rng, d_head=3, d_value=5, d_kv=6, bias=bias)
    x_q, x_kv = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 7, 6))
    mask = rng.random((2, 5, 7)) < 0.8
    out = A.multi_head_attention(x_q, x_kv, p, mask=mask, causal=causal)
    ref = A.multi_head_attention_per_head(x_q, x_kv, p, mask=mask, causal=causal)
    assert out.shape == (2, 5, 8)
    assert_close(out, ref)


def test_multi_head_against_explicit_formula(rng):
    """Concat(head_1..head_H) W^O + b_o with head_h = softmax(Q_h K_h^T / sqrt(Dh)) V_h."""
    a = _mha_arrays(rng, h=2, e=4, dh=3, dv=5)
    p = A.MultiHeadParams(**a)
    x = rng.standard_normal((6, 4))
    heads = []
    for h in range(2):
        q = x @ a["w_q"][h] + a["b_q"][h]
        k = x @ a["w_k"][h] + a["b_k"][h]
        v = x @ a["w_v"][h] + a["b_v"][h]
        heads.append(naive_attention(q, k, v))
    expected = np.hstack(heads) @ a["w_o"] + a["b_o"]
    assert_close(A.self_attention(x, p), expected)
    # head order inside W^O: zeroing the rows of head 1 leaves head 0 alone
    a0 = dict(a, w_o=np.vstack([a["w_o"][:5], np.zeros((5, 4))]))
    assert_close(A.self_attention(x, A.MultiHeadParams(**a0)), heads[0] @ a["w_o"][:5] + a["b_o"])


def test_multi_head_logit_bias_per_head(rng):
    p = A.init_multi_head(6, 3, rng)
    x = rng.standard_normal((2, 4, 6))
    bias = rng.standard_normal((3, 4, 4))
    out = A.multi_head_attention(x, x, p, bias=bias)
    heads = [naive_attention(x @ p.w_q[h] + p.b_q[h], x @ p.w_k[h] + p.b_k[h],
                             x @ p.w_v[h] + p.b_v[h], bias=bias[h]) for h in range(3)]
    assert_close(out, np.concatenate(heads, -1) @ p.w_o + p.b_o)
    with pytest.raises(ValueError, match="bias"):
        A.multi_head_attention(x, x, p, bias=np.ones((2, 4, 4)))


def test_self_attention_permutation_equivariant(rng):
    p = A.init_multi_head(6, 2, rng)
    x = rng.standard_normal((5, 6))
    perm = rng.permutation(5)
    assert_close(A.self_attention(x[perm], p), A.self_attention(x, p)[perm])


def test_multi_head_dtypes(rng):
    p32 = A.init_multi_head(4, 2, rng, dtype=np.float32)
    x32 = rng.standard_normal((3, 4)).astype(np.float32)
    assert A.self_attention(x32, p32).dtype == np.float32
    assert A.multi_head_attention_per_head(x32, x32, p32).dtype == np.float32
    assert A.self_attention(x32.astype(np.float64), p32).dtype == np.float64
    p64 = A.init_multi_head(4, 2, rng)
    assert A.self_attention(x32, p64).dtype == np.float64


def test_multi_head_errors(rng):
    p = A.init_multi_head(4, 2, rng)
    x = np.ones((2, 3, 4))
    with pytest.raises(ValueError, match="x_q"):
        A.multi_head_attention(np.ones((2, 3, 5)), x, p)
    with pytest.raises(ValueError, match="x_kv"):
        A.multi_head_attention(x, np.ones((2, 3, 5)), p)
    with pytest.raises(ValueError, match="x_kv: leading"):
        A.multi_head_attention(x, np.ones((1, 3, 4)), p)
    with pytest.raises(ValueError, match="x_q"):
        A.multi_head_attention(np.ones(4), x, p)
    with pytest.raises(TypeError, match="params"):
        A.multi_head_attention(x, x, "params")
    with pytest.raises(TypeError, match="params"):
        A.multi_head_attention(x, x, A.mha_to_gqa_params(p))
    with pytest.raises(TypeError, match="mask"):
        A.self_attention(x, p, mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match="mask"):
        A.self_attention(x, p, mask=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="causal"):
        A.self_attention(x, p, causal="left")
    with pytest.raises(ValueError, match="x_q"):
        A.multi_head_attention_per_head(np.full((2, 3, 4), np.inf), x, p)


def test_cross_attention_masks(rng):
    p = A.init_multi_head(4, 2, rng, d_kv=6)
    x, mem = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 6))
    pad = np.array([[True, True, True, False, False], [True] * 5])
    out = A.cross_attention(x, mem, p, memory_mask=pad)
    assert_close(out, A.multi_head_attention(x, mem, p, mask=pad[:, None, :]))
    # padded memory positions have no influence
    mem2 = mem.copy()
    mem2[0, 3:] = 100.0
    np.testing.assert_array_equal(A.cross_attention(x, mem2, p, memory_mask=pad)[0], out[0])
    full = rng.random((2, 3, 5)) < 0.7
    assert_close(A.cross_attention(x, mem, p, memory_mask=full),
                 A.multi_head_attention(x, mem, p, mask=full))
    assert_close(A.cross_attention(x, mem, p), A.multi_head_attention(x, mem, p))


def test_cross_attention_errors(rng):
    p = A.init_multi_head(4, 2, rng)
    x, mem = np.ones((2, 3, 4)), np.ones((2, 5, 4))
    with pytest.raises(TypeError, match="memory_mask"):
        A.cross_attention(x, mem, p, memory_mask=np.ones((2, 5)))
    with pytest.raises(ValueError, match="memory_mask"):
        A.cross_attention(x, mem, p, memory_mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="memory_mask"):
        A.cross_attention(x, mem, p, memory_mask=np.ones(5, bool))
    with pytest.raises(ValueError, match="mask"):
        A.cross_attention(x, mem, p, memory_mask=np.ones((2, 3, 4), bool))
    with pytest.raises(ValueError, match="memory: leading"):
        A.cross_attention(x, np.ones((3, 5, 4)), p)


# --------------------------------------------------------------------------- grouped-query

def test_kv_group_of_head():
    assert [A.kv_group_of_head(h, 8, 2) for h in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [A.kv_group_of_head(h, 6, 3) for h in range(6)] == [0, 0, 1, 1, 2, 2]
    assert [A.kv_group_of_head(h, 4, 1) for h in range(4)] == [0, 0, 0, 0]
    assert [A.kv_group_of_head(h, 4, 4) for h in range(4)] == [0, 1, 2, 3]


def test_kv_group_of_head_errors():
    with pytest.raises(ValueError, match="n_kv_heads"):
        A.kv_group_of_head(0, 6, 4)
    with pytest.raises(ValueError, match="h"):
        A.kv_group_of_head(6, 6, 3)
    with pytest.raises(ValueError, match="h"):
        A.kv_group_of_head(-1, 6, 3)
    with pytest.raises(TypeError, match="n_heads"):
        A.kv_group_of_head(0, 6.0, 3)


def test_init_grouped_query(rng):
    p = A.init_grouped_query(12, 6, 2, rng)
    assert p.w_q.shape == (6, 12, 2) and p.w_k.shape == (2, 12, 2) and p.w_v.shape == (2, 12, 2)
    assert p.b_k.shape == (2, 2) and p.w_o.shape == (12, 12)
    assert (p.n_heads, p.n_kv_heads, p.group_size, p.d_head, p.d_value) == (6, 2, 3, 2, 2)
    p = A.init_grouped_query(8, 4, 1, rng, d_head=3, bias=False, dtype=np.float32)
    assert p.b_q is None and p.w_k.shape == (1, 8, 3) and p.w_k.dtype == np.float32
    with pytest.raises(ValueError, match="n_kv_heads"):
        A.init_grouped_query(8, 4, 3, rng)
    with pytest.raises(ValueError, match="n_kv_heads"):
        A.init_grouped_query(8, 4, 0, rng)
    with pytest.raises(TypeError, match="rng"):
        A.init_grouped_query(8, 4, 2, 42)


def test_grouped_query_params_validation(rng):
    p = A.init_grouped_query(8, 4, 2, rng)
    with pytest.raises(ValueError, match="G must divide"):
        A.GroupedQueryParams(p.w_q, np.ones((3, 8, 2)), np.ones((3, 8, 2)), None, None, None,
                             p.w_o, None)
    with pytest.raises(ValueError, match="b_k"):
        A.GroupedQueryParams(p.w_q, p.w_k, p.w_v, p.b_q, np.ones((4, 2)), p.b_v, p.w_o, p.b_o)


@pytest.mark.parametrize("h, g", [(4, 1), (4, 2), (6, 3), (4, 4)])
@pytest.mark.parametrize("causal", [False, True])
def test_grouped_query_matches_head_loop(rng, h, g, causal):
    p = A.init_grouped_query(8, h, g, rng, d_head=3)
    x = rng.standard_normal((2, 5, 8))
    out = A.grouped_query_attention(x, x, p, causal=causal)
    r = h // g
    heads = []
    for i in range(h):          # independent check of the mapping h -> h // r
        gi = i // r
        q = x @ p.w_q[i] + p.b_q[i]
        k = x @ p.w_k[gi] + p.b_k[gi]
        v = x @ p.w_v[gi] + p.b_v[gi]
        heads.append(naive_attention(q, k, v, A.causal_mask(5, 5) if causal else None))
    assert_close(out, np.concatenate(heads, -1) @ p.w_o + p.b_o)
    mha = A.gqa_to_mha_params(p)
    assert isinstance(mha, A.MultiHeadParams) and mha.w_k.shape == (h, 8, 3)
    assert_close(A.multi_head_attention(x, x, mha, causal=causal), out)


def test_mha_gqa_round_trip(rng):
    p = A.init_multi_head(6, 3, rng)
    g = A.mha_to_gqa_params(p)
    assert isinstance(g, A.GroupedQueryParams) and g.n_kv_heads == 3
    x = rng.standard_normal((4, 6))
    assert_close(A.grouped_query_attention(x, x, g, causal=True),
                 A.self_attention(x, p, causal=True))
    back = A.gqa_to_mha_params(g)
    np.testing.assert_array_equal(back.w_k, p.w_k)
    with pytest.raises(TypeError, match="params"):
        A.mha_to_gqa_params(g)
    with pytest.raises(TypeError, match="params"):
        A.gqa_to_mha_params(p)


def test_grouped_query_mask_and_bias(rng):
    p = A.init_grouped_query(8, 4, 2, rng, bias=False)
    x, mem = rng.standard_normal((3, 4, 8)), rng.standard_normal((3, 6, 8))
    mask = rng.random((3, 4, 6)) < 0.6
    bias = rng.standard_normal((4, 4, 6))
    out = A.grouped_query_attention(x, mem, p, mask=mask, bias=bias)
    assert_close(out, A.multi_head_attention(x, mem, A.gqa_to_mha_params(p), mask=mask, bias=bias))
    assert_close(A.cross_attention(x, mem, p, memory_mask=mask),
                 A.grouped_query_attention(x, mem, p, mask=mask))


def test_grouped_query_errors(rng):
    p = A.init_grouped_query(8, 4, 2, rng)
    x = np.ones((3, 8))
    with pytest.raises(ValueError, match="x_q"):
        A.grouped_query_attention(np.ones((3, 7)), x, p)
    with pytest.raises(TypeError, match="params"):
        A.grouped_query_attention(x, x, object())
    with pytest.raises(TypeError, match="mask"):
        A.grouped_query_attention(x, x, p, mask=np.ones((3, 3), np.int8))


# --------------------------------------------------------------------------- KV cache

@pytest.mark.parametrize("make", [
    lambda rng: A.init_multi_head(8, 2, rng, d_head=3, d_value=5),
    lambda rng: A.init_grouped_query(8, 4, 2, rng, d_head=3),
    lambda rng: A.init_grouped_query(8, 4, 1, rng, d_head=4, bias=False),
])
def test_decode_sequence_equals_causal_forward(rng, make):
    p = make(rng)
    x = rng.standard_normal((2, 6, 8))
    full = A.grouped_query_attention(x, x, p, causal=True)
    assert_close(A.decode_sequence(x, p), full)


def test_decode_step_bottom_right_and_no_mutation(rng):
    p = A.init_multi_head(6, 2, rng)
    x = rng.standard_normal((3, 4, 6))
    cache = A.init_kv_cache(p, (3,), 5)
    assert cache.k.shape == (3, 2, 5, 3) and cache.v.shape == (3, 2, 5, 3) and cache.length == 0
    for t in range(4):
        k_before, v_before = cache.k.copy(), cache.v.copy()
        y_t, new = A.decode_step(x[:, t:t + 1], p, cache)
        np.testing.assert_array_equal(cache.k, k_before)     # input cache untouched
        np.testing.assert_array_equal(cache.v, v_before)
        assert cache.length == t and new.length == t + 1 and new.k is not cache.k
        # one query against t+1 keys, bottom-right aligned
        prefix = x[:, :t + 1]
        ref = A.multi_head_attention(x[:, t:t + 1], prefix, p, causal="bottom-right")
        assert y_t.shape == (3, 1, 6)
        assert_close(y_t, ref)
        cache = new
    np.testing.assert_array_equal(cache.k[..., 4:, :], 0.0)


def test_decode_step_dtypes(rng):
    p = A.init_grouped_query(4, 2, 1, rng, dtype=np.float32)
    x = rng.standard_normal((1, 4)).astype(np.float32)
    cache = A.init_kv_cache(p, (), 3, dtype=np.float32)
    y, new = A.decode_step(x, p, cache)
    assert y.dtype == np.float32 and new.k.dtype == np.float32
    assert A.decode_sequence(rng.standard_normal((2, 4)).astype(np.float32), p).dtype == np.float32
    y, new = A.decode_step(x, p, A.init_kv_cache(p, (), 3))
    assert y.dtype == np.float64 and new.k.dtype == np.float64


def test_decode_step_errors(rng):
    p = A.init_multi_head(4, 2, rng)
    cache = A.init_kv_cache(p, (2,), 2)
    x = np.ones((2, 1, 4))
    with pytest.raises(ValueError, match="x_t"):
        A.decode_step(np.ones((2, 2, 4)), p, cache)
    with pytest.raises(ValueError, match="x_t"):
        A.decode_step(np.ones((2, 1, 5)), p, cache)
    with pytest.raises(ValueError, match="x_t: leading"):
        A.decode_step(np.ones((3, 1, 4)), p, cache)
    with pytest.raises(TypeError, match="cache"):
        A.decode_step(x, p, (cache.k, cache.v))
    with pytest.raises(ValueError, match="cache"):
        A.decode_step(x, A.init_multi_head(4, 4, rng), cache)
    with pytest.raises(ValueError, match="d_kv"):
        A.decode_step(x, A.init_multi_head(4, 2, rng, d_kv=3), cache)
    _, c1 = A.decode_step(x, p, cache)
    _, c2 = A.decode_step(x, p, c1)
    with pytest.raises(ValueError, match="full"):
        A.decode_step(x, p, c2)
    with pytest.raises(ValueError, match="x"):
        A.decode_sequence(np.ones((2, 0, 4)), p)


def test_kv_cache_validation_and_init_errors(rng):
    with pytest.raises(ValueError, match="KVCache.v"):
        A.KVCache(np.zeros((2, 4, 3)), np.zeros((2, 5, 3)), 0)
    with pytest.raises(ValueError, match="KVCache.length"):
        A.KVCache(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)), 5)
    with pytest.raises(ValueError, match="KVCache.length"):
        A.KVCache(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)), -1)
    with pytest.raises(ValueError, match="KVCache.k"):
        A.KVCache(np.zeros((4, 3)), np.zeros((4, 3)), 0)
    p = A.init_multi_head(4, 2, rng)
    with pytest.raises(ValueError, match="max_len"):
        A.init_kv_cache(p, (2,), 0)
    with pytest.raises(TypeError, match="dtype"):
        A.init_kv_cache(p, (2,), 3, dtype=np.int32)
    with pytest.raises(TypeError, match="batch_shape"):
        A.init_kv_cache(p, "2", 3)
    with pytest.raises(TypeError, match="params"):
        A.init_kv_cache(None, (2,), 3)
    assert A.init_kv_cache(p, 2, 3).k.shape == (2, 2, 3, 2)


def test_kv_cache_bytes():
    assert A.kv_cache_bytes(2, 3, 4, 5, 6, np.float32) == 2 * 2 * 3 * 4 * 5 * 6 * 4
    # Llama-2-7B-like: 32 layers, 32 kv heads of 128, 4096 tokens, fp16 -> 2 GiB
    assert A.kv_cache_bytes(32, 32, 128, 4096, 1, np.float16) == 2 * 1024 ** 3
    with pytest.raises(ValueError, match="n_layers"):
        A.kv_cache_bytes(0, 1, 1, 1, 1)
    with pytest.raises(TypeError, match="d_head"):
        A.kv_cache_bytes(1, 1, 1.0, 1, 1)
    with pytest.raises(TypeError, match="dtype"):
        A.kv_cache_bytes(1, 1, 1, 1, 1, dtype="not a dtype")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kv_cache_nbytes_matches_formula(rng, dtype):
    for p in (A.init_multi_head(16, 4, rng), A.init_grouped_query(16, 4, 2, rng),
              A.init_grouped_query(16, 4, 1, rng, d_head=8)):
        cache = A.init_kv_cache(p, (3,), 7, dtype=dtype)
        assert cache.nbytes == A.kv_cache_bytes(1, p.n_kv_heads, p.d_head, 7, 3, dtype)


# --------------------------------------------------------------------------- NaN poisoning
# Issue 14: k and v (x_kv, memory) may be non-finite only at keys no query may attend;
# the output is then exactly the output with those keys set to 0. q stays checked.


def _poison(a, index, value=np.nan):
    """A copy of ``a`` with ``a[index] = value``, and one with the whole key row zeroed."""
    bad, zeroed = a.copy(), a.copy()
    bad[index] = value
    zeroed[index[:-1]] = 0
    return bad, zeroed


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_at_a_masked_key_is_accepted_and_acts_as_zero(rng, dtype, value):
    q = rng.standard_normal((2, 3, 4)).astype(dtype)                      # (B, Lq, E)
    k = rng.standard_normal((2, 5, 4)).astype(dtype)                      # (B, Lk, E)
    v = rng.standard_normal((2, 5, 6)).astype(dtype)                      # (B, Lk, Ev)
    mask = np.ones((2, 1, 5), dtype=bool)                                 # key padding
    mask[0, :, 3] = False
    k_bad, k_zero = _poison(k, (0, 3, 1), value)
    v_bad, v_zero = _poison(v, (0, 3, 5), value)
    out = A.attention(q, k_bad, v_bad, mask=mask)
    assert out.dtype == dtype and np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, A.attention(q, k_zero, v_zero, mask=mask))
    np.testing.assert_array_equal(A.attention_weights(q, k_bad, mask=mask),
                                  A.attention_weights(q, k_zero, mask=mask))
    assert_close(out, naive_attention(q, k_zero, v_zero, allowed=mask), dtype=dtype)


@pytest.mark.parametrize("causal, lq, lk, dead", [
    (True, 2, 5, (2, 3, 4)),                  # top-left: keys j >= Lq are seen by nobody
    ("top-left", 3, 4, (3,)),
])
def test_nan_beyond_the_causal_mask_is_accepted(rng, causal, lq, lk, dead):
    q, k, v = (rng.standard_normal((lq, 3)), rng.standard_normal((lk, 3)),
               rng.standard_normal((lk, 2)))
    k_bad, v_bad, k_zero, v_zero = k.copy(), v.copy(), k.copy(), v.copy()
    for j in dead:
        k_bad[j, 0], v_bad[j, 1] = np.nan, np.inf
        k_zero[j], v_zero[j] = 0, 0
    np.testing.assert_array_equal(A.attention(q, k_bad, v_bad, causal=causal),
                                  A.attention(q, k_zero, v_zero, causal=causal))
    with pytest.raises(ValueError, match=r"^k: .*key \d, which a query may attend"):
        A.attention(q, k_bad, v_bad, causal="bottom-right")   # the last query sees every key


def test_every_query_fully_masked_accepts_nan_anywhere_in_k_and_v(rng):
    q = rng.standard_normal((3, 2))
    k, v = np.full((4, 2), np.nan), np.full((4, 5), np.inf)
    out = A.attention(q, k, v, mask=np.zeros((3, 4), dtype=bool))
    np.testing.assert_array_equal(out, np.zeros((3, 5)))
    np.testing.assert_array_equal(A.attention(np.ones((0, 2)), k, v), np.zeros((0, 5)))


@pytest.mark.parametrize("name", ["k", "v"])
def test_nan_at_an_attended_key_names_the_argument(rng, name):
    q, k, v = (rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)),
               rng.standard_normal((2, 5, 6)))
    mask = np.ones((2, 3, 5), dtype=bool)
    mask[0, :, 2] = False                  # key 2 is dead in batch 0 only ...
    mask[1, :2, 2] = False                 # ... and attended by one query in batch 1
    args = {"k": k, "v": v}
    bad = args[name] = args[name].copy()
    bad[0, 2, 0] = np.nan                  # accepted: no query of batch 0 sees key 2
    A.attention(q, args["k"], args["v"], mask=mask)
    bad[1, 2, 0] = np.nan                  # refused: query 2 of batch 1 sees key 2
    with pytest.raises(ValueError) as exc:
        A.attention(q, args["k"], args["v"], mask=mask)
    msg = str(exc.value)
    assert msg.startswith(f"{name}: contains NaN or infinite values at key 2 of batch index (1,)")
    assert "\n" not in msg


def test_q_stays_checked_everywhere_even_in_a_fully_masked_row(rng):
    q, k, v = rng.standard_normal((3, 2)), rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    q[0, 0] = np.nan
    mask = np.ones((3, 4), dtype=bool)
    mask[0] = False
    with pytest.raises(ValueError, match="^q: contains NaN"):
        A.attention(q, k, v, mask=mask)
    with pytest.raises(ValueError, match="^q: contains NaN"):
        A.attention_weights(q, k, mask=mask)


def test_hard_attention_still_refuses_any_nan(rng):
    k = rng.standard_normal((4, 2))
    k[3, 0] = np.nan
    with pytest.raises(ValueError, match="^k: contains NaN"):
        A.hard_attention(rng.standard_normal((3, 2)), k, rng.standard_normal((4, 2)),
                         mask=np.array([[True, True, True, False]]))


@pytest.mark.parametrize("gqa", [False, True])
def test_nan_in_masked_rows_of_x_kv_acts_as_zero(rng, gqa):
    p = A.init_grouped_query(6, 4, 2, rng) if gqa else A.init_multi_head(6, 3, rng, d_kv=5)
    x_q = rng.standard_normal((2, 3, 6))                                  # (B, Lq, E)
    x_kv = rng.standard_normal((2, 4, p.d_kv))                            # (B, Lk, Ekv)
    mask = np.ones((2, 3, 4), dtype=bool)
    mask[1, :, 0] = False
    bad, zero = _poison(x_kv, (1, 0, 2))
    call = A.grouped_query_attention if gqa else A.multi_head_attention
    np.testing.assert_array_equal(call(x_q, bad, p, mask=mask), call(x_q, zero, p, mask=mask))
    if not gqa:
        np.testing.assert_array_equal(A.multi_head_attention_per_head(x_q, bad, p, mask=mask),
                                      A.multi_head_attention_per_head(x_q, zero, p, mask=mask))
    with pytest.raises(ValueError, match=r"^x_kv: .*key 0 of batch index \(1,\)"):
        call(x_q, bad, p)


def test_nan_in_padded_memory_acts_as_zero(rng):
    p = A.init_multi_head(4, 2, rng, d_kv=3)
    x, memory = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 3))
    real = np.ones((2, 5), dtype=bool)
    real[0, 4] = False
    bad, zero = _poison(memory, (0, 4, 1), np.inf)
    np.testing.assert_array_equal(A.cross_attention(x, bad, p, memory_mask=real),
                                  A.cross_attention(x, zero, p, memory_mask=real))
    with pytest.raises(ValueError, match=r"^memory: .*key 4 of batch index \(0,\)"):
        A.cross_attention(x, bad, p)


def test_attention_backward_nan_at_a_masked_key_acts_as_zero(rng):
    q, k, v = (rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)),
               rng.standard_normal((2, 5, 2)))
    d_out = rng.standard_normal((2, 3, 2))
    mask = np.ones((2, 1, 5), dtype=bool)
    mask[1, :, 4] = False
    k_bad, k_zero = _poison(k, (1, 4, 0))
    v_bad, v_zero = _poison(v, (1, 4, 1), np.inf)
    got = G.attention_backward(q, k_bad, v_bad, d_out, mask=mask)
    expected = G.attention_backward(q, k_zero, v_zero, d_out, mask=mask)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    assert np.all(got[1][1, 4] == 0) and np.all(got[2][1, 4] == 0)
    with pytest.raises(ValueError, match=r"^k: .*key 4 of batch index \(1,\)"):
        G.attention_backward(q, k_bad, v, d_out)


def test_softcap_is_applied_after_scaling_and_before_the_bias():
    # one query, two keys: scaled logits (4, 0), cap 1 -> (tanh 4, 0), then bias (0, 1)
    q, k = np.array([[2.0]]), np.array([[2.0], [0.0]])
    w = A.attention_weights(q, k, scale=1.0, softcap=1.0, bias=np.array([[0.0, 1.0]]))
    expected = np.exp([np.tanh(4.0), 1.0]) / np.exp([np.tanh(4.0), 1.0]).sum()
    np.testing.assert_allclose(w[0], expected, rtol=1e-15)
    # a masked key keeps weight 0 under a cap (the cap does not touch -inf)
    w = A.attention_weights(q, k, softcap=0.5, mask=np.array([[True, False]]))
    assert w[0, 1] == 0.0 and w[0, 0] == 1.0


def test_segment_ids_pack_documents_like_cu_seqlens():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 7, 3)) for _ in range(3))
    cu_seqlens = np.array([0, 3, 4, 7])
    seg = np.repeat(np.arange(3), np.diff(cu_seqlens))              # [0 0 0 1 2 2 2]
    out = A.attention(q, k, v, causal=True, segment_ids=seg)
    alone = [A.attention(q[:, a:b], k[:, a:b], v[:, a:b], causal=True)
             for a, b in zip(cu_seqlens[:-1], cu_seqlens[1:])]
    np.testing.assert_allclose(out, np.concatenate(alone, axis=1), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="segment_ids: expected a shape broadcastable"):
        A.attention(q, k, v, segment_ids=np.zeros(5, int))


# --------------------------------------------------------------------------- padded decoding

def _gqa(seed=0, e=8, h=4, g=2):
    rng = np.random.default_rng(seed)
    return A.init_grouped_query(e, h, g, rng), rng


def test_decode_with_rope_equals_the_causal_forward():
    params, rng = _gqa()
    x = rng.standard_normal((2, 6, 8))
    full = A.grouped_query_attention(x, x, params, causal=True, rope_base=100.0)
    cache = A.init_kv_cache(params, (2,), 6)
    rows = []
    for t in range(6):
        y, cache = A.decode_step(x[:, t:t + 1], params, cache, rope_base=100.0)
        rows.append(y)
    assert_close(np.concatenate(rows, axis=1), full)
    plain = A.grouped_query_attention(x, x, params, causal=True)
    assert relative_error(full, plain) > 1e-3          # the rotation is applied


def test_left_padded_decode_equals_each_sequence_alone_and_padding_may_be_nan():
    params, rng = _gqa(1)
    a, b = rng.standard_normal((5, 8)), rng.standard_normal((3, 8))
    x = np.full((2, 5, 8), np.nan)
    x[0], x[1, 2:] = a, b
    cache = A.init_kv_cache(params, (2,), 5)
    rows = []
    for t in range(5):
        y, cache = A.decode_step(x[:, t:t + 1], params, cache, positions=np.array([t, t - 2]),
                                 rope_base=10.0)
        rows.append(y)
    out = np.concatenate(rows, axis=1)
    alone = A.grouped_query_attention(b[None], b[None], params, causal=True, rope_base=10.0)
    assert_close(out[1, 2:], alone[0])
    np.testing.assert_array_equal(out[1, :2], 0)       # padding tokens: zero rows


@pytest.mark.parametrize("call, exc, match", [
    (lambda p, c: A.decode_step(np.ones((2, 1, 8)), p, c, positions=np.array([1, 0])),
     ValueError, "positions: expected at most the cache length 0"),
    (lambda p, c: A.decode_step(np.ones((2, 1, 8)), p, c, positions=np.array([0.0, 0.0])),
     TypeError, "positions: expected an integer array"),
    (lambda p, c: A.decode_step(np.full((2, 1, 8), np.nan), p, c),
     ValueError, "x_t: contains NaN .* batch index \\(0,\\)"),
    (lambda p, c: A.decode_step(np.ones((2, 1, 8)), p, c, rope_base=-1.0),
     ValueError, "rope_base"),
])
def test_decode_refuses(call, exc, match):
    params, _ = _gqa()
    with pytest.raises(exc, match=match):
        call(params, A.init_kv_cache(params, (2,), 4))


def test_decode_refuses_nan_in_an_attended_cache_slot():
    params, _ = _gqa()
    cache = A.init_kv_cache(params, (2,), 4)
    _, cache = A.decode_step(np.ones((2, 1, 8)), params, cache)
    k = cache.k.copy()
    k[1, :, 0] = np.nan
    with pytest.raises(ValueError, match="cache: k holds NaN .* position 0 of batch index \\(1,\\)"):
        A.decode_step(np.ones((2, 1, 8)), params, A.KVCache(k, cache.v, 1))


def test_rope_base_needs_self_attention():
    params, rng = _gqa()
    with pytest.raises(ValueError, match="rope_base: rotary positions need self-attention"):
        A.grouped_query_attention(rng.standard_normal((3, 8)), rng.standard_normal((4, 8)),
                                  params, rope_base=100.0)
