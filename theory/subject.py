"""Subjects: the implementations claims are checked against.

A subject is a name plus callables that follow the numpy contract of
DESIGN.md (arrays in, arrays out), plus options for conventions that differ
legitimately between implementations. A subject need not have every callable:
claims whose ``needs`` it lacks are ``not_applicable``.

The callable names are the vocabulary of the contract; :data:`CALLABLES`
documents each one, and ``transformer-theory list`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from transformer_theory.impl.contract.callables import CALLABLES  # noqa: E402  (re-exported)
from transformer_theory.impl.contract.conventions import (  # noqa: E402  (re-exported)
    CONTRACT_CONVENTIONS, OPTION_TABLE, OPTIONS, option_value, validate_options)


def convention(subject: "Subject", name: str, callable_name: str | None = None) -> Any:
    """The convention ``name`` a subject declares (for ``callable_name``), else the contract's.

    An option may be one value for the whole subject or a mapping from
    callable name to value (``{"attention": "zeros", "softmax": "nan"}``);
    callables the mapping does not list follow the contract.
    """
    return option_value(subject.options, name, callable_name)


def construction(subject: "Subject", name: str, default: Callable) -> Callable:
    """The subject's own construction callable ``name``, else ``default`` (the reference's).

    Constructions (the online-softmax merge, FlashAttention's tiling, the Dyck
    and Turing weight builders, ...; the last group of :data:`CALLABLES`) are
    the suite's own algorithms, checked against direct simulators while they
    run on a subject's attention and feed-forward callables. A subject may
    bring its own (the reference lists them; the mutants in ``tests/mutants``
    bring deliberately broken ones); a subject that brings none is checked
    with the reference's, so a construction never makes a claim
    ``not_applicable``.
    """
    return subject.callables.get(name, default)


@dataclass(frozen=True)
class Subject:
    """An implementation under test.

    Parameters
    ----------
    name : str
        Shown in results (``reference``, ``fast``, ``torch``, ...).
    callables : mapping of str to callable
        Keys from :data:`CALLABLES` (others are allowed and ignored by claims).
    options : mapping
        What the implementation declares (:data:`OPTIONS`: conventions,
        precision, interface, capabilities). Validated: an unknown key or a
        value outside an option's set raises ``ValueError``.
    description : str
    native : Subject, optional
        Set on the contract view made by ``theory.conventions.conform``: the
        subject as declared, before its options were honoured.
    """

    name: str
    callables: Mapping[str, Callable] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    native: "Subject | None" = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "callables", MappingProxyType(dict(self.callables)))
        object.__setattr__(self, "options",
                           MappingProxyType(validate_options(dict(self.options))))

    def has(self, *names: str) -> bool:
        return all(n in self.callables for n in names)

    def __getattr__(self, name: str) -> Callable:
        # Attribute access for callables: subject.attention(q, k, v).
        callables = object.__getattribute__(self, "callables")
        try:
            return callables[name]
        except KeyError:
            raise AttributeError(
                f"subject {object.__getattribute__(self, 'name')!r} has no callable {name!r}") from None

    def declared(self) -> "Subject":
        """The subject as declared (itself unless it is a contract view)."""
        return self.native if self.native is not None else self

    def replace(self, name: str | None = None, **callables: Callable) -> "Subject":
        """A copy with some callables replaced (how the tests build mutants).

        The copy is of the declared subject: a contract view is re-made by the runner.
        """
        base = self.declared()
        merged = dict(base.callables)
        merged.update(callables)
        return Subject(name or base.name, merged, base.options, base.description)

    def with_options(self, **options: Any) -> "Subject":
        """A copy of the declared subject with some options declared differently."""
        base = self.declared()
        return Subject(base.name, base.callables, {**base.options, **options}, base.description)

    def without(self, *names: str) -> "Subject":
        """A copy lacking some callables."""
        base = self.declared()
        kept = {k: v for k, v in base.callables.items() if k not in names}
        return Subject(base.name, kept, base.options, base.description)
