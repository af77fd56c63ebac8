"""``make bench``: the accelerated path against the reference and PyTorch, as ratios.

Issue 9's benchmark. Every timing figure is a ratio of two timings measured in
the same process, each the median of ``--repeats`` (>= 7) runs after a warm-up
run; implementations are interleaved run by run, and the process sleeps
``--pause`` (>= 0.3 s) before every timed run, because OpenBLAS threads spin for
about 0.1 s after a numpy matmul and slow whatever runs next (the issue's
"measurement trap"). It reports:

* the GEMM rate of this machine (numpy matmul, all cores), the yardstick;
* scaled dot-product attention, B*H = 8, d = 64, L in {512, ..., 8192}, causal
  and not, float32 and float64: the numpy reference, the fast path, and
  ``torch.nn.functional.scaled_dot_product_attention`` (torch threads = cores)
  when torch is installed, with the fast path's share of the GEMM rate; each
  fast/torch ratio is printed as the median of the per-round ratios with
  their range beside it; accuracy of the fast path against float64;
* decode steps (issue 20): one query against Lk in {1024, ..., 32768} keys,
  B*H in {1, 8, 32}, fast path against torch SDPA, calls back to back, with
  the bytes of K and V read per second;
* decode steps of a whole self-attention layer (``decode_step``: the
  projections, the next cache and the attention), E = 512 and 1024, caches of
  4096 and 8192 slots, fast path against the reference;
* where the fast kernel's time goes (block products vs softmax passes), from
  ``benchmarks/profile_attention.py``, and the block products' GFLOP/s per BLAS
  backend (OpenBLAS, which the kernel uses; torch's; MKL's runtime when the
  ``mkl`` wheel is installed), with each backend's installed size in the
  environment;
* floors at the target shape, timed in the same rounds as torch: the kernel
  with its softmax switched off (its block products alone), and an ideal
  kernel (every FLOP at the large-GEMM rate plus one exp per score), as ratios
  to torch's time: how close to torch tuning the kernel's own code could get;
* today's pieces in the same tiled kernel (issues 17 and 20), at the target
  shape: soft cap, additive bias, boolean mask and packed documents, each
  timed against plain attention in the same rounds (their cost over plain),
  and the mask and bias against torch SDPA's ``attn_mask``;
* sliding-window attention (issue 17), fast path, float32, window (w - 1, 0)
  with w = 128, L in {512, ..., 4096}, against the dense causal kernel: time
  per query row, which stays flat for the window (the kernel skips the key
  blocks outside it: O(L w)) and grows with L for the dense kernel (O(L^2)),
  and the key blocks each query block visited (the kernel's work counter);
* FAVOR+ (m = 256): L up to 65,536 against exact attention, the crossover L
  and the growth ratio time(65,536) / time(16,384);
* peak extra memory of each implementation, measured in a fresh process
  (peak resident set after ``/proc/self/clear_refs``, minus the resident set
  before the call);
* compile time on first call (empty numba cache) and load time from the cache,
  each in a fresh process.

Writes ``benchmarks/results.json`` and prints the tables. Not a test: nothing
here asserts a timing.

Usage::

    .venv/bin/python benchmarks/bench.py            # the full grid (~15 min on 2 cores)
    .venv/bin/python benchmarks/bench.py --quick    # a smaller grid (~5 min)

References
----------
Dao et al. 2022, FlashAttention, §4 (speed and memory against sequence
length); Choromanski et al. 2021, Rethinking Attention with Performers, §4
(FAVOR+ against exact attention as L grows).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import glob
import importlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results.json"
HEAD_DIM = 64
SLABS = 8                       # B * H

#: The targets (measured at B*H = 8, d = 64, L = 4096; issue 20 set the time
#: ratio and the GEMM shares, full and causal, and added decode).
TARGETS = {
    "fast_vs_torch": 0.9,        # time ratio, <=
    "fast_vs_gemm": 0.75,        # fraction of the GEMM FLOP rate, full attention, >=
    "fast_vs_gemm_causal": 0.70, # the same, causal, >=
    "decode_fast_vs_torch": 0.9, # time ratio of a decode step (Lq = 1), <=
    "softcap_over_plain": 1.25,  # soft-capped / plain attention time, fast path, <=
    "reference_vs_fast": 5.0,    # speed-up over the reference, >=
    "memory_fraction": 0.05,     # peak extra memory / naive L x L scores at L = 16384, <=
    "favor_growth": 4.5,         # time(65536) / time(16384), <=
    "accuracy_float32": 2e-6,    # max abs error against float64, <=
    "accuracy_float64": 5e-15,
    "cold_compile_per_dtype": 10.0,   # seconds, <=
    "cache_load_all": 0.5,            # seconds, <=
}


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------

def timed_runs(calls: dict, repeats: int, pause: float) -> dict:
    """Seconds of each of ``repeats`` runs of each zero-argument callable, interleaved.

    Each callable runs once untimed (warm-up), then ``repeats`` times, in
    rounds (one run of each callable per round); before every run the process
    sleeps ``pause`` seconds so that spinning BLAS threads of the previous run
    are idle. The order turns by one place each round (:func:`round_order`),
    so that no callable always runs first, last or right after the same
    other one: whatever one run leaves behind (caches, freed memory, a
    thread still spinning) falls on each of the others in turn. Returns
    ``{name: [seconds of round 0, 1, ...]}``.
    """
    for fn in calls.values():
        time.sleep(pause)
        fn()
    runs = {name: [] for name in calls}
    for r in range(repeats):
        for name in round_order(list(calls), r):
            fn = calls[name]
            gc.collect()
            time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t0)
    return runs


def round_order(names: list, round_index: int) -> list:
    """``names`` turned left by ``round_index`` places: the order of one round of runs."""
    if not names:
        return []
    shift = round_index % len(names)
    return names[shift:] + names[:shift]


def timed_medians(calls: dict, repeats: int, pause: float) -> dict:
    """Median seconds of each callable over the interleaved runs of :func:`timed_runs`."""
    return {name: float(np.median(t)) for name, t in timed_runs(calls, repeats, pause).items()}


def ratio_spread(runs: dict, num: str, den: str) -> dict:
    """The time ratio ``num / den`` per round of :func:`timed_runs`: median, min and max.

    Each round's two runs are adjacent in time, so the per-round ratio
    cancels most of the machine's drift; the spread of the ratios is what a
    reader needs to judge a median against a target.
    """
    ratios = np.asarray(runs[num]) / np.asarray(runs[den])
    return {"median": float(np.median(ratios)), "min": float(ratios.min()),
            "max": float(ratios.max())}


def _spread_text(spread: dict) -> str:
    return f"{spread['median']:5.2f} [{spread['min']:.2f}-{spread['max']:.2f}]"


def environment() -> dict:
    """Versions, cores and BLAS of this run."""
    env = {"python": platform.python_version(), "machine": platform.machine(),
           "processor": platform.processor(), "cores": os.cpu_count(),
           "numpy": np.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        env["cpu"] = names[0] if names else None
    except OSError:
        pass
    try:
        with open("/proc/loadavg") as f:
            env["load_average_at_start"] = f.read().split()[:3]
    except OSError:
        pass
    import numba

    env["numba"] = numba.__version__
    env["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    try:                                 # before the fast path starts threads (see _native)
        import torch

        env["torch"] = torch.__version__
    except ImportError:
        env["torch"] = None
    env["fast_threads"] = importlib.import_module("transformer_theory.impl.fast._native").describe()
    env["blas_backends"] = blas_backends()
    return env


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def _inputs(length: int, dtype, slabs: int = SLABS, seed: int = 0):
    """q, k, v of shape (1, B*H, L, d): 4-d, as torch's CPU flash kernel requires."""
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((1, slabs, length, HEAD_DIM)).astype(dtype)
                 for _ in range(3))


def attention_flops(length: int, causal: bool, slabs: int = SLABS) -> float:
    """4 L^2 d per head (two products of 2 L^2 d), half of it when causal."""
    return 4.0 * length * length * HEAD_DIM * slabs / (2 if causal else 1)


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------

def gemm_rates(repeats: int, pause: float, n: int = 4096) -> dict:
    """GEMM FLOP rate of numpy matmul (its BLAS, all cores), per dtype."""
    out = {}
    for dtype in (np.float32, np.float64):
        a = np.random.default_rng(1).standard_normal((n, n)).astype(dtype)
        b = np.random.default_rng(2).standard_normal((n, n)).astype(dtype)
        sec = timed_medians({"gemm": lambda: a @ b}, repeats, pause)["gemm"]
        out[np.dtype(dtype).name] = {"n": n, "seconds": sec, "gflops": 2.0 * n ** 3 / sec / 1e9}
    return out


def attention_grid(lengths, repeats: int, pause: float, gemm: dict, reference_max: int) -> list:
    """Reference, fast and torch SDPA on the grid; times and ratios."""
    import transformer_theory.impl.fast as F
    from transformer_theory.impl import attention as R

    torch = _torch()
    rows = []
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        for causal in (False, True):
            for length in lengths:
                q, k, v = _inputs(length, dtype)
                calls = {"fast": lambda: F.attention(q, k, v, causal=causal)}
                if torch is not None:
                    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
                    calls["torch"] = lambda: torch.nn.functional.scaled_dot_product_attention(
                        tq, tk, tv, is_causal=causal)
                if length <= reference_max:
                    calls["reference"] = lambda: R.attention(q, k, v, causal=causal)
                runs = timed_runs(calls, repeats, pause)
                sec = {key: float(np.median(t)) for key, t in runs.items()}
                flops = attention_flops(length, causal)
                row = {"dtype": name, "causal": causal, "L": length, "BH": SLABS, "d": HEAD_DIM,
                       "seconds": sec, "flops": flops,
                       "fast_vs_gemm": flops / sec["fast"] / 1e9 / gemm[name]["gflops"]}
                if "torch" in sec:
                    spread = ratio_spread(runs, "fast", "torch")
                    row["fast_vs_torch"] = spread["median"]
                    row["fast_vs_torch_spread"] = spread
                    row["torch_vs_gemm"] = flops / sec["torch"] / 1e9 / gemm[name]["gflops"]
                if "reference" in sec:
                    row["reference_vs_fast"] = sec["reference"] / sec["fast"]
                rows.append(row)
                print(_attention_line(row), flush=True)
    return rows


def decode_grid(lengths, slab_counts, repeats: int, pause: float) -> list:
    """Decode steps: one query against ``Lk`` keys, fast path against torch SDPA.

    What a KV-cache user runs, token after token: ``q (1, B*H, 1, d)``,
    ``k, v (1, B*H, Lk, d)``. A timed run is ``calls`` calls back to back (a
    decoding loop's calls come warm; a lone call after the pause would time
    the threads' wake-up), about 2^21 key rows per run. The rate reported is
    the bytes of ``K`` and ``V`` read per second: a decode step reads the
    cache once and is bound by memory, not by FLOPs.
    """
    import transformer_theory.impl.fast as F

    torch = _torch()
    rows = []
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        for slabs in slab_counts:
            for length in lengths:
                rng = np.random.default_rng(7)
                q = rng.standard_normal((1, slabs, 1, HEAD_DIM)).astype(dtype)
                k, v = (rng.standard_normal((1, slabs, length, HEAD_DIM)).astype(dtype)
                        for _ in range(2))
                calls = max(1, (1 << 21) // (length * slabs))
                timed = {"fast": lambda: [F.attention(q, k, v) for _ in range(calls)]}
                if torch is not None:
                    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
                    sdpa = torch.nn.functional.scaled_dot_product_attention
                    timed["torch"] = lambda: [sdpa(tq, tk, tv) for _ in range(calls)]
                runs = timed_runs(timed, repeats, pause)
                sec = {key: float(np.median(t)) / calls for key, t in runs.items()}
                cache_bytes = 2.0 * slabs * length * HEAD_DIM * np.dtype(dtype).itemsize
                row = {"dtype": name, "BH": slabs, "Lq": 1, "Lk": length, "d": HEAD_DIM,
                       "calls_per_timed_run": calls, "seconds": sec,
                       "gb_per_s": {key: cache_bytes / t / 1e9 for key, t in sec.items()}}
                text = (f"  {name:7s} BH={slabs:2d} Lk={length:5d}  fast {sec['fast'] * 1e6:8.0f} us"
                        f" ({row['gb_per_s']['fast']:5.1f} GB/s)")
                if "torch" in sec:
                    spread = ratio_spread(runs, "fast", "torch")
                    row["fast_vs_torch"] = spread["median"]
                    row["fast_vs_torch_spread"] = spread
                    text += (f"  torch {sec['torch'] * 1e6:8.0f} us ({row['gb_per_s']['torch']:5.1f}"
                             f" GB/s)  fast/torch {_spread_text(spread)}")
                rows.append(row)
                print(text, flush=True)
    return rows


def _repeat(call, times: int) -> None:
    """``call()`` ``times`` times, keeping no result (a list of them would keep every cache)."""
    for _ in range(times):
        call()


#: The layer shapes of :func:`layer_step_grid`: (d_model, heads, cache slots, positions decoded).
LAYER_STEPS = [(512, 8, 4096, 512), (512, 8, 4096, 4000), (1024, 16, 8192, 8000)]


def layer_step_grid(shapes, repeats: int, pause: float) -> list:
    """Whole decoding steps of a self-attention layer with a KV cache, fast against reference.

    What a KV-cache user runs per token and layer: ``decode_step`` projects the
    new token, writes its key and value into the next cache and attends over
    the cache. Timed back to back (``calls`` per timed run, at least 16: a
    step allocates its next cache, and the first steps after a pause pay the
    page faults of fresh memory, which a decoding loop does not), batch 1, for
    ``(E, H, Lmax, t)`` in ``shapes``: a cache of ``Lmax`` slots holding ``t``
    positions. There is no torch counterpart of this contract (torch keeps the
    cache in the caller), so the ratio is against the numpy reference.
    """
    import transformer_theory.impl.fast as F
    from transformer_theory.impl import kv_cache as reference

    rows = []
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        for d_model, heads, slots, length in shapes:
            rng = np.random.default_rng(11)
            params = F.init_multi_head(d_model, heads, rng, dtype=dtype)
            empty = F.init_kv_cache(params, (1,), slots, dtype=dtype)
            cache = F.KVCache(*(rng.standard_normal(a.shape).astype(dtype)
                                for a in (empty.k, empty.v)), length)
            x = rng.standard_normal((1, 1, d_model)).astype(dtype)
            calls = max(16, (1 << 26) // (slots * d_model))        # steady state, as in a loop
            runs = timed_runs({                   # each step's result dropped, as in a loop
                "fast": lambda: _repeat(lambda: F.decode_step(x, params, cache), calls),
                "reference": lambda: _repeat(lambda: reference.decode_step(x, params, cache),
                                             calls)}, repeats, pause)
            sec = {key: float(np.median(t)) / calls for key, t in runs.items()}
            spread = ratio_spread(runs, "reference", "fast")
            rows.append({"dtype": name, "E": d_model, "H": heads, "slots": slots, "t": length,
                         "calls_per_timed_run": calls, "seconds": sec,
                         "reference_vs_fast": spread})
            print(f"  {name:7s} E={d_model:4d} H={heads:2d} slots={slots:5d} t={length:5d}"
                  f"  fast {sec['fast'] * 1e6:8.0f} us  reference {sec['reference'] * 1e6:8.0f} us"
                  f"  reference/fast {_spread_text(spread)}", flush=True)
    return rows


#: The pieces of :func:`pieces_grid`: keyword arguments of ``attention`` given
#: the inputs' length, dtype and a seeded generator. The bias and mask are one
#: (L, L) matrix shared by all B*H slabs; the packed row holds 4 documents.
PIECES = {
    "softcap": lambda length, dtype, rng: {"softcap": 30.0},
    "bias": lambda length, dtype, rng: {
        "bias": (0.1 * rng.standard_normal((length, length))).astype(dtype)},
    "mask": lambda length, dtype, rng: {"mask": rng.random((length, length)) < 0.9},
    "segments": lambda length, dtype, rng: {"segment_ids": np.repeat(np.arange(4), length // 4)},
}


def piece_rows(runs: dict, length: int) -> list:
    """The pieces table from the timed rounds of :func:`pieces_grid`.

    ``runs[dtype]`` holds :func:`timed_runs` of ``plain``, of each piece and,
    where torch ran it, ``torch_<piece>``. Each row: the piece's per-round
    time over plain attention (its cost), and over torch's same call.
    """
    rows = []
    for dtype, timed in runs.items():
        for piece in PIECES:
            if piece not in timed:
                continue
            row = {"dtype": dtype, "piece": piece, "L": length,
                   "over_plain": ratio_spread(timed, piece, "plain")}
            if "torch_" + piece in timed:
                row["fast_vs_torch"] = ratio_spread(timed, piece, "torch_" + piece)
            rows.append(row)
    return rows


def pieces_grid(length: int, repeats: int, pause: float) -> list:
    """Soft cap, bias, mask and packed documents in the fast kernel, against plain attention.

    B*H = 8, d = 64, full attention, float32 and float64, all calls of one
    dtype interleaved in the same rounds. torch SDPA runs the mask (boolean
    ``attn_mask``) and the bias (float ``attn_mask``) too; it has no soft cap
    and no segment ids (its users form the L x L mask themselves). Returns
    :func:`piece_rows`.
    """
    import transformer_theory.impl.fast as F

    torch = _torch()
    runs = {}
    for dtype in (np.float32, np.float64):
        q, k, v = _inputs(length, dtype)                                # (1, B*H, L, d)
        rng = np.random.default_rng(3)
        options = {piece: make(length, dtype, rng) for piece, make in PIECES.items()}
        calls = {"plain": lambda: F.attention(q, k, v)}
        for piece, kw in options.items():
            calls[piece] = lambda kw=kw: F.attention(q, k, v, **kw)
        if torch is not None:
            tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
            sdpa = torch.nn.functional.scaled_dot_product_attention
            for piece in ("mask", "bias"):
                t_mask = torch.from_numpy(options[piece][piece])
                calls["torch_" + piece] = lambda m=t_mask: sdpa(tq, tk, tv, attn_mask=m)
        runs[np.dtype(dtype).name] = timed_runs(calls, repeats, pause)
    return piece_rows(runs, length)


def _show_pieces(rows: list) -> None:
    for r in rows:
        text = f"  {r['dtype']:7s} {r['piece']:8s} L={r['L']}  over plain {_spread_text(r['over_plain'])}"
        if "fast_vs_torch" in r:
            text += f"  fast/torch {_spread_text(r['fast_vs_torch'])}"
        print(text)


def window_grid(lengths, repeats: int, pause: float, w: int = 128) -> dict:
    """Fast path, causal, window (w - 1, 0) against the dense causal kernel, float32.

    Both calls of one length are timed interleaved in this process (medians).
    A timed run repeats the call ``max(L) / L`` times (the figures are per
    call): a few-millisecond call right after the pause pays a wake-up cost
    that would otherwise inflate the small lengths' time per row. Reported per
    length: the times, the time per query row of each, the ratio dense /
    window, and each per-row time relative to its value at the smallest L
    (flat for O(L w) work, growing like L for O(L^2)); plus the key blocks each
    query block visited, from the kernel's work counter.
    """
    import transformer_theory.impl.fast as F
    fast_attention = importlib.import_module("transformer_theory.impl.fast.attention")

    window = (w - 1, 0)
    rows = []
    for length in lengths:
        q, k, v = _inputs(length, np.float32)
        calls = max(1, max(lengths) // length)                  # per timed run
        sec = timed_medians(
            {"window": lambda: [F.attention(q, k, v, causal=True, window=window)
                                for _ in range(calls)],
             "dense": lambda: [F.attention(q, k, v, causal=True) for _ in range(calls)]},
            repeats, pause)
        sec = {key: s / calls for key, s in sec.items()}
        visits = []
        q3, k3, v3 = (a.reshape(SLABS, length, HEAD_DIM) for a in (q, k, v))
        fast_attention.run_attention(q3, k3, v3, length, 1, 1.0 / math.sqrt(HEAD_DIM),
                                     "top-left", None, None, np.dtype(np.float32),
                                     window=window, visits=visits)
        blocks = visits[0]                                      # (B*H, query blocks)
        row = {"L": length, "w": w, "window": list(window), "BH": SLABS, "d": HEAD_DIM,
               "dtype": "float32", "seconds": sec, "calls_per_timed_run": calls,
               "us_per_row": {key: s / length * 1e6 for key, s in sec.items()},
               "dense_over_window": sec["dense"] / sec["window"],
               "key_blocks_visited_per_query_block": {
                   "max": int(blocks.max()), "mean": float(blocks.mean())}}
        rows.append(row)
        print("  L=%5d  window %8.2f ms (%6.2f us/row)  dense causal %8.2f ms (%6.2f us/row)"
              "  dense/window %5.2f  key blocks per query block <= %d" % (
                  length, sec["window"] * 1e3, row["us_per_row"]["window"],
                  sec["dense"] * 1e3, row["us_per_row"]["dense"], row["dense_over_window"],
                  row["key_blocks_visited_per_query_block"]["max"]), flush=True)
    first = rows[0]
    for row in rows:
        row["per_row_vs_smallest_L"] = {key: row["us_per_row"][key] / first["us_per_row"][key]
                                        for key in ("window", "dense")}
    last = rows[-1]
    summary = {"L_range": [first["L"], last["L"]],
               "window_per_row_growth": last["per_row_vs_smallest_L"]["window"],
               "dense_per_row_growth": last["per_row_vs_smallest_L"]["dense"],
               "dense_over_window_at_max_L": last["dense_over_window"]}
    return {"rows": rows, "summary": summary}


def accuracy(length: int) -> list:
    """Max abs error of the fast path against the float64 reference (same inputs)."""
    import transformer_theory.impl.fast as F
    from transformer_theory.impl import attention as R

    out = []
    for causal in (False, True):
        q, k, v = _inputs(length, np.float64, seed=5)
        exact = R.attention(q, k, v, causal=causal)
        for dtype in (np.float32, np.float64):
            got = F.attention(q.astype(dtype), k.astype(dtype), v.astype(dtype), causal=causal)
            ref = exact if dtype == np.float64 else R.attention(
                *(a.astype(dtype).astype(np.float64) for a in (q, k, v)), causal=causal)
            out.append({"dtype": np.dtype(dtype).name, "causal": causal, "L": length,
                        "max_abs_error": float(np.max(np.abs(got - ref)))})
        del exact
    return out


def _profile_attention():
    """``benchmarks/profile_attention.py``, the kernel whose parts can be switched off."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module("profile_attention")


def kernel_profile(length: int, repeats: int, pause: float) -> list:
    """Where the fast kernel's time goes at the target shape."""
    profile_attention = _profile_attention()
    out = []
    for dtype in (np.float32, np.float64):
        q, k, v = (a.reshape(SLABS, length, HEAD_DIM) for a in _inputs(length, dtype))
        for causal in (False, True):
            p = profile_attention.profile(q, k, v, causal, repeats=repeats, pause=pause)
            total = p["total"]
            out.append({"dtype": np.dtype(dtype).name, "causal": causal, "L": length,
                        "seconds": p, "fractions": {key: p[key] / total for key in
                                                    ("scores", "softmax", "values", "other")}})
    numeric = importlib.import_module("transformer_theory.impl.fast._numeric")
    calls = 256                               # 64 Ki elements per call: the array stays in L2
    for dtype in (np.float32, np.float64):
        x = -np.abs(np.random.default_rng(3).standard_normal(1 << 16)).astype(dtype) * 10
        out_np = np.empty_like(x)
        out_fast = np.empty_like(x)
        numeric._exp_elements(x, out_fast)                    # compile outside the timing
        sec = timed_medians({"fast_exp": lambda: [numeric._exp_elements(x, out_fast)
                                                  for _ in range(calls)],
                             "np.exp": lambda: [np.exp(x, out=out_np) for _ in range(calls)]},
                            repeats, pause)
        out.append({"dtype": np.dtype(dtype).name, "exp_ns_per_element":
                    {key: s / (calls * x.size) * 1e9 for key, s in sec.items()}})
    out.extend(block_gemm_rates(repeats, pause))
    return out


#: The wheels that MKL's runtime brings (``pip install mkl``), for its installed size.
_MKL_DISTRIBUTIONS = ("mkl", "intel-openmp", "intel-cmplr-lib-ur", "tbb", "tcmlib", "umf")


def _mkl_library():
    """MKL's runtime (``libmkl_rt.so.*`` of the ``mkl`` wheel, under ``sys.prefix/lib``), or None.

    Switched to its sequential layer before any other call, so that no second
    OpenMP runtime joins torch's in this process.
    """
    paths = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so.*")))
    if not paths:
        return None
    lib = ctypes.CDLL(paths[-1])
    lib.MKL_Set_Threading_Layer(ctypes.c_int(1))        # MKL_THREADING_SEQUENTIAL
    return lib


def blas_backends() -> dict:
    """The BLAS libraries the block products could use: version, kernel and installed size.

    OpenBLAS is scipy's (numba's ``np.dot`` calls ``scipy.linalg.cython_blas``),
    always present; MKL when its wheel is installed (measured in
    :func:`block_gemm_rates`, not used by the kernel).
    """
    import importlib.metadata as metadata

    import scipy.linalg  # noqa: F401  (loads the BLAS numba calls)
    import threadpoolctl

    out = {}
    for lib in threadpoolctl.threadpool_info():
        if lib.get("user_api") == "blas" and "scipy" in os.path.basename(
                os.path.dirname(lib["filepath"])):
            out["openblas"] = {"version": lib.get("version"), "kernel": lib.get("architecture"),
                               "file": os.path.basename(lib["filepath"]),
                               "installed_mib": os.path.getsize(lib["filepath"]) / 2 ** 20}
    sizes = {}
    for name in _MKL_DISTRIBUTIONS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        sizes[f"{name} {dist.version}"] = sum((f.size or 0) for f in (dist.files or [])) / 2 ** 20
    if sizes:
        out["mkl"] = {"distributions_mib": sizes, "installed_mib": sum(sizes.values()),
                      "loadable": _mkl_library() is not None}
    return out


def block_gemm_rates(repeats: int, pause: float, calls: int = 200) -> list:
    """GFLOP/s of the kernel's two block products, one thread, per BLAS backend.

    The fused kernel spends most of its time in ``S = Q_b K_b^T`` (BLOCK_Q x d
    times d x BLOCK_K) and ``P V_b`` (BLOCK_Q x BLOCK_K times BLOCK_K x d). With
    d = 64 these are small-k / small-n products, where BLAS libraries differ.
    numba calls the OpenBLAS that scipy bundles; torch uses its own BLAS
    (MKL, linked in); when the ``mkl`` wheel is installed, MKL's runtime is
    called directly too (``cblas_?gemm`` through ctypes, sequential layer).
    The ratios bound what the kernel could gain from another BLAS (issue 20
    asked for an optional MKL backend if it did).
    """
    fast = importlib.import_module("transformer_theory.impl.fast.attention")
    numeric = importlib.import_module("transformer_theory.impl.fast._numeric")
    torch = _torch()
    mkl = _mkl_library()
    bq, bk, d = fast.BLOCK_Q, fast.BLOCK_K, HEAD_DIM
    rows = []
    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(5)
        q = rng.standard_normal((bq, d)).astype(dtype)                  # (bq, d)
        k = rng.standard_normal((bk, d)).astype(dtype)                  # (bk, d)
        p = rng.random((bq, bk)).astype(dtype)                          # (bq, bk)
        s = np.empty((bq, bk), dtype)
        o = np.empty((bq, d), dtype)
        numeric.matmul_nt(q, k, s)
        numeric.matmul(p, k, o)                                         # compile first
        pairs = {"scores": (lambda: numeric.matmul_nt(q, k, s), "q k^T"),
                 "values": (lambda: numeric.matmul(p, k, o), "p v")}
        if torch is not None:
            tq, tk, tp, ts, to = (torch.from_numpy(a) for a in (q, k, p, s, o))
        gemm = None
        if mkl is not None:                             # row-major cblas_?gemm(...)
            gemm = mkl.cblas_sgemm if dtype == np.float32 else mkl.cblas_dgemm
            real = ctypes.c_float if dtype == np.float32 else ctypes.c_double
            c_int, ptr = ctypes.c_int, ctypes.c_void_p
            gemm.argtypes = [c_int] * 6 + [real, ptr, c_int, ptr, c_int, real, ptr, c_int]
            gemm.restype = None
        row_major, plain, transposed = 101, 111, 112
        for part, (fn, what) in pairs.items():
            timed = {"numba": lambda fn=fn: [fn() for _ in range(calls)]}
            if torch is not None:
                if part == "scores":
                    timed["torch"] = lambda: [torch.mm(tq, tk.T, out=ts) for _ in range(calls)]
                else:
                    timed["torch"] = lambda: [torch.mm(tp, tk, out=to) for _ in range(calls)]
            if gemm is not None:
                if part == "scores":                    # s = q k^T
                    args = (row_major, plain, transposed, bq, bk, d, 1.0, q.ctypes.data, d,
                            k.ctypes.data, d, 0.0, s.ctypes.data, bk)
                else:                                   # o = p k
                    args = (row_major, plain, plain, bq, d, bk, 1.0, p.ctypes.data, bk,
                            k.ctypes.data, d, 0.0, o.ctypes.data, d)
                timed["mkl"] = lambda args=args: [gemm(*args) for _ in range(calls)]
            with numeric.single_threaded_blas(), _torch_threads(torch, 1):
                sec = timed_medians(timed, repeats, pause)
            flops = 2.0 * bq * bk * d * calls
            rows.append({"dtype": np.dtype(dtype).name, "block_gemm": part, "shape": what,
                         "block": [bq, bk, d],
                         "gflops": {key: flops / v / 1e9 for key, v in sec.items()}})
    return rows


@contextlib.contextmanager
def _torch_threads(torch, n: int):
    """torch's intra-op threads set to ``n`` inside the block (no-op without torch)."""
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def favor_grid(lengths, exact_max: int, repeats: int, pause: float, m: int = 256) -> dict:
    """FAVOR+ (fast path) against exact attention (fast path), causal and not."""
    import transformer_theory.impl.fast as F
    from transformer_theory.impl.performer import favor_attention as favor_reference
    from transformer_theory.impl.performer import orthogonal_gaussian

    w = orthogonal_gaussian(m, HEAD_DIM, np.random.default_rng(4)).astype(np.float32)
    rows = []
    for causal in (False, True):
        for length in lengths:
            q, k, v = _inputs(length, np.float32)
            q, k = q / 2, k / 2
            calls = {"favor": lambda: F.favor_attention(q, k, v, w, causal=causal)}
            if length <= exact_max:
                calls["exact"] = lambda: F.attention(q, k, v, causal=causal)
            if length == min(lengths):
                calls["favor_reference"] = lambda: favor_reference(q, k, v, w, causal=causal)
            sec = timed_medians(calls, repeats, pause)
            rows.append({"causal": causal, "L": length, "m": m, "seconds": sec})
            print("  FAVOR+ %-6s L=%6d  %s" % ("causal" if causal else "bidir", length,
                                             "  ".join(f"{k} {s * 1e3:9.1f} ms"
                                                       for k, s in sec.items())), flush=True)
    summary = {}
    for causal in (False, True):
        mine = [r for r in rows if r["causal"] == causal]
        by_len = {r["L"]: r["seconds"] for r in mine}
        key = "causal" if causal else "bidirectional"
        summary[key] = {"crossover_L": _crossover(mine)}
        if 65536 in by_len and 16384 in by_len:
            summary[key]["growth_65536_over_16384"] = by_len[65536]["favor"] / by_len[16384]["favor"]
        small = min(by_len)
        if "favor_reference" in by_len[small]:
            summary[key]["reference_vs_fast_at_L"] = {
                "L": small, "ratio": by_len[small]["favor_reference"] / by_len[small]["favor"]}
    return {"rows": rows, "summary": summary}


def _crossover(rows: list) -> float | None:
    """Smallest L where FAVOR+ is faster than exact attention (log-log interpolation)."""
    pts = [(r["L"], r["seconds"]["favor"], r["seconds"]["exact"]) for r in rows
           if "exact" in r["seconds"]]
    for (l0, f0, e0), (l1, f1, e1) in zip(pts, pts[1:]):
        d0, d1 = math.log(f0 / e0), math.log(f1 / e1)
        if d0 > 0 >= d1:
            t = d0 / (d0 - d1)
            return float(math.exp(math.log(l0) + t * (math.log(l1) - math.log(l0))))
    if pts and pts[0][1] <= pts[0][2]:
        return float(pts[0][0])       # already faster at the smallest L measured
    return None


# ---------------------------------------------------------------------------
# fresh-process probes: memory, compile and cache load
# ---------------------------------------------------------------------------

def _rss_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def probe_memory(impl: str, length: int, dtype: str, causal: bool, slabs: int) -> dict:
    """(child process) Peak extra resident memory of one call of ``impl``."""
    q, k, v = _inputs(length, np.dtype(dtype), slabs)
    if impl == "fast":
        import transformer_theory.impl.fast as F

        small = _inputs(256, np.dtype(dtype), slabs)
        F.attention(*small, causal=causal)
        fn = lambda: F.attention(q, k, v, causal=causal)                    # noqa: E731
    elif impl == "torch":
        torch = _torch()
        tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
        small = [torch.from_numpy(a) for a in _inputs(256, np.dtype(dtype), slabs)]
        torch.nn.functional.scaled_dot_product_attention(*small, is_causal=causal)
        fn = lambda: torch.nn.functional.scaled_dot_product_attention(       # noqa: E731
            tq, tk, tv, is_causal=causal)
    else:
        from transformer_theory.impl import attention as R

        R.attention(*_inputs(64, np.dtype(dtype), slabs), causal=causal)
        fn = lambda: R.attention(q, k, v, causal=causal)                    # noqa: E731
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:      # reset the peak (VmHWM) to now
        f.write("5")
    before = _rss_bytes("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    peak = _rss_bytes("VmHWM")
    del out
    return {"impl": impl, "L": length, "dtype": dtype, "causal": causal, "BH": slabs,
            "extra_bytes": peak - before, "seconds": seconds}


def _child(args: list, env: dict | None = None, timeout: float = 1800) -> dict:
    """Run this script in a fresh process with ``args``; parse its last JSON line."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve())] + args,
                          capture_output=True, text=True, env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]}
    return json.loads(lines[-1])


def memory_section(length: int, quick: bool) -> list:
    """Peak extra memory of each implementation in a fresh process."""
    jobs = [("fast", False, SLABS), ("fast", True, SLABS), ("torch", False, SLABS),
            ("fast", False, 1), ("torch", False, 1), ("reference", False, 1)]
    if quick:
        jobs = [("fast", False, SLABS), ("reference", False, 1)]
    out = []
    for impl, causal, slabs in jobs:
        if impl == "torch" and _torch() is None:
            continue
        res = _child(["--probe-memory", impl, str(length), "float32", str(int(causal)),
                      str(slabs)])
        if "extra_bytes" in res:
            naive = slabs * length * length * 4
            res["naive_scores_bytes"] = naive
            res["fraction_of_naive"] = res["extra_bytes"] / naive
            res["fraction_of_one_head_LxL"] = res["extra_bytes"] / (length * length * 4)
        out.append(res)
        print("  memory %-9s BH=%d causal=%-5s %s" % (impl, slabs, causal, _mem_text(res)),
              flush=True)
    return out


def _mem_text(res: dict) -> str:
    if "extra_bytes" not in res:
        return f"error: {res.get('error')}"
    return (f"extra {res['extra_bytes'] / 2**20:9.1f} MiB = {100 * res['fraction_of_naive']:.2f}% "
            f"of the naive scores ({res['naive_scores_bytes'] / 2**20:.0f} MiB)")


def probe_compile(dtypes: list) -> dict:
    """(child process) Seconds to import numba, import the fast path, and warm up ``dtypes``."""
    t0 = time.perf_counter()
    import numba  # noqa: F401
    t1 = time.perf_counter()
    import transformer_theory.impl.fast as F
    t2 = time.perf_counter()
    F.warm_up(dtypes)
    t3 = time.perf_counter()
    return {"dtypes": dtypes, "import_numba": t1 - t0, "import_fast": t2 - t1,
            "warm_up": t3 - t2}


def compile_section() -> dict:
    """Cold compile per dtype (empty numba cache), then loading everything from the cache.

    The children start threads natively (``TT_FAST_THREADS=native``: they do not
    import torch), so ``warm_up`` compiles the attention kernel's parallel launcher
    too, as it does for a program with more than one thread.
    """
    with tempfile.TemporaryDirectory(prefix="tt-numba-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, TT_FAST_THREADS="native")
        cold = {dt: _child(["--probe-compile", dt], env) for dt in ("float32", "float64")}
        load = _child(["--probe-compile", "float32", "float64"], env)
    out = {"cold": cold, "load": load}
    for dt, res in cold.items():
        print(f"  cold compile {dt}: {res.get('warm_up', float('nan')):.1f} s", flush=True)
    print("  load from cache (both dtypes): kernels %.2f s, import numba %.2f s, import fast "
          "%.2f s" % (load.get("warm_up", float("nan")), load.get("import_numba", float("nan")),
                      load.get("import_fast", float("nan"))), flush=True)
    return out


# ---------------------------------------------------------------------------
# tables and targets
# ---------------------------------------------------------------------------

def _attention_line(row: dict) -> str:
    sec = row["seconds"]
    parts = [f"{row['dtype']:7s} {'causal' if row['causal'] else 'full  '} L={row['L']:5d}",
             f"fast {sec['fast'] * 1e3:9.1f} ms ({100 * row['fast_vs_gemm']:4.0f}% GEMM)"]
    if "torch" in sec:
        parts.append(f"torch {sec['torch'] * 1e3:9.1f} ms ({100 * row['torch_vs_gemm']:4.0f}% GEMM)"
                     f"  fast/torch {_spread_text(row['fast_vs_torch_spread'])}")
    if "reference" in sec:
        parts.append(f"reference/fast {row['reference_vs_fast']:6.1f}")
    return "  " + "  ".join(parts)


def evaluate_targets(results: dict, target_length: int) -> list:
    """The issue's target table with the measured figures."""
    rows = []
    att = [r for r in results.get("attention", []) if r["L"] == target_length]

    def add(what, target, measured, met):
        rows.append({"what": what, "target": target, "measured": measured, "met": met})

    for r in att:
        label = f"{r['dtype']} {'causal' if r['causal'] else 'full'} L={r['L']}"
        if "fast_vs_torch" in r:
            add(f"fast/torch time, {label}", "<= 0.9",
                round(r["fast_vs_torch"], 3), r["fast_vs_torch"] <= TARGETS["fast_vs_torch"])
        share = TARGETS["fast_vs_gemm_causal" if r["causal"] else "fast_vs_gemm"]
        add(f"fast vs GEMM rate, {label}", f">= {100 * share:.0f}%", round(r["fast_vs_gemm"], 3),
            r["fast_vs_gemm"] >= share)
        if "reference_vs_fast" in r:
            add(f"reference/fast time, {label}", ">= 5x", round(r["reference_vs_fast"], 2),
                r["reference_vs_fast"] >= TARGETS["reference_vs_fast"])
    for r in results.get("decode", []):
        if "fast_vs_torch" in r:
            add(f"decode fast/torch time, {r['dtype']} BH={r['BH']} Lk={r['Lk']}", "<= 0.9",
                round(r["fast_vs_torch"], 3),
                r["fast_vs_torch"] <= TARGETS["decode_fast_vs_torch"])
    for r in results.get("pieces", []):
        if r["piece"] == "softcap":
            add(f"soft cap / plain time, {r['dtype']} L={r['L']}", "<= 1.25",
                round(r["over_plain"]["median"], 3),
                r["over_plain"]["median"] <= TARGETS["softcap_over_plain"])
    for m in results.get("memory", []):
        if m.get("impl") == "fast" and "fraction_of_naive" in m:
            add(f"fast peak extra memory, L={m['L']} BH={m['BH']} causal={m['causal']}",
                "<= 5% of naive scores", round(m["fraction_of_naive"], 5),
                m["fraction_of_naive"] <= TARGETS["memory_fraction"])
    favor = results.get("favor", {}).get("summary", {})
    for key, s in favor.items():
        if "growth_65536_over_16384" in s:
            add(f"FAVOR+ {key} time(65536)/time(16384)", "<= 4.5",
                round(s["growth_65536_over_16384"], 2),
                s["growth_65536_over_16384"] <= TARGETS["favor_growth"])
    for a in results.get("accuracy", []):
        limit = TARGETS["accuracy_" + a["dtype"]]
        add(f"accuracy {a['dtype']} {'causal' if a['causal'] else 'full'} L={a['L']}",
            f"<= {limit:g}", a["max_abs_error"], a["max_abs_error"] <= limit)
    comp = results.get("compile", {})
    for dt, res in comp.get("cold", {}).items():
        if "warm_up" in res:
            add(f"cold compile {dt}", "<= 10 s", round(res["warm_up"], 2),
                res["warm_up"] <= TARGETS["cold_compile_per_dtype"])
    if "warm_up" in comp.get("load", {}):
        add("load all kernels from cache (fresh process)", "<= 0.5 s",
            round(comp["load"]["warm_up"], 3), comp["load"]["warm_up"] <= TARGETS["cache_load_all"])
    return rows


def _show_profile(rows: list) -> None:
    for p in rows:
        if "block_gemm" in p:
            print("  block GEMM %s %s %s (1 thread): %s" % (
                p["dtype"], p["shape"], "x".join(map(str, p["block"])),
                "  ".join(f"{k} {v:.1f} GFLOP/s" for k, v in p["gflops"].items())))
        elif "fractions" in p:
            print("  %s %s: %s" % (p["dtype"], "causal" if p["causal"] else "full",
                                   "  ".join(f"{k} {100 * v:.0f}%" for k, v in p["fractions"].items())))
        else:
            print("  exp %s: %s" % (p["dtype"], "  ".join(
                f"{k} {v:.2f} ns/elem" for k, v in p["exp_ns_per_element"].items())))


def ideal_seconds(length: int, causal: bool, gflops: float, exp_ns: float, cores: int) -> float:
    """Time of an ideal attention kernel at B*H = 8, d = 64: GEMM rate plus one exp per score.

    Every FLOP of :func:`attention_flops` at ``gflops`` (numpy's large-GEMM
    rate, all cores) plus one :func:`fast_exp` per score at ``exp_ns``
    nanoseconds (its in-cache rate on one core), shared over ``cores``;
    nothing else (no packing, no max, no sum, no loop). Causal counts half the
    FLOPs and half the scores.
    """
    scores = SLABS * length ** 2 / (2 if causal else 1)
    return attention_flops(length, causal) / (gflops * 1e9) + scores * exp_ns * 1e-9 / cores


def floor_rows(runs: dict, length: int, gemm: dict, exp_ns: dict, cores: int) -> list:
    """The floors table from the timed rounds of :func:`floor_grid`.

    ``runs[(dtype, causal)]`` holds :func:`timed_runs` of ``fast``, ``torch``
    and, for full attention, ``products``. Each row has the per-round ratios
    fast/torch and products/torch (median and range, as the attention grid)
    and ideal/torch (:func:`ideal_seconds` against torch's median), each where
    its figures were measured.
    """
    rows = []
    for (dtype, causal), timed in runs.items():
        row = {"dtype": dtype, "causal": causal, "L": length,
               "fast_vs_torch": ratio_spread(timed, "fast", "torch")}
        if "products" in timed:
            row["products_vs_torch"] = ratio_spread(timed, "products", "torch")
        if dtype in gemm and dtype in exp_ns:
            ideal = ideal_seconds(length, causal, gemm[dtype]["gflops"], exp_ns[dtype], cores)
            row["ideal_vs_torch"] = ideal / float(np.median(timed["torch"]))
        rows.append(row)
    return rows


def floor_grid(length: int, repeats: int, pause: float, gemm: dict, profile: list) -> list:
    """How close to torch any kernel made of OpenBLAS block products could come (issue 20).

    At the target shape, in the same interleaved rounds: the fast path, torch
    SDPA and, for full attention, the profiled kernel with its softmax switched
    off (``benchmarks/profile_attention.py``: the two block products, the
    accumulation and the loop; causal is left out, as that loop has no
    diagonal cut). A target ratio below the products floor cannot be met by
    tuning the kernel's own code: it needs a faster block product. Returns
    :func:`floor_rows`; empty without torch.
    """
    torch = _torch()
    if torch is None:
        return []
    import transformer_theory.impl.fast as F

    profile_attention = _profile_attention()
    exp_ns = {p["dtype"]: p["exp_ns_per_element"]["fast_exp"] for p in profile
              if "exp_ns_per_element" in p}
    runs = {}
    for dtype in (np.float32, np.float64):
        q, k, v = _inputs(length, dtype)                                # (1, B*H, L, d)
        q3, k3, v3 = (a.reshape(SLABS, length, HEAD_DIM) for a in (q, k, v))
        tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
        for causal in (False, True):
            calls = {"fast": lambda: F.attention(q, k, v, causal=causal),
                     "torch": lambda: torch.nn.functional.scaled_dot_product_attention(
                         tq, tk, tv, is_causal=causal)}
            if not causal:
                parts = profile_attention.SCORES | profile_attention.VALUES
                calls["products"] = lambda: profile_attention.run(q3, k3, v3, False, parts)
            runs[(np.dtype(dtype).name, causal)] = timed_runs(calls, repeats, pause)
    return floor_rows(runs, length, gemm, exp_ns, os.cpu_count() or 1)


def _show_floors(rows: list) -> None:
    print("  | case | fast | block products alone | ideal: GEMM rate + one exp per score |\n"
          "  | --- | --- | --- | --- |")
    for r in rows:
        cells = [_spread_text(r["fast_vs_torch"]),
                 _spread_text(r["products_vs_torch"]) if "products_vs_torch" in r else "-",
                 f"{r['ideal_vs_torch']:.2f}" if "ideal_vs_torch" in r else "-"]
        print(f"  | {r['dtype']} {'causal' if r['causal'] else 'full'} L={r['L']} | "
              + " | ".join(cells) + " |")


def print_targets(rows: list) -> None:
    print("\n| what | target | measured | met |\n| --- | --- | --- | --- |")
    for r in rows:
        measured = r["measured"]
        text = f"{measured:.3g}" if isinstance(measured, float) else str(measured)
        print(f"| {r['what']} | {r['target']} | {text} | {'yes' if r['met'] else 'no'} |")


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller grid")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per figure (>= 7)")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds before each run (>= 0.3)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: "
                        "attention,decode,layer_decode,pieces,window,accuracy,profile,floors,favor,"
                        "memory,compile")
    parser.add_argument("--probe-memory", nargs=5, metavar=("IMPL", "L", "DTYPE", "CAUSAL", "BH"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--probe-compile", nargs="+", metavar="DTYPE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.probe_memory:
        impl, length, dtype, causal, slabs = args.probe_memory
        print(json.dumps(probe_memory(impl, int(length), dtype, bool(int(causal)), int(slabs))))
        return 0
    if args.probe_compile:
        print(json.dumps(probe_compile(args.probe_compile)))
        return 0

    repeats, pause = max(7, args.repeats), max(0.3, args.pause)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.quick:
        lengths, ref_max, favor_lengths, exact_max, target_length = \
            [512, 1024, 2048], 2048, [1024, 4096, 16384], 4096, 2048
    else:
        lengths, ref_max, favor_lengths, exact_max, target_length = \
            [512, 1024, 2048, 4096, 8192], 4096, [1024, 4096, 16384, 65536], 16384, 4096

    window_lengths = [512, 1024, 2048, 4096]
    decode_lengths, decode_slabs = ([4096, 32768], [1, 8]) if args.quick else \
        ([1024, 4096, 16384, 32768], [1, 8, 32])
    results = {"environment": environment(),
               "config": {"repeats": repeats, "pause_seconds": pause, "BH": SLABS, "d": HEAD_DIM,
                          "lengths": lengths, "reference_max_L": ref_max,
                          "favor_lengths": favor_lengths, "exact_max_L": exact_max,
                          "target_L": target_length, "window_lengths": window_lengths,
                          "decode_lengths": decode_lengths, "decode_BH": decode_slabs,
                          "quick": args.quick,
                          "timing": "median of runs after one warm-up; implementations "
                                    "interleaved; sleep before every run"}}
    started = time.perf_counter()

    def section(name, title, compute, show=None):
        """Run one section; record its result (or its error) and save the JSON so far."""
        if name in skip:
            return
        print(title, flush=True)
        try:
            results[name] = compute()
            if show is not None:
                show(results[name])
        except Exception as exc:            # a benchmark reports, it does not stop
            results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
            print(f"  {name} failed: {type(exc).__name__}: {exc}", flush=True)
        args.out.write_text(json.dumps(results, indent=1))

    section("gemm", "GEMM rate (numpy matmul, all cores):", lambda: gemm_rates(repeats, pause),
            lambda g: [print(f"  {dt}: {v['gflops']:.1f} GFLOP/s") for dt, v in g.items()])
    import transformer_theory.impl.fast as F

    F.warm_up()
    section("attention", "Attention (B*H = 8, d = 64):",
            lambda: attention_grid(lengths, repeats, pause, results["gemm"], ref_max))
    section("decode", "Decode steps (Lq = 1, d = 64, calls back to back):",
            lambda: decode_grid(decode_lengths, decode_slabs, repeats, pause))
    section("layer_decode", "Decode steps of a self-attention layer with a KV cache (batch 1):",
            lambda: layer_step_grid(LAYER_STEPS[:1] if args.quick else LAYER_STEPS, repeats,
                                    pause))
    section("pieces", f"Soft cap, bias, mask and packed documents (B*H = 8, d = 64, "
            f"L = {target_length}): time over plain attention, same rounds:",
            lambda: pieces_grid(target_length, repeats, pause), _show_pieces)
    section("window", "Sliding window (128 keys, causal) against dense causal, fast path, "
            "float32, B*H = 8, d = 64:",
            lambda: window_grid(window_lengths, repeats, pause),
            lambda r: print("  summary:", json.dumps(r["summary"])))
    section("accuracy", "Accuracy against float64:", lambda: accuracy(target_length),
            lambda acc: [print(f"  {a['dtype']} causal={a['causal']}: {a['max_abs_error']:.2e}")
                         for a in acc])
    section("profile", "Where the fast kernel's time goes:",
            lambda: kernel_profile(target_length, repeats, pause), _show_profile)
    section("floors", "Floors: time / torch SDPA time, same rounds (see floor_grid()):",
            lambda: floor_grid(target_length, repeats, pause, results.get("gemm", {}),
                               results.get("profile", [])), _show_floors)
    section("favor", "FAVOR+ (m = 256, float32) against exact attention (fast path):",
            lambda: favor_grid(favor_lengths, exact_max, repeats, pause),
            lambda f: print("  summary:", json.dumps(f["summary"])))
    section("memory", "Peak extra memory at L = 16384 (fresh processes, float32):",
            lambda: memory_section(16384, args.quick))
    section("compile", "Compile and cache load (fresh processes):", compile_section)
    results["targets"] = evaluate_targets(results, target_length)
    results["seconds"] = time.perf_counter() - started
    print_targets(results["targets"])
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out} ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
