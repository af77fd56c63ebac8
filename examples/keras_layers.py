"""Keras 3 (torch backend): ``keras.layers.MultiHeadAttention`` and ``LayerNormalization``.

Recipes:

  transformer-theory check keras_layers:multi_head_attention --as mha \
      --option fully_masked_row=uniform --option dtypes=float32
  transformer-theory check keras_layers:layer_norm --as layer_norm --option dtypes=float32

The layer is built for the reference's ``MultiHeadParams``: Keras's kernels are the same arrays
in another axis order (query kernel (E, H, Dh) vs w_q (H, E, Dh); output kernel (H, Dv, E) vs
w_o (H*Dv, E)), so outputs are compared numerically, not only by properties.
Conventions declared, from keras/src/layers/attention/multi_head_attention.py and
keras/src/layers/activations/softmax.py: ``attention_mask`` is "a boolean mask of shape (B, T, S),
that prevents attention to certain positions ... 1 indicates attention"; masked logits get a
large negative number (``adder = (1.0 - mask) * _large_negative_number(dtype)``), so a fully
masked row averages every value (fully_masked_row=uniform). Layers compute in their dtype
policy, float32 by default (dtypes=float32).
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402


def multi_head_attention(x_q, x_kv, p, *, mask=None, causal=False):
    (h, e, dh), dv = p.w_q.shape, p.w_v.shape[2]
    layer = keras.layers.MultiHeadAttention(h, dh, value_dim=dv)
    layer.build(x_q.shape, x_kv.shape)
    zero = lambda b, n: np.zeros(n) if b is None else b                           # noqa: E731
    layer.set_weights([p.w_q.transpose(1, 0, 2), zero(p.b_q, (h, dh)), p.w_k.transpose(1, 0, 2),
                       zero(p.b_k, (h, dh)), p.w_v.transpose(1, 0, 2), zero(p.b_v, (h, dv)),
                       p.w_o.reshape(h, dv, e), zero(p.b_o, e)])
    mask = None if mask is None else np.broadcast_to(mask, x_q.shape[:-1] + x_kv.shape[-2:-1])
    return keras.ops.convert_to_numpy(layer(x_q, x_kv, attention_mask=mask, use_causal_mask=causal))


def layer_norm(x, gamma=None, beta=None, *, eps=1e-5):
    ln = keras.layers.LayerNormalization(epsilon=eps, center=beta is not None, scale=gamma is not None)
    ln.build(x.shape)
    ln.set_weights([w for w in (gamma, beta) if w is not None])
    return keras.ops.convert_to_numpy(ln(x))
