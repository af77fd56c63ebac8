"""Claims on the contract itself: output dtypes, and declared conventions as declared.

The shared machinery honours what a subject declares (``theory/conventions.py``),
so that the other claims see the contract. The claims here check the
declarations themselves:

* ``contract.<callable>_output_dtype`` -- outputs keep the input dtype
  (DESIGN.md, "Contract"). There is no option to declare otherwise: a target
  that computes only in float32 declares ``dtypes=float32``. When an output is
  coarser, the other claims compare in the output's precision and say so,
  and this claim alone fails.
* ``contract.fully_masked_row`` -- a query row with no key to attend returns
  what the subject declares: zeros (the contract), NaN, or the uniform
  average of the values.

References
----------
DESIGN.md, "Contract (numpy at the boundary)"; issue 14, items 1 and 4.
"""

from __future__ import annotations

import string
from typing import Callable

import numpy as np
from hypothesis import strategies as st

from transformer_theory.impl.contract.conventions import option_value

from ..checks import compare, for_all, holds
from ..claim import Evidence, Kind
from ..conventions import conform, dead_query_rows
from ..registry import ClaimSet
from ..sources import VASWANI_2017
from ..strategies import DTYPES, SEEDS, attention_case, normal
from ..tolerance import tolerance
from ._masks import mask_with_dead_row

claims = ClaimSet("contract")

CONTRACT = VASWANI_2017.at("§3.2.1, Eq. (1)")


# ---------------------------------------------------------------------------
# Outputs keep the input dtype
# ---------------------------------------------------------------------------

def _attention_args(rng, dt):
    q, k, v = (normal(rng, (2, 3, 4), dt) for _ in range(3))
    return (q, k, v), {}


def _weights_args(rng, dt):
    return (normal(rng, (2, 3, 4), dt), normal(rng, (2, 5, 4), dt)), {}


def _softmax_args(rng, dt):
    return (normal(rng, (3, 5), dt),), {}


def _layer_norm_args(rng, dt):
    return (normal(rng, (3, 6), dt), normal(rng, (6,), dt), normal(rng, (6,), dt)), {}


def _heads_args(init: Callable) -> Callable:
    def build(rng, dt):
        params = init(rng, dt)
        x = normal(rng, (2, 3, 8), dt)
        return (x, x, params), {}
    return build


def _mha_params(rng, dt):
    from transformer_theory.impl.attention import init_multi_head

    return init_multi_head(8, 2, rng, dtype=dt)


def _gqa_params(rng, dt):
    from transformer_theory.impl.attention import init_grouped_query

    return init_grouped_query(8, 4, 2, rng, dtype=dt)


def _ffn_args(rng, dt):
    from transformer_theory.impl.layers import init_ffn

    return (normal(rng, (2, 3, 6), dt), init_ffn(6, 12, rng, dtype=dt)), {}


def _rope_args(rng, dt):
    return (normal(rng, (2, 5, 8), dt),), {}


def _features_args(rng, dt):
    return (normal(rng, (2, 4, 3), dt, 0.5), normal(rng, (6, 3), dt), "positive"), {}


def _favor_args(rng, dt):
    q, k, v = (normal(rng, (2, 4, 3), dt, 0.5) for _ in range(3))
    return (q, k, v, normal(rng, (6, 3), dt)), {}


#: Callable -> builder of (args, kwargs) in a dtype, for the output-dtype claims.
_DTYPE_CASES: dict[str, Callable] = {
    "attention": _attention_args,
    "attention_weights": _weights_args,
    "softmax": _softmax_args,
    "multi_head_attention": _heads_args(_mha_params),
    "grouped_query_attention": _heads_args(_gqa_params),
    "layer_norm": _layer_norm_args,
    "feed_forward": _ffn_args,
    "rope": _rope_args,
    "random_features": _features_args,
    "favor_attention": _favor_args,
}


#: The output-dtype claims' docstring; ``$name`` is the callable.
_OUTPUT_DTYPE_DOC = string.Template(r"""$name returns its input's dtype

.. math:: x\in\mathbb{F}^{n}\ \Rightarrow\
    f(x)\in\mathbb{F}^{m}\quad(\mathbb{F}\in\{\mathrm{float32},\mathrm{float64}\}\ \text{declared})

DESIGN.md's contract: outputs keep the input dtype. A target computing in float32 whatever its
input declares dtypes=float32 (then only float32 is drawn); one returning float32 for float64
input fails here, and the other claims compare in float32 and say so in their detail.
""")


def _output_dtype_claim(name: str, build: Callable) -> None:
    def output_dtype(subject, ctx) -> Evidence:
        def measure(c):
            args, kwargs = build(np.random.default_rng(c["seed"]), c["dtype"])
            out = getattr(subject, name)(*args, **kwargs)
            arrays = out if isinstance(out, (tuple, list)) else (out,)
            dtypes = sorted({str(np.asarray(a).dtype) for a in arrays})
            return holds(dtypes == [c["dtype"].name],
                         f"{c['dtype'].name} input gave {', '.join(dtypes)} output")
        strategy = st.fixed_dictionaries({"dtype": DTYPES, "seed": SEEDS})
        return for_all(ctx, strategy, measure, max_examples=4,
                       detail=f"{name} returns arrays of its input's dtype for every "
                              f"declared dtype.")

    output_dtype.__doc__ = _OUTPUT_DTYPE_DOC.substitute(name=name)
    claims.claim(f"contract.{name}_output_dtype", sources=(CONTRACT,), kind=Kind.PROPERTY,
                 needs=(name,))(output_dtype)


for _name, _build in _DTYPE_CASES.items():
    _output_dtype_claim(_name, _build)


# ---------------------------------------------------------------------------
# A fully masked row returns what the subject declares
# ---------------------------------------------------------------------------

@claims.claim("contract.fully_masked_row", sources=(VASWANI_2017.at("§3.2.3"),),
              kind=Kind.PROPERTY, needs=("attention",))
def fully_masked_row(subject, ctx) -> Evidence:
    r"""A fully masked query row returns the declared value (contract: zeros)

    .. math:: M_{i\cdot}=0\ \Rightarrow\
        o_i=\begin{cases}0&\texttt{zeros}\\\mathrm{NaN}&\texttt{nan}\\ \tfrac{1}{L_k}\sum_j
        v_j&\texttt{uniform}\end{cases}

    The one claim that reads the fully_masked_row declaration: it calls the target with every other
    convention honoured but this one, and checks the dead rows against the declaration ('nan'
    allows an all-zero row too); live rows must be finite. Every other claim sees the contract's
    zeros there.
    """
    declared = subject.declared()
    rule = option_value(declared.options, "fully_masked_row", "attention")
    raw = conform(declared.with_options(fully_masked_row="zeros")).attention
    strategy = st.tuples(attention_case(lead=(2,)), st.data())

    def measure(args):
        c, data = args
        mask, _ = mask_with_dead_row(c, data, seed_offset=5)
        out = np.asarray(raw(c["q"], c["k"], c["v"], mask=mask))
        dead = dead_query_rows(c["Lq"], c["Lk"], mask)                     # (2, Lq)
        if out.shape != c["v"].shape[:-2] + (c["Lq"], c["v"].shape[-1]):
            return holds(False, f"output shape {out.shape}")
        if not np.all(np.isfinite(out[~dead])):
            return holds(False, "NaN or inf in a row with keys to attend")
        rows = out[dead]                                                   # (n, Ev)
        if rule == "zeros":
            return holds(bool(np.all(rows == 0)), "a fully masked row is not zero "
                         "(declared fully_masked_row=zeros, the contract)")
        if rule == "nan":
            ok = np.all(np.isnan(rows), axis=-1) | np.all(rows == 0, axis=-1)
            return holds(bool(np.all(ok)), "a fully masked row is neither all NaN nor all "
                         "zero (declared fully_masked_row=nan)")
        mean = np.broadcast_to(np.asarray(c["v"], dtype=np.float64).mean(axis=-2, keepdims=True),
                               out.shape)[dead]                            # (n, Ev)
        return compare(rows, mean, tolerance("reduction", c["dtype"], n=c["Lk"]),
                       scale=np.asarray(c["v"]),
                       note="a fully masked row is not the average of the values "
                            "(declared fully_masked_row=uniform)")
    return for_all(ctx, strategy, measure,
                   detail="A row whose mask is all False returns what the subject declares "
                          f"({rule}); every other row is finite.")
