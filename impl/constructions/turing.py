"""A transformer layer that simulates one Turing-machine step, applied once per step.

The construction
----------------
Every tape cell is a token. Token ``i`` of a ring of ``N`` cells carries

=============  =====================  ==============================================
block          width                  meaning
=============  =====================  ==============================================
``pos``        ``N``                  one-hot position ``e_i`` (never changes)
``one``        1                      the constant 1 (never changes)
``state``      ``|Q|``                one-hot machine state (the same in every token)
``symbol``     ``|Γ|``                one-hot symbol written in cell ``i``
``head``       1                      1 if the head is on cell ``i``
``read``       ``|Γ|``                scratch: the symbol under the head
``left``       1                      scratch: the head flag of cell ``i - 1``
``right``      1                      scratch: the head flag of cell ``i + 1``
=============  =====================  ==============================================

One layer, with the *same* weights at every step (a looped, "universal" transformer):

1. **Attention sublayer, three heads, residual.**

   * ``read`` head: query ``1`` (the ``one`` feature), key ``h_j`` (the head flag),
     value the symbol block. The score ``beta * h_j`` is largest at the head's
     cell, so every token reads the symbol under the head into ``read``.
   * ``left`` head: query ``e_{i-1}`` (the position block times a cyclic shift),
     key ``e_j``: the score ``beta * [j = i - 1]`` selects the left neighbour;
     the value is its head flag, written into ``left``.
   * ``right`` head: the same with ``e_{i+1}``, into ``right``.

   With hard attention each head returns its target exactly. With softmax at
   inverse temperature ``beta`` the target gets weight ``e^beta / (e^beta + N - 1)``,
   so every read is off by at most ``eps = (N - 1) / (e^beta + N - 1)``.

2. **Feed-forward sublayer (ReLU), residual.** Every unit is a *step unit*
   ``step(l; theta) = relu(a) - relu(a - 1)`` with ``a = 2 (l - theta) + 1/2``: it is
   exactly 0 for ``l <= theta - 1/4`` and exactly 1 for ``l >= theta + 1/4``. For each
   pair ``(q, a)`` with ``delta(q, a) = (q', a', m)``:

   * ``T_qa = step(z_q + read_a; 3/2)``: the transition fires, the new state is
     ``sum_qa T_qa e_{q'}``;
   * ``W_qa = step(head + z_q + symbol_a; 5/2)``: the head's cell writes ``a'``;
   * ``M_qa = step(z_q + read_a + n_m; 5/2)`` with ``n_{+1} = left``,
     ``n_{-1} = right``, ``n_0 = head``: the cell the head moves to raises its flag;

   and ``K_b = step(symbol_b - head; 1/2)`` keeps the symbol of every other cell.
   The FFN outputs ``new - old`` for ``state``, ``symbol`` and ``head`` (the old
   value is subtracted through units ``relu(old)``) and ``-scratch`` for the
   scratch blocks, so after the residual every stored feature is *re-binarised*:
   it equals a freshly computed 0/1 value up to one rounding, whatever small
   error the attention reads carried.

Proof sketch (softmax). Linear forms of exactly binary inputs sit at distance
``1/2`` from every threshold; the reads shift a form by at most ``2 eps`` (two
approximate inputs, ``read_a`` and a neighbour flag). So every step unit is
exactly 0 or 1 as soon as ``2 eps <= 1/4``, i.e.

.. math::  \\beta \\ge \\beta_{\\mathrm{suff}}(N) = \\ln\\bigl(7 (N - 1)\\bigr),

and then the stored features after the layer are the machine's next
configuration, again binary: errors never accumulate, for any number of
steps. Below the bound a unit can land on its ramp; :func:`critical_beta`
measures where the simulation actually starts to fail.

Comparison with the literature (honest differences)
---------------------------------------------------
* Pérez, Barceló & Marinkovic (JMLR 2021, §4) use an
  encoder-decoder with *averaging hard attention* and rational positional
  encodings ``(i, 1/i, 1/i^2)``; the decoder emits one token per machine step
  and recovers the symbol under the head by attending over the history of
  writes. Depth is constant, the sequence grows with time, and exactness
  needs arbitrary-precision arithmetic.
* Wei, Chen & Ma (NeurIPS 2022, their Turing-machine result) keep the autoregressive
  "one token per step" design but with finite precision: binary positional
  encodings of ``O(log T)`` bits (hence ``W_k, W_v`` of size about ``log T``, as
  seed 000 quotes), hard attention with a null key, and a stack of layers that
  binary-searches, bit by bit, the last step that wrote to the head's cell;
  the depth depends on ``T`` only through those ``O(log T)`` bits. Their result
  is about *statistically meaningful* approximation (sample complexity
  polynomial in ``|Q|``, ``|Γ|`` and ``log T``), which this module does not address.
* Here instead the whole tape is the sequence (``N`` tokens, one-hot positions
  of width ``N``), the depth equals the number of steps ``T`` with shared
  weights, and each layer is one step. The ring must be large enough that the
  head never wraps (``N >= len(tape) + 2 T`` with ``T`` blank cells padded on each
  side), and the width grows with ``N``. The explicit softmax temperature
  bound and the re-binarising step units are this module's. Seed 000's
  summary of Wei et al. ("depth T") describes this looped construction more
  closely than their log-depth decoder.

References
----------
Pérez, Barceló & Marinkovic 2021, Attention is Turing Complete, JMLR 22, §3-4.
Wei, Chen & Ma 2022, Statistically Meaningful Approximation: a Case Study on
Approximating Turing Machines with Transformers, NeurIPS (the Turing-machine result).
Dehghani et al. 2019, Universal Transformers, ICLR (shared weights across depth).
Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt): "Can simulate T-step Turing
machine with depth T".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import numpy as np

from .._validate import FLOAT_DTYPES, as_float_array, check_positive_int
from ..attention import attention as _softmax_attention
from ..attention import hard_attention
from ..layers import FFNParams, feed_forward as _feed_forward, residual
from ..positional import one_hot_encoding
from .toolkit import FFNBuilder, Head, Layout, stack_heads

__all__ = [
    "TuringMachine",
    "Configuration",
    "simulate",
    "binary_increment_machine",
    "busy_beaver_2",
    "TuringTransformer",
    "AttentionHead",
    "build_turing_transformer",
    "stacked_heads",
    "required_cells",
    "encode",
    "transformer_step",
    "run_transformer",
    "decode",
    "binarity_defect",
    "simulate_with_transformer",
    "sufficient_beta",
    "critical_beta",
    "render_configuration",
]

#: Moves of the head: left, stay, right.
MOVES = (-1, 0, 1)


# ---------------------------------------------------------------------------
# Machines and the direct simulator
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TuringMachine:
    """A one-tape Turing machine with states ``0..n_states-1`` and symbols ``0..n_symbols-1``.

    Parameters
    ----------
    n_states : int
        ``|Q| >= 1``.
    n_symbols : int
        ``|Γ| >= 1``; symbol ``blank`` fills the tape outside the input.
    delta : mapping
        ``(q, a) -> (q', a', move)`` with ``move`` in ``{-1, 0, +1}``. A missing
        entry halts: the configuration stays as it is, i.e. ``(q, a, 0)``.
    start : int
        Initial state.
    blank : int
        Blank symbol.
    name : str
    state_names, symbol_names : sequence of str, optional
        For display only.
    """

    n_states: int
    n_symbols: int
    delta: Mapping
    start: int = 0
    blank: int = 0
    name: str = ""
    state_names: tuple = ()
    symbol_names: tuple = ()

    def __post_init__(self):
        check_positive_int(self.n_states, "machine.n_states")
        check_positive_int(self.n_symbols, "machine.n_symbols")
        for value, name, bound in ((self.start, "machine.start", self.n_states),
                                   (self.blank, "machine.blank", self.n_symbols)):
            check_positive_int(value, name, minimum=0)
            if value >= bound:
                raise ValueError(f"{name}: expected an index in [0, {bound}), got {value}")
        if not isinstance(self.delta, Mapping):
            raise TypeError(f"machine.delta: expected a mapping (q, a) -> (q', a', move), "
                            f"got {type(self.delta).__name__}")
        clean = {}
        for key, value in self.delta.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ValueError(f"machine.delta: expected keys (q, a), got {key!r}")
            if not (isinstance(value, tuple) and len(value) == 3):
                raise ValueError(f"machine.delta: expected values (q', a', move), got {value!r}")
            q, a = (int(v) for v in key)
            q2, a2, move = (int(v) for v in value)
            if not (0 <= q < self.n_states and 0 <= q2 < self.n_states):
                raise ValueError(f"machine.delta: state out of range [0, {self.n_states}) "
                                 f"in {key!r} -> {value!r}")
            if not (0 <= a < self.n_symbols and 0 <= a2 < self.n_symbols):
                raise ValueError(f"machine.delta: symbol out of range [0, {self.n_symbols}) "
                                 f"in {key!r} -> {value!r}")
            if move not in MOVES:
                raise ValueError(f"machine.delta: move must be -1, 0 or +1, got {move!r} "
                                 f"in {key!r} -> {value!r}")
            clean[(q, a)] = (q2, a2, move)
        object.__setattr__(self, "delta", MappingProxyType(clean))
        object.__setattr__(self, "state_names", tuple(self.state_names))
        object.__setattr__(self, "symbol_names", tuple(self.symbol_names))
        for names, n, what in ((self.state_names, self.n_states, "state_names"),
                               (self.symbol_names, self.n_symbols, "symbol_names")):
            if names and len(names) != n:
                raise ValueError(f"machine.{what}: expected {n} names, got {len(names)}")

    def transition(self, q: int, a: int) -> tuple[int, int, int]:
        """``delta(q, a)``, or ``(q, a, 0)`` (halt: nothing changes) if undefined."""
        return self.delta.get((q, a), (q, a, 0))

    def state_name(self, q: int) -> str:
        return self.state_names[q] if self.state_names else str(q)

    def symbol_name(self, a: int) -> str:
        return self.symbol_names[a] if self.symbol_names else str(a)


@dataclass(frozen=True)
class Configuration:
    """State, head cell and tape of a machine; ``tape`` lists non-blank cells only.

    Attributes
    ----------
    state : int
        ``-1`` marks an undecodable state (the transformer's tokens disagree).
    head : int
        Cell index (may be negative); ``None`` if undecodable.
    tape : tuple of (cell, symbol)
        Sorted by cell, blank cells omitted, so equal tapes compare equal.
    """

    state: int
    head: int | None
    tape: tuple = ()

    def symbol(self, cell: int, blank: int = 0) -> int:
        return dict(self.tape).get(cell, blank)

    def window(self, lo: int, hi: int, blank: int = 0) -> list[int]:
        """Symbols of cells ``lo..hi-1``."""
        cells = dict(self.tape)
        return [cells.get(c, blank) for c in range(lo, hi)]


def _check_machine(machine) -> TuringMachine:
    if not isinstance(machine, TuringMachine):
        raise TypeError(f"machine: expected a TuringMachine, got {type(machine).__name__}")
    return machine


def _check_tape(tape, machine: TuringMachine) -> tuple[int, ...]:
    if isinstance(tape, (str, bytes)) or not isinstance(tape, (Sequence, np.ndarray)):
        raise TypeError(f"tape: expected a sequence of symbol indices, got {type(tape).__name__}")
    cells = []
    for i, a in enumerate(tape):
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"tape: expected integer symbols, got {a!r} at index {i}")
        if not 0 <= a < machine.n_symbols:
            raise ValueError(f"tape: symbol {a} at index {i} outside [0, {machine.n_symbols})")
        cells.append(int(a))
    if not cells:
        raise ValueError("tape: expected at least one cell, got an empty tape")
    return tuple(cells)


def _check_head(head, length: int) -> int:
    if isinstance(head, (bool, np.bool_)) or not isinstance(head, (int, np.integer)):
        raise TypeError(f"head: expected an integer cell index, got {type(head).__name__}")
    if not 0 <= head < length:
        raise ValueError(f"head: expected a cell of the tape in [0, {length}), got {head}")
    return int(head)


def _tape_tuple(cells: Mapping[int, int], blank: int) -> tuple:
    return tuple(sorted((c, a) for c, a in cells.items() if a != blank))


def simulate(machine: TuringMachine, tape, steps: int, *, head: int = 0) -> list[Configuration]:
    """Run the machine directly on a two-way infinite tape.

    Parameters
    ----------
    machine : TuringMachine
    tape : sequence of int
        Symbols of cells ``0..len(tape)-1``; every other cell is blank.
    steps : int
        Number of steps ``T >= 0``.
    head : int
        Initial head cell, inside the input.

    Returns
    -------
    list of Configuration
        ``T + 1`` configurations, the initial one first.

    References
    ----------
    Sipser 2013, Introduction to the Theory of Computation, §3.1 (the
    configuration and the yields relation), with a two-way infinite tape.
    """
    machine = _check_machine(machine)
    cells_in = _check_tape(tape, machine)
    steps = check_positive_int(steps, "steps", minimum=0)
    pos = _check_head(head, len(cells_in))
    cells = dict(enumerate(cells_in))
    q = machine.start
    out = [Configuration(q, pos, _tape_tuple(cells, machine.blank))]
    for _ in range(steps):                      # one machine step per iteration
        a = cells.get(pos, machine.blank)
        q, written, move = machine.transition(q, a)
        cells[pos] = written
        pos += move
        out.append(Configuration(q, pos, _tape_tuple(cells, machine.blank)))
    return out


def binary_increment_machine() -> TuringMachine:
    """Add 1 to a binary number written most significant bit first.

    Symbols ``_`` (blank), ``0``, ``1``. The head starts on the first bit: state
    ``right`` scans to the blank after the number, ``carry`` turns trailing 1s into
    0s and the first 0 (or the blank before the number) into 1, then halts in
    ``done``.
    """
    blank, zero, one = 0, 1, 2
    right, carry, done = 0, 1, 2
    delta = {
        (right, zero): (right, zero, +1),
        (right, one): (right, one, +1),
        (right, blank): (carry, blank, -1),
        (carry, one): (carry, zero, -1),
        (carry, zero): (done, one, 0),
        (carry, blank): (done, one, 0),
    }
    return TuringMachine(3, 3, delta, start=right, blank=blank, name="binary increment",
                         state_names=("right", "carry", "done"), symbol_names=("_", "0", "1"))


def busy_beaver_2() -> TuringMachine:
    """The 2-state busy beaver: writes four 1s in six steps, then halts.

    States ``A``, ``B``, ``H`` (halt); symbols ``0`` (blank), ``1``.

    References
    ----------
    Radó 1962, On non-computable functions, Bell System Technical Journal 41(3).
    """
    a, b, h = 0, 1, 2
    delta = {
        (a, 0): (b, 1, +1), (a, 1): (b, 1, -1),
        (b, 0): (a, 1, -1), (b, 1): (h, 1, +1),
    }
    return TuringMachine(3, 2, delta, start=a, blank=0, name="busy beaver (2 states)",
                         state_names=("A", "B", "H"), symbol_names=("0", "1"))


# ---------------------------------------------------------------------------
# The transformer: weights written down
# ---------------------------------------------------------------------------

#: The heads of the construction are the toolkit's (kept under their old name).
AttentionHead = Head


@dataclass(frozen=True)
class TuringTransformer:
    """The weights of the one-step layer for one machine on a ring of ``n_cells`` tokens.

    Attributes
    ----------
    machine : TuringMachine
    n_cells : int
        ``N``, the number of tokens (tape cells of the ring).
    d_model : int
    blocks : mapping of str to slice
        Where each feature block lives in a token vector.
    heads : tuple of Head
        ``read``, ``left``, ``right``.
    ffn : FFNParams
        The ReLU feed-forward network of step units.
    rebinarise : bool
        Whether the FFN is built from step units (see :func:`build_turing_transformer`).
    stacked : tuple
        The heads batched along a head axis (:func:`stacked_heads`), cached.
    """

    machine: TuringMachine
    n_cells: int
    d_model: int
    blocks: Mapping
    heads: tuple
    ffn: FFNParams
    rebinarise: bool = True
    stacked: tuple = field(default=(), repr=False, compare=False)


def _layout(machine: TuringMachine, n_cells: int) -> Layout:
    return Layout([("pos", n_cells), ("one", 1), ("state", machine.n_states),
                   ("symbol", machine.n_symbols), ("head", 1), ("read", machine.n_symbols),
                   ("left", 1), ("right", 1)])


def _attention_heads(layout: Layout, n_cells: int, machine: TuringMachine) -> tuple[Head, ...]:
    """The three heads; each returns its target exactly under hard attention."""
    n_sym = machine.n_symbols
    # read: query 1, key h_j -> score beta * h_j, value = symbol one-hot -> `read`
    read = Head(w_q=layout.projection([{"one": 1.0}]),                          # (d, 1)
                w_k=layout.projection([{"head": 1.0}]),                         # (d, 1)
                w_v=layout.projection([{f"symbol#{a}": 1.0} for a in range(n_sym)]),  # (d, |Γ|)
                w_o=layout.writer([f"read#{a}" for a in range(n_sym)]),         # (|Γ|, d)
                name="read")

    def neighbour(name: str, offset: int) -> Head:
        # query e_{i+offset} = e_i S (cyclic shift), key e_j -> score beta * [j = i + offset]
        shift = np.roll(np.eye(n_cells), offset, axis=1)          # (N, N): e_i -> e_{i+offset}
        return Head(w_q=layout.rows("pos", shift),                 # (d, N)
                    w_k=layout.rows("pos", np.eye(n_cells)),       # (d, N)
                    w_v=layout.projection([{"head": 1.0}]),        # (d, 1): the head flag
                    w_o=layout.writer([name]),                     # (1, d)
                    name=name)

    return (read, neighbour("left", -1), neighbour("right", +1))


def _step(units: FFNBuilder, inputs, theta: float, outputs, rebinarise: bool) -> None:
    """``step(l; theta) = relu(a) - relu(a - 1)``, ``a = 2 (l - theta) + 1/2``.

    Exactly 0 for ``l <= theta - 1/4`` and exactly 1 for ``l >= theta + 1/4``
    (:meth:`FFNBuilder.binarise` with gain 2). With ``rebinarise=False`` a
    single ``relu(l - theta + 1/2)``: right on binary inputs, but it passes any
    error of its inputs on.
    """
    if rebinarise:
        units.binarise(inputs, -theta, outputs)
    else:
        units.unit(inputs, 0.5 - theta, outputs)


def _transition_ffn(layout: Layout, machine: TuringMachine, binarise: bool) -> FFNParams:
    """The feed-forward network of step units (see the module docstring)."""
    units = FFNBuilder(layout)
    z = layout["state"].start
    s = layout["symbol"].start
    r = layout["read"].start
    h, left, right = layout.index("head"), layout.index("left"), layout.index("right")
    neighbour = {+1: left, -1: right, 0: h}          # where the head comes from, per move
    for q in range(machine.n_states):
        for a in range(machine.n_symbols):
            q2, a2, move = machine.transition(q, a)
            # T_qa: the transition (q, a) fires -> new state q2 (in every token)
            _step(units, {z + q: 1, r + a: 1}, 1.5, {z + q2: 1}, binarise)
            # W_qa: the head's own cell holds a and the state is q -> it now holds a2
            _step(units, {h: 1, z + q: 1, s + a: 1}, 2.5, {s + a2: 1}, binarise)
            # M_qa: the transition moves the head here (from the neighbour on side `move`)
            _step(units, {z + q: 1, r + a: 1, neighbour[move]: 1}, 2.5, {h: 1}, binarise)
    for b in range(machine.n_symbols):
        # K_b: a cell without the head keeps its symbol b
        _step(units, {s + b: 1, h: -1}, 0.5, {s + b: 1}, binarise)
    # subtract the old stored values and clear the scratch blocks (all >= 0)
    for block in ("state", "symbol", "head", "read", "left", "right"):
        for i in range(layout[block].start, layout[block].stop):
            units.unit({i: 1}, 0.0, {i: -1})
    return units.params(zero_output_bias=True)


def build_turing_transformer(machine: TuringMachine, n_cells: int, *,
                             rebinarise: bool = True) -> TuringTransformer:
    """Write down the weights of the one-step layer.

    Parameters
    ----------
    machine : TuringMachine
    n_cells : int
        ``N >= 3``, the number of tokens of the ring.
    rebinarise : bool
        Build every FFN unit as a step unit (the construction). ``False``
        builds each as one ReLU ``relu(l - theta + 1/2)`` instead of a step unit:
        the same layer on exactly binary features, so hard attention still
        simulates the machine, but the errors of softmax reads are passed on
        and accumulate over the steps.

    Returns
    -------
    TuringTransformer

    References
    ----------
    Pérez, Barceló & Marinkovic 2021, JMLR, §4; Wei, Chen & Ma 2022, NeurIPS
    (the Turing-machine result); seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt).
    """
    machine = _check_machine(machine)
    n_cells = check_positive_int(n_cells, "n_cells", minimum=3)
    if not isinstance(rebinarise, (bool, np.bool_)):
        raise TypeError(f"rebinarise: expected a bool, got {type(rebinarise).__name__}")
    layout = _layout(machine, n_cells)
    heads = _attention_heads(layout, n_cells, machine)
    ffn = _transition_ffn(layout, machine, bool(rebinarise))
    model = TuringTransformer(machine, n_cells, layout.width, MappingProxyType(layout.slices),
                              heads, ffn, bool(rebinarise))
    return replace(model, stacked=stacked_heads(model))


def stacked_heads(model: "TuringTransformer"):
    """The three heads as one batched multi-head attention (:func:`~.toolkit.stack_heads`):
    ``(H, d, d_k)``, ``(H, d, d_k)``, ``(H, d, d_v)``, ``(H, d_v, d)``."""
    model = _check_model(model)
    if model.stacked:
        return model.stacked
    return stack_heads(model.heads, model.d_model)


def required_cells(tape_length: int, steps: int) -> int:
    """Ring size with ``steps`` blank cells on each side of the input: ``len + 2 T`` (at least 3)."""
    tape_length = check_positive_int(tape_length, "tape_length")
    steps = check_positive_int(steps, "steps", minimum=0)
    return max(3, tape_length + 2 * steps)


def _check_model(model) -> TuringTransformer:
    if not isinstance(model, TuringTransformer):
        raise TypeError(f"model: expected a TuringTransformer, got {type(model).__name__}")
    return model


def _check_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


def encode(model: TuringTransformer, tape, *, head: int = 0, offset: int = 0,
           dtype=np.float64) -> np.ndarray:
    """The token matrix of the initial configuration.

    Parameters
    ----------
    model : TuringTransformer
    tape : sequence of int
        Input symbols; cell ``c`` of the input is token ``c + offset``.
    head : int
        Initial head cell (inside the input).
    offset : int
        Number of blank cells before the input on the ring.
    dtype : float32 or float64

    Returns
    -------
    np.ndarray, (N, d_model)
    """
    model = _check_model(model)
    m = model.machine
    cells = _check_tape(tape, m)
    head = _check_head(head, len(cells))
    offset = check_positive_int(offset, "offset", minimum=0)
    if offset + len(cells) > model.n_cells:
        raise ValueError(f"tape: {len(cells)} cells after an offset of {offset} do not fit "
                         f"in n_cells = {model.n_cells}")
    dt = _check_dtype(dtype)
    b = model.blocks
    x = np.zeros((model.n_cells, model.d_model), dtype=dt)                 # (N, d)
    x[:, b["pos"]] = one_hot_encoding(model.n_cells, model.n_cells, dtype=dt)
    x[:, b["one"].start] = 1
    x[:, b["state"].start + m.start] = 1
    symbols = np.full(model.n_cells, m.blank)
    symbols[offset:offset + len(cells)] = cells
    x[np.arange(model.n_cells), b["symbol"].start + symbols] = 1
    x[offset + head, b["head"].start] = 1
    return x


def transformer_step(model: TuringTransformer, x, *, beta: float | None = None,
                     attention: Callable | None = None,
                     feed_forward: Callable | None = None) -> np.ndarray:
    """One layer: residual three-head attention (one batched call), then the residual step-unit FFN.

    Parameters
    ----------
    model : TuringTransformer
    x : array_like, (N, d_model)
    beta : float, optional
        Softmax inverse temperature (passed as ``scale``). ``None`` uses hard
        attention (:func:`transformer_theory.impl.attention.hard_attention`).
    attention : callable, optional
        A softmax attention with the contract's signature, used when ``beta``
        is given; default the reference :func:`~transformer_theory.impl.attention.attention`.
    feed_forward : callable, optional
        ``feed_forward(x, params, activation="relu")``; default the reference.

    Returns
    -------
    np.ndarray, (N, d_model)
    """
    model = _check_model(model)
    x = as_float_array(x, "x", ndim=2)
    if x.shape != (model.n_cells, model.d_model):
        raise ValueError(f"x: expected shape (n_cells, d_model) = "
                         f"{(model.n_cells, model.d_model)}, got shape {x.shape}")
    if beta is not None:
        if isinstance(beta, (bool, np.bool_)) or not isinstance(beta, (int, float, np.number)):
            raise TypeError(f"beta: expected a positive number or None, got {type(beta).__name__}")
        if not (math.isfinite(beta) and beta > 0):
            raise ValueError(f"beta: expected a positive finite number, got {beta!r}")
    attend = attention or _softmax_attention
    ffn = feed_forward or _feed_forward
    dt = x.dtype
    w_q, w_k, w_v, w_o = (w.astype(dt) for w in stacked_heads(model))
    q = np.einsum("nd,hdk->hnk", x, w_q)                                      # (H, N, d_k)
    k = np.einsum("nd,hdk->hnk", x, w_k)                                      # (H, N, d_k)
    v = np.einsum("nd,hdv->hnv", x, w_v)                                      # (H, N, d_v)
    if beta is None:
        o = hard_attention(q, k, v)                                           # (H, N, d_v)
    else:
        o = np.asarray(attend(q, k, v, scale=float(beta)), dtype=dt)          # (H, N, d_v)
    heads_out = np.einsum("hnv,hvd->nd", o, w_o)                              # (N, d): sum of heads
    x = residual(x, heads_out)                                                # (N, d)
    p = model.ffn
    params = FFNParams(p.w1.astype(dt), p.b1.astype(dt), p.w2.astype(dt), p.b2.astype(dt))
    return residual(x, np.asarray(ffn(x, params, activation="relu"), dtype=dt))


def run_transformer(model: TuringTransformer, x, steps: int, **kwargs) -> list[np.ndarray]:
    """Apply :func:`transformer_step` ``steps`` times; returns the ``steps + 1`` token matrices."""
    steps = check_positive_int(steps, "steps", minimum=0)
    xs = [as_float_array(x, "x", ndim=2)]
    for _ in range(steps):                  # depth = number of machine steps, shared weights
        xs.append(transformer_step(model, xs[-1], **kwargs))
    return xs


def decode(model: TuringTransformer, x, *, offset: int = 0) -> Configuration:
    """Read (state, head, tape) off the token matrix.

    The state is the argmax of the state block if every token agrees (else
    ``-1``), the head is the unique cell with flag above 1/2 (else ``None``),
    and each cell's symbol is the argmax of its symbol block. Cells are
    numbered so that token ``offset`` is cell 0.
    """
    model = _check_model(model)
    x = np.asarray(x, dtype=np.float64)
    b = model.blocks
    states = np.argmax(x[:, b["state"]], axis=-1)                            # (N,)
    state = int(states[0]) if np.all(states == states[0]) else -1
    flags = np.flatnonzero(x[:, b["head"].start] > 0.5)
    head = int(flags[0]) - offset if flags.size == 1 else None
    symbols = np.argmax(x[:, b["symbol"]], axis=-1)                          # (N,)
    cells = {int(t) - offset: int(a) for t, a in enumerate(symbols)}
    return Configuration(state, head, _tape_tuple(cells, model.machine.blank))


def binarity_defect(model: TuringTransformer, x) -> float:
    """Largest distance of a stored feature from {0, 1}, or of a scratch feature from 0."""
    model = _check_model(model)
    x = np.asarray(x, dtype=np.float64)
    b = model.blocks
    stored = np.concatenate([x[:, b[k]] for k in ("state", "symbol", "head")], axis=-1)
    scratch = np.concatenate([x[:, b[k]] for k in ("read", "left", "right")], axis=-1)
    dist = np.minimum(np.abs(stored), np.abs(stored - 1.0))
    return float(max(np.max(dist), np.max(np.abs(scratch))))


def simulate_with_transformer(machine: TuringMachine, tape, steps: int, *, head: int = 0,
                              beta: float | None = None, attention: Callable | None = None,
                              feed_forward: Callable | None = None, n_cells: int | None = None,
                              dtype=np.float64, build: Callable | None = None):
    """Build the layer, encode the tape with ``steps`` blank cells each side, run, decode.

    Parameters
    ----------
    machine, tape, steps, head
        As in :func:`simulate`.
    beta, attention, feed_forward
        As in :func:`transformer_step`.
    n_cells : int, optional
        Ring size; default :func:`required_cells`.
    dtype : float32 or float64
    build : callable, optional
        ``build(machine, n_cells) -> TuringTransformer``; default
        :func:`build_turing_transformer` (a claim passes a subject's own).

    Returns
    -------
    configurations : list of Configuration
        ``steps + 1`` decoded configurations, comparable with :func:`simulate`.
    defects : list of float
        :func:`binarity_defect` after each layer (0 for the input).
    """
    machine = _check_machine(machine)
    cells = _check_tape(tape, machine)
    steps = check_positive_int(steps, "steps", minimum=0)
    n = required_cells(len(cells), steps) if n_cells is None else n_cells
    model = _check_model((build or build_turing_transformer)(machine, n))
    offset = steps
    if offset + len(cells) > model.n_cells:
        offset = model.n_cells - len(cells)
    x0 = encode(model, cells, head=head, offset=max(offset, 0), dtype=dtype)
    xs = run_transformer(model, x0, steps, beta=beta, attention=attention,
                         feed_forward=feed_forward)
    configs = [decode(model, x, offset=max(offset, 0)) for x in xs]
    return configs, [binarity_defect(model, x) for x in xs]


def sufficient_beta(n_cells: int) -> float:
    """``ln(7 (N - 1))``: above it every softmax read is within 1/8 and the simulation is exact.

    Two approximate inputs (a read symbol and a neighbour flag), each off by at
    most ``eps = (N - 1) / (e^beta + N - 1)``, must together stay within the
    step units' margin ``1/4``: ``2 eps <= 1/4`` iff ``e^beta >= 7 (N - 1)``.
    """
    n_cells = check_positive_int(n_cells, "n_cells", minimum=2)
    return math.log(7.0 * (n_cells - 1))


def critical_beta(machine: TuringMachine, tape, steps: int, *, head: int = 0,
                  attention: Callable | None = None, n_cells: int | None = None,
                  resolution: float = 1e-3, dtype=np.float64,
                  build: Callable | None = None) -> float:
    """The smallest ``beta`` at which the softmax run still decodes the machine correctly.

    Bisection on ``[0, sufficient_beta(N) + 1]`` assuming success is monotone in
    ``beta`` (a larger ``beta`` only sharpens every read). ``build`` is passed
    to :func:`simulate_with_transformer`.

    Returns
    -------
    float
        The measured threshold, to within ``resolution``.
    """
    machine = _check_machine(machine)
    cells = _check_tape(tape, machine)
    n = required_cells(len(cells), steps) if n_cells is None else n_cells
    expected = simulate(machine, cells, steps, head=head)

    def ok(beta: float) -> bool:
        got, _ = simulate_with_transformer(machine, cells, steps, head=head, beta=beta,
                                           attention=attention, n_cells=n, dtype=dtype,
                                           build=build)
        return got == expected

    lo, hi = 0.0, sufficient_beta(n) + 1.0
    if not ok(hi):
        return math.inf
    while hi - lo > resolution:
        mid = 0.5 * (lo + hi)
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def render_configuration(machine: TuringMachine, config: Configuration, lo: int, hi: int) -> str:
    """One line: the state name, then cells ``lo..hi-1`` with the head's cell in brackets."""
    parts = []
    for c, a in zip(range(lo, hi), config.window(lo, hi, machine.blank)):
        sym = machine.symbol_name(a)
        parts.append(f"[{sym}]" if c == config.head else f" {sym} ")
    state = machine.state_name(config.state) if config.state >= 0 else "?"
    return f"{state:>6} |{''.join(parts)}|"
