"""The 2-layer transformer that generates Dyck_{k,D}: its readout is the set of allowed
next tokens (Yao et al. 2021's soft-attention generator).

Layer 1 computes the depth by uniform causal attention to the prefix and a
BOS token, normalised by a layer norm with ``eps = 0``; layer 2 finds the most
recent unmatched opener as the latest opener whose depth equals the current
depth. The layer norm is applied to the attention sublayer's output before the
residual addition, ``x + LN_{eps=0}(Attn(x))`` (the "res-post-norm"
placement), so that it normalises the depth signal and nothing else. The
residual stream has width ``2b + 11`` (``b = bit_length(k)``), independent of
``D`` and of the length. The weights are written with
:mod:`~transformer_theory.impl.constructions.toolkit` and checked against
:func:`~transformer_theory.impl.constructions.dyck_language.reference_allowed_sets`;
:mod:`~transformer_theory.impl.constructions.dyck` re-exports this module.

References
----------
Yao, Peng, Papadimitriou & Narasimhan 2021, Self-Attention Networks Can
Process Bounded Hierarchical Languages, ACL; in its abstract's words, "a soft-attention
network with two layers and O(log k) memory size that generates Dyck_{k,D}".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._validate import check_choice, check_positive_int, check_rng
from .dyck_language import check_depth, check_k, check_n_max, check_tokens, type_code_bits, \
    type_codes
from .toolkit import (FFNBuilder, Head, Layer, LayeredNetwork, Layout, Ops, check_ops, pad_stream,
                      run_layer)

__all__ = ["generator_beta", "DyckGenerator", "build_generator"]


# ---------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------

def generator_beta(n: int, k: int) -> float:
    """Softmax scale of the soft generator's second layer for prefixes of length ``n``.

    .. math::  \\beta(n) = 2N \\ln(8 b N), \\qquad N = n + 1 .

    Derivation. In layer 2 the winning key (latest opener at the current
    depth) beats the next candidate by at least ``epsilon / N`` with recency
    weight ``epsilon = 1/2``, and every other key by more. The other ``<= N``
    keys then carry weight ``eta <= N exp(-beta / (2N))``; the retrieved code
    is off by at most ``2 eta`` per bit and a closer's logit
    ``2 c_tau . top - (2b - 1)`` (``+1`` for the right closer, ``<= -1`` for
    any other) by at most ``4 b eta``. It keeps its sign when
    ``beta > 2N ln(4 b N)``; the factor 8 leaves a margin of 2. Layer 1 is
    exact at any scale (all its scores are 0).

    References
    ----------
    Yao et al. 2021 (the soft-attention generator).
    """
    n = check_positive_int(n, "n", minimum=0)
    b = type_code_bits(k)
    big_n = n + 1
    return 2.0 * big_n * math.log(8.0 * b * big_n)


@dataclass
class DyckGenerator(LayeredNetwork):
    """A 2-layer transformer whose output is the set of allowed next tokens (Yao et al.'s generator).

    Residual stream (width ``W = 2b + 11``)::

        one | pos | code (b) | opener | closer | bos | depth (4) |
        end_ok | open_ok | top (b)

    Layer 1 (depth). One head, causal mask ``j <= i``, all scores 0 (``W_Q =
    0``): uniform attention over the prefix and BOS. Values
    ``(opener - closer, bos)`` written as ``(s, 1, -s, -1)`` into ``depth``
    give ``(d_i, 1, -d_i, -1) / (i + 1)``, where ``d_i`` is the depth after
    token ``i`` and ``i + 1`` counts BOS. The sublayer output is normalised by
    a layer norm with ``eps = 0``: the vector has mean 0 and mean square
    ``(2 d^2 + 2) / ((i + 1)^2 W)``, so

        LN = (d, 1, -d, -1) * sqrt(W / (2 d^2 + 2)),

    which no longer depends on the position ``i``: ``y = (y_d, y_1) =
    sqrt(W/2) (d, 1) / sqrt(d^2 + 1)`` is ``sqrt(W/2)`` times the unit vector
    in the direction ``(d, 1)``. **Why eps matters:** with ``eps > 0`` the
    mean square ``~ 1/i^2`` falls below ``eps`` once ``i >~ 1/sqrt(eps)``
    (a few hundred tokens for ``eps = 1e-5``), ``y`` then shrinks like ``1/i``
    and the depth comparison of layer 2 (and the END/opener thresholds) fail
    on long prefixes -- the recency trap ``"()"x500 + "(" + "[]"x500`` is
    answered wrongly. The alternative is a pre-scaling by ``~ n_max``.
    The FFN thresholds ``y_1``, which decreases with ``d``: ``end_ok = [d = 0]``
    and ``open_ok = [d < D]``.

    Layer 2 (top of the stack). One head, causal mask, score

        gamma y_t . y_j + delta anchor_j + epsilon p_j,

    ``anchor = opener + bos``, with ``gamma = 2 / G`` where ``G`` is the
    smallest drop of ``y . y'`` between equal and unequal depths in ``[0, D]``,
    ``delta = 1`` and ``epsilon = 1/2``. The maximum is attained by the latest
    anchor with ``d_j = d_t``: equal depth is worth ``>= 2`` more than any
    unequal one, an anchor 1 more than a non-anchor, and recency breaks ties
    by ``epsilon / N``. For ``d_t >= 1`` that is the opener that opened the
    current level, i.e. the most recent unmatched opener; for ``d_t = 0`` it is
    BOS. The value is its code, written to ``top`` (0 for BOS).

    Readout (the output layer, ``(W, 2k + 1)``): opener ``tau`` is allowed iff
    ``open_ok - 1/2 > 0``, closer ``tau`` iff ``2 c_tau . top - (2b - 1) > 0``
    (1 for the matching closer, ``<= -1`` otherwise and at BOS), ``END = 2k``
    iff ``end_ok - 1/2 > 0``.

    The prefix must be a prefix of a Dyck_{k,D} string; otherwise the output
    is unspecified (the network checks nothing it was not built for).

    Attributes
    ----------
    k, D : int
    attention : {"hard", "soft"}
    layers : list of Layer
    embedding : (2k + 1, W)  rows for tokens ``0..2k-1`` and BOS (``2k``)
    readout : (W, 2k + 1)
    """

    k: int
    D: int
    attention: str
    n_max: int | None
    layers: list
    embedding: np.ndarray
    readout: np.ndarray
    readout_bias: np.ndarray
    layout: Layout = field(repr=False)
    ops: Ops = field(repr=False, default_factory=Ops)

    @property
    def END(self) -> int:
        """The end-of-string symbol in allowed sets, ``2k``."""
        return 2 * self.k

    def scale(self, n: int) -> float | None:
        if self.attention == "hard":
            return None
        return generator_beta(n if self.n_max is None else self.n_max, self.k)

    def logits(self, tokens) -> np.ndarray:
        """Readout logits (n + 1, 2k + 1); row ``t`` is for the prefix ``tokens[:t]``."""
        arr = check_tokens(tokens, self.k, "prefix")
        n = arr.size
        if self.n_max is not None and n > self.n_max:
            raise ValueError(f"prefix: expected length <= n_max = {self.n_max}, got {n}")
        ids = np.concatenate([[2 * self.k], arr])                  # (L,)
        x = self.embedding[ids][None].copy()                       # (1, L, W)
        x[..., self.layout.index("pos")] += np.arange(n + 1) / (n + 1)
        attend = self.attend_function(n)
        x = pad_stream(x)                                         # (1, L', W)
        for layer in self.layers:
            x, _ = run_layer(x, layer, attend, True, self.ops, n + 1)
        return x[0, :n + 1] @ self.readout + self.readout_bias     # (L, 2k+1)

    def allowed_sets(self, tokens) -> list[set[int]]:
        """The allowed next-token set after every prefix ``tokens[:t]``, ``t = 0..n``."""
        z = self.logits(tokens)                                    # (L, 2k+1)
        return [set(np.flatnonzero(row > 0).tolist()) for row in z]

    def allowed_next(self, prefix) -> set[int]:
        """Allowed next tokens after ``prefix`` (ids, plus ``END = 2k``)."""
        return self.allowed_sets(prefix)[-1]

    def sample(self, rng: np.random.Generator, max_len: int) -> np.ndarray:
        """Draw a string by sampling uniformly from the allowed set until END (or ``max_len``).

        Each step runs the network on the prefix so far (quadratic; for short
        strings). Returns the tokens without END.
        """
        rng = check_rng(rng)
        max_len = check_positive_int(max_len, "max_len", minimum=0)
        out: list[int] = []
        while len(out) < max_len:
            allowed = sorted(self.allowed_next(out))
            if not allowed:
                break
            t = int(rng.choice(allowed))
            if t == self.END:
                break
            out.append(t)
        return np.array(out, dtype=np.int64)


def _depth_profile(width: int, D: int) -> tuple[np.ndarray, float]:
    """``y_1(d) = sqrt(W / (2 d^2 + 2))`` for ``d = 0..D`` and the gap G of layer 2."""
    d = np.arange(D + 1, dtype=np.float64)
    y1 = np.sqrt(width / (2.0 * d ** 2 + 2.0))                    # (D+1,)
    unit = np.stack([d, np.ones_like(d)], axis=1) / np.sqrt(d ** 2 + 1.0)[:, None]  # (D+1, 2)
    dots = (width / 2.0) * unit @ unit.T                           # (D+1, D+1)
    off = dots[~np.eye(D + 1, dtype=bool)]
    gap = float(width / 2.0 - off.max()) if off.size else width / 2.0
    return y1, gap


def build_generator(k: int, D: int, attention: str = "hard", n_max: int | None = None, *,
                    ops=None) -> DyckGenerator:
    """The 2-layer transformer whose readout is the set of allowed next tokens of Dyck_{k,D}.

    Parameters
    ----------
    k : int
        Number of bracket types (>= 1).
    D : int
        Depth bound (>= 1).
    attention : {"hard", "soft"}
        Averaging hard attention, or softmax attention with scale
        :func:`generator_beta` in layer 2.
    n_max : int, optional
        Longest prefix; with soft attention the scale is fixed at
        ``beta(n_max)``.
    ops : Ops or mapping, optional
        Callables to run on (needs ``layer_norm`` with ``eps = 0``).

    Returns
    -------
    DyckGenerator

    References
    ----------
    Yao et al. 2021, the soft-attention generator (future positional masking, i/n
    positions, residual connections and layer normalisation).
    """
    k = check_k(k)
    D = check_depth(D)
    check_choice(attention, "attention", ("hard", "soft"))
    n_max = check_n_max(n_max)
    ops = check_ops(ops)
    b = type_code_bits(k)
    codes = type_codes(k)
    lay = Layout([("one", 1), ("pos", 1), ("code", b), ("opener", 1), ("closer", 1),
                   ("bos", 1), ("depth", 4), ("end_ok", 1), ("open_ok", 1), ("top", b)])
    w = lay.width

    emb = np.zeros((2 * k + 1, w))
    emb[:, lay.index("one")] = 1.0
    emb[:k, lay["code"]] = codes
    emb[k:2 * k, lay["code"]] = codes
    emb[:k, lay.index("opener")] = 1.0
    emb[k:2 * k, lay.index("closer")] = 1.0
    emb[2 * k, lay.index("bos")] = 1.0

    # Layer 1: uniform causal attention (W_Q = 0), values (s, 1, -s, -1), LayerNorm(eps=0).
    depth_head = Head(
        w_q=np.zeros((w, 1)), w_k=np.zeros((w, 1)),
        w_v=lay.projection([{"opener": 1.0, "closer": -1.0}, {"bos": 1.0}]),   # (W, 2)
        w_o=np.stack([lay.vec({"depth#0": 1.0, "depth#2": -1.0}),
                      lay.vec({"depth#1": 1.0, "depth#3": -1.0})]),            # (2, W)
        mask="causal")
    y1, gap = _depth_profile(w, D)
    flags = FFNBuilder(lay)
    theta_end = (y1[0] + y1[1]) / 2.0
    flags.binarise({"depth#1": 1.0}, -theta_end, "end_ok", gain=2.0 / (y1[0] - y1[1]))
    theta_open = (y1[D - 1] + y1[D]) / 2.0
    flags.binarise({"depth#1": 1.0}, -theta_open, "open_ok", gain=2.0 / (y1[D - 1] - y1[D]))
    layer1 = Layer("depth", (depth_head,), (flags.params(),), norm_eps=0.0)

    # Layer 2: gamma y_t . y_j + delta anchor_j + epsilon p_j, value = code.
    gamma, delta, epsilon = 2.0 / gap, 1.0, 0.5
    top_head = Head(
        w_q=lay.projection([{"depth#0": 1.0}, {"depth#1": 1.0}, {"one": 1.0}]),   # (W, 3)
        w_k=lay.projection([{"depth#0": gamma}, {"depth#1": gamma},
                              {"opener": delta, "bos": delta, "pos": epsilon}]),    # (W, 3)
        w_v=lay.projection([{f"code#{t}": 1.0} for t in range(b)]),             # (W, b)
        w_o=lay.writer([f"top#{t}" for t in range(b)]),                         # (b, W)
        mask="causal")
    layer2 = Layer("top", (top_head,), ())

    readout = np.zeros((w, 2 * k + 1))
    bias = np.zeros(2 * k + 1)
    readout[lay.index("open_ok"), :k] = 1.0
    bias[:k] = -0.5
    readout[lay["top"], k:2 * k] = 2.0 * codes.T                  # (b, k)
    bias[k:2 * k] = -(2.0 * b - 1.0)
    readout[lay.index("end_ok"), 2 * k] = 1.0
    bias[2 * k] = -0.5
    return DyckGenerator(k=k, D=D, attention=attention, n_max=n_max, layers=[layer1, layer2],
                         embedding=emb, readout=readout, readout_bias=bias, layout=lay, ops=ops)
