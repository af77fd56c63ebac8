"""Tests of the claim machinery: tolerance policy, statistics, property runner,
registry, runner and the CLI's machine-readable output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import strategies as st

from transformer_theory.theory import cli, registry
from transformer_theory.theory.checks import Measurement, compare, for_all, holds
from transformer_theory.theory.claim import Claim, Evidence, Kind, Source, Status
from transformer_theory.theory.profiles import PROFILES, get_profile
from transformer_theory.theory.runner import Context, run_claim, select
from transformer_theory.theory.statistics import MAX_FALSE_FAILURE, mom_groups, test_mean
from transformer_theory.theory.subject import CALLABLES, Subject
from transformer_theory.theory.tolerance import RULES, eps, relative_error, tolerance


# --- tolerance --------------------------------------------------------------
def test_tolerance_scales_with_dtype_and_reduction():
    t64 = tolerance("reduction", np.float64, n=10)
    t32 = tolerance("reduction", np.float32, n=10)
    assert t64.rtol == pytest.approx(4 * 10 * eps(np.float64))
    assert t32.rtol / t64.rtol == pytest.approx(eps(np.float32) / eps(np.float64))
    assert tolerance("reduction", np.float64, n=20).rtol == pytest.approx(2 * t64.rtol)
    assert tolerance("rounding", np.float64, n=1000).rtol == tolerance("rounding", np.float64).rtol


def test_every_tolerance_rule_has_a_reason():
    for name, rule in RULES.items():
        assert len(rule.reason) > 20, name
        assert tolerance(name, np.float64).reason == rule.reason


def test_tolerance_rejects_unknown_rule_and_bad_n():
    with pytest.raises(ValueError, match="rule"):
        tolerance("loose", np.float64)
    with pytest.raises(ValueError, match="n"):
        tolerance("reduction", np.float64, n=0)


def test_relative_error_is_normwise_and_catches_nan_and_shape():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([1.0, 2.5], [1.0, 2.0]) == pytest.approx(0.25)
    assert relative_error([np.nan], [1.0]) == math.inf
    assert relative_error([1.0, 2.0], [1.0]) == math.inf
    assert relative_error([1e-20], [0.0], scale=[1.0]) == pytest.approx(1e-20)


# --- statistics -------------------------------------------------------------
def test_mom_groups_give_the_stated_false_failure_probability():
    g = mom_groups(1e-6)
    assert math.exp(-g / 8) <= 1e-6 < math.exp(-(g - 1) / 8)


def test_mean_test_rejects_a_wrong_mean_and_accepts_the_right_one():
    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, size=200_000)                       # mean 1, variance 1
    assert test_mean(x, 1.0, 1.0).passed
    assert not test_mean(x, 1.1, 1.0).passed


def test_mean_test_refuses_a_weaker_error_rate():
    with pytest.raises(ValueError, match="delta"):
        test_mean(np.ones(1000), 1.0, 1.0, delta=1e-3)
    assert MAX_FALSE_FAILURE == 1e-6


def test_mean_test_false_failure_rate_is_far_below_chebyshev_level():
    # 300 independent tests of a true hypothesis with heavy-tailed samples: none may fail.
    rng = np.random.default_rng(1)
    fails = 0
    for _ in range(300):
        x = rng.lognormal(0.0, 1.0, size=111 * 40)
        mean, var = math.exp(0.5), (math.e - 1) * math.e
        fails += not test_mean(x, mean, var).passed
    assert fails == 0


# --- property runner --------------------------------------------------------
def _ctx(profile="ci"):
    return Context(get_profile(profile), seed=7, claim_id="machinery.test")


def test_for_all_passes_and_reports_the_worst_error():
    ev = for_all(_ctx(), st.floats(0, 1), lambda x: Measurement(x * 1e-17, 1e-16), detail="d")
    assert ev.passed and ev.cases == PROFILES["ci"].max_examples
    assert ev.max_error <= 1e-16 and ev.tolerance == 1e-16


def test_for_all_shrinks_to_a_minimal_falsifying_example():
    ev = for_all(_ctx(), st.integers(0, 1000), lambda n: holds(n < 10, "too big"), detail="d")
    assert not ev.passed
    assert ev.falsifying_example == 10
    assert "too big" in ev.detail


def test_for_all_counts_an_exception_of_the_subject_as_failure():
    def measure(n):
        raise FloatingPointError("boom")
    ev = for_all(_ctx(), st.integers(0, 3), measure, detail="d")
    assert not ev.passed and "FloatingPointError: boom" in ev.detail


def test_for_all_is_deterministic_for_a_seed():
    seen = []
    for _ in range(2):
        draws = []
        for_all(_ctx("dev"), st.integers(0, 10**9), lambda n: draws.append(n) or True, detail="d")
        seen.append(draws)
    assert seen[0] == seen[1]


def test_compare_uses_the_tolerance():
    tol = tolerance("rounding", np.float64)
    assert compare(np.ones(3), np.ones(3) * (1 + 1e-16), tol).ok
    assert not compare(np.ones(3), np.ones(3) * (1 + 1e-10), tol).ok


# --- runner and registry ------------------------------------------------------
def _claim(check, needs=("attention",)):
    return Claim(id="machinery.example", title="t", statement="x", sources=(Source("A", "B"),),
                 kind=Kind.PROPERTY, needs=needs, check=check)


def test_runner_statuses():
    subject = Subject("s", {"attention": lambda *a, **k: None})
    assert run_claim(_claim(lambda s, c: Evidence(True, 1)), subject).status is Status.PASSED
    assert run_claim(_claim(lambda s, c: Evidence(False, 1)), subject).status is Status.FAILED
    assert run_claim(_claim(lambda s, c: 1 / 0), subject).status is Status.ERROR
    assert run_claim(_claim(lambda s, c: "yes"), subject).status is Status.ERROR
    lacking = _claim(lambda s, c: Evidence(True, 1), needs=("rope",))
    assert run_claim(lacking, subject).status is Status.NOT_APPLICABLE


def test_registry_ids_are_unique_topics_match_and_needs_are_known():
    claims = registry.all_claims()
    ids = [c.id for c in claims]
    assert len(ids) == len(set(ids))
    for c in claims:
        assert c.id.startswith(c.topic + ".")
        assert c.sources, c.id
        assert c.statement.strip(), c.id
        unknown = set(c.needs) - set(CALLABLES)
        assert not unknown, f"{c.id} needs undocumented callables {unknown}"


def test_claim_text_reads_title_statement_and_notes_from_a_docstring():
    doc = r"""Attention rows are probability
    vectors

    .. math:: A_{ij}\ge 0,\qquad
        \sum_j A_{ij}=1

    Checked in float64
    with masks.

    A second paragraph.
    """
    assert registry.claim_text(doc) == (
        "Attention rows are probability vectors", r"A_{ij}\ge 0,\qquad \sum_j A_{ij}=1",
        "Checked in float64 with masks.\n\nA second paragraph.")
    # no math paragraph: everything after the title is notes, and the statement is empty
    assert registry.claim_text("Title\n\n  Notes.\n") == ("Title", "", "Notes.")
    assert registry.claim_text(None) == ("", "", "")


def test_a_claim_without_a_docstring_title_is_refused():
    topic = registry.ClaimSet("attention")

    def undocumented(subject, ctx):
        return None

    with pytest.raises(ValueError, match="^undocumented: claim 'attention.x' has no title"):
        topic.claim("attention.x", sources=(Source("a", "b"),), kind=Kind.PROPERTY,
                    needs=())(undocumented)
    assert len(topic) == 0


def test_the_topic_list_names_every_claim_module_and_every_derivation_module():
    """TOPIC_MODULES sets the report order; it must not drift from the packages' modules."""
    import pkgutil

    from transformer_theory import proofs
    from transformer_theory.proofs import registry as proof_registry
    from transformer_theory.theory import claims as claims_package

    def public(package):
        return {m.name for m in pkgutil.iter_modules(package.__path__) if m.name[0] != "_"}

    assert public(claims_package) == set(registry.TOPIC_MODULES)
    assert len(registry.TOPIC_MODULES) == len(set(registry.TOPIC_MODULES))
    machinery = {"derivation", "registry", "render"}            # proofs' own plumbing
    assert public(proofs) - machinery == set(proof_registry.TOPIC_MODULES)


def test_registry_lookup_and_select():
    c = registry.all_claims()[0]
    assert registry.get(c.id) is c
    with pytest.raises(KeyError):
        registry.get("no.such.claim")
    assert select(registry.all_claims(), "masking.*") == registry.find("masking.*")
    assert all(x.kind is Kind.LIMITATION for x in registry.find(kind="limitation"))


def test_issue_2_claim_count():
    assert len([c for c in registry.all_claims() if c.topic != "proof"]) >= 35


# --- CLI ----------------------------------------------------------------------
def test_cli_list_json_schema(capsys):
    assert cli.main(["list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"claims"}
    for rec in doc["claims"]:
        assert set(rec) == {"id", "title", "kind", "statement", "sources", "needs", "proof",
                            "dtypes", "half_precision"}


def test_cli_verify_json_schema_and_exit_status(capsys):
    code = cli.main(["verify", "--claims", "heads.kv_cache_size,attention.explicit_scale",
                     "--profile", "ci", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(doc) == {"subject", "profile", "seed", "results"}
    assert doc["subject"] == "reference" and doc["profile"] == "ci"
    # the reference declares float16 and bfloat16: a claim with a meaning there runs in each
    assert [(r["id"], r["dtype"]) for r in doc["results"]] == [
        ("attention.explicit_scale", None), ("attention.explicit_scale", "float16"),
        ("attention.explicit_scale", "bfloat16"), ("heads.kv_cache_size", None)]
    for r in doc["results"]:
        assert set(r) == {"id", "dtype", "status", "cases", "max_error", "tolerance", "detail",
                          "seconds"}
        assert r["status"] == "passed"


def test_cli_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--claims", "nothing.matches*"])
    assert exc.value.code == 2
    assert "no claim id matches" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--profile", "fast"])
    assert exc.value.code == 2


def test_cli_report_writes_markdown_and_json(tmp_path, capsys):
    code = cli.main(["report", "--out", str(tmp_path), "--claims", "positional.*",
                     "--profile", "ci", "-q"])
    assert code == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["schema"] == 1 and doc["subjects"] == ["reference"]
    md = (tmp_path / "report.md").read_text()
    for rec in doc["claims"]:
        assert rec["id"] in md


def test_weyl_tolerance_bounds_the_tail_of_a_perturbed_low_rank_matrix():
    from transformer_theory.theory.tolerance import eps, weyl_tolerance

    rng = np.random.default_rng(7)
    for m, n, units in ((4, 6, 10.0), (9, 3, 1000.0)):
        c = np.outer(rng.standard_normal(m), rng.standard_normal(n))            # rank 1
        d = rng.uniform(-1, 1, (m, n)) * units * eps(np.float64)                # |D_ij| <= bound
        sv = np.linalg.svd(c + d, compute_uv=False)
        tol = weyl_tolerance(np.float64, (m, n), units, float(sv[0]))
        assert sv[1] / sv[0] <= tol.rtol / 4              # Weyl itself, without the margin
        assert tol.rule == "weyl" and "Weyl" in tol.reason
    with pytest.raises(ValueError, match="sigma_max"):
        weyl_tolerance(np.float64, (2, 2), 1.0, 0.0)


@pytest.mark.parametrize("text, seeds", [("1-3", [1, 2, 3]), ("4", [4]), ("2,7,2", [2, 7]),
                                         ("0-1,9", [0, 1, 9])])
def test_parse_seeds(text, seeds):
    from transformer_theory.theory.sweep import parse_seeds

    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "5-2", "-1", "a-b", "1-", "1.5"])
def test_parse_seeds_refuses(text):
    from transformer_theory.theory.sweep import parse_seeds

    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds(text)


def test_sweep_keeps_every_failure_with_its_seed_and_the_worst_ratio():
    import transformer_theory.impl.attention as A
    from transformer_theory.theory.builtin_subjects import reference_subject
    from transformer_theory.theory.sweep import sweep

    claims = registry.find("masking.window_key_count,proof.softmax.shift_invariance")
    ref = reference_subject()

    def wide(q, k, v, *, window=None, **kw):                 # a window one key too wide
        if window is not None:
            window = (None if window[0] is None else window[0] + 1, window[1])
        return A.attention(q, k, v, window=window, **kw)

    table = sweep(claims, ref.replace(attention=wide), profile="ci", seeds=[3, 4])
    key_count = [s for s in table if s.id == "masking.window_key_count" and s.dtype is None]
    assert [f["seed"] for f in key_count[0].failures] == [3, 4]
    [proof] = [s for s in table if s.id == "proof.softmax.shift_invariance"]
    assert proof.runs == 1                                     # symbolic: once
    good = sweep(registry.find("attention.softcap_definition"), ref, profile="ci", seeds=[1, 2])
    assert all(not s.failures and s.runs == 2 for s in good)
    assert all(s.worst_ratio is not None and 0 <= s.worst_ratio <= 1 for s in good)


def test_verify_seeds_cli(capsys, tmp_path):
    out = tmp_path / "headroom.json"
    code = cli.main(["verify", "--claims", "attention.softcap_limit", "--profile", "ci",
                     "--seeds", "1-2", "--headroom", str(out), "-q"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["seeds"] == [1, 2] and doc["claims"][0]["runs"] == 2
    assert "2 seeds" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--seeds", "3-1"])
    assert exc.value.code == 2
    # --extend: seeds 3-4 merged into the file of 1-2 give the sweep of 1-4
    assert cli.main(["verify", "--claims", "attention.softcap_limit", "--profile", "ci",
                     "--seeds", "3-4", "--headroom", str(out), "--extend", "-q"]) == 0
    doc = json.loads(out.read_text())
    assert doc["seeds"] == [1, 2, 3, 4] and doc["claims"][0]["runs"] == 4
    with pytest.raises(SystemExit) as exc:                   # the same seeds twice: refused
        cli.main(["verify", "--claims", "attention.softcap_limit", "--profile", "ci",
                  "--seeds", "4", "--headroom", str(out), "--extend", "-q"])
    assert exc.value.code == 2
    # --replace: a claim re-swept over 2-3 replaces its row of 1-4; other claims stay
    assert cli.main(["verify", "--claims", "attention.softcap_definition", "--profile", "ci",
                     "--seeds", "1", "--headroom", str(out), "--extend", "-q"]) == 0
    assert cli.main(["verify", "--claims", "attention.softcap_limit", "--profile", "ci",
                     "--seeds", "2-3", "--headroom", str(out), "--replace", "-q"]) == 0
    rows = {c["id"]: c for c in json.loads(out.read_text())["claims"]}
    assert rows["attention.softcap_limit"]["seeds"] == "2-3"
    assert rows["attention.softcap_limit"]["runs"] == 2
    assert rows["attention.softcap_definition"]["seeds"] == "1"
    for flags in (["--extend", "--replace"], ["--replace"]):  # both, or without --headroom
        with pytest.raises(SystemExit) as exc:
            cli.main(["verify", "--claims", "attention.softcap_limit", "--seeds", "5", *flags])
        assert exc.value.code == 2


def test_logit_tolerance_covers_logits_rounded_at_their_magnitude():
    """Two tied keys at a bias of -1e4: float32 rounds each logit at 1e4 ulp, and the
    composite rule alone is below the error that causes; logit_tolerance bounds it."""
    from transformer_theory.theory.tolerance import logit_tolerance

    s = np.array([-10000.3, -10000.3 + 0.0005])                          # 0.0005 apart
    exact = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    s32 = s.astype(np.float32).astype(np.float64)                        # rounded at 1e4 ulp
    rounded = np.exp(s32 - s32.max()) / np.exp(s32 - s32.max()).sum()
    err = float(np.max(np.abs(rounded - exact)))
    assert err > tolerance("composite", np.float32, 4).rtol              # the rule alone fails
    tol = logit_tolerance("composite", np.float32, 4, float(np.max(np.abs(s))))
    assert err <= tol.rtol and tol.rule == "logits"


def test_sweep_merge_of_chunks_equals_one_sweep():
    """Seeds 1-2 and 3 swept apart and merged give the sweep of 1-3 (issue 21's chunks)."""
    from transformer_theory.theory.builtin_subjects import reference_subject
    from transformer_theory.theory.sweep import merge, sweep

    claims = registry.find("attention.softcap_limit")
    ref = reference_subject()

    def doc(seeds):
        return {"subject": "reference", "profile": "ci", "seeds": seeds,
                "claims": [s.to_json() for s in sweep(claims, ref, profile="ci", seeds=seeds)]}

    whole, merged = doc([1, 2, 3]), merge([doc([1, 2]), doc([3])])
    assert merged == whole
    with pytest.raises(ValueError, match="seed 3 of attention.softcap_limit is in two sweeps"):
        merge([doc([3]), doc([3])])
    other = {"subject": "reference", "profile": "ci", "seeds": [1, 2, 3, 4],
             "claims": [{"id": "x.y", "dtype": None, "runs": 4, "worst_ratio": 0.5,
                         "worst_seed": 2, "failures": []}]}   # a row without its seeds
    both = merge([doc([1, 2]), other])                  # other claims, the same seeds: fine
    assert both["seeds"] == [1, 2, 3, 4] and [c["runs"] for c in both["claims"]] == [2, 4]
    assert [c["seeds"] for c in both["claims"]] == ["1-2", "1-4"]
    with pytest.raises(ValueError, match="cannot merge"):
        merge([doc([1]), {**doc([2]), "subject": "fast"}])
    # per-claim seeds: a claim with fewer seeds extends over its own, not the document's
    extended = merge([both, doc([3])])
    assert [c["seeds"] for c in extended["claims"]] == ["1-3", "1-4"]
    with pytest.raises(ValueError, match="seed 3 of x.y is in two sweeps"):
        merge([both, {**other, "seeds": [3], "claims": [{**other["claims"][0], "runs": 1,
                                                          "seeds": "3"}]}])
    # replace: a re-swept claim's row is the new sweep's alone
    again = merge([extended, doc([7])], replace=True)
    assert [(c["seeds"], c["runs"]) for c in again["claims"]] == [("7", 1), ("1-4", 4)]
    bad = {**other, "claims": [{**other["claims"][0], "runs": 3}]}
    with pytest.raises(ValueError, match="the 3 runs of x.y do not say their seeds"):
        merge([bad])


@pytest.mark.parametrize("seeds, text", [([1, 2, 3, 7], "1-3,7"), ([5], "5"), ([], ""),
                                         ([9, 1, 2, 2], "1-2,9"), ([0, 2, 4], "0,2,4")])
def test_format_seeds_is_read_back_by_parse_seeds(seeds, text):
    from transformer_theory.theory.sweep import format_seeds, parse_seeds

    assert format_seeds(seeds) == text
    if seeds:
        assert parse_seeds(text) == sorted(set(seeds))


def test_report_shows_the_committed_headroom_beside_each_claim(tmp_path):
    """The headroom column reads benchmarks/headroom-<subject>.json; results.json does not."""
    from transformer_theory.theory.report import build_report

    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "headroom-reference.json").write_text(json.dumps({
        "subject": "reference", "profile": "dev", "seeds": list(range(1, 201)),
        "claims": [{"id": "attention.softcap_limit", "dtype": None, "runs": 200,
                    "worst_ratio": 0.4321, "worst_seed": 17, "failures": []}]}))
    build_report(tmp_path / "r", claims=registry.find("attention.softcap_limit"),
                       profile="ci", figures=False, root=tmp_path)
    page = (tmp_path / "r" / "index.html").read_text()
    assert "headroom: worst over 200 seeds" in page and ">0.43<" in page
    assert "0.4321" not in (tmp_path / "r" / "results.json").read_text()
    build_report(tmp_path / "b", claims=registry.find("attention.softcap_limit"),
                        profile="ci", figures=False, root=tmp_path / "nowhere")
    assert "headroom" not in (tmp_path / "b" / "index.html").read_text()


def test_every_callable_a_claim_needs_or_uses_is_in_the_contract():
    """A construction a claim takes (``uses=``) is a contract callable, so that a subject can
    bring its own and ``list``/the README show its signature (ARCHITECTURE, "Where a new
    thing goes")."""
    from transformer_theory.impl.contract.callables import CALLABLES

    missing = [(c.id, name) for c in registry.all_claims() for name in c.needs + c.uses
               if name not in CALLABLES]
    assert missing == []


def test_score_tolerance_covers_scores_with_cancelling_terms():
    """A float32 score whose terms cancel (1e3 - 1e3 + 0.5) carries the rounding of its large
    terms: beyond the reduction rule, within score_tolerance (attention.explicit_scale)."""
    from transformer_theory.theory.tolerance import score_tolerance

    rng = np.random.default_rng(0)
    q = np.array([[1000.1, 1000.0, 0.5]])                                 # (1, 3)
    k = np.array([[1.0, -1.0, 1.0], [0.0, 0.0, 0.0]])                      # (2, 3)
    s = 4.0
    exact = s * (q @ k.T)
    worst = 0.0
    for _ in range(200):                        # random float32 perturbations of the terms
        q32 = (q * (1 + rng.uniform(-1, 1, q.shape) * 2 ** -24)).astype(np.float32)
        got = s * (q32.astype(np.float64) @ k.T)
        worst = max(worst, float(np.max(np.abs(got - exact))))
    # the output error is ~2 x the logit error; the reduction rule on its own is below it
    assert 2 * worst > tolerance("reduction", np.float32, 5).rtol
    assert 2 * worst <= score_tolerance("reduction", np.float32, 5, q, k, s).rtol


def test_bptt_rounding_bound_covers_a_cancelling_tanh_argument():
    """gradients.bptt_sums_tied_copies, issue 21's seed 72: U x_1 sums 0.055 - 0.055 to
    7e-4, so h_1 and dL/dW = delta_2 h_1 carry an absolute error of the terms' size, 21 eps
    of the gradient, beyond the composite rule's reach of a relative bound: the running
    error bound covers every entry, and every perturbed evaluation of the same BPTT."""
    import mpmath

    from transformer_theory.impl import recurrence as R
    from transformer_theory.theory.claims.gradients import (_central_difference, _mp_rnn_loss,
                                                            bptt_rounding_bound)

    x = np.array([[1.6324326927834527, -1.877901750973295],
                  [-1.6079837666476737, -1.317525148354537]])                    # (T, m)
    w = np.array([[-0.06620219199412707]])                                       # (n, n)
    u = np.array([[0.033899292086251885, 0.029076569410149824]])                 # (n, m)
    g = np.array([[-0.2093914828973679], [-0.05634090599940885]])                # (T, n)
    with mpmath.workdps(50):
        tied = _central_difference(lambda z: _mp_rnn_loss(x, w, u, g, z), w)
    dw, per_copy = R.elman_bptt(x, w, u, g)
    tied_bound, copy_bound = bptt_rounding_bound(x, w, u, g)
    scale = float(np.max(np.abs(tied)))
    err = float(np.max(np.abs(dw - tied)))
    assert err / scale > 10 * np.finfo(np.float64).eps        # the case is ill-conditioned
    assert np.all(np.abs(dw - tied) <= tied_bound)
    assert np.all(np.abs(per_copy[1] - tied) <= copy_bound[1])
    # the bound is a bound for other summation orders too: U x computed the other way round
    rng = np.random.default_rng(0)
    for _ in range(50):
        wiggle = 1 + rng.uniform(-1, 1, x.shape) * np.finfo(np.float64).eps
        moved, _ = R.elman_bptt(x * wiggle, w, u, g)       # one rounding of each input
        assert np.all(np.abs(moved - tied) <= tied_bound)


def test_higham_gamma():
    from transformer_theory.theory.tolerance import higham_gamma

    u = np.finfo(np.float64).eps / 2
    assert higham_gamma(0) == 0.0
    assert higham_gamma(3) == pytest.approx(3 * u / (1 - 3 * u))
    assert higham_gamma(2, np.float32) == pytest.approx(np.finfo(np.float32).eps)
    with pytest.raises(ValueError, match="^n: expected"):
        higham_gamma(-1)
    with pytest.raises(ValueError, match="^n: expected"):
        higham_gamma(2 ** 12, np.float16)
