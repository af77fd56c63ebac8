"""PyTorch as a subject: torch's own kernels behind the numpy contract.

Every callable takes and returns numpy arrays (DESIGN.md, "Contract") and does
its work in PyTorch on the CPU, in the input dtype (float64 if any float input
is float64, else float32):

* ``attention`` is ``torch.nn.functional.scaled_dot_product_attention``;
  ``attention_weights`` is the same kernel applied to the identity matrix as
  values (``softmax(s QK^T) I = softmax(s QK^T)``), so the weights are SDPA's
  own and not a re-implementation;
* ``multi_head_attention`` and ``cross_attention`` are
  ``torch.nn.MultiheadAttention`` with the weights of the reference's
  :class:`~transformer_theory.impl.attention.MultiHeadParams` copied in (see
  :func:`load_multihead` for the mapping), so outputs can be compared
  numerically with the reference as well as by properties;
* ``grouped_query_attention`` projects with the reference weights and calls SDPA
  with ``enable_gqa=True`` (PyTorch's own head mapping);
* ``layer_norm`` is ``F.layer_norm``, ``batch_norm`` is ``F.batch_norm`` in
  training mode, ``feed_forward`` is two ``F.linear`` around torch's activation;
* ``encoder`` runs a stack of ``nn.TransformerEncoderLayer`` loaded from the
  reference's :class:`~transformer_theory.impl.transformer.EncoderParams`;
* ``encoder_map`` is one fixed ``nn.TransformerEncoderLayer`` and ``causal_map``
  one fixed ``nn.TransformerDecoderLayer`` under a causal target mask with a
  fixed memory: whole sequence maps of width :data:`SEQUENCE_D_MODEL`;
* the ``*_backward`` callables and ``softmax_jacobian`` are torch autograd
  through the same kernels, checked by the ``gradients`` claims against central
  finite differences and the reference gradients.

The callables are in three modules, gathered here (every name is re-exported):
:mod:`.torch_attention` (softmax, SDPA, ``nn.MultiheadAttention``, GQA),
:mod:`.torch_layers` (activations, norms, the feed-forward network, encoder
stacks and the sequence maps) and :mod:`.torch_gradients` (autograd); the
numpy/torch boundary they share is :mod:`._torch_common`.

Modules run the way inference code runs them: ``eval()`` mode, under
``torch.no_grad()``, dropout 0. Weights are copied in, never drawn from torch's
global generator (modules are built with ``torch.nn.utils.skip_init``).

Conventions (reported as subject options, never failures)
----------------------------------------------------------
* A fully masked query row: SDPA returns zeros (the contract), but
  ``torch.softmax`` of an all ``-inf`` row, its gradient, and
  ``nn.MultiheadAttention``'s inference fast path return NaN
  (``fully_masked_row`` option, per callable).
* ``is_causal=True`` is top-left aligned, as the contract; the contract's
  ``causal="bottom-right"`` maps to ``torch.nn.attention.bias.causal_lower_right``.
* Boolean masks: SDPA's ``attn_mask`` uses True = may attend (the contract), but
  ``nn.MultiheadAttention``/``nn.Transformer*`` use True = masked out; the
  adapter inverts them.

References
----------
PyTorch documentation: ``torch.nn.functional.scaled_dot_product_attention``,
``torch.nn.MultiheadAttention``, ``torch.nn.TransformerEncoderLayer``,
``torch.nn.TransformerDecoderLayer``, ``torch.nn.functional.layer_norm``.
Vaswani et al. 2017, Attention Is All You Need, §3.2 (the maps wrapped).
"""

from __future__ import annotations

import importlib.util

from ..contract.precision import accepts_half
from ._torch_common import import_torch
from .torch_attention import (  # noqa: F401  (re-exported)
    attention,
    attention_weights,
    cross_attention,
    grouped_query_attention,
    load_multihead,
    multi_head_attention,
    softmax,
)
from .torch_gradients import (  # noqa: F401  (re-exported)
    attention_backward,
    feed_forward_backward,
    layer_norm_backward,
    softmax_backward,
    softmax_jacobian,
)
from .torch_layers import (  # noqa: F401  (re-exported)
    SEQUENCE_D_MODEL,
    batch_norm,
    causal_map,
    encoder,
    encoder_map,
    feed_forward,
    gated_feed_forward,
    layer_norm,
    rms_norm,
    sigmoid,
    tanh,
)

__all__ = [
    "available",
    "torch_target",
    "TORCH_OPTIONS",
    "SEQUENCE_D_MODEL",
    "softmax",
    "attention",
    "attention_weights",
    "multi_head_attention",
    "grouped_query_attention",
    "cross_attention",
    "layer_norm",
    "batch_norm",
    "rms_norm",
    "feed_forward",
    "gated_feed_forward",
    "sigmoid",
    "tanh",
    "encoder",
    "encoder_map",
    "causal_map",
    "softmax_jacobian",
    "softmax_backward",
    "attention_backward",
    "layer_norm_backward",
    "feed_forward_backward",
    "load_multihead",
]

#: The conventions of the torch subject, as its callables follow them
#: (see :data:`transformer_theory.impl.contract.conventions.OPTIONS`).
TORCH_OPTIONS = {
    "fully_masked_row": {
        "softmax": "nan", "softmax_backward": "nan", "softmax_jacobian": "nan",
        "multi_head_attention": "nan", "cross_attention": "nan", "encoder": "nan",
        "attention": "zeros", "attention_weights": "zeros", "attention_backward": "zeros",
        "grouped_query_attention": "zeros",
    },
    "causal_alignment": "top-left",
    "layout": "(B, H, L, E)",
    "gqa_mapping": "h -> h // (H // G)",
    # F.scaled_dot_product_attention multiplies the zero weight of a masked key by its
    # value: a NaN value at a padded position reaches every output row (seen with 2.13.0,
    # math and default backends alike). Callers must sanitise padding.
    "masked_inputs": "finite",
    "d_model": SEQUENCE_D_MODEL,
    # SDPA, layer_norm, the nn modules and autograd run natively in float16 and bfloat16
    # on CPU; the half-precision claims hold them to the error-ratio rule.
    "dtypes": "float64,float32,float16,bfloat16",
}


def available() -> bool:
    """Whether PyTorch can be imported (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def torch_target() -> dict:
    """PyTorch as a target of the suite (``transformer-theory check torch``).

    The adapter does not build the Subject itself (``impl`` never imports
    ``theory``): ``theory.builtin_subjects.torch_subject`` wraps what this returns.

    Returns
    -------
    dict
        ``name``, ``description``, ``callables`` (those of this module) and
        ``options`` (:data:`TORCH_OPTIONS`, its documented conventions).
    """
    torch = import_torch()
    return dict(
        name="torch",
        description=f"PyTorch {torch.__version__} on CPU: SDPA, nn.MultiheadAttention, "
                    f"F.layer_norm, F.rms_norm, nn.TransformerEncoderLayer/DecoderLayer, autograd",
        options=TORCH_OPTIONS,
        callables={name: accepts_half(fn) for name, fn in {
            "softmax": softmax,
            "attention": attention,
            "attention_weights": attention_weights,
            "multi_head_attention": multi_head_attention,
            "grouped_query_attention": grouped_query_attention,
            "cross_attention": cross_attention,
            "layer_norm": layer_norm,
            "batch_norm": batch_norm,
            "rms_norm": rms_norm,
            "feed_forward": feed_forward,
            "gated_feed_forward": gated_feed_forward,
            "sigmoid": sigmoid,
            "tanh": tanh,
            "encoder": encoder,
            "encoder_map": encoder_map,
            "causal_map": causal_map,
            "softmax_jacobian": softmax_jacobian,
            "softmax_backward": softmax_backward,
            "attention_backward": attention_backward,
            "layer_norm_backward": layer_norm_backward,
            "feed_forward_backward": feed_forward_backward,
        }.items()},
    )
