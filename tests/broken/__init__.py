"""A catalogue of realistic broken implementations, each rejected by ``check``.

Every entry is a small function (or subject object) in this package with one
mistake that appears in real attention, normalisation, decoding, positional
and Performer code. ``tests/test_conformance.py`` loads each one the way a
user would (``load_subject("broken.attention:missing_scale", as_kind="attention")``),
runs ``check`` on the claim families named here and asserts that at least one
claim fails; it also reports the kill rate (rejected / total), which must be 100%.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Broken:
    """One broken implementation.

    Attributes
    ----------
    name : str
    description : str
        The mistake, as it appears in real code.
    target : str
        ``module:object`` for :func:`~transformer_theory.theory.conformance.load_subject`.
    as_kind : str or None
        What the object is (None for a mapping or subject object).
    claims : str
        The claim families ``check`` runs (id globs).
    options : dict
        Subject options (conventions, the width of a sequence map).
    """

    name: str
    description: str
    target: str
    as_kind: str | None
    claims: str
    options: dict = field(default_factory=dict)


_ATTENTION = "attention.*,masking.*"

CATALOGUE: list[Broken] = [
    # scaled dot-product attention
    Broken("missing_scale", "scores not divided by sqrt(d_k)",
           "broken.attention:missing_scale", "attention", _ATTENTION),
    Broken("scale_by_d", "scores divided by d_k instead of sqrt(d_k)",
           "broken.attention:scale_by_d", "attention", _ATTENTION),
    Broken("scale_ignored", "the scale argument accepted and ignored",
           "broken.attention:scale_ignored", "attention", _ATTENTION),
    Broken("softmax_over_queries", "softmax over the wrong axis (dim=-2)",
           "broken.attention:softmax_over_queries", "attention", _ATTENTION),
    Broken("causal_off_by_one", "an off-by-one causal mask: position i sees i + 1",
           "broken.attention:causal_off_by_one", "attention", "masking.*"),
    Broken("causal_transposed", "an upper-triangular causal mask (sees the future)",
           "broken.attention:causal_transposed", "attention", "masking.*"),
    Broken("causal_always_bottom_right", "causal=True aligned bottom-right where top-left is meant",
           "broken.attention:causal_always_bottom_right", "attention", "masking.*"),
    Broken("mask_polarity_inverted", "boolean mask read as True = masked out",
           "broken.attention:mask_polarity_inverted", "attention", _ATTENTION),
    Broken("padding_on_values_only", "padding applied to the values only, not to the scores",
           "broken.attention:padding_on_values_only", "attention", _ATTENTION),
    Broken("nan_on_fully_masked_row", "masked_fill(-inf) + softmax: NaN for a fully masked row",
           "broken.attention:nan_on_fully_masked_row", "attention", "attention.*"),
    Broken("additive_mask_minus_1e4", "masking by adding -1e4: a fully masked row is uniform",
           "broken.attention:additive_mask_minus_1e4", "attention", "attention.*"),
    Broken("no_max_subtraction", "no max-subtraction in the softmax: overflow to NaN",
           "broken.attention:no_max_subtraction", "attention", "attention.*"),
    Broken("float32_accumulation", "float32 accumulation of float64 inputs",
           "broken.attention:float32_accumulation", "attention", "attention.*"),
    Broken("dropout_at_inference", "attention dropout left on at inference",
           "broken.attention:dropout_at_inference", "attention", "attention.*"),
    Broken("post_softmax_mask", "an unrenormalised mask applied after the softmax",
           "broken.attention:post_softmax_mask", None, _ATTENTION),
    Broken("softmax_no_max_subtraction", "softmax exp(x)/sum exp(x) without the max",
           "broken.layers:softmax_no_max_subtraction", "softmax", "attention.*"),
    # normalisation
    Broken("layer_norm_unbiased_variance", "LayerNorm with the unbiased (E - 1) variance",
           "broken.layers:layer_norm_unbiased_variance", "layer_norm",
           "normalization.*,conformance.layer_norm*"),
    Broken("layer_norm_eps_outside_sqrt", "LayerNorm with eps in the wrong place: / (std + eps)",
           "broken.layers:layer_norm_eps_outside_sqrt", "layer_norm",
           "normalization.*,conformance.layer_norm*"),
    Broken("layer_norm_over_batch", "LayerNorm statistics over the batch axis",
           "broken.layers:layer_norm_over_batch", "layer_norm",
           "normalization.*,conformance.layer_norm*"),
    # heads and decoding
    Broken("mha_scaled_by_d_model", "multi-head scores scaled by 1/sqrt(d_model), not 1/sqrt(d_head)",
           "broken.heads:mha_scaled_by_d_model", "multi_head_attention", "heads.*,permutation.*"),
    Broken("mha_heads_concatenated_backwards", "heads concatenated in the wrong order before W_O",
           "broken.heads:mha_heads_concatenated_backwards", "multi_head_attention",
           "heads.*,permutation.*"),
    Broken("gqa_modular_mapping", "a wrong GQA head mapping: h % G instead of h // (H/G)",
           "broken.heads:gqa_modular_mapping", "grouped_query_attention", "heads.*"),
    Broken("decode_drops_newest_key", "a decoder whose KV cache drops the newest key",
           "broken.heads:decode_drops_newest_key", "decode_step", "masking.*"),
    Broken("decode_writes_one_ahead", "a KV cache written one position ahead",
           "broken.heads:decode_writes_one_ahead", "decode_step", "masking.*"),
    # positional
    Broken("sinusoidal_sin_cos_swapped", "cos at even and sin at odd coordinates",
           "broken.positional:sinusoidal_sin_cos_swapped", "sinusoidal_encoding", "positional.*"),
    Broken("sinusoidal_exponent_without_two", "frequencies 10000^(-i/d) instead of 10000^(-2i/d)",
           "broken.positional:sinusoidal_exponent_without_two", "sinusoidal_encoding",
           "positional.*"),
    Broken("rope_ignores_positions", "RoPE rotating by the row index, ignoring the positions",
           "broken.positional:rope_ignores_positions", "rope", "positional.*"),
    # Performer
    Broken("orthogonal_unsigned_qr", "an unsigned-QR orthogonal matrix (not Haar)",
           "broken.performer:orthogonal_unsigned_qr", "orthogonal_gaussian",
           "performer.orthogonal_features"),
    Broken("favor_sequence_stabilizer", "a causal Performer with a sequence-wide key stabiliser",
           "broken.performer:favor_sequence_stabilizer", "favor_attention", "performer.causality"),
    # whole models as sequence maps
    Broken("encoder_with_positions", "an 'equivariant' encoder that adds positional encodings",
           "broken.models:encoder_with_positions", "encoder", "conformance.*", {"d_model": 8}),
    Broken("encoder_with_batch_norm", "a model normalising over the batch (BatchNorm)",
           "broken.models:encoder_with_batch_norm", "encoder", "conformance.*", {"d_model": 8}),
    Broken("causal_lm_sees_next_token", "a decoder mask that lets position i see i + 1",
           "broken.models:causal_lm_sees_next_token", "causal", "conformance.*", {"d_model": 8}),
    Broken("causal_lm_global_mean", "a 'causal' model mixing in the sequence mean",
           "broken.models:causal_lm_global_mean", "causal", "conformance.*", {"d_model": 8}),
    # gradients
    Broken("attention_backward_without_scale", "the softmax scale forgotten in dQ and dK",
           "broken.gradients:attention_backward_without_scale", "attention_backward",
           "gradients.*"),
    Broken("layer_norm_backward_stats_constant",
           "LayerNorm backward treating the mean and variance as constants",
           "broken.gradients:layer_norm_backward_treats_stats_as_constants",
           "layer_norm_backward", "gradients.*"),
]
