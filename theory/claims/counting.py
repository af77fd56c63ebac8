"""Counting: parameters of an encoder stack and multiplications of naive attention.

References
----------
Seed 003 ("Counting Number of Parameters": the table for E = 32, two heads,
dense dimension 32, one block, total 10,656). Seed 000 ("Remark
(computation). Naive implementation does dN^2 scalar multiplications").
Kaplan et al. 2020, "Scaling Laws for Neural Language Models", §2.1 and
Table 1 (N ≈ 2 d_model n_layer (2 d_attn + d_ff) = 12 n_layer d_model^2).
Vaswani et al. 2017, §3.2.2–3.3 (the weights counted), §4 and Table 1
(O(n^2 d) per self-attention layer).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from ..checks import for_all, holds, single_case
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import KAPLAN_2020, SEED_000, SEED_001, SEED_003, VASWANI_2017
from ..subject import construction
from ..strategies import SEEDS

claims = ClaimSet("counting")

SEED_003_TABLE = SEED_003.at("Counting Number of Parameters (table, grand total 10,656)")
SEED_000_FLOPS = SEED_000.at("Remark (computation): naive implementation does dN^2 "
                             "scalar multiplications")
KAPLAN_COUNT = KAPLAN_2020.at("§2.1, Table 1")

#: Seed 003's example: E = 32, two heads of width 32, dense dimension 32, one block.
SEED_003_TOTAL = 10656


def closed_form_parameters(config) -> int:
    """The statement's count for an encoder stack with ``b = 1`` iff biases.

    Per layer: queries ``H (E Dh + b Dh)``, keys and values ``G (E Dh + b Dh)``
    each, output projection ``H Dh E + b E``, FFN ``2 E F + b (F + E)``, two
    LayerNorms of ``2 E``.
    """
    e, h, g = config.d_model, config.n_heads, config.kv_heads
    dh, f, b = config.head_dim, config.d_ff, int(config.bias)
    per_layer = ((h + 2 * g) * (e * dh + b * dh) + h * dh * e + b * e
                 + 2 * e * f + b * (f + e) + 4 * e)
    return config.n_layers * per_layer


@claims.claim("counting.seed003_parameters",
              sources=(SEED_003_TABLE, VASWANI_2017.at("§3.2.2–3.3")), kind=Kind.CONSTRUCTION,
              needs=("count_parameters", "count_array_parameters"), proof="counting.parameters")
def seed003_parameters(subject, ctx) -> Evidence:
    r"""Seed 003's one-block encoder has 10,656 parameters

    .. math:: E=32,\ H=2,\ D_h=32,\ F=32,\ n_{\mathrm{layers}}=1,\ \text{biases}:\quad
        \underbrace{3H(ED_h+D_h)}_{6{,}336}+\underbrace{HD_hE+E}_{2{,}080}+\underbrace{2(EF)+F+E}_{2{,}112}+\underbrace{2\cdot
        2E}_{128}=10{,}656

    A fixed configuration, so a construction rather than a property: the weights are built by the
    reference init_encoder (inputs may come from the reference); both the subject's count of those
    arrays and its closed form must give the table's grand total.
    """
    from transformer_theory.impl.transformer import EncoderConfig, init_encoder

    config = EncoderConfig(d_model=32, n_heads=2, d_head=32, d_ff=32, n_layers=1, bias=True)
    params = init_encoder(config, ctx.rng())
    counted = int(subject.count_array_parameters(params))
    closed = int(subject.count_parameters(config))
    return single_case(
        [holds(counted == SEED_003_TOTAL, f"count_array_parameters gives {counted:,}"),
         holds(closed == SEED_003_TOTAL, f"count_parameters gives {closed:,}")],
        detail=f"Counted arrays: {counted:,}; closed form: {closed:,}; seed 003: "
               f"{SEED_003_TOTAL:,}.",
        example={"counted": counted, "closed_form": closed})


@st.composite
def _config(draw):
    from transformer_theory.impl.transformer import EncoderConfig

    h = draw(st.integers(1, 4))
    g = draw(st.sampled_from([None] + [d for d in range(1, h + 1) if h % d == 0]))
    e = draw(st.integers(h, 24))
    d_head = draw(st.one_of(st.none(), st.integers(1, 12)))
    return EncoderConfig(d_model=e, n_heads=h, d_ff=draw(st.integers(1, 48)),
                         n_layers=draw(st.integers(1, 3)), d_head=d_head, n_kv_heads=g,
                         bias=draw(st.booleans()), norm=draw(st.sampled_from(["post", "pre"])))


@claims.claim("counting.parameters_closed_form",
              sources=(SEED_003_TABLE, VASWANI_2017.at("§3.2.2–3.3")), kind=Kind.PROPERTY,
              needs=("count_parameters", "count_array_parameters"))
def parameters_closed_form(subject, ctx) -> Evidence:
    r"""The closed-form parameter count equals the arrays actually built

    .. math:: n_{\mathrm{layers}}\big[(H+2G)(ED_h+bD_h)+HD_hE+bE+2EF+b(F+E)+4E\big]=\#\{\text{entries
        of the built arrays}\}

    G is the number of key/value heads (G = H for multi-head attention, fewer for grouped-query
    attention), b = 1 with biases. Configs are drawn with and without biases, GQA, explicit head
    widths and both LayerNorm placements; the arrays come from the reference init_encoder. Both the
    subject's closed form and its count of the arrays must equal the statement's formula.
    """
    from transformer_theory.impl.transformer import init_encoder

    strategy = st.tuples(_config(), SEEDS)

    def measure(args):
        config, seed = args
        params = init_encoder(config, np.random.default_rng(seed))
        counted = int(subject.count_array_parameters(params))
        closed = int(subject.count_parameters(config))
        formula = closed_form_parameters(config)
        return holds(counted == closed == formula,
                     f"closed form {closed}, counted arrays {counted}, formula {formula}")
    return for_all(ctx, strategy, measure,
                   detail="count_parameters(config) equals the number of entries of the "
                          "arrays init_encoder builds, and the stated formula.")


def naive_matmul(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """The schoolbook product ``a @ b`` with its scalar multiplications counted.

    Three explicit loops, one multiplication per innermost step, so the count
    is what the loops perform rather than a formula.
    """
    n, m = a.shape
    p = b.shape[1]
    out = np.zeros((n, p))
    count = 0
    for i in range(n):
        for j in range(p):
            for r in range(m):
                out[i, j] += a[i, r] * b[r, j]
                count += 1
    return out, count


@st.composite
def _flops_case(draw):
    from transformer_theory.impl.transformer import EncoderConfig

    h = draw(st.integers(1, 3))
    g = draw(st.sampled_from([None] + [d for d in range(1, h + 1) if h % d == 0]))
    d_head = draw(st.integers(1, 6))
    e = draw(st.integers(1, 16))
    config = EncoderConfig(d_model=e, n_heads=h, d_ff=draw(st.integers(1, 16)),
                           d_head=d_head, n_kv_heads=g, bias=draw(st.booleans()))
    return {"config": config, "N": draw(st.integers(1, 10)), "seed": draw(SEEDS)}


@claims.claim("counting.naive_attention_multiplications",
              sources=(SEED_000_FLOPS, VASWANI_2017.at("§4, Table 1")), kind=Kind.PROPERTY,
              needs=("attention_flops",), proof="counting.flops")
def naive_attention_multiplications(subject, ctx) -> Evidence:
    r"""Naive attention costs H N² D_h multiplications per matrix product

    .. math:: \#\mathrm{mult}\big(QK^{\top}\big)=H\,N^2D_h,\qquad
        \#\mathrm{mult}\big(AV\big)=H\,N^2D_v\qquad(=dN^2\ \text{for } HD_h=d)

    attention_flops(config, N)['scores'] and ['weighted_values'] are compared with the formula and
    with the number of multiplications an explicit triple loop performs for Q_h K_h^T and A_h V_h,
    head by head, on random (N, D_h) matrices; the loop's products are checked against numpy so
    that it is a real matrix product. Counted, not timed; D_v = D_h in the config.
    """
    def measure(c):
        config, n = c["config"], c["N"]
        h, dh = config.n_heads, config.head_dim
        counts = subject.attention_flops(config, n)
        rng = np.random.default_rng(c["seed"])
        looped_scores = looped_values = 0
        for _ in range(h):                                         # one product per head
            q, k, v = (rng.standard_normal((n, dh)) for _ in range(3))   # (N, Dh) each
            s, count_s = naive_matmul(q, k.T)                      # (N, N)
            o, count_v = naive_matmul(s, v)                        # (N, Dv)
            if not (np.allclose(s, q @ k.T) and np.allclose(o, s @ v)):
                return holds(False, "the counting loop is not a matrix product")
            looped_scores += count_s
            looped_values += count_v
        scores, values = int(counts["scores"]), int(counts["weighted_values"])
        ok = (scores == h * n * n * dh == looped_scores
              and values == h * n * n * dh == looped_values)
        return holds(ok, f"scores {scores} (loop {looped_scores}), weighted_values {values} "
                         f"(loop {looped_values}) for H={h}, N={n}, D_h={dh}")
    return for_all(ctx, _flops_case(), measure,
                   detail="The counts equal H N^2 D_h for both products and the multiplications "
                          "of an explicit triple loop.")


@st.composite
def _kaplan_config(draw):
    from transformer_theory.impl.transformer import EncoderConfig

    h = draw(st.integers(1, 8))
    d_head = draw(st.integers(1, 16))
    d = h * d_head
    return EncoderConfig(d_model=d, n_heads=h, d_ff=4 * d, n_layers=draw(st.integers(1, 4)),
                         bias=False, norm=draw(st.sampled_from(["post", "pre"])))


@claims.claim("counting.kaplan_approximation", sources=(KAPLAN_COUNT, SEED_003_TABLE),
              kind=Kind.PROPERTY, needs=("count_parameters", "count_array_parameters"),
              proof="counting.parameters")
def kaplan_approximation(subject, ctx) -> Evidence:
    r"""Without biases, with d_ff = 4d and H·D_h = d, a layer has 12d² + 4d parameters

    .. math:: b=0,\ F=4d,\ HD_h=d,\ G=H:\quad
        \frac{N_{\mathrm{params}}}{n_{\mathrm{layers}}}=\underbrace{4d^2}_{W_Q,W_K,W_V,W_O}+\underbrace{8d^2}_{W_1,W_2}+\underbrace{4d}_{\text{2
        LayerNorms}}=12d^2+4d

    Kaplan et al. approximate the non-embedding count by N ≈ 12 n_layer d^2, dropping biases and
    other sub-leading terms; the closed form gives exactly 12 d^2 + 4 d per layer, the 4 d being
    the gains and biases of the two LayerNorms (relative excess 1/(3d)). Checked on the closed form
    and on arrays built by the reference init_encoder.
    """
    from transformer_theory.impl.transformer import init_encoder

    def measure(args):
        config, seed = args
        d, layers = config.d_model, config.n_layers
        exact = layers * (12 * d * d + 4 * d)
        closed = int(subject.count_parameters(config))
        counted = int(subject.count_array_parameters(
            init_encoder(config, np.random.default_rng(seed))))
        return holds(closed == counted == exact,
                     f"d={d}, n_layers={layers}: closed form {closed}, counted {counted}, "
                     f"12d^2+4d per layer gives {exact}")
    return for_all(ctx, st.tuples(_kaplan_config(), SEEDS), measure,
                   detail="Per layer the count is 12 d^2 + 4 d exactly: Kaplan's 12 d^2 plus "
                          "the LayerNorm parameters.")


# ---------------------------------------------------------------------------
# Vaswani et al. 2017, Table 1: the four layer types, counted
# ---------------------------------------------------------------------------

TABLE_1 = VASWANI_2017.at("§4, Table 1 ('Maximum path lengths, per-layer complexity and "
                          "minimum number of sequential operations for different layer types') "
                          "and its text ('O(n/k) convolutional layers in the case of contiguous "
                          "kernels, or O(log_k(n)) in the case of dilated convolutions')")
SEED_001_CONV = SEED_001.at("'convolutions are O(knd^2) but self attention ... O(nd^2)'")


def _count_self_attention(x: np.ndarray) -> int:
    """softmax(X X^T) X with both products as counted loops (one head, Q = K = V = X)."""
    s, c1 = naive_matmul(x, x.T)                                           # (n, n)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    _, c2 = naive_matmul(p / p.sum(axis=1, keepdims=True), x)             # (n, d)
    return c1 + c2


def _count_recurrent(x: np.ndarray, w: np.ndarray, u: np.ndarray) -> int:
    """h_t = tanh(W h_{t-1} + U x_t): two (d x d)(d x 1) products per step."""
    h, count = np.zeros((w.shape[0], 1)), 0
    for t in range(x.shape[0]):
        wh, c1 = naive_matmul(w, h)
        ux, c2 = naive_matmul(u, x[t][:, None])
        h, count = np.tanh(wh + ux), count + c1 + c2
    return count


def _count_convolution(x: np.ndarray, kernel: np.ndarray, dilation: int = 1) -> int:
    """y_i = sum_tap W_tap x_{i - tap * dilation} (causal, zero padding computed too)."""
    n, count = x.shape[0], 0
    padded = np.concatenate([np.zeros((dilation * (kernel.shape[0] - 1), x.shape[1])), x])
    for i in range(n):
        for tap in range(kernel.shape[0]):
            j = i - tap * dilation + dilation * (kernel.shape[0] - 1)
            _, c = naive_matmul(kernel[tap], padded[j][:, None])
            count += c
    return count


def _count_restricted(x: np.ndarray, r: int) -> int:
    """Self-attention of each query over the r nearest positions (the window slides at the ends)."""
    n, count = x.shape[0], 0
    for i in range(n):
        start = min(max(i - r // 2, 0), n - r)
        keys = x[start:start + r]                                          # (r, d)
        s, c1 = naive_matmul(x[i][None], keys.T)                           # (1, r)
        _, c2 = naive_matmul(np.exp(s - s.max()) / np.exp(s - s.max()).sum(), keys)
        count += c1 + c2
    return count


def _layers_to_connect(n: int, offsets_of_layer, *, causal: bool) -> int:
    """The fewest stacked layers after which every output depends on every (earlier) input."""
    reach = np.eye(n, dtype=bool)
    want = np.tril(np.ones((n, n), dtype=bool)) if causal else np.ones((n, n), dtype=bool)
    for depth in range(1, 4 * n):
        step = np.zeros((n, n), dtype=bool)
        for off in offsets_of_layer(depth - 1):
            step |= np.eye(n, k=-off, dtype=bool)                          # y_i <- x_{i - off}
        reach = (step.astype(int) @ reach.astype(int)) > 0
        if np.all(reach[want]):
            return depth
    raise AssertionError("the layers never connect every pair")


def _graph_distances(graph) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    n = graph.n_nodes
    adj = coo_matrix((np.ones(graph.src.size), (graph.src, graph.dst)), shape=(n, n))
    return shortest_path(adj, directed=True, unweighted=True)


def _restricted_graph(graph, n: int, r: int):
    """The self-attention graph with only the edges k_j -> a_i, v_j -> o_i of |i - j| <= r // 2."""
    from transformer_theory.impl.recurrence import DependencyGraph

    def index(node):
        return int(graph.labels[node].rsplit("_", 1)[1])

    keep = [not (graph.labels[s][0] in "kv" and graph.labels[d][0] in "ao"
                 and abs(index(s) - index(d)) > r // 2)
            for s, d in zip(graph.src, graph.dst)]
    return DependencyGraph(graph.labels, graph.src[keep], graph.dst[keep])


@claims.claim(
    "counting.layer_type_table",
    sources=(TABLE_1, SEED_001_CONV, SEED_003.at("Problems with RNNs: 'path length for "
                                                  "codependent computation between states "
                                                  "grows with sequence'")),
    kind=Kind.CONSTRUCTION, needs=("attention_flops",), uses=("transformer_encoder_graph",))
def layer_type_table(subject, ctx) -> Evidence:
    r"""Table 1 of Vaswani et al., counted: complexity, sequential operations and maximum path
    length of self-attention, recurrent, convolutional and restricted layers

    .. math:: \begin{array}{llll}\text{layer}&\#\mathrm{mult}&\text{sequential}&\text{path}\\\text{self-attention}&2n^2d&O(1)&1\\
        \text{recurrent}&2nd^2&n&n\\\text{convolutional}&knd^2&O(1)&\lceil\frac{n-1}{k-1}\rceil,\
        \text{dilated }\lceil\log_k n\rceil\\ \text{restricted}&2rnd&O(1)&\lceil\frac{n-1}{\lfloor
        r/2\rfloor}\rceil\end{array}

    Complexity: multiplications performed by explicit loops (one head; the Q, K, V projections are
    a position-wise O(n d^2) and not part of Table 1's self-attention term), for n in {4, 8, 16}, d
    in {2, 3}, k in {2, 3}, r in {3, 5}; each count must equal the stated formula, and the
    self-attention count the subject's attention_flops (scores + weighted values, H = 1, D_h = d).
    Sequential operations: the longest path (nodes) of one layer's dependency graph: the subject's
    transformer_encoder_graph must give the same length for every n (and its window-restricted
    subgraph too), the recurrent graph n + 1. Path length: layers needed before every output
    depends on every (earlier) input, for n up to 64, causal convolutions of width k (contiguous
    and with dilation k^l at layer l) and a centred window of r; and x_1 -> h_n in the recurrent
    graph, x_j -> y_i in the attention graph (shortest paths). Power: one multiplication or one
    layer off anywhere in the grid.
    """
    from transformer_theory.impl import recurrence as R
    from transformer_theory.impl.transformer import EncoderConfig

    encoder_graph = construction(subject, "transformer_encoder_graph", R.transformer_encoder_graph)
    rng = ctx.rng("layers")
    measurements, ratios = [], {}
    for n in (4, 8, 16):
        for d in (2, 3):
            x = rng.standard_normal((n, d))
            flops = subject.attention_flops(EncoderConfig(d_model=d, n_heads=1, d_head=d, d_ff=1),
                                            n)
            looped = _count_self_attention(x)
            counted = {"self-attention": (looped, 2 * n * n * d),
                       "recurrent": (_count_recurrent(x, *rng.standard_normal((2, d, d))),
                                     2 * n * d * d)}
            measurements.append(holds(int(flops["scores"]) + int(flops["weighted_values"])
                                      == looped, f"n={n}, d={d}: attention_flops gives "
                                                 f"{flops['scores']} + {flops['weighted_values']}"
                                                 f", the loops {looped}"))
            for k in (2, 3):
                kernel = rng.standard_normal((k, d, d))
                counted[f"convolution k={k}"] = (_count_convolution(x, kernel), k * n * d * d)
                counted[f"dilated k={k}"] = (_count_convolution(x, kernel, dilation=k),
                                             k * n * d * d)
            for r in (r for r in (3, 5) if r <= n):                      # a window within n
                counted[f"restricted r={r}"] = (_count_restricted(x, r), 2 * r * n * d)
            for name, (got, want) in counted.items():
                measurements.append(holds(got == want, f"{name}, n={n}, d={d}: {got} "
                                                       f"multiplications, expected {want}"))
                ratios.setdefault(name, set()).add(got / want)
    lengths = (4, 8, 16, 32, 64)
    sequential = {}
    for n in lengths:
        graph = encoder_graph(n, 1)
        sequential.setdefault("self-attention", set()).add(R.longest_path(graph))
        for r in (3, 5):
            sequential.setdefault(f"restricted r={r}", set()).add(
                R.longest_path(_restricted_graph(graph, n, r)))
        rnn = R.longest_path(R.rnn_encoder_graph(n))
        measurements.append(holds(rnn == n + 1, f"recurrent, n={n}: {rnn} sequential nodes"))
        dist = _graph_distances(R.rnn_encoder_graph(n))
        measurements.append(holds(dist[0, 2 * n] == n, f"recurrent, n={n}: x_1 -> h_n takes "
                                                       f"{dist[0, 2 * n]} steps, expected {n}"))
        dist = _graph_distances(graph)
        xs = [i for i, lab in enumerate(graph.labels) if lab.startswith("x_")]
        ys = [i for i, lab in enumerate(graph.labels) if lab.startswith("y^(1)_")]
        sequential.setdefault("attention x_j -> y_i", set()).add(
            float(dist[np.ix_(xs, ys)].max()))
        for k in (2, 3):
            contiguous = _layers_to_connect(n, lambda l, k=k: range(k), causal=True)
            dilated = _layers_to_connect(n, lambda l, k=k: [t * k ** l for t in range(k)],
                                         causal=True)
            measurements.append(holds(contiguous == -(-(n - 1) // (k - 1)),
                                      f"convolution k={k}, n={n}: {contiguous} layers"))
            measurements.append(holds(dilated == math.ceil(math.log(n, k) - 1e-12),
                                      f"dilated k={k}, n={n}: {dilated} layers"))
        for r in (3, 5):
            window = _layers_to_connect(n, lambda l, r=r: range(-(r // 2), r // 2 + 1),
                                        causal=False)
            measurements.append(holds(window == -(-(n - 1) // (r // 2)),
                                      f"restricted r={r}, n={n}: {window} layers"))
    for name, values in sequential.items():
        measurements.append(holds(len(values) == 1, f"{name}: lengths {sorted(values)} over "
                                                    f"n = {lengths}, not constant"))
    return single_case(
        measurements,
        detail="Counted multiplications / Table 1 term: "
               + ", ".join(f"{k}: {sorted(v)}" for k, v in ratios.items())
               + "; one-layer longest paths and attention path lengths constant over n = "
               + f"{lengths}: " + ", ".join(f"{k}: {sorted(v)}" for k, v in sequential.items())
               + "; recurrent n + 1 nodes and n steps; layers to connect all pairs "
                 "ceil((n-1)/(k-1)), ceil(log_k n), ceil((n-1)/floor(r/2)).")


SEED_003_COMPUTATIONS = SEED_003.at("table, 'Self Attention Computations': 'For a single element "
                                    "32 X 32 x 600 614,400', 'For Entire Sequence () X 600 "
                                    "368,640,000'")


@claims.claim(
    "counting.seed003_attention_computations",
    sources=(SEED_003_COMPUTATIONS, VASWANI_2017.at("§4, Table 1 (O(n^2 d) per self-attention "
                                                     "layer)")),
    kind=Kind.CONSTRUCTION, needs=("attention_flops",))
def seed003_attention_computations(subject, ctx) -> Evidence:
    r"""Seed 003's 'self-attention computations': E·E·N = 614,400 per element, E²N² = 368,640,000
    per sequence, E/2 = 16 times the 2N²E of shared projections

    .. math:: E=32,\ N=600:\quad \#\mathrm{mult}\big((N\times E)(E\times
        E)\big)=E^2N=614{,}400,\quad N\cdot
        E^2N=368{,}640{,}000=\tfrac{E}{2}\cdot\underbrace{2N^2E}_{QK^{\top},\,AV}

    The seed writes only the factors: 32 x 32 x 600 for one element and that times 600 for the
    sequence, with E = 32 (its table's embedding dimension) and N = 600 (its sequence length). E E
    N is the multiplication count of one E x E matrix applied to all N elements, counted here by an
    explicit loop on small sizes (E in 1..4, N in 1..6) and then evaluated at the seed's sizes; N
    times it is what recomputing that product for each element costs. With the projections computed
    once, the subject's attention_flops (H = 1, D_h = E) must give scores + weighted values = 2 N^2
    E = 23,040,000, so the seed's sequence count is E / 2 = 16 times the layer's pairwise work.
    Power: any count off by one multiplication.
    """
    from transformer_theory.impl.transformer import EncoderConfig

    rng = ctx.rng("products")
    measurements = []
    for e in range(1, 5):
        for n in range(1, 7):
            _, count = naive_matmul(rng.standard_normal((n, e)), rng.standard_normal((e, e)))
            measurements.append(holds(count == e * e * n, f"E={e}, N={n}: {count} "
                                                          f"multiplications, expected E^2 N"))
    e, n = 32, 600
    per_element, sequence = e * e * n, e * e * n * n
    flops = subject.attention_flops(EncoderConfig(d_model=e, n_heads=1, d_head=e, d_ff=e), n)
    pairwise = int(flops["scores"]) + int(flops["weighted_values"])
    measurements += [holds(per_element == 614_400, f"E^2 N = {per_element:,}"),
                     holds(sequence == 368_640_000, f"E^2 N^2 = {sequence:,}"),
                     holds(pairwise == 2 * n * n * e and sequence * 2 == e * pairwise,
                           f"attention_flops gives {pairwise:,} for scores and weighted values; "
                           f"2 N^2 E = {2 * n * n * e:,}")]
    return single_case(measurements,
                       detail=f"E^2 N = {per_element:,} per element and E^2 N^2 = {sequence:,} "
                              f"for the sequence, as the seed; the shared computation's scores "
                              f"and weighted values take {pairwise:,}, {sequence / pairwise:g} "
                              f"times fewer.")
