"""Hypothesis strategies with named dimensions.

Conventions (DESIGN.md, "Randomness"): shapes, dtypes and a numpy seed are
drawn by Hypothesis; array values are generated in numpy from that seed
(``np.random.default_rng(seed)``) or by ``hypothesis.extra.numpy`` where the
values themselves should shrink (extreme logits). Inputs are never produced by
the subject under test.

Every case is a ``dict`` so that a falsifying example prints with its names.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .declared import choose_dtype, value_dim_equal

# --- shared draws -----------------------------------------------------------
#: Floating dtypes of the contract, restricted to those the subject under test declares
#: (option ``dtypes``): a draw it does not accept becomes the first one it does.
DTYPES = st.sampled_from([np.dtype(np.float64), np.dtype(np.float32)]).map(choose_dtype)
#: A numpy seed.
SEEDS = st.integers(0, 2**32 - 1)
#: Magnitude of generated values (logit scale grows with its square).
SCALES = st.sampled_from([0.1, 1.0, 3.0])


def normal(rng: np.random.Generator, shape, dtype=np.float64, scale: float = 1.0) -> np.ndarray:
    """Standard normal values times ``scale``, in ``dtype``."""
    return (scale * rng.standard_normal(shape)).astype(dtype)


def leading_dims(max_rank: int = 2) -> st.SearchStrategy[tuple]:
    """Leading (batch, head) dims: () up to ``max_rank`` dims of size 1..3."""
    return st.lists(st.integers(1, 3), min_size=0, max_size=max_rank).map(tuple)


def dtype_seed_rng(draw, dtype=None) -> tuple[np.dtype, int, np.random.Generator]:
    """Draw a dtype (unless ``dtype`` is given) then a seed; also the seed's generator.

    A plain function called inside a composite strategy with that strategy's
    ``draw``: it adds the same two draws, in the same order, as writing them out.

    Returns
    -------
    (dtype, seed, numpy.random.Generator)
    """
    dt = draw(DTYPES) if dtype is None else np.dtype(dtype)
    seed = draw(SEEDS)
    return dt, seed, np.random.default_rng(seed)


@st.composite
def attention_case(draw, *, dtype=None, lead=None, self_attention: bool = False,
                   max_seq: int = 12, max_embed: int = 16, min_seq: int = 1) -> dict:
    """A (q, k, v) triple following the contract's shapes.

    Returns a dict with ``q (..., Lq, E)``, ``k (..., Lk, E)``, ``v (..., Lk, Ev)``,
    the drawn dims, dtype and seed.
    """
    lead = draw(leading_dims()) if lead is None else lead
    lq = draw(st.integers(min_seq, max_seq))
    lk = lq if self_attention else draw(st.integers(min_seq, max_seq))
    e = draw(st.integers(1, max_embed))
    ev = e if value_dim_equal() else draw(st.integers(1, max_embed))
    dt, seed, rng = dtype_seed_rng(draw, dtype)
    scale = draw(SCALES)
    return {
        "lead": lead, "Lq": lq, "Lk": lk, "E": e, "Ev": ev, "dtype": dt, "seed": seed,
        "scale": scale,
        "q": normal(rng, (*lead, lq, e), dt, scale),
        "k": normal(rng, (*lead, lk, e), dt, scale),
        "v": normal(rng, (*lead, lk, ev), dt),
    }


def random_mask(rng: np.random.Generator, shape, p_true: float = 0.7) -> np.ndarray:
    """A boolean mask, True = may attend, each entry True with probability ``p_true``."""
    return rng.random(shape) < p_true


@st.composite
def sequence_case(draw, width: int, *, min_batch: int = 1, max_batch: int = 3,
                  min_seq: int = 1, max_seq: int = 8) -> dict:
    """A batch of sequences ``x (B, L, E)`` of a fixed width, and a permutation of L.

    Draws B, L, the dtype and the seed; ``x`` is standard normal and ``perm``
    a permutation of ``range(L)``, both from the seed's generator (in that order).
    """
    b = draw(st.integers(min_batch, max_batch))
    length = draw(st.integers(min_seq, max_seq))
    dt, seed, rng = dtype_seed_rng(draw)
    return {"B": b, "L": length, "E": width, "dtype": dt, "seed": seed,
            "x": normal(rng, (b, length, width), dt), "perm": rng.permutation(length)}


def logits(shape_strategy=None, *, bound: float = 1e4, dtype=np.float32) -> st.SearchStrategy:
    """Finite logits up to ``bound`` in magnitude, drawn value by value (they shrink)."""
    shape_strategy = shape_strategy or hnp.array_shapes(min_dims=1, max_dims=3, max_side=8)
    elements = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=32)
    return hnp.arrays(dtype, shape_strategy, elements=elements)
