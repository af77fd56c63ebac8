"""pytest set-up: Hypothesis profiles, the subjects under test, and shared fixtures.

The profile comes from ``--hypothesis-profile`` or ``TT_PROFILE`` (default
``dev``); ``make test`` uses ``ci``.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # so that `import mutants` works in every import mode

from transformer_theory.theory.profiles import get_profile, register_hypothesis_profiles  # noqa: E402

register_hypothesis_profiles()


#: The scratch cache this process made (removed at the end of the run), if any.
_SCRATCH_CACHE = pytest.StashKey[str]()


def pytest_configure(config):
    import tempfile

    from hypothesis import settings

    # the CLI's run timings (theory/progress.py) go to a scratch cache, not the user's; pytest-xdist
    # workers inherit the variable, so only the process that made the folder removes it
    if "TT_CACHE_DIR" not in os.environ:
        config.stash[_SCRATCH_CACHE] = os.environ["TT_CACHE_DIR"] = tempfile.mkdtemp(
            prefix="tt-cache-")

    chosen = config.getoption("--hypothesis-profile", default=None) or os.environ.get("TT_PROFILE")
    if chosen:
        os.environ["TT_PROFILE"] = chosen
        settings.load_profile(chosen)
    else:
        settings.load_profile("dev")


def pytest_unconfigure(config):
    import shutil

    made = config.stash.get(_SCRATCH_CACHE, None)
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)
        if os.environ.get("TT_CACHE_DIR") == made:
            del os.environ["TT_CACHE_DIR"]


@pytest.fixture(scope="session")
def profile():
    """The suite profile of this run (ci, dev or thorough)."""
    return get_profile()


@pytest.fixture(scope="session")
def reference():
    from transformer_theory.theory.builtin_subjects import reference_subject

    return reference_subject()
