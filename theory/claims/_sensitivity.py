"""Fixed-weight soft-attention layers and the sensitivity they measure (the Hahn claims).

The measurements behind ``dyck.hahn_sensitivity`` and ``dyck.hahn_sensitivity_depth``:
random but fixed weights on (token, position) inputs, and the largest move of the last
position's output when one input symbol changes. Hahn (2020) bounds that move by
O(1/n) for soft attention with fixed weights; the claims check the rate on the
subject's ``attention``.

References
----------
Hahn, M. (2020). Theoretical Limitations of Self-Attention in Neural Sequence Models.
TACL 8. Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt): "Negative result: Dyck_k is not possible".
"""

from __future__ import annotations

import math

import numpy as np

ALPHABET, D_EMB, E = 2, 6, 4


def fixed_layer(rng):
    """Fixed random weights of one soft-attention layer on (token, position) inputs."""
    emb = rng.standard_normal((ALPHABET, D_EMB)) / math.sqrt(D_EMB)   # (A, d)
    w_q, w_k, w_v = (rng.standard_normal((D_EMB + 1, E)) / math.sqrt(D_EMB + 1)
                     for _ in range(3))                                  # (d+1, E)
    return emb, w_q, w_k, w_v


def features(emb, tokens, positions):
    """Each token's embedding with its position in [0, 1] appended: (n,) -> (n, d + 1)."""
    return np.concatenate([emb[tokens], positions[:, None]], axis=1)      # (n, d+1)


def max_single_change(attention, layer, tokens, budget: int = 2 ** 20) -> float:
    """max over non-query positions i and symbols a != tokens[i] of |o_n(w) - o_n(w[i := a])|.

    The changed strings go to ``attention`` as one batch, in equal chunks of
    about ``budget / n`` strings (the last one padded with repeats), so that a
    compiled backend sees one shape per n.
    """
    emb, w_q, w_k, w_v = layer
    n = tokens.size
    pos = np.arange(1, n + 1) / n                                   # (n,) the query is at 1
    x = features(emb, tokens, pos)                                 # (n, d+1)
    q, k, v = x[-1:] @ w_q, x @ w_k, x @ w_v                        # (1, E), (n, E), (n, E)
    scale = 1.0 / math.sqrt(E)
    base = np.asarray(attention(q, k, v, scale=scale))[0]           # (E,)
    i, a = np.meshgrid(np.arange(n - 1), np.arange(ALPHABET), indexing="ij")
    keep = a != tokens[i]
    i, a = i[keep], a[keep]                                         # (P,) every single change
    chunk = min(i.size, max(1, budget // n))
    n_chunks = -(-i.size // chunk)
    pad = n_chunks * chunk - i.size
    i, a = np.concatenate([i, i[:pad]]), np.concatenate([a, a[:pad]])
    worst = 0.0
    for start in range(0, i.size, chunk):
        ii, aa = i[start:start + chunk], a[start:start + chunk]
        rows = np.arange(ii.size)
        kb = np.repeat(k[None], ii.size, axis=0)                    # (P, n, E)
        vb = np.repeat(v[None], ii.size, axis=0)                    # (P, n, E)
        new = features(emb, aa, pos[ii])                           # (P, d+1)
        kb[rows, ii] = new @ w_k
        vb[rows, ii] = new @ w_v
        qb = np.repeat(q[None], ii.size, axis=0)                    # (P, 1, E)
        out = np.asarray(attention(qb, kb, vb, scale=scale))[:, 0]  # (P, E)
        worst = max(worst, float(np.max(np.linalg.norm(out - base, axis=1))))
    return worst


def hahn_constants(layer, query_token: int) -> tuple[float, float]:
    """C = max |scale q.k| and V = max ||v|| over every token and position in [0, 1]."""
    emb, w_q, w_k, w_v = layer
    corners = np.array([features(emb, np.array([t]), np.array([p]))[0]
                        for t in range(ALPHABET) for p in (0.0, 1.0)])   # (2A, d+1)
    q = features(emb, np.array([query_token]), np.array([1.0])) @ w_q    # (1, E)
    logits = np.abs(corners @ w_k @ q[0]) / math.sqrt(E)          # linear in p: max at ends
    values = np.linalg.norm(corners @ w_v, axis=1)                 # convex in p: max at ends
    return float(np.max(logits)), float(np.max(values))


#: (depth, logit scales, largest log2 n) of the fixed stacks: near-uniform attention (largest
#: first-layer logit C ~ 0.1) to peaked (C ~ 3.5, one layer, whose n reaches 2^14: the 1/n
#: rate sets in once n is well past e^(2C))
SENSITIVITY_STACKS = ((1, (1.0, 10.0, 30.0), 14), (2, (1.0, 10.0), 11), (3, (1.0, 10.0), 11))
#: The rate is fitted from this n on (the moves of smaller n show the approach to it).
FIT_FROM = 256
#: Where the one symbol changes, in eighths of n (even positions for n >= 16).
CHANGED_AT = (1, 3, 5, 7)


def fixed_stack(rng, depth: int):
    """Fixed random weights of ``depth`` residual soft-attention layers of width d + 1."""
    width = D_EMB + 1
    emb = rng.standard_normal((ALPHABET, D_EMB)) / math.sqrt(D_EMB)   # (A, d)
    layers = [tuple(rng.standard_normal((width, width)) / math.sqrt(width) for _ in range(3))
              for _ in range(depth)]                                     # (W, W) each
    return emb, layers


def stack_changes(attention, stack, s: float, n: int) -> float:
    """Largest move of the last position's output when one symbol of a periodic string changes.

    The string alternates its two symbols, ``t mod 2``; one batch holds it and its copies
    with the symbol at each of :data:`CHANGED_AT` (eighths of ``n``) flipped, run through
    the layers ``y <- y + Att(s y W_Q, y W_K, y W_V)`` on the subject's attention. For
    ``n`` a power of two every ``n`` sees the same pattern: the query's symbol and the
    flipped ones do not alternate with ``n``, so the moves of one ``n`` and the next differ
    by the rate alone.
    """
    emb, layers = stack
    width = D_EMB + 1
    tokens = np.arange(n) % ALPHABET                                   # (n,)
    at = np.asarray(CHANGED_AT) * (n // 8)                             # (c,)
    batch = np.repeat(tokens[None], at.size + 1, axis=0)                # (c + 1, n)
    batch[np.arange(1, at.size + 1), at] = (tokens[at] + 1) % ALPHABET
    pos = np.broadcast_to((np.arange(1, n + 1) / n)[None, :, None], batch.shape + (1,))
    y = np.concatenate([emb[batch], pos], axis=-1)                      # (c + 1, n, W)
    for w_q, w_k, w_v in layers[:-1]:                                   # one layer after another
        y = y + np.asarray(attention(s * (y @ w_q), y @ w_k, y @ w_v,
                                     scale=1.0 / math.sqrt(width)), dtype=np.float64)
    w_q, w_k, w_v = layers[-1]                                          # the last: its query only
    last = y[:, -1] + np.asarray(attention(s * (y[:, -1:] @ w_q), y @ w_k, y @ w_v,
                                           scale=1.0 / math.sqrt(width)),
                                 dtype=np.float64)[:, 0]                # (c + 1, W)
    return float(np.max(np.linalg.norm(last[1:] - last[0], axis=1)))
