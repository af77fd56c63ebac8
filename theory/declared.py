"""What the subject under test declared, in force while one claim runs.

A claim never reads a subject's options. The runner enters
:func:`declared_for` around each check; inside it the shared machinery asks
this module:

* :func:`allowed_dtypes` -- the input dtypes the subject accepts (option
  ``dtypes``); ``strategies.DTYPES`` draws only these;
* :func:`value_dim_equal` -- whether the subject needs ``Ev = E``;
* :func:`effective_dtype` -- the dtype a tolerance is computed for: the
  coarser of the data's dtype and the precision the subject declared
  (``compute_dtype``) or was seen to return;
* :func:`note_output` -- the conformed callables report an output coarser
  than its input here, so the rest of the claim compares in the output's
  precision and says so.

The state is a :class:`contextvars.ContextVar`, set and reset by the runner
around one check (like ``numpy.errstate``): nothing outlives the claim, and
outside a run the contract's defaults hold.

Two exceptions let the shared machinery speak for a subject:
:class:`NotApplicable` (the subject cannot answer this claim: a dtype,
keyword or feature kind it does not declare; the claim is reported
``not_applicable`` with the reason) and :class:`DontCare` (this one case is
outside what the declared convention defines, e.g. a NaN-convention
backward pass through a fully masked row; the case is discarded).

References
----------
DESIGN.md, "Conformance on real code"; issue 14 ("compute_dtype relaxes
nothing", "Output dtype is unchecked").
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

__all__ = [
    "NotApplicable",
    "DontCare",
    "Declared",
    "declared_for",
    "current",
    "allowed_dtypes",
    "choose_dtype",
    "value_dim_equal",
    "self_attention_only",
    "effective_dtype",
    "note_output",
    "note_inputs",
    "half_dtype",
    "baseline_active",
    "exact_active",
    "exact_run",
    "baseline_run",
]

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


class NotApplicable(BaseException):
    """The subject cannot answer this claim (reason in ``args[0]``).

    A ``BaseException`` so that it passes through a check's ``except Exception``
    and through Hypothesis (which would otherwise shrink it as a failure) up to
    the runner, which reports the claim ``not_applicable``.
    """


class DontCare(Exception):
    """This case lies outside what the subject's declared convention defines."""


@dataclass
class Declared:
    """The declarations in force for one claim run.

    Attributes
    ----------
    dtypes : tuple of numpy dtype
        Input dtypes the subject accepts, in the order strategies prefer them.
    value_dim_equal : bool
    self_attention_only : bool
        The subject's heads take one sequence (``--as gqa_self``): strategies
        draw keys and values from the queries' sequence.
    precision : numpy dtype or None
        The declared compute precision (float32) or None for "the input's".
    precision_reason : str
    half : numpy dtype or None
        float16 or bfloat16 for a half-precision run (every case is drawn in
        it, and comparisons follow the error-ratio rule); None otherwise.
    seen : dict
        Filled during the run: ``"precision"`` (the coarsest output dtype seen
        for a finer input) and ``"lowered"`` (whether a tolerance was lowered).
    """

    dtypes: tuple[np.dtype, ...] = (_F64, _F32)
    value_dim_equal: bool = False
    self_attention_only: bool = False
    precision: np.dtype | None = None
    precision_reason: str = ""
    half: np.dtype | None = None
    seen: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One sentence for the claim's detail when a tolerance was lowered, else ''."""
        if not (self.seen.get("lowered") or self.seen.get("precision")):
            return ""
        reasons = [r for r in (self.precision_reason, self.seen.get("reason", "")) if r]
        return "Tolerances: float64 data held to the float32 policy (" + "; ".join(reasons) + ")."


_STATE: contextvars.ContextVar[Declared | None] = contextvars.ContextVar(
    "transformer_theory_declared", default=None)


def current() -> Declared:
    """The declarations in force (the contract's defaults outside a run)."""
    return _STATE.get() or Declared()


@contextmanager
def declared_for(declared: Declared) -> Iterator[Declared]:
    """Put ``declared`` in force for the body (one claim's check)."""
    token = _STATE.set(declared)
    try:
        yield declared
    finally:
        _STATE.reset(token)


def allowed_dtypes() -> tuple[np.dtype, ...]:
    """The input dtypes claims may draw (only the half dtype in a half-precision run)."""
    state = current()
    return (state.half,) if state.half is not None else state.dtypes


def half_dtype() -> np.dtype | None:
    """The half dtype of a half-precision run, else None."""
    return current().half


#: Which baseline stands in for the subject's callables now: None (the subject itself),
#: "naive" (``theory/rounding_baseline.py``) or "exact" (``theory/exact_baseline.py``).
_STAND_IN: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "transformer_theory_stand_in", default=None)


@contextmanager
def _standing_in(kind: str) -> Iterator[None]:
    token = _STAND_IN.set(kind)
    try:
        yield
    finally:
        _STAND_IN.reset(token)


def baseline_active() -> bool:
    """Whether the subject's callables stand for the naive half-precision baseline now."""
    return _STAND_IN.get() == "naive"


def baseline_run():
    """Run the body with the naive baseline in place of the subject (``checks.for_all``)."""
    return _standing_in("naive")


def exact_active() -> bool:
    """Whether the subject's callables stand for the exact float64 baseline now."""
    return _STAND_IN.get() == "exact"


def exact_run():
    """Run the body with the exact baseline (``theory/exact_baseline.py``) in place of the subject."""
    return _standing_in("exact")


def choose_dtype(drawn) -> np.dtype:
    """``drawn`` if the subject accepts it, else the first dtype it accepts.

    ``strategies.DTYPES`` maps its draws through this, so that an undeclared
    subject sees exactly the draws it always saw.
    """
    allowed = allowed_dtypes()
    drawn = np.dtype(drawn)
    return drawn if drawn in allowed else allowed[0]


def value_dim_equal() -> bool:
    """Whether strategies must draw ``Ev = E``."""
    return current().value_dim_equal


def self_attention_only() -> bool:
    """Whether strategies must draw self-attention cases (keys from the queries)."""
    return current().self_attention_only


def effective_dtype(dtype) -> np.dtype:
    """The dtype a tolerance for data of ``dtype`` is computed in.

    float64 data is held to the float32 policy when the subject declared a
    float32 compute precision or returned float32 for float64 input; the
    claim's detail then says so (:meth:`Declared.summary`).
    """
    dtype = np.dtype(dtype)
    state = _STATE.get()
    if state is None or dtype != _F64:
        return dtype
    coarse = state.precision or state.seen.get("precision")
    if coarse is not None and np.dtype(coarse) == _F32:
        state.seen["lowered"] = True
        return _F32
    return dtype


def note_inputs(dtypes) -> None:
    """Record that a callable received arrays of ``dtypes`` (a half-precision run checks that
    its dtype reached the subject)."""
    state = _STATE.get()
    if state is not None and state.half is not None and state.half in dtypes:
        state.seen["half_inputs"] = True


def note_output(name: str, in_dtype: np.dtype, out_dtype: np.dtype) -> None:
    """Record that callable ``name`` returned ``out_dtype`` for ``in_dtype`` input."""
    state = _STATE.get()
    if state is None:
        return
    if np.dtype(in_dtype) == _F64 and np.dtype(out_dtype) == _F32:
        state.seen["precision"] = _F32
        state.seen["reason"] = (f"{name} returned float32 for float64 input; "
                                f"contract.output_dtype reports it")
