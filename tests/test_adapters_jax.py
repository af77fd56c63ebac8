"""The JAX adapter: jax.nn.dot_product_attention and flax-free functions.

Optional: every test here is skipped, with a clear message, when JAX is not
installed (CI does not install it). JAX compiles once per input shape, so the
claims are run only on a few shapes here (``transformer-theory check jax`` runs
them all).
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
from transformer_theory.theory.conformance import check, load_subject  # noqa: E402
from transformer_theory.theory.builtin_subjects import SUBJECTS  # noqa: E402

F32 = dict(rtol=2e-5, atol=2e-5)


def test_jax_is_a_check_target_but_not_in_the_test_matrix():
    assert "jax" not in SUBJECTS
    s = load_subject("jax")
    assert s.name == "jax" and s.options["layout"] == "(B, L, H, E)"
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


@pytest.mark.slow   # JAX compiles each drawn shape: about a minute
def test_check_jax_reports_the_conventions():
    report = check("jax", "attention.fully_masked_row_zero,gradients.softmax_jacobian*",
                   profile="ci")
    assert report.passed, report.format_table()
    assert report.conventions["fully_masked_row"]["attention"] == "uniform"
    assert report.results[0].conventions["layout"] == "(B, L, H, E)"
