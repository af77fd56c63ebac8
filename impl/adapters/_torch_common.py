"""The boundary of the torch adapter: numpy in, torch inside, numpy out.

Shared by the torch adapter's modules (:mod:`.torch_attention`,
:mod:`.torch_layers`, :mod:`.torch_gradients`): importing torch only when a
callable runs, running it on one thread, converting arrays to tensors of the
compute dtype and back, and the contract's argument checks as the adapter
makes them (masks combined with the causal flag, the scale, ``q, k, v``, a
bias, a vector). The compute dtype is float64 if any float input is float64,
float16 or bfloat16 if every input is, else float32
(``contract.arrays.common_float_dtype``).

References
----------
PyTorch documentation: ``torch.from_numpy``, ``torch.set_num_threads``,
``torch.nn.functional.scaled_dot_product_attention`` (the mask polarity and
causal alignment the adapter translates to).
"""

from __future__ import annotations

import functools

import numpy as np

from .._validate import as_bool_mask, as_float_array
from ..contract.validate import check_qkv_arrays  # re-exported: the adapters' q, k, v checks
from ..contract.validate import resolve_scale as check_scale  # re-exported: 1/sqrt(E) or checked
from ..contract.precision import BFLOAT16

__all__ = [
    "import_torch",
    "serial",
    "torch_dtype",
    "to_tensor",
    "to_numpy",
    "mask_tensor",
    "allowed_mask",
    "causal_align",
    "check_scale",
    "check_qkv_arrays",
    "check_bias_array",
    "check_vector",
    "flatten_lead",
    "param_arrays",
]


# ---------------------------------------------------------------------------
# torch, imported when a callable runs, on one thread
# ---------------------------------------------------------------------------

def import_torch():
    """The ``torch`` module, or an ``ImportError`` saying how to install it.

    Returns
    -------
    module
    """
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "the torch adapter needs PyTorch: pip install 'transformer-theory[torch]' "
            "(or pip install torch)") from exc
    return torch


def serial(fn):
    """Run ``fn`` with torch's intra-op parallelism off, restoring the setting after.

    The claims' inputs are tiny: starting OpenMP threads for them costs far
    more than the arithmetic (milliseconds per SDPA call on a loaded 2-core
    machine, against tens of microseconds on one thread).

    Parameters
    ----------
    fn : callable

    Returns
    -------
    callable
        ``fn`` wrapped (``functools.wraps``).

    References
    ----------
    PyTorch documentation, torch.get_num_threads and torch.set_num_threads.
    """
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        torch = import_torch()
        threads = torch.get_num_threads()
        if threads != 1:
            torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            if threads != 1:
                torch.set_num_threads(threads)
    return wrapped


# ---------------------------------------------------------------------------
# numpy <-> torch at the boundary
# ---------------------------------------------------------------------------

def torch_dtype(dtype: np.dtype):
    """The torch dtype of a contract dtype: float64, float16, bfloat16, else float32."""
    torch = import_torch()
    dtype = np.dtype(dtype)
    if dtype == BFLOAT16:
        return torch.bfloat16
    return {np.dtype(np.float64): torch.float64,
            np.dtype(np.float16): torch.float16}.get(dtype, torch.float32)


def to_tensor(a: np.ndarray, dtype: np.dtype, requires_grad: bool = False):
    """A torch tensor holding a copy of ``a`` in ``dtype`` (a leaf if ``requires_grad``).

    ``torch.from_numpy`` refuses ``ml_dtypes.bfloat16``: a bfloat16 tensor is
    made through float32, which holds every bfloat16 value exactly.
    """
    torch = import_torch()
    if np.dtype(dtype) == BFLOAT16:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32).copy()).to(torch.bfloat16)
    else:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=dtype).copy())
    return t.requires_grad_(True) if requires_grad else t


def to_numpy(t, dtype: np.dtype) -> np.ndarray:
    """The values of tensor ``t`` as a numpy array of ``dtype``.

    A bfloat16 tensor has no ``.numpy()``: it is read through float32 (exact).
    """
    torch = import_torch()
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.to(torch.float32)
    return t.numpy().astype(dtype, copy=False)


def mask_tensor(mask):
    """A boolean torch tensor holding a C-contiguous copy of ``mask``."""
    torch = import_torch()
    return torch.from_numpy(np.array(mask, dtype=bool, order="C"))


# ---------------------------------------------------------------------------
# the contract's arguments, as the adapter checks them
# ---------------------------------------------------------------------------

def causal_align(causal) -> str | None:
    """The alignment named by ``causal`` (``True`` is ``"top-left"``), None for no mask.

    Parameters
    ----------
    causal : {False, True, "top-left", "bottom-right"}

    Returns
    -------
    str or None
    """
    if isinstance(causal, (bool, np.bool_)):
        return "top-left" if causal else None
    if causal in ("top-left", "bottom-right"):
        return causal
    raise ValueError(
        f"causal: expected one of (False, True, 'top-left', 'bottom-right'), got {causal!r}")


def allowed_mask(mask, causal, lead: tuple, lq: int, lk: int) -> np.ndarray | None:
    """The contract's mask and causal flag combined by AND (True = may attend).

    Parameters
    ----------
    mask : array_like of bool or None
        Broadcastable to ``lead + (lq, lk)``.
    causal : {False, True, "top-left", "bottom-right"}
    lead : tuple of int
    lq, lk : int

    Returns
    -------
    np.ndarray of bool, broadcastable to (..., Lq, Lk), or None (every key)

    References
    ----------
    PyTorch documentation, torch.nn.attention.bias.causal_lower_right (the
    bottom-right alignment).
    """
    allowed = None
    if mask is not None:
        allowed = as_bool_mask(mask, "mask", tuple(lead) + (lq, lk))      # (..., Lq, Lk)
    align = causal_align(causal)
    if align is not None:
        offset = 0 if align == "top-left" else lk - lq
        tri = np.tril(np.ones((lq, lk), dtype=bool), k=offset)           # (Lq, Lk)
        allowed = tri if allowed is None else (allowed & tri)
    return allowed


def check_bias_array(bias, lead, lq, lk):
    """``bias`` as a float array broadcastable to ``lead + (lq, lk)``, or None."""
    if bias is None:
        return None
    b = as_float_array(bias, "bias", ndim_min=0)
    try:
        np.broadcast_to(b, tuple(lead) + (lq, lk))
    except ValueError:
        raise ValueError(f"bias: expected an array broadcastable to "
                         f"{tuple(lead) + (lq, lk)}, got shape {b.shape}") from None
    return b


def check_vector(v, name, e):
    """``v`` as a float array of shape ``(e,)``, or None."""
    if v is None:
        return None
    arr = as_float_array(v, name, ndim=1)
    if arr.shape != (e,):
        raise ValueError(f"{name}: expected shape ({e},), got {arr.shape}")
    return arr


def flatten_lead(x: np.ndarray) -> np.ndarray:
    """(..., L, E) -> (N, L, E) with N the product of the leading dims."""
    return x.reshape((-1,) + x.shape[-2:])


def param_arrays(params):
    """The arrays of attention ``params`` that are not None (for the compute dtype)."""
    return [a for a in (params.w_q, params.w_k, params.w_v, params.b_q, params.b_k, params.b_v,
                        params.w_o, params.b_o) if a is not None]
