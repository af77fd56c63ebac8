"""Capabilities are probed, not assumed: does a target take an optional keyword?

A claim that passes an optional keyword (``bias`` today; ``window``,
``softcap`` and others later) declares it (``Claim.keywords``). Before the
claim runs, :func:`missing_keyword` asks whether the subject's callable takes
it: the option ``accepts`` when declared, else the callable's signature, else
(a signature hiding behind ``**kwargs``) one call on a tiny input. A target
without the keyword makes the claim ``not_applicable`` with the reason, never
``failed`` or ``error``.

Callables the suite completed a target with (the reference's, next to a
single user callable) take every contract keyword.

References
----------
DESIGN.md, "Conformance on real code" ("Capabilities are probed, not assumed");
issue 14, item 2.
"""

from __future__ import annotations

import inspect
from typing import Callable

import numpy as np

from .subject import Subject

__all__ = ["missing_keyword", "takes_keyword"]

#: One tiny call per callable family, used when a signature hides behind **kwargs.
_PROBE_ARGS: dict[str, Callable[[], tuple]] = {
    "attention": lambda: (np.ones((1, 2, 2)), np.ones((1, 2, 2)), np.ones((1, 2, 2))),
    "attention_weights": lambda: (np.ones((1, 2, 2)), np.ones((1, 2, 2))),
}
_PROBE_KEYWORDS = {"bias": lambda: np.zeros((1, 2, 2)), "window": lambda: (1, 0),
                   "softcap": lambda: 30.0, "segment_ids": lambda: np.zeros((1, 2), dtype=int)}


def _unwrap(fn):
    seen = set()
    while hasattr(fn, "__wrapped__") and id(fn) not in seen:
        seen.add(id(fn))
        fn = fn.__wrapped__
    forward = getattr(fn, "forward", None)
    return forward if forward is not None and not inspect.isfunction(fn) else fn


def takes_keyword(fn: Callable, keyword: str, name: str, called: Callable | None = None) -> bool:
    """Whether ``fn`` accepts ``keyword`` (its signature, else one tiny probing call).

    Parameters
    ----------
    fn : callable
        The target as declared (possibly wrapped; ``__wrapped__`` is followed).
    keyword : str
        The keyword, in the target's spelling.
    name : str
        The contract name of ``fn`` (chooses the probe's inputs).
    called : callable, optional
        What to call for the probe (the numpy-facing wrapper of ``fn``).
    """
    try:
        params = list(inspect.signature(_unwrap(fn)).parameters.values())
    except (TypeError, ValueError):
        params = None                          # no signature (a builtin): probe it
    if params is None:
        return _probe(fn, keyword, name, called)
    if any(p.name == keyword and p.kind != p.POSITIONAL_ONLY for p in params):
        return True
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        return False
    return _probe(fn, keyword, name, called)


def _probe(fn: Callable, keyword: str, name: str, called: Callable | None) -> bool:
    """One tiny call with ``keyword``: a TypeError means the target does not take it."""
    if name not in _PROBE_ARGS or keyword not in _PROBE_KEYWORDS:
        return True                            # no probe for this callable: trust it
    try:
        (called or fn)(*_PROBE_ARGS[name](), **{keyword: _PROBE_KEYWORDS[keyword]()})
    except TypeError:
        return False
    except Exception:
        return True                            # it took the keyword and failed otherwise
    return True


def missing_keyword(subject: Subject, keywords) -> str | None:
    """The reason a subject cannot answer a claim passing ``keywords``, else None.

    Parameters
    ----------
    subject : Subject
        Declared or conformed (the declared callables are probed).
    keywords : iterable of (callable name, keyword)
    """
    declared = subject.declared()
    origin = declared.options.get("origin") or {}
    provided = origin.get("provided")
    accepts = declared.options.get("accepts")
    rename = declared.options.get("rename") or {}
    for name, keyword in keywords:
        if name not in declared.callables:
            continue
        if provided is not None and name not in provided:
            continue
        if accepts is not None:
            if keyword not in accepts:
                return (f"{name} does not take {keyword}= (declared accepts="
                        f"{','.join(accepts)})")
            continue
        fn = declared.callables[name]
        if not takes_keyword(fn, rename.get(keyword, keyword), name):
            return (f"{name} does not take the optional keyword {keyword}= (probed its "
                    f"signature; declare --option accepts={keyword} if it does)")
    return None

