"""``results.json`` (the machine-readable report) and ``report.md`` (its summary).

``results.json`` schema (version 1; README, "Machine-readable output"). Fields
marked *(+)* were added with the HTML report; readers of the first version
keep working.

.. code-block:: text

    {
      "schema": 1,
      "profile": str, "seed": int,
      "claims_pattern": str | null,                                   (+)
      "environment": {"python", "platform", "numpy", "scipy", "sympy", "hypothesis",
                      "transformer_theory", "cpu_count",              (+)
                      "matplotlib", "latex2mathml", "numba", "torch"  (+, when installed)},
      "subjects": [str, ...],
      "subjects_unavailable": {subject: reason},                      (+)
      "summary": {subject: {"passed": n, "failed": n, "not_applicable": n, "error": n}},
      "summary_by_kind": {subject: {kind: {status: n}}},              (+)
      "claims": [
        {"id", "title", "kind", "statement", "sources", "needs", "proof", "topic",
         "notes",                                                     (+)
         "source_details": [{"authors", "title", "locator", "seed"}], (+)
         "results": {subject: {"status", "cases", "max_error", "tolerance", "detail",
                               "seconds", "kind", "subject",
                               "evidence": {"passed", "cases", "max_error", "tolerance",
                                            "tolerance_reason", "detail",
                                            "falsifying_example", "statistics",
                                            "figure" (+)} | null}}}
      ],
      "derivations": {proof id: Derivation.to_dict()},                (+)
      "figures": [{"id", "title", "topic", "host", "status": "shown"|"skipped",
                   "note", "origin"}],                                (+)
      "wall_seconds": float
    }

Everything but the ``seconds`` fields and ``wall_seconds`` is a function of
(profile, seed, claims pattern, subjects) on a given installation.

``report.md`` is a summary for a README or a pull request: the verdict, the
counts per kind and subject, the failures with their examples, one line per
claim and the closing note (wall time, size of ``index.html``).
"""

from __future__ import annotations

import json
import os
import platform
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Mapping, Sequence

from ..claim import HALF_DTYPES, Claim, Kind, Status, json_float, jsonable
from ..runner import Result

SCHEMA_VERSION = 1

#: Optional packages whose versions the environment lists when installed.
_OPTIONAL = ("matplotlib", "latex2mathml", "numba", "torch", "rich")


def environment() -> dict:
    """Versions of what the results depend on."""
    import hypothesis
    import numpy
    import scipy
    import sympy

    import transformer_theory

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "sympy": sympy.__version__,
        "hypothesis": hypothesis.__version__,
        "transformer_theory": transformer_theory.__version__,
        "cpu_count": os.cpu_count(),
    }
    for name in _OPTIONAL:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    env.update(_machine())
    return env


def _machine() -> dict:
    """The CPU's model and the BLAS libraries loaded, which the timings and roundings depend on.

    The BLAS of numpy and of scipy (whose ``cython_blas`` the accelerated
    path's block products call through numba) as threadpoolctl finds them
    loaded: ``"openblas 0.3.30 SkylakeX (scipy)"``.
    """
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS, the one numba calls)
    import threadpoolctl

    out = {}
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            out["cpu"] = names[0]
    except OSError:
        pass
    libs = []
    for lib in threadpoolctl.threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        folder = os.path.basename(os.path.dirname(lib.get("filepath", "")))   # scipy.libs
        libs.append(" ".join(str(x) for x in (lib.get("internal_api"), lib.get("version"),
                                                lib.get("architecture")) if x)
                    + f" ({folder.removesuffix('.libs')})")
    if libs:
        out["blas"] = ", ".join(sorted(set(libs)))
    return out


def summarize(results: Sequence[Result]) -> dict:
    """Counts of each status among ``results``."""
    counts = Counter(r.status.value for r in results)
    return {s.value: counts.get(s.value, 0) for s in Status}


def summarize_by_kind(results: Sequence[Result]) -> dict:
    """``{kind: {status: n}}`` over the kinds present in ``results`` (in Kind order)."""
    out = {}
    for kind in Kind:
        rs = [r for r in results if r.claim.kind is kind]
        if rs:
            out[kind.value] = summarize(rs)
    return out


def _result_record(result: Result) -> dict:
    record = result.to_full_json()
    if result.evidence is not None and record.get("evidence") is not None:
        record["evidence"]["figure"] = jsonable(result.evidence.figure)
    return record


def _half_record(result: Result) -> dict:
    """A half-precision run in ``results.json``: status, error ratio, error and tolerance."""
    ev = result.evidence
    return {"status": result.status.value,
            "error_ratio": json_float(ev.error_ratio) if ev else None,
            "max_error": json_float(ev.max_error) if ev else None,
            "tolerance": json_float(ev.tolerance) if ev else None,
            "cases": ev.cases if ev else 0,
            "detail": result.detail()}


def build_results_json(claims: Sequence[Claim], results: Mapping[str, Sequence[Result]], *,
                       profile: str, seed: int, wall_seconds: float,
                       claims_pattern: str | None = None,
                       subjects_unavailable: Mapping[str, str] | None = None,
                       derivations: Mapping[str, dict] | None = None,
                       figures: Sequence[dict] = ()) -> dict:
    """The ``results.json`` document for claims run against several subjects."""
    by_id = {name: {r.id: r for r in rs if r.dtype is None} for name, rs in results.items()}
    half = {name: {(r.id, r.dtype): r for r in rs if r.dtype is not None}
            for name, rs in results.items()}
    records = []
    for c in claims:
        rec = c.to_json()
        rec["topic"] = c.topic
        rec["notes"] = c.notes
        rec["source_details"] = [s.to_json() for s in c.sources]
        rec["results"] = {name: _result_record(by_id[name][c.id])
                          for name in results if c.id in by_id[name]}
        rec["half_precision_results"] = {
            name: {d: _half_record(half[name][(c.id, d)]) for d in HALF_DTYPES
                   if (c.id, d) in half[name]}
            for name in results if any((c.id, d) in half[name] for d in HALF_DTYPES)}
        records.append(rec)
    results = {name: [r for r in rs if r.dtype is None] for name, rs in results.items()}
    return {
        "schema": SCHEMA_VERSION,
        "profile": profile,
        "seed": seed,
        "claims_pattern": claims_pattern,
        "environment": environment(),
        "subjects": list(results),
        "subjects_unavailable": dict(subjects_unavailable or {}),
        "summary": {name: summarize(rs) for name, rs in results.items()},
        "summary_by_kind": {name: summarize_by_kind(rs) for name, rs in results.items()},
        "claims": records,
        "derivations": jsonable(dict(derivations or {})),
        "figures": list(figures),
        "wall_seconds": round(wall_seconds, 2),
    }


def strip_timings(doc: Mapping) -> dict:
    """A copy of a ``results.json`` document without its timings (for comparisons)."""
    doc = json.loads(json.dumps(doc))
    doc.pop("wall_seconds", None)
    for rec in doc.get("claims", []):
        for res in rec.get("results", {}).values():
            res.pop("seconds", None)
    return doc


# --------------------------------------------------------------------------
# report.md
# --------------------------------------------------------------------------

_MARK = {"passed": "✅ passed", "failed": "❌ failed", "not_applicable": "— n/a",
         "error": "⚠️ error"}


def _fmt(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    return f"{x:.3g}"


def _bad(doc: Mapping) -> int:
    return sum(c["failed"] + c["error"] for c in doc["summary"].values())


def human_size(n_bytes: int) -> str:
    """``1.23 MB (1,234,567 bytes)``."""
    if n_bytes >= 1_000_000:
        short = f"{n_bytes / 1e6:.2f} MB"
    else:
        short = f"{n_bytes / 1e3:.1f} kB"
    return f"{short} ({n_bytes:,} bytes)"


def verdict(doc: Mapping) -> str:
    """One sentence: how many claim results passed, failed or errored."""
    total = {s.value: sum(doc["summary"][n][s.value] for n in doc["subjects"]) for s in Status}
    applicable = total["passed"] + total["failed"] + total["error"]
    if not _bad(doc):
        return (f"All {applicable} applicable claim results passed "
                f"({len(doc['claims'])} claims × {len(doc['subjects'])} subject(s); "
                f"{total['not_applicable']} not applicable).")
    return (f"{total['failed']} failed and {total['error']} errored of {applicable} applicable "
            f"claim results ({len(doc['claims'])} claims × {len(doc['subjects'])} subject(s)).")


def render_markdown(doc: Mapping, *, html_bytes: int | None = None) -> str:
    """``report.md``: a summary of a ``results.json`` document."""
    subjects = doc["subjects"]
    lines = ["# transformer-theory report", "", f"**{verdict(doc)}**", ""]
    lines.append(f"Profile `{doc['profile']}`, seed `{doc['seed']}`, subjects "
                 + ", ".join(f"`{s}`" for s in subjects)
                 + (f", claims `{doc['claims_pattern']}`" if doc.get("claims_pattern") else "")
                 + ".")
    for name, why in doc.get("subjects_unavailable", {}).items():
        lines.append(f"Subject `{name}` not run: {why}.")
    env = doc["environment"]
    lines += ["", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()) + "."]

    lines += ["", "## Summary", "", "| kind | " + " | ".join(
        f"{s}: passed | failed | n/a | error" for s in subjects) + " |",
        "|---|" + "---|---|---|---|" * len(subjects)]
    kinds = [k.value for k in Kind if any(k.value in doc["summary_by_kind"][s] for s in subjects)]
    for kind in kinds + ["total"]:
        cells = []
        for s in subjects:
            c = doc["summary"][s] if kind == "total" else \
                doc["summary_by_kind"][s].get(kind, {st.value: 0 for st in Status})
            cells.append(f"{c['passed']} | {c['failed']} | {c['not_applicable']} | {c['error']}")
        label = "**total**" if kind == "total" else kind
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    failures = [(rec, s, r) for rec in doc["claims"] for s, r in rec["results"].items()
                if r["status"] in ("failed", "error")]
    if failures:
        lines += ["", "## Failures", ""]
        for rec, s, r in failures:
            lines.append(f"- `{rec['id']}` on `{s}` ({r['status']}): "
                         + " ".join(str(r['detail']).split())[:600])
            ev = r.get("evidence") or {}
            if ev.get("falsifying_example") is not None:
                example = json.dumps(ev["falsifying_example"])
                if len(example) > 600:
                    example = example[:600] + " …"
                lines.append(f"  - falsifying example: `{example}`")

    lines += ["", "## Claims", "", "| claim | kind | " + " | ".join(subjects) + " |",
              "|---|---|" + "---|" * len(subjects)]
    for rec in doc["claims"]:
        cells = [_MARK.get(rec["results"].get(s, {}).get("status", ""), "—") for s in subjects]
        lines.append(f"| `{rec['id']}` | {rec['kind']} | " + " | ".join(cells) + " |")

    figures = doc.get("figures", [])
    if figures:
        shown = [f for f in figures if f["status"] == "shown"]
        skipped = [f for f in figures if f["status"] == "skipped"]
        lines += ["", "## Figures", "", f"{len(shown)} figures drawn in `index.html`"
                  + (", " + str(len(skipped)) + " not drawn:" if skipped else ".")]
        for f in skipped:
            lines.append(f"- {f['title']}: {f['note']}")

    lines += ["", "---", "", closing_note(doc, html_bytes=html_bytes, markdown=True)]
    return "\n".join(lines) + "\n"


def closing_note(doc: Mapping, *, html_bytes: int | None, markdown: bool = False) -> str:
    """The closing sentence: measured wall time and the size of ``index.html``."""
    cmd = (f"transformer-theory report --out DIR --subjects {','.join(doc['subjects'])} "
           f"--profile {doc['profile']} --seed {doc['seed']}"
           + (f" --claims '{doc['claims_pattern']}'" if doc.get("claims_pattern") else ""))
    size = human_size(html_bytes) if html_bytes is not None else "not written"
    cpus = doc["environment"].get("cpu_count")
    code = (lambda t: f"`{t}`") if markdown else (lambda t: t)
    return (f"Wall time {doc['wall_seconds']:.1f} s on {cpus} CPU(s); index.html {size}. "
            f"Reproduce with {code(cmd)}.")


def write_json(path: str | Path, doc: Mapping) -> Path:
    """Write ``results.json`` (stable key order, one space indent)."""
    path = Path(path)
    path.write_text(json.dumps(doc, indent=1, sort_keys=False, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    return path
