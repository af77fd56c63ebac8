"""The parameters of a gated feed-forward network (GLU variants: SwiGLU, GeGLU).

A plain container like :class:`.params.FFNParams`: :meth:`GatedFFNParams.validate`
checks it against the input width where it is used, naming ``params.w_gate``
etc. Re-exported by :mod:`.params`.

References
----------
Shazeer 2020, GLU Variants Improve Transformer, arXiv:2002.05202: the FFN
variants ``(act(x W) * (x V)) W_2`` with three weight matrices and no biases
(following the T5 codebase).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validate import as_float_array, check_dim, check_optional_vector

__all__ = ["GatedFFNParams"]


@dataclass
class GatedFFNParams:
    """Weights of ``(act(x W_gate + b_gate) * (x W_up + b_up)) W_down + b_down``.

    The activation applies to the gate projection only. Biases are optional
    (Shazeer's variants have none).

    Attributes
    ----------
    w_gate : numpy.ndarray
        Gate projection, shape ``(E, F)``.
    w_up : numpy.ndarray
        Up (value) projection, shape ``(E, F)``.
    w_down : numpy.ndarray
        Down projection, shape ``(F, E)``.
    b_gate, b_up : numpy.ndarray or None
        Shape ``(F,)`` each.
    b_down : numpy.ndarray or None
        Shape ``(E,)``.

    References
    ----------
    Shazeer 2020, GLU Variants Improve Transformer: FFN_SwiGLU(x, W, V, W_2) =
    (Swish_1(xW) * xV) W_2, FFN_GEGLU with GELU in place of Swish.
    """

    w_gate: np.ndarray              # (E, F)
    w_up: np.ndarray                # (E, F)
    w_down: np.ndarray              # (F, E)
    b_gate: np.ndarray | None = None  # (F,)
    b_up: np.ndarray | None = None    # (F,)
    b_down: np.ndarray | None = None  # (E,)

    def validate(self, d_model: int):
        """The weights checked against the input width ``E = d_model``.

        Parameters
        ----------
        d_model : int
            The last dim of the input ``x``.

        Returns
        -------
        w_gate, b_gate, w_up, b_up, w_down, b_down : np.ndarray or None
            Finite float arrays, not cast: ``(E, F)``, ``(F,)``, ``(E, F)``,
            ``(F,)``, ``(F, E)``, ``(E,)``.

        Raises
        ------
        ValueError, TypeError
            Naming the field, e.g. ``params.w_up``.
        """
        e = d_model
        w_gate = as_float_array(self.w_gate, "params.w_gate", ndim=2)
        check_dim(w_gate, 0, e, "params.w_gate", "d_model (last dim of x)")
        f = w_gate.shape[1]
        w_up = as_float_array(self.w_up, "params.w_up", ndim=2)
        if w_up.shape != (e, f):
            raise ValueError(f"params.w_up: expected shape (d_model, d_ff) = {(e, f)} like "
                             f"params.w_gate, got shape {w_up.shape}")
        w_down = as_float_array(self.w_down, "params.w_down", ndim=2)
        if w_down.shape != (f, e):
            raise ValueError(f"params.w_down: expected shape (d_ff, d_model) = {(f, e)}, "
                             f"got shape {w_down.shape}")
        b_gate = check_optional_vector(self.b_gate, "params.b_gate", f, "d_ff (columns of w_gate)")
        b_up = check_optional_vector(self.b_up, "params.b_up", f, "d_ff (columns of w_gate)")
        b_down = check_optional_vector(self.b_down, "params.b_down", e, "d_model (last dim of x)")
        return w_gate, b_gate, w_up, b_up, w_down, b_down
