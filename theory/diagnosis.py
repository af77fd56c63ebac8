"""Say what a failure means: re-run a failing claim under alternative conventions.

A claim that fails on code following another documented convention is not a
bug report but a missing declaration. :func:`diagnose` re-runs the whole
failing claim, with the same profile and seed, once for each single
alternative value of each convention that concerns the callables it uses
(``Option.diagnose`` in ``impl/contract/conventions.py``: causal alignment,
fully masked rows, compute dtype, GQA mapping, sinusoid interleaving, RoPE
pairing). If exactly one alternative passes, that is the diagnosis; if none
or several pass, there is none and the failure stands as a finding.

The status of a diagnosed claim stays ``failed`` and the exit code stays 1:
the target still breaks the contract it declared. The diagnosis only says
which declaration would make it conform.

References
----------
Issue 14, "Say what a failure means: convention diagnosis".
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from transformer_theory.impl.contract.conventions import OPTION_TABLE, option_value

from .claim import Claim, Status
from .subject import Subject

__all__ = ["alternatives", "diagnose"]

#: Values tried for options whose other values say the same thing to the claims.
_TRIED: dict[str, tuple[str, ...]] = {"compute_dtype": ("input", "float32"),
                                      # 'square' passes wherever either alignment does
                                      "causal_alignment": ("top-left", "bottom-right")}


def alternatives(claim: Claim, subject: Subject) -> Iterator[tuple[str, Any, Subject]]:
    """Each single-option alternative declaration: (option, value, re-declared subject).

    Only conventions concerning a callable the claim needs (and the subject
    has) are varied; a per-callable option is changed for those callables
    alone, the others keep their declaration.
    """
    declared = subject.declared()
    used = [n for n in claim.needs if n in declared.callables]
    for name, option in OPTION_TABLE.items():
        if not option.diagnose:
            continue
        concerned = [n for n in used if not option.concerns or n in option.concerns]
        if not concerned:
            continue
        current = {n: option_value(declared.options, name, n) for n in concerned}
        for value in _TRIED.get(name, option.values or ()):
            if all(v == value for v in current.values()):
                continue
            if option.per_callable:
                existing = declared.options.get(name)
                mapping = dict(existing) if isinstance(existing, Mapping) else (
                    {n: existing for n in declared.callables} if existing is not None else {})
                mapping.update({n: value for n in concerned})
                new_value: Any = mapping
            else:
                new_value = value
            yield name, value, declared.with_options(**{name: new_value})


def diagnose(claim: Claim, subject: Subject, *, profile, seed: int) -> dict | None:
    """``{"option": ..., "value": ...}`` when exactly one alternative passes, else None.

    Parameters
    ----------
    claim : Claim
        A claim that failed on ``subject``.
    subject : Subject
        Declared or conformed.
    profile, seed
        Those of the failing run (the whole claim is re-run with them).
    """
    from .runner import run_claim

    passing = []
    for name, value, alternative in alternatives(claim, subject):
        result = run_claim(claim, alternative, profile=profile, seed=seed)
        if result.status is Status.PASSED:
            passing.append({"option": name, "value": value})
            if len(passing) > 1:
                return None
    return passing[0] if passing else None
