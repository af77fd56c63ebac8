"""``transformer-theory turing``: run a Turing machine on the transformer construction.

Prints, step by step, the configuration decoded from the transformer next to
the direct simulator's, e.g.::

    transformer-theory turing --machine increment --input 1011 --steps 12
    transformer-theory turing --machine busy-beaver --steps 8 --hard

Exit status 0 when every decoded step equals the simulator's, 1 otherwise,
2 for a bad option value.

References
----------
Wei, Chen & Ma 2022, NeurIPS, §4; Pérez, Barceló & Marinkovic 2021, JMLR, §4;
seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt).
"""

from __future__ import annotations

import argparse
import json

from transformer_theory.impl.constructions import turing as TM

#: Machines the command knows, with the alphabet used to read ``--input``.
MACHINES = {
    "increment": TM.binary_increment_machine,
    "busy-beaver": TM.busy_beaver_2,
}


def register(subparsers) -> None:
    """Add the ``turing`` sub-command."""
    p = subparsers.add_parser(
        "turing", help="run a Turing machine on the transformer construction",
        description="Simulate a Turing machine with one shared transformer layer per step "
                    "and compare every decoded configuration with a direct simulator.")
    p.add_argument("--machine", choices=sorted(MACHINES), default="increment")
    p.add_argument("--input", default=None,
                   help="initial tape, one character per cell in the machine's alphabet "
                        "(default: 1011 for increment, 0 for busy-beaver)")
    p.add_argument("--steps", type=int, default=12, help="number of steps T (default 12)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--beta", type=float, default=None,
                       help="softmax inverse temperature (default ln(7(N-1)) + 1)")
    group.add_argument("--hard", action="store_true", help="use hard attention")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_turing)


def _parse_tape(machine: TM.TuringMachine, text: str) -> list[int]:
    from ..cli import UsageError

    names = [machine.symbol_name(a) for a in range(machine.n_symbols)]
    try:
        return [names.index(ch) for ch in text]
    except ValueError:
        raise UsageError(f"--input: expected characters from {names}, got {text!r}") from None


def cmd_turing(args: argparse.Namespace) -> int:
    from ..cli import UsageError

    machine = MACHINES[args.machine]()
    default_input = "1011" if args.machine == "increment" else "0"
    text = default_input if args.input is None else args.input
    if not text:
        raise UsageError("--input: expected at least one cell")
    if args.steps < 0 or args.steps > 200:
        raise UsageError(f"--steps: expected 0..200, got {args.steps}")
    if args.beta is not None and not args.beta > 0:
        raise UsageError(f"--beta: expected a positive number, got {args.beta}")
    tape = _parse_tape(machine, text)
    n = TM.required_cells(len(tape), args.steps)
    beta = None if args.hard else (TM.sufficient_beta(n) + 1.0 if args.beta is None else args.beta)
    expected = TM.simulate(machine, tape, args.steps)
    got, defects = TM.simulate_with_transformer(machine, tape, args.steps, beta=beta)
    ok = got == expected
    if args.json:
        print(json.dumps({
            "machine": machine.name, "input": text, "steps": args.steps, "n_cells": n,
            "attention": "hard" if beta is None else "softmax", "beta": beta,
            "sufficient_beta": TM.sufficient_beta(n), "matches_simulator": ok,
            "steps_run": [{"t": t, "state": machine.state_name(c.state) if c.state >= 0 else None,
                           "head": c.head, "tape": [[cell, machine.symbol_name(a)]
                                                    for cell, a in c.tape],
                           "matches": c == e, "binarity_defect": d}
                          for t, (c, e, d) in enumerate(zip(got, expected, defects))],
        }, indent=2))
        return 0 if ok else 1
    cells = [cfg.head for cfg in expected] + [0, len(tape) - 1]
    lo, hi = min(cells) - 1, max(cells) + 2
    mode = "hard attention" if beta is None else f"softmax attention, beta = {beta:.3f}"
    print(f"{machine.name}: input {text}, {args.steps} steps, N = {n} tokens, {mode} "
          f"(sufficient beta ln(7(N-1)) = {TM.sufficient_beta(n):.3f})")
    width = len(TM.render_configuration(machine, expected[0], lo, hi))
    print(f"{'t':>3} {'transformer':<{width}}  simulator")
    for t, (c, e) in enumerate(zip(got, expected)):
        mark = "" if c == e else "   <-- differs"
        print(f"{t:>3} {TM.render_configuration(machine, c, lo, hi)}  "
              f"{TM.render_configuration(machine, e, lo, hi)}{mark}")
    print("every step matches the simulator" if ok else "the transformer diverged from the machine")
    return 0 if ok else 1
