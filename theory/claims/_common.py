"""Formulas the claims state, written directly from the papers in float64.

These are the *statements*, not a second implementation to trust: each is the
one-line definition a claim compares a subject against (Vaswani et al. 2017,
Eq. 1 for attention). They are deliberately naive so that they can be read
against the paper.
"""

from __future__ import annotations

import numpy as np

from transformer_theory.impl.contract.precision import BFLOAT16, FLOAT16


def definition_attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None,
                         softcap=None):
    """softmax(Q K^T * scale + log mask) V in float64; fully masked rows give 0.

    ``causal`` is "top-left" (True) or "bottom-right" as in the contract. ``softcap``
    c replaces the scaled logits by c tanh(s / c), then ``bias`` is added (Gemma 2's
    logit soft-capping, in the contract's order).
    """
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    lq, lk, e = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / np.sqrt(e) if scale is None else scale
    s = np.einsum("...qe,...ke->...qk", q, k) * scale       # (..., Lq, Lk)
    if softcap is not None:
        s = softcap * np.tanh(s / softcap)
    if bias is not None:
        s = s + np.asarray(bias, dtype=np.float64)
    allowed = np.ones(s.shape, dtype=bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask, s.shape)
    if causal:
        offset = (lk - lq) if causal == "bottom-right" else 0
        allowed &= np.tril(np.ones((lq, lk), dtype=bool), k=offset)
    s = np.where(allowed, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    p = np.where(allowed, np.exp(s - m), 0.0)
    z = p.sum(axis=-1, keepdims=True)
    p = np.divide(p, z, out=np.zeros_like(p), where=z > 0)   # (..., Lq, Lk)
    return p @ v, p


def definition_rope(x, pos, *, base=10000.0, pairs="interleaved"):
    """RoPE in float64 on pairs (2i, 2i+1) ('interleaved', RoFormer) or (i, i + d/2) ('half',
    GPT-NeoX rotate_half), angle pos * base^(-2i/d); ``pos`` of shape (L,)."""
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[-1]
    theta = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)             # (d/2,)
    a = np.asarray(pos, dtype=np.float64)[:, None] * theta[None, :]          # (L, d/2)
    first, second = ((slice(0, d, 2), slice(1, d, 2)) if pairs == "interleaved"
                     else (slice(0, d // 2), slice(d // 2, d)))
    out = np.empty_like(x)
    out[..., first] = x[..., first] * np.cos(a) - x[..., second] * np.sin(a)
    out[..., second] = x[..., first] * np.sin(a) + x[..., second] * np.cos(a)
    return out


def definition_head_projections(x_q, x_kv, params) -> list[list[np.ndarray]]:
    """Per query head h, in float64: ``[x_q W^Q_h + b^Q_h, x_kv W^K_g + b^K_g, x_kv W^V_g +
    b^V_g]``, its kv group ``g = h // (H // G)`` (Vaswani et al. 2017, §3.2.2; GQA)."""
    f64 = (lambda a: None if a is None else np.asarray(a, dtype=np.float64))
    x_q, x_kv = f64(x_q), f64(x_kv)
    h, g = params.w_q.shape[0], params.w_k.shape[0]
    out = []
    for i in range(h):
        j = i // (h // g)
        out.append([x @ f64(w)[n] + (0.0 if b is None else f64(b)[n])
                    for x, w, b, n in ((x_q, params.w_q, params.b_q, i),
                                       (x_kv, params.w_k, params.b_k, j),
                                       (x_kv, params.w_v, params.b_v, j))])
    return out


def definition_mha(x_q, x_kv, params, *, causal=False, rope_base=None, mask=None):
    """Multi-head (or grouped-query) attention in float64, head by head (Vaswani et al. 2017,
    §3.2.2): Concat_h Attention(x_q W^Q_h + b^Q_h, x_kv W^K_g + b^K_g, x_kv W^V_g + b^V_g) W^O
    + b^O, query head h reading kv group g = h // (H // G); with ``rope_base``, each head's
    queries and keys rotated (RoFormer, interleaved) at positions 0 .. L-1; ``mask`` (True =
    may attend) shared by the heads."""
    f64 = (lambda a: None if a is None else np.asarray(a, dtype=np.float64))
    heads = []
    for proj in definition_head_projections(x_q, x_kv, params):
        if rope_base is not None:
            proj[0] = definition_rope(proj[0], np.arange(proj[0].shape[-2]), base=rope_base)
            proj[1] = definition_rope(proj[1], np.arange(proj[1].shape[-2]), base=rope_base)
        heads.append(definition_attention(*proj, causal=causal, mask=mask)[0])   # (..., Lq, Dv)
    out = np.concatenate(heads, axis=-1) @ f64(params.w_o)                # (..., Lq, E)
    return out if params.b_o is None else out + f64(params.b_o)


def causal_allowed(lq: int, lk: int, align: str = "top-left") -> np.ndarray:
    """Boolean (Lq, Lk): True where query i may see key j."""
    offset = (lk - lq) if align == "bottom-right" else 0
    return np.tril(np.ones((lq, lk), dtype=bool), k=offset)


def coarser_dtype(*arrays) -> np.dtype:
    """The coarsest floating dtype among the arrays (the tolerance follows it): bfloat16,
    then float16, then float32, else float64."""
    dts = {np.asarray(a).dtype for a in arrays}
    for coarse in (BFLOAT16, FLOAT16, np.dtype(np.float32)):
        if coarse in dts:
            return coarse
    return np.dtype(np.float64)
