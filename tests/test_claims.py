"""Every claim in the registry against every built-in subject, through the runner.

This is the same execution path as ``transformer-theory verify``: a claim that
passes here passes there.
"""

from __future__ import annotations

import pytest

from transformer_theory.theory import registry
from transformer_theory.theory.claim import Status
from transformer_theory.theory.profiles import get_profile
from transformer_theory.theory.runner import run_claim
from transformer_theory.theory.builtin_subjects import SUBJECTS, get_subject

CLAIMS = registry.all_claims()


def _items(claim) -> list[tuple]:
    """``(claim, shard)`` test items: one per shard of a claim whose shards decide alone (the
    Dyck recognisers under thorough, 16 each), so that ``pytest -n N`` spreads them over its
    workers as ``verify --jobs N`` does; else the whole claim (a pooled Monte Carlo claim is
    tested on the draws of all its shards, ``runner.pool_shards``)."""
    n = claim.shard_count(get_profile())        # the run's profile: conftest sets TT_PROFILE
    if n == 1 or claim.pool is not None:
        return [(claim, None)]
    return [(claim, (i, n)) for i in range(n)]


ITEMS = [item for claim in CLAIMS for item in _items(claim)]


@pytest.fixture(scope="session", params=sorted(SUBJECTS))
def subject(request):
    return get_subject(request.param)


@pytest.mark.parametrize("claim,shard", ITEMS, ids=[
    c.id if s is None else f"{c.id}.shard{s[0]}of{s[1]}" for c, s in ITEMS])
def test_claim(claim, shard, subject, profile):
    if not claim.applicable_to(subject):
        pytest.skip(f"{subject.name} lacks {claim.needs}")
    if not claim.needs and subject.name != "reference":
        pytest.skip("needs no implementation (a derivation): run once, on the reference")
    _assert_passed(run_claim(claim, subject, profile=profile, shard=shard), subject)


def _assert_passed(result, subject):
    """Skip a declared capability the subject lacks; otherwise the claim must pass."""
    if result.status is Status.NOT_APPLICABLE:
        pytest.skip(result.detail())
    ev = result.evidence
    assert result.status is Status.PASSED, (
        f"{result.label} on {subject.name}: {result.status.value}\n{result.detail()}\n"
        f"falsifying example: {ev.falsifying_example if ev else None}")
    assert ev.cases > 0


HALF_CASES = [(c, d) for c in CLAIMS for d in c.dtypes if d in ("float16", "bfloat16")]


@pytest.mark.parametrize("claim,dtype", HALF_CASES, ids=[f"{c.id}[{d}]" for c, d in HALF_CASES])
def test_claim_half_precision(claim, dtype, subject, profile):
    """The half-precision runs: the error-ratio rule for subjects that declare the dtype,
    ``not_applicable`` (never ``failed``) for those that do not (the fast path)."""
    if not claim.applicable_to(subject):
        pytest.skip(f"{subject.name} lacks {claim.needs}")
    if not claim.needs and subject.name != "reference":
        pytest.skip("needs no implementation (a construction): run once, on the reference")
    result = run_claim(claim, subject, profile=profile, dtype=dtype)
    if dtype not in (subject.options.get("dtypes") or ()):
        assert result.status is Status.NOT_APPLICABLE, result.detail()
        return
    _assert_passed(result, subject)
