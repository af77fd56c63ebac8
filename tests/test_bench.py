"""The arithmetic of ``benchmarks/bench.py`` that turns timings into the figures it reports.

The benchmark itself times nothing here: these tests feed it made-up timings
and check the ratios it derives from them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ideal_kernel_is_gemm_time_plus_one_exp_per_score(bench):
    length, gflops, exp_ns, cores = 1024, 100.0, 0.5, 2
    scores = bench.SLABS * length ** 2
    full = bench.attention_flops(length, False) / 100e9 + scores * 0.5e-9 / 2
    assert bench.ideal_seconds(length, False, gflops, exp_ns, cores) == pytest.approx(full)
    assert bench.ideal_seconds(length, True, gflops, exp_ns, cores) == pytest.approx(full / 2)
    # the exp is shared over the cores; the GEMM rate is already that of all cores
    one_core = bench.ideal_seconds(length, False, gflops, exp_ns, 1)
    assert one_core - full == pytest.approx(scores * 0.5e-9 / 2)


def test_floor_rows_are_per_round_ratios_to_torch(bench):
    runs = {("float32", False): {"fast": [0.9, 1.8, 0.8], "torch": [1.0, 2.0, 1.0],
                                 "products": [0.7, 1.6, 0.8]},
            ("float32", True): {"fast": [0.5, 0.6, 0.4], "torch": [0.5, 0.5, 0.5]},
            ("float64", False): {"fast": [1.0, 1.0, 1.0], "torch": [2.0, 2.0, 2.0]}}
    gemm = {"float32": {"gflops": 100.0}, "float64": {"gflops": 50.0}}
    exp_ns = {"float32": 0.5}                                 # float64's exp was not measured
    rows = bench.floor_rows(runs, 1024, gemm, exp_ns, cores=2)
    full, causal, f64 = rows
    assert full["fast_vs_torch"] == {"median": pytest.approx(0.9), "min": pytest.approx(0.8),
                                     "max": pytest.approx(0.9)}
    assert full["products_vs_torch"]["median"] == pytest.approx(0.8)
    assert full["products_vs_torch"]["min"] == pytest.approx(0.7)
    assert full["ideal_vs_torch"] == pytest.approx(
        bench.ideal_seconds(1024, False, 100.0, 0.5, 2) / 1.0)      # torch's median: 1.0
    assert causal["fast_vs_torch"]["median"] == pytest.approx(1.0)
    assert "products_vs_torch" not in causal
    assert causal["ideal_vs_torch"] == pytest.approx(
        bench.ideal_seconds(1024, True, 100.0, 0.5, 2) / 0.5)
    assert "ideal_vs_torch" not in f64 and f64["fast_vs_torch"]["median"] == 0.5
    assert bench.floor_rows({}, 1024, gemm, exp_ns, cores=2) == []


def test_each_round_turns_the_order_by_one_place(bench, monkeypatch):
    monkeypatch.setattr(bench.time, "sleep", lambda seconds: None)
    order = []
    calls = {name: (lambda name=name: order.append(name)) for name in "abc"}
    runs = bench.timed_runs(calls, repeats=4, pause=0.3)
    assert order[:3] == ["a", "b", "c"]                          # the warm-up runs
    assert order[3:] == list("abc" "bca" "cab" "abc")
    assert {name: len(times) for name, times in runs.items()} == {"a": 4, "b": 4, "c": 4}
    assert bench.round_order([], 3) == []


def test_piece_rows_are_per_round_ratios_to_plain_and_to_torch(bench):
    runs = {"float32": {"plain": [1.0, 2.0, 1.0], "softcap": [1.1, 2.4, 1.3],
                        "mask": [1.5, 3.0, 1.2], "torch_mask": [3.0, 3.0, 2.0]}}
    rows = bench.piece_rows(runs, 4096)
    assert [r["piece"] for r in rows] == ["softcap", "mask"]          # PIECES order, timed only
    softcap, mask = rows
    assert softcap["over_plain"] == pytest.approx({"median": 1.2, "min": 1.1, "max": 1.3})
    assert "fast_vs_torch" not in softcap
    assert mask["over_plain"]["median"] == pytest.approx(1.5)
    assert mask["fast_vs_torch"] == pytest.approx({"median": 0.6, "min": 0.5, "max": 1.0})
    targets = bench.evaluate_targets({"pieces": rows}, 4096)
    assert [(t["what"], t["met"]) for t in targets] == [
        ("soft cap / plain time, float32 L=4096", True)]
