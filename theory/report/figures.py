"""The report's figures: matplotlib (Agg backend), embedded as inline SVG.

Two sources of figures:

* **claim figures** -- a check may put plot data into ``Evidence.figure``
  using the plain-JSON protocol of the claim machinery (``{"type": "lines",
  ...}`` or ``{"type": "heatmap", ...}``); :func:`render_protocol` draws it;
* **report figures** -- the pictures the report itself draws from the
  reference implementation (:data:`FIGURES`): attention heatmaps, the
  sinusoidal encoding, softmax temperature, Performer MSE curves with Monte
  Carlo points, and the constructions (Dyck, Turing, Hahn sensitivity,
  residual ODE) and benchmark ratios when those exist. A figure whose data do
  not exist yet raises :class:`FigureUnavailable`; the report then shows a
  note saying why instead of the figure.

Every figure is deterministic: randomness comes from generators seeded by
(run seed, figure id), and the SVG is written with a fixed hash salt and no
date, so the same run gives the same bytes.

References
----------
Hunter 2007, Matplotlib: A 2D Graphics Environment, CiSE 9(3) (the library);
W3C SVG 1.1 (inline SVG in HTML).
"""

from __future__ import annotations

import fnmatch
import importlib
import io
import json
import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

#: Colours of the estimators and series (colour-blind safe, Okabe & Ito 2008).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
           "#000000")


class FigureUnavailable(Exception):
    """The data a figure needs do not exist (yet); the message says which."""


class FigureInClaim(FigureUnavailable):
    """The picture is already drawn from a claim's own evidence (named in the message)."""


@dataclass
class FigureContext:
    """What a figure builder may use.

    Attributes
    ----------
    seed : int
        The run seed; :meth:`rng` derives a generator per figure from it.
    doc : dict
        The ``results.json`` document (claims with their evidence), so that a
        figure can draw data a claim computed.
    root : Path, optional
        Where ``benchmarks/`` is; by default the current directory, then the
        source tree of an editable install.
    """

    seed: int
    doc: Mapping[str, Any] = field(default_factory=dict)
    root: Path | None = None
    figure_id: str = ""

    def benchmark(self, name: str) -> Path | None:
        """``benchmarks/<name>`` if it exists (see ``root``), else None."""
        if self.root is not None:
            roots = [Path(self.root)]
        else:
            import transformer_theory

            roots = [Path.cwd(), Path(transformer_theory.__file__).resolve().parents[1]]
        return next((r / "benchmarks" / name for r in roots
                     if (r / "benchmarks" / name).is_file()), None)

    def rng(self, label: str = "") -> np.random.Generator:
        """A generator seeded from (run seed, figure id, label)."""
        salt = zlib.crc32(f"figure/{self.figure_id}/{label}".encode())
        return np.random.default_rng([self.seed & 0xFFFFFFFF, salt])

    def evidence_figures(self, pattern: str) -> list[tuple[str, str, dict]]:
        """``(claim id, subject, figure dict)`` of claims matching ``pattern`` that have one."""
        out = []
        for rec in self.doc.get("claims", []):
            if not fnmatch.fnmatchcase(rec["id"], pattern):
                continue
            for subject, res in rec.get("results", {}).items():
                fig = (res.get("evidence") or {}).get("figure")
                if fig:
                    out.append((rec["id"], subject, fig))
                    break
        return out


@dataclass(frozen=True)
class FigureSpec:
    """A report figure.

    Parameters
    ----------
    id : str
        Stable id (also the SVG hash salt and the HTML anchor ``fig-<id>``).
    title : str
    caption : str
        What the figure shows and what to look for.
    topic : str or None
        The topic it belongs to; ``None`` for figures outside every topic
        (benchmarks), shown in their own section.
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
    origin: str = "report"  # "report" (drawn from impl/) or "claim:<id>/<subject>"
    in_claim: bool = False  # the picture is a claim's own figure, shown in its section

    @property
    def available(self) -> bool:
        return self.svg is not None

    @property
    def status(self) -> str:
        return "shown" if self.available else "in_claim" if self.in_claim else "skipped"

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


def figure_to_svg(fig, salt: str) -> str:
    """The figure as an inline ``<svg>`` element (deterministic bytes), then closed.

    The XML prolog, DOCTYPE and RDF metadata (with its date) are dropped; the
    fixed ``width``/``height`` become a CSS ``max-width`` so the figure scales
    with the page while keeping its aspect ratio (from the ``viewBox``).
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
    return svg.strip()


# --------------------------------------------------------------------------
# the claim-figure protocol
# --------------------------------------------------------------------------

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
        for axis in ("xscale", "yscale"):
            if data.get(axis, "linear") not in ("linear", "log"):
                raise ValueError(f"figure: {axis} must be 'linear' or 'log', "
                                 f"got {data.get(axis)!r}")
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
    """Protocol numbers (which may be the strings "nan"/"inf") as a float array."""
    return np.array([float(v) if v is not None else np.nan for v in values], dtype=np.float64)


def _draw_lines(ax, data: Mapping) -> None:
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
        else:
            ax.plot(x, y, "-", lw=1.5, color=color, label=label)
    ax.set_xscale(data.get("xscale", "linear"))
    ax.set_yscale(data.get("yscale", "linear"))
    ax.set_xlabel(data.get("xlabel", ""))
    ax.set_ylabel(data.get("ylabel", ""))
    if any(s.get("label") for s in data["series"]):
        ax.legend(frameon=False)


def _draw_heatmap(ax, fig, data: Mapping) -> None:
    matrix = np.array([_floats(row) for row in data["matrix"]])
    im = ax.imshow(matrix, cmap=data.get("cmap", "viridis"), aspect="auto")
    ax.grid(False)
    rows, cols = matrix.shape
    xl, yl = data.get("xlabels"), data.get("ylabels")
    if xl and len(xl) == cols and cols <= 40:
        ax.set_xticks(range(cols), [str(v) for v in xl], rotation=90 if cols > 12 else 0)
    if yl and len(yl) == rows and rows <= 40:
        ax.set_yticks(range(rows), [str(v) for v in yl])
    ax.set_xlabel(data.get("xlabel", ""))
    ax.set_ylabel(data.get("ylabel", ""))
    fig.colorbar(im, ax=ax, shrink=0.85)


def render_protocol(data: Mapping, salt: str) -> str:
    """Draw a claim's ``Evidence.figure`` (the JSON protocol) as inline SVG.

    ``data`` may also be ``{"type": "panels", "panels": [...]}`` or a list of
    protocol figures, drawn side by side.

    Raises
    ------
    ValueError
        If the data do not follow the protocol (the message says where).
    """
    panels = list(data) if isinstance(data, (list, tuple)) else \
        list(data.get("panels", [])) if isinstance(data, Mapping) and data.get("type") == "panels" \
        else [data]
    if not panels:
        raise ValueError("figure: no panels")
    for p in panels:
        _check_protocol(p)
    import textwrap

    plt = _pyplot()
    n = len(panels)
    width = {1: 6.4, 2: 10.0}.get(n, 10.5)
    fig, axes = plt.subplots(1, n, figsize=(width, 3.9 if n > 1 else 4.2), layout="constrained",
                             squeeze=False)
    chars = int(width / n * 11)  # about 11 title characters per inch at 10 pt
    for ax, p in zip(axes[0], panels):
        if p["type"] == "lines":
            _draw_lines(ax, p)
        else:
            _draw_heatmap(ax, fig, p)
        ax.set_title(textwrap.fill(str(p.get("title", "")), chars))
        for setter, getter in ((ax.set_xlabel, ax.get_xlabel), (ax.set_ylabel, ax.get_ylabel)):
            setter(textwrap.fill(getter(), chars + 10))
    if isinstance(data, Mapping) and data.get("type") == "panels" and data.get("title"):
        fig.suptitle(str(data["title"]), fontsize=10)
    return figure_to_svg(fig, salt)


def protocol_figure(claim_id: str, subject: str, data: Mapping, topic: str) -> RenderedFigure:
    """A claim's evidence figure rendered (or a note saying why it could not be)."""
    title = _protocol_title(data) or claim_id
    rf = RenderedFigure(id=f"claim-{claim_id}", title=title, caption="", topic=topic,
                        host=claim_id, sources=(), origin=f"claim:{claim_id}/{subject}")
    try:
        rf.svg = render_protocol(data, salt=claim_id)
        rf.caption = f"Data computed by the check (subject {subject})."
    except Exception as exc:  # a malformed figure must not stop the report
        rf.note = f"The check's figure data could not be drawn: {type(exc).__name__}: {exc}"
    return rf


def _protocol_title(data) -> str:
    if isinstance(data, Mapping):
        if data.get("type") == "panels":
            return str(data.get("title") or "")
        return str(data.get("title") or "")
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], Mapping):
        return str(data[0].get("title") or "")
    return ""


# --------------------------------------------------------------------------
# helpers for the report figures
# --------------------------------------------------------------------------

def _heatmap(ax, matrix, *, title="", xlabels=None, ylabels=None, cmap="Blues",
             vmin=0.0, vmax=None, xlabel="key j", ylabel="query i", rotate=False,
             allowed=None):
    """Weights as an image; entries outside ``allowed`` (masked) are drawn grey."""
    import matplotlib

    values = np.asarray(matrix, dtype=np.float64)
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="#c8c8c8")
    if allowed is not None:
        values = np.ma.masked_where(~np.asarray(allowed, dtype=bool), values)
    im = ax.imshow(values, cmap=colormap, vmin=vmin, vmax=vmax, aspect="equal")
    ax.grid(False)
    ax.set_title(title)
    if xlabels is not None:
        ax.set_xticks(range(len(xlabels)), xlabels, rotation=90 if rotate else 0)
    if ylabels is not None:
        ax.set_yticks(range(len(ylabels)), ylabels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return im


def _impl(name: str):
    """``transformer_theory.impl.<name>``, or FigureUnavailable saying it is not written."""
    try:
        return importlib.import_module(f"transformer_theory.impl.{name}")
    except ImportError as exc:
        raise FigureUnavailable(f"the module impl/{name.replace('.', '/')}.py is not "
                                f"available ({exc})") from None


def _need(module, *names: str):
    missing = [n for n in names if not hasattr(module, n)]
    if missing:
        raise FigureUnavailable(f"{module.__name__} has no {', '.join(missing)}")
    return [getattr(module, n) for n in names]


# --------------------------------------------------------------------------
# attention
# --------------------------------------------------------------------------

def fig_attention_masks(ctx: FigureContext):
    """Plain, causal and sliding-window attention of one small random example."""
    from transformer_theory.impl.attention import (attention_weights, causal_mask,
                                                   sliding_window_mask)

    rng = ctx.rng("qk")
    L, E, window = 10, 8, 3
    q = 1.5 * rng.standard_normal((L, E))                       # (L, E)
    k = 1.5 * rng.standard_normal((L, E))                       # (L, E)
    local = sliding_window_mask(L, L, window)                   # (L, L)
    panels = [
        ("plain (bidirectional)", attention_weights(q, k), np.ones((L, L), dtype=bool)),
        ("causal (top-left)", attention_weights(q, k, causal=True), causal_mask(L, L)),
        (f"sliding window w = {window}, causal", attention_weights(q, k, mask=local), local),
    ]
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), layout="constrained")
    for ax, (title, w, allowed) in zip(axes, panels):
        im = _heatmap(ax, w, title=title, xlabels=range(L), ylabels=range(L), vmax=1.0,
                      allowed=allowed)
    fig.colorbar(im, ax=axes, shrink=0.8, label="attention weight")
    return fig


#: Seed 003's example sentence (BERT attention visualisation, "Visualizing Attention").
SEED003_TOKENS = ("[CLS]", "went", "to", "the", "store", "[SEP]", "at", "the", "store",
                  "bought", "fresh", "straw", "##berries", "[SEP]")


def fig_seed003_patterns(ctx: FigureContext):
    """Seed 003's learned-looking heads, built by hand on its sentence.

    *Next word*: queries are the sinusoidal encodings shifted by one position,
    ``q_i = M_1 PE(i) = PE(i+1)``, keys ``k_j = PE(j)``; since
    ``PE(i+1) . PE(j) = sum_w cos(w (j - i - 1))`` peaks at ``j = i + 1`` the
    head looks one word ahead, like a backwards RNN. *Similar words*: the
    parameter-free self-attention of seed 003, ``a_ik = x_i . x_k``, on word
    embeddings where equal words share a vector.
    """
    from transformer_theory.impl.attention import attention_weights
    from transformer_theory.impl.positional import sinusoidal_encoding, sinusoidal_shift_matrix

    tokens = SEED003_TOKENS
    L, d = len(tokens), 64
    pe = sinusoidal_encoding(L + 1, d)                              # (L+1, d)
    m1 = sinusoidal_shift_matrix(1, d)                              # (d, d)
    q_next = pe[:L] @ m1.T                                          # (L, d) = PE(i+1)
    k_pos = pe[:L]                                                  # (L, d)
    w_next = attention_weights(q_next, k_pos, scale=3.0)            # (L, L)

    rng = ctx.rng("embeddings")
    vocab = sorted(set(tokens))
    table = rng.standard_normal((len(vocab), 16))                   # (V, 16)
    table *= 2.0 / np.linalg.norm(table, axis=1, keepdims=True)     # |x| = 2: x.x = 4
    x = table[[vocab.index(t) for t in tokens]]                     # (L, 16)
    w_similar = attention_weights(x, x, scale=1.0)                  # (L, L)

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.9), layout="constrained")
    _heatmap(axes[0], w_next, title="attend to the next word\n(q = PE(i+1), k = PE(j))",
             xlabels=tokens, ylabels=tokens, rotate=True, vmax=1.0, xlabel="", ylabel="")
    im = _heatmap(axes[1], w_similar, title="attend to similar words\n(a_ik = x_i · x_k)",
                  xlabels=tokens, ylabels=tokens, rotate=True, vmax=1.0, xlabel="", ylabel="")
    fig.colorbar(im, ax=axes, shrink=0.8, label="attention weight")
    return fig


def fig_temperature(ctx: FigureContext):
    """softmax(beta s) against the hard (argmax) attention as beta grows."""
    from transformer_theory.impl.attention import softmax

    s = np.array([0.3, 1.1, -0.4, 1.5, 0.9, -1.2, 0.2, 1.0])         # (n,) fixed logits
    n = s.size
    betas = (0.25, 1.0, 4.0, 16.0, 64.0)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    width = 0.8 / len(betas)
    for i, beta in enumerate(betas):
        axes[0].bar(np.arange(n) + (i - len(betas) / 2 + 0.5) * width, softmax(beta * s),
                    width=width, label=f"β = {beta:g}", color=PALETTE[i])
    axes[0].set_xticks(range(n), [f"{v:g}" for v in s])
    axes[0].set_xlabel("logit s_j")
    axes[0].set_ylabel("softmax(β s)_j")
    axes[0].set_title("weights sharpen onto the argmax")
    axes[0].legend(frameon=False, ncols=2)

    grid = np.geomspace(0.1, 100.0, 120)                            # (B,)
    hard = (s == s.max()).astype(np.float64)                        # (n,)
    gap = s.max() - np.sort(s)[-2]
    dist = np.max(np.abs(softmax(grid[:, None] * s[None, :], axis=-1) - hard), axis=-1)  # (B,)
    bound = (n - 1) * np.exp(-grid * gap)                            # (B,)
    axes[1].plot(grid, dist, lw=1.8, label="max_j |softmax(βs)_j − hard_j|")
    axes[1].plot(grid, np.minimum(bound, 1.0), "--", lw=1.2, color="#555555",
                 label=f"(n−1) e^(−β·gap), gap = {gap:.2f}")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_ylim(1e-16, 2)
    axes[1].set_xlabel("inverse temperature β")
    axes[1].set_ylabel("distance to hard attention")
    axes[1].set_title("exponential convergence")
    axes[1].legend(frameon=False)
    return fig


# --------------------------------------------------------------------------
# positional encodings
# --------------------------------------------------------------------------

def fig_sinusoidal(ctx: FigureContext):
    """The sinusoidal table and the relative dot product PE(p)·PE(p+k)."""
    from transformer_theory.impl.positional import sinusoidal_encoding

    n, d = 64, 64
    pe = sinusoidal_encoding(256, d)                                 # (256, d)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.7), layout="constrained",
                             gridspec_kw={"width_ratios": [1.0, 1.25]})
    im = axes[0].imshow(pe[:n], cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    axes[0].grid(False)
    axes[0].set_xlabel("dimension (sin at even, cos at odd)")
    axes[0].set_ylabel("position p")
    axes[0].set_title(f"PE(p), d = {d}")
    fig.colorbar(im, ax=axes[0], shrink=0.85)
    ks = np.arange(-60, 61)                                          # (K,)
    for i, p in enumerate((60, 100, 150)):
        dots = pe[p + ks] @ pe[p]                                    # (K,)
        axes[1].plot(ks, dots, "-" if i == 0 else "--", lw=1.6 - 0.4 * i, label=f"p = {p}")
    axes[1].set_xlabel("offset k")
    axes[1].set_ylabel("PE(p) · PE(p+k)")
    axes[1].set_title("depends on k only, symmetric, peaks at k = 0")
    axes[1].legend(frameon=False)
    return fig


# --------------------------------------------------------------------------
# Performer: MSE of the random-feature estimators
# --------------------------------------------------------------------------

_ESTIMATORS = (("trig", "trigonometric (iid)"), ("positive", "positive (iid)"),
               ("hyperbolic", "hyperbolic (iid)"), ("orthogonal", "positive, orthogonal"))


def _pair(d: int, a: float, b: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """x, y in R^d with ||x + y|| = 2a and ||x - y|| = 2b (random orthonormal u, v)."""
    basis, _ = np.linalg.qr(rng.standard_normal((d, 2)))             # (d, 2)
    u, v = basis[:, 0], basis[:, 1]
    return a * u + b * v, a * u - b * v


def _row_terms(x, y, w, kind: str) -> np.ndarray:
    """Per-random-vector terms whose mean over m rows is the m-feature estimate of SM.

    ``x, y`` are ``(P, d)`` point pairs, ``w`` is ``(M, d)``; returns ``(P, M)``.
    """
    from transformer_theory.impl.performer import random_features

    feature_kind = "positive" if kind == "orthogonal" else kind
    m_total = w.shape[0]
    prod = random_features(x, w, feature_kind) * random_features(y, w, feature_kind)  # (P, F)
    if feature_kind == "positive":
        return prod * m_total                                        # (P, M)
    return (prod[:, :m_total] + prod[:, m_total:]) * m_total         # (P, M)


def _draws(kind: str, m: int, d: int, reps: int, rng) -> np.ndarray:
    """``reps`` independent W of m rows, stacked: ``(reps * m, d)``."""
    from transformer_theory.impl.performer import gaussian_matrix, orthogonal_gaussian

    if kind == "orthogonal":
        # a loop over repetitions: each is one independent block-orthogonal draw
        return np.concatenate([orthogonal_gaussian(m, d, rng) for _ in range(reps)])
    return gaussian_matrix(reps * m, d, rng)


def _mc_mse(x, y, kind: str, m: int, reps: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo MSE of the m-feature estimator at point pairs ``(P, d)`` and its std. error."""
    from transformer_theory.impl.performer import sm_kernel

    w = _draws(kind, m, x.shape[-1], reps, rng)                      # (R m, d)
    est = _row_terms(x, y, w, kind).reshape(x.shape[0], reps, m).mean(axis=-1)  # (P, R)
    sq = (est - sm_kernel(x, y)[:, None]) ** 2                       # (P, R)
    return sq.mean(axis=-1), sq.std(axis=-1, ddof=1) / math.sqrt(reps)


def _analytic_mse(x, y, kind: str, m: int) -> np.ndarray:
    from transformer_theory.impl import performer as F

    if kind == "orthogonal":
        return F.mse_orthogonal_exact(x, y, m)
    return {"trig": F.mse_trig, "positive": F.mse_positive,
            "hyperbolic": F.mse_hyperbolic}[kind](x, y, m)


def fig_performer_mse_m(ctx: FigureContext):
    """MSE of the four estimators against the number of random features m."""
    d, reps = 8, 1500
    x, y = _pair(d, 0.5, 0.8, ctx.rng("pair"))
    x, y = x[None, :], y[None, :]                                    # (1, d)
    m_line = np.unique(np.geomspace(1, 256, 60).astype(int))
    m_points = (4, 8, 16, 32, 64, 128)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.8), layout="constrained")
    for i, (kind, label) in enumerate(_ESTIMATORS):
        color = PALETTE[i]
        analytic = [float(_analytic_mse(x, y, kind, int(m))[0]) for m in m_line]
        ax.plot(m_line, analytic, "-", lw=1.5, color=color, label=f"{label}: analytic")
        rng = ctx.rng(f"m/{kind}")
        mc = [_mc_mse(x, y, kind, m, reps, rng) for m in m_points]
        ax.errorbar(m_points, [v[0][0] for v in mc], yerr=[2 * v[1][0] for v in mc], fmt="o",
                    ms=3.5, capsize=2.5, color=color, label=f"{label}: Monte Carlo ±2 s.e.")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("number of random features m")
    ax.set_ylabel("MSE of the estimate of SM(x, y)")
    ax.set_title(f"d = {d}, ‖x + y‖ = 1, ‖x − y‖ = 1.6, {reps} draws per point")
    fig.legend(frameon=False, ncols=2, fontsize=7.5, loc="outside lower center")
    return fig


def fig_performer_mse_distance(ctx: FigureContext):
    """MSE against ||x - y|| and against ||x + y|| at fixed m."""
    d, m, reps = 8, 16, 3000
    fixed = 1.0
    grid = np.linspace(0.02, 2.5, 80)
    points = np.array([0.25, 0.75, 1.25, 1.75])
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9), layout="constrained", sharey=False)
    rng_pair = ctx.rng("basis")
    basis, _ = np.linalg.qr(rng_pair.standard_normal((d, 2)))        # (d, 2)
    u, v = basis[:, 0], basis[:, 1]
    for panel, (ax, varying) in enumerate(zip(axes, ("minus", "plus"))):
        def pairs(values):
            values = np.asarray(values)[:, None]                     # (P, 1)
            a = values / 2 if varying == "plus" else fixed / 2
            b = values / 2 if varying == "minus" else fixed / 2
            return a * u + b * v, a * u - b * v                      # (P, d) each
        xg, yg = pairs(grid)
        xp, yp = pairs(points)
        for i, (kind, label) in enumerate(_ESTIMATORS):
            color = PALETTE[i]
            ax.plot(grid, _analytic_mse(xg, yg, kind, m), "-", lw=1.5, color=color,
                    label=label)
            mse, se = _mc_mse(xp, yp, kind, m, reps, ctx.rng(f"{varying}/{kind}"))
            ax.errorbar(points, mse, yerr=2 * se, fmt="o", ms=3.5, capsize=2.5, color=color)
        ax.set_yscale("log")
        if varying == "minus":
            ax.set_xlabel("‖x − y‖")
            ax.set_title(f"‖x + y‖ = {fixed:g}: trig error vanishes as y → x")
        else:
            ax.set_xlabel("‖x + y‖")
            ax.set_title(f"‖x − y‖ = {fixed:g}: positive error vanishes as y → −x")
        ax.set_ylabel(f"MSE (m = {m}, d = {d})")
    axes[0].legend(frameon=False, fontsize=7)
    return fig


# --------------------------------------------------------------------------
# constructions and benchmarks: drawn when their modules or data exist
# --------------------------------------------------------------------------

def _from_claims(ctx: FigureContext, pattern: str, what: str):
    """Point at a claim that already carries this picture, else FigureUnavailable."""
    found = ctx.evidence_figures(pattern)
    if found:
        ids = ", ".join(sorted({c for c, _, _ in found}))
        raise FigureInClaim(f"{what} is drawn from the check's own data in the section of {ids}")
    raise FigureUnavailable(f"{what} has no data yet: no construction module draws it and "
                            f"no claim matching {pattern!r} carries figure data")


def fig_dyck(ctx: FigureContext):
    """A Dyck string's brackets with the pairs each layer matched."""
    try:
        dyck = importlib.import_module("transformer_theory.impl.constructions.dyck")
    except ImportError:
        return _from_claims(ctx, "dyck.*", "the Dyck matching picture")
    builder = getattr(dyck, "matching_by_layer", None)
    if builder is None:
        return _from_claims(ctx, "dyck.*", "the Dyck matching picture")
    return _draw_dyck(builder())


def _draw_dyck(data: Mapping):
    """Arcs over a bracket string, coloured by the layer that matched the pair.

    ``data``: ``{"tokens": [str], "layers": [[(i, j), ...], ...]}`` and
    optionally ``accepted``, ``k``, ``D``.
    """
    tokens = list(data["tokens"])
    layers = [list(pairs) for pairs in data["layers"]]
    n = len(tokens)
    plt = _pyplot()
    span = max((j - i for pairs in layers for i, j in pairs), default=1)
    fig, ax = plt.subplots(figsize=(min(1.0 + 0.55 * n, 10.0), 1.4 + 0.35 * span),
                           layout="constrained")
    for i, t in enumerate(tokens):
        ax.text(i, 0, t, ha="center", va="center", fontsize=15, family="DejaVu Sans Mono",
                bbox={"boxstyle": "round,pad=0.25", "fc": "#f5f7fa", "ec": "#c0c6d0"})
        ax.text(i, -0.62, str(i), ha="center", va="center", fontsize=7, color="#777777")
    for li, pairs in enumerate(layers):
        color = PALETTE[li % len(PALETTE)]
        for n_pair, (i, j) in enumerate(pairs):
            t = np.linspace(0.0, np.pi, 60)
            xs = (i + j) / 2 - (j - i) / 2 * np.cos(t)
            ys = 0.45 + 0.42 * (j - i) * np.sin(t)
            ax.plot(xs, ys, color=color, lw=2.0,
                    label=f"layer {li + 1}" if n_pair == 0 else None)
    ax.set_xlim(-0.8, n - 0.2)
    ax.set_ylim(-0.95, 0.75 + 0.42 * span)
    ax.axis("off")
    ax.legend(frameon=False, loc="upper right", title="matched by")
    verdict = {True: "accepted", False: "rejected"}.get(data.get("accepted"), "")
    label = "".join(tokens)
    extra = f" — {verdict} (k = {data.get('k')}, D = {data.get('D')})" if verdict else ""
    ax.set_title(f"{label}{extra}", fontsize=10)
    return fig


def _turing_run(machine, tape, steps: int):
    from transformer_theory.impl.constructions import turing as TM

    direct = TM.simulate(machine, tape, steps)
    via_transformer, defects = TM.simulate_with_transformer(machine, tape, steps)
    return direct, via_transformer, defects


def fig_turing(ctx: FigureContext):
    """A Turing machine's run: the tape over time, decoded from the transformer."""
    turing = _impl("constructions.turing")
    (busy_beaver_2,) = _need(turing, "busy_beaver_2")
    _need(turing, "simulate", "simulate_with_transformer")
    machine = busy_beaver_2()
    steps = 6
    direct, decoded, defects = _turing_run(machine, [machine.blank], steps)
    lo = min(min((c for c, _ in cfg.tape), default=0) for cfg in direct + decoded)
    lo = min(lo, min(cfg.head for cfg in direct)) - 1
    hi = max(max((c for c, _ in cfg.tape), default=0) for cfg in direct + decoded)
    hi = max(hi, max(cfg.head for cfg in direct)) + 2
    grid = np.array([cfg.window(lo, hi, machine.blank) for cfg in decoded], dtype=float)
    agree = decoded == direct
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(0.75 * (hi - lo) + 2.4, 0.42 * (steps + 1) + 1.5),
                           layout="constrained")
    cmap = plt.get_cmap("Blues")
    ax.imshow(grid, cmap=cmap, vmin=-0.6, vmax=machine.n_symbols - 0.4, aspect="auto")
    ax.grid(False)
    for t, cfg in enumerate(decoded):
        for c in range(lo, hi):
            a = cfg.symbol(c, machine.blank)
            ax.text(c - lo, t, machine.symbol_name(a), ha="center", va="center", fontsize=9,
                    color="white" if a == machine.n_symbols - 1 else "#222222")
        if cfg.head is not None and lo <= cfg.head < hi:
            ax.add_patch(plt.Rectangle((cfg.head - lo - 0.5, t - 0.5), 1, 1, fill=False,
                                       ec=PALETTE[1], lw=2.2))
    ax.set_xticks(range(hi - lo), [str(c) for c in range(lo, hi)])
    ax.set_yticks(range(len(decoded)),
                  [f"t={t}  {machine.state_name(cfg.state) if cfg.state >= 0 else '?'}"
                   for t, cfg in enumerate(decoded)])
    ax.set_xlabel("tape cell (orange box: head)")
    ax.set_title(f"{machine.name}, decoded from the transformer\n"
                 f"{'identical to' if agree else 'DIFFERS from'} the direct simulator · "
                 f"largest feature defect {max(defects):.1e}", fontsize=9)
    return fig


def fig_hahn(ctx: FigureContext):
    """Hahn's sensitivity bound against n with the 1/n reference line."""
    return _from_claims(ctx, "*sensitivity*", "the Hahn sensitivity plot")


def fig_ode(ctx: FigureContext):
    """Residual stack as Euler steps: the error against depth L."""
    return _from_claims(ctx, "ode.*", "the residual-ODE error plot")


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


# --------------------------------------------------------------------------
# the list
# --------------------------------------------------------------------------

FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "attention-masks", "Attention weights: plain, causal, sliding window",
        "One random example (L = 10, E = 8). Causal attention (top-left aligned) zeroes "
        "the upper triangle; the causal sliding window keeps the last w = 3 keys only "
        "(grey: masked). "
        "Every row is a probability vector over the keys it may see.",
        "masking", ("masking.causal_future_invariance", "masking.*", "attention.*"),
        ("Vaswani et al. 2017, §3.2.1 and §3.2.3", "Beltagy et al. 2020, Longformer, §3.1"),
        fig_attention_masks),
    FigureSpec(
        "seed003-patterns", "Learned-looking attention patterns, built by hand",
        "Seed 003's sentence. Left: a head that attends to the next word (a backwards RNN), "
        "from queries PE(i+1) = M₁PE(i) against keys PE(j); it blurs a little onto the "
        "neighbours, as trained heads do. Right: seed 003's parameter-free self-attention "
        "a_ik = x_i·x_k, where each word attends to itself and to repeated words "
        "(\"the\", \"store\", \"[SEP]\").",
        "attention", (),
        ("seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt), Visualizing Attention",
         "Vaswani et al. 2017, §3.5"),
        fig_seed003_patterns),
    FigureSpec(
        "softmax-temperature", "Softmax temperature → hard attention",
        "Left: softmax(βs) over eight fixed logits as β grows. Right: the largest distance "
        "to the hard (argmax) weights, with the bound (n−1)e^(−β·gap).",
        "attention", ("attention.temperature_limit",),
        ("Vaswani et al. 2017, §3.2.1", "Hahn 2020, §3 (hard attention)"),
        fig_temperature),
    FigureSpec(
        "sinusoidal", "The sinusoidal positional encoding",
        "Left: PE(p) for p < 64, d = 64; low dimensions oscillate fast, high ones slowly. "
        "Right: PE(p)·PE(p+k) = Σᵢ cos(ωᵢk) for three positions p: the curves coincide, so "
        "the dot product depends on the offset k only.",
        "positional", ("positional.sinusoidal_dot_product_relative",
                       "positional.sinusoidal_*", "positional.*"),
        ("Vaswani et al. 2017, §3.5", "seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt)"),
        fig_sinusoidal),
    FigureSpec(
        "performer-mse-m", "Performer: MSE against the number of random features",
        "Analytic MSE (lines: Lemma 2 for the iid estimators, the exact block-orthogonal "
        "formula for orthogonal features) and Monte Carlo estimates (points, ±2 standard "
        "errors). All decay as 1/m; orthogonal features are below iid positive ones.",
        "performer", (),
        ("Choromanski et al. 2021, Lemma 2 and Theorem 2",
         "seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt)"),
        fig_performer_mse_m),
    FigureSpec(
        "performer-mse-distance", "Performer: MSE against ‖x − y‖ and ‖x + y‖",
        "m = 16 random features, d = 8. Lines are the analytic MSE, points Monte Carlo with "
        "±2 standard errors. The trigonometric estimator is exact at x = y and worst for "
        "distant inputs; the positive one is exact at x = −y and degrades as ‖x + y‖ grows; "
        "the hyperbolic one is below the positive one everywhere.",
        "performer", (),
        ("Choromanski et al. 2021, Lemma 2", "seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt)"),
        fig_performer_mse_distance),
    FigureSpec(
        "performer-cost", "Performer: cost of FAVOR+ against exact attention",
        "Measured time per call and peak memory against the sequence length, from "
        "benchmarks/performer_cost.py (a benchmark, not a test). FAVOR+ grows linearly, exact "
        "attention quadratically; the lines cross at a few hundred tokens for these sizes.",
        "performer", ("performer.*cost*", "performer.*linear*"),
        ("Choromanski et al. 2021, §2.2, Algorithm 1 and §4",),
        fig_performer_cost),
    FigureSpec(
        "dyck-matching", "Dyck: the pairs each layer matched",
        "A bracket string and the pairs the explicit Dyck_{k,D} recogniser matched, "
        "coloured by layer: layer ℓ matches the pairs whose content is nested ℓ − 1 deep, "
        "so D layers suffice for depth D.",
        "dyck", (), ("Yao et al. 2021, §4", "seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt)"),
        fig_dyck),
    FigureSpec(
        "hahn-sensitivity", "Hahn: sensitivity against n",
        "Sensitivity of a soft-attention layer to one input symbol against the input length "
        "n (log-log), with the 1/n reference line.",
        "dyck", ("*sensitivity*", "dyck.*"), ("Hahn 2020, §5 (Lemma 5)",), fig_hahn),
    FigureSpec(
        "ode-error", "Residual stack → ODE: error against depth",
        "Distance between an L-layer residual stack and the ODE it discretises, against L "
        "(log-log), with the O(1/L) Euler reference.",
        "ode", ("ode.*",), ("Chen et al. 2018, Neural ODEs, §2",), fig_ode),
    FigureSpec(
        "turing-run", "A Turing machine's run",
        "The 2-state busy beaver from a blank tape, one row per step: the tape, state and "
        "head decoded from the looped transformer layer (hard attention), compared with "
        "the direct simulator.",
        "turing", (), ("Wei et al. 2022, §4", "Pérez et al. 2021, §4", "Radó 1962"),
        fig_turing),
    FigureSpec(
        "speed", "Speed: fast and torch against the reference",
        "Time per attention call against the sequence length for the numpy reference, the "
        "numba path and PyTorch SDPA, measured in one process by `make bench` "
        "(benchmarks/bench.py); the reference is timed only up to moderate L.",
        None, (), ("benchmarks/results.json",), fig_speed),
)


def select_figures(topics: Sequence[str] | None) -> list[FigureSpec]:
    """The report figures for these topics (all when ``topics`` is None).

    Figures outside every topic (benchmarks) are kept only for a full report.
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
        fctx = FigureContext(seed=ctx.seed, doc=ctx.doc, root=ctx.root, figure_id=spec.id)
        try:
            with np.errstate(all="ignore"):
                fig = spec.build(fctx)
            rf.svg = figure_to_svg(fig, salt=spec.id)
        except FigureInClaim as exc:
            rf.note, rf.in_claim = str(exc), True
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
