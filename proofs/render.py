"""Output helpers for derivations: plain text, JSON-ready dicts and a LaTeX document.

The CLI (``transformer-theory proofs [--json] [--latex]``) calls these; they only
format what :class:`~transformer_theory.proofs.derivation.Derivation` records.
"""

from __future__ import annotations

import json
from typing import Iterable

from .derivation import Derivation

__all__ = ["format_text", "to_json", "dumps", "to_latex_document", "summary_line"]

_MARK = {"symbolic": "[sym]", "numeric": "[num]", "failed": "[FAIL]", "given": "[def]"}


def _check(derivation) -> Derivation:
    if not isinstance(derivation, Derivation):
        raise TypeError(f"derivation: expected a Derivation, got {type(derivation).__name__}")
    return derivation


def _as_list(derivations) -> list[Derivation]:
    if isinstance(derivations, Derivation):
        return [derivations]
    if isinstance(derivations, (str, bytes)) or not isinstance(derivations, Iterable):
        raise TypeError("derivations: expected an iterable of Derivation, "
                        f"got {type(derivations).__name__}")
    out = list(derivations)
    for i, d in enumerate(out):
        if not isinstance(d, Derivation):
            raise TypeError(f"derivations[{i}]: expected a Derivation, got {type(d).__name__}")
    return out


def summary_line(derivation: Derivation) -> str:
    """One line: id, status, verified, and whether that is what was expected."""
    d = _check(derivation)
    note = "" if d.expect == "holds" else " (limitation: expected to fail)"
    ok = "as expected" if d.as_expected else "UNEXPECTED"
    return f"{d.id}: {d.status}, verified={d.verified}{note} -- {ok}"


def format_text(derivation: Derivation) -> str:
    """Plain text: title, sources, assumptions, each step's LaTeX, justification and status.

    Parameters
    ----------
    derivation : Derivation

    Returns
    -------
    str
        Multi-line text; numeric and failed steps carry their reason.
    """
    d = _check(derivation)
    lines = [f"{d.id} -- {d.title}",
             f"  status: {d.status}   verified: {d.verified}   expect: {d.expect}"]
    if d.claims:
        lines.append(f"  claims: {', '.join(d.claims)}")
    for src in d.sources:
        lines.append(f"  source: {src}")
    for name, text in d.assumptions.items():
        lines.append(f"  assume {name}: {text}")
    for i, s in enumerate(d.steps, 1):
        lines.append(f"  {i:2d}. {_MARK[s.status]:6s} {s.latex()}")
        lines.append(f"             {s.justification}")
        if s.reason:
            lines.append(f"             ({s.reason})")
    r = d.result
    lines.append(f"  =>  {_MARK[r.status]:6s} {r.latex()}")
    lines.append(f"             {r.justification}")
    if r.reason:
        lines.append(f"             ({r.reason})")
    return "\n".join(lines)


def to_json(derivations) -> dict:
    """``{"derivations": [{"id", "title", "status", "verified", "claims", "steps", ...}, ...]}``.

    Parameters
    ----------
    derivations : Derivation or iterable of Derivation

    Returns
    -------
    dict
        JSON-serialisable (``json.dumps`` works on it); each entry is
        :meth:`Derivation.to_dict` (which also carries sources, assumptions,
        expect and the result step).
    """
    return {"derivations": [d.to_dict() for d in _as_list(derivations)]}


def dumps(derivations, **kwargs) -> str:
    """``json.dumps(to_json(derivations))`` (keyword arguments go to ``json.dumps``)."""
    return json.dumps(to_json(derivations), **kwargs)


def to_latex_document(derivations) -> str:
    """A standalone LaTeX document with every derivation's :meth:`Derivation.to_latex`."""
    body = "\n\n".join(d.to_latex() for d in _as_list(derivations))
    return ("\\documentclass{article}\n\\usepackage{amsmath,amssymb}\n"
            "\\begin{document}\n\\section*{Derivations}\n" + body + "\n\\end{document}\n")
