"""Sub-commands of ``transformer-theory`` beyond list/verify/report/proofs.

Each module exposes ``register(subparsers)``, adding one parser whose
``func(args) -> int`` returns the exit status; raise
``transformer_theory.theory.cli.UsageError`` for a bad option value (exit 2).
"""
