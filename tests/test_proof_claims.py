"""The symbolic claims: every derivation is a claim, every link between claims
and derivations resolves, and every symbolic claim rejects a wrong result."""

from __future__ import annotations

import dataclasses

import pytest
import sympy as sp

from transformer_theory.proofs import registry as proof_registry
from transformer_theory.proofs.derivation import prove_equal, prove_inequality
from transformer_theory.theory import registry
from transformer_theory.theory.claims.proof import STATEMENTS, evidence_for

proof_registry.load_all()
IDS = list(proof_registry.DERIVATIONS)


def test_every_derivation_is_a_claim_with_a_statement():
    claim_ids = {c.id for c in registry.all_claims()}
    for did in IDS:
        assert f"proof.{did}" in claim_ids
        assert did in STATEMENTS
    assert set(STATEMENTS) == set(IDS), "statements for unknown derivations"


def test_links_between_claims_and_derivations_resolve_both_ways():
    claims = {c.id: c for c in registry.all_claims()}
    for did in IDS:
        for cid in proof_registry.DERIVATIONS[did].claims:
            assert cid in claims, f"derivation {did} backs unknown claim {cid}"
            assert claims[cid].proof == did or claims[cid].proof in IDS, cid
    for c in claims.values():
        if c.proof is not None:
            assert c.proof in proof_registry.DERIVATIONS, f"{c.id} names unknown proof {c.proof}"


#: A wrong result cannot simplify to 0 by any route, so the cheap routes suffice before the
#: numeric check (which is what must reject it).
FAST = {"routes": ("cancel",), "time_limit": 5.0, "n_points": 8}


def _plain(expr):
    """Replace indexed symbols z[i] by ordinary real symbols z_i."""
    return expr.xreplace({ix: sp.Symbol(f"{ix.base}_{ix.indices[0]}", real=True)
                          for ix in expr.atoms(sp.Indexed)})


def _wrong_result(d):
    """The same derivation with its claimed result off by a constant.

    For an identity ``lhs = rhs`` the wrong claim ``lhs = rhs'`` is checked as
    ``rhs = rhs'`` (the derivation has established lhs = rhs; this keeps
    unevaluated integrals of the lhs out of the numeric check).
    """
    r = d.result
    if r.relation == "=":
        if isinstance(r.rhs, sp.MatrixBase):
            rhs = r.rhs + sp.ones(*r.rhs.shape) / 7
        elif r.rhs in (sp.oo, -sp.oo):
            rhs = sp.Integer(7)
        else:
            rhs = r.rhs * sp.Rational(8, 7) + sp.Rational(1, 7)
        reference = r.lhs if r.rhs in (sp.oo, -sp.oo) else r.rhs
        # A symbolic dimension (sums/products up to d) is instantiated at d = 3 so that the
        # numeric check has concrete points; indexed symbols z[i] become plain symbols.
        dims = {s: 3 for s in sp.sympify(reference).free_symbols
                if isinstance(s, sp.Symbol) and s.is_integer}
        if dims and not isinstance(reference, sp.MatrixBase):
            reference = _plain(sp.sympify(reference).subs(dims).doit())
            rhs = _plain(sp.sympify(rhs).subs(dims).doit())
        wrong = prove_equal(reference, rhs, justification="perturbed result", **FAST)
    else:
        lhs = r.lhs
        shift = (1 + sp.Abs(lhs)) / 7
        rhs = lhs - shift if r.relation in ("<=", "<") else lhs + shift
        wrong = prove_inequality(lhs, rhs, relation=r.relation, justification="perturbed result",
                                 **FAST)
    return dataclasses.replace(d, result=wrong)


@pytest.mark.parametrize("did", IDS)
def test_symbolic_claim_rejects_a_wrong_result(did):
    d = proof_registry.get(did)
    assert evidence_for(d).passed
    if d.expect == "fails":
        # A limitation is falsified by a statement that does hold: its own steps without the
        # false result are consistent, so replacing the result by a true one must fail the claim.
        fixed = dataclasses.replace(d, result=prove_equal(sp.Integer(1), sp.Integer(1),
                                                          justification="a true statement"))
        assert not evidence_for(fixed).passed
        return
    wrong = _wrong_result(d)
    assert wrong.status == "failed", wrong.result.to_dict()
    assert "could evaluate at only" not in wrong.result.reason, wrong.result.reason
    assert not evidence_for(wrong).passed
