"""The built-in subjects: ``reference`` (numpy) and, when numba is installed, ``fast``.

Each subject is built on demand from its modules, so importing the theory
package does not import numba or torch.
"""

from __future__ import annotations

from typing import Callable

from .subject import Subject


def reference_subject() -> Subject:
    """The numpy reference implementation, ``transformer_theory.impl``."""
    from transformer_theory.impl import attention as A
    from transformer_theory.impl import layers as N
    from transformer_theory.impl import performer as F
    from transformer_theory.impl import positional as P
    from transformer_theory.impl import transformer as T

    return Subject(
        name="reference",
        description="numpy reference implementation (transformer_theory.impl)",
        options={"causal_alignment": "top-left", "fully_masked_row": "zeros",
                 "layout": "(B, H, L, E)", "sinusoidal_interleaving": "sin at even, cos at odd",
                 "gqa_mapping": "h -> h // (H // G)"},
        callables={
            "softmax": A.softmax,
            "attention": A.attention,
            "attention_weights": A.attention_weights,
            "multi_head_attention": A.multi_head_attention,
            "grouped_query_attention": A.grouped_query_attention,
            "cross_attention": A.cross_attention,
            "decode_step": A.decode_step,
            "init_kv_cache": A.init_kv_cache,
            "kv_cache_bytes": A.kv_cache_bytes,
            "sinusoidal_encoding": P.sinusoidal_encoding,
            "one_hot_encoding": P.one_hot_encoding,
            "rope": P.rope,
            "alibi_bias": P.alibi_bias,
            "layer_norm": N.layer_norm,
            "batch_norm": N.batch_norm,
            "feed_forward": N.feed_forward,
            "sigmoid": N.sigmoid,
            "tanh": N.tanh,
            "encoder": T.encoder,
            "classify": T.classify,
            "seq2seq_logits": T.seq2seq_logits,
            "seq2seq_logits_incremental": T.seq2seq_logits_incremental,
            "count_parameters": T.count_parameters,
            "count_array_parameters": T.count_array_parameters,
            "attention_flops": T.attention_flops,
            "init_encoder": T.init_encoder,
            "random_features": F.random_features,
            "gaussian_matrix": F.gaussian_matrix,
            "orthogonal_gaussian": F.orthogonal_gaussian,
            "favor_attention": F.favor_attention,
            "favor_attention_recurrent": F.favor_attention_recurrent,
        },
    )


#: Subject factories by name.
SUBJECTS: dict[str, Callable[[], Subject]] = {
    "reference": reference_subject,
}


def get_subject(name: str) -> Subject:
    """A built-in subject by name (``ValueError`` listing the names otherwise)."""
    if name not in SUBJECTS:
        raise ValueError(f"subject: expected one of {tuple(SUBJECTS)}, got {name!r}")
    return SUBJECTS[name]()
