"""The report's figures: matplotlib (Agg backend), embedded as inline SVG.

A figure shows what was checked. Two kinds, neither computing anything of
its own:

* **claim figures** -- the data a check put into ``Evidence.figure``, in the
  plain-JSON protocol of the claim machinery (``{"type": "lines", ...}``,
  ``{"type": "heatmap", ...}`` or ``{"type": "panels", ...}``, documented in
  :func:`render_protocol`); :func:`claim_figures` draws the figure of the
  first subject that has one, in the section of its claim;
* **benchmark figures** (:data:`FIGURES`) -- measurements recorded by the
  scripts of ``benchmarks/`` (``make bench``), read from their JSON files. A
  figure whose file does not exist raises :class:`FigureUnavailable`; the
  report then shows a note saying why instead of the figure.

Nothing here imports the implementation: attention heatmaps, the sinusoidal
encoding, softmax temperature, the Performer MSE curves, Dyck matchings,
Turing runs, Hahn's sensitivity and the residual ODE are all drawn from the
evidence of the claims that check them.

Every figure is deterministic: the SVG is written with a fixed hash salt and
no date, and its element ids carry a per-figure prefix, so the same run gives
the same bytes and the ids of the page stay unique.

References
----------
Hunter 2007, Matplotlib: A 2D Graphics Environment, CiSE 9(3) (the library);
W3C SVG 1.1 (inline SVG in HTML); WHATWG HTML, §3.2.6.2 (ids are unique in
their tree).
"""

from __future__ import annotations

import fnmatch
import io
import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..tolerance import RATIO_K

#: Colours of the estimators and series (colour-blind safe, Okabe & Ito 2008).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
           "#000000")

#: Colour of masked (missing) heatmap entries.
MASKED = "#c8c8c8"


class FigureUnavailable(Exception):
    """The data a figure needs do not exist (yet); the message says which."""


@dataclass
class FigureContext:
    """What a benchmark figure may use.

    Attributes
    ----------
    doc : dict
        The ``results.json`` document (claims with their evidence).
    root : Path, optional
        Where ``benchmarks/`` is; by default the current directory, then the
        source tree of an editable install.
    """

    doc: Mapping[str, Any] = field(default_factory=dict)
    root: Path | None = None

    def benchmark(self, name: str) -> Path | None:
        """``benchmarks/<name>`` if it exists (see ``root``), else None."""
        if self.root is not None:
            roots = [Path(self.root)]
        else:
            import transformer_theory

            roots = [Path.cwd(), Path(transformer_theory.__file__).resolve().parents[1]]
        return next((r / "benchmarks" / name for r in roots
                     if (r / "benchmarks" / name).is_file()), None)


@dataclass(frozen=True)
class FigureSpec:
    """A benchmark figure.

    Parameters
    ----------
    id : str
        Stable id (also the SVG hash salt, its id prefix and the HTML anchor
        ``fig-<id>``).
    title : str
    caption : str
        What the figure shows and what to look for.
    topic : str or None
        The topic it belongs to; ``None`` for figures outside every topic,
        shown in their own section.
    hosts : tuple of str
        Glob patterns of claim ids; the figure is shown in the section of the
        first matching claim of the report, else at the head of its topic.
    sources : tuple of str
        Citations (papers and seed notes) for the caption.
    build : callable
        ``build(ctx: FigureContext) -> matplotlib.figure.Figure``.
    """

    id: str
    title: str
    caption: str
    topic: str | None
    hosts: tuple[str, ...]
    sources: tuple[str, ...]
    build: Callable[[FigureContext], Any] = field(repr=False)


@dataclass
class RenderedFigure:
    """A figure ready for the HTML: the SVG markup, or the note why it is missing."""

    id: str
    title: str
    caption: str
    topic: str | None
    host: str | None
    sources: tuple[str, ...]
    svg: str | None = None
    note: str | None = None
    origin: str = "benchmark"  # "benchmark" (a file of benchmarks/) or "claim:<id>/<subject>"

    @property
    def available(self) -> bool:
        return self.svg is not None

    @property
    def status(self) -> str:
        return "shown" if self.available else "skipped"

    def to_json(self) -> dict:
        """The deterministic record in ``results.json`` (no SVG bytes)."""
        return {"id": self.id, "title": self.title, "topic": self.topic, "host": self.host,
                "status": self.status, "note": self.note, "origin": self.origin}


# --------------------------------------------------------------------------
# matplotlib set-up and SVG export
# --------------------------------------------------------------------------

def _pyplot():
    """pyplot on the Agg backend with the report's style (imported lazily)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    matplotlib.rcParams.update({
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.labelsize": 9,
        "legend.fontsize": 8,
        "xtick.labelsize": 8,
        "ytick.labelsize": 8,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "svg.fonttype": "none",        # text stays text: small files, selectable labels
        "font.family": "DejaVu Sans",
        "figure.dpi": 100,
        "savefig.dpi": 150,            # resolution of rasters (imshow) inside the SVG
        "image.interpolation": "nearest",
        "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    })
    return plt


_SVG_DROP = (
    re.compile(r"<\?xml[^>]*\?>\s*"),
    re.compile(r"<!DOCTYPE[^>]*>\s*", re.S),
    re.compile(r"<metadata>.*?</metadata>\s*", re.S),
)

_SVG_ID = re.compile(r'(\sid=")([^"]+)(")')
_SVG_URL = re.compile(r"url\(\s*#([^)\s]+)\s*\)")
_SVG_HREF = re.compile(r'(\s(?:xlink:)?href=")#([^"]+)(")')


def id_prefix(name: str) -> str:
    """A prefix for the element ids of one figure: ``name`` reduced to ``[A-Za-z0-9_-]``."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name) + "--"


def prefix_ids(svg: str, prefix: str) -> str:
    """``svg`` with every element id prefixed, and every reference to one rewritten.

    matplotlib names the elements of each figure ``figure_1``, ``axes_1``,
    ``line2d_1``, ...; several figures in one page would repeat them. Ids
    (``id="..."``) and the references to them (``url(#...)``, ``href="#..."``,
    ``xlink:href="#..."``) get ``prefix``; references to ids the SVG does not
    define are left alone. An id matplotlib repeats within one figure (equal
    images, such as identical colour bars, share a content hash) gets a
    suffix ``-2``, ``-3``, ... after its first element, which references keep.
    """
    ids = {m.group(2) for m in _SVG_ID.finditer(svg)}
    seen: dict[str, int] = {}

    def rename(m) -> str:
        n = seen[m.group(2)] = seen.get(m.group(2), 0) + 1
        return f"{m.group(1)}{prefix}{m.group(2)}{'' if n == 1 else f'-{n}'}{m.group(3)}"
    svg = _SVG_ID.sub(rename, svg)
    svg = _SVG_URL.sub(lambda m: f"url(#{prefix}{m.group(1)})" if m.group(1) in ids
                       else m.group(0), svg)
    return _SVG_HREF.sub(lambda m: f"{m.group(1)}#{prefix}{m.group(2)}{m.group(3)}"
                         if m.group(2) in ids else m.group(0), svg)


def figure_to_svg(fig, salt: str, prefix: str | None = None) -> str:
    """The figure as an inline ``<svg>`` element (deterministic bytes), then closed.

    The XML prolog, DOCTYPE and RDF metadata (with its date) are dropped; the
    fixed ``width``/``height`` become a CSS ``max-width`` so the figure scales
    with the page while keeping its aspect ratio (from the ``viewBox``). Ids
    get :func:`id_prefix` of ``prefix`` (default ``salt``), see :func:`prefix_ids`.
    """
    import matplotlib
    plt = _pyplot()
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None},
                    bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    for pattern in _SVG_DROP:
        svg = pattern.sub("", svg)
    m = re.search(r'<svg([^>]*?)\swidth="([\d.]+)pt"\s+height="([\d.]+)pt"', svg)
    if m:
        width = float(m.group(2))
        svg = svg.replace(m.group(0), f'<svg{m.group(1)} style="max-width:{width:.0f}pt"'
                          f' class="figure-svg" role="img"', 1)
    return prefix_ids(svg.strip(), id_prefix(salt if prefix is None else prefix))


# --------------------------------------------------------------------------
# the claim-figure protocol
# --------------------------------------------------------------------------

#: Series styles of a "lines" figure.
STYLES = ("line", "dashed", "points", "bars")


def _check_protocol(data: Mapping) -> None:
    """Raise ``ValueError`` naming what is wrong with a protocol figure."""
    if not isinstance(data, Mapping):
        raise ValueError(f"figure: expected a dict, got {type(data).__name__}")
    kind = data.get("type")
    if kind == "lines":
        series = data.get("series")
        if not isinstance(series, Sequence) or not series:
            raise ValueError("figure: a 'lines' figure needs a non-empty 'series' list")
        for i, s in enumerate(series):
            if "x" not in s or "y" not in s:
                raise ValueError(f"figure: series[{i}] needs 'x' and 'y'")
            if len(s["x"]) != len(s["y"]):
                raise ValueError(f"figure: series[{i}] has {len(s['x'])} x but "
                                 f"{len(s['y'])} y values")
            if s.get("yerr") is not None and len(s["yerr"]) != len(s["y"]):
                raise ValueError(f"figure: series[{i}] has {len(s['yerr'])} yerr but "
                                 f"{len(s['y'])} y values")
            if s.get("style", "line") not in STYLES:
                raise ValueError(f"figure: series[{i}] style must be one of {STYLES}, "
                                 f"got {s.get('style')!r}")
        for axis in ("xscale", "yscale"):
            if data.get(axis, "linear") not in ("linear", "log"):
                raise ValueError(f"figure: {axis} must be 'linear' or 'log', "
                                 f"got {data.get(axis)!r}")
        ticks, labels = data.get("xticks"), data.get("xticklabels")
        if labels is not None and (ticks is None or len(ticks) != len(labels)):
            raise ValueError("figure: 'xticklabels' needs 'xticks' of the same length")
    elif kind == "heatmap":
        matrix = data.get("matrix")
        if not isinstance(matrix, Sequence) or not matrix:
            raise ValueError("figure: a 'heatmap' needs a non-empty 'matrix'")
        widths = {len(row) for row in matrix}
        if len(widths) != 1:
            raise ValueError(f"figure: heatmap rows have different lengths {sorted(widths)}")
    else:
        raise ValueError(f"figure: 'type' must be 'lines' or 'heatmap', got {kind!r}")


def _floats(values) -> np.ndarray:
    """Protocol numbers (which may be the strings "nan"/"inf" or null) as a float array."""
    return np.array([float(v) if v is not None else np.nan for v in values], dtype=np.float64)


def _draw_lines(ax, data: Mapping) -> None:
    n_bars = sum(s.get("style") == "bars" for s in data["series"])
    width, bar = 0.8 / max(n_bars, 1), 0
    for i, s in enumerate(data["series"]):
        x, y = _floats(s["x"]), _floats(s["y"])
        color = PALETTE[i % len(PALETTE)]
        style = s.get("style", "line")
        label = s.get("label")
        if s.get("yerr") is not None:
            ax.errorbar(x, y, yerr=_floats(s["yerr"]), fmt="o" if style == "points" else "-o",
                        ms=3.5, capsize=2.5, lw=1.0, color=color, label=label)
        elif style == "points":
            ax.plot(x, y, "o", ms=3.5, color=color, label=label)
        elif style == "bars":
            ax.bar(x + (bar - n_bars / 2 + 0.5) * width, y, width=width, color=color,
                   label=label)
            bar += 1
        elif style == "dashed":
            ax.plot(x, y, "--", lw=1.2, color=color, label=label)
        else:
            ax.plot(x, y, "-", lw=1.5, color=color, label=label)
    ax.set_xscale(data.get("xscale", "linear"))
    ax.set_yscale(data.get("yscale", "linear"))
    if data.get("xticks") is not None:
        labels = data.get("xticklabels")
        ax.set_xticks(_floats(data["xticks"]),
                      None if labels is None else [str(v) for v in labels])
    if data.get("ylim") is not None:
        ax.set_ylim(*_floats(data["ylim"]))
    ax.set_xlabel(data.get("xlabel", ""))
    ax.set_ylabel(data.get("ylabel", ""))
    labelled = sum(1 for s in data["series"] if s.get("label"))
    if labelled:
        ax.legend(frameon=False, ncols=2 if labelled > 4 else 1)


def _draw_heatmap(ax, fig, data: Mapping) -> None:
    import matplotlib

    matrix = np.array([_floats(row) for row in data["matrix"]])
    cmap = matplotlib.colormaps[data.get("cmap", "viridis")].with_extremes(bad=MASKED)
    im = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=data.get("vmin"),
                   vmax=data.get("vmax"), aspect=data.get("aspect", "auto"))
    ax.grid(False)
    rows, cols = matrix.shape
    xl, yl = data.get("xlabels"), data.get("ylabels")
    if xl and len(xl) == cols and cols <= 40:
        ax.set_xticks(range(cols), [str(v) for v in xl], rotation=90 if cols > 12 else 0)
    if yl and len(yl) == rows and rows <= 40:
        ax.set_yticks(range(rows), [str(v) for v in yl])
    ax.set_xlabel(data.get("xlabel", ""))
    ax.set_ylabel(data.get("ylabel", ""))
    fig.colorbar(im, ax=ax, shrink=0.85, label=data.get("colorbar", ""))


def _panels(data) -> list:
    if isinstance(data, (list, tuple)):
        return list(data)
    if isinstance(data, Mapping) and data.get("type") == "panels":
        return list(data.get("panels", []))
    return [data]


def render_protocol(data: Mapping, salt: str, prefix: str | None = None) -> str:
    """Draw a claim's ``Evidence.figure`` (the JSON protocol) as inline SVG.

    The protocol (plain JSON; numbers may be ``"nan"``/``"inf"`` or null):

    * ``{"type": "lines", "series": [{"x", "y", "yerr"?, "label"?, "style"?}],
      "title"?, "xlabel"?, "ylabel"?, "xscale"?, "yscale"?, "xticks"?,
      "xticklabels"?, "ylim"?}`` with ``style`` one of :data:`STYLES` and
      scales ``"linear"`` or ``"log"``;
    * ``{"type": "heatmap", "matrix": [[...]], "title"?, "xlabels"?,
      "ylabels"?, "xlabel"?, "ylabel"?, "cmap"?, "vmin"?, "vmax"?,
      "aspect"?, "colorbar"?}``; null or nan entries (masked) are grey;
    * ``{"type": "panels", "panels": [...], "title"?, "columns"?}`` or a list
      of figures: side by side, ``columns`` per row (default all in one).

    Any of them may carry ``"caption"`` (what to look for), shown under the
    figure.

    Raises
    ------
    ValueError
        If the data do not follow the protocol (the message says where).
    """
    panels = _panels(data)
    if not panels:
        raise ValueError("figure: no panels")
    for p in panels:
        _check_protocol(p)
    plt = _pyplot()
    n = len(panels)
    columns = int(data.get("columns") or n) if isinstance(data, Mapping) else n
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    width = {1: 6.4, 2: 10.0}.get(columns, 10.5)
    height = (3.9 if columns > 1 else 4.2) * rows
    fig, axes = plt.subplots(rows, columns, figsize=(width, height), layout="constrained",
                             squeeze=False)
    chars = int(width / columns * 11)  # about 11 title characters per inch at 10 pt
    for ax, p in zip(axes.ravel(), panels):
        if p["type"] == "lines":
            _draw_lines(ax, p)
        else:
            _draw_heatmap(ax, fig, p)
        ax.set_title(textwrap.fill(str(p.get("title", "")), chars))
        for setter, getter in ((ax.set_xlabel, ax.get_xlabel), (ax.set_ylabel, ax.get_ylabel)):
            setter(textwrap.fill(getter(), chars + 10))
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    if isinstance(data, Mapping) and data.get("type") == "panels" and data.get("title"):
        fig.suptitle(str(data["title"]), fontsize=10)
    return figure_to_svg(fig, salt, prefix)


def protocol_figure(claim_id: str, subject: str, data: Mapping, topic: str) -> RenderedFigure:
    """A claim's evidence figure rendered (or a note saying why it could not be)."""
    title = _protocol_title(data) or claim_id
    rf = RenderedFigure(id=f"claim-{claim_id}", title=title, caption="", topic=topic,
                        host=claim_id, sources=(), origin=f"claim:{claim_id}/{subject}")
    try:
        rf.svg = render_protocol(data, salt=claim_id, prefix=rf.id)
        caption = data.get("caption") if isinstance(data, Mapping) else None
        rf.caption = (f"{caption} " if caption else "") + \
            f"Data computed by the check (subject {subject})."
    except Exception as exc:  # a malformed figure must not stop the report
        rf.note = f"The check's figure data could not be drawn: {type(exc).__name__}: {exc}"
    return rf


def _protocol_title(data) -> str:
    if isinstance(data, Mapping):
        return str(data.get("title") or "")
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], Mapping):
        return str(data[0].get("title") or "")
    return ""


# --------------------------------------------------------------------------
# benchmark figures: measurements recorded by benchmarks/ (make bench)
# --------------------------------------------------------------------------

def fig_speed(ctx: FigureContext):
    """fast vs reference vs torch from ``benchmarks/results.json``."""
    path = ctx.benchmark("results.json")
    if path is None:
        raise FigureUnavailable("benchmarks/results.json does not exist (run `make bench`)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FigureUnavailable(f"benchmarks/results.json is not readable JSON: {exc}") from None
    grid = _attention_grid(data)
    if grid:
        return _draw_attention_grid(grid)
    rows = _benchmark_rows(data)
    if not rows:
        raise FigureUnavailable("benchmarks/results.json holds no timings the report can read "
                                "(expected records with a name and seconds per implementation)")
    impls = sorted({k for _, t in rows for k in t}, key=lambda s: (s != "reference", s))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.45 * len(rows)), layout="constrained")
    height = 0.8 / len(impls)
    for i, impl in enumerate(impls):
        ratios = [t["reference"] / t[impl] if impl in t and "reference" in t and t[impl] > 0
                  else np.nan for _, t in rows]
        ax.barh(np.arange(len(rows)) + (i - len(impls) / 2 + 0.5) * height, ratios,
                height=height, label=impl, color=PALETTE[i % len(PALETTE)])
    ax.set_yticks(range(len(rows)), [n for n, _ in rows])
    ax.set_xscale("log")
    ax.axvline(1.0, color="#555555", lw=0.8)
    ax.set_xlabel("speed-up over the reference (reference time / time), one process")
    ax.legend(frameon=False)
    ax.invert_yaxis()
    return fig


def fig_performer_cost(ctx: FigureContext):
    """FAVOR+ against exact attention: time and peak memory against L (benchmark file)."""
    name = "performer_cost.json"
    path = ctx.benchmark(name)
    if path is None:
        raise FigureUnavailable(f"benchmarks/{name} does not exist "
                                f"(run benchmarks/performer_cost.py)")
    try:
        data = json.loads(path.read_text())
        rows = data["rows"]
        ls = np.array([r["L"] for r in rows], dtype=float)
        modes = [m for m in ("bidirectional", "causal") if m in rows[0]]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise FigureUnavailable(f"benchmarks/{name} is not in the expected format: "
                                f"{type(exc).__name__}: {exc}") from None
    cfg = data.get("config", {})
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9), layout="constrained")
    for ax, (what, unit, scale) in zip(axes, (("seconds", "time per call (s)", 1.0),
                                              ("peak_bytes", "peak memory (MB)", 1e-6))):
        for i, mode in enumerate(modes):
            for algo, style in (("favor", "-o"), ("exact", "--s")):
                ys = np.array([r[mode][f"{algo}_{what}"] for r in rows], dtype=float) * scale
                ax.plot(ls, ys, style, ms=3.5, lw=1.4, color=PALETTE[2 * i + (algo == "exact")],
                        label=f"{'FAVOR+' if algo == 'favor' else 'exact'}, {mode}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length L")
        ax.set_ylabel(unit)
    axes[0].set_title("time: FAVOR+ ~ L, exact ~ L²")
    axes[1].set_title("memory: FAVOR+ ~ L, exact ~ L²")
    axes[1].legend(frameon=False, fontsize=7.5)
    fig.suptitle(f"m = {cfg.get('m', '?')} random features, d = {cfg.get('d', '?')}, "
                 f"{cfg.get('dtype', '')}, one BLAS thread (measured by "
                 f"benchmarks/performer_cost.py)", fontsize=9)
    return fig


def _attention_grid(data) -> list[dict]:
    """The rows of ``make bench``'s attention grid (``{"attention": [{"L", "dtype", "causal",
    "seconds": {impl: s}}, ...]}``), or [] if the file has none."""
    rows = data.get("attention") if isinstance(data, Mapping) else None
    if not isinstance(rows, list):
        return []
    keep = [r for r in rows if isinstance(r, Mapping) and isinstance(r.get("seconds"), Mapping)
            and "L" in r]
    return keep


def _draw_attention_grid(rows: list[dict]):
    """Time per call against L for each implementation; one panel per causal flag."""
    plt = _pyplot()
    modes = sorted({bool(r.get("causal")) for r in rows})
    fig, axes = plt.subplots(1, len(modes), figsize=(10, 4.0), layout="constrained",
                             squeeze=False)
    impls = sorted({k for r in rows for k in r["seconds"]},
                   key=lambda s: ({"reference": 0, "fast": 1, "torch": 2}.get(s, 3), s))
    dtypes = sorted({str(r.get("dtype", "")) for r in rows})
    for ax, causal in zip(axes[0], modes):
        for i, impl in enumerate(impls):
            for j, dt in enumerate(dtypes):
                pts = sorted((r["L"], r["seconds"][impl]) for r in rows
                             if bool(r.get("causal")) == causal and str(r.get("dtype", "")) == dt
                             and impl in r["seconds"])
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, "-o" if j == 0 else "--s", ms=3.5, lw=1.4,
                            color=PALETTE[i % len(PALETTE)], label=f"{impl} {dt}".strip())
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length L")
        ax.set_ylabel("time per call (s)")
        ax.set_title("causal" if causal else "bidirectional")
    axes[0][-1].legend(frameon=False, fontsize=7.5)
    return fig


def _benchmark_rows(data) -> list[tuple[str, dict]]:
    """``[(name, {implementation: seconds})]`` from the benchmark file's records.

    Accepted records (a list, or under ``"results"`` / ``"benchmarks"``):
    ``{"name": ..., "seconds": {impl: s}}``, ``{"name": ..., "times": {impl: s}}``
    or ``{"name": ..., "<impl>": s, ...}``.
    """
    records = data
    if isinstance(data, Mapping):
        records = data.get("results") or data.get("benchmarks") or []
    rows = []
    if not isinstance(records, Sequence):
        return rows
    for rec in records:
        if not isinstance(rec, Mapping):
            continue
        name = rec.get("name") or rec.get("benchmark") or rec.get("case")
        times = rec.get("seconds") or rec.get("times")
        if not isinstance(times, Mapping):
            times = {k: v for k, v in rec.items()
                     if k in ("reference", "fast", "torch", "jax") and isinstance(v, (int, float))}
        times = {k: float(v) for k, v in times.items() if isinstance(v, (int, float))}
        if name and times:
            rows.append((str(name), times))
    return rows


def fig_half_precision(ctx: FigureContext):
    """The error ratio of every half-precision run, per claim, subject and dtype."""
    rows = [(rec["id"], subject, dtype, h.get("error_ratio"), h["status"])
            for rec in ctx.doc.get("claims", [])
            for subject, runs in (rec.get("half_precision_results") or {}).items()
            for dtype, h in runs.items() if h["status"] in ("passed", "failed")]
    claims = sorted({r[0] for r in rows}, key=[r[0] for r in rows].index)
    if not claims:
        raise FigureUnavailable("no claim ran in float16 or bfloat16 (no subject declares them)")
    keys = sorted({(r[1], r[2]) for r in rows})
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, max(2.4, 1.0 + 0.28 * len(claims))), layout="constrained")
    for i, key in enumerate(keys):
        pts = [(claims.index(c), float(v) if isinstance(v, (int, float)) else np.nan, st)
               for c, s, d, v, st in rows if (s, d) == key]
        y = np.array([p[0] for p in pts]) + (i - (len(keys) - 1) / 2) * 0.8 / len(keys)
        x = np.array([p[1] for p in pts])
        ax.scatter(np.nan_to_num(x, nan=0.0), y, s=14, label=f"{key[0]} · {key[1]}",
                   color=PALETTE[i % len(PALETTE)],
                   marker="o" if key[1] == "float16" else "s")
    ax.axvline(RATIO_K, color="#b22222", lw=1.0, ls="--", label=f"k = {RATIO_K:g}")
    ax.set_yticks(range(len(claims)), claims, fontsize=7)
    ax.set_xlabel("error ratio  err / (err_naive + eps/2)   (0: the comparison was exact)")
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    ax.invert_yaxis()
    return fig


# --------------------------------------------------------------------------
# the list
# --------------------------------------------------------------------------

FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "performer-cost", "Performer: cost of FAVOR+ against exact attention",
        "Measured time per call and peak memory against the sequence length, from "
        "benchmarks/performer_cost.py (a benchmark, not a test). FAVOR+ grows linearly, exact "
        "attention quadratically; the lines cross at a few hundred tokens for these sizes.",
        "performer", ("performer.*cost*", "performer.*linear*"),
        ("Choromanski et al. 2021, §2.2, Algorithm 1 and §4",),
        fig_performer_cost),
    FigureSpec(
        "speed", "Speed: fast and torch against the reference",
        "Time per attention call against the sequence length for the numpy reference, the "
        "numba path and PyTorch SDPA, measured in one process by `make bench` "
        "(benchmarks/bench.py); the reference is timed only up to moderate L.",
        None, (), ("benchmarks/results.json",), fig_speed),
    FigureSpec(
        "half-precision", "Half precision: the error ratio of every claim in float16 and "
        "bfloat16",
        "For each claim run in half precision, the subject's error against float64 divided by "
        "that of a naive computation rounding to the dtype after each operation (plus half a "
        "rounding step): a kernel passes at most k = 2, the rule of FlashAttention's tests. "
        "Points at 0 are comparisons that held exactly.",
        "precision", ("precision.*",),
        ("Dao et al. 2022, FlashAttention (its tests' error-ratio rule)",), fig_half_precision),
)


def select_figures(topics: Sequence[str] | None) -> list[FigureSpec]:
    """The benchmark figures for these topics (all when ``topics`` is None).

    Figures outside every topic are kept only for a full report.
    """
    if topics is None:
        return list(FIGURES)
    wanted = set(topics)
    return [f for f in FIGURES if f.topic in wanted]


def host_claim(spec: FigureSpec, claim_ids: Sequence[str]) -> str | None:
    """The first claim of the report matching one of the figure's host patterns."""
    for pattern in spec.hosts:
        for cid in claim_ids:
            if fnmatch.fnmatchcase(cid, pattern):
                return cid
    return None


def render_figures(specs: Sequence[FigureSpec], ctx: FigureContext,
                   claim_ids: Sequence[str],
                   progress: Callable[[str], None] | None = None,
                   starting: Callable[[str], None] | None = None) -> list[RenderedFigure]:
    """Build every figure; one that fails becomes a note, never an exception."""
    out = []
    for spec in specs:
        if starting is not None:
            starting(spec.id)
        host = host_claim(spec, claim_ids)
        rf = RenderedFigure(id=spec.id, title=spec.title, caption=spec.caption,
                            topic=spec.topic, host=host, sources=spec.sources)
        try:
            with np.errstate(all="ignore"):
                fig = spec.build(ctx)
            rf.svg = figure_to_svg(fig, salt=spec.id)
        except FigureUnavailable as exc:
            rf.note = str(exc)
        except Exception as exc:  # a broken figure must not stop the report
            rf.note = f"the figure could not be drawn: {type(exc).__name__}: {exc}"
        finally:
            try:
                _pyplot().close("all")
            except Exception:  # pragma: no cover
                pass
        if rf.note is not None:
            rf.host = None  # notes go at the head of the topic
        out.append(rf)
        if progress is not None:
            progress(spec.id)
    return out


def claim_figures(doc: Mapping, progress: Callable[[str], None] | None = None
                  ) -> list[RenderedFigure]:
    """The evidence figures of the claims in ``doc`` (first subject that has one)."""
    out = []
    for rec in doc.get("claims", []):
        for subject, res in rec.get("results", {}).items():
            data = (res.get("evidence") or {}).get("figure")
            if data:
                out.append(protocol_figure(rec["id"], subject, data, rec["topic"]))
                if progress is not None:
                    progress(rec["id"])
                break
    return out
