"""The ``transformer-theory`` command.

Sub-commands::

    transformer-theory list    [--json] [--claims GLOB] [--kind KIND]
    transformer-theory verify  [--subject NAME] [--claims GLOB] [--profile P] [--seed N] [--json]
                               [--seeds A-B [--headroom FILE]]
    transformer-theory report  --out DIR [--subjects A,B] [--claims GLOB] [--profile P] [--seed N]
    transformer-theory proofs  [--json | --latex] [--ids GLOB]

Exit status: 0 when every applicable claim passes, 1 when one fails or errors,
2 for a usage error (unknown subject, profile or option). Progress goes to
standard error, results to standard output, so ``--json`` output can be piped.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import importlib
import json
import os
import sys
import time
from typing import Sequence

from . import registry
from .claim import Status
from .profiles import PROFILES, get_profile
from .progress import run_bar
from .runner import DEFAULT_SEED, Result, half_runs, run_claims, select
from .builtin_subjects import SUBJECTS, get_subject


#: Extra sub-commands, one module each in ``theory/commands/`` exposing
#: ``register(subparsers)`` (the parser's ``func`` returns the exit status).
COMMAND_MODULES: tuple[str, ...] = ("turing", "dyck", "check")


class UsageError(Exception):
    """A bad option value: reported on stderr with exit status 2."""


def _one_line_error(parser: argparse.ArgumentParser, message: str):
    """argparse's error as one line on standard error, exit status 2 (no usage block)."""
    parser.exit(2, f"{parser.prog}: error: {message} (see '{parser.prog} --help')\n")


def _progress(stream, enabled: bool):
    """A progress printer: one line per claim on a terminal, nothing otherwise."""
    start = time.perf_counter()

    def report(i: int, n: int, result: Result) -> None:
        if not enabled:
            return
        elapsed = time.perf_counter() - start
        mark = {"passed": "ok", "failed": "FAIL", "error": "ERROR",
                "not_applicable": "n/a"}[result.status.value]
        stream.write(f"\r[{i:>3}/{n}] {elapsed:6.1f}s {mark:5s} {result.id:60.60s}")
        if result.status in (Status.FAILED, Status.ERROR) or i == n:
            stream.write("\n")
        stream.flush()

    return report


def _profile_name(name: str | None) -> str:
    try:
        return get_profile(name).name
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _subject(name: str):
    try:
        return get_subject(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _claims(pattern: str | None):
    claims = select(registry.all_claims(), pattern)
    if pattern and not claims:
        raise UsageError(f"--claims: no claim id matches {pattern!r} "
                         f"(see 'transformer-theory list')")
    return claims


# --- list -------------------------------------------------------------------
def cmd_list(args) -> int:
    claims = _claims(args.claims)
    if args.kind:
        claims = [c for c in claims if c.kind.value == args.kind]
    if args.json:
        json.dump({"claims": [c.to_json() for c in claims]}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    width = max((len(c.id) for c in claims), default=10)
    for c in claims:
        proof = f"  [proof: {c.proof}]" if c.proof else ""
        print(f"{c.id:<{width}}  {c.kind.value:<12}  {c.title}{proof}")
    print(f"\n{len(claims)} claims")
    return 0


# --- verify -----------------------------------------------------------------
def cmd_verify(args) -> int:
    subject = _subject(args.subject)
    profile = _profile_name(args.profile)
    claims = _claims(args.claims)
    show = sys.stderr.isatty() and not args.quiet
    if (args.extend or args.replace) and args.headroom is None:
        flag = "--extend" if args.extend else "--replace"
        raise UsageError(f"{flag}: needs --headroom FILE (the sweep file to merge into)")
    if args.seeds is not None:
        return _verify_sweep(args, subject, profile, claims, show)
    if args.headroom is not None:
        raise UsageError("--headroom: needs --seeds (the worst ratio over a sweep)")
    runs = [(c.id, d) for c in claims for d in (None, *half_runs(c, subject))]
    with parallel_pool(args) as pool, \
            run_bar(show, subject.name, profile, runs, _progress(sys.stderr, show)) as bar:
        try:
            results = run_claims(claims, subject, profile=profile, seed=args.seed,
                                 progress=bar, pool=pool)
        except ValueError as exc:          # a subject that cannot cross to a worker
            raise UsageError(str(exc)) from None
    bad = [r for r in results if r.status in (Status.FAILED, Status.ERROR)]
    if args.json:
        json.dump({"subject": subject.name, "profile": profile, "seed": args.seed,
                   "results": [r.to_json() for r in results]}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for r in results:
            ev = r.evidence
            err = "" if not ev or ev.max_error is None else \
                f"  err {ev.max_error:.2e} / tol {ev.tolerance:.2e}" if ev.tolerance else ""
            print(f"{r.status.value:<15} {r.id:<55} {r.seconds:7.2f}s{err}")
            if r.status in (Status.FAILED, Status.ERROR):
                print("    " + r.detail().replace("\n", "\n    "))
                if ev and ev.falsifying_example is not None:
                    print("    falsifying example: " + json.dumps(ev.falsifying_example)[:2000])
        counts = {s: sum(r.status is s for r in results) for s in Status}
        print("\n" + ", ".join(f"{n} {s.value}" for s, n in counts.items()))
    return 1 if bad else 0


def _verify_sweep(args, subject, profile: str, claims, show: bool) -> int:
    """``verify --seeds``: the claims under every seed; failures and the worst ratio per claim."""
    from .sweep import parse_seeds, sweep, sweep_plan

    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    runs = [(claim.id, dtype) for (claim, dtype), _ in sweep_plan(claims, subject, seeds)]
    with parallel_pool(args) as pool, \
            run_bar(show, subject.name, profile, runs, _progress(sys.stderr, show)) as bar:
        table = sweep(claims, subject, profile=profile, seeds=seeds, progress=bar, pool=pool)
    doc = {"subject": subject.name, "profile": profile, "seeds": seeds,
           "claims": [s.to_json() for s in table]}
    if args.headroom:
        write_doc = doc
        into = "--replace" if args.replace else "--extend" if args.extend else None
        if into and os.path.exists(args.headroom):
            from .sweep import merge

            try:
                with open(args.headroom, encoding="utf-8") as fh:
                    earlier = json.load(fh)
                # --extend: more seeds add up, a claim swept twice under one seed is refused;
                # --replace: the claims swept now replace their rows (re-swept after a change)
                write_doc = merge([earlier, doc], replace=args.replace)
            except (OSError, ValueError, KeyError) as exc:
                raise UsageError(f"{into}: cannot merge into {args.headroom}: {exc}") from None
        with open(args.headroom, "w", encoding="utf-8") as fh:
            json.dump(write_doc, fh, indent=1)
            fh.write("\n")
    failures = [(s, f) for s in table for f in s.failures]
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"{'worst ratio':>11}  {'seed':>6}  claim (runs)")
        ranked = sorted(table, key=lambda s: -(s.worst_ratio or 0.0))
        for s in ranked:
            ratio = "-" if s.worst_ratio is None else f"{s.worst_ratio:.3g}"
            seed = "-" if s.worst_seed is None else str(s.worst_seed)
            print(f"{ratio:>11}  {seed:>6}  {s.label} ({s.runs})")
        for s, f in failures:
            print(f"{f['status']} at seed {f['seed']}: {s.label}")
            print("    " + f["detail"].replace("\n", "\n    "))
            if f["example"] is not None:
                print("    falsifying example: " + json.dumps(f["example"])[:2000])
        print(f"\n{len(seeds)} seeds, {len(table)} claims (half-precision runs counted apart), "
              f"{len(failures)} failures")
    return 1 if failures else 0


# --- report -----------------------------------------------------------------
def cmd_report(args) -> int:
    from .report import run_report

    with parallel_pool(args) as pool:
        try:
            return run_report(args, usage_error=UsageError, progress=_progress, pool=pool)
        except ValueError as exc:          # a subject that cannot cross to a worker
            raise UsageError(str(exc)) from None


# --- proofs -----------------------------------------------------------------
def cmd_proofs(args) -> int:
    from transformer_theory.proofs import registry as proof_registry
    from transformer_theory.proofs import render

    derivations = proof_registry.all_derivations()
    if args.ids:
        derivations = [d for d in derivations
                       if any(fnmatch.fnmatchcase(d.id, p) for p in args.ids.split(","))]
        if not derivations:
            raise UsageError(f"--ids: no derivation matches {args.ids!r}")
    if args.json:
        json.dump(render.to_json(derivations), sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif args.latex:
        for d in derivations:
            print(d.to_latex())
            print()
    else:
        for d in derivations:
            print(render.format_text(d))
            print()
    ok = all(d.as_expected for d in derivations)
    return 0 if ok else 1


def parallel_options(p) -> None:
    """``--jobs`` and ``--executor`` (verify, report, check): where the claim runs execute."""
    p.add_argument("--jobs", default="1", metavar="N|auto",
                   help="run claims in N worker processes ('auto': one per core here); results "
                        "are identical to --jobs 1. Every run uses one BLAS and numba thread")
    p.add_argument("--executor", metavar="SPEC", default=None,
                   help="local (a process pool, the default), dask:local (a Dask LocalCluster "
                        "of --jobs workers) or dask:ADDRESS (a running Dask scheduler); dask "
                        "needs the extra 'distributed'")


def parallel_pool(args):
    """The executor of ``--jobs``/``--executor`` as a context manager (UsageError if bad)."""
    from .executor import check_executor_spec, executor, parse_jobs

    try:
        jobs = parse_jobs(args.jobs)
        check_executor_spec(args.executor)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return executor(jobs, args.executor)


def build_parser() -> argparse.ArgumentParser:
    import transformer_theory

    parser = argparse.ArgumentParser(
        prog="transformer-theory",
        description="Check transformer implementations against claims from the literature.")
    parser.add_argument("--version", action="version",
                        version=f"transformer-theory {transformer_theory.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list every claim")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--claims", metavar="GLOB", help="only claims whose id matches (comma-separated)")
    p.add_argument("--kind", choices=["property", "statistical", "symbolic", "construction",
                                      "limitation"])
    p.set_defaults(func=cmd_list)

    def run_options(p, subjects_flag: str):
        p.add_argument("--claims", metavar="GLOB", help="only claims whose id matches")
        p.add_argument("--profile", choices=sorted(PROFILES),
                       help="Hypothesis/Monte Carlo profile (default: $TT_PROFILE or dev)")
        p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="base seed of the run")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
        parallel_options(p)

    p = sub.add_parser("verify", help="run claims against a subject")
    p.add_argument("--subject", default="reference", choices=sorted(SUBJECTS))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--seeds", metavar="A-B|N,M",
                   help="a seed sweep: run the claims under every seed (a range A-B or a comma "
                        "list; symbolic claims once) and report every failure with its seed and "
                        "each claim's worst max_error / tolerance; replaces --seed")
    p.add_argument("--headroom", metavar="FILE",
                   help="with --seeds: also write the sweep (worst ratio per claim) as JSON")
    merging = p.add_mutually_exclusive_group()
    merging.add_argument("--extend", action="store_true",
                         help="with --headroom: merge this sweep into FILE if it exists (more "
                              "seeds, or other claims over the same seeds) instead of "
                              "replacing it")
    merging.add_argument("--replace", action="store_true",
                         help="with --headroom: the claims swept now replace their rows of "
                              "FILE, which keeps its other claims (a claim re-swept after its "
                              "check or bound changed)")
    run_options(p, "--subject")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("report", help="write the theory report")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--subjects", default="reference", metavar="A,B|all",
                   help=f"comma-separated subjects (from {', '.join(sorted(SUBJECTS))}), or "
                        f"'all' for every subject installed here (default: reference)")
    p.add_argument("--no-figures", action="store_true",
                   help="skip the benchmark figures (quick runs; claim figures stay)")
    run_options(p, "--subjects")
    p.set_defaults(func=cmd_report)
    p.error = functools.partial(_one_line_error, p)  # every report error is one line

    p = sub.add_parser("proofs", help="print the sympy derivations")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="machine-readable output")
    fmt.add_argument("--latex", action="store_true", help="LaTeX output")
    p.add_argument("--ids", metavar="GLOB", help="only derivations whose id matches")
    p.set_defaults(func=cmd_proofs)

    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        parser.exit(2, f"transformer-theory: error: {exc}\n")
    except BrokenPipeError:  # e.g. piped into head
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
