"""Building blocks for claim checks: run a property over Hypothesis examples,
compare arrays under the tolerance policy, and describe falsifying examples.

A property check is written as a *measure*: a function of one drawn example
that returns a :class:`Measurement` (an error and the tolerance it is held to)
or a bool. :func:`for_all` runs it over the examples of a strategy, keeps the
worst error, and on failure lets Hypothesis shrink to the smallest failing
example, which it records in the evidence.
"""

from __future__ import annotations

import contextlib

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from hypothesis import given, reject
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from .claim import Evidence
from .declared import DontCare, NotApplicable, baseline_run, exact_run, half_dtype
from .tolerance import (RATIO_K, Tolerance, ratio_tolerance, relative_error,
                        rounded_exact_tolerance)


@dataclass
class Measurement:
    """The error of one case and the tolerance it is held to."""

    error: float
    tolerance: Tolerance | float
    note: str = ""
    baseline: float | None = None     # the naive baseline's error (half-precision runs)
    outputs: float = 2                # the subject's output roundings the comparison holds, in u

    @property
    def rtol(self) -> float:
        return self.tolerance.rtol if isinstance(self.tolerance, Tolerance) else float(self.tolerance)

    @property
    def reason(self) -> str | None:
        return self.tolerance.reason if isinstance(self.tolerance, Tolerance) else None

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.error) and self.error <= self.rtol)


class Violation(AssertionError):
    """Raised inside a property when a case breaks the claim."""


def compare(actual, expected, tol: Tolerance, *, scale=None, note: str = "",
            outputs: float = 2) -> Measurement:
    """Norm-wise relative error of ``actual`` against ``expected`` under ``tol``.

    The tolerance is re-derived at comparison time (:meth:`Tolerance.refreshed`),
    so that it follows an output precision seen after it was asked for.
    ``outputs`` is how many of the subject's rounded outputs enter the compared
    quantities, each carrying up to ``u`` of ``scale`` (the half-precision
    runs' rounded-exact bound, :func:`.tolerance.rounded_exact_tolerance`); a
    real number where a comparison states their rounding in other units.
    """
    if isinstance(tol, Tolerance):
        tol = tol.refreshed()
    return Measurement(relative_error(actual, expected, scale), tol, note, outputs=outputs)


class _Recorded:
    """A Hypothesis ``data`` object that records its draws, so that they can be replayed."""

    def __init__(self, data):
        self._data, self.draws = data, []

    def draw(self, strategy, label=None):
        value = self._data.draw(strategy, label=label)
        self.draws.append(value)
        return value


class _Replayed:
    """The draws of a :class:`_Recorded`, given back in order (the baseline's run)."""

    def __init__(self, draws):
        self._draws = iter(draws)

    def draw(self, strategy, label=None):
        return next(self._draws)


@contextlib.contextmanager
def no_local_constants():
    """Hypothesis draws without the constants of the modules imported so far.

    Hypothesis (6.131 and later) sometimes draws a constant found in the source of
    the "local" modules imported so far (here, the editable package and a user's
    target), so the cases of ``(profile, seed)`` changed with what the process had
    imported: ``verify``, ``check``, a pytest run and a ``--jobs`` worker drew
    different cases for the same seed. Inside this block the pool of local
    constants is empty (Hypothesis' built-in constants stay), which makes a
    claim's cases a function of its profile and seed alone. Falls back to doing
    nothing if Hypothesis' internals differ.
    """
    try:
        from hypothesis.internal.conjecture import providers
        original, cache = providers._get_local_constants, providers.CONSTANTS_CACHE
        empty = providers.Constants()
    except (ImportError, AttributeError):      # another Hypothesis: nothing to pin
        yield
        return
    cache.cache.clear()                        # allowed constants cached with local ones
    providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.cache.clear()


def _is_data(value) -> bool:
    return type(value).__name__ == "DataObject" and hasattr(value, "draw")


def _with_ratio_rule(measure: Callable, dtype: np.dtype) -> Callable:
    """``measure`` held to the error-ratio rule: the baseline runs the same case and comparison.

    The case is measured on the subject, then again with the naive
    half-precision baseline in its place (``declared.baseline_run``), with
    any draws the measure makes replayed. A comparison (a :class:`Measurement`
    with a :class:`Tolerance`) is then held to
    ``ratio_tolerance(dtype, baseline error)``, or to the larger
    ``rounded_exact_tolerance`` of the exact baseline (the float64 reference
    on the same rounded inputs, ``declared.exact_run``) where the naive
    roundings cancelled; a yes/no property keeps its
    own verdict: it must hold exactly at every precision. Where the baseline
    itself breaks down on the case (an infinite error: a zero variance, an
    overflow) it bounds nothing, and the claim's own tolerance, computed for
    the half dtype's epsilon, decides.
    """
    def ruled(case):
        recorded = tuple(_Recorded(v) if _is_data(v) else v for v in case) \
            if isinstance(case, tuple) else case
        result = measure(recorded)
        if isinstance(result, (bool, np.bool_)) or not isinstance(result.tolerance, Tolerance):
            return result
        def replay():             # the same draws again, for each baseline in turn
            return tuple(_Replayed(v.draws) if isinstance(v, _Recorded) else v
                         for v in recorded) if isinstance(case, tuple) else case

        with baseline_run():
            base = measure(replay())
        if not np.isfinite(base.error):
            # the naive computation itself broke down (a zero variance, an overflow): it
            # bounds nothing, and the claim's own tolerance at this dtype's epsilon decides
            return result
        rule = ratio_tolerance(dtype, base.error)
        own = result.tolerance
        if own.rule == "conditioned" and own.rtol > rule.rtol:
            # a bound the claim derived for this case (its conditioning, in this dtype) is a
            # proof for any correct implementation: a lucky naive baseline does not undercut it
            rule = own
        with exact_run():
            perfect = measure(replay())
        if np.isfinite(perfect.error):
            # the float64 reference on the same rounded inputs: an implementation that rounds
            # only its N outputs is within it + (N + 1) u, however the naive roundings cancel
            bound = rounded_exact_tolerance(dtype, perfect.error, result.outputs)
            if bound.rtol > rule.rtol:
                rule = bound
        return Measurement(result.error, rule, result.note, baseline=base.error,
                           outputs=result.outputs)
    return ruled


def holds(ok: bool, note: str = "") -> Measurement:
    """A yes/no property as a measurement (error 0 or inf against tolerance 0)."""
    return Measurement(0.0 if ok else float("inf"), 0.0, note)


def describe_value(value: Any, max_elements: int = 64) -> Any:
    """A JSON-friendly description of a drawn value (arrays shown in full if small)."""
    if isinstance(value, np.ndarray):
        out = {"shape": list(value.shape), "dtype": str(value.dtype)}
        if value.size <= max_elements:
            shown = np.round(value.astype(np.float64), 6) if value.dtype.kind == "f" else value
            out["values"] = shown.tolist()
        else:
            out["min"] = float(np.min(value)) if value.dtype.kind in "fiu" else None
            out["max"] = float(np.max(value)) if value.dtype.kind in "fiu" else None
        return out
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): describe_value(v, max_elements) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) <= max_elements:
            return [describe_value(v, max_elements) for v in value]
        return {"length": len(value)}
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, type) or callable(value):
        return getattr(value, "__name__", repr(value))
    return repr(value)


def for_all(ctx, strategy: st.SearchStrategy, measure: Callable[[Any], Measurement | bool],
            *, detail: str, max_examples: int | None = None) -> Evidence:
    """Check ``measure`` on every example Hypothesis draws from ``strategy``.

    Parameters
    ----------
    ctx : Context
        Supplies the profile (number of examples) and the seed.
    strategy : SearchStrategy
        Draws one case (usually a dict of shapes, dtype and a numpy seed).
    measure : callable
        ``measure(case) -> Measurement | bool``. Any exception it raises
        (including one from the subject) counts as a failure of the case.
    detail : str
        What was checked, in one sentence, for the report.
    max_examples : int, optional
        Override of the profile's count, for expensive cases (scaled by the
        profile: thorough multiplies it by 10).

    Returns
    -------
    Evidence
        Passed with the worst error seen, or failed with the shrunk example.
    """
    half = half_dtype()
    if half is not None:
        measure = _with_ratio_rule(measure, half)
    settings = ctx.profile.hypothesis_settings()
    if max_examples is not None:
        factor = 10 if ctx.profile.name == "thorough" else 1
        settings = type(settings)(settings, max_examples=max_examples * factor)
    state = {"cases": 0, "worst": None, "failing": None, "failing_measure": None,
             "exception": None, "ratio": None}

    @settings
    @hypothesis_seed(ctx.hypothesis_seed())
    @given(strategy)
    def run(case):
        try:
            result = measure(case)
        except Violation:
            raise
        except DontCare:
            reject()                      # outside what the declared convention defines
        except Exception as exc:  # the subject (or its input) broke on a valid case
            state["failing"], state["exception"] = case, f"{type(exc).__name__}: {exc}"
            state["failing_measure"] = None
            raise Violation(str(exc)) from exc
        if isinstance(result, (bool, np.bool_)):
            result = holds(bool(result))
        state["cases"] += 1
        if result.baseline is not None:
            state["ratio"] = max(state["ratio"] or 0.0, _error_ratio(result))
        worst = state["worst"]
        if worst is None or _ratio(result) > _ratio(worst):
            state["worst"] = result
        if not result.ok:
            state["failing"], state["failing_measure"] = case, result
            state["exception"] = None
            raise Violation(result.note or "tolerance exceeded")

    try:
        with no_local_constants():
            run()
    except Violation:
        pass
    except (Unsatisfiable, FailedHealthCheck) as exc:
        if state["cases"] or state["failing"] is not None:
            raise
        raise NotApplicable("every case drawn lies outside what the subject's declared "
                            "conventions define") from exc
    worst = state["worst"]
    if state["failing"] is None:
        return Evidence(
            passed=True, cases=state["cases"],
            max_error=worst.error if worst else None,
            tolerance=worst.rtol if worst else None,
            tolerance_reason=worst.reason if worst else None,
            detail=detail, error_ratio=state["ratio"])
    fm = state["failing_measure"]
    why = state["exception"] or (fm.note if fm and fm.note else "")
    return Evidence(
        passed=False, cases=state["cases"],
        max_error=fm.error if fm else float("inf"),
        tolerance=fm.rtol if fm else None,
        tolerance_reason=fm.reason if fm else None,
        detail=f"{detail} Failed: {why}".strip(),
        falsifying_example=describe_value(state["failing"]),
        error_ratio=(_error_ratio(fm) if fm and fm.baseline is not None else state["ratio"]))


def _error_ratio(m: Measurement) -> float:
    """``err / (err_baseline + (c/k) eps)``: what the error-ratio rule bounds by k."""
    return m.error / (m.rtol / RATIO_K) if m.rtol > 0 else float("inf")


def _ratio(m: Measurement) -> float:
    if not np.isfinite(m.error):
        return float("inf")
    if m.rtol == 0:
        return 0.0 if m.error == 0 else float("inf")
    return m.error / m.rtol


def single_case(measurements: list[Measurement], *, detail: str, cases: int | None = None,
                example: Any = None, figure: dict | None = None) -> Evidence:
    """Evidence from a fixed list of measurements (deterministic checks)."""
    if not measurements:
        raise ValueError("measurements: expected at least one measurement")
    worst = max(measurements, key=_ratio)
    failing = [m for m in measurements if not m.ok]
    passed = not failing
    text = detail
    if failing:
        text += " Failed: " + "; ".join(m.note for m in failing[:3] if m.note)
    return Evidence(passed=passed, cases=cases if cases is not None else len(measurements),
                    max_error=worst.error, tolerance=worst.rtol, tolerance_reason=worst.reason,
                    detail=text.strip(),
                    falsifying_example=describe_value(example) if (failing and example is not None)
                    else None,
                    figure=figure)
