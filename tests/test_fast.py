"""The accelerated path (``transformer_theory.impl.fast``) against the reference (issue 9).

* differential Hypothesis tests, fast vs reference, on random shapes (L = 1,
  Lq != Lk, several blocks with odd remainders: block sizes are shrunk so that
  the small shapes cross many block boundaries), masks, biases, dtypes;
* numerically hard inputs: logits up to +-1e4, fully masked rows, a single key;
* sliding windows and logit soft-capping (issue 17), and the window's block
  skipping, counted by the kernel's per-task visit counter;
* packed documents (``segment_ids``), RoPE and windows in the heads, and
  decoding left-padded batches (NaN padding), with RoPE and sliding-window
  caches (issue 17);
* bad input raises the reference's own error before any compiled code runs;
* the kernel's multi-block paths (the lagging softmax reference and its
  fallback, the cut causal diagonal), directly and through the
  attention-family claims run with 3 x 2 blocks;
* the numerical building blocks (exp, the parallel loop, BLAS threads).

Tolerances come from the policy (``theory/tolerance.py``). The kernels are
compiled (or loaded from numba's cache) once per session by the ``fast``
fixture.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("numba")

from hypothesis import given  # noqa: E402
from numba import njit  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import transformer_theory.impl.fast as F  # noqa: E402
from transformer_theory.impl import attention as RA  # noqa: E402
from transformer_theory.impl import layers as RL  # noqa: E402
from transformer_theory.impl import performer as RP  # noqa: E402
from transformer_theory.theory import registry  # noqa: E402
from transformer_theory.theory.builtin_subjects import SUBJECTS, get_subject  # noqa: E402
from transformer_theory.theory.claim import Status  # noqa: E402
from transformer_theory.theory.runner import run_claim  # noqa: E402
from transformer_theory.theory.tolerance import relative_error, tolerance  # noqa: E402

FA = importlib.import_module("transformer_theory.impl.fast.attention")
FH = importlib.import_module("transformer_theory.impl.fast.heads")
FL = importlib.import_module("transformer_theory.impl.fast.layers")
FP = importlib.import_module("transformer_theory.impl.fast.performer")
FK = importlib.import_module("transformer_theory.impl.fast.kv_cache")
FN = importlib.import_module("transformer_theory.impl.fast._numeric")
FF = importlib.import_module("transformer_theory.impl.fast.flash")
FT = importlib.import_module("transformer_theory.impl.fast._native")
FD = importlib.import_module("transformer_theory.impl.fast._docs")

DTYPES = st.sampled_from([np.dtype(np.float64), np.dtype(np.float32)])
SEEDS = st.integers(0, 2**32 - 1)

KERNELS = [(FA, "_softmax_tasks"), (FA, "flash_tasks"), (FH, "_project_tasks"),
           (FH, "_merge_tasks"), (FH, "_rope_tasks"),
           (FL, "_layer_norm_tasks"), (FL, "_rms_norm_tasks"), (FL, "_feed_forward_tasks"),
           (FL, "_linear_tasks"),
           (FP, "_features_tasks"), (FP, "_favor_bidirectional_tasks"),
           (FP, "_favor_causal_tasks"), (FP, "_favor_recurrent_tasks")]


@pytest.fixture(scope="session")
def fast():
    """The accelerated path with every kernel compiled or loaded: JIT warm-up, once."""
    F.warm_up()
    return F


def assert_close(actual, expected, kind, dtype, n, scale=None):
    """Norm-wise relative error within the policy's tolerance (shapes and dtypes equal)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    tol = tolerance(kind, dtype, n)
    err = relative_error(actual, expected, scale)
    assert tol.allows(err), f"relative error {err:.3e} > {tol.rtol:.3e} ({tol.reason})"


@contextlib.contextmanager
def blocks(block_q: int, block_k: int):
    """Run the attention kernel with other block sizes (they are call arguments).

    ``block_k`` also stands for the key block of few-row (decode) query blocks.
    """
    with pytest.MonkeyPatch.context() as mp:
        for name, size in (("BLOCK_Q", block_q), ("BLOCK_K", block_k),
                           ("BLOCK_K_FEW_ROWS", block_k)):
            mp.setattr(FA, name, size)
        yield


@contextlib.contextmanager
def always_parallel():
    """Split every call over at least two threads (the caller and a helper), however small.

    ``make test`` runs with ``NUMBA_NUM_THREADS=1``; the parallel loop's thread
    count is raised to two here (only :func:`._numeric.run_tasks` sees it: how
    the attention kernel splits keys is unchanged), so that the helper threads
    are exercised there too.
    """
    threads = FN.num_threads
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FN, "MIN_PARALLEL_WORK", 0)
        mp.setattr(FN, "MIN_PARALLEL_WORK_NATIVE", 0)
        mp.setattr(FA, "MIN_PARALLEL_BYTES_FEW_ROWS", 0)
        mp.setattr(FN, "num_threads", lambda: max(2, threads()))
        yield


@contextlib.contextmanager
def inline_tasks():
    """Run the attention kernel's tasks in the calling thread, as planned for the threads."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FA, "run_tasks", lambda kernel, n_tasks, work, minimum=None, **kw: kernel(0, 1))
        yield


@contextlib.contextmanager
def launched(native: bool):
    """Parallel calls start their threads natively (numba's layer) or through the helper pool.

    Skips the test where the native way is unavailable (numba's threading layer
    here is not a thread-safe one).
    """
    if native and importlib.util.find_spec("torch") is not None:
        import torch  # noqa: F401  (torch before numba's OpenMP runtime: see _native)
    if native and not FT.native_threads():
        pytest.skip("numba's threading layer here is not omp or tbb: no native launch")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(FT._STATE, "native", native)
        yield


def normal(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


# --------------------------------------------------------------------------- building blocks

@pytest.mark.parametrize("dtype, lo, hi", [(np.float32, -110.0, 95.0),
                                           (np.float64, -760.0, 720.0)])
def test_fast_exp_within_two_ulps_and_flushes_like_exp(fast, dtype, lo, hi):
    x = np.concatenate([np.linspace(lo, hi, 200_001), [-np.inf, 0.0, -0.0, 1.0]]).astype(dtype)
    got = FN.fast_exp_array(x)
    assert got.dtype == dtype
    exact = np.exp(x.astype(np.longdouble))
    info = np.finfo(dtype)
    normal_range = (exact >= info.tiny) & (exact <= info.max)
    rel = np.abs(got[normal_range] - exact[normal_range]) / exact[normal_range]
    assert float(np.max(rel)) <= 2 * info.eps
    assert np.all(got[exact < info.tiny] == 0)              # subnormal results flushed to 0
    assert np.all(np.isposinf(got[exact > info.max]))       # overflow is inf, as np.exp
    assert got[-4] == 0 and got[-3] == 1 and got[-2] == 1   # exp(-inf), exp(0), exp(-0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_tanh_within_two_ulps_keeps_the_sign_and_saturates(fast, dtype):
    """The soft cap's tanh: relative error <= 2 ulp from subnormal to huge arguments (measured
    1.3 ulp in float32, 1.6 in float64), odd, exactly +-1 past the clamp at 20."""
    info = np.finfo(dtype)
    tiny = np.geomspace(float(info.smallest_subnormal), 25.0, 200_001)
    x = np.concatenate([np.linspace(-25.0, 25.0, 400_001), tiny, -tiny,
                        [0.0, -0.0, 1e30, -1e30, float(info.max)]]).astype(dtype)
    got = FN.fast_tanh_array(x)
    assert got.dtype == dtype
    exact = np.tanh(x.astype(np.longdouble))
    nonzero = exact != 0
    rel = np.abs(got[nonzero] - exact[nonzero]) / np.abs(exact[nonzero])
    assert float(np.max(rel)) <= 2 * info.eps
    assert np.all(np.signbit(got) == np.signbit(x))             # odd, -0 included
    assert np.all(got[np.abs(x) >= 20] == np.sign(x[np.abs(x) >= 20]))


def test_fast_exp_array_refuses_other_dtypes():
    with pytest.raises(TypeError, match="x: expected dtype float32 or float64, got int64"):
        FN.fast_exp_array(np.arange(3))


@pytest.mark.parametrize("n_tasks, parallel", [(1, True), (7, True), (7, False), (0, True)])
def test_run_tasks_runs_every_task_exactly_once(n_tasks, parallel):
    seen = []

    def kernel(first, stride):
        seen.extend(range(first, n_tasks, stride))

    with always_parallel() if parallel else contextlib.nullcontext():
        FN.run_tasks(kernel, n_tasks, 1e9)
    assert sorted(seen) == list(range(n_tasks))


@njit(nogil=True)
def _claim_all(counter, total, taken, log):
    """Claim tasks from ``counter`` until ``total``; count each in ``taken``, log the order."""
    mine = 0
    while True:
        task = FN.claim_next(counter)
        if task >= total:
            return mine
        taken[task] += 1
        log[task] = mine
        mine += 1


def test_claim_next_hands_out_every_task_once_across_threads():
    """The attention kernel's threads claim tasks from one atomic counter: none lost or doubled.

    Power: a read-then-write counter in its place was caught in 5 of 5 runs with two
    free cores (measured); with one core the threads seldom interleave, and it is not.
    """
    total = 200_000
    counter = np.zeros(1, dtype=np.int64)
    taken = np.zeros(total, dtype=np.int64)
    log = np.zeros(total, dtype=np.int64)
    _claim_all(np.zeros(1, dtype=np.int64), 1, np.zeros(1, np.int64), np.zeros(1, np.int64))
    with always_parallel():
        FN.run_tasks(lambda first, stride: _claim_all(counter, total, taken, log), 4, 1e9)
    assert np.all(taken == 1)
    assert counter[0] >= total


def test_run_tasks_propagates_an_error_from_a_helper_thread():
    def kernel(first, stride):
        if first == 1:
            raise RuntimeError("task failed")

    with always_parallel(), pytest.raises(RuntimeError, match="task failed"):
        FN.run_tasks(kernel, 4, 1e9)


def run_in_forked_child(body, seconds: float = 60.0) -> None:
    """Fork; the child runs ``body()`` (True: success) and exits; fail if it fails or hangs."""
    pid = os.fork()
    if pid == 0:                                    # the child: only the forking thread
        code = 1
        try:
            code = 0 if body() else 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child was still waiting after {seconds:.0f} s")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_runs_parallel_calls():
    """A child forked after the parent used the helper threads gets threads of its own.

    Power: without the after-fork reset (``_numeric._forget_pool_in_child``) the
    child's call queued its helper's tasks on the parent's executor, which no
    thread of the child serves, and waited for them forever (measured: the
    deadline fails).
    """
    seen = []

    def kernel(first, stride):
        seen.append(first)

    def child():
        seen.clear()
        FN.run_tasks(kernel, 2, 1e9)
        return sorted(seen) == [0, 1]

    with always_parallel():
        FN.run_tasks(kernel, 2, 1e9)                # the parent's helper thread is running
        run_in_forked_child(child)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_is_not_locked_out_of_blas_threads():
    """A fork while another thread holds the BLAS-threads lock leaves the child a free lock.

    Power: without the reset the child waits for ever on a lock whose holder it
    does not have (measured: the deadline fails).
    """
    if not FN._find_blas_thread_setters():
        pytest.skip("BLAS thread control not found: single_threaded_blas takes no lock")
    held, release = threading.Event(), threading.Event()

    def holder():
        with FN._BLAS_LOCK:
            held.set()
            release.wait(10)

    def child():
        with FN.single_threaded_blas():
            return True

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        run_in_forked_child(child, seconds=20)
    finally:
        release.set()
        thread.join()


def test_single_threaded_blas_restores_the_thread_count():
    found = FN._find_blas_thread_setters()
    if not found:
        pytest.skip("BLAS thread control not found")
    getter, setter = found
    before = getter()
    setter(2)
    try:
        with FN.single_threaded_blas():
            assert getter() == 1
            with FN.single_threaded_blas():       # nested use
                assert getter() == 1
            assert getter() == 1
        assert getter() == 2
    finally:
        setter(before)


def test_as_kernel_array_gives_writeable_c_contiguous_arrays():
    ro = np.broadcast_to(np.arange(3.0), (2, 3))
    out = FN.as_kernel_array(ro, np.float32)
    assert out.flags.c_contiguous and out.flags.writeable and out.dtype == np.float32
    a = np.zeros((2, 3))
    assert FN.as_kernel_array(a, np.float64) is a           # no copy when already fine


def test_fast_subject_mirrors_the_reference():
    assert "fast" in SUBJECTS
    fast_s, ref = get_subject("fast"), get_subject("reference")
    # the same conventions; the compiled kernels take float32 and float64 only
    assert {k: v for k, v in fast_s.options.items() if k != "dtypes"} == \
        {k: v for k, v in ref.options.items() if k != "dtypes"}
    assert fast_s.options["dtypes"] == ("float64", "float32")
    for name in ("softmax", "attention", "attention_weights", "multi_head_attention",
                 "grouped_query_attention", "decode_step", "init_kv_cache", "layer_norm",
                 "rms_norm", "feed_forward", "random_features", "favor_attention",
                 "favor_attention_recurrent"):
        assert fast_s.has(name) and ref.has(name)
    assert fast_s.attention is F.attention
    assert fast_s.rms_norm is F.rms_norm
    assert fast_s.attention_weights is RA.attention_weights


def test_every_fast_function_documents_the_reference_contract():
    """A public fast function is the reference's, or shows the reference's contract sections."""
    for name in F.__all__:
        fast_fn = getattr(F, name)
        if not inspect.isfunction(fast_fn) or not fast_fn.__module__.startswith(F.__name__) \
                or name == "warm_up":
            continue                                   # a class, or the reference's own function
        ref_fn = getattr(sys.modules[fast_fn.__module__].reference, name)
        _, fast_sections = FD.docstring_sections(fast_fn.__doc__)
        _, ref_sections = FD.docstring_sections(ref_fn.__doc__)
        for section in FD.CONTRACT_SECTIONS:
            assert fast_sections.get(section) == ref_sections.get(section), (name, section)
        assert "Parameters" in fast_sections and "References" in fast_sections, name


def test_same_contract_puts_the_sections_in_numpydoc_order_and_refuses_a_second_copy():
    def reference(x):
        """Do it.

        Parameters
        ----------
        x : int
            An integer.

        Returns
        -------
        int
        """

    reference.__module__, reference.__qualname__ = __name__, "reference"
    globals()["reference"] = reference                 # so that its dotted path resolves

    def mirror(x):
        """Do it faster.

        Same contract as :func:`tests.test_fast.reference`.

        Notes
        -----
        Fast.
        """

    mirror.__doc__ = mirror.__doc__.replace("tests.test_fast", __name__)
    try:
        out = FD.same_contract(reference)(mirror).__doc__
        assert out.index("Parameters") < out.index("Returns") < out.index("Notes")
        assert "    An integer." in out

        def repeats(x):
            """Do it.

            Same contract as :func:`tests.test_fast.reference`.

            Returns
            -------
            int
            """

        repeats.__doc__ = repeats.__doc__.replace("tests.test_fast", __name__)
        with pytest.raises(ValueError, match="Returns come from"):
            FD.same_contract(reference)(repeats)

        def unnamed(x):
            """Do it, somehow."""

        with pytest.raises(ValueError, match="must name its reference"):
            FD.same_contract(reference)(unnamed)
    finally:
        del globals()["reference"]


# --------------------------------------------------------------------------- softmax

@given(dtype=DTYPES, seed=SEEDS, shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       magnitude=st.sampled_from([1.0, 1e4]), masked=st.floats(0.0, 1.0), data=st.data())
def test_softmax_equals_reference(fast, dtype, seed, shape, magnitude, masked, data):
    rng = np.random.default_rng(seed)
    x = normal(rng, tuple(shape), dtype, magnitude)
    x[rng.random(x.shape) < masked] = -np.inf                       # masked logits, whole rows too
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    out = fast.softmax(x, axis)
    expected = RA.softmax(x, axis)
    assert_close(out, expected, "rounding", dtype, 1)
    # same support, but for weights below the normal range, which fast_exp flushes to 0 as
    # documented (float64: e**-728 is 5e-317 in numpy and 0 here)
    tiny = np.finfo(dtype).tiny
    assert np.all(out[expected == 0] == 0)
    assert np.all(out[expected >= 2 * tiny] > 0)


# --------------------------------------------------------------------------- attention

@st.composite
def attention_inputs(draw, max_len=24):
    """q, k, v and the optional arguments of ``attention``, plus block sizes."""
    dtype = draw(DTYPES)
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    lq, lk = draw(st.integers(1, max_len)), draw(st.integers(1, max_len))
    e, ev = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    rng = np.random.default_rng(draw(SEEDS))
    logit_scale = draw(st.sampled_from([0.3, 1.0, 4.0]))
    kw = {}
    mask_kind = draw(st.sampled_from(["none", "full", "key-padding", "shared"]))
    if mask_kind == "full":
        kw["mask"] = rng.random(lead + (lq, lk)) < 0.7
    elif mask_kind == "key-padding":
        kw["mask"] = rng.random(lead + (1, lk)) < 0.7
    elif mask_kind == "shared":
        kw["mask"] = rng.random((lq, lk)) < 0.6
    kw["causal"] = draw(st.sampled_from([False, True, "top-left", "bottom-right"]))
    if draw(st.booleans()):
        kw["scale"] = draw(st.floats(0.05, 3.0))
    if draw(st.booleans()):
        shape = draw(st.sampled_from([lead + (lq, lk), (lq, lk), (1, lk)]))
        kw["bias"] = normal(rng, shape, dtype)
    return {
        "q": normal(rng, lead + (lq, e), dtype, logit_scale),
        "k": normal(rng, lead + (lk, e), dtype, logit_scale),
        "v": normal(rng, lead + (lk, ev), dtype),
        "kw": kw, "dtype": dtype, "n": e + lk,
        "blocks": (draw(st.sampled_from([1, 3, 4, 7, 256])),
                   draw(st.sampled_from([1, 2, 5, 8, 512]))),
    }


@given(case=attention_inputs())
def test_attention_equals_reference(fast, case):
    with blocks(*case["blocks"]):
        out = fast.attention(case["q"], case["k"], case["v"], **case["kw"])
    expected = RA.attention(case["q"], case["k"], case["v"], **case["kw"])
    assert_close(out, expected, "reduction", case["dtype"], case["n"], scale=case["v"])
    assert np.all(out[np.all(expected == 0, axis=-1)] == 0)   # fully masked rows: exact zeros


def assert_parallel_split_is_serial(fast, case, kw):
    """The fast attention of ``case`` under ``kw``, split over threads, is bitwise the serial one.

    Parameters
    ----------
    fast : module
        :mod:`transformer_theory.impl.fast`, warmed up (the ``fast`` fixture).
    case : dict
        ``q``, ``k``, ``v`` and the tile sizes ``blocks``, as ``attention_inputs`` and
        ``packed_inputs`` draw them.
    kw : dict
        The keywords of the call.
    """
    with blocks(*case["blocks"]), always_parallel(), many_threads(count=2):
        parallel = fast.attention(case["q"], case["k"], case["v"], **kw)
        with inline_tasks():                     # the same tasks (and key splits), one thread
            serial = fast.attention(case["q"], case["k"], case["v"], **kw)
    np.testing.assert_array_equal(parallel, serial)


@given(case=attention_inputs(max_len=12))
def test_attention_parallel_split_is_bitwise_the_serial_result(fast, case):
    assert_parallel_split_is_serial(fast, case, case["kw"])


@given(dtype=DTYPES, seed=SEEDS, lq=st.integers(1, 10), lk=st.integers(1, 10),
       causal=st.sampled_from([False, True, "bottom-right"]),
       values=st.lists(st.floats(-100, 100, width=32), min_size=20, max_size=20))
def test_attention_logits_up_to_1e4(fast, dtype, seed, lq, lk, causal, values):
    """E = 1 and entries up to 100, scale 1: logits up to +-1e4 (the softmax is nearly hard)."""
    rng = np.random.default_rng(seed)
    vals = np.array(values, dtype=dtype)
    q = vals[:lq].reshape(1, lq, 1)
    k = vals[10:10 + lk].reshape(1, lk, 1)
    v = normal(rng, (1, lk, 3), dtype)
    out = fast.attention(q, k, v, causal=causal, scale=1.0)
    expected = RA.attention(q, k, v, causal=causal, scale=1.0)
    assert np.all(np.isfinite(out))
    assert_close(out, expected, "reduction", dtype, 1 + lk, scale=v)


@contextlib.contextmanager
def many_threads(count: int = 16, key_blocks: int = 1):
    """The kernel planned for ``count`` threads: (slab, query block) tasks fewer than that
    have their keys split (flash-decoding), into parts of at least ``key_blocks``
    key blocks; every split is counted in the yielded list."""
    merge_splits = FA.merge_splits
    merged = []

    def merge(*a):
        merged.append(a[0].shape[0])
        return merge_splits(*a)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FA, "num_threads", lambda: count)
        mp.setattr(FA, "SPLIT_KEY_BLOCKS", key_blocks)
        mp.setattr(FA, "merge_splits", merge)
        yield merged


@given(case=attention_inputs())
def test_attention_split_over_keys_equals_reference(fast, case):
    """Flash-decoding: each query block's keys in parts merged afterwards, same attention."""
    with blocks(*case["blocks"]), many_threads():
        out = fast.attention(case["q"], case["k"], case["v"], **case["kw"])
    expected = RA.attention(case["q"], case["k"], case["v"], **case["kw"])
    assert_close(out, expected, "reduction", case["dtype"], case["n"], scale=case["v"])
    assert np.all(out[np.all(expected == 0, axis=-1)] == 0)   # fully masked rows: exact zeros


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decode_shapes_split_over_keys(fast, dtype):
    """One query, one head, 5000 keys: split in parts when threads outnumber tasks, as asked."""
    rng = np.random.default_rng(11)
    q, k, v = normal(rng, (1, 1, 16), dtype), normal(rng, (1, 5000, 16), dtype), \
        normal(rng, (1, 5000, 8), dtype)
    with blocks(256, 512), many_threads(count=4, key_blocks=2) as merged:
        out = fast.attention(q, k, v)
        window = fast.attention(q, k, v, causal="bottom-right", window=(3000, 0))
    assert merged == [5, 3]             # 10 key blocks: min(2 * 4, 10 // 2); 6: min(8, 6 // 2)
    assert_close(out, RA.attention(q, k, v), "reduction", dtype, 5016, scale=v)
    assert_close(window, RA.attention(q, k, v, causal="bottom-right", window=(3000, 0)),
                 "reduction", dtype, 5016, scale=v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_decode_steps_are_cut_into_tasks_per_thread(fast, dtype):
    """A parallel decode call on as many heads as threads still splits its keys.

    With one task per head, a helper thread that starts late (woken) runs a whole head
    after the calling thread is done; DECODE_TASKS_PER_THREAD parts per thread let it
    take what is left. Parts hold at least one key block; a call that runs inline is
    not split (its threads are not used).
    """
    rng = np.random.default_rng(12)
    q = normal(rng, (2, 1, 16), dtype)
    k, v = normal(rng, (2, 2048, 16), dtype), normal(rng, (2, 2048, 8), dtype)
    with blocks(256, 512), many_threads(count=2, key_blocks=4) as merged:
        inline = fast.attention(q, k, v)                 # 2 * 2048 * 24 * 2 flops: inline
        with always_parallel():
            out = fast.attention(q, k, v)                # 4 key blocks: 4 parts (4 per thread)
            short = fast.attention(q[:, :, :], k[:, :1024], v[:, :1024])   # 2 blocks: 2 parts
    assert merged == [4, 2]
    assert_close(out, RA.attention(q, k, v), "reduction", dtype, 2064, scale=v)
    assert_close(inline, RA.attention(q, k, v), "reduction", dtype, 2064, scale=v)
    assert_close(short, RA.attention(q, k[:, :1024], v[:, :1024]), "reduction", dtype, 1040,
                 scale=v)


def test_decode_calls_use_threads_only_from_their_own_threshold(fast):
    """With the helper pool, a decode call (few query rows) is split over threads once it
    reads MIN_PARALLEL_BYTES_FEW_ROWS of keys and values (3 M operations in float32), never
    below MIN_PARALLEL_WORK (float64 keeps it); other calls from MIN_PARALLEL_WORK. Between
    the two a float32 decode step runs inline and its keys get no decode split."""
    low = FN.MIN_PARALLEL_WORK
    high = FA._parallel_minimum(True, np.dtype(np.float32))
    assert high == 2 * FA.MIN_PARALLEL_BYTES_FEW_ROWS / 4 > low
    assert FA._parallel_minimum(True, np.dtype(np.float64)) <= low    # float64: as before
    assert FA._parallel_minimum(False, np.dtype(np.float32)) is None
    between = (low + high) / 2
    seen = []

    def spy(kernel, n_tasks, work, minimum=None, native=None):
        seen.append(FN.worth_parallel(work, minimum))
        kernel(0, 1)

    with launched(False), pytest.MonkeyPatch.context() as mp:
        mp.setattr(FN, "num_threads", lambda: 2)
        mp.setattr(FA, "num_threads", lambda: 2)
        assert FN.worth_parallel(between) and not FN.worth_parallel(between, high)
        assert not FN.worth_parallel(low / 2, low / 4)              # never below the general one
        # between: the plan of any call with fewer tasks than threads (2 parts of >= 4 key
        # blocks), not the decode split of DECODE_TASKS_PER_THREAD parts per thread
        assert FA._key_splits(1, 8192, 1024, True, between, high) == 8 // FA.SPLIT_KEY_BLOCKS
        assert FA._key_splits(1, 8192, 1024, True, high, high) == 2 * FA.DECODE_TASKS_PER_THREAD
        calls = []
        FN.run_tasks(lambda first, stride: calls.append((first, stride)), 2, between, high)
        assert calls == [(0, 1)]
        FN.run_tasks(lambda first, stride: calls.append((first, stride)), 2, between)
        assert sorted(calls[1:]) == [(0, 2), (1, 2)]
        mp.setattr(FA, "run_tasks", spy)
        rng = np.random.default_rng(2)
        n, lk, e = 8, 1100, 64                                       # 2 n lk 2e = 2.25 M
        assert low < 2 * n * lk * 2 * e < high
        for dtype in (np.float32, np.float64):
            k, v = normal(rng, (n, lk, e), dtype), normal(rng, (n, lk, e), dtype)
            fast.attention(normal(rng, (n, 1, e), dtype), k, v)      # decode
            fast.attention(normal(rng, (n, 64, e), dtype), k, v)     # prefill, far more work
    assert seen == [False, True, True, True]     # only the float32 decode step runs inline


def spy_on_native_launches(mp):
    """Count the attention kernel's native launches (``flash_parallel`` calls); returns the list."""
    launches = []
    launcher = FA.flash_parallel

    def spy(threads, *args):
        launches.append(threads)
        return launcher(threads, *args)
    mp.setattr(FA, "flash_parallel", spy)
    return launches


def test_native_threads_start_from_their_own_threshold(fast):
    """Threads started natively cost microseconds, so a call is split from
    MIN_PARALLEL_WORK_NATIVE operations, below the pool's minima, and a decode step
    between the two is split over keys and launched natively."""
    native_least = FN.MIN_PARALLEL_WORK_NATIVE
    pool_least = FA._parallel_minimum(True, np.dtype(np.float32))
    assert native_least < FN.MIN_PARALLEL_WORK < pool_least
    with launched(True), pytest.MonkeyPatch.context() as mp:
        mp.setattr(FN, "num_threads", lambda: 2)
        mp.setattr(FA, "num_threads", lambda: 2)
        assert FN.worth_parallel(native_least, pool_least, native=True)
        assert not FN.worth_parallel(native_least - 1, None, native=True)
        assert not FN.worth_parallel(native_least, pool_least)
        assert (FA._key_splits(1, 8192, 1024, True, native_least, pool_least, True)
                == 2 * FA.DECODE_TASKS_PER_THREAD)
        launches = spy_on_native_launches(mp)
        rng = np.random.default_rng(6)
        n, lk, e = 4, 512, 64                                  # 2 n lk 2e = 0.52 M operations
        assert native_least <= 2 * n * lk * 2 * e < FN.MIN_PARALLEL_WORK
        q, k, v = (normal(rng, (n, length, e), np.float32) for length in (1, lk, lk))
        out = fast.attention(q, k, v)
        assert launches == [2]
        assert_close(out, RA.attention(q, k, v), "reduction", np.float32, lk, scale=v)


NATIVE_CASES = {
    "decode": dict(n=4, lq=1, lk=700, kw={}),
    "causal, mask and bias": dict(n=2, lq=40, lk=40, kw=dict(causal=True, bias=True, mask=True)),
    "window and soft cap": dict(n=3, lq=30, lk=50, kw=dict(causal="bottom-right", window=(9, 0),
                                                             softcap=5.0)),
}


@pytest.mark.parametrize("name", sorted(NATIVE_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_native_and_pool_launches_are_bitwise_the_serial_result(fast, name, dtype):
    """Native and pool launches run the same tasks (and key splits) as one thread does.

    Power: a launcher that passes ``part_l`` for ``part_m`` fails both decode cases
    (checked by hand: the split states are merged with the wrong weights).
    """
    case = NATIVE_CASES[name]
    rng = np.random.default_rng(7)
    n, lq, lk, e = case["n"], case["lq"], case["lk"], 8
    q, k, v = (normal(rng, (n, length, e), dtype) for length in (lq, lk, lk))
    kw = dict(case["kw"])
    if kw.pop("bias", False):
        kw["bias"] = normal(rng, (lq, lk), dtype)
    if kw.pop("mask", False):
        kw["mask"] = rng.random((n, 1, lk)) < 0.8
    results = {}
    with blocks(8, 16), always_parallel(), many_threads(count=2):
        for native in (True, False):
            with launched(native), pytest.MonkeyPatch.context() as mp:
                launches = spy_on_native_launches(mp)
                results[native] = fast.attention(q, k, v, **kw)
            assert bool(launches) == native
        with inline_tasks():
            serial = fast.attention(q, k, v, **kw)
    np.testing.assert_array_equal(results[True], serial)
    np.testing.assert_array_equal(results[False], serial)
    assert_close(serial, RA.attention(q, k, v, **kw), "reduction", dtype, lk, scale=v)


@pytest.mark.parametrize("layer", ["default", "workqueue"])
def test_two_numba_threads_and_four_callers_give_the_pools_results(layer):
    """Two of numba's threads claim the tasks at once (``make test`` runs with one).

    A fresh interpreter with ``NUMBA_NUM_THREADS=2`` and ``TT_FAST_THREADS=native`` (it
    does not import torch): a decode step split over keys and a causal prefill equal the
    pool's results bitwise, also when four Python threads call at once. On numba's
    default layer here (``omp``) the calls launch natively. On its ``workqueue`` layer,
    which is not thread-safe, they must use the pool.

    Power: with the layer check removed, forcing native launches on ``workqueue`` with
    four calling threads aborted the process (measured: exit 134, "Concurrent access has
    been detected").
    """
    import subprocess
    script = (
        "import importlib, threading, numpy as np, numba\n"
        "import transformer_theory.impl.fast as F\n"
        "T = importlib.import_module('transformer_theory.impl.fast._native')\n"
        "native = T.native_threads()\n"
        "rng = np.random.default_rng(8)\n"
        "for lq, lk, causal in ((1, 4096, False), (300, 300, True)):\n"
        "    q, k, v = (rng.standard_normal((8, n, 64)).astype(np.float32)\n"
        "               for n in (lq, lk, lk))\n"
        "    first = F.attention(q, k, v, causal=causal)\n"
        "    T._STATE['native'] = False\n"
        "    pool = F.attention(q, k, v, causal=causal)\n"
        "    T._STATE['native'] = native\n"
        "    assert np.array_equal(first, pool), (lq, lk)\n"
        "    bad = []\n"
        "    def run():\n"
        "        for _ in range(20):\n"
        "            bad.append(not np.array_equal(F.attention(q, k, v, causal=causal), pool))\n"
        "    ts = [threading.Thread(target=run) for _ in range(4)]\n"
        "    [t.start() for t in ts]; [t.join() for t in ts]\n"
        "    assert len(bad) == 80 and not any(bad), sum(bad)\n"
        "print(numba.threading_layer(), numba.get_num_threads(), native)\n")
    env = dict(os.environ, NUMBA_NUM_THREADS="2", TT_FAST_THREADS="native")
    if layer == "workqueue":
        env["NUMBA_THREADING_LAYER"] = "workqueue"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got_layer, threads, native = done.stdout.split()
    assert threads == "2"
    if layer == "workqueue":
        assert (got_layer, native) == ("workqueue", "False")
    elif got_layer in ("omp", "tbb"):
        assert native == "True"
    else:
        pytest.skip(f"numba's default layer here is {got_layer}: no native launch to test")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_of_a_native_parent_uses_the_pool(fast):
    """A child forked after the parent launched natively starts its threads through the pool.

    Power: without the after-fork switch (``_native._pool_in_child``) the child launches
    on numba's GNU OpenMP layer, which numba refuses in a forked process: it terminates
    the child (measured: exit code -15).
    """
    rng = np.random.default_rng(9)
    q, k, v = (normal(rng, (4, n, 8), np.float32) for n in (1, 600, 600))
    expected = RA.attention(q, k, v)

    def child():
        out = fast.attention(q, k, v)
        return not FT._STATE["native"] and relative_error(out, expected) < 1e-5

    with launched(True), always_parallel(), many_threads(count=2), \
            pytest.MonkeyPatch.context() as mp:
        launches = spy_on_native_launches(mp)
        fast.attention(q, k, v)
        assert launches
        run_in_forked_child(child)


@pytest.mark.parametrize("value, native", [("pool", False), (" Pool ", False), ("bogus", None)])
def test_tt_fast_threads_chooses_the_pool_or_is_refused(monkeypatch, value, native):
    monkeypatch.setitem(FT._STATE, "native", None)
    monkeypatch.setitem(FT._STATE, "why", "")
    monkeypatch.setenv("TT_FAST_THREADS", value)
    if native is None:
        with pytest.raises(ValueError, match="^TT_FAST_THREADS: expected 'auto', 'native' or "
                                             "'pool', got 'bogus'$"):
            FT.native_threads()
    else:
        assert FT.native_threads() is native
        assert FT.describe() == "pool (TT_FAST_THREADS=pool)"


@pytest.mark.parametrize("choice", ["auto", "native"])
def test_native_threads_wait_for_an_installed_torch_unless_forced(monkeypatch, choice):
    """Under ``auto`` the pool is used, and nothing decided, while torch is installed but
    not imported (numba's OpenMP runtime started first would be shared by torch, measured
    4-5 times slower); once torch is imported, or under ``native``, the layer decides.

    Power: a rule that decided (and kept) its answer before torch was imported fails the
    last assertion of ``auto``.
    """
    with launched(True):
        pass                                         # skips where the layer is not thread-safe
    monkeypatch.setitem(FT._STATE, "native", None)
    monkeypatch.setitem(FT._STATE, "why", "")
    monkeypatch.setitem(FT._STATE, "torch", True)    # installed ...
    monkeypatch.delitem(sys.modules, "torch", raising=False)   # ... not imported
    monkeypatch.setenv("TT_FAST_THREADS", choice)
    if choice == "auto":
        assert FT.native_threads() is False and FT._STATE["native"] is None
        assert FT.describe() == "pool (torch is installed but not imported yet)"
        monkeypatch.setitem(sys.modules, "torch", object())    # imported now
    assert FT.native_threads() is True


def test_describe_names_the_threading_layer():
    if FT.native_threads():
        import numba
        assert FT.describe() == f"native (numba {numba.threading_layer()} layer)"
    else:
        assert FT.describe().startswith("pool (")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_merge_of_key_splits_is_the_reference_online_merge(fast, dtype):
    """The kernel's merge of split states equals folding impl.online_softmax.merge and
    finalize, including a split that saw no key (m = -inf) and a query no split saw."""
    from transformer_theory.impl import online_softmax as OS

    rng = np.random.default_rng(4)
    m = normal(rng, (3, 2, 4), dtype, 5.0)                         # (S, N, Lq)
    m[1, 0, 1] = -np.inf
    m[:, 1, 3] = -np.inf                                          # query 3 of slab 1: no key
    l = np.where(np.isneginf(m), 0, 1 + rng.random(m.shape)).astype(dtype)
    o = normal(rng, m.shape + (5,), dtype) * (l[..., None] > 0)   # (S, N, Lq, Ev)
    out = np.empty(o.shape[1:], dtype)
    FA.merge_splits(o, m, l, out)
    state = OS.OnlineState(m[0], l[0], o[0])
    for s in range(1, 3):
        state = OS.merge(state, OS.OnlineState(m[s], l[s], o[s]))
    assert_close(out, OS.finalize(state), "reduction", dtype, 3, scale=o)
    assert np.all(out[1, 3] == 0)


@pytest.mark.parametrize("lq", [1, 3, 300])          # few queries: products scanned; many: inputs
@pytest.mark.parametrize("where", ["k", "v"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_guarded_kernel_refuses_nonfinite_attended_keys(fast, lq, where, bad):
    """The kernel reads unscanned K and V; a NaN or inf at an attended key must still raise
    the reference's error, and at a masked key give the reference's result.

    Catches a guard compiled with the kernels' fast-math flags (numba passes a caller's
    ``fastmath`` to a callee that sets none): NaN then compares as an ordinary number.
    """
    rng = np.random.default_rng(5)
    q, k, v = normal(rng, (2, lq, 8), np.float32), normal(rng, (2, 900, 8), np.float32), \
        normal(rng, (2, 900, 8), np.float32)
    {"k": k, "v": v}[where][1, 600, 3] = bad
    with pytest.raises(ValueError) as expected:
        RA.attention(q, k, v)
    with pytest.raises(ValueError) as got:
        fast.attention(q, k, v)
    assert str(got.value) == str(expected.value)
    mask = np.ones((2, 1, 900), bool)
    mask[1, 0, 600] = False
    np.testing.assert_allclose(fast.attention(q, k, v, mask=mask), RA.attention(q, k, v, mask=mask),
                               rtol=1e-5, atol=1e-6)


def test_values_by_blas_sends_float32_blocks_of_two_to_four_rows_to_blas():
    """The measured routing of the product P V: BLAS above FEW_ROWS rows, and for 2-4 rows
    in float32; loops for one row, and for float64 decode blocks."""
    assert FN.FEW_ROWS == 4
    assert [FN.values_by_blas(r, 4) for r in (1, 2, 3, 4, 5, 64)] == [False] + [True] * 5
    assert [FN.values_by_blas(r, 8) for r in (1, 2, 4, 5, 64)] == [False] * 3 + [True] * 2
    assert njit(lambda r, i: FN.values_by_blas(r, i))(3, 4)        # the kernels' copy agrees


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_block_products_carry_a_nonfinite_value_through_a_zero_weight(dtype, rows, bad):
    """The decode guard scans P V, not V: it relies on 0 * inf and 0 * NaN being NaN there.
    Holds for the loops (IEEE flags) and for a BLAS that multiplies every term; a BLAS
    that skipped zero weights (as reference BLAS gemv does) would fail here."""
    for bk, key in ((1, 0), (17, 8), (1024, 1023)):
        s = np.ones((rows, bk), dtype)
        s[:, key] = 0
        v = np.ones((bk, 64), dtype)
        v[key, 5] = bad
        for product in (FN.matmul, FN.matmul_few):
            out = np.empty((rows, 64), dtype)
            product(s, v, out)
            assert np.isnan(out[:, 5]).all(), (product.__name__, bk, key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lq", [1, 3])               # loops; float32 P V by BLAS
def test_guard_sees_a_nonfinite_value_whose_weight_underflows_to_zero(fast, dtype, lq):
    """An attended key whose softmax weight is exactly 0 (its logit about 850 below the
    others) and whose value is inf: the reference's error, as for any attended non-finite
    value."""
    rng = np.random.default_rng(6)
    q = np.ones((2, lq, 8), dtype)
    k, v = normal(rng, (2, 900, 8), dtype), normal(rng, (2, 900, 8), dtype)
    k[1, 600] = -300.0                                  # logit -849: exp underflows to 0
    assert np.all(RA.attention_weights(q, k)[1, :, 600] == 0)
    v[1, 600, 3] = np.inf
    with pytest.raises(ValueError) as expected:
        RA.attention(q, k, v)
    with pytest.raises(ValueError) as got:
        fast.attention(q, k, v)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("lq", [1, 300])
def test_guard_trips_where_logits_could_overflow(fast, lq):
    """The guard's Cauchy-Schwarz bound sends huge logits to the exact path: the reference's
    overflow error, never an inf from the kernel."""
    q = np.full((1, lq, 4), 1e19, np.float32)
    k = np.full((1, 50, 4), 1e19, np.float32)
    v = np.ones((1, 50, 2), np.float32)
    assert FA.run_attention(q, k, v, 50, 1, 0.5, None, None, None, np.dtype(np.float32),
                            guard=True) is None
    with pytest.raises(ValueError) as expected:
        RA.attention(q, k, v)
    with pytest.raises(ValueError) as got:
        fast.attention(q, k, v)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_guard_bounds_the_bias_by_its_largest_magnitude(sign):
    """The guard's logit limit subtracts max |bias|, as scores_may_overflow adds it: a huge
    bias of either sign trips it (fails for a limit taken from bias.max() alone)."""
    q = np.ones((1, 3, 4), np.float32)
    bias = np.zeros((3, 50), np.float32)
    bias[1, 7] = sign * np.finfo(np.float32).max / 4
    assert FA.scores_may_overflow(q, q[:, :1], 0.5, bias, np.dtype(np.float32))
    slabs = FA.as_slabs(bias, (1,), 3, 50, np.float32)
    k = np.ones((1, 50, 4), np.float32)
    assert FA.run_attention(q, k, k, 50, 1, 0.5, None, None, slabs, np.dtype(np.float32),
                            guard=True) is None
    assert FA.run_attention(q, k, k, 50, 1, 0.5, None, None, (np.zeros_like(slabs[0]), slabs[1]),
                            np.dtype(np.float32), guard=True) is not None


SLACK_OPTIONS = {
    "none": {},
    "mask": {"mask": (np.arange(16) % 3 != 1)[None, :]},           # hides keys 4 and 7
    "bias": {"bias": np.linspace(-1.0, 1.0, 16)[None, :]},
    "softcap": {"softcap": 15.0},                                   # 2 -> 1.99, -30 -> -14.5
    "window": {"window": (9, 2)},
    "segments": {"segment_ids": np.repeat([0, 1], [6, 10])},        # keys 6, 7: another document
    "causal": {"causal": True},
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", sorted(SLACK_OPTIONS))
def test_logits_past_the_stale_reference_are_folded_exactly(fast, dtype, option):
    """A key block whose logits pass the row's reference by more than the slack.

    The kernel keeps each row's reference while a block's logits stay within
    ``STALE_SLACK`` of it and recomputes the row otherwise. Keys 0-3 (the
    first block, of four keys) have logits near -30 and the rest near 2, so
    every row whose first visible block is keys 0-3 recomputes keys 4-7, with
    each logit option rewritten on the recomputed scores (keys 4 and 7 are
    masked, 6 and 7 are another document, the bias and the cap move them).
    A fold that kept the clamped exps, or that forgot an option when
    recomputing, is far from the reference.
    """
    assert FF.STALE_SLACK < 16
    rng = np.random.default_rng(5)
    q = (1.0 + 0.1 * rng.random((2, 16, 1))).astype(dtype)                      # (2, 16, 1)
    k = np.concatenate([-30.0 + rng.random((2, 4)), 2.0 + rng.standard_normal((2, 12))],
                       axis=1).astype(dtype)[..., None]                         # (2, 16, 1)
    v = normal(rng, (2, 16, 3), dtype)
    kw = {key: (val.astype(dtype) if key == "bias" else val)
          for key, val in SLACK_OPTIONS[option].items()}
    with blocks(4, 4):                  # query block 4-7 spans both documents
        out = fast.attention(q, k, v, scale=1.0, **kw)
    expected = RA.attention(q, k, v, scale=1.0, **kw)
    assert_close(out, expected, "reduction", dtype, 17, scale=v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_fully_masked_rows_and_a_single_key(fast, dtype):
    rng = np.random.default_rng(3)
    q, k, v = normal(rng, (2, 5, 4), dtype), normal(rng, (2, 6, 4), dtype), normal(rng, (2, 6, 3), dtype)
    mask = np.ones((2, 5, 6), dtype=bool)
    mask[0, 1] = False
    mask[1, :, :] = False
    out = fast.attention(q, k, v, mask=mask)
    assert np.all(out[0, 1] == 0) and np.all(out[1] == 0) and np.all(np.isfinite(out))
    bottom = fast.attention(q[:, :5], k[:, :2], v[:, :2], causal="bottom-right")
    assert np.all(bottom[:, :3] == 0)                           # rows i < Lq - Lk see no key
    one_key = fast.attention(q, k[:, :1], v[:, :1])             # weights exactly 1
    np.testing.assert_array_equal(one_key, np.broadcast_to(v[:, :1], one_key.shape))


@pytest.mark.parametrize("dtype, atol", [(np.float32, 2e-6), (np.float64, 5e-15)])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_accuracy_target_against_float64(fast, dtype, atol, causal):
    """The issue's accuracy targets, on d = 64 and lengths crossing the default blocks."""
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((2, 600, 64)) for _ in range(3))
    out = fast.attention(*(a.astype(dtype) for a in (q, k, v)), causal=causal)
    exact = RA.attention(*(a.astype(dtype).astype(np.float64) for a in (q, k, v)),
                         causal=causal)
    assert out.dtype == dtype
    assert float(np.max(np.abs(out - exact))) <= atol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lq, lk, kw", [
    (700, 700, {"causal": True}),
    (500, 800, {"causal": "bottom-right"}),
    (700, 700, {"window": (None, 40)}),
    (700, 700, {"causal": True, "bias": "bias", "mask": "mask"}),
], ids=["causal", "bottom-right", "right-window", "causal-bias-mask"])
def test_diagonal_blocks_are_cut_and_equal_the_reference(fast, dtype, lq, lk, kw):
    """A key block under the diagonal is walked in two halves, the second for the lower rows.

    With 256 x 512 blocks each query block meets a 512-key block on its
    diagonal; the work counter must show the extra half block per query
    block (against a walk without cuts), and the result must be the
    reference's, with a bias and a mask rewritten on the cut rows too.
    """
    rng = np.random.default_rng(17)
    q, k, v = normal(rng, (2, lq, 16), dtype), normal(rng, (2, lk, 16), dtype), \
        normal(rng, (2, lk, 8), dtype)
    kw = dict(kw)
    if "bias" in kw:
        kw["bias"] = normal(rng, (lq, lk), dtype)
        kw["mask"] = rng.random((2, 1, lk)) < 0.8
    with blocks(256, 512):
        out = fast.attention(q, k, v, **kw)
        align = FA.causal_alignment(kw.get("causal", False))
        band = FA.check_window(kw.get("window"))
        visits = []
        q3, k3, v3 = (np.ascontiguousarray(a, dtype=dtype) for a in (q, k, v))
        FA.run_attention(q3, k3, v3, lk, 1, 0.25, align, None, None, np.dtype(dtype),
                         window=band, visits=visits)
    reach = (lk - lq if align == "bottom-right" else 0) + (40 if "window" in kw else 0)
    uncut = [-(-min(lk, r0 + min(256, lq - r0) + reach) // 512)    # key blocks without cuts
             for r0 in range(0, lq, 256)]
    assert np.all(visits[0] >= np.asarray(uncut)) and np.any(visits[0] > np.asarray(uncut))
    assert_close(out, RA.attention(q, k, v, **kw), "reduction", dtype, 16 + lk, scale=v)


#: Topics whose claims call the attention kernel on small shapes.
KERNEL_TOPICS = ("attention", "masking", "heads", "decoding", "permutation", "positional",
                 "precision", "conformance", "online_softmax")
KERNEL_CLAIMS = [c for c in registry.all_claims()
                 if c.id.split(".")[0] in KERNEL_TOPICS and c.needs]


@pytest.mark.parametrize("claim", KERNEL_CLAIMS, ids=[c.id for c in KERNEL_CLAIMS])
def test_kernel_claims_pass_with_small_blocks(fast, claim, profile):
    """The attention-family claims on the fast subject, with 3 x 2 blocks.

    The claims' shapes fit in one default key block, where every row is
    folded exactly from its first block; with 3-row, 2-key blocks every claim
    crosses many blocks, so the lagging reference, its fallback, the split
    rows and the work buffers are checked by the claims themselves.
    """
    subject = get_subject("fast")
    if not claim.applicable_to(subject):
        pytest.skip(f"fast lacks {claim.needs}")
    with blocks(3, 2):
        result = run_claim(claim, subject, profile=profile)
    if result.status is Status.NOT_APPLICABLE:                   # visible, as in test_claims
        pytest.skip(result.detail())
    assert result.status is Status.PASSED, result.detail()


def test_attention_keeps_inputs_and_accepts_views(fast):
    rng = np.random.default_rng(4)
    base = rng.standard_normal((3, 8, 4))
    q = np.broadcast_to(base[0], (2, 8, 4))                     # read-only, zero strides
    k = base[:, ::2, :][:2]                                     # non-contiguous
    v = np.asfortranarray(rng.standard_normal((2, 4, 5)))
    before = [a.copy() for a in (q, k, v)]
    out = fast.attention(q, k, v, causal=True)
    np.testing.assert_allclose(out, RA.attention(q, k, v, causal=True), rtol=1e-13, atol=1e-14)
    for a, b in zip((q, k, v), before):
        np.testing.assert_array_equal(a, b)


def test_attention_dtype_promotion(fast):
    rng = np.random.default_rng(5)
    q32 = normal(rng, (3, 4), np.float32)
    assert fast.attention(q32, q32, q32).dtype == np.float32
    assert fast.attention(q32, q32, q32.astype(np.float64)).dtype == np.float64
    assert fast.attention(q32, q32, q32, bias=np.zeros((3, 3))).dtype == np.float64
    assert fast.attention(np.ones((2, 3), int), np.ones((2, 3)), np.ones((2, 3))).dtype == np.float64


# --------------------------------------------------------------------------- heads, decoding

def draw_heads(draw):
    """The dtype, generator and head counts that ``head_inputs`` and ``rotary_head_inputs`` share.

    Parameters
    ----------
    draw : callable
        The ``draw`` of an ``st.composite`` strategy.

    Returns
    -------
    dtype : numpy dtype
    rng : numpy.random.Generator
        Seeded from a drawn integer.
    g, h, e : int
        kv groups (1..3), query heads (a multiple of g, up to 3 g), model width (4, 6 or 8).
    """
    dtype = draw(DTYPES)
    rng = np.random.default_rng(draw(SEEDS))
    g = draw(st.integers(1, 3))
    h = g * draw(st.integers(1, 3))
    e = draw(st.sampled_from([4, 6, 8]))
    return dtype, rng, g, h, e


@st.composite
def head_inputs(draw):
    dtype, rng, g, h, e = draw_heads(draw)
    b, lq, lk = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    params = RA.init_grouped_query(e, h, g, rng, d_head=draw(st.integers(1, 4)), dtype=dtype,
                                   bias=draw(st.booleans()))
    kw = {"causal": draw(st.sampled_from([False, True, "bottom-right"]))}
    if draw(st.booleans()):
        kw["mask"] = rng.random((b, lq, lk)) < 0.7
    if draw(st.booleans()):
        kw["bias"] = normal(rng, (h, lq, lk), dtype)
    return {"params": params, "x_q": normal(rng, (b, lq, e), dtype),
            "x_kv": normal(rng, (b, lk, e), dtype), "kw": kw, "dtype": dtype,
            "n": 2 * e + lk + h, "blocks": (draw(st.sampled_from([2, 5, 256])),
                                           draw(st.sampled_from([3, 512])))}


@given(case=head_inputs())
def test_grouped_and_multi_head_attention_equal_reference(fast, case):
    p = case["params"]
    with blocks(*case["blocks"]):
        out = fast.grouped_query_attention(case["x_q"], case["x_kv"], p, **case["kw"])
        mha = RA.gqa_to_mha_params(p)
        out_mha = fast.multi_head_attention(case["x_q"], case["x_kv"], mha, **case["kw"])
    expected = RA.grouped_query_attention(case["x_q"], case["x_kv"], p, **case["kw"])
    assert_close(out, expected, "composite", case["dtype"], case["n"])
    assert_close(out_mha, expected, "composite", case["dtype"], case["n"])


@given(dtype=DTYPES, seed=SEEDS, b=st.integers(1, 2), lq=st.integers(1, 6),
       lk=st.integers(1, 6), padded=st.booleans())
def test_cross_attention_equals_reference(fast, dtype, seed, b, lq, lk, padded):
    rng = np.random.default_rng(seed)
    p = RA.init_multi_head(6, 2, rng, d_kv=5, dtype=dtype)
    x, memory = normal(rng, (b, lq, 6), dtype), normal(rng, (b, lk, 5), dtype)
    mm = (rng.random((b, lk)) < 0.7) if padded else None
    out = fast.cross_attention(x, memory, p, memory_mask=mm)
    assert_close(out, RA.cross_attention(x, memory, p, memory_mask=mm), "composite", dtype,
                 11 + lk)


# --------------------------------------------------------------------------- NaN poisoning
# Issue 14: non-finite keys and values are allowed where no query may attend, and act as
# zeros; the kernel multiplies whole key blocks, so they must be zeroed before it runs.

def dead_keys(kw, lead, lq, lk):
    """(..., Lk) True where no query may attend the key (computed here, not by the contract)."""
    allowed = np.ones(lead + (lq, lk), dtype=bool)
    if kw.get("mask") is not None:
        allowed = allowed & kw["mask"]
    causal = kw.get("causal", False)
    if causal is not False:
        align = "top-left" if causal is True else causal
        allowed = allowed & RA.causal_mask(lq, lk, align=align)
    return ~np.any(allowed, axis=-2)


@given(case=attention_inputs(max_len=12), poison=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_attention_nan_at_dead_keys_acts_as_zero(fast, case, poison):
    q, k, v, kw = case["q"], case["k"], case["v"], case["kw"]
    dead = dead_keys(kw, q.shape[:-2], q.shape[-2], k.shape[-2])          # (..., Lk)
    k_bad, v_bad = k.copy(), v.copy()
    k_bad[dead, 0], v_bad[dead, -1] = poison, poison
    k_zero, v_zero = np.where(dead[..., None], 0, k), np.where(dead[..., None], 0, v)
    with blocks(*case["blocks"]):
        out = fast.attention(q, k_bad, v_bad, **kw)
        np.testing.assert_array_equal(out, fast.attention(q, k_zero, v_zero, **kw))
    assert np.all(np.isfinite(out))
    expected = RA.attention(q, k_bad, v_bad, **kw)
    assert_close(out, expected, "reduction", case["dtype"], case["n"], scale=v_zero)


def test_attention_nan_at_an_attended_key_raises_the_reference_error(fast):
    k = K.copy()
    k[1, 5, 0] = np.nan                               # key 5 of batch 1 is attended
    mask = np.ones((2, 5, 6), dtype=bool)
    mask[0, :, 5] = False
    with pytest.raises(ValueError) as expected:
        RA.attention(Q, k, V, mask=mask)
    with pytest.raises(ValueError) as got:
        fast.attention(Q, k, V, mask=mask)
    assert str(got.value) == str(expected.value)
    assert str(got.value).startswith("k: contains NaN or infinite values at key 5 of batch "
                                     "index (1,)")
    mask[1, :, 5] = False                             # now no query sees it: accepted
    k_zero = np.where(np.isnan(k), 0.0, k)
    np.testing.assert_array_equal(fast.attention(Q, k, V, mask=mask),
                                  fast.attention(Q, k_zero, V, mask=mask))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_projected_attention_nan_at_dead_keys_acts_as_zero(fast, dtype):
    rng = np.random.default_rng(7)
    x_q, x_kv = normal(rng, (2, 5, 4), dtype), normal(rng, (2, 6, 4), dtype)
    x_bad, x_zero = x_kv.copy(), x_kv.copy()
    x_bad[0, 4, 1], x_bad[1, 5, 0] = np.nan, np.inf
    x_zero[0, 4], x_zero[1, 5] = 0, 0
    mask = np.ones((2, 1, 6), dtype=bool)
    mask[0, :, 4] = mask[1, :, 5] = False
    mha = RA.init_multi_head(4, 2, rng, dtype=dtype)
    gqa = RA.init_grouped_query(4, 2, 1, rng, dtype=dtype)
    for call, p in ((fast.multi_head_attention, mha), (fast.grouped_query_attention, gqa)):
        out = call(x_q, x_bad, p, mask=mask)
        np.testing.assert_array_equal(out, call(x_q, x_zero, p, mask=mask))
        reference = getattr(RA, call.__name__)
        assert_close(out, reference(x_q, x_bad, p, mask=mask), "composite", dtype, 14)
    real = mask[:, 0, :]                                                  # key padding (B, Lk)
    out = fast.cross_attention(x_q, x_bad, mha, memory_mask=real)
    np.testing.assert_array_equal(out, fast.cross_attention(x_q, x_zero, mha, memory_mask=real))
    assert_close(out, RA.cross_attention(x_q, x_bad, mha, memory_mask=real), "composite", dtype,
                 14)


def written(arr, cache):
    """The slots of a cache array that hold decoded positions (KVCache: the others may hold
    anything, and the fast step leaves them unwritten)."""
    return arr[..., :min(cache.length, arr.shape[-2]), :]


@given(dtype=DTYPES, seed=SEEDS, g=st.integers(1, 2), r=st.integers(1, 2),
       length=st.integers(1, 7), batch=st.sampled_from([(), (2,), (1, 2)]))
def test_decode_steps_equal_reference_and_leave_the_cache(fast, dtype, seed, g, r, length, batch):
    rng = np.random.default_rng(seed)
    p = RA.init_grouped_query(4, g * r, g, rng, dtype=dtype)
    x = normal(rng, batch + (length, 4), dtype)
    cache_f = fast.init_kv_cache(p, batch, length + 1, dtype)
    cache_r = RA.init_kv_cache(p, batch, length + 1, dtype)
    for t in range(length):
        old = cache_f.k.copy(), cache_f.v.copy(), cache_f.length
        y_f, new_f = fast.decode_step(x[..., t:t + 1, :], p, cache_f)
        np.testing.assert_array_equal(cache_f.k, old[0])           # input cache untouched
        assert cache_f.length == old[2]
        y_r, cache_r = RA.decode_step(x[..., t:t + 1, :], p, cache_r)
        assert_close(y_f, y_r, "composite", dtype, 12 + t)
        assert_close(written(new_f.k, new_f), written(cache_r.k, cache_r), "composite", dtype, 4)
        assert new_f.length == t + 1 and new_f.k.dtype == dtype
        cache_f = new_f
    full = RA.grouped_query_attention(x, x, p, causal=True)
    assert_close(fast.decode_sequence(x, p), full, "composite", dtype, 12 + length)


# --------------------------------------------------------------------------- layers

@st.composite
def rows(draw):
    dtype = draw(DTYPES)
    rng = np.random.default_rng(draw(SEEDS))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=2))) + \
        (draw(st.integers(1, 12)),)
    x = normal(rng, shape, dtype, draw(st.sampled_from([1e-20, 1.0, 1e20])))
    flat = x.reshape(-1, shape[-1])
    if draw(st.booleans()):
        flat[0] = flat[0, 0]                                        # a constant row
    return rng, x, dtype


@given(case=rows(), eps=st.sampled_from([0.0, 1e-5, 1.0]), affine=st.booleans(),
       mixed=st.booleans())
def test_layer_norm_equals_reference(fast, case, eps, affine, mixed):
    rng, x, dtype = case
    e = x.shape[-1]
    g = b = None
    if affine:
        pdt = np.float64 if mixed else dtype
        g, b = normal(rng, (e,), pdt), normal(rng, (e,), pdt)
    out = fast.layer_norm(x, g, b, eps=eps)
    expected = RL.layer_norm(x, g, b, eps=eps)
    scale = max(1.0, float(np.max(np.abs(expected))))          # outputs are O(1) by design
    assert_close(out, expected, "ill_conditioned", dtype, e, scale=np.array(scale))


@given(case=rows(), activation=st.sampled_from(["relu", "gelu", "tanh", "sigmoid", RL.relu,
                                                 "callable"]),
       bias=st.booleans(), d_ff=st.integers(1, 20))
def test_feed_forward_equals_reference(fast, case, activation, bias, d_ff):
    rng, x, dtype = case
    x = x / np.max(np.abs(x)) if x.size else x                     # O(1) activations
    params = RL.init_ffn(x.shape[-1], d_ff, rng, bias=bias, dtype=dtype)
    act = (lambda h: np.sin(h) * h) if activation == "callable" else activation
    out = fast.feed_forward(x, params, activation=act)
    expected = RL.feed_forward(x, params, activation=act)
    assert_close(out, expected, "composite", dtype, x.shape[-1] + d_ff,
                 scale=np.abs(expected).max() + 1.0)


def test_feed_forward_with_many_rows_uses_blocks(fast):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 301, 16))                          # rows over several blocks
    params = RL.init_ffn(16, 40, rng)
    with always_parallel():
        out = fast.feed_forward(x, params, activation="gelu")
    assert_close(out, RL.feed_forward(x, params, activation="gelu"), "composite", np.float64, 56)


# --------------------------------------------------------------------------- performer

@st.composite
def favor_inputs(draw):
    dtype = draw(DTYPES)
    rng = np.random.default_rng(draw(SEEDS))
    lead = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    length, d, dv, m = (draw(st.integers(1, 13)), draw(st.integers(1, 6)),
                        draw(st.integers(1, 4)), draw(st.integers(1, 9)))
    causal = draw(st.booleans())
    lk = length if causal else draw(st.integers(1, 13))
    kw = {"causal": causal, "kind": draw(st.sampled_from(["positive", "hyperbolic"])),
          "stabilize": draw(st.booleans()),
          "key_stabilizer": draw(st.sampled_from(["per-key", "sequence"])),
          "chunk_size": draw(st.sampled_from([1, 3, 4, 64]))}
    if draw(st.booleans()):
        kw["mask"] = rng.random(lead + (lk,)) < 0.8
    return {"q": normal(rng, lead + (length, d), dtype), "k": normal(rng, lead + (lk, d), dtype),
            "v": normal(rng, lead + (lk, dv), dtype), "w": normal(rng, (m, d), dtype),
            "kw": kw, "dtype": dtype, "n": d + 2 * m + lk}


@given(case=favor_inputs())
def test_favor_attention_equals_reference(fast, case):
    args = case["q"], case["k"], case["v"], case["w"]
    out = fast.favor_attention(*args, **case["kw"])
    expected = RP.favor_attention(*args, **case["kw"])
    assert_close(out, expected, "ill_conditioned", case["dtype"], case["n"], scale=case["v"])


@given(case=favor_inputs())
def test_favor_recurrent_and_features_equal_reference(fast, case):
    q, v, w = case["q"], case["v"][..., :case["q"].shape[-2], :], case["w"]
    k = case["k"][..., :q.shape[-2], :]
    if k.shape[-2] != q.shape[-2]:
        k = q[..., ::-1, :].copy()
        v = np.ones(q.shape[:-1] + (2,), dtype=q.dtype)
    kind = case["kw"]["kind"]
    out = fast.favor_attention_recurrent(q, k, v, w, kind=kind)
    expected = RP.favor_attention_recurrent(q, k, v, w, kind=kind)
    assert_close(out, expected, "ill_conditioned", case["dtype"], case["n"], scale=v)
    # The exponent w.x - |x|^2/2 is a sum of 2d terms of size up to `size`: its absolute
    # rounding error, which is the relative error of exp(.), is within gamma_{2d} * size.
    d = q.shape[-1]
    size = float(np.max(np.abs(q)) ** 2 * d * (1 + np.max(np.abs(w)))) + 1.0
    n = 2 * d * math.ceil(size)
    for feature_kind in ("trig", "positive", "hyperbolic"):
        phi = fast.random_features(q, w, feature_kind)
        assert_close(phi, RP.random_features(q, w, feature_kind), "reduction", case["dtype"], n)
    stab = RP.feature_max_stabilizer(q, w, kind)
    assert_close(fast.random_features(q, w, kind, stabilizer=stab),
                 RP.random_features(q, w, kind, stabilizer=stab), "reduction", case["dtype"], n)


@pytest.mark.parametrize("chunk_size", [1, 4, 64])
def test_causal_favor_is_exactly_causal(fast, chunk_size):
    """Editing keys after position i leaves output i bit for bit (per-key stabiliser)."""
    rng = np.random.default_rng(9)
    q, k, v = rng.standard_normal((3, 2, 11, 4)), rng.standard_normal((3, 2, 11, 4)), \
        rng.standard_normal((3, 2, 11, 3))
    w = rng.standard_normal((6, 4))
    out = fast.favor_attention(q, k, v, w, causal=True, chunk_size=chunk_size)
    k2, v2 = k.copy(), v.copy()
    k2[..., 6:, :] = 5 * rng.standard_normal(k2[..., 6:, :].shape)
    v2[..., 6:, :] = 5 * rng.standard_normal(v2[..., 6:, :].shape)
    out2 = fast.favor_attention(q, k2, v2, w, causal=True, chunk_size=chunk_size)
    np.testing.assert_array_equal(out2[..., :6, :], out[..., :6, :])


def test_favor_long_sequence_and_parallel_split(fast):
    rng = np.random.default_rng(10)
    q, k = rng.standard_normal((2, 2, 300, 8)) / 2, rng.standard_normal((2, 2, 300, 8)) / 2
    v, w = rng.standard_normal((2, 2, 300, 5)), rng.standard_normal((16, 8))
    for causal in (False, True):
        serial = fast.favor_attention(q, k, v, w, causal=causal)
        with always_parallel():
            parallel = fast.favor_attention(q, k, v, w, causal=causal)
        np.testing.assert_array_equal(parallel, serial)
        assert_close(serial, RP.favor_attention(q, k, v, w, causal=causal), "ill_conditioned",
                     np.float64, 8 + 32 + 300, scale=v)


# --------------------------------------------------------------------------- windows, softcap
# Issue 17: window=(left, right) and softcap=c inside the tiled kernel.

WINDOW_SIDES = st.one_of(st.none(), st.integers(0, 6))


@given(case=attention_inputs(), left=WINDOW_SIDES, right=WINDOW_SIDES,
       softcap=st.sampled_from([None, 0.5, 2.0, 50.0]))
def test_window_and_softcap_equal_reference(fast, case, left, right, softcap):
    kw = {**case["kw"], "window": (left, right), "softcap": softcap}
    with blocks(*case["blocks"]):
        out = fast.attention(case["q"], case["k"], case["v"], **kw)
    expected = RA.attention(case["q"], case["k"], case["v"], **kw)
    assert_close(out, expected, "composite", case["dtype"], case["n"], scale=case["v"])
    np.testing.assert_array_equal(np.all(out == 0, axis=-1),      # the same rows see no key
                                  np.all(expected == 0, axis=-1))


WINDOWS = [(0, 0), (3, 0), (0, 3), (2, 5), (None, 0), (0, None), (4, None), (None, 2),
           (None, None), (40, 40)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("causal", [False, True, "bottom-right"])
@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_window_equals_reference_across_blocks(fast, dtype, causal, window):
    """Lq != Lk both ways, a random mask, blocks much smaller than the sequence."""
    rng = np.random.default_rng(11)
    for lq, lk in ((23, 37), (37, 23), (30, 30)):
        q, k = normal(rng, (2, lq, 5), dtype, 2.0), normal(rng, (2, lk, 5), dtype, 2.0)
        v = normal(rng, (2, lk, 3), dtype)
        mask = rng.random((2, 1, lk)) < 0.8                     # key padding
        for kw in ({}, {"mask": mask}):
            expected = RA.attention(q, k, v, causal=causal, window=window, **kw)
            for sizes in ((4, 3), (8, 8), (256, 512)):
                with blocks(*sizes):
                    out = fast.attention(q, k, v, causal=causal, window=window, **kw)
                assert_close(out, expected, "reduction", dtype, 5 + lk, scale=v)
                np.testing.assert_array_equal(np.all(out == 0, axis=-1),
                                              np.all(expected == 0, axis=-1))


@given(case=attention_inputs(max_len=12), left=WINDOW_SIDES, right=WINDOW_SIDES)
def test_window_parallel_split_is_bitwise_the_serial_result(fast, case, left, right):
    assert_parallel_split_is_serial(fast, case, {**case["kw"], "window": (left, right),
                                                 "softcap": 3.0})


def test_window_and_softcap_none_change_nothing(fast):
    """window=None and softcap=None are the old kernel, bit for bit."""
    rng = np.random.default_rng(12)
    q, k, v = normal(rng, (2, 40, 8), np.float32), normal(rng, (2, 50, 8), np.float32), \
        normal(rng, (2, 50, 4), np.float32)
    bias = normal(rng, (40, 50), np.float32)
    with blocks(7, 9):
        for causal in (False, True, "bottom-right"):
            np.testing.assert_array_equal(
                fast.attention(q, k, v, causal=causal, bias=bias, window=None, softcap=None),
                fast.attention(q, k, v, causal=causal, bias=bias))


def _spy_run_attention(monkeypatch, module) -> list:
    """Record every (args, kwargs) that ``module.run_attention`` (the tiled kernel) receives."""
    calls = []
    run = module.run_attention

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return run(*args, **kwargs)

    monkeypatch.setattr(module, "run_attention", spy)
    return calls


def test_window_is_applied_in_the_kernel_not_as_a_mask(fast, monkeypatch):
    calls = _spy_run_attention(monkeypatch, FA)
    q = normal(np.random.default_rng(13), (1, 9, 4), np.float64)
    fast.attention(q, q, q, causal="bottom-right", window=(2, None), softcap=5.0)
    (args, kwargs), = calls
    assert args[7] is None                                        # no mask slabs
    assert kwargs["window"] == (2, None) and kwargs["softcap"] == 5.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_window_dead_keys_may_be_nan(fast, dtype):
    """Keys outside every query's window may hold NaN: they act as zeros (issue 14 + 17)."""
    rng = np.random.default_rng(14)
    q, k, v = normal(rng, (2, 6, 4), dtype), normal(rng, (2, 20, 4), dtype), \
        normal(rng, (2, 20, 3), dtype)
    window = (1, 2)                       # bottom-right: query i sees keys i + 13, i + 14
    k_bad, v_bad = k.copy(), v.copy()
    k_bad[:, :13, 0], v_bad[:, :13, 1] = np.nan, np.inf
    k_zero, v_zero = k.copy(), v.copy()
    k_zero[:, :13], v_zero[:, :13] = 0, 0
    with blocks(4, 5):
        out = fast.attention(q, k_bad, v_bad, causal="bottom-right", window=window)
        np.testing.assert_array_equal(
            out, fast.attention(q, k_zero, v_zero, causal="bottom-right", window=window))
    assert_close(out, RA.attention(q, k_bad, v_bad, causal="bottom-right", window=window),
                 "reduction", dtype, 24, scale=v_zero)
    k_bad[0, 13, 0] = np.nan                         # key 13 is attended by query 0
    with pytest.raises(ValueError) as expected:
        RA.attention(q, k_bad, v_bad, causal="bottom-right", window=window)
    with pytest.raises(ValueError) as got:
        fast.attention(q, k_bad, v_bad, causal="bottom-right", window=window)
    assert str(got.value) == str(expected.value)


def band_blocks(lq, lk, block_q, block_k, offset, left, right, causal):
    """Key blocks a query block must visit: those of [start, end), the keys its rows may see."""
    counts = []
    for row0 in range(0, lq, block_q):
        rows = np.arange(row0, min(row0 + block_q, lq))
        lo = rows + offset - (lk if left is None else left)
        hi = rows + offset + (lk if right is None else right)
        if causal:
            hi = np.minimum(hi, rows + offset)
        start, end = max(0, int(lo.min())), min(lk, int(hi.max()) + 1)
        counts.append(max(0, -(-(end - start) // block_k)))
    return np.array(counts)


@pytest.mark.parametrize("causal, window", [(True, (63, 0)), (False, (63, 0)),
                                            (False, (16, 16)), ("bottom-right", (31, 0)),
                                            (False, (0, 20)), (True, None)])
def test_window_kernel_skips_the_key_blocks_outside_the_window(fast, causal, window):
    """The work counter: a query block visits only the key blocks its window reaches.

    With L = 2048, key blocks of 64 and windows of at most 64 keys, each query
    block visits at most 3 key blocks instead of 32; without skipping every task
    would count Lk / block_k (and the causal case about half of that).
    """
    rng = np.random.default_rng(15)
    length, lk = 2048, (2048 if causal != "bottom-right" else 2100)
    q3 = normal(rng, (2, length, 8), np.float64)
    k3, v3 = normal(rng, (2, lk, 8), np.float64), normal(rng, (2, lk, 4), np.float64)
    align = {False: None, True: "top-left"}.get(causal, causal)
    visits = []
    with blocks(64, 64):
        out = FA.run_attention(q3, k3, v3, lk, 1, 0.3, align, None, None, np.dtype(np.float64),
                               window=window, visits=visits)
        block_q, block_k = FA._block_sizes(2, length, lk, None if window is None or None in
                                           window else window[0] + window[1] + 1)  # those used
    counts, = visits
    assert block_k == 64 and counts.shape == (2, -(-length // block_q))
    offset = lk - length if causal == "bottom-right" else 0
    left, right = (None, None) if window is None else window
    expected = band_blocks(length, lk, block_q, block_k, offset, left, right, causal is not False)
    np.testing.assert_array_equal(counts, np.broadcast_to(expected, counts.shape))
    dense = -(-lk // block_k)
    if window is not None:
        assert counts.max() <= 3 < dense                          # O(w) per query block
    else:
        assert counts.sum() < 0.6 * counts.size * dense           # causal: about half
    assert_close(out, RA.attention(q3, k3, v3, scale=0.3, causal=causal, window=window),
                 "reduction", np.float64, 8 + lk, scale=v3)


def test_window_work_is_linear_in_the_length(fast):
    """Visited key blocks per query at a fixed window do not grow with L (O(L w) work)."""
    rng = np.random.default_rng(16)
    per_row = []
    for length in (512, 1024, 2048, 4096):
        q3 = normal(rng, (1, length, 4), np.float32)
        visits = []
        with blocks(64, 64):
            FA.run_attention(q3, q3, q3, length, 1, 0.5, "top-left", None, None,
                             np.dtype(np.float32), window=(127, 0), visits=visits)
        per_row.append(visits[0].sum() / length)
    assert max(per_row) - min(per_row) < 0.01                     # constant: about 3 / 64


# --------------------------------------------------------------------------- packed documents
# Issue 17: segment_ids compared per score inside the kernel.

@st.composite
def packed_inputs(draw, max_len=20):
    """Self-attention inputs (Lq = Lk) with segment ids, and the other optional arguments."""
    case = draw(attention_inputs(max_len=max_len))
    rng = np.random.default_rng(draw(SEEDS))
    q, kw, dtype = case["q"], dict(case["kw"]), case["dtype"]
    lead, length = q.shape[:-2], q.shape[-2]
    k = normal(rng, lead + (length, q.shape[-1]), dtype, 2.0)
    v = normal(rng, lead + (length, case["v"].shape[-1]), dtype)
    for name in ("mask", "bias"):                                    # redrawn for Lk = Lq
        if name in kw:
            shape = kw[name].shape[:-2] + (min(kw[name].shape[-2], length), length)
            kw[name] = (rng.random(shape) < 0.7) if name == "mask" else normal(rng, shape, dtype)
    n_docs = draw(st.integers(1, 4))
    contiguous = draw(st.booleans())                                 # packed, or any ids
    shape = draw(st.sampled_from([lead + (length,), (length,), (1,) * len(lead) + (length,)]))
    ids = rng.integers(0, n_docs, shape)
    if contiguous:
        ids = np.sort(ids, axis=-1)
    kw["segment_ids"] = ids.astype(draw(st.sampled_from([np.int64, np.int32, np.uint8])))
    if draw(st.booleans()):
        kw["window"] = (draw(WINDOW_SIDES), draw(WINDOW_SIDES))
    if draw(st.booleans()):
        kw["softcap"] = draw(st.sampled_from([0.5, 5.0]))
    return {**case, "k": k, "v": v, "kw": kw, "n": q.shape[-1] + length}


@given(case=packed_inputs())
def test_packed_segments_equal_reference(fast, case):
    q, k, v, kw = case["q"], case["k"], case["v"], case["kw"]
    with blocks(*case["blocks"]):
        out = fast.attention(q, k, v, **kw)
    expected = RA.attention(q, k, v, **kw)
    assert_close(out, expected, "composite", case["dtype"], case["n"], scale=v)
    np.testing.assert_array_equal(np.all(out == 0, axis=-1),       # the same rows see no key
                                  np.all(expected == 0, axis=-1))


@given(case=packed_inputs(max_len=12))
def test_packed_parallel_split_is_bitwise_the_serial_result(fast, case):
    assert_parallel_split_is_serial(fast, case, case["kw"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_packed_documents_are_separate_across_blocks(fast, dtype):
    """Three documents of a packed row: each equals attention over the document alone."""
    rng = np.random.default_rng(21)
    cuts = [0, 11, 12, 37]                                           # cu_seqlens
    ids = np.repeat(np.arange(3), np.diff(cuts))                     # (37,)
    q, k = normal(rng, (2, 37, 5), dtype, 2.0), normal(rng, (2, 37, 5), dtype, 2.0)
    v = normal(rng, (2, 37, 3), dtype)
    for causal in (False, True):
        for sizes in ((4, 3), (8, 8), (256, 512)):
            with blocks(*sizes):
                out = fast.attention(q, k, v, causal=causal, segment_ids=ids)
            for a, b in zip(cuts[:-1], cuts[1:]):
                alone = RA.attention(q[:, a:b], k[:, a:b], v[:, a:b], causal=causal)
                assert_close(out[:, a:b], alone, "reduction", dtype, 5 + b - a, scale=v[:, a:b])


def test_packed_ids_go_to_the_kernel_not_an_L_by_L_mask(fast, monkeypatch):
    calls = _spy_run_attention(monkeypatch, FA)
    rng = np.random.default_rng(22)
    q = normal(rng, (3, 2, 9, 4), np.float64)
    ids = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])                     # shared by the batch
    fast.attention(q, q, q, segment_ids=ids, causal=True)
    (args, kwargs), = calls
    assert args[7] is None                                           # no mask slabs
    slabs, index = kwargs["segments"]
    assert slabs.shape == (1, 9) and slabs.dtype == np.int64         # the ids, stored once
    np.testing.assert_array_equal(index, np.zeros(6))


@pytest.mark.parametrize("causal", [False, True])
def test_packed_kernel_skips_the_key_blocks_of_other_documents(fast, causal):
    """The work counter: a query block walks only the keys of its rows' documents.

    Documents of 20-90 tokens packed into L = 2048 with 64 x 64 blocks: a query
    block visits the key blocks from its first row's document start to its last
    row's document end (a few), instead of all 32; ids scattered over the row
    (a document in two runs) fall back to every block, and both are exact.
    """
    rng = np.random.default_rng(33)
    length = 2048
    sizes = rng.integers(20, 91, 60)
    cuts = np.concatenate([[0], np.cumsum(sizes)])
    cuts = np.concatenate([cuts[cuts < length], [length]])           # cu_seqlens
    ids = np.repeat(np.arange(len(cuts) - 1), np.diff(cuts))         # (L,)
    q3 = normal(rng, (2, length, 8), np.float64)
    k3, v3 = normal(rng, (2, length, 8), np.float64), normal(rng, (2, length, 4), np.float64)
    align = "top-left" if causal else None
    dense = length // 64
    for scattered in (False, True):
        seg = ids.copy()
        if scattered:
            seg[-1] = 0                                              # document 0 in two runs
        visits = []
        with blocks(64, 64):
            out = FA.run_attention(q3, k3, v3, length, 1, 0.3, align, None, None,
                                   np.dtype(np.float64), segments=FA.segment_slabs(
                                       seg, (2,), length, length), visits=visits)
            block_q, _ = FA._block_sizes(2, length, length)
        counts, = visits
        expected = RA.attention(q3, k3, v3, scale=0.3, causal=causal, segment_ids=seg)
        assert_close(out, expected, "reduction", np.float64, 8 + length, scale=v3)
        starts = np.searchsorted(cuts, np.arange(length), side="right") - 1   # (L,) own document
        want = []
        for row0 in range(0, length, block_q):
            last = min(row0 + block_q, length) - 1
            lo, hi = (0, length) if scattered else (cuts[starts[row0]], cuts[starts[last] + 1])
            if causal:
                hi = min(hi, last + 1)
            want.append(-(-(hi - lo) // 64))
        np.testing.assert_array_equal(counts, np.broadcast_to(want, counts.shape))
        if not scattered:
            assert counts.max() <= 4 < dense // 2                    # O(document) per block


def test_packed_segment_ids_none_change_nothing(fast):
    """segment_ids=None is the old kernel, bit for bit; a single document is no segmentation."""
    rng = np.random.default_rng(23)
    q, k, v = (normal(rng, (2, 30, 6), np.float32) for _ in range(3))
    with blocks(7, 9):
        for causal in (False, True):
            plain = fast.attention(q, k, v, causal=causal)
            np.testing.assert_array_equal(fast.attention(q, k, v, causal=causal,
                                                         segment_ids=None), plain)
            one = fast.attention(q, k, v, causal=causal, segment_ids=np.full(30, 7))
            assert_close(one, plain, "reduction", np.float32, 36, scale=v)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_packed_nan_at_dead_keys_acts_as_zero(fast, dtype):
    """Keys no query may attend (mask) may be NaN alongside segments (issue 14 + 17)."""
    rng = np.random.default_rng(24)
    q, k, v = (normal(rng, (2, 10, 4), dtype) for _ in range(3))
    ids = np.array([[0] * 4 + [1] * 6, [0] * 7 + [1] * 3])
    mask = np.ones((2, 1, 10), dtype=bool)
    mask[0, :, 2] = mask[1, :, 9] = False
    k_bad, v_bad = k.copy(), v.copy()
    k_bad[0, 2, 0], v_bad[1, 9, 1] = np.nan, np.inf
    k_zero, v_zero = k.copy(), v.copy()
    k_zero[0, 2], v_zero[1, 9] = 0, 0
    out = fast.attention(q, k_bad, v_bad, mask=mask, segment_ids=ids)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, fast.attention(q, k_zero, v_zero, mask=mask,
                                                      segment_ids=ids))
    assert_close(out, RA.attention(q, k_bad, v_bad, mask=mask, segment_ids=ids), "reduction",
                 dtype, 14, scale=v_zero)


# --------------------------------------------------------------------------- heads: RoPE, window

@st.composite
def rotary_head_inputs(draw):
    """Self-attention heads (even Dh) with rope_base and/or window, plus the other keywords."""
    dtype, rng, g, h, e = draw_heads(draw)
    b, length = draw(st.integers(1, 2)), draw(st.integers(1, 11))
    params = RA.init_grouped_query(e, h, g, rng, d_head=draw(st.sampled_from([2, 4])),
                                   dtype=dtype, bias=draw(st.booleans()))
    kw = {"causal": draw(st.sampled_from([False, True, "bottom-right"])),
          "rope_base": draw(st.sampled_from([None, 10.0, 10000.0, 7]))}
    if draw(st.booleans()):
        kw["window"] = (draw(WINDOW_SIDES), draw(WINDOW_SIDES))
    if draw(st.booleans()):
        kw["mask"] = rng.random((b, length, length)) < 0.7
    if draw(st.booleans()):
        kw["bias"] = normal(rng, (h, length, length), dtype)
    x = normal(rng, (b, length, e), dtype)
    return {"params": params, "x": x, "kw": kw, "dtype": dtype, "n": 2 * e + length + h,
            "blocks": (draw(st.sampled_from([2, 5, 256])), draw(st.sampled_from([3, 512])))}


@given(case=rotary_head_inputs())
def test_heads_with_rope_and_window_equal_reference(fast, case):
    p, x, kw = case["params"], case["x"], case["kw"]
    mha = RA.gqa_to_mha_params(p)
    with blocks(*case["blocks"]):
        out = fast.grouped_query_attention(x, x, p, **kw)
        out_mha = fast.multi_head_attention(x, x, mha, **kw)
    expected = RA.grouped_query_attention(x, x, p, **kw)
    assert_close(out, expected, "composite", case["dtype"], case["n"])
    assert_close(out_mha, RA.multi_head_attention(x, x, mha, **kw), "composite", case["dtype"],
                 case["n"])


def test_heads_rope_rotates_like_the_reference_rope(fast):
    """The in-place kernel is the reference's rope on each head (angles in float64)."""
    rng = np.random.default_rng(25)
    from transformer_theory.impl.positional import rope
    for dtype in (np.float64, np.float32):
        x4 = normal(rng, (2, 3, 7, 6), dtype)
        rotated = FH.rotate_heads(x4.copy(), np.arange(7), 500.0, np.dtype(dtype))
        assert_close(rotated, rope(x4, base=500.0), "rounding", dtype, 2)
        pos = np.array([[3], [-2]])                                  # one position per sequence
        rotated = FH.rotate_heads(x4[:, :, :1].copy(), pos, 10.0, np.dtype(dtype))
        assert_close(rotated, rope(x4[:, :, :1], pos[:, None, :], base=10.0), "rounding",
                     dtype, 2)


def test_heads_rope_base_and_window_none_change_nothing(fast):
    rng = np.random.default_rng(26)
    p = RA.init_grouped_query(8, 4, 2, rng, dtype=np.float32)
    x = normal(rng, (2, 13, 8), np.float32)
    mask = rng.random((2, 13, 13)) < 0.8
    with blocks(5, 3):
        for causal in (False, True):
            np.testing.assert_array_equal(
                fast.grouped_query_attention(x, x, p, causal=causal, mask=mask, rope_base=None,
                                             window=None),
                fast.grouped_query_attention(x, x, p, causal=causal, mask=mask))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_heads_window_dead_keys_may_be_nan(fast, dtype):
    """x_kv rows no query may attend may be NaN under a window and RoPE (issue 14 + 17)."""
    rng = np.random.default_rng(27)
    p = RA.init_grouped_query(4, 2, 1, rng, dtype=dtype)
    x_q, x_kv = normal(rng, (2, 6, 4), dtype), normal(rng, (2, 6, 4), dtype)
    bad, zero = x_kv.copy(), x_kv.copy()
    bad[:, 5, 0], zero[:, 5] = np.nan, 0                         # key 5: masked for every query
    kw = {"causal": True, "window": (1, 0), "mask": (np.arange(6) < 5)[None, :],
          "rope_base": 10.0}
    out = fast.grouped_query_attention(x_q, bad, p, **kw)
    np.testing.assert_array_equal(out, fast.grouped_query_attention(x_q, zero, p, **kw))
    assert_close(out, RA.grouped_query_attention(x_q, bad, p, **kw), "composite", dtype, 14)


def test_heads_window_is_applied_in_the_kernel(fast, monkeypatch):
    calls = _spy_run_attention(monkeypatch, FH)
    rng = np.random.default_rng(28)
    p = RA.init_multi_head(4, 2, rng)
    x = normal(rng, (1, 9, 4), np.float64)
    fast.multi_head_attention(x, x, p, causal=True, window=(3, 0), rope_base=100.0)
    (args, kwargs), = calls
    assert args[7] is None and kwargs["window"] == (3, 0)           # no mask slabs


# --------------------------------------------------------------------------- decoding
# Issue 17: positions of left-padded batches, RoPE, sliding-window caches.

def decode_both(fast, x, p, caches, positions, base):
    """Decode x (..., L, E) through the fast and the reference cache, step by step."""
    cache_f, cache_r = caches
    for t in range(x.shape[-2]):
        pos = None if positions is None else positions[..., t]
        old = cache_f.k.copy(), cache_f.v.copy(), cache_f.length
        y_f, new_f = fast.decode_step(x[..., t:t + 1, :], p, cache_f, positions=pos,
                                      rope_base=base)
        y_r, new_r = RA.decode_step(x[..., t:t + 1, :], p, cache_r, positions=pos,
                                    rope_base=base)
        np.testing.assert_array_equal(cache_f.k, old[0])            # input cache untouched
        np.testing.assert_array_equal(cache_f.v, old[1])
        assert cache_f.length == old[2]
        yield t, (y_f, new_f), (y_r, new_r)
        cache_f, cache_r = new_f, new_r


@given(dtype=DTYPES, seed=SEEDS, g=st.integers(1, 2), r=st.integers(1, 2),
       batch=st.sampled_from([(), (3,), (2, 2)]), length=st.integers(1, 9),
       window=st.sampled_from([None, 0, 1, 3]), base=st.sampled_from([None, 10.0, 10000.0]),
       padded=st.booleans(), garbage=st.booleans())
def test_decode_padded_rope_window_equal_reference(fast, dtype, seed, g, r, batch, length,
                                                   window, base, padded, garbage):
    """Left padding of NaN tokens, NaN cache slots, RoPE and windows past w + 1 tokens."""
    rng = np.random.default_rng(seed)
    p = RA.init_grouped_query(4 * g * r, g * r, g, rng, dtype=dtype)
    e = p.d_model
    x = normal(rng, batch + (length, e), dtype)
    pad = rng.integers(0, length + 1, batch) if padded else np.zeros(batch, dtype=int)
    positions = np.arange(length) - pad[..., None]                   # (..., L)
    x[positions < 0] = np.nan                                        # padding tokens: NaN
    caches = [m.init_kv_cache(p, batch, length, dtype, window=window) for m in (fast, RA)]
    if garbage:                                                      # np.empty-like memory
        for c in caches:
            c.k[...], c.v[...] = np.nan, np.nan
    for t, (y_f, c_f), (y_r, c_r) in decode_both(fast, x, p, caches,
                                                 positions if padded else None, base):
        assert y_f.shape == y_r.shape and y_f.dtype == y_r.dtype == dtype
        assert np.all(np.isfinite(y_f))
        assert np.all(y_f[positions[..., t] < 0] == 0)               # padding tokens: zero rows
        assert_close(y_f, y_r, "composite", dtype, 3 * e + t + 1)
        assert (c_f.length, c_f.window, c_f.k.shape, c_f.v.shape) == \
            (c_r.length, c_r.window, c_r.k.shape, c_r.v.shape)
        assert c_f.k.dtype == dtype and c_f.k.shape[-2] <= (length if window is None
                                                            else min(length, window + 1))
        for a, b in ((written(c_f.k, c_f), written(c_r.k, c_r)),     # the same slots, NaN too
                     (written(c_f.v, c_f), written(c_r.v, c_r))):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            assert_close(np.nan_to_num(a), np.nan_to_num(b), "composite", dtype, e)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("window", [0, 2, 5])
def test_decode_window_cache_equals_the_window_forward(fast, dtype, window):
    """A rolling window cache, well past w + 1 tokens, equals fast GQA with window (w, 0)."""
    rng = np.random.default_rng(29)
    p = RA.init_grouped_query(8, 4, 2, rng, dtype=dtype)
    x = normal(rng, (2, 17, 8), dtype)
    cache = fast.init_kv_cache(p, (2,), 17, dtype, window=window)
    steps = []
    for t in range(17):
        y, cache = fast.decode_step(x[:, t:t + 1], p, cache, rope_base=100.0)
        assert cache.k.shape[-2] == window + 1                       # never more slots
        steps.append(y)
    full = fast.grouped_query_attention(x, x, p, causal=True, window=(window, 0),
                                        rope_base=100.0)
    assert_close(np.concatenate(steps, axis=-2), full, "composite", dtype, 3 * 8 + 17)
    assert_close(full, RA.grouped_query_attention(x, x, p, causal=True, window=(window, 0),
                                                  rope_base=100.0), "composite", dtype, 3 * 8 + 17)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decode_left_padded_equals_each_sequence_alone(fast, dtype):
    rng = np.random.default_rng(30)
    p = RA.init_grouped_query(8, 4, 2, rng, dtype=dtype)
    lengths, total = [5, 2, 7], 8
    x = np.full((3, total, 8), np.nan, dtype=dtype)
    alone = []
    for b, n in enumerate(lengths):
        seq = normal(rng, (1, n, 8), dtype)
        x[b, total - n:] = seq[0]
        cache, rows = fast.init_kv_cache(p, (1,), n, dtype), []
        for t in range(n):
            y, cache = fast.decode_step(seq[:, t:t + 1], p, cache, rope_base=50.0)
            rows.append(y[0])
        alone.append(np.concatenate(rows))
    positions = np.arange(total)[None, :] - (total - np.array(lengths))[:, None]
    cache, rows = fast.init_kv_cache(p, (3,), total, dtype), []
    cache.k[...], cache.v[...] = np.nan, np.nan
    for t in range(total):
        y, cache = fast.decode_step(x[:, t:t + 1], p, cache, positions=positions[:, t],
                                    rope_base=50.0)
        rows.append(y)
    out = np.concatenate(rows, axis=-2)
    for b, n in enumerate(lengths):
        assert np.all(out[b, :total - n] == 0)
        assert_close(out[b, total - n:], alone[b], "composite", dtype, 3 * 8 + total)


def test_decode_new_keywords_none_change_nothing(fast):
    """positions=None / rope_base=None, positions without padding and a window cache that
    never fills decode bit for bit as before."""
    rng = np.random.default_rng(31)
    p = RA.init_grouped_query(8, 4, 2, rng, dtype=np.float32)
    x = normal(rng, (2, 6, 8), np.float32)
    plain = fast.init_kv_cache(p, (2,), 6, np.float32)
    unpadded, wide = plain, fast.init_kv_cache(p, (2,), 6, np.float32, window=10)
    for t in range(6):
        y, plain_next = fast.decode_step(x[:, t:t + 1], p, plain)
        y_none, _ = fast.decode_step(x[:, t:t + 1], p, plain, positions=None, rope_base=None)
        y_pos, unpadded = fast.decode_step(x[:, t:t + 1], p, unpadded, positions=np.full(2, t))
        y_wide, wide = fast.decode_step(x[:, t:t + 1], p, wide)
        for other in (y_none, y_pos, y_wide):
            np.testing.assert_array_equal(other, y)
        np.testing.assert_array_equal(written(wide.k, wide), written(plain_next.k, plain_next))
        plain = plain_next


def test_decode_padding_is_a_kernel_mask_and_nan_slots_stay_in_the_cache(fast, monkeypatch):
    calls = _spy_run_attention(monkeypatch, FK)
    rng = np.random.default_rng(32)
    p = RA.init_grouped_query(4, 2, 1, rng)
    cache = fast.init_kv_cache(p, (2,), 4)
    cache.k[0, :, 0], cache.v[0, :, 0] = np.nan, np.nan              # sequence 0: slot 0 padding
    cache.length = 1
    y, new = fast.decode_step(normal(rng, (2, 1, 4), np.float64), p, cache,
                              positions=np.array([0, 1]))
    assert np.all(np.isfinite(y))
    assert np.all(np.isnan(new.k[0, :, 0]))                          # kept as the reference does
    ((args, _),) = calls
    slabs, index = args[7]
    np.testing.assert_array_equal(slabs[:, 0], [[False, True], [True, True]])
    np.testing.assert_array_equal(index, [0, 0, 1, 1])               # shared by the two heads
    _, ref = RA.decode_step(normal(rng, (2, 1, 4), np.float64), p, cache,
                            positions=np.array([0, 1]))
    np.testing.assert_array_equal(np.isnan(new.k), np.isnan(ref.k))


# --------------------------------------------------------------------------- RMS norm

@given(case=rows(), eps=st.sampled_from([0.0, 1e-6, 1e-3, 1.0]), affine=st.booleans(),
       mixed=st.booleans(), zero_row=st.booleans())
def test_rms_norm_equals_reference(fast, case, eps, affine, mixed, zero_row):
    rng, x, dtype = case
    e = x.shape[-1]
    if zero_row:
        x.reshape(-1, e)[-1] = 0                                   # an all-zero row
    g = normal(rng, (e,), np.float64 if mixed else dtype) if affine else None
    out = fast.rms_norm(x, g, eps=eps)
    expected = RL.rms_norm(x, g, eps=eps)
    scale = max(1.0, float(np.max(np.abs(expected))))           # outputs are O(1) by design
    assert_close(out, expected, "ill_conditioned", dtype, e, scale=np.array(scale))
    if zero_row:
        assert np.all(out.reshape(-1, e)[-1] == 0)


def test_rms_norm_many_rows_parallel_and_defaults(fast):
    rng = np.random.default_rng(17)
    x = rng.standard_normal((3, 501, 24)).astype(np.float32)
    with always_parallel():
        out = fast.rms_norm(x)
    assert out.dtype == np.float32
    assert_close(out, RL.rms_norm(x), "composite", np.float32, 24)
    np.testing.assert_array_equal(out, fast.rms_norm(x))        # the split changes nothing
    assert fast.rms_norm(np.zeros((0, 4))).shape == (0, 4)


# --------------------------------------------------------------------------- bad input

RNG = np.random.default_rng(0)
Q, K, V = RNG.standard_normal((2, 5, 4)), RNG.standard_normal((2, 6, 4)), \
    RNG.standard_normal((2, 6, 3))
MHA = RA.init_multi_head(4, 2, RNG)
GQA = RA.init_grouped_query(4, 2, 1, RNG)
FFN = RL.init_ffn(4, 8, RNG)
W = RNG.standard_normal((5, 4))
BIG = np.full((2, 5, 4), 1e20, dtype=np.float32)
NAN = Q.copy()
NAN[0, 0, 0] = np.nan
NAN_KEY = K.copy()
NAN_KEY[1, 3, 2] = np.inf
MHA_ODD = RA.init_multi_head(4, 4, RNG)                             # d_head = 1
_nan_k = np.zeros((2, 1, 3, 2))
_nan_k[1, 0, 1, 0] = np.nan                                         # batch 1, position 1
NAN_CACHE = RA.KVCache(_nan_k, np.zeros((2, 1, 3, 2)), 2)
_nan_w = np.zeros((2, 1, 3, 2))
_nan_w[0, 0, 2, 1] = np.nan                                         # newest slot of a full window
NAN_WINDOW_CACHE = RA.KVCache(np.zeros((2, 1, 3, 2)), _nan_w, 7, window=2)

BAD_CALLS = [
    ("softmax", (NAN,), {}),
    ("softmax", (np.array([1.0, np.inf]),), {}),
    ("softmax", (Q,), {"axis": 3}),
    ("softmax", (Q,), {"axis": 1.0}),
    ("softmax", (np.float64(1.0),), {}),
    ("attention", (Q, K[..., :3], V), {}),
    ("attention", (Q, K, V[:, :5]), {}),
    ("attention", (Q, K[:1], V[:1]), {}),
    ("attention", (Q[0, 0], K, V), {}),
    ("attention", (Q, K, V), {"mask": np.ones((4, 4), dtype=bool)}),
    ("attention", (Q, K, V), {"mask": np.ones((5, 6))}),
    ("attention", (Q, K, V), {"causal": "top-right"}),
    ("attention", (Q, K, V), {"scale": -1.0}),
    ("attention", (Q, K, V), {"scale": "big"}),
    ("attention", (Q, K, V), {"bias": np.zeros((3, 3))}),
    ("attention", (NAN, K, V), {}),
    ("attention", (Q, NAN_KEY, V), {}),                    # NaN at an attended key
    ("attention", (Q, K, NAN_KEY), {"causal": "bottom-right"}),
    ("multi_head_attention", (Q, NAN, MHA), {}),
    ("grouped_query_attention", (Q, NAN, GQA), {"causal": True}),
    ("cross_attention", (Q, NAN, MHA), {"memory_mask": np.ones((2, 5), dtype=bool)}),
    ("attention", (Q.astype(np.float16), K, V), {}),
    ("attention", (BIG, BIG, BIG), {}),                      # the logits overflow float32
    ("multi_head_attention", (Q, Q, GQA), {}),
    ("multi_head_attention", (Q[..., :3], Q, MHA), {}),
    ("multi_head_attention", (Q, Q, MHA), {"mask": np.ones((2, 5, 4), dtype=bool)}),
    ("multi_head_attention", (Q, Q, MHA), {"bias": np.zeros((3, 5, 5))}),
    ("grouped_query_attention", (Q, Q, "params"), {}),
    ("grouped_query_attention", (Q, Q[:1], GQA), {}),
    ("cross_attention", (Q, K, MHA), {"memory_mask": np.ones((2, 5), dtype=bool)}),
    ("decode_step", (Q[:, :2], GQA, RA.init_kv_cache(GQA, (2,), 3)), {}),
    ("decode_step", (Q[:, :1], GQA, "cache"), {}),
    ("decode_step", (Q[:1, :1], GQA, RA.init_kv_cache(GQA, (2,), 3)), {}),
    ("decode_step", (Q[:, :1], GQA, RA.KVCache(np.zeros((2, 1, 1, 2)), np.zeros((2, 1, 1, 2)), 1)),
     {}),
    ("layer_norm", (np.float64(1.0),), {}),
    ("layer_norm", (Q,), {"gamma": np.array([1.0, np.inf, 1.0, 1.0])}),
    ("layer_norm", (Q,), {"beta": np.ones(3)}),
    ("layer_norm", (Q,), {"eps": -1.0}),
    ("feed_forward", (Q, FFN), {"activation": "swish"}),
    ("feed_forward", (Q, "params"), {}),
    ("feed_forward", (Q[..., :3], FFN), {}),
    ("random_features", (Q, W), {"kind": "cosine"}),
    ("random_features", (Q, W[:, :3]), {}),
    ("random_features", (Q, W), {"kind": "trig", "stabilizer": np.zeros((2, 5, 1))}),
    ("random_features", (Q, W), {"stabilizer": np.zeros((2, 4, 1))}),
    ("favor_attention", (Q, K, V, W), {"causal": True}),
    ("favor_attention", (Q, K, V, W), {"key_stabilizer": "global"}),
    ("favor_attention", (Q, K, V, W), {"chunk_size": 0}),
    ("favor_attention", (Q, K, V, W), {"mask": np.ones((2, 5), dtype=bool)}),
    ("favor_attention", (Q, K, V, W), {"stabilize": 1}),
    ("favor_attention_recurrent", (Q, K, V, W), {}),
    ("favor_attention_recurrent", (Q, Q, Q[..., :2], W), {"kind": "exp"}),
    # issue 17: windows and soft caps, and which error comes first (the reference's order)
    ("attention", (Q, K, V), {"window": 3}),
    ("attention", (Q, K, V), {"window": (3,)}),
    ("attention", (Q, K, V), {"window": (1, -1)}),
    ("attention", (Q, K, V), {"window": (1.0, 0)}),
    ("attention", (Q, K, V), {"window": (True, 0)}),
    ("attention", (Q, K, V), {"window": 3, "causal": "top-right"}),
    ("attention", (Q, K, V), {"window": 3, "mask": np.ones((4, 4), dtype=bool)}),
    ("attention", (Q, K, V), {"window": 3, "scale": -1.0}),
    ("attention", (Q, K, V), {"softcap": 0.0}),
    ("attention", (Q, K, V), {"softcap": -2.0}),
    ("attention", (Q, K, V), {"softcap": np.inf}),
    ("attention", (Q, K, V), {"softcap": True}),
    ("attention", (Q, K, V), {"softcap": "30"}),
    ("attention", (Q, K, V), {"softcap": -1.0, "bias": np.zeros((3, 3))}),
    ("attention", (Q, K, V), {"softcap": -1.0, "window": (1, 1)}),
    ("attention", (Q, NAN_KEY, V), {"softcap": -1.0}),
    ("attention", (Q, NAN_KEY, V), {"window": (1, 1)}),    # key 3 of batch 1 is in a window
    ("attention", (BIG, BIG, BIG), {"window": (1, 0)}),
    ("rms_norm", (np.float64(1.0),), {}),
    ("rms_norm", (NAN,), {}),
    ("rms_norm", (Q,), {"gamma": np.array([1.0, np.inf, 1.0, 1.0])}),
    ("rms_norm", (Q,), {"gamma": np.ones(3)}),
    ("rms_norm", (Q,), {"eps": -1.0}),
    ("rms_norm", (Q,), {"eps": np.nan}),
    ("rms_norm", (Q.astype(np.int8),), {"eps": "small"}),
    # issue 17: packed documents, RoPE and windows in the heads, padded and windowed decoding
    ("attention", (Q, K[:, :5], V[:, :5]), {"segment_ids": np.zeros(5)}),
    ("attention", (Q, K, V), {"segment_ids": np.zeros(5, dtype=int)}),          # Lq != Lk
    ("attention", (Q, Q, Q), {"segment_ids": np.zeros((3, 5), dtype=int)}),
    ("attention", (Q, Q, Q), {"segment_ids": np.zeros(4, dtype=int)}),
    ("attention", (Q, Q, Q), {"segment_ids": np.zeros(4, dtype=int), "mask": np.ones((4, 4))}),
    ("attention", (Q, Q, Q), {"segment_ids": np.zeros(4, dtype=int), "window": 2}),
    ("attention", (Q, Q, Q), {"segment_ids": np.zeros(4), "bias": np.zeros((3, 3))}),
    ("attention", (Q, Q, Q), {"segment_ids": np.zeros(4), "softcap": -1.0}),
    ("attention", (Q, NAN_KEY[:, :5], Q), {"segment_ids": np.arange(5)}),
    ("multi_head_attention", (Q, Q, MHA), {"rope_base": "10"}),
    ("multi_head_attention", (Q, Q, MHA), {"rope_base": -1.0}),
    ("multi_head_attention", (Q, Q, MHA), {"rope_base": np.inf}),
    ("multi_head_attention", (Q, Q, MHA), {"rope_base": True}),
    ("multi_head_attention", (Q, K, MHA), {"rope_base": 10.0}),                # Lq != Lk
    ("multi_head_attention", (Q, Q, MHA_ODD), {"rope_base": 10.0}),           # Dh odd
    ("multi_head_attention", (Q, Q, MHA), {"rope_base": -1.0, "causal": "top-right"}),
    ("multi_head_attention", (Q, Q[..., :3], MHA), {"rope_base": -1.0}),
    ("multi_head_attention", (Q, Q, MHA), {"window": 3}),
    ("multi_head_attention", (Q, Q, MHA), {"window": (1, -1), "causal": "top-right"}),
    ("multi_head_attention", (Q, Q, MHA), {"window": (1, -1), "mask": np.ones((4, 4), bool)}),
    ("multi_head_attention", (Q, Q, MHA), {"window": (1, -1), "rope_base": 0.0}),
    ("multi_head_attention", (Q, NAN, MHA), {"window": (1, 0)}),            # row 0 in a window
    ("grouped_query_attention", (Q, Q, GQA), {"rope_base": 0}),
    ("grouped_query_attention", (Q, K, GQA), {"rope_base": 10.0, "window": (0, 0)}),
    ("grouped_query_attention", (Q, Q, GQA), {"window": (0, "1"), "bias": np.zeros((3, 5, 5))}),
    ("grouped_query_attention", (Q, NAN, GQA), {"window": (None, 0), "rope_base": 10.0}),
    ("decode_step", (Q[:, :1], GQA, RA.init_kv_cache(GQA, (2,), 3)), {"positions": [0.0, 0.0]}),
    ("decode_step", (Q[:, :1], GQA, RA.init_kv_cache(GQA, (2,), 3)), {"positions": [0, 0, 0]}),
    ("decode_step", (Q[:, :1], GQA, RA.init_kv_cache(GQA, (2,), 3)), {"positions": [1, 0]}),
    ("decode_step", (Q[:, :2], GQA, RA.init_kv_cache(GQA, (2,), 3)), {"positions": [1, 0]}),
    ("decode_step", (NAN[:, :1], GQA, RA.init_kv_cache(GQA, (2,), 3)), {}),
    ("decode_step", (NAN[:, :1], GQA, RA.init_kv_cache(GQA, (2,), 3)),
     {"positions": [0, -1], "rope_base": -1.0}),                      # NaN token 0 is real
    ("decode_step", (NAN[:, :1], GQA, RA.init_kv_cache(GQA, (2,), 3)),
     {"positions": [-1, 0], "rope_base": -1.0}),                      # a padding token may be NaN
    ("decode_step", (Q[:, :1], GQA, RA.init_kv_cache(GQA, (2,), 3)), {"rope_base": "10"}),
    ("decode_step", (Q[:, :1], MHA_ODD, RA.init_kv_cache(MHA_ODD, (2,), 3)), {"rope_base": 10.0}),
    ("decode_step", (Q[:, :1], GQA, NAN_CACHE), {}),                   # slot 1 is attended
    ("decode_step", (Q[:, :1], GQA, NAN_CACHE), {"positions": [1, 0], "rope_base": -2.0}),
    ("decode_step", (Q[:, :1], GQA, NAN_WINDOW_CACHE), {}),            # a slot in the window
    ("decode_step", (Q[:, :1], GQA, RA.KVCache(np.zeros((2, 1, 2, 2)), np.zeros((2, 1, 2, 2)), 5,
                                                 window=1)), {"positions": [6, 0]}),
]

_REFERENCE = {"softmax": RA, "attention": RA, "multi_head_attention": RA, "grouped_query_attention": RA,
              "cross_attention": RA, "decode_step": RA, "layer_norm": RL, "rms_norm": RL,
              "feed_forward": RL,
              "random_features": RP, "favor_attention": RP, "favor_attention_recurrent": RP}


_GUARD_ARG = list(inspect.signature(FA.flash_tasks.py_func).parameters).index("guard")


@pytest.mark.parametrize("name, args, kwargs", BAD_CALLS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)])
def test_bad_input_raises_the_reference_error_before_compiled_code(fast, monkeypatch, name,
                                                                   args, kwargs):
    """The reference's error, and no fast-math kernel entered with bad input.

    The one exception is the attention kernel in a guarded mode, which reads
    keys and values no one has scanned and scans each block itself before
    any fast-math arithmetic touches it (then the exact checks raise); it is
    run for real, and must trip on these inputs. A decode step with a
    non-finite cache slot also projects (and rotates) the new token first:
    those kernels read the token and the weights, which are checked, never
    the cache, which only the guarded attention kernel reads.
    """
    bad_cache = name == "decode_step" and any(a is NAN_CACHE or a is NAN_WINDOW_CACHE
                                              for a in args)
    clean_inputs = {"_project_tasks", "_rope_tasks"} if bad_cache else set()
    for module, kernel in KERNELS:
        original = getattr(module, kernel)

        def entered(*a, _kernel=kernel, _original=original, **k):
            if _kernel == "flash_tasks" and a[_GUARD_ARG] != FA.GUARD_NONE:
                return _original(*a, **k)          # must trip: else no error is raised
            if _kernel in clean_inputs:
                assert all(np.isfinite(x).all() for x in a[:2]), _kernel   # token, weights
                return _original(*a, **k)
            raise AssertionError(f"{_kernel} was entered with bad input")
        monkeypatch.setattr(module, kernel, entered)
    with pytest.raises((ValueError, TypeError)) as expected:
        getattr(_REFERENCE[name], name)(*args, **kwargs)
    with pytest.raises(expected.type) as got:
        getattr(fast, name)(*args, **kwargs)
    assert str(got.value) == str(expected.value)


def test_large_but_finite_logits_use_the_kernel_or_agree(fast):
    """Inputs near the overflow bound: the fast path still equals the reference."""
    q = np.full((1, 3, 2), 1e18, dtype=np.float32)
    k = np.full((1, 3, 2), 1e-18, dtype=np.float32)
    v = np.arange(6, dtype=np.float32).reshape(1, 3, 2)
    np.testing.assert_allclose(fast.attention(q, k, v), RA.attention(q, k, v), rtol=1e-6)


def test_empty_inputs_give_empty_outputs(fast):
    out = fast.attention(np.zeros((2, 3, 1)), np.zeros((2, 4, 1)), np.zeros((2, 4, 0)))
    assert out.shape == (2, 3, 0)
    assert fast.attention(np.zeros((0, 3, 1)), np.zeros((0, 4, 1)), np.zeros((0, 4, 2))).shape \
        == (0, 3, 2)
    assert fast.layer_norm(np.zeros((0, 4))).shape == (0, 4)
    assert fast.random_features(np.zeros((0, 3)), np.ones((2, 3))).shape == (0, 2)


def test_math_constants_of_the_exp():
    assert math.isclose(float(FN._C1_64) + float(FN._C2_64), math.log(2), rel_tol=1e-16)
    assert math.isclose(float(FN._C1_32) + float(FN._C2_32), math.log(2), rel_tol=1e-7)
