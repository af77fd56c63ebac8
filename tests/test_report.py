"""The theory report: index.html, results.json and report.md (theory/report/).

Checks that the HTML is well-formed, that every registered claim gets its
section, that figures are embedded and nothing points to the network, that a
(seed, profile) gives the same results.json apart from timings, that a failing
claim is shown with its example and makes the command exit 1, and the pieces:
LaTeX -> MathML, the figure protocol, the summary, subject selection.
Runs on claim subsets with the ci profile to stay well under a minute.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from transformer_theory.theory import cli, registry
from transformer_theory.theory.claim import Claim, Evidence, Kind, Source, Status
from transformer_theory.theory.report import build_report, resolve_subjects
from transformer_theory.theory.report import figures as F
from transformer_theory.theory.report.html import render_html, render_html_with_size
from transformer_theory.theory.report.markdown import (build_results_json, render_markdown,
                                                       strip_timings)
from transformer_theory.theory.report.math import code_fallback, converts, to_mathml
from transformer_theory.theory.report.progress import make_progress
from transformer_theory.theory.runner import Result

#: Every kind, statistics, a proof with derivation steps, claim figures of three topics.
SUBSET = ("attention.temperature_limit,attention.unit_logit_variance,"
          "masking.causal_future_invariance,masking.post_softmax_unrenormalized,"
          "positional.sinusoidal_dot_product_relative,"
          "counting.seed003_parameters,proof.softmax.shift_invariance")

#: The claims of SUBSET whose evidence carries a figure.
FIGURE_CLAIMS = ("attention.temperature_limit", "masking.causal_future_invariance",
                 "positional.sinusoidal_dot_product_relative")

#: Quick claims for the determinism (a statistical one) and exit-status runs.
QUICK = "attention.unit_logit_variance,masking.post_softmax_unrenormalized"
QUICKER = "masking.post_softmax_unrenormalized,heads.kv_cache_size"


def parse_xhtml(text: str) -> ET.Element:
    """Parse the page as XML (the DOCTYPE line removed): fails on any malformed markup."""
    assert text.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(text[len("<!DOCTYPE html>\n"):])


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ids(root: ET.Element, tag: str) -> list[str]:
    return [el.get("id") for el in root.iter() if _local(el.tag) == tag and el.get("id")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result = build_report(out, claims=registry.find(SUBSET), profile="ci",
                          claims_pattern=SUBSET)
    return result


# --- the page ----------------------------------------------------------------
def test_writes_the_three_files(report):
    assert [p.name for p in report.paths] == ["index.html", "results.json", "report.md"]
    assert all(p.stat().st_size > 0 for p in report.paths)
    assert report.exit_code == 0


def test_html_is_well_formed_with_a_section_per_claim(report):
    root = parse_xhtml((report.out_dir / "index.html").read_text(encoding="utf-8"))
    articles = _ids(root, "article")
    assert articles == [c.id for c in registry.find(SUBSET)]
    for section in ("summary", "environment", "contents", "closing-note"):
        assert section in _ids(root, "section") + _ids(root, "footer")
    # the contents link to every claim anchor
    hrefs = {a.get("href") for a in root.iter() if _local(a.tag) == "a"}
    assert {f"#{cid}" for cid in articles} <= hrefs


def test_statements_and_derivations_are_mathml(report):
    text = (report.out_dir / "index.html").read_text(encoding="utf-8")
    root = parse_xhtml(text)
    maths = [el for el in root.iter() if _local(el.tag) == "math"]
    assert len(maths) >= len(registry.find(SUBSET))
    statements = [el for el in root.iter() if el.get("class") == "statement"]
    assert all(any(_local(c.tag) == "math" for c in s) for s in statements)
    # the derivation of the proof claim is listed step by step
    assert "Derivation <code>softmax.shift_invariance</code>" in text
    assert 'class="steps"' in text


def test_figures_are_embedded_inline(report):
    root = parse_xhtml((report.out_dir / "index.html").read_text(encoding="utf-8"))
    figures = [el for el in root.iter() if _local(el.tag) == "figure"]
    ids = {f.get("id") for f in figures}
    assert {f"fig-claim-{cid}" for cid in FIGURE_CLAIMS} <= ids
    for f in figures:
        assert any(_local(c.tag) == "svg" for c in f), f.get("id")
    # each figure sits in its claim's section, drawn from that claim's evidence
    for cid in FIGURE_CLAIMS:
        art = next(a for a in root.iter() if a.get("id") == cid)
        assert any(el.get("id") == f"fig-claim-{cid}" for el in art.iter()), cid
    shown = [f for f in report.doc["figures"] if f["status"] == "shown"]
    assert len(shown) == len(figures)
    assert {f["origin"] for f in shown} == {f"claim:{cid}/reference" for cid in FIGURE_CLAIMS}


def test_element_ids_are_unique(report):
    """Every id of the page once (the figures' SVG ids are prefixed per figure), and every
    internal reference -- url(#...), href="#...", xlink:href="#..." -- has its target."""
    text = (report.out_dir / "index.html").read_text(encoding="utf-8")
    root = parse_xhtml(text)
    ids = [el.get("id") for el in root.iter() if el.get("id") is not None]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    assert repeated == [], f"ids used more than once: {repeated[:10]}"
    assert sum(1 for el in root.iter() if _local(el.tag) == "svg") >= len(FIGURE_CLAIMS)
    refs = re.findall(r"url\(#([^)]+)\)", text) + re.findall(r'href="#([^"]+)"', text)
    assert refs and set(refs) <= set(ids), sorted(set(refs) - set(ids))[:10]


def test_svg_ids_prefixed_with_their_references():
    svg = ('<svg><defs><path id="m1" d=""/><clipPath id="p2"/></defs>'
           '<g id="figure_1"><use xlink:href="#m1"/><g clip-path="url(#p2)"/>'
           '<a href="#m1"/><a href="#elsewhere"/><image id="im"/><image id="im"/></g></svg>')
    out = F.prefix_ids(svg, F.id_prefix("claim-a.b"))
    assert 'id="claim-a-b--m1"' in out and 'id="claim-a-b--figure_1"' in out
    assert 'xlink:href="#claim-a-b--m1"' in out and 'href="#claim-a-b--m1"' in out
    assert "url(#claim-a-b--p2)" in out
    assert 'href="#elsewhere"' in out  # not an id of this SVG: left alone
    assert 'id="claim-a-b--im"' in out and 'id="claim-a-b--im-2"' in out


def test_no_external_urls(report):
    text = (report.out_dir / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']\s*(?:https?:)?//""", text, re.I)
    assert "<script" not in text and "<link" not in text
    assert not re.search(r"url\(\s*['\"]?https?:", text)


def test_summary_environment_and_closing_note(report):
    text = (report.out_dir / "index.html").read_text(encoding="utf-8")
    n = len(registry.find(SUBSET))
    assert f"All {n} applicable claim results passed" in text
    size = (report.out_dir / "index.html").stat().st_size
    assert f"index.html {size / 1e3:.1f} kB ({size:,} bytes)" in text or \
        f"({size:,} bytes)" in text
    assert f"Wall time {report.doc['wall_seconds']:.1f} s" in text
    for key in ("numpy", "sympy", "hypothesis", "profile", "seed"):
        assert f"<dt>{key}</dt>" in text or f'<dt class="wide">{key}</dt>' in text
    md = (report.out_dir / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# transformer-theory report")
    assert f"({size:,} bytes)" in md
    for c in registry.find(SUBSET):
        assert f"`{c.id}`" in md


def test_results_json_schema(report):
    doc = json.loads((report.out_dir / "results.json").read_text(encoding="utf-8"))
    assert doc["schema"] == 1 and doc["profile"] == "ci" and doc["subjects"] == ["reference"]
    assert doc["claims_pattern"] == SUBSET
    kinds = {c.kind.value for c in registry.find(SUBSET)}
    assert set(doc["summary_by_kind"]["reference"]) == kinds
    assert sum(v["passed"] for v in doc["summary_by_kind"]["reference"].values()) == \
        doc["summary"]["reference"]["passed"]
    rec = next(r for r in doc["claims"] if r["id"] == "attention.unit_logit_variance")
    stats = rec["results"]["reference"]["evidence"]["statistics"]
    first = next(iter(stats.values()))
    assert {"estimate", "interval", "analytic", "false_failure_probability"} <= set(first)
    assert "softmax.shift_invariance" in doc["derivations"]
    assert all(set(f) >= {"id", "status", "note"} for f in doc["figures"])
    assert rec["source_details"][0]["authors"].startswith("Vaswani")


# --- every registered claim ---------------------------------------------------
def _fake_doc(claims):
    results = [Result(c, "reference", Status.PASSED,
                      Evidence(passed=True, cases=1, max_error=0.0, tolerance=1e-15,
                               tolerance_reason="r", detail="d"), 0.0) for c in claims]
    return build_results_json(claims, {"reference": results}, profile="ci", seed=1,
                              wall_seconds=0.0)


def test_every_registered_claim_has_its_section():
    claims = registry.all_claims()
    text = render_html_with_size(_fake_doc(claims))
    root = parse_xhtml(text)
    assert _ids(root, "article") == [c.id for c in claims]
    topics = {c.topic for c in claims}
    assert {f"topic-{t}" for t in topics} <= set(_ids(root, "section"))


def test_every_registered_statement_converts_to_mathml():
    failing = [c.id for c in registry.all_claims() if not converts(c.statement)]
    assert failing == [], f"statements shown as LaTeX source, not MathML: {failing}"


# --- determinism ----------------------------------------------------------------
def test_results_json_is_deterministic(tmp_path):
    docs = []
    for run in ("a", "b"):
        build_report(tmp_path / run, claims=registry.find(QUICK), profile="ci", seed=7,
                     claims_pattern=QUICK, figures=False)
        docs.append(json.loads((tmp_path / run / "results.json").read_text()))
    assert strip_timings(docs[0]) == strip_timings(docs[1])
    assert "wall_seconds" in docs[0] and "seconds" in docs[0]["claims"][0]["results"]["reference"]
    # the seed matters
    build_report(tmp_path / "c", claims=registry.find("attention.unit_logit_variance"),
                 profile="ci", seed=8, figures=False)
    other = json.loads((tmp_path / "c" / "results.json").read_text())
    est = lambda d: json.dumps(next(r for r in d["claims"] if r["id"] ==
                                    "attention.unit_logit_variance")["results"])
    assert est(strip_timings(other)) != est(strip_timings(docs[0]))


# --- a failing claim --------------------------------------------------------------
def _failing_claim() -> Claim:
    def check(subject, ctx):
        return Evidence(passed=False, cases=3, max_error=0.5, tolerance=1e-12,
                        tolerance_reason="test tolerance", detail="Broken on purpose.",
                        falsifying_example={"x": [1.0, 2.0], "note": "smallest failing"},
                        figure={"type": "lines", "title": "error vs n", "xlabel": "n",
                                "ylabel": "error", "xscale": "log", "yscale": "log",
                                "series": [{"label": "measured", "x": [1, 10, 100],
                                            "y": [1.0, 0.1, 0.01], "yerr": [0.1, 0.01, 0.001],
                                            "style": "points"},
                                           {"label": "1/n", "x": [1, 100], "y": [1, 0.01],
                                            "yerr": None, "style": "line"}]})
    return Claim(id="attention.zz_broken", title="A claim that fails",
                 statement=r"x \ne x", sources=(Source("Nobody 2024", "Test"),),
                 kind=Kind.PROPERTY, needs=(), check=check)


def test_failing_claim_is_shown_and_exits_nonzero(tmp_path, monkeypatch, capsys):
    quick = registry.find(QUICKER)
    monkeypatch.setattr(registry, "all_claims", lambda: quick + [_failing_claim()])
    code = cli.main(["report", "--out", str(tmp_path), "--profile", "ci", "-q", "--no-figures"])
    assert code == 1
    captured = capsys.readouterr()
    assert "attention.zz_broken" in captured.err
    text = (tmp_path / "index.html").read_text(encoding="utf-8")
    root = parse_xhtml(text)
    art = next(a for a in root.iter() if a.get("id") == "attention.zz_broken")
    body = ET.tostring(art, encoding="unicode")
    assert "smallest failing" in body and "Falsifying example" in body
    assert "is-failed" in art.get("class")
    assert any(_local(el.tag) == "svg" for el in art.iter())  # the claim's own figure
    # the other claims still ran
    assert _ids(root, "article") == [c.id for c in quick] + ["attention.zz_broken"]
    assert "1 failed and 0 errored" in text
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Failures" in md and "smallest failing" in md


def test_cli_usage_errors(tmp_path):
    for argv in (["--subjects", "nobody"], ["--subjects", "all,reference"],
                 ["--claims", "nothing.*"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(["report", "--out", str(tmp_path), "-q", *argv])
        assert exc.value.code == 2


def test_cli_unwritable_out_is_one_line_and_exit_2(tmp_path, capsys):
    """An output directory that cannot be made or written: one line, exit 2, before any
    claim runs (no traceback)."""
    (tmp_path / "a_file").write_text("")
    for out in ("/proc/x", str(tmp_path / "a_file"), str(tmp_path / "a_file" / "sub")):
        with pytest.raises(SystemExit) as exc:
            cli.main(["report", "--out", out, "-q", "--claims", QUICKER])
        assert exc.value.code == 2, out
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.splitlines()
        assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
        assert lines[0].startswith(f"transformer-theory: error: --out {out}: "), lines[0]


def test_cli_bad_arguments_are_one_line(tmp_path, capsys):
    """argparse's own errors of ``report`` (missing --out, a bad value) are one line too."""
    for argv in ([], ["--out", str(tmp_path), "--seed", "abc"],
                 ["--out", str(tmp_path), "--profile", "nope"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(["report", *argv])
        assert exc.value.code == 2, argv
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "usage:" not in err, err
        assert err.startswith("transformer-theory report: error: "), err


def test_cli_unwritable_out_as_a_process():
    """The installed command itself (not only main()) prints no traceback."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "transformer_theory.theory.cli", "report",
                           "--out", "/proc/x", "-q"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.splitlines()) == 1, proc.stderr


# --- pieces -----------------------------------------------------------------------
def test_mathml_conversion():
    m = to_mathml(r"\frac{a}{b}")
    assert m.startswith("<math") and "<mfrac>" in m
    ET.fromstring(m)
    # double-struck letters become Unicode math letters (MathML Core ignores mathvariant)
    assert "ℝ" in to_mathml(r"x\in\mathbb{R}^d") and "𝟙" in to_mathml(r"\mathbb{1}")
    # operator names latex2mathml lacks
    assert "\\arg" not in to_mathml(r"\arg\max_j s_j")
    assert 'display="block"' in to_mathml("x", display=True)


def test_mathml_fallbacks_never_raise():
    import sympy as sp

    assert to_mathml(r"\notacommand{x}") == code_fallback(r"\notacommand{x}")
    assert to_mathml(r"\frac{a}{") .startswith(("<math", "<code"))
    assert to_mathml("<script>") .find("<script>") == -1
    x = sp.Symbol("x")
    m = to_mathml(r"\notacommand{x}", sympy_expr=sp.Eq(x ** 2, 2 * x))
    assert m.startswith("<math") and "<msup>" in m
    ET.fromstring(m)  # named entities replaced: valid XML


def test_protocol_figures():
    lines = {"type": "lines", "title": "t", "xlabel": "x", "ylabel": "y", "xscale": "log",
             "yscale": "linear",
             "series": [{"label": "a", "x": [1, 2], "y": [3, "nan"], "yerr": None,
                         "style": "line"}]}
    svg = F.render_protocol(lines, salt="s")
    assert svg.startswith("<svg") and "<?xml" not in svg and "<metadata" not in svg
    ET.fromstring(svg)
    heat = {"type": "heatmap", "title": "h", "matrix": [[0, 1], [1, 0]], "xlabels": ["a", "b"],
            "ylabels": ["c", "d"], "xlabel": "k", "ylabel": "q"}
    assert F.render_protocol(heat, salt="h").startswith("<svg")
    assert F.render_protocol([lines, heat], salt="p").startswith("<svg")
    # same data, same salt: same bytes
    assert F.render_protocol(heat, salt="h") == F.render_protocol(heat, salt="h")


@pytest.mark.parametrize("bad, message", [
    ({"type": "pie"}, "'type' must be"),
    ({"type": "lines", "series": []}, "non-empty 'series'"),
    ({"type": "lines", "series": [{"x": [1, 2], "y": [1]}]}, "2 x but 1 y"),
    ({"type": "lines", "series": [{"x": [1], "y": [1], "yerr": [1, 2]}]}, "2 yerr"),
    ({"type": "lines", "xscale": "symlog", "series": [{"x": [1], "y": [1]}]}, "xscale"),
    ({"type": "heatmap", "matrix": [[1, 2], [3]]}, "different lengths"),
    ([], "no panels"),
])
def test_protocol_errors_name_the_problem(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        F.render_protocol(bad, salt="x")
    rf = F.protocol_figure("a.b", "reference", bad, "a")
    assert not rf.available and message in rf.note


def test_unavailable_figures_become_notes(tmp_path):
    def broken(ctx):
        raise RuntimeError("kaput")

    def missing(ctx):
        raise F.FigureUnavailable("benchmarks/no_such_file.json does not exist")
    specs = [F.FigureSpec("x", "X", "", "attention", (), (), broken),
             F.FigureSpec("y", "Y", "", "attention", (), (), missing),
             F.FigureSpec("speed", "S", "", None, (), (), F.fig_speed),
             F.FigureSpec("cost", "C", "", "performer", (), (), F.fig_performer_cost)]
    out = F.render_figures(specs, F.FigureContext(root=tmp_path), [])
    assert [f.available for f in out] == [False, False, False, False]
    assert "kaput" in out[0].note and "make bench" in out[2].note
    assert "no_such_file" in out[1].note and "performer_cost" in out[3].note


def test_speed_figure_from_benchmarks(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "results.json").write_text(json.dumps({"results": [
        {"name": "attention L=512", "seconds": {"reference": 0.02, "fast": 0.005}},
        {"name": "favor L=4096", "reference": 0.5, "fast": 0.1, "torch": 0.05}]}))
    spec = next(s for s in F.FIGURES if s.id == "speed")
    out = F.render_figures([spec], F.FigureContext(root=tmp_path), [])
    assert out[0].available, out[0].note
    # the format of benchmarks/bench.py
    (tmp_path / "benchmarks" / "results.json").write_text(json.dumps({"attention": [
        {"dtype": dt, "causal": c, "L": n, "seconds": {"fast": n * 1e-6, "torch": n * 2e-6,
                                                       **({"reference": n * 1e-5} if n < 4096 else {})}}
        for dt in ("float32", "float64") for c in (False, True) for n in (1024, 4096)]}))
    out = F.render_figures([spec], F.FigureContext(root=tmp_path), [])
    assert out[0].available, out[0].note


def _evidence_figure(claim_id: str, seed: int = 3):
    from transformer_theory.theory.runner import run_claim
    from transformer_theory.theory.builtin_subjects import get_subject

    result = run_claim(registry.find(claim_id)[0], get_subject("reference"), profile="ci",
                       seed=seed)
    assert result.status is Status.PASSED, result.detail()
    return result.evidence


def test_claim_figures_are_deterministic():
    figures = [_evidence_figure("masking.causal_future_invariance").figure for _ in range(2)]
    assert figures[0] == figures[1]
    svgs = [F.protocol_figure("masking.causal_future_invariance", "reference", f,
                              "masking").svg for f in figures]
    assert svgs[0] is not None and svgs[0] == svgs[1]


def test_report_figures_import_no_implementation():
    """The report renders evidence: no module of theory/report imports impl/ (directly or
    by an importlib string), and figures.py computes no Monte Carlo of its own."""
    import ast
    from pathlib import Path

    from transformer_theory.theory import report as report_pkg

    for path in sorted(Path(report_pkg.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value] if node.value.startswith("transformer_theory.") else []
            else:
                continue
            assert not any(".impl" in n or n.startswith("impl") for n in names), \
                f"{path.name}:{node.lineno} imports {names}"
    source = Path(F.__file__).read_text(encoding="utf-8")
    assert "importlib" not in source and "default_rng" not in source


def test_lemma2_figure_shows_what_the_claim_computed():
    """The Performer MSE figure draws the claim's own Lemma 2 (not a second formula) and the
    Monte Carlo estimates its tests judged."""
    from transformer_theory.theory.claims import performer as P

    ev = _evidence_figure("performer.mse_lemma2")
    panels = ev.figure["panels"]
    assert [p["title"] for p in panels] == list(P.KINDS) * 2
    rng = np.random.default_rng(0)
    for p, (kind, at) in zip(panels, [(k, "t") for k in P.KINDS] + [(k, "s") for k in P.KINDS]):
        curve, points = p["series"]
        for x, y in zip(curve["x"][::8], curve["y"][::8]):
            s, t = (0.5, x) if at == "t" else (x, 0.5)
            assert y == pytest.approx(P.lemma2_mse(kind, P.pair_with(s, t, 6, rng), 8),
                                      rel=1e-12), (kind, at, x)
        for x, y, err in zip(points["x"], points["y"], points["yerr"]):
            s, t = (0.5, x) if at == "t" else (x, 0.5)
            test = ev.statistics[f"{kind}, s={s:g}, t={t:g}"]
            assert (y, err) == pytest.approx((test["estimate"], test["halfwidth"]))


def test_markdown_lists_every_claim_and_the_verdict():
    claims = registry.find("attention.*")
    doc = _fake_doc(claims)
    md = render_markdown(doc, html_bytes=1234)
    assert f"All {len(claims)} applicable claim results passed" in md
    assert all(f"`{c.id}`" in md for c in claims)
    assert "1.2 kB (1,234 bytes)" in md


def test_render_html_without_figures_or_derivations():
    doc = _fake_doc(registry.find("masking.*"))
    parse_xhtml(render_html(doc))


def test_resolve_subjects(monkeypatch):
    import transformer_theory.theory.report as R
    from transformer_theory.theory.builtin_subjects import reference_subject

    def not_installed():
        raise ImportError("No module named 'nothing'")
    monkeypatch.setattr(R, "SUBJECTS", {"reference": reference_subject, "other": not_installed})
    subjects, missing = resolve_subjects("all")
    assert [s.name for s in subjects] == ["reference"]
    assert missing == {"other": "ImportError: No module named 'nothing'"}
    assert [s.name for s in resolve_subjects("reference")[0]] == ["reference"]
    for bad in ("", "nobody", "all,reference"):
        with pytest.raises(ValueError, match="subject"):
            resolve_subjects(bad)


def test_progress(capsys):
    result = Result(registry.find("attention.explicit_scale")[0], "reference", Status.PASSED,
                    None, 0.0)
    with make_progress(False) as bar:
        bar.advance(bar.task("claims · reference", 1), result)
    assert capsys.readouterr().err == ""
    seen = []
    with make_progress(True, fallback=lambda i, n, r: seen.append((i, n))) as bar:
        task = bar.task("claims · reference", 2)
        bar.advance(task, result)
        bar.advance(task, result)
    err = capsys.readouterr().err
    assert seen == [(1, 2), (2, 2)] or "claims · reference" in err


def test_modern_pieces_section_indexes_todays_claims_and_holds_their_figures(tmp_path):
    subset = "masking.window_key_count,positional.rope_pairing,normalization.rmsnorm_eps_inside"
    result = build_report(tmp_path, claims=registry.find(subset), profile="ci",
                          claims_pattern=subset)
    text = (result.out_dir / "index.html").read_text(encoding="utf-8")
    root = parse_xhtml(text)
    [section] = [el for el in root.iter()
                 if _local(el.tag) == "section" and el.get("id") == "modern-pieces"]
    links = {a.get("href") for a in section.iter() if _local(a.tag) == "a"}
    assert {"#masking.window_key_count", "#positional.rope_pairing",
            "#normalization.rmsnorm_eps_inside"} <= links
    figures = [el.get("id") for el in section.iter() if _local(el.tag) == "figure"]
    assert figures == ["fig-claim-masking.window_key_count", "fig-claim-positional.rope_pairing"]
    assert 'href="#modern-pieces"' in text                 # listed in the contents


def test_report_has_a_bibliography_of_the_works_its_claims_cite(tmp_path):
    """Issue 18: every source resolves to the bibliography, and the report lists it."""
    import re

    from transformer_theory.theory import registry
    from transformer_theory.theory.report import build_report

    claims = registry.find("performer.unbiased,normalization.layernorm_invariances")
    build_report(tmp_path, claims=claims, profile="ci", figures=False, claims_pattern="x")
    page = (tmp_path / "index.html").read_text()
    section = page[page.index('<section id="bibliography">'):]
    section = section[:section.index("</section>")]
    assert "Rethinking Attention with Performers" in section and "Layer Normalization" in section
    assert "Attention Is All You Need" not in section          # only the works cited here
    ids = re.findall(r'<li id="(bib-[^"]+)"', section)
    assert len(ids) == len(set(ids)) >= 4 and "bib-ba-kiros-hinton-2016" in ids
    assert 'href="#bibliography"' in page                      # listed in the contents
