"""The contract's validators of arrays and scalars.

The general checks every callable starts with: an argument as a float32 or
float64 array of the expected rank (and finite), the dtype the output takes,
equal leading dims (nothing is broadcast silently across sequence or head
dimensions), a boolean mask, an integer, a choice, a generator, a dtype, an
axis. Each names the argument, the expected and the actual shape or dtype
(DESIGN.md, "Contract"), and either returns its argument validated or raises;
none copies data it does not have to.

The validators of particular arguments (attention masks and causal alignment,
scale, bias, non-finite keys; Performer feature maps) are in :mod:`.validate`,
which re-exports these, so ``from transformer_theory.impl.contract.validate
import as_float_array`` keeps working. This module imports nothing but numpy and :mod:`.precision`.

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.2 (the shapes validated
here); PyTorch ``scaled_dot_product_attention`` (the argument conventions).
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable, Sequence

import numpy as np

from .precision import HALF_DTYPES, half_accepted, half_dtype_of

__all__ = [
    "FLOAT_DTYPES",
    "as_float_array",
    "common_float_dtype",
    "check_dim",
    "check_same_dim",
    "check_batch_dims",
    "as_bool_mask",
    "check_choice",
    "check_positive_int",
    "check_rng",
    "check_instance",
    "check_float_dtype",
    "normalize_axis",
    "check_eps",
    "check_optional_positive",
    "check_optional_vector",
]

#: Floating dtypes the contract accepts everywhere; outputs keep the input dtype.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _accepts(dtype: np.dtype, half: bool | None) -> bool:
    """Whether ``dtype`` is accepted: float32/float64, or a half dtype where one may come."""
    if dtype in FLOAT_DTYPES:
        return True
    return dtype in HALF_DTYPES and (half_accepted() if half is None else half)


def _expected(half: bool | None) -> str:
    """The accepted dtypes, as an error message names them."""
    if half_accepted() if half is None else half:
        return "float16, bfloat16, float32 or float64"
    return "float32 or float64 (float16 and bfloat16 only where the contract supports them)"


def as_float_array(x, name: str, *, ndim_min: int = 1, ndim: int | None = None,
                   finite: bool = True, half: bool | None = None) -> np.ndarray:
    """Return ``x`` as a float32/float64 ndarray, or raise naming ``name``.

    Parameters
    ----------
    x : array_like
        The argument to check. Python floats, bool and integer arrays are
        converted to float64; complex inputs are refused (``TypeError``),
        and so are float16 and bfloat16 unless ``half`` allows them.
    name : str
        The argument's name, used in the error message.
    ndim_min : int
        Smallest allowed rank.
    ndim : int, optional
        Exact rank required, if given.
    finite : bool
        Refuse NaN and +-inf (``ValueError``).
    half : bool, optional
        Accept float16 and bfloat16 (:mod:`.precision`); by default only
        while a function marked :func:`.precision.accepts_half` runs.

    Returns
    -------
    np.ndarray
        ``x`` itself when it already is an array of an accepted dtype.
    """
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or arr.dtype.kind in "iu":
        arr = arr.astype(np.float64)
    if not _accepts(arr.dtype, half):
        raise TypeError(f"{name}: expected dtype {_expected(half)}, got {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(
            f"{name}: expected a {ndim}-d array, got shape {arr.shape} ({arr.ndim}-d)")
    if arr.ndim < ndim_min:
        raise ValueError(
            f"{name}: expected at least {ndim_min} dimensions, got shape {arr.shape}")
    if finite and not np.isfinite(arr).all():           # the method: np.all adds a dispatch
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


_FULL_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float64)})


def common_float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The dtype outputs take: float32 only if every input is float32.

    A half dtype (float16 or bfloat16) if every input has it; half inputs
    mixed with float32 count as float32 (:func:`.precision.half_dtype_of`;
    mixing float16 with bfloat16 is a ``TypeError``).

    Parameters
    ----------
    *arrays : np.ndarray or None
        Validated float arrays; ``None`` (an omitted optional argument) is
        skipped.

    Returns
    -------
    np.dtype
    """
    kinds = {a.dtype for a in arrays if a is not None}
    if kinds and kinds <= _FULL_DTYPES:                  # no half array: skip the half search
        return np.dtype(np.float32 if kinds == {np.dtype(np.float32)} else np.float64)
    half = half_dtype_of(*arrays)                       # it passes over None itself
    if half is not None:
        return half
    if all(k == np.float32 or k in HALF_DTYPES for k in kinds):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def check_dim(arr: np.ndarray, axis: int, expected: int, name: str, what: str) -> None:
    """Raise ``ValueError`` unless ``arr.shape[axis] == expected``.

    Parameters
    ----------
    arr : np.ndarray
    axis : int
    expected : int
    name : str
        The argument's name.
    what : str
        What the dimension is (``"d_model (last dim of x)"``), for the message.
    """
    actual = arr.shape[axis]
    if actual != expected:
        raise ValueError(
            f"{name}: expected {what} = {expected} along axis {axis}, "
            f"got shape {arr.shape}")


def check_same_dim(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str,
                   axis: int, what: str) -> None:
    """Raise unless ``a`` and ``b`` agree along ``axis`` (no silent broadcasting).

    Parameters
    ----------
    a, b : np.ndarray
    a_name, b_name : str
        Their names; the message names ``b``.
    axis : int
    what : str
        What the dimension is (``"key length Lk"``).
    """
    if a.shape[axis] != b.shape[axis]:
        raise ValueError(
            f"{b_name}: {what} must match {a_name}: expected {a.shape[axis]} along "
            f"axis {axis}, got shape {b.shape} (and {a_name} has shape {a.shape})")


def check_batch_dims(arrays: Sequence[tuple[str, np.ndarray]], n_trailing: int) -> tuple:
    """Check that leading (batch/head) dims are equal, and return them.

    Leading dimensions must match exactly: the contract forbids silent
    broadcasting of mismatched batch or head dims.

    Parameters
    ----------
    arrays : sequence of (name, np.ndarray)
        The first array's leading dims are the expected ones.
    n_trailing : int
        Number of trailing (non-batch) dims of every array.

    Returns
    -------
    tuple
        The common leading dims.
    """
    first_name, first = arrays[0]
    lead = first.shape[: first.ndim - n_trailing]
    for name, arr in arrays[1:]:
        other = arr.shape[: arr.ndim - n_trailing]
        if other != lead:
            raise ValueError(
                f"{name}: leading (batch/head) dims must equal those of {first_name}: "
                f"expected {lead}, got {other} (shape {arr.shape})")
    return lead


def as_bool_mask(mask, name: str, target_shape: tuple) -> np.ndarray:
    """Return a boolean mask broadcast to ``target_shape``, or raise.

    Parameters
    ----------
    mask : array_like of bool
        True = may attend. Broadcastable to ``target_shape`` by numpy's rules;
        a 1-d mask is refused (ambiguous between queries and keys), a 0-d one
        is allowed.
    name : str
    target_shape : tuple

    Returns
    -------
    np.ndarray of bool
        A read-only broadcast view of ``mask``.
    """
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"{name}: expected dtype bool (True = may attend), got {m.dtype}")
    if m.ndim < 2 and m.ndim != 0:
        raise ValueError(
            f"{name}: expected a mask broadcastable to {target_shape}, got shape {m.shape}")
    try:
        return np.broadcast_to(m, target_shape)
    except ValueError:
        raise ValueError(
            f"{name}: expected a mask broadcastable to {target_shape}, got shape {m.shape}"
        ) from None


def check_choice(value, name: str, choices: Iterable) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``.

    Parameters
    ----------
    value
    name : str
    choices : iterable
    """
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices!r}, got {value!r}")


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= ``minimum``, else raise.

    Parameters
    ----------
    value
        A Python or numpy integer; ``bool`` is refused (``TypeError``).
    name : str
    minimum : int

    Returns
    -------
    int
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_rng(rng, name: str = "rng") -> np.random.Generator:
    """Refuse anything but an explicit ``np.random.Generator`` (no global RNG).

    Parameters
    ----------
    rng
    name : str

    Returns
    -------
    np.random.Generator
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name}: expected a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}")
    return rng


def check_instance(value, name: str, types):
    """Return ``value`` if it is an instance of ``types``, else raise ``TypeError``.

    Parameters
    ----------
    value
    name : str
    types : type or tuple of types
        The message lists them joined by "or".

    Returns
    -------
    The value, unchanged.
    """
    types = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, types):
        expected = " or ".join(t.__name__ for t in types)
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__}")
    return value


def check_float_dtype(dtype, name: str = "dtype", *, half: bool | None = None) -> np.dtype:
    """Return ``dtype`` as a numpy dtype if it is float32 or float64, else raise ``TypeError``.

    Parameters
    ----------
    dtype : dtype-like
    name : str
    half : bool, optional
        Accept float16 and bfloat16, as :func:`as_float_array` does.

    Returns
    -------
    np.dtype
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name}: expected {_expected(half)}, got {dtype!r}") from None
    if not _accepts(dt, half):
        raise TypeError(f"{name}: expected {_expected(half)}, got {dt}")
    return dt


def normalize_axis(axis, ndim: int, name: str = "axis") -> int:
    """Return ``axis`` as a non-negative axis of an ``ndim``-d array, or raise.

    Parameters
    ----------
    axis : int
        In ``[-ndim, ndim - 1]``; ``bool`` is refused (``TypeError``).
    ndim : int
    name : str

    Returns
    -------
    int
        In ``[0, ndim - 1]``.
    """
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name}: expected an axis in [{-ndim}, {ndim - 1}] for a {ndim}-d array, got {axis}")
    return int(axis) % ndim


def check_eps(eps) -> float:
    """Return the normalisation ``eps`` as a float if it is a finite real >= 0, else raise.

    Parameters
    ----------
    eps : real number

    Returns
    -------
    float
    """
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps: expected a real number >= 0, got {type(eps).__name__}")
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps: expected a finite real number >= 0, got {eps}")
    return eps


def check_optional_positive(value, name: str) -> float | None:
    """An optional positive finite real (a scale, a soft cap, a RoPE base) as a float.

    Parameters
    ----------
    value : real number or None
        Not a bool; ``> 0`` and finite.
    name : str
        The argument's name, for the error messages.

    Returns
    -------
    float or None
        A Python float (so float32 computations stay in float32), or None for None.

    Raises
    ------
    TypeError
        ``value`` is a bool or not a real number.
    ValueError
        ``value`` is not finite or not positive.
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number or None, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return out


def check_optional_vector(v, name: str, length: int, what: str) -> np.ndarray | None:
    """Validate an optional per-feature vector of shape ``(length,)``.

    Parameters
    ----------
    v : array_like or None
        Finite, 1-d.
    name : str
    length : int
    what : str
        What the length is (``"d_ff (columns of w1)"``), for the message.

    Returns
    -------
    np.ndarray or None
        ``None`` if ``v`` is None.
    """
    if v is None:
        return None
    arr = as_float_array(v, name, ndim=1)
    check_dim(arr, 0, length, name, what)
    return arr
