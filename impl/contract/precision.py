"""Half precision in the contract: float16 and bfloat16.

The contract's floating dtypes are float32 and float64 everywhere, and
float16 and bfloat16 (``ml_dtypes.bfloat16``) where an implementation
supports them. A half-precision array is what a callable receives and what
it must return: outputs keep the input dtype.

``ml_dtypes.bfloat16`` is a numpy dtype of kind ``'V'``, so
``np.issubdtype(bfloat16, np.floating)`` is False: the contract names the
dtypes explicitly (:data:`HALF_DTYPES`) instead of asking numpy.

Two decorators say that a function takes half precision:

* :func:`computes_in_float32` -- the reference's way. Half-precision arrays
  (and the half-precision arrays inside dataclass parameters and caches)
  are upcast to float32 exactly, the function computes in float32, and its
  float32 results are rounded once to the input dtype. numpy's own half
  arithmetic is not used: a bfloat16 ``sum`` accumulates in bfloat16
  (4096 ones sum to 256) and ``bfloat16 @ bfloat16`` returns float32.
* :func:`accepts_half` -- for an implementation that computes natively in
  half precision (the torch adapter): the contract's validators accept
  half-precision arrays while it runs.

Anywhere else a half-precision array is refused with a ``TypeError`` that
names the argument and the supported dtypes (:func:`half_accepted` is what
the validators ask).

References
----------
Micikevicius et al. 2018, Mixed Precision Training (float16 storage with
float32 accumulation); Kalamkar et al. 2019, A Study of BFLOAT16 for Deep
Learning Training (the bfloat16 format: float32's exponent, 8 bits of
significand). ml_dtypes documentation (bfloat16 as a numpy dtype).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
from typing import Any, Callable

import ml_dtypes
import numpy as np

__all__ = [
    "FLOAT16",
    "BFLOAT16",
    "HALF_DTYPES",
    "half_accepted",
    "half_dtype_of",
    "dtype_named",
    "computes_in_float32",
    "accepts_half",
    "cast_arrays",
]

FLOAT16 = np.dtype(np.float16)
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
#: The half-precision dtypes of the contract.
HALF_DTYPES = (FLOAT16, BFLOAT16)
_F32 = np.dtype(np.float32)


def dtype_named(name) -> np.dtype:
    """The numpy dtype of a contract dtype name ('float16', 'bfloat16', 'float32', 'float64')."""
    return BFLOAT16 if str(name) == "bfloat16" else np.dtype(name)


_ACCEPTED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "transformer_theory_half_accepted", default=False)


def half_accepted() -> bool:
    """Whether the function running now takes half-precision arrays."""
    return _ACCEPTED.get()


def _arrays_in(value: Any):
    """The numpy arrays in ``value``: itself, a tuple/list's items, a dataclass's fields."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _arrays_in(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _arrays_in(getattr(value, f.name))


def half_dtype_of(*values: Any) -> np.dtype | None:
    """The half dtype of the arguments, if every floating array among them has it.

    Parameters
    ----------
    *values
        Arguments: arrays, tuples and lists of them, dataclass parameters.

    Returns
    -------
    np.dtype or None
        float16 or bfloat16 when every float16/bfloat16/float32/float64 array
        found is of that one half dtype; None when there is no half array, or
        when half arrays are mixed with float32/float64 ones.

    Raises
    ------
    TypeError
        If float16 and bfloat16 arrays are mixed: converting one into the
        other silently loses range (float16) or precision (bfloat16).
    """
    seen = set()
    for value in values:
        for arr in _arrays_in(value):
            if arr.dtype in HALF_DTYPES or arr.dtype in (_F32, np.dtype(np.float64)):
                seen.add(arr.dtype)
    halves = seen & set(HALF_DTYPES)
    if len(halves) > 1:
        raise TypeError("arguments mix float16 and bfloat16; convert them to one dtype "
                        "explicitly (a silent cast loses range or precision)")
    if halves and len(seen) == 1:
        return next(iter(halves))
    return None


def cast_arrays(value: Any, source: tuple, target: np.dtype) -> Any:
    """``value`` with every array whose dtype is in ``source`` cast to ``target``.

    Arrays, named tuples, lists and tuples of them and dataclass parameters
    (rebuilt with :func:`dataclasses.replace`, so they validate themselves
    again) are walked; anything else is returned as it is.
    """
    if isinstance(value, np.ndarray):
        return value.astype(target) if value.dtype in source else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):        # a named tuple
        return type(value)(*(cast_arrays(v, source, target) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(cast_arrays(v, source, target) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: cast_arrays(getattr(value, f.name), source, target)
                   for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    return value


def computes_in_float32(fn: Callable | None = None, *, exclude: tuple[str, ...] = ()):
    """Let ``fn`` take half precision by computing in float32 and rounding once.

    If every floating array among the arguments is float16 (or every one is
    bfloat16), they are upcast to float32 (exactly), ``fn`` runs, and the
    float32 arrays of its result (arrays, tuples, dataclasses) are rounded
    to that dtype. Half arrays mixed with float32/float64 ones reach ``fn``
    as they are, whose validators refuse them naming the argument: a mixed
    call has no one dtype to answer in.

    Parameters
    ----------
    fn : callable
    exclude : tuple of str
        Parameters that are not data (RoPE's ``positions``): their dtype
        neither makes nor breaks a half-precision call, and they are passed
        through unchanged.

    Returns
    -------
    callable
        ``fn`` wrapped (``functools.wraps``); used bare or as
        ``@computes_in_float32(exclude=("positions",))``.
    """
    if fn is None:
        return functools.partial(computes_in_float32, exclude=exclude)
    names = list(inspect.signature(fn).parameters)

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        data = [a for name, a in zip(names, args) if name not in exclude]
        data += [v for k, v in kwargs.items() if k not in exclude]
        half = half_dtype_of(*data)
        if half is None:            # no half array, or halves mixed with float32/float64:
            return fn(*args, **kwargs)   # fn's validators accept or refuse as always
        args = tuple(a if name in exclude else cast_arrays(a, HALF_DTYPES, _F32)
                     for name, a in zip(names, args)) + tuple(args[len(names):])
        kwargs = {k: v if k in exclude else cast_arrays(v, HALF_DTYPES, _F32)
                  for k, v in kwargs.items()}
        return cast_arrays(fn(*args, **kwargs), (_F32,), half)
    return wrapped


def accepts_half(fn: Callable) -> Callable:
    """Let the contract's validators accept half-precision arrays while ``fn`` runs.

    For implementations that compute natively in float16 and bfloat16 (the
    torch adapter), and for constructors that build parameters in a given
    dtype.

    Parameters
    ----------
    fn : callable

    Returns
    -------
    callable
        ``fn`` wrapped (``functools.wraps``).
    """
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        token = _ACCEPTED.set(True)
        try:
            return fn(*args, **kwargs)
        finally:
            _ACCEPTED.reset(token)
    return wrapped
