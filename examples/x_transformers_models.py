"""x-transformers (Encoder, Decoder) and rotary-embedding-torch (RotaryEmbedding), by lucidrains.

Recipes:

  transformer-theory check x_transformers_models:encoder --as encoder --option d_model=32 \
      --option n_layers=2
  transformer-theory check x_transformers_models:decoder --as causal --option d_model=32 \
      --option n_layers=2
  transformer-theory check x_transformers_models:rope --as rope --option tensors=torch \
      --option rope_positions=offset --option compute_dtype=float32

``Encoder``/``Decoder`` are the attention stacks without token or absolute position embeddings
(those live in ``TransformerWrapper``), so a bare ``Encoder`` must be permutation equivariant and
a ``Decoder`` (``causal = True``) causal. Rotary embeddings are off by default
(``rotary_pos_emb = False`` in ``AttentionLayers.__init__``).
``RotaryEmbedding.rotate_queries_or_keys(t, seq_dim=None, offset=0)`` takes an offset, not
arbitrary positions (rope_positions=offset); its frequencies are a float32 parameter
(``freqs = torch.einsum('..., f -> ... f', t.type(freqs.dtype), freqs)``), so float64 inputs are
rotated by float32 angles (compute_dtype=float32). One RotaryEmbedding per width d, since the
rotated width is fixed at construction ("dim" of RotaryEmbedding).
"""
import functools

import torch
from rotary_embedding_torch import RotaryEmbedding
from x_transformers import Decoder, Encoder

torch.manual_seed(0)
encoder = Encoder(dim=32, depth=2, heads=4)
decoder = Decoder(dim=32, depth=2, heads=4)


@functools.cache
def _rotary(d):
    return RotaryEmbedding(dim=d)


def rope(x, offset=0):
    return _rotary(x.shape[-1]).rotate_queries_or_keys(x, offset=offset)
