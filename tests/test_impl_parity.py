"""Chiang & Cholak's PARITY and FIRST transformers (impl/constructions/parity.py) and the
one-layer hard-attention restriction (impl/constructions/hard_restriction.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from transformer_theory.impl.constructions import hard_restriction as HR
from transformer_theory.impl.constructions import parity as PT
from transformer_theory.impl.constructions.toolkit import Head, Layer, Ops, run_layer


def _all_strings(n):
    return np.array(list(itertools.product((0, 1), repeat=n)))


@pytest.mark.parametrize("language", PT.LANGUAGES)
@pytest.mark.parametrize("layer_norm", [False, True])
def test_decides_every_short_string(language, layer_norm):
    model = PT.build_parity_transformer(language, layer_norm=layer_norm)
    for n in range(1, 9):
        words = _all_strings(n)
        z = PT.logits(model, words)
        accept = PT.member(language, words)
        assert np.all(z[accept] > 0) and np.all(z[~accept] < 0)


@pytest.mark.parametrize("language", PT.LANGUAGES)
@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_plain_logit_is_the_closed_form(language, beta):
    model = PT.build_parity_transformer(language, beta=beta)
    for n in (1, 2, 5, 40, 301):
        words = np.random.default_rng(n).integers(0, 2, size=(6, n))
        z = PT.logits(model, words)
        expected = [PT.plain_margin(language, n, beta, a) for a in PT.member(language, words)]
        np.testing.assert_allclose(z, expected, rtol=1e-11)


def test_plain_margins_fall_like_one_over_n_and_n_squared():
    """n |z_FIRST| -> e^beta / 2 and N^2 |z_PARITY| -> 2 tanh(beta) (the docstring's limits)."""
    beta, n = 1.0, 10 ** 6
    assert n * PT.plain_margin("first", n, beta, True) == pytest.approx(np.exp(beta) / 2, rel=1e-5)
    assert (n + 1) ** 2 * PT.plain_margin("parity", n, beta, True) == \
        pytest.approx(2 * np.tanh(beta), rel=1e-5)
    assert (n + 1) ** 2 * -PT.plain_margin("parity", n, beta, False) == \
        pytest.approx(2 * np.tanh(beta), rel=1e-5)


@pytest.mark.parametrize("language, width", [("parity", 9), ("first", 6)])
def test_layer_norm_logit_is_sqrt_width_at_every_length(language, width):
    model = PT.build_parity_transformer(language, layer_norm=True)
    assert model.doubled and model.width == 2 * width
    for n in (3, 50, 600):
        words = np.random.default_rng(n).integers(0, 2, size=(4, n))
        z = PT.logits(model, words)
        signs = np.where(PT.member(language, words), 1.0, -1.0)
        np.testing.assert_allclose(z, signs * np.sqrt(width), rtol=1e-9)


def test_positive_eps_brings_the_fading_back():
    """eps > 0: the last LayerNorm gives z / sqrt(z^2/W + eps), small once z^2 << W eps."""
    model = PT.build_parity_transformer("first", layer_norm=True, eps=1e-2)
    z = PT.logits(model, np.array([[1] + [0] * 999]))[0]
    assert 0 < z < 0.5 * np.sqrt(model.layout.width)
    assert PT.layer_norm_logit(model, True, 1e-3) == pytest.approx(1e-3 / np.sqrt(1e-6 / 6 + 1e-2))


def test_post_norm_layer_normalises_each_residual_sum():
    """toolkit.Layer(post_norm_eps=...): x <- LN(x + attention), then x <- LN(x + FFN)."""
    rng = np.random.default_rng(0)
    w = 4
    head = Head(w_q=rng.normal(size=(w, 2)), w_k=rng.normal(size=(w, 2)),
                w_v=rng.normal(size=(w, 2)), w_o=rng.normal(size=(2, w)))
    x = rng.normal(size=(2, 5, w))
    ops = Ops()

    def attend(q, k, v, *, mask):
        return ops.attention(q, k, v, mask=mask, scale=1.0)
    plain, _ = run_layer(x, Layer("l", (head,)), attend, False, ops, 5)
    normed, _ = run_layer(x, Layer("l", (head,), post_norm_eps=0.0), attend, False, ops, 5)
    np.testing.assert_allclose(normed, ops.layer_norm(plain, eps=0.0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(language="dyck"), "language"),
    (dict(beta=0.0), "beta"),
    (dict(beta=float("nan")), "beta"),
    (dict(eps=-1e-5), "eps"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PT.build_parity_transformer(**kwargs)


@pytest.mark.parametrize("words", [np.array([0, 1, 1]), np.zeros((2, 0)), np.array([[0, 2]])])
def test_bad_words_are_named(words):
    with pytest.raises(ValueError, match="words"):
        PT.logits(PT.build_parity_transformer(), words)


def test_member_rejects_unknown_language():
    with pytest.raises(ValueError, match="language"):
        PT.member("dyck", np.zeros((1, 3)))


# --- the one-layer restriction (impl/constructions/hard_restriction.py) ----------------------


@pytest.mark.parametrize("heads", [1, 2, 3])
def test_restriction_fixes_at_most_one_bit_per_head_and_pins_the_output(heads):
    rng = np.random.default_rng(heads)
    for _ in range(5):
        model = HR.random_hard_classifier(rng, 9, heads)
        fixed = HR.restriction(model)
        assert fixed is not None and len(fixed) <= heads
        z = HR.cls_logits(model, HR.completions(9, fixed))
        assert np.ptp(z) == 0.0


def test_without_the_restriction_the_output_reads_the_bits():
    """The restriction does the work: the same classifiers are not constant on all strings."""
    rng = np.random.default_rng(0)
    varied = sum(np.ptp(HR.cls_logits(m, HR.completions(8, {}))) > 0
                 for m in (HR.random_hard_classifier(rng, 8, 2) for _ in range(8)))
    assert varied >= 6


def test_completions_agree_with_the_fixed_bits():
    words = HR.completions(5, {1: 1, 3: 0})
    assert words.shape == (8, 5)
    assert np.all(words[:, 1] == 1) and np.all(words[:, 3] == 0)
    assert len({tuple(w) for w in words}) == 8


def test_hard_classifier_bad_input_is_named():
    model = HR.random_hard_classifier(np.random.default_rng(0), 4, 1)
    with pytest.raises(ValueError, match="words"):
        HR.cls_logits(model, np.zeros((2, 5), dtype=int))
    with pytest.raises(ValueError, match="n, heads"):
        HR.random_hard_classifier(np.random.default_rng(0), 0, 1)
