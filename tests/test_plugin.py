"""The pytest11 plugin, run the way a user runs it: in a subprocess, from a
temporary project that only has transformer-theory installed (no conftest, no
tests of this repository on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

PLUGIN = "transformer_theory.theory.pytest_plugin"

GOOD = '''
import numpy as np

def attention(q, k, v, *, mask=None, causal=False, scale=None):
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    lq, lk = s.shape[-2:]
    allowed = np.ones(s.shape, dtype=bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask, s.shape)
    if causal:
        offset = lk - lq if causal == "bottom-right" else 0
        allowed &= np.tril(np.ones((lq, lk), dtype=bool), k=offset)
    s = np.where(allowed, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0.0))
    z = e.sum(axis=-1, keepdims=True)
    return (np.divide(e, z, out=np.zeros_like(e), where=z > 0) @ v).astype(q.dtype)

def unscaled(q, k, v, *, mask=None, causal=False, scale=None):
    return attention(q, k, v, mask=mask, causal=causal, scale=1.0 if scale is None else scale)
'''


def _entry_point_installed() -> bool:
    return any(ep.value == PLUGIN for ep in metadata.entry_points(group="pytest11"))


@pytest.fixture
def project(tmp_path):
    """A fresh project: one module of the user's, one ordinary test, nothing else."""
    (tmp_path / "my_attn.py").write_text(textwrap.dedent(GOOD))
    (tmp_path / "test_mine.py").write_text("def test_ordinary():\n    assert 1 + 1 == 2\n")
    return tmp_path


def run_pytest(project, *args):
    # Load the plugin through its entry point when the package declares it; until the
    # pyproject entry point is installed, name it with -p (the same module either way).
    plugin = [] if _entry_point_installed() else ["-p", PLUGIN]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TT_PROFILE")}
    env["PYTHONPATH"] = str(project)
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir",
           str(project), *plugin, *args]
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=600)


def test_plugin_generates_one_test_per_claim_with_claim_ids(project):
    done = run_pytest(project, "--tt-subject", "my_attn:attention", "--tt-as", "attention",
                      "--tt-claims", "attention.*", "--tt-profile", "ci", "--collect-only")
    assert done.returncode == 0, done.stdout + done.stderr
    ids = [line.split("::")[-1] for line in done.stdout.splitlines() if "::" in line]
    assert "attention.scaled_dot_product" in ids and "attention.explicit_scale" in ids
    assert all(i.startswith("attention.") or i == "test_ordinary" for i in ids)


def test_plugin_passes_a_correct_implementation(project):
    done = run_pytest(project, "--tt-subject", "my_attn:attention", "--tt-as", "attention",
                      "--tt-claims", "attention.scaled_dot_product,masking.causal*",
                      "--tt-profile", "ci")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout           # three claims and the ordinary test


def test_plugin_reports_the_failing_claim_with_example_and_reproduction(project):
    done = run_pytest(project, "--tt-subject", "my_attn:unscaled", "--tt-as", "attention",
                      "--tt-claims", "attention.scaled_dot_product", "--tt-profile", "ci",
                      "-k", "scaled_dot_product")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "attention.scaled_dot_product" in done.stdout
    assert "smallest falsifying example" in done.stdout
    assert "load_subject('my_attn:unscaled', as_kind='attention')" in done.stdout


def test_plugin_is_inert_without_tt_subject(project):
    done = run_pytest(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "transformer-theory" not in done.stdout


def test_plugin_bad_target_is_a_usage_error(project):
    done = run_pytest(project, "--tt-subject", "nowhere_xyz:f", "--tt-as", "attention")
    assert done.returncode == 4                  # pytest's usage-error status
    assert "cannot import 'nowhere_xyz'" in done.stderr
