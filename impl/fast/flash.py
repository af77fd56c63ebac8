"""The compiled FlashAttention kernel: the online softmax over key blocks, one query block per task.

:func:`flash_tasks` is the parallel loop over (batch*head, query block[, key
split]) tasks that :func:`.attention.run_attention` launches (on the helper
pool, or natively through :func:`flash_parallel`, see :mod:`._native`);
:func:`attend_query_block` walks one query block over its visible key blocks
with the online-softmax recurrence (:func:`online_softmax_row`: one pass per
row while the row's logits stay within :data:`STALE_SLACK` of its reference,
the exact two-pass fold past it), scanning its inputs or products when asked
to (the guard); :func:`merge_splits` folds the
states of a query block whose keys were split over tasks (flash-decoding).
The design notes (tiling, causal and window ranges, packed documents, the
guard) are those of :mod:`.attention`, which prepares every argument.

References
----------
Dao, Fu, Ermon, Rudra & Ré 2022, FlashAttention: Fast and Memory-Efficient
Exact Attention with IO-Awareness, §3.1 (Algorithm 1: tiling and the online
softmax); Dao 2023, FlashAttention-2, §3.1 (parallelism over the query blocks).
Milakov & Gimelshein 2018, Online normalizer calculation for softmax, §3 (the
running max and sum recurrence; the merge of two partial states).
Dao et al. 2023, Flash-Decoding for long-context inference (split over keys,
then merge).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._numeric import (
    FEW_ROWS,
    JIT,
    JIT_INLINE,
    claim_next,
    fast_exp_nonpositive,
    fast_tanh,
    fmax,
    matmul,
    matmul_few,
    matmul_nt,
    matmul_nt_few,
    prefer_wide_vectors,
    typed,
    values_by_blas,
)
from ._scan import block_rows_scan, block_scan

__all__ = [
    "GUARD_NONE",
    "GUARD_INPUTS",
    "GUARD_OUTPUTS",
    "STALE_SLACK",
    "DIAGONAL_CUT_KEYS",
    "online_softmax_row",
    "fold_row_exact",
    "attend_query_block",
    "flash_tasks",
    "flash_parallel",
    "merge_splits",
]

#: Guard modes of the kernel (see :func:`run_attention`): none (the caller
#: scanned the inputs), scan each key block's keys and values, or scan the
#: block products (scores and P V).
GUARD_NONE, GUARD_INPUTS, GUARD_OUTPUTS = 0, 1, 2

#: Smallest half of a key block that is cut off on the causal diagonal. A key
#: block whose second half no row above its middle may see (the block under the
#: diagonal of a causal or right-bounded query block) is walked as two blocks,
#: the second one only for the rows that see it: a quarter of the diagonal
#: block's scores and products is never computed. Blocks shorter than twice
#: this are not cut (small products lose more in BLAS efficiency than they save).
DIAGONAL_CUT_KEYS = 128

#: How far (in nats) a row's logits may pass its running reference before the
#: reference is moved (:func:`online_softmax_row`): every ``P`` stays at most
#: ``e**8`` (about 2981). Within that slack a key block needs one pass over
#: its scores (the exp and the sum, with the max checked on the way) instead
#: of two (the max, then the exp and the sum), and the accumulator is never
#: rescaled; past it the row is recomputed and folded exactly. The price is
#: range, not accuracy: ``l`` and ``acc`` may be up to ``e**8`` times their
#: size under a running maximum, so values ``v`` within a factor ``e**8 Lk``
#: of the dtype's largest float can overflow the accumulator (they could
#: within ``Lk`` before: ``acc`` sums ``Lk`` terms ``P v``).
STALE_SLACK = 8.0


@njit(**JIT_INLINE)
def fold_row_exact(row, visible, step, i, m, l, acc):
    """Fold a row into the online softmax with its exact maximum (two passes).

    The Milakov-Gimelshein step: ``m' = max(m, max logit)``, ``P = exp(logit
    - m')``, ``l' = l e^(m - m') + sum P`` and ``acc`` rescaled by ``e^(m -
    m')``. Arguments as :func:`online_softmax_row`.
    """
    one = typed(step, 1.0)
    zero = typed(step, 0.0)
    neg_inf = typed(step, -np.inf)
    row_max = neg_inf
    for j in range(visible):
        row_max = fmax(row_max, row[j])
    if row_max == neg_inf:                               # nothing visible in this block
        for j in range(row.shape[0]):
            row[j] = zero
        return
    m_new = fmax(m[i], step * row_max)
    correction = fast_exp_nonpositive(m[i] - m_new)      # 0 on the first visible block
    total = zero
    for j in range(visible):                             # P = exp(logit - m'), and its sum
        p = fast_exp_nonpositive(step * row[j] - m_new)
        row[j] = p
        total += p
    for j in range(visible, row.shape[0]):
        row[j] = zero
    l[i] = l[i] * correction + total
    m[i] = m_new
    if correction != one:
        for e in range(acc.shape[1]):
            acc[i, e] *= correction


@njit(**JIT_INLINE)
def online_softmax_row(row, visible, step, i, m, l, acc):
    """Fold one row of a score block into the online softmax of query ``i``.

    ``m[i]`` is the row's *reference*: ``l`` and ``acc`` hold sums of
    ``exp(logit - m[i])``. The first block that shows the row a key sets it
    to that block's maximum (:func:`fold_row_exact`). Later blocks keep it
    while their logits stay below ``m[i] + STALE_SLACK``: then ``P =
    exp(logit - m[i])`` is at most ``e**STALE_SLACK``, one pass computes the
    exps, their sum and the maximum together, and ``acc`` needs no
    rescaling. A block whose logits pass the slack returns False; the caller
    then rewrites the row's logits and folds it with
    :func:`fold_row_exact`, which moves the reference to the new maximum.
    The result is the same softmax (the reference cancels in ``acc / l``);
    only the rounding differs, by a factor of at most ``e**STALE_SLACK`` in
    the size of ``l`` and ``acc``, not in their relative error.

    Parameters
    ----------
    row : ndarray, (bk,)
        The block's scores of query ``i``; the logits are ``step * row[j]``
        for ``j < visible`` (the rest is hidden). Overwritten with
        ``P = exp(logit - m[i])`` (0 where hidden); when False is returned
        its content is undefined.
    visible : int
        Number of visible keys at the start of the row.
    step : float32 or float64
        Factor from the stored scores to the logits (the softmax scale, or 1
        when the row already holds the logits).
    i : int
        The query's row in ``m``, ``l`` and ``acc``.
    m, l : ndarray, (bq,)
        Reference (``-inf`` until a key was seen) and running sum of
        ``exp(logit - m)``; entry ``i`` is updated.
    acc : ndarray, (bq, Ev)
        Unnormalised output; row ``i`` is rescaled if the reference moves
        (the caller adds ``P V`` of the block).

    Returns
    -------
    bool
        False if the row's logits passed the slack (nothing was updated).

    References
    ----------
    Milakov & Gimelshein 2018, Online normalizer calculation for softmax;
    Dao et al. 2022, FlashAttention, Algorithm 1. Keeping a stale reference
    within a bounded slack follows FlashAttention-4's conditional rescaling,
    described in Modal 2025, "We reverse-engineered Flash Attention 4"
    (updates "applied only when the maximum has changed enough to impact
    numerical stability").
    """
    zero = typed(step, 0.0)
    neg_inf = typed(step, -np.inf)
    ref = m[i]
    if ref == neg_inf:                                   # no key seen yet: the exact maximum
        fold_row_exact(row, visible, step, i, m, l, acc)
        return True
    slack = typed(step, STALE_SLACK)
    top = neg_inf
    total = zero
    for j in range(visible):                             # P = exp(logit - ref), max and sum
        x = step * row[j] - ref
        top = fmax(top, x)
        p = fast_exp_nonpositive(x if x < slack else slack)    # clamped: a valid argument
        row[j] = p
        total += p
    if top > slack:                                      # past the slack: the caller redoes it
        return False
    for j in range(visible, row.shape[0]):
        row[j] = zero
    l[i] += total
    return True


@njit(**JIT_INLINE)
def _first_row_seeing(j, row0, bq, offset, causal, right):
    """The first row of a query block (rows ``row0 + [0, bq)``) that may see key ``j``.

    Under ``causal`` row ``r`` sees keys ``j <= r + offset``, under a bounded
    ``right`` keys ``j <= r + offset + right``; without either, row 0. Rows
    before the returned one see no key from ``j`` on (``bq`` if none does).
    """
    first = 0
    if causal:
        first = min(bq, max(0, j - offset - row0))
    if right >= 0:
        first = max(first, min(bq, max(0, j - offset - right - row0)))
    return first


@njit(**JIT_INLINE)
def _row_logits(row, first, visible, r, j0, scale, softcap, use_softcap, bias_n, use_bias,
                mask_n, use_mask, seg_n, use_seg):
    """Turn a row of raw scores ``q_r . k`` into logits where needed; returns the step.

    Without a soft cap, bias, mask or segments the row is left as it is and
    the step is ``scale`` (the softmax multiplies it in). Otherwise entries
    ``[first, visible)`` become the logits themselves, soft-capped to
    ``softcap tanh(scale s / softcap)``, plus ``bias_n[r, j0 + j]``, ``-inf``
    where ``mask_n`` is False or the key's segment differs from query
    ``r``'s, and the step is 1. Arguments as :func:`attend_query_block`.
    """
    if not (use_mask or use_bias or use_softcap or use_seg):
        return scale
    neg_inf = typed(scale, -np.inf)
    # Loops over slices, from 0: numba indexes row[j] for j in range(first, visible) with a
    # wrap-around branch for negative j, which kept LLVM from vectorising these loops
    # (float32, one 256 x 384 block: soft cap 5.8 -> 0.40 ns, bias 0.82 -> 0.06 ns a score).
    logits = row[first:visible]                          # (visible - first,) rewritten in place
    lo, hi = j0 + first, j0 + visible                    # their keys
    n = logits.shape[0]
    if use_softcap:                                      # c tanh(s / c), then the bias
        for j in range(n):
            logits[j] = softcap * fast_tanh(scale * logits[j] / softcap)
        if use_bias:
            b = bias_n[r if bias_n.shape[0] > 1 else 0, lo:hi]
            for j in range(n):
                logits[j] = logits[j] + b[j]
    elif use_bias:
        b = bias_n[r if bias_n.shape[0] > 1 else 0, lo:hi]
        for j in range(n):
            logits[j] = scale * logits[j] + b[j]
    else:
        for j in range(n):
            logits[j] = scale * logits[j]
    if use_mask:
        allowed = mask_n[r if mask_n.shape[0] > 1 else 0, lo:hi]
        for j in range(n):
            logits[j] = logits[j] if allowed[j] else neg_inf
    if use_seg:                                          # another document: hidden
        own = seg_n[0, r]
        ids = seg_n[0, lo:hi]
        for j in range(n):
            logits[j] = logits[j] if ids[j] == own else neg_inf
    return typed(scale, 1.0)


# Compiled as a function of its own, called once per task: inlined into flash_tasks, its
# large numba IR was deep-copied twice (numba's inliner copies a callee's IR), which cost
# about 2 s of CPU of the float32 cold compile (9.4 -> 7.4 s for the kernel, 4 alternating
# fresh-cache runs); prefill and decode times did not change beyond the noise.
@njit(**JIT)
def attend_query_block(q_blk, k_n, v_n, lk, scale, causal, offset, row0,
                        mask_n, use_mask, bias_n, use_bias, softcap, use_softcap, left, right,
                        seg_n, use_seg, block_k, split_of, guard_of, work, out_blk, part_m,
                        part_l):
    """Online-softmax attention of one block of queries over keys ``[0, lk)``.

    q_blk (bq, E), k_n (>= lk, E), v_n (>= lk, Ev), out_blk (bq, Ev); query
    ``r = row0 + i`` may see key ``j`` iff ``j <= r + offset`` (if causal),
    ``r - left <= j - offset <= r + right`` (the sliding window; a negative
    ``left`` or ``right`` is an unbounded side), ``mask_n[row, j]`` and, if
    ``use_seg``, ``seg_n[0, r] == seg_n[0, j]`` (packed documents: the ids are
    compared per score, no ``Lq x Lk`` mask is formed). Its
    logit is ``scale * q.k``, soft-capped to ``softcap * tanh(. / softcap)`` if
    ``use_softcap``, plus ``bias_n[row, j]``. ``mask_n`` and ``bias_n`` have 1
    row (shared by all queries) or one per query. ``work`` is the tuple of
    the caller's work buffers (allocated once per thread) ``m``, ``l``
    (>= bq,), ``acc``, ``pv`` (>= bq, Ev) and ``s_buf`` (>= bq * block_k,);
    ``split_of`` is ``(split, n_splits)`` and ``guard_of`` is ``(guard,
    logit_limit)`` (tuples keep the call under CPython's 30
    arguments, past which numba compiles it as a ``*args`` call).

    Only the key range some query of the block may see is walked: under
    ``causal`` or a bounded ``right`` the blocks past the last row's reach are
    never visited, under a bounded ``left`` those before the first row's reach,
    so a window of width ``w`` costs ``O(bq (bq + w))`` per query block whatever
    ``lk``. Under ``use_seg`` the keys before the first row's document
    (``seg_n[1, row0]``) and after the last row's (``seg_n[2, row0 + bq - 1]``)
    are not walked either: for documents that are contiguous runs of ids, a
    packed row costs the sum over its documents, not ``L^2``. Within the walk,
    a key block is multiplied only with the rows that may see one of its keys
    (:func:`_first_row_seeing`), and the block on the causal diagonal is cut
    in halves (:data:`DIAGONAL_CUT_KEYS`), so its upper rows skip the second
    half.

    Split over keys (flash-decoding, ``n_splits > 1``): the walked key blocks
    are cut into ``n_splits`` contiguous parts and only part ``split`` is
    walked; the block's unnormalised state is written instead of its output:
    ``acc`` to ``out_blk``, the running max to ``part_m`` and the running sum
    to ``part_l`` (merged by :func:`merge_splits`).

    Guard (``guard``, the inputs were not scanned beforehand; see
    :func:`.attention.run_attention`): with :data:`GUARD_INPUTS` every key block's keys
    and values are scanned (:func:`._scan.block_scan`) before its product,
    and a NaN or inf, or a Cauchy-Schwarz bound ``scale max_i |q_i|
    (sum_j |k_j|^2)^(1/2)`` of the block's logits not below ``logit_limit``,
    stops the walk and sets the returned fault (the caller discards the
    result). With :data:`GUARD_OUTPUTS` the products are scanned instead:
    the raw score block (a non-finite key gives non-finite scores, as ``q``
    is finite; ``scale (sum S^2)^(1/2)`` bounds every logit) and ``P V`` (a
    non-finite value gives NaN or inf there, since ``0 * inf`` is NaN).
    Scanning the smaller of the two costs least: the outputs for few
    queries (decode), the inputs for many.

    Returns ``(visited, fault)``: the number of key blocks visited, and
    whether the guard tripped.
    """
    prefer_wide_vectors()
    split, n_splits = split_of
    guard, logit_limit = guard_of
    m, l, acc, pv, s_buf = work
    bq = q_blk.shape[0]
    ev = v_n.shape[1]
    one = typed(scale, 1.0)
    zero = typed(scale, 0.0)
    neg_inf = typed(scale, -np.inf)
    m = m[:bq]                                           # (bq,) running max of the logits
    l = l[:bq]                                           # (bq,) running sum of exp(logit - m)
    acc = acc[:bq]                                       # (bq, Ev) unnormalised output
    pv = pv[:bq]                                         # (bq, Ev) P V of one key block
    m[:] = neg_inf
    l[:] = zero
    acc[:, :] = zero
    key_start = 0
    key_end = lk
    if causal:                                           # the last row sees keys < row0+bq+offset
        key_end = min(lk, max(0, row0 + bq + offset))
    if right >= 0:                                       # ... and keys <= row0+bq-1+offset+right
        key_end = min(key_end, max(0, row0 + bq + offset + right))
    if left >= 0:                                        # the first row: keys >= row0+offset-left
        key_start = min(key_end, max(0, row0 + offset - left))
    if use_seg:                                          # the documents of the first and last row
        key_end = min(key_end, seg_n[2, row0 + bq - 1])
        key_start = min(key_end, max(key_start, seg_n[1, row0]))
    if n_splits > 1:                                     # this split's share of the key blocks
        n_key_blocks = (key_end - key_start + block_k - 1) // block_k
        per_split = (n_key_blocks + n_splits - 1) // n_splits
        key_start = min(key_end, key_start + split * per_split * block_k)
        key_end = min(key_end, key_start + per_split * block_k)
    visited = 0
    q_norm = 0.0
    if guard == GUARD_INPUTS:
        _, q_sq = block_rows_scan(q_blk)                 # q is validated finite
        q_norm = float(scale) * math.sqrt(float(q_sq))
    j0 = key_start
    while j0 < key_end:
        j1 = min(j0 + block_k, key_end)
        r_first = _first_row_seeing(j0, row0, bq, offset, causal, right)
        if bq > FEW_ROWS and j1 - j0 >= 2 * DIAGONAL_CUT_KEYS:
            middle = j0 + (j1 - j0) // 2                 # rows above the diagonal skip the
            if _first_row_seeing(middle, row0, bq, offset, causal, right) > r_first:
                j1 = middle                              # second half: it is its own block
        bk = j1 - j0
        rows = bq - r_first                              # rows [r_first, bq) see some key
        visited += 1
        if guard == GUARD_INPUTS:                        # the block's keys and values, in L2 next
            k_finite, k_sq = block_scan(k_n[j0:j1])
            v_finite, _ = block_scan(v_n[j0:j1])
            if not (k_finite and v_finite) or not q_norm * math.sqrt(float(k_sq)) < logit_limit:
                return visited, True
        s = s_buf[:rows * bk].reshape((rows, bk))        # (rows, bk)
        if bq <= FEW_ROWS:                               # decode: no BLAS packing
            matmul_nt_few(q_blk[r_first:], k_n[j0:j1], s)     # raw scores q . k
        else:
            matmul_nt(q_blk[r_first:], k_n[j0:j1], s)
        if guard == GUARD_OUTPUTS:                       # a non-finite key makes its scores so
            s_finite, s_sq = block_scan(s)
            if not s_finite or not float(scale) * math.sqrt(float(s_sq)) < logit_limit:
                return visited, True
        for i in range(r_first, bq):
            row = s[i - r_first]
            r = row0 + i
            visible = bk                                 # keys j0 + [first, visible) are seen
            if causal:
                visible = min(bk, max(0, r + offset - j0 + 1))
            if right >= 0:
                visible = min(visible, max(0, r + offset + right - j0 + 1))
            first = 0
            if left >= 0:
                first = min(visible, max(0, r + offset - left - j0))
            step = _row_logits(row, first, visible, r, j0, scale, softcap, use_softcap,
                               bias_n, use_bias, mask_n, use_mask, seg_n, use_seg)
            for j in range(first):                       # keys before the window: P = 0
                row[j] = zero
            if not online_softmax_row(row[first:], visible - first, step, i, m, l, acc):
                q_i = q_blk[i]                           # past the slack: the scores again
                for j in range(first, visible):
                    k_j = k_n[j0 + j]
                    dot = zero
                    for e in range(q_i.shape[0]):
                        dot += q_i[e] * k_j[e]
                    row[j] = dot
                step = _row_logits(row, first, visible, r, j0, scale, softcap, use_softcap,
                                   bias_n, use_bias, mask_n, use_mask, seg_n, use_seg)
                fold_row_exact(row[first:], visible - first, step, i, m, l, acc)
        pv_rows = pv[:rows]                              # (rows, Ev)
        if values_by_blas(bq, pv_rows.itemsize):
            matmul(s, v_n[j0:j1], pv_rows)
        else:                                            # one row, or float64 decode
            matmul_few(s, v_n[j0:j1], pv_rows)
        if guard == GUARD_OUTPUTS and not block_scan(pv_rows)[0]:   # P >= 0: 0 * inf is NaN
            return visited, True
        for i in range(r_first, bq):
            for e in range(ev):
                acc[i, e] += pv_rows[i - r_first, e]
        j0 = j1
    if n_splits > 1:                                     # the unnormalised state of this split
        for i in range(bq):
            part_m[i] = m[i]
            part_l[i] = l[i]
            for e in range(ev):
                out_blk[i, e] = acc[i, e]
        return visited, False
    for i in range(bq):
        if l[i] > zero:
            inv = one / l[i]
            for e in range(ev):
                out_blk[i, e] = acc[i, e] * inv
        else:                                            # fully masked row -> zeros
            for e in range(ev):
                out_blk[i, e] = zero
    return visited, False


@njit(**JIT)
def flash_tasks(q, k, v, lk, group, scale, causal, offset, mask, mask_index, use_mask,
                 bias, bias_index, use_bias, softcap, use_softcap, left, right,
                 seg, seg_index, use_seg, block_q, block_k, n_splits, guard, logit_limit,
                 order, counter, out, part_m, part_l, visits, faults):
    """Tasks ``order[p]`` of attention of q (N, Lq, E), ``p`` claimed from ``counter``.

    Task ``t`` is the (query slab ``n``, query block ``b``, key split ``s``)
    triple ``t = (n * n_blocks + b) * n_splits + s``; slab ``n`` reads kv slab
    ``n // group`` (grouped-query attention: K/V are indexed, never copied),
    mask slab ``mask_index[n]``, bias slab ``bias_index[n]`` and segments
    ``seg[seg_index[n]]`` (3, L) (the ids and each position's document
    bounds, :func:`_document_bounds`), over the first ``lk`` keys. Writes
    out (n_splits, N, Lq, Ev) (with ``n_splits > 1`` the unnormalised state
    of each split, and its running max and sum in part_m, part_l
    (n_splits, N, Lq)), in ``visits[t]`` the number of key blocks task ``t``
    visited and in ``faults[t]`` whether its guard tripped.
    """
    n_slabs, lq, _ = q.shape
    ev = v.shape[2]
    n_blocks = (lq + block_q - 1) // block_q
    m = np.empty(block_q, dtype=q.dtype)                 # work buffers of this thread
    l = np.empty(block_q, dtype=q.dtype)
    acc = np.empty((block_q, ev), dtype=q.dtype)
    pv = np.empty((block_q, ev), dtype=q.dtype)
    s_buf = np.empty(block_q * block_k, dtype=q.dtype)
    total = n_slabs * n_blocks * n_splits
    while True:
        position = claim_next(counter)                   # the next task no thread has taken
        if position >= total:
            break
        task = order[position]
        split = task % n_splits
        n = task // n_splits // n_blocks
        i0 = (task // n_splits % n_blocks) * block_q
        i1 = min(i0 + block_q, lq)
        kv = n // group
        visited, fault = attend_query_block(
            q[n, i0:i1], k[kv], v[kv], lk, scale, causal, offset, i0,
            mask[mask_index[n]], use_mask, bias[bias_index[n]], use_bias,
            softcap, use_softcap, left, right, seg[seg_index[n]], use_seg,
            block_k, (split, n_splits), (guard, logit_limit),
            (m, l, acc, pv, s_buf), out[split, n, i0:i1], part_m[split, n, i0:i1],
            part_l[split, n, i0:i1])
        visits[task] = visited
        faults[task] = fault


@njit(parallel=True, cache=True, nogil=True)
def flash_parallel(threads, q, k, v, lk, group, scale, causal, offset, mask, mask_index,
                   use_mask, bias, bias_index, use_bias, softcap, use_softcap, left, right,
                   seg, seg_index, use_seg, block_q, block_k, n_splits, guard, logit_limit,
                   order, counter, out, part_m, part_l, visits, faults):
    """:func:`flash_tasks` on ``threads`` of numba's threads (the native launch of :mod:`._native`).

    Each of the ``threads`` copies claims tasks from the shared ``counter``
    until none is left, so the work and its result are those of one
    :func:`flash_tasks` call; only which thread takes which task differs, and
    every task writes its own part of the outputs.
    """
    for _ in prange(threads):
        flash_tasks(q, k, v, lk, group, scale, causal, offset, mask, mask_index, use_mask,
                    bias, bias_index, use_bias, softcap, use_softcap, left, right,
                    seg, seg_index, use_seg, block_q, block_k, n_splits, guard, logit_limit,
                    order, counter, out, part_m, part_l, visits, faults)


@njit(**JIT)
def merge_splits(parts, part_m, part_l, out):
    """Attention output from the unnormalised states of the key splits.

    The compiled fold of :func:`transformer_theory.impl.online_softmax.merge`
    over the splits followed by its ``finalize`` (a test holds the two equal).

    Parameters
    ----------
    parts : np.ndarray, (S, N, Lq, Ev)
        Each split's ``acc``, relative to its running max.
    part_m, part_l : np.ndarray, (S, N, Lq)
        Each split's running max of the logits (``-inf`` if it saw no key)
        and running sum of ``exp(logit - max)``.
    out : np.ndarray, (N, Lq, Ev)
        Written: ``sum_s e^(m_s - m) acc_s / sum_s e^(m_s - m) l_s`` with
        ``m`` the largest ``m_s``; zeros where no split saw a key.

    References
    ----------
    Milakov & Gimelshein 2018, Online normalizer calculation for softmax (the
    merge of two partial states); Dao et al. 2023, Flash-Decoding for
    long-context inference (split over keys, then merge).
    """
    zero = typed(out, 0.0)
    neg_inf = typed(out, -np.inf)
    n_splits, n_slabs, lq = part_m.shape
    for n in range(n_slabs):
        for i in range(lq):
            top = neg_inf
            for s in range(n_splits):
                top = fmax(top, part_m[s, n, i])
            row = out[n, i]
            row[:] = zero
            if top == neg_inf:                           # no split saw a key: zeros
                continue
            total = zero
            for s in range(n_splits):
                if part_m[s, n, i] == neg_inf:
                    continue
                weight = fast_exp_nonpositive(part_m[s, n, i] - top)
                total += weight * part_l[s, n, i]
                acc = parts[s, n, i]
                for e in range(row.shape[0]):
                    row[e] += weight * acc[e]
            inv = typed(out, 1.0) / total
            for e in range(row.shape[0]):
                row[e] *= inv
