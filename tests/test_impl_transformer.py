"""Unit tests for transformer_theory.impl.transformer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transformer_theory.impl import attention as A
from transformer_theory.impl import layers as Ly
from transformer_theory.impl import transformer as T
from transformer_theory.impl.positional import sinusoidal_encoding
from transformer_theory.theory.tolerance import relative_error, tolerance


def assert_close(actual, expected, kind="composite", dtype=np.float64, n=256):
    tol = tolerance(kind, dtype, n)
    err = relative_error(actual, expected)
    assert tol.allows(err), f"relative error {err:.3e} > {tol.rtol:.3e} ({tol.reason})"


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def small_config(**kw):
    base = dict(d_model=8, n_heads=2, d_ff=16, n_layers=2)
    base.update(kw)
    return T.EncoderConfig(**base)


# --------------------------------------------------------------------------- config

def test_config_defaults_and_properties():
    c = T.EncoderConfig(d_model=12, n_heads=3, d_ff=48)
    assert (c.n_layers, c.head_dim, c.kv_heads, c.norm, c.eps, c.activation, c.bias) == \
        (1, 4, 3, "post", 1e-5, "relu", True)
    c = T.EncoderConfig(12, 4, 48, d_head=5, n_kv_heads=2)
    assert c.head_dim == 5 and c.kv_heads == 2


@pytest.mark.parametrize("kw, exc, match", [
    (dict(d_model=0), ValueError, "d_model"),
    (dict(d_model=8.0), TypeError, "d_model"),
    (dict(n_heads=0), ValueError, "n_heads"),
    (dict(d_ff=-1), ValueError, "d_ff"),
    (dict(n_layers=0), ValueError, "n_layers"),
    (dict(d_model=2, n_heads=4), ValueError, "d_head"),
    (dict(d_head=0), ValueError, "d_head"),
    (dict(n_kv_heads=3, n_heads=4), ValueError, "n_kv_heads"),
    (dict(n_kv_heads=0), ValueError, "n_kv_heads"),
    (dict(bias=1), TypeError, "bias"),
    (dict(norm="sandwich"), ValueError, "norm"),
    (dict(eps=-1e-5), ValueError, "eps"),
    (dict(eps=float("nan")), ValueError, "eps"),
    (dict(eps="small"), TypeError, "eps"),
    (dict(activation="swish"), ValueError, "activation"),
    (dict(activation=3), TypeError, "activation"),
])
def test_config_errors(kw, exc, match):
    base = dict(d_model=8, n_heads=2, d_ff=16)
    base.update(kw)
    with pytest.raises(exc, match=match):
        T.EncoderConfig(**base)


def test_config_accepts_callable_activation(rng):
    c = small_config(activation=np.tanh)
    p = T.init_encoder(c, rng)
    assert T.encoder(rng.standard_normal((3, 8)), p).shape == (3, 8)


# --------------------------------------------------------------------------- encoder

def test_init_encoder_structure(rng):
    p = T.init_encoder(small_config(), rng)
    assert len(p.layers) == 2
    layer = p.layers[0]
    assert isinstance(layer.attn, A.MultiHeadParams)
    np.testing.assert_array_equal(layer.ln1.gamma, 1.0)
    np.testing.assert_array_equal(layer.ln2.beta, 0.0)
    assert layer.ffn.w1.shape == (8, 16)
    g = T.init_encoder(small_config(n_kv_heads=1), rng)
    assert isinstance(g.layers[0].attn, A.GroupedQueryParams) and g.layers[0].attn.n_kv_heads == 1
    p32 = T.init_encoder(small_config(), rng, dtype=np.float32)
    assert p32.layers[1].attn.w_q.dtype == np.float32 and p32.layers[1].ln1.gamma.dtype == np.float32
    a = T.init_encoder(small_config(), np.random.default_rng(5))
    b = T.init_encoder(small_config(), np.random.default_rng(5))
    np.testing.assert_array_equal(a.layers[1].ffn.w2, b.layers[1].ffn.w2)


def test_encoder_params_validation(rng):
    c = small_config()
    p = T.init_encoder(c, rng)
    with pytest.raises(ValueError, match="n_layers"):
        T.EncoderParams(c, p.layers[:1])
    with pytest.raises(TypeError, match="layers\\[1\\]"):
        T.EncoderParams(c, [p.layers[0], "layer"])
    with pytest.raises(TypeError, match="config"):
        T.EncoderParams({"d_model": 8}, p.layers)
    with pytest.raises(TypeError, match="rng"):
        T.init_encoder(c, 0)
    with pytest.raises(TypeError, match="config"):
        T.init_encoder(dict(d_model=8), rng)


def test_post_ln_rows_are_standardised(rng):
    c = small_config(norm="post", d_model=16, n_heads=4, d_ff=32, n_layers=3)
    p = T.init_encoder(c, rng)
    y = T.encoder(3.0 * rng.standard_normal((2, 7, 16)) + 5.0, p)
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-12)
    # biased variance of a LayerNorm row is s^2 / (s^2 + eps), within eps of 1
    np.testing.assert_allclose(y.var(axis=-1), 1.0, atol=1e-4)


def _manual_layer(x, layer, config, mask=None, causal=False):
    def ln(z, lnp):
        return Ly.layer_norm(z, lnp.gamma, lnp.beta, eps=config.eps)

    def mha(z):
        return A.multi_head_attention_per_head(z, z, layer.attn, mask=mask, causal=causal)

    def ffn(z):
        return Ly.feed_forward(z, layer.ffn, activation=config.activation)

    if config.norm == "post":
        x = ln(x + mha(x), layer.ln1)
        return ln(x + ffn(x), layer.ln2)
    x = x + mha(ln(x, layer.ln1))
    return x + ffn(ln(x, layer.ln2))


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("causal", [False, True])
def test_encoder_layer_matches_formula(rng, norm, causal):
    c = small_config(norm=norm, activation="gelu")
    p = T.init_encoder(c, rng)
    # non-trivial LayerNorm affine parameters, so ln1/ln2 mix-ups show
    for layer in p.layers:
        for lnp in (layer.ln1, layer.ln2):
            lnp.gamma = 1 + 0.3 * rng.standard_normal(8)
            lnp.beta = 0.2 * rng.standard_normal(8)
    x = rng.standard_normal((3, 5, 8))
    mask = rng.random((3, 5, 5)) < 0.8
    out = T.encoder_layer(x, p.layers[0], c, mask=mask, causal=causal)
    assert_close(out, _manual_layer(x, p.layers[0], c, mask, causal))
    stacked = T.encoder(x, p, mask=mask, causal=causal)
    assert_close(stacked, _manual_layer(_manual_layer(x, p.layers[0], c, mask, causal),
                                        p.layers[1], c, mask, causal))


def test_encoder_permutation_equivariant(rng):
    p = T.init_encoder(small_config(), rng)
    x = rng.standard_normal((6, 8))
    perm = rng.permutation(6)
    assert_close(T.encoder(x[perm], p), T.encoder(x, p)[perm])


def test_causal_encoder_prefix_independent_of_future(rng):
    for c in (small_config(), small_config(norm="pre", n_kv_heads=1)):
        p = T.init_encoder(c, rng)
        x = rng.standard_normal((2, 6, 8))
        x2 = x.copy()
        x2[:, 4:] = rng.standard_normal((2, 2, 8))
        np.testing.assert_array_equal(T.encoder(x, p, causal=True)[:, :4],
                                      T.encoder(x2, p, causal=True)[:, :4])


def test_encoder_gqa_matches_equivalent_mha(rng):
    c = small_config(n_heads=4, n_kv_heads=2)
    p = T.init_encoder(c, rng)
    mha_layers = [T.EncoderLayerParams(A.gqa_to_mha_params(l.attn), l.ln1, l.ffn, l.ln2)
                  for l in p.layers]
    q = T.EncoderParams(small_config(n_heads=4), mha_layers)
    x = rng.standard_normal((2, 5, 8))
    assert_close(T.encoder(x, p, causal=True), T.encoder(x, q, causal=True))


def test_encoder_dtypes(rng):
    p32 = T.init_encoder(small_config(), rng, dtype=np.float32)
    x = rng.standard_normal((2, 4, 8))
    assert T.encoder(x.astype(np.float32), p32).dtype == np.float32
    assert T.encoder(x, p32).dtype == np.float64
    out32 = T.encoder(x.astype(np.float32), p32)
    out64 = T.encoder(x, T.EncoderParams(p32.config, [
        T.EncoderLayerParams(
            A.MultiHeadParams(*(None if a is None else a.astype(np.float64) for a in (
                l.attn.w_q, l.attn.w_k, l.attn.w_v, l.attn.b_q, l.attn.b_k, l.attn.b_v,
                l.attn.w_o, l.attn.b_o))),
            Ly.LayerNormParams(l.ln1.gamma.astype(np.float64), l.ln1.beta.astype(np.float64)),
            Ly.FFNParams(l.ffn.w1.astype(np.float64), l.ffn.b1.astype(np.float64),
                         l.ffn.w2.astype(np.float64), l.ffn.b2.astype(np.float64)),
            Ly.LayerNormParams(l.ln2.gamma.astype(np.float64), l.ln2.beta.astype(np.float64)))
        for l in p32.layers]))
    assert_close(out32, out64, kind="ill_conditioned", dtype=np.float32, n=64)


def test_encoder_errors(rng):
    c = small_config()
    p = T.init_encoder(c, rng)
    with pytest.raises(ValueError, match="x"):
        T.encoder(np.ones((2, 3, 7)), p)
    with pytest.raises(ValueError, match="x"):
        T.encoder(np.ones(8), p)
    with pytest.raises(ValueError, match="x"):
        T.encoder(np.full((3, 8), np.nan), p)
    with pytest.raises(TypeError, match="params"):
        T.encoder(np.ones((3, 8)), p.layers)
    with pytest.raises(TypeError, match="layer"):
        T.encoder_layer(np.ones((3, 8)), p, c)
    with pytest.raises(TypeError, match="config"):
        T.encoder_layer(np.ones((3, 8)), p.layers[0], None)
    with pytest.raises(TypeError, match="mask"):
        T.encoder(np.ones((3, 8)), p, mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match="causal"):
        T.encoder(np.ones((3, 8)), p, causal="future")


# --------------------------------------------------------------------------- decoder

def test_init_decoder_structure(rng):
    p = T.init_decoder(small_config(n_layers=3), rng)
    assert len(p.layers) == 3
    layer = p.layers[2]
    assert isinstance(layer.self_attn, A.MultiHeadParams)
    assert isinstance(layer.cross_attn, A.MultiHeadParams)
    assert layer.ln3.gamma.shape == (8,)
    with pytest.raises(TypeError, match="layers\\[0\\]"):
        T.DecoderParams(p.config, [T.init_encoder(p.config, rng).layers[0]] * 3)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_decoder_matches_formula(rng, norm):
    c = small_config(norm=norm, n_layers=1)
    p = T.init_decoder(c, rng)
    layer = p.layers[0]
    y, mem = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 6, 8))
    pad = np.array([[True] * 6, [True] * 3 + [False] * 3])

    def ln(z, lnp):
        return Ly.layer_norm(z, lnp.gamma, lnp.beta, eps=c.eps)

    def sa(z):
        return A.multi_head_attention_per_head(z, z, layer.self_attn, causal=True)

    def ca(z):
        return A.multi_head_attention_per_head(z, mem, layer.cross_attn, mask=pad[:, None, :])

    def ff(z):
        return Ly.feed_forward(z, layer.ffn)

    if norm == "post":
        h = ln(y + sa(y), layer.ln1)
        h = ln(h + ca(h), layer.ln2)
        h = ln(h + ff(h), layer.ln3)
    else:
        h = y + sa(ln(y, layer.ln1))
        h = h + ca(ln(h, layer.ln2))
        h = h + ff(ln(h, layer.ln3))
    assert_close(T.decoder(y, mem, p, memory_mask=pad), h)


def test_decoder_causal_and_memory_padding(rng):
    p = T.init_decoder(small_config(), rng)
    y, mem = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 6, 8))
    pad = np.ones((2, 6), bool)
    pad[:, 4:] = False
    out = T.decoder(y, mem, p, memory_mask=pad)
    y2, mem2 = y.copy(), mem.copy()
    y2[:, 3:] += 1.0                  # future target positions
    mem2[:, 4:] = 50.0                # padded memory positions
    out2 = T.decoder(y2, mem2, p, memory_mask=pad)
    np.testing.assert_array_equal(out[:, :3], out2[:, :3])


def test_decoder_errors(rng):
    p = T.init_decoder(small_config(), rng)
    y, mem = np.ones((2, 3, 8)), np.ones((2, 4, 8))
    with pytest.raises(ValueError, match="memory"):
        T.decoder(y, np.ones((2, 4, 6)), p)
    with pytest.raises(ValueError, match="y"):
        T.decoder(np.ones((2, 3, 6)), mem, p)
    with pytest.raises(ValueError, match="memory: leading"):
        T.decoder(y, np.ones((3, 4, 8)), p)
    with pytest.raises(TypeError, match="params"):
        T.decoder(y, mem, T.init_encoder(small_config(), rng))
    with pytest.raises(TypeError, match="memory_mask"):
        T.decoder(y, mem, p, memory_mask=np.ones((2, 4), np.int32))


# --------------------------------------------------------------------------- seq2seq

@pytest.fixture
def seq2seq(rng):
    return T.init_seq2seq(small_config(), 11, 13, rng)


def test_seq2seq_init(rng, seq2seq):
    p = seq2seq
    assert p.src_embedding.shape == (11, 8) and p.tgt_embedding.shape == (13, 8)
    assert p.w_out.shape == (8, 13) and p.b_out.shape == (13,)
    assert (p.src_vocab, p.tgt_vocab) == (11, 13)
    with pytest.raises(ValueError, match="even"):
        T.init_seq2seq(small_config(d_model=7, n_heads=1, n_layers=1), 5, 5, rng)
    with pytest.raises(ValueError, match="src_vocab"):
        T.init_seq2seq(small_config(), 0, 5, rng)
    with pytest.raises(ValueError, match="w_out"):
        T.Seq2SeqParams(p.encoder, p.decoder, p.src_embedding, p.tgt_embedding,
                        p.w_out[:, :5], p.b_out)
    with pytest.raises(TypeError, match="decoder"):
        T.Seq2SeqParams(p.encoder, p.encoder, p.src_embedding, p.tgt_embedding, p.w_out, p.b_out)


def test_seq2seq_logits_formula(rng, seq2seq):
    """Embeddings scaled by sqrt(d_model) plus the sinusoidal encoding (Vaswani §3.4-3.5)."""
    p = seq2seq
    src, tgt = rng.integers(0, 11, (3, 6)), rng.integers(0, 13, (3, 4))
    x = p.src_embedding[src] * math.sqrt(8) + sinusoidal_encoding(6, 8)
    y = p.tgt_embedding[tgt] * math.sqrt(8) + sinusoidal_encoding(4, 8)
    h = T.decoder(y, T.encoder(x, p.encoder), p.decoder)
    logits = T.seq2seq_logits(src, tgt, p)
    assert logits.shape == (3, 4, 13)
    assert_close(logits, h @ p.w_out + p.b_out)


@pytest.mark.parametrize("kw", [dict(), dict(norm="pre"), dict(n_heads=4, n_kv_heads=2),
                                dict(n_heads=4, n_kv_heads=1, norm="pre", bias=False),
                                dict(n_layers=3, activation="gelu")])
def test_incremental_logits_equal_teacher_forcing(rng, kw):
    p = T.init_seq2seq(small_config(**kw), 7, 9, rng)
    src, tgt = rng.integers(0, 7, (2, 5)), rng.integers(0, 9, (2, 6))
    assert_close(T.seq2seq_logits_incremental(src, tgt, p), T.seq2seq_logits(src, tgt, p))


def test_incremental_logits_float32(rng):
    p = T.init_seq2seq(small_config(), 7, 9, rng, dtype=np.float32)
    src, tgt = rng.integers(0, 7, (2, 5)), rng.integers(0, 9, (2, 6))
    full = T.seq2seq_logits(src, tgt, p)
    inc = T.seq2seq_logits_incremental(src, tgt, p)
    assert full.dtype == np.float32 and inc.dtype == np.float32
    assert_close(inc, full, kind="ill_conditioned", dtype=np.float32, n=64)


def test_teacher_forcing_prefix_independent_of_future_tokens(rng, seq2seq):
    src = rng.integers(0, 11, (2, 5))
    tgt = rng.integers(0, 13, (2, 6))
    tgt2 = tgt.copy()
    tgt2[:, 3:] = (tgt2[:, 3:] + 1) % 13
    np.testing.assert_array_equal(T.seq2seq_logits(src, tgt, seq2seq)[:, :3],
                                  T.seq2seq_logits(src, tgt2, seq2seq)[:, :3])


def test_greedy_decode_is_argmax_of_teacher_forcing(rng, seq2seq):
    src = rng.integers(0, 11, (3, 5))
    out = T.greedy_decode(src, seq2seq, bos=1, max_len=6)
    assert out.shape == (3, 7) and out.dtype == np.int64
    np.testing.assert_array_equal(out[:, 0], 1)
    logits = T.seq2seq_logits(src, out[:, :-1], seq2seq)
    np.testing.assert_array_equal(np.argmax(logits, axis=-1), out[:, 1:])


def test_greedy_decode_eos(rng, seq2seq):
    src = rng.integers(0, 11, (4, 5))
    free = T.greedy_decode(src, seq2seq, bos=0, max_len=8)
    eos = int(free[0, 2])           # sequence 0 is sure to produce it
    out = T.greedy_decode(src, seq2seq, bos=0, max_len=8, eos=eos)
    assert 2 <= out.shape[1] <= 9
    first_eos = []
    for row_free, row in zip(free, out):
        hits = np.flatnonzero(row[1:] == eos)
        stop = hits[0] + 1 if hits.size else len(row) - 1     # generated tokens up to eos
        # identical to free decoding up to and including the first eos ...
        np.testing.assert_array_equal(row[:1 + stop], row_free[:1 + stop])
        # ... and padded with eos afterwards
        np.testing.assert_array_equal(row[1 + stop:], eos)
        first_eos.append(hits[0] if hits.size else None)
    if all(h is not None for h in first_eos):                 # every sequence finished:
        assert out.shape[1] == 2 + max(first_eos)             # decoding stopped there


def test_greedy_decode_max_len_zero(rng, seq2seq):
    out = T.greedy_decode(rng.integers(0, 11, (2, 3)), seq2seq, bos=4, max_len=0)
    np.testing.assert_array_equal(out, [[4], [4]])


@pytest.mark.parametrize("src, tgt, exc, match", [
    (np.zeros((2, 3)), np.zeros((2, 2), int), TypeError, "src_tokens"),
    (np.zeros((2, 3), bool), np.zeros((2, 2), int), TypeError, "src_tokens"),
    (np.zeros(3, int), np.zeros((2, 2), int), ValueError, "src_tokens"),
    (np.full((2, 3), 11), np.zeros((2, 2), int), ValueError, "src_tokens"),
    (np.full((2, 3), -1), np.zeros((2, 2), int), ValueError, "src_tokens"),
    (np.zeros((2, 3), int), np.full((2, 2), 13), ValueError, "tgt_tokens"),
    (np.zeros((2, 3), int), np.zeros((3, 2), int), ValueError, "tgt_tokens: batch"),
    (np.zeros((2, 3), int), np.zeros((2, 0), int), ValueError, "tgt_tokens"),
    (np.zeros((2, 0), int), np.zeros((2, 2), int), ValueError, "src_tokens"),
])
def test_seq2seq_errors(seq2seq, src, tgt, exc, match):
    with pytest.raises(exc, match=match):
        T.seq2seq_logits(src, tgt, seq2seq)
    with pytest.raises(exc, match=match):
        T.seq2seq_logits_incremental(src, tgt, seq2seq)


def test_greedy_decode_errors(seq2seq):
    src = np.zeros((2, 3), int)
    with pytest.raises(ValueError, match="bos"):
        T.greedy_decode(src, seq2seq, bos=13, max_len=3)
    with pytest.raises(TypeError, match="bos"):
        T.greedy_decode(src, seq2seq, bos=1.0, max_len=3)
    with pytest.raises(ValueError, match="max_len"):
        T.greedy_decode(src, seq2seq, bos=0, max_len=-1)
    with pytest.raises(ValueError, match="eos"):
        T.greedy_decode(src, seq2seq, bos=0, max_len=3, eos=-2)
    with pytest.raises(TypeError, match="params"):
        T.greedy_decode(src, seq2seq.encoder, bos=0, max_len=3)


# --------------------------------------------------------------------------- classifier

def test_classifier_pooling(rng):
    c = small_config()
    x = rng.standard_normal((3, 5, 8))
    p = T.init_classifier(c, 4, rng, pooling="first")
    assert p.w.shape == (8, 4) and p.b.shape == (4,) and p.n_classes == 4
    h = T.encoder(x, p.encoder)
    assert_close(T.classify(x, p), h[:, 0] @ p.w + p.b)
    pm = T.ClassifierParams(p.encoder, p.w, p.b, "mean")
    assert_close(T.classify(x, pm), h.mean(axis=1) @ p.w + p.b)
    assert T.classify(x[0], pm).shape == (4,)


def test_classifier_mask_ignores_padding(rng):
    p = T.init_classifier(small_config(), 3, rng)      # mean pooling
    x = rng.standard_normal((2, 6, 8))
    mask = np.array([[True] * 4 + [False] * 2, [True] * 6])
    out = T.classify(x, p, mask=mask)
    x2 = x.copy()
    x2[0, 4:] = 7.0
    np.testing.assert_array_equal(T.classify(x2, p, mask=mask)[0], out[0])
    # equals classifying the unpadded sequence alone
    assert_close(out[0], T.classify(x[0, :4], p))
    # no real token at all: pooled vector is zero, logits are the bias
    np.testing.assert_allclose(T.classify(x, p, mask=np.zeros((2, 6), bool)), np.tile(p.b, (2, 1)))


def test_classifier_errors(rng):
    c = small_config()
    p = T.init_classifier(c, 3, rng)
    x = np.ones((2, 5, 8))
    with pytest.raises(TypeError, match="mask"):
        T.classify(x, p, mask=np.ones((2, 5)))
    with pytest.raises(ValueError, match="mask"):
        T.classify(x, p, mask=np.ones((2, 5, 5), bool))
    with pytest.raises(ValueError, match="pooling"):
        T.init_classifier(c, 3, rng, pooling="max")
    with pytest.raises(ValueError, match="pooling"):
        T.ClassifierParams(p.encoder, p.w, p.b, "cls")
    with pytest.raises(ValueError, match="ClassifierParams.b"):
        T.ClassifierParams(p.encoder, p.w, np.ones(4), "mean")
    with pytest.raises(ValueError, match="n_classes"):
        T.init_classifier(c, 0, rng)
    with pytest.raises(TypeError, match="params"):
        T.classify(x, p.encoder)


# --------------------------------------------------------------------------- counts

def test_seed_003_parameter_table(rng):
    c = T.EncoderConfig(d_model=32, n_heads=2, d_head=32, d_ff=32, n_layers=1, bias=True)
    assert T.count_parameters(c) == 10_656
    assert T.count_array_parameters(T.init_encoder(c, rng)) == 10_656


@pytest.mark.parametrize("kw", [
    dict(d_model=32, n_heads=2, d_head=32, d_ff=32),
    dict(d_model=16, n_heads=4, d_ff=64, n_layers=3),
    dict(d_model=16, n_heads=4, d_ff=64, n_layers=2, bias=False),
    dict(d_model=24, n_heads=6, n_kv_heads=2, d_ff=40, n_layers=2),
    dict(d_model=24, n_heads=6, n_kv_heads=1, d_ff=40, bias=False, d_head=5),
    dict(d_model=10, n_heads=3, d_ff=7, n_layers=2, norm="pre"),
])
def test_count_parameters_matches_arrays(rng, kw):
    c = T.EncoderConfig(**kw)
    assert T.count_parameters(c) == T.count_array_parameters(T.init_encoder(c, rng))


def test_count_parameters_hand_values():
    # E=4, H=2, Dh=2, F=8, no bias: Q,K,V 3*2*(4*2) = 48, W_O 2*2*4 = 16, FFN 64, LN 16
    assert T.count_parameters(T.EncoderConfig(4, 2, 8, bias=False)) == 48 + 16 + 64 + 16
    # multi-query: K, V have one head
    assert T.count_parameters(T.EncoderConfig(4, 2, 8, bias=False, n_kv_heads=1)) == \
        2 * 8 + 2 * 8 + 16 + 64 + 16


def test_count_array_parameters_walks_trees(rng):
    p = A.init_multi_head(4, 2, rng, bias=False)
    assert T.count_array_parameters(p) == 3 * 2 * 4 * 2 + 4 * 4
    assert T.count_array_parameters([p, {"x": np.ones(3)}, None, "text", 5]) == 64 + 3
    s2s = T.init_seq2seq(small_config(n_layers=1), 5, 7, rng)
    # a decoder layer is an encoder layer plus cross-attention and a third LayerNorm
    cross = T.count_array_parameters(s2s.decoder.layers[0].cross_attn)
    assert cross == T.count_array_parameters(s2s.decoder.layers[0].self_attn) > 0
    embeddings_and_head = 5 * 8 + 7 * 8 + 8 * 7 + 7
    assert T.count_array_parameters(s2s) == (
        2 * T.count_parameters(s2s.encoder.config) + cross + 2 * 8 + embeddings_and_head)


def test_attention_flops_hand_values():
    c = T.EncoderConfig(d_model=4, n_heads=2, d_ff=8)      # Dh = 2
    f = T.attention_flops(c, 3)
    assert f == {"qkv_projection": 3 * 4 * 12, "scores": 2 * 9 * 2, "weighted_values": 2 * 9 * 2,
                 "output_projection": 3 * 4 * 4, "ffn": 2 * 3 * 4 * 8,
                 "total": 144 + 36 + 36 + 48 + 192}
    # seed 000: naive attention costs d N^2 multiplications per matrix product
    one_head = T.EncoderConfig(d_model=32, n_heads=1, d_ff=32)
    assert T.attention_flops(one_head, 600)["scores"] == 32 * 600 ** 2
    gqa = T.attention_flops(T.EncoderConfig(8, 4, 8, n_kv_heads=1), 5)
    assert gqa["qkv_projection"] == 5 * 8 * (4 * 2 + 2 + 2)
    with pytest.raises(ValueError, match="seq_len"):
        T.attention_flops(c, 0)
    with pytest.raises(TypeError, match="config"):
        T.attention_flops({"d_model": 4}, 3)
    with pytest.raises(TypeError, match="config"):
        T.count_parameters(None)
