"""``index.html``: the theory report as one self-contained page.

The page is written as well-formed XHTML syntax (every element closed, only
the five XML entities), served as HTML: CSS inline, figures inline SVG, math
as MathML. Nothing is fetched from the network; the only URLs are inside the
citation text.

Layout, top to bottom: the verdict; the summary (claims per kind and subject
with passed / failed / not applicable / error); the environment; the
contents by topic; one section per topic with one article per claim (anchor =
claim id) holding the statement, sources, kind, status per subject, evidence,
statistics, falsifying example, derivation steps and figures; figures that
belong to no claim of the report; and the closing note (wall time, size of
this file).
"""

from __future__ import annotations

import fnmatch

import html
import json
from typing import Any, Mapping, Sequence

from .figures import RenderedFigure
from .markdown import closing_note, verdict
from .math import to_mathml

_STATUS_LABEL = {"passed": "passed", "failed": "failed", "not_applicable": "n/a",
                 "error": "error"}

_KIND_HELP = {
    "property": "for all inputs Hypothesis draws (shapes, dtypes and values)",
    "statistical": "Monte Carlo with a fixed seed and a stated false-failure probability",
    "symbolic": "a sympy derivation that reduces to the claimed identity",
    "construction": "explicit weights checked against a direct simulator",
    "limitation": "a deterministic counterexample: “passed” means the statement "
                  "indeed fails there",
}

_STEP_STATUS = {"symbolic": "passed", "numeric": "numeric", "given": "given",
                "failed": "failed"}

CSS = """
:root { --fg: #1d2330; --muted: #5b6373; --line: #d9dde5; --bg-soft: #f5f7fa;
  --pass: #1a7f37; --pass-bg: #dcf5e3; --fail: #b42318; --fail-bg: #fde4e1;
  --na: #59616e; --na-bg: #eceef2; --err: #9a5b00; --err-bg: #fff0d1; --accent: #0b5cad; }
* { box-sizing: border-box; }
html { scroll-padding-top: 1rem; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
.page { max-width: 62rem; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; }
h1 { font-size: 1.9rem; margin: 0 0 .25rem; letter-spacing: -.01em; }
h2 { font-size: 1.45rem; margin: 2.5rem 0 .75rem; padding-bottom: .3rem;
  border-bottom: 2px solid var(--line); }
h3 { font-size: 1.12rem; margin: 0 0 .35rem; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code, pre { font-family: "DejaVu Sans Mono", ui-monospace, Menlo, Consolas, monospace;
  font-size: .86em; }
pre { background: var(--bg-soft); border: 1px solid var(--line); border-radius: 6px;
  padding: .6rem .8rem; overflow-x: auto; white-space: pre-wrap; word-break: break-word;
  max-height: 24rem; }
.subtitle { color: var(--muted); margin: 0 0 1rem; }
.muted { color: var(--muted); }
.verdict { font-size: 1.08rem; font-weight: 600; padding: .7rem 1rem; border-radius: 8px;
  margin: 1rem 0 1.5rem; }
.verdict.ok { background: var(--pass-bg); color: #0f5323; }
.verdict.bad { background: var(--fail-bg); color: #7a1a12; }
ul.failures { margin: -.8rem 0 1.5rem; font-size: .92rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: var(--bg-soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary td.num { min-width: 2.4rem; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table.summary tr.total td { font-weight: 700; border-top: 2px solid var(--line); }
td.zero { color: #b0b6c0; }
td.bad { color: var(--fail); font-weight: 700; }
th.group { text-align: center; border-left: 2px solid var(--line); }
.gstart { border-left: 2px solid var(--line); }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .8rem;
  font-weight: 600; line-height: 1.5; white-space: nowrap; }
.badge.passed { background: var(--pass-bg); color: var(--pass); }
.badge.failed { background: var(--fail-bg); color: var(--fail); }
.badge.not_applicable { background: var(--na-bg); color: var(--na); }
.badge.error { background: var(--err-bg); color: var(--err); }
.badge.kind { background: #e6eefb; color: #1f4f8f; font-weight: 500; }
.badge.numeric { background: #e8f3ff; color: #0b5cad; }
.badge.given { background: var(--na-bg); color: var(--na); }
dl.env { display: grid; grid-template-columns: max-content minmax(0, 1fr) max-content minmax(0, 1fr);
  gap: .15rem 1.2rem; margin: .5rem 0; font-size: .92rem; }
dl.env dt { color: var(--muted); }
dl.env dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
dl.env dt.wide + dd { grid-column: span 3; }
.toc { columns: 2 20rem; column-gap: 2rem; font-size: .93rem; }
.toc .topic { break-inside: avoid; margin: 0 0 1rem; }
.toc .topic > a { font-weight: 700; }
.toc ul { list-style: none; margin: .2rem 0 0; padding: 0; }
.toc li { margin: .1rem 0; display: flex; gap: .4rem; align-items: baseline; }
.dot { display: inline-block; width: .62rem; height: .62rem; border-radius: 50%;
  flex: none; }
.dot.passed { background: var(--pass); } .dot.failed { background: var(--fail); }
.dot.not_applicable { background: #b0b6c0; } .dot.error { background: #d48806; }
article.claim { border: 1px solid var(--line); border-radius: 10px; padding: 1rem 1.2rem;
  margin: 1.1rem 0; background: #fff; }
article.claim.is-failed { border-color: #f1a39a; box-shadow: 0 0 0 3px var(--fail-bg); }
.claim-meta { display: flex; flex-wrap: wrap; gap: .4rem .6rem; align-items: center;
  color: var(--muted); font-size: .88rem; margin-bottom: .6rem; }
.claim-meta code { color: var(--fg); }
.statement { background: var(--bg-soft); border-left: 4px solid #8fb3e3; border-radius: 4px;
  padding: .55rem .9rem; margin: .4rem 0 .8rem; overflow-x: auto; font-size: 1.12rem; }
.statement math { font-size: 1.1em; }
.sources { margin: .3rem 0 .6rem; padding-left: 1.2rem; font-size: .92rem; }
.sources .seed { font-size: .75rem; color: var(--muted); border: 1px solid var(--line);
  border-radius: 4px; padding: 0 .3rem; margin-left: .3rem; }
.notes { color: #333a47; font-size: .93rem; margin: .3rem 0 .6rem; }
.detail { margin: .3rem 0; font-size: .93rem; }
.tolreason { color: var(--muted); font-size: .88rem; margin: -.5rem 0 .6rem; }
.label { font-weight: 600; }
details { margin: .6rem 0; }
details > summary { cursor: pointer; font-weight: 600; color: #283246; }
details.falsifying > summary { color: var(--fail); }
ol.steps { padding-left: 1.4rem; margin: .4rem 0; }
.derivation-link { font-size: .92rem; margin: .5rem 0; }
ol.steps li { margin: .45rem 0; }
.formula { overflow-x: auto; overflow-y: hidden; max-width: 100%; padding: .1rem 0; }
ol.steps .just { color: #3d4554; font-size: .9rem; }
ol.steps .reason { color: var(--muted); font-size: .85rem; }
.steps math { font-size: 1.05em; }
figure { margin: 1rem 0; padding: .6rem; border: 1px solid var(--line); border-radius: 8px;
  background: #fff; }
figure svg.figure-svg { display: block; width: 100%; height: auto; margin: 0 auto; }
figcaption { font-size: .88rem; color: #333a47; margin-top: .4rem; }
figcaption .src { color: var(--muted); }
.figure-note { font-size: .88rem; color: var(--muted); border: 1px dashed var(--line);
  border-radius: 6px; padding: .4rem .7rem; margin: .6rem 0; }
.up { float: right; font-size: .8rem; font-weight: 400; }
code.latex { background: #fff8e6; padding: 0 .25rem; border-radius: 3px; }
footer.closing { margin-top: 3rem; padding-top: 1rem; border-top: 2px solid var(--line);
  color: var(--muted); font-size: .92rem; overflow-wrap: anywhere; }
.page p, .page li, .page td { overflow-wrap: break-word; }
math[display="block"] { margin: .2rem 0; }
@media (max-width: 640px) { .page { padding: 1rem .7rem 3rem; } .toc { columns: 1; }
  dl.env { grid-template-columns: max-content minmax(0, 1fr); }
  dl.env dt.wide + dd { grid-column: auto; }
  article.claim { padding: .8rem; } }
@media print { article.claim { break-inside: avoid; } details { display: block; } }
"""


def esc(text: Any) -> str:
    """Escape text for element content and attribute values."""
    return html.escape("" if text is None else str(text), quote=True)


def _fmt_num(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, str):
        return esc(x)
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.4g}"
    return f"{x:.2e}"


def _badge(status: str, text: str | None = None) -> str:
    return f'<span class="badge {esc(status)}">{esc(text or _STATUS_LABEL.get(status, status))}</span>'


def _claim_status(rec: Mapping) -> str:
    """The worst status of a claim over the subjects (for the contents dots)."""
    statuses = [r["status"] for r in rec["results"].values()]
    for s in ("error", "failed", "passed"):
        if s in statuses:
            return s
    return "not_applicable"


# --------------------------------------------------------------------------
# the top of the page
# --------------------------------------------------------------------------

def _summary_table(doc: Mapping) -> str:
    subjects = doc["subjects"]
    statuses = ("passed", "failed", "not_applicable", "error")
    kinds = []
    for s in subjects:
        for k in doc["summary_by_kind"][s]:
            if k not in kinds:
                kinds.append(k)
    head1 = "".join(f'<th colspan="4" class="group">{esc(s)}</th>' for s in subjects)
    short = {"passed": "pass", "failed": "fail", "not_applicable": "n/a", "error": "err"}
    label = (lambda st: short[st]) if len(subjects) > 2 else (lambda st: _STATUS_LABEL[st])
    head2 = "".join(f'<th class="num{" gstart" if i == 0 else ""}" title="{esc(st)}">'
                    f'{label(st)}</th>' for _ in subjects for i, st in enumerate(statuses))
    rows = []
    for kind in kinds + ["total"]:
        cells = []
        for s in subjects:
            counts = doc["summary"][s] if kind == "total" else \
                doc["summary_by_kind"][s].get(kind, {})
            for i, st in enumerate(statuses):
                n = counts.get(st, 0)
                cls = ("num zero" if n == 0 else "num bad" if st in ("failed", "error")
                       else "num") + (" gstart" if i == 0 else "")
                cells.append(f'<td class="{cls}">{n}</td>')
        n_claims = len(doc["claims"]) if kind == "total" else \
            sum(1 for c in doc["claims"] if c["kind"] == kind)
        label = "total" if kind == "total" else \
            f'<span title="{esc(_KIND_HELP.get(kind, ""))}">{esc(kind)}</span>'
        rows.append(f'<tr class="{"total" if kind == "total" else "kind"}"><td>{label}</td>'
                    f'<td class="num">{n_claims}</td>{"".join(cells)}</tr>')
    return (f'<div class="table-wrap"><table class="summary"><thead><tr><th rowspan="2">kind</th>'
            f'<th rowspan="2" class="num">claims</th>{head1}</tr><tr>{head2}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _kind_legend(doc: Mapping) -> str:
    present = {c["kind"] for c in doc["claims"]}
    items = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}.</li>" for k, v in _KIND_HELP.items()
                    if k in present)
    return f'<ul class="notes">{items}</ul>'


def _failures(doc: Mapping) -> str:
    """Links to every failed or errored claim result, under the verdict."""
    items = [f'<li><a href="#{esc(rec["id"])}">{esc(rec["id"])}</a> on {esc(s)}: '
             f'{_badge(r["status"])}</li>'
             for rec in doc["claims"] for s, r in rec["results"].items()
             if r["status"] in ("failed", "error")]
    return f'<ul class="failures">{"".join(items)}</ul>' if items else ""


def _environment(doc: Mapping, meta: Mapping) -> str:
    env = dict(doc["environment"])
    rows = [("profile", doc["profile"]), ("seed", doc["seed"]),
            ("subjects", ", ".join(doc["subjects"]))]
    for name, why in doc.get("subjects_unavailable", {}).items():
        rows.append((f"not run: {name}", why))
    if doc.get("claims_pattern"):
        rows.append(("claims", doc["claims_pattern"]))
    rows.append(("wall time", f"{doc['wall_seconds']:.1f} s"
                 + (f" (claims {meta['claims_seconds']:.1f} s, derivations "
                    f"{meta['derivations_seconds']:.1f} s, figures {meta['figures_seconds']:.1f} s)"
                    if "claims_seconds" in meta else "")))
    if meta.get("generated"):
        rows.append(("generated", meta["generated"]))
    rows += [(k, v) for k, v in env.items()]
    wide = {"wall time", "claims", "platform", "subjects"}
    items = []
    for k, v in rows:
        cls = ' class="wide"' if k in wide or k.startswith("not run") else ""
        items.append(f"<dt{cls}>{esc(k)}</dt><dd>{esc(v)}</dd>")
    items = "".join(items)
    return f'<dl class="env">{items}</dl>'


def _topics(doc: Mapping) -> list[tuple[str, list[Mapping]]]:
    out: list[tuple[str, list[Mapping]]] = []
    for rec in doc["claims"]:
        if not out or out[-1][0] != rec["topic"]:
            out.append((rec["topic"], []))
        out[-1][1].append(rec)
    return out


def _contents(doc: Mapping, extra: Sequence[tuple[str, str]]) -> str:
    blocks = []
    for topic, recs in _topics(doc):
        n_ok = sum(_claim_status(r) == "passed" for r in recs)
        items = "".join(
            f'<li><span class="dot {_claim_status(r)}" title="{esc(_claim_status(r))}"></span>'
            f'<a href="#{esc(r["id"])}">{esc(r["title"])}</a></li>' for r in recs)
        blocks.append(f'<div class="topic"><a href="#topic-{esc(topic)}">{esc(topic)}</a> '
                      f'<span class="subtitle">({n_ok}/{len(recs)} passed)</span>'
                      f'<ul>{items}</ul></div>')
    for anchor, title in extra:
        blocks.append(f'<div class="topic"><a href="#{esc(anchor)}">{esc(title)}</a></div>')
    return f'<nav class="toc" aria-label="contents">{"".join(blocks)}</nav>'


# --------------------------------------------------------------------------
# one claim
# --------------------------------------------------------------------------

def _sources(rec: Mapping) -> str:
    details = rec.get("source_details") or [{"seed": None}] * len(rec["sources"])
    items = []
    for text, det in zip(rec["sources"], details):
        tag = f'<span class="seed">seed note {esc(det["seed"])}</span>' if det.get("seed") else ""
        items.append(f"<li>{esc(text)}{tag}</li>")
    return f'<ul class="sources">{"".join(items)}</ul>'


def _half_cell(rec: Mapping, subject: str) -> str:
    """The half-precision runs of one subject: 'float16 0.28 · bfloat16 ✗ 3.1' or '—'."""
    runs = (rec.get("half_precision_results") or {}).get(subject) or {}
    parts = []
    for dtype, h in runs.items():
        ratio = h.get("error_ratio")
        value = ("exact" if ratio in (None, 0, 0.0) else
                 f"{ratio:.2g}" if isinstance(ratio, (int, float)) else esc(str(ratio)))
        mark = "" if h["status"] == "passed" else f'{_badge(h["status"])} '
        parts.append(f"{esc(dtype)} {mark}{value}")
    return " · ".join(parts) if parts else "—"


def _headroom_cell(rec: Mapping, subject: str, headroom: Mapping) -> str:
    """The worst error / tolerance of a committed seed sweep: '0.12 · float16 0.31' or '—'."""
    sweep = headroom.get(subject)
    if not sweep:
        return "—"
    parts = []
    for dtype in (None, *((rec.get("half_precision_results") or {}).get(subject) or {})):
        row = sweep["claims"].get((rec["id"], dtype))
        if row is None:
            continue
        ratio = row.get("worst_ratio")
        value = "—" if ratio is None else f"{ratio:.2g}"
        if row.get("runs") != sweep["seeds"]:      # symbolic (once), or swept over fewer seeds
            runs = row.get("runs")
            value += f' <span class="muted">({runs} seed{"s" if runs != 1 else ""})</span>'
        if row.get("failures"):
            value = f'{_badge("failed")} {value}'
        parts.append(value if dtype is None else f"{esc(dtype)} {value}")
    return " · ".join(parts) if parts else "—"


def _results_table(rec: Mapping, headroom: Mapping | None = None) -> str:
    rows = []
    half = bool(rec.get("half_precision_results"))
    headroom = headroom or {}
    for subject, r in rec["results"].items():
        ratio = "—"
        err, tol = r.get("max_error"), r.get("tolerance")
        if isinstance(err, (int, float)) and isinstance(tol, (int, float)) and tol > 0:
            ratio = f"{err / tol:.2g}"
        elif isinstance(err, (int, float)) and tol == 0:
            ratio = "exact" if err == 0 else "∞"
        rows.append(
            f'<tr><td>{esc(subject)}</td><td>{_badge(r["status"])}</td>'
            f'<td class="num">{_fmt_num(r.get("cases"))}</td>'
            f'<td class="num">{_fmt_num(err)}</td><td class="num">{_fmt_num(tol)}</td>'
            f'<td class="num">{ratio}</td><td class="num">{r.get("seconds", 0):.2f} s</td>'
            + (f'<td class="num">{_half_cell(rec, subject)}</td>' if half else "")
            + (f'<td class="num">{_headroom_cell(rec, subject, headroom)}</td>'
               if headroom else "") + '</tr>')
    half_head = ('<th class="num" title="error ratio err / (err_naive + eps/2), passes at '
                 'most 2">float16 · bfloat16 (error ratio)</th>') if half else ""
    seeds = sorted({h["seeds"] for h in headroom.values()})
    profiles = "/".join(sorted({h["profile"] for h in headroom.values()}))
    sweep_head = ('<th class="num" title="the worst error / tolerance of each run over the seeds '
                  f'of a committed sweep under the {esc(profiles)} profile (make sweep, '
                  'benchmarks/headroom-SUBJECT.json); near 1 means a false alarm is near">'
                  'headroom: worst over '
                  f'{"/".join(map(str, seeds))} seeds</th>') if headroom else ""
    return ('<table class="results"><thead><tr><th>subject</th><th>status</th>'
            '<th class="num">cases</th><th class="num">max error</th>'
            '<th class="num">tolerance</th><th class="num">error / tolerance</th>'
            f'<th class="num">time</th>{half_head}{sweep_head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _stat_rows(stats) -> list[tuple[str, Mapping]]:
    if isinstance(stats, Mapping) and "estimate" in stats:
        return [("", stats)]
    if isinstance(stats, Mapping):
        return [(str(k), v) for k, v in stats.items()
                if isinstance(v, Mapping) and "estimate" in v]
    return []


def _statistics(stats) -> str:
    rows = _stat_rows(stats)
    if not rows:
        return (f'<details><summary>Statistics</summary><pre>{esc(json.dumps(stats, indent=1))}'
                f'</pre></details>') if stats else ""
    body = []
    methods = set()
    for label, st in rows:
        interval = st.get("interval") or [None, None]
        methods.add(st.get("method", ""))
        body.append(
            f'<tr><td>{esc(label) or "—"}</td><td class="num">{_fmt_num(st.get("estimate"))}</td>'
            f'<td class="num">[{_fmt_num(interval[0])}, {_fmt_num(interval[1])}]</td>'
            f'<td class="num">{_fmt_num(st.get("analytic"))}</td>'
            f'<td class="num">{_fmt_num(st.get("samples"))}</td>'
            f'<td class="num">{_fmt_num(st.get("false_failure_probability"))}</td></tr>')
    method = "; ".join(sorted(m for m in methods if m))
    return ('<table class="stats"><thead><tr><th>case</th><th class="num">estimate</th>'
            '<th class="num">interval</th><th class="num">analytic</th>'
            '<th class="num">samples</th><th class="num">false-failure probability</th>'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table>'
            + (f'<p class="tolreason">Method: {esc(method)}. The check passes when the analytic '
               f'value lies in the interval.</p>' if method else ""))


def compact_json(obj, indent: int = 0, width: int = 100) -> str:
    """JSON with one key per line but short lists (of numbers, or rows) kept on one line."""
    pad = " " * indent
    flat = json.dumps(obj, ensure_ascii=False)
    scalars = isinstance(obj, list) and all(not isinstance(v, (dict, list)) for v in obj)
    if len(flat) + indent <= width or not isinstance(obj, (dict, list)) or scalars:
        return flat  # lists of numbers stay on one line (the <pre> wraps them)
    if isinstance(obj, dict):
        items = [f'{pad} {json.dumps(str(k), ensure_ascii=False)}: '
                 f'{compact_json(v, indent + 1, width).lstrip()}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    items = [pad + " " + compact_json(v, indent + 1, width).lstrip() for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]"


def _evidence(rec: Mapping) -> str:
    parts = []
    details: dict[str, list[str]] = {}
    reasons: dict[str, list[str]] = {}
    for subject, r in rec["results"].items():
        text = r.get("detail") or ""
        details.setdefault(text, []).append(subject)
        ev = r.get("evidence") or {}
        if ev.get("tolerance_reason"):
            reasons.setdefault(ev["tolerance_reason"], []).append(subject)
    for reason, subs in reasons.items():
        who = "" if len(subs) == len(rec["results"]) else f" ({', '.join(subs)})"
        parts.append(f'<p class="tolreason"><span class="label">Tolerance{esc(who)}:</span> '
                     f'{esc(reason)}.</p>')
    for text, subs in details.items():
        if not text:
            continue
        who = "" if len(subs) == len(rec["results"]) else f"{', '.join(subs)}: "
        if any(rec["results"][s]["status"] == "error" for s in subs):
            parts.append(f'<details open="open" class="falsifying"><summary>{esc(who)}the check '
                         f'raised an error</summary><pre>{esc(text)}</pre></details>')
        else:
            parts.append(f'<p class="detail"><span class="label">Evidence{esc(" " + who if who else ": ")}'
                         f'</span>{esc(text)}</p>')
    shown_stats = set()
    for subject, r in rec["results"].items():
        ev = r.get("evidence") or {}
        if ev.get("statistics"):
            key = json.dumps(ev["statistics"], sort_keys=True)
            if key in shown_stats:
                continue
            shown_stats.add(key)
            title = f"Statistics ({subject})" if len(rec["results"]) > 1 else "Statistics"
            parts.append(f'<p class="label">{esc(title)}</p>{_statistics(ev["statistics"])}')
    for subject, r in rec["results"].items():
        ev = r.get("evidence") or {}
        if ev.get("falsifying_example") is not None:
            text = compact_json(ev["falsifying_example"])
            if len(text) > 6000:
                text = text[:6000] + "\n…"
            open_attr = ' open="open"' if r["status"] == "failed" else ""
            label = ("Falsifying example" if rec["kind"] != "limitation" or r["status"] == "failed"
                     else "Counterexample")
            parts.append(f'<details class="falsifying"{open_attr}><summary>{label} '
                         f'({esc(subject)})</summary><pre>{esc(text)}</pre></details>')
    return "".join(parts)


def _derivation(d: Mapping, exprs: Sequence | None) -> str:
    steps = list(d.get("steps", []))
    items = []
    for i, step in enumerate(steps):
        expr = exprs[i] if exprs is not None and i < len(exprs) else None
        items.append(_step_item(step, expr))
    result = d.get("result")
    result_html = ""
    if result:
        expr = exprs[len(steps)] if exprs is not None and len(exprs) > len(steps) else None
        result_html = (f'<p><span class="label">Result:</span></p>'
                       f'<ol class="steps" start="{len(steps) + 1}">{_step_item(result, expr)}</ol>')
    assumptions = d.get("assumptions") or {}
    assume = ""
    if assumptions:
        assume = ('<p class="notes"><span class="label">Assumptions:</span> '
                  + "; ".join(f"{esc(k)}: {esc(v)}" for k, v in assumptions.items()) + ".</p>")
    error = f'<pre>{esc(d["error"])}</pre>' if d.get("error") else ""
    status = d.get("status", "failed")
    expect = d.get("expect", "holds")
    badge = _badge(_STEP_STATUS.get(status, "failed"), status)
    what = ("a limitation: the stated result must not verify" if expect == "fails"
            else f"{len(steps)} steps")
    return (f'<details class="derivation" id="derivation-{esc(d.get("id"))}"><summary>Derivation '
            f'<code>{esc(d.get("id"))}</code> {badge} <span class="subtitle">({esc(what)})</span>'
            f'</summary>{assume}{error}<ol class="steps">{"".join(items)}</ol>{result_html}'
            f'</details>')


def _derivation_link(d: Mapping, home: str) -> str:
    """A one-line pointer to a derivation shown in full in another claim's section."""
    status = d.get("status", "failed")
    badge = _badge(_STEP_STATUS.get(status, "failed"), status)
    return (f'<p class="derivation-link"><span class="label">Derivation</span> '
            f'<code>{esc(d.get("id"))}</code> {badge} — its steps are shown under '
            f'<a href="#derivation-{esc(d.get("id"))}">{esc(home)}</a>.</p>')


def derivation_homes(doc: Mapping) -> dict[str, str]:
    """Where each derivation is shown in full: the claim ``proof.<id>`` if the report has it,
    else the first claim citing it. Other claims link there (each is written once)."""
    ids = [rec["id"] for rec in doc["claims"]]
    homes: dict[str, str] = {}
    for rec in doc["claims"]:
        proof = rec.get("proof")
        if proof and proof not in homes:
            homes[proof] = f"proof.{proof}" if f"proof.{proof}" in ids else rec["id"]
    return homes


def _step_item(step: Mapping, expr) -> str:
    status = step.get("status", "given")
    reason = f'<div class="reason">{esc(step["reason"])}</div>' if step.get("reason") else ""
    return (f'<li><div class="formula">'
            f'{to_mathml(step.get("latex", ""), display=True, sympy_expr=expr)}</div>'
            f'<div class="just">{esc(step.get("justification", ""))} '
            f'{_badge(_STEP_STATUS.get(status, "failed"), status)}</div>{reason}</li>')


#: The pieces of today's transformers (issue 17): a label and the claims that check it. The
#: "modern pieces" section of the report indexes them and shows the figures of ``MODERN_FIGURES``.
MODERN_PIECES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("RMSNorm", ("normalization.rmsnorm*",)),
    ("gated feed-forward (SwiGLU, GeGLU)", ("layers.gated*",)),
    ("logit soft-capping", ("attention.softcap*",)),
    ("RoPE: pairing, offsets, partial rotation, interpolation",
     ("positional.rope_pairing", "positional.rope_decode_offset", "positional.rope_partial*",
      "positional.rope_position_interpolation")),
    ("ALiBi slopes and bias", ("positional.alibi*",)),
    ("sliding windows", ("masking.window*",)),
    ("packed documents", ("masking.packed*",)),
    ("decoding: GQA, RoPE, left padding, window caches", ("decoding.*",)),
    ("NaN at padded keys (attention, heads)", ("conformance.nan_poisoning*",)),
)
#: Claims whose evidence figure is shown in the modern-pieces section instead of at the claim.
MODERN_FIGURES: tuple[str, ...] = ("masking.window_key_count", "positional.rope_pairing")


def _subject_dots(rec: Mapping) -> str:
    """One status dot per subject of a claim."""
    return "".join(f'<span class="dot {esc(r["status"])}" title="{esc(s)}: {esc(r["status"])}">'
                   f'</span>' for s, r in rec["results"].items())


def _modern_pieces(doc: Mapping, figures: Sequence[RenderedFigure], number) -> str:
    """The index of today's pieces: each with its claims (a status dot per subject), then the
    window and RoPE pairing figures; empty when the report holds none of these claims."""
    rows = []
    for label, patterns in MODERN_PIECES:
        recs = [r for r in doc["claims"]
                if any(fnmatch.fnmatchcase(r["id"], p) for p in patterns)]
        if not recs:
            continue
        links = "".join(f'<li>{_subject_dots(r)} <a href="#{esc(r["id"])}">{esc(r["title"])}</a></li>'
                        for r in recs)
        rows.append(f"<li><b>{esc(label)}</b><ul>{links}</ul></li>")
    if not rows:
        return ""
    figs = "".join(_figure(f, number()) if f.available else _figure_note(f) for f in figures)
    return (f'<section class="topic" id="modern-pieces"><h2>modern pieces '
            f'<span class="subtitle">· the pieces of today\'s transformers</span>'
            f'<a class="up" href="#contents">↑ contents</a></h2>'
            f'<p class="notes">RMSNorm, gated feed-forward layers, soft-capped logits, the RoPE '
            f'variants, ALiBi, sliding windows, packed documents and the decoding of padded '
            f'batches: where their claims are in this report (a dot per subject). The claims '
            f'themselves stay in their topics.</p><ul class="pieces">{"".join(rows)}</ul>'
            f'{figs}</section>')


def _figure(fig: RenderedFigure, number: int) -> str:
    sources = (f' <span class="src">Sources: {esc("; ".join(fig.sources))}.</span>'
               if fig.sources else "")
    return (f'<figure id="fig-{esc(fig.id)}">{fig.svg}<figcaption><b>Figure {number}.</b> '
            f'{esc(fig.title)}. {esc(fig.caption)}{sources}</figcaption></figure>')


def _figure_note(fig: RenderedFigure) -> str:
    return (f'<div class="figure-note" id="fig-{esc(fig.id)}"><b>Figure not drawn: '
            f'{esc(fig.title)}.</b> {esc(fig.note)}.</div>')


class _Numbering:
    def __init__(self):
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n


def _claim(rec: Mapping, derivations: Mapping, exprs: Mapping, figs: Sequence[RenderedFigure],
           number: _Numbering, homes: Mapping[str, str], headroom: Mapping | None = None) -> str:
    status = _claim_status(rec)
    badges = " ".join(f'{esc(s)} {_badge(r["status"])}' for s, r in rec["results"].items())
    proof = ""
    if rec.get("proof"):
        d = derivations.get(rec["proof"])
        home = homes.get(rec["proof"], rec["id"])
        if not d:
            proof = (f'<p class="notes">Derivation <code>{esc(rec["proof"])}</code> '
                     f'not available.</p>')
        elif home == rec["id"]:
            proof = _derivation(d, exprs.get(rec["proof"]))
        else:
            proof = _derivation_link(d, home)
    figures = "".join(_figure(f, number()) if f.available else _figure_note(f) for f in figs)
    notes = f'<p class="notes">{esc(rec["notes"])}</p>' if rec.get("notes") else ""
    needs = ", ".join(rec.get("needs") or []) or "nothing"
    return (
        f'<article class="claim{" is-failed" if status in ("failed", "error") else ""}" '
        f'id="{esc(rec["id"])}">'
        f'<h3><a href="#{esc(rec["id"])}">{esc(rec["title"])}</a>'
        f'<a class="up" href="#contents">↑ contents</a></h3>'
        f'<div class="claim-meta"><code>{esc(rec["id"])}</code>'
        f'<span class="badge kind" title="{esc(_KIND_HELP.get(rec["kind"], ""))}">'
        f'{esc(rec["kind"])}</span>{badges}<span>needs: {esc(needs)}</span></div>'
        f'<div class="statement">{to_mathml(rec["statement"], display=True)}</div>'
        f'{_sources(rec)}{notes}{_results_table(rec, headroom)}{_evidence(rec)}{proof}{figures}'
        f'</article>')


# --------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------

def render_html(doc: Mapping, *, figures: Sequence[RenderedFigure] = (),
                derivation_exprs: Mapping[str, Sequence] | None = None,
                meta: Mapping | None = None, html_bytes: int | None = None,
                headroom: Mapping | None = None) -> str:
    """The report page for a ``results.json`` document.

    Parameters
    ----------
    doc : dict
        The ``results.json`` document (with ``derivations``).
    figures : sequence of RenderedFigure
        Claim and benchmark figures; each is placed in the section of its host
        claim, else at the head of its topic, else in "Other figures".
    derivation_exprs : dict, optional
        Proof id -> sympy relationals of its steps and result, for the MathML
        fallback when latex2mathml cannot convert a step.
    meta : dict, optional
        ``generated`` (a date), ``claims_seconds``, ``derivations_seconds``,
        ``figures_seconds`` for the environment block.
    html_bytes : int, optional
        The size of the page, for the closing note (the caller iterates to a
        fixed point).
    headroom : dict, optional
        Committed seed sweeps (:func:`theory.sweep.load_headroom`): each claim's
        results table gets a column with the worst error / tolerance over the
        sweep's seeds, per subject and half dtype. Not part of ``results.json``,
        which stays a function of profile and seed.

    Returns
    -------
    str
        The page, ``<!DOCTYPE html>`` then well-formed XHTML syntax.
    """
    meta = dict(meta or {})
    derivations = doc.get("derivations") or {}
    exprs = derivation_exprs or {}
    claim_ids = {rec["id"] for rec in doc["claims"]}
    topics = _topics(doc)
    topic_names = {t for t, _ in topics}
    by_host: dict[str, list[RenderedFigure]] = {}
    by_topic: dict[str, list[RenderedFigure]] = {}
    other: list[RenderedFigure] = []
    modern_figs: list[RenderedFigure] = []
    for f in figures:
        if f.host in MODERN_FIGURES and f.host in claim_ids:
            modern_figs.append(f)
        elif f.host in claim_ids:
            by_host.setdefault(f.host, []).append(f)
        elif f.topic in topic_names:
            by_topic.setdefault(f.topic, []).append(f)
        else:
            other.append(f)

    number = _Numbering()
    homes = derivation_homes(doc)
    sections = []
    for topic, recs in topics:
        head = "".join(_figure(f, number()) if f.available else _figure_note(f)
                       for f in by_topic.get(topic, []))
        body = "".join(_claim(rec, derivations, exprs, by_host.get(rec["id"], []), number, homes,
                              headroom) for rec in recs)
        sections.append(f'<section class="topic" id="topic-{esc(topic)}">'
                        f'<h2>{esc(topic)} <span class="subtitle">· {len(recs)} claim'
                        f'{"s" if len(recs) != 1 else ""}</span>'
                        f'<a class="up" href="#contents">↑ contents</a></h2>{head}{body}</section>')
    modern = _modern_pieces(doc, modern_figs, number)
    if modern:
        sections.append(modern)
    extra_toc = [("modern-pieces", "modern pieces")] if modern else []
    if other:
        items = "".join(_figure(f, number()) if f.available else _figure_note(f) for f in other)
        sections.append(f'<section id="other-figures"><h2>Other figures</h2>'
                        f'<p class="notes">Figures outside the topics of this report (benchmarks), '
                        f'and notes on figures that could not be drawn.</p>'
                        f'{items}</section>')
        extra_toc.append(("other-figures", "Other figures"))

    bib = _bibliography(claim_ids)
    if bib:
        sections.append(bib)
        extra_toc.append(("bibliography", "Bibliography"))

    ok = not any(c["failed"] + c["error"] for c in doc["summary"].values())
    subjects = ", ".join(doc["subjects"])
    page = [
        "<!DOCTYPE html>",
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="en">',
        "<head>",
        '<meta charset="utf-8" />',
        '<meta name="viewport" content="width=device-width, initial-scale=1" />',
        "<title>transformer-theory report</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        '<div class="page">',
        '<header id="top"><h1>transformer-theory report</h1>',
        f'<p class="subtitle">{len(doc["claims"])} claims from the literature checked against '
        f'{esc(subjects)} · profile {esc(doc["profile"])} · seed {esc(doc["seed"])}</p>',
        f'<p class="verdict {"ok" if ok else "bad"}">{esc(verdict(doc))}</p>{_failures(doc)}'
        f'</header>',
        '<section id="summary"><h2>Summary</h2>',
        '<p class="notes">Claim results per kind and subject. A subject lacking a callable '
        'a claim needs is “n/a” (not applicable); “error” means the check itself raised.</p>',
        _summary_table(doc), _kind_legend(doc), "</section>",
        f'<section id="environment"><h2>Environment</h2>{_environment(doc, meta)}</section>',
        f'<section id="contents"><h2>Contents</h2>{_contents(doc, extra_toc)}</section>',
        "<main>", *sections, "</main>",
        f'<footer class="closing" id="closing-note"><p>{esc(closing_note(doc, html_bytes=html_bytes))}'
        f'</p><p>Self-contained: CSS inline, figures inline SVG (matplotlib), statements '
        f'MathML (latex2mathml); nothing is loaded from the network.</p></footer>',
        "</div>",
        "</body>",
        "</html>",
    ]
    return "\n".join(page) + "\n"


def _bibliography(claim_ids) -> str:
    """The works the report's claims cite (``theory.bibliography``), in citation order."""
    from .. import registry
    from ..bibliography import bibliography

    entries = bibliography((c for c in registry.all_claims() if c.id in claim_ids), strict=False)
    if not entries:
        return ""
    items = "".join(
        f'<li id="bib-{_anchor(e.key)}"><span class="bibkey">{esc(e.key)}</span> '
        f'{esc(e.authors)}{f" ({e.year})" if e.year else ""}. <em>{esc(e.title)}</em>. '
        f'{esc(e.venue)}.</li>' for e in entries)
    return (f'<section id="bibliography"><h2>Bibliography</h2>'
            f'<p class="notes">Every work the claims above cite, in the order first cited, '
            f'with its authors, year, title and venue; the lecture notes the claims come '
            f'from are listed by their seed file.</p><ol class="bibliography">{items}</ol>'
            f'</section>')


def _anchor(text: str) -> str:
    """``"Ba, Kiros & Hinton 2016"`` -> ``"ba-kiros-hinton-2016"``."""
    return "-".join("".join(ch if ch.isalnum() else " " for ch in text).lower().split())


def render_html_with_size(doc: Mapping, **kw) -> str:
    """:func:`render_html` whose closing note states the page's own size in bytes.

    The size is found by iterating to a fixed point (two or three renders).
    """
    size = None
    for _ in range(6):
        text = render_html(doc, html_bytes=size, **kw)
        n = len(text.encode("utf-8"))
        if n == size:
            return text
        size = n
    return text  # pragma: no cover - the digit count stabilises after two rounds
