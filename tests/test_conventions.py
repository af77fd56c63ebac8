"""Declared conventions are honoured by every claim (issue 14).

The reference attention, changed only as a convention allows, passes every
applicable claim once the convention is declared; its *mutant twin* (the same
code, undeclared) fails, and the failure carries the diagnosis that names the
missing declaration. Also: bad options exit 2, capabilities are probed, the
interface options (causal_flag, rename, scale, value_dim, gqa_self,
rope_positions, rope_pairing, feature stabiliser/eps/kinds) adapt real API
shapes, and every target form (callable, mapping, Subject) gets the same
treatment.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

from transformer_theory.impl import attention as A
from transformer_theory.impl import performer as F
from transformer_theory.impl import positional as P
from transformer_theory.impl.contract.conventions import OPTION_TABLE, validate_options
from transformer_theory.theory import cli
from transformer_theory.theory.conformance import TargetError, check, load_subject
from transformer_theory.theory.conventions import dead_query_rows
from transformer_theory.theory.subject import Subject

THIS = __name__


# ---------------------------------------------------------------------------
# The reference attention, changed only as each convention allows
# ---------------------------------------------------------------------------

def _dead(q, k, mask, causal):
    return dead_query_rows(np.shape(q)[-2], np.shape(k)[-2], mask, causal)


def attention_nan(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    """PyTorch's math kernel: a fully masked row is NaN."""
    out = A.attention(q, k, v, mask=mask, causal=causal, scale=scale, bias=bias).copy()
    out[np.broadcast_to(_dead(q, k, mask, causal), out.shape[:-1])] = np.nan
    return out


def attention_uniform(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    """JAX's finite mask value: a fully masked row is the average of the values."""
    out = A.attention(q, k, v, mask=mask, causal=causal, scale=scale, bias=bias).copy()
    dead = np.broadcast_to(_dead(q, k, mask, causal), out.shape[:-1])
    mean = np.broadcast_to(np.mean(v, axis=-2, keepdims=True), out.shape)
    out[dead] = mean[dead]
    return out


def attention_bottom_right(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    """FlashAttention >= 2.1: causal=True is bottom-right aligned."""
    if causal == "bottom-right":
        raise TypeError("causal: expected a bool")
    return A.attention(q, k, v, mask=mask, causal="bottom-right" if causal else False,
                       scale=scale, bias=bias)


def attention_flash_window(q, k, v, *, mask=None, causal=False, scale=None, window=None):
    """FlashAttention's flash_attn_func: causal=True and window_size both bottom-right aligned
    (query i sees keys [i + Lk - Lq - left, i + Lk - Lq + right]), with or without causal."""
    if not isinstance(causal, bool):
        raise TypeError("causal: expected a bool")
    lq, lk = np.shape(q)[-2], np.shape(k)[-2]
    if window is not None:
        band = A.window_mask(lq, lk, window, align="bottom-right")
        mask = band if mask is None else np.asarray(mask) & band
    return A.attention(q, k, v, mask=mask, causal="bottom-right" if causal else False,
                       scale=scale)


def attention_float32(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    """keras 3 / JAX style: computes in float32, returns the input dtype."""
    dt = np.result_type(q, k, v)
    f32 = (lambda a: None if a is None else np.asarray(a, dtype=np.float32))
    return A.attention(f32(q), f32(k), f32(v), mask=mask, causal=causal, scale=scale,
                       bias=f32(bias)).astype(dt)


def attention_float32_only(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    """A float32-only kernel: refuses anything else."""
    for name, a in (("q", q), ("k", k), ("v", v)):
        if np.asarray(a).dtype != np.float32:
            raise TypeError(f"{name}: expected float32, got {np.asarray(a).dtype}")
    return A.attention(q, k, v, mask=mask, causal=causal, scale=scale, bias=bias)


def attention_returns_float32(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    """Computes in float32 and forgets to cast back (a contract break)."""
    return attention_float32(q, k, v, mask=mask, causal=causal, scale=scale,
                             bias=bias).astype(np.float32)


def attention_without_bias(q, k, v, *, mask=None, causal=False, scale=None):
    """The README's worked example: no bias keyword."""
    return A.attention(q, k, v, mask=mask, causal=causal, scale=scale)


def attention_ignoring_kwargs(q, k, v, *, mask=None, causal=False, scale=None, **kwargs):
    """Takes any keyword and silently ignores bias: a real bug the bias claims must catch."""
    return A.attention(q, k, v, mask=mask, causal=causal, scale=scale)


def attention_refusing_kwargs(q, k, v, *, mask=None, causal=False, scale=None, **kwargs):
    """Hides its keywords behind **kwargs and refuses the ones it lacks (probed by a call)."""
    if kwargs:
        raise TypeError(f"unexpected keyword argument {next(iter(kwargs))!r}")
    return A.attention(q, k, v, mask=mask, causal=causal, scale=scale)


#: variant -> (the option that declares it, claims it must pass, claims its twin fails)
VARIANTS = {
    "attention_nan": ({"fully_masked_row": "nan"}, "attention.fully_masked_row_zero",
                      {"option": "fully_masked_row", "value": "nan"}),
    "attention_uniform": ({"fully_masked_row": "uniform"}, "attention.fully_masked_row_zero",
                          {"option": "fully_masked_row", "value": "uniform"}),
    "attention_bottom_right": ({"causal_alignment": "bottom-right", "causal_flag": "bool"},
                               "masking.causal_alignment", None),
    "attention_float32": ({"compute_dtype": "float32"}, "attention.scaled_dot_product",
                          {"option": "compute_dtype", "value": "float32"}),
    "attention_float32_only": ({"dtypes": "float32"}, "attention.scaled_dot_product", None),
}

_REPORTS: dict = {}


def _report(name, options, claims=None):
    key = (name, json.dumps(options, sort_keys=True), claims)
    if key not in _REPORTS:
        _REPORTS[key] = check(f"{THIS}:{name}", claims, as_kind="attention", options=options,
                              profile="ci")
    return _REPORTS[key]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_declared_variant_passes_every_applicable_claim(name):
    options = VARIANTS[name][0]
    report = _report(name, options)
    assert report.passed, [(r.id, r.status, r.detail[:200]) for r in report.failures]
    assert len([r for r in report if r.status == "passed"]) >= 20


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_undeclared_twin_fails(name):
    _, claim, expected = VARIANTS[name]
    report = _report(name, {}, claim)
    [result] = report.results
    assert result.status in ("failed", "error"), result.detail
    if expected is not None:
        assert result.diagnosis == expected
        assert f"--option {expected['option']}={expected['value']}" in report.format_table()


def test_bottom_right_twin_is_diagnosed_when_the_flag_is_declared():
    # Declared a boolean flag but not its alignment: the diagnosis names the alignment.
    report = _report("attention_bottom_right", {"causal_flag": "bool"}, "masking.causal_alignment")
    [result] = report.results
    assert result.status == "failed"
    assert result.diagnosis == {"option": "causal_alignment", "value": "bottom-right"}
    assert result.to_json()["diagnosis"] == result.diagnosis


def test_flash_window_passes_once_its_alignment_is_declared():
    # A correct FlashAttention-style window (bottom-right even without causal) is not a
    # false alarm once declared; undeclared, the window claims fail and the diagnosis names
    # the alignment.
    declared = check(f"{THIS}:attention_flash_window", "masking.window*", as_kind="attention",
                     options={"causal_alignment": "bottom-right", "causal_flag": "bool"},
                     profile="ci")
    assert declared.passed and len(declared.results) >= 4, \
        [(r.id, r.detail[:200]) for r in declared.failures]
    twin = check(f"{THIS}:attention_flash_window", "masking.window_equals_band_mask",
                 as_kind="attention", options={"causal_flag": "bool"}, profile="ci")
    [result] = twin.results
    assert result.status == "failed", result.detail
    assert result.diagnosis == {"option": "causal_alignment", "value": "bottom-right"}


def test_float32_compute_reports_the_lowered_tolerance():
    report = _report("attention_float32", VARIANTS["attention_float32"][0])
    [sdpa] = [r for r in report if r.id == "attention.scaled_dot_product"]
    assert "held to the float32 policy" in sdpa.detail
    assert "compute_dtype=float32" in sdpa.detail


def test_float32_only_draws_only_float32():
    report = _report("attention_float32_only", {"dtypes": "float32"})
    assert report.passed
    # every claim it cannot answer is one that draws float64 (or passes an optional keyword,
    # softcap= or segment_ids=, which this attention does not take)
    na = [r for r in report if r.status == "not_applicable" and "optional keyword" not in r.detail]
    assert all("float32" in r.detail for r in na), [(r.id, r.detail) for r in na]


def test_output_dtype_is_its_own_claim():
    report = _report("attention_returns_float32", {})
    failed = sorted(r.id for r in report.failures)
    assert failed == ["contract.attention_output_dtype"], failed
    [other] = [r for r in report if r.id == "attention.scaled_dot_product"]
    assert "returned float32 for float64 input" in other.detail


def test_a_correct_attention_without_bias_passes_and_bias_claims_are_not_applicable():
    report = _report("attention_without_bias", {})
    assert report.passed, [(r.id, r.detail[:200]) for r in report.failures]
    na = {r.id: r.detail for r in report if r.status == "not_applicable"}
    assert {"positional.alibi_shift_invariance", "recurrence.linear_attention_rnn",
            "convolution.receptive_field", "convolution.conv1d_interior"} <= set(na)
    assert all("optional keyword" in d for d in na.values())
    assert all("bias" in d for k, d in na.items()
               if "softcap" not in d and "segment" not in d and "window" not in d)


def test_kwargs_signature_is_probed_by_a_call():
    report = _report("attention_refusing_kwargs", {}, "recurrence.linear_attention_rnn")
    assert [r.status for r in report] == ["not_applicable"]


def test_ignoring_bias_behind_kwargs_is_caught():
    # (ALiBi shift invariance cannot see an ignored bias: no bias is shift invariant too.)
    report = _report("attention_ignoring_kwargs", {}, "recurrence.linear_attention_rnn")
    assert [r.status for r in report] == ["failed"]


def test_declared_accepts_overrides_probing():
    report = _report("attention_ignoring_kwargs", {"accepts": "window"},
                     "recurrence.linear_attention_rnn")
    assert [r.status for r in report] == ["not_applicable"]
    assert "accepts=window" in report.results[0].detail


# ---------------------------------------------------------------------------
# Every target form gets the conventions
# ---------------------------------------------------------------------------

MAPPING_TARGET = {"attention": attention_bottom_right}


def subject_target():
    return Subject("bottom-right kernel", {"attention": attention_bottom_right},
                   {"causal_alignment": "bottom-right", "causal_flag": "bool"})


def test_a_mapping_target_gets_its_declared_conventions():
    report = check(f"{THIS}:MAPPING_TARGET", "masking.*", profile="ci",
                   options={"causal_alignment": "bottom-right", "causal_flag": "bool"})
    assert report.passed, [(r.id, r.detail[:200]) for r in report.failures]


def test_a_subject_object_gets_its_declared_conventions():
    report = check(subject_target(), "masking.*", profile="ci")
    assert report.passed, [(r.id, r.detail[:200]) for r in report.failures]


# ---------------------------------------------------------------------------
# Bad options: one line, exit 2
# ---------------------------------------------------------------------------

def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("option, message", [
    ("fully_masked_rows=nan", "unknown option; expected one of fully_masked_row"),
    ("fully_masked_row=NaN", "expected one of 'zeros', 'nan', 'uniform', got 'NaN'"),
    ("dtypes=float32,float8",
     "expected names from float32, float64, float16, bfloat16, got 'float8'"),
    ("rename=mask", "expected contract:target pairs"),
    ("rename=window:w", "expected contract keywords from"),
    ("d_model=0", "expected a positive integer"),
    ("feature_eps=-1", "expected a finite number >= 0"),
    ("causal_flag=yes", "expected one of 'contract', 'bool'"),
])
def test_bad_option_exits_2_with_the_valid_set(option, message):
    code, out, err = _cli("check", f"{THIS}:attention_nan", "--as", "attention",
                          "--option", option, "--profile", "ci", "-q")
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_every_option_is_documented_and_validates_its_default():
    for name, option in OPTION_TABLE.items():
        assert option.doc and option.category in (
            "convention", "precision", "interface", "capability", "setting")
        if option.default is not None:
            validate_options({name: option.default})


def test_subject_refuses_an_unknown_option():
    with pytest.raises(ValueError, match="fully_masked_rows"):
        Subject("x", {}, {"fully_masked_rows": "nan"})
    with pytest.raises(TargetError, match="unknown option"):
        load_subject("reference", options={"layuot": "(B, L, H, E)"})


# ---------------------------------------------------------------------------
# Interface options: real API shapes with no wrapper code
# ---------------------------------------------------------------------------

def sdpa_renamed(query, key, value, attn_mask=None, is_causal=False):
    """torch-like names, a boolean is_causal, no scale argument."""
    return A.attention(query, key, value, mask=attn_mask, causal=bool(is_causal))


def sdpa_equal_dims(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    if np.shape(v)[-1] != np.shape(q)[-1]:
        raise ValueError("v: expected Ev = E")
    return A.attention(q, k, v, mask=mask, causal=causal, scale=scale, bias=bias)


def backward_without_scale(q, k, v, d_out, *, mask=None, causal=False):
    """A backward pass with no scale argument (always 1/sqrt(E))."""
    from transformer_theory.impl import gradients as G

    return G.attention_backward(q, k, v, d_out, mask=mask, causal=causal)


def gqa_self(x, params, *, mask=None, causal=False):
    return A.grouped_query_attention(x, x, params, mask=mask, causal=causal)


def rope_offset(x, offset=0):
    """rope(x, offset=n): row i at position n + i."""
    length = np.shape(x)[-2]
    return P.rope(x, np.arange(length) + offset)


def rope_half(x, positions=None):
    """GPT-NeoX rotate_half pairing (i, i + d/2)."""
    x = np.asarray(x)
    d = x.shape[-1]
    perm = np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])
    inverse = np.argsort(perm)
    return P.rope(x[..., inverse], positions)[..., perm]


def alibi_linear(n_heads, lq, lk, *, causal_alignment="bottom-right", dtype=np.float64):
    """ALiBi continued linearly past the query: -m (i - j) for every j, positive ahead."""
    from transformer_theory.impl.positional import alibi_bias

    out = alibi_bias(n_heads, lq, lk, causal_alignment=causal_alignment, dtype=dtype)
    offset = lk - lq if causal_alignment == "bottom-right" else 0
    ahead = np.arange(lk)[None, :] > np.arange(lq)[:, None] + offset
    return np.where(ahead, -out, out)


def rms_norm_eps_outside(x, gamma=None, *, eps=1e-6):
    """A correct RMSNorm of the other placement: x / (sqrt(mean(x^2)) + eps) * gamma."""
    x = np.asarray(x)
    x64 = x.astype(np.float64)
    y = x64 / (np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True)) + eps)
    return (y if gamma is None else y * gamma).astype(x.dtype)


def features_stabilized(x, w, kind="positive"):
    """performer-pytorch style: subtracts the row max of w.x inside the exponent, always."""
    if kind == "trig":
        return F.random_features(x, w, kind)
    s = np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64).T
    if kind == "hyperbolic":
        s = np.concatenate([s, -s], axis=-1)
    stabilizer = s.max(axis=-1, keepdims=True).astype(np.asarray(x).dtype)
    return F.random_features(x, w, kind, stabilizer=stabilizer)


def features_with_eps(x, w, kind="positive"):
    """performer-pytorch style: ratio * (exp(...) + eps), eps = 1e-4."""
    out = F.random_features(x, w, kind)
    if kind == "trig":
        return out
    return (out + 1e-4 / np.sqrt(out.shape[-1])).astype(out.dtype)


def features_positive_only(x, w, kind="positive", *, stabilizer=None):
    if kind != "positive":
        raise ValueError(f"kind: only 'positive', got {kind!r}")
    return F.random_features(x, w, kind, stabilizer=stabilizer)


@pytest.mark.parametrize("name, as_kind, options, claims", [
    ("sdpa_renamed", "attention",
     {"rename": "mask:attn_mask,causal:is_causal", "causal_flag": "bool", "scale": "none"},
     "attention.*,masking.*"),
    ("sdpa_equal_dims", "attention", {"value_dim": "equal"}, "attention.*,masking.*"),
    ("backward_without_scale", "attention_backward", {"scale": "none"}, "gradients.*"),
    ("gqa_self", "gqa_self", {}, "heads.*"),
    ("rope_offset", "rope", {"rope_positions": "offset"}, "positional.*"),
    ("rope_half", "rope", {"rope_pairing": "half"}, "positional.*"),
    ("rms_norm_eps_outside", "rms_norm", {"rms_eps": "outside"}, "normalization.rmsnorm*"),
    ("alibi_linear", "alibi_bias", {"alibi_noncausal": "linear"}, "positional.alibi*"),
    ("features_stabilized", "random_features", {"feature_stabilizer": "row"},
     "performer.*,contract.*"),
    ("features_with_eps", "random_features", {"feature_eps": 1e-4}, "performer.*,contract.*"),
    ("features_positive_only", "random_features", {"feature_kinds": "positive"},
     "performer.*,contract.*"),
])
def test_interface_option_adapts_a_real_api(name, as_kind, options, claims):
    report = check(f"{THIS}:{name}", claims, as_kind=as_kind, options=options, profile="ci")
    assert report.passed, [(r.id, r.detail[:300]) for r in report.failures]
    assert any(r.status == "passed" for r in report)


#: Each twin with claims that must fail without its option. The feature-map twins name
#: two cheap claims that catch them, not all of performer.*: the Theorem 2 claims take
#: 8-9 s each and caught nothing the two did not (measured: the stabilised twin fails 11
#: of 12 performer claims, the eps twin regimes, favor_explicit and causal_prefix_sum).
@pytest.mark.parametrize("name, as_kind, claims", [
    ("sdpa_equal_dims", "attention", "attention.scaled_dot_product"),
    ("rope_half", "rope", "positional.rope_*"),
    ("rms_norm_eps_outside", "rms_norm", "normalization.rmsnorm_eps_inside"),
    ("alibi_linear", "alibi_bias", "positional.alibi_bias_definition"),
    ("features_stabilized", "random_features", "performer.regimes,performer.favor_explicit"),
    ("features_with_eps", "random_features", "performer.regimes,performer.favor_explicit"),
])
def test_interface_twin_without_the_option_fails(name, as_kind, claims):
    report = check(f"{THIS}:{name}", claims, as_kind=as_kind, profile="ci")
    assert not report.passed
    if "*" not in claims:                                 # each named claim catches the twin
        assert {r.id for r in report.failures} == set(claims.split(","))


def test_rope_pairing_twin_is_diagnosed():
    report = check(f"{THIS}:rope_half", "positional.rope_*", as_kind="rope", profile="ci")
    diagnosed = [r.diagnosis for r in report.failures if r.diagnosis]
    assert {"option": "rope_pairing", "value": "half"} in diagnosed


def test_rms_eps_twin_is_diagnosed():
    report = check(f"{THIS}:rms_norm_eps_outside", "normalization.rmsnorm*", as_kind="rms_norm",
                   profile="ci")
    diagnosed = [r.diagnosis for r in report.failures if r.diagnosis]
    assert {"option": "rms_eps", "value": "outside"} in diagnosed


def test_alibi_linear_twin_is_diagnosed():
    report = check(f"{THIS}:alibi_linear", "positional.alibi*", as_kind="alibi_bias",
                   profile="ci")
    diagnosed = [r.diagnosis for r in report.failures if r.diagnosis]
    assert {"option": "alibi_noncausal", "value": "linear"} in diagnosed


def test_gqa_self_is_not_applicable_to_cross_attention_cases():
    report = check(f"{THIS}:gqa_self", "heads.*", as_kind="gqa_self", profile="ci")
    assert all(r.status in ("passed", "not_applicable") for r in report)


# ---------------------------------------------------------------------------
# Found by the recipes (examples/RESULTS.md): real APIs the wrappers must respect
# ---------------------------------------------------------------------------

def sdpa_refusing_mask_with_flag(q, k, v, *, mask=None, causal=False, scale=None):
    """PyTorch and tinygrad refuse an explicit mask together with is_causal=True."""
    if mask is not None and causal:
        raise RuntimeError("Explicit attn_mask should not be set when is_causal=True")
    return A.attention(q, k, v, mask=mask, causal=bool(causal), scale=scale)


def attention_blhe_bool(q, k, v, *, mask=None, causal=False, scale=None):
    """(B, L, H, E) layout with a boolean top-left flag (as JAX's is_causal)."""
    out = A.attention(np.swapaxes(q, 1, 2), np.swapaxes(k, 1, 2), np.swapaxes(v, 1, 2),
                      mask=mask, causal=bool(causal), scale=scale)
    return np.swapaxes(out, 1, 2)


def attention_without_causal(q, k, v, *, mask=None, scale=None):
    """flax / HF eager: no causal argument at all."""
    return A.attention(q, k, v, mask=mask, scale=scale)


def attention_square_flag(q, k, v, *, mask=None, causal=False, scale=None):
    """Hugging Face SDPA: is_causal ignored for a single query, top-left otherwise."""
    return A.attention(q, k, v, mask=mask, causal=bool(causal) and np.shape(q)[-2] > 1,
                       scale=scale)


@pytest.mark.parametrize("name, options", [
    ("sdpa_refusing_mask_with_flag", {"causal_flag": "bool"}),
    ("attention_blhe_bool", {"layout": "(B, L, H, E)", "causal_flag": "bool"}),
    ("attention_without_causal", {"causal_flag": "none"}),
    ("attention_square_flag", {"causal_flag": "bool", "causal_alignment": "square"}),
])
def test_causal_interfaces_of_real_kernels(name, options):
    report = check(f"{THIS}:{name}", "attention.*,masking.*,online_softmax.*", as_kind="attention",
                   options=options, profile="ci")
    assert report.passed, [(r.id, r.detail[:300]) for r in report.failures]


def test_square_flag_twin_fails_under_top_left():
    report = check(f"{THIS}:attention_square_flag", "masking.causal_alignment", as_kind="attention",
                   options={"causal_flag": "bool"}, profile="ci")
    assert not report.passed


def test_readme_option_table_is_the_option_table():
    """The README's table of options is OPTION_TABLE: every option, its values and its doc."""
    from pathlib import Path

    from transformer_theory.impl.contract import OPTION_TABLE

    lines = (Path(__file__).resolve().parents[1] / "README.md").read_text(
        encoding="utf-8").splitlines()
    start = lines.index("| option | category | values (contract's first) | what it declares |")
    table = []
    for line in lines[start + 2:]:
        if not line.startswith("| `"):
            break
        table.append(line)
    assert len(table) == len(OPTION_TABLE), "README: the option table has extra or missing rows"
    for name, option in OPTION_TABLE.items():
        values = ", ".join(f"`{v}`" for v in option.values) if option.values else None
        row = [line for line in table if line.startswith(f"| `{name}` |")]
        assert len(row) == 1, f"README: no row (or several) for option {name}"
        assert "|" not in option.doc, f"{name}: a '|' in the doc breaks the table"
        assert row[0].endswith(f"| {option.doc} |"), f"README: the row of {name} is stale"
        if values:
            assert f"| {values} |" in row[0], f"README: the values of {name} are stale"
