r"""The one tolerance policy of the suite.

Every numerical comparison in a claim uses a :class:`Tolerance` from
:func:`tolerance`. A tolerance is ``rtol = c * eps(dtype) * n``: machine epsilon
of the dtype the subject computed in, times the size ``n`` of the reduction
that separates the two computations compared, times a constant ``c`` that is
fixed per *rule* (the kind of comparison). Each rule carries a one-line reason that the report
shows next to the error it bounds.

Errors are measured norm-wise (Higham 2002, *Accuracy and Stability of
Numerical Algorithms*, the error analysis of inner products): ``max|actual - expected| / max(|expected|_max, tiny)``,
i.e. the largest deviation relative to the scale of the quantity. Rounding
errors of sums and dot products are bounded relative to the size of the terms,
not of each element, so this is the quantity the bounds speak about.

Loosening a constant is a deliberate, explained change: edit :data:`RULES` and
say why in its reason.

**Half precision.** For float16 and bfloat16 inputs a fixed table is not
trusted (xformers documents that its per-dtype tables hold only for some
scales). The policy is then the *error-ratio rule* of FlashAttention's tests,
:func:`ratio_tolerance`: the oracle is float64; a naive computation that rounds
to the input dtype after each operation, accumulating in float32
(``theory/rounding_baseline.py``), is run on the same case and the same
comparison; and the subject passes when

.. math::  \mathrm{err}_{\mathrm{subject}} \le k\,\mathrm{err}_{\mathrm{baseline}} + c\,\varepsilon(\mathrm{dtype}),

with :data:`RATIO_K` = 2 and :data:`RATIO_C` = 1 for every claim. The floor
``c eps`` is one rounding step of the quantity's magnitude (FlashAttention's
tests add such a floor, as ``2 max|(out_ref + 0.3 - 0.3) - out_ref|``), so
that comparisons the baseline makes exactly (a permutation, a masked key)
still allow the last bit. For a metamorphic claim (f(PX) against P f(X)) the
baseline's error is its error on that same comparison. Where the baseline
breaks down on a case (its error is infinite: a zero variance, an overflow)
it bounds nothing, and the claim's own rule at the half dtype's epsilon
decides (``checks.for_all``).
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes  # noqa: F401  (registers bfloat16 with np.finfo)
import numpy as np

from .declared import effective_dtype


@dataclass(frozen=True)
class Tolerance:
    """A relative tolerance with its reason.

    Attributes
    ----------
    rtol : float
        Largest allowed norm-wise relative error.
    rule : str
        The policy rule it came from (:data:`RULES`).
    reason : str
        One line: why this much error is legitimate.
    dtype : numpy dtype, optional
        The data's dtype it was asked for, and
    n : int
        the reduction size: kept so that :meth:`refreshed` can re-derive it.
    """

    rtol: float
    rule: str
    reason: str
    dtype: np.dtype | None = None
    n: int = 1

    def refreshed(self) -> "Tolerance":
        """The same policy re-derived now: an output seen coarser since then lowers it.

        A claim often asks for its tolerance before calling the subject; if the
        subject then returns float32 for float64 input, the comparison is made
        in the output's precision (``theory/declared.py``).
        """
        if self.dtype is None or self.rule not in RULES:
            return self
        return tolerance(self.rule, self.dtype, self.n)

    def allows(self, error: float) -> bool:
        return bool(np.isfinite(error) and error <= self.rtol)


@dataclass(frozen=True)
class _Rule:
    c: float
    uses_n: bool
    reason: str


#: The rules: one per kind of comparison, with its constant. ``n`` is the reduction size
#: the caller passes (a dot-product length, a row length, a depth times a width).
RULES: dict[str, _Rule] = {
    "exact": _Rule(
        0.0, False,
        "the two sides perform identical floating-point operations, so they agree bit for bit"),
    "rounding": _Rule(
        16.0, False,
        "a few correctly rounded elementwise operations (exp, division, one product) per entry"),
    "reduction": _Rule(
        4.0, True,
        "sums of n terms in different orders differ by at most about n*eps relative to the "
        "terms (Higham, gamma_n bound), with a margin of 4"),
    "composite": _Rule(
        16.0, True,
        "a composition of reductions (projections, softmax, averages, normalisation), each "
        "within gamma_n; n is the total reduction length through the stack"),
    "ill_conditioned": _Rule(
        64.0, True,
        "a reduction followed by a division by a quantity that may be small (normalisation "
        "of nearly constant rows), which amplifies rounding by its condition number"),
}


#: The error-ratio rule's factor: the subject may be k times as far from float64 as the baseline.
RATIO_K = 2.0
#: The error-ratio rule's floor, in units of the dtype's epsilon (one rounding step).
RATIO_C = 1.0


def eps(dtype) -> float:
    """Machine epsilon of a floating dtype (float32 ~ 1.19e-7, float64 ~ 2.22e-16,
    float16 ~ 9.77e-4, bfloat16 = 2**-7)."""
    return float(np.finfo(np.dtype(dtype)).eps)


def higham_gamma(n: int, dtype=np.float64) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)``, ``u = eps(dtype) / 2``: the relative error of
    ``n`` roundings (a sum of ``n + 1`` terms, a product of ``n + 1`` factors).

    Raises
    ------
    ValueError
        If ``n < 0`` or ``n u >= 1`` (no bound).

    References
    ----------
    Higham 2002, Accuracy and Stability of Numerical Algorithms (the lemma that defines
    ``gamma_n`` as the bound of a product of ``n`` factors ``(1 + d_i)^{+-1}``).
    """
    unit = eps(dtype) / 2
    if n < 0 or n * unit >= 1:
        raise ValueError(f"n: expected 0 <= n < 1/u = {1 / unit:.3g}, got {n}")
    return n * unit / (1 - n * unit)


def tolerance(rule: str, dtype, n: int = 1) -> Tolerance:
    """The tolerance of ``rule`` for data of ``dtype`` over a reduction of size ``n``.

    Parameters
    ----------
    rule : {"exact", "rounding", "reduction", "composite", "ill_conditioned"}
    dtype : numpy dtype
        The dtype the subject computed in (the coarser one if they differ).
        While a claim runs, float64 is held to float32 when the subject
        declared ``compute_dtype`` float32 or returned float32 for float64
        input (:func:`transformer_theory.theory.declared.effective_dtype`).
    n : int
        Size of the reduction (ignored by rules that do not use it).

    Returns
    -------
    Tolerance
    """
    if rule not in RULES:
        raise ValueError(f"rule: expected one of {tuple(RULES)}, got {rule!r}")
    if n < 1:
        raise ValueError(f"n: expected a reduction size >= 1, got {n}")
    spec = RULES[rule]
    held = effective_dtype(dtype)
    scale = spec.c * eps(held) * (n if spec.uses_n else 1)
    reason = spec.reason
    if held != np.dtype(dtype):
        reason += f" (held to {held}: the subject declared or returned {held} precision)"
    return Tolerance(rtol=scale, rule=rule, reason=reason, dtype=np.dtype(dtype), n=n)


def ratio_tolerance(dtype, baseline_error: float) -> Tolerance:
    """The error-ratio rule for half-precision data: ``k * baseline_error + c * eps(dtype)``.

    Parameters
    ----------
    dtype : float16 or bfloat16
        The run's input dtype.
    baseline_error : float
        The naive baseline's error on the same case and comparison, in the
        same norm-wise relative units (:func:`relative_error`).

    Returns
    -------
    Tolerance
        With ``rule="ratio"``.

    References
    ----------
    Dao et al. 2022, FlashAttention, and the tests of its repository: a
    kernel passes when ``max|out - out_ref| <= 2 max|out_pt - out_ref| +
    fwd_atol``, where ``out_ref`` is computed in float32 from the same
    half-precision inputs, ``out_pt`` by the same naive formula in the input
    dtype, and ``fwd_atol = 2 max|(out_ref + 0.3 - 0.3) - out_ref|`` is about
    one rounding step of the output's magnitude.
    """
    base = float(baseline_error)
    if not np.isfinite(base):
        raise ValueError(f"baseline_error: expected a finite error, got {base}")
    rtol = RATIO_K * base + RATIO_C * eps(dtype)
    reason = (f"error-ratio rule at {np.dtype(dtype).name}: at most {RATIO_K:g} x the naive "
              f"{np.dtype(dtype).name} computation's error ({base:.3g}) + {RATIO_C:g} eps")
    return Tolerance(rtol=rtol, rule="ratio", reason=reason, dtype=np.dtype(dtype), n=1)


def rounded_exact_tolerance(dtype, exact_error: float, outputs: float = 2) -> Tolerance:
    """The bound of an implementation that rounds only its outputs: ``e* + (outputs + 1) u``.

    Parameters
    ----------
    dtype : float16 or bfloat16
        The run's input (and output) dtype; ``u = eps(dtype) / 2``.
    exact_error : float
        The error of the exact baseline (the float64 reference on the same
        rounded inputs, ``theory/exact_baseline.py``) on the same case and
        comparison, in the same norm-wise relative units.
    outputs : float
        The subject's rounded outputs that enter the compared quantities (an
        invariance compares two; a score of two rotated vectors against
        another such score, four), each within ``u`` of its exact value; or,
        where the comparison's units are not the outputs' own scale, their
        rounding in those units in multiples of ``u`` (LayerNorm rows divided by
        their condition number, :func:`.claims.normalization.output_roundings`).

    Returns
    -------
    Tolerance
        With ``rule="rounded-exact"``: each rounded output is within ``u`` of
        its exact value (relative to the comparison's scale), and one more ``u``
        bounds a float32 (or wider) computation's own error, ``gamma_n eps_32 kappa <= u`` for
        ``n kappa <= eps(dtype) / (2 eps_32)``.

    References
    ----------
    Higham 2002, Accuracy and Stability of Numerical Algorithms (the standard model of
    arithmetic and the error analysis of inner products).
    """
    base = float(exact_error)
    if not np.isfinite(base):
        raise ValueError(f"exact_error: expected a finite error, got {base}")
    if not (np.isfinite(outputs) and outputs >= 0):
        raise ValueError(f"outputs: expected a finite count >= 0, got {outputs}")
    u = eps(dtype) / 2
    rtol = base + (outputs + 1) * u
    reason = (f"rounded-exact bound at {np.dtype(dtype).name}: the float64 reference's error on "
              f"the same rounded inputs ({base:.3g}) + {outputs:.3g} u of output rounding + 1 u of "
              f"compute error (u = {u:.3g})")
    return Tolerance(rtol=rtol, rule="rounded-exact", reason=reason, dtype=np.dtype(dtype), n=1)


def logit_tolerance(rule: str, dtype, n: int, logit_scale: float) -> Tolerance:
    """``rule``'s tolerance plus the error of logits rounded at their own magnitude.

    A logit ``l`` stored in a floating dtype is known only to ``eps |l|`` (absolute): a sum
    ``s + b`` with a bias of -1e4 rounds at 1e4 ulp. A softmax turns an absolute logit error
    ``d`` (and ``d`` in the row maximum it subtracts) into a relative error of at most
    ``e^(2d) - 1 ~ 2 d`` in each probability, so an average of values moves by ``2 d`` of
    their largest magnitude. Added to the rule's bound with a margin of 2:
    ``rule + 4 eps logit_scale``.

    Parameters
    ----------
    rule : str
        One of :data:`RULES`, for the reductions of the comparison.
    dtype : numpy dtype
    n : int
    logit_scale : float
        The largest ``|logit|`` that carries weight (the caller's float64 definition).

    Returns
    -------
    Tolerance
        With ``rule="logits"``.
    """
    base = tolerance(rule, dtype, n)
    held = effective_dtype(dtype)
    rtol = base.rtol + 4.0 * eps(held) * abs(float(logit_scale))
    reason = (base.reason + f"; plus 4 eps |logit| for logits up to {logit_scale:.3g}, rounded "
                            f"at their own magnitude (a softmax turns an absolute logit error d "
                            f"into a relative 2 d)")
    return Tolerance(rtol=rtol, rule="logits", reason=reason, dtype=np.dtype(dtype), n=n)


def conditioned_tolerance(rule: str, dtype, n: int, kappa: float, why: str) -> Tolerance:
    """``rule``'s tolerance times a condition number ``kappa >= 1`` the caller derived.

    For a quantity read back through an ill-conditioned step whose amplification the
    claim computes per case (``why`` says which). A :class:`Tolerance` made by hand with a
    rule of :data:`RULES` would be re-derived by :meth:`Tolerance.refreshed`, losing the
    factor; this one has the rule ``"conditioned"`` and keeps it, taken in the precision
    in force when it is made (call it after the subject).
    """
    base = tolerance(rule, dtype, n)
    k = max(1.0, float(kappa))
    reason = base.reason + f"; times the condition number {k:.3g} of {why}"
    return Tolerance(rtol=base.rtol * k, rule="conditioned", reason=reason,
                     dtype=np.dtype(dtype), n=n)


def score_tolerance(rule: str, dtype, n: int, q, k, scale: float) -> Tolerance:
    """``rule``'s tolerance plus the rounding of the scores ``s q_i . k_j`` computed in ``dtype``.

    An inner product of length ``E`` computed in floating point is off by at most
    ``gamma_E |q_i|^T |k_j| ~ E eps sum_l |q_il k_jl|`` (the forward error bound of an inner
    product), whatever the size of the score itself: with cancellation a small score carries
    the error of its large terms. Scaled by ``s``, it is an absolute logit error ``d``, which a
    softmax turns into a relative ``2 d`` of the output (as in :func:`logit_tolerance`).
    Added to the rule's bound with a margin of 2: ``rule + 4 eps E s max_ij sum_l |q_il k_jl|``.
    The reduction rule alone bounds the softmax and the average, not large scores: with
    ``s`` up to 4 the seed sweep of issue 21 saw 0.57 of it on a correct implementation.

    Parameters
    ----------
    rule : str
        One of :data:`RULES`.
    dtype : numpy dtype
    n : int
        For the rule.
    q, k : array_like
        ``(..., Lq, E)`` and ``(..., Lk, E)``, as passed to the subject.
    scale : float
        The factor ``s`` of the scores.

    Returns
    -------
    Tolerance
        With ``rule="scores"``.

    References
    ----------
    Higham, Accuracy and Stability of Numerical Algorithms (2002), the error analysis of
    inner products: ``|fl(x^T y) - x^T y| <= gamma_n |x|^T |y|``, ``gamma_n = n u / (1 - n u)``.
    """
    base = tolerance(rule, dtype, n)
    held = effective_dtype(dtype)
    q64 = np.abs(np.asarray(q, dtype=np.float64))                    # (..., Lq, E)
    k64 = np.abs(np.asarray(k, dtype=np.float64))                    # (..., Lk, E)
    e = q64.shape[-1]
    terms = float(np.max(np.einsum("...id,...jd->...ij", q64, k64), initial=0.0))
    bound = abs(float(scale)) * e * terms
    rtol = base.rtol + 4.0 * eps(held) * bound
    reason = (base.reason + f"; plus the scores' rounding, 4 eps E s max sum|q k| = 4 eps x "
                            f"{bound:.3g} (an inner product of length E is off by E eps sum|q_l "
                            f"k_l|, which a softmax doubles)")
    return Tolerance(rtol=rtol, rule="scores", reason=reason, dtype=np.dtype(dtype), n=n)


def weyl_tolerance(dtype, shape: tuple, entry_units: float, sigma_max: float) -> Tolerance:
    """A singular value that is zero in exact arithmetic, relative to the largest one.

    A matrix ``C~ = C + D`` read back with absolute entry errors ``|D_ij| <= entry_units *
    eps`` has each singular value moved by at most ``||D||_2 <= sqrt(m n) max|D_ij|`` (Weyl's
    inequality). If ``rank(C) <= r``, then ``sigma_{r+1}(C~) / sigma_1(C~) <= sqrt(m n)
    entry_units eps / sigma_1(C~)``: the conditioning of the read-back is the division by
    ``sigma_1``, which the caller measures. A margin of 4 is added, as for the reduction rule.

    Parameters
    ----------
    dtype : numpy dtype
        The dtype the subject computed in (held to float32 under a declared float32 compute).
    shape : (int, int)
        ``(m, n)`` of the matrix.
    entry_units : float
        The bound on each entry's absolute error, in units of eps (derived by the caller).
    sigma_max : float
        The largest singular value of the read-back matrix (> 0).

    Returns
    -------
    Tolerance
        With ``rule="weyl"``.

    References
    ----------
    Weyl's inequality for singular values, sigma_i(A + E) <= sigma_i(A) + ||E||_2 (Golub &
    Van Loan, Matrix Computations, the perturbation theory of the singular value
    decomposition).
    """
    if not sigma_max > 0:
        raise ValueError(f"sigma_max: expected a positive singular value, got {sigma_max}")
    held = effective_dtype(dtype)
    m, n = shape
    rtol = 4.0 * float(np.sqrt(m * n)) * float(entry_units) * eps(held) / float(sigma_max)
    reason = (f"Weyl: entry errors <= {entry_units:.3g} eps move every singular value of a "
              f"{m} x {n} matrix by <= sqrt(mn) of that; relative to sigma_1 = "
              f"{sigma_max:.3g}, with a margin of 4")
    if held != np.dtype(dtype):
        reason += f" (held to {held})"
    return Tolerance(rtol=rtol, rule="weyl", reason=reason, dtype=np.dtype(dtype), n=1)


def relative_error(actual, expected, scale=None) -> float:
    """Norm-wise relative error ``max|actual - expected| / max(|scale|_max, tiny)``.

    Parameters
    ----------
    actual, expected : array_like
        Compared elementwise after broadcasting; shapes must agree.
    scale : array_like, optional
        What the error is measured relative to; defaults to ``expected``.
        Pass the inputs' scale when ``expected`` itself may be near 0.

    Returns
    -------
    float
        ``inf`` if the shapes differ or ``actual`` has a non-finite entry where
        ``expected`` is finite.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    finite = np.isfinite(e)
    if not np.array_equal(np.isfinite(a), finite):
        return float("inf")
    if not np.all(a[~finite] == e[~finite]):
        return float("inf")
    ref = e if scale is None else np.asarray(scale, dtype=np.float64)
    ref = ref[np.isfinite(ref)] if ref.size else ref
    denom = float(np.max(np.abs(ref))) if ref.size else 0.0
    denom = max(denom, np.finfo(np.float64).tiny)
    diff = np.abs(a[finite] - e[finite])
    return float(np.max(diff) / denom) if diff.size else 0.0
