"""Check any implementation against the claims.

The suite is a conformance reference: point it at an attention kernel, a
positional encoding, a LayerNorm, a Performer piece or a whole model, and it
tells which claims the implementation breaks, with the smallest failing input
and a snippet that reproduces it::

    from transformer_theory.theory.conformance import check, load_subject

    subject = load_subject("my_pkg.attn:sdpa", as_kind="attention")
    report = check(subject, claims="attention.*,masking.*", profile="ci")
    for result in report.failures:
        print(result.id, result.example, result.reproduction, sep="\\n")

Subjects
--------
A :class:`Subject` is a name, callables following the numpy contract
(``theory/subject.py``, :data:`CALLABLES`) and options for conventions that
differ legitimately (:data:`OPTIONS`). :func:`load_subject` makes one from

* a built-in name: ``reference``, ``torch``, ``jax`` (and ``fast`` when numba
  is installed);
* ``module:object`` where the object is a :class:`Subject`, a function taking
  no argument that returns one, or a mapping from callable names to callables;
* ``module:callable`` with ``as_kind`` saying what the callable is
  (:data:`KINDS`: ``attention``, ``layer_norm``, ``orthogonal_gaussian``, ...,
  and the whole sequence maps ``encoder`` and ``causal``). A PyTorch
  ``nn.Module`` or a callable on tensors (option ``tensors=torch`` or ``jax``)
  is wrapped to take and return numpy arrays.

A single callable is completed with the reference's other callables, so that
claims needing a helper (the softmax next to an attention kernel, the feature
map next to a random-matrix generator) can run; :func:`check` then runs only
the claims that involve at least one callable the user supplied.

Conventions
-----------
Options such as ``causal_alignment=bottom-right``, ``fully_masked_row=nan``
or ``compute_dtype=float32`` are declared once and honoured by the shared
machinery for every claim (``theory/conventions.py``, ``theory/declared.py``);
a convention is reported as such, never as a failure. When a claim fails,
:func:`check` re-runs it under each single alternative convention that
concerns it (``theory/diagnosis.py``): if exactly one passes, the result
carries ``diagnosis = {"option": ..., "value": ...}``.

This module holds :func:`check` and its results; the loader is
``theory/loader.py``, the claims for whole sequence maps are the registry
topic ``conformance`` (``theory/claims/conformance.py``).

References
----------
DESIGN.md ("Subject", "Contract", "Conformance on real code"); issue 8
("Conformance: check any implementation against the claims"); issue 14.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from transformer_theory.impl.contract.conventions import option_value

from . import registry
from .claim import Claim, Status
from .diagnosis import diagnose
from .loader import KIND_ALIASES, KINDS, TargetError, load_subject, parse_options
from .executor import map_runs
from .runner import DEFAULT_SEED, Result, half_runs, select
from .subject import CALLABLES, OPTION_TABLE, OPTIONS, Subject

__all__ = [
    "Subject",
    "CALLABLES",
    "OPTIONS",
    "KINDS",
    "KIND_ALIASES",
    "TargetError",
    "ConformanceResult",
    "CheckReport",
    "load_subject",
    "parse_options",
    "check",
    "conformance_claims",
    "checkable_claims",
    "applicable_claims",
]


def conformance_claims() -> list[Claim]:
    """The claims of the ``conformance`` topic (sequence maps, LayerNorm definition)."""
    return registry.find(topic="conformance")


def checkable_claims() -> list[Claim]:
    """Every claim ``check`` can run: the registry's."""
    return registry.all_claims()


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------

def declared_conventions(subject: Subject) -> dict[str, Any]:
    """The options ``subject`` declares that differ from the contract's defaults."""
    out = {}
    options = subject.declared().options
    for key, option in OPTION_TABLE.items():
        if option.category == "setting" or key not in options:
            continue
        value, default = options[key], option.default
        if isinstance(value, Mapping) and option.per_callable:
            differing = {k: v for k, v in value.items() if v != default}
            if differing:
                out[key] = differing
        elif value != default and not (isinstance(value, tuple) and isinstance(default, tuple)
                                       and set(value) == set(default)):
            out[key] = ",".join(value) if isinstance(value, tuple) else value
    return out


@dataclass
class ConformanceResult:
    """One claim checked against one subject.

    Attributes
    ----------
    id, title : str
    status : str
        ``passed``, ``failed``, ``error`` or ``not_applicable``.
    detail : str
    seconds : float
    example : dict or None
        The minimal (shrunk) falsifying example: shapes, dtype, seed and the
        values of small arrays.
    reproduction : str or None
        A Python snippet that reproduces the failure (for failed and error).
    conventions : dict
        The subject's non-contract conventions among the callables this
        claim uses (reported, never failures).
    max_error, tolerance : float or None
    cases : int
    diagnosis : dict or None
        For a failed claim: ``{"option": ..., "value": ...}`` when exactly one
        alternative convention makes it pass (``theory/diagnosis.py``), else None.
    declared : str or None
        For a diagnosed claim, what the subject declared for that option.
    """

    id: str
    title: str
    status: str
    detail: str
    seconds: float
    example: dict | None = None
    reproduction: str | None = None
    conventions: dict = field(default_factory=dict)
    max_error: float | None = None
    tolerance: float | None = None
    cases: int = 0
    diagnosis: dict | None = None
    declared: Any = None

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "not_applicable")

    def to_json(self) -> dict:
        from .claim import jsonable

        return jsonable({
            "id": self.id, "title": self.title, "status": self.status, "detail": self.detail,
            "seconds": round(self.seconds, 4), "cases": self.cases, "max_error": self.max_error,
            "tolerance": self.tolerance, "example": self.example,
            "conventions": self.conventions, "reproduction": self.reproduction,
            "diagnosis": self.diagnosis})

    def diagnosis_line(self) -> str | None:
        """The sentence the table prints under a diagnosed failure."""
        if not self.diagnosis:
            return None
        key, value = self.diagnosis["option"], self.diagnosis["value"]
        return (f"diagnosis: fails under {key}={self.declared}; every failing example passes "
                f"under {key}={value}: declare it with --option {key}={value!r}"
                if " " in str(value) else
                f"diagnosis: fails under {key}={self.declared}; every failing example passes "
                f"under {key}={value}: declare it with --option {key}={value}")


@dataclass
class CheckReport:
    """The results of :func:`check`: a list of :class:`ConformanceResult` and context."""

    subject: str
    profile: str
    seed: int
    results: list[ConformanceResult]
    conventions: dict
    skipped: int = 0

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i):
        return self.results[i]

    @property
    def failures(self) -> list[ConformanceResult]:
        return [r for r in self.results if r.status in ("failed", "error")]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        """0 when every applicable claim holds, 1 otherwise (the CLI's status)."""
        return 0 if self.passed else 1

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for r in self.results:
            out[r.status] += 1
        return out

    def to_json(self) -> dict:
        return {"subject": self.subject, "profile": self.profile, "seed": self.seed,
                "conventions": self.conventions, "counts": self.counts(),
                "not_applicable": self.skipped,
                "results": [r.to_json() for r in self.results]}

    def format_table(self, width: int = 100) -> str:
        """The CLI table: claim, status, time, and on failure the smallest example."""
        lines = []
        idw = max([len(r.id) for r in self.results] + [10])
        lines.append(f"{'claim':<{idw}}  {'status':<8}  {'time':>7}")
        lines.append(f"{'-' * idw}  {'-' * 8}  {'-' * 7}")
        for r in self.results:
            mark = r.status.upper() if r.status in ("failed", "error") else (
                "n/a" if r.status == "not_applicable" else r.status)
            lines.append(f"{r.id:<{idw}}  {mark:<8}  {r.seconds:6.2f}s")
            if r.status == "not_applicable":
                lines.append("    " + r.detail.strip().splitlines()[0][:width * 2])
            if r.status in ("failed", "error"):
                lines.append("    " + r.detail.strip().splitlines()[0][:width * 2])
                if r.max_error is not None and r.tolerance is not None and \
                        math.isfinite(r.max_error):
                    lines.append(f"    error {r.max_error:.2e} > tolerance {r.tolerance:.2e}")
                if r.example is not None:
                    lines.append("    smallest example: " + _short_json(r.example, width * 3))
                if r.diagnosis_line():
                    lines.append("    " + r.diagnosis_line())
            if r.conventions and r.status in ("failed", "error"):
                lines.append("    declared: " + ", ".join(
                    f"{k}={v}" for k, v in r.conventions.items()))
        counts = self.counts()
        lines.append("")
        lines.append(f"{self.subject}: " + ", ".join(
            f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n)
            + f" ({self.skipped} other claims do not involve its callables; profile "
              f"{self.profile}, seed {self.seed})")
        if self.conventions:
            lines.append("declared (honoured, not failures): " + "; ".join(
                f"{k}={v}" for k, v in self.conventions.items()))
        return "\n".join(lines)


def _short_json(value, limit: int) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + " ..."


def _reproduction(claim: Claim, subject: Subject, profile: str, seed: int,
                  example: dict | None) -> str:
    """A copy-pasteable snippet: rebuild the subject, rerun the claim, show its inputs."""
    origin = subject.options.get("origin") or {}
    lines = ["# Reproduce " + claim.id + " (deterministic: same profile and seed)",
             "import numpy as np",
             "from transformer_theory.theory.conformance import check, load_subject"]
    if origin.get("target"):
        args = [repr(origin["target"])]
        if origin.get("as"):
            args.append(f"as_kind={origin['as']!r}")
        if origin.get("options"):
            args.append(f"options={origin['options']!r}")
        lines.append(f"subject = load_subject({', '.join(args)})")
    else:
        lines.append("subject = ...  # the Subject passed to check()")
    lines.append(f"report = check(subject, claims={claim.id!r}, profile={profile!r}, seed={seed})")
    lines.append("result = report.results[0]")
    lines.append("print(result.status, result.detail)")
    arrays = []
    if isinstance(example, Mapping):
        for key, value in example.items():
            if isinstance(value, Mapping) and "values" in value and "dtype" in value:
                arrays.append(f"{key} = np.array({value['values']!r}, dtype={value['dtype']!r})")
    if arrays:
        lines.append("# the smallest failing input (values rounded to 6 digits; the seed above "
                     "regenerates them exactly):")
        lines.extend(arrays)
        lines.append(f"# the claim calls subject.{claim.needs[0]}(...) on these"
                     if claim.needs else "")
    return "\n".join(line for line in lines if line)


def _relevant_conventions(claim: Claim, conventions: Mapping[str, Any]) -> dict:
    """The declared options that concern the callables ``claim`` uses."""
    out = {}
    for key, value in conventions.items():
        concerns = OPTION_TABLE[key].concerns
        concerned = set(claim.needs) if not concerns else set(concerns) & set(claim.needs)
        if isinstance(value, Mapping):
            used = {k: v for k, v in value.items() if k in concerned}
            if used:
                out[key] = used
        elif concerned:
            out[key] = value
    return out


def to_result(result: Result, subject: Subject, profile: str, seed: int,
               conventions: Mapping[str, Any]) -> ConformanceResult:
    ev = result.evidence
    example = ev.falsifying_example if ev else None
    failing = result.status in (Status.FAILED, Status.ERROR)
    return ConformanceResult(
        id=result.label, title=result.claim.title, status=result.status.value,
        detail=result.detail(), seconds=result.seconds, example=example,
        reproduction=_reproduction(result.claim, subject, profile, seed, example)
        if failing else None,
        conventions=_relevant_conventions(result.claim, conventions),
        max_error=ev.max_error if ev else None, tolerance=ev.tolerance if ev else None,
        cases=ev.cases if ev else 0)


def applicable_claims(subject: Subject, claims: str | Sequence[str] | None = None,
                      *, include_unused: bool = False) -> tuple[list[Claim], int]:
    """The claims ``check`` runs on ``subject`` and how many it leaves out.

    A claim is run when the subject has every callable it needs, it needs at
    least one (derivations that do not call the subject are left out), and,
    for a subject completed with reference callables, one of them (or of the
    constructions it ``uses``) is a callable the user supplied.
    """
    chosen = select(checkable_claims(), claims)
    provided = (subject.options.get("origin") or {}).get("provided")
    run = []
    for c in chosen:
        if not c.needs and not c.uses and not include_unused:
            continue
        if not c.applicable_to(subject):
            continue
        if provided is not None and not (set(c.needs) | set(c.uses)) & set(provided):
            continue
        run.append(c)
    return run, len(chosen) - len(run)


def check(subject: Subject | str, claims: str | Sequence[str] | None = None, *,
          profile: str | None = None, seed: int = DEFAULT_SEED,
          progress: Callable[[int, int, ConformanceResult], None] | None = None,
          fail_fast: bool = False, diagnosis: bool = True, pool=None,
          **load_kwargs) -> CheckReport:
    """Run every applicable claim against ``subject``.

    Parameters
    ----------
    subject : Subject or str
        A subject, or a target for :func:`load_subject` (``load_kwargs`` such as
        ``as_kind`` and ``options`` are passed on).
    claims : str or sequence of str, optional
        Id globs (``"attention.*"``, comma-separated allowed); default all.
    profile : {"ci", "dev", "thorough"}, optional
        Default: ``$TT_PROFILE`` or ``dev``.
    seed : int
        Base seed: the same (profile, seed) gives the same results.
    progress : callable, optional
        ``progress(i, n, result)`` after each claim.
    fail_fast : bool
        Stop at the first claim that fails or errors.
    diagnosis : bool
        Re-run each failing claim under the alternative conventions that
        concern it (default True); the status stays ``failed``.
    pool : Executor, optional
        Workers for the claim runs (:func:`theory.executor.executor`); the subject
        must then have a record (a target or a built-in name). Diagnosis re-runs
        stay in this process.

    Returns
    -------
    CheckReport
        One :class:`ConformanceResult` per applicable claim, in registry order.
    """
    from .profiles import get_profile

    if not isinstance(subject, Subject) or load_kwargs:
        subject = load_subject(subject, **load_kwargs)
    prof = get_profile(profile)
    run, skipped = applicable_claims(subject, claims)
    if claims and not run and not select(checkable_claims(), claims):
        raise ValueError(f"claims: no claim id matches {claims!r}")
    conventions = declared_conventions(subject)
    results = []
    # each claim in the usual dtypes, then in each half dtype both it and the subject declare
    runs = [(claim, d) for claim in run for d in (None, *half_runs(claim, subject))]
    for i, ((claim, dtype), result) in enumerate(
            zip(runs, map_runs(pool, subject, runs, profile=prof, seed=seed)), 1):
        res = to_result(result, subject, prof.name, seed, conventions)
        if diagnosis and result.status is Status.FAILED and dtype is None:
            res.diagnosis = diagnose(claim, subject, profile=prof, seed=seed)
            if res.diagnosis:
                res.declared = option_value(subject.declared().options, res.diagnosis["option"],
                                            next((n for n in claim.needs), None))
        results.append(res)
        if progress is not None:
            progress(i, len(runs), res)
        if fail_fast and not res.ok:
            break
    return CheckReport(subject=subject.name, profile=prof.name, seed=int(seed), results=results,
                       conventions=conventions, skipped=skipped)
