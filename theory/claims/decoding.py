"""Decoding with a KV cache as real batches do it: grouped-query heads, rotary positions,
left-padded prompts, and padding that holds garbage.

The plain cache claim (``masking.kv_cache_equals_full``) decodes one unpadded
multi-head batch. Real decoders differ from it in the places where their bugs
are: the rotary offset of a decoded token, the positions of a left-padded
sequence counted from its first real token, and padding slots that hold
uninitialised memory.

References
----------
Pope et al. 2023, Efficiently Scaling Transformer Inference, §2 (the KV cache).
Su et al. 2021, RoFormer, §3.4.2 (the rotation applied at each position).
Ainslie et al. 2023, GQA, §2 (kv heads shared by groups of query heads).
Seed 004, item 24 (teacher forcing computes all positions at once; decoding
does one at a time).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..checks import compare, for_all, holds
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import (AINSLIE_2023, MISTRAL_SRC, POPE_2023, SEED_001, SEED_004, SU_2021,
                       VASWANI_2017)
from ..strategies import dtype_seed_rng, normal
from ..tolerance import tolerance
from ._common import definition_mha

claims = ClaimSet("decoding")

CACHE = POPE_2023.at("§2 (the KV cache)")
ROTATION = SU_2021.at("§3.4.2 (the rotation applied at each position)")
GROUPS = AINSLIE_2023.at("§2 (grouped-query attention)")
_NO_BASELINE = ("decode_step's positions and rope_base keywords have no naive half-precision "
                "baseline yet (theory/rounding_baseline.py)")


@st.composite
def _decode_case(draw):
    """GQA (or MHA, G = H) params with even head width, a batch and a RoPE base."""
    from transformer_theory.impl.attention import init_grouped_query

    g = draw(st.integers(1, 2), label="G")
    h = g * draw(st.integers(1, 2), label="H/G")
    d_head = draw(st.sampled_from([2, 4]), label="d_head")
    e = h * d_head
    dt, seed, rng = dtype_seed_rng(draw)
    params = init_grouped_query(e, h, g, rng, dtype=dt)
    return {"params": params, "E": e, "H": h, "G": g, "dtype": dt, "seed": seed,
            "B": draw(st.integers(1, 3), label="B"),
            "base": draw(st.sampled_from([10.0, 100.0, 10000.0]), label="rope_base"),
            "rng": rng}


def _decode(subject, x, params, positions, base, dtype):
    """Decode x (B, L, E) token by token through the subject's cache; (B, L, E)."""
    b, length, _ = x.shape
    cache = subject.init_kv_cache(params, (b,), length, dtype)
    steps = []
    for t in range(length):
        pos = None if positions is None else positions[:, t]
        y, cache = subject.decode_step(x[:, t:t + 1, :], params, cache, positions=pos,
                                       rope_base=base)
        steps.append(np.asarray(y))
    return np.concatenate(steps, axis=-2)


@claims.claim("decoding.prefill_then_decode",
              sources=(CACHE, ROTATION, GROUPS, SEED_004.at("item 24")), kind=Kind.PROPERTY,
              needs=("grouped_query_attention", "decode_step", "init_kv_cache"),
              keywords=(("decode_step", "rope_base"), ("grouped_query_attention", "rope_base")),
              full_precision_only=_NO_BASELINE)
def prefill_then_decode(subject, ctx) -> Evidence:
    r"""Prefill then decode with GQA and RoPE equals the full causal forward

    .. math:: \mathrm{dec}(x_{n+t}\mid\mathrm{cache}(x_{\le
        n+t-1}))=\mathrm{GQA}_{\mathrm{causal}}(\mathrm{RoPE};X)_{n+t}

    n prompt tokens written to the cache, then m decoded tokens, each query and key rotated at its
    own position (the cache holds rotated keys). Both the decoded rows and the subject's causal
    forward are compared with the float64 definition (heads one by one, RoPE on each head's queries
    and keys); H/G in {1, 2}. A decode step that rotates at the wrong offset, or not at all, moves
    every score.
    """
    strategy = st.tuples(_decode_case(), st.integers(1, 4), st.integers(1, 4))

    def measure(args):
        c, n, m = args
        x = normal(c["rng"], (c["B"], n + m, c["E"]), c["dtype"])
        exact = definition_mha(x, x, c["params"], causal=True, rope_base=c["base"])
        full = subject.grouped_query_attention(x, x, c["params"], causal=True,
                                               rope_base=c["base"])
        decoded = _decode(subject, x, c["params"], None, c["base"], c["dtype"])
        tol = tolerance("composite", c["dtype"], n=3 * c["E"] + n + m)
        return max((compare(decoded, exact, tol, note="decoded rows differ from the definition"),
                    compare(full, exact, tol, note="the causal forward differs from the "
                                                   "definition")), key=lambda r: r.error)
    return for_all(ctx, strategy, measure,
                   detail="1-4 prompt tokens and 1-4 decoded tokens with RoPE, MHA and GQA: "
                          "decoding equals the causal forward and both equal the float64 "
                          "definition.")


@claims.claim("decoding.left_padded_batch", sources=(CACHE, ROTATION), kind=Kind.PROPERTY,
              needs=("decode_step", "init_kv_cache"),
              keywords=(("decode_step", "positions"), ("decode_step", "rope_base")),
              full_precision_only=_NO_BASELINE)
def left_padded_batch(subject, ctx) -> Evidence:
    r"""Decoding a left-padded batch equals decoding each sequence alone

    .. math:: \mathrm{dec}\big(\mathrm{pad}_{p_b}(x^{(b)})\big)_{p_b+t}=\mathrm{dec}(x^{(b)})_t\quad\text{positions
        counted from the first real token}

    Sequences of different lengths left-padded to a common length; the padding tokens are NaN
    (uninitialised memory). positions gives each token's position from its sequence's first real
    token (negative for padding). Each real token's output must equal the output of its sequence
    decoded alone with RoPE, and stay finite: a rotary offset counted from the padded start, a
    padding key let in, or a masked weight multiplied by a NaN value fails.
    """
    strategy = st.tuples(_decode_case(), st.data())

    def measure(args):
        c, data = args
        lengths = [data.draw(st.integers(1, 5), label=f"length_{b}") for b in range(c["B"])]
        total = max(lengths) + data.draw(st.integers(0, 2), label="extra_padding")
        x = np.full((c["B"], total, c["E"]), np.nan, dtype=c["dtype"])
        alone = []
        for b, n in enumerate(lengths):
            seq = normal(c["rng"], (1, n, c["E"]), c["dtype"])
            x[b, total - n:] = seq[0]
            alone.append(_decode(subject, seq, c["params"], None, c["base"], c["dtype"])[0])
        pad = np.array([total - n for n in lengths])                        # (B,)
        positions = np.arange(total)[None, :] - pad[:, None]                # (B, L)
        padded = _decode(subject, x, c["params"], positions, c["base"], c["dtype"])
        real = [padded[b, total - n:] for b, n in enumerate(lengths)]
        if not all(np.all(np.isfinite(r)) for r in real):
            return holds(False, "a NaN padding token reached a real token's output")
        tol = tolerance("composite", c["dtype"], n=3 * c["E"] + total)
        return max((compare(r, a, tol, note=f"sequence {b} (padding {pad[b]}) decodes "
                                            f"differently from alone")
                    for b, (r, a) in enumerate(zip(real, alone))), key=lambda r: r.error)
    return for_all(ctx, strategy, measure,
                   detail="One to three sequences of 1-5 tokens, left-padded with NaN tokens "
                          "to a common length: every real token decodes as in its sequence "
                          "alone.")


@claims.claim("decoding.unfilled_cache_ignored",
              sources=(CACHE, VASWANI_2017.at("§3.2.3 (masking out illegal connections)")),
              kind=Kind.PROPERTY, needs=("decode_step", "init_kv_cache"))
def unfilled_cache_ignored(subject, ctx) -> Evidence:
    r"""Cache slots not yet written (NaN memory) do not reach a decoded token

    .. math:: \mathrm{dec}(x_t\mid K_{[0,t)},V_{[0,t)},\
        K_{[t+1,L)}=V_{[t+1,L)}=\mathrm{NaN})=\mathrm{dec}(x_t\mid K_{[0,t)},V_{[0,t)})

    A preallocated cache is often np.empty or torch.empty: the slots after the current length hold
    garbage. They are filled with NaN after every step; the decoded outputs must be finite and
    equal those of a zero-initialised cache. A decoder that attends the whole buffer with a
    multiplicative mask, or whose softmax runs over unwritten slots, fails.
    """
    from transformer_theory.impl.attention import KVCache

    strategy = st.tuples(_decode_case(), st.integers(1, 5))

    def measure(args):
        c, length = args
        x = normal(c["rng"], (c["B"], length, c["E"]), c["dtype"])
        clean = subject.init_kv_cache(c["params"], (c["B"],), length, c["dtype"])
        dirty = clean
        worst = None
        for t in range(length):
            k, v = np.array(dirty.k, copy=True), np.array(dirty.v, copy=True)
            k[..., t:, :] = np.nan
            v[..., t:, :] = np.nan
            dirty = KVCache(k, v, dirty.length)
            y_clean, clean = subject.decode_step(x[:, t:t + 1], c["params"], clean)
            y_dirty, dirty = subject.decode_step(x[:, t:t + 1], c["params"], dirty)
            if not np.all(np.isfinite(np.asarray(y_dirty))):
                return holds(False, f"step {t}: a NaN in an unwritten slot reached the output")
            m = compare(y_dirty, y_clean, tolerance("exact", c["dtype"]),
                        note=f"step {t}: unwritten slots changed the output")
            worst = m if worst is None or m.error > worst.error else worst
        return worst
    return for_all(ctx, strategy, measure,
                   detail="The slots after the cache length hold NaN at every step: outputs "
                          "are finite and bit for bit those of a zero-initialised cache.")


@claims.claim(
    "decoding.window_cache",
    sources=(MISTRAL_SRC.at("rolling buffer cache"), CACHE),
    kind=Kind.PROPERTY, needs=("grouped_query_attention", "decode_step", "init_kv_cache"),
    keywords=(("init_kv_cache", "window"), ("grouped_query_attention", "window"),
              ("decode_step", "rope_base"), ("grouped_query_attention", "rope_base")),
    full_precision_only=_NO_BASELINE)
def window_cache(subject, ctx) -> Evidence:
    r"""A sliding-window cache of the last left + 1 keys decodes as the full window forward

    .. math:: \mathrm{dec}_{w}(x_t\mid
        K_{[t-w,t)},V_{[t-w,t)})=\mathrm{GQA}_{\mathrm{causal},(w,0)}(X)_t,\qquad
        |\mathrm{cache}|=\min(t,w+1)

    init_kv_cache(..., window=w) keeps only the last w + 1 keys and values (the oldest dropped as a
    token is written), however long the decoding runs past w + 1 tokens; with RoPE (keys cached
    rotated). The decoded rows equal the causal forward with window (w, 0), and both the float64
    definition under the band mask; the cache never holds more than w + 1 slots. Keeping w keys, or
    the first w + 1, fails.
    """
    strategy = st.tuples(_decode_case(), st.integers(0, 3), st.integers(1, 8))

    def measure(args):
        c, w, length = args
        x = normal(c["rng"], (c["B"], length, c["E"]), c["dtype"])
        i, j = np.arange(length)[:, None], np.arange(length)[None, :]
        band = (j <= i) & (j >= i - w)                                      # (L, L)
        exact = definition_mha(x, x, c["params"], causal=True, rope_base=c["base"], mask=band)
        full = subject.grouped_query_attention(x, x, c["params"], causal=True, window=(w, 0),
                                               rope_base=c["base"])
        cache = subject.init_kv_cache(c["params"], (c["B"],), length, c["dtype"], window=w)
        steps = []
        for t in range(length):
            y, cache = subject.decode_step(x[:, t:t + 1], c["params"], cache,
                                           rope_base=c["base"])
            slots = np.shape(cache.k)[-2]
            if slots > w + 1:
                return holds(False, f"step {t}: a window-{w} cache holds {slots} slots")
            steps.append(np.asarray(y))
        decoded = np.concatenate(steps, axis=-2)
        tol = tolerance("composite", c["dtype"], n=3 * c["E"] + length)
        return max((compare(decoded, exact, tol, note=f"window-{w} cache decodes differently"),
                    compare(full, exact, tol, note=f"the window ({w}, 0) forward differs")),
                   key=lambda r: r.error)
    return for_all(ctx, strategy, measure,
                   detail="Windows w = 0..3 and 1-8 tokens (past the window), MHA and GQA "
                          "with RoPE: the rolling cache decodes as the windowed causal forward.")


@st.composite
def _joint_case(draw):
    """A random joint distribution p(y_1, ..., y_T) over V^T with every entry positive, and a
    random factorised q (one distribution over V per output)."""
    dt, seed, rng = dtype_seed_rng(draw)
    v = draw(st.integers(2, 4), label="V")
    t = draw(st.integers(2, 3), label="T")
    spread = draw(st.sampled_from([0.5, 2.0, 5.0]), label="spread")
    logits = spread * rng.standard_normal((v,) * t)                     # (V,)*T
    p = np.exp(logits - logits.max())
    return {"dtype": dt, "V": v, "T": t, "p": p / p.sum(),
            "q": rng.dirichlet(np.ones(v), size=t)}                      # (T, V)


def _total_correlation(p: np.ndarray) -> float:
    """``sum_t H(p_t) - H(p)`` in nats: the KL from ``p`` to the product of its marginals."""
    def entropy(r):
        return -float(np.sum(r * np.log(r)))
    marginals = [p.sum(axis=tuple(a for a in range(p.ndim) if a != t)) for t in range(p.ndim)]
    return sum(entropy(m) for m in marginals) - entropy(p)


@claims.claim(
    "decoding.parallel_outputs_independent",
    sources=(SEED_001.at("Transformer Motivation: 'generating all at once assumes the output "
                         "are conditionally independent'"),
             VASWANI_2017.at('in its words: "At each step the model is auto-regressive, '
                             'consuming the previously generated symbols as additional input '
                             'when generating the next"')),
    kind=Kind.PROPERTY, needs=("softmax",),
    full_precision_only="the claim's evidence is a product of T softmax outputs against a "
                        "float64 joint, whose half-precision rounding has no naive baseline of "
                        "its own")
def parallel_outputs_independent(subject, ctx) -> Evidence:
    r"""Limitation: outputs generated all at once are independent given the input; left-to-right
    decoding is exact

    .. math:: \min_{q=\prod_t q_t}\mathrm{KL}(p\,\|\,q)=\sum_t H(p_t)-H(p)\
        \bigl(q^*_t=p_t\bigr),\qquad \prod_t\mathrm{softmax}\bigl(\log p(y_{\le t})\bigr)_{y_t}=p

    Random joint distributions p over V^T (V = 2..4, T = 2..3). Left to right: the subject's
    softmax over the last axis of log p(y_1..y_t) (the prefix marginal) gives p(y_t | y_<t), and
    the product of the T conditionals must be p. All at once: a decoder whose outputs are
    independent given the input models q = prod_t q_t; for any such q, KL(p || q) = KL(p || prod_t
    p_t) + sum_t KL(p_t || q_t) (checked on a random q), so the best it can do is the product of
    the marginals and it misses p by the total correlation sum_t H(p_t) - H(p) > 0 (ln V for two
    outputs that must agree). Power: a softmax over the wrong axis, or one with an extra zero
    logit, breaks the product.
    """
    def measure(c):
        p, t, dt = c["p"], c["T"], c["dtype"]
        chain = np.ones_like(p)
        for step in range(1, t + 1):
            prefix = p.sum(axis=tuple(range(step, t)))                  # (V,)*step
            cond = np.asarray(subject.softmax(np.log(prefix).astype(dt), axis=-1),
                              dtype=np.float64)                          # p(y_step | y_<step)
            chain = chain * cond.reshape(cond.shape + (1,) * (t - step))
        got = compare(chain, p, tolerance("composite", dt, n=t * c["V"]),
                      note="the product of the left-to-right conditionals is not the joint")
        if not got.ok:
            return got
        q = c["q"]                                                     # (T, V)
        prod_q = np.ones(())
        marg = []
        for s in range(t):
            prod_q = np.multiply.outer(prod_q, q[s])
            marg.append(p.sum(axis=tuple(a for a in range(t) if a != s)))
        kl = float(np.sum(p * np.log(p / prod_q)))
        parts = _total_correlation(p) + sum(float(np.sum(m * np.log(m / q[s])))
                                            for s, m in enumerate(marg))
        # both sides are sums of p log p, p log q, m log m and m log q terms: their rounding
        # follows the size of those terms, not of the (possibly small) difference
        scale = float(np.sum(p * (np.abs(np.log(p)) + np.abs(np.log(prod_q))))
                      + sum(np.sum(m * (np.abs(np.log(m)) + np.abs(np.log(q[s]))))
                            for s, m in enumerate(marg)))
        return compare(kl, parts, tolerance("composite", np.float64, n=p.size), scale=scale,
                       note="KL to a factorised q does not split into total correlation "
                            "plus marginal KLs")
    agree = np.eye(3) / 3                                                # y_1 = y_2, uniform
    agree = (agree + 1e-12) / (agree + 1e-12).sum()
    return for_all(ctx, _joint_case(), measure,
                   detail=f"Left-to-right conditionals from the subject's softmax multiply back "
                          f"to the joint; a decoder that emits every output at once can at best "
                          f"match the marginals and misses the joint by its total correlation "
                          f"(two outputs that must agree over 3 values: "
                          f"{_total_correlation(agree):.4f} nats = ln 3).")
