"""The factorized attention patterns of Sparse Transformers: strided and fixed.

Child et al. factorize causal self-attention over ``p`` heads, head ``m`` of
query ``i`` attending a subset ``A_i^(m)`` of ``{j <= i}`` of size about
``n^(1/p)``. A factorization is *valid* when every ``j <= i`` reaches ``i``
through a path of at most ``p + 1`` locations ``(j, a, ..., i)`` with ``j`` in
``A_a^(1)``, ``a`` in the next head's set, and so on. The two patterns of
``p = 2`` are built here as boolean ``(L, L)`` masks (``True``: the query of
the row may attend the key of the column), causal by construction:

* **strided**, stride ``l``: ``A_i^(1) = {max(0, i - l), ..., i}`` (the
  previous ``l`` locations and ``i``), ``A_i^(2) = {j <= i : (i - j) mod l = 0}``;
* **fixed**, stride ``l`` and ``c`` summary columns: ``A_i^(1) = {j <= i :
  floor(j / l) = floor(i / l)}`` (``i``'s block), ``A_i^(2) = {j <= i : j mod l
  >= l - c}`` (the last ``c`` positions of every block).

:func:`reach` gives the pairs that such a pair of masks connects.

References
----------
Child, Gray, Radford & Sutskever 2019, Generating Long Sequences with Sparse
Transformers, arXiv:1904.10509: §4.2 (factorized self-attention; "i can attend
to j through a path of locations with maximum length p+1"; ``|A_i^(m)|``
proportional to the p-th root of n), §4.3 (the strided and fixed patterns).
Seed 001 (shared/seeds/001_227b4b6d6a829452.txt): "structured sparse attention".
"""

from __future__ import annotations

import numpy as np

from .contract.validate import check_positive_int

__all__ = ["strided_pattern", "fixed_pattern", "reach"]


def _causal(length: int) -> np.ndarray:
    i = np.arange(length)
    return i[None, :] <= i[:, None]                                     # (L, L)


def strided_pattern(length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The strided pattern's two heads as causal masks.

    Parameters
    ----------
    length : int
        Sequence length ``L``.
    stride : int
        ``l``, chosen near ``sqrt(L)`` in the paper.

    Returns
    -------
    a1, a2 : np.ndarray of bool, (L, L)
        ``a1[i, j]``: ``i - l <= j <= i``; ``a2[i, j]``: ``j <= i`` and ``l`` divides ``i - j``.

    References
    ----------
    Child et al. 2019, §4.3 (strided attention).
    """
    length = check_positive_int(length, "length")
    stride = check_positive_int(stride, "stride")
    i = np.arange(length)
    gap = i[:, None] - i[None, :]                                       # (L, L): i - j
    causal = gap >= 0
    return causal & (gap <= stride), causal & (gap % stride == 0)


def fixed_pattern(length: int, stride: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed pattern's two heads as causal masks.

    Parameters
    ----------
    length : int
        Sequence length ``L``.
    stride : int
        ``l``, the block length.
    c : int
        Summary positions per block, ``1 <= c <= l``.

    Returns
    -------
    a1, a2 : np.ndarray of bool, (L, L)
        ``a1[i, j]``: ``j <= i`` in ``i``'s block; ``a2[i, j]``: ``j <= i`` and
        ``j mod l >= l - c``.

    References
    ----------
    Child et al. 2019, §4.3 (fixed attention; its set is written ``{t, t+1, ..., l}``
    with ``t = l - c``, of which ``j mod l`` takes the values below ``l``).
    """
    length = check_positive_int(length, "length")
    stride = check_positive_int(stride, "stride")
    c = check_positive_int(c, "c")
    if c > stride:
        raise ValueError(f"c: expected 1 <= c <= stride = {stride}, got {c}")
    i = np.arange(length)
    causal = _causal(length)
    same_block = (i[:, None] // stride) == (i[None, :] // stride)      # (L, L)
    summary = (i % stride) >= stride - c                                 # (L,) per key
    return causal & same_block, causal & summary[None, :]


def reach(a1: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """Pairs ``(i, j)`` joined by a path of at most 3 locations: ``j`` in ``A_i^(1)``, or
    ``j`` in ``A_a^(1)`` and ``a`` in ``A_i^(2)`` for some ``a``.

    Parameters
    ----------
    a1, a2 : np.ndarray of bool, (L, L)

    Returns
    -------
    np.ndarray of bool, (L, L)
    """
    a1 = np.asarray(a1, dtype=bool)
    a2 = np.asarray(a2, dtype=bool)
    if a1.ndim != 2 or a1.shape[0] != a1.shape[1] or a2.shape != a1.shape:
        raise ValueError(f"a1, a2: expected two (L, L) masks, got {a1.shape} and {a2.shape}")
    two_steps = (a2.astype(np.int64) @ a1.astype(np.int64)) > 0        # (L, L)
    return a1 | two_steps
