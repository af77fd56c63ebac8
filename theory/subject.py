"""Subjects: the implementations claims are checked against.

A subject is a name plus callables that follow the numpy contract of
DESIGN.md (arrays in, arrays out), plus options for conventions that differ
legitimately between implementations. A subject need not have every callable:
claims whose ``needs`` it lacks are ``not_applicable``.

The callable names are the vocabulary of the contract; :data:`CALLABLES`
documents each one, and ``transformer-theory list`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

#: Every callable name a claim may need, with its contract (one line each;
#: the reference function's docstring is the full specification).
CALLABLES: dict[str, str] = {
    "softmax": "softmax(x, axis=-1) -> probabilities along axis",
    "attention": "attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None) -> (..., Lq, Ev)",
    "attention_weights": "attention_weights(q, k, *, mask=None, causal=False, scale=None, bias=None) -> (..., Lq, Lk)",
    "multi_head_attention": "multi_head_attention(x_q, x_kv, params: MultiHeadParams, *, mask=None, causal=False) -> (..., Lq, E)",
    "grouped_query_attention": "grouped_query_attention(x_q, x_kv, params: GroupedQueryParams, *, mask=None, causal=False)",
    "cross_attention": "cross_attention(x, memory, params, *, memory_mask=None) -> (..., Lq, E)",
    "decode_step": "decode_step(x_t, params, cache) -> (y_t, cache): one step of incremental decoding with a KV cache",
    "init_kv_cache": "init_kv_cache(params, batch_shape, max_len, dtype) -> KVCache",
    "sinusoidal_encoding": "sinusoidal_encoding(n_positions, d_model) -> (N, d), Vaswani et al. §3.5",
    "one_hot_encoding": "one_hot_encoding(n_positions, d_model) -> (N, d) rows e_i (d >= N)",
    "rope": "rope(x, positions=None) -> x rotated pairwise by position (RoFormer)",
    "alibi_bias": "alibi_bias(n_heads, lq, lk) -> (H, Lq, Lk) additive logit bias (Press et al.)",
    "layer_norm": "layer_norm(x, gamma=None, beta=None, *, eps=1e-5) over the last axis",
    "batch_norm": "batch_norm(x, gamma=None, beta=None, *, eps=1e-5), statistics over all axes but the last",
    "feed_forward": "feed_forward(x, params: FFNParams, *, activation='relu') -> act(x W1 + b1) W2 + b2",
    "sigmoid": "sigmoid(x)",
    "tanh": "tanh(x)",
    "encoder": "encoder(x, params: EncoderParams, *, mask=None, causal=False) -> (..., L, E)",
    "classify": "classify(x, params: ClassifierParams, *, mask=None) -> (..., C) logits",
    "seq2seq_logits": "seq2seq_logits(src_tokens, tgt_tokens, params) -> (B, Lt, V), teacher forcing",
    "seq2seq_logits_incremental": "seq2seq_logits_incremental(src_tokens, tgt_tokens, params): step by step with a KV cache",
    "count_parameters": "count_parameters(config) -> int, closed form",
    "count_array_parameters": "count_array_parameters(params) -> int, counted from the arrays",
    "attention_flops": "attention_flops(config, seq_len) -> dict of multiplication counts per layer",
    "kv_cache_bytes": "kv_cache_bytes(n_layers, n_kv_heads, d_head, seq_len, batch, dtype) -> int",
    "init_encoder": "init_encoder(config, rng) -> EncoderParams",
    # Performer (Choromanski et al. 2021): m random vectors w (m, d)
    "random_features": "random_features(x, w, kind='positive'|'trig'|'hyperbolic', *, stabilizer=None) -> (..., L, m or 2m)",
    "gaussian_matrix": "gaussian_matrix(m, d, rng) -> (m, d) iid N(0, 1)",
    "orthogonal_gaussian": "orthogonal_gaussian(m, d, rng, *, scaling='chi'|'fixed') -> (m, d) block-orthogonal rows",
    "favor_attention": "favor_attention(q, k, v, w, *, causal=False, kind='positive', mask=None) -> (..., L, dv)",
    "favor_attention_recurrent": "favor_attention_recurrent(q, k, v, w, *, kind='positive'): causal, one step at a time",
}


@dataclass(frozen=True)
class Subject:
    """An implementation under test.

    Parameters
    ----------
    name : str
        Shown in results (``reference``, ``fast``, ``torch``, ...).
    callables : mapping of str to callable
        Keys from :data:`CALLABLES` (others are allowed and ignored by claims).
    options : mapping
        Conventions of this implementation (``causal_alignment``, ``layout``, ...).
    description : str
    """

    name: str
    callables: Mapping[str, Callable] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "callables", MappingProxyType(dict(self.callables)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def has(self, *names: str) -> bool:
        return all(n in self.callables for n in names)

    def __getattr__(self, name: str) -> Callable:
        # Attribute access for callables: subject.attention(q, k, v).
        callables = object.__getattribute__(self, "callables")
        try:
            return callables[name]
        except KeyError:
            raise AttributeError(
                f"subject {object.__getattribute__(self, 'name')!r} has no callable {name!r}") from None

    def replace(self, name: str | None = None, **callables: Callable) -> "Subject":
        """A copy with some callables replaced (how the tests build mutants)."""
        merged = dict(self.callables)
        merged.update(callables)
        return Subject(name or self.name, merged, self.options, self.description)

    def without(self, *names: str) -> "Subject":
        """A copy lacking some callables."""
        kept = {k: v for k, v in self.callables.items() if k not in names}
        return Subject(self.name, kept, self.options, self.description)
