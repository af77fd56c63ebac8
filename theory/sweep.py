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

from dataclasses import dataclass, field
from typing import Callable, Sequence

from .claim import Claim, Kind, Status
from .runner import run_claims

__all__ = ["parse_seeds", "ClaimSweep", "sweep"]


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


@dataclass
class ClaimSweep:
    """One claim (and dtype) over the seeds: runs, failures, the worst error ratio."""

    id: str
    dtype: str | None
    runs: int = 0
    failures: list = field(default_factory=list)     # dicts: seed, status, detail, example
    worst_ratio: float | None = None
    worst_seed: int | None = None

    @property
    def label(self) -> str:
        return self.id if self.dtype is None else f"{self.id}[{self.dtype}]"

    def add(self, seed: int, result) -> None:
        self.runs += 1
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
                "worst_ratio": self.worst_ratio, "worst_seed": self.worst_seed,
                "failures": self.failures}


def sweep(claims: Sequence[Claim], subject, *, profile: str, seeds: Sequence[int],
          progress: Callable[[int, int], None] | None = None) -> list[ClaimSweep]:
    """Run ``claims`` on ``subject`` once per seed (symbolic claims once).

    Parameters
    ----------
    claims : sequence of Claim
    subject : Subject
    profile : str
    seeds : sequence of int
    progress : callable, optional
        ``progress(done, total)`` after each seed.

    Returns
    -------
    list of ClaimSweep
        In the claims' order, a half-precision run after its claim.
    """
    once = [c for c in claims if c.kind is Kind.SYMBOLIC]
    every = [c for c in claims if c.kind is not Kind.SYMBOLIC]
    table: dict[tuple, ClaimSweep] = {}
    for i, seed in enumerate(seeds):
        batch = every + (once if i == 0 else [])
        for r in run_claims(batch, subject, profile=profile, seed=seed):
            key = (r.id, None if r.dtype is None else str(r.dtype))
            table.setdefault(key, ClaimSweep(*key)).add(seed, r)
        if progress is not None:
            progress(i + 1, len(seeds))
    order = {c.id: n for n, c in enumerate(claims)}
    return sorted(table.values(), key=lambda s: (order.get(s.id, 0), s.dtype or ""))
