"""Dyck_{k,D} as a language: tokens, the stack reference, allowed next tokens, bracket text.

Tokens are integers in ``[0, 2k)``: a token ``t < k`` opens a bracket of type
``t``, a token ``t >= k`` closes one of type ``t - k``. The *depth* after a
prefix is the number of openers it leaves unclosed. ``Dyck_{k,D}`` is the set
of balanced, correctly nested strings whose depth never exceeds ``D``; the
empty string belongs to it. :func:`is_dyck` is the reference, written as a
stack; it is the only place (with its batched twin :func:`is_dyck_batch` and
:func:`reference_allowed_sets`) where a stack appears. The networks of
:mod:`~transformer_theory.impl.constructions.dyck` and
:mod:`~transformer_theory.impl.constructions.dyck_generator` contain none, and
are checked against this module.

Bracket types enter the networks as codes of ``b = bit_length(k)`` bits with
values +-1 (:func:`type_codes`), so that every width is ``O(log k)``.

Everything here is re-exported by :mod:`~transformer_theory.impl.constructions.dyck`.

References
----------
Yao, Peng, Papadimitriou & Narasimhan 2021, Self-Attention Networks Can
Process Bounded Hierarchical Languages, ACL, §2 (Dyck_k and the depth bound D)
and §4 (O(log k) memory).
Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt): Dyck languages, bounded depth.
"""

from __future__ import annotations

import numpy as np

from .._validate import check_positive_int

__all__ = [
    "BRACKETS",
    "check_k",
    "check_depth",
    "check_n_max",
    "check_token_batch",
    "check_tokens",
    "is_dyck",
    "is_dyck_batch",
    "reference_allowed_sets",
    "reference_allowed_next",
    "max_depth",
    "parse_brackets",
    "format_brackets",
    "type_code_bits",
    "type_codes",
]

#: Bracket characters by type, for parsing and printing (types 0..3).
BRACKETS: tuple[tuple[str, str], ...] = (("(", ")"), ("[", "]"), ("{", "}"), ("<", ">"))


# ---------------------------------------------------------------------------
# tokens and the stack reference
# ---------------------------------------------------------------------------

def check_k(k) -> int:
    return check_positive_int(k, "k", minimum=1)


def check_depth(D, name: str = "D") -> int:
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


def check_token_batch(tokens, k: int, name: str = "tokens") -> np.ndarray:
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
    k = check_k(k)
    D = check_depth(D)
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
    k = check_k(k)
    D = check_depth(D)
    arr = check_token_batch(tokens, k)
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
    k = check_k(k)
    D = check_depth(D)
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
    k = check_k(k)
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
    k = check_k(k)
    if used > k:
        raise ValueError(f"text: uses bracket type {used - 1} but k = {k} "
                         f"(types 0..{k - 1}: {''.join(o + c for o, c in BRACKETS[:k])})")
    tokens = np.array([t if is_open else t + k for t, is_open in pairs], dtype=np.int64)
    return tokens, k


def format_brackets(tokens, k: int) -> str:
    """Tokens as bracket characters (types >= 4 are written ``(4`` / ``)4``)."""
    k = check_k(k)
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
    return int(check_k(k)).bit_length()


def type_codes(k: int) -> np.ndarray:
    """The +-1 code of every bracket type: row ``t`` is the binary numeral of ``t``.

    Returns
    -------
    np.ndarray, shape (k, b), float64, entries +-1
        Distinct rows; the code of type ``t`` has ``+1`` where bit ``j`` of
        ``t`` is set. Two codes agree iff their dot product equals ``b``.
    """
    k = check_k(k)
    b = type_code_bits(k)
    bits = (np.arange(k)[:, None] >> np.arange(b)[None, :]) & 1     # (k, b)
    return 2.0 * bits - 1.0                                          # (k, b)


# ---------------------------------------------------------------------------
# the builders' common argument
# ---------------------------------------------------------------------------

def check_n_max(n_max):
    if n_max is None:
        return None
    return check_positive_int(n_max, "n_max", minimum=0)
