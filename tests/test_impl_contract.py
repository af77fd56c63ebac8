"""Unit tests for transformer_theory.impl.contract: the parameter types and validators.

The contract module is what the reference, the numba path and the gradients
share (issue 15): one definition of each type and check, public names, and no
module of ``impl`` reaching into another's private helpers.
"""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import transformer_theory.impl.contract as C
from transformer_theory.impl import attention as A
from transformer_theory.impl import layers as L
from transformer_theory.impl import transformer as T
from transformer_theory.impl.contract import arrays as CA
from transformer_theory.impl.contract import params as CP
from transformer_theory.impl.contract import validate as CV

IMPL = pathlib.Path(A.__file__).resolve().parent


# --------------------------------------------------------------------------- one definition

@pytest.mark.parametrize("module, name", [
    (A, "MultiHeadParams"), (A, "GroupedQueryParams"), (A, "KVCache"),
    (L, "FFNParams"), (L, "LayerNormParams"),
    (T, "EncoderConfig"), (T, "EncoderLayerParams"), (T, "EncoderParams"),
    (T, "DecoderLayerParams"), (T, "DecoderParams"), (T, "Seq2SeqParams"),
    (T, "ClassifierParams"),
])
def test_old_names_are_the_contract_types(module, name):
    assert getattr(module, name) is getattr(C, name)


def test_fast_path_uses_the_same_types():
    fast = pytest.importorskip("transformer_theory.impl.fast")
    for name in ("MultiHeadParams", "GroupedQueryParams", "KVCache", "FFNParams",
                 "LayerNormParams"):
        assert getattr(fast, name) is getattr(C, name)


def test_package_reexports_both_modules():
    assert set(CP.__all__) | set(CV.__all__) <= set(C.__all__)
    for name in C.__all__:
        assert hasattr(C, name), name


def test_head_properties_are_defined_once_on_the_base():
    shared = ("n_heads", "n_kv_heads", "d_model", "d_kv", "d_head", "d_value")
    for name in shared:
        assert name in vars(C.AttentionParams), name
        assert name not in vars(C.MultiHeadParams) and name not in vars(C.GroupedQueryParams)
    rng = np.random.default_rng(0)
    g = A.init_grouped_query(8, 4, 2, rng, d_head=3, d_value=5, d_kv=6)
    assert (g.n_heads, g.n_kv_heads, g.d_model, g.d_kv, g.d_head, g.d_value, g.group_size) \
        == (4, 2, 8, 6, 3, 5, 2)
    m = A.gqa_to_mha_params(g)
    assert (m.n_heads, m.n_kv_heads, m.d_value) == (4, 4, 5)
    assert isinstance(m, C.AttentionParams) and isinstance(g, C.AttentionParams)


def test_attention_params_base_is_not_built_directly():
    p = A.init_multi_head(4, 2, np.random.default_rng(0))
    with pytest.raises(TypeError, match="MultiHeadParams or GroupedQueryParams"):
        C.AttentionParams(*p.weights())


def test_weights_arrays_and_cast():
    p = A.init_multi_head(4, 2, np.random.default_rng(0), bias=False)
    assert len(p.weights()) == 8 and len(p.arrays()) == 4
    cast = p.cast(np.float32)
    assert [a is None for a in cast] == [a is None for a in p.weights()]
    assert all(a.dtype == np.float32 for a in cast if a is not None)
    assert p.cast(np.float64)[0] is p.w_q                                  # no copy


def test_ffn_params_take_any_contents_and_validate_where_used():
    bad = C.FFNParams(w1=np.ones((3, 2)), b1=np.ones(5), w2="not an array", b2=None)
    with pytest.raises(ValueError, match="params.w1.*d_model"):
        bad.validate(4)
    with pytest.raises(TypeError, match="params.w2"):
        bad.validate(3)
    good = C.FFNParams(w1=np.ones((3, 2)), b1=None, w2=np.ones((2, 3)), b2=np.zeros(3))
    w1, b1, w2, b2 = good.validate(3)
    assert b1 is None and w1.shape == (3, 2) and b2.shape == (3,)
    with pytest.raises(ValueError, match="params.b1"):
        C.FFNParams(np.ones((3, 2)), np.ones(3), np.ones((2, 3)), None).validate(3)


def test_activation_names_are_the_reference_activations():
    assert tuple(L.ACTIVATIONS) == C.ACTIVATION_NAMES
    assert L.resolve_activation("gelu") is L.gelu
    f = (lambda h: h)
    assert L.resolve_activation(f) is f


def test_check_instance_names_argument_and_types():
    with pytest.raises(TypeError, match=r"^params: expected MultiHeadParams or "
                                        r"GroupedQueryParams, got str$"):
        C.check_attention_params("x")
    with pytest.raises(TypeError, match=r"^cache: expected KVCache, got int$"):
        C.check_instance(3, "cache", C.KVCache)


# --------------------------------------------------------------------------- attended keys

@pytest.mark.parametrize("mask, causal, lq, lk, expected", [
    (None, False, 3, 4, None),
    (None, True, 2, 4, [True, True, False, False]),          # top-left: j <= Lq - 1
    (None, "bottom-right", 2, 4, None),                        # the last query sees all
    (None, True, 4, 2, None),
    (None, False, 0, 3, [False, False, False]),                # no query at all
    (np.array([[True, False, False], [False, False, False]]), False, 2, 3,
     [True, False, False]),                                    # one query is enough
    (np.array([[False, True, True]]), True, 2, 3, [False, True, False]),
    (np.array(False), False, 2, 3, [False, False, False]),
])
def test_attended_keys(mask, causal, lq, lk, expected):
    got = C.attended_keys(mask, causal, (), lq, lk)
    if expected is None:
        assert got is None
    else:
        np.testing.assert_array_equal(np.broadcast_to(got, (lk,)), expected)


def test_attended_keys_per_batch_from_the_mask_as_given():
    mask = np.ones((2, 1, 3, 4), dtype=bool)                   # (B, 1, Lq, Lk), heads broadcast
    mask[1, ..., 2] = False
    got = C.attended_keys(mask, False, (2, 5), 3, 4)
    assert got.shape == (2, 1, 4)                              # not broadcast over the heads
    np.testing.assert_array_equal(np.broadcast_to(got, (2, 5, 4))[:, 0],
                                  [[True] * 4, [True, True, False, True]])
    with pytest.raises(ValueError, match="mask"):
        C.attended_keys(np.ones((3, 3), dtype=bool), False, (2,), 3, 4)


def test_check_finite_where_attended_keeps_finite_arrays_and_zeroes_dead_keys():
    k = np.arange(12.0).reshape(4, 3)
    (same,) = C.check_finite_where_attended([("k", k)], None, False, (), 2)
    assert same is k                                           # no copy when finite
    mask = np.array([[True, True, False, True]])               # key 2 is dead
    bad = k.copy()
    bad[2, 1] = np.nan
    (fixed,) = C.check_finite_where_attended([("k", bad)], mask, False, (), 2)
    np.testing.assert_array_equal(fixed, np.where(np.arange(4)[:, None] == 2, 0.0, k))
    assert fixed.dtype == k.dtype
    bad[1, 0] = np.inf
    with pytest.raises(ValueError, match=r"^k: contains NaN or infinite values at key 1, "
                                         r"which a query may attend"):
        C.check_finite_where_attended([("k", bad)], mask, False, (), 2)


def test_check_qkv_leaves_key_finiteness_to_the_caller_only_when_asked():
    q, k = np.ones((2, 3)), np.full((4, 3), np.nan)
    with pytest.raises(ValueError, match="^k: contains NaN"):
        C.check_qkv(q, k)
    assert C.check_qkv(q, k, finite_kv=False)[1] is k
    with pytest.raises(ValueError, match="^q: contains NaN"):
        C.check_qkv(np.full((2, 3), np.nan), k, finite_kv=False)



@pytest.mark.parametrize("dtypes, expected", [
    ((np.float32, np.float32), np.float32),
    ((np.float32, None, np.float32), np.float32),          # an omitted optional array
    ((np.float32, np.float64), np.float64),
    ((np.float64, None), np.float64),
    ((np.float16, None, np.float16), np.float16),          # all half: the half dtype
    ((np.float16, np.float32, None), np.float32),          # half with float32: float32
    ((np.float16, np.float64), np.float64),
])
def test_common_float_dtype_skips_omitted_arrays(dtypes, expected):
    arrays = [None if d is None else np.zeros(2, dtype=d) for d in dtypes]
    assert CA.common_float_dtype(*arrays) == np.dtype(expected)


# --------------------------------------------------------------------------- no private reach

def _private_reaches(path: pathlib.Path) -> list[str]:
    """``from .mod import _name`` and ``mod._name`` on a module imported by ``from . import mod``.

    A package's own ``_``-prefixed helper module (``impl._validate``, ``fast._numeric``)
    may be imported; the names taken from any module must be public.
    """
    tree = ast.parse(path.read_text())
    modules, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno} imports {alias.name}")
                if node.module is None:
                    modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            found.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def test_no_impl_module_reaches_into_another_modules_private_names():
    found = [hit for path in sorted(IMPL.rglob("*.py")) for hit in _private_reaches(path)]
    assert not found, found
