"""Cost of FAVOR+ against exact attention as the sequence grows (Performer claim 16).

For a fixed number ``m`` of random features, FAVOR+ never forms the ``L x L``
attention matrix: bidirectional FAVOR+ costs ``O(L m d)`` time and
``O(L m + m d)`` memory, and the causal scan the same with chunks of fixed
size. Exact attention costs ``O(L^2 d)`` time and ``O(L^2)`` memory. This
script measures both with the reference implementation, in one process:

* time: the fastest of ``--repeats`` timed groups of calls, per call (after a
  warm-up call);
* memory: peak of ``tracemalloc`` (numpy reports its buffers to it) during
  one call, above what was allocated before it;

for ``L`` on a doubling grid, bidirectional and causal, prints a table, fits
the log-log slope of each column over the larger half of the grid (about 1
for FAVOR+, 2 for exact attention) and records the crossover ``L`` from which
FAVOR+ is cheaper (interpolated on the log-log grid), in
``benchmarks/performer_cost.json``.

This is a benchmark, not a test: nothing here asserts a timing.

Usage::

    .venv/bin/python benchmarks/performer_cost.py            # L = 64 .. 4096
    .venv/bin/python benchmarks/performer_cost.py --quick    # L = 64 .. 1024, 3 repeats

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR, §2.2
and Algorithm 1 (linear cost of FAVOR+), §4 (speed and memory against L).
Katharopoulos et al. 2020, Transformers are RNNs, §3.2-3.3 (linear attention,
causal prefix sums).
"""

from __future__ import annotations

import os

# One BLAS thread, set before numpy loads its BLAS: the comparison is between
# algorithms, not between thread schedules on a shared machine.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

from transformer_theory.impl.attention import attention  # noqa: E402
from transformer_theory.impl.performer import favor_attention, orthogonal_gaussian  # noqa: E402

#: Where the results go (next to this script).
DEFAULT_OUT = Path(__file__).with_name("performer_cost.json")


def measure(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, int]:
    """Seconds per call and the peak extra bytes of one call.

    Time: calls are grouped so that a group lasts at least 0.05 s (as
    ``timeit.Timer.autorange`` does); the result is the fastest group's time
    per call over ``repeats`` groups -- the minimum is the least disturbed by
    other processes. Memory: ``tracemalloc`` peak of one call above the
    memory traced before it.
    """
    fn()                                                   # warm-up (BLAS threads, caches)
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start >= 0.05:
            break
        number *= 2
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return min(times), int(peak - base)


def loglog_slope(lengths, values) -> float:
    """Least-squares slope of log(value) against log(L)."""
    x, y = np.log(np.asarray(lengths, float)), np.log(np.asarray(values, float))
    return float(np.polyfit(x, y, 1)[0])


def crossover(lengths, favor, exact) -> float | None:
    """The smallest L from which FAVOR+ is cheaper, interpolated in log-log; None if never.

    If FAVOR+ is already cheaper at the smallest L, that L is returned.
    """
    lengths = np.asarray(lengths, float)
    ratio = np.log(np.asarray(favor, float)) - np.log(np.asarray(exact, float))   # < 0: FAVOR+ wins
    if ratio[0] < 0 and np.all(ratio < 0):
        return float(lengths[0])
    for i in range(len(lengths) - 1, 0, -1):
        if ratio[i] < 0 <= ratio[i - 1] and np.all(ratio[i:] < 0):
            lo, hi = math.log(lengths[i - 1]), math.log(lengths[i])
            frac = ratio[i - 1] / (ratio[i - 1] - ratio[i])
            return float(math.exp(lo + frac * (hi - lo)))
    return None


def run(lengths, *, d: int, m: int, repeats: int, seed: int) -> dict:
    """Measure FAVOR+ and exact attention (bidirectional and causal) for each L."""
    rng = np.random.default_rng(seed)
    w = orthogonal_gaussian(m, d, rng)                                  # (m, d), fixed
    rows = []
    for length in lengths:
        q = rng.standard_normal((length, d)) / d ** 0.25                # (L, d)
        k = rng.standard_normal((length, d)) / d ** 0.25                # (L, d)
        v = rng.standard_normal((length, d))                            # (L, d)
        row = {"L": int(length)}
        for causal in (False, True):
            tag = "causal" if causal else "bidirectional"
            t_f, b_f = measure(lambda: favor_attention(q, k, v, w, causal=causal), repeats)
            t_e, b_e = measure(lambda: attention(q, k, v, causal=causal), repeats)
            row[tag] = {"favor_seconds": t_f, "exact_seconds": t_e,
                        "favor_peak_bytes": b_f, "exact_peak_bytes": b_e}
        rows.append(row)
        print(_table_row(row), flush=True)
    summary = {}
    half = len(lengths) // 2
    for tag in ("bidirectional", "causal"):
        col = {key: [r[tag][key] for r in rows] for key in rows[0][tag]}
        summary[tag] = {
            "time_slope_favor": loglog_slope(lengths[half:], col["favor_seconds"][half:]),
            "time_slope_exact": loglog_slope(lengths[half:], col["exact_seconds"][half:]),
            "memory_slope_favor": loglog_slope(lengths[half:], col["favor_peak_bytes"][half:]),
            "memory_slope_exact": loglog_slope(lengths[half:], col["exact_peak_bytes"][half:]),
            "crossover_L_time": crossover(lengths, col["favor_seconds"], col["exact_seconds"]),
            "crossover_L_memory": crossover(lengths, col["favor_peak_bytes"],
                                            col["exact_peak_bytes"]),
        }
    return {"config": {"d": d, "dv": d, "m": m, "kind": "positive", "W": "orthogonal_gaussian",
                       "dtype": "float64", "repeats": repeats, "seed": seed,
                       "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                       "lengths": [int(x) for x in lengths]},
            "environment": {"python": platform.python_version(), "numpy": np.__version__,
                            "machine": platform.machine(), "platform": platform.platform(terse=True)},
            "rows": rows, "summary": summary}


_HEADER = (f"{'L':>6} | {'bi FAVOR s':>11} {'bi exact s':>11} {'bi FAVOR MB':>12} "
           f"{'bi exact MB':>12} | {'ca FAVOR s':>11} {'ca exact s':>11} {'ca FAVOR MB':>12} "
           f"{'ca exact MB':>12}")


def _table_row(row: dict) -> str:
    cells = [f"{row['L']:>6}"]
    for tag in ("bidirectional", "causal"):
        r = row[tag]
        cells.append(f"{r['favor_seconds']:>11.5f} {r['exact_seconds']:>11.5f} "
                     f"{r['favor_peak_bytes'] / 1e6:>12.3f} {r['exact_peak_bytes'] / 1e6:>12.3f}")
    return " | ".join(cells)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="L up to 1024, 3 repeats")
    parser.add_argument("--max-len", type=int, default=4096, help="largest L (a power of 2)")
    parser.add_argument("--d", type=int, default=64, help="head dimension")
    parser.add_argument("--m", type=int, default=256, help="number of random features")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20200930)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    max_len = 1024 if args.quick else args.max_len
    repeats = 3 if args.quick else args.repeats
    lengths = [2 ** p for p in range(6, int(math.log2(max_len)) + 1)]
    print(f"FAVOR+ (m = {args.m}, positive features) against exact attention, d = {args.d}, "
          f"float64; fastest of {repeats} timed groups per call, tracemalloc peak of one call")
    print(_HEADER)
    result = run(lengths, d=args.d, m=args.m, repeats=repeats, seed=args.seed)
    for tag, s in result["summary"].items():
        cross_t = s["crossover_L_time"]
        cross_m = s["crossover_L_memory"]
        print(f"{tag}: time slope FAVOR+ {s['time_slope_favor']:.2f}, exact "
              f"{s['time_slope_exact']:.2f}; memory slope FAVOR+ {s['memory_slope_favor']:.2f}, "
              f"exact {s['memory_slope_exact']:.2f}; crossover L (time) "
              f"{'none in range' if cross_t is None else f'{cross_t:.0f}'}, (memory) "
              f"{'none in range' if cross_m is None else f'{cross_m:.0f}'}")
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
