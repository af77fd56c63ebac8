"""Unit tests for the exhaustive Dyck check: the vectorised stack, the shared forward pass of the
recognisers D = 1, 2, 3, unpadded batches, and the claim's block enumeration."""

from __future__ import annotations


import numpy as np
import pytest
from dyck_helpers import all_strings, counting_ops, toks
from mutants import dyck as broken

from transformer_theory.impl import layers as N
from transformer_theory.impl.constructions import dyck as Dy
from transformer_theory.impl.constructions.dyck import (
    accepts_batch_shared,
    build_recognizer,
    is_dyck,
    is_dyck_batch,
)
from transformer_theory.theory.claims import _dyck_strings as claim


# ---------------------------------------------------------------------------
# the vectorised stack
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("k,D,max_len", [(1, 1, 8), (1, 3, 8), (2, 1, 7), (2, 2, 7),
                                         (2, 3, 7), (2, 4, 6), (3, 2, 5)])
def test_is_dyck_batch_equals_the_stack_exhaustively(k, D, max_len):
    for n in range(max_len + 1):
        strings = all_strings(n, k)
        want = np.array([is_dyck(s, k, D) for s in strings], dtype=bool)
        got = is_dyck_batch(strings, k, D)
        assert got.shape == (len(strings),) and got.dtype == np.bool_
        np.testing.assert_array_equal(got, want)


def test_is_dyck_batch_by_hand():
    k = 2
    rows = [toks(t, k) for t in ("([])", "([)]", "(())", "()[]", "))((", "[[]]")]
    np.testing.assert_array_equal(is_dyck_batch(np.array(rows), k, 2),
                                  [True, False, True, True, False, True])
    np.testing.assert_array_equal(is_dyck_batch(np.array(rows), k, 1),
                                  [False, False, False, True, False, False])
    # depth D + 1 in the middle, then back to 0: the clipped height must not hide the failure
    np.testing.assert_array_equal(is_dyck_batch(np.array([toks("((()))()", 1)]), 1, 2), [False])


def test_is_dyck_batch_empty_shapes():
    assert is_dyck_batch(np.zeros((3, 0), dtype=np.int64), 2, 1).tolist() == [True] * 3
    assert is_dyck_batch(np.zeros((0, 4), dtype=np.int64), 2, 1).shape == (0,)


@pytest.mark.parametrize("tokens,k,D,err,match", [
    ([0, 1], 1, 1, ValueError, "2-d"),
    (np.zeros((2, 2)), 1, 1, TypeError, "integer"),
    (np.array([[True, False]]), 1, 1, TypeError, "integer"),
    (np.array([[0, 4]]), 2, 1, ValueError, r"\[0, 4\)"),
    (np.array([[-1, 0]]), 2, 1, ValueError, "tokens"),
    (np.array([[0, 1]]), 0, 1, ValueError, "k"),
    (np.array([[0, 1]]), 1, 0, ValueError, "D"),
    (np.array([[0, 1]]), 1, 1.5, TypeError, "D"),
])
def test_is_dyck_batch_errors(tokens, k, D, err, match):
    with pytest.raises(err, match=match):
        is_dyck_batch(tokens, k, D)


# ---------------------------------------------------------------------------
# unpadded batches and the shared forward pass
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("attention", ["hard", "soft"])
def test_bucket_false_gives_the_same_stream(attention):
    net = build_recognizer(2, 3, attention)
    for n in (0, 3, 5, 7, 12):                   # lengths whose n + 2 is and is not a bucket size
        strings = np.random.default_rng(n).integers(0, 4, size=(5, n))
        padded, _ = net.forward(strings)
        plain, _ = net.forward(strings, bucket=False)
        assert plain.shape == padded.shape == (5, n + 2, net.width)
        np.testing.assert_array_equal(plain, padded)
        np.testing.assert_array_equal(net.accepts_batch(strings, bucket=False),
                                      net.accepts_batch(strings))


#: The reference builder and the broken builders of tests/mutants/dyck.py.
BUILDERS = {"reference": build_recognizer,
            "no_type_check": broken.recognizer_without_type_check,
            "one_layer_fewer": broken.recognizer_one_layer_fewer,
            "extra_layer": broken.recognizer_extra_layer,
            "non_strict_mask": broken.recognizer_non_strict_masks}


@pytest.mark.parametrize("attention", ["hard", "soft"])
@pytest.mark.parametrize("builder", list(BUILDERS))
def test_shared_forward_equals_each_network(attention, builder):
    nets = [BUILDERS[builder](2, D, attention) for D in (1, 2, 3)]
    assert Dy._shared_trunk(nets, 6) is nets[2]  # the layers are checked, weight for weight
    for n in range(7):
        strings = all_strings(n, 2)
        want = np.stack([net.accepts_batch(strings) for net in nets])
        for bucket in (True, False):
            got = accepts_batch_shared(nets, strings, bucket=bucket)
            assert got.shape == (3, len(strings)) and got.dtype == np.bool_
            np.testing.assert_array_equal(got, want)


def test_shared_forward_in_any_order_and_with_repeats():
    nets = [build_recognizer(2, D) for D in (3, 1, 2, 1)]
    strings = all_strings(5, 2)
    np.testing.assert_array_equal(accepts_batch_shared(nets, strings),
                                  np.stack([net.accepts_batch(strings) for net in nets]))


def test_shared_forward_by_hand():
    nets = [build_recognizer(2, D) for D in (1, 2, 3)]
    batch = np.array([toks("()[]()", 2), toks("([])()", 2), toks("([[]])", 2),
                      toks("([)]()", 2)])
    np.testing.assert_array_equal(accepts_batch_shared(nets, batch),
                                  [[True, False, False, False],
                                   [True, True, False, False],
                                   [True, True, True, False]])


def test_networks_that_share_nothing_are_run_one_by_one():
    # different attention, different scale, different ops: no shared trunk, same answers
    fake_ffn = lambda x, p: N.feed_forward(x, p)                    # noqa: E731
    groups = [
        [build_recognizer(2, 2, "hard"), build_recognizer(2, 3, "soft")],
        [build_recognizer(2, 2, "soft", beta=50.0), build_recognizer(2, 3, "soft")],
        [build_recognizer(2, 2), build_recognizer(2, 3, ops={"feed_forward": fake_ffn})],
        [build_recognizer(2, 1), build_recognizer(2, 3, type_check=False)],
    ]
    strings = all_strings(4, 2)
    for nets in groups:
        assert Dy._shared_trunk(nets, 4) is None
        np.testing.assert_array_equal(accepts_batch_shared(nets, strings),
                                      np.stack([net.accepts_batch(strings) for net in nets]))


def test_shared_forward_runs_on_the_given_ops():
    ops, calls = counting_ops("hard_attention", "feed_forward", "residual")
    nets = [build_recognizer(2, D, ops=ops) for D in (1, 2, 3)]
    accepts_batch_shared(nets, all_strings(3, 2))
    # 3 shared matching layers (2 heads, 2 FFNs, 3 residuals each), then 3 deciding
    # layers (1 head, 1 FFN, 2 residuals each): every network's forward pass, once.
    assert calls == {"hard_attention": 3 * 2 + 3, "feed_forward": 3 * 2 + 3,
                     "residual": 3 * 3 + 3 * 2}


def test_shared_forward_errors():
    nets = [build_recognizer(2, 1), build_recognizer(2, 2)]
    with pytest.raises(ValueError, match="recognizers"):
        accepts_batch_shared([], np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="recognizers"):
        accepts_batch_shared(nets[0], np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(TypeError, match=r"recognizers\[1\]"):
        accepts_batch_shared([nets[0], "net"], np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"recognizers\[1\].*k = 3"):
        accepts_batch_shared([nets[0], build_recognizer(3, 1)], np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="2-d"):
        accepts_batch_shared(nets, [0, 2])
    with pytest.raises(TypeError, match="integer"):
        accepts_batch_shared(nets, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="tokens"):
        accepts_batch_shared(nets, np.array([[0, 7]]))
    with pytest.raises(ValueError, match="n_max"):
        accepts_batch_shared([build_recognizer(2, 1, n_max=3), nets[1]],
                             np.zeros((1, 4), dtype=np.int64))


# ---------------------------------------------------------------------------
# the claim's enumeration
# ---------------------------------------------------------------------------

def test_strings_from_an_index_range():
    every = all_strings(4, 2)
    np.testing.assert_array_equal(claim.strings(4, 2, 0, 256), every)
    np.testing.assert_array_equal(claim.strings(4, 2, 37, 101), every[37:101])
    assert claim.strings(0, 2, 0, 1).shape == (1, 0)
    assert claim.strings(3, 1, 0, 8).tolist()[:3] == [[0, 0, 0], [0, 0, 1], [0, 1, 0]]


@pytest.mark.parametrize("workers", [1, 2])
def test_exhaustive_counts_every_string_and_network(workers, monkeypatch):
    monkeypatch.setattr(claim, "BLOCK", 300)      # several blocks per length
    monkeypatch.setattr(claim, "CHUNK", 64)
    nets = [build_recognizer(2, D) for D in (1, 2, 3)]
    cases, bad = claim.exhaustive(nets, 2, 6, workers=workers)
    assert bad is None
    assert cases == 3 * (4 ** 7 - 1) // 3         # 5461 strings of length <= 6, 3 networks


@pytest.mark.parametrize("builder", ["no_type_check", "one_layer_fewer", "non_strict_mask"])
def test_exhaustive_reports_the_same_first_failure_for_any_worker_count(builder, monkeypatch):
    monkeypatch.setattr(claim, "BLOCK", 100)
    monkeypatch.setattr(claim, "CHUNK", 32)
    nets = [BUILDERS[builder](2, D) for D in (1, 2, 3)]
    serial = claim.exhaustive(nets, 2, 6, workers=1)
    threaded = claim.exhaustive(nets, 2, 6, workers=3)
    assert serial == threaded
    cases, bad = serial
    assert bad is not None and cases % 3 == 0
    s = np.array(bad["tokens"], dtype=np.int64)
    assert is_dyck(s, 2, bad["D"]) == bad["in_language"] != bad["network_accepts"]
    net = nets[bad["D"] - 1]
    assert net.accepts(s) == bad["network_accepts"]
    # it is the first failure: every shorter string, every earlier string of its length,
    # and every smaller D on the string itself are answered right
    index = int(np.ravel_multi_index(tuple(s), (4,) * len(s))) if len(s) else 0
    for n in range(len(s) + 1):
        strings = all_strings(n, 2)[:index if n == len(s) else None]
        for r in nets:
            np.testing.assert_array_equal(r.accepts_batch(strings),
                                          is_dyck_batch(strings, 2, r.D))
    for r in nets[:bad["D"] - 1]:
        assert r.accepts(s) == is_dyck(s, 2, r.D)


def test_exhaustive_max_len_and_workers_by_profile():
    from transformer_theory.theory.profiles import get_profile
    from transformer_theory.theory.runner import Context

    ci = Context(get_profile("ci"), 0, "dyck.recognizer_exact")
    thorough = Context(get_profile("thorough"), 0, "dyck.recognizer_exact")
    assert claim.exhaustive_max_len(ci) == 6 and claim.exhaustive_workers(ci) == 1
    assert claim.exhaustive_max_len(thorough) == 12
    assert claim.exhaustive_workers(thorough) >= 1
