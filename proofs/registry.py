"""The registry of derivations: every ``@derivation`` function, found by id.

Each topic module (``performer``, ``softmax``, ``positional``, ``layers``,
``counting``, ``ode``) decorates its derivation builders with
:func:`derivation`; importing :mod:`transformer_theory.proofs` imports them
all, so :data:`DERIVATIONS` is complete after ``import transformer_theory.proofs``.
Building a derivation runs sympy, so :func:`get` caches the result.
"""

from __future__ import annotations

import importlib
from typing import Callable

from .derivation import Derivation

__all__ = ["DERIVATIONS", "TOPIC_MODULES", "derivation", "get", "all_derivations", "clear_cache"]

#: id -> builder (a function returning the Derivation), in registration order.
DERIVATIONS: dict[str, Callable[[], Derivation]] = {}

#: The topic modules whose import registers the derivations.
TOPIC_MODULES = ("performer", "softmax", "positional", "layers", "counting", "ode")

_CACHE: dict[str, Derivation] = {}


def derivation(id: str, *, claims: tuple[str, ...] = (), expect: str = "holds"):
    """Register a builder ``() -> Derivation`` under ``id``.

    Parameters
    ----------
    id : str
        Dotted id (``"topic.name"``); must be unique.
    claims : tuple of str
        Numeric claim ids the derivation backs; copied onto the Derivation.
    expect : {"holds", "fails"}
        ``"fails"`` registers a limitation (the stated result must not verify).

    Returns
    -------
    callable
        The decorator; the decorated builder sets ``id``, ``claims`` and
        ``expect`` on the Derivation it returns.
    """
    if not isinstance(id, str) or "." not in id:
        raise ValueError(f"id: expected a dotted string such as 'topic.name', got {id!r}")
    if expect not in ("holds", "fails"):
        raise ValueError(f"expect: expected 'holds' or 'fails', got {expect!r}")
    if isinstance(claims, str):
        raise TypeError("claims: expected a tuple of claim ids, got a single str")
    claims = tuple(claims)

    def decorate(builder: Callable[[], Derivation]) -> Callable[[], Derivation]:
        if id in DERIVATIONS:
            raise ValueError(f"id: derivation {id!r} is already registered")

        def build() -> Derivation:
            d = builder()
            if not isinstance(d, Derivation):
                raise TypeError(f"{id}: builder returned {type(d).__name__}, expected Derivation")
            d.id, d.claims, d.expect = id, claims, expect
            d.refresh()
            return d

        build.__name__ = builder.__name__
        build.__doc__ = builder.__doc__
        build.__wrapped__ = builder
        build.derivation_id = id
        build.expect = expect
        build.claims = claims
        DERIVATIONS[id] = build
        return build

    return decorate


def load_all() -> None:
    """Import every derivation module, so that :data:`DERIVATIONS` is complete."""
    for name in TOPIC_MODULES:
        importlib.import_module(f"{__package__}.{name}")


def get(id: str) -> Derivation:
    """The derivation ``id``, built on first request and cached."""
    load_all()
    if id not in DERIVATIONS:
        raise KeyError(f"id: unknown derivation {id!r}; known: {sorted(DERIVATIONS)}")
    if id not in _CACHE:
        _CACHE[id] = DERIVATIONS[id]()
    return _CACHE[id]


def all_derivations() -> list[Derivation]:
    """Every registered derivation (built and cached), in registration order."""
    load_all()
    return [get(i) for i in DERIVATIONS]


def clear_cache() -> None:
    """Forget built derivations (the next :func:`get` rebuilds them)."""
    _CACHE.clear()
