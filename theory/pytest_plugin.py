"""The ``pytest11`` plugin: property runs of your own implementation under pytest.

::

    pytest --tt-subject my_pkg.attn:sdpa --tt-as attention
    pytest --tt-subject my_pkg.model:subject --tt-claims 'attention.*,masking.*'

generates one test per applicable claim, with the claim id as the test id
(``-k causal`` selects by id as usual). A failing test shows the claim's
detail, the smallest falsifying example and a reproduction snippet.

Options: ``--tt-subject TARGET`` (as ``transformer-theory check``: a built-in
name, ``module:subject_object`` or ``module:callable``), ``--tt-as KIND``,
``--tt-claims GLOB``, ``--tt-option KEY=VALUE`` (repeatable), ``--tt-profile``
(default ``$TT_PROFILE`` or ``dev``) and ``--tt-seed``.

The plugin is installed with transformer-theory and so loads in every pytest
run of the environment; without ``--tt-subject`` it does nothing (it only
registers its options), and it imports the suite lazily.

References
----------
Issue 8 ("pytest plugin (a pytest11 entry point)"); pytest documentation,
"Writing plugins" and "Working with non-python tests".
"""

from __future__ import annotations

import json

import pytest

_KEY = "_transformer_theory_subject"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("transformer-theory", "check an implementation against the claims")
    group.addoption("--tt-subject", metavar="TARGET", default=None,
                    help="implementation to check: torch, jax, module:subject_object or "
                         "module:callable (with --tt-as)")
    group.addoption("--tt-as", metavar="KIND", default=None,
                    help="what a module:callable target is (attention, layer_norm, encoder, "
                         "causal, ...)")
    group.addoption("--tt-claims", metavar="GLOB", default=None,
                    help="only claims whose id matches (comma-separated globs)")
    group.addoption("--tt-option", metavar="KEY=VALUE", action="append", default=[],
                    help="a convention or setting of the subject (repeatable)")
    group.addoption("--tt-profile", metavar="PROFILE", default=None,
                    help="ci, dev or thorough (default: $TT_PROFILE or dev)")
    group.addoption("--tt-seed", metavar="N", type=int, default=None,
                    help="base seed of the run")


def pytest_configure(config) -> None:
    target = config.getoption("--tt-subject", default=None)
    if not target:
        return
    from .conformance import TargetError, load_subject, parse_options

    try:
        subject = load_subject(target, as_kind=config.getoption("--tt-as"),
                               options=parse_options(config.getoption("--tt-option")))
    except TargetError as exc:
        raise pytest.UsageError(f"--tt-subject: {exc}") from None
    setattr(config, _KEY, subject)


class ClaimItem(pytest.Item):
    """One claim run against the subject of ``--tt-subject``."""

    def __init__(self, *, claim, subject, profile, seed, **kwargs):
        super().__init__(**kwargs)
        self.claim = claim
        self.subject = subject
        self.profile = profile
        self.seed = seed
        self.result = None

    def runtest(self) -> None:
        from .conformance import declared_conventions, to_result
        from .runner import run_claim

        result = run_claim(self.claim, self.subject, profile=self.profile, seed=self.seed)
        self.result = to_result(result, self.subject, result_profile(self.profile), self.seed,
                                declared_conventions(self.subject))
        for key, value in self.result.conventions.items():
            self.user_properties.append(("convention", f"{key}={value}"))
        if self.result.status == "not_applicable":
            pytest.skip(self.result.detail)
        if self.result.status == "failed":
            from .diagnosis import diagnose

            self.result.diagnosis = diagnose(self.claim, self.subject, profile=self.profile,
                                             seed=self.seed)
            if self.result.diagnosis:
                from transformer_theory.impl.contract.conventions import option_value

                self.result.declared = option_value(
                    self.subject.declared().options, self.result.diagnosis["option"],
                    self.claim.needs[0] if self.claim.needs else None)
        if self.result.status in ("failed", "error"):
            raise ClaimFailed(self.result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ClaimFailed):
            r = excinfo.value.result
            parts = [f"{r.id} {r.status} on {self.subject.name}: {r.title}", r.detail]
            if r.example is not None:
                parts.append("smallest falsifying example:\n  " + json.dumps(r.example, default=str))
            if r.diagnosis_line():
                parts.append(r.diagnosis_line())
            if r.reproduction:
                parts.append("reproduce with:\n" + r.reproduction)
            return "\n".join(parts)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self.claim.id} [{self.subject.name}]"


class ClaimFailed(Exception):
    """A claim did not hold (or its check raised)."""

    def __init__(self, result):
        super().__init__(result.id)
        self.result = result


class SubjectCollector(pytest.Collector):
    """Holds the claim items of one subject (node id ``transformer-theory[subject]``)."""

    def collect(self):  # pragma: no cover - items are added directly
        return []


def result_profile(profile) -> str:
    return getattr(profile, "name", str(profile))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items) -> None:
    subject = getattr(config, _KEY, None)
    if subject is None:
        return
    from .conformance import applicable_claims
    from .profiles import get_profile
    from .runner import DEFAULT_SEED

    profile = get_profile(config.getoption("--tt-profile"))
    seed = config.getoption("--tt-seed")
    seed = DEFAULT_SEED if seed is None else seed
    try:
        claims, _ = applicable_claims(subject, config.getoption("--tt-claims"))
    except ValueError as exc:
        raise pytest.UsageError(f"--tt-claims: {exc}") from None
    name = f"transformer-theory[{subject.name}]"
    parent = SubjectCollector.from_parent(session, name=name, path=session.path, nodeid=name)
    generated = [ClaimItem.from_parent(parent, name=claim.id, claim=claim, subject=subject,
                                       profile=profile, seed=seed) for claim in claims]
    items.extend(generated)
    # Report the generated items as collected, so that counts ("N tests collected") include them.
    report = pytest.CollectReport(parent.nodeid, "passed", None, generated)
    session.ihook.pytest_collectreport(report=report)


def pytest_report_header(config):
    subject = getattr(config, _KEY, None)
    if subject is None:
        return None
    return (f"transformer-theory: checking {subject.name!r} "
            f"({len(subject.callables)} callables)")
