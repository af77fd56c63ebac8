"""Unit tests of the Performer claims' analytic statements, exact moments and helpers.

The claims' formulas are cross-checked against ``impl/performer.py``'s own
closed forms (written independently), against numerical integration, and
against small Monte Carlo runs.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest
from scipy import integrate, special

from transformer_theory.impl import performer as P
from transformer_theory.proofs import registry as proof_registry
from transformer_theory.theory import registry
from transformer_theory.theory.claim import Kind
from transformer_theory.theory.claims import performer as C
from transformer_theory.theory.statistics import MAX_FALSE_FAILURE, hoeffding_tail
from transformer_theory.theory.subject import CALLABLES, Subject
from transformer_theory.theory.builtin_subjects import reference_subject

sys.path.insert(0, str(Path(__file__).parent))
from mutants.performer import MUTANTS  # noqa: E402

BRIEF_IDS = {
    "performer.unbiased", "performer.mse_lemma2", "performer.hyperbolic_beats_positive",
    "performer.regimes", "performer.positive_normalizer_positive",
    "performer.orthogonal_features", "performer.orthogonal_mse_bound",
    "performer.orthogonal_mse_exact", "performer.smreg_kernel", "performer.favor_explicit",
    "performer.causal_prefix_sum", "performer.recurrent_equals_parallel", "performer.causality",
    "performer.sequence_stabilizer_leaks", "performer.padding_and_batch",
    "performer.normalization", "performer.attention_error_rate",
}


@pytest.fixture(scope="module")
def ref():
    return reference_subject()


def pairs(d=5, count=4, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        x, y = 0.5 * rng.standard_normal(d), 0.5 * rng.standard_normal(d)
        out.append(C.pair_geometry(x, y))
    return out


# --------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------

def test_pair_geometry_known_values():
    g = C.pair_geometry([1.0, 0.0], [0.0, 2.0])
    assert g.s == pytest.approx(5.0) and g.t == pytest.approx(5.0)
    assert g.lam == pytest.approx(math.exp(-2.5))
    assert g.sm == pytest.approx(1.0)                       # x . y = 0
    assert g.d == 2
    assert g.sm == pytest.approx(g.lam * math.exp(g.s / 2))


def test_pair_geometry_rejects_bad_input():
    with pytest.raises(ValueError, match="y: expected the shape of x"):
        C.pair_geometry(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="y: expected the shape of x"):
        C.pair_geometry(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        C.pair_geometry([np.nan, 1.0], [0.0, 1.0])


@pytest.mark.parametrize("s,t,d", [(0.5, 1.0, 2), (1.0, 0.25, 7), (0.0, 2.0, 3), (0.3, 0.0, 1)])
def test_pair_with_hits_its_norms(s, t, d):
    g = C.pair_with(s, t, d, np.random.default_rng(1))
    assert g.s == pytest.approx(s, abs=1e-12) and g.t == pytest.approx(t, abs=1e-12)
    assert g.x.shape == (d,)


def test_pair_with_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="s, t: expected finite values >= 0"):
        C.pair_with(-1.0, 0.5, 3, rng)
    with pytest.raises(ValueError, match="s, t"):
        C.pair_with(0.5, math.inf, 3, rng)
    with pytest.raises(ValueError, match="d: expected d >= 2"):
        C.pair_with(0.5, 0.5, 1, rng)


# --------------------------------------------------------------------------
# Lemma 2 and the raw moments
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind,reference", [("trig", P.mse_trig), ("positive", P.mse_positive),
                                            ("hyperbolic", P.mse_hyperbolic)])
def test_lemma2_matches_the_reference_closed_forms(kind, reference):
    for g in pairs():
        for m in (1, 4, 33):
            assert C.lemma2_mse(kind, g, m) == pytest.approx(float(reference(g.x, g.y, m)),
                                                             rel=1e-12)


@pytest.mark.parametrize("kind", C.KINDS)
def test_lemma2_equals_the_raw_moment_route(kind):
    for g in pairs(d=3, seed=4):
        mom = C.iid_estimator_moments(kind, g, 8)
        assert mom.mean == pytest.approx(g.sm, rel=1e-12)          # unbiased
        assert mom.mse == pytest.approx(C.lemma2_mse(kind, g, 8), rel=1e-10)
        assert mom.variance == pytest.approx(mom.mse, rel=1e-10)
        assert mom.sq_error_variance > 0


def test_lemma2_known_values_by_hand():
    g = C.pair_geometry([0.5, 0.0], [0.5, 0.0])                     # x = y: s = 1, t = 0
    assert C.lemma2_mse("trig", g, 4) == 0.0
    # s = 1, SM = e^{1/4}: (1/2) e^1 e^{1/2} (1 - e^{-1})
    assert C.lemma2_mse("positive", g, 2) == pytest.approx(math.e * math.exp(0.5)
                                                           * (1 - math.exp(-1)) / 2)
    g = C.pair_geometry([0.5, 0.0], [-0.5, 0.0])                    # x = -y: s = 0
    assert C.lemma2_mse("positive", g, 3) == 0.0
    assert C.lemma2_mse("hyperbolic", g, 3) == 0.0


def test_raw_moments_by_hand():
    g = C.pair_geometry([0.3, 0.1], [0.2, -0.4])
    for kind in C.KINDS:
        assert float(C.term_raw_moment(kind, 0, g)) == pytest.approx(1.0)
        assert float(C.term_raw_moment(kind, 1, g)) == pytest.approx(g.sm, rel=1e-13)
    assert float(C.term_raw_moment("positive", 2, g)) == pytest.approx(
        g.lam ** 2 * math.exp(2 * g.s), rel=1e-13)
    # trig: E[Lambda^-2 cos^2] = Lambda^-2 (1 + e^{-2t}) / 2
    assert float(C.term_raw_moment("trig", 2, g)) == pytest.approx(
        g.lam ** -2 * (1 + math.exp(-2 * g.t)) / 2, rel=1e-13)
    # hyperbolic: E[Lambda^2 cosh^2] = Lambda^2 (e^{2s} + 1) / 2
    assert float(C.term_raw_moment("hyperbolic", 2, g)) == pytest.approx(
        g.lam ** 2 * (math.exp(2 * g.s) + 1) / 2, rel=1e-13)


def test_fourth_moment_matches_the_reference_positive_moments():
    for g in pairs(seed=7):
        mine = C.iid_estimator_moments("positive", g, 6)
        theirs = P.variance_moments(g.x, g.y, 6)
        assert mine.sq_error_variance == pytest.approx(float(theirs.squared_error_variance),
                                                       rel=1e-9)


def test_kind_is_validated():
    g = pairs(count=1)[0]
    with pytest.raises(ValueError, match="kind: expected one of"):
        C.lemma2_mse("relu", g, 2)
    with pytest.raises(ValueError, match="kind"):
        C.term_raw_moment("cos", 2, g)


def test_trig_moments_by_monte_carlo():
    g = C.pair_with(0.4, 1.2, 3, np.random.default_rng(3))
    w = np.random.default_rng(5).standard_normal((400_000, 3))
    terms = math.exp((g.s + g.t) / 4) * np.cos(w @ (g.x - g.y))     # one-vector terms
    for k in (1, 2, 3, 4):
        se = np.std(terms ** k) / math.sqrt(terms.size)
        assert abs(np.mean(terms ** k) - float(C.term_raw_moment("trig", k, g))) < 5 * se


# --------------------------------------------------------------------------
# orthogonal features
# --------------------------------------------------------------------------

def test_joint_mgf_single_row_and_pairs():
    for d in (1, 2, 5):
        for s in (0.0, 0.4, 2.0):
            for p in (1, 2, 3):
                assert C.orthogonal_joint_mgf((p,), s, d) == pytest.approx(
                    math.exp(p * p * s / 2), rel=1e-12)
    for d in (2, 3, 8):
        assert C.orthogonal_joint_mgf((1, 1), 0.7, d) == pytest.approx(
            special.hyp1f1(d, d / 2, 0.35), rel=1e-12)
    for d in (3, 8):
        # equal weights on k rows: 1F1(k d/2; d/2; s/2)
        assert C.orthogonal_joint_mgf((1, 1, 1), 0.7, d) == pytest.approx(
            special.hyp1f1(1.5 * d, d / 2, 0.35), rel=1e-12)
    assert C.orthogonal_joint_mgf((0, 0), 1.0, 3) == 1.0
    assert C.orthogonal_joint_mgf((2, 0, 1), 0.5, 3) == C.orthogonal_joint_mgf((2, 1), 0.5, 3)


def test_joint_mgf_rejects_more_rows_than_a_block():
    with pytest.raises(ValueError, match="powers: at most d = 2"):
        C.orthogonal_joint_mgf((1, 1, 1), 0.5, 2)


@pytest.mark.parametrize("p1,p2", [(1, 1), (2, 1), (3, 1), (2, 2)])
def test_joint_mgf_against_numerical_integration_in_two_dimensions(p1, p2):
    """d = 2: w_1 = rho_1 (cos a, sin a), w_2 = +-rho_2 (-sin a, cos a), rho_i ~ chi_2."""
    s = 0.6
    r = math.sqrt(s)

    def rayleigh_mgf(b):                     # E exp(b rho), rho ~ chi_2 (Rayleigh)
        return 1 + b * math.exp(b * b / 2) * math.sqrt(math.pi / 2) * (1 + math.erf(b / math.sqrt(2)))

    def integrand(a):
        first = rayleigh_mgf(p1 * r * math.cos(a))
        second = 0.5 * (rayleigh_mgf(-p2 * r * math.sin(a)) + rayleigh_mgf(p2 * r * math.sin(a)))
        return first * second / (2 * math.pi)

    value, _ = integrate.quad(integrand, 0, 2 * math.pi, epsabs=1e-13, epsrel=1e-13)
    assert C.orthogonal_joint_mgf((p1, p2), s, 2) == pytest.approx(value, rel=1e-9)


def test_orthogonal_moments_match_the_exact_mse_and_the_reference():
    for d in (2, 4, 6):
        for m in (1, d - 1, d, d + 1, 2 * d + 1):
            if m < 1:
                continue
            g = C.pair_with(0.7, 0.4, d, np.random.default_rng(m))
            mom = C.orthogonal_estimator_moments(g, m, d)
            exact = C.orthogonal_mse_exact(g, m, d)
            assert mom.mse == pytest.approx(exact, rel=1e-10)
            assert exact == pytest.approx(float(P.mse_orthogonal_exact(g.x, g.y, m)), rel=1e-10)
            assert mom.mean == pytest.approx(g.sm, rel=1e-12)
            assert mom.sq_error_variance > 0


def test_orthogonal_moments_reduce_to_iid_in_one_dimension():
    """d = 1: every block is one row, so the rows are independent N(0, 1)."""
    g = C.pair_geometry([0.4], [0.3])
    for m in (1, 3, 7):
        ort = C.orthogonal_estimator_moments(g, m, 1)
        iid = C.iid_estimator_moments("positive", g, m)
        assert ort.mse == pytest.approx(iid.mse, rel=1e-10)
        assert ort.sq_error_variance == pytest.approx(iid.sq_error_variance, rel=1e-9)


def test_orthogonal_fourth_moment_by_monte_carlo():
    d, m = 3, 3
    g = C.pair_with(0.3, 0.3, d, np.random.default_rng(2))
    rng = np.random.default_rng(11)
    n = 60_000
    w = np.stack([P.orthogonal_gaussian(m, d, rng) for _ in range(n)])   # (n, m, d)
    est = np.mean(g.lam * np.exp(w @ (g.x + g.y)), axis=-1)             # (n,)
    sq = (est - g.sm) ** 2
    mom = C.orthogonal_estimator_moments(g, m, d)
    assert abs(sq.mean() - mom.mse) < 5 * math.sqrt(mom.sq_error_variance / n)
    fourth = sq ** 2
    assert abs(fourth.mean() - (mom.sq_error_variance + mom.mse ** 2)) < \
        5 * fourth.std() / math.sqrt(n)


def test_theorem2_bound_matches_the_reference_and_holds():
    for d in (2, 5):
        g = C.pair_with(1.0, 0.5, d, np.random.default_rng(d))
        for m in range(1, 3 * d):
            bound = C.theorem2_bound(g, m, d)
            assert bound == pytest.approx(float(P.mse_orthogonal_bound(g.x, g.y, m)), rel=1e-10)
            assert C.orthogonal_mse_exact(g, m, d) <= bound * (1 + 1e-12)
            if m <= d:
                assert C.theorem2_bound(g, m, d, as_worded=True) == pytest.approx(bound)


def test_theorem2_as_worded_fails_beyond_one_block():
    g = C.pair_with(0.05, 0.5, 2, np.random.default_rng(0))
    assert C.orthogonal_mse_exact(g, 4, 2) > C.theorem2_bound(g, 4, 2, as_worded=True)


def test_same_block_pairs_by_hand():
    assert C.same_block_pairs(3, 4) == 6
    assert C.same_block_pairs(4, 4) == 12
    assert C.same_block_pairs(9, 4) == 2 * 12 + 0
    assert C.same_block_pairs(10, 4) == 24 + 2


def test_smreg_matches_the_reference_and_is_below_sm():
    for d in (1, 3, 8):
        g = C.pair_with(1.5, 0.0, d, np.random.default_rng(d))
        assert C.smreg(g, d) == pytest.approx(float(P.smreg_kernel(g.x, g.y)), rel=1e-12)
        assert C.smreg(g, d) <= g.sm


def test_smreg_variance_by_monte_carlo():
    d, m = 4, 6
    g = C.pair_with(2.0, 0.5, d, np.random.default_rng(4))
    rng = np.random.default_rng(9)
    n = 40_000
    w = np.stack([P.orthogonal_gaussian(m, d, rng, scaling="fixed") for _ in range(n)])
    est = np.mean(g.lam * np.exp(w @ (g.x + g.y)), axis=-1)             # (n,)
    var = C.smreg_estimator_variance(g, m, d)
    assert abs(est.mean() - C.smreg(g, d)) < 5 * math.sqrt(var / n)
    assert np.var(est) == pytest.approx(var, rel=0.05)


# --------------------------------------------------------------------------
# attention-matrix error
# --------------------------------------------------------------------------

def test_frobenius_moments_of_one_entry_are_the_squared_error_moments():
    g = C.pair_with(0.6, 0.3, 4, np.random.default_rng(1))
    mean, var = C.frobenius_error_moments(g.x[None], g.y[None], 8)
    mom = C.iid_estimator_moments("positive", g, 8)
    assert mean == pytest.approx(mom.mse, rel=1e-10)
    assert var == pytest.approx(mom.sq_error_variance, rel=1e-7)


def test_frobenius_mean_is_the_sum_of_lemma2():
    rng = np.random.default_rng(2)
    q, k = 0.4 * rng.standard_normal((3, 4)), 0.4 * rng.standard_normal((5, 4))
    mean, var = C.frobenius_error_moments(q, k, 16)
    lemma = sum(C.lemma2_mse("positive", C.pair_geometry(qi, kj), 16) for qi in q for kj in k)
    assert mean == pytest.approx(lemma, rel=1e-12)
    assert var > 0


def test_frobenius_variance_of_repeated_entries_is_exact():
    """Two equal queries: F = 2 (A_hat - A)^2, so Var F = 4 Var (A_hat - A)^2."""
    g = C.pair_with(0.5, 0.2, 3, np.random.default_rng(6))
    mean, var = C.frobenius_error_moments(np.stack([g.x, g.x]), g.y[None], 5)
    mom = C.iid_estimator_moments("positive", g, 5)
    assert mean == pytest.approx(2 * mom.mse, rel=1e-10)
    assert var == pytest.approx(4 * mom.sq_error_variance, rel=1e-7)


def test_frobenius_variance_by_monte_carlo():
    rng = np.random.default_rng(3)
    q, k = 0.12 * rng.standard_normal((2, 3)), 0.12 * rng.standard_normal((3, 3))
    m, n = 2, 200_000
    w = rng.standard_normal((n, m, 3))
    a = np.exp(q @ k.T)
    qf = np.exp(np.einsum("nmd,ld->nlm", w, q) - 0.5 * np.sum(q * q, -1)[None, :, None])
    kf = np.exp(np.einsum("nmd,ld->nlm", w, k) - 0.5 * np.sum(k * k, -1)[None, :, None])
    frob = np.sum((qf @ np.swapaxes(kf, -1, -2) / m - a) ** 2, axis=(-2, -1))
    mean, var = C.frobenius_error_moments(q, k, m)
    assert abs(frob.mean() - mean) < 5 * math.sqrt(var / n)
    assert np.var(frob) == pytest.approx(var, rel=0.05)


def test_linearised_output_mse_scales_and_vanishes_for_constant_values():
    rng = np.random.default_rng(4)
    q, k = 0.3 * rng.standard_normal((3, 4)), 0.3 * rng.standard_normal((5, 4))
    v = rng.standard_normal((5, 2))
    assert C.linearised_output_mse(q, k, v, 10) == pytest.approx(
        4 * C.linearised_output_mse(q, k, v, 40))
    assert C.linearised_output_mse(q, k, np.ones((5, 2)), 10) == pytest.approx(0.0, abs=1e-15)


# --------------------------------------------------------------------------
# the normalised-output MSE ratio (claim 15, second part)
# --------------------------------------------------------------------------

def test_output_error_range_by_hand():
    v = np.array([[1.0, 0.0], [-1.0, 2.0], [0.0, 1.0]])
    exact = np.array([[0.5, 1.0]])
    # column 0 reaches max(0.5 + 1, 1 - 0.5) = 1.5; column 1 max(1 - 0, 2 - 1) = 1
    assert C.output_error_range(exact, v) == pytest.approx((1.5 ** 2 + 1.0) / 2, rel=1e-12)
    assert C.output_error_range(exact, v) <= np.mean(np.ptp(v, axis=0) ** 2)
    assert 0 < C.hull_pad(v) < 1e-13


def test_output_errors_by_hand():
    v = np.array([[1.0, 0.0], [-1.0, 2.0], [0.0, 1.0]])
    exact = np.array([[0.5, 1.0]])
    a_hat = np.array([[[1.0, 1.0, 2.0]],                 # o_hat = (0, 1)
                      [[1.0, 0.0, 0.0]],                 # o_hat = v_1 = (1, 0)
                      [[0.0, 0.0, 0.0]]])                # no normaliser
    err, inside = C.output_errors(a_hat[:2], v, exact)
    np.testing.assert_allclose(err, [(0.25 + 0.0) / 2, (0.25 + 1.0) / 2], rtol=1e-14)
    assert inside
    assert np.all(err <= C.output_error_range(exact, v))
    err, inside = C.output_errors(a_hat, v, exact)
    assert err[2] == math.inf and not inside
    negative = np.array([[[2.0, -0.5, 0.0]]])            # a negative weight: o_hat = (5/3, -2/3)
    assert not C.output_errors(negative, v, exact)[1]


def test_two_key_case_has_the_stated_geometry():
    qs, ks, v = C.two_key_case()
    z = qs + ks                                                          # (2, 2)
    np.testing.assert_allclose(z, [[0.0, 1.0], [0.0, -1.0]])             # +-sqrt(s) e_2
    exact = C.exact_output(qs, ks, v)
    assert exact.shape == (1, 1) and abs(exact[0, 0]) < 1e-15
    assert C.output_error_range(exact, v) == pytest.approx(1.0, rel=1e-12)
    for m in (64, 256):                                                  # first order sinh(s)/m
        assert C.linearised_output_mse(qs, ks, v, m) == pytest.approx(math.sinh(1.0) / m)


def test_attention_matrix_estimates_match_the_features_of_each_matrix(ref):
    rng = np.random.default_rng(9)
    qs, ks = 0.4 * rng.standard_normal((2, 3)), 0.4 * rng.standard_normal((4, 3))
    ws = rng.standard_normal((5, 6, 3))
    a_hat = C.attention_matrix_estimates(ref, qs, ks, 5, C.stacked_draws(ws), 6)
    assert a_hat.shape == (5, 2, 4)
    for j in range(5):
        expected = P.random_features(qs, ws[j]) @ P.random_features(ks, ws[j]).T
        np.testing.assert_allclose(a_hat[j], expected, rtol=1e-12)


def _two_key_errors(m, n, rng):
    """Draws of err for the two-key case from its one-dimensional law.

    ``phi(q')_r phi(k'_{1,2})_r = e^{-b^2} e^{+-t_r - s/2}`` with ``t_r = sqrt(s)
    w_r^T e_2 ~ N(0, s)``, so ``o_hat = sum sinh(t_r) / sum cosh(t_r)`` and
    ``err = o_hat^2`` (``v = (1, -1)``, exact output 0), here with ``s = 1``.
    """
    out = []
    for start in range(0, n, 8192):                       # chunks keep the arrays small
        e = np.exp(math.sqrt(C.RATIO_S) * rng.standard_normal((min(8192, n - start), m)))
        up, down = e.sum(axis=1), (1.0 / e).sum(axis=1)  # sums of e^{+-t_r}
        out.append(((up - down) / (up + down)) ** 2)
    return np.concatenate(out)


def test_two_key_law_matches_the_sampled_errors(ref):
    rng = np.random.default_rng(10)
    qs, ks, v = C.two_key_case()
    a_hat = C.attention_matrix_estimates(ref, qs, ks, 4000, C.iid_draws(64, 2, rng), 64)
    err, inside = C.output_errors(a_hat, v, C.exact_output(qs, ks, v))
    law = _two_key_errors(64, 4000, np.random.default_rng(11))
    assert inside
    sd = math.sqrt((np.var(err) + np.var(law)) / 4000)
    assert abs(err.mean() - law.mean()) < 6 * sd


def test_ratio_decision_accepts_the_true_errors_and_rejects_a_ratio_of_two():
    rng = np.random.default_rng(12)
    e64, e256 = _two_key_errors(64, 60_000, rng), _two_key_errors(256, 150_000, rng)
    ok = C.output_mse_ratio_test(e64, e256, 1.0, 1.0, 4e-7, "ratio")
    assert ok.passed and ok.test.inside
    assert 3.5 < ok.test.estimate < 4.1 and ok.ratio == 0.0
    # the m = 256 errors doubled: ratio ~1.9, an error that does not decay like 1/m
    bad = C.output_mse_ratio_test(e64, 2.0 * e256, 1.0, 2.0, 4e-7, "ratio")
    assert not bad.passed and bad.ratio > 1
    assert bad.test.interval[1] < 3.0
    ev = C.statistical_evidence([bad], detail="x.")
    assert not ev.passed and "is disjoint from [3, 5]" in ev.detail
    assert ev.statistics["ratio"]["passed"] is False


def test_ratio_gate_rejects_the_capped_features_mutant(ref):
    mutant = next(mu for mu in MUTANTS if mu.name == "features_capped_at_64").build(ref)
    qs, ks, v = C.two_key_case()
    exact = C.exact_output(qs, ks, v)
    rng = np.random.default_rng(13)
    errs = {}
    for m, n in ((64, 20_000), (256, 40_000)):
        a_hat = C.attention_matrix_estimates(mutant, qs, ks, n, C.iid_draws(m, 2, rng), m)
        errs[m], inside = C.output_errors(a_hat, v, exact)
        assert inside                                    # still convex: only the rate is wrong
    test = C.output_mse_ratio_test(errs[64], errs[256], 1.0, 1.0, 4e-7, "ratio")
    assert not test.passed and test.test.interval[1] < 2.0


# --------------------------------------------------------------------------
# replicates, draws, sampler calls
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", C.KINDS)
def test_embedding_gives_each_replicate_its_own_matrix(kind):
    rng = np.random.default_rng(5)
    r, p, d, m = 3, 2, 4, 5
    x = rng.standard_normal((r, p, d))
    ws = rng.standard_normal((r, m, d))
    big = np.concatenate(list(ws), axis=1)                              # (m, r d)
    feats = P.random_features(C.embed_rows(x), big, kind)               # (r, P, F)
    for j in range(r):
        np.testing.assert_allclose(feats[j], P.random_features(x[j], ws[j], kind), rtol=1e-13)
    same = C.embed_replicates(x[0], r)
    assert same.shape == (r, p, r * d)
    np.testing.assert_array_equal(same[1, :, d:2 * d], x[0])
    assert np.count_nonzero(same[1, :, :d]) == 0


def test_sm_estimates_shape_and_values(ref):
    rng = np.random.default_rng(6)
    xs, ys = 0.5 * rng.standard_normal((2, 3)), 0.5 * rng.standard_normal((2, 3))
    ws = rng.standard_normal((7, 4, 3))
    est = C.sm_estimates(ref, "positive", xs, ys, 7, C.stacked_draws(ws), 4)
    assert est.shape == (7, 2)
    for j in range(7):
        np.testing.assert_allclose(est[j], P.sm_estimate(xs, ys, ws[j], "positive"), rtol=1e-12)


def test_stacked_draws_hand_out_in_order():
    ws = np.arange(2 * 3 * 5, dtype=float).reshape(5, 2, 3)
    draw = C.stacked_draws(ws)
    first = draw(2)
    np.testing.assert_array_equal(first, np.concatenate([ws[0], ws[1]], axis=1))
    np.testing.assert_array_equal(draw(3)[:, :3], ws[2])


def test_sampler_matrix_checks_the_subject_and_honours_the_seed_convention(ref):
    rng = np.random.default_rng(0)
    assert C.sampler_matrix(ref, 5, 3, rng).shape == (5, 3)
    bad = ref.replace(orthogonal_gaussian=lambda m, d, rng, **kw: np.ones((m + 1, d)))
    with pytest.raises(ValueError, match=r"orthogonal_gaussian: expected a finite \(5, 3\)"):
        C.sampler_matrix(bad, 5, 3, rng)
    seen = []

    def by_seed(m, d, seed, *, scaling="chi"):
        seen.append(seed)
        return P.orthogonal_gaussian(m, d, np.random.default_rng(seed), scaling=scaling)
    seeded = Subject("seeded", {"orthogonal_gaussian": by_seed}, {"rng": "seed"})
    assert C.sampler_matrix(seeded, 2, 2, rng).shape == (2, 2)
    assert isinstance(seen[0], int)


def test_features_shape_is_checked(ref):
    bad = ref.replace(random_features=lambda x, w, kind="positive", **kw: np.ones((2, 2)))
    with pytest.raises(ValueError, match="random_features: expected shape"):
        C.subject_features(bad, np.ones((3, 2)), np.ones((4, 2)), "positive")


def test_reps_per_call_is_bounded():
    assert C.reps_per_call(4, 1) == 64
    assert C.reps_per_call(4, 36) == 33
    assert C.reps_per_call(4096, 10_000) == 4


def test_explicit_favor_matches_the_reference_explicit_form(ref):
    rng = np.random.default_rng(8)
    for causal in (False, True):
        c = {"d": 4, "m": 6, "kind": "positive", "dtype": np.dtype(np.float64),
             "q": 0.5 * rng.standard_normal((2, 5, 4)), "k": 0.5 * rng.standard_normal((2, 5, 4)),
             "v": rng.standard_normal((2, 5, 3)), "w": rng.standard_normal((6, 4))}
        mask = rng.random((2, 5)) < 0.7
        mask[:, 0] = True
        ours = C.explicit_favor(ref, c, causal=causal, mask=mask)
        theirs = P.favor_attention_explicit(c["q"], c["k"], c["v"], c["w"], causal=causal,
                                            mask=mask)
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------
# statistics helpers
# --------------------------------------------------------------------------

def test_hoeffding_tail_values_and_errors():
    assert hoeffding_tail(100, 0.1) == pytest.approx(math.exp(-2.0))
    assert hoeffding_tail(5, 0.0) == 1.0
    assert hoeffding_tail(5, -0.3) == 1.0
    with pytest.raises(TypeError, match="n: expected an integer"):
        hoeffding_tail(10.0, 0.1)
    with pytest.raises(TypeError, match="n: expected an integer"):
        hoeffding_tail(True, 0.1)
    with pytest.raises(ValueError, match="n: expected an integer >= 1"):
        hoeffding_tail(0, 0.1)
    with pytest.raises(ValueError, match="deviation: expected a finite number"):
        hoeffding_tail(10, math.nan)


def test_wrapped_normal_distance():
    assert C.wrapped_normal_tv(6.0) == pytest.approx(math.exp(-18), rel=1e-6)
    assert C.wrapped_normal_tv(1.0) > C.wrapped_normal_tv(2.0) > 0


def test_one_sided_tests_and_evidence():
    samples = np.full(1000, 2.0)
    upper = C.mean_test("bound", samples, 2.5, 1.0, MAX_FALSE_FAILURE, sided="upper")
    assert upper.passed                                     # mean below the bound
    assert C.mean_test("bound", samples, 1.0, 1e-4, MAX_FALSE_FAILURE, sided="upper").passed \
        is False
    two = C.mean_test("mean", samples, 2.5, 1e-4, MAX_FALSE_FAILURE)
    ev = C.statistical_evidence([upper, two], detail="x.", checks=[(True, "fine")])
    assert not ev.passed and "mean: estimate 2" in ev.detail
    assert ev.statistics["bound"]["method"].endswith("upper bound on the mean")
    ok = C.statistical_evidence([upper], detail="x.", checks=[(False, "a check broke")])
    assert not ok.passed and "a check broke" in ok.detail


def test_mc_size_scales_with_the_profile():
    class Ctx:
        class profile:
            mc_scale = 8
    assert C.mc_size(Ctx, 10, 1) == math.ceil(8 * math.log(1e6)) * 10 * 8


def test_central_moments_from_raw_moments():
    mu, mu2, mu4 = C.central_moments(lambda k: mpmath.mpf([1, 2, 5, 14, 50][k]))
    assert (float(mu), float(mu2), float(mu4)) == (2.0, 1.0, 50 - 4 * 2 * 14 + 6 * 4 * 5 - 3 * 16)


# --------------------------------------------------------------------------
# the registry and the mutants
# --------------------------------------------------------------------------

def test_every_brief_claim_is_registered_with_known_needs_and_proofs():
    found = {c.id: c for c in registry.find("performer.*")}
    assert set(found) == BRIEF_IDS
    import transformer_theory.proofs  # noqa: F401  (registers the derivations)
    for c in found.values():
        assert set(c.needs) <= set(CALLABLES), c.id
        assert c.sources, c.id
        if c.proof:
            assert c.proof in proof_registry.DERIVATIONS, c.id
    assert found["performer.sequence_stabilizer_leaks"].kind is Kind.LIMITATION
    statistical = {c.id for c in found.values() if c.kind is Kind.STATISTICAL}
    assert "performer.orthogonal_features" in statistical


def test_every_performer_claim_has_a_mutant():
    named = {cid for m in MUTANTS for cid in m.claims}
    assert BRIEF_IDS <= named
    required = {"qr_without_sign_fix", "orthogonal_unit_norms", "trig_without_h",
                "missing_half_norm", "sequence_key_stabilizer", "missing_normalizer"}
    assert required <= {m.name for m in MUTANTS}


def test_separating_points_tell_orthogonal_from_iid_rows():
    """At each Monte Carlo point of Theorem 2's claims the iid MSE is SEPARATION half-widths
    from the exact orthogonal MSE, more than h + h_iid (so iid rows fail w.p. >= 1 - delta)."""
    from types import SimpleNamespace

    from transformer_theory.theory.claims.performer import orthogonal as O
    from transformer_theory.theory.statistics import mom_groups

    ctx = SimpleNamespace(profile=SimpleNamespace(mc_scale=1))
    for d, m, s in (O._EXACT_POINT, O._BOUND_POINT):
        g = C.pair_with(s, 0.5, d, np.random.default_rng(0))
        point = O._SeparatingPoint.sized(ctx, g, m, d, MAX_FALSE_FAILURE / 2)
        b = point.samples // mom_groups(MAX_FALSE_FAILURE / 2)
        h = 2 * math.sqrt(point.sq_error_variance / b)
        h_iid = 2 * math.sqrt(point.iid_sq_error_variance / b)
        gap = point.iid - point.exact
        assert point.exact == pytest.approx(C.orthogonal_mse_exact(g, m, d), rel=1e-9)
        assert point.iid == pytest.approx(C.lemma2_mse("positive", g, m), rel=1e-9)
        assert O.SEPARATION <= gap / h < O.SEPARATION * 1.01
        assert gap > h + h_iid
        assert point.exact <= C.theorem2_bound(g, m, d)
