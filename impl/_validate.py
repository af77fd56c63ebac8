"""Input validation of the reference implementation: now :mod:`.contract.validate`.

Kept so that existing imports (``from .._validate import as_float_array``)
keep working; new code imports from :mod:`transformer_theory.impl.contract`.
"""

from .contract.validate import *  # noqa: F401,F403  (every public validator)
