"""Flax linen: ``flax.linen.dot_product_attention`` and ``flax.linen.LayerNorm`` (JAX on CPU).

Recipes:

  transformer-theory check flax_linen:attention --as attention --option tensors=jax \
      --option 'layout=(B, L, H, E)' --option scale=none --option causal_flag=bool \
      --option fully_masked_row=uniform --option dtypes=float32 --option masked_inputs=finite
  transformer-theory check flax_linen:layer_norm --as layer_norm --option tensors=jax \
      --option dtypes=float32

Conventions declared, from flax/linen/attention.py (``dot_product_attention`` docstring):
"query: queries for calculating attention with shape of ``[batch..., q_length, num_heads,
qk_depth_per_head]``" (layout); the query is always divided by ``sqrt(depth)`` and there is no
scale argument (scale=none); masked logits get ``jnp.finfo(dtype).min`` ("big_neg"), so a fully
masked row averages every value (fully_masked_row=uniform). There is no causal argument (causal
masks are built with ``flax.linen.make_causal_mask``): causal_flag=none, so causal reaches it
as a mask. JAX runs in float32 unless jax_enable_x64
is set, so float64 inputs are refused (dtypes=float32). ``masked_inputs=finite``: the weights are multiplied by the values, so NaN or inf stored at a
masked key or value reaches the output (0 * NaN = NaN); no documentation promises otherwise.
LayerNorm is a module: ``layer_norm`` builds one per call with the contract's eps and applies it
to the given gamma/beta ("scale"/"bias" parameters). Flax's default ``use_fast_variance=True``
computes var = E[x^2] - E[x]^2 (``_compute_stats``), which is kept: it is what users get.
"""
import flax.linen as nn
import jax.numpy as jnp


def attention(q, k, v, *, mask=None):                              # q (B, Lq, H, E)
    """flax's function without its optional bias/dropout arguments (the suite probes them)."""
    return nn.dot_product_attention(q, k, v, mask=mask)


def layer_norm(x, gamma=None, beta=None, *, eps=1e-5):
    ln = nn.LayerNorm(epsilon=eps, use_scale=gamma is not None, use_bias=beta is not None)
    params = {k: p for k, p in (("scale", gamma), ("bias", beta)) if p is not None}
    return ln.apply({"params": params}, x)
