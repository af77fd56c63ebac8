"""Conformance: the reference gradients, loading subjects, check, the CLI, and the
user-path mutants of tests/mutants/ (loaded by target, run through check) with their
kill rate."""

from __future__ import annotations

import io
import json
import math
import sys
import warnings
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
from seeded import rng

from transformer_theory.impl import attention as A
from transformer_theory.impl import gradients as D
from transformer_theory.impl import positional as P
from transformer_theory.impl.layers import FFNParams
from transformer_theory.theory import cli
from transformer_theory.theory.conformance import (KINDS, CheckReport, Subject, TargetError,
                                                   applicable_claims, check, checkable_claims,
                                                   conformance_claims, load_subject,
                                                   parse_options)
from transformer_theory.theory.subject import CALLABLES, OPTIONS, convention
from transformer_theory.theory.builtin_subjects import reference_subject

RNG = np.random.default_rng(20170612)
THIS = __name__


# ===========================================================================
# impl/gradients.py: the reference backward passes
# ===========================================================================

def test_softmax_jacobian_known_values():
    jac = D.softmax_jacobian(np.array([0.0, 0.0]))
    np.testing.assert_allclose(jac, [[0.25, -0.25], [-0.25, 0.25]], atol=1e-15)


def test_softmax_jacobian_masked_entry_has_zero_row_and_column():
    jac = D.softmax_jacobian(np.array([[0.0, -np.inf, 0.0]]))
    assert jac.shape == (1, 3, 3)
    assert np.all(jac[0, 1] == 0) and np.all(jac[0, :, 1] == 0)
    np.testing.assert_allclose(jac.sum(axis=-1), 0, atol=1e-15)


def test_softmax_backward_known_values():
    dx = D.softmax_backward(np.array([0.0, 0.0]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(dx, [0.25, -0.25], atol=1e-15)


def test_softmax_backward_other_axis_and_fully_masked_row():
    x = rng().standard_normal((3, 4))
    g = rng(1).standard_normal((3, 4))
    np.testing.assert_allclose(D.softmax_backward(x, g, axis=0),
                               D.softmax_backward(x.T, g.T).T, atol=1e-15)
    dead = D.softmax_backward(np.full((1, 3), -np.inf), np.ones((1, 3)))
    assert np.all(dead == 0)


def test_attention_backward_single_key_known_values():
    # One key: the weights are 1, so O = v, dV = sum of dO over queries and dQ = dK = 0.
    q = rng().standard_normal((3, 2))
    k = rng(1).standard_normal((1, 2))
    v = rng(2).standard_normal((1, 4))
    g = rng(3).standard_normal((3, 4))
    dq, dk, dv = D.attention_backward(q, k, v, g)
    np.testing.assert_allclose(dq, 0, atol=1e-15)
    np.testing.assert_allclose(dk, 0, atol=1e-15)
    np.testing.assert_allclose(dv, g.sum(axis=0, keepdims=True), atol=1e-15)


def test_attention_backward_two_keys_by_hand():
    # q = 0: uniform weights (1/2, 1/2); dS = P (dP - D) with dP = g v^T.
    q = np.zeros((1, 1))
    k = np.array([[1.0], [-1.0]])
    v = np.array([[2.0], [0.0]])
    g = np.array([[1.0]])
    dq, dk, dv = D.attention_backward(q, k, v, g)
    # dP = [2, 0], D = 1, dS = [0.5, -0.5]; dq = 1 * (0.5 * 1 + (-0.5) * (-1)) = 1
    np.testing.assert_allclose(dq, [[1.0]])
    np.testing.assert_allclose(dk, [[0.0], [0.0]])      # q = 0
    np.testing.assert_allclose(dv, [[0.5], [0.5]])


def test_attention_backward_shapes_dtypes_masks():
    for dt in (np.float32, np.float64):
        q = rng().standard_normal((2, 3, 4)).astype(dt)
        k = rng(1).standard_normal((2, 5, 4)).astype(dt)
        v = rng(2).standard_normal((2, 5, 6)).astype(dt)
        g = rng(3).standard_normal((2, 3, 6)).astype(dt)
        mask = np.ones((2, 3, 5), dtype=bool)
        mask[:, :, 4] = False                    # a padded key
        mask[0, 1, :] = False                    # a fully masked query
        dq, dk, dv = D.attention_backward(q, k, v, g, mask=mask, causal="bottom-right")
        assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
        assert dq.dtype == dk.dtype == dv.dtype == dt
        assert np.all(dk[:, 4] == 0) and np.all(dv[:, 4] == 0) and np.all(dq[0, 1] == 0)


def test_attention_backward_mixed_dtype_is_float64():
    q = rng().standard_normal((3, 4)).astype(np.float32)
    dq, _, _ = D.attention_backward(q, q.astype(np.float64), q, q)
    assert dq.dtype == np.float64


def test_layer_norm_backward_known_values():
    x = np.array([[1.0, 2.0, 3.0]])
    g = np.array([[0.0, 1.0, 0.0]])
    dx, dgamma, dbeta = D.layer_norm_backward(x, g, eps=0.0)
    sigma = math.sqrt(2.0 / 3.0)
    np.testing.assert_allclose(dx, [[-1 / 3 / sigma, 2 / 3 / sigma, -1 / 3 / sigma]], atol=1e-15)
    np.testing.assert_allclose(dgamma, [0.0, 0.0, 0.0], atol=1e-15)   # xhat = 0 in the middle
    np.testing.assert_allclose(dbeta, [0.0, 1.0, 0.0])


def test_layer_norm_backward_gamma_and_constant_row():
    x = np.array([[2.0, 2.0], [1.0, -1.0]])
    g = np.array([[1.0, 0.0], [1.0, 0.0]])
    dx, dgamma, dbeta = D.layer_norm_backward(x, g, np.array([2.0, 3.0]), np.zeros(2), eps=0.0)
    assert np.all(dx[0] == 0)                      # zero variance, eps = 0: no gradient
    np.testing.assert_allclose(dx[1], [0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(dgamma, [1.0, 0.0])
    np.testing.assert_allclose(dbeta, [2.0, 0.0])
    assert D.layer_norm_backward(x.astype(np.float32), g.astype(np.float32))[0].dtype == np.float32


def test_feed_forward_backward_known_values():
    params = FFNParams(w1=np.array([[2.0]]), b1=np.array([0.0]), w2=np.array([[3.0]]),
                       b2=np.array([0.0]))
    dx, grads = D.feed_forward_backward(np.array([[1.0]]), params, np.array([[1.0]]))
    np.testing.assert_allclose(dx, [[6.0]])
    np.testing.assert_allclose(grads.w2, [[2.0]])
    np.testing.assert_allclose(grads.b2, [1.0])
    np.testing.assert_allclose(grads.w1, [[3.0]])
    np.testing.assert_allclose(grads.b1, [3.0])


def test_feed_forward_backward_no_bias_and_activations():
    x = rng().standard_normal((2, 3, 4))
    p = FFNParams(w1=rng(1).standard_normal((4, 5)), b1=None, w2=rng(2).standard_normal((5, 4)),
                  b2=None)
    for act in ("relu", "gelu", "tanh", "sigmoid"):
        dx, grads = D.feed_forward_backward(x, p, np.ones_like(x), activation=act)
        assert dx.shape == x.shape and grads.w1.shape == (4, 5) and grads.w2.shape == (5, 4)
        assert grads.b1 is None and grads.b2 is None


def test_activation_derivatives_match_differences():
    h = np.linspace(-3, 3, 13) + 0.01
    step = 1e-6
    for name, f in (("tanh", np.tanh), ("sigmoid", lambda z: 1 / (1 + np.exp(-z))),
                    ("relu", lambda z: np.maximum(z, 0))):
        numeric = (f(h + step) - f(h - step)) / (2 * step)
        np.testing.assert_allclose(D.activation_derivative(name, h), numeric, atol=1e-8)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: D.softmax_backward(np.zeros(3), np.zeros(4)), ValueError, "d_out"),
    (lambda: D.softmax_backward(np.zeros(3), np.zeros(3), axis=1.5), TypeError, "axis"),
    (lambda: D.softmax_backward(np.zeros(3), np.zeros(3), axis=2), ValueError, "axis"),
    (lambda: D.softmax_backward(np.array([np.inf]), np.zeros(1)), ValueError, "x"),
    (lambda: D.softmax_backward(np.zeros(2), np.array([np.nan, 0])), ValueError, "d_out"),
    (lambda: D.softmax_jacobian(np.array([1, np.nan])), ValueError, "x"),
    (lambda: D.softmax_jacobian(np.zeros(2, dtype=np.complex128)), TypeError, "x"),
    (lambda: D.attention_backward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)),
                                  np.zeros((3, 3))), ValueError, "d_out"),
    (lambda: D.attention_backward(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 3)),
                                  np.zeros((2, 3))), ValueError, "k"),
    (lambda: D.attention_backward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)),
                                  np.zeros((2, 3)), mask=np.ones((2, 2))), TypeError, "mask"),
    (lambda: D.attention_backward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)),
                                  np.zeros((2, 3)), scale=-1.0), ValueError, "scale"),
    (lambda: D.attention_backward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)),
                                  np.zeros((2, 3)), causal="left"), ValueError, "causal"),
    (lambda: D.layer_norm_backward(np.zeros((2, 3)), np.zeros((2, 4))), ValueError, "d_out"),
    (lambda: D.layer_norm_backward(np.zeros((2, 3)), np.zeros((2, 3)), np.ones(4)),
     ValueError, "gamma"),
    (lambda: D.layer_norm_backward(np.zeros((2, 3)), np.zeros((2, 3)), eps=-1.0),
     ValueError, "eps"),
    (lambda: D.layer_norm_backward(np.zeros((2, 3)), np.zeros((2, 3)), eps="x"),
     TypeError, "eps"),
    (lambda: D.feed_forward_backward(np.zeros((2, 3)), object(), np.zeros((2, 3))),
     TypeError, "params"),
    (lambda: D.feed_forward_backward(np.zeros((2, 3)), FFNParams(np.zeros((3, 2)), None,
                                                                 np.zeros((2, 3)), None),
                                     np.zeros((2, 3)), activation=np.tanh), TypeError, "activation"),
    (lambda: D.feed_forward_backward(np.zeros((2, 3)), FFNParams(np.zeros((3, 2)), None,
                                                                 np.zeros((2, 3)), None),
                                     np.zeros((2, 3)), activation="swish"), ValueError, "activation"),
    (lambda: D.feed_forward_backward(np.zeros((2, 3)), FFNParams(np.zeros((4, 2)), None,
                                                                 np.zeros((2, 3)), None),
                                     np.zeros((2, 3))), ValueError, "params.w1"),
    (lambda: D.activation_derivative("swish", np.zeros(2)), ValueError, "name"),
])
def test_gradient_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ===========================================================================
# subject.py additions
# ===========================================================================

def test_new_callables_and_options_are_documented():
    for name in ("softmax_jacobian", "softmax_backward", "attention_backward",
                 "layer_norm_backward", "feed_forward_backward", "encoder_map", "causal_map"):
        assert name in CALLABLES
    for name in ("fully_masked_row", "causal_alignment", "layout", "sinusoidal_interleaving",
                 "gqa_mapping", "d_model"):
        assert name in OPTIONS
    ref = reference_subject()
    assert ref.has("attention_backward", "softmax_jacobian", "feed_forward_backward")


def test_convention_reads_strings_and_mappings():
    s = Subject("s", {}, {"fully_masked_row": {"softmax": "nan"}})
    assert convention(s, "fully_masked_row", "softmax") == "nan"
    assert convention(s, "fully_masked_row", "attention") == "zeros"
    assert convention(Subject("t", {}, {}), "causal_alignment") == "top-left"


# ===========================================================================
# load_subject and options
# ===========================================================================

def my_attention(q, k, v, *, mask=None, causal=False, scale=None):
    """A correct user attention (the reference under another name)."""
    return A.attention(q, k, v, mask=mask, causal=causal, scale=scale)


def two_positional(x, y):
    return x


def needs_nothing_subject():
    return reference_subject().replace(name="factory-made")


MAPPING = {"attention": my_attention}
NOT_CALLABLE = 42


def test_parse_options_json_and_strings():
    assert parse_options(["d_model=16", "fully_masked_row=nan", "layout=(B, L, H, E)",
                          'fully_masked_row={"softmax": "nan"}', "flag=true"]) == {
        "d_model": 16, "fully_masked_row": {"softmax": "nan"}, "layout": "(B, L, H, E)",
        "flag": True}
    with pytest.raises(TargetError, match="KEY=VALUE"):
        parse_options(["novalue"])
    with pytest.raises(TargetError, match="empty key"):
        parse_options(["=3"])


def test_load_builtin_and_subject_objects():
    assert load_subject("reference").name == "reference"
    made = load_subject(f"{THIS}:needs_nothing_subject")
    assert made.name == "factory-made"
    mapped = load_subject(f"{THIS}:MAPPING")
    assert set(mapped.callables) == {"attention"}
    given = load_subject(reference_subject(), options={"d_model": 8})
    assert given.options["d_model"] == 8 and given.options["origin"]["target"] is None


def test_load_callable_as_kind_completes_with_the_reference():
    s = load_subject(f"{THIS}:my_attention", as_kind="attention")
    assert s.name == f"{THIS}:my_attention"
    assert s.has("softmax", "attention_weights")            # completed
    assert s.options["origin"] == {"target": f"{THIS}:my_attention", "as": "attention",
                                   "options": {}, "provided": ["attention"]}
    claims, skipped = applicable_claims(s, "attention.*")
    assert claims and all("attention" in c.needs for c in claims)
    assert skipped >= 1                                       # rows_are_distributions: weights only
    bare = load_subject(f"{THIS}:my_attention", as_kind="attention", complete=False)
    assert set(bare.callables) == {"attention"}


@pytest.mark.parametrize("target,kwargs,match", [
    ("no_such_module_xyz:f", {}, "cannot import"),
    (f"{THIS}:missing", {}, "no attribute"),
    ("not-a-target", {}, "module:object"),
    (f"{THIS}:my_attention", {}, "--as KIND"),
    (f"{THIS}:NOT_CALLABLE", {"as_kind": "attention"}, "expected a callable"),
    (f"{THIS}:two_positional", {"as_kind": "attention"}, "does not fit the contract"),
    (f"{THIS}:my_attention", {"as_kind": "nonsense"}, "--as"),
    (f"{THIS}:my_attention", {"as_kind": "attention", "options": {"layout": "LBHE"}}, "layout"),
    (f"{THIS}:my_attention", {"as_kind": "attention", "options": {"d_model": -1}}, "d_model"),
    (f"{THIS}:two_positional", {"as_kind": "encoder"}, "does not fit"),
    (f"{THIS}:reference_causal_map", {"as_kind": "causal"}, "d_model"),
])
def test_load_subject_errors(target, kwargs, match):
    with pytest.raises(TargetError, match=match):
        load_subject(target, **kwargs)


def test_kinds_include_the_issue_names():
    for kind in ("attention", "layer_norm", "encoder", "causal", "orthogonal_gaussian",
                 "random_features", "favor_attention", "multi_head_attention",
                 "grouped_query_attention", "sinusoidal_encoding"):
        assert kind in KINDS


# ===========================================================================
# conventions applied by the loader or honoured by the claims
# ===========================================================================

def attention_blhe(q, k, v, *, mask=None, causal=False, scale=None):
    """A (B, L, H, E) attention (as JAX and FlashAttention take it)."""
    t = (lambda a: np.swapaxes(a, 1, 2))
    return t(A.attention(t(q), t(k), t(v), mask=mask, causal=causal, scale=scale))


def attention_bottom_right(q, k, v, *, mask=None, causal=False, scale=None):
    """causal=True means bottom-right alignment (FlashAttention >= 2.1)."""
    return A.attention(q, k, v, mask=mask, causal="bottom-right" if causal else False,
                       scale=scale)


def attention_nan_rows(q, k, v, *, mask=None, causal=False, scale=None):
    """NaN for a fully masked row, like PyTorch's math kernel."""
    out = A.attention(q, k, v, mask=mask, causal=causal, scale=scale)
    if mask is not None:
        dead = ~np.broadcast_to(mask, out.shape[:-1] + (np.shape(k)[-2],)).any(axis=-1)
        out = np.where(dead[..., None], np.nan, out)
    return out


def sinusoidal_halves(n_positions, d_model):
    """sin in the first half, cos in the second (tensor2tensor's layout)."""
    pe = P.sinusoidal_encoding(n_positions, d_model)
    return np.concatenate([pe[:, 0::2], pe[:, 1::2]], axis=-1)


def gqa_modular(x_q, x_kv, params, *, mask=None, causal=False):
    """GQA reading kv head h % G (torch .repeat instead of .repeat_interleave)."""
    h, g = params.n_heads, params.n_kv_heads
    index = np.arange(h) % g
    mha = A.MultiHeadParams(w_q=params.w_q, w_k=params.w_k[index], w_v=params.w_v[index],
                            b_q=params.b_q, b_k=None if params.b_k is None else params.b_k[index],
                            b_v=None if params.b_v is None else params.b_v[index],
                            w_o=params.w_o, b_o=params.b_o)
    return A.multi_head_attention(x_q, x_kv, mha, mask=mask, causal=causal)


def orthogonal_from_seed(m, d, seed, *, scaling="chi"):
    from transformer_theory.impl.performer import orthogonal_gaussian

    assert isinstance(seed, int)
    return orthogonal_gaussian(m, d, np.random.default_rng(seed), scaling=scaling)


def _status(subject, claim_id):
    result = check(subject, claim_id, profile="ci").results[0]     # the usual dtypes' run
    return result.status


def test_layout_convention():
    plain = load_subject(f"{THIS}:attention_blhe", as_kind="attention")
    assert _status(plain, "attention.scaled_dot_product") != "passed"
    declared = load_subject(f"{THIS}:attention_blhe", as_kind="attention",
                            options={"layout": "(B, L, H, E)"})
    assert _status(declared, "attention.scaled_dot_product") == "passed"
    assert _status(declared, "masking.causal_alignment") == "passed"


def attention_backward_blhe(q, k, v, d_out, *, mask=None, causal=False, scale=None):
    """Gradients of a (B, L, H, E) attention."""
    t = (lambda a: np.swapaxes(a, 1, 2))
    return tuple(t(g) for g in D.attention_backward(t(q), t(k), t(v), t(d_out), mask=mask,
                                                     causal=causal, scale=scale))


def test_layout_convention_for_gradients():
    s = load_subject(f"{THIS}:attention_backward_blhe", as_kind="attention_backward",
                     options={"layout": "(B, L, H, E)"})
    q = rng().standard_normal((2, 3, 4, 5))
    k = rng(1).standard_normal((2, 3, 6, 5))
    v = rng(2).standard_normal((2, 3, 6, 2))
    g = rng(3).standard_normal((2, 3, 4, 2))
    for ours, ref in zip(s.attention_backward(q, k, v, g, causal=True),
                         D.attention_backward(q, k, v, g, causal=True)):
        np.testing.assert_allclose(ours, ref, atol=1e-14)
    assert _status(s, "gradients.dv_is_weights_transpose_do") == "passed"


@pytest.mark.parametrize("target, as_kind, claim_id, option, value", [
    ("attention_bottom_right", "attention", "masking.causal_alignment",
     "causal_alignment", "bottom-right"),
    ("attention_nan_rows", "attention", "attention.fully_masked_row_zero",
     "fully_masked_row", "nan"),
    ("sinusoidal_halves", "sinusoidal_encoding", "positional.sinusoidal_definition",
     "sinusoidal_interleaving", "sin first half, cos second half"),
    ("gqa_modular", "gqa", "heads.gqa_equals_repeated_mha", "gqa_mapping", "h -> h % G"),
])
def test_declared_convention_is_reported_not_failed(target, as_kind, claim_id, option, value):
    """The subject fails the claim as it is and passes once it declares its convention."""
    plain = load_subject(f"{THIS}:{target}", as_kind=as_kind)
    assert _status(plain, claim_id) == "failed"
    declared = load_subject(f"{THIS}:{target}", as_kind=as_kind, options={option: value})
    assert _status(declared, claim_id) == "passed"


def test_causal_alignment_convention_in_the_report():
    declared = load_subject(f"{THIS}:attention_bottom_right", as_kind="attention",
                            options={"causal_alignment": "bottom-right"})
    report = check(declared, "masking.causal_alignment", profile="ci")
    assert report.results[0].status == "passed"
    assert report.conventions == {"causal_alignment": "bottom-right"}
    assert report.results[0].conventions == {"causal_alignment": "bottom-right"}


def test_seeded_random_matrix_convention():
    s = load_subject(f"{THIS}:orthogonal_from_seed", as_kind="orthogonal",
                     options={"rng": "seed"})
    w = s.orthogonal_gaussian(6, 4, np.random.default_rng(0))
    assert w.shape == (6, 4)
    np.testing.assert_allclose(w[:4] @ w[:4].T * (1 - np.eye(4)), 0, atol=1e-12)


# ===========================================================================
# check, its results and reproduction snippets
# ===========================================================================

def missing_scale_attention(q, k, v, *, mask=None, causal=False, scale=None):
    return A.attention(q, k, v, mask=mask, causal=causal, scale=1.0 if scale is None else scale)


def test_check_passes_on_the_reference():
    report = check(reference_subject(), "attention.scaled_dot_product,gradients.dv*",
                   profile="ci")
    assert isinstance(report, CheckReport)
    # both claims, and their float16 and bfloat16 runs (the reference declares both)
    assert [r.id for r in report] == [
        f"{c}{d}" for c in ("attention.scaled_dot_product", "gradients.dv_is_weights_transpose_do")
        for d in ("", "[float16]", "[bfloat16]")]
    assert all(r.status == "passed" for r in report)
    assert report.exit_code == 0 and report.passed
    assert "passed" in report.format_table()


def test_check_failure_has_example_and_runnable_reproduction():
    target = f"{THIS}:missing_scale_attention"
    report = check(target, "attention.*", profile="ci", as_kind="attention")
    failed = [r for r in report if r.status == "failed"]
    assert report.exit_code == 1 and failed
    first = failed[0]
    assert first.id == "attention.scaled_dot_product"
    assert {"q", "k", "v", "seed", "dtype"} <= set(first.example)
    assert "load_subject(" in first.reproduction and target in first.reproduction
    assert "q = np.array(" in first.reproduction
    namespace: dict = {}
    exec(first.reproduction, namespace)                       # copy-pasteable: it runs
    assert namespace["result"].status == "failed"
    assert namespace["result"].example == first.example       # deterministic
    json.dumps(report.to_json())                              # JSON-serialisable
    assert "smallest example" in report.format_table()


def test_check_fail_fast_and_errors():
    report = check(f"{THIS}:missing_scale_attention", "attention.*", profile="ci",
                   as_kind="attention", fail_fast=True)
    assert report.results[-1].status == "failed" and len(report.failures) == 1
    with pytest.raises(ValueError, match="no claim"):
        check(reference_subject(), "nothing.matches.*", profile="ci")


def test_checkable_claims_add_the_conformance_set():
    ids = [c.id for c in conformance_claims()]
    assert {"conformance.encoder_map_permutation_equivariance",
            "conformance.encoder_map_batch_independence",
            "conformance.causal_map_future_invariance",
            "conformance.causal_map_prefix_consistency",
            "conformance.layer_norm_definition", "conformance.padding_invariance",
            "conformance.nan_poisoning", "conformance.nan_poisoning_heads"} == set(ids)
    all_ids = [c.id for c in checkable_claims()]
    assert len(all_ids) == len(set(all_ids))


def test_symbolic_claims_are_not_run_by_check():
    # A claim that calls the subject needs a callable or uses a construction; derivations
    # (topic proof) do neither and are left to verify.
    claims, _ = applicable_claims(reference_subject())
    assert claims and all(c.needs or c.uses for c in claims)
    assert not any(c.topic == "proof" for c in claims)


def reference_encoder_map(x):
    from mutants.conformance import model_params
    from transformer_theory.impl.transformer import encoder

    return encoder(x, model_params())


def reference_causal_map(x):
    from mutants.conformance import model_params
    from transformer_theory.impl.transformer import encoder

    return encoder(x, model_params(), causal=True)


def test_sequence_maps_pass_on_correct_models():
    enc = load_subject(f"{THIS}:reference_encoder_map", as_kind="encoder", options={"d_model": 8})
    dec = load_subject(f"{THIS}:reference_causal_map", as_kind="causal", options={"d_model": 8})
    assert all(r.status == "passed" for r in check(enc, "conformance.*", profile="ci"))
    assert all(r.status == "passed" for r in check(dec, "conformance.*", profile="ci"))


def test_layer_norm_definition_on_the_reference():
    assert _status(reference_subject(), "conformance.layer_norm_definition") == "passed"


# ===========================================================================
# the CLI (the lead adds "check" to cli.COMMAND_MODULES)
# ===========================================================================

@pytest.fixture
def run_cli(monkeypatch):
    if "check" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", tuple(cli.COMMAND_MODULES) + ("check",))

    def run(*argv):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = cli.main(list(argv))
            except SystemExit as exc:
                code = exc.code
        return code, out.getvalue(), err.getvalue()
    return run


def test_cli_exit_0_table(run_cli):
    code, out, _ = run_cli("check", "reference", "--claims", "attention.explicit_scale",
                           "--profile", "ci", "-q")
    assert code == 0
    assert "attention.explicit_scale" in out and "passed" in out


def test_cli_exit_1_with_smallest_example_and_json(run_cli):
    code, out, _ = run_cli("check", f"{THIS}:missing_scale_attention", "--as", "attention",
                           "--claims", "attention.scaled_dot_product", "--profile", "ci")
    assert code == 1 and "FAILED" in out and "smallest example" in out
    code, out, _ = run_cli("check", f"{THIS}:missing_scale_attention", "--as", "attention",
                           "--claims", "attention.scaled_dot_product", "--profile", "ci",
                           "--json")
    data = json.loads(out)
    assert code == 1 and data["results"][0]["status"] == "failed"
    assert data["results"][0]["example"]["seed"] is not None
    assert "load_subject" in data["results"][0]["reproduction"]


@pytest.mark.parametrize("argv,message", [
    (("check", "no_such_module_xyz:f", "--as", "attention"), "cannot import"),
    (("check", f"{THIS}:two_positional", "--as", "attention"), "does not fit"),
    (("check", f"{THIS}:my_attention"), "--as KIND"),
    (("check", f"{THIS}:my_attention", "--as", "attention", "--option", "bad"), "KEY=VALUE"),
    (("check", f"{THIS}:my_attention", "--as", "attention", "--claims", "zzz.*"), "no claim"),
    (("check", f"{THIS}:my_attention", "--as", "attention", "--claims", "layers.*"),
     "no claim applies"),
])
def test_cli_exit_2_with_a_message(run_cli, argv, message):
    code, _, err = run_cli(*argv)
    assert code == 2
    assert message in err


def test_cli_options_reach_the_subject(run_cli):
    code, out, _ = run_cli("check", f"{THIS}:attention_bottom_right", "--as", "attention",
                           "--option", "causal_alignment=bottom-right",
                           "--claims", "masking.causal_alignment", "--profile", "ci")
    assert code == 0 and "causal_alignment=bottom-right" in out


# ===========================================================================
# the catalogue of broken implementations: the mutants checked through the user path
# ===========================================================================

from mutants import user_path_mutants  # noqa: E402

#: The mutants with a target (``mutants.<topic>:<object>``), loaded as a user would.
CATALOGUE = user_path_mutants()

_REPORTS: dict = {}


def _verdict(entry):
    if entry.name not in _REPORTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            subject = load_subject(entry.target, as_kind=entry.as_kind, options=entry.options)
            _REPORTS[entry.name] = check(subject, entry.check_claims, profile="ci",
                                         fail_fast=True)
    return _REPORTS[entry.name]


def test_catalogue_is_large_and_distinct():
    names = [b.name for b in CATALOGUE]
    assert len(names) >= 25
    assert len(set(names)) == len(names)
    assert len({b.target for b in CATALOGUE}) == len(names)
    assert all(b.target.startswith("mutants.") for b in CATALOGUE)


@pytest.mark.parametrize("entry", CATALOGUE, ids=[b.name for b in CATALOGUE])
def test_broken_implementation_is_rejected(entry):
    report = _verdict(entry)
    rejected = [r for r in report.failures if r.status == "failed"]
    assert rejected, (f"{entry.name} ({entry.description}) survived {entry.check_claims}: "
                      f"{[(r.id, r.status) for r in report]}")


def test_kill_rate_is_100_percent(capsys):
    killed = [b.name for b in CATALOGUE if any(r.status == "failed" for r in _verdict(b).failures)]
    rate = len(killed) / len(CATALOGUE)
    with capsys.disabled():
        sys.stdout.write(f"\n[mutant catalogue] kill rate {len(killed)}/{len(CATALOGUE)} "
                         f"= {rate:.0%}\n")
    assert rate == 1.0, f"survivors: {sorted(set(b.name for b in CATALOGUE) - set(killed))}"


@pytest.mark.parametrize("name, option, value", [
    ("gqa_modular_mapping", "gqa_mapping", "h -> h % G"),
    ("causal_always_bottom_right", "causal_alignment", "bottom-right"),
    ("nan_on_fully_masked_row", "fully_masked_row", "nan"),
    ("float32_accumulation", "compute_dtype", "float32"),
])
def test_undeclared_convention_mutants_carry_their_diagnosis(name, option, value):
    # Still rejected (status failed, exit 1), and the failure names the declaration.
    entry = next(b for b in CATALOGUE if b.name == name)
    failed = [r for r in _verdict(entry).failures if r.status == "failed"]
    assert failed and failed[0].diagnosis == {"option": option, "value": value}, \
        [(r.id, r.diagnosis) for r in failed]


def test_real_bugs_carry_no_diagnosis():
    for name in ("missing_scale", "softmax_over_queries", "causal_off_by_one"):
        entry = next(b for b in CATALOGUE if b.name == name)
        failed = [r for r in _verdict(entry).failures if r.status == "failed"]
        assert failed and all(r.diagnosis is None for r in failed), name
