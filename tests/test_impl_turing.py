"""Unit tests for transformer_theory.impl.constructions.turing and the `turing` command."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
from mutants.turing import build_with_neighbours_swapped, build_without_rebinarising

from transformer_theory.impl.constructions import turing as TM
from transformer_theory.impl.constructions.toolkit import FFNBuilder


def increment():
    return TM.binary_increment_machine()


def bits(word):
    return [1 + int(c) for c in word]


# ---------------------------------------------------------------------------
# machines and the direct simulator
# ---------------------------------------------------------------------------

def test_simulator_binary_increment_by_hand():
    m = increment()
    runs = TM.simulate(m, bits("1011"), 9)
    assert len(runs) == 10
    assert runs[0] == TM.Configuration(0, 0, ((0, 2), (1, 1), (2, 2), (3, 2)))
    # 1011 + 1 = 1100, head on the bit that received the carry, state done
    final = runs[-1]
    assert final.state == 2 and final.head == 1
    assert final.window(0, 4) == bits("1100")
    assert runs[4].head == 4 and runs[4].state == 0          # reached the blank after the number


def test_simulator_increment_all_ones_extends_to_the_left():
    runs = TM.simulate(increment(), bits("111"), 10)
    final = runs[-1]
    assert final.state == 2
    assert final.window(-1, 3) == bits("1000")


def test_busy_beaver_writes_four_ones_in_six_steps():
    runs = TM.simulate(TM.busy_beaver_2(), [0], 8)
    assert runs[6].state == 2                                 # halted
    assert sum(a == 1 for _, a in runs[6].tape) == 4
    assert runs[6] == runs[7] == runs[8]                      # halting is a fixed point


def test_missing_transition_halts():
    m = TM.TuringMachine(2, 2, {(0, 0): (1, 1, 1)})
    assert m.transition(1, 0) == (1, 0, 0)
    runs = TM.simulate(m, [0, 0], 3)
    assert runs[1] == runs[2] == runs[3] == TM.Configuration(1, 1, ((0, 1),))


def test_configuration_helpers():
    c = TM.Configuration(0, 2, ((1, 2), (3, 1)))
    assert c.symbol(1) == 2 and c.symbol(0) == 0
    assert c.window(0, 4) == [0, 2, 0, 1]
    line = TM.render_configuration(increment(), c, 0, 4)
    assert line.strip().startswith("right") and "[_]" in line


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"n_states": 0}, ValueError, "machine.n_states"),
    ({"n_states": 1.5}, TypeError, "machine.n_states"),
    ({"start": 3}, ValueError, "machine.start"),
    ({"blank": 5}, ValueError, "machine.blank"),
    ({"delta": [(0, 0)]}, TypeError, "machine.delta"),
    ({"delta": {(0,): (0, 0, 1)}}, ValueError, "keys (q, a)"),
    ({"delta": {(0, 0): (0, 0)}}, ValueError, "values"),
    ({"delta": {(0, 0): (3, 0, 1)}}, ValueError, "state out of range"),
    ({"delta": {(0, 0): (0, 2, 1)}}, ValueError, "symbol out of range"),
    ({"delta": {(0, 0): (0, 0, 2)}}, ValueError, "move"),
    ({"state_names": ("a",)}, ValueError, "machine.state_names"),
])
def test_machine_validation(kwargs, exc, words):
    base = {"n_states": 2, "n_symbols": 2, "delta": {}}
    base.update(kwargs)
    with pytest.raises(exc, match=words.replace("(", r"\(").replace(")", r"\)")):
        TM.TuringMachine(**base)


@pytest.mark.parametrize("tape, head, steps, exc, words", [
    ("101", 0, 1, TypeError, "tape"),
    ([], 0, 1, ValueError, "tape"),
    ([0, 3], 0, 1, ValueError, "tape"),
    ([0, 1.0], 0, 1, TypeError, "tape"),
    ([1, 1], 2, 1, ValueError, "head"),
    ([1, 1], True, 1, TypeError, "head"),
    ([1, 1], 0, -1, ValueError, "steps"),
])
def test_simulate_validation(tape, head, steps, exc, words):
    with pytest.raises(exc, match=words):
        TM.simulate(increment(), tape, steps, head=head)


def test_simulate_rejects_non_machine():
    with pytest.raises(TypeError, match="machine"):
        TM.simulate({"delta": {}}, [0], 1)


# ---------------------------------------------------------------------------
# the weights
# ---------------------------------------------------------------------------

def test_layout_and_weight_shapes():
    m = increment()
    model = TM.build_turing_transformer(m, 10)
    # pos 10, one 1, state 3, symbol 3, head 1, read 3, left 1, right 1
    assert model.d_model == 10 + 1 + 3 + 3 + 1 + 3 + 1 + 1
    assert [h.name for h in model.heads] == ["read", "left", "right"]
    read, left, right = model.heads
    assert read.w_q.shape == (model.d_model, 1) and read.w_v.shape == (model.d_model, 3)
    assert left.w_q.shape == (model.d_model, 10) and left.w_o.shape == (1, model.d_model)
    # 9 (q, a) pairs x 3 step units x 2 ReLUs + 3 keep units x 2 + 12 subtraction units
    assert model.ffn.w1.shape == (model.d_model, 9 * 6 + 3 * 2 + 12)
    assert model.ffn.w2.shape == (model.ffn.w1.shape[1], model.d_model)
    assert model.ffn.b1.shape == (model.ffn.w1.shape[1],) and np.all(model.ffn.b2 == 0)


def test_neighbour_queries_are_cyclic_shifts():
    model = TM.build_turing_transformer(increment(), 5)
    pos = model.blocks["pos"]
    x = np.eye(5, model.d_model)                       # token i has e_i in the position block
    left_q = x @ model.heads[1].w_q                    # (5, 5): row i is e_{i-1}
    right_q = x @ model.heads[2].w_q
    assert np.array_equal(np.argmax(left_q, axis=1), [4, 0, 1, 2, 3])
    assert np.array_equal(np.argmax(right_q, axis=1), [1, 2, 3, 4, 0])
    assert pos == slice(0, 5)


def test_step_unit_is_exact_outside_its_ramp():
    units = FFNBuilder(2)
    units.binarise({0: 1.0}, -0.5, {1: 1.0})                       # step(x_0; 1/2) into x_1
    p = units.params()
    x = np.array([[0.0, 0.0], [0.24, 0.0], [0.76, 0.0], [1.0, 0.0], [0.5, 0.0]])
    h = np.maximum(x @ p.w1 + p.b1, 0)
    out = (h @ p.w2)[:, 1]
    assert list(out[:4]) == [0.0, 0.0, 1.0, 1.0]
    assert out[4] == pytest.approx(0.5)


def test_encode_known_values():
    m = increment()
    model = TM.build_turing_transformer(m, 8)
    x = TM.encode(model, bits("10"), head=1, offset=2)
    b = model.blocks
    assert x.shape == (8, model.d_model) and x.dtype == np.float64
    assert np.array_equal(x[:, b["pos"]], np.eye(8))
    assert np.all(x[:, b["one"]] == 1)
    assert np.all(x[:, b["state"].start] == 1)                     # start state in every token
    assert np.array_equal(np.argmax(x[:, b["symbol"]], axis=1), [0, 0, 2, 1, 0, 0, 0, 0])
    assert np.array_equal(x[:, b["head"].start], [0, 0, 0, 1, 0, 0, 0, 0])
    assert np.all(x[:, b["read"]] == 0) and np.all(x[:, b["left"]] == 0)
    assert TM.encode(model, bits("10"), dtype=np.float32).dtype == np.float32
    assert TM.decode(model, x, offset=2) == TM.simulate(m, bits("10"), 0, head=1)[0]


def test_one_step_by_hand_hard_attention():
    m = increment()
    model = TM.build_turing_transformer(m, 6)
    x0 = TM.encode(model, bits("1"), offset=2)
    x1 = TM.transformer_step(model, x0)
    c = TM.decode(model, x1, offset=2)
    assert c == TM.Configuration(0, 1, ((0, 2),))                  # moved right over the 1
    assert TM.binarity_defect(model, x1) == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("beta", [None, "bound"])
def test_increment_runs_match_the_simulator(dtype, beta):
    m = increment()
    tape, steps = bits("1011"), 12
    n = TM.required_cells(len(tape), steps)
    b = None if beta is None else TM.sufficient_beta(n) + 0.5
    got, defects = TM.simulate_with_transformer(m, tape, steps, beta=b, dtype=dtype)
    assert got == TM.simulate(m, tape, steps)
    assert max(defects) <= 16 * np.finfo(dtype).eps


def test_run_transformer_returns_every_layer_and_keeps_dtype():
    model = TM.build_turing_transformer(increment(), 7)
    xs = TM.run_transformer(model, TM.encode(model, bits("1"), offset=3, dtype=np.float32), 3,
                            beta=8.0)
    assert len(xs) == 4 and all(x.dtype == np.float32 and x.shape == (7, model.d_model) for x in xs)


def test_custom_attention_and_feed_forward_are_used():
    calls = {"attention": 0, "ffn": 0}
    from transformer_theory.impl.attention import attention
    from transformer_theory.impl.layers import feed_forward

    def att(q, k, v, **kw):
        calls["attention"] += 1
        return attention(q, k, v, **kw)

    def ffn(x, p, **kw):
        calls["ffn"] += 1
        return feed_forward(x, p, **kw)
    model = TM.build_turing_transformer(increment(), 5)
    TM.transformer_step(model, TM.encode(model, bits("1"), offset=2), beta=9.0, attention=att,
                        feed_forward=ffn)
    assert calls == {"attention": 1, "ffn": 1}          # the three heads are one batched call


def test_batched_heads_equal_one_call_per_head():
    from transformer_theory.impl.attention import attention

    model = TM.build_turing_transformer(increment(), 6)
    x = TM.encode(model, bits("10"), offset=2)
    w_q, w_k, w_v, w_o = TM.stacked_heads(model)
    assert w_q.shape == (3, model.d_model, 6) and w_v.shape == (3, model.d_model, 3)
    looped = sum(attention(x @ h.w_q, x @ h.w_k, x @ h.w_v, scale=7.0) @ h.w_o
                 for h in model.heads)
    batched = np.einsum("hnv,hvd->nd", attention(np.einsum("nd,hdk->hnk", x, w_q),
                                                 np.einsum("nd,hdk->hnk", x, w_k),
                                                 np.einsum("nd,hdv->hnv", x, w_v), scale=7.0), w_o)
    np.testing.assert_allclose(batched, looped, atol=1e-15)


def test_sufficient_beta_known_values():
    assert TM.sufficient_beta(2) == pytest.approx(math.log(7))
    assert TM.sufficient_beta(29) == pytest.approx(math.log(196))
    assert TM.required_cells(4, 12) == 28 and TM.required_cells(1, 0) == 3


def test_critical_beta_is_below_the_sufficient_bound():
    m = increment()
    measured = TM.critical_beta(m, bits("1011"), 6, resolution=0.05)
    n = TM.required_cells(4, 6)
    assert 0 < measured <= TM.sufficient_beta(n)
    small, _ = TM.simulate_with_transformer(m, bits("1011"), 6, beta=measured / 2)
    assert small != TM.simulate(m, bits("1011"), 6)


def test_without_rebinarising_softmax_errors_accumulate():
    m = increment()
    tape, steps = bits("1011"), 8
    expected = TM.simulate(m, tape, steps)
    n = TM.required_cells(len(tape), steps)
    plain = TM.build_turing_transformer(m, n, rebinarise=False)
    assert not plain.rebinarise and TM.build_turing_transformer(m, n).rebinarise
    hard, defects = TM.simulate_with_transformer(m, tape, steps,
                                                 build=lambda mm, nn: plain)
    assert hard == expected and max(defects) == 0.0        # exact on binary features
    _, defects = TM.simulate_with_transformer(m, tape, steps, beta=TM.sufficient_beta(n) + 1,
                                              build=build_without_rebinarising)
    assert max(defects) > 1e-3


def test_mutants_break_the_run():
    m = increment()
    tape, steps = bits("1011"), 8
    expected = TM.simulate(m, tape, steps)
    swapped, _ = TM.simulate_with_transformer(m, tape, steps,
                                              build=build_with_neighbours_swapped)
    assert swapped != expected
    assert TM.critical_beta(m, tape, steps, build=build_with_neighbours_swapped) == math.inf


@pytest.mark.parametrize("call, exc, words", [
    (lambda m: TM.build_turing_transformer(m, 2), ValueError, "n_cells"),
    (lambda m: TM.build_turing_transformer("m", 5), TypeError, "machine"),
    (lambda m: TM.build_turing_transformer(m, 5, rebinarise="no"), TypeError, "rebinarise"),
    (lambda m: TM.simulate_with_transformer(m, [1], 1, build=lambda mm, n: "model"), TypeError,
     "model"),
    (lambda m: TM.encode(TM.build_turing_transformer(m, 5), [1, 1], offset=4), ValueError, "fit"),
    (lambda m: TM.encode(TM.build_turing_transformer(m, 5), [1], dtype=np.int32), TypeError,
     "dtype"),
    (lambda m: TM.encode("model", [1]), TypeError, "model"),
    (lambda m: TM.transformer_step(TM.build_turing_transformer(m, 5), np.zeros((4, 3))),
     ValueError, "x"),
    (lambda m: TM.transformer_step(TM.build_turing_transformer(m, 5), np.full((5, 18), np.nan)),
     ValueError, "x"),
    (lambda m: TM.transformer_step(TM.build_turing_transformer(m, 5), np.zeros((5, 18)),
                                   beta=-1.0), ValueError, "beta"),
    (lambda m: TM.transformer_step(TM.build_turing_transformer(m, 5), np.zeros((5, 18)),
                                   beta="1"), TypeError, "beta"),
    (lambda m: TM.run_transformer(TM.build_turing_transformer(m, 5), np.zeros((5, 18)), -1),
     ValueError, "steps"),
    (lambda m: TM.sufficient_beta(1), ValueError, "n_cells"),
])
def test_construction_validation(call, exc, words):
    with pytest.raises(exc, match=words):
        call(increment())


# ---------------------------------------------------------------------------
# the `transformer-theory turing` command
# ---------------------------------------------------------------------------

def _command(argv):
    from transformer_theory.theory.commands import turing as cmd

    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    args = parser.parse_args(["turing", *argv])
    return args.func(args)


def test_command_prints_a_matching_run(capsys):
    assert _command(["--input", "1011", "--steps", "10"]) == 0
    out = capsys.readouterr().out
    assert "every step matches the simulator" in out
    assert "done" in out


def test_command_small_beta_diverges(capsys):
    assert _command(["--beta", "2", "--steps", "6"]) == 1
    assert "diverged" in capsys.readouterr().out


def test_command_json_and_hard(capsys):
    assert _command(["--machine", "busy-beaver", "--steps", "6", "--hard", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["attention"] == "hard" and data["matches_simulator"] is True
    assert data["steps_run"][-1]["state"] == "H"


@pytest.mark.parametrize("argv", [["--input", "12"], ["--steps", "-1"], ["--beta", "0"],
                                  ["--input", ""]])
def test_command_usage_errors(argv):
    from transformer_theory.theory.cli import UsageError

    with pytest.raises(UsageError):
        _command(argv)
