"""Chiang & Cholak's two-layer softmax transformers for PARITY and FIRST.

Hahn (2020) shows that with bounded attention logits one input symbol moves a
soft-attention encoder's output by O(1/n), so a transformer that decides a
language by a single symbol's worth of evidence does so with a confidence
that fades as strings grow. Chiang & Cholak (2022) construct softmax
transformers that decide PARITY (an odd number of 1s) and FIRST (the first
bit is 1) for every length, whose confidence does fade, and then restore it
with layer normalisation. This module writes both constructions down with the
construction toolkit; the weights are our own writing of theirs, derived
below.

PARITY (bits ``w_0 .. w_{n-1}``, then a CLS token at position ``n``;
``N = n + 1`` positions, ``k`` ones). The position encoding is ``i / N`` and
``(-1)^i``.

* Layer 1: one head with zero queries and keys attends uniformly and averages
  the token flags: ``ones = k / N`` and ``inv = 1 / N`` at every position.
  Three ReLU units compute the bump
  ``hit_i = relu((k-i-1)/N) - 2 relu((k-i)/N) + relu((k-i+1)/N) = [i = k] / N``.
* Layer 2: two heads query from CLS with logit ``beta``; one's key is
  ``(-1)^j``, the other's ``-(-1)^j``. Both read ``hit``; the output is the
  second head's minus the first's. With ``E`` even and ``O`` odd positions,
  ``Z_+ = E e^beta + O e^-beta`` and ``Z_- = E e^-beta + O e^beta``::

      z = (1/N) (e^{beta} / Z_- - e^{-beta} / Z_+)     if k is odd  (> 0)
      z = (1/N) (e^{-beta} / Z_- - e^{beta} / Z_+)     if k is even (< 0)

  The sign is the parity for every string, and ``|z|`` depends on ``n`` and
  the parity of ``k`` only: ``|z| ~ 2 tanh(beta) / N^2``.

FIRST (a CLS token at position 0, then bits ``w_1 .. w_n``; ``[i = 1]`` is
the position encoding). One ReLU unit writes ``bit = relu([i = 1] - [w_i = 0]
- [CLS])``, which is ``w_1`` at position 1 and 0 elsewhere; one head queries
from CLS with logit ``beta`` on the key ``[j = 1]`` and reads
``bit - [j = 1] / 2``::

      z = (w_1 - 1/2) e^beta / (e^beta + n)

Both margins fall with ``n`` (within Hahn's O(1/n)), so the cross-entropy of
``sigmoid(z)`` tends to 1 bit per string.

The layer-normalised variants run on the doubled stream ``[x, -x]``: every
read uses the first half and every write goes to both halves with opposite
signs, so each position's mean is exactly 0 and LayerNorm only rescales a
position's stream (ReLU and the bump are positively homogeneous, so the
construction survives). Every residual sum is followed by LayerNorm (Post-LN,
no gain or bias), and the last layer's FFN clears every coordinate but the
output. The last LayerNorm then maps ``[z e, -z e]`` (width ``2W``) to
``sign(z) sqrt(W)``: with ``eps = 0`` the logit no longer depends on ``n``,
and scaling the output layer brings the cross-entropy as close to 0 as wanted.
With ``eps > 0`` it is ``z / sqrt(z^2 / W + eps)``, which fades again once
``z^2`` falls below ``W eps``.

References
----------
Chiang & Cholak 2022, Overcoming a Theoretical Limitation of Self-Attention,
ACL (abstract: "constructing a transformer that recognizes PARITY with perfect
accuracy, and similarly for FIRST", and "we use layer normalization to bring
the cross-entropy of both models arbitrarily close to zero"); the weights
follow the paper's public-domain code (github.com/ndnlp/parity,
``parity_exact.py``, ``first_exact.py`` and their ``_layernorm`` versions).
Hahn 2020, Theoretical Limitations of Self-Attention in Neural Sequence
Models, TACL (the soft-attention lemma: one symbol moves the output by O(1/n)).
Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt), "Negative result: Dyck_k is
not possible" (Hahn's limitation, the other side of which this is).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .toolkit import FFNBuilder, Head, Layer, Layout, Ops, check_ops, positionwise, run_layer

__all__ = [
    "LANGUAGES",
    "ParityTransformer",
    "build_parity_transformer",
    "member",
    "encode",
    "logits",
    "plain_margin",
    "layer_norm_logit",
]

#: The languages the construction decides.
LANGUAGES = ("parity", "first")

_TOKENS = 3                      # 0, 1, CLS


@dataclass(frozen=True)
class ParityTransformer:
    """A two-layer softmax transformer deciding PARITY or FIRST (accept iff the logit > 0).

    Attributes
    ----------
    language : {"parity", "first"}
    layers : tuple of Layer
        Weights on the stream (doubled to ``[x, -x]`` when ``doubled``).
    layout : Layout
        The named coordinates of the (undoubled) stream.
    beta : float
        The second layer's query logit (attention runs at scale 1).
    layer_norm : bool
        Doubled stream and Post-LN after every residual sum.
    eps : float
        LayerNorm's epsilon (``layer_norm`` only).
    doubled : bool
        Whether the layers run on the doubled stream ``[x, -x]`` (the
        layer-normalised construction does; :func:`encode` follows it).
    """

    language: str
    layers: tuple[Layer, ...]
    layout: Layout
    beta: float
    layer_norm: bool
    eps: float
    doubled: bool = False

    @property
    def width(self) -> int:
        """Width of the stream the layers run on (``2 W`` when doubled)."""
        return self.layout.width * (2 if self.doubled else 1)

    def readout(self, n: int) -> int:
        """The CLS position of a string of ``n`` bits, where the logit is read."""
        return n if self.language == "parity" else 0


def _parity_layers(beta: float, clear: bool) -> tuple[Layout, list[Layer]]:
    lay = Layout([("tok", _TOKENS), ("frac", 1), ("alt", 1), ("ones", 1), ("inv", 1),
                  ("hit", 1), ("out", 1)])
    zero = np.zeros((lay.width, 1))                                # (W, 1)
    count = Head(w_q=zero, w_k=zero, w_v=lay.projection([{"tok#1": 1.0}, {"tok#2": 1.0}]),
                 w_o=lay.writer(["ones", "inv"]), mask="all", name="count")
    bump = FFNBuilder(lay)
    for shift, weight in ((-1.0, 1.0), (0.0, -2.0), (1.0, 1.0)):  # tri(k - i) / N
        bump.unit({"ones": 1.0, "frac": -1.0, "inv": shift}, 0.0, {"hit": weight})
    query = lay.projection([{"tok#2": beta}])                      # (W, 1): from CLS only
    heads = tuple(Head(w_q=query, w_k=lay.projection([{"alt": sign}]),
                       w_v=lay.projection([{"hit": 1.0}]), w_o=-sign * lay.writer(["out"]),
                       mask="all", name=f"{'even' if sign > 0 else 'odd'} positions")
                  for sign in (1.0, -1.0))
    return lay, [Layer("count ones", (count,), (bump.params(),)),
                 Layer("read the parity", heads, _keep_only(lay, "out") if clear else ())]


def _first_layers(beta: float, clear: bool) -> tuple[Layout, list[Layer]]:
    lay = Layout([("tok", _TOKENS), ("first", 1), ("bit", 1), ("out", 1)])
    bit = FFNBuilder(lay)
    bit.unit({"first": 1.0, "tok#0": -1.0, "tok#2": -1.0}, 0.0, {"bit": 1.0})
    head = Head(w_q=lay.projection([{"tok#2": beta}]), w_k=lay.projection([{"first": 1.0}]),
                w_v=lay.projection([{"bit": 1.0, "first": -0.5}]), w_o=lay.writer(["out"]),
                mask="all", name="read the first bit")
    return lay, [Layer("the first bit", (), (bit.params(),)),
                 Layer("read it from CLS", (head,), _keep_only(lay, "out") if clear else ())]


def _keep_only(lay: Layout, keep: str) -> tuple:
    """An FFN that clears every block but ``keep`` (``relu(x) - relu(-x) = x``)."""
    ffn = FFNBuilder(lay)
    for name, block in lay.slices.items():
        if name != keep:
            ffn.clear(name, size=block.stop - block.start)
    return (ffn.params(),)


def _doubled(layer: Layer, width: int, eps: float) -> Layer:
    """``layer`` on the stream ``[x, -x]``: reads from the first half, writes ``+-`` to both."""
    def read(w):                                                   # (W, m) -> (2W, m)
        return np.concatenate([w, np.zeros_like(w)], axis=0)

    def write(w):                                                  # (m, W) -> (m, 2W)
        return np.concatenate([w, -w], axis=1)
    heads = tuple(Head(w_q=read(h.w_q), w_k=read(h.w_k), w_v=read(h.w_v), w_o=write(h.w_o),
                       mask=h.mask, name=h.name) for h in layer.heads)
    ffns = tuple(type(f)(w1=read(f.w1), b1=f.b1, w2=write(f.w2),
                         b2=None if f.b2 is None else np.concatenate([f.b2, -f.b2]))
                 for f in layer.ffns)
    return Layer(layer.name, heads, ffns, post_norm_eps=eps)


def build_parity_transformer(language: str = "parity", *, layer_norm: bool = False,
                             beta: float = 1.0, eps: float = 0.0) -> ParityTransformer:
    """Chiang & Cholak's transformer for ``language``, plain or layer-normalised.

    Parameters
    ----------
    language : {"parity", "first"}
    layer_norm : bool
        The layer-normalised variant (doubled stream, Post-LN).
    beta : float
        The second layer's query logit, > 0.
    eps : float
        LayerNorm's epsilon, >= 0 (0: the logit is ``+-sqrt(W)`` at every length).

    Returns
    -------
    ParityTransformer

    Raises
    ------
    ValueError
        For an unknown language, ``beta <= 0`` or ``eps < 0``.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language: expected one of {LANGUAGES}, got {language!r}")
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta: expected a finite number > 0, got {beta!r}")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps: expected a finite number >= 0, got {eps!r}")
    build = _parity_layers if language == "parity" else _first_layers
    lay, layers = build(float(beta), clear=layer_norm)
    if layer_norm:
        layers = [_doubled(layer, lay.width, float(eps)) for layer in layers]
    return ParityTransformer(language, tuple(layers), lay, float(beta), bool(layer_norm),
                             float(eps), doubled=bool(layer_norm))


def member(language: str, words) -> np.ndarray:
    """Whether each bit string is in ``language``: ``(B, n)`` of 0/1 -> ``(B,)`` bool."""
    w = np.asarray(words)
    if language == "parity":
        return w.sum(axis=-1) % 2 == 1
    if language == "first":
        return w[..., 0] == 1
    raise ValueError(f"language: expected one of {LANGUAGES}, got {language!r}")


def _check_words(words) -> np.ndarray:
    w = np.asarray(words)
    if w.ndim != 2 or w.shape[1] < 1 or not np.all((w == 0) | (w == 1)):
        raise ValueError(f"words: expected a (B, n >= 1) array of 0s and 1s, got shape "
                         f"{w.shape}")
    return w.astype(np.int64)


def encode(model: ParityTransformer, words) -> np.ndarray:
    """The input stream: token one-hots and the position encoding, ``(B, n+1, W')`` float64."""
    w = _check_words(words)
    bsz, n = w.shape
    lay, length = model.layout, n + 1
    x = np.zeros((bsz, length, lay.width))                         # (B, N, W)
    i = np.arange(length)                                          # (N,)
    if model.language == "parity":
        tokens = np.concatenate([w, np.full((bsz, 1), 2)], axis=1)  # (B, N): bits, then CLS
        x[:, :, lay.index("frac")] = i / length
        x[:, :, lay.index("alt")] = np.where(i % 2 == 0, 1.0, -1.0)
    else:
        tokens = np.concatenate([np.full((bsz, 1), 2), w], axis=1)  # (B, N): CLS, then bits
        x[:, :, lay.index("first")] = (i == 1)
    x[:, :, lay["tok"]] = np.eye(_TOKENS)[tokens]                  # (B, N, 3)
    return np.concatenate([x, -x], axis=-1) if model.doubled else x


def _head_at(x: np.ndarray, row: int, head: Head, attention) -> np.ndarray:
    """One head's output at query position ``row`` only, ``(B, W')``, at softmax scale 1."""
    q = positionwise(x[:, row:row + 1], head.w_q)                  # (B, 1, E)
    k = positionwise(x, head.w_k)                                  # (B, N, E)
    v = positionwise(x, head.w_v)                                  # (B, N, Ev)
    o = np.asarray(attention(q, k, v, scale=1.0), dtype=np.float64)  # (B, 1, Ev)
    return positionwise(o, head.w_o)[:, 0]                         # (B, W')


def logits(model: ParityTransformer, words, *, ops=None) -> np.ndarray:
    """The logit ``z`` of each string (accept iff ``z > 0``), ``(B,)`` float64.

    Runs on ``ops`` (a subject's attention, feed-forward, residual and layer
    norm; the reference's by default). The first layer runs at every position;
    the last only at the CLS position, the one the logit is read from (every
    other position's last-layer output is never read, and under LayerNorm with
    ``eps = 0`` a row that the last FFN clears to zero has no defined norm).
    """
    ops = check_ops(ops)
    x = encode(model, words)                                       # (B, N, W')
    row = model.readout(x.shape[1] - 1)

    def attend(q, k, v, *, mask):
        return ops.attention(q, k, v, mask=mask, scale=1.0)
    for layer in model.layers[:-1]:
        x, _ = run_layer(x, layer, attend, False, ops, x.shape[1])  # (B, N, W')
    last = model.layers[-1]
    y = x[:, row]                                                  # (B, W')
    a = sum((_head_at(x, row, h, ops.attention) for h in last.heads), np.zeros_like(y))

    def add(u, v):                                                 # (B, W') each
        s = np.asarray(ops.residual(u, v), dtype=np.float64)
        if last.post_norm_eps is None:
            return s
        return np.asarray(ops.layer_norm(s, eps=last.post_norm_eps), dtype=np.float64)
    y = add(y, a)
    for ffn in last.ffns:
        y = add(y, np.asarray(ops.feed_forward(y, ffn), dtype=np.float64))
    return y[:, model.layout.index("out")]                         # (B,)


def plain_margin(language: str, n: int, beta: float, accept: bool) -> float:
    """The plain construction's logit on strings of ``n`` bits, in closed form (module docstring).

    Parameters
    ----------
    language : {"parity", "first"}
    n : int
        Number of bits, >= 1.
    beta : float
    accept : bool
        Whether the string is in the language (the logit's sign; for PARITY its
        size depends on the parity of the number of ones, for FIRST on ``w_1``).
    """
    if language == "first":
        return (0.5 if accept else -0.5) * np.exp(beta) / (np.exp(beta) + n)
    length = n + 1
    even = n // 2 + 1
    odd = length - even
    z_plus = even * np.exp(beta) + odd * np.exp(-beta)
    z_minus = even * np.exp(-beta) + odd * np.exp(beta)
    if accept:                                                     # k odd
        return float((np.exp(beta) / z_minus - np.exp(-beta) / z_plus) / length)
    return float((np.exp(-beta) / z_minus - np.exp(beta) / z_plus) / length)


def layer_norm_logit(model: ParityTransformer, accept: bool, z: float = 0.0) -> float:
    """The layer-normalised logit: ``+-sqrt(W)`` at ``eps = 0``, else ``z / sqrt(z^2/W + eps)``.

    ``z`` is the output coordinate before the last LayerNorm (needed only
    when ``eps > 0``); ``W`` is the undoubled width.
    """
    w = model.layout.width
    if model.eps == 0.0:
        return float(np.sqrt(w)) * (1.0 if accept else -1.0)
    return float(z / np.sqrt(z * z / w + model.eps))
