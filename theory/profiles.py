"""Hypothesis profiles of the suite, registered once.

- ``ci``: derandomized, no example database, no deadline; few examples so that
  ``make test`` stays within its budget on 2 cores.
- ``dev``: the default; more examples, still no deadline (JIT compilation and
  Monte Carlo make per-example timings meaningless).
- ``thorough``: many examples and larger Monte Carlo runs (``make test-slow``).

``TT_PROFILE`` or pytest's ``--hypothesis-profile`` selects one. The runner
additionally seeds every property check explicitly, so a (profile, seed) pair
gives the same results run after run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, settings

_SUPPRESS = (HealthCheck.too_slow, HealthCheck.data_too_large,
             HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture,
             HealthCheck.differing_executors)


@dataclass(frozen=True)
class Profile:
    """How much work a run does.

    Attributes
    ----------
    name : str
    max_examples : int
        Hypothesis examples per property claim.
    mc_scale : int
        Multiplier on Monte Carlo sample sizes of statistical claims (the
        stated false-failure probability holds at every scale: bounds are
        computed for the sample size actually used).
    exhaustive_scale : int
        Multiplier on the sizes of exhaustive enumerations (string lengths, ...),
        interpreted by each claim.
    """

    name: str
    max_examples: int
    mc_scale: int
    exhaustive_scale: int

    def hypothesis_settings(self) -> settings:
        return settings(max_examples=self.max_examples, deadline=None, database=None,
                        derandomize=False, suppress_health_check=_SUPPRESS,
                        print_blob=False, report_multiple_bugs=False)


PROFILES: dict[str, Profile] = {
    "ci": Profile("ci", max_examples=25, mc_scale=1, exhaustive_scale=1),
    "dev": Profile("dev", max_examples=100, mc_scale=1, exhaustive_scale=1),
    "thorough": Profile("thorough", max_examples=1000, mc_scale=8, exhaustive_scale=2),
}

DEFAULT_PROFILE = "dev"


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, else ``$TT_PROFILE``, else ``dev``."""
    name = name or os.environ.get("TT_PROFILE") or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"profile: expected one of {tuple(PROFILES)}, got {name!r}")
    return PROFILES[name]


def register_hypothesis_profiles() -> None:
    """Register ``ci``, ``dev`` and ``thorough`` with Hypothesis (idempotent)."""
    for p in PROFILES.values():
        settings.register_profile(
            p.name, max_examples=p.max_examples, deadline=None, database=None,
            derandomize=(p.name == "ci"), suppress_health_check=_SUPPRESS)
