"""One home for the documented contract of a mirrored function: the reference's docstring.

Every public function of the accelerated path mirrors a reference function
with the same contract. Its own docstring says what is accelerated and how;
its ``Parameters``, ``Returns`` and ``Raises`` sections are the reference's,
inserted at import by :func:`same_contract`, so that ``help()`` shows the
whole contract and the two texts cannot drift apart. (Before this, each
mirror kept its own copy of the reference's sections; ten of the twelve
that named their reference had shortened or reworded it, and one had a
sentence the reference lacked.)

References
----------
numpydoc, Style guide (the order of the sections); SciPy's
``scipy._lib.doccer`` (docstrings assembled from shared parts).
"""

from __future__ import annotations

import importlib
import inspect
import re

__all__ = ["CONTRACT_SECTIONS", "same_contract", "docstring_sections"]

#: The sections a mirror takes from its reference, in numpydoc order.
CONTRACT_SECTIONS = ("Parameters", "Returns", "Raises")
#: numpydoc's section order; a contract section goes before the first of the
#: mirror's own sections that follows it here.
_ORDER = ("Parameters", "Returns", "Yields", "Receives", "Other Parameters", "Raises", "Warns",
          "Warnings", "See Also", "Notes", "References", "Examples")


def docstring_sections(doc: str) -> tuple[list[str], dict[str, list[str]]]:
    """Split a numpydoc docstring into its preamble and its sections.

    Parameters
    ----------
    doc : str
        A docstring, indented or not.

    Returns
    -------
    preamble : list of str
        The summary and extended summary lines, dedented.
    sections : dict of str to list of str
        Each section's lines below its underline, dedented, trailing blank
        lines removed, in the order of the docstring.
    """
    lines = inspect.cleandoc(doc).splitlines()
    preamble: list[str] = []
    sections: dict[str, list[str]] = {}
    body = preamble
    i = 0
    while i < len(lines):
        underline = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if lines[i].strip() in _ORDER and underline and set(underline) == {"-"}:
            body = sections.setdefault(lines[i].strip(), [])
            i += 2
            continue
        body.append(lines[i])
        i += 1
    for part in [preamble, *sections.values()]:
        while part and not part[-1].strip():
            part.pop()
    return preamble, sections


def _resolve(dotted: str):
    """The object a dotted path names (its longest importable module prefix, then attributes)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        return obj
    return None


def same_contract(reference):
    """Decorator: give a mirror the contract sections of the reference function it mirrors.

    The decorated function's docstring must name ``reference`` in its summary
    (a ``:func:`` path that resolves to it, as in "Same contract as
    :func:`transformer_theory.impl.sdpa.attention`")
    and must not have sections of :data:`CONTRACT_SECTIONS` of its own: the
    reference's are inserted, each before the first of the mirror's own
    sections that numpydoc places after it.

    Parameters
    ----------
    reference : callable
        The reference function, with a numpydoc docstring.

    Returns
    -------
    callable
        The decorator; it returns the function itself, with a new ``__doc__``.

    Raises
    ------
    ValueError
        At import, if the mirror does not name its reference or documents a
        contract section itself.
    """
    def decorate(func):
        name = f"{reference.__module__}.{reference.__qualname__}"
        preamble, own = docstring_sections(func.__doc__ or "")
        if not any(_resolve(target) is reference
                   for target in re.findall(r":func:`([\w.]+)`", "\n".join(preamble))):
            raise ValueError(f"{func.__qualname__}: its docstring must name its reference {name}")
        repeated = [s for s in CONTRACT_SECTIONS if s in own]
        if repeated:
            raise ValueError(f"{func.__qualname__}: {', '.join(repeated)} come from {name}; "
                             "remove them from the mirror's docstring")
        _, contract = docstring_sections(reference.__doc__ or "")
        merged = dict(own)
        for section in CONTRACT_SECTIONS:
            if section in contract:
                merged[section] = contract[section]
        out = list(preamble)
        for section in sorted(merged, key=_ORDER.index):
            out += ["", section, "-" * len(section), *merged[section]]
        func.__doc__ = "\n".join(out) + "\n"
        return func
    return decorate
