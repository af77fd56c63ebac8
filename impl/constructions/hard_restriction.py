"""Input restrictions that pin a hard-attention layer's attention: the idea behind Hahn's
hard-attention limitation, in its one-layer form.

A one-layer classifier reads its decision at a CLS token (position ``n``, after the
bits ``w_0 .. w_{n-1}``). Each of its ``H`` unique-hard-attention heads sends the
CLS query to the key of largest score; the stream at position ``j`` is
``E[w_j] + P[j]``, so key ``j`` can score only one of two values,
``s_h(j, 0)`` or ``s_h(j, 1)``. Hence:

*Fixing one bit per head pins the layer's attention.* Take the heads in turn.
Among the scores any completion could produce -- both values of every free
bit, the fixed value of every fixed bit, and the CLS key's own -- let
``(j*, a*)`` be the largest. If it is strictly largest, fixing ``w_{j*} = a*``
(when ``j*`` is free) makes the head attend to ``j*`` in *every* completion of
the remaining bits, and a later head's choice cannot undo it (the earlier
maximum was taken over both values of every bit). After at most ``H`` fixed
bits the CLS output is one number for all ``2^(n - H)`` completions, while the
PARITY of the free bits takes both values equally often: the classifier errs on
exactly half of the restricted strings, however its weights were chosen.

Hahn proves the general statement (any fixed number of layers, a constant
fraction of inputs left free as ``n`` grows) with random restrictions; this
module makes the one-layer step explicit and checkable.

References
----------
Hahn 2020, Theoretical Limitations of Self-Attention in Neural Sequence Models,
TACL (abstract: self-attention "cannot model periodic finite-state languages,
nor hierarchical structure, unless the number of layers or heads increases with
input length"; unique hard attention). Furst, Saxe & Sipser 1984, Parity,
circuits, and the polynomial-time hierarchy, Math. Systems Theory (restrictions
against PARITY).
Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt), "Negative result: Dyck_k is
not possible".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import sdpa as _sdpa
from ..layers import FFNParams
from .toolkit import Head, Layer, Ops, run_layer

__all__ = ["HardClassifier", "random_hard_classifier", "restriction", "cls_logits",
           "completions"]

#: Relative score gap below which two candidates count as tied (hard_attention's own is 1e-9).
TIE_GAP = 1e-6


@dataclass(frozen=True)
class HardClassifier:
    """A one-layer hard-attention classifier of bit strings, read at a final CLS token.

    Attributes
    ----------
    tokens : np.ndarray, (3, d)
        Embeddings of 0, 1 and CLS.
    positions : np.ndarray, (n + 1, d)
        Position embeddings (CLS at position ``n``).
    layer : Layer
        ``H`` heads (mask ``all``) and one ReLU FFN, residual.
    readout : np.ndarray, (d,)
        The logit is ``readout . y_CLS``.
    """

    tokens: np.ndarray
    positions: np.ndarray
    layer: Layer
    readout: np.ndarray

    @property
    def n(self) -> int:
        """Number of bits the classifier reads."""
        return self.positions.shape[0] - 1


def random_hard_classifier(rng: np.random.Generator, n: int, heads: int, d: int = 6,
                           d_head: int = 3, d_ff: int = 8) -> HardClassifier:
    """A classifier with Gaussian weights (standard normal embeddings, 1/sqrt(d) projections)."""
    if n < 1 or heads < 1:
        raise ValueError(f"n, heads: expected >= 1, got {n}, {heads}")
    g = rng.standard_normal
    s = 1.0 / np.sqrt(d)
    hs = tuple(Head(w_q=s * g((d, d_head)), w_k=s * g((d, d_head)), w_v=s * g((d, d_head)),
                    w_o=s * g((d_head, d)), mask="all", name=f"head {h}")
               for h in range(heads))
    ffn = FFNParams(w1=s * g((d, d_ff)), b1=0.1 * g(d_ff), w2=s * g((d_ff, d)), b2=None)
    return HardClassifier(tokens=g((3, d)), positions=g((n + 1, d)),
                          layer=Layer("hard attention", hs, (ffn,)), readout=g(d))


def _key_scores(model: HardClassifier, head: Head) -> np.ndarray:
    """``s(j, a)`` of the CLS query against key ``j`` holding token ``a``: ``(n + 1, 3)``."""
    n = model.n
    query = (model.tokens[2] + model.positions[n]) @ head.w_q                   # (e,)
    keys = (model.tokens[None, :, :] + model.positions[:, None, :]) @ head.w_k  # (n+1, 3, e)
    return keys @ query                                                         # (n+1, 3)


def restriction(model: HardClassifier) -> dict[int, int] | None:
    """At most one fixed bit per head after which every head's CLS choice is pinned.

    Returns
    -------
    dict of int to int, or None
        ``{position: bit}``; None if some head's best candidate is not
        strictly best (a tie within ``TIE_GAP``; a zero-probability event
        for continuous random weights).
    """
    fixed: dict[int, int] = {}
    n = model.n
    for head in model.layer.heads:
        s = _key_scores(model, head)                                            # (n+1, 3)
        cand = [(s[n, 2], n, None)]                                             # CLS's own key
        for j in range(n):
            for a in ((fixed[j],) if j in fixed else (0, 1)):
                cand.append((s[j, a], j, a))
        cand.sort(key=lambda c: c[0], reverse=True)
        top = cand[0]
        spread = max(abs(c[0]) for c in cand)
        if top[0] - cand[1][0] <= TIE_GAP * spread:
            return None
        if top[1] < n and top[1] not in fixed:
            fixed[top[1]] = int(top[2])
    return fixed


def completions(n: int, fixed: dict[int, int]) -> np.ndarray:
    """Every string of ``n`` bits that agrees with ``fixed``: ``(2^(n - |fixed|), n)``."""
    free = [j for j in range(n) if j not in fixed]
    grid = (np.arange(2 ** len(free))[:, None] >> np.arange(len(free))[None, :]) & 1
    words = np.zeros((grid.shape[0], n), dtype=np.int64)
    words[:, free] = grid
    for j, a in fixed.items():
        words[:, j] = a
    return words


def cls_logits(model: HardClassifier, words, *, hard_attention=None) -> np.ndarray:
    """The classifier's logit on each string, ``(B,)``, with ``hard_attention`` (ours by default)."""
    w = np.asarray(words, dtype=np.int64)
    if w.ndim != 2 or w.shape[1] != model.n or not np.all((w == 0) | (w == 1)):
        raise ValueError(f"words: expected a (B, {model.n}) array of 0s and 1s, got shape "
                         f"{w.shape}")
    attend_fn = _sdpa.hard_attention if hard_attention is None else hard_attention
    tokens = np.concatenate([w, np.full((w.shape[0], 1), 2)], axis=1)           # (B, n+1)
    x = model.tokens[tokens] + model.positions[None]                            # (B, n+1, d)
    ops = Ops()

    def attend(q, k, v, *, mask):
        return attend_fn(q, k, v, mask=mask)
    y, _ = run_layer(x, model.layer, attend, False, ops, x.shape[1])            # (B, n+1, d)
    return y[:, -1] @ model.readout                                             # (B,)
