"""Seed sweeps: the same claims under many seeds, and the headroom each one leaves.

A claim that fails a correct implementation on some seed is a false alarm a user
will meet (``verify --seed N``, a fresh ``dev`` run, Hypothesis' database); the
derandomised ``ci`` profile never shows it. :func:`sweep` runs the claims once per
seed (symbolic claims once: they draw nothing) and keeps, per claim and dtype,
every failure with its seed and the worst ``max_error / tolerance`` over the
seeds -- the headroom figure: a claim whose correct implementations reach 0.9 of
their tolerance will fail soon.

References
----------
Issue 21 ("Sound tolerances: no claim fails a correct implementation on any seed").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .claim import Claim, Kind, Status

__all__ = ["parse_seeds", "format_seeds", "ClaimSweep", "sweep_plan", "sweep", "merge",
           "headroom_files", "load_headroom"]


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"A-B"`` (inclusive) or a comma list ``"1,5,9"`` (or both, comma-joined).

    Raises
    ------
    ValueError
        Naming ``--seeds`` for an empty, negative, reversed or non-integer entry.
    """
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                a, b = part.rsplit("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"--seeds: expected a range A-B or a comma list of seeds >= 0, "
                             f"got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"--seeds: expected a range A-B or a comma list of seeds >= 0, "
                         f"got {text!r}")
    return list(dict.fromkeys(seeds))


def format_seeds(seeds) -> str:
    """Seeds as the shortest text :func:`parse_seeds` reads back.

    ``[1, 2, 3, 7]`` -> ``"1-3,7"``; ``[]`` -> ``""``.
    """
    ordered = sorted(set(int(s) for s in seeds))
    parts: list[str] = []
    start = prev = None
    for s in ordered + [None]:
        if s is not None and prev is not None and s == prev + 1:
            prev = s
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = s
    return ",".join(parts)


@dataclass
class ClaimSweep:
    """One claim (and dtype) over the seeds: runs, failures, the worst error ratio."""

    id: str
    dtype: str | None
    failures: list = field(default_factory=list)     # dicts: seed, status, detail, example
    worst_ratio: float | None = None
    worst_seed: int | None = None
    seeds: list = field(default_factory=list)        # the seeds it ran under, one per run

    @property
    def runs(self) -> int:
        return len(self.seeds)

    @property
    def label(self) -> str:
        return self.id if self.dtype is None else f"{self.id}[{self.dtype}]"

    def add(self, seed: int, result) -> None:
        self.seeds.append(seed)
        if result.status in (Status.FAILED, Status.ERROR):
            ev = result.evidence
            self.failures.append({"seed": seed, "status": result.status.value,
                                  "detail": result.detail(),
                                  "example": None if ev is None else ev.falsifying_example})
        ev = result.evidence
        if ev is not None and ev.max_error is not None and ev.tolerance:
            ratio = float(ev.max_error) / float(ev.tolerance)
            if self.worst_ratio is None or ratio > self.worst_ratio:
                self.worst_ratio, self.worst_seed = ratio, seed

    def to_json(self) -> dict:
        return {"id": self.id, "dtype": self.dtype, "runs": self.runs,
                "seeds": format_seeds(self.seeds), "worst_ratio": self.worst_ratio,
                "worst_seed": self.worst_seed, "failures": self.failures}


def sweep_plan(claims: Sequence[Claim], subject, seeds: Sequence[int]) -> list[tuple]:
    """The runs of a sweep in order: ``((claim, dtype), seed)``; symbolic claims at the first seed."""
    from .runner import half_runs

    once = [c for c in claims if c.kind is Kind.SYMBOLIC]
    every = [c for c in claims if c.kind is not Kind.SYMBOLIC]
    return [((claim, dtype), seed) for i, seed in enumerate(seeds)
            for claim in every + (once if i == 0 else [])
            for dtype in (None, *half_runs(claim, subject))]


def sweep(claims: Sequence[Claim], subject, *, profile: str, seeds: Sequence[int],
          progress: Callable | None = None, pool=None) -> list[ClaimSweep]:
    """Run ``claims`` on ``subject`` once per seed (symbolic claims once).

    Parameters
    ----------
    claims : sequence of Claim
    subject : Subject
    profile : str
    seeds : sequence of int
    progress : callable, optional
        ``progress(done, total, result)`` after each run (claim, dtype and seed).
    pool : Executor, optional
        Workers from :func:`theory.executor.executor`; every (seed, claim, dtype)
        is a task of its own, and the table is the same as without them.

    Returns
    -------
    list of ClaimSweep
        In the claims' order, a half-precision run after its claim.
    """
    from .executor import map_runs

    plan = sweep_plan(claims, subject, seeds)
    runs, run_seeds = [run for run, _ in plan], [seed for _, seed in plan]
    table: dict[tuple, ClaimSweep] = {}
    results = map_runs(pool, subject, runs, profile=profile, seed=run_seeds)
    for done, (seed, r) in enumerate(zip(run_seeds, results), 1):
        key = (r.id, None if r.dtype is None else str(r.dtype))
        table.setdefault(key, ClaimSweep(*key)).add(seed, r)
        if progress is not None:
            progress(done, len(runs), r)
    order = {c.id: n for n, c in enumerate(claims)}
    return sorted(table.values(), key=lambda s: (order.get(s.id, 0), s.dtype or ""))


def claim_seeds(row: Mapping, doc: Mapping) -> list[int]:
    """The seeds a claim row of a sweep document ran under.

    A row written before rows carried their seeds holds only ``runs``: it ran under the
    document's seeds if it has as many runs, and under the first one if it ran once (a
    symbolic claim); anything else cannot be told apart and is refused.

    Raises
    ------
    ValueError
        Naming the claim, for a row whose seeds cannot be known.
    """
    if row.get("seeds") is not None:
        return parse_seeds(row["seeds"]) if row["seeds"] != "" else []
    doc_seeds = list(doc.get("seeds", []))
    if row["runs"] == len(doc_seeds):
        return doc_seeds
    if row["runs"] == 1 and doc_seeds:
        return doc_seeds[:1]
    if row["runs"] == 0:
        return []
    raise ValueError(f"docs: the {row['runs']} runs of {row['id']} do not say their seeds "
                     f"(the document has {len(doc_seeds)})")


def merge(docs: Sequence[Mapping], *, replace: bool = False) -> dict:
    """One sweep document from several of the same subject and profile (chunks of seeds).

    Runs add up, failures are kept in seed order, and each claim's worst ratio is the
    largest over the documents (the lowest seed on a tie), so that sweeping seeds 1-50
    and 51-100 apart and merging gives the sweep of 1-100. Each claim row keeps the
    seeds it ran under (``"seeds"``, as :func:`format_seeds` writes them), so claims may
    have different seeds (a long claim swept over fewer); the document's ``seeds`` is
    their union.

    Parameters
    ----------
    docs : sequence of mapping
        Sweep documents, earliest first.
    replace : bool
        A claim of a later document replaces its row of the earlier ones instead of
        adding to it: a claim re-swept after its check or bound changed.

    Raises
    ------
    ValueError
        If the documents differ in subject or profile, or (without ``replace``) sweep
        one claim under one seed twice.
    """
    docs = list(docs)
    if not docs:
        raise ValueError("docs: expected at least one sweep document")
    subject, profile = docs[0]["subject"], docs[0]["profile"]
    table: dict[tuple, dict] = {}
    for doc in docs:
        if (doc["subject"], doc["profile"]) != (subject, profile):
            raise ValueError(f"docs: cannot merge the sweep of {doc['subject']} ({doc['profile']}) "
                             f"with that of {subject} ({profile})")
        fresh: set[tuple] = set()
        for c in doc["claims"]:
            key = (c["id"], c["dtype"])
            seeds = claim_seeds(c, doc)
            empty = {"id": c["id"], "dtype": c["dtype"], "seeds": [],
                     "worst_ratio": None, "worst_seed": None, "failures": []}
            if replace and key in table and key not in fresh:
                table[key] = empty                    # in place: the claims keep their order
            fresh.add(key)
            row = table.setdefault(key, empty)
            shared = set(row["seeds"]) & set(seeds)
            if shared:
                raise ValueError(f"docs: seed {min(shared)} of {c['id']} is in two sweeps")
            row["seeds"] = row["seeds"] + seeds
            row["failures"] = sorted(row["failures"] + list(c["failures"]),
                                     key=lambda f: f["seed"])
            r, s = c["worst_ratio"], c["worst_seed"]
            if r is not None and (row["worst_ratio"] is None or r > row["worst_ratio"]
                                  or (r == row["worst_ratio"] and s < row["worst_seed"])):
                row["worst_ratio"], row["worst_seed"] = r, s
    seeds = sorted(set().union(*(row["seeds"] for row in table.values())))
    claims = [{"id": row["id"], "dtype": row["dtype"], "runs": len(row["seeds"]),
               "seeds": format_seeds(row["seeds"]), "worst_ratio": row["worst_ratio"],
               "worst_seed": row["worst_seed"], "failures": row["failures"]}
              for row in table.values()]
    return {"subject": subject, "profile": profile, "seeds": seeds, "claims": claims}


def headroom_files(root: Path | None = None) -> list[Path]:
    """The committed sweep files ``benchmarks/headroom-<subject>.json``.

    Looked for under ``root``, else the current directory, then the source tree of an
    editable install (where ``make sweep`` writes them); the first that has any wins.
    """
    if root is not None:
        roots = [Path(root)]
    else:
        import transformer_theory

        roots = [Path.cwd(), Path(transformer_theory.__file__).resolve().parents[1]]
    for r in roots:
        found = sorted((r / "benchmarks").glob("headroom-*.json"))
        if found:
            return found
    return []


def load_headroom(paths: Sequence[Path | str]) -> dict[str, dict]:
    """Subject -> ``{"seeds": n, "profile": p, "claims": {(id, dtype): row}}`` from sweep files.

    A file that cannot be read or is not a sweep document is skipped: the report shows
    headroom where it has it and never fails for want of it.
    """
    out: dict[str, dict] = {}
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            rows = {(c["id"], c["dtype"]): c for c in doc["claims"]}
            out[doc["subject"]] = {"seeds": len(doc["seeds"]), "profile": doc["profile"],
                                   "claims": rows}
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out
