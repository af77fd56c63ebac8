"""Parameter types of transformer stacks: the configuration, encoder, decoder, seq2seq and
classifier parameters, each a dataclass that validates itself against its configuration.

Built from the layer types of :mod:`.params` (attention, LayerNorm, FFN).

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.1 (encoder and decoder stacks)
and §3.3-3.4 (feed-forward networks, embeddings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np

from .params import AttentionParams, FFNParams, LayerNormParams
from .validate import ACTIVATION_NAMES, as_float_array, check_instance, check_positive_int

__all__ = [
    "EncoderConfig",
    "EncoderLayerParams",
    "EncoderParams",
    "DecoderLayerParams",
    "DecoderParams",
    "Seq2SeqParams",
    "ClassifierParams",
]


@dataclass
class EncoderConfig:
    """Hyper-parameters of a transformer stack (also used for decoders).

    Attributes
    ----------
    d_model : int
        Model width E.
    n_heads : int
        Query heads H.
    d_ff : int
        Hidden width F of the feed-forward network.
    n_layers : int
        Number of blocks.
    d_head : int or None
        Per-head width Dh (queries, keys and values); default ``d_model // n_heads``.
    n_kv_heads : int or None
        ``None``: multi-head attention. Otherwise grouped-query attention with
        this many key/value heads G, a divisor of H (1 = multi-query).
    bias : bool
        Biases in the attention projections and the FFN.
    norm : {"post", "pre"}
        LayerNorm placement (see :mod:`transformer_theory.impl.transformer`).
    eps : float
        LayerNorm epsilon (finite, >= 0).
    activation : str or callable
        FFN activation, a name from :data:`.validate.ACTIVATION_NAMES` or a function.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.1, §3.3 and Table 3.
    """

    d_model: int
    n_heads: int
    d_ff: int
    n_layers: int = 1
    d_head: int | None = None
    n_kv_heads: int | None = None
    bias: bool = True
    norm: str = "post"
    eps: float = 1e-5
    activation: Union[str, Callable] = "relu"

    def __post_init__(self):
        self.d_model = check_positive_int(self.d_model, "d_model")
        self.n_heads = check_positive_int(self.n_heads, "n_heads")
        self.d_ff = check_positive_int(self.d_ff, "d_ff")
        self.n_layers = check_positive_int(self.n_layers, "n_layers")
        if self.d_head is None:
            if self.d_model // self.n_heads < 1:
                raise ValueError(
                    f"d_head: default d_model // n_heads is 0 (d_model = {self.d_model}, "
                    f"n_heads = {self.n_heads}); pass d_head explicitly")
        else:
            self.d_head = check_positive_int(self.d_head, "d_head")
        if self.n_kv_heads is not None:
            self.n_kv_heads = check_positive_int(self.n_kv_heads, "n_kv_heads")
            if self.n_heads % self.n_kv_heads != 0:
                raise ValueError(
                    f"n_kv_heads: expected a divisor of n_heads = {self.n_heads}, "
                    f"got {self.n_kv_heads}")
        if not isinstance(self.bias, (bool, np.bool_)):
            raise TypeError(f"bias: expected a bool, got {type(self.bias).__name__}")
        self.bias = bool(self.bias)
        if self.norm not in ("post", "pre"):
            raise ValueError(f"norm: expected one of ('post', 'pre'), got {self.norm!r}")
        if isinstance(self.eps, (bool, np.bool_)) or not isinstance(
                self.eps, (int, float, np.integer, np.floating)):
            raise TypeError(f"eps: expected a real number, got {type(self.eps).__name__}")
        if not math.isfinite(self.eps) or self.eps < 0:
            raise ValueError(f"eps: expected a finite number >= 0, got {self.eps!r}")
        self.eps = float(self.eps)
        if isinstance(self.activation, str):
            if self.activation not in ACTIVATION_NAMES:
                raise ValueError(
                    f"activation: expected one of {ACTIVATION_NAMES!r} or a callable, "
                    f"got {self.activation!r}")
        elif not callable(self.activation):
            raise TypeError(
                f"activation: expected a name or a callable, got {type(self.activation).__name__}")

    @property
    def head_dim(self) -> int:
        """Resolved per-head width Dh."""
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """Resolved number of key/value heads G (H for multi-head attention)."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads


def _check_layers(layers, cls, config: EncoderConfig, owner: str) -> list:
    """``config.n_layers`` blocks of type ``cls``, as a list."""
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"{owner}.layers: expected a list, got {type(layers).__name__}")
    if len(layers) != config.n_layers:
        raise ValueError(
            f"{owner}.layers: expected n_layers = {config.n_layers} layers, got {len(layers)}")
    for i, layer in enumerate(layers):
        if not isinstance(layer, cls):
            raise TypeError(
                f"{owner}.layers[{i}]: expected {cls.__name__}, got {type(layer).__name__}")
    return list(layers)


@dataclass
class EncoderLayerParams:
    """One encoder block: self-attention, LayerNorm, FFN, LayerNorm.

    Attributes
    ----------
    attn : MultiHeadParams or GroupedQueryParams
    ln1 : LayerNormParams   (around the attention sublayer)
    ffn : FFNParams
    ln2 : LayerNormParams   (around the FFN sublayer)
    """

    attn: AttentionParams
    ln1: LayerNormParams
    ffn: FFNParams
    ln2: LayerNormParams


@dataclass
class EncoderParams:
    """A stack of ``config.n_layers`` encoder blocks.

    Attributes
    ----------
    config : EncoderConfig
    layers : list of EncoderLayerParams
    """

    config: EncoderConfig
    layers: list = field(default_factory=list)

    def __post_init__(self):
        check_instance(self.config, "EncoderParams.config", EncoderConfig)
        self.layers = _check_layers(self.layers, EncoderLayerParams, self.config, "EncoderParams")


@dataclass
class DecoderLayerParams:
    """One decoder block: masked self-attention, cross-attention, FFN, each with a LayerNorm.

    Attributes
    ----------
    self_attn : MultiHeadParams or GroupedQueryParams
    ln1 : LayerNormParams
    cross_attn : MultiHeadParams or GroupedQueryParams
    ln2 : LayerNormParams
    ffn : FFNParams
    ln3 : LayerNormParams
    """

    self_attn: AttentionParams
    ln1: LayerNormParams
    cross_attn: AttentionParams
    ln2: LayerNormParams
    ffn: FFNParams
    ln3: LayerNormParams


@dataclass
class DecoderParams:
    """A stack of ``config.n_layers`` decoder blocks.

    Attributes
    ----------
    config : EncoderConfig
    layers : list of DecoderLayerParams
    """

    config: EncoderConfig
    layers: list = field(default_factory=list)

    def __post_init__(self):
        check_instance(self.config, "DecoderParams.config", EncoderConfig)
        self.layers = _check_layers(self.layers, DecoderLayerParams, self.config, "DecoderParams")


@dataclass
class Seq2SeqParams:
    """An encoder-decoder transformer with token embeddings and an output layer.

    Attributes
    ----------
    encoder : EncoderParams
    decoder : DecoderParams
    src_embedding : (V_src, E)
    tgt_embedding : (V_tgt, E)
    w_out : (E, V_tgt)
    b_out : (V_tgt,)
    """

    encoder: EncoderParams
    decoder: DecoderParams
    src_embedding: np.ndarray
    tgt_embedding: np.ndarray
    w_out: np.ndarray
    b_out: np.ndarray

    def __post_init__(self):
        check_instance(self.encoder, "Seq2SeqParams.encoder", EncoderParams)
        check_instance(self.decoder, "Seq2SeqParams.decoder", DecoderParams)
        e = self.encoder.config.d_model
        if self.decoder.config.d_model != e:
            raise ValueError(
                f"Seq2SeqParams.decoder: d_model must equal the encoder's {e}, "
                f"got {self.decoder.config.d_model}")
        self.src_embedding = as_float_array(self.src_embedding, "Seq2SeqParams.src_embedding", ndim=2)
        self.tgt_embedding = as_float_array(self.tgt_embedding, "Seq2SeqParams.tgt_embedding", ndim=2)
        self.w_out = as_float_array(self.w_out, "Seq2SeqParams.w_out", ndim=2)
        self.b_out = as_float_array(self.b_out, "Seq2SeqParams.b_out", ndim=1)
        v = self.tgt_embedding.shape[0]
        for name, arr, shape in (("src_embedding", self.src_embedding,
                                  (self.src_embedding.shape[0], e)),
                                 ("tgt_embedding", self.tgt_embedding, (v, e)),
                                 ("w_out", self.w_out, (e, v)),
                                 ("b_out", self.b_out, (v,))):
            if arr.shape != shape or 0 in arr.shape:
                raise ValueError(f"Seq2SeqParams.{name}: expected shape {shape}, got {arr.shape}")

    @property
    def src_vocab(self) -> int:
        """Source vocabulary size."""
        return self.src_embedding.shape[0]

    @property
    def tgt_vocab(self) -> int:
        """Target vocabulary size."""
        return self.tgt_embedding.shape[0]


@dataclass
class ClassifierParams:
    """An encoder followed by pooling and a linear classification head.

    Attributes
    ----------
    encoder : EncoderParams
    w : (E, C)
    b : (C,)
    pooling : {"first", "mean"}
        ``"first"``: the output at position 0 (a [CLS] token);
        ``"mean"``: the average over the (unpadded) positions.
    """

    encoder: EncoderParams
    w: np.ndarray
    b: np.ndarray
    pooling: str = "mean"

    def __post_init__(self):
        check_instance(self.encoder, "ClassifierParams.encoder", EncoderParams)
        self.w = as_float_array(self.w, "ClassifierParams.w", ndim=2)
        self.b = as_float_array(self.b, "ClassifierParams.b", ndim=1)
        e = self.encoder.config.d_model
        if self.w.shape[0] != e or self.w.shape[1] == 0:
            raise ValueError(f"ClassifierParams.w: expected shape ({e}, C), got {self.w.shape}")
        if self.b.shape != (self.w.shape[1],):
            raise ValueError(
                f"ClassifierParams.b: expected shape ({self.w.shape[1]},), got {self.b.shape}")
        if self.pooling not in ("first", "mean"):
            raise ValueError(
                f"ClassifierParams.pooling: expected one of ('first', 'mean'), got {self.pooling!r}")

    @property
    def n_classes(self) -> int:
        """Number of classes C."""
        return self.w.shape[1]
