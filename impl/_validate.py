"""Input validation shared by every function of the reference implementation.

The contract (DESIGN.md, "Contract"): bad input gets a clear ``ValueError`` or
``TypeError`` that names the argument, the expected and the actual shape or
dtype. Nothing is broadcast silently across sequence or head dimensions, and
non-finite inputs are rejected rather than passed on.

Every helper here either returns a validated array or raises; none of them
copies data it does not have to.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

#: Floating dtypes the reference accepts; outputs keep the input dtype.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_array(x, name: str, *, ndim_min: int = 1, ndim: int | None = None,
                   finite: bool = True) -> np.ndarray:
    """Return ``x`` as a float32/float64 ndarray, or raise naming ``name``.

    Parameters
    ----------
    x : array_like
        The argument to check. Python floats and integer arrays are converted
        to float64; float16 and complex inputs are refused (``TypeError``).
    name : str
        The argument's name, used in the error message.
    ndim_min : int
        Smallest allowed rank.
    ndim : int, optional
        Exact rank required, if given.
    finite : bool
        Refuse NaN and +-inf (``ValueError``).
    """
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or arr.dtype.kind in "iu":
        arr = arr.astype(np.float64)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected dtype float32 or float64, got {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(
            f"{name}: expected a {ndim}-d array, got shape {arr.shape} ({arr.ndim}-d)")
    if arr.ndim < ndim_min:
        raise ValueError(
            f"{name}: expected at least {ndim_min} dimensions, got shape {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def common_float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The dtype outputs take: float32 only if every input is float32."""
    if all(a.dtype == np.float32 for a in arrays):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def check_dim(arr: np.ndarray, axis: int, expected: int, name: str, what: str) -> None:
    """Raise unless ``arr.shape[axis] == expected``."""
    actual = arr.shape[axis]
    if actual != expected:
        raise ValueError(
            f"{name}: expected {what} = {expected} along axis {axis}, "
            f"got shape {arr.shape}")


def check_same_dim(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str,
                   axis: int, what: str) -> None:
    """Raise unless ``a`` and ``b`` agree along ``axis`` (no silent broadcasting)."""
    if a.shape[axis] != b.shape[axis]:
        raise ValueError(
            f"{b_name}: {what} must match {a_name}: expected {a.shape[axis]} along "
            f"axis {axis}, got shape {b.shape} (and {a_name} has shape {a.shape})")


def check_batch_dims(arrays: Sequence[tuple[str, np.ndarray]], n_trailing: int) -> tuple:
    """Check that leading (batch/head) dims are equal, and return them.

    Leading dimensions must match exactly: the contract forbids silent
    broadcasting of mismatched batch or head dims.
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

    The mask must be of dtype bool (True = may attend) and broadcastable to
    ``target_shape`` by numpy's rules; its last two dims must each equal the
    target's or be 1.
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
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices!r}, got {value!r}")


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_rng(rng, name: str = "rng") -> np.random.Generator:
    """Refuse anything but an explicit ``np.random.Generator`` (no global RNG)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name}: expected a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}")
    return rng
