"""Online softmax and tiling: exact attention block by block (the FlashAttention recurrence),
its memory and IO cost, and structured sparse attention.

References
----------
Milakov & Gimelshein 2018, Online normalizer calculation for softmax, §3.
Dao et al. 2022, FlashAttention, NeurIPS, §3.1 (Algorithm 1), §3.2 (Theorem 2).
Child et al. 2019 (Sparse Transformers, §4); Zaheer et al. 2020 (Big Bird).
Seed 001 (shared/seeds/001_227b4b6d6a829452.txt): "softmax improvements", HBM vs
SRAM traffic, "structured sparse attention".
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from transformer_theory.impl import online_softmax as OS
from transformer_theory.impl.attention import window_mask

from ..checks import Measurement, compare, for_all, holds, single_case
from ..claim import Evidence, Kind, Source
from ..registry import ClaimSet
from ..sources import DAO_2022, MILAKOV_2018, SEED_001, ZAHEER_2020
from ..declared import value_dim_equal
from ..strategies import (DTYPES, SEEDS, attention_case, dtype_seed_rng, leading_dims, normal,
                          random_mask)
from ..subject import construction
from ..tolerance import tolerance
from ._common import coarser_dtype, definition_attention

claims = ClaimSet("online_softmax")

MERGE = MILAKOV_2018.at("§3 (online normalizer; merging (m, d) pairs)")
FLASH = DAO_2022.at("§3.1, Algorithm 1")
THEOREM2 = DAO_2022.at("§3.2, Theorem 2 (IO complexity)")
SEED001_SOFTMAX = SEED_001.at("softmax improvements; HBM vs SRAM load/store operations")
SEED001_SPARSE = SEED_001.at("structured sparse attention")
CHILD_2019 = Source("Child et al. 2019", "Generating Long Sequences with Sparse Transformers, "
                    "arXiv:1904.10509")


@st.composite
def _split_case(draw, *, fully_masked: bool = False):
    """An attention case, cut points of the key axis and a merge tree over the blocks."""
    c = draw(attention_case(max_seq=12))
    lk = c["Lk"]
    cuts = draw(st.lists(st.integers(1, max(lk - 1, 1)), max_size=lk - 1, unique=True)
                .map(sorted) if lk > 1 else st.just([]), label="boundaries")
    blocks = OS.split_keys(lk, cuts)
    rng = np.random.default_rng(c["seed"] + 11)
    use_mask = fully_masked or draw(st.booleans(), label="use_mask")
    mask = random_mask(rng, (*c["lead"], c["Lq"], lk)) if use_mask else None
    if fully_masked:
        dead = draw(st.lists(st.integers(0, len(blocks) - 1), unique=True,
                             min_size=1, max_size=len(blocks)), label="masked_blocks")
        for b in dead:
            mask[..., blocks[b]] = False
        rows = draw(st.lists(st.integers(0, c["Lq"] - 1), unique=True, max_size=c["Lq"]),
                    label="masked_rows")
        mask[..., rows, :] = False
    causal = False if fully_masked else draw(st.sampled_from([False, True, "bottom-right"]))
    # a merge tree: repeatedly merge two of the remaining states
    picks, remaining = [], len(blocks)
    while remaining > 1:
        i = draw(st.integers(0, remaining - 1))
        j = draw(st.integers(0, remaining - 2))
        picks.append((i, j))
        remaining -= 1
    return {**c, "boundaries": cuts, "mask": mask, "causal": causal, "picks": picks}


def _allowed(c):
    allowed = np.ones((*c["lead"], c["Lq"], c["Lk"]), dtype=bool)
    if c["mask"] is not None:
        allowed &= c["mask"]
    if c["causal"]:
        offset = c["Lk"] - c["Lq"] if c["causal"] == "bottom-right" else 0
        allowed &= np.tril(np.ones((c["Lq"], c["Lk"]), dtype=bool), k=offset)
    return allowed


def _merge(subject):
    """The online merge under test: the subject's ``online_merge``, else the reference's."""
    return construction(subject, "online_merge", OS.merge)


def _tree_attention(c, merge):
    """Block states of the drawn split, merged along the drawn tree (with ``merge``), then o / l."""
    allowed = _allowed(c)
    blocks = OS.split_keys(c["Lk"], c["boundaries"])
    states = [OS.block_state(c["q"], c["k"][..., sl, :], c["v"][..., sl, :],
                             allowed=allowed[..., sl]) for sl in blocks]
    for i, j in c["picks"]:
        a = states.pop(i)
        b = states.pop(j)
        states.append(merge(a, b))
    return OS.finalize(states[0])


@claims.claim(
    "online_softmax.any_split_any_order",
    sources=(MERGE, FLASH, SEED001_SOFTMAX),
    full_precision_only=(
        'it compares two different computations of attention (a tree of block merges against '
        'one softmax): in half precision each rounds its own intermediates, which the naive '
        "baseline's difference between the same two sides does not bound (ratio 2.9 seen on "
        'the correct reference under the dev profile)'),
    kind=Kind.PROPERTY, needs=("attention",), uses=("online_merge",), proof="softmax.online_merge")
def any_split_any_order(subject, ctx) -> Evidence:
    r"""Any split of the keys into blocks, merged in any order, gives exact attention

    .. math:: \mathrm{finalize}\Bigl(\bigoplus_{\pi(b)}(m_b,\ell_b,o_b)\Bigr)=\mathrm{softmax}\!\left(\tfrac{QK^{\top}}{\sqrt
        d}+\log M\right)V\quad\text{for every partition } \{b\}\text{ and merge tree } \pi

    Hypothesis draws the cut points of the key axis and the merge tree (which two partial states to
    merge next); masks and both causal alignments included. The result is compared with the
    subject's attention.
    """
    merge = _merge(subject)

    def measure(c):
        out = _tree_attention(c, merge)
        ref = subject.attention(c["q"], c["k"], c["v"], mask=c["mask"], causal=c["causal"])
        tol = tolerance("composite", coarser_dtype(c["q"]), n=c["E"] + c["Lk"])
        return compare(out, ref, tol, scale=c["v"], note="merged blocks differ from attention")
    return for_all(ctx, _split_case(), measure,
                   detail="Random partitions of the keys (1 to Lk blocks) merged along random "
                          "trees equal the subject's attention, with masks and causal masks.")


def _state_errors(x: OS.OnlineState, y: OS.OnlineState, tol, note: str,
                  o_scale=None) -> Measurement:
    """m exactly; l and o norm-wise relative to their scale (``o_scale`` for o if given)."""
    if not np.array_equal(x.m, y.m):
        return holds(False, f"{note}: the maxima differ")
    worst = None
    for name, a, b, scale in (("l", x.l, y.l, None), ("o", x.o, y.o, o_scale)):
        m = compare(a, b, tol, scale=scale, note=f"{note}: {name} differs")
        if not m.ok:
            return m
        worst = m if worst is None or m.error > worst.error else worst
    return worst


@claims.claim(
    "online_softmax.merge_monoid",
    sources=(MERGE, FLASH),
    full_precision_only=(
        'associativity compares two merge orders, each rounding its intermediate state to '
        "half precision; the naive baseline's difference between its own two orders does not "
        'bound that (ratio 1.9 seen on the correct reference under the dev profile, close to '
        'k = 2)'),
    kind=Kind.PROPERTY, needs=(), uses=("online_merge",), proof="softmax.online_merge")
def merge_monoid(subject, ctx) -> Evidence:
    r"""The (m, ℓ, o) merge is a commutative monoid with identity (−∞, 0, 0)

    .. math:: (A\oplus B)\oplus C=A\oplus(B\oplus C),\quad A\oplus B=B\oplus A,\quad
        A\oplus(-\infty,0,0)=A

    States come from random blocks of keys, some rows fully masked (m = -inf). Commutativity and
    the identity hold bit for bit (max and + are symmetric, e^0 = 1, e^-inf = 0); associativity to
    rounding, where the tolerance counts the three merges and the condition number |m| of the
    exponentials, and o's error is relative to the rescaled terms' magnitudes sum_s e^(m_s - m)
    |o_s| (signed values may cancel).
    """
    merge = _merge(subject)
    strategy = st.tuples(leading_dims(), st.integers(1, 6), st.integers(1, 6), st.integers(1, 6),
                         DTYPES, SEEDS)

    def measure(args):
        lead, lq, e, ev, dt, seed = args
        rng = np.random.default_rng(seed)
        q = normal(rng, (*lead, lq, e), dt)
        states = []
        for _ in range(3):
            b = int(rng.integers(1, 5))
            k, v = normal(rng, (*lead, b, e), dt), normal(rng, (*lead, b, ev), dt)
            allowed = random_mask(rng, (*lead, lq, b), p_true=0.6)
            states.append(OS.block_state(q, k, v, allowed=allowed))
        a, b, c = states
        ident = OS.identity_state(lead, lq, ev, dt)
        exact = tolerance("exact", dt)
        for x, y, what in ((merge(a, b), merge(b, a), "A+B vs B+A"),
                           (merge(a, ident), a, "A+I vs A"), (merge(ident, a), a, "I+A vs A"),
                           (merge(ident, ident), ident, "I+I vs I")):
            m = _state_errors(x, y, exact, what)
            if not m.ok:
                return m
        finite = np.concatenate([s.m[np.isfinite(s.m)] for s in states] + [np.zeros(1)])
        tol = tolerance("composite", dt, n=3 + math.ceil(float(np.max(np.abs(finite)))))
        # o merges signed values: its rounding is relative to the sum of the rescaled terms'
        # magnitudes, sum_s e^(m_s - m) |o_s| (the reference's merge of the states with |o|,
        # which is linear in o with weights >= 0), not to a result they may cancel down to
        magnitudes = [s._replace(o=np.abs(np.asarray(s.o, dtype=np.float64))) for s in states]
        terms = OS.merge(OS.merge(*magnitudes[:2]), magnitudes[2]).o      # (..., Lq, Ev)
        return _state_errors(merge(merge(a, b), c), merge(a, merge(b, c)), tol, "associativity",
                             o_scale=terms)
    return for_all(ctx, strategy, measure,
                   detail="On states of random (partly fully masked) blocks: commutativity and "
                          "the identity exactly, associativity to rounding.")


@claims.claim("online_softmax.fully_masked_blocks", sources=(FLASH, MERGE), kind=Kind.PROPERTY,
              needs=("attention",), uses=("flash_attention", "online_merge"))
def fully_masked_blocks(subject, ctx) -> Evidence:
    r"""Fully masked blocks and rows are handled without NaN

    .. math:: M_{\cdot b}=0\Rightarrow(m_b,\ell_b,o_b)=(-\infty,0,0);\qquad M_{i\cdot}=0\Rightarrow
        o_i=0\ \ (\text{never NaN})

    Hypothesis masks whole key blocks and whole query rows. Both the merge along a random tree and
    the tiled flash_attention must stay finite and equal the subject's attention (which returns
    zeros for a fully masked row).
    """
    merge = _merge(subject)
    flash_attention = construction(subject, "flash_attention", OS.flash_attention)

    def measure(c):
        ref = np.asarray(subject.attention(c["q"], c["k"], c["v"], mask=c["mask"]))
        tol = tolerance("composite", coarser_dtype(c["q"]), n=c["E"] + c["Lk"])
        worst = None
        tiled = flash_attention(c["q"], c["k"], c["v"], mask=c["mask"],
                                   block_q=max(1, c["Lq"] // 2),
                                   block_k=max(1, c["Lk"] // max(1, len(c["boundaries"]) + 1)))
        for name, out in (("merge tree", _tree_attention(c, merge)), ("tiled", tiled)):
            if not np.all(np.isfinite(out)):
                return holds(False, f"{name}: NaN or inf with fully masked blocks")
            m = compare(out, ref, tol, scale=c["v"], note=f"{name} differs from attention")
            if not m.ok:
                return m
            worst = m if worst is None or m.error > worst.error else worst
        return worst
    return for_all(ctx, _split_case(fully_masked=True), measure,
                   detail="With whole key blocks and query rows masked out, merged and tiled "
                          "attention stay finite and equal the subject's attention.")


@claims.claim(
    "online_softmax.memory_o_block",
    sources=(FLASH, DAO_2022.at("§3.1: never materialise the N x N matrices"), SEED001_SOFTMAX),
    kind=Kind.CONSTRUCTION, needs=(), uses=("flash_attention",))
def memory_o_block(subject, ctx) -> Evidence:
    r"""Tiled attention's extra memory is O(block), never L×L

    .. math:: \max_{\text{temporaries}}|T|\le B\,B_q\max(B_k,E_v)\ \text{ for every }
        L,\qquad\text{naive: } B\,L_q L_k

    Every temporary array the tiled algorithm creates (score tile, exponentials, P V, running
    state) is recorded; the output and the inputs are not temporaries. Batch B = 2, E = Ev = 16,
    tiles 16 x 16, L from 32 to 512; the output is also compared with the float64 definition of
    attention.
    """
    flash_attention = construction(subject, "flash_attention", OS.flash_attention)
    rng = ctx.rng("memory")
    batch, e, bq, bk = 2, 16, 16, 16
    bound = batch * bq * max(bk, e)
    lengths = (32, 64, 128, 256, 512)
    measurements, peaks = [], []
    for length in lengths:
        q, k, v = (rng.standard_normal((batch, length, e)) for _ in range(3))
        tracker = OS.MemoryTracker()
        out = flash_attention(q, k, v, block_q=bq, block_k=bk, causal=True, tracker=tracker)
        expected, _ = definition_attention(q, k, v, causal=True)
        peaks.append(tracker.peak)
        measurements.append(holds(tracker.peak <= bound,
                                  f"L={length}: largest temporary '{tracker.peak_name}' has "
                                  f"{tracker.peak} elements > {bound}"))
        measurements.append(compare(out, expected, tolerance("composite", np.float64,
                                                             n=e + length), scale=v,
                                    note=f"L={length}: tiled output differs from attention"))
    figure = {"type": "lines", "title": "Largest temporary array of attention",
              "xlabel": "sequence length L", "ylabel": "elements", "xscale": "log",
              "yscale": "log", "series": [
                  {"label": "tiled (16 x 16 blocks)", "x": list(lengths), "y": peaks,
                   "yerr": None, "style": "points"},
                  {"label": "naive: B L^2 scores", "x": list(lengths),
                   "y": [batch * n * n for n in lengths], "yerr": None, "style": "line"}]}
    return single_case(
        measurements, figure=figure,
        detail=f"Largest temporary of the tiled algorithm: {sorted(set(peaks))} elements for "
               f"L = 32..512 (bound {bound}), against B L^2 = {batch * lengths[-1] ** 2} for "
               f"the naive algorithm at L = {lengths[-1]}; outputs equal attention.")


@claims.claim("online_softmax.io_complexity", sources=(THEOREM2, FLASH, SEED001_SOFTMAX),
              kind=Kind.CONSTRUCTION, needs=(), uses=("flash_io_count",))
def io_complexity(subject, ctx) -> Evidence:
    r"""Counted slow-memory traffic: Θ(N²d²/M) tiled against Θ(Nd + N²) naive

    .. math:: \mathrm{IO}_{\mathrm{flash}}=3Nd+2N+\lceil N/B_c\rceil
        N(3d+4)\in\Bigl[12+\tfrac{16}{d},\,30+\tfrac{38}{d}\Bigr]\frac{N^2d^2}{M},\qquad\mathrm{IO}_{\mathrm{naive}}=4(Nd+N^2)

    A counted model, not a timing: Algorithm 1's loops run on a simulated two-level memory (slow
    HBM, fast SRAM of M words) that counts every word moved and tracks the fast memory's peak
    occupancy. B_c = floor(M/4d); B_r is the largest value <= min(B_c, d) whose tiles fit in M (the
    paper's B_r = min(ceil(M/4d), d) can overflow M by a constant factor). The band follows from
    T_c in [4Nd/M, 8Nd/M + 1] for 16d <= M <= Nd. Also checked: the counted run computes attention
    exactly.
    """
    flash_io_count = construction(subject, "flash_io_count", OS.flash_io_count)
    measurements, rows = [], []
    lengths = (512, 1024, 2048, 4096)
    runs = [(16, 4096, n) for n in (256, 512, 1024, 2048)]
    runs += [(16, m, 2048) for m in (2048, 8192, 16384, 32768)]
    runs += [(64, m, n) for m in (16384, 65536) for n in lengths]
    counted = {}
    for d, m_words, n in runs:
        try:
            rep = flash_io_count(n, d, m_words)
        except ValueError as exc:
            measurements.append(holds(False, f"N={n}, d={d}, M={m_words}: {exc}"))
            continue
        counted[(d, m_words, n)] = rep.total
        where = f"N={n}, d={d}, M={m_words}"
        measurements.append(holds(rep.peak_fast <= m_words, f"{where}: the tiles occupy "
                                                            f"{rep.peak_fast} > M words"))
        measurements.append(holds(rep.total == OS.flash_io_formula(n, d, m_words),
                                  f"{where}: counted {rep.total} != closed form "
                                  f"{OS.flash_io_formula(n, d, m_words)}"))
        if m_words <= n * d:                      # the range of Theorem 2: d <= M <= N d
            ratio = rep.total * m_words / (n * n * d * d)
            lo, hi = 12 + 16 / d, 30 + 38 / d
            rows.append((n, d, m_words, rep.total, ratio))
            measurements.append(holds(lo <= ratio <= hi, f"{where}: IO M/(N^2 d^2) = "
                                                          f"{ratio:.3f} outside [{lo:.3f}, "
                                                          f"{hi:.3f}]"))
    for d, ns in ((16, (256, 512, 1024, 2048)), (64, lengths)):
        for n in ns:
            count = OS.naive_io_count(n, d).total
            measurements.append(holds(count == 4 * (n * d + n * n),
                                      f"naive, N={n}, d={d}: {count} != 4(Nd + N^2)"))
    series = [{"label": "naive (d=64)", "x": list(lengths),
               "y": [OS.naive_io_count(n, 64).total for n in lengths], "yerr": None,
               "style": "line"}]
    for m_words in (16384, 65536):
        ns = [n for n in lengths if (64, m_words, n) in counted]
        series.append({"label": f"tiled (d=64, M={m_words} words)", "x": ns,
                       "y": [counted[(64, m_words, n)] for n in ns], "yerr": None,
                       "style": "points"})
    rng = ctx.rng("io values")
    q, k, v = (rng.standard_normal((64, 8)) for _ in range(3))
    try:
        _, out = flash_io_count(64, 8, 512, q=q, k=k, v=v)
        expected, _ = definition_attention(q, k, v)
        measurements.append(compare(out, expected, tolerance("composite", np.float64, n=8 + 64),
                                    scale=v, note="the counted run's output differs"))
    except ValueError as exc:
        measurements.append(holds(False, f"counted run with values: {exc}"))
    big = [r for r in rows if r[1] == 64 and r[2] == 16384]
    slope = np.polyfit(np.log([r[0] for r in big]), np.log([r[3] for r in big]), 1)[0] \
        if len(big) > 1 else float("nan")
    figure = {"type": "lines", "title": "Slow-memory (HBM) reads + writes of attention "
                                        "(counted; a 4x larger SRAM cuts the tiled count 4x)",
              "xlabel": "sequence length N", "ylabel": "words moved", "xscale": "log",
              "yscale": "log", "series": series}
    return single_case(
        measurements, figure=figure,
        detail="IO M / (N^2 d^2) of the tiled algorithm: " +
               ", ".join(f"{r[4]:.2f} (N={r[0]}, d={r[1]}, M={r[2]})" for r in rows) +
               f"; log-log slope in N {slope:.2f} at d=64, M=16384; naive exactly 4(Nd + N^2). "
               f"At M > N d (everything fits) the tiled count is linear in N and lies outside "
               f"the theorem's range; those runs are checked only against the closed form.")


@st.composite
def _sparse_case(draw):
    lead = draw(leading_dims())
    length = draw(st.integers(1, 24), label="L")
    e = draw(st.integers(1, 8))
    ev = e if value_dim_equal() else draw(st.integers(1, 8))
    dt, seed, rng = dtype_seed_rng(draw)
    block = draw(st.integers(1, 6), label="block")
    n_blocks = -(-length // block)
    return {"lead": lead, "L": length, "E": e, "Ev": ev, "dtype": dt, "seed": seed,
            "window": (draw(st.integers(0, 5), label="left"),
                       draw(st.integers(0, 5), label="right")),
            "block": block,
            "layout": OS.banded_block_layout(n_blocks, draw(st.integers(0, 2), label="bandwidth"),
                                             causal=draw(st.booleans(), label="causal_blocks"),
                                             n_global=draw(st.integers(0, 1), label="n_global")),
            "q": normal(rng, (*lead, length, e), dt, 2.0),
            "k": normal(rng, (*lead, length, e), dt, 2.0),
            "v": normal(rng, (*lead, length, ev), dt)}


@claims.claim(
    "online_softmax.sparse_equals_masked_dense",
    sources=(SEED001_SPARSE, CHILD_2019.at("§4 (factorized / strided patterns)"),
             ZAHEER_2020.at("§2 (band plus global blocks)")),
    kind=Kind.PROPERTY, needs=("attention",),
    uses=("block_sparse_attention", "sliding_window_attention"))
def sparse_equals_masked_dense(subject, ctx) -> Evidence:
    r"""Sliding-window and block-sparse attention equal dense attention with their mask

    .. math:: \mathrm{Local}_{l,r}(Q,K,V)=\mathrm{Attention}(Q,K,V;\,M_{ij}=[-l\le j-i\le
        r]),\qquad \mathrm{BlockSparse}_{\mathcal L}(Q,K,V)=\mathrm{Attention}(Q,K,V;\,M=\mathcal
        L\otimes\mathbf 1)

    The sparse forms compute only the allowed scores (gathered windows; allowed tiles merged by the
    online softmax); the dense reference is the subject's attention with the window's band mask
    (window_mask) or the block pattern expanded to positions.
    """
    sliding = construction(subject, "sliding_window_attention", OS.sliding_window_attention)
    block_sparse = construction(subject, "block_sparse_attention", OS.block_sparse_attention)

    def measure(c):
        tol = tolerance("composite", c["dtype"], n=c["E"] + c["L"])
        local = sliding(c["q"], c["k"], c["v"], c["window"])
        dense = subject.attention(c["q"], c["k"], c["v"],
                                  mask=window_mask(c["L"], c["L"], c["window"]))
        m = compare(local, dense, tol, scale=c["v"], note="sliding window differs")
        if not m.ok:
            return m
        sparse = block_sparse(c["q"], c["k"], c["v"], c["block"], c["layout"])
        dense = subject.attention(c["q"], c["k"], c["v"],
                                  mask=OS.block_sparse_mask(c["L"], c["block"], c["layout"]))
        m2 = compare(sparse, dense, tol, scale=c["v"], note="block-sparse differs")
        return m2 if not m2.ok or m2.error > m.error else m
    return for_all(ctx, _sparse_case(), measure,
                   detail="Windows (left, right) in 0..5 x 0..5 and banded block patterns with global "
                          "blocks, L up to 24: both sparse forms equal the subject's masked "
                          "dense attention.")


@claims.claim(
    "online_softmax.sparse_cost_linear",
    sources=(SEED001_SPARSE, CHILD_2019.at("§4 (O(n sqrt n) and local patterns)"),
             ZAHEER_2020.at("§2 (linear in the sequence length)")),
    kind=Kind.CONSTRUCTION, needs=(), uses=("block_sparse_attention", "sliding_window_attention"))
def sparse_cost_linear(subject, ctx) -> Evidence:
    r"""Structured sparse attention costs O(L) operations at a fixed window or band

    .. math:: \mathrm{cost}_{\mathrm{local}}(L)=L\,w\,(E+E_v),\quad
        \Delta^2_L\,\mathrm{cost}_{\mathrm{block}}=0,\qquad
        \mathrm{cost}_{\mathrm{dense}}(L)=L^2(E+E_v)

    Multiply-adds counted while the sparse forms run (E per score, Ev per weighted value). L =
    64..512 in steps of 64, E = Ev = 8, causal window 16, blocks of 16 with bandwidth 1 and one
    global block: the counts' second differences vanish (affine in L), while the dense count's do
    not.
    """
    sliding = construction(subject, "sliding_window_attention", OS.sliding_window_attention)
    block_sparse = construction(subject, "block_sparse_attention", OS.block_sparse_attention)
    rng = ctx.rng("sparse cost")
    e = ev = 8
    window, block = 16, 16
    lengths = list(range(64, 513, 64))
    costs = {"sliding window": [], "block-sparse": []}
    for length in lengths:
        q, k, v = (rng.standard_normal((length, e)) for _ in range(3))
        c1, c2 = OS.OpCounter(), OS.OpCounter()
        sliding(q, k, v, (window - 1, 0), counter=c1)
        layout = OS.banded_block_layout(length // block, 1, n_global=1)
        block_sparse(q, k, v, block, layout, counter=c2)
        costs["sliding window"].append(c1.multiply_adds)
        costs["block-sparse"].append(c2.multiply_adds)
    dense = [n * n * (e + ev) for n in lengths]
    measurements = []
    for name, values in costs.items():
        second = np.diff(np.asarray(values), n=2)
        measurements.append(holds(bool(np.all(second == 0)),
                                  f"{name}: second differences {second.tolist()} are not 0"))
    measurements.append(holds(costs["sliding window"] == [n * window * (e + ev) for n in lengths],
                              "sliding window: cost is not L w (E + Ev)"))
    measurements.append(holds(bool(np.all(np.diff(dense, n=2) > 0)),
                              "dense: second differences vanish"))
    figure = {"type": "lines", "title": "Counted multiply-adds of attention",
              "xlabel": "sequence length L", "ylabel": "multiply-adds", "xscale": "log",
              "yscale": "log", "series": [
                  {"label": name, "x": lengths, "y": vals, "yerr": None, "style": "points"}
                  for name, vals in costs.items()] + [
                  {"label": "dense L^2 (E + Ev)", "x": lengths, "y": dense, "yerr": None,
                   "style": "line"}]}
    per_token = {name: vals[-1] / lengths[-1] for name, vals in costs.items()}
    return single_case(
        measurements, figure=figure,
        detail="Per-token cost at L = 512: " +
               ", ".join(f"{n} {v:.0f}" for n, v in per_token.items()) +
               f" multiply-adds (dense: {dense[-1] / lengths[-1]:.0f}); the sparse counts are "
               f"affine in L (zero second differences).")


#: (kind, L, stride, c): the strided pattern at l = ceil(sqrt L) and at a stride far from it;
#: the fixed pattern with one to three summary positions per block
_FACTORIZED = (("strided", 16, 4, None), ("strided", 50, 8, None), ("strided", 100, 10, None),
               ("strided", 30, 3, None), ("fixed", 16, 4, 1), ("fixed", 64, 8, 2),
               ("fixed", 100, 10, 3))


def _uniform_rows(mask: np.ndarray) -> np.ndarray:
    """The attention weights of zero logits under ``mask``: each row uniform over its keys
    (zeros for a row with none, as the contract's fully masked rows)."""
    m = mask.astype(np.float64)                                        # (L, L)
    counts = m.sum(axis=-1, keepdims=True)                             # (L, 1)
    return m / np.maximum(counts, 1.0)


@claims.claim(
    "online_softmax.factorized_paths",
    sources=(CHILD_2019.at('§4.2 ("i can attend to j through a path of locations with '
                           'maximum length p+1"; |A_i^(m)| proportional to the p-th root of n)'),
             CHILD_2019.at("§4.3 (the strided and fixed patterns)"), SEED001_SPARSE),
    kind=Kind.CONSTRUCTION, needs=("attention",))
def factorized_paths(subject, ctx) -> Evidence:
    r"""Sparse Transformer patterns are valid: two factorized heads connect every j <= i through at
    most p + 1 = 3 locations, with O(sqrt n) keys per row

    .. math:: \forall j\le i:\ j\in A^{(1)}_i\ \lor\ \exists a:\ j\in A^{(1)}_a,\ a\in
        A^{(2)}_i;\qquad \big(\text{two steps of attention}\big)_{ij}>0\iff j\le i;\qquad
        |A^{(m)}_i|\le l+1\ \ (\text{strided},\ l=\lceil\sqrt n\rceil)

    The strided pattern (A1: the previous l positions and i; A2: every l-th position back from i)
    and the fixed one (A1: i's block of l; A2: the last c positions of every block), built by
    impl/sparse_patterns.py, are run through the subject's attention with zero logits and one-hot
    values (V = I): one step with mask A1 gives the row-normalised A1, a second step with A2 over
    its output gives W2 W1, which the subject must return to the reduction rule. Row i of W1 + W2
    W1 then carries weight exactly where a path of at most 3 locations joins j to i, which must be
    every j <= i and no j > i. Power: a mask ignored, inverted or applied after the softmax changes
    a row of W1 by at least 1/L, 10^12 times the tolerance at L = 100.
    """
    from transformer_theory.impl import sparse_patterns as SP

    measurements, rows = [], []
    for kind, length, stride, c in _FACTORIZED:
        a1, a2 = (SP.strided_pattern(length, stride) if kind == "strided"
                  else SP.fixed_pattern(length, stride, c))
        label = f"{kind} L={length} l={stride}" + (f" c={c}" if c else "")
        zeros = np.zeros((length, 1))                                  # (L, 1): logits 0
        w1, w2 = _uniform_rows(a1), _uniform_rows(a2)                   # (L, L) each
        one = np.asarray(subject.attention(zeros, zeros, np.eye(length), mask=a1),
                         dtype=np.float64)                              # (L, L): W1
        two = np.asarray(subject.attention(zeros, zeros, one, mask=a2),
                         dtype=np.float64)                              # (L, L): W2 W1
        tol = tolerance("reduction", np.float64, n=2 * length)
        measurements.append(compare(one, w1, tol, note=f"{label}: one step with A1 is not "
                                                         "the row-normalised A1"))
        measurements.append(compare(two, w2 @ w1, tol, note=f"{label}: the second step with "
                                                             "A2 is not W2 W1"))
        smallest = float(np.min((w1 + w2 @ w1)[w1 + w2 @ w1 > 0]))
        reached = (one + two) > smallest / 2                            # (L, L)
        causal = np.tril(np.ones((length, length), dtype=bool))
        missing = int(np.sum(causal & ~reached))
        future = int(np.sum(~causal & reached))
        measurements.append(holds(missing == 0 and future == 0,
                                  f"{label}: {missing} pairs j <= i not reached in two steps, "
                                  f"{future} pairs j > i reached"))
        measurements.append(holds(bool(np.array_equal(SP.reach(a1, a2), causal)),
                                  f"{label}: the pattern's paths of at most 3 locations are "
                                  "not the causal pairs"))
        sizes = (int(a1.sum(axis=-1).max()), int(a2.sum(axis=-1).max()))
        if kind == "strided":
            bound = (stride + 1, -(-length // stride))
        else:
            bound = (stride, c * -(-length // stride))
        measurements.append(holds(sizes[0] <= bound[0] and sizes[1] <= bound[1],
                                  f"{label}: rows of {sizes} keys, more than {bound}"))
        rows.append(f"{label}: max |A1|, |A2| = {sizes[0]}, {sizes[1]}")
    return single_case(
        measurements, cases=len(_FACTORIZED),
        detail="Through the subject's attention, two factorized steps reach every earlier "
               "position and no later one; " + "; ".join(rows[:3]) + " (sqrt L = 4, 7.1, 10).")
