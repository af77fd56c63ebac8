"""Hugging Face transformers: the attention interface, Llama's RoPE, a GPT-2 block, a BERT layer.

Models are built from configs with random weights (no hub download). Recipes:

  transformer-theory check hf_transformers:sdpa_attention --as attention --option tensors=torch \
      --option causal_flag=bool --option masked_inputs=finite
  transformer-theory check hf_transformers:eager_attention --as attention --option tensors=torch \
      --option causal_flag=bool --option fully_masked_row=uniform \
      --option 'compute_dtype=float32 softmax' --option masked_inputs=finite
  transformer-theory check hf_transformers:rope --as rope --option tensors=torch \
      --option rope_pairing=half --option compute_dtype=float32
  transformer-theory check hf_transformers:gpt2_block --as causal --option d_model=32
  transformer-theory check hf_transformers:bert_layer --as encoder --option d_model=32

The attention interface (``ALL_ATTENTION_FUNCTIONS``) takes ``(module, q, k, v, attention_mask,
scaling=..., is_causal=...)`` on (B, H, L, E) and returns ``(output, weights)`` with the output
transposed to (B, L, H, E) (``attn_output.transpose(1, 2)`` in sdpa_attention.py and
modeling_llama.eager_attention_forward), hence the small ``_interface`` adapter.
Conventions declared, from the source:
* ``masked_inputs=finite``: the weights are multiplied by the values, so NaN or inf stored at a
  masked key or value reaches the output (0 * NaN = NaN); no documentation promises otherwise.
* ``is_causal`` is a bool handed to torch SDPA (top-left; causal_flag=bool); eager has no causal
  flag at all (the model passes a mask), so the adapter turns ``causal=True`` into the mask;
* eager masks are additive: the model passes ``torch.finfo(dtype).min`` where a key is masked
  (masking_utils), so a fully masked row is the uniform average (fully_masked_row=uniform);
* eager runs its softmax in float32 for every input dtype: ``softmax(attn_weights, dim=-1,
  dtype=torch.float32).to(query.dtype)`` (compute_dtype=float32 softmax);
* LlamaRotaryEmbedding computes angles in float32 (``position_ids[..., None].float() *
  self.inv_freq``: compute_dtype=float32) and rotates split halves (``rotate_half``: coordinate
  i with i + d/2), not RoFormer's interleaved pairs (rope_pairing=half).
A lone GPT-2 block is causal only through ``is_causal`` of SDPA (no mask passed); the model
builds the causal mask for the eager path, so the block is built with attn_implementation="sdpa".
"""
import functools

import _torchvision_shim  # noqa: F401  (see that module: CPU torch vs the CUDA torchvision wheel)
import torch
from transformers import BertConfig, GPT2Config, LlamaConfig
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.models.bert.modeling_bert import BertLayer
from transformers.models.gpt2.modeling_gpt2 import GPT2Block
from transformers.models.llama import modeling_llama as llama

torch.manual_seed(0)
_module = torch.nn.Module().eval()          # what the interface reads: is_causal, groups
_module.is_causal, _module.num_key_value_groups = True, 1


def _interface(forward):
    def attention(q, k, v, *, mask=None, causal=False, scale=None):
        lead, lq, lk = q.shape[:-2], q.shape[-2], k.shape[-2]
        q, k, v = (t.reshape(-1, 1, *t.shape[-2:]) for t in (q, k, v))        # (N, 1, L, E)
        if mask is not None:
            mask = torch.broadcast_to(mask, (*lead, lq, lk)).reshape(-1, 1, lq, lk)
        if forward is llama.eager_attention_forward and (causal or mask is not None):
            allowed = torch.ones(lq, lk, dtype=torch.bool).tril() if causal else True
            allowed = allowed & (True if mask is None else mask)     # eager: additive masks only
            mask = torch.where(allowed, torch.tensor(0.0, dtype=q.dtype), torch.finfo(q.dtype).min)
        out, _ = forward(_module, q, k, v, mask, scaling=scale or q.shape[-1] ** -0.5, is_causal=causal)
        return out.reshape(*lead, lq, out.shape[-1])               # (N, Lq, 1, Ev) -> (..., Lq, Ev)
    return attention


sdpa_attention = _interface(sdpa_attention_forward)
eager_attention = _interface(llama.eager_attention_forward)


@functools.cache
def _rotary(d):
    return llama.LlamaRotaryEmbedding(LlamaConfig(hidden_size=d, num_attention_heads=1, head_dim=d))


def rope(x, positions=None):
    positions = torch.arange(x.shape[-2]) if positions is None else positions
    cos, sin = _rotary(x.shape[-1])(x, positions)                       # (L, d) each
    return llama.apply_rotary_pos_emb(x, x, cos, sin, unsqueeze_dim=0)[0].reshape(x.shape)


gpt2_block = GPT2Block(GPT2Config(n_embd=32, n_head=4, attn_pdrop=0.0, resid_pdrop=0.0,
                                  attn_implementation="sdpa"), layer_idx=0)
bert_layer = BertLayer(BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64,
                                  attention_probs_dropout_prob=0.0, hidden_dropout_prob=0.0))
