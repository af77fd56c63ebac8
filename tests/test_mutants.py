"""Every claim is falsifiable: each mutant is rejected by every claim it names,
and every claim in the registry is named by at least one mutant."""

from __future__ import annotations

import pytest
from mutants import all_mutants

from transformer_theory.theory import registry
from transformer_theory.theory.claim import Status
from transformer_theory.theory.runner import run_claim

MUTANTS = all_mutants()
CASES = [(m, cid) for m in MUTANTS for cid in m.claims]


def _split(label: str) -> tuple[str, str | None]:
    """``"a.b[float16]"`` -> ("a.b", "float16"): a claim id and the dtype of its run."""
    if label.endswith("]") and "[" in label:
        cid, dtype = label[:-1].split("[", 1)
        return cid, dtype
    return label, None


def test_every_claim_has_a_mutant():
    # Symbolic claims (topic "proof") need no implementation; tests/test_proof_claims.py
    # shows each one rejecting a wrong result instead.
    covered = {_split(cid)[0] for m in MUTANTS for cid in m.claims}
    missing = [c.id for c in registry.all_claims() if c.id not in covered and c.topic != "proof"]
    assert not missing, f"claims without a mutant: {missing}"


def test_mutants_name_real_claims():
    known = {c.id for c in registry.all_claims()}
    unknown = sorted({_split(cid)[0] for m in MUTANTS for cid in m.claims} - known)
    assert not unknown, f"mutants name unknown claims: {unknown}"


@pytest.mark.parametrize("mutant,claim_id", CASES, ids=[f"{m.name}->{c}" for m, c in CASES])
def test_mutant_is_rejected(mutant, claim_id, reference, profile):
    cid, dtype = _split(claim_id)
    claim = registry.get(cid)
    broken = mutant.build(reference)
    result = run_claim(claim, broken, profile=profile, dtype=dtype)
    assert result.status is Status.FAILED, (
        f"mutant {mutant.name!r} ({mutant.description}) was not rejected by {claim_id}: "
        f"{result.status.value}: {result.detail()}")
