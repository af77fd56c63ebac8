"""``transformer-theory dyck``: run the Dyck_{k,D} recogniser on one string.

Usage::

    transformer-theory dyck --depth D [--k K] [--attention hard|soft] [--json] "(()[])"
    transformer-theory dyck --depth D --k K [--attention hard|soft] [--json] --tokens 0,2,3,1

Characters map to bracket types: ``()`` type 0, ``[]`` type 1, ``{}`` type 2,
``<>`` type 3 (whitespace is ignored); ``--k`` defaults to the number of types
the string uses. With ``--tokens`` the tokens are integers in ``[0, 2k)``
(``t < k`` opens type ``t``, ``t >= k`` closes type ``t - k``) and ``--k`` is
required. The command prints accept or reject, the stack reference's verdict,
and the pairs each matching layer of the network matched; ``--json`` prints
the same as one JSON object.

Exit status: 0 when the network ran (whether it accepted or rejected), 2 for
bad input (an unknown character, a type >= k, a token out of range, a depth
< 1, neither or both of a string and ``--tokens``).

References
----------
Yao et al. 2021, Self-Attention Networks Can Process Bounded Hierarchical
Languages, ACL (the hard-attention recogniser); seed 000
(shared/seeds/000_dca4bc6ff5cc76c0.txt).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def _usage_error():
    from ..cli import UsageError

    return UsageError


def _parse_tokens(text: str, k: int | None) -> np.ndarray:
    UsageError = _usage_error()
    if k is None:
        raise UsageError("--tokens: --k is required to read integer tokens")
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part != ""]
    except ValueError:
        raise UsageError(f"--tokens: expected comma-separated integers, got {text!r}") from None
    return np.array(values, dtype=np.int64)


def _inputs(args):
    """(tokens, k) from the positional string or ``--tokens``; UsageError on bad input."""
    from transformer_theory.impl.constructions.dyck import check_tokens, parse_brackets

    UsageError = _usage_error()
    if (args.string is None) == (args.tokens is None):
        raise UsageError("give exactly one of a bracket string or --tokens")
    if args.k is not None and args.k < 1:
        raise UsageError(f"--k: expected an integer >= 1, got {args.k}")
    if args.depth < 1:
        raise UsageError(f"--depth: expected an integer >= 1, got {args.depth}")
    try:
        if args.tokens is not None:
            tokens = _parse_tokens(args.tokens, args.k)
            k = args.k
            check_tokens(tokens, k, "--tokens")
        else:
            tokens, k = parse_brackets(args.string, args.k)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return tokens, k


def run(args) -> int:
    """Build the recogniser, run it on the input, print the verdict and the matching."""
    from transformer_theory.impl.constructions.dyck import (
        build_recognizer,
        format_brackets,
        is_dyck,
    )

    tokens, k = _inputs(args)
    net = build_recognizer(k, args.depth, args.attention)
    result = net.run(tokens)
    reference = is_dyck(tokens, k, args.depth)
    text = format_brackets(tokens, k)
    layers = [{"layer": i + 1, "pairs": [list(p) for p in pairs], "unmatched": unmatched}
              for i, (pairs, unmatched) in enumerate(zip(result.pairs, result.unmatched))]
    record = {
        "k": k, "depth": args.depth, "attention": args.attention,
        "tokens": tokens.tolist(), "string": text,
        "accepted": result.accepted, "reference": reference,
        "num_layers": net.num_layers, "width": net.width,
        "beta": net.scale(tokens.size), "layers": layers,
    }
    if args.json:
        json.dump(record, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    scale = "" if record["beta"] is None else f", beta = {record['beta']:.4g}"
    print(f"Dyck_{{{k},{args.depth}}}: {args.attention} attention{scale}, "
          f"{net.num_layers} layers, width {net.width}")
    print(f"input    {text}" if text else "input    (empty string)")
    for layer in layers:
        shown = ", ".join(f"{i}-{j} {format_brackets(tokens[[i, j]], k)}"
                          for i, j in layer["pairs"]) or "nothing"
        left = layer["unmatched"]
        rest = ", ".join(map(str, left)) if left else "none"
        print(f"layer {layer['layer']:<2} matched {shown}; unmatched after it: {rest}")
    verdict = "accept" if result.accepted else "reject"
    print(f"{verdict}   (stack reference: {'accept' if reference else 'reject'})")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``dyck`` sub-command to ``transformer-theory``."""
    p = subparsers.add_parser(
        "dyck", help="run the Dyck_{k,D} transformer recogniser on one string",
        description="Run the explicit (D+1)-layer transformer of Yao et al. 2021 on a bracket "
                    "string and show the pairs each layer matched. Exit 0 when it ran, 2 on "
                    "bad input.")
    p.add_argument("string", nargs="?", default=None,
                   help="brackets: () type 0, [] type 1, {} type 2, <> type 3")
    p.add_argument("--tokens", metavar="T,T,...", default=None,
                   help="integer tokens in [0, 2k) instead of a string (needs --k)")
    p.add_argument("--k", type=int, default=None,
                   help="number of bracket types (default: as many as the string uses)")
    p.add_argument("--depth", type=int, required=True, help="depth bound D (>= 1)")
    p.add_argument("--attention", choices=["hard", "soft"], default="hard",
                   help="hard (Yao et al.'s recogniser) or soft attention with scale beta(n)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
    return p
