"""PyTorch's own modules, checked against the claims (torch.nn / torch.nn.functional).

Recipes (run from examples/, see RESULTS.md and recipes.py):

  # F.scaled_dot_product_attention itself, no adapter: its keywords are attn_mask and
  # is_causal (a bool, top-left aligned: "is_causal ... the causal mask is aligned to the
  # upper left", torch.nn.functional.scaled_dot_product_attention docstring).
  transformer-theory check torch.nn.functional:scaled_dot_product_attention --as attention \
      --option tensors=torch --option rename=mask:attn_mask,causal:is_causal \
      --option causal_flag=bool --option accepts=scale --option masked_inputs=finite

  transformer-theory check torch_nn:layer_norm --as layer_norm --option tensors=torch
  transformer-theory check torch_nn:encoder_layer --as encoder --option d_ff=32
  transformer-theory check torch_nn:self_attention --as encoder --option tensors=torch \
      --option d_model=16 --option dtypes=float32

``accepts=scale``: F.scaled_dot_product_attention is a builtin without an inspectable signature,
so the suite cannot probe that it takes no ``bias=``; it takes ``scale`` (and attn_mask, is_causal).
``masked_inputs=finite``: the weights are multiplied by the values, so NaN or inf stored at a
masked key or value reaches the output (0 * NaN = NaN); no documentation promises otherwise.
Conventions declared: nn.MultiheadAttention's parameters are float32 ("dtype ... default:
torch.get_default_dtype()"), so the self-attention map accepts float32 only (dtypes=float32).
The encoder layer is an nn.Module: the loader converts inputs to its parameter dtype, runs it
in eval() mode (dropout off) under no_grad, and reads d_model from the module.
"""
import torch
import torch.nn.functional as F

torch.manual_seed(0)


def layer_norm(x, gamma=None, beta=None, *, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], gamma, beta, eps)     # what nn.LayerNorm.forward calls


encoder_layer = torch.nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0,
                                                 batch_first=True)
mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()


def self_attention(x):
    return mha(x, x, x, need_weights=False)[0]
