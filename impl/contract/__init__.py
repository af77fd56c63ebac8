"""The contract every implementation follows: parameter types and validators.

One public module for what the reference (:mod:`transformer_theory.impl`),
the numba path (:mod:`transformer_theory.impl.fast`), the gradients and the
adapters share:

* :mod:`.params` -- the parameter types the callables take
  (``MultiHeadParams``, ``GroupedQueryParams``, ``KVCache``, ``FFNParams``,
  ``EncoderParams``, ...), each validating itself;
* :mod:`.validate` -- the validators of the arguments (arrays, masks, causal
  alignment, scale, bias, the NaN-poisoning rule for keys no query attends,
  Performer feature arguments), with the errors the contract specifies; the
  general ones (arrays and scalars) are defined in :mod:`.arrays` and
  re-exported by :mod:`.validate`;
* :mod:`.callables` -- the callable names of a subject and their signatures
  (``CALLABLES``, ``ALIASES``);
* :mod:`.conventions` -- the options a subject declares (conventions,
  precision, interface, capabilities), their values and documentation
  (``OPTIONS``, ``OPTION_TABLE``, ``validate_options``).

Every name is re-exported here. ``params``, ``validate`` and ``arrays``
import nothing from the rest of ``impl``, so every implementation module can
import this package; a module added here must keep it that way at import time.
"""

from . import callables, conventions, params, params_stack, validate
from .callables import ALIASES, CALLABLES
from .conventions import (CONTRACT_CONVENTIONS, OPTION_TABLE, OPTIONS, Option, option_value,
                          validate_options)
from .params import *  # noqa: F401,F403
from .params_stack import *  # noqa: F401,F403
from .validate import *  # noqa: F401,F403

__all__ = [*params.__all__, *params_stack.__all__, *validate.__all__, "ALIASES", "CALLABLES", "CONTRACT_CONVENTIONS",
           "OPTION_TABLE", "OPTIONS", "Option", "option_value", "validate_options"]
