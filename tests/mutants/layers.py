"""Mutants of the position-wise layers and activations."""

from __future__ import annotations

import numpy as np

from mutants import Mutant
from mutants._build import reshape_as_transpose


def reshaped_before(name: str, default_activation: str):
    """A ``build`` whose position-wise FFN ``name`` first reads (..., L, E) as (..., E, L).

    Parameters
    ----------
    name : {"feed_forward", "gated_feed_forward"}
        The reference callable that receives :func:`~mutants._build.reshape_as_transpose`
        of its input (a reshape used where a transpose was meant: mixes positions).
    default_activation : str
        That callable's default ``activation``.

    Returns
    -------
    callable
        ``build(reference_subject) -> Subject``.
    """
    def build(ref):
        def ffn(x, params, *, activation=default_activation):
            return getattr(ref, name)(reshape_as_transpose(x), params, activation=activation)
        return ref.replace(**{name: ffn})
    return build


def sigmoid_naive(x):
    """exp(x) / (1 + exp(x)): inf / inf = NaN once exp overflows."""
    x = np.asarray(x)
    e = np.exp(x)
    return (e / (1 + e)).astype(x.dtype)


def _gated(x, p, act, *, on_up=False):
    """(act(x W_gate + b_gate) * (x W_up + b_up)) W_down + b_down in float64, or the
    activation on the up projection instead (``on_up``)."""
    x = np.asarray(x)
    f64 = (lambda a: np.asarray(a, dtype=np.float64))
    gate, up = f64(x) @ f64(p.w_gate), f64(x) @ f64(p.w_up)
    if p.b_gate is not None:
        gate = gate + f64(p.b_gate)
    if p.b_up is not None:
        up = up + f64(p.b_up)
    h = gate * act(up) if on_up else act(gate) * up
    out = h @ f64(p.w_down)
    out = out if p.b_down is None else out + f64(p.b_down)
    return out.astype(np.result_type(x, p.w_gate))


def _silu(z):
    return z / (1.0 + np.exp(-z))


def _gelu_tanh(z):
    return 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z ** 3)))


def _gate_activation(name):
    from scipy.special import erf
    return {"silu": _silu, "gelu": lambda z: 0.5 * z * (1.0 + erf(z / np.sqrt(2.0))),
            "gelu_tanh": _gelu_tanh}[name]


def gated_ffn_activation_on_up(x, params, *, activation="silu"):
    """act(x W_up) * (x W_gate): the activation on the wrong projection (gate and up swapped
    when loading a checkpoint's w1/w3)."""
    return _gated(x, params, _gate_activation(activation), on_up=True)


def gated_ffn_sigmoid_gate(x, params, *, activation="silu"):
    """'silu' read as the sigmoid of the original GLU: sigmoid(x W_gate) * (x W_up)."""
    act = (lambda z: 1.0 / (1.0 + np.exp(-z))) if activation == "silu" else \
        _gate_activation(activation)
    return _gated(x, params, act)


def gated_ffn_gelu_is_tanh(x, params, *, activation="silu"):
    """'gelu' computed with the tanh approximation (GeGLU ported from a gelu_new codebase)."""
    return _gated(x, params, _gate_activation("gelu_tanh" if activation == "gelu" else activation))


def make_init_gated_always_bias(ref):
    def init_gated_ffn(d_model, d_ff, rng, *, bias=False, dtype=np.float64):
        """Biases created whatever ``bias`` says."""
        return ref.init_gated_ffn(d_model, d_ff, rng, bias=True, dtype=dtype)
    return init_gated_ffn


MUTANTS = [
    Mutant("ffn_reshape_mixes_positions", "reshape used where a transpose was meant",
           claims=("layers.ffn_position_wise",),
           build=reshaped_before("feed_forward", "relu")),
    Mutant("gated_ffn_activation_on_up", "gated FFN with the activation on the up projection",
           claims=("layers.gated_ffn_definition",),
           build=lambda ref: ref.replace(gated_feed_forward=gated_ffn_activation_on_up)),
    Mutant("gated_ffn_sigmoid_gate", "SwiGLU's silu read as the sigmoid of the original GLU",
           claims=("layers.gated_ffn_zero_gate", "layers.gated_ffn_definition"),
           build=lambda ref: ref.replace(gated_feed_forward=gated_ffn_sigmoid_gate)),
    Mutant("gated_ffn_gelu_is_tanh", "GeGLU's exact gelu computed with the tanh approximation",
           claims=("layers.gated_ffn_definition",),
           build=lambda ref: ref.replace(gated_feed_forward=gated_ffn_gelu_is_tanh)),
    Mutant("gated_ffn_reshape_mixes_positions", "gated FFN after a reshape meant as a transpose",
           claims=("layers.gated_ffn_position_wise",),
           build=reshaped_before("gated_feed_forward", "silu")),
    Mutant("init_gated_ffn_always_bias", "init_gated_ffn creating biases when bias=False",
           claims=("layers.gated_ffn_parameter_count",),
           build=lambda ref: ref.replace(init_gated_ffn=make_init_gated_always_bias(ref))),
    Mutant("sigmoid_naive_exp", "sigmoid as exp(x) / (1 + exp(x)), NaN for large x",
           claims=("layers.tanh_sigmoid",),
           build=lambda ref: ref.replace(sigmoid=sigmoid_naive)),
]
