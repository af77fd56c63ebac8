"""Hugging Face transformers, today's pieces: Llama's RMSNorm and Gemma 2's soft-capped attention.

Recipes:

  transformer-theory check hf_modern:rms_norm --as rms_norm --option tensors=torch \
      --option compute_dtype=float32
  transformer-theory check hf_modern:gemma2_attention --as attention --option tensors=torch \
      --option causal_flag=none --option fully_masked_row=uniform \
      --option 'compute_dtype=float32 softmax' --option masked_inputs=finite

Conventions declared, from the source:
* ``LlamaRMSNorm.forward`` upcasts to float32 (``hidden_states.to(torch.float32)``), then
  ``hidden_states * torch.rsqrt(variance + self.variance_epsilon)``: eps inside the square root,
  the contract's placement (no rms_eps option), computed in float32 (compute_dtype=float32).
* ``models.gemma2.modeling_gemma2.eager_attention_forward`` caps the scaled logits,
  ``attn_weights / softcap; tanh; * softcap``, *then* adds ``attention_mask``: the contract's
  order (softcap before the bias and the masks). Its mask is additive (the model passes
  ``torch.finfo(dtype).min``), so the adapter builds it from the contract's boolean mask and
  causal flag (causal_flag=none), and a fully masked row is the uniform average
  (fully_masked_row=uniform); the softmax runs in float32 (compute_dtype=float32 softmax); the
  weights multiply the values, so NaN at a masked key reaches the output (masked_inputs=finite).
"""
import _torchvision_shim  # noqa: F401  (see that module: CPU torch vs the CUDA torchvision wheel)
import torch
from transformers.models.gemma2 import modeling_gemma2 as gemma2
from transformers.models.llama.modeling_llama import LlamaRMSNorm

torch.manual_seed(0)
_module = torch.nn.Module().eval()          # what eager_attention_forward reads
_module.num_key_value_groups = 1


def rms_norm(x, gamma=None, *, eps=1e-6):
    norm = LlamaRMSNorm(x.shape[-1], eps=eps).to(x.dtype)
    if gamma is not None:
        norm.weight.data = gamma.to(x.dtype)
    with torch.no_grad():
        return norm(x)


def gemma2_attention(q, k, v, *, mask=None, scale=None, softcap=None):
    lead, lq, lk = q.shape[:-2], q.shape[-2], k.shape[-2]
    q, k, v = (t.reshape(-1, 1, *t.shape[-2:]) for t in (q, k, v))            # (N, 1, L, E)
    additive = None
    if mask is not None:
        allowed = torch.broadcast_to(mask, (*lead, lq, lk)).reshape(-1, 1, lq, lk)
        additive = torch.where(allowed, torch.tensor(0.0, dtype=q.dtype), torch.finfo(q.dtype).min)
    _module.head_dim = q.shape[-1]
    out, _ = gemma2.eager_attention_forward(_module, q, k, v, additive,
                                            scaling=scale or q.shape[-1] ** -0.5, softcap=softcap)
    return out.reshape(*lead, lq, out.shape[-1])                   # (N, Lq, 1, Ev) -> (..., Lq, Ev)
