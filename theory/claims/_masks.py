"""Masks the claims draw for a case: random padding with one query row fully masked."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..strategies import random_mask


def mask_with_dead_row(case: dict, data, seed_offset: int) -> tuple[np.ndarray, int]:
    """A random ``(*lead, Lq, Lk)`` mask with one drawn query row set all False.

    Parameters
    ----------
    case : dict
        An :func:`~transformer_theory.theory.strategies.attention_case` draw
        (reads ``seed``, ``lead``, ``Lq``, ``Lk``).
    data : hypothesis ``st.data()`` object
        Draws the masked row (label ``"masked_row"``), so that Hypothesis
        shrinks and reports it.
    seed_offset : int
        Added to the case's seed for the mask's random generator (each claim
        keeps its own stream).

    Returns
    -------
    mask : np.ndarray of bool, (*lead, Lq, Lk)
    dead : int
        The fully masked query row.
    """
    rng = np.random.default_rng(case["seed"] + seed_offset)
    mask = random_mask(rng, (*case["lead"], case["Lq"], case["Lk"]))
    dead = data.draw(st.integers(0, case["Lq"] - 1), label="masked_row")
    mask[..., dead, :] = False
    return mask, dead
