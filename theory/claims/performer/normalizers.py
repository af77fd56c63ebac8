"""Claim 5: positive features keep every FAVOR+ normaliser positive; trig features do not.

With positive (and hyperbolic) features every entry of ``A_hat = Q' K'^T`` is
positive, so every row normaliser ``D_ii`` is; with trigonometric features a
row whose keys are far from its query has ``D_ii <= 0`` about half of the
time, the instability that motivates positive features.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, §2.3
(Lemma 1; trigonometric features give negative or near-zero normalisers).
Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): renormalisation by the row
sums. Hoeffding 1963, JASA, Theorem 1.
"""

from __future__ import annotations

import math

import numpy as np

from ...claim import Evidence, Kind
from ...registry import ClaimSet
from ...statistics import hoeffding_tail
from .sampling import as_floats, embed_rows, reps_per_call, subject_features
from .sources import DELTA, HOEFFDING_1963, INSTABILITY, LEMMA1, SEED_RENORM

claims = ClaimSet("performer")


def wrapped_normal_tv(alpha: float) -> float:
    """TV distance between ``N(0, alpha^2)`` mod ``2 pi`` and the uniform angle.

    The wrapped density is ``(1/2pi)(1 + 2 sum_k e^{-k^2 alpha^2/2} cos k theta)``,
    so the distance is at most ``sum_{k>=1} e^{-k^2 alpha^2 / 2}``.

    Parameters
    ----------
    alpha : float
        Standard deviation of the angle before wrapping.

    Returns
    -------
    float
        The bound (the series truncated after 49 terms).

    References
    ----------
    Mardia & Jupp 2000, Directional Statistics, Wiley, §3.5 (the wrapped
    normal distribution and its Fourier series).
    """
    return float(sum(math.exp(-k * k * alpha * alpha / 2) for k in range(1, 50)))


@claims.claim("performer.positive_normalizer_positive",
              sources=(INSTABILITY, SEED_RENORM, LEMMA1, HOEFFDING_1963), kind=Kind.STATISTICAL,
              needs=("random_features",))
def positive_normalizer_positive(subject, ctx) -> Evidence:
    r"""Positive features keep every normaliser D_ii > 0; trig features do not

    .. math:: \hat D_{ii}=\phi^{+}(q_i)^{\top}\sum_j\phi^{+}(k_j)>0\
        \text{always};\quad\phi^{\mathrm{trig}}:\ \Pr[\hat D_{ii}\le0]\to\tfrac12\ \text{for
        distant keys}

    Positive and hyperbolic: every feature and every row normaliser of Q'(K'^T 1) is positive for
    queries and keys of norms from 0.1 to 3 (float64). Trigonometric: rows whose L = 4 keys sit at
    distance alpha = 6 from the query in orthogonal directions; the angles w^T(q - k_j) are then
    within total variation L m sum_k e^{-k^2 alpha^2/2} of iid uniform ones, under which D_ii is
    symmetric about 0, so Pr[D_ii <= 0] >= 1/2 - that. Hoeffding's inequality over n independent
    rows bounds the chance that the fraction falls below 1/3.
    """
    rng = ctx.rng("positive")
    d, m, L = 8, 32, 16
    checks = []
    smallest = math.inf
    for kind in ("positive", "hyperbolic"):
        for scale in (0.1, 0.5, 1.0, 3.0):
            for _ in range(4):
                q = rng.standard_normal((L, d))
                q *= scale / np.linalg.norm(q, axis=-1, keepdims=True)            # (L, d)
                k = rng.standard_normal((L, d))
                k *= scale / np.linalg.norm(k, axis=-1, keepdims=True)            # (L, d)
                w = rng.standard_normal((m, d))                                   # (m, d)
                qf = subject_features(subject, q, w, kind)                        # (L, F)
                kf = subject_features(subject, k, w, kind)                        # (L, F)
                den = qf @ kf.sum(axis=0)                                         # (L,)
                smallest = min(smallest, float(np.min(den)))
                checks.append((bool(np.all(qf > 0) and np.all(kf > 0)),
                               f"{kind}: a feature <= 0 at norm {scale}"))
                checks.append((bool(np.all(den > 0) and np.all(np.isfinite(den))),
                               f"{kind}: a normaliser D_ii <= 0 at norm {scale} "
                               f"(min {float(np.min(den)):.3g})"))
    # trig: independent rows with distant keys
    d, m, L, alpha = 8, 16, 4, 6.0
    p_low = 0.5 - L * m * wrapped_normal_tv(alpha)
    threshold = 1.0 / 3.0
    n_rows = 600 * ctx.profile.mc_scale
    bound = hoeffding_tail(n_rows, p_low - threshold)
    rng = ctx.rng("trig")

    def trig_fraction(alpha_: float, rows: int, kind: str = "trig") -> float:
        neg = 0
        done = 0
        while done < rows:                               # loop over calls, not positions
            r = min(reps_per_call(m, (L + 1) * d), rows - done)
            q = rng.standard_normal((r, 1, d))                                    # (r, 1, d)
            q /= np.linalg.norm(q, axis=-1, keepdims=True)
            dirs = np.linalg.qr(rng.standard_normal((r, d, L)))[0]                # (r, d, L)
            keys = q + alpha_ * np.swapaxes(dirs, -1, -2)                         # (r, L, d)
            w = rng.standard_normal((m, r * d))                                   # (m, r d)
            qf = subject_features(subject, embed_rows(q), w, kind)                # (r, 1, F)
            kf = subject_features(subject, embed_rows(keys), w, kind)             # (r, L, F)
            den = np.einsum("rf,rf->r", qf[:, 0, :], kf.sum(axis=1))              # (r,)
            neg += int(np.sum(den <= 0))
            done += r
        return neg / rows

    fraction = trig_fraction(alpha, n_rows)
    checks.append((fraction >= threshold,
                   f"trig: only {fraction:.3f} of rows have D_ii <= 0 (need >= 1/3)"))
    sweep = (0.25, 0.5, 1.0, 2.0, 4.0, 6.0)
    sweep_rows = 128 * ctx.profile.mc_scale
    trig_curve = [trig_fraction(a, sweep_rows) for a in sweep]
    pos_curve = [trig_fraction(a, sweep_rows, "positive") for a in sweep]
    figure = {"type": "lines", "title": "Fraction of rows with D_ii <= 0",
              "xlabel": "distance alpha of the keys from the query", "ylabel": "fraction",
              "series": [{"x": list(sweep), "y": as_floats(trig_curve), "label": "trig",
                          "style": "points"},
                         {"x": list(sweep), "y": as_floats(pos_curve), "label": "positive",
                          "style": "points"},
                         {"x": [0.0, 6.0], "y": [0.5, 0.5], "label": "1/2"}]}
    spread = math.sqrt(math.log(1 / DELTA) / (2 * n_rows))
    stats_row = {"trig: fraction of rows with D_ii <= 0 (alpha = 6)": {
        "estimate": fraction, "interval": [fraction - spread, min(1.0, fraction + spread)],
        "analytic": p_low, "samples": n_rows, "false_failure_probability": bound,
        "method": f"Hoeffding; analytic = lower bound 1/2 - L m TV on Pr[D_ii <= 0]; passes "
                  f"when the fraction is >= 1/3, which a correct map misses with probability "
                  f"<= exp(-2 n (p - 1/3)^2) = {bound:.1e}"}}
    passed = all(ok for ok, _ in checks) and bound <= DELTA
    failed = [note for ok, note in checks if not ok]
    return Evidence(
        passed=passed, cases=len(checks) + n_rows,
        max_error=0.0 if passed else math.inf, tolerance=0.0,
        tolerance_reason="exact sign conditions; the trig fraction is bounded by Hoeffding's "
                         f"inequality (false-failure probability {bound:.1e})",
        detail=(f"Positive and hyperbolic normalisers are all > 0 (smallest {smallest:.3g}). "
                f"With trig features {fraction:.3f} of {n_rows} independent rows have D_ii <= 0 "
                f"(>= 1/3 required; Pr[a correct trig map fails] <= {bound:.1e})."
                + (" Failed: " + "; ".join(failed[:3]) if failed else "")),
        statistics=stats_row, figure=figure)
