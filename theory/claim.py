"""The vocabulary of the suite: Source, Kind, Status, Evidence and Claim.

A **claim** is one checkable statement from the literature. Its ``check``
takes a subject (the implementation under test) and a run context and returns
:class:`Evidence` rather than only asserting, so the same check feeds pytest,
``transformer-theory verify``, the report and ``check``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from .runner import Context
    from .subject import Subject


class Kind(str, enum.Enum):
    """How a claim is checked (DESIGN.md, "The three ideas")."""

    PROPERTY = "property"          # for all inputs from a Hypothesis strategy
    STATISTICAL = "statistical"    # Monte Carlo, fixed seed, stated false-failure probability
    SYMBOLIC = "symbolic"          # a sympy derivation that simplifies to the identity
    CONSTRUCTION = "construction"  # explicit weights checked against a direct simulator
    LIMITATION = "limitation"      # a deterministic counterexample where a statement stops holding

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


class Status(str, enum.Enum):
    """Outcome of running one claim against one subject."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


@dataclass(frozen=True)
class Source:
    """A citation: the paper (or lecture note) and where in it the statement is.

    Parameters
    ----------
    authors : str
        Short author-year form, e.g. ``"Vaswani et al. 2017"``.
    title : str
        Title of the paper or note.
    locator : str
        Section, theorem, lemma or equation, e.g. ``"§3.5"``.
    seed : str, optional
        The lecture note the idea comes from, e.g. ``"003"`` for
        ``shared/seeds/003_*.txt``.
    """

    authors: str
    title: str
    locator: str = ""
    seed: str | None = None

    def at(self, locator: str) -> "Source":
        """The same work, another place in it."""
        return replace(self, locator=locator)

    def __str__(self) -> str:
        text = ", ".join(part for part in (self.authors, self.title) if part)
        if self.locator:
            text += f", {self.locator}"
        return text

    def to_json(self) -> dict:
        return {"authors": self.authors, "title": self.title,
                "locator": self.locator, "seed": self.seed}


def seed_note(number: str, what: str = "") -> Source:
    """A lecture note of ``shared/seeds/`` as a source."""
    titles = {
        "000": "Lecture 23: Transformers (seed 000)",
        "001": "Transformers, notes by Houjun Liu (seed 001)",
        "002": "Transformers: attention block, residuals, LayerNorm, Performers (seed 002)",
        "003": "Transformers Part 1, Lecture 17, Subir Varma (seed 003)",
        "004": "RNNs, attention and transformers (seed 004)",
    }
    return Source(authors="Lecture notes", title=titles.get(number, f"seed {number}"),
                  locator=what, seed=number)


@dataclass
class Evidence:
    """What a check found.

    Parameters
    ----------
    passed : bool
        Whether the claim held on everything tried.
    cases : int
        Number of inputs tried (Hypothesis examples, Monte Carlo repetitions,
        exhaustively enumerated strings, ...).
    max_error : float, optional
        The largest error seen, in the units of ``tolerance``.
    tolerance : float, optional
        The tolerance ``max_error`` was held to.
    tolerance_reason : str, optional
        The policy's one-line reason for that tolerance.
    detail : str
        One or two sentences a person reads in the report.
    falsifying_example : dict, optional
        The (shrunk) input on which the claim failed.
    statistics : dict, optional
        For statistical claims: ``estimate``, ``interval``, ``analytic``,
        ``false_failure_probability``, ``samples`` and the method.
    figure : dict, optional
        Data for a figure in the report.
    error_ratio : float, optional
        For a half-precision run: the largest ``err_subject / (err_baseline +
        (c/k) eps)`` over the cases, the ratio the error-ratio rule bounds by
        ``k`` (``tolerance.ratio_tolerance``): ``err_subject / err_baseline``
        wherever the baseline's error is more than a rounding step.
    partial : tuple, optional
        Only from one shard of a pooled Monte Carlo claim (``Claim.pool``):
        ``(context, draws)``, the unsharded :class:`~.runner.Context` and this
        shard's draws, a dict of arrays; ``runner.merge_shards`` concatenates the
        shards' draws and hands them to ``Claim.pool``, which gives the evidence.
        Never in the JSON.
    """

    passed: bool
    cases: int = 0
    max_error: float | None = None
    tolerance: float | None = None
    tolerance_reason: str | None = None
    detail: str = ""
    falsifying_example: dict | None = None
    statistics: dict | None = None
    figure: dict | None = None
    error_ratio: float | None = None
    partial: tuple | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "cases": self.cases,
            "max_error": json_float(self.max_error),
            "tolerance": json_float(self.tolerance),
            "tolerance_reason": self.tolerance_reason,
            "detail": self.detail,
            "falsifying_example": self.falsifying_example,
            "statistics": jsonable(self.statistics),
            "error_ratio": json_float(self.error_ratio),
        }


CheckFn = Callable[["Subject", "Context"], Evidence]

#: The dtypes every claim runs at.
FULL_DTYPES = ("float64", "float32")
#: The half-precision dtypes a claim may also run at.
HALF_DTYPES = ("float16", "bfloat16")
#: Contract callables with a naive half-precision baseline (``theory/rounding_baseline.py``;
#: a test keeps the two lists equal). A property claim that needs and uses only these runs
#: in float16 and bfloat16 too, held to the error-ratio rule.
HALF_CALLABLES = frozenset({
    "softmax", "attention", "attention_weights", "multi_head_attention",
    "grouped_query_attention", "decode_step", "init_kv_cache", "layer_norm", "rms_norm", "feed_forward", "gated_feed_forward",
    "rope", "alibi_bias", "attention_backward", "online_merge"})


@dataclass(frozen=True)
class Claim:
    """One checkable statement.

    Parameters
    ----------
    id : str
        Stable dotted id, ``topic.name`` (e.g. ``attention.permutation_equivariance``).
    title : str
        One line.
    statement : str
        The statement in LaTeX (rendered as math by the report).
    sources : tuple of Source
        The papers and the seed note it rests on.
    kind : Kind
    needs : tuple of str
        The subject callables the check uses; a subject lacking one gets
        ``not_applicable``.
    check : callable
        ``check(subject, context) -> Evidence``.
    proof : str, optional
        Id of the ``proofs/`` derivation behind the claim.
    notes : str
        Anything a reader should know (conventions, what the check does).
    uses : tuple of str
        Construction callables the check takes from the subject when it has
        them and from the reference otherwise (``theory.subject.construction``):
        they never make the claim not applicable, but ``check`` runs the claim
        for a target that provides one.
    keywords : tuple of (str, str)
        Optional contract keywords the check passes, as (callable, keyword)
        pairs, e.g. ``(("attention", "bias"),)``: a subject whose callable does
        not take one gets ``not_applicable`` (``theory/capabilities.py``).
    full_precision_only : str
        Why the claim has no meaning in float16 and bfloat16 although its
        callables have a half-precision baseline ('' if it has one).
    shards : callable, optional
        ``shards(profile) -> int``: a heavy claim's run splits into that many
        shards (``Context.shard``), each an independent task for ``--jobs`` and
        Dask, merged by ``runner.merge_shards``. None: one run.
    pool : callable, optional
        For a Monte Carlo claim whose draws are sharded: ``pool(context, draws)
        -> Evidence``, the tests on the draws of all shards, concatenated in
        shard order (``statistics.pooled_draws``). Without it the shards' results
        are merged as they are (counts add up, the lowest failing shard leads).
    """

    id: str
    title: str
    statement: str
    sources: tuple[Source, ...]
    kind: Kind
    needs: tuple[str, ...]
    check: CheckFn = field(repr=False, compare=False)
    proof: str | None = None
    notes: str = ""
    keywords: tuple[tuple[str, str], ...] = ()
    uses: tuple[str, ...] = ()
    full_precision_only: str = ""
    shards: Callable[[Any], int] | None = field(default=None, repr=False, compare=False)
    pool: Callable[[Any, dict], Evidence] | None = field(default=None, repr=False, compare=False)

    def shard_count(self, profile) -> int:
        """How many shards a run of this claim splits into under ``profile`` (1: none)."""
        return 1 if self.shards is None else max(1, int(self.shards(profile)))

    @property
    def topic(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def half_precision_note(self) -> str:
        """Why the claim does not run in float16/bfloat16, or '' if it does."""
        if self.full_precision_only:
            return self.full_precision_only
        if self.kind is not Kind.PROPERTY:
            return (f"a {self.kind.value} claim: its evidence is not an error against a "
                    f"float64 oracle, so the error-ratio rule has nothing to compare")
        missing = sorted(set(self.needs + self.uses) - HALF_CALLABLES)
        if missing:
            return f"{', '.join(missing)} has no half-precision baseline"
        if not (self.needs or self.uses):
            return "checks no implementation"
        return ""

    @property
    def dtypes(self) -> tuple[str, ...]:
        """The dtypes the claim runs at: float64, float32 and, where meaningful, the halves."""
        return FULL_DTYPES + (() if self.half_precision_note else HALF_DTYPES)

    def applicable_to(self, subject: "Subject") -> bool:
        return subject.has(*self.needs)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind.value,
            "statement": self.statement,
            "sources": [str(s) for s in self.sources],
            "needs": list(self.needs),
            "proof": self.proof,
            "dtypes": list(self.dtypes),
            "half_precision": self.half_precision_note or "error-ratio rule",
        }


def json_float(x: float | None):
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def jsonable(obj: Any):
    """Convert numpy scalars/arrays and tuples in nested data to JSON types."""
    import numpy as np

    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return json_float(obj)
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return str(obj)

