"""The theory report: ``transformer-theory report --out DIR``.

Writes three files into ``DIR``:

- ``index.html`` -- the report a researcher reads (:mod:`.html`): summary,
  environment, contents, one section per claim with its statement as MathML,
  sources, status per subject, evidence, derivation steps and figures; CSS and
  figures inline, readable offline;
- ``results.json`` -- the machine-readable results (schema in :mod:`.markdown`);
- ``report.md`` -- a summary for a README or a pull request.

A failing claim does not stop the report; the command then exits 1. A
figure or derivation that cannot be built becomes a note in the report.
"""

from __future__ import annotations

import datetime as _dt
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .. import registry
from ..claim import Claim
from ..sweep import headroom_files, load_headroom
from ..profiles import get_profile
from ..runner import DEFAULT_SEED, Result, half_runs, select
from ..subject import Subject
from ..builtin_subjects import SUBJECTS, get_subject
from .progress import make_progress

__all__ = ["ReportOutput", "build_report", "resolve_subjects", "run_report",
           "writable_directory"]

#: ``--subjects`` value meaning every subject that can be built here.
ALL_SUBJECTS = "all"


@dataclass
class ReportOutput:
    """What :func:`build_report` wrote."""

    out_dir: Path
    doc: dict
    paths: list[Path] = field(default_factory=list)
    html_bytes: int = 0

    @property
    def failed(self) -> list[tuple[str, str]]:
        """``(claim id, subject)`` of every failed or errored result, half-precision runs
        included (as ``claim.id[float16]``)."""
        bad = ("failed", "error")
        out = [(rec["id"], s) for rec in self.doc["claims"]
               for s, r in rec["results"].items() if r["status"] in bad]
        return out + [(f'{rec["id"]}[{d}]', s) for rec in self.doc["claims"]
                      for s, runs in (rec.get("half_precision_results") or {}).items()
                      for d, r in runs.items() if r["status"] in bad]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def resolve_subjects(spec: str) -> tuple[list[Subject], dict[str, str]]:
    """Subjects named by ``--subjects`` and, for ``all``, those that could not be built.

    ``spec`` is a comma-separated list of subject names, or ``all`` (every
    registered subject whose dependencies are installed: ``reference``, and
    ``fast`` / ``torch`` when numba / torch are present).

    Raises
    ------
    ValueError
        For an unknown name, or a named subject that cannot be built.
    """
    names = [n.strip() for n in (spec or "").split(",") if n.strip()]
    if not names:
        raise ValueError("subjects: expected at least one subject name or 'all'")
    unavailable: dict[str, str] = {}
    subjects: list[Subject] = []
    if names == [ALL_SUBJECTS]:
        for name, factory in SUBJECTS.items():
            try:
                subjects.append(factory())
            except Exception as exc:  # an optional dependency is missing
                unavailable[name] = f"{type(exc).__name__}: {exc}"
        return subjects, unavailable
    for name in names:
        if name == ALL_SUBJECTS:
            raise ValueError("subjects: 'all' cannot be combined with other names")
        try:
            subjects.append(get_subject(name))
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"subjects: {name!r} cannot be built here "
                             f"({type(exc).__name__}: {exc})") from None
    return subjects, unavailable


def _derivations(ids) -> tuple[dict, dict]:
    """Derivation dicts and the sympy relationals of their steps, by proof id.

    One that cannot be built is shown as failed with its error.
    """
    from transformer_theory.proofs import registry as proof_registry

    dicts, exprs = {}, {}
    for i in sorted(ids):
        try:
            d = proof_registry.get(i)
            dicts[i] = d.to_dict()
            exprs[i] = [_relational(s) for s in list(d.steps) + [d.result]]
        except Exception as exc:  # a broken derivation must not stop the report
            dicts[i] = {"id": i, "status": "failed", "steps": [], "expect": "holds",
                        "error": f"{type(exc).__name__}: {exc}"}
    return dicts, exprs


def _relational(step):
    try:
        return step.relational
    except Exception:
        return None


def build_report(out_dir: str | Path, *, claims: Sequence[Claim] | None = None,
                 subjects: Sequence[Subject] | None = None, profile: str | None = None,
                 seed: int = DEFAULT_SEED, claims_pattern: str | None = None,
                 subjects_unavailable: dict | None = None, figures: bool = True,
                 show_progress: bool = False,
                 fallback_progress: Callable | None = None,
                 root: Path | None = None, headroom: Mapping | None = None,
                 pool=None) -> ReportOutput:
    """Run the claims and write ``index.html``, ``results.json`` and ``report.md``.

    Parameters
    ----------
    out_dir : path
        Created if missing.
    claims : sequence of Claim, optional
        Default: every registered claim.
    subjects : sequence of Subject, optional
        Default: the reference.
    profile : str, optional
        ``ci``, ``dev`` or ``thorough`` (default ``$TT_PROFILE`` or ``dev``).
    seed : int
        Base seed of the run.
    claims_pattern : str, optional
        The ``--claims`` glob, recorded in the results; figures are then drawn
        only for the topics of the selected claims.
    figures : bool
        Draw the benchmark figures (off only for quick checks); the figures
        claims put in their evidence are always drawn.
    show_progress : bool
        A progress bar on standard error (rich), else ``fallback_progress``.
    root : Path, optional
        Where ``benchmarks/`` is (default: the current directory, then the
        source tree of an editable install).
    headroom : dict, optional
        Seed sweeps to show beside each claim (:func:`theory.sweep.load_headroom`);
        default: the committed ``benchmarks/headroom-*.json`` under ``root``, of the
        subjects reported.
    pool : Executor, optional
        Workers for the claim runs (:func:`theory.executor.executor`); the results
        are the same as without.
    """
    from ..executor import map_runs
    from . import figures as figs
    from .html import render_html_with_size
    from .markdown import build_results_json, render_markdown, write_json

    start = time.perf_counter()
    claims = list(registry.all_claims() if claims is None else claims)
    subjects = list(subjects) if subjects else [get_subject("reference")]
    profile_name = get_profile(profile).name
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    proof_ids = {c.proof for c in claims if c.proof}
    topics = None if claims_pattern is None else sorted({c.topic for c in claims})
    specs = figs.select_figures(topics) if figures else []

    with make_progress(show_progress, fallback_progress) as bar:
        results: dict[str, list[Result]] = {}
        for subject in subjects:
            # each claim, then its runs in float16 and bfloat16 where both declare them
            runs = [(c, d) for c in claims for d in (None, *half_runs(c, subject))]
            task = bar.task(f"claims · {subject.name}", len(runs))
            rs = []
            for r in map_runs(pool, subject, runs, profile=profile_name, seed=seed):
                rs.append(r)
                bar.running(task, r.id if r.dtype is None else f"{r.id}[{r.dtype}]")
                bar.advance(task, r)
            results[subject.name] = rs
        claims_seconds = time.perf_counter() - start

        t0 = time.perf_counter()
        task = bar.task("derivations", 1)
        bar.running(task, f"{len(proof_ids)} sympy derivations")
        derivations, exprs = _derivations(proof_ids)
        bar.advance(task)
        derivations_seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        doc = build_results_json(claims, results, profile=profile_name, seed=seed,
                                 wall_seconds=0.0, claims_pattern=claims_pattern,
                                 subjects_unavailable=subjects_unavailable,
                                 derivations=derivations)
        n_claim_figs = sum(1 for rec in doc["claims"]
                           if any((r.get("evidence") or {}).get("figure")
                                  for r in rec["results"].values()))
        task = bar.task("figures", len(specs) + n_claim_figs)
        ctx = figs.FigureContext(doc=doc, root=root)
        rendered = figs.claim_figures(doc, progress=lambda _: bar.advance(task))
        rendered += figs.render_figures(specs, ctx, [c.id for c in claims],
                                        progress=lambda _: bar.advance(task),
                                        starting=lambda name: bar.running(task, name))
        figures_seconds = time.perf_counter() - t0

    doc["figures"] = [f.to_json() for f in rendered]
    doc["wall_seconds"] = round(time.perf_counter() - start, 2)
    meta = {"generated": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "claims_seconds": claims_seconds, "derivations_seconds": derivations_seconds,
            "figures_seconds": figures_seconds}
    if headroom is None:
        headroom = load_headroom(headroom_files(root))
    headroom = {s: h for s, h in headroom.items() if s in results}
    page = render_html_with_size(doc, figures=rendered, derivation_exprs=exprs, meta=meta,
                                 headroom=headroom)
    html_path = out / "index.html"
    html_path.write_text(page, encoding="utf-8")
    html_bytes = html_path.stat().st_size
    json_path = write_json(out / "results.json", doc)
    md_path = out / "report.md"
    md_path.write_text(render_markdown(doc, html_bytes=html_bytes), encoding="utf-8")
    return ReportOutput(out, doc, [html_path, json_path, md_path], html_bytes)


def writable_directory(path: str | Path) -> Path:
    """``path`` as a directory the report can write to, created if missing.

    Checked before the claims run, so that a bad ``--out`` is reported at once.

    Raises
    ------
    OSError
        If the directory cannot be created (``/proc/x``, a path below a file)
        or a file cannot be written in it.
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out):
        pass
    return out


def run_report(args, *, usage_error, progress, pool=None) -> int:
    """``transformer-theory report``: run the claims and write the report.

    ``args`` has ``out``, ``subjects`` (comma-separated or ``all``), ``claims``,
    ``profile``, ``seed``, ``quiet`` and optionally ``no_figures``;
    ``usage_error`` is the exception class for bad options and for an output
    directory that cannot be written (one line, exit status 2); ``progress(stream,
    enabled)`` makes the CLI's per-claim printer, used when rich is missing; ``pool``
    is the executor of ``--jobs``/``--executor``.
    """
    from .markdown import closing_note

    try:
        profile = get_profile(args.profile).name
        subjects, unavailable = resolve_subjects(args.subjects)
    except ValueError as exc:
        raise usage_error(str(exc)) from None
    claims = select(registry.all_claims(), args.claims)
    if args.claims and not claims:
        raise usage_error(f"--claims: no claim id matches {args.claims!r}")
    try:
        writable_directory(args.out)
    except OSError as exc:
        raise usage_error(f"--out {args.out}: cannot write the report there "
                          f"({exc.strerror or exc})") from None
    show = sys.stderr.isatty() and not args.quiet
    fallback = progress(sys.stderr, show) if show else None
    try:
        result = build_report(args.out, claims=claims, subjects=subjects, profile=profile,
                              seed=args.seed, claims_pattern=args.claims or None,
                              subjects_unavailable=unavailable,
                              figures=not getattr(args, "no_figures", False),
                              show_progress=show, fallback_progress=fallback, pool=pool)
    except OSError as exc:  # the directory became unwritable, the disk is full, ...
        raise usage_error(f"--out {args.out}: writing the report failed "
                          f"({exc.strerror or exc})") from None
    for p in result.paths:
        print(p)
    print(closing_note(result.doc, html_bytes=result.html_bytes))
    if result.failed:
        listed = ", ".join(f"{cid} ({s})" for cid, s in result.failed[:10])
        more = f" and {len(result.failed) - 10} more" if len(result.failed) > 10 else ""
        print(f"{len(result.failed)} claim result(s) failed or errored: {listed}{more}; "
              f"see {result.paths[0]}", file=sys.stderr)
    return result.exit_code
