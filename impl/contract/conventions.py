"""The options a subject declares: conventions, precision, capabilities and settings.

Implementations differ legitimately: what a fully masked query row returns,
where ``causal=True`` aligns when ``Lq != Lk``, the axis order, how RoPE pairs
coordinates, what precision a kernel computes in, which dtypes it accepts.
A subject *declares* these once, as options, and the shared machinery
(``theory/conventions.py``) honours them for every claim: the callables are
wrapped into the contract before a claim sees them, tolerances follow the
declared precision, strategies draw only the declared dtypes. A claim never
reads an option itself.

Every option is an :class:`Option`: its values (the first is the contract's,
the default), what it concerns, and its documentation. An unknown key or a
value outside the documented set is a usage error (:func:`validate_options`
raises ``ValueError`` naming the key and listing what is valid; the CLI exits
with status 2).

The categories of option
------------------------
``convention``
    How the callables behave where the literature leaves a choice; wrapped
    into the contract's behaviour. The ones with ``diagnose=True`` are tried
    by the convention diagnosis of a failing claim.
``precision``
    ``dtypes`` (what a target accepts) and ``compute_dtype`` (what it computes
    in: tolerances follow it).
``interface``
    How the target is called (keyword names, a boolean causal flag, no scale
    argument, tensors of a framework, an offset-style RoPE).
``capability``
    What the target can do (``accepts``, ``value_dim``, ``feature_kinds``);
    a claim that needs more is ``not_applicable``, never ``failed``.
``setting``
    Facts a claim needs about an opaque target (``d_model`` of a sequence map).

References
----------
DESIGN.md, "Conformance on real code"; issue 14.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

__all__ = [
    "Option",
    "OPTIONS",
    "OPTION_TABLE",
    "CONTRACT_CONVENTIONS",
    "INTERNAL_OPTIONS",
    "ATTENTION_KERNELS",
    "FULLY_MASKED_CALLABLES",
    "FLOAT_DTYPE_NAMES",
    "HALF_DTYPE_NAMES",
    "validate_options",
    "option_value",
]

#: The attention-kernel callables: (q, k, v | q, k [, v, d_out]) with mask, causal, scale.
ATTENTION_KERNELS: tuple[str, ...] = ("attention", "attention_weights", "attention_backward")

#: Layers whose key/value inputs a mask can leave unattended (masked_inputs applies to them).
MASKED_INPUT_LAYERS: tuple[str, ...] = ("multi_head_attention", "grouped_query_attention",
                                        "cross_attention")

#: Callables whose output has a row per query that a mask can leave with no key.
FULLY_MASKED_CALLABLES: tuple[str, ...] = (
    "attention", "attention_weights", "attention_backward", "softmax", "softmax_backward",
    "softmax_jacobian", "multi_head_attention", "grouped_query_attention", "cross_attention",
    "encoder")

#: Input dtypes a target may declare it accepts (float16/bfloat16: issue 16).
FLOAT_DTYPE_NAMES: tuple[str, ...] = ("float32", "float64")
#: Half-precision dtypes a target may declare (``impl/contract/precision.py``).
HALF_DTYPE_NAMES: tuple[str, ...] = ("float16", "bfloat16")

_FEATURE_KINDS = ("positive", "trig", "hyperbolic")


def _comma_list(choices: tuple[str, ...] | None) -> Callable[[Any], tuple[str, ...]]:
    """A parser of ``"a,b"`` (or a list) into a tuple of names from ``choices``."""
    def parse(value):
        items = value.split(",") if isinstance(value, str) else list(value)
        items = tuple(str(v).strip() for v in items if str(v).strip())
        if not items:
            raise ValueError("expected a non-empty comma-separated list")
        if choices is not None:
            bad = [v for v in items if v not in choices]
            if bad:
                raise ValueError(f"expected names from {', '.join(choices)}, got {bad[0]!r}")
        return items
    return parse


def _positive_int(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


def _nonnegative_float(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
            or value == float("inf"):
        raise ValueError(f"expected a finite number >= 0, got {value!r}")
    return float(value)


#: Contract keyword names that ``rename`` may map (left side of ``contract:target``).
RENAMEABLE = ("mask", "causal", "scale", "bias", "positions", "eps", "memory_mask", "stabilizer",
              "kind", "activation")


def _rename(value):
    if isinstance(value, Mapping):
        pairs = dict(value)
    else:
        pairs = {}
        for item in str(value).split(","):
            if not item.strip():
                continue
            if ":" not in item:
                raise ValueError(f"expected contract:target pairs such as mask:attn_mask, "
                                 f"got {item.strip()!r}")
            left, right = (s.strip() for s in item.split(":", 1))
            pairs[left] = right
    for left, right in pairs.items():
        if left not in RENAMEABLE:
            raise ValueError(f"expected contract keywords from {', '.join(RENAMEABLE)}, "
                             f"got {left!r}")
        if not isinstance(right, str) or not right.isidentifier():
            raise ValueError(f"expected a keyword name for {left!r}, got {right!r}")
    if not pairs:
        raise ValueError("expected at least one contract:target pair")
    return pairs


@dataclass(frozen=True)
class Option:
    """One declarable option.

    Attributes
    ----------
    name : str
    category : str
        ``convention``, ``precision``, ``interface``, ``capability`` or ``setting``.
    doc : str
        What the option says, with the libraries known to follow each value.
    values : tuple of str, optional
        The allowed values; the first is the contract's (the default). None
        when ``parse`` checks a free-form value.
    parse : callable, optional
        Validates and normalises a free-form value (raises ``ValueError``).
    default : object
        The value meant when the option is not declared.
    concerns : tuple of str
        The callables it is about; empty means every callable.
    per_callable : bool
        Whether a mapping ``{callable: value}`` may be given instead of one value.
    diagnose : bool
        Whether the convention diagnosis tries its other values on a failing claim.
    """

    name: str
    category: str
    doc: str
    values: tuple[str, ...] | None = None
    parse: Callable[[Any], Any] | None = field(default=None, compare=False)
    default: Any = None
    concerns: tuple[str, ...] = ()
    per_callable: bool = False
    diagnose: bool = False

    def __post_init__(self):
        if self.default is None and self.values:
            object.__setattr__(self, "default", self.values[0])

    def check(self, value) -> Any:
        """``value`` normalised, or ``ValueError`` naming this option and what is valid."""
        if self.per_callable and isinstance(value, Mapping):
            return {str(k): self._one(v) for k, v in value.items()}
        return self._one(value)

    def _one(self, value):
        if self.values is not None:
            if value not in self.values:
                raise ValueError(f"option {self.name}: expected one of "
                                 f"{', '.join(repr(v) for v in self.values)}, got {value!r}")
            return value
        if self.parse is not None:
            try:
                return self.parse(value)
            except ValueError as exc:
                raise ValueError(f"option {self.name}: {exc}") from None
        return value


_OPTION_LIST: tuple[Option, ...] = (
    # --- conventions -----------------------------------------------------------------------
    Option("fully_masked_row", "convention",
           "what a query row with no key to attend returns. 'zeros' (the contract; PyTorch SDPA, "
           "FlashAttention), 'nan' (torch.softmax of an all -inf row, nn.MultiheadAttention's "
           "fast path, nn.TransformerEncoderLayer: such a row must be all NaN or all zero), "
           "'uniform' (a finite mask value such as JAX's: the average of all values; must be "
           "finite). The machinery checks the dead rows against the declaration and gives the "
           "claims the contract's value there",
           values=("zeros", "nan", "uniform"), concerns=FULLY_MASKED_CALLABLES,
           per_callable=True, diagnose=True),
    Option("causal_alignment", "convention",
           "what the target's causal=True means when Lq != Lk: 'top-left' (the contract; "
           "PyTorch is_causal, JAX, keras), 'bottom-right' (FlashAttention >= 2.1, KV-cache "
           "decoding) or 'square' (trusted only when Lq == Lk: Hugging Face "
           "sdpa_attention_forward ignores is_causal for a single query). The other "
           "alignment reaches the target as an explicit mask. A sliding window is aligned as "
           "the causal mask (FlashAttention's window_size is bottom-right)",
           values=("top-left", "bottom-right", "square"), concerns=ATTENTION_KERNELS,
           diagnose=True),
    Option("layout", "convention",
           "axis order of the attention inputs: '(B, H, L, E)' (the contract, PyTorch SDPA) or "
           "'(B, L, H, E)' (JAX, flax, FlashAttention); transposed at the boundary",
           values=("(B, H, L, E)", "(B, L, H, E)"), concerns=ATTENTION_KERNELS),
    Option("sinusoidal_interleaving", "convention",
           "column order of the sinusoidal encoding: 'sin at even, cos at odd' (the contract, "
           "Vaswani et al.) or 'sin first half, cos second half' (tensor2tensor, many ports)",
           values=("sin at even, cos at odd", "sin first half, cos second half"),
           concerns=("sinusoidal_encoding",), diagnose=True),
    Option("gqa_mapping", "convention",
           "which kv head query head h reads: 'h -> h // (H // G)' (the contract; "
           "repeat_interleave, Hugging Face repeat_kv) or 'h -> h % G' (tile/repeat)",
           values=("h -> h // (H // G)", "h -> h % G"), concerns=("grouped_query_attention",),
           diagnose=True),
    Option("rope_pairing", "convention",
           "which coordinates RoPE rotates together: 'interleaved' (the contract; RoFormer, "
           "GPT-J, pairs (2i, 2i+1)) or 'half' (GPT-NeoX, Hugging Face rotate_half, pairs "
           "(i, i + d/2)); permuted at the boundary",
           values=("interleaved", "half"), concerns=("rope",), diagnose=True),
    Option("alibi_noncausal", "convention",
           "the ALiBi bias at keys ahead of the query (seen only without a causal mask): "
           "'symmetric' (the contract: -m abs(i - j), never rewarding distance) or 'linear' (the "
           "paper's -m (i - j) continued, +m (j - i) ahead of the query); converted at the "
           "boundary",
           values=("symmetric", "linear"), concerns=("alibi_bias",), diagnose=True),
    Option("rms_eps", "convention",
           "where RMSNorm adds eps: 'inside' the square root (the contract; torch.nn.RMSNorm, Hugging "
           "Face LlamaRMSNorm: x / sqrt(mean(x^2) + eps)) or 'outside' (x / (sqrt(mean(x^2)) + eps), as some ports write it); "
           "converted at the boundary from the row's RMS, recomputed from x",
           values=("inside", "outside"), concerns=("rms_norm",), diagnose=True),
    # --- precision -------------------------------------------------------------------------
    Option("dtypes", "precision",
           "comma list of the input dtypes the target accepts, e.g. 'float32' for a "
           "float32-only kernel; claims draw only these (default float32,float64). Declaring "
           "float16 or bfloat16 adds a run of every claim that has a meaning in that dtype, "
           "held to the error-ratio rule. Overrides any probing",
           parse=_comma_list(FLOAT_DTYPE_NAMES + HALF_DTYPE_NAMES), default=FLOAT_DTYPE_NAMES),
    Option("compute_dtype", "precision",
           "the precision the target computes in: 'input' (the contract), 'float32' (keras 3, "
           "JAX, MLX, Hugging Face eager softmax, float32 RoPE angles: float64 inputs are held "
           "to the float32 tolerance policy, and the result says so) or 'float32 softmax' "
           "(the same, for a float32 softmax inside a float64 computation)",
           values=("input", "float32", "float32 softmax"), per_callable=True, diagnose=True),
    # --- interface -------------------------------------------------------------------------
    Option("causal_flag", "interface",
           "'contract' (causal takes False, True or 'bottom-right'), 'bool' (the target's "
           "causal keyword is True/False in the alignment causal_alignment declares; the other "
           "alignment, or causal with a mask, reaches it as False plus an explicit mask) or "
           "'none' (the target has no causal argument: causal reaches it as a mask; flax "
           "dot_product_attention, Hugging Face eager attention)",
           values=("contract", "bool", "none"), concerns=ATTENTION_KERNELS),
    Option("rename", "interface",
           "contract keyword names the target spells differently, as contract:target pairs, "
           "e.g. 'mask:attn_mask,causal:is_causal' (applied before any other wrapping)",
           parse=_rename),
    Option("scale", "interface",
           "'contract' (the target takes scale=) or 'none' (it has no scale argument and always "
           "applies 1/sqrt(E): the loader passes q * scale * sqrt(E), and attention_backward's dq "
           "is rescaled to match)",
           values=("contract", "none"), concerns=ATTENTION_KERNELS),
    Option("rope_positions", "interface",
           "'contract' (rope(x, positions) with a position per row) or 'offset' (rope(x, "
           "offset=n) rotating row i by n + i: arbitrary positions are applied row by row)",
           values=("contract", "offset"), concerns=("rope",)),
    Option("tensors", "interface",
           "what a user callable takes and returns: 'numpy', 'torch' or 'jax' (converted at "
           "the boundary; a torch nn.Module implies 'torch')",
           values=("numpy", "torch", "jax")),
    Option("rng", "interface",
           "'generator' (a random-matrix callable takes a numpy Generator) or 'seed' (an "
           "integer seed)",
           values=("generator", "seed"), concerns=("gaussian_matrix", "orthogonal_gaussian")),
    # --- capabilities ----------------------------------------------------------------------
    Option("accepts", "capability",
           "comma list of optional keywords the target takes (bias, window, softcap, ...), for "
           "a signature that hides behind **kwargs; otherwise the signature is probed",
           parse=_comma_list(None)),
    Option("masked_inputs", "capability",
           "'any' (the contract: keys and values at positions no query may attend may hold "
           "NaN or inf, and must not reach any output) or 'finite' (the target needs finite "
           "inputs everywhere, masked positions included, e.g. PyTorch SDPA, where 0 x NaN "
           "reaches the output: its callers must sanitise padding; conformance.nan_poisoning "
           "and nan_poisoning_heads are then not applicable)",
           values=("any", "finite"), concerns=ATTENTION_KERNELS + MASKED_INPUT_LAYERS),
    Option("value_dim", "capability",
           "'any' (Ev may differ from E) or 'equal' (the target needs Ev = E, as JAX's "
           "dot_product_attention: claims draw only such shapes)",
           values=("any", "equal"), concerns=ATTENTION_KERNELS),
    Option("feature_kinds", "capability",
           "comma list of the Performer feature kinds the target computes: positive, trig, "
           "hyperbolic (default all); claims of other kinds are not applicable",
           parse=_comma_list(_FEATURE_KINDS), default=_FEATURE_KINDS,
           concerns=("random_features", "favor_attention", "favor_attention_recurrent")),
    Option("feature_stabilizer", "convention",
           "a stabiliser the feature map always applies: 'none' (the contract), 'row' (the "
           "exponent's max over the features of each row is subtracted, performer-pytorch's "
           "queries) or 'sequence' (its max over the whole input, performer-pytorch's keys); "
           "undone at the boundary",
           values=("none", "row", "sequence"), concerns=("random_features",)),
    Option("feature_eps", "convention",
           "an additive constant the feature map adds to each positive feature after the "
           "1/sqrt(m) factor (performer-pytorch: ratio * (exp(...) + eps), give eps); "
           "subtracted at the boundary",
           parse=_nonnegative_float, default=0.0, concerns=("random_features",)),
    # --- settings of opaque targets ------------------------------------------------------
    Option("d_model", "setting", "the width E a sequence map (encoder_map, causal_map) accepts",
           parse=_positive_int, concerns=("encoder_map", "causal_map")),
    Option("n_layers", "setting", "depth of an opaque sequence map, for its tolerance (default 1)",
           parse=_positive_int, default=1, concerns=("encoder_map", "causal_map")),
    Option("d_ff", "setting", "FFN width of an opaque sequence map, for its tolerance "
           "(default 4 d_model)", parse=_positive_int, concerns=("encoder_map", "causal_map")),
)

#: Every option by name.
OPTION_TABLE: dict[str, Option] = {o.name: o for o in _OPTION_LIST}

#: Every option with its one-paragraph documentation (``transformer-theory list`` prints it).
OPTIONS: dict[str, str] = {o.name: o.doc for o in _OPTION_LIST}

#: The contract's value of each convention (what the reference does).
CONTRACT_CONVENTIONS: dict[str, Any] = {
    o.name: o.default for o in _OPTION_LIST if o.category == "convention" or o.name in (
        "compute_dtype", "causal_flag", "scale", "rope_positions", "value_dim")}

#: Keys a Subject may carry that are not user options: how it was built.
INTERNAL_OPTIONS: tuple[str, ...] = ("origin",)


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options normalised, or ``ValueError`` naming the first bad key or value.

    Parameters
    ----------
    options : mapping
        Option name to value (a value, or for ``per_callable`` options a
        mapping from callable name to value).

    Returns
    -------
    dict
        Comma lists become tuples, ``rename`` a dict; other values unchanged.
    """
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key in INTERNAL_OPTIONS:
            out[key] = value
            continue
        if key not in OPTION_TABLE:
            raise ValueError(f"option {key!r}: unknown; expected one of {', '.join(OPTION_TABLE)}")
        out[key] = OPTION_TABLE[key].check(value)
    return out


def option_value(options: Mapping[str, Any], name: str, callable_name: str | None = None) -> Any:
    """The value of option ``name`` for ``callable_name``: declared, else the default.

    A per-callable option given as a mapping applies to the callables it
    lists; the others get the default.
    """
    default = OPTION_TABLE[name].default if name in OPTION_TABLE else None
    value = options.get(name, default)
    if isinstance(value, Mapping) and name in OPTION_TABLE and OPTION_TABLE[name].per_callable:
        return value.get(callable_name, default) if callable_name is not None else default
    return value
