"""The JAX adapter: jax.nn.dot_product_attention and flax-free functions.

Optional: every test here is skipped, with a clear message, when JAX is not
installed (CI does not install it). The adapter compiles once per shape
bucket (its inputs padded to powers of two); the claims are run only on a few
shapes here (``transformer-theory check jax`` runs them all).
"""

from __future__ import annotations

import numpy as np
import pytest
from seeded import rng

jax = pytest.importorskip(
    "jax", reason="JAX is not installed: the jax adapter is optional (pip install jax jaxlib)")

from transformer_theory.impl import attention as A  # noqa: E402
from transformer_theory.impl import gradients as D  # noqa: E402
from transformer_theory.impl import layers as N  # noqa: E402
from transformer_theory.impl.adapters import jax as JA  # noqa: E402
from transformer_theory.impl.contract.validate import causal_triangle  # noqa: E402
from transformer_theory.theory.conformance import check, load_subject  # noqa: E402
from transformer_theory.theory.builtin_subjects import SUBJECTS  # noqa: E402

F32 = dict(rtol=2e-5, atol=2e-5)


def test_jax_is_a_check_target_but_not_in_the_test_matrix():
    assert "jax" not in SUBJECTS
    s = load_subject("jax")
    # its callables move JAX's (B, T, N, H) axes themselves: no layout declared (d7786fe)
    assert s.name == "jax" and "layout" not in s.options
    assert s.options["fully_masked_row"]["attention"] == "uniform"
    assert jax.config.jax_enable_x64


@pytest.mark.parametrize("causal", [False, True, "bottom-right"])
def test_attention_matches_the_reference_to_float32(causal):
    q = rng().standard_normal((2, 3, 4, 5))
    k = rng(1).standard_normal((2, 3, 6, 5))
    v = rng(2).standard_normal((2, 3, 6, 2))                 # Ev != E: padded for JAX
    out = JA.attention(q, k, v, causal=causal, scale=0.7)
    assert out.shape == (2, 3, 4, 2) and out.dtype == np.float64
    np.testing.assert_allclose(out, A.attention(q, k, v, causal=causal, scale=0.7), **F32)
    np.testing.assert_allclose(JA.attention_weights(q, k, causal=causal),
                               A.attention_weights(q, k, causal=causal), **F32)


def test_float64_attention_has_a_float32_softmax():
    # A documented difference (compute_dtype), not a bug of the adapter.
    q = rng().standard_normal((1, 4, 3))
    err = np.max(np.abs(JA.attention(q, q, q) - A.attention(q, q, q)))
    assert 1e-12 < err < 1e-5


def test_fully_masked_row_is_the_uniform_average():
    q = rng().standard_normal((3, 4))
    v = rng(1).standard_normal((3, 2))
    mask = np.ones((3, 3), dtype=bool)
    mask[1] = False
    out = JA.attention(q, q, v, mask=mask)
    np.testing.assert_allclose(out[1], v.mean(axis=0), **F32)


def test_gqa_softmax_layer_norm_ffn():
    p = A.init_grouped_query(8, 4, 2, rng(), d_head=3)
    x = rng(1).standard_normal((2, 3, 8))
    np.testing.assert_allclose(JA.grouped_query_attention(x, x, p, causal=True),
                               A.grouped_query_attention(x, x, p, causal=True), **F32)
    y = rng(2).standard_normal((3, 6))
    np.testing.assert_allclose(JA.softmax(y), A.softmax(y), rtol=1e-14)
    np.testing.assert_allclose(JA.layer_norm(y, eps=0.1), N.layer_norm(y, eps=0.1), rtol=1e-12)
    fp = N.init_ffn(6, 5, rng(3))
    for act in ("relu", "gelu", "tanh", "sigmoid"):
        np.testing.assert_allclose(JA.feed_forward(y, fp, activation=act),
                                   N.feed_forward(y, fp, activation=act), rtol=1e-12, atol=1e-12)
    assert JA.softmax(y.astype(np.float32)).dtype == np.float32


def test_vjp_matches_reference_gradients():
    x = rng().standard_normal((3, 5))
    g = rng(1).standard_normal((3, 5))
    np.testing.assert_allclose(JA.softmax_backward(x, g), D.softmax_backward(x, g), atol=1e-14)
    np.testing.assert_allclose(JA.softmax_jacobian(x), D.softmax_jacobian(x), atol=1e-14)
    for ours, ref in zip(JA.layer_norm_backward(x, g, eps=0.1), D.layer_norm_backward(x, g, eps=0.1)):
        np.testing.assert_allclose(ours, ref, atol=1e-12)
    q = rng(2).standard_normal((2, 3, 4))
    v = rng(3).standard_normal((2, 3, 2))
    dout = rng(4).standard_normal((2, 3, 2))
    for ours, ref in zip(JA.attention_backward(q, q, v, dout, causal=True),
                         D.attention_backward(q, q, v, dout, causal=True)):
        np.testing.assert_allclose(ours, ref, **F32)


def _unpadded(monkeypatch):
    """Make the adapter compile every call at its own shape (no padding), for comparison."""
    monkeypatch.setattr(JA, "_buckets", lambda sizes, smallest, arrays=None: tuple(sizes))


def _attention_case(r, dtype=np.float64):
    lead = tuple(int(n) for n in r.integers(1, 4, size=r.integers(0, 3)))
    lq, lk, e, ev = (int(n) for n in r.integers(1, 13, 4))
    q, k = (r.standard_normal(lead + (n, e)).astype(dtype) for n in (lq, lk))
    v = r.standard_normal(lead + (lk, ev)).astype(dtype)
    mask = r.random(lead + (lq, lk)) < 0.7
    mask[..., 0, :] = False                                   # a fully masked row
    causal = (False, True, "bottom-right")[int(r.integers(3))]
    return q, k, v, mask, causal


def test_padded_keys_get_exactly_zero_weight():
    # Lk = 3 keys padded to a bucket of 16: a masked key's weight is exactly 0 and a
    # fully masked row exactly the float32 uniform 1/Lk over the 3 real keys only.
    q = rng().standard_normal((2, 4, 5))
    k = rng(1).standard_normal((2, 3, 5))
    mask = rng(2).random((2, 4, 3)) < 0.6
    mask[:, 1] = False
    mask[:, 0] = [True, False, True]
    w = JA.attention_weights(q, k, mask=mask)
    live = np.ones(mask.shape, dtype=bool)
    live[:, 1] = False
    assert np.all(w[~mask & live] == 0.0) and np.all(w[mask] > 0.0)
    assert np.all(w[:, 1] == np.float64(np.float32(1) / np.float32(3)))
    np.testing.assert_array_equal(w.sum(-1) > 0.99, True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bucketed_calls_equal_unpadded_ones(dtype, monkeypatch):
    # Padding adds only exact zeros to every sum (the proof in the adapter), but XLA
    # may add the real terms in another order for another shape: equal up to a few
    # roundings of the compute dtype (float32 for the softmax of attention).
    r = rng(7)
    cases = [_attention_case(r, dtype) for _ in range(6)]
    x = r.standard_normal((3, 2, 5)).astype(dtype)
    g = r.standard_normal(x.shape).astype(dtype)
    fp = N.init_ffn(5, 7, r)
    gamma, beta = r.standard_normal(5), r.standard_normal(5)

    def calls():
        out = []
        for q, k, v, mask, causal in cases:
            out.append(JA.attention(q, k, v, mask=mask, causal=causal))
            out.extend(JA.attention_backward(q, k, v, np.ones(q.shape[:-1] + v.shape[-1:]),
                                             mask=mask, causal=causal))
        out += [JA.softmax(x, axis=1), JA.softmax_backward(x, g, axis=0), JA.tanh(x),
                JA.layer_norm(x, gamma, beta), *JA.layer_norm_backward(x, g, gamma, beta),
                JA.feed_forward(x, fp, activation="gelu"),
                JA.feed_forward_backward(x, fp, g, activation="sigmoid")[0]]
        return out

    padded = calls()
    _unpadded(monkeypatch)
    eps = np.finfo(np.float32).eps
    for a, b in zip(padded, calls()):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=0, atol=16 * eps * max(1.0, np.abs(b).max()))


def test_many_drawn_shapes_compile_one_executable():
    r = rng(11)
    before = JA.compile_stats()["compilations"]
    for _ in range(40):                 # lead up to (3, 3), Lq, Lk, E, Ev in 1..12
        q, k, v, mask, causal = _attention_case(r)
        expected = A.attention(q, k, v, mask=mask, causal=causal)
        allowed = mask if causal is False else mask & causal_triangle(
            q.shape[-2], k.shape[-2], "top-left" if causal is True else causal)
        dead = ~allowed.any(-1)                                 # uniform rows (JAX)
        expected[dead] = np.broadcast_to(v.mean(-2, keepdims=True), expected.shape)[dead]
        np.testing.assert_allclose(JA.attention(q, k, v, mask=mask, causal=causal),
                                   expected, **F32)
    assert JA.compile_stats()["compilations"] - before <= 1     # one bucket, float64
    assert JA.compile_stats()["cached"] <= JA.compile_stats()["maxsize"]


def test_executable_cache_is_a_bounded_lru():
    cache = JA._Executables(3)
    for n in range(1, 7):
        np.testing.assert_array_equal(cache(JA._tanh_j, (), np.zeros(n)), np.zeros(n))
    assert (len(cache), cache.compilations) == (3, 6)
    cache(JA._tanh_j, (), np.zeros(6))                          # cached
    assert cache.compilations == 6
    cache(JA._tanh_j, (), np.zeros(1))                          # evicted: compiled again
    assert (len(cache), cache.compilations) == (3, 7)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: JA.attention(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 3))), ValueError, "k"),
    (lambda: JA.attention(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), causal="x"),
     ValueError, "causal"),
    (lambda: JA.layer_norm(np.zeros((2, 3)), np.ones(2)), ValueError, "gamma"),
    (lambda: JA.feed_forward(np.zeros((2, 3)), object()), TypeError, "params"),
    (lambda: JA.softmax_backward(np.zeros(3), np.zeros(2)), ValueError, "d_out"),
])
def test_jax_adapter_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.slow   # about half a minute
def test_check_jax_reports_the_conventions():
    report = check("jax", "attention.fully_masked_row_zero,gradients.softmax_jacobian*",
                   profile="ci")
    assert report.passed, report.format_table()
    assert report.conventions["fully_masked_row"]["attention"] == "uniform"
    assert "layout" not in report.results[0].conventions
