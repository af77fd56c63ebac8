"""Dyck_{k,D}: explicit transformers that recognise and generate bounded-depth Dyck languages.

Definitions
-----------
Tokens are integers in ``[0, 2k)``: a token ``t < k`` opens a bracket of type
``t``, a token ``t >= k`` closes one of type ``t - k``. ``Dyck_{k,D}`` is the
set of balanced, correctly nested strings whose depth never exceeds ``D``.
The language, its stack reference :func:`is_dyck` and the allowed next tokens
live in :mod:`~transformer_theory.impl.constructions.dyck_language`, the
generator in :mod:`~transformer_theory.impl.constructions.dyck_generator`;
this module holds the recogniser and re-exports both. The networks contain no
stack: every layer is the suite's own attention, feed-forward network, layer
norm and residual connection, applied to weight matrices written down with
:mod:`~transformer_theory.impl.constructions.toolkit`.
:func:`accepts_batch_shared` runs the recognisers for several depths on one
batch, computing the matching layers they have in common once (the
exhaustive check of ``dyck.recognizer_exact``).

Two constructions (Yao et al. 2021):

* :func:`build_recognizer` -- ``D`` matching layers and one deciding layer
  (``D + 1`` layers, Yao et al.'s hard-attention recogniser). Layer ``l`` cancels the innermost remaining
  bracket pairs: every unmatched opener attends to the nearest unmatched token
  on its right, every unmatched closer to the nearest unmatched token on its
  left (strict masks), and the feed-forward network marks a pair matched when
  it is an opener/closer pair of the same type. A pair whose content has
  nesting height ``h - 1`` is matched by layer ``h``, so ``D`` layers cancel
  exactly the strings of depth ``<= D``; the last layer accepts iff nothing is
  left unmatched.
* :func:`build_generator` -- two layers (Yao et al.'s soft-attention generator). Layer 1 computes the
  depth by uniform causal attention to the prefix and a BOS token, normalised
  by a layer norm with ``eps = 0``; layer 2 finds the most recent unmatched
  opener as the latest opener whose depth equals the current depth.

Layer anatomy. A matching layer is one multi-head attention sublayer and a
position-wise network with two hidden ReLU layers, written as two FFN
sublayers (``x + FFN_1(x)``, then ``x + FFN_2(x)``). One hidden layer computes
the per-bit differences ``|c_t - a_t| = relu(c_t - a_t) + relu(a_t - c_t)``
but not the test "all of them are 0", which is a threshold of their sum; doing
it in one hidden layer would take one unit per code (``2^b ~ k`` units). In
the generator the layer norm is applied to the attention sublayer's output
before the residual addition, ``x + LN_{eps=0}(Attn(x))`` (the "res-post-norm"
placement), so that it normalises the depth signal and nothing else.

Bracket types are coded by ``b = bit_length(k) = floor(log2 k) + 1`` bits
with values +-1 (:func:`type_codes`), so every width is ``O(log k)``; the
residual-stream widths are ``3b + 11`` (recogniser) and ``2b + 11``
(generator), independent of ``D`` and of the length ``n``. Positions are
encoded as ``p_i = i / (n + 1)`` for ``i = 0 (BOS), ..., n + 1 (EOS)``.

Everything is computed in float64 (a construction, not a numerical
experiment); the attention, feed-forward, layer-norm and residual callables
are taken from an :class:`Ops` bundle (the reference by default), so a claim
can run the same weights on another implementation.

References
----------
Yao, Peng, Papadimitriou & Narasimhan 2021, Self-Attention Networks Can
Process Bounded Hierarchical Languages, ACL; in its abstract's words, "a
hard-attention network with D+1 layers and O(log k) memory size (per token per
layer) that recognizes Dyck_{k,D}, and a soft-attention network with two layers and
O(log k) memory size that generates Dyck_{k,D}" (the theorem numbers are not cited:
they were not verified in the paper's text).
Hahn 2020, Theoretical Limitations of Self-Attention in Neural Sequence Models,
TACL (unbounded Dyck_k is out of reach; its soft-attention lemma: with bounded
attention logits, exchanging one input symbol changes the output by O(1/n)).
Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt): "layer i identifies matching
delimiters at depth D - i + 1"; the inductive step "scan right from each
delimiter, skipping marked symbols".
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .._validate import check_choice, check_positive_int
from .dyck_generator import DyckGenerator, build_generator, generator_beta
from .dyck_language import (
    BRACKETS,
    check_depth,
    check_k,
    check_n_max,
    check_token_batch,
    check_tokens,
    format_brackets,
    is_dyck,
    is_dyck_batch,
    max_depth,
    parse_brackets,
    reference_allowed_next,
    reference_allowed_sets,
    type_code_bits,
    type_codes,
)
from .toolkit import FFNBuilder, Head, Layer, LayeredNetwork, Layout, Ops, check_ops, pad_stream, \
    run_layer, same_array, same_layer

__all__ = [
    "BRACKETS",
    "Ops",
    "DyckRecognizer",
    "DyckGenerator",
    "RecognizerRun",
    "build_recognizer",
    "build_generator",
    "is_dyck",
    "is_dyck_batch",
    "accepts_batch_shared",
    "max_depth",
    "reference_allowed_next",
    "reference_allowed_sets",
    "type_code_bits",
    "type_codes",
    "recognizer_beta",
    "generator_beta",
    "parse_brackets",
    "format_brackets",
    "check_tokens",
    "matching_by_layer",
]


# ---------------------------------------------------------------------------
# checks of the builders' arguments
# ---------------------------------------------------------------------------

def _check_beta(beta):
    if beta is None or callable(beta):
        return beta
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise TypeError(f"beta: expected a positive number, a callable beta(n) or None, "
                        f"got {type(beta).__name__}")
    if not math.isfinite(float(beta)) or beta <= 0:
        raise ValueError(f"beta: expected a positive finite number, got {beta!r}")
    return float(beta)


def _check_flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


# ---------------------------------------------------------------------------
# the recogniser
# ---------------------------------------------------------------------------

def recognizer_beta(n: int, k: int) -> float:
    """Softmax scale of the soft recogniser for inputs of length ``n``.

    .. math::  \\beta(n) = N \\ln\\big(8 (b + 1) N\\big), \\qquad N = n + 1 .

    Derivation. Positions are ``p_j = j/N``, so in a matching head the winning
    key (the nearest unmatched token, score ``-p_j`` or ``+p_j``) beats every
    other allowed key by at least ``g = 1/N`` (a farther unmatched token) or by
    more than 1 (a matched token, penalised by 2). With scale ``beta`` the
    other keys (at most ``N`` of them) carry total weight
    ``eta <= N exp(-beta g)``. The head returns a +-1 code and a 0/1 flag, so
    each code coordinate is off by at most ``2 eta`` and the flag by ``eta``;
    the mismatch count ``u`` computed from them is off by at most
    ``(b + 1) eta``. The FFN re-binarises ``u`` exactly when that error is
    below 1/4, i.e. when ``beta > N ln(4 (b + 1) N)``; the factor 8 leaves a
    margin of 2. This is about ``n ln n``: neighbouring scores differ by only
    ``1/n``, and the softmax must separate them by a factor ``~ n``.

    Parameters
    ----------
    n : int
        Input length (>= 0).
    k : int
        Number of bracket types.

    References
    ----------
    Yao et al. 2021, the hard-attention recogniser (the network this
    approximates; the scale bound above is derived here, and the soft recogniser
    is this project's construction); Hahn 2020, the soft-attention lemma (with a
    bounded scale no soft-attention layer can follow one symbol).
    """
    n = check_positive_int(n, "n", minimum=0)
    b = type_code_bits(k)
    big_n = n + 1
    return big_n * math.log(8.0 * (b + 1) * big_n)


@dataclass
class RecognizerRun:
    """What a forward pass of the recogniser computed for one string.

    Attributes
    ----------
    accepted : bool
    pairs : list of list of (int, int)
        Per matching layer, the pairs ``(i, j)`` (token indices, ``i < j``) it
        matched, read from the attention pattern of the layer's heads.
    unmatched : list of list of int
        Per matching layer, the token indices still unmatched after it.
    accept_value : float
        The accept coordinate at EOS (1 accept, 0 reject).
    states : list of np.ndarray
        The residual stream ``(L, W)`` after the embedding and after each layer.
    """

    accepted: bool
    pairs: list
    unmatched: list
    accept_value: float
    states: list = field(repr=False, default_factory=list)


@dataclass
class DyckRecognizer(LayeredNetwork):
    """A (D+1)-layer transformer recognising Dyck_{k,D} (Yao et al. 2021, Theorem 4.1).

    Residual stream (width ``W = 3b + 11``, ``b = bit_length(k)``)::

        one | pos | code (b) | opener | closer | matched |
        a_right (b) | a_right_closer | a_left (b) | a_left_opener |
        u_right | u_left | reject | accept

    The first six blocks are the embedding (``code`` is the +-1 type code,
    zero at BOS/EOS; ``pos = i/(n+1)``); ``matched`` is the only state that
    layers update; the rest is scratch space each layer writes and then
    clears, so that the width does not grow with ``D``.

    Matching layer (``D`` of them), proof sketch also beside the weights in
    ``_matching_layer``:

    * head "right" (strict future mask ``j > i``): score
      ``q_i . k_j = -p_j - 2 m_j``, the nearest unmatched token to the right
      wins (a matched one is 2 lower, a farther unmatched one ``1/N`` lower; EOS
      is never matched, so one always exists). Value ``(code_j, closer_j)``
      is written to ``a_right``;
    * head "left" (strict past mask ``j < i``): score ``p_j - 2 m_j``, the
      nearest unmatched token to the left (BOS at worst); value
      ``(code_j, opener_j)`` to ``a_left``;
    * FFN 1 (compare): ``u_right = sum_t |code_t - a_right_t| / 2
      + (1 - a_right_closer) + (1 - opener) + matched``, a non-negative
      integer that is 0 exactly when the token is an unmatched opener whose
      right neighbour (in the unmatched subsequence) is a closer of the same
      type; ``|x| = relu(x) + relu(-x)``. ``u_left`` likewise for closers;
    * FFN 2 (mark and clear): ``matched += clamp(2(1/2 - u) + 1/2, 0, 1)``
      for both directions (1 iff ``u = 0``, an exact bit also when ``u`` is off
      by less than 1/4), and every scratch coordinate is cleared.

    Induction (seed 000). A layer marks exactly the pairs that are adjacent
    in the subsequence of unmatched tokens: it is one round of cancelling
    adjacent pairs ``a a^-1``, as in the free group. That rewriting is
    confluent, so a string reduces to the empty string iff it is in Dyck_k;
    and a pair of height ``h`` (1 + the depth of its content) is cancelled
    exactly in round ``h``, since its content is gone after round ``h - 1``
    and not before. After layer ``l`` exactly the pairs of height ``<= l``
    are marked, so ``D`` rounds clear a string iff it is in Dyck_{k,D}.

    Deciding layer: one head attends everywhere with score
    ``unmatched_j = opener_j + closer_j - matched_j``; averaging hard attention
    returns 1 if some bracket is unmatched and 0 otherwise, written to
    ``reject``; the FFN sets ``accept = [reject < 1/2]``. The string is
    accepted iff ``accept`` at EOS is 1.

    Soft attention: the same weights, softmax scale :func:`recognizer_beta`.
    ``matched`` stays an exact bit because FFN 2 re-binarises it every layer,
    so the attention errors never accumulate across layers.

    Attributes
    ----------
    k, D : int
    attention : {"hard", "soft"}
    n_max : int or None
        Longest input; with soft attention the scale is ``beta(n_max)`` for
        every input (fixed weights), otherwise ``beta(n)`` per input.
    layers : list of Layer
        The weights: ``W_Q, W_K, W_V, W_O`` per head, ``FFNParams`` per FFN.
    embedding : np.ndarray, shape (2k + 2, W)
        Rows for tokens ``0..2k-1``, BOS (``2k``) and EOS (``2k + 1``);
        positions are added as ``pos = i / (n + 1)``.
    """

    k: int
    D: int
    attention: str
    n_max: int | None
    layers: list
    embedding: np.ndarray
    layout: Layout = field(repr=False)
    ops: Ops = field(repr=False, default_factory=Ops)
    beta: Callable | float | None = field(repr=False, default=None)
    strict_masks: bool = field(repr=False, default=True)

    # -- shape ---------------------------------------------------------------
    @property
    def bits(self) -> int:
        """Bits per type code, b."""
        return self.layout["code"].stop - self.layout["code"].start

    def scale(self, n: int) -> float | None:
        """The softmax scale used on inputs of length ``n`` (None for hard attention)."""
        if self.attention == "hard":
            return None
        n_eff = n if self.n_max is None else self.n_max
        if self.beta is None:
            return recognizer_beta(n_eff, self.k)
        if callable(self.beta):
            return float(self.beta(n_eff))
        return float(self.beta)

    # -- forward -------------------------------------------------------------
    def embed(self, tokens: np.ndarray) -> np.ndarray:
        """``x_i = E[token_i] + (i/(n+1)) e_pos`` with BOS and EOS added: (B, n+2, W)."""
        bsz, n = tokens.shape
        bos = np.full((bsz, 1), 2 * self.k)
        eos = np.full((bsz, 1), 2 * self.k + 1)
        ids = np.concatenate([bos, tokens, eos], axis=1)           # (B, L)
        x = self.embedding[ids]                                    # (B, L, W)
        pos = np.arange(n + 2) / (n + 1)                           # (L,)
        x[..., self.layout.index("pos")] += pos                    # (B, L)
        return x

    def _check_length(self, n: int) -> None:
        if self.n_max is not None and n > self.n_max:
            raise ValueError(f"tokens: expected length <= n_max = {self.n_max}, got {n}")

    def _input_stream(self, tokens, bucket: bool):
        """Validated tokens to ``(x, bsz, length, attend)``: the embedded stream, padded if asked
        (``bucket``)."""
        tokens = check_token_batch(tokens, self.k)
        n = tokens.shape[1]
        self._check_length(n)
        x = self.embed(tokens)                                     # (B, L, W)
        bsz, length = x.shape[:2]
        if bucket:
            x = pad_stream(x)                                     # (B', L', W) bucketed
        return x, bsz, length, self.attend_function(n)

    def forward(self, tokens, *, keep_states: bool = False, bucket: bool = True):
        """Run the network on a batch ``(B, n)`` of tokens.

        Parameters
        ----------
        tokens : array_like of int, (B, n)
        keep_states : bool
            Record every layer's input, output and attention probes.
        bucket : bool
            Pad the batch and the length to the sizes of :func:`~.toolkit.bucket`
            first (the default), so that compiled backends see few shapes.
            The padding is invisible to the real positions, so the result is
            the same either way; a caller that runs many batches of one shape
            (the exhaustive enumeration) saves the padded work with ``False``.

        Returns
        -------
        x : np.ndarray, (B, n+2, W)
            The final residual stream.
        record : list
            Per layer ``(x_before, x_after, probes)`` if ``keep_states``,
            else empty.
        """
        x, bsz, length, attend = self._input_stream(tokens, bucket)
        record = []
        for layer in self.layers:
            x_new, probes = run_layer(x, layer, attend, self.strict_masks, self.ops, length)
            if keep_states:
                record.append((x[:bsz, :length], x_new[:bsz, :length], probes))
            x = x_new
        return x[:bsz, :length], record

    def accepts_batch(self, tokens, *, bucket: bool = True) -> np.ndarray:
        """Accept/reject for a batch ``(B, n)`` of equal-length strings: bool (B,).

        ``bucket`` as in :meth:`forward` (the answer does not depend on it).
        """
        x, _ = self.forward(tokens, bucket=bucket)
        return x[:, -1, self.layout.index("accept")] > 0.5         # (B,)

    def accepts(self, tokens) -> bool:
        """Whether the network accepts ``tokens`` (a sequence of ints in [0, 2k))."""
        arr = check_tokens(tokens, self.k)
        return bool(self.accepts_batch(arr[None, :])[0])

    def run(self, tokens) -> RecognizerRun:
        """Forward pass with the per-layer matching, read from the network."""
        arr = check_tokens(tokens, self.k)
        x, record = self.forward(arr[None, :], keep_states=True)
        m = self.layout.index("matched")
        bracket = slice(1, arr.size + 1)                           # token positions in the stream
        pairs, unmatched = [], []
        states = [record[0][0][0]] if record else []
        attend = self.attend_function(arr.size)
        for layer, (x_before, x_after, probes) in zip(self.layers, record):
            states.append(x_after[0])
            layer_pairs = []
            if layer.name == "match":
                newly = (x_after[0, bracket, m] > 0.5) & (x_before[0, bracket, m] < 0.5)
                if np.any(newly):
                    q, k, mask = probes[0]                         # head "right"
                    eye = np.eye(q.shape[-2])[None].repeat(q.shape[0], axis=0)  # one-hot values
                    weights = np.asarray(attend(q, k, eye, mask=mask))[0]  # (L', L')
                    for i in np.flatnonzero(newly):
                        if arr[i] < self.k:                        # an opener: its partner
                            j = int(np.argmax(weights[i + 1])) - 1
                            layer_pairs.append((int(i), j))
                pairs.append(sorted(layer_pairs))
                unmatched.append([int(i) for i in np.flatnonzero(x_after[0, bracket, m] < 0.5)])
        value = float(x[0, -1, self.layout.index("accept")])
        return RecognizerRun(accepted=value > 0.5, pairs=pairs, unmatched=unmatched,
                             accept_value=value, states=states)

    def trace(self, tokens) -> list[list[tuple[int, int]]]:
        """Which pairs ``(i, j)`` each matching layer matched (token indices)."""
        return self.run(tokens).pairs


def _recognizer_layout(b: int, one_hot: int | None = None) -> Layout:
    c = b if one_hot is None else one_hot
    return Layout([
        ("one", 1), ("pos", 1), ("code", c), ("opener", 1), ("closer", 1), ("matched", 1),
        ("a_right", c), ("a_right_closer", 1), ("a_left", c), ("a_left_opener", 1),
        ("u_right", 1), ("u_left", 1), ("reject", 1), ("accept", 1),
    ])


def _recognizer_embedding(k: int, codes: np.ndarray, layout: Layout) -> np.ndarray:
    """Token embedding (2k + 2, W): brackets carry their code and opener/closer flag."""
    emb = np.zeros((2 * k + 2, layout.width))
    emb[:, layout.index("one")] = 1.0
    emb[:k, layout["code"]] = codes                                # openers
    emb[k:2 * k, layout["code"]] = codes                           # closers: same type code
    emb[:k, layout.index("opener")] = 1.0
    emb[k:2 * k, layout.index("closer")] = 1.0
    return emb                                                     # BOS, EOS: code 0, no flags


def _matching_layer(layout: Layout, c: int, *, type_check: bool = True) -> Layer:
    """One matching layer: two strictly masked heads, a comparing FFN, a marking FFN.

    Proof sketch beside the weights:

    Head "right" (mask ``j > i``). ``W_Q`` reads the constant ``one``; ``W_K``
    reads ``-pos - 2 matched``, so ``score_ij = -p_j - 2 m_j``. Among keys right
    of ``i`` the unmatched ones score in ``[-1, 0)`` and the matched ones below
    ``-2``, and nearer beats farther by ``>= 1/N``: the winner is the nearest
    unmatched token (EOS if none). ``W_V`` reads ``(code, closer)``, ``W_O``
    writes it to ``(a_right, a_right_closer)``.

    Head "left" (mask ``j < i``): ``score = p_j - 2 m_j``, value
    ``(code, opener)`` into ``(a_left, a_left_opener)``; the nearest unmatched
    token on the left (BOS if none).

    FFN 1 (compare). Units ``relu(code_t - a_t)`` and ``relu(a_t - code_t)``
    sum to ``|code_t - a_t|`` (2 for a differing bit, 0 for an equal one, 1
    against the zero code of BOS/EOS). With
    ``relu(2 - a_right_closer - opener + matched)`` (its argument is never
    negative, so the unit passes it through) they give

        u_right = sum_t |code_t - a_right_t| / 2 + (1 - a_right_closer)
                  + (1 - opener) + matched,

    zero iff the token is an unmatched opener, its neighbour is a closer and
    the codes agree -- the type check. ``u_left`` symmetrically. Both are
    written to scratch coordinates.

    FFN 2 (mark and clear). ``matched += clamp(2 (1/2 - u) + 1/2, 0, 1)`` for
    ``u = u_right, u_left``: 1 iff ``u = 0`` (``u`` is an integer with hard
    attention, within 1/4 of one with soft attention). An opener and its
    closer are marked in the same layer (each sees the other). Every scratch
    coordinate ``s`` is then cleared by ``relu(s) - relu(-s) = s`` written with
    weight -1, so the next layer starts from scratch zero.
    """
    right = Head(
        w_q=layout.projection([{"one": 1.0}]),                  # (W, 1)
        w_k=layout.projection([{"pos": -1.0, "matched": -2.0}]),  # (W, 1)
        w_v=layout.projection([{f"code#{t}": 1.0} for t in range(c)] + [{"closer": 1.0}]),
        w_o=layout.writer([f"a_right#{t}" for t in range(c)] + ["a_right_closer"]),
        mask="future")
    left = Head(
        w_q=layout.projection([{"one": 1.0}]),
        w_k=layout.projection([{"pos": 1.0, "matched": -2.0}]),
        w_v=layout.projection([{f"code#{t}": 1.0} for t in range(c)] + [{"opener": 1.0}]),
        w_o=layout.writer([f"a_left#{t}" for t in range(c)] + ["a_left_opener"]),
        mask="past")

    compare = FFNBuilder(layout)
    weight = 0.5 if type_check else 0.0                            # the type check
    for side in ("a_right", "a_left"):
        u = "u_right" if side == "a_right" else "u_left"
        for t in range(c):
            compare.unit({f"code#{t}": 1.0, f"{side}#{t}": -1.0}, 0.0, {u: weight})
            compare.unit({f"code#{t}": -1.0, f"{side}#{t}": 1.0}, 0.0, {u: weight})
    compare.unit({"one": 2.0, "a_right_closer": -1.0, "opener": -1.0, "matched": 1.0}, 0.0,
                 {"u_right": 1.0})
    compare.unit({"one": 2.0, "a_left_opener": -1.0, "closer": -1.0, "matched": 1.0}, 0.0,
                 {"u_left": 1.0})

    mark = FFNBuilder(layout)
    for u in ("u_right", "u_left"):
        mark.binarise({u: -1.0}, 0.5, "matched")                   # matched += [u == 0]
    for name, size in (("a_right", c), ("a_right_closer", 1), ("a_left", c),
                       ("a_left_opener", 1), ("u_right", 1), ("u_left", 1)):
        if size > 1:
            mark.clear(name, size)
        else:
            mark.clear(name)
    return Layer("match", (right, left), (compare.params(), mark.params()))


def _deciding_layer(layout: Layout) -> Layer:
    """The last layer: reject iff some bracket is still unmatched.

    Head (no mask): ``W_Q`` reads ``one``, ``W_K`` and ``W_V`` read
    ``opener + closer - matched`` (1 for an unmatched bracket, 0 otherwise).
    Averaging hard attention picks the keys of maximal score: all unmatched
    brackets if any (output 1), else every key (output 0). With soft attention
    at scale ``beta >= ln(4 L)`` the output is within 1/4 of that. The FFN
    writes ``accept = [reject < 1/2]`` (a clamp, exact) and clears ``reject``.
    """
    unmatched = {"opener": 1.0, "closer": 1.0, "matched": -1.0}
    head = Head(w_q=layout.projection([{"one": 1.0}]),
                w_k=layout.projection([unmatched]),
                w_v=layout.projection([unmatched]),
                w_o=layout.writer(["reject"]),
                mask="all")
    decide = FFNBuilder(layout)
    decide.binarise({"reject": -1.0}, 0.5, "accept")
    decide.clear("reject")
    return Layer("decide", (head,), (decide.params(),))


def build_recognizer(k: int, D: int, attention: str = "hard", n_max: int | None = None, *,
                     ops=None, matching_layers: int | None = None, beta=None,
                     type_check: bool = True, strict_masks: bool = True,
                     codes: str = "binary") -> DyckRecognizer:
    """The (D+1)-layer transformer that recognises Dyck_{k,D}.

    Parameters
    ----------
    k : int
        Number of bracket types (>= 1).
    D : int
        Depth bound (>= 1).
    attention : {"hard", "soft"}
        Averaging hard attention (Yao et al.'s recogniser), or softmax attention with the
        scale :func:`recognizer_beta`.
    n_max : int, optional
        Longest input. With soft attention the scale is then fixed at
        ``beta(n_max)`` (one set of weights for every length up to ``n_max``);
        without it the scale is ``beta(n)`` for each input. Longer inputs
        are refused.
    ops : Ops or mapping, optional
        The attention / feed-forward / layer-norm / residual callables to run
        on (a subject's); the reference by default.
    matching_layers : int, optional
        Number of matching layers; default ``D``. Fewer is the experiment of
        ``dyck.layers_necessary``.
    beta : float or callable, optional
        Override of the soft scale (a number, or ``beta(n)``); used by the
        negative control with ``beta = O(log n)``.
    type_check : bool
        Whether the comparing FFN requires the two brackets of a pair to have
        the same type (as Yao et al.'s recogniser does). Without it every layer pairs any opener
        with any closer: the network then recognises the strings whose
        bracket *shapes* are in Dyck_{1,D}, types ignored (the experiment of
        ``dyck.type_mismatch``).
    strict_masks : bool
        Whether the matching heads use the strict masks ``j > i`` / ``j < i``
        of the construction, or ``j >= i`` / ``j <= i`` (a token may then
        attend to itself; :attr:`DyckRecognizer.strict_masks`).
    codes : {"binary", "one_hot"}
        Type codes of ``b = bit_length(k)`` bits (:func:`type_codes`, width
        ``3b + 11``, the ``O(log k)`` memory Yao et al. state), or one-hot
        codes with values +-1 (width ``3k + 11``, linear in ``k``).

    Returns
    -------
    DyckRecognizer

    References
    ----------
    Yao et al. 2021 (the hard-attention recogniser); seed 000
    (shared/seeds/000_dca4bc6ff5cc76c0.txt), proof idea and inductive step.
    """
    k = check_k(k)
    D = check_depth(D)
    check_choice(attention, "attention", ("hard", "soft"))
    n_max = check_n_max(n_max)
    ops = check_ops(ops)
    beta = _check_beta(beta)
    type_check = _check_flag(type_check, "type_check")
    strict_masks = _check_flag(strict_masks, "strict_masks")
    check_choice(codes, "codes", ("binary", "one_hot"))
    n_match = D if matching_layers is None else check_positive_int(
        matching_layers, "matching_layers", minimum=0)
    b = type_code_bits(k)
    if codes == "one_hot":
        code_rows = 2.0 * np.eye(k) - 1.0                          # (k, k): one-hot, +-1
        layout = _recognizer_layout(b, one_hot=k)
        c = k
    else:
        code_rows = type_codes(k)                                  # (k, b)
        layout = _recognizer_layout(b)
        c = b
    layers = [_matching_layer(layout, c, type_check=type_check) for _ in range(n_match)]
    layers.append(_deciding_layer(layout))
    return DyckRecognizer(k=k, D=D, attention=attention, n_max=n_max, layers=layers,
                          embedding=_recognizer_embedding(k, code_rows, layout), layout=layout,
                          ops=ops, beta=beta, strict_masks=strict_masks)


def _shared_trunk(nets: Sequence[DyckRecognizer], n: int) -> DyckRecognizer | None:
    """The network whose layers all of ``nets`` start with, if they verifiably share them.

    Returns the network with the most layers if every network runs on the same
    ops, embedding, masks and softmax scale (for length ``n``) and each one's
    layers except its last are, weight for weight, the first layers of that
    network; otherwise None.
    """
    deepest = max(nets, key=lambda r: r.num_layers)
    trunk = deepest.layers[:-1]
    for r in nets:
        if (r.k, r.attention, r.ops, r.strict_masks, r.width) != \
                (deepest.k, deepest.attention, deepest.ops, deepest.strict_masks, deepest.width):
            return None
        if r.layout.slices != deepest.layout.slices or \
                not same_array(r.embedding, deepest.embedding) or r.scale(n) != deepest.scale(n):
            return None
        if not all(same_layer(a, b) for a, b in zip(r.layers[:-1], trunk)):
            return None
    return deepest


def accepts_batch_shared(recognizers: Sequence[DyckRecognizer], tokens, *,
                         bucket: bool = True) -> np.ndarray:
    """Accept/reject of several recognisers on one batch, running their common layers once.

    The recognisers of Dyck_{k,1}, Dyck_{k,2}, ..., Dyck_{k,D} built by
    :func:`build_recognizer` are ``D'`` copies of the *same* matching layer
    followed by the same deciding layer; the network for ``D' < D`` is the
    first ``D'`` layers of the network for ``D`` plus the deciding layer. So
    the forward passes of all of them are computed by running the deepest
    network's matching layers once and applying each network's last layer to
    the stream after its own number of layers. This is the same arithmetic,
    in the same order, as each network's own forward pass (no step is
    skipped or approximated); the sharing is *checked*, weight for weight
    (:func:`_shared_trunk`), and when the networks do not share their layers
    each one is run on its own.

    Parameters
    ----------
    recognizers : sequence of DyckRecognizer
        Networks with the same ``k`` (and, to share work, the same ops,
        embedding and attention).
    tokens : array_like of int, (B, n)
    bucket : bool
        As in :meth:`DyckRecognizer.forward`.

    Returns
    -------
    np.ndarray of bool, (R, B)
        Row ``r`` equals ``recognizers[r].accepts_batch(tokens)``.

    Raises
    ------
    TypeError
        If ``recognizers`` holds something that is not a :class:`DyckRecognizer`.
    ValueError
        If it is empty or its networks differ in ``k``; bad tokens as in
        :meth:`DyckRecognizer.forward`.

    References
    ----------
    Yao et al. 2021 (the recogniser of Dyck_{k,D} stacks D identical
    matching layers and one deciding layer).
    """
    if isinstance(recognizers, DyckRecognizer):
        raise TypeError("recognizers: expected a sequence of DyckRecognizer, got one "
                        "DyckRecognizer (use its accepts_batch)")
    nets = list(recognizers)
    if not nets:
        raise ValueError("recognizers: expected at least one DyckRecognizer, got none")
    for i, r in enumerate(nets):
        if not isinstance(r, DyckRecognizer):
            raise TypeError(f"recognizers[{i}]: expected a DyckRecognizer, "
                            f"got {type(r).__name__}")
        if r.k != nets[0].k:
            raise ValueError(f"recognizers[{i}]: expected k = {nets[0].k} like recognizers[0], "
                             f"got k = {r.k}")
    tokens = check_token_batch(tokens, nets[0].k)
    deepest = _shared_trunk(nets, tokens.shape[1])
    if deepest is None:
        return np.stack([r.accepts_batch(tokens, bucket=bucket) for r in nets])  # (R, B)
    for r in nets:
        r._check_length(tokens.shape[1])
    x, bsz, length, attend = deepest._input_stream(tokens, bucket)  # (B', L', W)
    accept = deepest.layout.index("accept")
    wanted = {r.num_layers - 1 for r in nets}                      # trunk depths to decide at
    after = {0: x} if 0 in wanted else {}
    for depth, layer in enumerate(deepest.layers[:max(wanted)], start=1):  # the shared layers
        x, _ = run_layer(x, layer, attend, deepest.strict_masks, deepest.ops, length)
        if depth in wanted:
            after[depth] = x
    out = np.empty((len(nets), bsz), dtype=bool)                   # (R, B)
    for i, r in enumerate(nets):                                   # each network's last layer
        y, _ = run_layer(after[r.num_layers - 1], r.layers[-1], attend, deepest.strict_masks,
                          deepest.ops, length)                     # (B', L', W)
        out[i] = y[:bsz, length - 1, accept] > 0.5
    return out


# ---------------------------------------------------------------------------
# the report's picture
# ---------------------------------------------------------------------------

def matching_by_layer(text: str = "([]{()})[]", D: int = 3) -> dict:
    """Layer-by-layer matching of one example, for the report's figure.

    Returns
    -------
    dict
        ``{"tokens": [str], "layers": [[(i, j), ...], ...], "accepted": bool,
        "k": k, "D": D}`` with one list of matched pairs per matching layer.
    """
    tokens, k = parse_brackets(text)
    net = build_recognizer(k, D)
    run = net.run(tokens)
    return {"tokens": list(text.replace(" ", "")), "layers": run.pairs,
            "accepted": run.accepted, "k": k, "D": D}
