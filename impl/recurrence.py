"""Recurrence: linear attention as an RNN, critical paths of RNN and transformer encoders,
and gradients through a linear RNN.

Linear attention is an RNN (Katharopoulos et al. 2020, §3.2 and §3.4)
--------------------------------------------------------------------
Replacing ``exp(q.k)`` by a kernel ``phi(q).phi(k)`` with a positive feature map
``phi`` (``elu(x) + 1``, their eq. 7), causal attention becomes

.. math::  o_i = \\frac{\\phi(q_i)^{\\top} S_i}{\\phi(q_i)^{\\top} z_i},\\qquad
           S_i = S_{i-1} + \\phi(k_i) v_i^{\\top},\\qquad z_i = z_{i-1} + \\phi(k_i),

an RNN whose state ``(S_i, z_i)`` has a size independent of ``i``. The same
numbers are the masked quadratic form
``o_i = sum_{j<=i} phi(q_i).phi(k_j) v_j / sum_{j<=i} phi(q_i).phi(k_j)``, which is
also ``softmax`` attention with the additive bias ``log(phi(q_i).phi(k_j))`` and no
content term — so any softmax attention that takes a bias can compute it.

Critical paths (seed 004)
-------------------------
The dependency graph of an encoder has a node per computed vector (one per
position and operation); an ``N``-ary reduction such as a softmax row is one
node. An RNN encoder chains ``h_1 -> h_2 -> ... -> h_N``: its longest path has
``N + 1`` nodes. A transformer layer's longest path is
``x_j -> k_j -> a_i -> o_i -> y_i`` (key, attention row, attention output, FFN):
``4`` nodes per layer plus the input, whatever ``N``.

Gradients through a linear RNN (seed 000, "vanishing/exploding")
----------------------------------------------------------------
For ``h_t = W h_{t-1} + U x_t`` the Jacobian is ``dh_T/dh_0 = W^T``. If
``W = P diag(lambda) P^{-1}`` then ``rho^T <= ||W^T||_2 <= kappa(P) rho^T``
(``rho`` the spectral radius, ``kappa`` the condition number), so
``log ||dh_T/dh_0|| = T log rho + e_T`` with ``0 <= e_T <= log kappa(P)``: the norm
vanishes for ``rho < 1`` and explodes for ``rho > 1`` at rate ``rho^T``.

References
----------
Katharopoulos, Vyas, Pappas & Fleuret 2020, Transformers are RNNs: Fast
Autoregressive Transformers with Linear Attention, ICML, §3.2 (eq. 7), §3.4.
Vaswani et al. 2017, Attention Is All You Need, §4 (Table 1: maximum path
length O(n) for recurrent, O(1) for self-attention layers).
Pascanu, Mikolov & Bengio 2013, On the difficulty of training recurrent neural
networks, ICML, §2 (the spectral radius condition).
Seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt), items 2-3 and 14: the RNN's
path is linear in the length, the transformer's has a constant number of nodes.
Seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt): "path length for codependent
computation between states grows with sequence". Seed 000
(shared/seeds/000_dca4bc6ff5cc76c0.txt): RNN training, vanishing/exploding gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._validate import as_float_array, check_batch_dims, check_choice, check_positive_int, \
    check_qkv_arrays, check_rng, check_same_dim, common_float_dtype

__all__ = [
    "elu_plus_one",
    "LinearAttentionState",
    "init_linear_attention_state",
    "linear_attention_step",
    "causal_linear_attention_recurrent",
    "causal_linear_attention_masked",
    "kernel_log_bias",
    "DependencyGraph",
    "rnn_encoder_graph",
    "transformer_encoder_graph",
    "longest_path",
    "linear_rnn",
    "state_jacobian_norms",
    "matrix_with_spectrum",
    "least_squares_slope",
    "slope_error_bound",
    "patches",
    "elman_rnn",
    "elman_bptt",
]


# ---------------------------------------------------------------------------
# Linear attention as an RNN
# ---------------------------------------------------------------------------

def elu_plus_one(x) -> np.ndarray:
    """``phi(x) = elu(x) + 1``: ``x + 1`` for ``x > 0``, ``exp(x)`` otherwise (positive, up to underflow).

    References
    ----------
    Katharopoulos et al. 2020, ICML, §3.2, eq. (7).
    """
    x = as_float_array(x, "x", ndim_min=0)
    return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0))).astype(x.dtype, copy=False)


@dataclass
class LinearAttentionState:
    """The RNN state of causal linear attention.

    Attributes
    ----------
    s : np.ndarray, (..., R, Ev)
        ``S_i = sum_{j<=i} phi(k_j) v_j^T``.
    z : np.ndarray, (..., R)
        ``z_i = sum_{j<=i} phi(k_j)``.
    """

    s: np.ndarray
    z: np.ndarray


def init_linear_attention_state(lead: tuple, n_features: int, d_value: int,
                                dtype=np.float64) -> LinearAttentionState:
    """The zero state ``S_0 = 0``, ``z_0 = 0``."""
    n_features = check_positive_int(n_features, "n_features")
    d_value = check_positive_int(d_value, "d_value")
    return LinearAttentionState(np.zeros((*lead, n_features, d_value), dtype=dtype),
                                np.zeros((*lead, n_features), dtype=dtype))


def linear_attention_step(state: LinearAttentionState, phi_q, phi_k, v):
    """One RNN step: ``S += phi(k) v^T``, ``z += phi(k)``, ``o = phi(q)^T S / phi(q)^T z``.

    Parameters
    ----------
    state : LinearAttentionState
    phi_q, phi_k : np.ndarray, (..., R)
        Feature-mapped query and key of this position.
    v : np.ndarray, (..., Ev)

    Returns
    -------
    o : np.ndarray, (..., Ev)
    state : LinearAttentionState
        The updated state (a new object).
    """
    s = state.s + phi_k[..., :, None] * v[..., None, :]                 # (..., R, Ev)
    z = state.z + phi_k                                                 # (..., R)
    num = np.einsum("...r,...re->...e", phi_q, s)                       # (..., Ev)
    den = np.einsum("...r,...r->...", phi_q, z)[..., None]              # (..., 1)
    o = np.divide(num, den, out=np.zeros_like(num), where=den > 0)     # (..., Ev)
    return o, LinearAttentionState(s, z)


def _validate_qkv(q, k, v):
    """The contract's q, k, v checks, one sequence length (causal self-attention), one dtype."""
    q, k, v = check_qkv_arrays(q, k, v)
    check_same_dim(q, "q", k, "k", -2, "sequence length L (causal self-attention)")
    dtype = common_float_dtype(q, k, v)
    return (a.astype(dtype, copy=False) for a in (q, k, v))


def _features(x: np.ndarray, feature_map: Callable) -> np.ndarray:
    if not callable(feature_map):
        raise TypeError(f"feature_map: expected a callable, got {type(feature_map).__name__}")
    phi = np.asarray(feature_map(x), dtype=x.dtype)
    if phi.shape[:-1] != x.shape[:-1]:
        raise ValueError(f"feature_map: must keep the leading dims {x.shape[:-1]}, "
                         f"returned shape {phi.shape}")
    if not np.all(np.isfinite(phi)) or np.any(phi < 0):
        raise ValueError("feature_map: must return finite, non-negative features")
    return phi


def causal_linear_attention_recurrent(q, k, v, *,
                                      feature_map: Callable = elu_plus_one) -> np.ndarray:
    """Causal linear attention run as an RNN, one position at a time.

    Parameters
    ----------
    q, k : array_like, (..., L, E)
    v : array_like, (..., L, Ev)
    feature_map : callable
        ``phi``, applied to the last axis; must return non-negative features.

    Returns
    -------
    np.ndarray, (..., L, Ev)
        A position whose normaliser ``phi(q_i)^T z_i`` is 0 returns zeros.

    References
    ----------
    Katharopoulos et al. 2020, ICML, §3.4 (the S_i, Z_i recurrence).
    """
    q, k, v = _validate_qkv(q, k, v)
    phi_q, phi_k = _features(q, feature_map), _features(k, feature_map)     # (..., L, R)
    state = init_linear_attention_state(q.shape[:-2], phi_q.shape[-1], v.shape[-1], v.dtype)
    out = np.empty(v.shape, dtype=v.dtype)                                   # (..., L, Ev)
    for i in range(q.shape[-2]):           # the recurrence: this loop *is* the RNN
        out[..., i, :], state = linear_attention_step(state, phi_q[..., i, :], phi_k[..., i, :],
                                                      v[..., i, :])
    return out


def causal_linear_attention_masked(q, k, v, *, feature_map: Callable = elu_plus_one) -> np.ndarray:
    """The masked quadratic form ``(A * M) V / rowsum(A * M)``.

    ``A = phi(Q) phi(K)^T`` and ``M_ij = [j <= i]``; a row with a zero normaliser
    returns zeros.
    """
    q, k, v = _validate_qkv(q, k, v)
    phi_q, phi_k = _features(q, feature_map), _features(k, feature_map)     # (..., L, R)
    length = q.shape[-2]
    a = phi_q @ np.swapaxes(phi_k, -1, -2)                                   # (..., L, L)
    a = np.where(np.tril(np.ones((length, length), dtype=bool)), a, 0)       # causal
    den = a.sum(axis=-1, keepdims=True)                                      # (..., L, 1)
    num = a @ v                                                              # (..., L, Ev)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def kernel_log_bias(q, k, *, feature_map: Callable = elu_plus_one) -> np.ndarray:
    """``log(phi(q_i)^T phi(k_j))``: with zero content scores, softmax attention with this
    bias (and the causal mask) is causal linear attention. ``-inf`` where the kernel is 0."""
    q = as_float_array(q, "q", ndim_min=2)
    k = as_float_array(k, "k", ndim_min=2)
    check_batch_dims([("q", q), ("k", k)], n_trailing=2)
    check_same_dim(q, "q", k, "k", -1, "embedding dim E")
    dtype = common_float_dtype(q, k)
    q, k = q.astype(dtype, copy=False), k.astype(dtype, copy=False)
    kern = _features(q, feature_map) @ np.swapaxes(_features(k, feature_map), -1, -2)
    with np.errstate(divide="ignore"):
        return np.log(kern)                                                  # (..., Lq, Lk)


# ---------------------------------------------------------------------------
# Dependency graphs and their longest paths
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DependencyGraph:
    """A computation as a DAG: node ``i`` is computed from the nodes ``src[e]`` with ``dst[e] = i``.

    Attributes
    ----------
    labels : tuple of str
        One name per node (e.g. ``"h_3"``, ``"a_2^(1)"``).
    src, dst : np.ndarray of int
        Edges ``src -> dst`` (the value of ``dst`` depends on ``src``).
    """

    labels: tuple
    src: np.ndarray
    dst: np.ndarray

    @property
    def n_nodes(self) -> int:
        return len(self.labels)


class _GraphBuilder:
    def __init__(self):
        self.labels: list[str] = []
        self.src: list[np.ndarray] = []
        self.dst: list[np.ndarray] = []

    def nodes(self, prefix: str, n: int) -> np.ndarray:
        start = len(self.labels)
        self.labels.extend(f"{prefix}_{i + 1}" for i in range(n))
        return np.arange(start, start + n)

    def edges(self, src, dst):
        src, dst = np.broadcast_arrays(np.asarray(src), np.asarray(dst))
        self.src.append(src.ravel())
        self.dst.append(dst.ravel())

    def build(self) -> DependencyGraph:
        cat = (lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
        return DependencyGraph(tuple(self.labels), cat(self.src), cat(self.dst))


def rnn_encoder_graph(n: int) -> DependencyGraph:
    """``h_t = f(h_{t-1}, x_t)``: nodes ``x_1..x_N``, ``h_0..h_N``.

    References
    ----------
    Seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt), items 2-3 and 14.
    """
    n = check_positive_int(n, "n")
    g = _GraphBuilder()
    x = g.nodes("x", n)
    h = np.concatenate([g.nodes("h0", 1), g.nodes("h", n)])
    g.edges(h[:-1], h[1:])                       # h_{t-1} -> h_t
    g.edges(x, h[1:])                            # x_t -> h_t
    return g.build()


def transformer_encoder_graph(n: int, depth: int, *,
                              attention_row: str = "reduction") -> DependencyGraph:
    """A ``depth``-layer encoder: per layer and position ``q_i, k_i, v_i, a_i, o_i, y_i``.

    ``a_i`` (the attention row of query ``i``, an ``N``-ary softmax) depends on
    ``q_i`` and every ``k_j``; ``o_i`` on ``a_i`` and every ``v_j``; ``y_i`` (FFN and
    residual) on ``o_i`` and the layer input ``x_i``.

    Parameters
    ----------
    n : int
        Sequence length ``N``.
    depth : int
        Number of layers.
    attention_row : {"reduction", "scan"}
        How an attention row is computed: one ``N``-ary reduction node (the
        transformer's softmax row), or a left-to-right scan over the keys
        (``a_i^(j)`` from ``a_i^(j-1)`` and ``k_j``, as a sequential loop of the
        online softmax computes it), whose chain grows with ``N``.

    References
    ----------
    Vaswani et al. 2017, §4 and Table 1 (maximum path length O(1)); seed 004
    (shared/seeds/004_d5b314f5ea1e15da.txt), items 12-14.
    """
    n = check_positive_int(n, "n")
    depth = check_positive_int(depth, "depth")
    check_choice(attention_row, "attention_row", ("reduction", "scan"))
    g = _GraphBuilder()
    x = g.nodes("x", n)
    for layer in range(1, depth + 1):
        tag = f"^({layer})"
        q, k, v = g.nodes("q" + tag, n), g.nodes("k" + tag, n), g.nodes("v" + tag, n)
        for proj in (q, k, v):
            g.edges(x, proj)                                       # x_i -> q_i, k_i, v_i
        if attention_row == "scan":
            partial = np.stack([g.nodes(f"a{tag}[{j + 1}]", n) for j in range(n)])  # (N_keys, N)
            g.edges(q[None, :], partial)
            g.edges(k[:, None], partial)                            # k_j -> a_i[j]
            g.edges(partial[:-1], partial[1:])                      # a_i[j-1] -> a_i[j]
            a = partial[-1]
        else:
            a = g.nodes("a" + tag, n)
            g.edges(q, a)                                           # q_i -> a_i
            g.edges(k[:, None], a[None, :])                         # k_j -> a_i for all j
        o = g.nodes("o" + tag, n)
        g.edges(a, o)                                               # a_i -> o_i
        g.edges(v[:, None], o[None, :])                             # v_j -> o_i for all j
        y = g.nodes("y" + tag, n)
        g.edges(o, y)                                               # FFN
        g.edges(x, y)                                               # residual
        x = y
    return g.build()


def longest_path(graph: DependencyGraph) -> int:
    """Number of nodes on the longest path of a DAG (the critical path).

    Relaxes every edge at once, ``level[dst] = max(level[dst], level[src] + 1)``,
    until nothing changes; a path of ``m`` nodes needs ``m`` sweeps. Raises
    ``ValueError`` on a cycle.
    """
    if not isinstance(graph, DependencyGraph):
        raise TypeError(f"graph: expected a DependencyGraph, got {type(graph).__name__}")
    n = graph.n_nodes
    if n == 0:
        return 0
    order = np.argsort(graph.dst, kind="stable")
    src, dst = graph.src[order], graph.dst[order]
    targets, starts = np.unique(dst, return_index=True)
    level = np.ones(n, dtype=np.int64)                        # a node alone is a path of 1
    for _ in range(n + 1):
        if src.size == 0:
            return 1
        best = np.maximum.reduceat(level[src], starts) + 1    # per target: 1 + max over inputs
        new = level.copy()
        new[targets] = np.maximum(level[targets], best)
        if np.array_equal(new, level):
            return int(level.max())
        level = new
    raise ValueError("graph: contains a cycle (no longest path)")


# ---------------------------------------------------------------------------
# Gradients through a linear RNN
# ---------------------------------------------------------------------------

def linear_rnn(w, h0, steps: int, *, u=None, x=None) -> np.ndarray:
    """States of ``h_t = W h_{t-1} + U x_t``, ``t = 1..steps``.

    Parameters
    ----------
    w : array_like, (n, n)
    h0 : array_like, (n,)
    steps : int
    u : array_like, (n, m), optional
    x : array_like, (steps, m), optional
        Inputs; both ``u`` and ``x`` or neither.

    Returns
    -------
    np.ndarray, (steps + 1, n)
        ``h_0 .. h_T``.
    """
    w = as_float_array(w, "w", ndim=2)
    if w.shape[0] != w.shape[1]:
        raise ValueError(f"w: expected a square matrix, got shape {w.shape}")
    h = as_float_array(h0, "h0", ndim=1)
    if h.shape[0] != w.shape[0]:
        raise ValueError(f"h0: expected length {w.shape[0]} (rows of w), got shape {h.shape}")
    steps = check_positive_int(steps, "steps", minimum=0)
    drive = np.zeros((steps, w.shape[0]))
    if (u is None) != (x is None):
        raise ValueError("u, x: give both the input matrix and the inputs, or neither")
    if u is not None:
        u = as_float_array(u, "u", ndim=2)
        x = as_float_array(x, "x", ndim=2)
        if u.shape[0] != w.shape[0] or x.shape != (steps, u.shape[1]):
            raise ValueError(f"x: expected shape (steps, m) = {(steps, u.shape[1])} with u of "
                             f"shape (n, m), got u {u.shape} and x {x.shape}")
        drive = x @ u.T                                                   # (T, n)
    dtype = common_float_dtype(w, h) if u is None else common_float_dtype(w, h, u, x)
    out = np.empty((steps + 1, w.shape[0]), dtype=dtype)
    out[0] = h
    for t in range(1, steps + 1):           # time steps are sequential by definition
        out[t] = w @ out[t - 1] + drive[t - 1]
    return out


def state_jacobian_norms(w, steps: int, *, ord=2) -> np.ndarray:
    """``||dh_t/dh_0||`` for ``t = 1..steps`` by back-propagation through time.

    The chain rule gives ``dh_t/dh_0 = (dh_t/dh_{t-1}) (dh_{t-1}/dh_0) = W J_{t-1}``;
    the inputs do not enter (the RNN is linear).

    Parameters
    ----------
    w : array_like, (n, n)
    steps : int
    ord : norm order passed to :func:`numpy.linalg.norm` (default: spectral norm)

    Returns
    -------
    np.ndarray, (steps,)

    References
    ----------
    Pascanu, Mikolov & Bengio 2013, ICML, §2.1; seed 000
    (shared/seeds/000_dca4bc6ff5cc76c0.txt), "vanishing/exploding gradients".
    """
    w = as_float_array(w, "w", ndim=2)
    if w.shape[0] != w.shape[1]:
        raise ValueError(f"w: expected a square matrix, got shape {w.shape}")
    steps = check_positive_int(steps, "steps")
    jac = np.eye(w.shape[0], dtype=w.dtype)                                # dh_0/dh_0
    norms = np.empty(steps)
    for t in range(steps):                  # one chain-rule factor per time step
        jac = w @ jac                                                      # (n, n)
        norms[t] = np.linalg.norm(jac, ord=ord)
    return norms


def matrix_with_spectrum(eigenvalues, rng: np.random.Generator):
    """A real matrix ``W = P diag(lambda) P^{-1}`` with random Gaussian ``P``.

    Parameters
    ----------
    eigenvalues : array_like, (n,)
        Real eigenvalues.
    rng : np.random.Generator

    Returns
    -------
    w : np.ndarray, (n, n)
    kappa : float
        The 2-norm condition number of ``P``.
    """
    lam = as_float_array(eigenvalues, "eigenvalues", ndim=1).astype(np.float64)
    rng = check_rng(rng)
    n = lam.shape[0]
    p = rng.standard_normal((n, n))                                          # (n, n)
    w = (p * lam[None, :]) @ np.linalg.inv(p)                                # P diag P^{-1}
    return w, float(np.linalg.cond(p))


def least_squares_slope(t, y) -> tuple[float, float]:
    """Slope and intercept of the least-squares line through ``(t, y)``."""
    t = as_float_array(t, "t", ndim=1).astype(np.float64)
    y = as_float_array(y, "y", ndim=1).astype(np.float64)
    if t.shape != y.shape or t.size < 2:
        raise ValueError(f"t, y: expected two 1-d arrays of the same length >= 2, got shapes "
                         f"{t.shape} and {y.shape}")
    tc = t - t.mean()
    slope = float(np.dot(tc, y - y.mean()) / np.dot(tc, tc))
    return slope, float(y.mean() - slope * t.mean())


def slope_error_bound(t, spread: float) -> float:
    """Largest least-squares slope error when the residuals lie in an interval of width ``spread``.

    With ``y_t = a t + e_t`` and ``e_t`` in ``[c, c + spread]``, the fitted slope is
    ``a + sum (t - tbar) e_t / sum (t - tbar)^2``; its worst case puts ``e`` at the
    top of the interval where ``t > tbar`` and at the bottom elsewhere:
    ``spread * sum_{t > tbar} (t - tbar) / sum (t - tbar)^2``.
    """
    t = as_float_array(t, "t", ndim=1).astype(np.float64)
    tc = t - t.mean()
    return float(spread * np.sum(np.maximum(tc, 0.0)) / np.dot(tc, tc))


# ---------------------------------------------------------------------------
# An Elman RNN over patches, and back-propagation through time (seeds 000, 004)
# ---------------------------------------------------------------------------

def patches(x, width: int, *, anchor: int | None = None) -> np.ndarray:
    """The pre-extracted patches ``p_t = (x_{t-a}, ..., x_{t+K-1-a})``, zeros outside.

    Parameters
    ----------
    x : array_like, (L, C)
    width : int
        ``K``.
    anchor : int, optional
        ``a``; default ``(K-1)//2`` (the tap aligned with position ``t``).

    Returns
    -------
    np.ndarray, (L, K, C)
    """
    x = as_float_array(x, "x", ndim=2)
    width = check_positive_int(width, "width")
    a = (width - 1) // 2 if anchor is None else int(anchor)
    padded = np.pad(x, [(a, width - 1 - a), (0, 0)])                     # (L + K - 1, C)
    return np.stack([padded[t:t + width] for t in range(x.shape[0])])  # (L, K, C)


def elman_rnn(x, w, u, *, v=None, r=None, h0=None) -> tuple[np.ndarray, np.ndarray]:
    """``h_t = tanh(W h_{t-1} + U x_t)``, ``y_t = V h_t + R x_t`` for ``t = 1..T``.

    The state may be empty (``n = 0``): then ``y_t = R x_t`` depends on ``x_t`` only.

    Parameters
    ----------
    x : array_like, (T, m)
    w : array_like, (n, n)
    u : array_like, (n, m)
    v : array_like, (p, n), optional
        Default: no read-out of the state (``p`` taken from ``r``, else ``n`` and ``V = I``).
    r : array_like, (p, m), optional
        Direct read-out of the input; default zero.
    h0 : array_like, (n,), optional
        Default zeros.

    Returns
    -------
    states : np.ndarray, (T + 1, n)
    outputs : np.ndarray, (T, p)
    """
    x = as_float_array(x, "x", ndim=2)
    w = as_float_array(w, "w", ndim=2)
    u = as_float_array(u, "u", ndim=2)
    n, m = u.shape
    if w.shape != (n, n) or x.shape[1] != m:
        raise ValueError(f"w, u, x: expected w (n, n), u (n, m), x (T, m), got {w.shape}, "
                         f"{u.shape}, {x.shape}")
    v = np.eye(n) if v is None and r is None else v
    v = None if v is None else as_float_array(v, "v", ndim=2)
    r = None if r is None else as_float_array(r, "r", ndim=2)
    p = (v if v is not None else r).shape[0]
    v = np.zeros((p, n)) if v is None else v
    r = np.zeros((p, m)) if r is None else r
    h = np.zeros(n) if h0 is None else as_float_array(h0, "h0", ndim=1)
    states = np.empty((x.shape[0] + 1, n))
    states[0] = h
    for t in range(1, x.shape[0] + 1):       # time steps are sequential by definition
        states[t] = np.tanh(w @ states[t - 1] + u @ x[t - 1])
    outputs = states[1:] @ v.T + x @ r.T                                  # (T, p)
    return states, outputs


def elman_bptt(x, w, u, g, *, h0=None) -> tuple[np.ndarray, np.ndarray]:
    """``dL/dW`` of ``L = sum_t <g_t, h_t>`` by back-propagation through time.

    Unrolled, step ``t`` uses its own copy ``W_t`` of the tied matrix; the chain
    rule gives ``dL/dW_t = delta_t h_{t-1}^T`` with ``delta_t = dL/da_t``
    (``a_t = W h_{t-1} + U x_t``), and the tied gradient is their sum
    (seed 004: "create copies of W and apply the Chain Rule").

    Parameters
    ----------
    x : array_like, (T, m)
    w, u : as in :func:`elman_rnn`
    g : array_like, (T, n)
        ``dL/dh_t`` of the loss's direct terms.
    h0 : array_like, (n,), optional

    Returns
    -------
    dw : np.ndarray, (n, n)
        The tied gradient, ``sum_t dL/dW_t``.
    per_copy : np.ndarray, (T, n, n)
        ``dL/dW_t`` for each copy.

    References
    ----------
    Goodfellow, Bengio & Courville 2016, Deep Learning, §10.2.2 (computing the
    gradient in a recurrent network).
    """
    states, _ = elman_rnn(x, w, u, h0=h0)
    g = as_float_array(g, "g", ndim=2)
    if g.shape != states[1:].shape:
        raise ValueError(f"g: expected shape {states[1:].shape} (T, n), got {g.shape}")
    w = np.asarray(w, dtype=np.float64)
    per_copy = np.zeros((g.shape[0],) + w.shape)
    carry = np.zeros(w.shape[0])                                           # dL/dh_t from t + 1
    for t in range(g.shape[0], 0, -1):       # backwards through time
        delta = (g[t - 1] + carry) * (1.0 - states[t] ** 2)               # dL/da_t
        per_copy[t - 1] = np.outer(delta, states[t - 1])
        carry = w.T @ delta
    return per_copy.sum(axis=0), per_copy
