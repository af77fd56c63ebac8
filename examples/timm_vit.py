"""timm: the Vision Transformer's attention and block (timm.models.vision_transformer).

Recipes:

  transformer-theory check timm_vit:attention --as encoder --option d_model=32
  transformer-theory check timm_vit:block --as encoder --option d_model=32 --option d_ff=128

ViT's ``Attention`` is self-attention over the token axis, ``forward(x, attn_mask=None)`` on
(B, N, C), and ``Block`` adds pre-LayerNorm, MLP and residuals; position embeddings are added by
``VisionTransformer._pos_embed``, outside both, so each must be permutation equivariant and
batch independent. Modules with random weights, run in eval() mode by the loader.
"""
import _torchvision_shim  # noqa: F401  (see that module: CPU torch vs the CUDA torchvision wheel)
import torch
from timm.models.vision_transformer import Attention, Block

torch.manual_seed(0)
attention = Attention(32, num_heads=4, qkv_bias=True)
block = Block(32, num_heads=4, mlp_ratio=4.0, qkv_bias=True)
