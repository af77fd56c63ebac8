"""Performer random features and FAVOR+ attention: the exact statistics of the
estimators, the identities of the algorithm, and the mistakes real
implementations make.

The softmax kernel ``SM(x, y) = exp(x^T y)`` is the mean of
``exp(w^T x - ||x||^2/2) exp(w^T y - ||y||^2/2)`` over ``w ~ N(0, I_d)``, so
``m`` random vectors (the rows of ``W``) give an unbiased estimate
``phi(x)^T phi(y)``. Throughout, ``s = ||x + y||^2``, ``t = ||x - y||^2``,
``Lambda = exp(-(||x||^2 + ||y||^2)/2) = exp(-(s + t)/4)`` and
``SM = Lambda e^{s/2}``.

What the claims need from a subject (the Performer contract of
``theory.subject.CALLABLES``):

* ``random_features(x, w, kind=..., *, stabilizer=None)`` -- trig, positive
  and hyperbolic feature maps (``m`` or ``2m`` features);
* ``orthogonal_gaussian(m, d, rng, *, scaling='chi'|'fixed')`` -- block
  orthogonal random vectors;
* ``favor_attention(q, k, v, w, *, causal=False, kind=..., mask=None)`` and
  ``favor_attention_recurrent(q, k, v, w, *, kind=...)``.

The package, by job:

* :mod:`.sources` -- the works cited, the error budget ``DELTA``, ``KINDS``;
* :mod:`transformer_theory.impl.performer_formulas` (not here: the one home of
  the analytic statements, Lemma 2, Theorem 2, the exact block-orthogonal MSE
  and SMREG, shared with the reference implementation);
* :mod:`.moments` -- exact moments of the estimators (the variances the
  Monte Carlo intervals are computed from);
* :mod:`.sampling` -- inputs, random matrices and estimates in bulk through
  the subject (independent replicates in one call);
* the claims: :mod:`.estimators` (1-4: unbiasedness, Lemma 2, hyperbolic
  against positive, the regimes), :mod:`.normalizers` (5), :mod:`.orthogonal`
  (6-8: the sampler, the exact MSE, Theorem 2, SMREG), :mod:`.favor` (9-14:
  FAVOR+ identities, causality, padding, normalisation) and
  :mod:`.error_rate` (15: the attention error against ``m``).

Statistical claims state a false-failure probability of at most ``1e-6``
(:data:`~transformer_theory.theory.statistics.MAX_FALSE_FAILURE`), split over
their individual tests by the union bound, and build their evidence with
:func:`~transformer_theory.theory.statistics.statistical_evidence`. Means are
tested by median of means with the *exact* variance of what is averaged. The
chi-norm test is Kolmogorov-Smirnov, sign tests are exact binomial tests and
the trigonometric-normaliser fraction uses Hoeffding's inequality. The
normalised-output error of claim 15 has no exact variance, but it is bounded,
so its mean gets an empirical Bernstein interval (Maurer & Pontil 2009,
Theorem 4) from that range.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR: §2.1
and Appendix B.1 (prefix sums), §2.2 (Eq. (4)), §2.3 (Lemma 1, the hyperbolic
variant, the regularized softmax-kernel SMREG), §2.4 (orthogonal random
features), §3 (Lemma 2; Theorem 1, SMREG <= SM; Theorem 2), Appendix B
(Algorithm 1, FAVOR+ bi- and unidirectional).
Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): the trigonometric and
positive features, the trigonometric MSE and the two regimes.
Rahimi & Recht 2007 (trigonometric features); Yu et al. 2016 (orthogonal
random features); Mezzadri 2007, §5 (the QR sign correction).
"""

from __future__ import annotations

from transformer_theory.impl.performer_formulas import (PairGeometry, lemma2_mse,
                                                        orthogonal_mse_exact, pair_geometry,
                                                        same_block_pairs, smreg, theorem2_bound)

from ...registry import ClaimSet
from ...statistics import mc_size, mean_test, statistical_evidence
from . import error_rate, estimators, favor, normalizers, orthogonal
from .error_rate import (RATIO_S, exact_output, frobenius_error_moments, hull_pad,
                         linearised_output_mse, output_error_range, output_errors,
                         output_mse_ratio_test, two_key_case)
from .favor import explicit_favor
from .moments import (EstimatorMoments, central_moments, iid_estimator_moments,
                      orthogonal_estimator_moments, orthogonal_joint_mgf,
                      smreg_estimator_variance, term_raw_moment)
from .normalizers import wrapped_normal_tv
from .sampling import (attention_matrix_estimates, embed_replicates, embed_rows, iid_draws,
                       pair_with, reps_per_call, sampler_draws, sampler_matrix, sm_estimates,
                       stacked_draws, subject_features)
from .sources import DELTA, KINDS

__all__ = [
    "claims", "DELTA", "KINDS",
    # the statements (impl/performer_formulas.py)
    "PairGeometry", "pair_geometry", "lemma2_mse", "same_block_pairs", "orthogonal_mse_exact",
    "theorem2_bound", "smreg",
    # exact moments
    "EstimatorMoments", "term_raw_moment", "central_moments", "iid_estimator_moments",
    "orthogonal_joint_mgf", "orthogonal_estimator_moments", "smreg_estimator_variance",
    "frobenius_error_moments", "linearised_output_mse", "wrapped_normal_tv",
    # Monte Carlo through the subject
    "pair_with", "embed_rows", "embed_replicates", "reps_per_call", "subject_features",
    "sm_estimates", "iid_draws", "sampler_matrix", "sampler_draws", "stacked_draws",
    "attention_matrix_estimates", "explicit_favor",
    # statistical evidence (theory/statistics.py)
    "mc_size", "mean_test", "statistical_evidence",
    # claim 15
    "RATIO_S", "two_key_case", "exact_output", "hull_pad", "output_error_range",
    "output_errors", "output_mse_ratio_test",
]


def _collect(*sections) -> ClaimSet:
    """One :class:`ClaimSet` with the sections' claims, in the order given."""
    collected = ClaimSet("performer")
    for section in sections:
        for claim in section.claims:
            collected.add(claim)
    return collected


#: Every Performer claim, in report order (claims 1-15 of the sections).
claims = _collect(estimators, normalizers, orthogonal, favor, error_rate)
