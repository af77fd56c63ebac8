"""Accelerated attention: fused, tiled scaled dot-product attention in numba.

Mirrors :mod:`transformer_theory.impl.sdpa` function by function (softmax,
scaled dot-product attention and its weights), with
the same signatures, the same validation (the validators of
:mod:`transformer_theory.impl.contract` run first, in the reference's order,
so bad input raises exactly the reference's error; the keys and values alone
are checked by the kernel's guard as it reads them, see :func:`run_attention`,
and on a trip by the same validators) and the same semantics: boolean masks
(True = may attend), ``causal=True`` (top-left) and ``causal="bottom-right"``,
an explicit ``scale``, an additive ``bias``, a logit ``softcap``, a sliding
``window`` and packed documents ``segment_ids`` (issue 17), fully masked rows
-> zeros, non-finite keys allowed only where no query may attend (they are
zeroed before an unguarded kernel, which multiplies whole key blocks), float32
and float64 (outputs keep the input dtype).

The kernel (FlashAttention)
---------------------------
Scores are never materialised as an ``Lq x Lk`` matrix. Queries are cut into
blocks of ``block_q`` rows; every (batch*head, query block) pair is one task of
a parallel loop. A task walks over key blocks of ``block_k`` columns and keeps,
per query row ``i``, the running maximum ``m_i`` of its logits, the running sum
``l_i`` of ``exp(logit - m_i)`` and the unnormalised output ``acc_i``. A new key
block with scores ``S`` (one ``np.dot`` on contiguous blocks) updates them by
the online-softmax recurrence

.. math::  m_i' = \\max(m_i, \\max_j S_{ij}), \\quad
           P_{ij} = e^{S_{ij} - m_i'}, \\quad
           l_i' = e^{m_i - m_i'} l_i + \\textstyle\\sum_j P_{ij}, \\quad
           acc_i' = e^{m_i - m_i'} acc_i + (P V)_i,

and the output row is ``acc_i / l_i`` (zeros when no key was visible). The
kernel lets ``m_i`` lag: it is a reference that moves only when a block's
logits pass it by more than ``STALE_SLACK`` (8 nats; :mod:`.flash`). Until
then ``P_ij <= e^8``, ``acc_i`` is not rescaled, and one pass over the row
computes the exps, their sum and the maximum; any reference gives the same
``acc_i / l_i``. Under
``causal`` the key blocks past the diagonal are skipped, so causal attention
costs about half. A sliding window ``(left, right)`` is applied the same way,
never as an ``Lq x Lk`` mask: a query block walks only the keys from its first
row's ``r + offset - left`` to its last row's ``r + offset + right``, so a
window of ``w`` keys costs ``O(L w)`` instead of ``O(L^2)`` (the query blocks
are shrunk to at most ``w / 2`` rows). A soft cap ``c`` turns the scaled
scores into ``c tanh(s / c)`` before the bias and the masks, as the
reference. Packed documents are compared by id per score (the ids of the
query row and of the key), never as an ``L x L`` same-document mask. Memory
per task is ``O(block_q * (block_k + Ev))``.

Grouped-query attention indexes the kv head ``n // (H / G)`` of query head
``n`` inside the kernel: keys and values are never copied per query head.
:mod:`.heads` (multi-head, grouped-query, cross-attention) and
:mod:`.kv_cache` (decoding) call the kernel through :func:`run_attention`,
with :func:`as_slabs` and ``guard=True`` (the kernel checks its inputs as it reads
them; see :func:`run_attention`).

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.2.1-3.2.3.
Dao, Fu, Ermon, Rudra & Ré 2022, FlashAttention: Fast and Memory-Efficient
Exact Attention with IO-Awareness, §3.1 (Algorithm 1: tiling and the online
softmax); Dao 2023, FlashAttention-2, §3.1 (parallelism over the query blocks,
the bottom-right causal alignment).
Milakov & Gimelshein 2018, Online normalizer calculation for softmax, §3 (the
running max and sum recurrence). Modal 2025, We reverse-engineered Flash
Attention 4 (rescaling only "when the maximum has changed enough to impact
numerical stability").
Ainslie et al. 2023, GQA, §2 (the kv head of a query head).
Beltagy, Peters & Cohan 2020, Longformer, §3.1 (sliding window attention);
Gemma Team 2024, Gemma 2 (logit soft-capping).
Krell et al. 2021, Efficient Sequence Packing without Cross-contamination
(packed documents attend only within themselves).
Seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt): attention as a soft
dictionary look-up.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
from numba import njit

from .. import sdpa as reference
from ..contract.validate import (
    as_bool_mask,
    as_float_array,
    causal_alignment,
    check_bias,
    check_finite_where_attended,
    check_segment_ids,
    check_qkv,
    check_softcap,
    check_window,
    common_float_dtype,
    normalize_axis,
    resolve_scale,
)
from ._docs import same_contract
from ._native import native_threads
from ._numeric import (
    FEW_ROWS,
    JIT,
    as_kernel_array,
    fast_exp_nonpositive,
    fmax,
    num_threads,
    prefer_wide_vectors,
    run_tasks,
    single_threaded_blas,
    typed,
    values_by_blas,
    worth_parallel,
)
from ._scan import row_scan
from .flash import (
    GUARD_INPUTS,
    GUARD_NONE,
    GUARD_OUTPUTS,
    flash_parallel,
    flash_tasks,
    merge_splits,
    online_softmax_row,
)

__all__ = [
    "softmax",
    "attention",
    "attention_weights",
    "BLOCK_Q",
    "BLOCK_K",
    "BLOCK_K_FEW_ROWS",
    "as_slabs",
    "scores_may_overflow",
    "run_attention",
    "segment_slabs",
    "online_softmax_row",
]

#: Query rows per task of the attention kernel.
BLOCK_Q = 384
#: Key columns per step of the online softmax (the score block is BLOCK_Q x BLOCK_K).
#: 384 x 384 against the earlier 256 x 512, B*H = 8, L = 4096, d = 64, 2 cores,
#: interleaved with torch SDPA, medians of 9-13 rounds in four runs: 1-3% faster
#: in full attention in both dtypes, equal within the noise when causal (a
#: wider query block reads each key block for more rows; the score block stays
#: 576 KiB in float32, inside a core's 1 MiB L2).
BLOCK_K = 384
#: Key columns per step when a query block has at most ``FEW_ROWS`` rows
#: (decode): the scores are not a BLAS product there, so a wider block only
#: saves per-block work (calls, guard scans, the accumulation). Against 384 and 512 keys,
#: float32 and float64, B*H in {1, 8, 32}, Lk in {4096, 32768}, 9 interleaved
#: rounds: 1024 was the fastest or within the noise of it in every case.
BLOCK_K_FEW_ROWS = 1024
#: Smallest query block used when blocks are shrunk to give every thread work.
_MIN_BLOCK_Q = 32
#: The largest finite value of each kernel dtype (``np.finfo`` costs a call per use).
_LARGEST = {np.dtype(t): float(np.finfo(t).max) for t in (np.float32, np.float64)}
#: Fewest key blocks in one part when a query block's keys are split over
#: tasks (:func:`_key_splits`).
SPLIT_KEY_BLOCKS = 4
#: Tasks per thread a parallel decode call (query blocks of at most
#: ``FEW_ROWS`` rows) is cut into, by splitting keys, as far as its key blocks
#: allow. A helper thread starts tens of microseconds after the call (it has
#: to be woken: 26 to 75 us measured on the 2-core machine), as long as a
#: decode task; with one task per head it then runs a whole head after the
#: calling thread is done, with several it takes what is left. Measured
#: there (one query, 4096 keys, blocks of 50 calls under either rule in
#: ABBA order, 16 rounds, medians of the ratios): 2 heads 0.85 (float32)
#: and 0.93 (float64) of the time of one task per head, 4 heads 0.97 to
#: 1.02; with 300 us of other work between the steps, 0.95 to 1.00 of step
#: and gap together. (Alternating the rules call by call showed 1.00, but
#: that comparison is unfair for decode: each call leaves K and V in other
#: caches for the next; see :data:`MIN_PARALLEL_BYTES_FEW_ROWS`.)
DECODE_TASKS_PER_THREAD = 4
#: Least bytes of keys and values (one read per query row, ``work / 2``
#: elements) that a decode call (query blocks of at most ``FEW_ROWS`` rows)
#: reads for it to be split over threads *by the helper pool* (a native
#: launch, :mod:`._native`, needs only its own least work), on top of
#: :data:`._numeric.MIN_PARALLEL_WORK`: 3 M operations in float32, and no
#: change (2 M) in float64. A decode step reads each key and value once, so a
#: second thread gains less per operation than in a product, and below this
#: size it did not pay for the helper's start (tens of microseconds).
#: Measured on the 2-core machine (d = 64, blocks of calls, ABBA order, 12
#: rounds, medians of per-round ratios). Inline against two threads, below 1
#: where inline is faster: float32 0.79-0.92 at 2.1 M operations (B*H x Lk =
#: 8 x 1024, 2 x 4096, 1 x 8192, 4 x 2048; 4.2 MB), 0.76-0.96 at 2.6 M,
#: 0.90-1.23 at 3.1 M, 1.00-1.46 from 4.2 M; float64 0.86-1.00 at 2.1 M
#: (8.4 MB), 0.98-1.30 from 2.6 M. A 3 M threshold in both dtypes took
#: 0.78-0.94 of the 2 M threshold's time in float32 at 2.1-2.6 M, but
#: 0.87-1.23 in float64, hence a threshold in bytes. This one against 2 M:
#: float32 0.80-0.96 at 2.1-2.6 M, 0.99 at 3.1 M; float64 (the same rule)
#: 0.96-1.03.
MIN_PARALLEL_BYTES_FEW_ROWS = 6_000_000

# ``attention_weights`` returns the Lq x Lk matrix itself, so there is nothing
# to fuse: the fast path uses the reference.
attention_weights = reference.attention_weights


# ---------------------------------------------------------------------------
# Softmax
# ---------------------------------------------------------------------------

@njit(**JIT)
def _softmax_tasks(x, first, stride, out):
    """Softmax of rows ``first, first + stride, ...`` of x (N, n) into out.

    Max-subtracted; ``-inf`` entries give 0 and an all ``-inf`` row gives zeros,
    as the reference's ``softmax_unchecked``.
    """
    prefer_wide_vectors()
    zero = typed(x, 0.0)
    neg_inf = typed(x, -np.inf)
    for i in range(first, x.shape[0], stride):
        row, p = x[i], out[i]
        m = neg_inf
        for j in range(row.shape[0]):
            m = fmax(m, row[j])
        if m == neg_inf:                                 # fully masked row
            m = zero
        for j in range(row.shape[0]):
            p[j] = fast_exp_nonpositive(row[j] - m)      # every entry in [0, 1]
        total = zero
        for j in range(row.shape[0]):
            total += p[j]
        if total == zero:
            total = typed(x, 1.0)
        for j in range(row.shape[0]):
            p[j] = p[j] / total


@same_contract(reference.softmax)
def softmax(x, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``, one row per task.

    Same contract as :func:`transformer_theory.impl.sdpa.softmax`: the
    row maximum is subtracted first, ``-inf`` entries get probability 0, an
    all ``-inf`` row gives zeros; ``NaN`` and ``+inf`` are refused.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.1; seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt).
    """
    arr = as_float_array(x, "x", ndim_min=1, finite=False)
    if np.any(np.isnan(arr)) or np.any(np.isposinf(arr)):
        raise ValueError("x: contains NaN or +inf values (only -inf, for masked logits, is allowed)")
    ax = normalize_axis(axis, arr.ndim)
    moved = np.moveaxis(arr, ax, -1)                               # (..., n)
    n = moved.shape[-1]
    rows = as_kernel_array(moved.reshape((math.prod(moved.shape[:-1]), n)), arr.dtype)  # (N, n)
    out = np.empty_like(rows)
    run_tasks(lambda first, stride: _softmax_tasks(rows, first, stride, out),
              rows.shape[0], 20.0 * rows.size)
    return np.moveaxis(out.reshape(moved.shape), -1, ax)


# ---------------------------------------------------------------------------
# Preparing the kernel arguments
# ---------------------------------------------------------------------------

def as_slabs(arr, lead: tuple, lq: int, lk: int, dtype):
    """A mask or bias broadcastable to ``lead + (lq, lk)`` as kernel slabs.

    Only the array's own leading dims are stored; broadcasting over the others
    is done by ``index``, so e.g. a causal-style (Lq, Lk) mask shared by all
    heads is stored once.

    Parameters
    ----------
    arr : array_like
        A validated mask (bool) or bias (float), broadcastable to
        ``lead + (lq, lk)``.
    lead : tuple of int
        The leading dims of the queries.
    lq, lk : int
    dtype : numpy dtype
        ``np.bool_`` for a mask, the compute dtype for a bias.

    Returns
    -------
    slabs : np.ndarray, (S, R, lk)
        C-contiguous; ``R`` is 1 (one row shared by every query) or ``lq``.
    index : np.ndarray of int64, (prod(lead),)
        The slab of each flattened leading position.

    References
    ----------
    Dao et al. 2022, FlashAttention, Algorithm 1 (masks read block by block).
    """
    a = np.asarray(arr)
    a = a.reshape((1,) * (len(lead) + 2 - a.ndim) + a.shape)       # rank of the target
    own = a.shape[:-2]                                             # broadcastable to lead
    rows = a.shape[-2]                                             # 1 or lq
    if a.shape[-1] != lk:                                          # keys broadcast: a copy
        a = np.broadcast_to(a, own + (rows, lk))
    slabs = as_kernel_array(a.reshape(-1, rows, lk), dtype)        # (S, R, lk)
    count = int(np.prod(own, dtype=np.int64))
    index = np.broadcast_to(np.arange(count, dtype=np.int64).reshape(own), lead).ravel()
    return slabs, as_kernel_array(index, np.int64)


def segment_slabs(segment_ids, lead: tuple, lq: int, lk: int):
    """Validated packed-document ids as kernel slabs, without any ``L x L`` mask.

    Validated by :func:`transformer_theory.impl.contract.validate.check_segment_ids`,
    as :func:`~transformer_theory.impl.contract.validate.segment_allowed` is, which
    returns the ``(..., L, L)`` same-document mask; the kernel instead compares
    the ids of a query and a key per score, so only
    the ids are stored (over the ids' own leading dims, broadcast by ``index``
    as in :func:`as_slabs`).

    Parameters
    ----------
    segment_ids : array_like of int or None
        Broadcastable to ``lead + (L,)``, ``L = lq = lk``.
    lead : tuple of int
    lq, lk : int

    Returns
    -------
    (slabs, index) or None
        ``slabs`` int64 (S, L), C-contiguous; ``index`` int64 (prod(lead),),
        the slab of each flattened leading position. None without segments.

    Raises
    ------
    TypeError, ValueError
        As :func:`~transformer_theory.impl.contract.validate.check_segment_ids`.

    References
    ----------
    Krell et al. 2021, Efficient Sequence Packing without Cross-contamination;
    Dao 2023, FlashAttention-2 (the varlen interface, ``cu_seqlens``).
    """
    seg = check_segment_ids(segment_ids, lead, lq, lk)
    if seg is None:
        return None
    target = tuple(lead) + (lq,)
    a = seg.reshape((1,) * (len(target) - seg.ndim) + seg.shape)             # rank of the target
    own = a.shape[:-1]                                                       # broadcastable to lead
    # same-width integer casts are bijective, so ids stay equal exactly when they were
    slabs = as_kernel_array(np.broadcast_to(a, own + (lq,)).reshape(-1, lq)
                            .astype(np.int64, copy=False), np.int64)         # (S, L)
    count = int(np.prod(own, dtype=np.int64))
    index = np.broadcast_to(np.arange(count, dtype=np.int64).reshape(own), lead).ravel()
    return slabs, as_kernel_array(index, np.int64)


def _block_sizes(n_slabs: int, lq: int, lk: int, width: int | None = None) -> tuple[int, int]:
    """Query/key block sizes: BLOCK_Q x BLOCK_K, shrunk for small or few problems.

    Query blocks of at most ``FEW_ROWS`` rows (decode) take
    :data:`BLOCK_K_FEW_ROWS` keys per step instead.

    ``width`` is the number of keys one query may see under a sliding window
    (None: unbounded). A query block of ``bq`` rows walks about ``bq + width``
    keys of which each row scores ``width``, so for a narrow window the query
    block is shrunk to at most ``width / 2`` (not below :data:`_MIN_BLOCK_Q`),
    which keeps the wasted share of each score block at most a third (measured
    on 2 cores, w = 128, E = 64: 64-row blocks about 15% faster than 128, 35%
    faster than 256).
    """
    block_q = max(1, min(BLOCK_Q, lq))
    if width is not None:
        while block_q > _MIN_BLOCK_Q and 2 * block_q > width:
            block_q //= 2                              # about bq + w keys per block, w useful
    threads = num_threads()
    while block_q > _MIN_BLOCK_Q and n_slabs * -(-lq // block_q) < 2 * threads:
        block_q //= 2                                  # more tasks than threads
    block_k = max(1, min(BLOCK_K if block_q > FEW_ROWS else BLOCK_K_FEW_ROWS, lk))
    return block_q, block_k


def _key_splits(n_tasks: int, span: int, block_k: int, few_rows: bool, work: float,
                minimum: float | None = None, native: bool = False) -> int:
    """Parts to split each query block's keys into (flash-decoding).

    A decode call (``few_rows``: query blocks of at most ``FEW_ROWS`` rows)
    that runs in parallel (:func:`._numeric.worth_parallel` of ``work``, the
    call's ``minimum``, see :func:`_parallel_minimum`, and ``native``, whether
    its threads start from compiled code, see :mod:`._native`) is cut into
    :data:`DECODE_TASKS_PER_THREAD` tasks per thread, in parts of at least one
    key block of the longest walk (``span`` keys). Otherwise:
    1 when the (slab, query block) tasks are at least as many as the
    threads, else two parts per thread per task, so that a thread that
    starts late leaves the others less to wait for, and never more than one
    part per :data:`SPLIT_KEY_BLOCKS` key blocks. The split changes the order
    in which a row's keys are summed, so a result split this way is
    reproducible for a given thread count (``NUMBA_NUM_THREADS``), as the
    split itself is, not across counts.
    """
    threads = num_threads()
    key_blocks = -(-span // block_k)
    if few_rows and threads > 1 and worth_parallel(work, minimum, native):
        return max(1, min(-(-DECODE_TASKS_PER_THREAD * threads // n_tasks), key_blocks))
    if n_tasks >= threads:
        return 1
    return max(1, min(-(-2 * threads // n_tasks), key_blocks // SPLIT_KEY_BLOCKS))


def _parallel_minimum(few_rows: bool, dtype: np.dtype) -> float | None:
    """The call's own least work to split over threads (:func:`._numeric.worth_parallel`).

    For a decode call (``few_rows``), the work of reading
    :data:`MIN_PARALLEL_BYTES_FEW_ROWS` bytes of keys and values in ``dtype``;
    None (the general threshold) otherwise.
    """
    if not few_rows:
        return None
    return 2.0 * MIN_PARALLEL_BYTES_FEW_ROWS / dtype.itemsize


def _key_spans(lq: int, lk: int, block_q: int, causal: bool, offset: int, left: int,
               right: int) -> list:
    """Keys walked by each query block: the ``[key_start, key_end)`` of the kernel, (n_blocks,).

    Mirrors the range computed by :func:`.flash.attend_query_block` (``left`` or
    ``right`` negative: unbounded side). Python integers, not arrays: a decode
    step has one query block, and numpy's per-call cost on such tiny arrays
    was a tenth of the step.
    """
    spans = []
    for row0 in range(0, lq, block_q):
        bq = min(block_q, lq - row0)
        start, end = 0, lk
        if causal:
            end = min(end, max(0, row0 + bq + offset))
        if right >= 0:
            end = min(end, max(0, row0 + bq + offset + right))
        if left >= 0:
            start = min(end, max(0, row0 + offset - left))
        spans.append(end - start)
    return spans


def _task_order(n_slabs: int, n_blocks: int, spans: list) -> np.ndarray:
    """The order in which the threads claim the (slab, query block) tasks.

    Threads claim tasks one at a time from a shared counter
    (:func:`._numeric.claim_next`), so the order decides the balance: when
    every query block walks the same number of keys (``spans``, from
    :func:`_key_spans`) the natural order; otherwise (causal, a window with
    one unbounded side, ...) the heaviest first, so that the light tasks
    left at the end fill the gaps (longest processing time first).
    """
    tasks = np.arange(n_slabs * n_blocks, dtype=np.int64)
    if n_blocks == 1 or all(span == spans[0] for span in spans):
        return tasks
    heaviest = np.argsort(-np.asarray(spans), kind="stable")           # (n_blocks,)
    return tasks.reshape(n_slabs, n_blocks)[:, heaviest].T.ravel()      # heaviest blocks first


def scores_may_overflow(q, k, scale: float, bias, dtype) -> bool:
    """Whether some logit ``scale q.k + bias`` could overflow ``dtype``.

    By Cauchy-Schwarz ``|q_i . k_j| <= |q_i| |k_j|``, and every partial sum of the
    dot product obeys the same bound, so below the threshold neither the block
    products nor the logits can overflow. Above it the reference is used, which
    raises its overflow error (or computes the result when the bound was loose).
    The squared norms are summed in the input dtype in one pass without copies
    (:func:`._scan.row_scan`); if they overflow, the bound is inf and the check
    errs on the safe side.

    Parameters
    ----------
    q : np.ndarray, (..., Lq, E)
    k : np.ndarray, (..., Lk, E)
    scale : float
    bias : np.ndarray or None
    dtype : numpy dtype
        The compute dtype.

    Returns
    -------
    bool

    References
    ----------
    Cauchy-Schwarz inequality; Dao et al. 2022, FlashAttention, §3.1 (the
    scores are never formed, so their range is bounded beforehand).
    """
    _, q_sq = row_scan(q)
    _, k_sq = row_scan(k)
    bound = scale * math.sqrt(q_sq) * math.sqrt(k_sq)
    if bias is not None and bias.size:
        with np.errstate(over="ignore", invalid="ignore"):
            bound += float(np.max(np.abs(bias)))
    return not bound < np.finfo(dtype).max / 8


def _document_bounds(ids: np.ndarray) -> np.ndarray:
    """Segment ids with, per position, the key range its document may occupy.

    Parameters
    ----------
    ids : np.ndarray of int64, (S, L)

    Returns
    -------
    np.ndarray of int64, (S, 3, L)
        Row 0: the ids. Rows 1 and 2: ``[lo, hi)``, the run of equal ids
        containing the position when every id of the slab forms one run
        (packed documents, ``cu_seqlens``), else ``[0, L)`` (ids scattered
        over the row: nothing can be skipped).
    """
    n_slabs, length = ids.shape
    out = np.empty((n_slabs, 3, length), dtype=np.int64)
    out[:, 0] = ids
    pos = np.arange(length, dtype=np.int64)
    starts = np.ones((n_slabs, length), dtype=bool)                 # (S, L) a run starts here
    starts[:, 1:] = ids[:, 1:] != ids[:, :-1]
    ends = np.ones((n_slabs, length), dtype=bool)                   # (S, L) a run ends here
    ends[:, :-1] = starts[:, 1:]
    out[:, 1] = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    out[:, 2] = np.minimum.accumulate(np.where(ends, pos + 1, length)[:, ::-1], axis=1)[:, ::-1]
    ordered = np.sort(ids, axis=1)
    n_ids = 1 + np.sum(ordered[:, 1:] != ordered[:, :-1], axis=1)  # (S,) distinct ids
    scattered = np.sum(starts, axis=1) != n_ids                      # (S,) an id in two runs
    out[scattered, 1] = 0
    out[scattered, 2] = length
    return out


def run_attention(q3, k3, v3, lk, group, scale, align, mask_slabs, bias_slabs, dtype, *,
                  softcap=None, window=None, segments=None, guard=False, visits=None):
    """Call the fused kernel on prepared, validated ``(N, L, .)`` arrays.

    Parameters
    ----------
    q3 : np.ndarray, (N, Lq, E)
    k3 : np.ndarray, (N / group, >= lk, E)
    v3 : np.ndarray, (N / group, >= lk, Ev)
        Kernel arrays (C-contiguous, ``dtype``); only the first ``lk`` keys
        are read (a KV cache passes its whole buffer).
    lk : int
        Number of keys attended.
    group : int
        Query slabs per kv slab: slab ``n`` reads kv slab ``n // group``.
    scale : float
    align : {None, "top-left", "bottom-right"}
        The causal alignment, None for no causal mask.
    mask_slabs, bias_slabs : tuple or None
        From :func:`as_slabs`.
    dtype : numpy dtype
    softcap : float or None
        Validated logit soft cap ``c`` (``c * tanh(s / c)`` after scaling,
        before the bias and the masks).
    window : (int or None, int or None) or None
        Validated sliding window ``(left, right)``, aligned as ``align``
        (offset ``lk - Lq`` for ``"bottom-right"``, else 0). Applied inside
        the kernel: key blocks outside a query block's window are not visited.
    segments : tuple or None
        Packed-document ids from :func:`segment_slabs` (``Lq = lk``): query
        ``i`` sees key ``j`` only if their ids are equal, compared per score
        inside the kernel.
    guard : bool
        Run on unscanned keys and values: the kernel scans each key block it
        walks while the block is in cache (:func:`._scan.block_scan`; its
        keys and values, or, for few queries, its products) and returns None
        if one is not finite or a Cauchy-Schwarz bound of its logits plus
        ``max|bias|`` reaches ``max / 8`` of ``dtype`` (the bound that
        :func:`scores_may_overflow` checks beforehand for the whole input).
        This spares the caller its own passes over ``K`` and ``V``, which for
        a decode step cost as much as the attention itself; on None the
        caller runs its exact checks, which raise the contract's errors.
    visits : list, optional
        If given, the number of key blocks each query block visited (summed
        over key splits) is appended, as an int64 array (N, number of query
        blocks) (the work counter of the tests).

    Returns
    -------
    np.ndarray, (N, Lq, Ev), or None
        None only when ``guard`` is set and tripped.

    Notes
    -----
    When the (slab, query block) tasks are fewer than the threads, or the
    call is a parallel decode step (:func:`_key_splits`), each query block's
    keys are split into parts, one task each, and the parts' unnormalised
    states are merged (:func:`.flash.merge_splits`), so that every core reads
    a share of the KV cache, and a helper thread that starts late still
    finds tasks left. Measured on this project's 2-core machine, splitting
    one head's keys gains nothing (one core already reads memory as fast as
    two: B*H = 1, Lk = 32768, float32: 479 us split against 457 us not);
    splitting two heads' keys into four parts each cuts the step by up to
    15% (see :data:`DECODE_TASKS_PER_THREAD`).

    References
    ----------
    Dao et al. 2022, FlashAttention, Algorithm 1; Dao 2023, FlashAttention-2,
    §3.1 (parallel over the query blocks); Dao et al. 2023, Flash-Decoding
    for long-context inference (parallel over the keys); Beltagy, Peters &
    Cohan 2020, Longformer, §3.1 (sliding window attention, ``O(L w)``).
    """
    n_slabs, lq, e = q3.shape
    ev = v3.shape[2]
    out = np.zeros((n_slabs, lq, ev), dtype=dtype)                  # (N, Lq, Ev)
    if out.size == 0:
        if visits is not None:
            visits.append(np.zeros((n_slabs, 0), dtype=np.int64))
        return out
    causal = align is not None
    offset = (lk - lq) if align == "bottom-right" else 0
    use_mask = mask_slabs is not None
    use_bias = bias_slabs is not None
    use_seg = segments is not None
    absent = np.zeros(n_slabs, dtype=np.int64)     # the slab index of an absent option (read only)
    mask, mask_index = mask_slabs if use_mask else (np.zeros((1, 1, 1), np.bool_), absent)
    bias, bias_index = bias_slabs if use_bias else (np.zeros((1, 1, 1), dtype), absent)
    if use_seg:
        ids, seg_index = segments
        seg = _document_bounds(ids)                                 # (S, 3, L)
    else:
        seg, seg_index = np.zeros((1, 3, 1), dtype=np.int64), absent
    left, right = (-1, -1) if window is None else (-1 if w is None else w for w in window)
    width = None if left < 0 or right < 0 else left + right + 1       # keys a query may see
    block_q, block_k = _block_sizes(n_slabs, lq, lk, width)
    n_blocks = -(-lq // block_q)
    spans = _key_spans(lq, lk, block_q, causal, offset, left, right)  # (n_blocks,)
    keys = lk * lq if window is None else sum(spans) * block_q          # scores computed
    work = 2.0 * n_slabs * keys * (e + ev)
    few_rows = block_q <= FEW_ROWS                                  # decode: scores in loops
    minimum = _parallel_minimum(few_rows, dtype)
    native = num_threads() > 1 and native_threads()                 # (no probe on one thread)
    n_splits = _key_splits(n_slabs * n_blocks, max(spans), block_k, few_rows, work, minimum,
                           native)
    if n_splits == 1:
        order = _task_order(n_slabs, n_blocks, spans)
    else:
        order = np.arange(n_slabs * n_blocks * n_splits, dtype=np.int64)
    scale = dtype.type(scale)
    use_softcap = softcap is not None
    cap = dtype.type(softcap if use_softcap else 1.0)
    mode = GUARD_NONE                                               # which scan is cheaper
    if guard:                                                       # S: bq bk, K and V: bk (E + Ev)
        mode = GUARD_OUTPUTS if block_q < e + ev else GUARD_INPUTS
    # max |bias| from its extremes: np.abs would form a copy (64 MiB for an L = 4096 float32
    # (L, L) bias; 16 -> 6 ms measured)
    bias_max = max(float(bias.max()), -float(bias.min())) if use_bias and guard else 0.0
    logit_limit = _LARGEST[dtype] / 8 - bias_max                     # as scores_may_overflow
    parts = out[None] if n_splits == 1 else np.zeros((n_splits,) + out.shape, dtype=dtype)
    part_m = np.empty((n_splits, n_slabs, lq), dtype=dtype)         # (S, N, Lq)
    part_l = np.empty((n_splits, n_slabs, lq), dtype=dtype)
    counts = np.zeros(len(order), dtype=np.int64)                   # key blocks per task
    counter = np.zeros(1, dtype=np.int64)                           # the next task to claim
    faults = np.zeros(len(order), dtype=np.bool_)

    args = (q3, k3, v3, lk, group, scale, causal, offset, mask, mask_index, use_mask,
            bias, bias_index, use_bias, cap, use_softcap, left, right,
            seg, seg_index, use_seg, block_q, block_k, n_splits, mode, logit_limit,
            order, counter, parts, part_m, part_l, counts, faults)

    # a decode call whose products stay in loops skips the pinning (a lock and two calls)
    pinned = (single_threaded_blas() if values_by_blas(block_q, dtype.itemsize)
              else contextlib.nullcontext())
    with pinned:
        run_tasks(lambda first, stride: flash_tasks(*args), len(order), work, minimum,
                  native=(flash_parallel, args))
    if guard and np.count_nonzero(faults):                         # cheaper than .any() on a few
        return None
    if visits is not None:
        visits.append(counts.reshape(n_slabs, n_blocks, n_splits).sum(axis=2))
    if n_splits > 1:
        merge_splits(parts, part_m, part_l, out)                   # (N, Lq, Ev)
    return out


# ---------------------------------------------------------------------------
# Scaled dot-product attention
# ---------------------------------------------------------------------------

@same_contract(reference.attention)
def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None, softcap=None,
              segment_ids=None, window=None) -> np.ndarray:
    """Scaled dot-product attention ``softmax(scale * q k^T + bias) v``, fused and tiled.

    Same contract as :func:`transformer_theory.impl.sdpa.attention`; the
    ``Lq x Lk`` score matrix is never formed (see the module docstring), and
    neither is a window's band mask (key blocks outside a query block's
    window are skipped, so a window of width ``w`` costs ``O(L w)``) nor the
    same-document mask of packed sequences (the kernel compares the segment
    ids of a query and a key per score).

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.1 (Eq. 1); Dao et al.
    2022, FlashAttention, Algorithm 1; Beltagy, Peters & Cohan 2020,
    Longformer, §3.1 (sliding window attention); Gemma Team 2024, Gemma 2
    (logit soft-capping); Krell et al. 2021, Efficient Sequence Packing
    without Cross-contamination (packed documents); seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt).
    """
    q_arr, k_arr, v_arr = check_qkv(q, k, v, finite_kv=False)
    lead, lq, lk = q_arr.shape[:-2], q_arr.shape[-2], k_arr.shape[-2]
    scale_value = resolve_scale(scale, q_arr.shape[-1])
    align = causal_alignment(causal)
    band = check_window(window)                          # (left, right) or None
    if mask is not None:
        as_bool_mask(mask, "mask", lead + (lq, lk))      # validated; the slabs broadcast it
    segments = segment_slabs(segment_ids, lead, lq, lk)  # (S, L) ids, or None
    bias_arr = check_bias(bias, lead + (lq, lk))
    cap = check_softcap(softcap)
    dtype = common_float_dtype(q_arr, k_arr, v_arr, bias_arr)
    n, e, ev = math.prod(lead), q_arr.shape[-1], v_arr.shape[-1]
    q3 = as_kernel_array(q_arr.reshape((n, lq, e)), dtype)        # (N, Lq, E)
    mask_slabs = None if mask is None else as_slabs(mask, lead, lq, lk, np.bool_)
    bias_slabs = None if bias_arr is None else as_slabs(bias_arr, lead, lq, lk, dtype)

    def run(k_in, v_in, guard):
        k3 = as_kernel_array(k_in.reshape((n, lk, e)), dtype)     # (N, Lk, E)
        v3 = as_kernel_array(v_in.reshape((n, lk, ev)), dtype)    # (N, Lk, Ev)
        return run_attention(q3, k3, v3, lk, 1, scale_value, align, mask_slabs, bias_slabs,
                             dtype, softcap=cap, window=band, segments=segments, guard=guard)

    out = run(k_arr, v_arr, True)                        # K and V unscanned: the kernel checks
    if out is None:                                      # the exact checks, as the reference
        k_arr, v_arr = check_finite_where_attended([("k", k_arr), ("v", v_arr)], mask, causal,
                                                   lead, lq, band)
        if scores_may_overflow(q_arr, k_arr, scale_value, bias_arr, dtype):
            return reference.attention(q_arr, k_arr, v_arr, mask=mask, causal=causal,
                                       scale=scale, bias=bias, softcap=softcap,
                                       segment_ids=segment_ids, window=window)
        out = run(k_arr, v_arr, False)                   # (N, Lq, Ev)
    return out.reshape(lead + (lq, ev))
