"""Deliberately broken implementations, one or more per claim.

Every claim must be able to fail: ``test_mutants.py`` builds each mutant from
the reference subject, runs the claims it names, and asserts that each one is
rejected (status ``failed``, not ``error``). ``test_every_claim_has_a_mutant``
asserts that no claim in the registry is without one.

Each topic module defines ``MUTANTS: list[Mutant]``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
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
    """

    name: str
    description: str
    claims: tuple[str, ...]
    build: Callable[[Subject], Subject]


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
