"""PyTorch's layers behind the numpy contract: norms, the feed-forward network, encoder stacks.

* ``sigmoid`` and ``tanh`` are torch's; ``layer_norm`` is ``F.layer_norm``,
  ``rms_norm`` is ``F.rms_norm``, ``gated_feed_forward`` is three ``F.linear``
  with ``F.silu`` or ``F.gelu`` on the gate,
  ``batch_norm`` is ``F.batch_norm`` in training mode, ``feed_forward`` is two
  ``F.linear`` around torch's activation;
* ``encoder`` runs a stack of ``nn.TransformerEncoderLayer`` loaded from the
  reference's ``EncoderParams`` (attention weights through
  :func:`.torch_attention.load_multihead`);
* ``encoder_map`` is one fixed ``nn.TransformerEncoderLayer`` and
  ``causal_map`` one fixed ``nn.TransformerDecoderLayer`` under a causal
  target mask with a fixed memory: whole sequence maps of width
  :data:`SEQUENCE_D_MODEL`.

Modules run the way inference code runs them: ``eval()`` mode, under
``torch.no_grad()``, dropout 0. Weights are copied in, never drawn from torch's
global generator (modules are built with ``torch.nn.utils.skip_init``). Boolean
masks are inverted to torch's polarity (True = masked out).

References
----------
PyTorch documentation: ``torch.nn.functional.layer_norm``,
``torch.nn.functional.batch_norm``, ``torch.nn.functional.linear``,
``torch.nn.TransformerEncoderLayer``, ``torch.nn.TransformerDecoderLayer``.
Vaswani et al. 2017, Attention Is All You Need, §3.1, §3.3; Ba et al. 2016,
Layer Normalization, §3; Ioffe & Szegedy 2015, Batch Normalization, §3.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .._validate import as_float_array, common_float_dtype
from ._torch_common import (
    allowed_mask,
    check_vector,
    flatten_lead,
    import_torch,
    mask_tensor,
    param_arrays,
    serial,
    to_numpy,
    to_tensor,
    torch_dtype,
)
from .torch_attention import load_multihead

__all__ = [
    "SEQUENCE_D_MODEL",
    "sigmoid",
    "tanh",
    "layer_norm",
    "batch_norm",
    "rms_norm",
    "feed_forward",
    "gated_feed_forward",
    "encoder",
    "encoder_map",
    "causal_map",
    "torch_activation",
    "ffn_arrays",
    "ffn_torch",
]

#: Width of the built-in sequence maps ``encoder_map`` and ``causal_map``.
SEQUENCE_D_MODEL = 8


# ---------------------------------------------------------------------------
# activations, normalisation and the feed-forward network
# ---------------------------------------------------------------------------

@serial
def sigmoid(x) -> np.ndarray:
    """``torch.sigmoid``."""
    arr = as_float_array(x, "x", ndim_min=0)
    torch = import_torch()
    return to_numpy(torch.sigmoid(to_tensor(arr, arr.dtype)), arr.dtype)


@serial
def tanh(x) -> np.ndarray:
    """``torch.tanh``."""
    arr = as_float_array(x, "x", ndim_min=0)
    torch = import_torch()
    return to_numpy(torch.tanh(to_tensor(arr, arr.dtype)), arr.dtype)


@serial
def layer_norm(x, gamma=None, beta=None, *, eps: float = 1e-5) -> np.ndarray:
    """``F.layer_norm`` over the last axis.

    Returns
    -------
    np.ndarray, (..., E)
        Each position standardised over its E features.

    References
    ----------
    PyTorch documentation, torch.nn.functional.layer_norm; Ba et al. 2016, §3.
    """
    torch = import_torch()
    x, e, dtype, gamma, beta = _norm_args(x, gamma, beta, ndim_min=1)
    with torch.no_grad():
        y = torch.nn.functional.layer_norm(to_tensor(x, dtype), (e,), gamma, beta, float(eps))
    return to_numpy(y, dtype)


@serial
def rms_norm(x, gamma=None, *, eps: float = 1e-6) -> np.ndarray:
    """``F.rms_norm`` over the last axis (eps inside the root, as ``nn.RMSNorm``).

    Returns
    -------
    np.ndarray, (..., E)
        Each position divided by the root mean square of its E features.

    References
    ----------
    PyTorch documentation, torch.nn.functional.rms_norm, torch.nn.RMSNorm;
    Zhang & Sennrich 2019, Root Mean Square Layer Normalization.
    """
    torch = import_torch()
    x, e, dtype, gamma, _ = _norm_args(x, gamma, None, ndim_min=1)
    with torch.no_grad():
        y = torch.nn.functional.rms_norm(to_tensor(x, dtype), (e,), gamma, float(eps))
    return to_numpy(y, dtype)


@serial
def batch_norm(x, gamma=None, beta=None, *, eps: float = 1e-5) -> np.ndarray:
    """``F.batch_norm`` in training mode: statistics over every axis but the last.

    Returns
    -------
    np.ndarray, (..., E)
        Each feature standardised over the batch and positions.

    References
    ----------
    PyTorch documentation, torch.nn.functional.batch_norm; Ioffe & Szegedy 2015, §3.
    """
    torch = import_torch()
    x, e, dtype, gamma, beta = _norm_args(x, gamma, beta, ndim_min=2)
    with torch.no_grad():
        y = torch.nn.functional.batch_norm(to_tensor(x.reshape(-1, e), dtype), None, None,
                                           gamma, beta, training=True, momentum=0.0,
                                           eps=float(eps))
    return to_numpy(y, dtype).reshape(x.shape)


def _norm_args(x, gamma, beta, *, ndim_min: int):
    """The checked inputs of a normalisation: ``x``, ``E``, the dtype, gamma and beta tensors.

    Returns
    -------
    (np.ndarray (..., E), int, np.dtype, tensor (E,) or None, tensor (E,) or None)
    """
    x = as_float_array(x, "x", ndim_min=ndim_min)
    e = x.shape[-1]
    gamma, beta = check_vector(gamma, "gamma", e), check_vector(beta, "beta", e)
    dtype = common_float_dtype(x, gamma, beta)
    gamma, beta = (None if a is None else to_tensor(a, dtype) for a in (gamma, beta))
    return x, e, dtype, gamma, beta


def torch_activation(name):
    """torch's activation named ``name`` (relu, gelu, tanh, sigmoid); names only.

    Parameters
    ----------
    name : str

    Returns
    -------
    callable
        On torch tensors.
    """
    torch = import_torch()
    table = {"relu": torch.relu, "gelu": torch.nn.functional.gelu, "tanh": torch.tanh,
             "sigmoid": torch.sigmoid}
    if not isinstance(name, str):
        raise TypeError(f"activation: the torch adapter takes an activation name "
                        f"{tuple(table)}, got {type(name).__name__}")
    if name not in table:
        raise ValueError(f"activation: expected one of {tuple(table)}, got {name!r}")
    return table[name]


def ffn_arrays(x, params):
    """``x`` and the arrays of ``FFNParams`` checked against each other.

    Parameters
    ----------
    x : array_like, (..., E)
    params : FFNParams
        ``w1 (E, F)``, ``b1 (F,)`` or None, ``w2 (F, E)``, ``b2 (E,)`` or None.

    Returns
    -------
    x, w1, b1, w2, b2 : np.ndarray (biases may be None)
    """
    from transformer_theory.impl.layers import FFNParams

    if not isinstance(params, FFNParams):
        raise TypeError(f"params: expected FFNParams, got {type(params).__name__}")
    x = as_float_array(x, "x", ndim_min=1)
    e = x.shape[-1]
    w1 = as_float_array(params.w1, "params.w1", ndim=2)
    if w1.shape[0] != e:
        raise ValueError(f"params.w1: expected {e} rows (d_model), got shape {w1.shape}")
    f = w1.shape[1]
    w2 = as_float_array(params.w2, "params.w2", ndim=2)
    if w2.shape != (f, e):
        raise ValueError(f"params.w2: expected shape {(f, e)}, got {w2.shape}")
    b1 = check_vector(params.b1, "params.b1", f)
    b2 = check_vector(params.b2, "params.b2", e)
    return x, w1, b1, w2, b2


def ffn_torch(x, w1, b1, w2, b2, act):
    """``act(x W1 + b1) W2 + b2`` on torch tensors (Vaswani et al. 2017, §3.3)."""
    torch = import_torch()
    h = torch.nn.functional.linear(x, w1.T, b1)              # (..., F)
    return torch.nn.functional.linear(act(h), w2.T, b2)       # (..., E)


@serial
def gated_feed_forward(x, params, *, activation="silu") -> np.ndarray:
    """``F.linear(act(F.linear(x, W_gate^T, b_gate)) * F.linear(x, W_up^T, b_up), W_down^T, b_down)``.

    The gate activation is ``F.silu``, ``F.gelu`` or ``F.gelu(approximate='tanh')``.

    Returns
    -------
    np.ndarray, (..., E)

    References
    ----------
    PyTorch documentation, torch.nn.functional.silu, torch.nn.functional.gelu;
    Shazeer 2020, GLU Variants Improve Transformer.
    """
    from transformer_theory.impl.contract.params import GatedFFNParams

    torch = import_torch()
    fn = torch.nn.functional
    table = {"silu": fn.silu, "gelu": fn.gelu,
             "gelu_tanh": lambda t: fn.gelu(t, approximate="tanh")}
    if activation not in table:
        raise ValueError(f"activation: expected one of {tuple(table)}, got {activation!r}")
    if not isinstance(params, GatedFFNParams):
        raise TypeError(f"params: expected GatedFFNParams, got {type(params).__name__}")
    x = as_float_array(x, "x", ndim_min=1)
    arrays = params.validate(x.shape[-1])
    dtype = common_float_dtype(x, *arrays)
    w_gate, b_gate, w_up, b_up, w_down, b_down = (
        None if a is None else to_tensor(a, dtype) for a in arrays)
    with torch.no_grad():
        t = to_tensor(x, dtype)                                       # (..., E)
        h = table[activation](fn.linear(t, w_gate.T, b_gate)) * fn.linear(t, w_up.T, b_up)
        y = fn.linear(h, w_down.T, b_down)                            # (..., E)
    return to_numpy(y, dtype)


@serial
def feed_forward(x, params, *, activation="relu") -> np.ndarray:
    """``F.linear(act(F.linear(x, W1^T, b1)), W2^T, b2)`` with torch's activation.

    Returns
    -------
    np.ndarray, (..., E)

    References
    ----------
    PyTorch documentation, torch.nn.functional.linear; Vaswani et al. 2017, §3.3.
    """
    torch = import_torch()
    act = torch_activation(activation)
    x, w1, b1, w2, b2 = ffn_arrays(x, params)
    dtype = common_float_dtype(x, w1, b1, w2, b2)
    opt = (lambda a: None if a is None else to_tensor(a, dtype))
    with torch.no_grad():
        y = ffn_torch(to_tensor(x, dtype), to_tensor(w1, dtype), opt(b1), to_tensor(w2, dtype),
                      opt(b2), act)
    return to_numpy(y, dtype)


# ---------------------------------------------------------------------------
# nn.TransformerEncoderLayer / nn.TransformerDecoderLayer
# ---------------------------------------------------------------------------

def _check_native_attention(params, config, what: str):
    from transformer_theory.impl.attention import MultiHeadParams

    if not isinstance(params, MultiHeadParams):
        raise ValueError(f"params: {what} has multi-head attention only, got "
                         f"{type(params).__name__} (n_kv_heads = {config.n_kv_heads})")
    if params.n_heads * params.d_head != config.d_model or params.d_value != params.d_head:
        raise ValueError(
            f"params: {what} needs n_heads * d_head == d_model and d_value == d_head, got "
            f"n_heads = {params.n_heads}, d_head = {params.d_head}, d_value = "
            f"{params.d_value}, d_model = {config.d_model}")


def _copy_attention(module_attn, params, dtype):
    torch = import_torch()
    loaded, _ = load_multihead(params, dtype)
    with torch.no_grad():   # a bias-free module has no bias entries: the loaded zeros are dropped
        module_attn.load_state_dict(loaded.state_dict(), strict=False)


def _copy_linear(linear, w, b, dtype):
    torch = import_torch()
    with torch.no_grad():
        linear.weight.copy_(to_tensor(np.asarray(w).T, dtype))
        if linear.bias is not None:
            bias = b if b is not None else np.zeros(np.asarray(w).shape[1])
            linear.bias.copy_(to_tensor(bias, dtype))


def _copy_norm(norm, ln, dtype):
    torch = import_torch()
    with torch.no_grad():
        norm.weight.copy_(to_tensor(ln.gamma, dtype))
        if norm.bias is not None:
            norm.bias.copy_(to_tensor(ln.beta, dtype))
        elif np.any(np.asarray(ln.beta) != 0):
            raise ValueError("params: a bias-free nn.Transformer*Layer has no LayerNorm bias, "
                             "but a LayerNorm beta of params is non-zero")


def _torch_activation_name(config):
    if config.activation not in ("relu", "gelu"):
        raise ValueError(f"params: nn.TransformerEncoderLayer supports the activations 'relu' "
                         f"and 'gelu', got {config.activation!r}")
    return config.activation


def _encoder_layers(params, dtype):
    """nn.TransformerEncoderLayer modules holding the reference's EncoderParams."""
    torch = import_torch()
    config = params.config
    layers = []
    for layer in params.layers:
        _check_native_attention(layer.attn, config, "nn.TransformerEncoderLayer")
        module = torch.nn.utils.skip_init(
            torch.nn.TransformerEncoderLayer, config.d_model, config.n_heads,
            dim_feedforward=config.d_ff, dropout=0.0,
            activation=_torch_activation_name(config), layer_norm_eps=config.eps,
            batch_first=True, norm_first=(config.norm == "pre"), bias=config.bias,
            dtype=torch_dtype(dtype))
        _copy_attention(module.self_attn, layer.attn, dtype)
        _copy_linear(module.linear1, layer.ffn.w1, layer.ffn.b1, dtype)
        _copy_linear(module.linear2, layer.ffn.w2, layer.ffn.b2, dtype)
        _copy_norm(module.norm1, layer.ln1, dtype)
        _copy_norm(module.norm2, layer.ln2, dtype)
        layers.append(module.eval())
    return layers


def _blocked_mask(allowed, lead, length, n_heads):
    """torch's (N*H, L, L) boolean attn_mask (True = masked) for a contract mask."""
    n = int(np.prod(lead)) if lead else 1
    a = np.broadcast_to(allowed, tuple(lead) + (length, length)).reshape(n, length, length)
    return mask_tensor(~np.repeat(a, n_heads, axis=0))


@serial
def encoder(x, params, *, mask=None, causal=False) -> np.ndarray:
    """A stack of ``nn.TransformerEncoderLayer`` loaded from ``EncoderParams``.

    Supported: multi-head attention with ``n_heads * d_head == d_model``, the
    activations relu and gelu, post- and pre-LN (``norm_first``), with or
    without biases; anything else is a ``ValueError`` naming the limitation.

    Returns
    -------
    np.ndarray, (..., L, E)

    References
    ----------
    PyTorch documentation, torch.nn.TransformerEncoderLayer; Vaswani et al. 2017, §3.1.
    """
    torch = import_torch()
    from transformer_theory.impl.transformer import EncoderParams

    if not isinstance(params, EncoderParams):
        raise TypeError(f"params: expected EncoderParams, got {type(params).__name__}")
    x = as_float_array(x, "x", ndim_min=2)
    config = params.config
    if x.shape[-1] != config.d_model:
        raise ValueError(f"x: expected shape (..., L, d_model = {config.d_model}), got {x.shape}")
    lead, length = x.shape[:-2], x.shape[-2]
    arrays = [a for layer in params.layers for a in (
        *param_arrays(layer.attn), layer.ffn.w1, layer.ffn.w2, layer.ln1.gamma)]
    dtype = common_float_dtype(x, *arrays)
    layers = _encoder_layers(params, dtype)
    allowed = allowed_mask(mask, causal, lead, length, length)
    src_mask = None if allowed is None else _blocked_mask(allowed, lead, length, config.n_heads)
    h = to_tensor(flatten_lead(x), dtype)                                      # (N, L, E)
    with torch.no_grad():
        for module in layers:            # one block after another, as the reference
            h = module(h, src_mask=src_mask)
    return to_numpy(h, dtype).reshape(x.shape)


@lru_cache(maxsize=None)
def _sequence_params():
    """Fixed reference weights for the built-in sequence maps (seeded numpy, no torch RNG)."""
    from transformer_theory.impl.transformer import EncoderConfig, init_decoder, init_encoder

    config = EncoderConfig(d_model=SEQUENCE_D_MODEL, n_heads=2, d_ff=16, n_layers=1)
    enc = init_encoder(config, np.random.default_rng(20170612))
    dec = init_decoder(config, np.random.default_rng(20170613))
    memory = np.random.default_rng(20170614).standard_normal((1, 5, SEQUENCE_D_MODEL))
    return enc, dec, memory


@serial
def encoder_map(x) -> np.ndarray:
    """One fixed ``nn.TransformerEncoderLayer`` (d_model 8, 2 heads) as a sequence map.

    No positional encoding: permutation equivariant and batch independent.

    Parameters
    ----------
    x : array_like, (B, L, 8)

    Returns
    -------
    np.ndarray, (B, L, 8)

    References
    ----------
    PyTorch documentation, torch.nn.TransformerEncoderLayer; Vaswani et al. 2017, §3.1, §3.5.
    """
    enc, _, _ = _sequence_params()
    return encoder(x, enc)


@serial
def causal_map(x) -> np.ndarray:
    """One fixed ``nn.TransformerDecoderLayer`` under a causal target mask, as a sequence map.

    The target is ``x``; the memory is a fixed sequence of 5 vectors, shared by
    every batch member. Output ``i`` depends on ``x[:, :i+1]`` only.

    Parameters
    ----------
    x : array_like, (B, L, 8)

    Returns
    -------
    np.ndarray, (B, L, 8)

    References
    ----------
    PyTorch documentation, torch.nn.TransformerDecoderLayer and
    nn.Transformer.generate_square_subsequent_mask; Vaswani et al. 2017, §3.2.3.
    """
    torch = import_torch()
    _, dec, memory = _sequence_params()
    x = as_float_array(x, "x", ndim=3)
    if x.shape[-1] != SEQUENCE_D_MODEL:
        raise ValueError(f"x: expected shape (B, L, {SEQUENCE_D_MODEL}), got {x.shape}")
    dtype = x.dtype
    config, layer = dec.config, dec.layers[0]
    module = torch.nn.utils.skip_init(
        torch.nn.TransformerDecoderLayer, config.d_model, config.n_heads,
        dim_feedforward=config.d_ff, dropout=0.0, activation=config.activation,
        layer_norm_eps=config.eps, batch_first=True, norm_first=(config.norm == "pre"),
        dtype=torch_dtype(dtype))
    _copy_attention(module.self_attn, layer.self_attn, dtype)
    _copy_attention(module.multihead_attn, layer.cross_attn, dtype)
    _copy_linear(module.linear1, layer.ffn.w1, layer.ffn.b1, dtype)
    _copy_linear(module.linear2, layer.ffn.w2, layer.ffn.b2, dtype)
    _copy_norm(module.norm1, layer.ln1, dtype)
    _copy_norm(module.norm2, layer.ln2, dtype)
    _copy_norm(module.norm3, layer.ln3, dtype)
    module.eval()
    b, length = x.shape[0], x.shape[1]
    mem = np.broadcast_to(memory, (b,) + memory.shape[1:])
    tgt_mask = torch.nn.Transformer.generate_square_subsequent_mask(
        length, dtype=torch_dtype(dtype))
    with torch.no_grad():
        y = module(to_tensor(x, dtype), to_tensor(mem, dtype), tgt_mask=tgt_mask,
                   tgt_is_causal=True)
    return to_numpy(y, dtype)
