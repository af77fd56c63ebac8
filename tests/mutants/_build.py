"""Small numpy pieces the mutants are assembled from (written plainly, so that
each mutant's bug is the only thing that differs from the definition)."""

from __future__ import annotations

import numpy as np

from transformer_theory.impl import attention as A


def naive_weights(q, k, *, mask=None, causal=False, scale=None, bias=None, softmax=None,
                  causal_offset=0):
    """softmax(q k^T * scale + bias) with masking by -inf; ``softmax`` replaceable."""
    q = np.asarray(q)
    k = np.asarray(k)
    lq, lk, e = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / np.sqrt(e) if scale is None else scale
    s = np.einsum("...qe,...ke->...qk", q, k) * scale            # (..., Lq, Lk)
    if bias is not None:
        s = s + bias
    allowed = np.ones(s.shape, dtype=bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask, s.shape)
    if causal:
        offset = (lk - lq) if causal == "bottom-right" else 0
        allowed &= np.tril(np.ones((lq, lk), dtype=bool), k=offset + causal_offset)
    s = np.where(allowed, s, -np.inf)
    return (softmax or A.softmax)(s, axis=-1).astype(q.dtype)


def attention_from(weights_fn):
    """An attention callable ``weights_fn(q, k, ...) @ v``."""
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        w = weights_fn(q, k, mask=mask, causal=causal, scale=scale, bias=bias)
        return (w @ np.asarray(v)).astype(np.asarray(q).dtype)
    return attention


# --------------------------------------------------------------------------
# the pieces of the stand-alone broken kernels (loaded by target, as a user would)
# --------------------------------------------------------------------------

def causal_tri(lq: int, lk: int, causal, shift: int = 0) -> np.ndarray | None:
    """The allowed (Lq, Lk) triangle of ``causal`` (top-left, or 'bottom-right'), or None."""
    if not causal:
        return None
    offset = (lk - lq) if causal == "bottom-right" else 0
    return np.tril(np.ones((lq, lk), dtype=bool), k=offset + shift)


def allowed(q, k, mask, causal, shift: int = 0):
    """The boolean (..., Lq, Lk) of the keys each query may see."""
    lq, lk = q.shape[-2], k.shape[-2]
    out = np.ones(q.shape[:-2] + (lq, lk), dtype=bool)
    if mask is not None:
        out &= np.broadcast_to(mask, out.shape)
    tri = causal_tri(lq, lk, causal, shift)
    return out if tri is None else out & tri


def softmax_rows(s: np.ndarray) -> np.ndarray:
    """Max-subtracted softmax over the last axis; empty rows give zeros."""
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    z = e.sum(axis=-1, keepdims=True)
    return np.divide(e, z, out=np.zeros_like(e), where=z > 0)


def attend(q, k, v, allowed_, scale):
    """softmax(scale q k^T, restricted to ``allowed_``) v."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = scale * (q @ np.swapaxes(k, -1, -2))                      # (..., Lq, Lk)
    s = np.where(allowed_, s, -np.inf)
    return (softmax_rows(s) @ v).astype(np.result_type(q, k, v))


def project(x, w, b):
    """Per-head projection: (..., L, E) x (H, E, D) -> (..., H, L, D)."""
    y = np.einsum("...le,hed->...hld", x, w)
    return y if b is None else y + b[:, None, :]


def merge(o, p):
    """Heads (..., H, L, Dv) concatenated in order, then W_O."""
    concat = np.concatenate([o[..., h, :, :] for h in range(o.shape[-3])], axis=-1)
    y = concat @ p.w_o
    return y if p.b_o is None else y + p.b_o


def reshape_as_transpose(x) -> np.ndarray:
    """A reshape used where a transpose was meant: ``(..., L, E)`` read as ``(..., E, L)``.

    Parameters
    ----------
    x : array_like
        ``(..., L, E)``; below two dimensions it is returned unchanged.

    Returns
    -------
    numpy.ndarray
        ``(..., L, E)``, C-contiguous, whose rows mix the entries of different positions
        (the bug a position-wise layer must show: its output row i no longer depends on
        input row i alone).
    """
    x = np.asarray(x)
    if x.ndim >= 2:
        x = x.reshape(*x.shape[:-2], x.shape[-1], x.shape[-2]).swapaxes(-1, -2)
    return np.ascontiguousarray(x)


def attention_dropping(keyword: str):
    """A ``build`` whose attention accepts ``keyword`` and silently drops it.

    Parameters
    ----------
    keyword : {"bias", "scale"}
        The argument accepted and ignored: the additive logit bias is never added,
        or the scale is always the default ``1/sqrt(E)``.

    Returns
    -------
    callable
        ``build(reference_subject) -> Subject`` with the reference attention
        (:func:`transformer_theory.impl.attention.attention`) called without ``keyword``.
    """
    if keyword not in ("bias", "scale"):
        raise ValueError(f"keyword must be 'bias' or 'scale', got {keyword!r}")

    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        kept = {"scale": scale, "bias": bias}
        del kept[keyword]                                                    # accepted, dropped
        return A.attention(q, k, v, mask=mask, causal=causal, **kept)
    return lambda ref: ref.replace(attention=attention)
