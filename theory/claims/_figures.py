"""Figure data in claims' evidence: the report draws only what a check computed.

A check may return ``Evidence.figure``, plain JSON in the protocol of
``theory/report/figures.py`` (``render_protocol``): ``lines``, ``heatmap`` or
``panels``. Property checks draw their cases through Hypothesis and keep no
data worth plotting, so they add a figure computed through the same subject
on one fixed example (:func:`with_figure`). A figure never changes the
verdict: one that cannot be computed (the subject raises on the example, as a
broken implementation may) is left out.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np

from ..claim import Evidence


def with_figure(evidence: Evidence, build: Callable[..., dict], *args: Any) -> Evidence:
    """``evidence`` with ``figure = build(*args)``, unchanged if ``build`` raises.

    Parameters
    ----------
    evidence : Evidence
        What the check found; its verdict, cases and errors are kept as they are.
    build : callable
        Returns the figure data (the report's JSON protocol).
    *args
        Passed to ``build`` (usually the subject and a seeded generator).

    Returns
    -------
    Evidence
        A copy carrying the figure, or ``evidence`` itself when ``build``
        raised or returned nothing.
    """
    try:
        with np.errstate(all="ignore"):
            figure = build(*args)
    except Exception:  # a figure is never part of the verdict
        return evidence
    return replace(evidence, figure=figure) if figure else evidence


def floats(values) -> list:
    """Plain floats (nan as None) for figure data, from any array-like."""
    return [None if not np.isfinite(v) else float(v)
            for v in np.asarray(values, dtype=np.float64).ravel()]


def matrix(values, allowed=None) -> list:
    """Rows of plain floats; entries outside ``allowed`` (masked) are None (drawn grey)."""
    values = np.asarray(values, dtype=np.float64)
    if allowed is not None:
        values = np.where(np.broadcast_to(allowed, values.shape), values, np.nan)
    return [floats(row) for row in values]
