"""Derivations as checked chains of steps, and the verifiers that check each step.

A :class:`Derivation` is a list of :class:`Step` objects followed by a result
step (the claimed identity or inequality).  Every step is checked when it is
built, by :func:`prove_equal` or :func:`prove_inequality`:

1. **symbolically** -- sympy reduces ``lhs - rhs`` to ``0`` (or decides the sign
   of ``rhs - lhs``).  Only then is a step ``"symbolic"``;
2. **numerically** -- if sympy cannot close it, both sides are evaluated with
   mpmath at ``dps`` significant digits at ``n_points`` seeded random points of
   the stated domain (plus the corners of the domain box).  The step is
   ``"numeric"``, its ``reason`` says what sympy did not close, and it passes
   only if the relative difference stays below ``10**(-dps/2)``;
3. otherwise the step is ``"failed"``.  A wrong identity never comes out as
   verified: a symbolic "proof" is only ever the exact residual ``0``.

Definitions and modelling assumptions enter as ``"given"`` steps
(:func:`given`); they are displayed, never counted as evidence.

References
----------
Meurer et al. 2017, SymPy: symbolic computing in Python, PeerJ Computer Science 3:e103.
Johansson et al., mpmath: a Python library for arbitrary-precision floating-point
arithmetic (version 1.3).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

__all__ = [
    "STATUSES",
    "RELATIONS",
    "Step",
    "Derivation",
    "given",
    "prove_equal",
    "prove_inequality",
    "default_domain",
]

#: The statuses a step (and a derivation) can have.
STATUSES = ("symbolic", "numeric", "failed", "given")

#: Relations a step may assert between ``lhs`` and ``rhs``.
RELATIONS = {"=": "=", "<=": r"\leq", "<": "<", ">=": r"\geq", ">": ">"}

#: Seconds one symbolic route may take before it is abandoned (a safety net:
#: derivations pick routes that finish well inside it).
ROUTE_TIME_LIMIT = 20.0


# --------------------------------------------------------------------------
# Steps and derivations
# --------------------------------------------------------------------------

@dataclass
class Step:
    """One step of a derivation: ``lhs <relation> rhs`` with its justification.

    Parameters
    ----------
    lhs, rhs : sympy expression or Matrix
        The two sides.  For an inequality ``relation`` is one of ``"<=", "<",
        ">=", ">"``; :attr:`relational` gives the sympy relational.
    justification : str
        One line of prose: why the step holds.
    status : {"symbolic", "numeric", "failed", "given"}
        How the step was closed.
    reason : str
        For ``"numeric"``: what sympy could not close; for ``"failed"``: why it
        failed; empty otherwise.
    max_numeric_error : float or None
        Largest relative difference (equalities) or largest relative violation
        (inequalities) seen at the numeric points; ``None`` if none were needed.
    relation : str
        ``"="`` (default) or an inequality sign.
    method : str
        The sympy route that closed the step (e.g. ``"doit+simplify"``).
    """

    lhs: Any
    rhs: Any
    justification: str
    status: str = "given"
    reason: str = ""
    max_numeric_error: float | None = None
    relation: str = "="
    method: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status: expected one of {STATUSES}, got {self.status!r}")
        if self.relation not in RELATIONS:
            raise ValueError(
                f"relation: expected one of {tuple(RELATIONS)}, got {self.relation!r}")
        if not isinstance(self.justification, str) or not self.justification.strip():
            raise ValueError("justification: expected a non-empty one-line string")

    @property
    def passed(self) -> bool:
        """True unless the step failed (``"given"`` steps are accepted as stated)."""
        return self.status != "failed"

    @property
    def relational(self):
        """The step as a sympy relational (``Eq``, ``Le``, ...), unevaluated."""
        ctor = {"=": sp.Eq, "<=": sp.Le, "<": sp.Lt, ">=": sp.Ge, ">": sp.Gt}[self.relation]
        return ctor(self.lhs, self.rhs, evaluate=False)

    def latex(self) -> str:
        """``"lhs = rhs"`` (or the inequality) in LaTeX, via :func:`sympy.latex`."""
        return f"{sp.latex(self.lhs)} {RELATIONS[self.relation]} {sp.latex(self.rhs)}"

    def to_dict(self) -> dict:
        """JSON-serialisable summary: latex, justification, status, reason."""
        return {
            "latex": self.latex(),
            "justification": self.justification,
            "status": self.status,
            "reason": self.reason,
            "method": self.method,
            "max_numeric_error": self.max_numeric_error,
        }


def _combined_status(steps: Sequence[Step], result: Step) -> str:
    """``symbolic`` / ``numeric`` / ``failed`` for a chain of steps and its result."""
    every = list(steps) + [result]
    if any(s.status == "failed" for s in every) or result.status == "given":
        return "failed"
    if any(s.status == "numeric" for s in every):
        return "numeric"
    return "symbolic"


@dataclass
class Derivation:
    """A checked derivation: steps, the result they establish, and its status.

    Parameters
    ----------
    id : str
        Stable dotted id, e.g. ``"performer.positive_mse"``.
    title : str
        One-line title.
    assumptions : dict[str, str]
        Symbol name -> assumption in words.  The sympy symbols carry the same
        assumptions (``positive=True``, ``integer=True``, ...).
    sources : tuple[str, ...]
        Papers (with section/lemma) and seed notes the derivation follows.
    steps : list[Step]
        The chain of steps.
    result : Step
        The claimed identity or inequality (must not be ``"given"``).
    claims : tuple[str, ...]
        Ids of the numeric claims this derivation backs (filled by the registry).
    expect : {"holds", "fails"}
        ``"fails"`` marks a *limitation*: a published statement shown false,
        whose result must come out unverified.

    Attributes
    ----------
    verified : bool
        True iff every step passed and the result was closed (symbolically or
        numerically).
    status : str
        ``"symbolic"`` if every step and the result closed symbolically (or are
        definitions), ``"numeric"`` if some needed the numeric fallback and all
        passed, ``"failed"`` otherwise.
    """

    id: str
    title: str
    assumptions: dict
    sources: tuple
    steps: list
    result: Step
    claims: tuple = ()
    expect: str = "holds"
    verified: bool = field(init=False)
    status: str = field(init=False)

    def __post_init__(self) -> None:
        if self.expect not in ("holds", "fails"):
            raise ValueError(f"expect: expected 'holds' or 'fails', got {self.expect!r}")
        if not isinstance(self.result, Step):
            raise TypeError(f"result: expected a Step, got {type(self.result).__name__}")
        for i, s in enumerate(self.steps):
            if not isinstance(s, Step):
                raise TypeError(f"steps[{i}]: expected a Step, got {type(s).__name__}")
        self.sources = tuple(self.sources)
        self.claims = tuple(self.claims)
        self.refresh()

    def refresh(self) -> None:
        """Recompute :attr:`status` and :attr:`verified` from the steps."""
        self.status = _combined_status(self.steps, self.result)
        self.verified = self.status in ("symbolic", "numeric")

    @property
    def as_expected(self) -> bool:
        """True when ``verified`` matches ``expect`` (holds -> True, fails -> False)."""
        return self.verified == (self.expect == "holds")

    @property
    def numeric_steps(self) -> list[Step]:
        """The steps (incl. the result) that needed the numeric fallback."""
        return [s for s in list(self.steps) + [self.result] if s.status == "numeric"]

    def to_dict(self) -> dict:
        """JSON-serialisable form (id, title, status, verified, claims, sources, ...)."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "verified": self.verified,
            "expect": self.expect,
            "claims": list(self.claims),
            "sources": list(self.sources),
            "assumptions": {str(k): str(v) for k, v in self.assumptions.items()},
            "steps": [s.to_dict() for s in self.steps],
            "result": self.result.to_dict(),
        }

    def to_latex(self) -> str:
        """A LaTeX fragment: title, sources, assumptions, the numbered steps and the result."""
        def esc(text: str) -> str:
            return "".join(_LATEX_TEXT_ESCAPES.get(ch, ch) for ch in text)

        lines = [rf"\subsection*{{{esc(self.title)} \texttt{{({esc(self.id)})}}}}"]
        lines.append(rf"\noindent Status: \textbf{{{self.status}}}; verified: "
                     rf"\textbf{{{self.verified}}}; expected: {self.expect}.\\")
        if self.sources:
            lines.append(r"\noindent Sources: " + "; ".join(esc(s) for s in self.sources) + r".\\")
        if self.assumptions:
            lines.append(r"\noindent Assumptions: "
                         + "; ".join(f"${sp.latex(sp.Symbol(k))}$: {esc(v)}"
                                     for k, v in self.assumptions.items()) + ".")
        lines.append(r"\begin{enumerate}")
        for s in self.steps:
            lines.append(rf"\item $\displaystyle {s.latex()}$ \\ {esc(s.justification)} "
                         rf"[\emph{{{s.status}}}{'; ' + esc(s.reason) if s.reason else ''}]")
        lines.append(r"\end{enumerate}")
        r = self.result
        lines.append(rf"\noindent\textbf{{Result.}} $\displaystyle {r.latex()}$ "
                     rf"[\emph{{{r.status}}}{'; ' + esc(r.reason) if r.reason else ''}]")
        return "\n".join(lines)


#: Characters that must be escaped in LaTeX text mode (justifications, titles, sources).
_LATEX_TEXT_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "$": r"\$",
    "{": r"\{", "}": r"\}", "^": r"\^{}", "~": r"\~{}", "<": r"\textless{}", ">": r"\textgreater{}",
}


def given(lhs, rhs, *, justification: str, relation: str = "=") -> Step:
    """A definition or modelling assumption, stated without proof (status ``"given"``)."""
    return Step(_sympify(lhs), _sympify(rhs), justification, status="given", relation=relation)


# --------------------------------------------------------------------------
# Symbolic routes
# --------------------------------------------------------------------------

def _rewrite_exp(e):
    return sp.simplify(sp.powsimp(sp.expand(e.rewrite(sp.exp)), combine="exp"))


def _expand_all(e):
    return sp.expand(sp.powsimp(sp.expand(e, power_exp=True), combine="exp"))


#: Named sympy routes that may reduce a residual to zero.
ROUTES: dict[str, Callable] = {
    "cancel": sp.cancel,
    "expand": _expand_all,
    "powsimp": lambda e: sp.expand(sp.powsimp(e, force=True)),
    "trigsimp": lambda e: sp.trigsimp(sp.expand_trig(e)),
    "rewrite_exp": _rewrite_exp,
    "gammasimp": lambda e: sp.gammasimp(sp.expand_func(e)),
    "combsimp": sp.combsimp,
    "hyperexpand": lambda e: sp.simplify(sp.hyperexpand(e)),
    "simplify": sp.simplify,
}

#: Default order: cheap canonicalisations first, then simplify, then the specialised routes.
DEFAULT_ROUTES = ("cancel", "expand", "simplify", "powsimp", "trigsimp", "rewrite_exp",
                  "gammasimp", "hyperexpand")


class _RouteTimeout(Exception):
    pass


@contextmanager
def _time_limit(seconds: float):
    """Abandon a route after ``seconds`` (SIGALRM; only in the main thread, else no limit)."""
    usable = (seconds and hasattr(signal, "SIGALRM")
              and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    if not usable:
        yield
        return

    def handler(signum, frame):
        raise _RouteTimeout()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _sympify(x):
    if isinstance(x, (list, tuple)):
        return sp.Matrix(x)
    if isinstance(x, sp.MatrixBase):
        return sp.ImmutableMatrix(x)
    return sp.sympify(x)


def _is_matrix(x) -> bool:
    return isinstance(x, sp.MatrixBase)


def _is_zero(e) -> bool:
    """Exact zero (scalar or every entry of a matrix); ``None``-valued facts count as no."""
    if _is_matrix(e):
        return all(_is_zero(v) for v in e)
    e = sp.sympify(e)
    return e == 0 or e.is_zero is True


def _apply(route: Callable, e):
    if _is_matrix(e):
        return e.applyfunc(route)
    return route(e)


def _symbolic_zero(diff, routes: Sequence[str], time_limit: float) -> tuple[bool, str, Any]:
    """Try each route on ``diff`` (after ``doit``); return (closed, route name, last residual)."""
    tried = []
    residual = diff
    try:
        with _time_limit(time_limit):
            evaluated = _apply(lambda v: v.doit(), diff)
    except _RouteTimeout:
        evaluated = diff
        tried.append(f"doit (timed out after {time_limit:g}s)")
    except Exception as exc:  # sympy may raise inside an integral/limit it cannot do
        evaluated = diff
        tried.append(f"doit ({type(exc).__name__})")
    prefix = "doit+" if evaluated != diff else ""
    if _is_zero(evaluated):
        return True, "doit" if prefix else "direct", evaluated
    for name in routes:
        route = ROUTES[name] if isinstance(name, str) else name
        label = name if isinstance(name, str) else getattr(name, "__name__", "custom")
        try:
            with _time_limit(time_limit):
                residual = _apply(route, evaluated)
        except _RouteTimeout:
            tried.append(f"{label} (timed out after {time_limit:g}s)")
            continue
        except Exception as exc:  # a route may not apply to this expression
            tried.append(f"{label} ({type(exc).__name__})")
            continue
        if _is_zero(residual):
            return True, prefix + label, residual
        tried.append(label)
    return False, ", ".join(tried), residual


# --------------------------------------------------------------------------
# Numeric fallback
# --------------------------------------------------------------------------

def default_domain(sym: sp.Symbol) -> tuple:
    """Sampling domain implied by a symbol's assumptions.

    Integers: ``("int", lo, hi)`` inclusive; reals: ``(lo, hi)``.  Positive
    reals are drawn from ``[0.1, 3]``, nonnegative from ``[0, 3]``, negative
    from ``[-3, -0.1]``, other reals from ``[-2, 2]``.
    """
    if sym.is_integer:
        if sym.is_positive:
            return ("int", 1, 8)
        if sym.is_nonnegative:
            return ("int", 0, 8)
        return ("int", -6, 6)
    if sym.is_positive:
        return (0.1, 3.0)
    if sym.is_nonnegative:
        return (0.0, 3.0)
    if sym.is_negative:
        return (-3.0, -0.1)
    return (-2.0, 2.0)


def _resolve_domains(symbols: Sequence[sp.Symbol], symbols_domain: Mapping | None) -> dict:
    given_domains = {}
    for key, dom in (symbols_domain or {}).items():
        given_domains[key if isinstance(key, str) else key.name] = dom
    return {s: given_domains.get(s.name, default_domain(s)) for s in symbols}


def _draw(dom, rng: np.random.Generator):
    """One exact sympy number from a domain spec."""
    if isinstance(dom, (list, tuple)) and dom and dom[0] == "int":
        return sp.Integer(int(rng.integers(dom[1], dom[2] + 1)))
    if isinstance(dom, (list, tuple)) and len(dom) == 2 and all(
            isinstance(v, (int, float, np.floating, np.integer)) for v in dom):
        # exact binary value of a double: both sides see the same point
        return sp.Rational(float(rng.uniform(float(dom[0]), float(dom[1]))))
    if isinstance(dom, (list, tuple, set)) and dom:  # explicit candidates
        values = list(dom)
        return sp.sympify(values[int(rng.integers(0, len(values)))])
    raise ValueError(f"symbols_domain: cannot sample from {dom!r}")


def _corners(domains: dict) -> list[dict]:
    """Corner points of the domain box (at most 16), as extra deterministic points."""
    syms = list(domains)
    if not syms or len(syms) > 4:
        return []
    ends = []
    for s in syms:
        dom = domains[s]
        if isinstance(dom, (list, tuple)) and dom and dom[0] == "int":
            ends.append((sp.Integer(dom[1]), sp.Integer(dom[2])))
        elif isinstance(dom, (list, tuple)) and len(dom) == 2 and all(
                isinstance(v, (int, float, np.floating, np.integer)) for v in dom):
            ends.append((sp.Rational(float(dom[0])), sp.Rational(float(dom[1]))))
        else:
            return []
    pts = [{}]
    for s, (lo, hi) in zip(syms, ends):
        pts = [dict(p, **{s.name: v}) for p in pts for v in (lo, hi)]
    return [{s: p[s.name] for s in syms} for p in pts]


def _entries(x) -> list:
    return list(x) if _is_matrix(x) else [x]


def _evaluate(expr, point: dict, dps: int):
    """Evaluate with mpmath-backed ``evalf`` at ``dps`` digits; ``None`` if not a finite number."""
    out = []
    for e in _entries(expr):
        try:
            v = sp.sympify(e).subs(point)
            if v.has(sp.Integral, sp.Sum, sp.Product, sp.Limit, sp.Subs, sp.Derivative):
                v = v.doit()
            v = v.evalf(dps, maxn=4 * dps)
            if v.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or not v.is_number or v.free_symbols:
                return None
            re, im = (sp.Float(part, dps) for part in v.as_real_imag())
            # sympy Floats carry an mpf, so the conversion keeps all dps digits
            out.append(mpmath.mpmathify(re) if im == 0
                       else mpmath.mpc(mpmath.mpmathify(re), mpmath.mpmathify(im)))
        except (TypeError, ValueError, ArithmeticError, AttributeError):
            return None
    return out


def _term_scale(expr, point, dps) -> list:
    """Per-entry size of the additive terms (the cancellation scale), for a zero side."""
    out = []
    for e in _entries(expr):
        e = sp.sympify(e)
        terms = e.args if isinstance(e, sp.Add) else (e,)
        total = mpmath.mpf(0)
        for t in terms:
            v = _evaluate(t, point, dps)
            if v is not None:
                total += abs(v[0])
        out.append(total)
    return out


def _numeric_points(symbols, symbols_domain, seed, n_points):
    """(point iterator, number of points wanted, fewest acceptable).

    The corners of the domain box come first, then seeded random points; a
    statement without free symbols needs one evaluation.
    """
    domains = _resolve_domains(symbols, symbols_domain)
    rng = np.random.default_rng(seed)
    corners = _corners(domains)

    def gen():
        yield from corners
        while True:
            yield {s: _draw(domains[s], rng) for s in symbols}
    if not symbols:
        return gen(), 1, 1
    return gen(), n_points + len(corners), max(1, n_points // 2)


def _free(*exprs) -> list:
    syms = set()
    for e in exprs:
        syms |= sp.sympify(e).free_symbols if not _is_matrix(e) else e.free_symbols
    return sorted(syms, key=lambda s: s.name)


# --------------------------------------------------------------------------
# The verifiers
# --------------------------------------------------------------------------

def prove_equal(lhs, rhs, *, justification: str, symbols_domain: Mapping | None = None,
                seed: int = 0, n_points: int = 20, dps: int = 50,
                routes: Sequence[str] | None = None, numeric: bool = True,
                time_limit: float = ROUTE_TIME_LIMIT) -> Step:
    """Check ``lhs == rhs``: symbolically if sympy can, else numerically; return the Step.

    Parameters
    ----------
    lhs, rhs : sympy expression, Matrix, or list
        The two sides (``Integral``, ``Sum``, ``Limit`` objects are evaluated by ``doit``).
    justification : str
        One line: why the step holds.
    symbols_domain : dict, optional
        Symbol (or its name) -> ``(lo, hi)`` for a real, ``("int", lo, hi)`` for an
        integer, or a list of candidate values.  Symbols not listed get
        :func:`default_domain` from their assumptions.
    seed : int
        Seed of ``np.random.default_rng`` for the numeric points.
    n_points : int
        Number of random points (the corners of the domain box come on top).
    dps : int
        mpmath working precision in decimal digits; the step passes numerically
        when every relative difference is below ``10**(-dps/2)``.
    routes : sequence of str, optional
        Names from :data:`ROUTES` to try in order (default :data:`DEFAULT_ROUTES`).
        A step whose simplification is known to be slow names a faster route.
    numeric : bool
        Allow the numeric fallback (default True).
    time_limit : float
        Seconds after which a route is abandoned (safety net).

    Returns
    -------
    Step
        Status ``"symbolic"`` (sympy reduced ``lhs - rhs`` to 0), ``"numeric"``
        (it did not; both sides agreed at every point) or ``"failed"``.

    References
    ----------
    Meurer et al. 2017, SymPy, PeerJ Comput. Sci. 3:e103 (simplification routes).
    """
    lhs, rhs = _sympify(lhs), _sympify(rhs)
    if _is_matrix(lhs) != _is_matrix(rhs) or (_is_matrix(lhs) and lhs.shape != rhs.shape):
        shape = lambda v: v.shape if _is_matrix(v) else "scalar"  # noqa: E731
        raise ValueError(f"rhs: expected the shape of lhs {shape(lhs)}, got {shape(rhs)}")
    _check_numeric_args(seed, n_points, dps)
    if not _is_matrix(rhs) and rhs in (sp.oo, -sp.oo):
        return _prove_infinite(lhs, rhs, justification, time_limit)
    diff = lhs - rhs
    closed, how, residual = _symbolic_zero(diff, routes or DEFAULT_ROUTES, time_limit)
    if closed:
        return Step(lhs, rhs, justification, status="symbolic", method=how)

    not_closed = f"sympy did not reduce lhs - rhs to 0 (tried {how})"
    if not numeric:
        return Step(lhs, rhs, justification, status="failed", reason=not_closed)
    ok, err, why = _numeric_equal(lhs, rhs, symbols_domain, seed, n_points, dps)
    if ok:
        return Step(lhs, rhs, justification, status="numeric", max_numeric_error=err,
                    reason=f"{not_closed}; both sides agree to {_fmt(err)} (relative) at "
                           f"{n_points} random points (and the domain corners) at {dps} digits")
    return Step(lhs, rhs, justification, status="failed", max_numeric_error=err,
                reason=f"{not_closed}; numerically {why}")


def _prove_infinite(lhs, rhs, justification, time_limit) -> Step:
    """``lhs = +-oo`` (a divergent limit): symbolic only, by evaluating ``lhs``."""
    try:
        with _time_limit(time_limit):
            value = sp.simplify(lhs.doit())
    except Exception as exc:
        value = None
        why = type(exc).__name__
    else:
        why = f"lhs evaluates to {sp.sstr(value)[:80]}"
    if value == rhs:
        return Step(lhs, rhs, justification, status="symbolic", method="doit+simplify")
    return Step(lhs, rhs, justification, status="failed",
                reason=f"an infinite value can only be shown symbolically; {why}")


def _fmt(x) -> str:
    return "0" if x == 0 else f"{float(x):.1e}"


def _check_numeric_args(seed, n_points, dps) -> None:
    for name, v, lo in (("seed", seed, 0), ("n_points", n_points, 1), ("dps", dps, 15)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name}: expected an integer, got {type(v).__name__}")
        if v < lo:
            raise ValueError(f"{name}: expected an integer >= {lo}, got {v}")


def _numeric_sweep(exprs, symbols, symbols_domain, seed, n_points, dps, measure):
    """Evaluate ``exprs`` at seeded points until enough evaluate; judge each point.

    Parameters
    ----------
    exprs : sequence of sympy expressions
        Evaluated together at each point; a point where one fails is skipped.
    symbols : list of sympy.Symbol
        The free symbols the points assign.
    symbols_domain, seed, n_points, dps
        As in :func:`prove_equal`.
    measure : callable
        ``measure(pt, values, tol) -> (err, why)``: ``err`` (an mpmath number,
        or None) is the point's violation, kept as the worst; ``why`` (a
        message, or None) ends the sweep as failed.

    Returns
    -------
    tuple
        ``(passed, largest violation or None, why it failed)``.
    """
    tol = mpmath.mpf(10) ** (-mpmath.mpf(dps) / 2)
    points, wanted, fewest = _numeric_points(symbols, symbols_domain, seed, n_points)
    worst = mpmath.mpf(0)
    good, attempts = 0, 0
    with mpmath.workdps(dps):
        while good < wanted and attempts < 5 * wanted:
            attempts += 1
            pt = next(points)
            values = [_evaluate(e, pt, dps) for e in exprs]
            if any(v is None for v in values):
                continue
            err, why = measure(pt, values, tol)
            if err is not None:
                worst = max(worst, err)
            if why is not None:
                return False, (None if err is None else float(worst)), why
            good += 1
    if good < fewest:
        return False, None, f"could evaluate at only {good} of {attempts} points"
    return True, float(worst), ""


def _numeric_equal(lhs, rhs, symbols_domain, seed, n_points, dps):
    """(passed, largest relative difference, why it failed)."""
    def measure(pt, values, tol):
        lv, rv = values
        scale = max(max(abs(a), abs(b)) for a, b in zip(lv, rv))
        if scale == 0:
            return None, None
        if any(abs(a) == 0 or abs(b) == 0 for a, b in zip(lv, rv)):
            scale = max(scale, max(_term_scale(lhs, pt, dps) + _term_scale(rhs, pt, dps)))
        err = max(abs(a - b) for a, b in zip(lv, rv)) / scale
        if err >= tol:
            return err, (f"lhs != rhs at {_pt(pt)}: relative difference "
                         f"{_fmt(err)} >= {_fmt(tol)}")
        return err, None
    return _numeric_sweep((lhs, rhs), _free(lhs, rhs), symbols_domain, seed, n_points, dps,
                          measure)


_FLIP = {"<=": ">=", "<": ">", ">=": "<=", ">": "<"}


def prove_inequality(lhs, rhs, *, justification: str, relation: str = "<=",
                     symbols_domain: Mapping | None = None, seed: int = 0,
                     n_points: int = 20, dps: int = 50,
                     routes: Sequence[str] | None = None, numeric: bool = True,
                     time_limit: float = ROUTE_TIME_LIMIT) -> Step:
    """Check ``lhs <relation> rhs``: by sympy sign facts if possible, else numerically.

    The gap ``g = rhs - lhs`` (for ``<=``/``<``; ``lhs - rhs`` for ``>=``/``>``)
    is put through the simplification routes; if sympy's assumptions decide
    ``g >= 0`` (``g > 0`` for strict) the step is ``"symbolic"``; if they decide
    the opposite it is ``"failed"``.  Otherwise ``g`` is evaluated at the corners
    of the domain box and ``n_points`` seeded random points at ``dps`` digits:
    ``"numeric"`` if the relation holds everywhere (non-strict relations allow a
    violation below ``10**(-dps/2)`` relative to the sides, i.e. rounding at
    equality), else ``"failed"``.

    Parameters
    ----------
    lhs, rhs : sympy expression
    relation : {"<=", "<", ">=", ">"}
    justification, symbols_domain, seed, n_points, dps, routes, numeric, time_limit
        As for :func:`prove_equal`.

    Returns
    -------
    Step
        With ``relation`` set; ``max_numeric_error`` is the largest relative
        violation seen (0 when none).

    References
    ----------
    Meurer et al. 2017, SymPy, PeerJ Comput. Sci. 3:e103 (the assumptions system that
    decides signs).
    """
    if relation not in _FLIP:
        raise ValueError(f"relation: expected one of {tuple(_FLIP)}, got {relation!r}")
    lhs, rhs = _sympify(lhs), _sympify(rhs)
    if _is_matrix(lhs) or _is_matrix(rhs):
        raise TypeError("lhs: expected scalar expressions for an inequality, got a Matrix")
    _check_numeric_args(seed, n_points, dps)
    strict = relation in ("<", ">")
    gap = (rhs - lhs) if relation in ("<=", "<") else (lhs - rhs)

    decided, how, tried = _symbolic_sign(gap, strict, routes or DEFAULT_ROUTES, time_limit)
    if decided is True:
        return Step(lhs, rhs, justification, status="symbolic", relation=relation, method=how)
    if decided is False:
        return Step(lhs, rhs, justification, status="failed", relation=relation,
                    reason=f"sympy shows the opposite: {how}")
    not_closed = f"sympy could not decide the sign of the gap (tried {tried})"
    if not numeric:
        return Step(lhs, rhs, justification, status="failed", relation=relation,
                    reason=not_closed)
    ok, err, why = _numeric_sign(lhs, rhs, gap, strict, symbols_domain, seed, n_points, dps)
    if ok:
        return Step(lhs, rhs, justification, status="numeric", relation=relation,
                    max_numeric_error=err,
                    reason=f"{not_closed}; holds at {n_points} random points (and the "
                           f"domain corners) at {dps} digits")
    return Step(lhs, rhs, justification, status="failed", relation=relation,
                max_numeric_error=err, reason=f"{not_closed}; numerically {why}")


def _sums_as_symbols(e):
    """Replace every ``Sum`` whose summand sympy knows to be >= 0 by a nonnegative dummy.

    Sound: a sum (finite or convergent) of nonnegative terms is nonnegative.
    """
    def nonneg_sum(q):
        return isinstance(q, sp.Sum) and q.function.is_nonnegative is True
    return e.replace(nonneg_sum, lambda q: sp.Dummy("S", nonnegative=True))


def _exp_substitution(e):
    """Sign route: for a nonnegative symbol ``a``, write ``exp(lam a / q) = 1 + u`` with ``u >= 0``.

    Every ``exp(e0 + alpha a)`` (and ``B**(e0 + alpha a)`` with numeric ``B > 0``), where
    ``alpha`` is free of ``a`` with a sign sympy knows and ``alpha / lam`` is an exact
    rational, becomes ``exp(e0) (1 + u)**(q alpha / lam)``; ``lam = |alpha|`` of the
    first such factor and ``q`` the common denominator.  Sound because ``a >= 0`` and
    ``lam > 0`` give ``exp(lam a / q) >= 1``; a symbol whose factors do not fit is
    skipped.  (If ``a`` also occurs outside the exponentials, treating ``u`` and ``a``
    as independent only strengthens the statement, so either verdict stays sound.)
    The result is put over a common denominator and factored so that sympy's sign
    rules can see it.
    """
    e = sp.sympify(e)
    e = e.replace(lambda q: isinstance(q, sp.Pow) and q.base.is_number and q.base.is_positive
                  and not q.exp.is_number,
                  lambda q: sp.exp(q.exp * sp.log(q.base)))
    for a in sorted(e.free_symbols, key=lambda v: v.name):
        if not a.is_nonnegative:
            continue
        terms = [q for q in e.atoms(sp.exp) if q.args[0].has(a)]
        alphas = []
        for q in terms:
            arg = sp.expand(q.args[0])
            alpha = arg.coeff(a)
            if (alpha.has(a) or (arg - alpha * a).has(a)
                    or not (alpha.is_positive or alpha.is_negative)):
                alphas = None
                break
            alphas.append(alpha)
        if not alphas:
            continue
        lam = abs(alphas[0])
        ratios = [sp.simplify(al / lam) for al in alphas]
        if not all(rt.is_Rational for rt in ratios):
            continue
        qden = sp.ilcm(*[rt.q for rt in ratios]) if len(ratios) > 1 else ratios[0].q
        u = sp.Dummy("u", nonnegative=True)
        mapping = {}
        for q, rt in zip(terms, ratios):
            arg = sp.expand(q.args[0])
            e0 = arg - arg.coeff(a) * a
            mapping[q] = sp.exp(e0) * (1 + u) ** (rt * qden)
        e = e.xreplace(mapping)
    return sp.factor(sp.together(e))


def _sign_facts(e, strict: bool):
    """True / False / None: does sympy know ``e > 0`` (strict) or ``e >= 0``?"""
    e = _sums_as_symbols(sp.sympify(e))
    if strict:
        if e.is_positive:
            return True
        if e.is_nonpositive:
            return False
    else:
        if e.is_nonnegative:
            return True
        if e.is_negative:
            return False
    return None


def _symbolic_sign(gap, strict, routes, time_limit):
    tried = []
    try:
        with _time_limit(time_limit):
            candidates = [("direct", gap), ("doit", gap.doit())]
    except Exception:  # _RouteTimeout or a sympy failure inside doit
        candidates = [("direct", gap)]
    sign = "> 0" if strict else ">= 0"
    for label, cand in candidates:
        verdict = _sign_facts(cand, strict)
        if verdict is True:
            return True, label, ""
        if verdict is False:
            return False, f"the gap {sp.sstr(cand)[:120]} ({label}) is not {sign}", ""
    tried.append("direct")
    base = candidates[-1][1]
    extra = {"factor": sp.factor, "exp_substitution": _exp_substitution}
    for name in list(routes) + ["factor", "exp_substitution"]:
        route = extra.get(name) or ROUTES[name]
        try:
            with _time_limit(time_limit):
                cand = route(base)
                verdict = _sign_facts(cand, strict)
                if verdict is None and not isinstance(cand, sp.Number):
                    verdict = _sign_facts(sp.factor(cand), strict)
                if verdict is None and name != "exp_substitution" and cand.has(sp.exp, sp.Pow):
                    verdict = _sign_facts(_exp_substitution(cand), strict)
                    name = f"{name}+exp_substitution" if verdict is not None else name
        except _RouteTimeout:
            tried.append(f"{name} (timed out after {time_limit:g}s)")
            continue
        except Exception as exc:
            tried.append(f"{name} ({type(exc).__name__})")
            continue
        if verdict is not None:
            if verdict is False:
                return False, f"{name} gives a gap {sp.sstr(cand)[:120]} that is not {sign}", ""
            return True, name, ""
        tried.append(name)
    return None, "", ", ".join(tried)


def _numeric_sign(lhs, rhs, gap, strict, symbols_domain, seed, n_points, dps):
    def measure(pt, values, tol):
        lv, rv, gv = values
        if any(abs(mpmath.im(v)) > tol * max(1, abs(v)) for v in (lv[0], rv[0], gv[0])):
            return None, f"a side is not real at {_pt(pt)}"
        g = mpmath.re(gv[0])
        scale = max(abs(lv[0]), abs(rv[0]))
        viol = (-g / scale) if (g < 0 and scale > 0) else (mpmath.mpf(0) if g >= 0 else mpmath.inf)
        bad = (g <= 0) if strict else (viol >= tol)
        return viol, (f"violated at {_pt(pt)}: gap {mpmath.nstr(g, 8)}" if bad else None)
    return _numeric_sweep((lhs, rhs, gap), _free(lhs, rhs), symbols_domain, seed, n_points,
                          dps, measure)


def _pt(pt: dict) -> dict:
    return {k.name: str(v) for k, v in pt.items()}
