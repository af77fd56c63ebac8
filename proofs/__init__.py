"""Symbolic derivations behind the claims (namespace ``transformer_theory.proofs``).

Each derivation is a function returning a :class:`Derivation` -- a chain of
steps, each checked by sympy (or, where sympy cannot close it, by a
high-precision numeric fallback that is recorded as such) -- registered under a
dotted id.  Importing this package registers all of them::

    from transformer_theory import proofs
    d = proofs.get("performer.positive_mse")
    d.status, d.verified          # ("symbolic", True)
    proofs.render.format_text(d)

References
----------
Meurer et al. 2017, SymPy: symbolic computing in Python, PeerJ Computer Science 3:e103.
"""

from .derivation import Derivation, Step, given, prove_equal, prove_inequality
from .registry import DERIVATIONS, all_derivations, clear_cache, derivation, get
from . import performer, softmax, positional, layers, counting, ode  # noqa: F401  (registers)
from . import render

__all__ = [
    "Derivation", "Step", "given", "prove_equal", "prove_inequality",
    "DERIVATIONS", "derivation", "get", "all_derivations", "clear_cache", "render",
]
