"""The exact baseline of a half-precision run: the float64 reference on the same rounded inputs.

The error-ratio rule (:func:`transformer_theory.theory.tolerance.ratio_tolerance`)
holds a half-precision run to twice the error of a naive half computation
(:mod:`.rounding_baseline`). Where a claim compares two outputs of the subject
(an invariance, an equivariance), the naive computation's roundings can
partly cancel between the two, and a correct implementation that rounds only
its outputs then comes close to, or past, twice a lucky baseline.

This module gives the second baseline that bounds such a run by derivation:
each contract callable the half-precision claims use, computed by the
reference in float64 on the inputs exactly as the claim rounded them (every
half array cast up, exactly), and returned unrounded. Its error ``e*`` on the
case is what a perfect computation on those inputs scores. An implementation
that computes in float32 or wider and rounds each output once to the half
dtype (unit roundoff ``u = eps / 2``) differs from it by at most ``u`` per
output in norm-wise relative terms, plus its own compute error; so on a
comparison of two outputs its error is at most ``e* + 2u + u``, the last
``u`` bounding the compute error (``gamma_n eps_32 kappa <= u`` when
``n kappa <= eps_half / (2 eps_32)``, 4096 for float16).
:func:`.tolerance.rounded_exact_tolerance` states that bound and
:func:`.checks.ratio_rule` takes the larger of it and the ratio rule.

References
----------
Higham 2002, Accuracy and Stability of Numerical Algorithms (the standard model
of one rounding, ``fl(x) = x (1 + d)``, ``|d| <= u``, and the constant ``gamma_n``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from transformer_theory.impl.contract.precision import HALF_DTYPES, cast_arrays

__all__ = ["exact", "to_float64"]

_F64 = np.dtype(np.float64)


def to_float64(value):
    """``value`` with every float16/bfloat16 array cast (exactly) to float64.

    Arrays, named tuples, lists and tuples of them and dataclass parameters
    are walked (:func:`~transformer_theory.impl.contract.precision.cast_arrays`).
    """
    return cast_arrays(value, HALF_DTYPES, _F64)


def exact(fn: Callable) -> Callable:
    """``fn`` (a float64-preserving reference callable) run on float64 copies of its arguments.

    Parameters
    ----------
    fn : callable
        A callable of the reference subject, which keeps float64 in float64.

    Returns
    -------
    callable
        Same signature; returns ``fn``'s float64 result, unrounded.
    """
    def run(*args, **kwargs):
        return fn(*(to_float64(a) for a in args),
                  **{k: to_float64(v) for k, v in kwargs.items()})
    run.__name__ = getattr(fn, "__name__", "exact")
    run.__doc__ = f"The float64 reference of {run.__name__} on the same rounded inputs."
    return run
