"""Half precision: the contract's dtypes, the naive baseline, the error-ratio rule, and the
attentions it must accept and reject (issue 16)."""

from __future__ import annotations

import json
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

from transformer_theory.impl import attention as A
from transformer_theory.impl import layers as N
from transformer_theory.impl.contract.precision import half_dtype_of
from transformer_theory.theory import registry
from transformer_theory.theory.claim import HALF_CALLABLES, Status
from transformer_theory.theory.rounding_baseline import BASELINES, rounded
from transformer_theory.theory.runner import run_claim, run_claims
from transformer_theory.theory import checks
from transformer_theory.theory.declared import baseline_active, exact_active
from transformer_theory.theory.exact_baseline import exact
from transformer_theory.theory.tolerance import (RATIO_C, RATIO_K, eps, ratio_tolerance,
                                                 rounded_exact_tolerance)

BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)


def _qkv(dt, lq=4, lk=6, e=5, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(s).astype(dt) for s in ((2, lq, e), (2, lk, e), (2, lk, e)))


# --- the contract ---------------------------------------------------------------------------

@pytest.mark.parametrize("dt", [F16, BF16])
def test_reference_keeps_half_dtypes_and_is_close(dt):
    q, k, v = _qkv(dt)
    out = A.attention(q, k, v, causal=True)
    assert out.dtype == dt
    exact = A.attention(*(a.astype(np.float64) for a in (q, k, v)), causal=True)
    assert np.max(np.abs(out.astype(np.float64) - exact)) <= eps(dt) * np.abs(exact).max()
    assert N.layer_norm(q).dtype == dt


def test_unsupported_reference_function_refuses_half_naming_the_argument():
    with pytest.raises(TypeError, match=r"^x: expected dtype float32 or float64 .*float16"):
        N.batch_norm(np.ones((3, 4), np.float16))


def test_mixing_float16_and_bfloat16_is_refused():
    q, k, v = _qkv(F16)
    with pytest.raises(TypeError, match="mix float16 and bfloat16"):
        A.attention(q, k.astype(BF16), v)
    assert half_dtype_of(q, k.astype(np.float32)) is None


# --- the naive baseline -----------------------------------------------------------------------

def test_every_half_callable_has_a_baseline():
    assert set(BASELINES) == set(HALF_CALLABLES)


def test_rounded_accumulates_in_float32_where_numpy_bfloat16_does_not():
    ones = np.ones(4096, BF16)
    assert float(ones.sum()) == 256.0                     # numpy's own bfloat16 sum
    assert float(rounded(np.sum(ones, dtype=np.float32), BF16)) == 4096.0


@pytest.mark.parametrize("dt", [F16, BF16])
def test_baseline_attention_is_naive_but_close(dt):
    q, k, v = _qkv(dt, lk=64)
    exact = A.attention(*(a.astype(np.float64) for a in (q, k, v)))
    naive = BASELINES["attention"](q, k, v).astype(np.float64)
    err = np.abs(naive - exact).max() / np.abs(exact).max()
    assert 0 < err < 16 * eps(dt)


def test_ratio_tolerance_is_k_times_baseline_plus_floor():
    tol = ratio_tolerance(F16, 1e-3)
    assert tol.rtol == pytest.approx(RATIO_K * 1e-3 + RATIO_C * eps(F16))
    assert tol.rule == "ratio" and "error-ratio rule" in tol.reason
    with pytest.raises(ValueError, match="baseline_error"):
        ratio_tolerance(F16, float("nan"))


def test_rounded_exact_tolerance_is_exact_error_plus_three_unit_roundoffs():
    u = eps(F16) / 2
    tol = rounded_exact_tolerance(F16, 1e-4)
    assert tol.rtol == pytest.approx(1e-4 + 3 * u)
    assert tol.rule == "rounded-exact" and "float64 reference" in tol.reason
    with pytest.raises(ValueError, match="exact_error"):
        rounded_exact_tolerance(F16, float("inf"))
    assert rounded_exact_tolerance(F16, 0.0, 2.5).rtol == pytest.approx(3.5 * u)
    with pytest.raises(ValueError, match="outputs"):
        rounded_exact_tolerance(F16, 0.0, -1.0)


def test_layernorm_output_roundings_bound_the_rounding_of_two_compared_rows():
    """Two LN outputs of one row, each rounded once to float16, differ in conditioned units
    by at most u times output_roundings (exact values equal); it is at most 2 per output
    and exceeds the fixed count 2 on a row whose mean opposes its largest entry."""
    from transformer_theory.theory.claims.normalization import output_roundings, row_condition
    u = eps(F16) / 2
    rng = np.random.default_rng(7)
    worst = 0.0
    for _ in range(200):
        h = rng.standard_normal((3, 9)) + rng.uniform(-3, 3, size=(3, 1))    # (R, E)
        y = N.layer_norm(h, eps=0.0)                                         # (R, E) float64
        kappa = row_condition(h)                                             # (R,)
        # two implementations whose float64 outputs differ by far less than u, each rounded
        ya = y.astype(F16).astype(np.float64)
        yb = (y * (1 + 1e-9)).astype(F16).astype(np.float64)
        w = output_roundings(kappa, ya, yb)
        assert w <= 4.0 + 1e-12
        moved = np.max(np.max(np.abs(ya - yb), axis=-1) / np.maximum(kappa, 1.0))
        assert moved <= w * u * (1 + 1e-3)
        worst = max(worst, w)
    h = np.array([[-1.0, -1.0, -1.0, 2.0]])     # mean -0.25 against the largest entry 2
    y = N.layer_norm(h, eps=0.0)
    assert output_roundings(row_condition(h), y, y) == pytest.approx(2 * 2.25 / 2.0)
    assert worst > 2.0


def _three_way(subject: float, naive: float, perfect: float):
    """A measure whose error is ``naive`` under the naive baseline, ``perfect`` under the
    exact one and ``subject`` otherwise (in units of float16's unit roundoff)."""
    u = eps(F16) / 2
    own = ratio_tolerance(F16, 0.0)

    def measure(case):
        error = perfect if exact_active() else naive if baseline_active() else subject
        return checks.Measurement(error * u, own)
    return checks._with_ratio_rule(measure, F16)


def test_a_lucky_naive_baseline_gives_way_to_the_rounded_exact_bound():
    """An invariance whose naive roundings cancel (naive error 0.1 u) must not fail an
    implementation that rounds only its outputs (2 u from an exact 0.5 u): the exact baseline's
    bound, 0.5 u + 3 u, is the larger and holds; the ratio rule alone (0.2 u + 2 u) would not."""
    m = _three_way(subject=2.8, naive=0.1, perfect=0.5)((1,))
    assert m.tolerance.rule == "rounded-exact" and m.ok
    assert m.baseline == pytest.approx(0.1 * eps(F16) / 2)
    worse = _three_way(subject=4.0, naive=0.1, perfect=0.5)((1,))  # past what rounding explains
    assert not worse.ok


def test_a_worse_naive_baseline_keeps_the_ratio_rule():
    m = _three_way(subject=3.0, naive=3.0, perfect=0.5)((1,))
    assert m.tolerance.rule == "ratio"


def test_the_exact_baseline_is_the_float64_reference_on_the_rounded_inputs():
    q, k, v = _qkv(F16)
    perfect = exact(A.attention)(q, k, v)
    assert perfect.dtype == np.float64
    np.testing.assert_array_equal(perfect, A.attention(*(a.astype(np.float64) for a in (q, k, v))))


# --- accepted and rejected attentions -----------------------------------------------------------

def native_float16_attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    """A correct kernel computing natively in float16 with the maximum subtracted.

    Every intermediate is a float16 array; products and sums accumulate in float32 (as
    tensor cores do) and are rounded once, the scale applied to the float32 scores before
    that rounding (as FlashAttention does). (Scaling q in float16 before the product
    instead is 3.4 times the naive error at scale 4: the rule rejects it.)
    """
    from transformer_theory.impl.contract import allowed_keys
    dt, f32 = q.dtype, np.float32
    s = np.matmul(q, np.swapaxes(k, -1, -2), dtype=f32)                        # (..., Lq, Lk)
    s = (s * f32(1 / np.sqrt(q.shape[-1]) if scale is None else scale)).astype(dt)
    if bias is not None:
        s = s + bias.astype(dt)
    allowed = allowed_keys(mask, causal, q.shape[:-2], q.shape[-2], k.shape[-2])
    if allowed is not None:
        s = np.where(allowed, s, dt.type(-np.inf))
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, dt.type(0)))                   # float16
    z = e.sum(axis=-1, keepdims=True, dtype=f32).astype(dt)
    p = np.where(z > 0, e / np.where(z > 0, z, dt.type(1)), dt.type(0))
    return np.matmul(p, np.where(np.isfinite(v), v, dt.type(0)), dtype=f32).astype(dt)


ATTENTION_HALF_CLAIMS = [c for c in registry.all_claims()
                         if c.needs == ("attention",) and "float16" in c.dtypes]


def test_a_native_float16_attention_passes_every_half_claim(reference):
    subject = reference.replace(attention=native_float16_attention).with_options(
        dtypes="float16")
    results = [run_claim(c, subject, profile="ci", dtype="float16")
               for c in ATTENTION_HALF_CLAIMS]
    bad = [(r.label, r.status.value, r.detail()) for r in results
           if r.status not in (Status.PASSED, Status.NOT_APPLICABLE)]
    assert not bad
    assert sum(r.status is Status.PASSED for r in results) >= 10


def test_run_claims_adds_half_runs_only_where_declared(reference):
    claim = registry.get("attention.scaled_dot_product")
    labels = [r.label for r in run_claims([claim], reference, profile="ci")]
    assert labels == ["attention.scaled_dot_product", "attention.scaled_dot_product[float16]",
                      "attention.scaled_dot_product[bfloat16]"]
    plain = reference.with_options(dtypes="float32,float64")
    assert [r.label for r in run_claims([claim], plain, profile="ci")] == [claim.id]
    r = run_claim(claim, plain, profile="ci", dtype="float16")
    assert r.status is Status.NOT_APPLICABLE and "does not declare float16" in r.detail()


def test_claims_without_meaning_in_half_precision_say_why(reference):
    claim = registry.get("heads.low_rank_logits")
    assert claim.dtypes == ("float64", "float32")
    r = run_claim(claim, reference, profile="ci", dtype="bfloat16")
    assert r.status is Status.NOT_APPLICABLE and "SVD" in r.detail()


def test_list_json_gives_each_claim_its_dtypes():
    out = subprocess.run([sys.executable, "-m", "transformer_theory.theory.cli", "list", "--json"],
                         capture_output=True, text=True, check=True).stdout
    claims = {c["id"]: c for c in json.loads(out)["claims"]}
    assert claims["attention.scaled_dot_product"]["dtypes"] == [
        "float64", "float32", "float16", "bfloat16"]
    assert claims["heads.low_rank_logits"]["dtypes"] == ["float64", "float32"]
    assert "SVD" in claims["heads.low_rank_logits"]["half_precision"]
    assert all("dtypes" in c for c in claims.values())


def test_torch_bfloat16_round_trip_is_exact():
    pytest.importorskip("torch")
    from transformer_theory.impl.adapters._torch_common import to_numpy, to_tensor
    x = np.random.default_rng(0).standard_normal(100).astype(BF16)
    back = to_numpy(to_tensor(x, BF16), BF16)
    assert back.dtype == BF16 and np.array_equal(back.view(np.uint16), x.view(np.uint16))


def test_loader_runs_a_module_in_the_half_dtype_of_its_input():
    torch = pytest.importorskip("torch")
    from transformer_theory.theory.loader import _framework_wrapper
    module = torch.nn.Linear(4, 3)                      # float32 parameters
    f = _framework_wrapper(module, "torch")
    x = np.random.default_rng(0).standard_normal((2, 4))
    for dt in (F16, BF16):
        assert f(x.astype(dt)).dtype == dt             # not silently float32
    assert f(x.astype(np.float32)).dtype == np.float32
    assert module.weight.dtype == torch.float32        # the user's module is not changed


def test_report_shows_half_precision_runs(tmp_path):
    from transformer_theory.theory.report import build_report
    from transformer_theory.theory.builtin_subjects import get_subject
    claims = [registry.get("precision.large_values_survive")]
    out = build_report(tmp_path, claims=claims, subjects=[get_subject("reference")],
                       profile="ci", show_progress=False)
    doc = out.doc
    assert out.exit_code == 0
    [rec] = doc["claims"]
    runs = rec["half_precision_results"]["reference"]
    assert set(runs) == {"float16", "bfloat16"}
    assert all(r["status"] == "passed" and 0 < r["error_ratio"] <= RATIO_K
               for r in runs.values())
    page = (tmp_path / "index.html").read_text()
    assert "float16 · bfloat16 (error ratio)" in page and 'id="fig-half-precision"' in page


def test_cache_roundings_bound_a_kv_cache_held_in_half_precision():
    """masking.kv_cache_equals_full: keys and values rounded once to float16 (the cache's
    dtype), everything else exact, move the causal output by at most u * cache_roundings of
    its largest entry."""
    from transformer_theory.impl.attention import init_multi_head
    from transformer_theory.theory.claims._common import definition_attention, definition_mha
    from transformer_theory.theory.claims.masking import cache_roundings

    u = eps(F16) / 2
    rng = np.random.default_rng(3)
    worst = 0.0
    for _ in range(40):
        e, h, length = int(rng.choice([4, 6, 8])), int(rng.integers(1, 4)), int(rng.integers(1, 9))
        while e % h:
            h -= 1
        params = init_multi_head(e, h, rng, dtype=F16)
        x = rng.standard_normal((1, length, e)).astype(F16)
        exact = definition_mha(x, x, params, causal=True)                  # (1, L, E)
        f64 = (lambda a: np.asarray(a, dtype=np.float64))
        heads = []
        for i in range(h):
            q, k, v = (f64(x) @ f64(w)[i] + (0.0 if b is None else f64(b)[i])
                       for w, b in ((params.w_q, params.b_q), (params.w_k, params.b_k),
                                    (params.w_v, params.b_v)))
            k, v = (a.astype(F16).astype(np.float64) for a in (k, v))      # the cache's rounding
            heads.append(definition_attention(q, k, v, causal=True)[0])
        cached = np.concatenate(heads, axis=-1) @ f64(params.w_o) + (
            0.0 if params.b_o is None else f64(params.b_o))
        moved = float(np.max(np.abs(cached - exact))) / float(np.max(np.abs(exact)))
        bound = u * cache_roundings(x, params)
        assert moved <= bound * (1 + 1e-6) + 1e-12
        worst = max(worst, moved / bound)
    assert worst > 0.05                      # the bound is not vacuous
