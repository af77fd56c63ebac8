"""tinygrad: ``Tensor.scaled_dot_product_attention``.

Recipe:

  transformer-theory check tinygrad_sdpa:attention --as attention \
      --option rename=mask:attn_mask,causal:is_causal --option causal_flag=bool --option scale=none \
      --option fully_masked_row=nan --option masked_inputs=finite \
      --claims 'attention.*,masking.*,heads.*,permutation.*,online_softmax.*,contract.*'

Its signature, ``scaled_dot_product_attention(self, key, value, attn_mask=None, dropout_p=0.0,
is_causal=False, enable_gqa=False)``, follows PyTorch's without ``scale`` ("computes the scaled
dot-product attention ... as described in the paper", always ``1/sqrt(E)``: scale=none);
``is_causal`` is a bool, top-left aligned (``Tensor.ones(...).tril(0)``: causal_flag=bool). Masks
become ``attn_mask.where(0, -float("inf"))`` and then ``softmax``, so a fully masked row is NaN
(fully_masked_row=nan), as torch.softmax's; ``masked_inputs=finite``: the weights are multiplied by the values, so NaN or inf stored at a
masked key or value reaches the output (0 * NaN = NaN); no documentation promises otherwise. The only adapter is the tensor conversion (tinygrad
tensors are neither torch nor jax). tinygrad compiles a kernel per input shape, so the recipe runs
the attention, masking, heads, permutation, online-softmax and contract claims only (the Dyck,
Turing and NaN-poisoning claims draw hundreds of shapes: over 30 minutes on 2 cores).
tinygrad's CPU device compiles kernels with clang; without clang the pure-Python device runs
(DEV=PYTHON, slower).
"""
import os
import shutil

os.environ.setdefault("DEV", "CPU" if shutil.which("clang") else "PYTHON")
from tinygrad import Tensor  # noqa: E402


def attention(q, k, v, attn_mask=None, is_causal=False):
    mask = None if attn_mask is None else Tensor(attn_mask)
    return Tensor(q).scaled_dot_product_attention(Tensor(k), Tensor(v), attn_mask=mask,
                                                  is_causal=is_causal).numpy()
