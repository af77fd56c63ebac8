"""The one catalogue of deliberately broken implementations, one or more per claim.

Every claim must be able to fail: ``test_mutants.py`` builds each mutant from
the reference subject, runs the claims it names, and asserts that each one is
rejected (status ``failed``, not ``error``). ``test_every_claim_has_a_mutant``
asserts that no claim in the registry is without one.

Some mutants are also exercised the way a user would meet them: a ``target``
(``"mutants.attention:missing_scale"``) loaded with ``load_subject(target,
as_kind=..., options=...)`` and run through ``check`` on the claim globs
``check_claims``. ``tests/test_conformance.py`` asserts that ``check`` rejects
every one of these (kill rate 100%) and that the undeclared conventions among them
carry their diagnosis.

Each topic module defines ``MUTANTS: list[Mutant]``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from transformer_theory.theory.subject import Subject

from transformer_theory.theory.registry import TOPIC_MODULES  # one list of topics


@dataclass(frozen=True)
class Mutant:
    """A broken variant of the reference.

    Attributes
    ----------
    name : str
        Short id, used as the pytest id.
    description : str
        The bug, as it appears in real code where it does.
    claims : tuple of str
        Claim ids that must reject it.
    build : callable
        ``build(reference_subject) -> Subject`` with the broken callable(s).
    target : str or None
        ``module:object`` for :func:`~transformer_theory.theory.conformance.load_subject`
        when the mutant is also checked through the user path (None otherwise).
    as_kind : str or None
        What the target is (None for a mapping or a subject object).
    check_claims : str
        The claim globs ``check`` runs on the target.
    options : dict
        Subject options of the target (conventions, the width of a sequence map).
    """

    name: str
    description: str
    claims: tuple[str, ...]
    build: Callable[[Subject], Subject]
    target: str | None = None
    as_kind: str | None = None
    check_claims: str = ""
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if (self.target is None) != (not self.check_claims):
            raise ValueError(f"mutant {self.name!r}: target and check_claims go together")


def replacing(options: dict | None = None, **callables: Callable) -> Callable[[Subject], Subject]:
    """A ``build`` that swaps some of the reference's callables (and declares ``options``)."""
    def build(ref: Subject) -> Subject:
        out = ref.replace(**callables)
        return out.with_options(**options) if options else out
    return build


def all_mutants() -> list[Mutant]:
    out = []
    for name in TOPIC_MODULES:
        try:
            module = importlib.import_module(f"mutants.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mutants.{name}":
                continue
            raise
        out.extend(module.MUTANTS)
    names = [m.name for m in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"duplicate mutant names: {sorted(dupes)}")
    return out


def user_path_mutants() -> list[Mutant]:
    """The mutants that ``check`` also runs through ``load_subject`` (those with a target)."""
    return [m for m in all_mutants() if m.target is not None]
