"""Tests for transformer_theory.proofs: the verifiers, the registry, every derivation, rendering."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp

from transformer_theory import proofs
from transformer_theory.proofs import counting, performer, positional, render, softmax
from transformer_theory.proofs.derivation import (STATUSES, Derivation, Step, default_domain,
                                                  given, prove_equal, prove_inequality)
from transformer_theory.proofs.registry import DERIVATIONS, derivation, get

EXPECTED_IDS = {
    "performer.gaussian_mgf", "performer.positive_mse", "performer.trig_mse",
    "performer.hyperbolic_mse", "performer.relative_mse", "performer.regimes",
    "performer.orthogonal_pair_moment", "performer.orthogonal_mse_bound",
    "performer.orthogonal_bound_review_version",
    "softmax.shift_invariance", "softmax.jacobian", "softmax.temperature_bound",
    "softmax.online_merge", "attention.linear_recurrence",
    "positional.sinusoidal_shift", "positional.rope_relative",
    "layers.tanh_sigmoid", "layers.layernorm_invariance", "layers.gelu_tanh_gap",
    "counting.parameters", "counting.flops", "ode.residual_euler",
}

x, y = sp.symbols("x y", real=True)


@pytest.fixture(scope="module")
def all_derivations():
    return {d.id: d for d in proofs.all_derivations()}


# --------------------------------------------------------------------------
# Registry and every derivation
# --------------------------------------------------------------------------

def test_import_registers_every_derivation():
    assert set(DERIVATIONS) == EXPECTED_IDS


def test_every_derivation_verified_as_expected(all_derivations):
    assert set(all_derivations) == EXPECTED_IDS
    for d in all_derivations.values():
        assert isinstance(d, Derivation)
        assert d.as_expected, render.format_text(d)
        if d.expect == "holds":
            assert d.verified is True and d.status in ("symbolic", "numeric"), d.id
        else:
            assert d.verified is False and d.status == "failed", d.id


def test_statuses_and_reasons_recorded(all_derivations):
    for d in all_derivations.values():
        for s in d.steps + [d.result]:
            assert s.status in STATUSES
            assert s.justification.strip()
            if s.status == "numeric":
                assert "sympy" in s.reason and s.max_numeric_error is not None
            if s.status == "symbolic":
                assert s.method and s.max_numeric_error is None
        assert d.result.status != "given"
        assert d.sources, d.id


def test_expected_symbolic_and_numeric_split(all_derivations):
    numeric = {i for i, d in all_derivations.items() if d.status == "numeric"}
    # the GELU gap has no closed form: its stationary point and maximum are numeric
    assert numeric == {"performer.orthogonal_mse_bound", "layers.gelu_tanh_gap"}
    assert all_derivations["performer.orthogonal_mse_bound"].result.status == "numeric"


def test_review_version_is_a_limitation(all_derivations):
    d = all_derivations["performer.orthogonal_bound_review_version"]
    assert d.expect == "fails" and d.verified is False
    assert d.result.status == "failed" and "opposite" in d.result.reason
    assert all(s.passed for s in d.steps)       # the counterexample itself is sound
    assert d.steps[-1].status == "symbolic"     # the final form holds at x = -y


def test_get_is_cached_and_unknown_id_raises():
    assert get("softmax.jacobian") is get("softmax.jacobian")
    with pytest.raises(KeyError, match="id: unknown derivation"):
        get("no.such")


def test_claim_links_are_tuples_of_strings(all_derivations):
    assert all_derivations["counting.parameters"].claims == ("counting.seed003_parameters",)
    assert all_derivations["softmax.jacobian"].claims == ()
    for d in all_derivations.values():
        assert isinstance(d.claims, tuple) and all(isinstance(c, str) for c in d.claims)


def test_registry_decorator_sets_id_claims_expect():
    @derivation("test.tmp_identity", claims=("softmax.shift_invariance",))
    def tmp():
        r = prove_equal(x + x, 2 * x, justification="doubling")
        return Derivation("placeholder", "tmp", {"x": "real"}, ("none",), [], r)
    try:
        d = DERIVATIONS["test.tmp_identity"]()
        assert d.id == "test.tmp_identity" and d.claims == ("softmax.shift_invariance",)
        assert d.status == "symbolic" and d.verified
        with pytest.raises(ValueError, match="already registered"):
            derivation("test.tmp_identity")(tmp)
    finally:
        DERIVATIONS.pop("test.tmp_identity", None)


@pytest.mark.parametrize("kwargs, exc, text", [
    (dict(id="nodot"), ValueError, "id: expected a dotted"),
    (dict(id="a.b", expect="maybe"), ValueError, "expect"),
    (dict(id="a.b", claims="one.claim"), TypeError, "claims"),
])
def test_registry_decorator_rejects_bad_arguments(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        derivation(**kwargs)


def test_registry_builder_must_return_derivation():
    @derivation("test.not_a_derivation")
    def bad():
        return 3
    try:
        with pytest.raises(TypeError, match="expected Derivation"):
            DERIVATIONS["test.not_a_derivation"]()
    finally:
        DERIVATIONS.pop("test.not_a_derivation", None)


# --------------------------------------------------------------------------
# The verifier is not vacuous
# --------------------------------------------------------------------------

def test_trig_mse_with_wrong_constant_fails(all_derivations):
    d = all_derivations["performer.trig_mse"]
    X, Y, m = performer.X, performer.Y, performer.m
    wrong = performer.trig_mse_formula(X, Y, m, coefficient=1)          # 1/m instead of 1/(2m)
    step = prove_equal(d.result.lhs, wrong, justification="wrong constant")
    assert step.status == "failed" and "numerically" in step.reason
    right = prove_equal(d.result.lhs, performer.trig_mse_formula(X, Y, m),
                        justification="Lemma 2", routes=("powsimp",))
    assert right.status == "symbolic"


def test_wrong_identity_fails_symbolically_and_numerically():
    step = prove_equal(sp.exp(x + y), sp.exp(x) + sp.exp(y), justification="wrong")
    assert step.status == "failed"
    assert "did not reduce" in step.reason and "numerically lhs != rhs" in step.reason
    assert step.max_numeric_error > 0.1
    only_symbolic = prove_equal(sp.exp(x + y), sp.exp(x) + sp.exp(y), justification="wrong",
                                numeric=False)
    assert only_symbolic.status == "failed"


def test_true_identity_sympy_cannot_close_is_numeric():
    step = prove_equal(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1, justification="Pythagoras",
                       routes=("cancel",))
    assert step.status == "numeric" and "tried cancel" in step.reason
    assert step.max_numeric_error < 1e-25


def test_numeric_tolerance_is_half_the_digits():
    near = 1 + sp.Rational(1, 10 ** 10)
    step = prove_equal(sp.sin(x) ** 2 + sp.cos(x) ** 2, near, justification="off by 1e-10",
                       routes=("cancel",))
    assert step.status == "failed"
    loose = prove_equal(sp.sin(x) ** 2 + sp.cos(x) ** 2, near, justification="off by 1e-10",
                        routes=("cancel",), dps=16)
    assert loose.status == "numeric"          # 1e-10 < 10^-8 at 16 digits


def test_numeric_points_are_seeded():
    a = prove_equal(sp.exp(x), 1 + x, justification="wrong", routes=("cancel",), seed=3)
    b = prove_equal(sp.exp(x), 1 + x, justification="wrong", routes=("cancel",), seed=3)
    assert a.reason == b.reason and a.status == "failed"


def test_matrix_identity_and_failure():
    R = positional.rotation
    ok = prove_equal(R(x) * R(y), R(x + y), justification="rotations compose", routes=("trigsimp",))
    assert ok.status == "symbolic"
    bad = prove_equal(R(x) * R(y), R(x - y), justification="wrong", routes=("trigsimp",))
    assert bad.status == "failed"


def test_inequalities_symbolic_numeric_and_false():
    s = sp.Symbol("s", nonnegative=True)
    sym = prove_inequality(sp.exp(-s), 1, justification="e^{-s} <= 1")
    assert sym.status == "symbolic" and sym.relation == "<="
    num = prove_inequality(sp.exp(x), 1 + x, relation=">=", justification="convexity")
    assert num.status == "numeric"
    false_num = prove_inequality(sp.exp(x), 1 + x + x ** 2, relation=">=", justification="wrong")
    assert false_num.status == "failed" and "violated" in false_num.reason
    false_sym = prove_inequality(x + 1, x, justification="wrong")
    assert false_sym.status == "failed" and "opposite" in false_sym.reason
    strict = prove_inequality(s, s, relation="<", justification="not strict", routes=("cancel",))
    assert strict.status == "failed"


def test_temperature_bound_with_too_small_constant_fails():
    beta, gap = sp.symbols("beta gamma", positive=True)
    deltas = sp.symbols("delta2:5", nonnegative=True)
    p = softmax.softmax_vector(sp.Matrix([0] + [-(gap + dl) for dl in deltas]) * beta)
    wrong = prove_inequality(1 - p[0], sp.exp(-beta * gap) / 2, justification="too tight")
    assert wrong.status == "failed"


def test_theorem2_with_larger_constant_fails():
    Lam, s, m, d = performer.Lam, performer.s, performer.m, performer.d
    mse_plus = Lam ** 2 * (sp.exp(2 * s) - sp.exp(s)) / m
    sm = Lam * sp.exp(s / 2)
    too_strong = mse_plus - (1 - 1 / m) * 3 / (d + 2) * (sm - Lam) ** 2
    step = prove_inequality(performer._mse_ort(Lam, s, m, d), too_strong, justification="3/(d+2)",
                            symbols_domain={"s": (0.0, 0.5), "m": ("int", 2, 8), "d": ("int", 1, 16),
                                            "Lambda": (0.1, 1.0)}, routes=("expand",))
    assert step.status == "failed"


def test_review_bound_fails_at_x_equals_minus_y_numerically():
    Lam, s, m, d = performer.Lam, performer.s, performer.m, performer.d
    mse_plus = Lam ** 2 * (sp.exp(2 * s) - sp.exp(s)) / m
    review = performer.orthogonal_bound_rhs(mse_plus, Lam * sp.exp(s / 2), Lam, m, d,
                                            version="review")
    step = prove_inequality(performer._mse_ort(Lam, s, m, d).subs(s, 0), review.subs(s, 0),
                            justification="review at s = 0", routes=("cancel",),
                            symbols_domain={"m": ("int", 2, 8)})
    assert step.status == "failed"


def test_limit_to_infinity_only_symbolic():
    R = sp.Symbol("R", positive=True)
    assert prove_equal(sp.Limit(sp.exp(R), R, sp.oo), sp.oo, justification="diverges").status \
        == "symbolic"
    assert prove_equal(sp.Limit(sp.exp(-R), R, sp.oo), sp.oo, justification="wrong").status \
        == "failed"


# --------------------------------------------------------------------------
# Known values from the derivations' building blocks
# --------------------------------------------------------------------------

def test_seed003_parameter_count_and_kaplan():
    assert counting.encoder_block_parameters(32, 2, 32, 32, 1) == 10656
    assert counting.encoder_block_parameters(32, 2, 32, 32, 1, biases=0, layernorm=0) == \
        2 * 3 * 32 * 32 + 2 * 32 * 32 + 2 * 32 * 32
    d = 64
    assert counting.encoder_block_parameters(d, 4, d // 4, 4 * d, 3, 0, 0) == 12 * 3 * d ** 2


def test_flop_counts_by_hand():
    assert counting.naive_attention_flops(10, 4) == 2 * 2 * 100 * 4
    assert counting.favor_attention_flops(10, 3, 4) == 8 * 10 * 3 * 4
    assert counting.matmul_multiplications(2, 3, 4).doit() == 24


def test_online_merge_numbers():
    a = softmax.online_state([sp.Integer(1), sp.Integer(3)], [sp.Integer(2), sp.Integer(5)])
    assert a[0] == 3 and sp.simplify(a[1] - (sp.exp(-2) + 1)) == 0
    assert softmax.online_merge(a, softmax.ONLINE_IDENTITY) == a


def test_orthogonal_pair_moment_value_d2():
    s = sp.Rational(3, 2)
    val = sp.N(performer.orthogonal_pair_moment(s, 2), 30)
    assert abs(val - sp.N((1 + s / 2) * sp.exp(s / 2), 30)) < 1e-25


def test_orthogonal_bound_rhs_rejects_unknown_version():
    with pytest.raises(ValueError, match="version"):
        performer.orthogonal_bound_rhs(1, 1, 1, 2, 3, version="draft")


def test_default_domains_follow_assumptions():
    assert default_domain(sp.Symbol("a", positive=True)) == (0.1, 3.0)
    assert default_domain(sp.Symbol("a", nonnegative=True)) == (0.0, 3.0)
    assert default_domain(sp.Symbol("a", negative=True)) == (-3.0, -0.1)
    assert default_domain(sp.Symbol("a", real=True)) == (-2.0, 2.0)
    assert default_domain(sp.Symbol("n", positive=True, integer=True)) == ("int", 1, 8)
    assert default_domain(sp.Symbol("n", nonnegative=True, integer=True)) == ("int", 0, 8)


# --------------------------------------------------------------------------
# Steps, derivations, rendering
# --------------------------------------------------------------------------

def test_step_latex_and_dict():
    st = prove_inequality(sp.exp(-sp.Symbol("s", nonnegative=True)), 1, justification="decay")
    assert st.latex() == r"e^{- s} \leq 1"
    assert isinstance(st.relational, sp.Le)
    eq = prove_equal(x + x, 2 * x, justification="doubling")
    assert eq.latex() == "2 x = 2 x" and isinstance(eq.relational, sp.Eq)
    assert eq.to_dict()["status"] == "symbolic"
    g = given(sp.Symbol("P"), x, justification="definition")
    assert g.status == "given" and g.passed


def test_derivation_status_rules():
    sym = prove_equal(x, x, justification="trivial")
    num = prove_equal(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1, justification="num", routes=("cancel",))
    bad = prove_equal(x, x + 1, justification="bad", routes=("cancel",))
    d1 = Derivation("a.b", "t", {}, (), [given(x, x, justification="def")], sym)
    d2 = Derivation("a.b", "t", {}, (), [num], sym)
    d3 = Derivation("a.b", "t", {}, (), [bad], sym)
    d4 = Derivation("a.b", "t", {}, (), [], given(x, x, justification="def"))
    assert (d1.status, d1.verified) == ("symbolic", True)
    assert (d2.status, d2.verified) == ("numeric", True)
    assert (d3.status, d3.verified) == ("failed", False)
    assert (d4.status, d4.verified) == ("failed", False)     # a result may not be merely given
    assert len(d2.numeric_steps) == 1


def test_to_dict_is_json_serialisable(all_derivations):
    payload = render.to_json(list(all_derivations.values()))
    text = json.dumps(payload)
    back = json.loads(text)["derivations"]
    assert {e["id"] for e in back} == EXPECTED_IDS
    keys = {"id", "title", "status", "verified", "claims", "sources", "assumptions", "steps"}
    for e in back:
        assert keys <= set(e)
        for s in e["steps"]:
            assert {"latex", "justification", "status", "reason"} <= set(s)
    assert render.dumps(all_derivations["softmax.jacobian"]).startswith('{"derivations"')


def test_format_text_and_latex(all_derivations):
    d = all_derivations["performer.orthogonal_mse_bound"]
    text = render.format_text(d)
    assert d.id in text and "[num]" in text and "sympy could not decide" in text
    tex = d.to_latex()
    assert r"\begin{enumerate}" in tex and r"\leq" in tex
    doc = render.to_latex_document(list(all_derivations.values()))
    assert doc.startswith(r"\documentclass") and doc.rstrip().endswith(r"\end{document}")
    assert "[FAIL]" in render.format_text(all_derivations["performer.orthogonal_bound_review_version"])
    assert "as expected" in render.summary_line(d)


# --------------------------------------------------------------------------
# Every ValueError / TypeError
# --------------------------------------------------------------------------

@pytest.mark.parametrize("call, exc, text", [
    (lambda: prove_equal(sp.Matrix([x, y]), x, justification="j"), ValueError, "rhs: expected the shape"),
    (lambda: prove_equal(sp.Matrix([x, y]), sp.Matrix([[x, y]]), justification="j"), ValueError,
     "rhs: expected the shape"),
    (lambda: prove_equal(x, x, justification="j", seed=1.5), TypeError, "seed: expected an integer"),
    (lambda: prove_equal(x, x, justification="j", seed=-1), ValueError, "seed"),
    (lambda: prove_equal(x, x, justification="j", n_points=0), ValueError, "n_points"),
    (lambda: prove_equal(x, x, justification="j", dps=10), ValueError, "dps"),
    (lambda: prove_equal(x, x, justification="j", n_points=True), TypeError, "n_points"),
    (lambda: prove_equal(x, x, justification=""), ValueError, "justification"),
    (lambda: prove_inequality(x, 1, justification="j", relation="=="), ValueError, "relation"),
    (lambda: prove_inequality(sp.Matrix([x]), 1, justification="j"), TypeError, "lhs"),
    (lambda: prove_inequality(x, 1, justification="j", dps=3), ValueError, "dps"),
    (lambda: prove_equal(sp.exp(x), 1 + x, justification="j", routes=("cancel",),
                         symbols_domain={"x": "anything"}), ValueError, "symbols_domain"),
    (lambda: Step(x, x, "j", status="proved"), ValueError, "status"),
    (lambda: Step(x, x, "j", relation="!="), ValueError, "relation"),
    (lambda: Derivation("a.b", "t", {}, (), [], "not a step"), TypeError, "result"),
    (lambda: Derivation("a.b", "t", {}, (), ["x"], given(x, x, justification="d")), TypeError,
     r"steps\[0\]"),
    (lambda: Derivation("a.b", "t", {}, (), [], given(x, x, justification="d"), expect="maybe"),
     ValueError, "expect"),
    (lambda: render.format_text("performer.regimes"), TypeError, "derivation"),
    (lambda: render.to_json("performer.regimes"), TypeError, "derivations"),
    (lambda: render.to_json([1]), TypeError, r"derivations\[0\]"),
])
def test_errors_name_the_argument(call, exc, text):
    with pytest.raises(exc, match=text):
        call()


def test_symbols_domain_accepts_candidates_and_symbol_keys():
    step = prove_equal(sp.exp(x), 1 + x, justification="only at 0", routes=("cancel",),
                       symbols_domain={x: [0]})
    assert step.status == "numeric"
    assert np.isclose(step.max_numeric_error, 0.0)
