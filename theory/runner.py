"""The one execution path: run claims against a subject.

pytest, ``transformer-theory verify``, the report and ``check`` all call
:func:`run_claim`, so a claim means the same thing everywhere.
"""

from __future__ import annotations

import fnmatch
import math
import functools
import time
import traceback
import zlib
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

import numpy as np

from .claim import HALF_DTYPES, Claim, Evidence, Status, json_float
from transformer_theory.impl.contract.conventions import option_value
from transformer_theory.impl.contract.precision import dtype_named

from .capabilities import missing_keyword
from .conventions import conform
from .declared import Declared, NotApplicable, baseline_active, declared_for, exact_active
from .profiles import Profile, get_profile
from .subject import Subject

#: The base seed of a run when none is given.
DEFAULT_SEED = 20170612  # the arXiv date of "Attention Is All You Need"


@dataclass(frozen=True)
class Context:
    """What a check may use besides its subject: the profile and the seed.

    Randomness comes only from :meth:`rng` (statistical and construction
    claims) and from Hypothesis seeded by :meth:`hypothesis_seed` (property
    claims): no global RNG.
    """

    profile: Profile
    seed: int
    claim_id: str = ""
    shard: int = 0          # this run's shard, of ``shards`` (Claim.shards)
    shards: int = 1

    def _derived(self, label: str) -> int:
        return zlib.crc32(f"{self.claim_id}/{label}".encode()) ^ (self.seed & 0xFFFFFFFF)

    def rng(self, label: str = "") -> np.random.Generator:
        """A generator seeded from (run seed, claim id, label), and the shard if sharded.

        Shard ``i`` of ``n > 1`` draws from ``label + "#shard i/n"``, so that one shard
        re-runs alone (``run_claim(..., shard=(i, n))``) with the numbers it had.
        """
        if self.shards > 1:
            label = f"{label}#shard {self.shard}/{self.shards}"
        return np.random.default_rng([self.seed & 0xFFFFFFFF, self._derived(label)])

    def shard_range(self, n: int) -> range:
        """This shard's contiguous part of ``range(n)`` (all of it when not sharded).

        Shard ``i`` of ``s`` gets ``[i n // s, (i + 1) n // s)``: in order, so that the
        lowest failing shard holds the first failure in the items' order.
        """
        return range(self.shard * n // self.shards, (self.shard + 1) * n // self.shards)

    def whole(self) -> "Context":
        """This run's context unsharded: what every shard of it must draw alike (a
        pooled claim's test point, say) comes from ``ctx.whole().rng(label)``."""
        return replace(self, shard=0, shards=1)

    def hypothesis_seed(self) -> int:
        return self._derived("hypothesis")


@dataclass
class Result:
    """One claim run against one subject."""

    claim: Claim
    subject: str
    status: Status
    evidence: Evidence | None
    seconds: float
    error: str | None = None
    reason: str | None = None
    dtype: str | None = None          # a half-precision run's dtype; None for the usual run

    @property
    def id(self) -> str:
        return self.claim.id

    def detail(self) -> str:
        if self.status is Status.NOT_APPLICABLE:
            return self.reason or "subject lacks: " + ", ".join(self.claim.needs)
        if self.status is Status.ERROR:
            return self.error or "error"
        return self.evidence.detail if self.evidence else ""

    def to_json(self) -> dict:
        """The stable ``verify --json`` record (README, "Machine-readable output")."""
        ev = self.evidence
        return {
            "id": self.claim.id,
            "dtype": self.dtype,
            "status": self.status.value,
            "cases": ev.cases if ev else 0,
            "max_error": json_float(ev.max_error) if ev else None,
            "tolerance": json_float(ev.tolerance) if ev else None,
            "detail": self.detail(),
            "seconds": round(self.seconds, 4),
        }

    def to_full_json(self) -> dict:
        record = self.to_json()
        record.update({
            "kind": self.claim.kind.value,
            "subject": self.subject,
            "evidence": self.evidence.to_json() if self.evidence else None,
        })
        return record

    @property
    def label(self) -> str:
        """The claim id, with the dtype of a half-precision run: ``attention.x[float16]``."""
        return self.claim.id if self.dtype is None else f"{self.claim.id}[{self.dtype}]"


def half_runs(claim: Claim, subject: Subject) -> list[str]:
    """The half dtypes ``claim`` runs at for ``subject``: those both declare."""
    declared = subject.options.get("dtypes") or ()
    return [d for d in HALF_DTYPES if d in claim.dtypes and d in declared]


def declarations(subject: Subject, claim: Claim, half: str | None = None) -> Declared:
    """What ``subject`` declares that concerns ``claim``'s run (``theory/declared.py``)."""
    options = subject.options
    dtypes = options.get("dtypes")
    order = (np.dtype(np.float64), np.dtype(np.float32))
    allowed = tuple(d for d in order if dtypes is None or d.name in dtypes) or order
    compute = {name: option_value(options, "compute_dtype", name) for name in claim.needs}
    lowered = sorted(n for n, v in compute.items() if v not in (None, "input"))
    return Declared(
        dtypes=allowed,
        value_dim_equal=option_value(options, "value_dim") == "equal",
        self_attention_only=(options.get("origin") or {}).get("as") == "gqa_self",
        precision=np.dtype(np.float32) if lowered else None,
        precision_reason=(f"declared compute_dtype={compute[lowered[0]]} for "
                          f"{', '.join(lowered)}") if lowered else "",
        half=None if half is None else dtype_named(half))


def _with_baseline(view: Subject, uses: tuple[str, ...]) -> Subject:
    """``view`` whose callables run the naive half-precision baseline inside ``baseline_run``,
    and the exact float64 baseline (``theory/exact_baseline.py``) inside ``exact_run``."""
    from .exact_baseline import exact
    from .rounding_baseline import BASELINES, runs_in_half

    reference = _reference_callables()

    def switch(name, fn):
        naive = BASELINES[name]
        perfect = exact(reference[name])

        @functools.wraps(fn)
        def switched(*args, **kwargs):
            if exact_active() and runs_in_half(args, kwargs):
                return perfect(*args, **kwargs)
            if baseline_active() and runs_in_half(args, kwargs):
                return naive(*args, **kwargs)
            return fn(*args, **kwargs)
        return switched

    callables = {name: switch(name, fn) if name in BASELINES else fn
                 for name, fn in view.callables.items()}
    for name in uses:                            # constructions the subject does not bring
        callables.setdefault(name, switch(name, reference[name]))
    return Subject(view.name, callables, view.options, view.description, native=view.native)


def _reference_callables() -> dict[str, Callable]:
    from .builtin_subjects import reference_subject
    return reference_subject().callables


def run_claim(claim: Claim, subject: Subject, *, profile: str | Profile | None = None,
              seed: int = DEFAULT_SEED, dtype: str | None = None,
              shard: tuple[int, int] | None = None) -> Result:
    """Run one claim against one subject and never raise.

    The claim sees the contract view of the subject (``conventions.conform``):
    every declared convention honoured, tolerances following the declared
    precision, strategies drawing the declared dtypes. A check that raises is
    reported as ``error`` with its traceback's last line; a subject lacking a
    needed callable, an optional keyword the claim passes, or a declared
    capability the claim needs gives ``not_applicable`` with the reason.

    ``dtype`` ('float16' or 'bfloat16') runs the claim in that dtype, every
    comparison held to the error-ratio rule (``tolerance.ratio_tolerance``):
    ``not_applicable`` if the claim has no meaning there or the subject
    does not declare the dtype.

    ``shard=(i, n)`` runs shard ``i`` of ``n`` of a sharded claim (``Claim.shards``):
    its part of the work, merged with the others by :func:`merge_shards`. Without it
    a sharded claim runs every shard here, one after the other.
    """
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    n = claim.shard_count(prof)
    if shard is None and n > 1:
        return merge_shards([run_claim(claim, subject, profile=prof, seed=seed, dtype=dtype,
                                       shard=(i, n)) for i in range(n)])

    def result(status, evidence=None, seconds=0.0, **kw):
        return Result(claim, subject.name, status, evidence, seconds, dtype=dtype, **kw)

    if not claim.applicable_to(subject):
        return result(Status.NOT_APPLICABLE)
    missing = missing_keyword(subject, claim.keywords)
    if missing:
        return result(Status.NOT_APPLICABLE, reason=missing)
    if dtype is not None and dtype not in half_runs(claim, subject):
        why = (f"{claim.id} does not run in {dtype}: {claim.half_precision_note}"
               if dtype not in claim.dtypes else
               f"{subject.name} does not declare {dtype} (option dtypes)")
        return result(Status.NOT_APPLICABLE, reason=why)
    view = conform(subject)
    if dtype is not None:
        view = _with_baseline(view, claim.uses)
    index, count = shard if shard is not None else (0, 1)
    ctx = Context(prof, int(seed), claim.id, int(index), int(count))
    start = time.perf_counter()
    try:
        with np.errstate(all="ignore"), \
                declared_for(declarations(view, claim, dtype)) as declared:
            evidence = claim.check(view, ctx)
    except NotApplicable as exc:
        return result(Status.NOT_APPLICABLE, None, time.perf_counter() - start,
                      reason=str(exc.args[0] if exc.args else exc))
    except Exception as exc:  # the check itself broke: report, do not stop the run
        tb = traceback.format_exc(limit=-3)
        return result(Status.ERROR, None, time.perf_counter() - start,
                      error=f"{type(exc).__name__}: {exc}\n{tb}")
    seconds = time.perf_counter() - start
    if not isinstance(evidence, Evidence):
        return result(Status.ERROR, None, seconds,
                      error=f"check returned {type(evidence).__name__}, not Evidence")
    if dtype is not None and not declared.seen.get("half_inputs"):
        return result(Status.ERROR, None, seconds,
                      error=f"{claim.id} ran in {dtype} but passed no {dtype} array to "
                            f"{subject.name}: its cases fix their dtype (mark the claim "
                            f"full_precision_only with the reason)")
    note = declared.summary()
    if note and note not in evidence.detail:
        evidence.detail = f"{evidence.detail} {note}".strip()
    status = Status.PASSED if evidence.passed else Status.FAILED
    return result(status, evidence, seconds)


def merge_shards(results: Sequence[Result]) -> Result:
    """One result from the shards of a claim run, the same for any number of workers.

    A pooled Monte Carlo claim (``Claim.pool``) has its shards' draws concatenated in
    shard order and tested once, by :func:`pool_shards`. Otherwise: counts add up; the
    run passed if every shard passed; an error is the first shard's that errored; the
    falsifying example and detail are those of the lowest shard that failed, else of
    the last shard (a claim runs its parts that are not sharded, such
    as Hypothesis cases, in its last shard, after the sharded ones, so that the lowest
    failing shard holds the failure an unsharded run meets first); the worst
    ``max_error`` (and error ratio) is the maximum over the shards, with the tolerance
    it was held to.
    """
    results = list(results)
    first = results[0]
    seconds = sum(r.seconds for r in results)
    errors = [r for r in results if r.status is Status.ERROR]
    if errors:
        return Result(first.claim, first.subject, Status.ERROR, None, seconds,
                      error=errors[0].error, dtype=first.dtype)
    if all(r.status is Status.NOT_APPLICABLE for r in results):
        return Result(first.claim, first.subject, Status.NOT_APPLICABLE, None, seconds,
                      reason=first.reason, dtype=first.dtype)
    if first.claim.pool is not None:
        return pool_shards(results)
    evs = [r.evidence for r in results if r.evidence is not None]
    failed = [r for r in results if r.status is Status.FAILED]
    lead = (failed[0] if failed else results[-1]).evidence or evs[-1]
    scored = [e for e in evs if e.max_error is not None]
    worst = max(scored, key=lambda e: (e.max_error / e.tolerance if e.tolerance
                                       else (0.0 if e.max_error == 0 else math.inf)),
                default=None)
    ratios = [e.error_ratio for e in evs if e.error_ratio is not None]
    evidence = Evidence(
        passed=not failed, cases=sum(e.cases for e in evs),
        max_error=None if worst is None else worst.max_error,
        tolerance=None if worst is None else worst.tolerance,
        tolerance_reason=(worst or lead).tolerance_reason, detail=lead.detail,
        falsifying_example=lead.falsifying_example, statistics=lead.statistics,
        figure=lead.figure, error_ratio=max(ratios) if ratios else None)
    return Result(first.claim, first.subject, Status.FAILED if failed else Status.PASSED,
                  evidence, seconds, dtype=first.dtype)


def pool_shards(results: Sequence[Result]) -> Result:
    """The result of a pooled claim from its shards' draws (``Evidence.partial``).

    The draws of every shard, concatenated in shard order, go to ``Claim.pool`` with the
    run's unsharded context: one test on all of them, as an unsharded run makes, so the
    claim's false-failure probability and power are those it states. A pool that raises
    gives ``error``, as a check that raises does.
    """
    first = results[0]
    seconds = sum(r.seconds for r in results)
    parts = [r.evidence.partial for r in results]
    context = parts[0][0]
    draws = {key: np.concatenate([p[1][key] for p in parts]) for key in parts[0][1]}
    start = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            evidence = first.claim.pool(context, draws)
    except Exception as exc:  # the tests themselves broke: report, do not stop the run
        tb = traceback.format_exc(limit=-3)
        return Result(first.claim, first.subject, Status.ERROR, None,
                      seconds + time.perf_counter() - start,
                      error=f"{type(exc).__name__}: {exc}\n{tb}", dtype=first.dtype)
    return Result(first.claim, first.subject,
                  Status.PASSED if evidence.passed else Status.FAILED, evidence,
                  seconds + time.perf_counter() - start, dtype=first.dtype)


def select(claims: Iterable[Claim], patterns: str | Sequence[str] | None) -> list[Claim]:
    """Claims whose id matches any of the glob ``patterns`` (comma-separated allowed)."""
    claims = list(claims)
    if not patterns:
        return claims
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    return [c for c in claims if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]


def run_claims(claims: Iterable[Claim], subject: Subject, *, profile=None,
               seed: int = DEFAULT_SEED,
               progress: Callable[[int, int, Result], None] | None = None,
               pool=None) -> list[Result]:
    """Run many claims in order; ``progress(i, n, result)`` is called after each.

    Each claim runs once in the usual dtypes, then once per half dtype that
    both the claim and the subject declare (:func:`half_runs`). ``pool``, an
    executor from :func:`theory.executor.executor`, runs them in workers; the
    results are the same and in the same order.
    """
    from .executor import map_runs

    runs = [(claim, d) for claim in claims for d in (None, *half_runs(claim, subject))]
    results = []
    for i, result in enumerate(map_runs(pool, subject, runs, profile=profile, seed=seed), 1):
        results.append(result)
        if progress is not None:
            progress(i, len(runs), result)
    return results
