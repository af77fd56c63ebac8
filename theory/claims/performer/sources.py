"""The works the Performer claims cite, and the constants they share.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR
(arXiv:2009.14794); the locations checked against the arXiv text: §2.1 (prefix
sums announced, details in Appendix B.1), §2.2 (Eq. (4), the cost O(Lrd)), §2.3
(Lemma 1, SMREG), §2.4 (orthogonal random features), §3 (Lemma 2, Theorem 1,
Theorem 2), Appendix B (Algorithm 1). Seed 002
(shared/seeds/002_c6f7e64caf2ae364.txt). Rahimi & Recht 2007; Yu et al. 2016; Mezzadri 2007; Massey 1951; Maurer & Pontil 2009; Hoeffding 1963;
google-research/performer.
"""

from __future__ import annotations

from transformer_theory.impl.contract.validate import FEATURE_KINDS

from ...claim import Source
from ...sources import CHOROMANSKI_2021, SEED_002
from ...statistics import MAX_FALSE_FAILURE

LEMMA1 = CHOROMANSKI_2021.at("§2.3, Lemma 1")
LEMMA2 = CHOROMANSKI_2021.at("§3, Lemma 2")
HYPERBOLIC = CHOROMANSKI_2021.at("§2.3, Lemma 1: hyperbolic positive random features "
                                 "(their MSE: §3, Lemma 2)")
ORF = CHOROMANSKI_2021.at("§2.4, orthogonal random features")
THEOREM2 = CHOROMANSKI_2021.at("§3, Theorem 2")
SMREG_SOURCE = CHOROMANSKI_2021.at("§2.3 (the regularized softmax-kernel SMREG) and §3, "
                                   "Theorem 1 (SMREG <= SM)")
FAVOR = CHOROMANSKI_2021.at("§2.2, Eq. (4): time O(Lrd), space O(Lr + Ld + rd); Algorithm 1 "
                            "(Appendix B)")
PREFIX = CHOROMANSKI_2021.at("§2.1 and Appendix B.1: unidirectional attention by prefix sums")
INSTABILITY = CHOROMANSKI_2021.at("§2.3: trigonometric features give negative or near-zero "
                                  "normalisers, the reason for positive features")
SEED_TRIG = SEED_002.at("trigonometric features phi(x) and MSE(SM^trig_m)")
SEED_POSITIVE = SEED_002.at("SM(x,y) = E[exp(w^T x - ||x||^2/2) exp(w^T y - ||y||^2/2)], phi^+_m")
SEED_REGIMES = SEED_002.at("trig accurate as x -> y; positive accurate as SM(x, y) -> 0")
SEED_RENORM = SEED_002.at("renormalisation of A by the row sums")

RAHIMI_RECHT_2007 = Source("Rahimi & Recht 2007",
                           "Random Features for Large-Scale Kernel Machines, NeurIPS")
YU_2016 = Source("Yu et al. 2016", "Orthogonal Random Features, NeurIPS")
MEZZADRI_2007 = Source("Mezzadri 2007", "How to Generate Random Matrices from the Classical "
                       "Compact Groups, Notices of the AMS", "§5 (the sign of diag R)")
MASSEY_1951 = Source("Massey 1951", "The Kolmogorov-Smirnov Test for Goodness of Fit, JASA")
MAURER_PONTIL_2009 = Source("Maurer & Pontil 2009", "Empirical Bernstein Bounds and Sample "
                            "Variance Penalization, COLT (arXiv:0907.3740)", "Theorem 4")
HOEFFDING_1963 = Source("Hoeffding 1963", "Probability Inequalities for Sums of Bounded "
                        "Random Variables, JASA", "Theorem 1")
GOOGLE_FAVOR = Source("google-research/performer", "fast_attention (the reference FAVOR+ code)",
                      "softmax_kernel_transformation: the stabiliser max over all keys")


#: Total false-failure probability of every statistical claim of this package.
DELTA = MAX_FALSE_FAILURE

#: The feature maps of Lemma 1 and the trigonometric baseline (the contract's order).
KINDS = FEATURE_KINDS
