"""The PyTorch adapter: torch's kernels behind the numpy contract.

Skipped when PyTorch is not installed. ``tests/test_claims.py`` runs every
registry claim on the torch subject; this file checks the adapter itself
(numerical agreement with the reference, dtypes, conventions, bad input,
autograd against the reference gradients) and the conformance claims.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from seeded import rng

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the torch adapter is optional")

from transformer_theory.impl import attention as A  # noqa: E402
from transformer_theory.impl import gradients as D  # noqa: E402
from transformer_theory.impl import layers as N  # noqa: E402
from transformer_theory.impl import transformer as T  # noqa: E402
from transformer_theory.impl.adapters import torch as TA  # noqa: E402
from transformer_theory.theory.conformance import check, load_subject  # noqa: E402
from transformer_theory.theory.builtin_subjects import SUBJECTS, get_subject  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def close(a, b, dtype=np.float64):
    tol = 1e-12 if np.dtype(dtype) == np.float64 else 2e-5
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=tol, atol=tol)


# --- the subject -------------------------------------------------------------

def test_torch_is_a_registered_subject_with_conventions():
    assert "torch" in SUBJECTS
    s = get_subject("torch")
    assert s.name == "torch"
    assert s.options["fully_masked_row"]["softmax"] == "nan"
    assert s.options["fully_masked_row"]["attention"] == "zeros"
    assert s.options["causal_alignment"] == "top-left"
    assert s.has("attention", "multi_head_attention", "layer_norm", "encoder_map", "causal_map",
                 "attention_backward")


# --- numerical agreement with the reference -----------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True, "bottom-right"])
def test_attention_and_weights_match_the_reference(dtype, causal):
    q = rng().standard_normal((2, 3, 4, 5)).astype(dtype)
    k = rng(1).standard_normal((2, 3, 6, 5)).astype(dtype)
    v = rng(2).standard_normal((2, 3, 6, 2)).astype(dtype)
    mask = rng(3).random((2, 1, 4, 6)) < 0.7
    out = TA.attention(q, k, v, mask=mask, causal=causal, scale=0.7)
    assert out.dtype == dtype and out.shape == (2, 3, 4, 2)
    close(out, A.attention(q, k, v, mask=mask, causal=causal, scale=0.7), dtype)
    close(TA.attention_weights(q, k, causal=causal), A.attention_weights(q, k, causal=causal), dtype)
    bias = rng(4).standard_normal((3, 4, 6)).astype(dtype)
    close(TA.attention(q, k, v, bias=bias, mask=mask), A.attention(q, k, v, bias=bias, mask=mask),
          dtype)


def test_attention_unbatched_and_fully_masked_rows_are_zero():
    q = rng().standard_normal((3, 4))
    mask = np.ones((3, 3), dtype=bool)
    mask[1] = False
    out = TA.attention(q, q, q, mask=mask)
    assert out.shape == (3, 4)
    assert np.all(out[1] == 0)                     # SDPA: the contract's zeros


@pytest.mark.parametrize("e,h,dh,dv", [(8, 2, 4, 4), (6, 4, 5, 3), (4, 3, 1, 2), (8, 1, 3, 3)])
def test_multihead_maps_reference_weights_exactly(e, h, dh, dv):
    p = A.init_multi_head(e, h, rng(e), d_head=dh, d_value=dv)
    x_q = rng(1).standard_normal((2, 3, e))
    x_kv = rng(2).standard_normal((2, 5, e))
    for causal in (False, True):
        close(TA.multi_head_attention(x_q, x_kv, p, causal=causal),
              A.multi_head_attention(x_q, x_kv, p, causal=causal))
    keep = rng(3).random((2, 5)) < 0.7
    keep[:, 0] = True
    close(TA.cross_attention(x_q, x_kv, p, memory_mask=keep),
          A.cross_attention(x_q, x_kv, p, memory_mask=keep))
    module, width = TA.load_multihead(p, np.float64)
    assert isinstance(module, torch.nn.MultiheadAttention) and not module.training
    assert width == h * max(dh, dv, -(-e // h))


def test_multihead_float32_and_no_bias():
    p = A.init_multi_head(8, 2, rng(), bias=False, dtype=np.float32)
    x = rng(1).standard_normal((3, 8)).astype(np.float32)
    out = TA.multi_head_attention(x, x, p)
    assert out.dtype == np.float32
    close(out, A.multi_head_attention(x, x, p), np.float32)


@pytest.mark.parametrize("h,g", [(4, 2), (4, 1), (3, 3), (6, 2)])
def test_grouped_query_attention_uses_torch_mapping(h, g):
    p = A.init_grouped_query(8, h, g, rng(h), d_head=3)
    x_q = rng(1).standard_normal((2, 3, 8))
    x_kv = rng(2).standard_normal((2, 5, 8))
    close(TA.grouped_query_attention(x_q, x_kv, p, causal=True),
          A.grouped_query_attention(x_q, x_kv, p, causal=True))


def test_norms_activations_and_ffn():
    x = rng().standard_normal((3, 4, 6))
    gamma, beta = rng(1).standard_normal(6), rng(2).standard_normal(6)
    close(TA.layer_norm(x, gamma, beta, eps=0.1), N.layer_norm(x, gamma, beta, eps=0.1))
    close(TA.batch_norm(x), N.batch_norm(x), np.float32)           # torch's Welford sums
    close(TA.sigmoid(x), N.sigmoid(x))
    close(TA.tanh(x), N.tanh(x))
    close(TA.softmax(x, axis=1), A.softmax(x, axis=1))
    p = N.init_ffn(6, 5, rng(3))
    for act in ("relu", "gelu", "tanh", "sigmoid"):
        close(TA.feed_forward(x, p, activation=act), N.feed_forward(x, p, activation=act))


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("bias", [True, False])
def test_encoder_stack_matches_the_reference(norm, bias):
    config = T.EncoderConfig(d_model=8, n_heads=2, d_ff=16, n_layers=2, norm=norm, bias=bias)
    params = T.init_encoder(config, rng())
    x = rng(1).standard_normal((2, 5, 8))
    mask = rng(2).random((2, 5, 5)) < 0.8
    mask[..., 0] = True
    for kw in ({}, {"causal": True}, {"mask": mask}):
        close(TA.encoder(x, params, **kw), T.encoder(x, params, **kw))


def test_sequence_maps_shapes_and_causality():
    x = rng().standard_normal((2, 5, TA.SEQUENCE_D_MODEL))
    assert TA.encoder_map(x).shape == x.shape
    y = TA.causal_map(x)
    close(TA.causal_map(x[:, :3]), y[:, :3])
    assert TA.causal_map(x.astype(np.float32)).dtype == np.float32


# --- conventions ---------------------------------------------------------------

def test_softmax_of_a_masked_row_is_nan_in_torch():
    assert np.all(np.isnan(TA.softmax(np.full((1, 3), -np.inf))))
    assert np.all(A.softmax(np.full((1, 3), -np.inf)) == 0)


def test_mha_fast_path_returns_nan_for_fully_masked_rows():
    # The documented reason for fully_masked_row = 'nan' on multi_head_attention.
    mha = torch.nn.MultiheadAttention(4, 2, batch_first=True).eval()
    x = torch.randn(1, 3, 4, generator=torch.Generator().manual_seed(0))
    blocked = torch.zeros(3, 3, dtype=torch.bool)
    blocked[1] = True
    with torch.no_grad():
        out, _ = mha(x, x, x, attn_mask=blocked, need_weights=False)
    assert torch.isnan(out[0, 1]).all()


def test_no_global_torch_rng_use_and_threads_restored():
    state = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    p = A.init_multi_head(8, 2, rng())
    x = rng(1).standard_normal((2, 3, 8))
    TA.multi_head_attention(x, x, p)
    TA.encoder_map(rng(2).standard_normal((1, 4, 8)))
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.get_num_threads() == threads


# --- bad input -------------------------------------------------------------------

@pytest.mark.parametrize("call,exc,match", [
    (lambda: TA.attention(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 3))), ValueError, "k"),
    (lambda: TA.attention(np.zeros((2, 2, 3)), np.zeros((3, 2, 3)), np.zeros((3, 2, 3))),
     ValueError, "leading"),
    (lambda: TA.attention(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)),
                          mask=np.ones((2, 2))), TypeError, "mask"),
    (lambda: TA.attention(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), causal="up"),
     ValueError, "causal"),
    (lambda: TA.attention(np.full((2, 3), np.nan), np.zeros((2, 3)), np.zeros((2, 3))),
     ValueError, "q"),
    (lambda: TA.attention(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), scale=0.0),
     ValueError, "scale"),
    (lambda: TA.multi_head_attention(np.zeros((2, 5)), np.zeros((2, 8)),
                                     A.init_multi_head(8, 2, rng())), ValueError, "x_q"),
    (lambda: TA.multi_head_attention(np.zeros((2, 8)), np.zeros((2, 8)), object()),
     TypeError, "params"),
    (lambda: TA.layer_norm(np.zeros((2, 3)), np.ones(4)), ValueError, "gamma"),
    (lambda: TA.feed_forward(np.zeros((2, 3)), N.init_ffn(3, 2, rng()), activation=np.tanh),
     TypeError, "activation"),
    (lambda: TA.encoder(np.zeros((1, 2, 8)), T.init_encoder(
        T.EncoderConfig(d_model=8, n_heads=2, d_ff=4, d_head=3), rng())), ValueError, "d_head"),
    (lambda: TA.encoder(np.zeros((1, 2, 8)), T.init_encoder(
        T.EncoderConfig(d_model=8, n_heads=2, d_ff=4, activation="tanh"), rng())),
     ValueError, "activation"),
    (lambda: TA.causal_map(np.zeros((1, 2, 5))), ValueError, "x"),
    (lambda: TA.attention_backward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)),
                                   np.zeros((3, 3))), ValueError, "d_out"),
])
def test_adapter_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --- autograd against the reference gradients -------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_autograd_matches_reference_gradients(dtype):
    q = rng().standard_normal((2, 3, 4)).astype(dtype)
    k = rng(1).standard_normal((2, 5, 4)).astype(dtype)
    v = rng(2).standard_normal((2, 5, 3)).astype(dtype)
    g = rng(3).standard_normal((2, 3, 3)).astype(dtype)
    mask = rng(4).random((2, 3, 5)) < 0.7
    for causal in (False, True, "bottom-right"):
        for ours, ref in zip(TA.attention_backward(q, k, v, g, mask=mask, causal=causal),
                             D.attention_backward(q, k, v, g, mask=mask, causal=causal)):
            assert ours.dtype == dtype
            close(ours, ref, dtype)
    x = rng(5).standard_normal((3, 6)).astype(dtype)
    gx = rng(6).standard_normal((3, 6)).astype(dtype)
    close(TA.softmax_backward(x, gx), D.softmax_backward(x, gx), dtype)
    close(TA.softmax_jacobian(x), D.softmax_jacobian(x), dtype)
    for ours, ref in zip(TA.layer_norm_backward(x, gx, eps=0.1), D.layer_norm_backward(x, gx, eps=0.1)):
        close(ours, ref, dtype)
    p = N.init_ffn(6, 4, rng(7), dtype=dtype)
    for act in ("relu", "gelu", "tanh", "sigmoid"):
        dx, grads = TA.feed_forward_backward(x, p, gx, activation=act)
        rdx, rgrads = D.feed_forward_backward(x, p, gx, activation=act)
        close(dx, rdx, dtype)
        for name in ("w1", "b1", "w2", "b2"):
            close(getattr(grads, name), getattr(rgrads, name), dtype)


# --- the conformance claims on torch (the registry's run in test_claims.py) --------

def test_torch_passes_the_conformance_claims():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = check(get_subject("torch"), "conformance.*", profile="ci")
    # 8 claims, and the float16 and bfloat16 runs of the 4 that have a meaning there
    assert len(report) == 8 + 2 * 4
    assert sorted(r.id for r in report if "[" in r.id) == sorted(
        f"conformance.{c}[{d}]" for c in ("layer_norm_definition", "nan_poisoning",
                                          "nan_poisoning_heads", "padding_invariance")
        for d in ("float16", "bfloat16"))
    assert report.passed, report.format_table()
    # torch declares masked_inputs=finite: SDPA lets NaN padding reach the outputs
    [nan] = [r for r in report if r.id == "conformance.nan_poisoning"]
    assert nan.status == "not_applicable" and "masked_inputs=finite" in nan.detail


def user_sdpa(q, k, v, *, mask=None, causal=False, scale=None):
    """A user's attention written for torch tensors (no masks: enough for explicit_scale)."""
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)


def _encoder_layer():
    with torch.random.fork_rng():                 # seeded, without touching the global state
        torch.manual_seed(0)
        return torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True,
                                                dtype=torch.float64)


#: A library module as a whole model (float64, dropout off).
ENCODER_LAYER = _encoder_layer()


def test_user_torch_callables_and_modules_are_wrapped():
    s = load_subject("test_adapters_torch:user_sdpa", as_kind="attention",
                     options={"tensors": "torch"})
    [r] = check(s, "attention.explicit_scale", profile="ci").results
    assert r.status == "passed", r.detail
    layer = load_subject("test_adapters_torch:ENCODER_LAYER", as_kind="encoder")
    assert layer.options["d_model"] == 8
    [r] = check(layer, "conformance.encoder_map_permutation_equivariance", profile="ci").results
    assert r.status == "passed", r.detail
