"""Input validation of the reference implementation: now :mod:`.contract.validate`.

Kept so that existing imports (``from .._validate import as_float_array``)
keep working; new code imports from :mod:`transformer_theory.impl.contract`.
"""

from .contract.validate import (  # noqa: F401
    FLOAT_DTYPES,
    as_bool_mask,
    as_float_array,
    check_batch_dims,
    check_choice,
    check_dim,
    check_positive_int,
    check_rng,
    check_same_dim,
    common_float_dtype,
)
