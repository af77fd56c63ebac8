"""The built-in subjects: ``reference`` (numpy), ``fast`` (numba) and the framework adapters.

Each subject is built on demand from its modules, so importing the theory
package does not import numba or torch. ``torch`` and ``jax`` (the adapters of
``impl/adapters/``) are registered when their package is installed.
"""

from __future__ import annotations

from typing import Callable

from .subject import Subject


def reference_subject() -> Subject:
    """The numpy reference implementation, ``transformer_theory.impl``."""
    from transformer_theory.impl import attention as A
    from transformer_theory.impl import gated_ffn as G
    from transformer_theory.impl import gradients as D
    from transformer_theory.impl import layers as N
    from transformer_theory.impl import online_softmax as OS
    from transformer_theory.impl import performer as F
    from transformer_theory.impl import positional as P
    from transformer_theory.impl import recurrence as R
    from transformer_theory.impl import residual_ode as RO
    from transformer_theory.impl import transformer as T
    from transformer_theory.impl.constructions import convolution as CV
    from transformer_theory.impl.constructions import dyck as DY
    from transformer_theory.impl.constructions import turing as TM
    from transformer_theory.impl.constructions import parity as PT

    return Subject(
        name="reference",
        description="numpy reference implementation (transformer_theory.impl)",
        options={"causal_alignment": "top-left", "fully_masked_row": "zeros",
                 "layout": "(B, H, L, E)", "sinusoidal_interleaving": "sin at even, cos at odd",
                 "gqa_mapping": "h -> h // (H // G)",
                 # float16 and bfloat16 computed in float32 and rounded once
                 # (impl/contract/precision.py: computes_in_float32)
                 "dtypes": "float64,float32,float16,bfloat16"},
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
            "rms_norm": N.rms_norm,
            "feed_forward": N.feed_forward,
            "gated_feed_forward": G.gated_feed_forward,
            "init_gated_ffn": G.init_gated_ffn,
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
            "softmax_jacobian": D.softmax_jacobian,
            "softmax_backward": D.softmax_backward,
            "attention_backward": D.attention_backward,
            "layer_norm_backward": D.layer_norm_backward,
            "feed_forward_backward": D.feed_forward_backward,
            # constructions (claims use these when a subject brings none of its own)
            "online_merge": OS.merge,
            "flash_attention": OS.flash_attention,
            "flash_io_count": OS.flash_io_count,
            "sliding_window_attention": OS.sliding_window_attention,
            "block_sparse_attention": OS.block_sparse_attention,
            "causal_linear_attention_recurrent": R.causal_linear_attention_recurrent,
            "transformer_encoder_graph": R.transformer_encoder_graph,
            "state_jacobian_norms": R.state_jacobian_norms,
            "elman_rnn": R.elman_rnn,
            "elman_bptt": R.elman_bptt,
            "residual_stack_iid": RO.residual_stack_iid,
            "conv1d_as_attention": CV.conv1d_as_attention,
            "conv2d_as_attention": CV.conv2d_as_attention,
            "hard_attention": A.hard_attention,
            "build_turing_transformer": TM.build_turing_transformer,
            "build_dyck_recognizer": DY.build_recognizer,
            "build_dyck_generator": DY.build_generator,
            "build_parity_transformer": PT.build_parity_transformer,
        },
    )


def fast_subject() -> Subject:
    """The numba accelerated path, ``transformer_theory.impl.fast`` (needs numba).

    Same options as the reference: the accelerated path implements the same
    conventions. ``attention_weights``, ``init_kv_cache``, ``kv_cache_bytes``, the
    random matrices and the ALiBi bias are the reference's own functions
    (nothing to fuse; the ALiBi claim then exercises the fast ``bias`` path).
    """
    import transformer_theory.impl.fast as X
    from transformer_theory.impl import positional as P

    X.warm_up()          # compile or load every kernel now, once, not inside a claim
    reference = reference_subject()
    return Subject(
        name="fast",
        description="numba accelerated path (transformer_theory.impl.fast)",
        # The kernels are compiled for float32 and float64 only: the half-precision runs
        # say not_applicable.
        options={**reference.options, "dtypes": "float64,float32"},
        callables={
            "softmax": X.softmax,
            "attention": X.attention,
            "attention_weights": X.attention_weights,
            "multi_head_attention": X.multi_head_attention,
            "grouped_query_attention": X.grouped_query_attention,
            "cross_attention": X.cross_attention,
            "decode_step": X.decode_step,
            "init_kv_cache": X.init_kv_cache,
            "kv_cache_bytes": X.kv_cache_bytes,
            "layer_norm": X.layer_norm,
            "rms_norm": X.rms_norm,
            "feed_forward": X.feed_forward,
            "random_features": X.random_features,
            "gaussian_matrix": X.gaussian_matrix,
            "orthogonal_gaussian": X.orthogonal_gaussian,
            "favor_attention": X.favor_attention,
            "favor_attention_recurrent": X.favor_attention_recurrent,
            "alibi_bias": P.alibi_bias,
        },
    )


def torch_subject() -> Subject:
    """PyTorch behind the numpy contract (``transformer_theory.impl.adapters.torch``)."""
    from transformer_theory.impl.adapters.torch import torch_target

    return Subject(**torch_target())


def jax_subject() -> Subject:
    """JAX behind the numpy contract (``transformer_theory.impl.adapters.jax``)."""
    from transformer_theory.impl.adapters.jax import jax_target

    return Subject(**jax_target())


def importable(package: str) -> bool:
    """Whether ``package`` can be imported, found without importing it."""
    import importlib.util

    return importlib.util.find_spec(package) is not None


#: Subject factories by name.
SUBJECTS: dict[str, Callable[[], Subject]] = {
    "reference": reference_subject,
}

# Optional frameworks: registered only when installed, so that collecting the
# tests (which parametrize over SUBJECTS) never imports or needs them.
if importable("numba"):
    SUBJECTS["fast"] = fast_subject
if importable("torch"):
    SUBJECTS["torch"] = torch_subject

#: Built-in subjects that ``transformer-theory check`` knows but the test matrix
#: (tests/test_claims.py) does not run. JAX: ``jax.nn.dot_product_attention``
#: compiles once per input shape (the whole registry takes tens of minutes) and
#: differs from the contract in documented ways (a float32 softmax for float64
#: inputs, uniform rows when fully masked); ``check jax`` runs it on demand.
OPTIONAL_SUBJECTS: dict[str, Callable[[], Subject]] = {"jax": jax_subject}


def get_subject(name: str) -> Subject:
    """A built-in subject by name (``ValueError`` listing the names otherwise)."""
    if name not in SUBJECTS:
        raise ValueError(f"subject: expected one of {tuple(SUBJECTS)}, got {name!r}")
    return SUBJECTS[name]()
