"""The one list of claims.

Each topic module in ``theory/claims/`` owns a :class:`ClaimSet` named
``claims`` and adds to it with the :meth:`ClaimSet.claim` decorator. The
registry imports the topic modules listed in :data:`TOPIC_MODULES` and
concatenates their sets; nothing is registered by side effect elsewhere, so
what the registry holds is exactly what those modules define.

pytest parametrizes over :func:`all_claims`, ``verify`` and the report run
them, ``check`` runs those a subject can answer: adding a claim to a topic
module makes it appear in all of them.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import re
from functools import lru_cache, partial
from typing import Callable, Iterable

from .claim import Claim, CheckFn, Kind, Source
from .statistics import pooled_draws as pooled

#: Topic modules, in report order.
TOPIC_MODULES: tuple[str, ...] = (
    "attention",
    "masking",
    "decoding",
    "heads",
    "permutation",
    "positional",
    "normalization",
    "layers",
    "counting",
    "performer",
    "dyck",
    "turing",
    "parity",
    "convolution",
    "recurrence",
    "online_softmax",
    "ode",
    "gradients",
    "depth",
    "lipschitz",
    "precision",
    "conformance",
    "contract",
    "proof",
)


class ClaimSet:
    """The claims of one topic module, in definition order."""

    def __init__(self, topic: str):
        self.topic = topic
        self._claims: list[Claim] = []

    def claim(self, id: str, *, sources: Iterable[Source], kind: Kind, needs: Iterable[str],
              proof: str | None = None,
              keywords: Iterable[tuple[str, str]] = (),
              uses: Iterable[str] = (),
              full_precision_only: str = "",
              shards: Callable | None = None,
              pool: Callable | None = None) -> Callable[[CheckFn], CheckFn]:
        """Decorator registering ``check(subject, ctx) -> Evidence`` as a claim.

        The claim's prose is the check's docstring (:func:`claim_text`): its
        first paragraph is the title, a ``.. math::`` paragraph after it the
        statement, every further paragraph the notes. A claim written by a
        program (``claims/proof.py``) passes a :class:`Claim` to :meth:`add`.

        With ``pool=decide`` the decorated function is a pooled Monte Carlo claim's
        ``draw(subject, ctx) -> dict`` of arrays instead, and its check is
        ``statistics.pooled_draws(subject, ctx, draw, decide)``: the draws may then be
        cut into ``shards`` and are tested together (``runner.pool_shards``).
        """
        if not id.startswith(self.topic + "."):
            raise ValueError(f"id: claim {id!r} must start with its topic {self.topic + '.'!r}")

        def decorate(check: CheckFn) -> CheckFn:
            title, statement, notes = claim_text(check.__doc__)
            if not title:
                raise ValueError(f"{check.__name__}: claim {id!r} has no title: the first "
                                 "paragraph of its docstring is the title")
            run = check if pool is None else partial(pooled, draw=check, decide=pool)
            self.add(Claim(id=id, title=title, statement=statement, sources=tuple(sources),
                           kind=Kind(kind), needs=tuple(needs), check=run, proof=proof,
                           notes=notes,
                           keywords=tuple(tuple(k) for k in keywords),
                           uses=tuple(uses), full_precision_only=full_precision_only,
                           shards=shards, pool=pool))
            return check

        return decorate

    def add(self, claim: Claim) -> None:
        if any(c.id == claim.id for c in self._claims):
            raise ValueError(f"id: duplicate claim id {claim.id!r}")
        self._claims.append(claim)

    def __iter__(self):
        return iter(self._claims)

    def __len__(self) -> int:
        return len(self._claims)


MATH = ".. math::"


def claim_text(doc: str | None) -> tuple[str, str, str]:
    """A check's docstring read as a claim's ``(title, statement, notes)``.

    The docstring is cleaned (:func:`inspect.cleandoc`) and cut into paragraphs
    at blank lines; the lines of a paragraph are joined with single spaces:

    - the first paragraph is the title;
    - a second paragraph that starts with ``.. math::`` is the statement in
      LaTeX, from after the directive to the paragraph's end ('' if there is
      none); this is the reStructuredText math directive, so Sphinx and
      ``help()`` show the statement as the report does;
    - every further paragraph is a paragraph of the notes, joined by one blank
      line.

    Parameters
    ----------
    doc : str or None
        The docstring (``check.__doc__``); None or blank gives ``('', '', '')``.

    Returns
    -------
    tuple of str
        ``(title, statement, notes)``.

    Examples
    --------
    >>> claim_text('''A fully masked row returns zeros
    ...
    ... .. math:: M_{i\\cdot}=0
    ...    \\Rightarrow o_i=0
    ...
    ... The contract's convention.''')
    ('A fully masked row returns zeros', 'M_{i\\\\cdot}=0 \\\\Rightarrow o_i=0', "The contract's convention.")
    """
    text = inspect.cleandoc(doc or "")
    paragraphs = [" ".join(line.strip() for line in block.splitlines())
                  for block in re.split(r"\n[ \t]*\n", text) if block.strip()]
    if not paragraphs:
        return "", "", ""
    title, rest = paragraphs[0], paragraphs[1:]
    statement = ""
    if rest and rest[0].startswith(MATH):
        statement, rest = rest[0][len(MATH):].strip(), rest[1:]
    return title, statement, "\n\n".join(rest)


@lru_cache(maxsize=None)
def _load() -> tuple[Claim, ...]:
    claims: list[Claim] = []
    seen: set[str] = set()
    for name in TOPIC_MODULES:
        module = importlib.import_module(f"{__package__}.claims.{name}")
        for c in module.claims:
            if c.id in seen:
                raise ValueError(f"duplicate claim id {c.id!r} across topic modules")
            seen.add(c.id)
            claims.append(c)
    return tuple(claims)


def all_claims() -> list[Claim]:
    """Every registered claim, in report order."""
    return list(_load())


def get(claim_id: str) -> Claim:
    """The claim with this id (``KeyError`` naming close matches otherwise)."""
    for c in _load():
        if c.id == claim_id:
            return c
    close = [c.id for c in _load() if claim_id.split(".")[-1] in c.id]
    raise KeyError(f"no claim {claim_id!r}" + (f"; did you mean {close[:5]}?" if close else ""))


def find(pattern: str | None = None, *, kind: Kind | str | None = None,
         topic: str | None = None, needs: str | None = None) -> list[Claim]:
    """Claims by id glob, kind, topic, or a callable they need.

    Raises
    ------
    ValueError
        If one of the comma-separated globs of ``pattern`` matches no claim id (a
        misspelt id would otherwise select nothing, silently).
    """
    if pattern:
        ids = [c.id for c in _load()]
        for p in (p.strip() for p in pattern.split(",")):
            if p and not any(fnmatch.fnmatchcase(i, p) for i in ids):
                raise ValueError(f"pattern: no claim id matches {p!r}")
    out = []
    for c in _load():
        if pattern and not any(fnmatch.fnmatchcase(c.id, p.strip()) for p in pattern.split(",")):
            continue
        if kind is not None and c.kind != Kind(kind):
            continue
        if topic is not None and c.topic != topic:
            continue
        if needs is not None and needs not in c.needs:
            continue
        out.append(c)
    return out
