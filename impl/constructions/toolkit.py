"""A small toolkit for writing transformer weights by hand.

The explicit constructions (:mod:`~transformer_theory.impl.constructions.dyck`,
:mod:`~transformer_theory.impl.constructions.turing`) write every weight
matrix down. They share three ideas, collected here in the spirit of tracr's
``craft`` library (Lindner et al. 2023, §3): the residual stream is a sum of
*named* subspaces, an attention head is four projections between them, and a
feed-forward network is a list of hidden ReLU units, each reading a few named
coordinates and writing a few others.

* :class:`Layout` -- named blocks of residual-stream coordinates
  (``"pos"``, ``"code"``; ``"code#2"`` is coordinate 2 of block ``code``),
  and the vectors, projections and writers built from names;
* :class:`Head`, :class:`Layer`, :func:`stack_heads` -- heads as
  ``Attention(X W_Q, X W_K, X W_V) W_O`` under a named mask, layers as heads
  followed by FFN sublayers, all with residual connections;
* :class:`FFNBuilder` -- an FFN ``relu(x W1 + b1) W2`` written unit by unit,
  with the two gadgets the constructions rely on: :meth:`FFNBuilder.binarise`
  (``clamp(g z + 1/2, 0, 1)``, an exact bit whenever ``z`` is at least
  ``1/(2g)`` away from 0, which keeps soft-attention errors from
  accumulating) and :meth:`FFNBuilder.clear` (``relu(x) - relu(-x) = x``,
  to zero a scratch coordinate);
* :class:`Ops`, :func:`run_layer` -- the attention, feed-forward, layer-norm
  and residual callables a construction runs on (the reference by default,
  a subject's in a claim), and one layer's forward pass on them, with the
  strict masks of :func:`mask` and the shape buckets of :func:`pad_stream`.

Everything is float64: a construction is exact arithmetic on small integers
and dyadic fractions, not a numerical experiment.

References
----------
Lindner, Kramár, Farquhar, Rahtz, McGrath & Mikulik 2023, Tracr: Compiled
Transformers as a Laboratory for Interpretability, NeurIPS, §3 (craft:
residual-stream spaces with named basis directions, MLP and attention blocks
between them).
Elhage et al. 2021, A Mathematical Framework for Transformer Circuits,
Anthropic (the residual stream as a sum of subspaces that heads read and write).
Yao, Peng, Papadimitriou & Narasimhan 2021, Self-Attention Networks Can Process
Bounded Hierarchical Languages, ACL, §4 (strict masks, re-binarising FFNs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from .. import attention as _attention_module
from .. import layers as _layers_module
from ..layers import FFNParams

__all__ = [
    "Layout",
    "Head",
    "Layer",
    "FFNBuilder",
    "Ops",
    "check_ops",
    "stack_heads",
    "same_array",
    "same_layer",
    "mask",
    "bucket",
    "pad_stream",
    "positionwise",
    "run_layer",
    "LayeredNetwork",
]


# ---------------------------------------------------------------------------
# named residual-stream directions
# ---------------------------------------------------------------------------

class Layout:
    """Named coordinates of the residual stream: consecutive blocks of given widths.

    Parameters
    ----------
    fields : sequence of (str, int)
        Block names and widths, in order.

    Attributes
    ----------
    slices : dict of str to slice
        Where each block lives.
    width : int
        Total width ``W``.

    Notes
    -----
    A coordinate is named by its block (a block of width 1) or as
    ``"block#i"`` (coordinate ``i`` of a wider block); :meth:`coordinate`
    also accepts a plain integer index.
    """

    def __init__(self, fields: Sequence[tuple[str, int]]):
        self.slices: dict[str, slice] = {}
        start = 0
        for name, size in fields:
            self.slices[name] = slice(start, start + size)
            start += size
        self.width = start

    def __getitem__(self, name: str) -> slice:
        return self.slices[name]

    def index(self, name: str) -> int:
        """The coordinate of a block of width 1."""
        s = self.slices[name]
        if s.stop - s.start != 1:
            raise KeyError(f"{name} is not a single coordinate")
        return s.start

    def coordinate(self, name) -> int:
        """The index of ``name``: an int, a width-1 block, or ``"block#i"``."""
        if isinstance(name, (int, np.integer)):
            return int(name)
        if "#" in name:                                            # "code#2" = coordinate 2 of code
            base, idx = name.split("#")
            return self.slices[base].start + int(idx)
        return self.index(name)

    def vec(self, entries: Mapping) -> np.ndarray:
        """A column (W,) with the given weights at named coordinates."""
        col = np.zeros(self.width)
        for name, weight in entries.items():
            col[self.coordinate(name)] += weight
        return col

    def projection(self, columns: Sequence[Mapping]) -> np.ndarray:
        """A (W, E) matrix whose column ``e`` reads ``columns[e]``."""
        return np.stack([self.vec(c) for c in columns], axis=1)    # (W, E)

    def writer(self, targets: Sequence) -> np.ndarray:
        """A (Ev, W) output projection writing value coordinate ``e`` to ``targets[e]``."""
        return np.stack([self.vec({t: 1.0}) for t in targets], axis=0)  # (Ev, W)

    def rows(self, name: str, matrix) -> np.ndarray:
        """A (W, m) matrix equal to ``matrix`` (|block|, m) on the rows of block ``name``, else 0."""
        block = np.asarray(matrix, dtype=np.float64)
        out = np.zeros((self.width, block.shape[1]))
        out[self.slices[name], :] = block
        return out                                                 # (W, m)


# ---------------------------------------------------------------------------
# heads and layers
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Head:
    """One attention head: ``Attention(X W_Q, X W_K, X W_V) W_O`` under a mask.

    Attributes
    ----------
    w_q, w_k : (W, E)
    w_v : (W, Ev)
    w_o : (Ev, W)
    mask : {"all", "future", "past", "causal"}
        ``future``: key ``j > i`` (strict); ``past``: ``j < i`` (strict);
        ``all``: every key; ``causal``: ``j <= i``. A row a strict mask would
        leave empty (the last position looking right, the first looking left)
        gets its own position instead: those outputs are never read, and no
        row is fully masked (a fully masked row is zeros in the contract but
        NaN in some libraries). See :func:`mask`.
    name : str
        For display and tests.
    """

    w_q: np.ndarray
    w_k: np.ndarray
    w_v: np.ndarray
    w_o: np.ndarray
    mask: str = "all"
    name: str = ""


@dataclass(frozen=True)
class Layer:
    """A transformer layer: attention heads, then position-wise FFN sublayers.

    ``x <- x + sum_h head_h(x)`` (or ``x + LayerNorm_{eps}(sum_h head_h(x))``
    when ``norm_eps`` is set), then ``x <- x + FFN(x)`` for each FFN. With
    ``post_norm_eps`` set, every residual sum is followed by
    ``LayerNorm_{eps}`` (the Post-LN layer of Vaswani et al. 2017, without
    gain or bias): ``x <- LN(x + sum_h head_h(x))``, ``x <- LN(x + FFN(x))``.
    """

    name: str
    heads: tuple[Head, ...]
    ffns: tuple[FFNParams, ...] = ()
    norm_eps: float | None = None
    post_norm_eps: float | None = None


def stack_heads(heads: Sequence[Head], width: int):
    """Heads batched along a head axis: ``(H, W, d_k)``, ``(H, W, d_k)``, ``(H, W, d_v)``,
    ``(H, d_v, W)``.

    Heads of smaller width are padded with zero columns (zero features add
    nothing to a score and give zero value entries that ``W_o`` ignores), so
    the heads run as one attention call with a head axis.
    """
    d_k = max(h.w_q.shape[1] for h in heads)
    d_v = max(h.w_v.shape[1] for h in heads)

    def pad(w, rows, cols):
        out = np.zeros((rows, cols))
        out[:w.shape[0], :w.shape[1]] = w
        return out
    return (np.stack([pad(h.w_q, width, d_k) for h in heads]),
            np.stack([pad(h.w_k, width, d_k) for h in heads]),
            np.stack([pad(h.w_v, width, d_v) for h in heads]),
            np.stack([pad(h.w_o, d_v, width) for h in heads]))


def same_array(a, b) -> bool:
    """Whether two weight arrays (or two Nones) are equal."""
    if a is None or b is None:
        return a is b
    return a is b or (a.shape == b.shape and np.array_equal(a, b))


def same_layer(a: Layer, b: Layer) -> bool:
    """Whether two layers compute the same function: same kind, masks and weights."""
    if a is b:
        return True
    if (a.name, a.norm_eps, a.post_norm_eps, len(a.heads), len(a.ffns)) != \
            (b.name, b.norm_eps, b.post_norm_eps, len(b.heads), len(b.ffns)):
        return False
    heads = all(ha.mask == hb.mask and all(same_array(getattr(ha, w), getattr(hb, w))
                                          for w in ("w_q", "w_k", "w_v", "w_o"))
                for ha, hb in zip(a.heads, b.heads))
    ffns = all(all(same_array(getattr(fa, w), getattr(fb, w)) for w in ("w1", "b1", "w2", "b2"))
               for fa, fb in zip(a.ffns, b.ffns))
    return heads and ffns


# ---------------------------------------------------------------------------
# feed-forward networks, unit by unit
# ---------------------------------------------------------------------------

class FFNBuilder:
    """Writes an FFN ``relu(x W1 + b1) W2`` unit by unit (a unit = one hidden ReLU).

    Parameters
    ----------
    layout : Layout or int
        The residual stream (named coordinates), or its width (integer
        coordinates only).
    """

    def __init__(self, layout: Layout | int):
        self.layout = layout if isinstance(layout, Layout) else Layout([("x", int(layout))])
        self.w1_cols: list[np.ndarray] = []
        self.b1: list[float] = []
        self.w2_rows: list[np.ndarray] = []

    def unit(self, inputs: Mapping, bias: float, outputs: Mapping) -> None:
        """Add ``relu(sum_n w_n x[n] + bias)``, written with weight ``c`` to each output ``n``."""
        self.w1_cols.append(self.layout.vec(inputs))
        self.b1.append(float(bias))
        self.w2_rows.append(self.layout.vec(outputs))

    def clear(self, name: str, size: int = 1) -> None:
        """Two units writing ``-x`` to coordinate ``x``: ``relu(x) - relu(-x) = x`` exactly."""
        for t in range(size):
            coord = f"{name}#{t}" if size > 1 or "#" in name else name
            self.unit({coord: 1.0}, 0.0, {coord: -1.0})
            self.unit({coord: -1.0}, 0.0, {coord: 1.0})

    def binarise(self, inputs: Mapping, bias: float, output, gain: float = 2.0) -> None:
        """Add ``clamp(gain * z + 1/2, 0, 1)`` to ``output``, ``z = sum w x + bias``.

        ``relu(g z + 1/2) - relu(g z - 1/2)`` is exactly 1 for ``z >= 1/(2g)``
        and exactly 0 for ``z <= -1/(2g)``: it turns a value known to be near
        one of two levels into an exact bit (the re-binarisation of the soft
        constructions). With ``gain = 2`` and ``bias = -theta`` it is the step
        unit ``step(l; theta)``, 0 for ``l <= theta - 1/4`` and 1 for
        ``l >= theta + 1/4``. ``output`` is a coordinate, or a mapping from
        coordinates to the weights the bit is written with.
        """
        outputs = dict(output) if isinstance(output, Mapping) else {output: 1.0}
        scaled = {n: gain * w for n, w in inputs.items()}
        self.unit(scaled, gain * bias + 0.5, outputs)
        self.unit(scaled, gain * bias - 0.5, {n: -w for n, w in outputs.items()})

    def params(self, *, zero_output_bias: bool = False) -> FFNParams:
        """The weights: ``W1`` (W, F), ``b1`` (F,), ``W2`` (F, W), ``b2`` zeros or None."""
        w1 = np.stack(self.w1_cols, axis=1)                        # (W, F)
        w2 = np.stack(self.w2_rows, axis=0)                        # (F, W)
        b2 = np.zeros(self.layout.width) if zero_output_bias else None
        return FFNParams(w1=w1, b1=np.array(self.b1), w2=w2, b2=b2)


# ---------------------------------------------------------------------------
# the operations a construction runs on, and one layer's forward pass
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Ops:
    """The callables a construction runs on (the reference by default).

    Attributes
    ----------
    attention : callable
        ``attention(q, k, v, *, mask=None, scale=None)``: softmax attention.
    hard_attention : callable
        ``hard_attention(q, k, v, *, mask=None)``: averaging hard attention.
    feed_forward : callable
        ``feed_forward(x, params: FFNParams)``: ``relu(x W1 + b1) W2 + b2``.
    layer_norm : callable
        ``layer_norm(x, *, eps=...)`` over the last axis.
    residual : callable
        ``residual(x, y) = x + y``.
    """

    attention: Callable = _attention_module.attention
    hard_attention: Callable = _attention_module.hard_attention
    feed_forward: Callable = _layers_module.feed_forward
    layer_norm: Callable = _layers_module.layer_norm
    residual: Callable = _layers_module.residual

    @classmethod
    def from_mapping(cls, callables: Mapping[str, Callable]) -> "Ops":
        """Ops with the callables present in ``callables`` (a subject's), else the reference's."""
        names = ("attention", "hard_attention", "feed_forward", "layer_norm", "residual")
        return cls(**{n: callables[n] for n in names if n in callables})


def check_ops(ops) -> Ops:
    """``ops`` as an :class:`Ops`: None (the reference), an Ops, or a mapping of callables."""
    if ops is None:
        return Ops()
    if isinstance(ops, Ops):
        return ops
    if isinstance(ops, Mapping):
        return Ops.from_mapping(ops)
    raise TypeError(f"ops: expected an Ops, a mapping of callables or None, "
                    f"got {type(ops).__name__}")


def mask(kind: str, length: int, strict: bool = True, real: int | None = None) -> np.ndarray:
    """Boolean (L, L) mask, True = may attend (see :class:`Head`).

    With ``strict=False`` the future and past masks include the diagonal
    (``j >= i``, ``j <= i``). With ``real < length`` the last ``length - real``
    positions are padding (see :func:`pad_stream`): no real position may
    attend to them, and each of them attends to itself only.
    """
    real = length if real is None else real
    i = np.arange(length)[:, None]                                 # (L, 1)
    j = np.arange(length)[None, :]                                 # (1, L)
    if kind == "all":
        allowed = np.ones((length, length), dtype=bool)
    elif kind == "causal":
        allowed = j <= i
    elif kind == "future":
        allowed = (j > i) if strict else (j >= i)                  # (L, L)
    elif kind == "past":
        allowed = (j < i) if strict else (j <= i)                  # (L, L)
    else:
        raise ValueError(f"mask: unknown kind {kind!r}")
    allowed = allowed & (i < real) & (j < real)                    # padding is invisible
    if kind == "future":
        allowed[real - 1, real - 1] = True                         # the last position: itself
    if kind == "past":
        allowed[0, 0] = True                                       # the first position: itself
    pad = np.arange(real, length)
    allowed[pad, pad] = True                                       # padding: itself
    return allowed


def bucket(n: int) -> int:
    """``n`` rounded up to 1, 2, 4, 8 or a multiple of 2^e with 4 multiples per octave.

    At most 25 % padding above 8, and only four distinct sizes per factor of 2.
    """
    n = int(n)
    if n <= 8:
        return 1 if n <= 1 else 1 << (n - 1).bit_length()
    step = 1 << ((n - 1).bit_length() - 3)
    return -(-n // step) * step


def pad_stream(x: np.ndarray) -> np.ndarray:
    """Pad a stream (B, L, W) to bucketed B and L by repeating its first row and last position.

    Compiled backends (JAX, torch.compile) compile once per input shape; with
    the sizes of a test run rounded up by :func:`bucket` they see a handful
    of shapes instead of one per length. The padding is invisible to the real
    positions: :func:`mask` hides padded keys from every real query, the FFN
    and the residual act position by position, and the rows are copies of
    real ones (finite, and never a constant row a layer norm with ``eps = 0``
    would divide by zero on). The caller slices the result back.
    """
    bsz, length, _ = x.shape
    b2, l2 = bucket(bsz), bucket(length)
    if l2 > length:
        x = np.concatenate([x, np.repeat(x[:, -1:], l2 - length, axis=1)], axis=1)
    if b2 > bsz:
        x = np.concatenate([x, np.repeat(x[:1], b2 - bsz, axis=0)], axis=0)
    return x


def positionwise(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w`` over the last axis, as one 2-d product (numpy would loop over a 3-d batch)."""
    return (x.reshape(-1, x.shape[-1]) @ w).reshape(*x.shape[:-1], w.shape[-1])


def _attention_sublayer(x: np.ndarray, layer: Layer, attend: Callable, strict: bool,
                        ops: Ops, real: int) -> tuple[np.ndarray, list]:
    """``sum_h Attention_h(x) W_O^h`` (a loop over heads); also returns each head's (q, k, mask).

    ``real`` is the number of real positions (the rest is padding).
    """
    length = x.shape[-2]
    out = np.zeros_like(x)                                         # (B, L, W)
    probes = []
    for head in layer.heads:
        q = positionwise(x, head.w_q)                              # (B, L, E)
        k = positionwise(x, head.w_k)                              # (B, L, E)
        v = positionwise(x, head.w_v)                              # (B, L, Ev)
        allowed = mask(head.mask, length, strict, real)            # (L, L)
        o = np.asarray(attend(q, k, v, mask=allowed), dtype=np.float64)  # (B, L, Ev)
        out += positionwise(o, head.w_o)                           # (B, L, W)
        probes.append((q, k, allowed))
    if layer.norm_eps is not None:
        out = np.asarray(ops.layer_norm(out, eps=layer.norm_eps), dtype=np.float64)  # (B, L, W)
    return out, probes


def run_layer(x: np.ndarray, layer: Layer, attend: Callable, strict: bool, ops: Ops,
              real: int):
    """One layer: attention sublayer and FFN sublayers, each with a residual connection.

    Parameters
    ----------
    x : np.ndarray, (B, L, W)
    layer : Layer
    attend : callable
        ``attend(q, k, v, *, mask)``: the attention the heads use (hard or
        softmax at a chosen scale, from ``ops``).
    strict : bool
        Strict future/past masks (:func:`mask`).
    ops : Ops
    real : int
        Number of real positions (the rest is padding).

    Returns
    -------
    x : np.ndarray, (B, L, W)
    probes : list
        Each head's ``(q, k, mask)``.

    Notes
    -----
    The FFN and the residual act position by position, so they are applied to
    the stream flattened to ``(B * L, W)`` rows (the same numbers, one matrix
    product instead of ``B`` small ones).
    """
    a, probes = _attention_sublayer(x, layer, attend, strict, ops, real)
    shape = x.shape

    def add(x, y):                                                 # (B*L, W) each
        s = np.asarray(ops.residual(x, y), dtype=np.float64)
        if layer.post_norm_eps is None:
            return s
        return np.asarray(ops.layer_norm(s, eps=layer.post_norm_eps), dtype=np.float64)
    x = add(x.reshape(-1, shape[-1]), a.reshape(-1, shape[-1]))    # (B*L, W)
    for ffn in layer.ffns:
        x = add(x, np.asarray(ops.feed_forward(x, ffn), dtype=np.float64))  # (B*L, W)
    return x.reshape(shape), probes


class LayeredNetwork:
    """The shape and the attention of a construction built from :class:`Layer` s.

    A mixin for the construction dataclasses: they provide ``layers`` (list of
    :class:`Layer`), ``layout`` (:class:`Layout`), ``attention`` (``"hard"`` or
    ``"soft"``), ``ops`` (:class:`Ops`) and ``scale(n)`` (the softmax scale on
    inputs of length ``n``).
    """

    @property
    def num_layers(self) -> int:
        """Number of transformer layers."""
        return len(self.layers)

    @property
    def width(self) -> int:
        """Residual-stream dimension W."""
        return self.layout.width

    def attend_function(self, n: int) -> Callable:
        """``attend(q, k, v, *, mask)`` for inputs of length ``n``, as :func:`run_layer` takes it.

        Parameters
        ----------
        n : int
            Input length (sets the softmax scale of soft attention).

        Returns
        -------
        callable
            ``ops.hard_attention`` for hard attention, else ``ops.attention``
            at ``scale(n)``.
        """
        if self.attention == "hard":
            return lambda q, k, v, *, mask: self.ops.hard_attention(q, k, v, mask=mask)
        beta = self.scale(n)
        return lambda q, k, v, *, mask: self.ops.attention(q, k, v, mask=mask, scale=beta)
