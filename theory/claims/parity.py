"""Softmax transformers for PARITY and FIRST, their fading confidence, the LayerNorm fix, and
the restriction that defeats hard attention.

Hahn (2020): with bounded attention logits one input symbol moves a soft-attention
encoder's output by O(1/n), so a transformer deciding a language on one symbol's
evidence must do so with confidence that fades with the length. Chiang & Cholak
(2022) answer with explicit two-layer softmax transformers that decide PARITY
and FIRST at every length (their confidence fades, as Hahn says it must), and
with layer normalisation that restores it. The claims run the constructions
(:mod:`transformer_theory.impl.constructions.parity`) on the subject's attention,
feed-forward network and layer norm. Hard attention has no such way out: fixing one
input bit per head pins a layer's attention
(:mod:`transformer_theory.impl.constructions.hard_restriction`), the step Hahn's
hard-attention proof repeats layer by layer.

References
----------
Chiang & Cholak 2022, Overcoming a Theoretical Limitation of Self-Attention, ACL
(abstract) and its public-domain code (github.com/ndnlp/parity).
Hahn 2020, Theoretical Limitations of Self-Attention in Neural Sequence Models, TACL.
Seed 000 (shared/seeds/000_dca4bc6ff5cc76c0.txt), "Negative result: Dyck_k is not
possible".
"""

from __future__ import annotations

import itertools

import numpy as np

from transformer_theory.impl import sdpa
from transformer_theory.impl.constructions import hard_restriction as HR
from transformer_theory.impl.constructions import parity as PT
from transformer_theory.impl.constructions.toolkit import Ops

from ..checks import Measurement, holds, single_case
from ..claim import Evidence, Kind
from ..registry import ClaimSet
from ..sources import CHIANG_2022, HAHN_2020, SEED_000
from ..subject import construction
from ..tolerance import conditioned_tolerance, tolerance

claims = ClaimSet("parity")

RECOGNISES = CHIANG_2022.at('abstract, in its words: "constructing a transformer that '
                            'recognizes PARITY with perfect accuracy, and similarly for FIRST"')
LAYER_NORM = CHIANG_2022.at('abstract, in its words: "we use layer normalization to bring the '
                            'cross-entropy of both models arbitrarily close to zero"')
FADES = CHIANG_2022.at('abstract, in its words: "a transformer\'s classification decisions '
                       'become less and less confident (that is, with cross-entropy approaching '
                       '1 bit per string) as input strings get longer and longer"')
LEMMA = HAHN_2020.at("the soft-attention lemma: with bounded attention logits, exchanging one "
                     "input symbol changes the output by O(1/n)")
SEED = SEED_000.at("Negative result: Dyck_k is not possible (Hahn's limitation)")

#: Every string of 1 .. EXHAUSTIVE bits is decided (8,190 strings a model).
EXHAUSTIVE = 12
#: Longer lengths, a few random strings each (the first layer costs O(n^2) a string).
LONG = (16, 64, 256, 1024, 2048)
#: The models: (language, layer-normalised).
MODELS = tuple(itertools.product(PT.LANGUAGES, (False, True)))


def _build(subject):
    """The weight builder under test: the subject's ``build_parity_transformer``, else ours."""
    return construction(subject, "build_parity_transformer", PT.build_parity_transformer)


def _strings(ctx, language: str, label: str):
    """``(n, words)`` batches: every string up to EXHAUSTIVE bits, then for each length in
    LONG two random strings, one in the language and one not."""
    for n in range(1, EXHAUSTIVE + 1):
        yield n, np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.int64)
    rng = ctx.rng(f"{language} {label}")
    for n in LONG:
        words = rng.integers(0, 2, size=(2, n))                        # (2, n)
        flip = 0 if language == "first" else n - 1
        for row, accept in enumerate((True, False)):
            if PT.member(language, words[row:row + 1])[0] != accept:
                words[row, flip] ^= 1
        yield n, words


def _logits(subject, model, words):
    return PT.logits(model, words, ops=Ops.from_mapping(subject.callables))


@claims.claim("parity.recognizers_exact", sources=(RECOGNISES, LAYER_NORM, SEED),
              kind=Kind.CONSTRUCTION, needs=("attention", "feed_forward", "layer_norm"),
              uses=("build_parity_transformer",))
def recognizers_exact(subject, ctx) -> Evidence:
    r"""Two-layer softmax transformers decide PARITY and FIRST at every length, with and without
    LayerNorm

    .. math:: z(w)>0\ \text{if } w\in L,\quad z(w)<0\ \text{if } w\notin L\qquad
        L\in\{\mathrm{PARITY},\mathrm{FIRST}\},\ \text{all }w\in\{0,1\}^{\le 12},\ \text{random
        }|w|\le 2048

    Chiang & Cholak's weights, written with the construction toolkit: PARITY counts the ones k by a
    uniform head, marks position k with a ReLU bump [i = k]/N, and reads that mark from CLS with
    two heads leaning to even and to odd positions; FIRST reads the first bit from CLS with one
    head. The layer-normalised versions run on the doubled stream [x, -x] with Post-LN. Each of the
    four models decides all 8,190 strings of 1-12 bits and two random strings (one in, one out) at
    n = 16 .. 2048, on the subject's attention, feed-forward network and layer norm. Power: one
    wrong decision fails it; a bump one position off flips every decision of PARITY, an uncentred
    FIRST value accepts everything.
    """
    build, measurements, cases = _build(subject), [], 0
    for language, normed in MODELS:
        model = build(language, layer_norm=normed)
        name = f"{language}{' with LayerNorm' if normed else ''}"
        for n, words in _strings(ctx, language, "decide"):
            z = _logits(subject, model, words)                         # (B,)
            accept = PT.member(language, words)                        # (B,)
            wrong = np.flatnonzero(np.where(accept, ~(z > 0), ~(z < 0)))  # z = 0: undecided
            cases += len(words)
            if wrong.size:
                example = "".join(map(str, words[wrong[0]]))
                measurements.append(holds(False, f"{name}: {wrong.size} of {len(words)} "
                                                 f"strings of {n} bits decided wrongly, e.g. "
                                                 f"{example[:40]} (logit {z[wrong[0]]:.3g})"))
                break
        else:
            measurements.append(holds(True))
    return single_case(
        measurements, cases=cases,
        detail="PARITY and FIRST, plain and layer-normalised: every string of 1-12 bits and "
               "random strings of 16-2048 bits decided correctly by the sign of the logit.")


@claims.claim("parity.confidence_fades_without_layernorm", sources=(FADES, LEMMA, SEED),
              kind=Kind.LIMITATION, needs=("attention", "feed_forward"),
              uses=("build_parity_transformer",))
def confidence_fades_without_layernorm(subject, ctx) -> Evidence:
    r"""Limitation: without LayerNorm the constructions' confidence fades, Θ(1/n) for FIRST and
    Θ(1/n²) for PARITY

    .. math:: z_{\mathrm{FIRST}}=\bigl(w_1-\tfrac12\bigr)\frac{e^\beta}{e^\beta+n},\quad
        |z_{\mathrm{PARITY}}|=\tfrac1N\Bigl|\tfrac{e^{\pm\beta}}{Z_-}-\tfrac{e^{\mp\beta}}{Z_+}\Bigr|\sim\frac{2\tanh\beta}{N^2}

    The plain models' logit z of every string of 1-12 bits, and of two strings at each n = 16 ..
    2048, equals the closed form derived in impl/constructions/parity.py (N = n + 1 positions, E
    even and O odd, Z_+ = E e^beta + O e^-beta, Z_- = E e^-beta + O e^beta, beta = 1), to the
    rounding of two softmax reductions over N keys (times N for PARITY: its bump [i = k]/N =
    relu(k/N - i/N + 1/N) is a difference of O(1) terms, so the count's absolute rounding gamma_N
    is N gamma_N relative to it). Both fall with n as Hahn's lemma says they must (within its
    O(1/n)); the cross-entropy of sigmoid(z) tends to 1 bit a string. Power: a construction or a
    subject whose margin does not fade (a layer-normalised one, an argmax attention) misses the
    closed form by O(1) relative.
    """
    build, measurements, cases, series, bits = _build(subject), [], 0, [], {}
    for language in PT.LANGUAGES:
        model = build(language, layer_norm=False)
        ns, sizes, measured = [], [], []
        for n, words in _strings(ctx, language, "margin"):
            accept = PT.member(language, words)
            z = _logits(subject, model, words)                         # (B,)
            expected = np.array([PT.plain_margin(language, n, model.beta, a) for a in accept])
            # PARITY's bump [i = k]/N is relu(k/N - i/N + 1/N): a difference of O(1) terms,
            # so the count's absolute rounding (gamma_N) is N times larger relative to it
            tol = (conditioned_tolerance("composite", np.float64, n + 1, n + 1,
                                         "the bump [i = k]/N, a difference of O(1) terms")
                   if language == "parity" else tolerance("composite", np.float64, n=n + 1))
            measurements.append(Measurement(
                float(np.max(np.abs(z - expected) / np.abs(expected))), tol,
                f"{language}, n = {n}: the logit is not the closed form"))
            cases += len(words)
            ns.append(n)
            sizes.append(float(np.min(np.abs(expected))))
            measured.append(float(np.min(np.abs(z))))
        series += [{"x": ns, "y": sizes, "label": f"{language}: |z| (closed form)",
                    "style": "line"},
                   {"x": ns, "y": measured, "label": f"{language}: |z| (subject)",
                    "style": "points"}]
        bits[language] = float(np.log1p(np.exp(-measured[-1])) / np.log(2))  # CE at n = 2048
    return single_case(
        measurements, cases=cases,
        detail=f"The plain models' logits equal the closed forms for every string of 1-12 "
               f"bits and random strings of 16-2048 bits: |z| falls like 1/n (FIRST) and "
               f"1/n^2 (PARITY); at n = 2048 the cross-entropy is {bits['first']:.4f} (FIRST) "
               f"and {bits['parity']:.7f} (PARITY) bits a string, 1 bit being a coin toss.",
        figure={"type": "lines", "xscale": "log", "yscale": "log", "xlabel": "n (bits)",
                "ylabel": "|logit|", "title": "Confidence of the plain PARITY and FIRST "
                                              "transformers", "series": series})


@claims.claim("parity.layernorm_restores_confidence", sources=(LAYER_NORM, SEED),
              kind=Kind.CONSTRUCTION, needs=("attention", "feed_forward", "layer_norm"),
              uses=("build_parity_transformer",))
def layernorm_restores_confidence(subject, ctx) -> Evidence:
    r"""With LayerNorm (ε = 0) on the doubled stream the logit is ±√W at every length

    .. math:: z_{\mathrm{LN}}(w)=\pm\sqrt{W}\quad\text{for all }n,\qquad
        \mathrm{CE}=\log_2\bigl(1+e^{-g\sqrt W}\bigr)\xrightarrow[g\to\infty]{}0

    The layer-normalised models (stream [x, -x] of width 2W, Post-LN with eps = 0, the last FFN
    clearing all but the output coordinate) give the logit sign(z) sqrt(W) (W = 9 for PARITY, 6 for
    FIRST) for every string of 1-12 bits and two at each n = 16 .. 2048, so the cross-entropy
    log2(1 + e^(-g sqrt W)) under an output gain g does not depend on n. The last LayerNorm divides
    by the output coordinate, which is of the plain margin's size: the tolerance is the composite
    rule times sqrt(W) / |plain margin|. With eps > 0 (torch's default 1e-5) the logit is z /
    sqrt(z^2/W + eps) and fades again once z^2 < W eps. Power: a layer norm that ignores eps = 0,
    or a stream that is not doubled, misses sqrt(W) by O(1).
    """
    build, measurements, cases = _build(subject), [], 0
    for language in PT.LANGUAGES:
        model = build(language, layer_norm=True)
        for n, words in _strings(ctx, language, "layer norm"):
            accept = PT.member(language, words)
            z = _logits(subject, model, words)                         # (B,)
            expected = np.array([PT.layer_norm_logit(model, a) for a in accept])
            margin = min(abs(PT.plain_margin(language, n, model.beta, a)) for a in (True, False))
            tol = conditioned_tolerance("composite", np.float64, n + 1,
                                        np.sqrt(model.layout.width) / margin,
                                        "the last LayerNorm dividing by an output coordinate "
                                        "of the plain margin's size")
            measurements.append(Measurement(
                float(np.max(np.abs(z - expected)) / np.sqrt(model.layout.width)), tol,
                f"{language}, n = {n}: the logit is not +-sqrt(W) = "
                f"+-{np.sqrt(model.layout.width):.4g} (got {z[np.argmax(np.abs(z - expected))]:.4g})"))
            cases += len(words)
    return single_case(
        measurements, cases=cases,
        detail="Layer-normalised PARITY and FIRST: the logit is +-sqrt(W) (+-3 and +-2.449) "
               "for every string of 1-12 bits and random strings of 16-2048 bits, so the "
               "cross-entropy (0.068 and 0.119 bits at gain 1) does not grow with n.")


HARD = HAHN_2020.at('abstract, in its words: across soft and hard attention, self-attention '
                    '"cannot model periodic finite-state languages, nor hierarchical structure, '
                    'unless the number of layers or heads increases with input length"; the '
                    'hard-attention proof restricts inputs (its one-layer step here)')
#: (bits n, heads H) of the hard-attention classifiers, four random classifiers each.
RESTRICTED = ((8, 1), (10, 2), (12, 3), (12, 4))


@claims.claim("parity.hard_attention_restriction", sources=(HARD, SEED), kind=Kind.LIMITATION,
              needs=(), uses=("hard_attention",))
def hard_attention_restriction(subject, ctx) -> Evidence:
    r"""Limitation: fixing one bit per head pins a hard-attention layer's attention, so it errs on
    half of PARITY

    .. math:: \exists\rho,\ |\rho|\le H:\ f(w)=f(w')\ \ \forall\,w,w'\ \text{agreeing with }\rho\
        \Rightarrow\
        \Pr_{w\,\sim\,\rho}\bigl[\operatorname{sign}f(w)\ne\mathrm{PARITY}(w)\bigr]=\tfrac12

    Random one-layer classifiers (H = 1..4 unique-hard-attention heads and a ReLU FFN, read at a
    CLS token after n = 8..12 bits, Gaussian embeddings and positions). For each head in turn, the
    largest score any completion could give the CLS query (both values of every free bit, the fixed
    value of every fixed bit, CLS itself) is found from the weights; fixing that bit pins the head
    to it in every completion (impl/constructions/hard_restriction.py). With at most H bits fixed,
    the subject's hard attention must give one CLS logit for all 2^(n - H) completions (to
    rounding), so the sign is wrong on exactly half of them, whatever the weights. Hahn's theorem
    is the asymptotic statement (any depth, a constant fraction of free inputs); this checks its
    one-layer step, not a small-n impossibility. Power: an attention that is not hard (softmax, or
    an argmin) lets the free bits through.
    """
    hard = construction(subject, "hard_attention", sdpa.hard_attention)
    rng = ctx.rng("classifiers")
    measurements, cases, pinned, varied = [], 0, [], 0
    for n, heads in RESTRICTED:
        for _ in range(4):
            model, fixed = None, None
            while fixed is None:                      # a tie has probability 0; redraw
                model = HR.random_hard_classifier(rng, n, heads)
                fixed = HR.restriction(model)
            words = HR.completions(n, fixed)                                    # (2^(n-|r|), n)
            z = HR.cls_logits(model, words, hard_attention=hard)                # (B,)
            cases += len(words)
            pinned.append(len(fixed))
            free = HR.cls_logits(model, HR.completions(n, {}), hard_attention=hard)  # (2^n,)
            varied += bool(np.ptp(free) > 1e-9 * np.max(np.abs(free)))
            measurements.append(Measurement(
                float(np.max(np.abs(z - z[0])) / max(abs(z[0]), np.finfo(float).tiny)),
                tolerance("rounding", np.float64),
                f"n = {n}, H = {heads}: with {len(fixed)} bits fixed at {sorted(fixed)} the "
                f"logit still depends on the free bits (range {np.ptp(z):.3g})"))
            wrong = np.mean((z > 0) != PT.member("parity", words))
            measurements.append(holds(wrong == 0.5, f"n = {n}, H = {heads}: PARITY is wrong "
                                                    f"on {wrong:.3f} of the restricted strings"))
    return single_case(
        measurements, cases=cases,
        detail=f"16 random one-layer hard-attention classifiers (n = 8..12 bits, 1-4 heads; "
               f"{varied} of them read some bit when nothing is fixed): fixing "
               f"{min(pinned)}-{max(pinned)} bits (at most one per head) made the CLS output "
               f"constant over all completions, so each errs on exactly half of the restricted "
               f"strings' PARITY.")
