"""Exact attention block by block: the online-softmax (m, l, o) merge, FlashAttention tiling,
its IO count on a simulated two-level memory, and structured sparse attention.

The (m, l, o) state
-------------------
For one query and a set ``B`` of keys with scores ``s_j`` let

.. math::  m_B = \\max_{j\\in B} s_j,\\qquad \\ell_B = \\sum_{j\\in B} e^{s_j - m_B},
           \\qquad o_B = \\sum_{j\\in B} e^{s_j - m_B} v_j .

Then ``softmax(s)^T v = o_B / l_B`` over ``B``, and for disjoint ``A``, ``B``

.. math::  m = \\max(m_A, m_B),\\quad \\ell = e^{m_A - m}\\ell_A + e^{m_B - m}\\ell_B,
           \\quad o = e^{m_A - m} o_A + e^{m_B - m} o_B

is the state of ``A ∪ B``. This merge is associative and commutative with
identity ``(-inf, 0, 0)`` (an empty or fully masked block), so the keys may be
split into blocks in any way and the blocks merged in any order (Milakov &
Gimelshein 2018, §3; Dao et al. 2022, §3.1). Every exponent is ``<= 0``, so
nothing overflows; a merge of two empty states stays empty (no ``-inf - -inf``).

IO complexity (Dao et al. 2022, Theorem 2)
------------------------------------------
:func:`flash_io_count` runs Algorithm 1's loop structure on a
:class:`TwoLevelMemory` (slow HBM, fast SRAM of ``M`` words) and counts every
word moved between them; :func:`naive_io_count` does the same for Algorithm 0
(materialise ``S = QK^T`` and ``P = softmax(S)`` in HBM). The counts are
``3Nd + 2N + T_c N (3d + 4)`` with ``T_c = ceil(N / B_c)``, i.e.
``Theta(N^2 d^2 / M)``, and ``4 (N d + N^2)``. Block sizes: ``B_c = floor(M / 4d)``
as in Algorithm 1, and ``B_r`` the largest ``<= min(B_c, d)`` for which every
tile the inner loop holds (``K_j, V_j, Q_i, O_i``, ``l_i, m_i``, ``S_ij``, the row
statistics and ``P_ij V_j``) fits in ``M`` words at once — Algorithm 1 takes
``B_r = min(ceil(M/4d), d)``, whose tiles together can exceed ``M`` by a
constant factor; the difference changes constants only.

Structured sparse attention (seed 001)
--------------------------------------
Sliding-window and block-sparse attention compute only the scores their
pattern allows, at a cost linear in ``L`` for a fixed window or block band,
and equal dense attention with the corresponding mask.

References
----------
Milakov & Gimelshein 2018, Online normalizer calculation for softmax,
arXiv:1805.02867, §3 (the online normalizer and its merge).
Dao, Fu, Ermon, Rudra & Ré 2022, FlashAttention: Fast and Memory-Efficient
Exact Attention with IO-Awareness, NeurIPS, §3.1 (Algorithm 1), §3.2
(Theorem 2), §2.2 (Algorithm 0, standard attention).
Child et al. 2019, Generating Long Sequences with Sparse Transformers, §4;
Beltagy, Peters & Cohan 2020, Longformer, §3.1; Zaheer et al. 2020, Big Bird.
Seed 001 (shared/seeds/001_227b4b6d6a829452.txt): "structured sparse
attention", HBM vs SRAM, "softmax improvements".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np

from .attention import causal_mask
from .contract.precision import computes_in_float32
from .contract.validate import (
    as_bool_mask,
    check_positive_int,
    check_qkv_arrays,
    check_window,
    common_float_dtype,
)

__all__ = [
    "OnlineState",
    "identity_state",
    "block_state",
    "merge",
    "finalize",
    "split_keys",
    "blockwise_attention",
    "MemoryTracker",
    "flash_attention",
    "TwoLevelMemory",
    "IOReport",
    "flash_block_sizes",
    "flash_io_count",
    "flash_io_formula",
    "naive_io_count",
    "OpCounter",
    "sliding_window_attention",
    "banded_block_layout",
    "block_sparse_mask",
    "block_sparse_attention",
]


# ---------------------------------------------------------------------------
# The (m, l, o) state and its merge
# ---------------------------------------------------------------------------

class OnlineState(NamedTuple):
    """Softmax statistics of one block of keys, per query.

    Attributes
    ----------
    m : np.ndarray, (..., Lq)
        Largest allowed score (``-inf`` if the block has none for this query).
    l : np.ndarray, (..., Lq)
        ``sum_j exp(s_j - m)`` over the allowed keys.
    o : np.ndarray, (..., Lq, Ev)
        ``sum_j exp(s_j - m) v_j`` (not yet divided by ``l``).
    """

    m: np.ndarray
    l: np.ndarray
    o: np.ndarray


def identity_state(lead: tuple, lq: int, ev: int, dtype=np.float64) -> OnlineState:
    """``(-inf, 0, 0)``: the state of an empty block, the identity of :func:`merge`."""
    lq = check_positive_int(lq, "lq", minimum=0)
    ev = check_positive_int(ev, "ev")
    return OnlineState(np.full((*lead, lq), -np.inf, dtype=dtype),
                       np.zeros((*lead, lq), dtype=dtype),
                       np.zeros((*lead, lq, ev), dtype=dtype))


def _validate_qkv(q, k, v):
    q, k, v = check_qkv_arrays(q, k, v)
    dtype = common_float_dtype(q, k, v)
    return tuple(a.astype(dtype, copy=False) for a in (q, k, v))


def _resolve_scale(scale, e: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(e)
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.number)):
        raise TypeError(f"scale: expected a real number or None, got {type(scale).__name__}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale: expected a positive finite number, got {scale!r}")
    return float(scale)


def _state_from_scores(s: np.ndarray, v: np.ndarray, tracker=None) -> OnlineState:
    """(m, l, o) of scores ``s`` (..., Lq, b) with ``-inf`` for masked keys."""
    m = np.max(s, axis=-1, initial=-np.inf)                                # (..., Lq)
    m_safe = np.where(np.isneginf(m), 0, m)                                # empty rows: exp(-inf) = 0
    p = np.exp(s - m_safe[..., None])                                      # (..., Lq, b), in [0, 1]
    o = p @ v                                                              # (..., Lq, Ev)
    if tracker is not None:
        tracker.observe("scores", s)
        tracker.observe("exp(scores - m)", p)
        tracker.observe("P V", o)
    return OnlineState(m, p.sum(axis=-1), o)


@computes_in_float32
def block_state(q, k, v, *, scale: float | None = None, allowed=None) -> OnlineState:
    """The (m, l, o) state of one block of keys for every query.

    Parameters
    ----------
    q : array_like, (..., Lq, E)
    k : array_like, (..., b, E)
    v : array_like, (..., b, Ev)
    scale : float, optional
        Default ``1/sqrt(E)``.
    allowed : array_like of bool, optional
        Broadcastable to ``(..., Lq, b)``; ``True`` = may attend.

    Returns
    -------
    OnlineState

    References
    ----------
    Milakov & Gimelshein 2018, §3; Dao et al. 2022, Algorithm 1, line 10.
    """
    q, k, v = _validate_qkv(q, k, v)
    scale = _resolve_scale(scale, q.shape[-1])
    s = scale * (q @ np.swapaxes(k, -1, -2))                               # (..., Lq, b)
    if allowed is not None:
        s = np.where(as_bool_mask(allowed, "allowed", s.shape), s, -np.inf)
    return _state_from_scores(s, v)


def _check_state(state, name: str) -> OnlineState:
    if not isinstance(state, OnlineState):
        raise TypeError(f"{name}: expected an OnlineState, got {type(state).__name__}")
    return state


@computes_in_float32
def merge(a: OnlineState, b: OnlineState) -> OnlineState:
    """The state of the union of two disjoint blocks of keys.

    Parameters
    ----------
    a, b : OnlineState
        Same shapes.

    Returns
    -------
    OnlineState

    References
    ----------
    Milakov & Gimelshein 2018, §3 (the merge of (m, d) pairs); Dao et al.
    2022, Algorithm 1, lines 11-12.
    """
    a, b = _check_state(a, "a"), _check_state(b, "b")
    if a.o.shape != b.o.shape or a.m.shape != b.m.shape:
        raise ValueError(f"b: expected a state of the same shape as a ({a.o.shape}), "
                         f"got {b.o.shape}")
    m = np.maximum(a.m, b.m)                                               # (..., Lq)
    empty = np.isneginf(m)                                                 # both blocks empty
    m_safe = np.where(empty, 0, m)
    alpha = np.where(empty, 0, np.exp(a.m - m_safe))                       # e^{m_a - m} in [0, 1]
    beta = np.where(empty, 0, np.exp(b.m - m_safe))
    return OnlineState(m, alpha * a.l + beta * b.l,
                       alpha[..., None] * a.o + beta[..., None] * b.o)


@computes_in_float32
def finalize(state: OnlineState) -> np.ndarray:
    """``o / l``: the attention output (zeros for queries that saw no key)."""
    state = _check_state(state, "state")
    den = state.l[..., None]
    return np.divide(state.o, den, out=np.zeros_like(state.o), where=den > 0)


def split_keys(n_keys: int, boundaries: Sequence[int]) -> list[slice]:
    """Slices of the key axis cut at the sorted, distinct ``boundaries`` (each in ``1..n-1``)."""
    n_keys = check_positive_int(n_keys, "n_keys")
    cuts = [int(b) for b in boundaries]
    if cuts != sorted(set(cuts)) or any(not 0 < b < n_keys for b in cuts):
        raise ValueError(f"boundaries: expected sorted distinct cut points in [1, {n_keys - 1}], "
                         f"got {list(boundaries)}")
    edges = [0, *cuts, n_keys]
    return [slice(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]


def _allowed(mask, causal, lead, lq, lk):
    allowed = None
    if mask is not None:
        allowed = as_bool_mask(mask, "mask", (*lead, lq, lk))
    if causal:
        align = "top-left" if causal is True else causal
        if align not in ("top-left", "bottom-right"):
            raise ValueError(f"causal: expected False, True, 'top-left' or 'bottom-right', "
                             f"got {causal!r}")
        tri = causal_mask(lq, lk, align=align)
        allowed = tri if allowed is None else (allowed & tri)
    return allowed


def blockwise_attention(q, k, v, *, boundaries: Sequence[int] = (), order=None, mask=None,
                        causal=False, scale: float | None = None) -> np.ndarray:
    """Attention with the keys split at ``boundaries`` and the block states merged in ``order``.

    Parameters
    ----------
    q, k, v : array_like
        As in :func:`transformer_theory.impl.attention.attention`.
    boundaries : sequence of int
        Cut points of the key axis.
    order : sequence of int, optional
        A permutation of the blocks: they are merged left to right in this order.
    mask, causal, scale
        As in ``attention``.

    Returns
    -------
    np.ndarray, (..., Lq, Ev)
    """
    q, k, v = _validate_qkv(q, k, v)
    lead, lq, lk = q.shape[:-2], q.shape[-2], k.shape[-2]
    blocks = split_keys(lk, boundaries)
    order = list(range(len(blocks))) if order is None else [int(i) for i in order]
    if sorted(order) != list(range(len(blocks))):
        raise ValueError(f"order: expected a permutation of range({len(blocks)}), got {order}")
    allowed = _allowed(mask, causal, lead, lq, lk)
    scale = _resolve_scale(scale, q.shape[-1])
    state = identity_state(lead, lq, v.shape[-1], q.dtype)
    for i in order:                         # one merge per block, in the chosen order
        sl = blocks[i]
        sub = None if allowed is None else np.broadcast_to(allowed, (*lead, lq, lk))[..., sl]
        state = merge(state, block_state(q, k[..., sl, :], v[..., sl, :], scale=scale,
                                         allowed=sub))
    return finalize(state)


# ---------------------------------------------------------------------------
# FlashAttention tiling with a memory tracker
# ---------------------------------------------------------------------------

@dataclass
class MemoryTracker:
    """Records the largest temporary array an algorithm creates (in elements)."""

    peak: int = 0
    peak_name: str = ""
    sizes: dict = field(default_factory=dict)

    def observe(self, name: str, array) -> None:
        size = int(np.asarray(array).size)
        self.sizes[name] = max(self.sizes.get(name, 0), size)
        if size > self.peak:
            self.peak, self.peak_name = size, name


def flash_attention(q, k, v, *, block_q: int = 16, block_k: int = 16, mask=None, causal=False,
                    scale: float | None = None,
                    tracker: MemoryTracker | None = None) -> np.ndarray:
    """Exact attention tiled into ``block_q x block_k`` score blocks (FlashAttention).

    For each block of queries the keys are visited block by block and merged
    into a running (m, l, o) state, so no temporary is larger than
    ``block_q x max(block_k, Ev)`` per batch/head element.

    Parameters
    ----------
    q, k, v, mask, causal, scale
        As in :func:`transformer_theory.impl.attention.attention`.
    block_q, block_k : int
        Tile sizes.
    tracker : MemoryTracker, optional
        Receives every temporary (scores, exponentials, ``P V``, running state).

    Returns
    -------
    np.ndarray, (..., Lq, Ev)

    References
    ----------
    Dao et al. 2022, NeurIPS, §3.1, Algorithm 1 (here the query blocks are the
    outer loop, as in FlashAttention-2; the merge is the same).
    """
    q, k, v = _validate_qkv(q, k, v)
    block_q = check_positive_int(block_q, "block_q")
    block_k = check_positive_int(block_k, "block_k")
    lead, lq, lk, ev = q.shape[:-2], q.shape[-2], k.shape[-2], v.shape[-1]
    scale = _resolve_scale(scale, q.shape[-1])
    allowed = _allowed(mask, causal, lead, lq, lk)
    if allowed is not None:
        allowed = np.broadcast_to(allowed, (*lead, lq, lk))
    out = np.zeros((*lead, lq, ev), dtype=q.dtype)                         # the output, not a temporary
    for i0 in range(0, lq, block_q):                                       # query tiles
        qi = q[..., i0:i0 + block_q, :]                                    # view (..., Bq, E)
        state = identity_state(lead, qi.shape[-2], ev, q.dtype)
        for j0 in range(0, lk, block_k):                                   # key tiles
            s = scale * (qi @ np.swapaxes(k[..., j0:j0 + block_k, :], -1, -2))  # (..., Bq, Bk)
            if allowed is not None:
                s = np.where(allowed[..., i0:i0 + block_q, j0:j0 + block_k], s, -np.inf)
            state = merge(state, _state_from_scores(s, v[..., j0:j0 + block_k, :], tracker))
            if tracker is not None:
                tracker.observe("running o", state.o)
        out[..., i0:i0 + block_q, :] = finalize(state)
    return out


# ---------------------------------------------------------------------------
# IO complexity on a simulated two-level memory
# ---------------------------------------------------------------------------

@dataclass
class TwoLevelMemory:
    """Slow memory (HBM) of unbounded size and fast memory (SRAM) of ``capacity`` words.

    Every word read from or written to slow memory is counted; the fast
    memory's occupancy (sum of live buffers) is tracked and its peak recorded.
    """

    capacity: int
    reads: int = 0
    writes: int = 0
    peak: int = 0
    live: dict = field(default_factory=dict)

    def load(self, name: str, words: int) -> None:
        """Read ``words`` from slow memory into the fast buffer ``name``."""
        self.reads += words
        self.hold(name, words)

    def hold(self, name: str, words: int) -> None:
        """A buffer computed in fast memory."""
        self.live[name] = words
        self.peak = max(self.peak, sum(self.live.values()))

    def store(self, name: str) -> None:
        """Write the fast buffer ``name`` back to slow memory."""
        self.writes += self.live[name]

    def write_slow(self, words: int) -> None:
        """Initialise ``words`` of slow memory (no fast buffer involved)."""
        self.writes += words

    def free(self, *names: str) -> None:
        for name in names:
            self.live.pop(name, None)

    @property
    def total(self) -> int:
        return self.reads + self.writes


@dataclass(frozen=True)
class IOReport:
    """Counted slow-memory traffic of one run."""

    n: int
    d: int
    capacity: int
    reads: int
    writes: int
    peak_fast: int
    block_r: int
    block_c: int

    @property
    def total(self) -> int:
        return self.reads + self.writes


def _check_io_sizes(n, d, m_words):
    n = check_positive_int(n, "n")
    d = check_positive_int(d, "d", minimum=2)
    m_words = check_positive_int(m_words, "m_words")
    if m_words < 16 * d:
        raise ValueError(f"m_words: expected at least 16 d = {16 * d} words of fast memory, "
                         f"got {m_words}")
    return n, d, m_words


def flash_block_sizes(d: int, m_words: int) -> tuple[int, int]:
    """``(B_r, B_c)``: ``B_c = floor(M / 4d)`` and the largest ``B_r <= min(B_c, d)`` whose tiles fit.

    The inner loop holds ``K_j, V_j`` (``2 B_c d``), ``Q_i, O_i, P_ij V_j``
    (``3 B_r d``), ``l_i, m_i`` and four row statistics (``6 B_r``) and ``S_ij``
    (``B_r B_c``): ``B_r (3d + 6 + B_c) <= M - 2 B_c d``.
    """
    d = check_positive_int(d, "d", minimum=2)
    m_words = check_positive_int(m_words, "m_words")
    block_c = m_words // (4 * d)
    room = m_words - 2 * block_c * d
    block_r = min(block_c, d, room // (3 * d + 6 + block_c)) if room > 0 else 0
    if block_c < 1 or block_r < 1:
        raise ValueError(f"m_words: {m_words} words cannot hold one tile for d = {d}")
    return block_r, block_c


def flash_io_count(n: int, d: int, m_words: int, *, q=None, k=None, v=None,
                   block_sizes: tuple[int, int] | None = None):
    """Run FlashAttention's Algorithm 1 on a :class:`TwoLevelMemory` and count the traffic.

    Parameters
    ----------
    n, d : int
        Sequence length ``N`` and head dimension ``d >= 2``.
    m_words : int
        Fast-memory size ``M >= 16 d``.
    q, k, v : array_like, (N, d), optional
        If given, the numbers are computed too and the output returned.
    block_sizes : (int, int), optional
        ``(B_r, B_c)``; default :func:`flash_block_sizes`. Other sizes are run
        and counted as given, whether or not their tiles fit in ``M`` words
        (the report's ``peak_fast`` says).

    Returns
    -------
    IOReport, or (IOReport, np.ndarray of shape (N, d)) when ``q, k, v`` are given.

    References
    ----------
    Dao et al. 2022, NeurIPS, §3.1, Algorithm 1 and §3.2, Theorem 2.
    """
    n, d, m_words = _check_io_sizes(n, d, m_words)
    if block_sizes is None:
        block_r, block_c = flash_block_sizes(d, m_words)
    else:
        if not isinstance(block_sizes, (tuple, list)) or len(block_sizes) != 2:
            raise TypeError(f"block_sizes: expected a pair (B_r, B_c) or None, got {block_sizes!r}")
        block_r = check_positive_int(block_sizes[0], "block_sizes[0] (B_r)")
        block_c = check_positive_int(block_sizes[1], "block_sizes[1] (B_c)")
    compute = q is not None
    if compute:
        q, k, v = _validate_qkv(q, k, v)
        if q.shape != (n, d) or k.shape != (n, d) or v.shape != (n, d):
            raise ValueError(f"q, k, v: expected shape (n, d) = {(n, d)}, got {q.shape}, "
                             f"{k.shape}, {v.shape}")
        o = np.zeros((n, d), dtype=q.dtype)                                 # in HBM
        ell = np.zeros(n, dtype=q.dtype)
        mx = np.full(n, -np.inf, dtype=q.dtype)
    mem = TwoLevelMemory(m_words)
    mem.write_slow(n * d + 2 * n)                              # line 2: O = 0, l = 0, m = -inf
    for j0 in range(0, n, block_c):                            # line 5: outer loop over K, V tiles
        bc = min(block_c, n - j0)
        mem.load("K_j", bc * d)                                # line 6
        mem.load("V_j", bc * d)
        for i0 in range(0, n, block_r):                        # line 7: inner loop over Q tiles
            br = min(block_r, n - i0)
            mem.load("Q_i", br * d)                            # line 8
            mem.load("O_i", br * d)
            mem.load("l_i", br)
            mem.load("m_i", br)
            mem.hold("S_ij", br * bc)                          # line 9 (P_ij overwrites it)
            mem.hold("row stats", 4 * br)                      # lines 10-11: m~, l~, m_new, l_new
            mem.hold("P_ij V_j", br * d)                       # line 12
            if compute:
                s = (q[i0:i0 + br] @ k[j0:j0 + bc].T) / math.sqrt(d)        # (br, bc)
                blk = _state_from_scores(s, v[j0:j0 + bc])
                new = merge(OnlineState(mx[i0:i0 + br], ell[i0:i0 + br], o[i0:i0 + br]), blk)
                mx[i0:i0 + br], ell[i0:i0 + br], o[i0:i0 + br] = new.m, new.l, new.o
            mem.store("O_i")                                   # line 12
            mem.store("l_i")                                   # line 13
            mem.store("m_i")
            mem.free("Q_i", "O_i", "l_i", "m_i", "S_ij", "row stats", "P_ij V_j")
        mem.free("K_j", "V_j")
    report = IOReport(n, d, m_words, mem.reads, mem.writes, mem.peak, block_r, block_c)
    if compute:
        return report, np.divide(o, ell[:, None], out=np.zeros_like(o), where=ell[:, None] > 0)
    return report


def flash_io_formula(n: int, d: int, m_words: int) -> int:
    """Closed form of :func:`flash_io_count`: ``3 N d + 2 N + ceil(N / B_c) N (3 d + 4)``."""
    n, d, m_words = _check_io_sizes(n, d, m_words)
    _, block_c = flash_block_sizes(d, m_words)
    return 3 * n * d + 2 * n + (-(-n // block_c)) * n * (3 * d + 4)


def naive_io_count(n: int, d: int) -> IOReport:
    """Standard attention (Dao et al. 2022, Algorithm 0) counted on the same memory model.

    1. read ``Q, K``, write ``S = QK^T``; 2. read ``S``, write ``P = softmax(S)``;
    3. read ``P, V``, write ``O = PV``. The ``N x N`` matrices live in slow memory,
    so the count is ``4 N d + 4 N^2`` whatever the fast memory.
    """
    n = check_positive_int(n, "n")
    d = check_positive_int(d, "d")
    mem = TwoLevelMemory(capacity=0)
    for step in ((("Q", n * d), ("K", n * d)), (("S", n * n),), (("P", n * n), ("V", n * d))):
        for name, words in step:
            mem.reads += words
    mem.writes += n * n + n * n + n * d                        # S, P, O
    return IOReport(n, d, 0, mem.reads, mem.writes, 0, 0, 0)


# ---------------------------------------------------------------------------
# Structured sparse attention
# ---------------------------------------------------------------------------

@dataclass
class OpCounter:
    """Counts multiply-adds: ``E`` per score and ``Ev`` per weighted value, per score computed."""

    multiply_adds: int = 0
    scores: int = 0

    def add(self, n_scores: int, e: int, ev: int) -> None:
        self.scores += int(n_scores)
        self.multiply_adds += int(n_scores) * (e + ev)


def _check_square(q, k):
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(f"k: structured sparse self-attention needs Lk = Lq = {q.shape[-2]}, "
                         f"got shape {k.shape}")


def sliding_window_attention(q, k, v, window, *, scale: float | None = None,
                             counter: OpCounter | None = None) -> np.ndarray:
    """Local self-attention computing only the scores of the window ``i - left <= j <= i + right``.

    Keys are gathered into ``(..., L, W)`` windows, ``W = left + right + 1``
    (an unbounded side counts ``L - 1``), so ``L W`` scores are computed
    instead of ``L^2``. The window is the contract's (``attention(...,
    window=(left, right))``, top-left aligned): ``(w - 1, 0)`` is a causal
    window of ``w`` positions, ``(w - 1, w - 1)`` Longformer's ``|i - j| < w``.

    Parameters
    ----------
    q, k : array_like, (..., L, E)
    v : array_like, (..., L, Ev)
    window : (int or None, int or None)
        ``(left, right)``, inclusive; an int is refused.
    scale : float, optional
    counter : OpCounter, optional

    Returns
    -------
    np.ndarray, (..., L, Ev)
        Equal to dense attention with ``window=window`` (or the mask
        :func:`~transformer_theory.impl.attention.window_mask`).

    References
    ----------
    Beltagy, Peters & Cohan 2020, Longformer, §3.1; Child et al. 2019, §4;
    seed 001 (shared/seeds/001_227b4b6d6a829452.txt), "structured sparse attention".
    """
    q, k, v = _validate_qkv(q, k, v)
    _check_square(q, k)
    left, right = check_window(window) if window is not None else (None, None)
    scale = _resolve_scale(scale, q.shape[-1])
    length = q.shape[-2]
    left = length - 1 if left is None else min(left, length - 1)
    right = length - 1 if right is None else min(right, length - 1)
    offsets = np.arange(-left, right + 1)                                  # (W,)
    idx = np.arange(length)[:, None] + offsets[None, :]                    # (L, W) key per slot
    valid = (idx >= 0) & (idx < length)                                    # (L, W)
    idx = np.clip(idx, 0, length - 1)
    kw = k[..., idx, :]                                                    # (..., L, W, E)
    vw = v[..., idx, :]                                                    # (..., L, W, Ev)
    s = scale * np.einsum("...ie,...iwe->...iw", q, kw)                    # (..., L, W)
    if counter is not None:
        counter.add(np.prod(q.shape[:-2], dtype=int) * s.shape[-2] * s.shape[-1],
                    q.shape[-1], v.shape[-1])
    s = np.where(valid, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)                                  # (..., L, 1), finite
    p = np.exp(s - m)                                                      # (..., L, W)
    return np.einsum("...iw,...iwe->...ie", p, vw) / p.sum(axis=-1, keepdims=True)


def banded_block_layout(n_blocks: int, bandwidth: int, *, causal: bool = True,
                        n_global: int = 0) -> np.ndarray:
    """Block pattern ``(n_blocks, n_blocks)``: each query block sees the key blocks within
    ``bandwidth`` (only earlier ones if causal) and the first ``n_global`` blocks."""
    n_blocks = check_positive_int(n_blocks, "n_blocks")
    bandwidth = check_positive_int(bandwidth, "bandwidth", minimum=0)
    n_global = check_positive_int(n_global, "n_global", minimum=0)
    i = np.arange(n_blocks)[:, None]
    j = np.arange(n_blocks)[None, :]
    layout = np.abs(i - j) <= bandwidth
    if causal:
        layout &= j <= i
    layout |= (j < n_global) & ((j <= i) if causal else True)
    return layout


def _check_layout(layout, n_blocks: int) -> np.ndarray:
    lay = np.asarray(layout)
    if lay.dtype != np.bool_:
        raise TypeError(f"layout: expected a boolean block pattern, got dtype {lay.dtype}")
    if lay.shape != (n_blocks, n_blocks):
        raise ValueError(f"layout: expected shape (n_blocks, n_blocks) = {(n_blocks, n_blocks)}, "
                         f"got shape {lay.shape}")
    return lay


def block_sparse_mask(length: int, block: int, layout) -> np.ndarray:
    """The dense ``(L, L)`` mask of a block pattern (blocks of ``block`` positions, the last may be short)."""
    length = check_positive_int(length, "length")
    block = check_positive_int(block, "block")
    n_blocks = -(-length // block)
    lay = _check_layout(layout, n_blocks)
    b = np.arange(length) // block
    return lay[b[:, None], b[None, :]]                                      # (L, L)


def block_sparse_attention(q, k, v, block: int, layout, *, scale: float | None = None,
                           counter: OpCounter | None = None) -> np.ndarray:
    """Attention over the allowed ``block x block`` tiles only, merged with the online softmax.

    Parameters
    ----------
    q, k : array_like, (..., L, E)
    v : array_like, (..., L, Ev)
    block : int
    layout : array_like of bool, (n_blocks, n_blocks)
        ``n_blocks = ceil(L / block)``; ``True`` where a query block may see a key block.
    scale : float, optional
    counter : OpCounter, optional

    Returns
    -------
    np.ndarray, (..., L, Ev)
        Equal to dense attention with :func:`block_sparse_mask`.

    References
    ----------
    Child et al. 2019, Generating Long Sequences with Sparse Transformers, §4;
    Zaheer et al. 2020, Big Bird (block-sparse band plus global blocks).
    """
    q, k, v = _validate_qkv(q, k, v)
    _check_square(q, k)
    block = check_positive_int(block, "block")
    length = q.shape[-2]
    n_blocks = -(-length // block)
    lay = _check_layout(layout, n_blocks)
    scale = _resolve_scale(scale, q.shape[-1])
    lead, ev = q.shape[:-2], v.shape[-1]
    out = np.zeros((*lead, length, ev), dtype=q.dtype)
    for bi in range(n_blocks):                              # query blocks
        rows = slice(bi * block, min((bi + 1) * block, length))
        qi = q[..., rows, :]
        state = identity_state(lead, qi.shape[-2], ev, q.dtype)
        for bj in np.flatnonzero(lay[bi]):                  # only the allowed key blocks
            cols = slice(bj * block, min((bj + 1) * block, length))
            if counter is not None:
                counter.add(np.prod(lead, dtype=int) * qi.shape[-2] * (cols.stop - cols.start),
                            q.shape[-1], ev)
            state = merge(state, block_state(qi, k[..., cols, :], v[..., cols, :], scale=scale))
        out[..., rows, :] = finalize(state)
    return out
