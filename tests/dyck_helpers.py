"""Helpers shared by the Dyck unit tests (``test_impl_dyck*.py``): tokens, every string of a
length, and operations that count their calls."""

from __future__ import annotations

import itertools

import numpy as np

from transformer_theory.impl import attention as A
from transformer_theory.impl import layers as N
from transformer_theory.impl.constructions.dyck import Ops, parse_brackets


def toks(text, k=None) -> np.ndarray:
    """The token ids of a bracket string such as ``"([])"`` (see ``parse_brackets``)."""
    return parse_brackets(text, k)[0]


def all_strings(n: int, k: int) -> np.ndarray:
    """Every string of length ``n`` over the ``2k`` tokens, in lexicographic order.

    Written with :func:`itertools.product`, independently of the claims' block
    enumeration, so that it can serve as that enumeration's oracle.

    Returns
    -------
    numpy.ndarray
        ``((2k)^n, n)`` int64; one empty row for ``n = 0``.
    """
    if n == 0:
        return np.zeros((1, 0), dtype=np.int64)
    return np.array(list(itertools.product(range(2 * k), repeat=n)), dtype=np.int64)


_REFERENCE_OPS = {"attention": A.attention, "hard_attention": A.hard_attention,
                  "feed_forward": N.feed_forward, "residual": N.residual}


def counting_ops(*names: str) -> tuple[Ops, dict]:
    """Reference operations of which those in ``names`` count their calls.

    Parameters
    ----------
    *names : str
        Fields of :class:`Ops` (``"attention"``, ``"hard_attention"``,
        ``"feed_forward"``, ``"residual"``) to count; the others keep the
        defaults of :class:`Ops`.

    Returns
    -------
    ops : Ops
        The operations to build a network with.
    calls : dict
        ``{name: number of calls so far}`` for each of ``names``, updated in place.
    """
    calls = dict.fromkeys(names, 0)

    def counted(name, fn):
        def wrapper(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return wrapper

    return Ops(**{name: counted(name, _REFERENCE_OPS[name]) for name in names}), calls
