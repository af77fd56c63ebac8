"""Mutants of the positional encodings: bugs seen in real sinusoidal, one-hot,
RoPE and ALiBi code.

``sinusoidal_sin_cos_swapped``, ``sinusoidal_exponent_without_two`` and
``rope_ignores_positions`` are also loaded by target
(``mutants.positional:rope_ignores_positions --as rope``) and run through ``check``.
"""

from __future__ import annotations

import numpy as np

from mutants import Mutant, replacing


def _angles(n_positions, d_model, exponent):
    p = np.arange(n_positions, dtype=np.float64)                  # (N,)
    i = np.arange(d_model // 2, dtype=np.float64)                 # (d/2,)
    return p[:, None] / 10000.0 ** exponent(i, d_model)           # (N, d/2)


def _interleave(even, odd):
    out = np.empty((even.shape[0], 2 * even.shape[1]))            # (N, d)
    out[:, 0::2], out[:, 1::2] = even, odd
    return out


def sinusoidal_sin_cos_swapped(n_positions, d_model, **kw):
    """cos at even and sin at odd coordinates."""
    a = _angles(n_positions, d_model, lambda i, d: 2 * i / d)
    return _interleave(np.cos(a), np.sin(a))


def sinusoidal_exponent_without_two(n_positions, d_model, **kw):
    """10000^(i/d) instead of 10000^(2i/d): the frequencies only reach 10000^(-1/2)."""
    a = _angles(n_positions, d_model, lambda i, d: i / d)
    return _interleave(np.sin(a), np.cos(a))


def sinusoidal_cos_off_by_one(n_positions, d_model, **kw):
    """The cos column of pair i uses the frequency of pair i + 1 (an index off by one)."""
    a = _angles(n_positions, d_model, lambda i, d: 2 * i / d)
    a_next = _angles(n_positions, d_model, lambda i, d: 2 * (i + 1) / d)
    return _interleave(np.sin(a), np.cos(a_next))


def sinusoidal_raw_angles(n_positions, d_model, **kw):
    """The angle table p / 10000^(2i/d) returned without applying sin and cos."""
    a = _angles(n_positions, d_model, lambda i, d: 2 * i / d)
    return _interleave(a, a)


def one_hot_from_one(n_positions, d_model, **kw):
    """Positions counted from 1: row p is e_{p+1} (np.eye(N, d, k=1))."""
    return np.eye(n_positions, d_model, k=1)


def rope_sign_error(x, positions=None, *, base=10000.0):
    """The second output of each pair uses -sin: [[c, -s], [-s, c]], not a rotation."""
    x = np.asarray(x)
    length, d = x.shape[-2], x.shape[-1]
    pos = np.arange(length, dtype=np.float64) if positions is None else np.asarray(
        positions, dtype=np.float64)
    theta = base ** (-2.0 * np.arange(d // 2) / d)                # (d/2,)
    angles = pos[:, None] * theta[None, :]                        # (L, d/2)
    cos, sin = np.cos(angles).astype(x.dtype), np.sin(angles).astype(x.dtype)
    out = np.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
    out[..., 1::2] = -x[..., 0::2] * sin + x[..., 1::2] * cos
    return out


def rope_split_halves(x, positions=None, *, base=10000.0):
    """GPT-NeoX rotate_half pairing (i, i + d/2), undeclared: a correct RoPE of the other
    layout, which the contract's interleaved definition rejects (diagnosis: rope_pairing)."""
    from transformer_theory.impl.positional import rope

    x = np.asarray(x)
    d = x.shape[-1]
    perm = np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])
    return rope(x[..., np.argsort(perm)], positions, base=base)[..., perm]


def rope_ignores_positions(x, positions=None, *, base=10000.0):
    """Rotates row l by angle l * theta whatever positions are passed (breaks with a KV cache)."""
    x = np.asarray(x)
    d = x.shape[-1]
    pos = np.arange(x.shape[-2], dtype=np.float64)[:, None]        # positions argument ignored
    theta = base ** (-2.0 * np.arange(d // 2) / d)
    a = pos * theta                                                 # (L, d/2)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * np.cos(a) - odd * np.sin(a)
    out[..., 1::2] = even * np.sin(a) + odd * np.cos(a)
    return out


def _rope_variant(bug: str):
    """The reference rope with rotary_dim or position_scale handled wrongly in one way."""
    from transformer_theory.impl.positional import rope

    def broken(x, positions=None, *, base=10000.0, rotary_dim=None, position_scale=1.0):
        x = np.asarray(x)
        pos = np.arange(x.shape[-2], dtype=np.float64) if positions is None else \
            np.asarray(positions, dtype=np.float64)
        if bug == "scale_multiplies":              # m * s instead of m / s
            return rope(x, pos * position_scale, base=base, rotary_dim=rotary_dim)
        r = x.shape[-1] if rotary_dim is None else rotary_dim
        if bug == "rotates_all":                    # rotary_dim ignored
            return rope(x, pos / position_scale, base=base)
        # "full_width_frequencies": the first r coordinates with the frequencies of all d
        full = rope(x, pos / position_scale, base=base)
        out = x.copy()
        out[..., :r] = full[..., :r]
        return out
    return broken


def make_alibi_length_normalised(ref):
    def alibi_length_normalised(n_heads, lq, lk, **kw):
        """The distance penalty divided by the key length: depends on the window."""
        return ref.alibi_bias(n_heads, lq, lk, **kw) / lk
    return alibi_length_normalised


def _alibi_with_slopes(slopes_of):
    """An alibi_bias -m_h |i_abs - j| (bottom-right) with the slopes ``slopes_of(H)``."""
    def alibi_bias(n_heads, lq, lk, **kw):
        i = np.arange(lq)[:, None] + (lk - lq)
        j = np.arange(lk)[None, :]
        m = np.asarray(slopes_of(n_heads), dtype=np.float64)[:, None, None]   # (H, 1, 1)
        return -m * np.abs(i - j)                                             # (H, Lq, Lk)
    return alibi_bias


def _geometric_for_any_h(n):
    """2^(-8 (h+1) / H) for every H: right for powers of two only."""
    return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]


def _odd_interleave(n):
    """The non-power-of-two rule with the odd slopes (1, 3, 5, ...) of 2c heads."""
    c = 1 << (n.bit_length() - 1)
    base = [2.0 ** (-8.0 * (h + 1) / c) for h in range(c)]
    twice = [2.0 ** (-8.0 * (h + 1) / (2 * c)) for h in range(2 * c)]
    return base + ([] if c == n else twice[1::2][: n - c])


def _alibi_unsigned_ahead(ref):
    def alibi_bias(n_heads, lq, lk, **kw):
        """The paper's line -m (i - j) continued ahead of the query: +m (j - i) there."""
        out = np.asarray(ref.alibi_bias(n_heads, lq, lk, **kw))
        offset = lk - lq if kw.get("causal_alignment", "bottom-right") == "bottom-right" else 0
        ahead = np.arange(lk)[None, :] > np.arange(lq)[:, None] + offset
        return np.where(ahead, -out, out)
    return ref.replace(alibi_bias=alibi_bias)


MUTANTS = [
    Mutant("alibi_linear_undeclared", "ALiBi rewarding keys ahead of the query (+m (j - i)), "
                                      "undeclared",
           ("positional.alibi_bias_definition",), _alibi_unsigned_ahead),
    Mutant("alibi_geometric_for_any_h", "ALiBi slopes 2^(-8(h+1)/H) also for H not a power of 2",
           ("positional.alibi_slopes_official",),
           replacing(alibi_bias=_alibi_with_slopes(_geometric_for_any_h))),
    Mutant("alibi_odd_interleave", "non-power-of-two slopes taken from the odd heads of 2c",
           ("positional.alibi_slopes_official",),
           replacing(alibi_bias=_alibi_with_slopes(_odd_interleave))),
    Mutant("sinusoidal_sin_cos_swapped", "cos at even and sin at odd coordinates",
           claims=("positional.sinusoidal_definition",),
           build=replacing(sinusoidal_encoding=sinusoidal_sin_cos_swapped),
           target="mutants.positional:sinusoidal_sin_cos_swapped",
           as_kind="sinusoidal_encoding", check_claims="positional.*"),
    Mutant("sinusoidal_exponent_without_two", "frequencies 10000^(-i/d) instead of 10000^(-2i/d)",
           claims=("positional.sinusoidal_definition",),
           build=replacing(sinusoidal_encoding=sinusoidal_exponent_without_two),
           target="mutants.positional:sinusoidal_exponent_without_two",
           as_kind="sinusoidal_encoding", check_claims="positional.*"),
    Mutant("rope_ignores_positions", "RoPE rotating by the row index, ignoring the positions",
           claims=("positional.rope_relative", "positional.rope_decode_offset"),
           build=replacing(rope=rope_ignores_positions),
           target="mutants.positional:rope_ignores_positions", as_kind="rope",
           check_claims="positional.*"),
    Mutant("sinusoidal_cos_off_by_one", "cos column of pair i uses frequency i + 1",
           claims=("positional.sinusoidal_definition", "positional.sinusoidal_shift_matrix",
                   "positional.sinusoidal_dot_product_relative"),
           build=lambda ref: ref.replace(sinusoidal_encoding=sinusoidal_cos_off_by_one)),
    Mutant("sinusoidal_raw_angles", "angle table returned without sin/cos",
           claims=("positional.sinusoidal_bounded", "positional.sinusoidal_shift_matrix",
                   "positional.sinusoidal_dot_product_relative"),
           build=lambda ref: ref.replace(sinusoidal_encoding=sinusoidal_raw_angles)),
    Mutant("one_hot_from_one", "positions counted from 1 (np.eye(N, d, k=1))",
           claims=("positional.one_hot_distinguishable",),
           build=lambda ref: ref.replace(one_hot_encoding=one_hot_from_one)),
    Mutant("rope_split_halves", "GPT-NeoX pairing (i, i + d/2) where interleaved pairs are "
           "declared", claims=("positional.rope_definition", "positional.rope_pairing"),
           build=lambda ref: ref.replace(rope=rope_split_halves)),
    Mutant("rope_partial_full_width_frequencies",
           "partial rotation with the frequencies of the full width, base^(-2i/d)",
           ("positional.rope_partial_rotation",),
           replacing(rope=_rope_variant("full_width_frequencies"))),
    Mutant("rope_partial_rotates_all", "rotary_dim accepted and ignored",
           ("positional.rope_partial_rotation",), replacing(rope=_rope_variant("rotates_all"))),
    Mutant("rope_scale_multiplies", "position_scale multiplies the positions instead of dividing",
           ("positional.rope_position_interpolation",),
           replacing(rope=_rope_variant("scale_multiplies"))),
    Mutant("rope_sign_error", "second coordinate of each pair uses -sin: not a rotation",
           claims=("positional.rope_relative", "positional.rope_definition"),
           build=lambda ref: ref.replace(rope=rope_sign_error)),
    Mutant("alibi_length_normalised", "ALiBi penalty divided by the key length",
           claims=("positional.alibi_shift_invariance",),
           build=lambda ref: ref.replace(alibi_bias=make_alibi_length_normalised(ref))),
]
