"""Performer random features for the softmax kernel, and FAVOR+ attention.

The softmax kernel ``SM(x, y) = exp(x^T y)`` is an expectation over a Gaussian
vector ``omega ~ N(0, I_d)``, so a feature map ``phi`` built from ``m`` random
vectors (the rows of ``W``, shape ``(m, d)``) gives an unbiased estimate
``phi(x)^T phi(y)`` of it. Three maps are implemented:

* ``"trig"``       -- ``h(x) / sqrt(m) [sin(W x), cos(W x)]`` with
  ``h(x) = exp(||x||^2 / 2)``; feature dimension ``2m``;
* ``"positive"``   -- ``exp(W x - ||x||^2 / 2) / sqrt(m)``; dimension ``m``;
* ``"hyperbolic"`` -- ``exp(+-W x - ||x||^2 / 2) / sqrt(2m)`` (the ``+``
  block, then the ``-`` block); dimension ``2m``.

FAVOR+ (Fast Attention Via positive Orthogonal Random features) replaces the
``L x L`` attention matrix ``A = exp(Q K^T / sqrt(d))`` by ``Q' K'^T`` with
``Q' = phi(Q d^{-1/4})`` and ``K' = phi(K d^{-1/4})`` and reassociates the
products, so that bidirectional attention costs ``O(L m d)`` and causal
attention is a prefix sum (a scan) over the sequence.

The code is in four modules, one per job, gathered here (every name is
re-exported, so ``from transformer_theory.impl import performer as P`` works as
it always has):

* :mod:`.performer_matrices` -- the random matrices ``W``: iid Gaussian,
  block-orthogonal (chi or fixed norms), redrawing;
* :mod:`.performer_features` -- the feature maps, their stabiliser and the
  estimate ``phi(x)^T phi(y)``;
* :mod:`.performer_favor` -- FAVOR+ attention, bidirectional, unidirectional
  (a chunked scan) and recurrent, and the explicit ``O(L^2)`` form;
* :mod:`.performer_analytic` -- the closed forms: the kernels SM and SMREG,
  the mean squared errors of Lemma 2 and Theorem 2, the exact MSE of
  block-orthogonal positive features, the moments of the positive estimator.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR 2021
(arXiv:2009.14794): §2.2 (kernelised attention, Eq. (4)), §2.3 (Lemma 1:
positive and hyperbolic random features), §2.4 (orthogonal random features),
§3 (Lemma 2: their MSE; Theorem 2), Appendix B (Algorithm 1: FAVOR+, bi- and
unidirectional; B.1: prefix sums).
Rahimi & Recht 2007, Random Features for Large-Scale Kernel Machines (the
trigonometric features). Yu et al. 2016, Orthogonal Random Features (chi-norm
orthogonal blocks). Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): the
trigonometric and positive feature maps and the trigonometric MSE.
"""

from __future__ import annotations

from .contract.validate import FEATURE_KINDS  # noqa: F401  (re-exported)
from .performer_analytic import (  # noqa: F401  (re-exported)
    PositiveEstimatorMoments,
    mse_hyperbolic,
    mse_orthogonal_bound,
    mse_orthogonal_exact,
    mse_positive,
    mse_trig,
    positive_term_moment,
    sm_kernel,
    smreg_kernel,
    variance_moments,
)
from .performer_favor import (  # noqa: F401  (re-exported)
    KEY_STABILIZERS,
    favor_attention,
    favor_attention_explicit,
    favor_attention_recurrent,
)
from .performer_features import (  # noqa: F401  (re-exported)
    feature_dimension,
    feature_max_stabilizer,
    random_features,
    regularized_features,
    sm_estimate,
)
from .performer_matrices import (  # noqa: F401  (re-exported)
    gaussian_matrix,
    orthogonal_gaussian,
    redraw_features,
)

__all__ = [
    "FEATURE_KINDS",
    "KEY_STABILIZERS",
    "feature_dimension",
    "sm_kernel",
    "smreg_kernel",
    "gaussian_matrix",
    "orthogonal_gaussian",
    "redraw_features",
    "feature_max_stabilizer",
    "random_features",
    "regularized_features",
    "sm_estimate",
    "mse_trig",
    "mse_positive",
    "mse_hyperbolic",
    "mse_orthogonal_exact",
    "mse_orthogonal_bound",
    "positive_term_moment",
    "PositiveEstimatorMoments",
    "variance_moments",
    "favor_attention",
    "favor_attention_explicit",
    "favor_attention_recurrent",
]
