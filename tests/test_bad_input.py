"""Bad input gets a clear ValueError or TypeError naming the argument and the
expected and actual shape or dtype (issue 2, §5; DESIGN.md "Contract").

One test per kind of mistake, across the public entry points; the unit tests
of each module hold many more cases.
"""

from __future__ import annotations

import numpy as np
import pytest

from transformer_theory.impl import attention as A
from transformer_theory.impl import layers as N
from transformer_theory.impl import positional as P
from transformer_theory.impl import transformer as T

RNG = np.random.default_rng(0)
Q = RNG.standard_normal((2, 5, 4))
K = RNG.standard_normal((2, 6, 4))
V = RNG.standard_normal((2, 6, 3))


@pytest.mark.parametrize("call, arg, shapes", [
    (lambda: A.attention(Q, K[..., :3], V), "k", ["4", "(2, 6, 3)"]),          # embed dim
    (lambda: A.attention(Q, K, V[:, :5]), "v", ["6", "(2, 5, 3)"]),              # key length
    (lambda: A.attention(Q, K[:1], V[:1]), "k", ["(2,)", "(1,)"]),               # batch dims
    (lambda: N.residual(Q, Q[:, :4]), "y", ["(2, 5, 4)", "(2, 4, 4)"]),
    (lambda: P.add_positional_encoding(Q, np.zeros((5, 3))), "pe", ["4", "(5, 3)"]),
])
def test_mismatched_dimension_names_argument_and_shapes(call, arg, shapes):
    with pytest.raises(ValueError) as exc:
        call()
    msg = str(exc.value)
    assert arg in msg
    for s in shapes:
        assert s in msg, (s, msg)


def test_mask_of_wrong_shape():
    with pytest.raises(ValueError, match=r"mask.*\(2, 5, 6\).*\(4, 4\)"):
        A.attention(Q, K, V, mask=np.ones((4, 4), dtype=bool))


def test_mask_of_wrong_dtype():
    with pytest.raises(TypeError, match=r"mask.*bool.*float64"):
        A.attention(Q, K, V, mask=np.ones((5, 6)))


@pytest.mark.parametrize("call, arg", [
    (lambda: A.attention(Q[0, 0], K, V), "q"),                        # 1-d query
    (lambda: N.layer_norm(np.float64(1.0)), "x"),
    (lambda: P.rope(np.ones(4)), "x"),
])
def test_wrong_rank(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


@pytest.mark.parametrize("call, arg", [
    (lambda: A.attention(Q, K, V, causal="top-right"), "causal"),
    (lambda: N.get_activation("swish"), "swish"),
    (lambda: N.feed_forward(Q, N.init_ffn(4, 8, RNG), activation="swish"), "swish"),
    (lambda: T.EncoderConfig(d_model=8, n_heads=2, d_ff=8, norm="sandwich"), "norm"),
    (lambda: A.causal_mask(3, 3, align="centre"), "align"),
])
def test_unknown_option(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


def test_non_finite_inputs_and_weights():
    bad = Q.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="q.*NaN"):
        A.attention(bad, K, V)
    p = A.init_multi_head(4, 2, RNG)
    w_q = p.w_q.copy()
    w_q[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="w_q"):
        A.MultiHeadParams(w_q=w_q, w_k=p.w_k, w_v=p.w_v, b_q=p.b_q, b_k=p.b_k, b_v=p.b_v,
                          w_o=p.w_o, b_o=p.b_o)
    ffn = N.init_ffn(4, 8, RNG)
    ffn.w1[0, 0] = np.nan
    with pytest.raises(ValueError, match="w1"):
        N.feed_forward(Q, ffn)
    with pytest.raises(ValueError, match="gamma"):
        N.layer_norm(Q, gamma=np.array([1.0, np.inf, 1.0, 1.0]))


def test_wrong_float_dtype():
    with pytest.raises(TypeError, match=r"q.*float32 or float64.*float16"):
        A.attention(Q.astype(np.float16), K, V)
    with pytest.raises(TypeError, match=r"q.*complex"):
        A.attention(Q.astype(np.complex128), K, V)


def test_no_global_rng():
    with pytest.raises(TypeError, match="rng"):
        A.init_multi_head(4, 2, 0)
