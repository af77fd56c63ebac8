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
    # Gradients (backward passes; impl/gradients.py is the reference)
    "softmax_jacobian": "softmax_jacobian(x) -> (..., n, n), d softmax(x)_i / d x_j over the last axis",
    "softmax_backward": "softmax_backward(x, d_out, axis=-1) -> dL/dx given dL/d softmax(x)",
    "attention_backward": "attention_backward(q, k, v, d_out, *, mask=None, causal=False, scale=None) -> (dq, dk, dv)",
    "layer_norm_backward": "layer_norm_backward(x, d_out, gamma=None, beta=None, *, eps=1e-5) -> (dx, dgamma, dbeta)",
    "feed_forward_backward": "feed_forward_backward(x, params: FFNParams, d_out, *, activation='relu') -> (dx, FFNParams of gradients)",
    # Whole sequence maps (transformer-theory check TARGET --as encoder | --as causal)
    "encoder_map": "f(x) -> y on (B, L, E) without positional encoding: permutation equivariant, batch independent",
    "causal_map": "f(x) -> y on (B, L, E), causal: output i depends on inputs <= i only (prefix consistent)",
}

#: Options of a subject: conventions that differ legitimately between
#: implementations. A claim whose statement depends on one reads it with
#: :func:`convention` and checks the subject against the convention it
#: declares, so a difference is reported as a convention, never as a failure.
#: The first value listed is the contract's (the reference's) and the default.
OPTIONS: dict[str, str] = {
    "fully_masked_row": "'zeros' | 'nan': what attention returns for a query whose every key is "
                        "masked (the contract: zeros; PyTorch's nn.MultiheadAttention fast path, "
                        "nn.TransformerEncoderLayer and torch.softmax of an all -inf row: NaN). "
                        "Under 'nan' such a row must be all NaN or all zero; 'uniform' (JAX's "
                        "finite mask value: the average of all values) must be finite. A string, "
                        "or a mapping from callable name to convention",
    "causal_alignment": "'top-left' | 'bottom-right': what causal=True means when Lq != Lk "
                        "(PyTorch is_causal: top-left; FlashAttention >= 2.1: bottom-right)",
    "layout": "'(B, H, L, E)' | '(B, L, H, E)': axis order of attention inputs (the conformance "
              "loader transposes a (B, L, H, E) callable into the contract)",
    "sinusoidal_interleaving": "'sin at even, cos at odd' | 'sin first half, cos second half' "
                               "(the loader permutes the columns of the second into the first)",
    "gqa_mapping": "'h -> h // (H // G)' | 'h -> h % G': which kv head query head h reads "
                   "(repeat_interleave vs repeat; the loader permutes the query heads)",
    "compute_dtype": "'input' | 'float32 softmax': the precision a callable computes in "
                     "(JAX's dot_product_attention runs its softmax in float32 for every input "
                     "dtype). Reported; float64 claims still hold it to float64 tolerances",
    "d_model": "int: the width E a sequence map (encoder_map, causal_map) accepts",
    "n_layers": "int: depth of an opaque sequence map, for its tolerance (default 1)",
    "d_ff": "int: FFN width of an opaque sequence map, for its tolerance (default 4 d_model)",
    "tensors": "'numpy' | 'torch' | 'jax': what a user callable takes and returns (the loader "
               "converts numpy arrays at the boundary; a torch nn.Module implies 'torch')",
    "rng": "'generator' | 'seed': whether a random-matrix callable takes a numpy Generator or an "
           "integer seed",
    "origin": "how the subject was built (target, as, options); used for reproduction snippets, "
              "not a convention",
}

#: The contract's value of each convention (what the reference does).
CONTRACT_CONVENTIONS: dict[str, Any] = {
    "fully_masked_row": "zeros",
    "causal_alignment": "top-left",
    "layout": "(B, H, L, E)",
    "sinusoidal_interleaving": "sin at even, cos at odd",
    "gqa_mapping": "h -> h // (H // G)",
    "compute_dtype": "input",
}


def convention(subject: "Subject", name: str, callable_name: str | None = None) -> Any:
    """The convention ``name`` a subject declares (for ``callable_name``), else the contract's.

    An option may be one value for the whole subject or a mapping from
    callable name to value (``{"attention": "zeros", "softmax": "nan"}``);
    callables the mapping does not list follow the contract.
    """
    value = subject.options.get(name, CONTRACT_CONVENTIONS.get(name))
    if isinstance(value, Mapping):
        return value.get(callable_name, CONTRACT_CONVENTIONS.get(name))
    return value


#: The subject option of the construction test hook: a mapping from a construction's key
#: (``"dyck"``, ``"turing"``, ``"convolution"``, ...) to the name of a deliberate bug.
CONSTRUCTION_MUTATIONS = "construction_mutations"


def construction_mutation(subject: "Subject", key: str) -> str | None:
    """The deliberate bug a mutant subject asks construction ``key`` for, else None.

    Explicit weight constructions (Dyck, Turing, convolution, ...) have no
    subject callable a mutant could break, so each accepts a documented
    ``_mutation`` argument, and the claims pass on what the subject's option
    :data:`CONSTRUCTION_MUTATIONS` names for their key. Only the mutant tests
    (``tests/mutants``) set the option; real subjects never do.
    """
    return dict(subject.options.get(CONSTRUCTION_MUTATIONS, {})).get(key)


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
