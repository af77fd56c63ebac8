"""``transformer-theory check TARGET``: which claims does an implementation break?

::

    transformer-theory check TARGET [--as KIND] [--claims GLOB] [--profile P]
                                    [--seed N] [--json] [--option key=value ...]

A failing claim is re-run under each single alternative convention that
concerns it; when exactly one passes, the failure carries a diagnosis naming the
``--option`` to declare (``--no-diagnosis`` skips the re-runs).

TARGET is ``module:callable`` (with ``--as KIND``), ``module:subject_object``,
or a built-in name: ``torch``, ``jax`` (or ``reference``). The output is a
table of claim, status and time, with the smallest falsifying example under
each failure; ``--json`` gives the same data, with reproduction snippets.

Exit status: 0 when every applicable claim holds, 1 when some claim fails or
errors (a diagnosed failure included), 2 when the target cannot be imported or
does not fit the contract (with a message saying what is wrong) or an option is
unknown or has a value outside its set.

References
----------
Issue 8, "Conformance: check any implementation against the claims".
"""

from __future__ import annotations

import json
import sys
import time

from ..conformance import KINDS, TargetError, check, load_subject, parse_options
from ..profiles import PROFILES
from ..runner import DEFAULT_SEED


def register(subparsers) -> None:
    """Add the ``check`` sub-command to the ``transformer-theory`` parser."""
    p = subparsers.add_parser(
        "check", help="check an implementation (module:callable, module:subject, torch, jax)",
        description="Run every applicable claim against an implementation and report which "
                    "ones it breaks, with the smallest failing input. Exit status 0: all hold; "
                    "1: some claim fails; 2: the target cannot be imported or does not fit.")
    p.add_argument("target", metavar="TARGET",
                   help="module:callable (with --as), module:subject_object, or torch, jax, "
                        "reference")
    p.add_argument("--as", dest="as_kind", metavar="KIND", choices=KINDS,
                   help="what the callable is: attention, layer_norm, sinusoidal_encoding, "
                        "orthogonal_gaussian, random_features, favor_attention, "
                        "multi_head_attention, grouped_query_attention, ..., or a whole "
                        "sequence map: encoder, causal")
    p.add_argument("--claims", metavar="GLOB", help="only claims whose id matches (comma-separated)")
    p.add_argument("--profile", choices=sorted(PROFILES),
                   help="Hypothesis/Monte Carlo profile (default: $TT_PROFILE or dev)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="base seed of the run")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a convention or setting of the subject, e.g. causal_alignment="
                        "bottom-right, layout='(B, L, H, E)', fully_masked_row=nan, d_model=16, "
                        "tensors=torch (repeatable; values are JSON when they parse)")
    p.add_argument("--no-diagnosis", dest="diagnosis", action="store_false",
                   help="do not re-run failing claims under alternative conventions (each "
                        "failing claim is otherwise re-run once per alternative that concerns it)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    from ..cli import parallel_options

    parallel_options(p)
    p.set_defaults(func=cmd_check)


def _progress(enabled: bool):
    start = time.perf_counter()

    def report(i, n, result):
        if not enabled:
            return
        sys.stderr.write(f"\r[{i:>3}/{n}] {time.perf_counter() - start:6.1f}s "
                         f"{result.status:<8} {result.id:60.60s}")
        if result.status in ("failed", "error") or i == n:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return report


def _runs(subject, claims) -> list[tuple]:
    """The runs ``check`` makes, in order, for the progress bar: (claim id, dtype)."""
    from ..conformance import applicable_claims
    from ..runner import half_runs

    try:
        run, _ = applicable_claims(subject, claims)
    except ValueError:
        return []
    return [(c.id, d) for c in run for d in (None, *half_runs(c, subject))]


def cmd_check(args) -> int:
    """Run ``check`` and print the table (or JSON); return the exit status."""
    try:
        options = parse_options(args.option)
        subject = load_subject(args.target, as_kind=args.as_kind, options=options)
    except TargetError as exc:
        sys.stderr.write(f"transformer-theory check: {exc}\n")
        return 2
    show = sys.stderr.isatty() and not args.quiet
    from ..cli import UsageError, parallel_pool
    from ..profiles import get_profile
    from ..progress import run_bar

    try:
        with parallel_pool(args) as pool, \
                run_bar(show, subject.name, get_profile(args.profile).name,
                        _runs(subject, args.claims), _progress(show)) as bar:
            report = check(subject, args.claims, profile=args.profile, seed=args.seed,
                           progress=bar, diagnosis=args.diagnosis, pool=pool)
    except UsageError as exc:          # --jobs or --executor
        sys.stderr.write(f"transformer-theory check: {exc}\n")
        return 2
    except ValueError as exc:          # a glob matching no claim, a subject without a record
        msg = str(exc)
        sys.stderr.write(f"transformer-theory check: "
                         f"{msg if msg.startswith('--') else '--claims: ' + msg}\n")
        return 2
    if not report.results:
        sys.stderr.write(f"transformer-theory check: no claim applies to {subject.name!r} "
                         f"(its callables: {', '.join(sorted(subject.callables))})\n")
        return 2
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(report.format_table())
    return report.exit_code
