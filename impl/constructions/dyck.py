"""Dyck_{k,D}: explicit transformers that recognise and generate bounded-depth Dyck languages.

Definitions
-----------
Tokens are integers in ``[0, 2k)``: a token ``t < k`` opens a bracket of type
``t``, a token ``t >= k`` closes one of type ``t - k``. The *depth* after a
prefix is the number of openers it leaves unclosed. ``Dyck_{k,D}`` is the set
of balanced, correctly nested strings whose depth never exceeds ``D``; the
empty string belongs to it. :func:`is_dyck` is the reference, written as a
stack; it is the only place (with its batched twin :func:`is_dyck_batch` and
:func:`reference_allowed_sets`) where a stack appears. The networks below
contain none: every layer is the suite's own attention, feed-forward network,
layer norm and residual connection, applied to weight matrices written down
here. :func:`accepts_batch_shared` runs the recognisers for several depths
on one batch, computing the matching layers they have in common once (the
exhaustive check of ``dyck.recognizer_exact``).

Two constructions (Yao et al. 2021):

* :func:`build_recognizer` -- ``D`` matching layers and one deciding layer
  (``D + 1`` layers, Theorem 4.1). Layer ``l`` cancels the innermost remaining
  bracket pairs: every unmatched opener attends to the nearest unmatched token
  on its right, every unmatched closer to the nearest unmatched token on its
  left (strict masks), and the feed-forward network marks a pair matched when
  it is an opener/closer pair of the same type. A pair whose content has
  nesting height ``h - 1`` is matched by layer ``h``, so ``D`` layers cancel
  exactly the strings of depth ``<= D``; the last layer accepts iff nothing is
  left unmatched.
* :func:`build_generator` -- two layers (Theorem 4.2). Layer 1 computes the
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
Process Bounded Hierarchical Languages, ACL, §4 (Theorem 4.1: a (D+1)-layer
hard-attention network with O(log k) memory recognises Dyck_{k,D}; Theorem 4.2:
a 2-layer soft-attention network generates it; Figure 1).
Hahn 2020, Theoretical Limitations of Self-Attention in Neural Sequence Models,
TACL (unbounded Dyck_k is out of reach; Lemma 5: a soft-attention layer with
bounded weights changes by O(1/n) when one input symbol changes).
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

from .._validate import check_choice, check_positive_int, check_rng
from .toolkit import FFNBuilder, Head, Layer, Layout, Ops, check_ops, pad_stream, run_layer, \
    same_array, same_layer

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

#: Bracket characters by type, for parsing and printing (types 0..3).
BRACKETS: tuple[tuple[str, str], ...] = (("(", ")"), ("[", "]"), ("{", "}"), ("<", ">"))


# ---------------------------------------------------------------------------
# tokens and the stack reference
# ---------------------------------------------------------------------------

def _check_k(k) -> int:
    return check_positive_int(k, "k", minimum=1)


def _check_depth(D, name: str = "D") -> int:
    return check_positive_int(D, name, minimum=1)


def check_tokens(tokens, k: int, name: str = "tokens") -> np.ndarray:
    """Return ``tokens`` as a 1-d int64 array with entries in ``[0, 2k)``, or raise.

    Parameters
    ----------
    tokens : sequence of int or 1-d integer array
        May be empty.
    k : int
        Number of bracket types.
    name : str
        The argument name used in error messages.

    Raises
    ------
    TypeError
        For a string, floats, booleans or other non-integer entries.
    ValueError
        For a non-1-d array or a token outside ``[0, 2k)``.
    """
    if isinstance(tokens, (str, bytes)):
        raise TypeError(f"{name}: expected a sequence of integer tokens, got a string "
                        f"(use parse_brackets to read bracket characters)")
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d sequence of tokens, got shape {arr.shape}")
    if arr.size and (arr.dtype == np.bool_ or arr.dtype.kind not in "iu"):
        raise TypeError(f"{name}: expected integer tokens, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= 2 * k):
        bad = int(arr[(arr < 0) | (arr >= 2 * k)][0])
        raise ValueError(f"{name}: expected tokens in [0, {2 * k}) for k = {k}, got {bad}")
    return arr


def _check_token_batch(tokens, k: int, name: str = "tokens") -> np.ndarray:
    """A (B, n) integer array of tokens in ``[0, 2k)``, or raise."""
    arr = np.asarray(tokens)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d array (batch, n) of tokens, "
                         f"got shape {arr.shape}")
    if arr.size and (arr.dtype == np.bool_ or arr.dtype.kind not in "iu"):
        raise TypeError(f"{name}: expected integer tokens, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= 2 * k):
        raise ValueError(f"{name}: expected tokens in [0, {2 * k}) for k = {k}, got values in "
                         f"[{arr.min()}, {arr.max()}]")
    return arr


def is_dyck(tokens, k: int, D: int) -> bool:
    """The reference: is ``tokens`` in Dyck_{k,D}? (a stack, one token at a time).

    Parameters
    ----------
    tokens : sequence of int in [0, 2k)
    k : int
        Number of bracket types (>= 1).
    D : int
        Depth bound (>= 1).

    Returns
    -------
    bool
        True iff every closer closes the most recent unclosed opener of its
        type, no opener is left unclosed, and at most ``D`` openers are ever
        unclosed at once. The empty string is in the language.

    References
    ----------
    Yao et al. 2021, §3 (definition of Dyck_{k,D}).
    """
    k = _check_k(k)
    D = _check_depth(D)
    stack: list[int] = []
    for t in check_tokens(tokens, k).tolist():
        if t < k:
            stack.append(t)
            if len(stack) > D:
                return False
        elif not stack or stack.pop() != t - k:
            return False
    return not stack


def is_dyck_batch(tokens, k: int, D: int) -> np.ndarray:
    """The reference :func:`is_dyck` for a batch ``(B, n)`` of equal-length strings.

    The same stack, run on all ``B`` strings at once: a loop over the ``n``
    positions, vectorised over the strings. Each string keeps a stack of
    ``D + 1`` type slots and its height; an opener writes its type at the
    height and raises it, a closer must find its own type just below the
    height and lowers it. A string fails as soon as its height exceeds ``D``
    or a closer does not match; after a failure its stack is no longer
    consulted (its height is clipped to stay inside the slots).

    Parameters
    ----------
    tokens : array_like of int, shape (B, n)
        Tokens in ``[0, 2k)``; ``n`` may be 0.
    k : int
        Number of bracket types (>= 1).
    D : int
        Depth bound (>= 1).

    Returns
    -------
    np.ndarray of bool, shape (B,)
        Entry ``b`` equals ``is_dyck(tokens[b], k, D)``.

    References
    ----------
    Yao et al. 2021, §3 (definition of Dyck_{k,D}).
    """
    k = _check_k(k)
    D = _check_depth(D)
    arr = _check_token_batch(tokens, k)
    bsz, n = arr.shape
    rows = np.arange(bsz)                                           # (B,)
    stack = np.zeros((bsz, D + 1), dtype=np.int64)                  # (B, D+1) type slots
    height = np.zeros(bsz, dtype=np.int64)                          # (B,)
    ok = np.ones(bsz, dtype=bool)                                   # (B,)
    for t in range(n):                                              # positions, not strings
        tok = arr[:, t]                                             # (B,)
        opener = tok < k                                            # (B,)
        top = stack[rows, np.maximum(height - 1, 0)]                # (B,) type below the height
        closes_top = (height > 0) & (top == tok - k)                # (B,)
        ok &= np.where(opener, height < D, closes_top)
        stack[rows, height] = np.where(opener, tok, stack[rows, height])
        height = np.clip(height + np.where(opener, 1, -1), 0, D)    # (B,) stays a valid slot
    return ok & (height == 0)


def reference_allowed_sets(tokens, k: int, D: int) -> list[set[int]]:
    """The reference next-token sets after every prefix ``tokens[:t]``, ``t = 0..n`` (a stack).

    After each prefix: the openers ``0..k-1`` if the depth is below ``D``, the
    closer of the most recent unclosed opener if the depth is at least 1, and
    ``END = 2k`` if the depth is 0.

    Raises
    ------
    ValueError
        If ``tokens`` is not a prefix of a string in Dyck_{k,D}.

    References
    ----------
    Yao et al. 2021, §3 (generation: the set of valid next tokens).
    """
    k = _check_k(k)
    D = _check_depth(D)
    stack: list[int] = []

    def allowed() -> set[int]:
        out = set(range(k)) if len(stack) < D else set()
        out.add(stack[-1] + k if stack else 2 * k)
        return out

    sets = [allowed()]
    for t in check_tokens(tokens, k, "tokens").tolist():
        if t < k:
            stack.append(t)
        elif not stack or stack.pop() != t - k:
            raise ValueError(f"tokens: not a prefix of a Dyck_{{{k},{D}}} string (bad closer {t})")
        if len(stack) > D:
            raise ValueError(f"tokens: depth exceeds D = {D}")
        sets.append(allowed())
    return sets


def reference_allowed_next(prefix, k: int, D: int) -> set[int]:
    """The reference next-token set after ``prefix`` (see :func:`reference_allowed_sets`)."""
    return reference_allowed_sets(prefix, k, D)[-1]


def max_depth(tokens, k: int) -> int:
    """Largest number of unclosed openers after any prefix (a running sum, no stack).

    Types are ignored: this is the depth of the string read as Dyck_1.
    """
    k = _check_k(k)
    arr = check_tokens(tokens, k)
    if arr.size == 0:
        return 0
    steps = np.where(arr < k, 1, -1)                     # (n,)
    return int(max(0, np.max(np.cumsum(steps))))


def parse_brackets(text: str, k: int | None = None) -> tuple[np.ndarray, int]:
    """Read ``"(()[])"`` into tokens: ``()`` type 0, ``[]`` 1, ``{}`` 2, ``<>`` 3.

    Whitespace is ignored.

    Parameters
    ----------
    text : str
    k : int, optional
        Number of types; default the smallest that covers the characters used
        (at least 1).

    Returns
    -------
    tokens : np.ndarray of int64
    k : int

    Raises
    ------
    TypeError
        If ``text`` is not a string.
    ValueError
        For a character that is not a bracket, or a type >= ``k``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected a string of brackets, got {type(text).__name__}")
    opens = {o: t for t, (o, _) in enumerate(BRACKETS)}
    closes = {c: t for t, (_, c) in enumerate(BRACKETS)}
    pairs = []
    for pos, ch in enumerate(text):
        if ch.isspace():
            continue
        if ch in opens:
            pairs.append((opens[ch], True))
        elif ch in closes:
            pairs.append((closes[ch], False))
        else:
            raise ValueError(f"text: character {ch!r} at {pos} is not one of "
                             f"{''.join(o + c for o, c in BRACKETS)}")
    used = max((t for t, _ in pairs), default=0) + 1
    if k is None:
        k = used
    k = _check_k(k)
    if used > k:
        raise ValueError(f"text: uses bracket type {used - 1} but k = {k} "
                         f"(types 0..{k - 1}: {''.join(o + c for o, c in BRACKETS[:k])})")
    tokens = np.array([t if is_open else t + k for t, is_open in pairs], dtype=np.int64)
    return tokens, k


def format_brackets(tokens, k: int) -> str:
    """Tokens as bracket characters (types >= 4 are written ``(4`` / ``)4``)."""
    k = _check_k(k)
    out = []
    for t in check_tokens(tokens, k).tolist():
        typ, is_open = (t, True) if t < k else (t - k, False)
        if typ < len(BRACKETS):
            out.append(BRACKETS[typ][0 if is_open else 1])
        else:
            out.append(("(" if is_open else ")") + str(typ))
    return "".join(out) if k <= len(BRACKETS) else " ".join(out)


# ---------------------------------------------------------------------------
# type codes
# ---------------------------------------------------------------------------

def type_code_bits(k: int) -> int:
    """Bits per bracket type: ``b = bit_length(k) = floor(log2 k) + 1``.

    ``ceil(log2 k)`` bits would suffice to give ``k`` types distinct codes;
    one more at powers of two makes ``b`` exactly ``log2 k + 1`` there, so that
    ``k = 1`` gets one bit (as the construction needs) and the widths are
    exactly affine in ``log2 k`` at ``k = 1, 2, 4, ...``.
    """
    return int(_check_k(k)).bit_length()


def type_codes(k: int) -> np.ndarray:
    """The +-1 code of every bracket type: row ``t`` is the binary numeral of ``t``.

    Returns
    -------
    np.ndarray, shape (k, b), float64, entries +-1
        Distinct rows; the code of type ``t`` has ``+1`` where bit ``j`` of
        ``t`` is set. Two codes agree iff their dot product equals ``b``.
    """
    k = _check_k(k)
    b = type_code_bits(k)
    bits = (np.arange(k)[:, None] >> np.arange(b)[None, :]) & 1     # (k, b)
    return 2.0 * bits - 1.0                                          # (k, b)


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


def _check_n_max(n_max):
    if n_max is None:
        return None
    return check_positive_int(n_max, "n_max", minimum=0)


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
    Yao et al. 2021, Theorem 4.1 (the hard-attention network this
    approximates; the scale bound above is derived here); Hahn 2020, Lemma 5
    (with a bounded scale no soft-attention layer can follow one symbol).
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
class DyckRecognizer:
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
    def num_layers(self) -> int:
        """Number of transformer layers (matching layers + 1 deciding layer)."""
        return len(self.layers)

    @property
    def width(self) -> int:
        """Residual-stream dimension W."""
        return self.layout.width

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

    def _attend(self, n: int) -> Callable:
        if self.attention == "hard":
            return lambda q, k, v, *, mask: self.ops.hard_attention(q, k, v, mask=mask)
        beta = self.scale(n)
        return lambda q, k, v, *, mask: self.ops.attention(q, k, v, mask=mask, scale=beta)

    def _check_length(self, n: int) -> None:
        if self.n_max is not None and n > self.n_max:
            raise ValueError(f"tokens: expected length <= n_max = {self.n_max}, got {n}")

    def _input_stream(self, tokens, bucket: bool):
        """Validated tokens to ``(x, bsz, length, attend)``: the embedded stream, padded if asked
        (``bucket``)."""
        tokens = _check_token_batch(tokens, self.k)
        n = tokens.shape[1]
        self._check_length(n)
        x = self.embed(tokens)                                     # (B, L, W)
        bsz, length = x.shape[:2]
        if bucket:
            x = pad_stream(x)                                     # (B', L', W) bucketed
        return x, bsz, length, self._attend(n)

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
        attend = self._attend(arr.size)
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
        Averaging hard attention (Theorem 4.1), or softmax attention with the
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
        the same type (Theorem 4.1). Without it every layer pairs any opener
        with any closer: the network then recognises the strings whose
        bracket *shapes* are in Dyck_{1,D}, types ignored (the experiment of
        ``dyck.type_mismatch``).
    strict_masks : bool
        Whether the matching heads use the strict masks ``j > i`` / ``j < i``
        of the construction, or ``j >= i`` / ``j <= i`` (a token may then
        attend to itself; :attr:`DyckRecognizer.strict_masks`).
    codes : {"binary", "one_hot"}
        Type codes of ``b = bit_length(k)`` bits (:func:`type_codes`, width
        ``3b + 11``, the ``O(log k)`` memory of Theorem 4.1), or one-hot
        codes with values +-1 (width ``3k + 11``, linear in ``k``).

    Returns
    -------
    DyckRecognizer

    References
    ----------
    Yao et al. 2021, §4.1 and Theorem 4.1; seed 000
    (shared/seeds/000_dca4bc6ff5cc76c0.txt), proof idea and inductive step.
    """
    k = _check_k(k)
    D = _check_depth(D)
    check_choice(attention, "attention", ("hard", "soft"))
    n_max = _check_n_max(n_max)
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
    Yao et al. 2021, §4.1 (the recogniser of Dyck_{k,D} stacks D identical
    matching layers; Theorem 4.1).
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
    tokens = _check_token_batch(tokens, nets[0].k)
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
    Yao et al. 2021, §4.2 (Theorem 4.2).
    """
    n = check_positive_int(n, "n", minimum=0)
    b = type_code_bits(k)
    big_n = n + 1
    return 2.0 * big_n * math.log(8.0 * b * big_n)


@dataclass
class DyckGenerator:
    """A 2-layer transformer whose output is the set of allowed next tokens (Theorem 4.2).

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

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def width(self) -> int:
        """Residual-stream dimension W."""
        return self.layout.width

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
        if self.attention == "hard":
            def attend(q, k, v, *, mask):
                return self.ops.hard_attention(q, k, v, mask=mask)
        else:
            beta = self.scale(n)

            def attend(q, k, v, *, mask):
                return self.ops.attention(q, k, v, mask=mask, scale=beta)
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
    Yao et al. 2021, §4.2 and Theorem 4.2 (future positional masking, i/n
    positions, residual connections and layer normalisation; Figure 1b).
    """
    k = _check_k(k)
    D = _check_depth(D)
    check_choice(attention, "attention", ("hard", "soft"))
    n_max = _check_n_max(n_max)
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
