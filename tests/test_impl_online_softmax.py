"""Unit tests for transformer_theory.impl.online_softmax."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mutants.online_softmax import (
    block_sparse_dense,
    flash_full_scores,
    flash_io_kv_blocks_fill_sram,
    merge_left_biased,
    merge_no_rescale,
    merge_unguarded,
)
from seeded import rng

from transformer_theory.impl import online_softmax as OS
from transformer_theory.impl.attention import attention, sliding_window_mask


# ---------------------------------------------------------------------------
# the (m, l, o) state and its merge
# ---------------------------------------------------------------------------

def test_block_state_by_hand():
    # one query, scores (scale 1) 0 and ln 3, values 1 and 5: m = ln 3, l = 1/3 + 1, o = 1/3 + 5
    q = np.array([[1.0]])
    k = np.array([[0.0], [math.log(3.0)]])
    v = np.array([[1.0], [5.0]])
    st = OS.block_state(q, k, v, scale=1.0)
    assert st.m[0] == pytest.approx(math.log(3.0))
    assert st.l[0] == pytest.approx(4 / 3)
    assert st.o[0, 0] == pytest.approx(1 / 3 + 5)
    assert OS.finalize(st)[0, 0] == pytest.approx((1 + 3 * 5) / 4)


def test_merge_by_hand_and_identity():
    a = OS.OnlineState(np.array([0.0]), np.array([1.0]), np.array([[2.0]]))
    b = OS.OnlineState(np.array([math.log(2.0)]), np.array([1.0]), np.array([[4.0]]))
    ab = OS.merge(a, b)
    assert ab.m[0] == pytest.approx(math.log(2.0))
    assert ab.l[0] == pytest.approx(0.5 + 1.0)
    assert ab.o[0, 0] == pytest.approx(1.0 + 4.0)
    ident = OS.identity_state((), 1, 1)
    for x in (OS.merge(a, ident), OS.merge(ident, a)):
        assert np.array_equal(x.m, a.m) and np.array_equal(x.l, a.l) and np.array_equal(x.o, a.o)
    ii = OS.merge(ident, ident)
    assert np.isneginf(ii.m[0]) and ii.l[0] == 0 and ii.o[0, 0] == 0
    assert np.all(OS.finalize(ii) == 0)


def test_merge_commutes_exactly_and_associates():
    r = rng(1)
    q = r.standard_normal((2, 3, 4))
    states = [OS.block_state(q, r.standard_normal((2, b, 4)), r.standard_normal((2, b, 2)))
              for b in (1, 3, 2)]
    a, b, c = states
    ab, ba = OS.merge(a, b), OS.merge(b, a)
    for x, y in zip(ab, ba):
        assert np.array_equal(x, y)
    left, right = OS.merge(OS.merge(a, b), c), OS.merge(a, OS.merge(b, c))
    assert np.array_equal(left.m, right.m)
    np.testing.assert_allclose(left.l, right.l, rtol=1e-14)
    np.testing.assert_allclose(left.o, right.o, rtol=1e-14, atol=1e-15)


def test_merge_mutants():
    # the broken merges of tests/mutants/online_softmax.py do break where they claim to
    a = OS.OnlineState(np.array([0.0]), np.array([1.0]), np.array([[2.0]]))
    b = OS.OnlineState(np.array([1.0]), np.array([1.0]), np.array([[4.0]]))
    assert merge_no_rescale(a, b).l[0] == 2.0
    assert merge_left_biased(a, b).m[0] == 0.0
    ident = OS.identity_state((), 1, 1)
    assert np.isnan(merge_unguarded(ident, ident).l[0])               # exp(-inf + inf)
    assert OS.merge(ident, ident).l[0] == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blockwise_any_split_and_order_equals_attention(dtype):
    r = rng(2)
    q = r.standard_normal((2, 5, 3)).astype(dtype)
    k = r.standard_normal((2, 9, 3)).astype(dtype)
    v = r.standard_normal((2, 9, 4)).astype(dtype)
    mask = r.random((2, 5, 9)) < 0.6
    ref = attention(q, k, v, mask=mask)
    out = OS.blockwise_attention(q, k, v, boundaries=[1, 4, 8], order=[2, 0, 3, 1], mask=mask)
    assert out.shape == (2, 5, 4) and out.dtype == dtype
    np.testing.assert_allclose(out, ref, atol=50 * np.finfo(dtype).eps)
    for causal in (True, "bottom-right"):
        np.testing.assert_allclose(OS.blockwise_attention(q, k, v, boundaries=[3], causal=causal),
                                   attention(q, k, v, causal=causal), atol=50 * np.finfo(dtype).eps)


def test_split_keys():
    assert OS.split_keys(5, []) == [slice(0, 5)]
    assert OS.split_keys(5, [1, 3]) == [slice(0, 1), slice(1, 3), slice(3, 5)]
    with pytest.raises(ValueError, match="boundaries"):
        OS.split_keys(5, [3, 1])
    with pytest.raises(ValueError, match="boundaries"):
        OS.split_keys(5, [5])


# ---------------------------------------------------------------------------
# tiling and memory
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bq, bk", [(1, 1), (3, 4), (16, 16)])
def test_flash_attention_equals_attention(bq, bk):
    r = rng(3)
    q, k, v = r.standard_normal((3, 2, 11, 4))
    mask = r.random((2, 11, 11)) < 0.5
    mask[:, 2] = False                                                  # a fully masked row
    out = OS.flash_attention(q, k, v, block_q=bq, block_k=bk, mask=mask, causal=True)
    np.testing.assert_allclose(out, attention(q, k, v, mask=mask, causal=True), atol=1e-14)
    assert np.all(out[:, 2] == 0)


def test_flash_attention_largest_temporary_is_a_tile():
    r = rng(4)
    peaks = []
    for length in (32, 64, 128):
        x = r.standard_normal((length, 8))
        t = OS.MemoryTracker()
        OS.flash_attention(x, x, x, block_q=8, block_k=4, tracker=t)
        peaks.append(t.peak)
    assert peaks == [64, 64, 64]                                       # 8 x max(4, 8)
    t = OS.MemoryTracker()
    flash_full_scores(x, x, x, block_q=8, block_k=4, tracker=t)       # the mutant
    assert t.peak == 128 * 128 and t.peak_name == "full scores"


def test_memory_tracker():
    t = OS.MemoryTracker()
    t.observe("a", np.zeros(3))
    t.observe("b", np.zeros((2, 5)))
    t.observe("a", np.zeros(1))
    assert (t.peak, t.peak_name, t.sizes) == (10, "b", {"a": 3, "b": 10})


# ---------------------------------------------------------------------------
# IO counts
# ---------------------------------------------------------------------------

def test_two_level_memory_counts():
    mem = OS.TwoLevelMemory(10)
    mem.write_slow(4)
    mem.load("a", 3)
    mem.hold("b", 5)
    mem.store("b")
    mem.free("a")
    mem.load("c", 2)
    assert (mem.reads, mem.writes, mem.total, mem.peak) == (5, 9, 14, 8)


def test_flash_block_sizes_fit():
    for d, m in ((2, 32), (8, 512), (16, 4096), (64, 16384), (16, 100000)):
        br, bc = OS.flash_block_sizes(d, m)
        assert bc == m // (4 * d) and 1 <= br <= min(bc, d)
        assert 2 * bc * d + 3 * br * d + 6 * br + br * bc <= m
    assert OS.flash_block_sizes(16, 100000)[0] == 16                  # B_r = d for large M


@pytest.mark.parametrize("n, d, m", [(64, 8, 512), (100, 4, 64), (256, 16, 4096)])
def test_flash_io_count_equals_formula_and_fits(n, d, m):
    rep = OS.flash_io_count(n, d, m)
    assert rep.total == OS.flash_io_formula(n, d, m)
    assert rep.peak_fast <= m
    assert rep.reads + rep.writes == rep.total


def test_flash_io_formula_by_hand():
    # N = 64, d = 8, M = 512: B_c = 16, T_c = 4 -> 3*512 + 128 + 4*64*28 = 8832
    assert OS.flash_io_formula(64, 8, 512) == 8832


def test_flash_io_count_computes_attention():
    r = rng(5)
    q, k, v = r.standard_normal((3, 40, 4))
    rep, out = OS.flash_io_count(40, 4, 64, q=q, k=k, v=v)
    np.testing.assert_allclose(out, attention(q, k, v), atol=1e-14)
    assert rep.total == OS.flash_io_formula(40, 4, 64)


def test_naive_io_count():
    rep = OS.naive_io_count(100, 8)
    assert rep.total == 4 * (100 * 8 + 100 * 100)
    assert rep.reads == 3 * 800 + 2 * 10000 and rep.writes == 2 * 10000 + 800


def test_explicit_block_sizes():
    default = OS.flash_io_count(256, 16, 4096)
    same = OS.flash_io_count(256, 16, 4096, block_sizes=OS.flash_block_sizes(16, 4096))
    assert (same.total, same.peak_fast) == (default.total, default.peak_fast)
    assert (same.block_r, same.block_c) == (default.block_r, default.block_c)
    rep = OS.flash_io_count(256, 16, 4096, block_sizes=(16, 128))    # B_c = M / 2d
    assert (rep.block_r, rep.block_c) == (16, 128) and rep.peak_fast > 4096
    r = rng(8)
    q, k, v = r.standard_normal((3, 64, 8))
    _, out = OS.flash_io_count(64, 8, 512, q=q, k=k, v=v, block_sizes=(3, 5))
    np.testing.assert_allclose(out, attention(q, k, v), rtol=1e-13, atol=1e-15)


def test_sram_overflow_mutant_exceeds_capacity():
    rep = flash_io_kv_blocks_fill_sram(256, 16, 4096)
    assert rep.peak_fast > 4096


# ---------------------------------------------------------------------------
# structured sparse attention
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("window", [1, 2, 5])
@pytest.mark.parametrize("causal", [True, False])
def test_sliding_window_equals_masked_dense(window, causal):
    r = rng(6)
    q, k, v = r.standard_normal((3, 2, 13, 3))
    c = OS.OpCounter()
    pair = (window - 1, 0 if causal else window - 1)
    out = OS.sliding_window_attention(q, k, v, pair, counter=c)
    ref = attention(q, k, v, mask=sliding_window_mask(13, 13, window, causal=causal))
    np.testing.assert_allclose(out, ref, atol=1e-14)
    w = window if causal else 2 * window - 1
    assert c.scores == 2 * 13 * w and c.multiply_adds == c.scores * 6


@pytest.mark.parametrize("window", [(0, 0), (3, 1), (None, 2), (2, None), (20, 20)])
def test_sliding_window_pairs_equal_attention_window(window):
    q, k, v = rng(7).standard_normal((3, 2, 11, 3))
    out = OS.sliding_window_attention(q, k, v, window)
    np.testing.assert_allclose(out, attention(q, k, v, window=window), atol=1e-14)


def test_banded_layout_by_hand():
    lay = OS.banded_block_layout(4, 1, causal=False, n_global=1)
    expected = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(lay, expected)
    np.testing.assert_array_equal(OS.banded_block_layout(3, 0), np.eye(3, dtype=bool))


def test_block_sparse_mask_by_hand():
    lay = np.array([[True, False], [True, True]])
    m = OS.block_sparse_mask(3, 2, lay)                               # blocks {0, 1}, {2}
    np.testing.assert_array_equal(m, [[1, 1, 0], [1, 1, 0], [1, 1, 1]])


@pytest.mark.parametrize("block", [1, 3, 4])
def test_block_sparse_equals_masked_dense_and_counts(block):
    r = rng(7)
    q, k, v = r.standard_normal((3, 10, 2))
    n_blocks = -(-10 // block)
    lay = OS.banded_block_layout(n_blocks, 1, n_global=1)
    c = OS.OpCounter()
    out = OS.block_sparse_attention(q, k, v, block, lay, counter=c)
    mask = OS.block_sparse_mask(10, block, lay)
    np.testing.assert_allclose(out, attention(q, k, v, mask=mask), atol=1e-14)
    assert c.scores == int(mask.sum())                                 # exactly the allowed scores
    dense = OS.OpCounter()
    block_sparse_dense(q, k, v, block, lay, counter=dense)            # the mutant
    assert dense.scores == 100


@pytest.mark.parametrize("call, exc, words", [
    (lambda: OS.block_state(np.ones((2, 3)), np.ones((2, 4)), np.ones((2, 1))), ValueError, "E"),
    (lambda: OS.block_state(np.ones((2, 3)), np.ones((2, 3)), np.ones((3, 1))), ValueError,
     "key length"),
    (lambda: OS.block_state(np.ones((1, 2, 3)), np.ones((2, 2, 3)), np.ones((2, 2, 1))),
     ValueError, "leading"),
    (lambda: OS.block_state(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 1)), scale=0),
     ValueError, "scale"),
    (lambda: OS.block_state(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 1)), scale="1"),
     TypeError, "scale"),
    (lambda: OS.block_state(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 1)),
                            allowed=np.ones((2, 2))), TypeError, "allowed"),
    (lambda: OS.block_state(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 1)),
                            allowed=np.ones((3, 3), bool)), ValueError, "allowed"),
    (lambda: OS.block_state(np.full((2, 3), np.nan), np.ones((2, 3)), np.ones((2, 1))),
     ValueError, "q"),
    (lambda: OS.merge((1, 2, 3), OS.identity_state((), 1, 1)), TypeError, "a"),
    (lambda: OS.merge(OS.identity_state((), 1, 1), OS.identity_state((), 2, 1)), ValueError, "b"),
    (lambda: OS.flash_io_count(64, 8, 512, block_sizes=4), TypeError, "block_sizes"),
    (lambda: OS.flash_io_count(64, 8, 512, block_sizes=(0, 4)), ValueError, "block_sizes"),
    (lambda: OS.finalize(None), TypeError, "state"),
    (lambda: OS.blockwise_attention(np.ones((2, 3)), np.ones((4, 3)), np.ones((4, 1)),
                                    boundaries=[2], order=[0, 0]), ValueError, "order"),
    (lambda: OS.blockwise_attention(np.ones((2, 3)), np.ones((4, 3)), np.ones((4, 1)),
                                    causal="left"), ValueError, "causal"),
    (lambda: OS.flash_attention(np.ones((2, 3)), np.ones((4, 3)), np.ones((4, 1)), block_q=0),
     ValueError, "block_q"),
    (lambda: OS.flash_io_count(64, 8, 64), ValueError, "m_words"),
    (lambda: OS.flash_io_count(64, 1, 512), ValueError, "d"),
    (lambda: OS.flash_io_count(8, 4, 64, q=np.ones((8, 3)), k=np.ones((8, 3)), v=np.ones((8, 3))),
     ValueError, "q, k, v"),
    (lambda: OS.sliding_window_attention(np.ones((3, 2)), np.ones((4, 2)), np.ones((4, 1)), (1, 0)),
     ValueError, "Lk = Lq"),
    (lambda: OS.sliding_window_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)), (-1, 0)),
     ValueError, "window"),
    (lambda: OS.sliding_window_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)), 2),
     TypeError, "window"),
    (lambda: OS.block_sparse_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)), 2,
                                       np.ones((2, 2))), TypeError, "layout"),
    (lambda: OS.block_sparse_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1)), 2,
                                       np.ones((3, 3), bool)), ValueError, "layout"),
    (lambda: OS.banded_block_layout(3, -1), ValueError, "bandwidth"),
    (lambda: OS.identity_state((), 1, 0), ValueError, "ev"),
])
def test_validation(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


# --- Sparse Transformer factorized patterns (impl/sparse_patterns.py) -----------------------

def test_strided_and_fixed_patterns_follow_child_et_al_section_4_3():
    from transformer_theory.impl import sparse_patterns as SP

    a1, a2 = SP.strided_pattern(10, 3)
    assert np.flatnonzero(a1[7]).tolist() == [4, 5, 6, 7]          # {max(0, i - l), ..., i}
    assert np.flatnonzero(a2[7]).tolist() == [1, 4, 7]             # (i - j) mod l = 0, j <= i
    assert np.flatnonzero(a1[1]).tolist() == [0, 1]
    f1, f2 = SP.fixed_pattern(10, 4, 1)
    assert np.flatnonzero(f1[6]).tolist() == [4, 5, 6]             # i's block, j <= i
    assert np.flatnonzero(f2[9]).tolist() == [3, 7]                # j mod 4 = 3, j <= i
    assert not f2[2].any()                                         # no summary position yet
    for a in (a1, a2, f1, f2):
        assert not np.triu(a, 1).any()                             # causal


@pytest.mark.parametrize("length", [1, 2, 7, 16, 33, 64])
def test_both_patterns_are_valid_for_any_stride(length):
    """Every j <= i is joined to i by a path of at most 3 locations (Child et al. §4.2), at
    every stride, not only l ~ sqrt(L); a pattern without its second head is not."""
    from transformer_theory.impl import sparse_patterns as SP

    causal = np.tril(np.ones((length, length), dtype=bool))
    for stride in range(1, length + 1):
        assert np.array_equal(SP.reach(*SP.strided_pattern(length, stride)), causal)
        for c in range(1, stride + 1):
            assert np.array_equal(SP.reach(*SP.fixed_pattern(length, stride, c)), causal)
    if length > 2:
        a1, _ = SP.strided_pattern(length, 1)
        assert not np.array_equal(SP.reach(a1, np.zeros_like(a1)), causal)


def test_sparse_patterns_refuse_bad_arguments():
    from transformer_theory.impl import sparse_patterns as SP

    with pytest.raises(ValueError, match="stride"):
        SP.strided_pattern(8, 0)
    with pytest.raises(ValueError, match="^c: expected 1 <= c <= stride = 4, got 5$"):
        SP.fixed_pattern(8, 4, 5)
    with pytest.raises(ValueError, match="a1, a2"):
        SP.reach(np.ones((3, 3), bool), np.ones((2, 2), bool))
