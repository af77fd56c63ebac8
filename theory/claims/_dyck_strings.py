"""Inputs of the Dyck claims: exhaustive enumeration, members from moves, near misses.

The exhaustive check of every string up to a length runs the recognisers'
shared forward pass in chunks on worker threads; the random inputs are
members built from bracket moves and their one-token near misses, the
strings on which a recogniser is most likely to be wrong.

Used by ``theory/claims/dyck.py`` only (a helper module of the claims package).

References
----------
Yao et al. 2021, Self-Attention Networks Can Process Bounded Hierarchical
Languages (the Dyck_{k,D} languages); seed 000.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from hypothesis import strategies as st

from transformer_theory.impl.constructions.dyck import (accepts_batch_shared, format_brackets,
                                                        is_dyck_batch)


def text(tokens, k: int, limit: int = 80) -> str:
    """A bracket string for a message, elided in the middle beyond ``limit`` characters."""
    s = format_brackets(tokens, k)
    return s if len(s) <= limit else f"{s[:limit // 2]}...{s[-limit // 2:]} (n = {len(tokens)})"


#: Strings per forward pass in the exhaustive enumeration: at n = 12 the (B, L, L)
#: attention arrays are then ~1.6 MB. Measured on the suite's 2-core machine (hard
#: attention, n = 12, the networks D = 1, 2, 3): 512 to 2048 strings per pass are
#: within 10 % of each other with two threads, 4096 is ~10 % slower; 64 or 128 are 10
#: to 20 % slower (the Python overhead of each numpy call), and 65536 was ~3x slower.
CHUNK = 1024
#: Strings per unit of work handed to a worker thread (a second or two at n = 12).
BLOCK = 1 << 15


def strings(n: int, k: int, start: int, stop: int) -> np.ndarray:
    """Strings number ``start .. stop - 1`` of length ``n`` over ``2k`` tokens: (stop - start, n).

    String number ``i`` is the base-``2k`` numeral of ``i`` with ``n`` digits
    (most significant first), so the strings of one length come in
    lexicographic order and a block of them is made from its index range
    without materialising the other ``(2k)^n`` rows.
    """
    if n == 0:
        return np.zeros((stop - start, 0), dtype=np.int64)
    idx = np.arange(start, stop)                                    # (B,)
    return np.stack(np.unravel_index(idx, (2 * k,) * n), axis=1).astype(np.int64)  # (B, n)


def exhaustive_max_len(ctx) -> int:
    """Longest exhaustively enumerated length: 6 (ci, dev), 12 (thorough).

    With ``k = 2`` there are ``(4^{m+1} - 1)/3`` strings of length ``<= m``:
    5,461 for ``m = 6`` and 22,369,621 for ``m = 12`` (the issue's bound),
    each run through the three networks ``D = 1, 2, 3``. Under thorough the
    enumeration runs in one worker thread per CPU (:func:`exhaustive`) and
    takes about a quarter of an hour per recogniser on 2 cores; ``ci`` and
    ``dev`` stop at 6 (a quarter of a second, one thread) and rely on
    Hypothesis members and near misses for longer strings.
    """
    return 6 if ctx.profile.exhaustive_scale <= 1 else 12


def exhaustive_shards(profile) -> int:
    """Shards of a recogniser claim's run (``Claim.shards``): 16 under thorough, else 1.

    Under thorough the enumeration to length 12 (22.4M strings x 3 networks) is the
    longest claim of the suite, 15-17 minutes on one core; 16 shards of its blocks
    are tasks of about a minute each for ``--jobs`` and Dask.
    """
    return 16 if profile.exhaustive_scale > 1 else 1


def exhaustive_workers(ctx) -> int:
    """Worker threads for the exhaustive enumeration: the CPUs available under thorough, else 1.

    A sharded run (``ctx.shards > 1``) uses one: its parallelism is the shards'.
    """
    if ctx.profile.exhaustive_scale <= 1 or ctx.shards > 1:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                                          # not on Linux
        return max(1, os.cpu_count() or 1)


def check_block(nets, k: int, n: int, start: int, stop: int):
    """Run ``nets`` on strings ``start .. stop - 1`` of length ``n`` and compare with the stack.

    Every string goes through the forward pass of every network
    (:func:`~transformer_theory.impl.constructions.dyck.accepts_batch_shared`,
    which runs the layers the networks ``D = 1, 2, 3`` have in common once);
    the reference is the stack, vectorised over the strings
    (:func:`~transformer_theory.impl.constructions.dyck.is_dyck_batch`).

    Returns
    -------
    (int, dict or None)
        Strings checked (up to and including the chunk of the first
        disagreement) and the first disagreement, in string order and then
        network order, or None.
    """
    for lo in range(start, stop, CHUNK):
        batch = strings(n, k, lo, min(lo + CHUNK, stop))          # (B, n)
        got = accepts_batch_shared(nets, batch, bucket=False)       # (R, B)
        want = np.stack([is_dyck_batch(batch, k, net.D) for net in nets])  # (R, B)
        bad = np.argwhere((got != want).T)                          # (string, net) pairs
        if bad.size:
            b, r = (int(i) for i in bad[0])
            s = batch[b]
            return lo + len(batch) - start, {
                "k": k, "D": nets[r].D, "string": text(s, k), "tokens": s.tolist(),
                "in_language": bool(want[r, b]), "network_accepts": bool(got[r, b])}
    return stop - start, None


def keep_buffers_in_heap() -> None:
    """Let the C allocator keep the enumeration's ~1 MB array buffers in its heap.

    glibc serves an allocation above ``M_MMAP_THRESHOLD`` (128 kB at start)
    with a fresh ``mmap`` and returns heap space above ``M_TRIM_THRESHOLD`` to
    the system; both thresholds rise to the size of the largest
    ``mmap``-ed block freed so far (up to 32 MB; mallopt(3), "M_MMAP_THRESHOLD").
    Until a large block has been freed, the attention buffers of every chunk
    are therefore mapped and page-faulted anew -- measured, 30 to 50 % of the
    enumeration's time. Freeing one 16 MB block first (never written, so
    never paged in) moves the process to the state it reaches anyway after
    any large computation. Harmless with another allocator.
    """
    block = np.empty(1 << 21)                                       # 16 MB
    del block


def exhaustive_blocks(k: int, max_len: int) -> list[tuple[int, int, int]]:
    """The blocks ``(length, start, stop)`` of the strings of length <= ``max_len``, in order."""
    return [(n, lo, min(lo + BLOCK, (2 * k) ** n))
            for n in range(max_len + 1) for lo in range(0, (2 * k) ** n, BLOCK)]


def exhaustive(nets, k: int, max_len: int, workers: int = 1, part: range | None = None):
    """Run every network on every string of length <= ``max_len``; (cases, first disagreement).

    ``cases`` counts (string, network) pairs. The strings are cut into blocks
    of :data:`BLOCK` by length and index (:func:`exhaustive_blocks`); ``part``
    keeps only those blocks (a shard's ``Context.shard_range``). With
    ``workers > 1`` the blocks run in that many threads (numpy releases the GIL
    inside its array loops, so two threads use two cores; the constructions'
    functions are pure); the results are read back in block order, so the
    answer (the first disagreement and the count up to it) is the same for
    every number of workers.
    """
    nets = list(nets)
    tasks = exhaustive_blocks(k, max_len)
    if part is not None:
        tasks = [tasks[i] for i in part]

    def check(task):
        return check_block(nets, k, *task)

    cases = 0
    if workers <= 1 or len(tasks) <= 1:
        results = map(check, tasks)
        pool = None
    else:
        keep_buffers_in_heap()
        pool = ThreadPoolExecutor(min(workers, len(tasks)))
        results = pool.map(check, tasks)
    try:
        for checked, bad in results:
            cases += checked * len(nets)
            if bad is not None:
                return cases, bad
        return cases, None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def member_from_moves(moves, k: int, D: int) -> np.ndarray:
    """A Dyck_{k,D} string from a list of integers (so that Hypothesis can shrink it).

    ``x < k`` opens type ``x`` (closes the innermost bracket instead at depth
    ``D``); ``x >= k`` closes the innermost bracket (opens type ``x mod k`` at
    depth 0); what is open at the end is closed. Test-side input generation.
    """
    out, open_types = [], []
    for x in moves:
        if (x < k and len(open_types) < D) or not open_types:
            t = x % k
            open_types.append(t)
            out.append(t)
        else:
            out.append(open_types.pop() + k)
    out.extend(t + k for t in reversed(open_types))
    return np.array(out, dtype=np.int64)


def random_member(rng: np.random.Generator, k: int, D: int, n: int) -> np.ndarray:
    """A random Dyck_{k,D} string of length >= ``n`` (``n`` random moves, then closed)."""
    return member_from_moves(rng.integers(0, 2 * k, size=n), k, D)


def near_miss(s: np.ndarray, k: int, kind: str, i: int, token: int) -> np.ndarray:
    """One symbol changed: swapped in type, flipped, deleted or inserted."""
    s = np.asarray(s, dtype=np.int64)
    if kind == "insert":
        return np.insert(s, min(i, s.size), token)
    if s.size == 0:
        return s
    i = i % s.size
    t = int(s[i])
    typ, is_open = (t, True) if t < k else (t - k, False)
    out = s.copy()
    if kind == "swap" and k > 1:
        new = (typ + 1 + token % (k - 1)) % k
        out[i] = new if is_open else new + k
    elif kind in ("swap", "flip"):
        out[i] = typ + k if is_open else typ
    elif kind == "delete":
        out = np.delete(s, i)
    return out


@st.composite
def dyck_cases(draw, ks=(1, 2, 3, 8), depths=(1, 2, 3, 4), max_moves: int = 40):
    """A Dyck_{k,D} member, or a near miss of it (one symbol swapped, flipped, deleted, inserted)."""
    k = draw(st.sampled_from(ks), label="k")
    D = draw(st.sampled_from(depths), label="D")
    moves = draw(st.lists(st.integers(0, 2 * k - 1), max_size=max_moves), label="moves")
    member = member_from_moves(moves, k, D)
    kind = draw(st.sampled_from(("member", "swap", "flip", "delete", "insert")), label="change")
    i = draw(st.integers(0, max(member.size, 1) - 1 + (kind == "insert")), label="position")
    token = draw(st.integers(0, 2 * k - 1), label="token")
    tokens = member if kind == "member" else near_miss(member, k, kind, i, token)
    return {"k": k, "D": D, "change": kind, "member": member, "tokens": tokens}


def long_strings(ctx, k: int = 8, D: int = 10) -> list[np.ndarray]:
    """n >= 1000: a member, a type-swapped near miss, and the member one level deeper."""
    rng = ctx.rng("long")
    member = random_member(rng, k, D, 1000 * max(1, ctx.profile.exhaustive_scale))
    closers = np.flatnonzero(member >= k)
    miss = near_miss(member, k, "swap", int(rng.choice(closers)), 0)
    deeper = np.concatenate([[0], member, [k]])
    return [member, miss, deeper]
