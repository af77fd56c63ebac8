"""Unit tests for transformer_theory.impl.constructions.dyck and the ``dyck`` command."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
from dyck_helpers import all_strings, counting_ops, toks
from mutants.dyck import (
    generator_earliest_opener,
    recognizer_extra_layer,
    recognizer_non_strict_masks,
    recognizer_one_hot_codes,
    recognizer_one_layer_fewer,
    recognizer_without_type_check,
)

from transformer_theory.impl import layers as N
from transformer_theory.impl.constructions import toolkit as T
from transformer_theory.impl.constructions.dyck import (
    Ops,
    build_generator,
    build_recognizer,
    check_tokens,
    format_brackets,
    generator_beta,
    is_dyck,
    is_dyck_batch,
    matching_by_layer,
    max_depth,
    parse_brackets,
    recognizer_beta,
    reference_allowed_next,
    reference_allowed_sets,
    type_code_bits,
    type_codes,
)


# ---------------------------------------------------------------------------
# the reference
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,k,D,expected", [
    ("", 1, 1, True),
    ("()", 1, 1, True),
    ("(())", 1, 1, False),          # depth 2 > D
    ("(())", 1, 2, True),
    ("([)]", 2, 2, False),          # crossing
    ("({)}", 3, 2, False),          # shuffle-Dyck, not Dyck
    ("([]{()})[]", 3, 3, True),
    ("([]{()})[]", 3, 2, False),
    (")(", 1, 1, False),
    ("(()", 1, 2, False),
])
def test_is_dyck_known_values(text, k, D, expected):
    assert is_dyck(toks(text, k), k, D) is expected


def test_is_dyck_accepts_numpy_and_lists():
    assert is_dyck([0, 2, 1, 3], 2, 1)
    assert is_dyck(np.array([0, 1, 3, 2], dtype=np.int32), 2, 2)


@pytest.mark.parametrize("tokens,err", [
    ("()", TypeError),                              # a string, not tokens
    ([0.0, 1.0], TypeError),                        # floats
    ([True, False], TypeError),                     # booleans
    ([0, 4], ValueError),                           # out of range for k = 2
    ([-1], ValueError),
    ([[0, 2]], ValueError),                         # 2-d
])
def test_check_tokens_errors(tokens, err):
    with pytest.raises(err, match="tokens"):
        is_dyck(tokens, 2, 2)


@pytest.mark.parametrize("k,D,err", [(0, 1, ValueError), (1, 0, ValueError),
                                     (1.5, 1, TypeError), (1, "2", TypeError),
                                     (True, 1, TypeError)])
def test_is_dyck_bad_k_and_D(k, D, err):
    with pytest.raises(err):
        is_dyck([], k, D)


def test_check_tokens_returns_int64():
    out = check_tokens(np.array([1, 0], dtype=np.uint8), 1)
    assert out.dtype == np.int64 and out.tolist() == [1, 0]
    assert check_tokens([], 3).shape == (0,)


def test_max_depth():
    assert max_depth([], 2) == 0
    assert max_depth(toks("(()[[]])"), 2) == 3
    assert max_depth(toks(")))"), 1) == 0


def test_reference_allowed_sets_by_hand():
    # k = 2, D = 2: openers 0, 1; closers 2 = ")", 3 = "]"; END = 4
    sets = reference_allowed_sets(toks("([])", 2), 2, 2)
    assert sets == [{0, 1, 4}, {0, 1, 2}, {3}, {0, 1, 2}, {0, 1, 4}]
    assert reference_allowed_next(toks("((", 2), 2, 2) == {2}


def test_reference_allowed_sets_refuses_bad_prefixes():
    with pytest.raises(ValueError, match="prefix"):
        reference_allowed_sets(toks("(]", 2), 2, 2)
    with pytest.raises(ValueError, match="depth"):
        reference_allowed_sets(toks("(((", 1), 1, 2)


def test_parse_and_format_brackets():
    tokens, k = parse_brackets("( [ ] )")
    assert k == 2 and tokens.tolist() == [0, 1, 3, 2]
    assert format_brackets(tokens, k) == "([])"
    assert parse_brackets("<>")[1] == 4
    assert parse_brackets("", None)[1] == 1
    assert format_brackets([4, 9], 5) == "(4 )4"


@pytest.mark.parametrize("text,k,err", [("(a)", None, ValueError), ("[]", 1, ValueError),
                                        (b"()", None, TypeError), ("()", 0, ValueError)])
def test_parse_brackets_errors(text, k, err):
    with pytest.raises(err):
        parse_brackets(text, k)


# ---------------------------------------------------------------------------
# type codes
# ---------------------------------------------------------------------------

def test_type_codes_by_hand():
    assert type_code_bits(1) == 1 and type_code_bits(2) == 2 and type_code_bits(4) == 3
    np.testing.assert_array_equal(type_codes(1), [[-1.0]])
    np.testing.assert_array_equal(type_codes(2), [[-1.0, -1.0], [1.0, -1.0]])
    np.testing.assert_array_equal(type_codes(3), [[-1, -1], [1, -1], [-1, 1]])


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 100, 128])
def test_type_codes_are_distinct_pm1(k):
    c = type_codes(k)
    b = type_code_bits(k)
    assert c.shape == (k, b) and c.dtype == np.float64
    assert set(np.unique(c)) <= {-1.0, 1.0}
    dots = c @ c.T
    assert np.all(np.diag(dots) == b)
    assert np.all(dots[~np.eye(k, dtype=bool)] <= b - 2)


# ---------------------------------------------------------------------------
# the recogniser
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("k,D", [(1, 1), (2, 3), (8, 10)])
def test_recognizer_shapes(k, D):
    net = build_recognizer(k, D)
    b = type_code_bits(k)
    w = 3 * b + 11
    assert net.num_layers == D + 1 and net.width == w and net.bits == b
    assert net.embedding.shape == (2 * k + 2, w)
    for layer in net.layers[:-1]:
        assert layer.name == "match" and len(layer.heads) == 2 and len(layer.ffns) == 2
        right, left = layer.heads
        assert (right.mask, left.mask) == ("future", "past")
        assert right.w_q.shape == (w, 1) and right.w_k.shape == (w, 1)
        assert right.w_v.shape == (w, b + 1) and right.w_o.shape == (b + 1, w)
        assert layer.ffns[0].w1.shape == (w, 4 * b + 2)
        assert layer.ffns[1].w2.shape == (4 * b + 12, w)
    assert net.layers[-1].name == "decide" and net.layers[-1].heads[0].mask == "all"


def test_recognizer_weights_by_hand():
    net = build_recognizer(1, 1)
    lay = net.layout
    right = net.layers[0].heads[0]
    # score_ij = q_i . k_j = -p_j - 2 m_j
    assert right.w_q[lay.index("one"), 0] == 1.0 and right.w_q.sum() == 1.0
    assert right.w_k[lay.index("pos"), 0] == -1.0
    assert right.w_k[lay.index("matched"), 0] == -2.0
    left = net.layers[0].heads[1]
    assert left.w_k[lay.index("pos"), 0] == 1.0


def test_embedding_by_hand():
    net = build_recognizer(2, 1)
    x = net.embed(np.array([[0, 3]]))[0]                           # "(" "]"
    lay = net.layout
    assert x.shape == (4, net.width)
    np.testing.assert_allclose(x[:, lay.index("pos")], [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_array_equal(x[1, lay["code"]], [-1, -1])     # type 0
    np.testing.assert_array_equal(x[2, lay["code"]], [1, -1])      # type 1
    assert x[1, lay.index("opener")] == 1 and x[2, lay.index("closer")] == 1
    assert np.all(x[[0, 3], lay["code"]] == 0)                     # BOS, EOS


@pytest.mark.parametrize("attention", ["hard", "soft"])
@pytest.mark.parametrize("k,D", [(1, 1), (1, 3), (2, 1), (2, 2), (3, 2)])
def test_recognizer_exhaustive_small(attention, k, D):
    net = build_recognizer(k, D, attention)
    for n in range(0, 7 if k < 3 else 5):
        strings = all_strings(n, k)
        got = net.accepts_batch(strings)
        want = np.array([is_dyck(s, k, D) for s in strings])
        np.testing.assert_array_equal(got, want)


def test_accepts_batch_shape_and_agreement():
    net = build_recognizer(2, 2)
    batch = np.array([toks("([])", 2), toks("([)]", 2), toks("()[]", 2)])
    out = net.accepts_batch(batch)
    assert out.shape == (3,) and out.dtype == np.bool_
    assert out.tolist() == [net.accepts(s) for s in batch] == [True, False, True]


@pytest.mark.parametrize("attention", ["hard", "soft"])
def test_matched_flags_and_accept_are_exact_bits(attention):
    net = build_recognizer(2, 3, attention)
    for text, want in (("([][]", 0.0), ("(()[])", 1.0), ("(()[)]", 0.0)):
        s = toks(text, 2)
        run = net.run(s)
        m = net.layout.index("matched")
        for state in run.states:
            assert set(np.unique(state[:, m])) <= {0.0, 1.0}
        assert run.accept_value == want


def test_scratch_is_cleared_every_layer():
    net = build_recognizer(2, 2, "soft")
    run = net.run(toks("([])[]", 2))
    lay = net.layout
    scratch = np.r_[lay["a_right"], lay["a_right_closer"], lay["a_left"], lay["a_left_opener"],
                    lay["u_right"], lay["u_left"], lay["reject"]]
    for state in run.states:
        assert np.all(state[:, scratch] == 0.0)


def test_trace_by_hand():
    net = build_recognizer(1, 2)
    assert net.trace(toks("(())")) == [[(1, 2)], [(0, 3)]]
    assert net.trace(toks("()()")) == [[(0, 1), (2, 3)], []]
    net3 = build_recognizer(3, 3, "soft")
    assert net3.trace(toks("([]{()})[]")) == [[(1, 2), (4, 5), (8, 9)], [(3, 6)], [(0, 7)]]


def test_run_reports_unmatched():
    net = build_recognizer(2, 2)
    run = net.run(toks("([)]", 2))
    assert not run.accepted and run.pairs == [[], []]
    assert run.unmatched == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert len(run.states) == net.num_layers + 1


def test_depth_boundary_and_layers_by_hand():
    assert build_recognizer(1, 2).accepts(toks("(())"))
    assert not build_recognizer(1, 2).accepts(toks("((()))"))       # in Dyck_1, depth 3
    assert not build_recognizer(1, 2, matching_layers=1).accepts(toks("(())"))
    assert build_recognizer(1, 2, matching_layers=1).num_layers == 2


def test_long_string_hard_and_soft():
    k, D = 8, 3
    rng = np.random.default_rng(0)
    types = rng.integers(0, k, size=D)
    nest = np.concatenate([types, types[::-1] + k])
    s = np.concatenate([nest] * 170)                                # n = 1020, depth 3
    bad = s.copy()
    bad[556] = (bad[556] + 1) % k                                   # an opener changes type
    for attention in ("hard", "soft"):
        net = build_recognizer(k, D, attention)
        assert net.accepts_batch(np.stack([s, bad])).tolist() == [True, False]


def test_soft_scale_beta():
    assert recognizer_beta(0, 1) == pytest.approx(1 * math.log(8 * 2 * 1))
    assert recognizer_beta(9, 2) == pytest.approx(10 * math.log(8 * 3 * 10))
    assert build_recognizer(2, 2).scale(10) is None
    net = build_recognizer(2, 2, "soft")
    assert net.scale(9) == pytest.approx(recognizer_beta(9, 2))
    fixed = build_recognizer(2, 2, "soft", n_max=20)
    assert fixed.scale(3) == pytest.approx(recognizer_beta(20, 2))
    assert fixed.accepts(toks("([])", 2))
    assert build_recognizer(2, 2, "soft", beta=7.0).scale(100) == 7.0
    assert build_recognizer(2, 2, "soft", beta=lambda n: n + 1.0).scale(4) == 5.0


def test_small_beta_breaks_the_soft_recognizer():
    good = build_recognizer(1, 2, "soft")
    small = build_recognizer(1, 2, "soft", beta=lambda n: math.log(n + 1.0))
    for text in ("()", "()()"):                    # beta = ln 3, ln 5: weights barely peaked
        assert good.accepts(toks(text)) and not small.accepts(toks(text))


def test_n_max_refuses_longer_inputs():
    net = build_recognizer(1, 1, n_max=4)
    assert net.accepts(toks("()()"))
    with pytest.raises(ValueError, match="n_max"):
        net.accepts(toks("()()()"))


@pytest.mark.parametrize("kwargs,err", [
    ({"k": 0, "D": 1}, ValueError),
    ({"k": 2, "D": 0}, ValueError),
    ({"k": 2.0, "D": 1}, TypeError),
    ({"k": 2, "D": 1, "attention": "medium"}, ValueError),
    ({"k": 2, "D": 1, "n_max": -1}, ValueError),
    ({"k": 2, "D": 1, "n_max": 3.5}, TypeError),
    ({"k": 2, "D": 1, "beta": -1.0}, ValueError),
    ({"k": 2, "D": 1, "beta": "big"}, TypeError),
    ({"k": 2, "D": 1, "beta": float("inf")}, ValueError),
    ({"k": 2, "D": 1, "matching_layers": -1}, ValueError),
    ({"k": 2, "D": 1, "ops": 3}, TypeError),
    ({"k": 2, "D": 1, "codes": "unary"}, ValueError),
    ({"k": 2, "D": 1, "type_check": 1}, TypeError),
    ({"k": 2, "D": 1, "strict_masks": "yes"}, TypeError),
])
def test_build_recognizer_errors(kwargs, err):
    with pytest.raises(err):
        build_recognizer(**kwargs)


def test_recognizer_input_errors():
    net = build_recognizer(2, 2)
    with pytest.raises(ValueError, match="tokens"):
        net.accepts([0, 5])
    with pytest.raises(TypeError, match="tokens"):
        net.accepts("()")
    with pytest.raises(ValueError, match="2-d"):
        net.accepts_batch([0, 2])
    with pytest.raises(TypeError, match="integer"):
        net.accepts_batch(np.zeros((1, 2)))


def test_network_runs_on_the_given_ops():
    ops, calls = counting_ops("attention", "hard_attention", "feed_forward", "residual")
    D = 3
    build_recognizer(2, D, ops=ops).accepts(toks("([])", 2))
    assert calls["hard_attention"] == 2 * D + 1 and calls["attention"] == 0
    assert calls["feed_forward"] == 2 * D + 1
    assert calls["residual"] == (1 + 2) * D + 2
    build_recognizer(2, D, "soft", ops=ops).accepts(toks("()", 2))
    assert calls["attention"] == 2 * D + 1


def test_ops_from_mapping():
    def fake(*a, **kw):
        raise AssertionError
    ops = Ops.from_mapping({"attention": fake, "unrelated": 1})
    assert ops.attention is fake and ops.feed_forward is N.feed_forward


def test_masks_are_strict_and_never_empty():
    fut = T.mask("future", 4)
    np.testing.assert_array_equal(fut, [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1]])
    past = T.mask("past", 4)
    np.testing.assert_array_equal(past, [[1, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]])
    for kind in ("future", "past", "all", "causal"):
        assert np.all(T.mask(kind, 5).any(axis=1))
    assert T.mask("future", 3, strict=False)[1, 1]


def test_padding_is_invisible():
    m = T.mask("future", 8, real=5)
    assert not m[:5, 5:].any() and not m[5:, :5].any()
    assert np.array_equal(m[5:, 5:], np.eye(3, dtype=bool))
    np.testing.assert_array_equal(m[:5, :5], T.mask("future", 5))
    assert [T.bucket(n) for n in (0, 1, 2, 3, 5, 8, 9, 13, 17, 1006, 1025)] == \
        [1, 1, 2, 4, 8, 8, 10, 14, 20, 1024, 1280]
    x = np.arange(2 * 3 * 1.0).reshape(2, 3, 1)
    padded = T.pad_stream(x)
    assert padded.shape == (2, 4, 1) and padded[0, 3, 0] == x[0, 2, 0]
    net = build_recognizer(2, 2, "soft")
    for n in (3, 5, 6, 9):                       # lengths that are and are not powers of two
        s = np.zeros(n, dtype=np.int64)
        x, _ = net.forward(s[None])
        assert x.shape == (1, n + 2, net.width)


@pytest.mark.parametrize("build,text,k,D", [
    (recognizer_without_type_check, "([)]", 2, 2),   # accepted although types cross
    (recognizer_extra_layer, "(())", 1, 1),          # depth 2 accepted at D = 1
])
def test_mutants_break_the_recognizer(build, text, k, D):
    s = toks(text, k)
    assert not build_recognizer(k, D).accepts(s)
    assert build(k, D).accepts(s)


def test_rejecting_mutants():
    s = toks("(())", 1)
    assert not recognizer_one_layer_fewer(1, 2).accepts(s)
    assert not recognizer_non_strict_masks(1, 2).accepts(toks("()"))
    assert recognizer_one_hot_codes(5, 1).width == 3 * 5 + 11


def test_without_type_check_recognises_the_bracket_shapes():
    # type_check=False: Dyck_{1,D} of the shapes, whatever the types
    net = build_recognizer(2, 2, type_check=False)
    strings = all_strings(4, 2)
    shapes = np.where(strings < 2, 0, 1)                       # forget the types
    np.testing.assert_array_equal(net.accepts_batch(strings), is_dyck_batch(shapes, 1, 2))


@pytest.mark.parametrize("attention", ["hard", "soft"])
def test_one_hot_codes_recognise_the_same_language(attention):
    net = build_recognizer(3, 2, attention, codes="one_hot")
    assert net.width == 3 * 3 + 11 and net.bits == 3
    strings = all_strings(4, 3)
    np.testing.assert_array_equal(net.accepts_batch(strings), is_dyck_batch(strings, 3, 2))


# ---------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------

def test_generator_shapes():
    g = build_generator(3, 2)
    b = type_code_bits(3)
    assert g.num_layers == 2 and g.width == 2 * b + 11 and g.END == 6
    assert g.readout.shape == (g.width, 7) and g.embedding.shape == (7, g.width)
    assert g.layers[0].norm_eps == 0.0 and g.layers[0].heads[0].mask == "causal"
    assert np.all(g.layers[0].heads[0].w_q == 0)                 # uniform attention


@pytest.mark.parametrize("attention", ["hard", "soft"])
def test_generator_allowed_sets_by_hand(attention):
    g = build_generator(2, 2, attention)
    assert g.allowed_next([]) == {0, 1, 4}
    assert g.allowed_next(toks("(", 2)) == {0, 1, 2}
    assert g.allowed_next(toks("([", 2)) == {3}
    assert g.allowed_next(toks("()", 2)) == {0, 1, 4}
    assert g.allowed_sets(toks("([])", 2)) == reference_allowed_sets(toks("([])", 2), 2, 2)


@pytest.mark.parametrize("attention", ["hard", "soft"])
def test_generator_all_short_members(attention):
    k, D = 2, 2
    g = build_generator(k, D, attention)
    for n in range(0, 7, 2):
        for s in (all_strings(n, k)):
            if is_dyck(s, k, D):
                assert g.allowed_sets(s) == reference_allowed_sets(s, k, D)


def test_generator_recency_trap_and_why_eps_matters():
    trap = toks("()" * 500 + "(" + "[]" * 500, 2)
    want = reference_allowed_next(trap, 2, 2)
    assert want == {0, 1, 2}
    assert build_generator(2, 2).allowed_next(trap) == want
    eps_ops = Ops(layer_norm=lambda x, gamma=None, beta=None, eps=1e-5: N.layer_norm(x, eps=1e-5))
    assert build_generator(2, 2, ops=eps_ops).allowed_next(trap) != want


def test_generator_sample_is_a_member():
    g = build_generator(3, 3, "soft")
    rng = np.random.default_rng(4)
    for _ in range(5):
        s = g.sample(rng, 200)
        assert is_dyck(s, 3, 3)
    with pytest.raises(TypeError, match="rng"):
        g.sample(3, 10)


def test_generator_beta_and_n_max():
    assert generator_beta(0, 1) == pytest.approx(2 * math.log(8))
    g = build_generator(1, 1, "soft", n_max=3)
    assert g.scale(1) == pytest.approx(generator_beta(3, 1))
    with pytest.raises(ValueError, match="n_max"):
        g.allowed_next([0, 1, 0, 1])


@pytest.mark.parametrize("kwargs,err", [
    ({"k": 0, "D": 1}, ValueError), ({"k": 1, "D": 0}, ValueError),
    ({"k": 1, "D": 1, "attention": "x"}, ValueError), ({"k": 1, "D": 1, "ops": "ref"}, TypeError),
])
def test_build_generator_errors(kwargs, err):
    with pytest.raises(err):
        build_generator(**kwargs)


@pytest.mark.parametrize("attention", ["hard", "soft"])
def test_earliest_opener_mutant_closes_the_wrong_bracket(attention):
    prefix = toks("()[", 2)                       # depth 1; its opener is "[" (2), not "(" (0)
    assert build_generator(2, 2, attention).allowed_next(prefix) == {0, 1, 3}
    assert generator_earliest_opener(2, 2, attention).allowed_next(prefix) == {0, 1, 2}


def test_generator_prefix_errors():
    g = build_generator(1, 1)
    with pytest.raises(ValueError, match="prefix"):
        g.allowed_next([2])
    with pytest.raises(TypeError, match="prefix"):
        g.allowed_next([0.5])


def test_matching_by_layer_for_the_report():
    data = matching_by_layer()
    assert data["tokens"] == list("([]{()})[]") and data["accepted"]
    assert data["layers"] == [[(1, 2), (4, 5), (8, 9)], [(3, 6)], [(0, 7)]]


# ---------------------------------------------------------------------------
# the ``dyck`` command
# ---------------------------------------------------------------------------

def _cli(argv):
    from transformer_theory.theory.commands import dyck as cmd

    parser = argparse.ArgumentParser(prog="transformer-theory")
    cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dyck", *argv])
    return args.func(args)


def test_cli_accepts_and_prints_layers(capsys):
    assert _cli(["--depth", "2", "(()[])"]) == 0
    out = capsys.readouterr().out
    assert "layer 1" in out and "layer 2" in out and "accept" in out
    assert "1-2 ()" in out and "3-4 []" in out and "0-5 ()" in out


def test_cli_reject_still_exits_zero(capsys):
    assert _cli(["--depth", "1", "(())"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("reject")


def test_cli_tokens_and_json(capsys):
    assert _cli(["--depth", "2", "--k", "2", "--tokens", "0,1,3,2", "--json",
                 "--attention", "soft"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["accepted"] is True and data["reference"] is True
    assert data["string"] == "([])" and data["layers"][0]["pairs"] == [[1, 2]]
    assert data["beta"] == pytest.approx(recognizer_beta(4, 2))
    assert data["num_layers"] == 3 and data["width"] == 17


@pytest.mark.parametrize("argv", [
    ["--depth", "2", "(x)"],                                  # unknown character
    ["--depth", "2", "--k", "1", "[]"],                       # type >= k
    ["--depth", "2", "--tokens", "0,1"],                      # --tokens without --k
    ["--depth", "2", "--k", "1", "--tokens", "0,5"],          # token out of range
    ["--depth", "2", "--k", "1", "--tokens", "0,a"],          # not integers
    ["--depth", "0", "()"],                                   # depth < 1
    ["--depth", "1", "--k", "0", "()"],                       # k < 1
    ["--depth", "1"],                                         # no input
    ["--depth", "1", "--k", "1", "--tokens", "0,1", "()"],    # both inputs
])
def test_cli_bad_input_is_a_usage_error(argv):
    from transformer_theory.theory.cli import UsageError

    with pytest.raises(UsageError):
        _cli(argv)
