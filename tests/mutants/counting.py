"""Mutants of the parameter and FLOP counts."""

from __future__ import annotations

from mutants import Mutant


def count_without_layernorm_beta(config):
    """LayerNorms counted as E parameters (gamma only): 10,592 for seed 003's table."""
    e, h, g, dh, f = config.d_model, config.n_heads, config.kv_heads, config.head_dim, config.d_ff
    b = int(config.bias)
    per_layer = ((h + 2 * g) * (e * dh + b * dh) + h * dh * e + b * e
                 + 2 * e * f + b * (f + e) + 2 * e)
    return config.n_layers * per_layer


def count_ignoring_kv_heads(config):
    """Keys and values counted with H heads even under grouped-query attention."""
    e, h, dh, f = config.d_model, config.n_heads, config.head_dim, config.d_ff
    b = int(config.bias)
    per_layer = 3 * h * (e * dh + b * dh) + h * dh * e + b * e + 2 * e * f + b * (f + e) + 4 * e
    return config.n_layers * per_layer


def make_flops_n_d_squared(ref):
    def attention_flops_n_d2(config, seq_len):
        """Scores and weighted values counted as H N Dh^2 instead of H N^2 Dh."""
        counts = dict(ref.attention_flops(config, seq_len))
        h, dh = config.n_heads, config.head_dim
        counts["scores"] = h * seq_len * dh * dh
        counts["weighted_values"] = h * seq_len * dh * dh
        return counts
    return attention_flops_n_d2


MUTANTS = [
    Mutant("count_forgets_layernorm_beta", "LayerNorm counted as E parameters, not 2E",
           claims=("counting.seed003_parameters", "counting.parameters_closed_form",
                   "counting.kaplan_approximation"),
           build=lambda ref: ref.replace(count_parameters=count_without_layernorm_beta)),
    Mutant("count_ignores_kv_heads", "keys/values counted with n_heads under GQA",
           claims=("counting.parameters_closed_form",),
           build=lambda ref: ref.replace(count_parameters=count_ignoring_kv_heads)),
    Mutant("flops_n_d_squared", "attention products counted as N d^2",
           claims=("counting.naive_attention_multiplications", "counting.layer_type_table"),
           build=lambda ref: ref.replace(attention_flops=make_flops_n_d_squared(ref))),
]


def make_flops_scores_only(ref):
    def attention_flops_scores_only(config, seq_len):
        """The weighted values A V left out of the count (only Q K^T counted)."""
        counts = dict(ref.attention_flops(config, seq_len))
        counts["weighted_values"] = 0
        return counts
    return attention_flops_scores_only


MUTANTS += [
    Mutant("flops_scores_only", "A V left out of the attention multiplications",
           claims=("counting.seed003_attention_computations", "counting.layer_type_table"),
           build=lambda ref: ref.replace(attention_flops=make_flops_scores_only(ref))),
]
