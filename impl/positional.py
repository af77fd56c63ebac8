"""Positional information for a permutation-equivariant attention layer.

Self-attention without positional information treats its input as a set:
permuting the positions permutes the output the same way. The encodings here
break that symmetry in the three ways found in the literature:

* *absolute, additive*: a vector per position is added to the token vector
  (sinusoidal, one-hot, learned table);
* *relative, multiplicative*: queries and keys are rotated by an angle that
  grows with their position, so their dot product depends only on the offset
  (RoPE);
* *relative, additive to the scores*: a per-head linear penalty on the
  query-key distance is added to the attention logits (ALiBi).

Shapes: ``N`` positions in a table, ``L`` positions in a sequence, ``d`` the
model (or head) width, ``H`` heads; ``...`` any leading batch/head dims.

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.5.
Su et al. 2021, RoFormer: Enhanced Transformer with Rotary Position
Embedding, §3.2-3.4.
Press, Smith & Lewis 2022, Train Short, Test Long: Attention with Linear
Biases Enables Input Length Extrapolation, §3.
Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt): attention is permutation
invariant; sinusoidal example; AlphaFold-style ``x_i + e_i``.
Seed 001 (shared/seeds/001_227b4b6d6a829452.txt), seed 003
(shared/seeds/003_8876c6ab28e0baf8.txt) and seed 004
(shared/seeds/004_d5b314f5ea1e15da.txt), "Positional Encoding".
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .contract.precision import computes_in_float32
from .contract.validate import (
    as_float_array,
    check_choice,
    check_dim,
    check_float_dtype,
    check_positive_int,
    check_rng,
    common_float_dtype,
)

__all__ = [
    "sinusoidal_frequencies",
    "sinusoidal_encoding",
    "sinusoidal_shift_matrix",
    "one_hot_encoding",
    "add_positional_encoding",
    "init_learned_positional",
    "learned_encoding",
    "rope_frequencies",
    "rope_matrix",
    "rope",
    "alibi_slopes",
    "alibi_bias",
]


# ---------------------------------------------------------------------------
# small private validators
# ---------------------------------------------------------------------------

def _check_real(value, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number, else raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite real number, got {value}")
    return value


def _check_base(base) -> float:
    """The frequency base: a finite real number > 0."""
    base = _check_real(base, "base")
    if base <= 0:
        raise ValueError(f"base: expected a real number > 0, got {base}")
    return base


def _check_even_dim(d, name: str) -> int:
    """A positive even width (sin/cos or rotation pairs need ``d = 2 * (d/2)``)."""
    d = check_positive_int(d, name)
    if d % 2:
        raise ValueError(f"{name}: expected an even integer (pairs of coordinates), got {d}")
    return d


def _pair_rotation(angles: np.ndarray, *, sign: float) -> np.ndarray:
    """Block-diagonal ``(d, d)`` matrix of 2x2 rotations, one per angle.

    Block ``i`` acts on coordinates ``(2i, 2i+1)`` and equals
    ``[[cos a, -sign sin a], [sign sin a, cos a]]`` with ``a = angles[i]``.
    """
    half = angles.shape[0]
    c, s = np.cos(angles), np.sin(angles)                         # (d/2,)
    m = np.zeros((2 * half, 2 * half))                            # (d, d)
    even, odd = np.arange(0, 2 * half, 2), np.arange(1, 2 * half, 2)
    m[even, even] = c
    m[odd, odd] = c
    m[even, odd] = -sign * s
    m[odd, even] = sign * s
    return m


# ---------------------------------------------------------------------------
# sinusoidal encoding (Vaswani et al. 2017, §3.5)
# ---------------------------------------------------------------------------

def sinusoidal_frequencies(d_model: int, *, base: float = 10000.0) -> np.ndarray:
    """Angular frequencies ``omega_i = base^(-2i/d)`` of the sinusoidal encoding.

    The wavelengths ``2 pi / omega_i`` form a geometric progression from
    ``2 pi`` (``i = 0``) towards ``2 pi * base``.

    Parameters
    ----------
    d_model : int
        Even width ``d`` (>= 2).
    base : float
        Finite, ``> 0``; 10000 in the paper.

    Returns
    -------
    numpy.ndarray, shape (d/2,), float64

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.5.
    Seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt), "sinusoids of different
    frequencies".
    """
    d_model = _check_even_dim(d_model, "d_model")
    base = _check_base(base)
    i = np.arange(d_model // 2)                                   # (d/2,)
    return base ** (-2.0 * i / d_model)                           # (d/2,)


def sinusoidal_encoding(n_positions: int, d_model: int, *, base: float = 10000.0,
                        dtype=np.float64) -> np.ndarray:
    """The sinusoidal positional encoding table.

    ``PE[p, 2i] = sin(p * omega_i)`` and ``PE[p, 2i+1] = cos(p * omega_i)``
    with ``omega_i = base^(-2i/d)``, for positions ``p = 0, ..., N-1``.

    Parameters
    ----------
    n_positions : int
        Number of positions ``N`` (>= 1).
    d_model : int
        Even width ``d`` (>= 2); an odd width raises ``ValueError``.
    base : float
        Finite, ``> 0``; 10000 in the paper.
    dtype : float32 or float64
        Output dtype; the angles are computed in float64 first.

    Returns
    -------
    numpy.ndarray, shape (N, d)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.5.
    Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt), "Example (Vaswani et
    al.)"; seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt).
    """
    n_positions = check_positive_int(n_positions, "n_positions")
    omega = sinusoidal_frequencies(d_model, base=base)            # (d/2,)
    dt = check_float_dtype(dtype)
    p = np.arange(n_positions, dtype=np.float64)                  # (N,)
    angles = p[:, None] * omega[None, :]                          # (N, d/2)
    pe = np.empty((n_positions, 2 * omega.shape[0]))              # (N, d)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles)
    return pe.astype(dt, copy=False)


def sinusoidal_shift_matrix(k, d_model: int, *, base: float = 10000.0) -> np.ndarray:
    """The linear map that shifts the sinusoidal encoding by ``k`` positions.

    ``M_k`` is block diagonal with, on the pair ``(2i, 2i+1)`` = ``(sin, cos)``,
    the 2x2 block ``[[cos(k w_i), sin(k w_i)], [-sin(k w_i), cos(k w_i)]]``,
    by the angle-addition formulas. Hence, for every position ``p`` (and
    ``PE(p)`` read as a column vector of length ``d``)::

        PE(p + k) = M_k @ PE(p)

    This is the property Vaswani et al. give for choosing sinusoids: a fixed
    offset acts linearly, independent of ``p``. ``M_k`` is orthogonal,
    ``M_{j+k} = M_j M_k`` and ``M_{-k} = M_k^T``.

    Parameters
    ----------
    k : float
        The offset (any finite real; integer offsets are the usual case).
    d_model : int
        Even width ``d`` (>= 2).
    base : float
        Finite, ``> 0``.

    Returns
    -------
    numpy.ndarray, shape (d, d), float64

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.5 ("for any fixed
    offset k, PE_{pos+k} can be represented as a linear function of PE_pos").
    """
    k = _check_real(k, "k")
    omega = sinusoidal_frequencies(d_model, base=base)            # (d/2,)
    # On (sin, cos) pairs the shift is a rotation by -k*omega in the usual
    # [[cos, -sin], [sin, cos]] form.
    return _pair_rotation(k * omega, sign=-1.0)                   # (d, d)


# ---------------------------------------------------------------------------
# one-hot and learned absolute encodings
# ---------------------------------------------------------------------------

def one_hot_encoding(n_positions: int, d_model: int, *, dtype=np.float64) -> np.ndarray:
    """One-hot positions: row ``i`` is the standard basis vector ``e_i``.

    Adding it gives ``x_i -> x_i + e_i``, which needs a width ``d >= N`` so
    that every position has its own basis direction.

    Parameters
    ----------
    n_positions : int
        Number of positions ``N`` (>= 1).
    d_model : int
        Width ``d``; must satisfy ``d >= N`` (``ValueError`` otherwise).
    dtype : float32 or float64

    Returns
    -------
    numpy.ndarray, shape (N, d)
        ``eye(N, d)``.

    References
    ----------
    Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt), "AlphaFold paper":
    x_i -> x_i + e_i assuming d >= N (Jumper et al. 2021, Highly accurate
    protein structure prediction with AlphaFold, uses one-hot relative
    position features).
    """
    n_positions = check_positive_int(n_positions, "n_positions")
    d_model = check_positive_int(d_model, "d_model")
    if d_model < n_positions:
        raise ValueError(
            f"d_model: expected d_model >= n_positions = {n_positions} for one-hot "
            f"positions, got {d_model}")
    dt = check_float_dtype(dtype)
    return np.eye(n_positions, d_model, dtype=dt)                 # (N, d)


def add_positional_encoding(x, pe) -> np.ndarray:
    """Add an absolute positional encoding: ``x[..., p, :] + pe[p, :]``.

    Parameters
    ----------
    x : array_like, shape (..., L, d)
        Token vectors, float32 or float64, finite, at least 2-d.
    pe : array_like, shape (N, d)
        Encoding table with ``N >= L`` rows; its first ``L`` rows are used.

    Returns
    -------
    numpy.ndarray, shape (..., L, d)
        float32 only if both ``x`` and ``pe`` are float32.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.5 ("we add positional
    encodings to the input embeddings").
    Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt), "positional encoding".
    """
    x = as_float_array(x, "x", ndim_min=2)
    pe = as_float_array(pe, "pe", ndim=2)
    length, d = x.shape[-2], x.shape[-1]
    check_dim(pe, 1, d, "pe", "d_model (last dim of x)")
    if pe.shape[0] < length:
        raise ValueError(
            f"pe: expected at least L = {length} rows (sequence length of x, shape "
            f"{x.shape}), got shape {pe.shape}")
    dtype = common_float_dtype(x, pe)
    return x.astype(dtype, copy=False) + pe[:length].astype(dtype, copy=False)  # (..., L, d)


def init_learned_positional(n_positions: int, d_model: int, rng: np.random.Generator, *,
                            std: float = 0.02, dtype=np.float64) -> np.ndarray:
    """A learned (trainable) positional table at its random initialisation.

    Entries are drawn i.i.d. ``N(0, std^2)`` (in float64, then cast), the
    usual initialisation of learned position embeddings.

    Parameters
    ----------
    n_positions : int
        Maximum number of positions ``N`` (>= 1).
    d_model : int
        Width ``d`` (>= 1).
    rng : numpy.random.Generator
    std : float
        Finite, ``>= 0``.
    dtype : float32 or float64

    Returns
    -------
    numpy.ndarray, shape (N, d)

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.5 (learned positional
    embeddings as the alternative to sinusoids); Gehring et al. 2017,
    Convolutional Sequence to Sequence Learning, §3.1.
    """
    n_positions = check_positive_int(n_positions, "n_positions")
    d_model = check_positive_int(d_model, "d_model")
    rng = check_rng(rng)
    std = _check_real(std, "std")
    if std < 0:
        raise ValueError(f"std: expected a real number >= 0, got {std}")
    dt = check_float_dtype(dtype)
    return rng.normal(0.0, std, size=(n_positions, d_model)).astype(dt)  # (N, d)


def learned_encoding(table, length: int) -> np.ndarray:
    """The first ``length`` rows of a learned positional table (a copy).

    Parameters
    ----------
    table : array_like, shape (N, d)
        float32 or float64, finite.
    length : int
        Sequence length ``L`` with ``1 <= L <= N``.

    Returns
    -------
    numpy.ndarray, shape (L, d)
        Same dtype as ``table``; a copy, so editing it leaves the table alone.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.5.
    """
    table = as_float_array(table, "table", ndim=2)
    length = check_positive_int(length, "length")
    if length > table.shape[0]:
        raise ValueError(
            f"length: expected at most n_positions = {table.shape[0]} (rows of table, "
            f"shape {table.shape}), got {length}")
    return table[:length].copy()                                  # (L, d)


# ---------------------------------------------------------------------------
# rotary position embedding (Su et al. 2021)
# ---------------------------------------------------------------------------

def rope_frequencies(d: int, *, base: float = 10000.0) -> np.ndarray:
    """RoPE rotation frequencies ``theta_i = base^(-2i/d)``, ``i < d/2``.

    Parameters
    ----------
    d : int
        Even width (>= 2) of the vectors being rotated (the head width).
    base : float
        Finite, ``> 0``; 10000 in the paper.

    Returns
    -------
    numpy.ndarray, shape (d/2,), float64

    References
    ----------
    Su et al. 2021, RoFormer, §3.2.2 (eq. 15).
    """
    d = _check_even_dim(d, "d")
    base = _check_base(base)
    i = np.arange(d // 2)                                         # (d/2,)
    return base ** (-2.0 * i / d)                                 # (d/2,)


def rope_matrix(position, d: int, *, base: float = 10000.0) -> np.ndarray:
    """The rotary matrix ``R_p`` for one position (for checking :func:`rope`).

    Block diagonal with, on coordinate pair ``(2i, 2i+1)``, the rotation
    ``[[cos(p theta_i), -sin(p theta_i)], [sin(p theta_i), cos(p theta_i)]]``.
    It is orthogonal and ``R_m^T R_n = R_{n-m}``, so
    ``<R_m q, R_n k> = <q, R_{n-m} k>`` depends on the positions only through
    ``n - m``.

    Parameters
    ----------
    position : float
        The position ``p`` (any finite real).
    d : int
        Even width (>= 2).
    base : float
        Finite, ``> 0``.

    Returns
    -------
    numpy.ndarray, shape (d, d), float64

    References
    ----------
    Su et al. 2021, RoFormer, §3.2.2 (eq. 15) and §3.4.1 (properties of R).
    """
    position = _check_real(position, "position")
    theta = rope_frequencies(d, base=base)                        # (d/2,)
    return _pair_rotation(position * theta, sign=1.0)             # (d, d)


@computes_in_float32(exclude=("positions",))
def rope(x, positions=None, *, base: float = 10000.0, rotary_dim=None,
         position_scale: float = 1.0) -> np.ndarray:
    """Apply the rotary position embedding to queries or keys.

    ``result[..., p, :] = R_{positions[p]} @ x[..., p, :]`` with ``R`` as in
    :func:`rope_matrix`, computed without forming any ``(d, d)`` matrix (Su et
    al. §3.4.2): for each pair ``(x_{2i}, x_{2i+1})`` and angle
    ``a = positions[p] * theta_i``::

        out_{2i}   = x_{2i} cos a - x_{2i+1} sin a
        out_{2i+1} = x_{2i} sin a + x_{2i+1} cos a

    Convention: *interleaved pairs* — coordinates ``2i`` and ``2i+1`` rotate
    together, as in the RoFormer paper. Some libraries (e.g. the GPT-NeoX /
    Hugging Face ``rotate_half`` form) instead pair coordinate ``i`` with
    ``i + d/2`` (split halves). The two agree up to a fixed permutation of the
    coordinates, applied to queries and keys alike, so attention scores are
    the same but the per-coordinate outputs differ.

    Parameters
    ----------
    x : array_like, shape (..., L, d)
        float32 or float64, finite, at least 2-d, ``d`` even.
    positions : array_like, shape (L,), optional
        Integer or real positions, finite; default ``arange(L)``. Offsets for
        KV-cache decoding are passed here (e.g. ``arange(L) + start``). The
        reference also takes ``(..., L)`` positions broadcastable to
        ``x.shape[:-1]`` (one offset per sequence of a padded batch); the
        contract passes ``(L,)``.
    base : float
        Finite, ``> 0``; 10000 in the paper.
    rotary_dim : int, optional
        Partial rotation: only the first ``rotary_dim`` coordinates (even,
        ``2 <= rotary_dim <= d``) rotate, with the frequencies of a
        ``rotary_dim``-wide embedding ``base^(-2i / rotary_dim)``; the others
        pass through unchanged (GPT-NeoX's ``rotary_pct``). Default: all ``d``.
    position_scale : float
        Linear position interpolation: positions are divided by it (``> 0``,
        finite; 1 is plain RoPE), so a model trained on ``L`` positions reads
        ``s L`` (Chen et al. 2023).

    Returns
    -------
    numpy.ndarray, shape (..., L, d)
        Same dtype as ``x``: positions are coordinates, not data, and do not
        affect the output dtype. Angles are computed in float64 first.

    References
    ----------
    Su et al. 2021, RoFormer: Enhanced Transformer with Rotary Position
    Embedding, §3.2 (eqs. 13-16), §3.4.2 (eq. 34, efficient realisation).
    Chen et al. 2023, Extending Context Window of Large Language Models via
    Positional Interpolation (positions m scaled to m L / L').
    """
    x = as_float_array(x, "x", ndim_min=2)
    length, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(
            f"x: expected an even last dim (pairs of coordinates), got shape {x.shape}")
    r = d if rotary_dim is None else check_positive_int(rotary_dim, "rotary_dim", minimum=2)
    if r % 2 or r > d:
        raise ValueError(f"rotary_dim: expected an even number in [2, {d}] (the last dim of x), "
                         f"got {rotary_dim}")
    scale = _check_real(position_scale, "position_scale")
    if scale <= 0:
        raise ValueError(f"position_scale: expected a positive number, got {position_scale!r}")
    theta = rope_frequencies(r, base=base)                        # (r/2,)
    if positions is None:
        pos = np.arange(length, dtype=np.float64)                 # (L,)
    else:
        pos = as_float_array(positions, "positions", ndim_min=1).astype(np.float64)
        check_dim(pos, -1, length, "positions", "sequence length L of x")
        try:
            np.broadcast_shapes(pos.shape, x.shape[:-1])
        except ValueError:
            raise ValueError(f"positions: expected a shape broadcastable to {x.shape[:-1]} "
                             f"(the leading dims of x), got {pos.shape}") from None

    angles = (pos / scale)[..., None] * theta                     # (..., L, r/2)
    cos = np.cos(angles).astype(x.dtype)                          # (..., L, r/2)
    sin = np.sin(angles).astype(x.dtype)                          # (..., L, r/2)
    x_even, x_odd = x[..., 0:r:2], x[..., 1:r:2]                  # (..., L, r/2) each
    out = x.copy()                                                # (..., L, d): tail passes
    out[..., 0:r:2] = x_even * cos - x_odd * sin
    out[..., 1:r:2] = x_even * sin + x_odd * cos
    return out


# ---------------------------------------------------------------------------
# ALiBi (Press, Smith & Lewis 2022)
# ---------------------------------------------------------------------------

def _alibi_slopes_power_of_two(n: int) -> np.ndarray:
    """The geometric sequence ``2^(-8/n), 2^(-16/n), ..., 2^(-8)`` (``n`` a power of 2)."""
    return 2.0 ** (-8.0 * np.arange(1, n + 1) / n)                # (n,)


def alibi_slopes(n_heads: int) -> np.ndarray:
    """Per-head ALiBi slopes ``m_h``.

    For ``n`` a power of two: the geometric sequence whose first term and
    ratio are both ``2^(-8/n)``, i.e. ``m_h = 2^(-8 (h+1) / n)``; for 8 heads
    ``1/2, 1/4, ..., 1/256``. For other ``n``: the slopes of the closest power
    of two below, ``m = 2^floor(log2 n)``, followed by the first ``n - m``
    of every other slope (``0, 2, 4, ...``) of ``2m`` heads — the recipe of the
    authors' reference code, which interleaves new slopes between the old ones.

    Parameters
    ----------
    n_heads : int
        Number of heads ``H`` (>= 1).

    Returns
    -------
    numpy.ndarray, shape (H,), float64
        All in ``(0, 1)``.

    References
    ----------
    Press, Smith & Lewis 2022, Train Short, Test Long: Attention with Linear
    Biases Enables Input Length Extrapolation, §3 (and the non-power-of-two
    rule of the authors' released ``get_slopes``).
    """
    n_heads = check_positive_int(n_heads, "n_heads")
    m = 1 << (n_heads.bit_length() - 1)                           # largest power of 2 <= H
    slopes = _alibi_slopes_power_of_two(m)                        # (m,)
    if m == n_heads:
        return slopes
    extra = _alibi_slopes_power_of_two(2 * m)[0::2][: n_heads - m]  # (H - m,)
    return np.concatenate([slopes, extra])                        # (H,)


def alibi_bias(n_heads: int, lq: int, lk: int, *,
               causal_alignment: str = "bottom-right", dtype=np.float64) -> np.ndarray:
    """The ALiBi attention-logit bias ``-m_h * |i_abs - j|``.

    Query row ``i`` has absolute position ``i_abs = i + (lk - lq)`` with
    ``causal_alignment="bottom-right"`` (the last query sits at the last key,
    as in KV-cache decoding) or ``i_abs = i`` with ``"top-left"``. Key ``j``
    sits at position ``j``. For the keys a causal query sees, ``j <= i_abs``,
    the bias is the paper's ``-m_h (i_abs - j)``. For ``j > i_abs`` (keys a
    causal mask removes anyway) this function uses the symmetric extension
    ``-m_h |i_abs - j|``, so the bias is also usable without a causal mask
    (bidirectional ALiBi); it never rewards distance.

    The bias is added to the scaled scores before the softmax; it is not a
    mask, and a causal mask must still be applied separately.

    Parameters
    ----------
    n_heads : int
        Number of heads ``H`` (>= 1); slopes from :func:`alibi_slopes`.
    lq : int
        Number of queries ``Lq`` (>= 1).
    lk : int
        Number of keys ``Lk`` (>= 1).
    causal_alignment : {"bottom-right", "top-left"}
    dtype : float32 or float64
        Output dtype (default float64); computed in float64 and cast.

    Returns
    -------
    numpy.ndarray, shape (H, Lq, Lk)
        Non-positive; zero exactly where ``j == i_abs``.

    References
    ----------
    Press, Smith & Lewis 2022, Train Short, Test Long, §3 (Figure 3: the bias
    ``m * [-(i-1), ..., -2, -1, 0]`` added to ``q_i K^T``).
    """
    n_heads = check_positive_int(n_heads, "n_heads")
    lq = check_positive_int(lq, "lq")
    lk = check_positive_int(lk, "lk")
    check_choice(causal_alignment, "causal_alignment", ("bottom-right", "top-left"))
    dt = check_float_dtype(dtype)
    offset = lk - lq if causal_alignment == "bottom-right" else 0
    i_abs = np.arange(lq) + offset                                # (Lq,)
    j = np.arange(lk)                                             # (Lk,)
    neg_distance = -np.abs(i_abs[:, None] - j[None, :])           # (Lq, Lk), ints <= 0
    slopes = alibi_slopes(n_heads)                                # (H,)
    bias = slopes[:, None, None] * neg_distance[None, :, :]       # (H, Lq, Lk)
    return bias.astype(dt, copy=False)
