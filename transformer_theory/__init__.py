"""transformer-theory: a theory and property verification suite for transformers.

The distribution installs one namespace:

- ``transformer_theory.impl``   -- the numpy reference implementation (and ``impl.fast``);
- ``transformer_theory.theory`` -- claims, the registry, the runner and the CLI;
- ``transformer_theory.proofs`` -- sympy derivations behind the symbolic claims.
"""

__version__ = "0.1.0"
