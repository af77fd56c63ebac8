"""Transformer blocks: encoder and decoder stacks, encoder-decoder, classifier, counts.

Built from :mod:`.attention` (multi-head / grouped-query attention, KV cache),
:mod:`.layers` (LayerNorm, position-wise FFN, residual) and :mod:`.positional`
(sinusoidal encoding). The configuration and parameter types
(``EncoderConfig``, ``EncoderParams``, ``Seq2SeqParams``, ...) are those of
:mod:`.contract.params` and :mod:`.contract.params_stack`, re-exported here.

Sublayer order
--------------
*Post-LN* (the original transformer, Vaswani et al. §3.1; seed 003 "Add
Residual Connections and Layer Normalization")::

    x = LN(x + MHA(x));   x = LN(x + FFN(x))

*Pre-LN* (Xiong et al. 2020; GPT-2)::

    x = x + MHA(LN(x));   x = x + FFN(LN(x))

No final LayerNorm is added after a pre-LN stack, so both variants have the
same parameters (two LayerNorms per encoder layer, three per decoder layer).

Shapes: ``E = d_model``, ``H`` heads of width ``Dh``, ``G`` key/value heads,
``F = d_ff``, ``L`` positions, ``V`` vocabulary, ``C`` classes.

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3 (architecture), §3.4
(embeddings), §3.5 (positional encoding).
Xiong et al. 2020, On Layer Normalization in the Transformer Architecture, §3.
Seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt): encoder block, parameter
count table, classification with transformers. Seed 004
(shared/seeds/004_d5b314f5ea1e15da.txt): encoder-decoder translation,
teacher forcing, the decoder mask.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .attention import (
    cross_attention,
    decode_step,
    grouped_query_attention,
    init_grouped_query,
    init_kv_cache,
    init_multi_head,
    multi_head_attention,
)
from .contract.params import (  # noqa: F401  (re-exported: the contract's types)
    AttentionParams,
    GroupedQueryParams,
    KVCache,
    LayerNormParams,
    MultiHeadParams,
)
from .contract.params_stack import (  # noqa: F401  (re-exported: the contract's types)
    ClassifierParams,
    DecoderLayerParams,
    DecoderParams,
    EncoderConfig,
    EncoderLayerParams,
    EncoderParams,
    Seq2SeqParams,
)
from .contract.validate import (
    as_float_array,
    check_instance,
    check_positive_int,
    check_rng,
    common_float_dtype,
)
from .layers import (
    feed_forward,
    init_ffn,
    init_layer_norm,
    layer_norm,
    residual,
)
from .positional import sinusoidal_encoding

__all__ = [
    "EncoderConfig",
    "EncoderLayerParams",
    "EncoderParams",
    "init_encoder",
    "encoder_layer",
    "encoder",
    "DecoderLayerParams",
    "DecoderParams",
    "init_decoder",
    "decoder",
    "Seq2SeqParams",
    "init_seq2seq",
    "seq2seq_logits",
    "seq2seq_logits_incremental",
    "greedy_decode",
    "ClassifierParams",
    "init_classifier",
    "classify",
    "count_parameters",
    "count_array_parameters",
    "attention_flops",
]


# ---------------------------------------------------------------------------
# Shared pieces (the parameter types are in .contract.params and .contract.params_stack)
# ---------------------------------------------------------------------------

def _init_attention(config: EncoderConfig, rng, dtype) -> AttentionParams:
    """Multi-head weights, or grouped-query weights when ``n_kv_heads`` is set."""
    if config.n_kv_heads is None:
        return init_multi_head(config.d_model, config.n_heads, rng, d_head=config.head_dim,
                               bias=config.bias, dtype=dtype)
    return init_grouped_query(config.d_model, config.n_heads, config.n_kv_heads, rng,
                              d_head=config.head_dim, bias=config.bias, dtype=dtype)


def _attend(x_q, x_kv, params: AttentionParams, *, mask=None, causal=False) -> np.ndarray:
    """Dispatch to multi-head or grouped-query attention."""
    if isinstance(params, MultiHeadParams):
        return multi_head_attention(x_q, x_kv, params, mask=mask, causal=causal)
    if isinstance(params, GroupedQueryParams):
        return grouped_query_attention(x_q, x_kv, params, mask=mask, causal=causal)
    raise TypeError(
        f"attention params: expected MultiHeadParams or GroupedQueryParams, "
        f"got {type(params).__name__}")


def _norm(x, ln: LayerNormParams, config: EncoderConfig) -> np.ndarray:
    return layer_norm(x, ln.gamma, ln.beta, eps=config.eps)


def _sublayer(x, ln: LayerNormParams, config: EncoderConfig, f) -> np.ndarray:
    """One residual sublayer: post-LN ``LN(x + f(x))`` or pre-LN ``x + f(LN(x))``."""
    if config.norm == "post":
        return _norm(residual(x, f(x)), ln, config)
    return residual(x, f(_norm(x, ln, config)))


def _check_model_input(x, config: EncoderConfig, name: str = "x") -> np.ndarray:
    x = as_float_array(x, name, ndim_min=2)
    if x.shape[-1] != config.d_model:
        raise ValueError(
            f"{name}: expected shape (..., L, d_model = {config.d_model}), got {x.shape}")
    return x


# ---------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------

def _init_encoder_layer(config: EncoderConfig, rng, dtype) -> EncoderLayerParams:
    return EncoderLayerParams(
        attn=_init_attention(config, rng, dtype),
        ln1=init_layer_norm(config.d_model, dtype=dtype),
        ffn=init_ffn(config.d_model, config.d_ff, rng, bias=config.bias, dtype=dtype),
        ln2=init_layer_norm(config.d_model, dtype=dtype))


def init_encoder(config: EncoderConfig, rng: np.random.Generator, dtype=np.float64) -> EncoderParams:
    """Random encoder weights (LayerNorms start at gamma = 1, beta = 0).

    Parameters
    ----------
    config : EncoderConfig
    rng : np.random.Generator
    dtype : float32 or float64

    Returns
    -------
    EncoderParams
        ``config.n_layers`` blocks of self-attention, two LayerNorms and an FFN.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.1.
    """
    check_instance(config, "config", EncoderConfig)
    check_rng(rng)
    layers = [_init_encoder_layer(config, rng, dtype) for _ in range(config.n_layers)]
    return EncoderParams(config=config, layers=layers)


def encoder_layer(x, layer: EncoderLayerParams, config: EncoderConfig, *, mask=None,
                  causal=False) -> np.ndarray:
    """One encoder block.

    Post-LN: ``x = LN(x + MHA(x)); x = LN(x + FFN(x))``.
    Pre-LN:  ``x = x + MHA(LN(x)); x = x + FFN(LN(x))``.

    Parameters
    ----------
    x : array_like, (..., L, E)
    layer : EncoderLayerParams
    config : EncoderConfig
        Supplies ``norm``, ``eps`` and ``activation``.
    mask : array_like of bool, optional
        Attention mask broadcastable to ``(..., L, L)``; True = may attend.
    causal : {False, True, "top-left", "bottom-right"}
        ``True`` turns the block into a decoder-only (GPT-style) block.

    Returns
    -------
    np.ndarray, (..., L, E)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.1; Xiong et al. 2020,
    On Layer Normalization in the Transformer Architecture, §3 (pre-LN);
    seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt, "Transformers – Encoders",
    "Add Residual Connections and Layer Normalization").
    """
    check_instance(config, "config", EncoderConfig)
    check_instance(layer, "layer", EncoderLayerParams)
    x = _check_model_input(x, config)
    x = _sublayer(x, layer.ln1, config,
                  lambda z: _attend(z, z, layer.attn, mask=mask, causal=causal))   # (..., L, E)
    x = _sublayer(x, layer.ln2, config,
                  lambda z: feed_forward(z, layer.ffn, activation=config.activation))  # (..., L, E)
    return x


def encoder(x, params: EncoderParams, *, mask=None, causal=False) -> np.ndarray:
    """The encoder stack: :func:`encoder_layer` applied ``n_layers`` times.

    Parameters
    ----------
    x : array_like, (..., L, E)
        Embedded inputs (positional information already added, if any).
    params : EncoderParams
    mask : array_like of bool, optional
        Broadcastable to ``(..., L, L)``; True = may attend.
    causal : {False, True, "top-left", "bottom-right"}
        ``True`` gives a decoder-only (GPT-style) stack.

    Returns
    -------
    np.ndarray, (..., L, E)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.1 (N = 6 identical
    layers); seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt, "Multiple Layers").
    """
    check_instance(params, "params", EncoderParams)
    x = _check_model_input(x, params.config)
    for layer in params.layers:      # one block after another
        x = encoder_layer(x, layer, params.config, mask=mask, causal=causal)   # (..., L, E)
    return x


# ---------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------

def init_decoder(config: EncoderConfig, rng: np.random.Generator, dtype=np.float64) -> DecoderParams:
    """Random decoder weights (LayerNorms start at gamma = 1, beta = 0).

    Parameters
    ----------
    config : EncoderConfig
    rng : np.random.Generator
    dtype : float32 or float64

    Returns
    -------
    DecoderParams
        ``config.n_layers`` blocks of masked self-attention, cross-attention,
        an FFN and three LayerNorms.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.1 (decoder).
    """
    check_instance(config, "config", EncoderConfig)
    check_rng(rng)
    layers = []
    for _ in range(config.n_layers):
        layers.append(DecoderLayerParams(
            self_attn=_init_attention(config, rng, dtype),
            ln1=init_layer_norm(config.d_model, dtype=dtype),
            cross_attn=_init_attention(config, rng, dtype),
            ln2=init_layer_norm(config.d_model, dtype=dtype),
            ffn=init_ffn(config.d_model, config.d_ff, rng, bias=config.bias, dtype=dtype),
            ln3=init_layer_norm(config.d_model, dtype=dtype)))
    return DecoderParams(config=config, layers=layers)


def _decoder_block(y, layer: DecoderLayerParams, config: EncoderConfig, memory, memory_mask,
                   self_attend) -> np.ndarray:
    """The three sublayers of a decoder block; ``self_attend(z)`` is the masked self-attention.

    Passing the self-attention as a function lets the teacher-forcing pass
    (causal attention over all positions) and the incremental pass (one
    position against a KV cache) share the rest of the block.
    """
    y = _sublayer(y, layer.ln1, config, self_attend)                        # (..., Lt, E)
    y = _sublayer(y, layer.ln2, config,
                  lambda z: cross_attention(z, memory, layer.cross_attn,
                                            memory_mask=memory_mask))       # (..., Lt, E)
    y = _sublayer(y, layer.ln3, config,
                  lambda z: feed_forward(z, layer.ffn, activation=config.activation))
    return y


def decoder(y, memory, params: DecoderParams, *, memory_mask=None) -> np.ndarray:
    """The decoder stack (teacher forcing: all target positions at once).

    Each block: causal self-attention over the target, cross-attention from the
    target to ``memory``, then the FFN, each a residual sublayer with post- or
    pre-LN per ``params.config.norm``.

    Parameters
    ----------
    y : array_like, (..., Lt, E)
        Embedded target prefix.
    memory : array_like, (..., Ls, E)
        Encoder output; leading dims equal to those of ``y``.
    params : DecoderParams
    memory_mask : array_like of bool, optional
        Key-padding ``(..., Ls)`` (True = real token) or full ``(..., Lt, Ls)``.

    Returns
    -------
    np.ndarray, (..., Lt, E)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.1 and §3.2.3; seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt, notes 22-26: decoding attends to
    the input encodings; the mask keeps earlier outputs from seeing later ones).
    """
    check_instance(params, "params", DecoderParams)
    config = params.config
    y = _check_model_input(y, config, "y")
    memory = _check_model_input(memory, config, "memory")
    for layer in params.layers:
        y = _decoder_block(
            y, layer, config, memory, memory_mask,
            lambda z, a=layer.self_attn: _attend(z, z, a, causal=True))      # (..., Lt, E)
    return y


# ---------------------------------------------------------------------------
# Encoder-decoder (seq2seq)
# ---------------------------------------------------------------------------

def init_seq2seq(config: EncoderConfig, src_vocab: int, tgt_vocab: int, rng: np.random.Generator,
                 dtype=np.float64) -> Seq2SeqParams:
    """Random encoder-decoder weights.

    Embeddings are ``N(0, 1/E)`` so that after the ``sqrt(E)`` scaling of
    §3.4 token vectors have unit-size entries, like the positional encoding.
    The output layer is ``N(0, 1/E)`` with small non-zero biases.

    Parameters
    ----------
    config : EncoderConfig
        Used for both the encoder and the decoder; ``d_model`` must be even
        (sinusoidal encoding).
    src_vocab, tgt_vocab : int
    rng : np.random.Generator
    dtype : float32 or float64

    Returns
    -------
    Seq2SeqParams

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.4.
    """
    check_instance(config, "config", EncoderConfig)
    check_rng(rng)
    src_vocab = check_positive_int(src_vocab, "src_vocab")
    tgt_vocab = check_positive_int(tgt_vocab, "tgt_vocab")
    if config.d_model % 2 != 0:
        raise ValueError(
            f"config.d_model: the sinusoidal encoding needs an even d_model, got {config.d_model}")
    enc = init_encoder(config, rng, dtype)
    dec = init_decoder(config, rng, dtype)
    e = config.d_model
    src_emb = rng.standard_normal((src_vocab, e)) / math.sqrt(e)     # (V_src, E)
    tgt_emb = rng.standard_normal((tgt_vocab, e)) / math.sqrt(e)     # (V_tgt, E)
    w_out = rng.standard_normal((e, tgt_vocab)) / math.sqrt(e)       # (E, V_tgt)
    b_out = 0.1 * rng.standard_normal(tgt_vocab)                     # (V_tgt,)
    dt = enc.layers[0].ln1.gamma.dtype
    return Seq2SeqParams(enc, dec, src_emb.astype(dt), tgt_emb.astype(dt),
                         w_out.astype(dt), b_out.astype(dt))


def _check_tokens(tokens, name: str, vocab: int) -> np.ndarray:
    """Integer token ids of shape (B, L) with values in [0, vocab)."""
    t = np.asarray(tokens)
    if t.dtype == np.bool_ or t.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array of token ids, got dtype {t.dtype}")
    if t.ndim != 2:
        raise ValueError(f"{name}: expected shape (B, L), got {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= vocab):
        raise ValueError(
            f"{name}: token ids must lie in [0, {vocab - 1}], got range [{t.min()}, {t.max()}]")
    return t


def _embed(tokens: np.ndarray, table: np.ndarray, pe: np.ndarray) -> np.ndarray:
    """``sqrt(E) * table[tokens] + PE``: tokens (B, L), pe (L, E) -> (B, L, E)."""
    e = table.shape[1]
    return table[tokens] * math.sqrt(e) + pe          # (B, L, E)


def _positional_table(length: int, params: Seq2SeqParams) -> np.ndarray:
    return sinusoidal_encoding(length, params.encoder.config.d_model,
                               dtype=params.tgt_embedding.dtype)    # (L, E)


def _encode_source(src: np.ndarray, params: Seq2SeqParams) -> np.ndarray:
    if src.shape[1] == 0:
        raise ValueError(f"src_tokens: expected at least one token, got shape {src.shape}")
    x = _embed(src, params.src_embedding, _positional_table(src.shape[1], params))  # (B, Ls, E)
    return encoder(x, params.encoder)                                             # (B, Ls, E)


def _logits(h: np.ndarray, params: Seq2SeqParams) -> np.ndarray:
    return h @ params.w_out + params.b_out            # (..., V)


def seq2seq_logits(src_tokens, tgt_tokens, params: Seq2SeqParams) -> np.ndarray:
    """Next-token logits for every target position, computed in one pass (teacher forcing).

    Position ``t`` of the output predicts target token ``t + 1`` from the
    source and target tokens ``0..t``; the decoder's causal mask makes this
    possible in one parallel pass.

    Parameters
    ----------
    src_tokens : int array, (B, Ls)
    tgt_tokens : int array, (B, Lt)
        The target prefix (starting with BOS), same batch size.
    params : Seq2SeqParams

    Returns
    -------
    np.ndarray, (B, Lt, V_tgt)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.1, §3.4, §3.5; seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt, notes 24-25: "during training, we
    know the entire output in advance, so ... we could do the predictions all
    at once").
    """
    check_instance(params, "params", Seq2SeqParams)
    src = _check_tokens(src_tokens, "src_tokens", params.src_vocab)
    tgt = _check_tokens(tgt_tokens, "tgt_tokens", params.tgt_vocab)
    if src.shape[0] != tgt.shape[0]:
        raise ValueError(
            f"tgt_tokens: batch size must equal that of src_tokens ({src.shape[0]}), "
            f"got shape {tgt.shape}")
    if tgt.shape[1] == 0:
        raise ValueError(f"tgt_tokens: expected at least one token, got shape {tgt.shape}")
    memory = _encode_source(src, params)                                            # (B, Ls, E)
    y = _embed(tgt, params.tgt_embedding, _positional_table(tgt.shape[1], params))  # (B, Lt, E)
    h = decoder(y, memory, params.decoder)                                          # (B, Lt, E)
    return _logits(h, params)                                                       # (B, Lt, V)


class _IncrementalDecoder:
    """Decoder state for one-token-at-a-time decoding: encoder memory and a KV cache per layer."""

    def __init__(self, memory: np.ndarray, params: Seq2SeqParams, max_len: int):
        self.params = params
        self.memory = memory                                      # (B, Ls, E)
        self.pe = _positional_table(max_len, params)              # (Lmax, E)
        dtype = common_float_dtype(memory, params.tgt_embedding)
        batch = memory.shape[:1]
        self.caches: list[KVCache] = [
            init_kv_cache(layer.self_attn, batch, max_len, dtype=dtype)
            for layer in params.decoder.layers]
        self.t = 0

    def step(self, tokens_t: np.ndarray) -> np.ndarray:
        """Feed tokens (B,) at the next position; return next-token logits (B, V)."""
        config = self.params.decoder.config
        y = _embed(tokens_t[:, None], self.params.tgt_embedding,
                   self.pe[self.t:self.t + 1])                    # (B, 1, E)
        for i, layer in enumerate(self.params.decoder.layers):
            def self_attend(z, i=i, layer=layer):
                out, self.caches[i] = decode_step(z, layer.self_attn, self.caches[i])
                return out                                        # (B, 1, E)
            y = _decoder_block(y, layer, config, self.memory, None, self_attend)  # (B, 1, E)
        self.t += 1
        return _logits(y[:, 0, :], self.params)                   # (B, V)


def seq2seq_logits_incremental(src_tokens, tgt_tokens, params: Seq2SeqParams) -> np.ndarray:
    """The logits of :func:`seq2seq_logits`, computed one target position at a time.

    The source is encoded once; each decoder layer keeps a KV cache of its
    self-attention (:func:`attention.decode_step`), so step ``t`` attends over
    positions ``0..t`` without recomputing earlier keys and values. Equals the
    teacher-forcing logits up to rounding: this is the test that the decoder
    mask lets no future position leak.

    Parameters
    ----------
    src_tokens : int array, (B, Ls)
    tgt_tokens : int array, (B, Lt)
    params : Seq2SeqParams

    Returns
    -------
    np.ndarray, (B, Lt, V_tgt)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3; Pope et al. 2023,
    Efficiently Scaling Transformer Inference, §2 (KV cache); seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt, notes 22-25).
    """
    check_instance(params, "params", Seq2SeqParams)
    src = _check_tokens(src_tokens, "src_tokens", params.src_vocab)
    tgt = _check_tokens(tgt_tokens, "tgt_tokens", params.tgt_vocab)
    if src.shape[0] != tgt.shape[0]:
        raise ValueError(
            f"tgt_tokens: batch size must equal that of src_tokens ({src.shape[0]}), "
            f"got shape {tgt.shape}")
    if tgt.shape[1] == 0:
        raise ValueError(f"tgt_tokens: expected at least one token, got shape {tgt.shape}")
    state = _IncrementalDecoder(_encode_source(src, params), params, tgt.shape[1])
    steps = [state.step(tgt[:, t]) for t in range(tgt.shape[1])]   # Lt x (B, V)
    return np.stack(steps, axis=1)                                  # (B, Lt, V)


def _check_token_id(value, name: str, vocab: int) -> int:
    value = check_positive_int(value, name, minimum=0)
    if value >= vocab:
        raise ValueError(f"{name}: expected a token id in [0, {vocab - 1}], got {value}")
    return value


def greedy_decode(src_tokens, params: Seq2SeqParams, *, bos: int, max_len: int,
                  eos: int | None = None) -> np.ndarray:
    """Greedy (argmax) decoding with per-layer KV caches.

    Starts every sequence with ``bos`` and appends the most likely next token
    (``np.argmax``, ties to the smallest id) ``max_len`` times. With ``eos``,
    a sequence that has produced ``eos`` is padded with ``eos`` afterwards,
    and decoding stops as soon as every sequence has produced it.

    Parameters
    ----------
    src_tokens : int array, (B, Ls)
    params : Seq2SeqParams
    bos : int
        Start token id.
    max_len : int
        Maximum number of generated tokens (>= 0).
    eos : int, optional
        End token id.

    Returns
    -------
    np.ndarray of int64, (B, T) with ``1 <= T <= max_len + 1``
        ``bos`` followed by the generated tokens.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3 (auto-regressive
    generation) and §6.1 (beam search, of which greedy is width 1); seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt, note 23: the output so far is the
    query).
    """
    check_instance(params, "params", Seq2SeqParams)
    src = _check_tokens(src_tokens, "src_tokens", params.src_vocab)
    bos = _check_token_id(bos, "bos", params.tgt_vocab)
    max_len = check_positive_int(max_len, "max_len", minimum=0)
    if eos is not None:
        eos = _check_token_id(eos, "eos", params.tgt_vocab)
    batch = src.shape[0]
    out = np.full((batch, 1), bos, dtype=np.int64)                  # (B, 1)
    if max_len == 0 or batch == 0:
        return out
    state = _IncrementalDecoder(_encode_source(src, params), params, max_len)
    finished = np.zeros(batch, dtype=bool)                          # (B,)
    current = out[:, 0]                                             # (B,)
    for _ in range(max_len):        # auto-regressive: each token depends on the previous
        nxt = np.argmax(state.step(current), axis=-1).astype(np.int64)   # (B,)
        if eos is not None:
            nxt = np.where(finished, eos, nxt)
            finished |= nxt == eos
        out = np.concatenate([out, nxt[:, None]], axis=1)           # (B, t + 2)
        current = nxt
        if eos is not None and finished.all():
            break
    return out


# ---------------------------------------------------------------------------
# Classifier
# ---------------------------------------------------------------------------

def init_classifier(config: EncoderConfig, n_classes: int, rng: np.random.Generator,
                    pooling: str = "mean", dtype=np.float64) -> ClassifierParams:
    """Random classifier: an encoder and a ``N(0, 1/E)`` linear head with small biases.

    Parameters
    ----------
    config : EncoderConfig
    n_classes : int
    rng : np.random.Generator
    pooling : {"first", "mean"}
    dtype : float32 or float64

    Returns
    -------
    ClassifierParams

    References
    ----------
    Seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt, "Classification using
    Transformers"); Devlin et al. 2019, BERT, §3 ([CLS] pooling).
    """
    check_instance(config, "config", EncoderConfig)
    check_rng(rng)
    n_classes = check_positive_int(n_classes, "n_classes")
    if pooling not in ("first", "mean"):
        raise ValueError(f"pooling: expected one of ('first', 'mean'), got {pooling!r}")
    enc = init_encoder(config, rng, dtype)
    dt = enc.layers[0].ln1.gamma.dtype
    w = rng.standard_normal((config.d_model, n_classes)) / math.sqrt(config.d_model)  # (E, C)
    b = 0.1 * rng.standard_normal(n_classes)                                          # (C,)
    return ClassifierParams(enc, w.astype(dt), b.astype(dt), pooling)


def classify(x, params: ClassifierParams, *, mask=None) -> np.ndarray:
    """Class logits: encode, pool over positions, apply the linear head.

    Parameters
    ----------
    x : array_like, (..., L, E)
        Embedded inputs.
    params : ClassifierParams
    mask : array_like of bool, optional
        Key-padding mask of shape ``(..., L)``, True = real token. Padded
        positions are hidden from attention and left out of mean pooling (a
        sequence with no real token pools to the zero vector).

    Returns
    -------
    np.ndarray, (..., C)

    References
    ----------
    Seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt, "Classification using
    Transformers"); Devlin et al. 2019, BERT, §3.
    """
    check_instance(params, "params", ClassifierParams)
    x = _check_model_input(x, params.encoder.config)
    lead, length = x.shape[:-2], x.shape[-2]
    attn_mask = keep = None
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != np.bool_:
            raise TypeError(f"mask: expected dtype bool (True = real token), got {m.dtype}")
        if m.shape != tuple(lead) + (length,):
            raise ValueError(
                f"mask: expected a key-padding mask of shape {tuple(lead) + (length,)}, "
                f"got {m.shape}")
        attn_mask = m[..., None, :]                                  # (..., 1, L)
        keep = m
    h = encoder(x, params.encoder, mask=attn_mask)                   # (..., L, E)
    if params.pooling == "first":
        pooled = h[..., 0, :]                                        # (..., E)
    elif keep is None:
        pooled = h.mean(axis=-2)                                     # (..., E)
    else:
        weights = keep.astype(h.dtype)                               # (..., L)
        count = np.maximum(weights.sum(axis=-1, keepdims=True), 1)   # (..., 1)
        pooled = np.einsum("...l,...le->...e", weights, h) / count   # (..., E)
    return pooled @ params.w + params.b                              # (..., C)


# ---------------------------------------------------------------------------
# Parameter and FLOP counts
# ---------------------------------------------------------------------------

def count_parameters(config: EncoderConfig) -> int:
    """Closed-form parameter count of an encoder stack.

    Per layer, with ``b = 1`` if ``config.bias`` else 0, ``G = kv_heads``,
    ``Dv = Dh``:

    * queries ``H (E Dh + b Dh)``, keys ``G (E Dh + b Dh)``, values ``G (E Dv + b Dv)``;
    * output projection ``H Dv E + b E``;
    * FFN ``E F + b F + F E + b E``;
    * two LayerNorms, ``2E`` each.

    Seed 003's table (E = 32, H = 2, Dh = 32, F = 32, one layer, biases) gives
    10,656.

    Parameters
    ----------
    config : EncoderConfig

    Returns
    -------
    int

    References
    ----------
    Seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt, "Counting Number of
    Parameters"); Vaswani et al. 2017, §3.2.2-3.3.
    """
    check_instance(config, "config", EncoderConfig)
    e, h, g, dh, f = config.d_model, config.n_heads, config.kv_heads, config.head_dim, config.d_ff
    dv = dh
    b = 1 if config.bias else 0
    attention_params = (h * (e * dh + b * dh) + g * (e * dh + b * dh) + g * (e * dv + b * dv)
                        + h * dv * e + b * e)
    ffn_params = e * f + b * f + f * e + b * e
    layer_norm_params = 2 * (2 * e)
    return config.n_layers * (attention_params + ffn_params + layer_norm_params)


def count_array_parameters(params) -> int:
    """Total size of every numpy array in a tree of dataclasses, lists, tuples and dicts.

    Non-array leaves (ints, strings, ``None``, configs) count zero.

    Parameters
    ----------
    params : any params object (EncoderParams, Seq2SeqParams, MultiHeadParams, ...)

    Returns
    -------
    int

    References
    ----------
    Seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt, "Counting Number of
    Parameters"): the closed form of :func:`count_parameters` checked against
    the arrays actually built.
    """
    if isinstance(params, np.ndarray):
        return int(params.size)
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return sum(count_array_parameters(getattr(params, f.name))
                   for f in dataclasses.fields(params))
    if isinstance(params, (list, tuple)):
        return sum(count_array_parameters(p) for p in params)
    if isinstance(params, dict):
        return sum(count_array_parameters(p) for p in params.values())
    return 0


def attention_flops(config: EncoderConfig, seq_len: int) -> dict:
    """Multiplications per encoder layer for a sequence of ``seq_len`` positions.

    Only the multiplications of the matrix products are counted (no softmax,
    scaling or additions):

    * ``qkv_projection``: ``L E (H Dh + G Dh + G Dv)``;
    * ``scores``: ``H L^2 Dh`` (``Q K^T``; naive attention costs ``d N^2`` per
      matrix product, seed 000);
    * ``weighted_values``: ``H L^2 Dv``;
    * ``output_projection``: ``L H Dv E``;
    * ``ffn``: ``2 L E F``;
    * ``total``: their sum.

    Parameters
    ----------
    config : EncoderConfig
    seq_len : int

    Returns
    -------
    dict of str -> int

    References
    ----------
    Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt, "Remark (computation)":
    naive implementation does d N^2 scalar multiplications); Vaswani et al.
    2017, §4 and Table 1 (O(n^2 d) per self-attention layer).
    """
    check_instance(config, "config", EncoderConfig)
    n = check_positive_int(seq_len, "seq_len")
    e, h, g, dh, f = config.d_model, config.n_heads, config.kv_heads, config.head_dim, config.d_ff
    dv = dh
    counts = {
        "qkv_projection": n * e * (h * dh + g * dh + g * dv),
        "scores": h * n * n * dh,
        "weighted_values": h * n * n * dv,
        "output_projection": n * h * dv * e,
        "ffn": 2 * n * e * f,
    }
    counts["total"] = sum(counts.values())
    return counts
