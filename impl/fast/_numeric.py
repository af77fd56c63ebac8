"""Scalar building blocks shared by the numba kernels of the accelerated path.

Three things numba does not provide on a machine without Intel's SVML:

* a vectorisable ``exp``: numba lowers ``math.exp`` / ``np.exp`` inside a loop
  to one scalar libm call per element, so a softmax loop never vectorises.
  :func:`fast_exp` is Cody-Waite range reduction plus a polynomial, written
  with plain arithmetic and one bit construction of ``2**n``, which LLVM
  vectorises like any other loop body;
* a vectorisable ``max`` reduction: numba's ``max(a, b)`` is a compare and a
  branch, which the loop vectoriser does not recognise as a reduction;
  :func:`fmax` emits ``llvm.maxnum`` instead;
* control over the vector width: LLVM prefers 256-bit vectors on AVX-512
  machines; :func:`prefer_wide_vectors` marks the calling function so that its
  loops may use the full register width.

The kernels are compiled with :data:`FASTMATH` (reassociation, so that sums
and maxima vectorise). :func:`fast_exp` is compiled *without* reassociation
(only ``contract``): its range reduction ``(x - n c_1) - n c_2`` must not be
re-associated into ``x - n (c_1 + c_2)``. LLVM keeps fast-math flags per
instruction, so the strict instructions stay strict after inlining.

Also here: :func:`run_tasks`, the parallel loop of the kernels, and
:func:`single_threaded_blas`, because the kernels call BLAS from several
threads at once (``np.dot`` on blocks) and a multi-threaded BLAS called from
inside a parallel region oversubscribes the cores.

Why threads and ``nogil`` kernels rather than ``parallel=True`` kernels: every
kernel is a serial ``@njit(nogil=True)`` function over a strided subset of its
tasks (``range(first, n_tasks, stride)``, or tasks claimed from a shared
counter), and :func:`run_tasks` runs one subset per thread. Measured on the
2-core machine of issue 9, a ``prange`` kernel costs about twice the compile
time and cache-load time of the serial one and pays a thread hand-off on every
call (milliseconds when the cores are busy), which dominates the thousands of
small calls of the claims; with :func:`run_tasks` a small problem runs inline
in the calling thread and a large one is split exactly as ``prange`` would
split it, over (batch*head, query block) for attention. The attention kernel
also has a ``parallel=True`` *launcher* (:func:`.flash.flash_parallel`),
compiled on its first parallel call: where numba's threading layer is
thread-safe (:mod:`._native`), a parallel attention call starts its threads
from compiled code, in microseconds instead of the helper pool's tens.

Caching note: numba's on-disk cache (``cache=True``) is invalidated by changes
to a kernel's own source file only. A change here does not invalidate the
kernels that inline these helpers; delete ``impl/fast/__pycache__`` after
editing this file.

References
----------
Cody & Waite 1980, Software Manual for the Elementary Functions, ch. 6 (exp:
reduction by ``n ln 2`` split into a short and a long constant).
Moshier 1989, Methods and Programs for Mathematical Functions (Cephes
``expf``: the degree-5 minimax polynomial and the ``ln 2`` split for float32;
the split for float64).
Estrin 1960, Organization of computer systems (the evaluation scheme of the
float64 polynomial); Trefethen 2013, Approximation Theory and Approximation
Practice, ch. 16 (Chebyshev interpolants are near-best).
Muller 2016, Elementary Functions: Algorithms and Implementation, §11.3
(building ``2**n`` from its exponent bits).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from llvmlite import ir
from numba import config as numba_config
from numba import njit, types
from numba.extending import intrinsic, overload, register_jitable

from ._native import native_threads

__all__ = [
    "FASTMATH",
    "claim_next",
    "JIT",
    "JIT_INLINE",
    "MIN_PARALLEL_WORK",
    "MIN_PARALLEL_WORK_NATIVE",
    "fast_exp",
    "fast_exp_nonpositive",
    "fast_exp_array",
    "fast_tanh",
    "fast_tanh_array",
    "fmax",
    "FEW_ROWS",
    "IEEE_JIT",
    "matmul",
    "matmul_few",
    "matmul_nt",
    "matmul_nt_few",
    "matmul_tn",
    "matvec",
    "values_by_blas",
    "prefer_wide_vectors",
    "single_threaded_blas",
    "run_tasks",
    "worth_parallel",
    "num_threads",
    "as_kernel_array",
    "typed",
]

#: Fast-math flags of the kernels: reassociation lets sums and maxima
#: vectorise, ``contract`` allows FMA, ``nsz``/``arcp`` are harmless here, and
#: ``nnan`` holds because every input is validated finite and no kernel forms
#: ``inf - inf``. ``ninf`` is *not* set: masked logits are ``-inf``.
FASTMATH = frozenset({"reassoc", "contract", "arcp", "nsz", "nnan"})

#: Options of every serial kernel. ``error_model="numpy"``: a float division by
#: zero gives inf (as in numpy) instead of raising ZeroDivisionError.
JIT = dict(cache=True, nogil=True, fastmath=set(FASTMATH), error_model="numpy")

#: Options of the block helpers called only from kernels: inlined into the
#: caller's numba IR, so that LLVM optimises their code once, in place.
JIT_INLINE = dict(JIT, inline="always")

#: Below this many floating-point operations a call runs in the calling thread
#: (threads started through the helper pool).
MIN_PARALLEL_WORK = 2_000_000
#: Below this many floating-point operations a call with a native launcher runs
#: in the calling thread. Measured on 2 cores (attention, d = 64, inline against
#: two native threads): 0.26 M operations break even (decode, float32 B*H = 2,
#: Lk = 512: 35 against 35 us), 0.52 M gain 8-17% and 2.1 M gain 23-30%.
MIN_PARALLEL_WORK_NATIVE = 500_000


# ---------------------------------------------------------------------------
# LLVM-level helpers
# ---------------------------------------------------------------------------

@intrinsic
def _pow2(typingctx, n):
    """``2**n`` for an integral-valued float ``n`` in the normal exponent range.

    Builds the IEEE bit pattern directly: biased exponent ``n + bias`` shifted
    into the exponent field, zero mantissa.
    """
    if n == types.float32:
        sig, int_t, float_t, bias, shift = types.float32(types.float32), ir.IntType(32), \
            ir.FloatType(), 127, 23
    elif n == types.float64:
        sig, int_t, float_t, bias, shift = types.float64(types.float64), ir.IntType(64), \
            ir.DoubleType(), 1023, 52
    else:
        return None

    def codegen(context, builder, signature, args):
        i = builder.fptosi(args[0], int_t)
        i = builder.add(i, ir.Constant(int_t, bias))
        i = builder.shl(i, ir.Constant(int_t, shift))
        return builder.bitcast(i, float_t)

    return sig, codegen


@intrinsic
def fmax(typingctx, a, b):
    """``max(a, b)`` as ``llvm.maxnum`` (no NaNs: inputs are validated finite).

    Unlike numba's ``max``, the loop vectoriser recognises a chain of these as
    a max-reduction.
    """
    if a != b or a not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.maxnum", [ty], ir.FunctionType(ty, [ty, ty]))
        return builder.call(fn, args, fastmath=("nnan", "nsz"))

    return a(a, b), codegen


@intrinsic
def claim_next(typingctx, counter):
    """Atomically ``counter[0] += 1``, returning the old value: the next task to take.

    ``counter`` is an int64 array shared by the threads of :func:`run_tasks`;
    every thread takes tasks until the returned value passes the task count,
    so a thread that starts late (woken after the others) takes fewer. Which
    thread runs a task never changes what the task computes.
    """
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        one = ir.Constant(ir.IntType(64), 1)
        return builder.atomic_rmw("add", arr.data, one, "monotonic")

    return types.int64(counter), codegen


@intrinsic
def prefer_wide_vectors(typingctx):
    """Let the calling function's loops use 512-bit vectors where the CPU has them.

    LLVM's default tuning for AVX-512 CPUs caps auto-vectorisation at 256 bits
    (``prefer-vector-width=256``); the per-function attribute lifts the cap.
    It is only a hint: on CPUs without AVX-512 nothing changes.
    """
    def codegen(context, builder, signature, args):
        # llvmlite's FunctionAttributes only admits enum attributes by name; the
        # string attribute is added to the underlying set and printed verbatim.
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


# ---------------------------------------------------------------------------
# exp
# ---------------------------------------------------------------------------

# float32 (Cephes expf): |r| <= ln2/2, degree-5 minimax polynomial, < 1 ulp.
_F = np.float32
_LO32 = _F(-87.33654)          # below: exp underflows to a subnormal -> 0
_HI32 = _F(88.72283)           # above: exp overflows -> inf
_LOG2E32 = _F(1.44269504088896341)
_C1_32 = _F(0.693359375)       # ln 2 = C1 - C2, C1 with 9 significant bits
_C2_32 = _F(-2.12194440e-4)
_P0_32, _P1_32, _P2_32 = _F(1.9875691500e-4), _F(1.3981999507e-3), _F(8.3334519073e-3)
_P3_32, _P4_32, _P5_32 = _F(4.1665795894e-2), _F(1.6666665459e-1), _F(5.0000001201e-1)
_HALF32, _ONE32, _ZERO32, _INF32 = _F(0.5), _F(1.0), _F(0.0), _F(np.inf)

# float64: |r| <= ln2/2, exp(r) = 1 + r + r^2 q(r) with q of degree 9: the Chebyshev
# interpolant of (exp(r) - 1 - r)/r^2 at 10 nodes on [-ln2/2, ln2/2] (mpmath.chebyfit at 40
# digits, rounded to float64), near-minimax; its relative error in exp is 1.7e-17 (0.15 ulp).
# It replaced the Taylor polynomial of degree 13: two multiply-adds fewer, and evaluated by
# Estrin's scheme (a dependency chain of about 5 operations, against 11 for Horner's rule);
# measured 0.99 against 1.25 ns/element.
_LO64 = -708.3964185322641     # below: subnormal range -> 0
_HI64 = 709.782712893384       # above: overflow -> inf
_LOG2E64 = 1.4426950408889634
_C1_64 = 6.93145751953125e-1   # ln 2 = C1 + C2, C1 with 15 significant bits
_C2_64 = 1.42860682030941723212e-6
_Q0, _Q1, _Q2 = 0.5000000000000001, 0.16666666666666669, 0.041666666666624164
_Q3, _Q4, _Q5 = 0.008333333333330065, 0.0013888888917196719, 0.00019841269863040545
_Q6, _Q7, _Q8 = 2.4801521322368692e-05, 2.7557268480310024e-06, 2.7620075879983367e-07
_Q9 = 2.5100375832561234e-08


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _reduce_expm1_f32(xc):
    """``(n, exp(r) - 1)`` with ``xc = n ln 2 + r``, ``|r| <= ln2/2``, for a clamped float32 ``xc``.

    ``exp(r) - 1`` is the polynomial's own value (``r + r^2 p(r)``), before
    the 1 is added: accurate relative to itself however small ``r`` is.
    """
    n = np.floor(xc * _LOG2E32 + _HALF32)                 # nearest integer to x / ln 2
    r = xc - n * _C1_32
    r = r - n * _C2_32                                     # r = x - n ln 2, |r| <= ln2/2
    p = ((((_P0_32 * r + _P1_32) * r + _P2_32) * r + _P3_32) * r + _P4_32) * r + _P5_32
    return n, p * r * r + r                                # exp(r) - 1


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _reduce_f32(xc):
    """``(n, exp(r))`` with ``xc = n ln 2 + r``, ``|r| <= ln2/2``, for a clamped float32 ``xc``."""
    n, em1 = _reduce_expm1_f32(xc)
    return n, em1 + _ONE32


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _reduce_expm1_f64(xc):
    """``(n, exp(r) - 1)`` with ``xc = n ln 2 + r``, ``|r| <= ln2/2``, for a clamped float64 ``xc``."""
    n = np.floor(xc * _LOG2E64 + 0.5)
    r = xc - n * _C1_64
    r = r - n * _C2_64
    r2 = r * r
    r4 = r2 * r2
    q = ((_Q0 + _Q1 * r) + r2 * (_Q2 + _Q3 * r)) + r4 * (      # Estrin: q(r), degree 9
        ((_Q4 + _Q5 * r) + r2 * (_Q6 + _Q7 * r)) + r4 * (_Q8 + _Q9 * r))
    return n, q * r2 + r


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _reduce_f64(xc):
    """``(n, exp(r))`` with ``xc = n ln 2 + r``, ``|r| <= ln2/2``, for a clamped float64 ``xc``."""
    n, em1 = _reduce_expm1_f64(xc)
    return n, em1 + 1.0


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _exp_f32(x):
    """exp for float32: 0 below the normal range, inf above it, < 1 ulp between."""
    n, p = _reduce_f32(min(max(x, _LO32), _HI32))
    top = n > _F(127.0)                                    # 2**128 is not a float32:
    y = (p + p if top else p) * _pow2(n - _ONE32 if top else n)   # use 2 * 2**127
    y = _ZERO32 if x < _LO32 else y
    return _INF32 if x > _HI32 else y


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _exp_f64(x):
    """exp for float64: 0 below the normal range, inf above it, about 1 ulp between."""
    n, p = _reduce_f64(min(max(x, _LO64), _HI64))
    top = n > 1023.0                                       # 2**1024 is not a float64:
    y = (p + p if top else p) * _pow2(n - 1.0 if top else n)      # use 2 * 2**1023
    y = 0.0 if x < _LO64 else y
    return np.inf if x > _HI64 else y


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _exp_nonpositive_f32(x):
    """exp for float32 x <= 0 (softmax arguments): no overflow branch needed."""
    n, p = _reduce_f32(max(x, _LO32))
    return _ZERO32 if x < _LO32 else p * _pow2(n)


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _exp_nonpositive_f64(x):
    """exp for float64 x <= 0 (softmax arguments): no overflow branch needed."""
    n, p = _reduce_f64(max(x, _LO64))
    return 0.0 if x < _LO64 else p * _pow2(n)


#: Largest |x| that :func:`fast_tanh` evaluates: tanh(20) rounds to 1 in float32 and float64
#: (1 - tanh(20) is 8.5e-18), and exp(40) is finite in both.
_TANH_LIMIT = 20.0


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _tanh_f32(x):
    """tanh for float32 as ``expm1(2a) / (expm1(2a) + 2)``, ``a = |x|``, with the sign of ``x``."""
    a = min(abs(x), _F(_TANH_LIMIT))
    n, em1 = _reduce_expm1_f32(a + a)                     # 2a = n ln 2 + r
    s = _pow2(n)
    e = s * em1 + (s - _ONE32)                             # expm1(2a) = 2^n (1 + em1) - 1
    return math.copysign(e / (e + _F(2.0)), x)


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _tanh_f64(x):
    """tanh for float64 as ``expm1(2a) / (expm1(2a) + 2)``, ``a = |x|``, with the sign of ``x``."""
    a = min(abs(x), _TANH_LIMIT)
    n, em1 = _reduce_expm1_f64(a + a)
    s = _pow2(n)
    e = s * em1 + (s - 1.0)
    return math.copysign(e / (e + 2.0), x)


def _by_float_type(f32, f64):
    """A numba ``overload`` implementation choosing ``f32`` or ``f64`` by the argument's type.

    Parameters
    ----------
    f32, f64 : numba dispatchers
        The float32 and float64 kernels of one scalar function.

    Returns
    -------
    callable
        ``impl(x)`` for :func:`numba.extending.overload`: the kernel of
        ``x``'s type, or None (no implementation) for other types.
    """
    def impl(x):
        if x == types.float32:
            return lambda x: f32(x)
        if x == types.float64:
            return lambda x: f64(x)
        return None
    return impl


def fast_exp_nonpositive(x):
    """:func:`fast_exp` for arguments ``x <= 0`` (up to a rounding error), as in a softmax.

    Leaves out the overflow handling, which such arguments never need; valid
    for ``x`` below about 88 (float32) or 709 (float64). Compiled code only.
    """
    raise NotImplementedError("fast_exp_nonpositive is only available inside numba-compiled code")


overload(fast_exp_nonpositive)(_by_float_type(_exp_nonpositive_f32, _exp_nonpositive_f64))


def fast_exp(x):
    """``exp(x)`` for a float32 or float64 scalar inside a numba kernel.

    Relative error about one ulp in the normal range; results that would be
    subnormal are flushed to 0 (an absolute error below 1.2e-38 in float32,
    2.3e-308 in float64); ``-inf`` gives 0 and overflow gives ``inf``, as
    ``np.exp`` does. Only callable from compiled code.
    """
    raise NotImplementedError("fast_exp is only available inside numba-compiled code")


overload(fast_exp)(_by_float_type(_exp_f32, _exp_f64))


def fast_tanh(x):
    """``tanh(x)`` for a float32 or float64 scalar inside a numba kernel (the logit soft cap).

    Computed as ``expm1(2|x|) / (expm1(2|x|) + 2)`` with the sign of ``x``,
    where ``expm1`` takes :func:`fast_exp`'s range reduction and polynomial
    without adding their 1 (so no cancellation for small ``|x|``); ``|x|`` is
    clamped at 20, where tanh rounds to 1. Relative error at most 2 ulp from
    subnormal to huge arguments (tested; measured 1.3 ulp in float32 and 1.6
    in float64), and it vectorises, where ``math.tanh`` is a scalar libm
    call. Only callable from compiled code.
    """
    raise NotImplementedError("fast_tanh is only available inside numba-compiled code")


overload(fast_tanh)(_by_float_type(_tanh_f32, _tanh_f64))


# ---------------------------------------------------------------------------
# arrays and BLAS threads
# ---------------------------------------------------------------------------

def as_kernel_array(a: np.ndarray, dtype) -> np.ndarray:
    """``a`` in ``dtype``, C-contiguous and writeable (copied only if needed).

    Kernels are compiled once per argument *type*; numba's array type includes
    the layout and the read-only flag, so normalising both keeps one
    specialisation per dtype.
    """
    out = np.ascontiguousarray(a, dtype=dtype)
    if not out.flags.writeable:
        out = out.copy()
    return out


def _find_blas_thread_setters():
    """(get, set) of the BLAS library numba's ``np.dot`` calls, or None.

    numba calls BLAS through ``scipy.linalg.cython_blas``; SciPy's wheels ship
    OpenBLAS as ``scipy.libs/libscipy_openblas*.so`` (symbols prefixed
    ``scipy_``), other builds link a system ``libopenblas``.
    """
    try:
        import scipy
    except ImportError:                                   # pragma: no cover
        return None
    root = os.path.dirname(os.path.dirname(scipy.__file__))
    candidates = sorted(glob.glob(os.path.join(root, "scipy.libs", "*openblas*")))
    candidates += ["libopenblas.so.0", "libopenblas.so"]
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas_", "openblas_"):
            getter = getattr(lib, prefix + "get_num_threads", None)
            setter = getattr(lib, prefix + "set_num_threads", None)
            if getter is not None and setter is not None:
                getter.restype = ctypes.c_int
                setter.argtypes = [ctypes.c_int]
                return getter, setter
    return None


_BLAS_THREADS = None
_BLAS_LOCK = threading.RLock()
_BLAS_DEPTH = [0, 1]          # [nesting depth, saved thread count]


@contextlib.contextmanager
def single_threaded_blas():
    """Run the body with the kernels' BLAS limited to one thread per caller.

    The kernels parallelise over (batch, head, block) with numba threads and
    call ``np.dot`` on blocks from each of them; BLAS must not start its own
    threads on top. The previous thread count is restored on exit. Nested use
    is cheap; if the BLAS library is not found this does nothing.
    """
    global _BLAS_THREADS
    if _BLAS_THREADS is None:
        _BLAS_THREADS = _find_blas_thread_setters() or False
    if not _BLAS_THREADS:
        yield
        return
    getter, setter = _BLAS_THREADS
    with _BLAS_LOCK:
        if _BLAS_DEPTH[0] == 0:
            _BLAS_DEPTH[1] = getter()
            if _BLAS_DEPTH[1] != 1:
                setter(1)
        _BLAS_DEPTH[0] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_DEPTH[0] -= 1
            if _BLAS_DEPTH[0] == 0 and _BLAS_DEPTH[1] != 1:
                setter(_BLAS_DEPTH[1])


# ---------------------------------------------------------------------------
# typed constants
# ---------------------------------------------------------------------------

def typed(like, value):
    """``value`` converted to the float type of ``like`` (a scalar or an array; compiled code only).

    numba types ``float32 + 1`` as float64; kernels that are generic over the
    dtype build their constants with this instead of literals.
    """
    raise NotImplementedError("typed is only available inside numba-compiled code")


@overload(typed)
def _typed_overload(like, value):
    if isinstance(like, types.Array):                     # an array: its dtype
        like = like.dtype
    if like == types.float32:
        return lambda like, value: np.float32(value)
    if like == types.float64:
        return lambda like, value: np.float64(value)
    return None


# ---------------------------------------------------------------------------
# the parallel loop
# ---------------------------------------------------------------------------

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def num_threads() -> int:
    """Threads the kernels use: numba's setting (``NUMBA_NUM_THREADS``, default all cores)."""
    return max(1, int(numba_config.NUMBA_NUM_THREADS))


def _pool() -> ThreadPoolExecutor:
    """The helper threads (one fewer than :func:`num_threads`), created on first use."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, num_threads() - 1),
                                       thread_name_prefix="transformer-theory-fast")
        return _POOL


def _forget_pool_in_child() -> None:
    """After ``fork``: drop the parent's pool, whose threads the child does not have.

    A forked process holds only the thread that forked, but a copy of the
    executor that still counts the parent's helper threads as its own, so it
    would never start one: the child's first parallel call would queue its
    tasks and wait for them forever (``multiprocessing``'s default start
    method on Linux forks). The locks of the pool and of
    :func:`single_threaded_blas` are replaced too, in case a thread that the
    child does not have held one at the fork.
    """
    global _POOL, _POOL_LOCK, _BLAS_LOCK
    _POOL = None
    _POOL_LOCK = threading.Lock()
    _BLAS_LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):                  # POSIX; Windows cannot fork
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def worth_parallel(work: float, minimum: float | None = None, native: bool = False) -> bool:
    """Whether :func:`run_tasks` splits a call of ``work`` operations over threads (given tasks).

    A call is split from :data:`MIN_PARALLEL_WORK` operations (read at each
    call), or from its own ``minimum`` where that is larger. A call whose
    threads start natively (``native``, see :mod:`._native`) is split from
    :data:`MIN_PARALLEL_WORK_NATIVE` operations, and its
    ``minimum`` is ignored: the minima price the pool's hand-off.
    """
    if native:
        least = MIN_PARALLEL_WORK_NATIVE
    else:
        least = MIN_PARALLEL_WORK if minimum is None else max(MIN_PARALLEL_WORK, minimum)
    return num_threads() > 1 and work >= least


def run_tasks(kernel, n_tasks: int, work: float, minimum: float | None = None, *,
              native=None) -> None:
    """Run ``kernel(first, stride)`` over ``n_tasks`` tasks on the available cores.

    ``kernel(first, stride)`` must process tasks ``first, first + stride, ...``
    (a ``nogil`` numba kernel writing disjoint parts of a preallocated output).
    With ``T`` threads, thread ``r`` runs ``kernel(r, T)``; the calling thread
    takes ``r = 0``. A problem too small for :func:`worth_parallel`, or of one
    task, runs inline as ``kernel(0, 1)``. The strided split balances tasks of
    unequal cost (causal query blocks).

    With ``native=(launcher, args)`` and :func:`._native.native_threads`, a
    parallel call runs ``launcher(T, *args)`` instead: a compiled
    ``parallel=True`` loop over ``T`` copies of a kernel that claims its tasks
    itself (the same work as ``kernel``), started on numba's threads.

    Parameters
    ----------
    kernel : callable (first, stride) -> None
    n_tasks : int
    work : float
        Estimated floating-point operations of the whole call.
    minimum : float, optional
        The call's own least ``work`` to split over threads, where larger than
        :data:`MIN_PARALLEL_WORK` (see :func:`worth_parallel`).
    native : (callable, tuple), optional
        The kernel's compiled launcher and its arguments after the thread count.
    """
    threads = min(num_threads(), n_tasks)
    use_native = threads > 1 and native is not None and native_threads()
    if threads <= 1 or not worth_parallel(work, minimum, use_native):
        kernel(0, 1)
        return
    if use_native:
        launcher, args = native
        launcher(threads, *args)
        return
    pool = _pool()
    futures = [pool.submit(kernel, r, threads) for r in range(1, threads)]
    try:
        kernel(0, threads)
    finally:
        for f in futures:
            f.result()


@njit(**JIT)
def _exp_elements(x, out):
    prefer_wide_vectors()
    for i in range(x.shape[0]):
        out[i] = fast_exp(x[i])


@njit(**JIT)
def _tanh_elements(x, out):
    prefer_wide_vectors()
    for i in range(x.shape[0]):
        out[i] = fast_tanh(x[i])


def _elementwise(kernel, x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"x: expected dtype float32 or float64, got {arr.dtype}")
    flat = as_kernel_array(arr.reshape(-1), arr.dtype)
    out = np.empty_like(flat)
    kernel(flat, out)
    return out.reshape(arr.shape)


def fast_exp_array(x) -> np.ndarray:
    """:func:`fast_exp` of every element of a float32/float64 array (for tests and benchmarks).

    Parameters
    ----------
    x : array_like, float32 or float64

    Returns
    -------
    np.ndarray
        Same shape and dtype as ``x``.
    """
    return _elementwise(_exp_elements, x)


def fast_tanh_array(x) -> np.ndarray:
    """:func:`fast_tanh` of every element: parameters and result as :func:`fast_exp_array`."""
    return _elementwise(_tanh_elements, x)


# ---------------------------------------------------------------------------
# block products
# ---------------------------------------------------------------------------
# Every kernel multiplies blocks through these four helpers, so numba compiles
# one BLAS wrapper per layout combination and dtype (compile time), and every
# product writes into a preallocated block (no allocation in the loops).

@njit(**JIT)
def matmul(a, b, out):
    """out (m, n) = a (m, k) @ b (k, n); all C-contiguous blocks (BLAS gemm)."""
    np.dot(a, b, out)


@njit(**JIT)
def matmul_nt(a, b, out):
    """out (m, n) = a (m, k) @ b (n, k)^T; C-contiguous blocks (BLAS gemm, b transposed)."""
    np.dot(a, b.T, out)


@njit(**JIT)
def matmul_tn(a, b, out):
    """out (m, n) = a (k, m)^T @ b (k, n); C-contiguous blocks (BLAS gemm, a transposed)."""
    np.dot(a.T, b, out)


@njit(**JIT)
def matvec(a, x, out):
    """out (m,) = a (m, k) @ x (k,), as a vectorised loop (no BLAS call)."""
    zero = typed(out, 0.0)
    for i in range(a.shape[0]):
        total = zero
        for j in range(a.shape[1]):
            total += a[i, j] * x[j]
        out[i] = total


#: Rows up to which :func:`matmul_nt_few` beats BLAS for the scores ``q K^T``,
#: and :func:`matmul_few` may beat it for ``P V`` (:func:`values_by_blas`). For
#: one to four rows (decode) BLAS packs the whole other operand for a product
#: that reads it once; measured on a 512 x 64 key block (one thread,
#: 1 / 4 / 16 query rows): float32 5.6 / 19.3 / 71.3 us with loops against
#: 6.0 / 22.6 / 43.4 with BLAS, float64 15.4 / 33.9 / 131.7 against
#: 31.8 / 66.8 / 100.3.
FEW_ROWS = 4


@register_jitable
def values_by_blas(rows, itemsize):
    """Whether the product ``P V`` of a query block of ``rows`` rows goes to BLAS.

    Blocks of more than :data:`FEW_ROWS` rows always do. Of fewer, float32
    blocks of two to four rows do too: :func:`matmul_few` adds each weighted
    value row into the output in memory, one dependent load and store per key,
    which OpenBLAS's ``sgemm`` does not. One row stays in the loops, and so
    does float64 (``dgemm`` was slower at the larger shapes). Callable from Python and
    from the kernels; the caller pins BLAS to one thread where this is True.

    Measured on the 2-core machine (AMD EPYC, OpenBLAS 0.3.30; d = 64, decode
    calls against torch SDPA in one process, 5 interleaved rounds, three
    alternating processes per tree; the fast/torch ratio with BLAS over the
    ratio with the loops, below 1 where BLAS is faster): float32, 4 rows,
    B*H x Lk = 1 x 4096: 0.80, 8 x 1024: 0.83, 8 x 4096: 0.86, 8 x 16384:
    0.83, 32 x 1024: 0.82, 1 x 16384: 0.92, 1 x 1024: 1.03; float32, 1 row:
    0.95-1.06, but 1.18 at 32 x 1024 and 1.24 at 1 x 1024 (the pinning costs
    a few microseconds of a 35 us call). float64, 1 row: 1.38-1.41 at 8 x
    4096, 8 x 16384 and 32 x 1024; 4 rows: 0.83-0.86 at 1 x 1024, 8 x 1024
    and 1 x 4096 but 1.07-1.15 at 8 x 4096 and 8 x 16384 (a first run,
    without the pinning in either tree).
    """
    return rows > FEW_ROWS or (rows > 1 and itemsize == 4)


#: Options of the few-row products: IEEE arithmetic like the BLAS they stand
#: in for (``reassoc`` and ``contract`` only, so the sums still vectorise), so
#: that a NaN or inf among their inputs reaches their outputs, where the
#: attention kernel's guard looks for it (and the scans of :mod:`._scan` see
#: NaN as NaN). Not inlined into the fast-math kernels: numba would lower
#: inlined code with the caller's flags. The flags must be explicit: numba
#: compiles a callee whose ``fastmath`` is unset with its caller's flags
#: (``inherit_if_not_set("fastmath")``), and the kernels' ``nnan`` then made
#: a NaN compare as an ordinary number (measured).
IEEE_JIT = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"}, error_model="numpy")


@njit(**IEEE_JIT)
def matmul_nt_few(a, b, out):
    """out (m, n) = a (m, k) @ b (n, k)^T for a few rows m, as loops (no BLAS).

    Each row of ``b`` is read once and used for every row of ``a``.
    """
    prefer_wide_vectors()
    zero = typed(out, 0.0)
    for j in range(b.shape[0]):
        b_j = b[j]
        for i in range(a.shape[0]):
            a_i = a[i]
            total = zero
            for e in range(b_j.shape[0]):
                total += a_i[e] * b_j[e]
            out[i, j] = total


@njit(**IEEE_JIT)
def matmul_few(a, b, out):
    """out (m, n) = a (m, k) @ b (k, n) for a few rows m, as loops (no BLAS).

    Each row of ``b`` is read once and added, weighted, to every row of
    ``out`` (contiguous along ``n``, so the inner loop vectorises).
    """
    prefer_wide_vectors()
    zero = typed(out, 0.0)
    for i in range(out.shape[0]):
        for e in range(out.shape[1]):
            out[i, e] = zero
    for j in range(b.shape[0]):
        b_j = b[j]
        for i in range(a.shape[0]):
            w = a[i, j]
            out_i = out[i]
            for e in range(b_j.shape[0]):
                out_i[e] += w * b_j[e]

