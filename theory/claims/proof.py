"""The sympy derivations of ``proofs/``, run as claims of kind ``symbolic``.

Each derivation becomes the claim ``proof.<derivation id>``. A derivation whose
``expect`` is ``"fails"`` (a published statement shown false) becomes a
``limitation``: it passes when the statement does *not* verify.

Derivations do not depend on the implementation under test, so these claims
need no subject callable. Their statements are written here, once, so that
``transformer-theory list`` does not have to run sympy; a test checks that
every registered derivation has one.

Falsifiability: ``tests/test_proof_claims.py`` perturbs the result of every
derivation (a wrong constant) and shows that :func:`evidence_for` rejects it.
"""

from __future__ import annotations

from ..claim import Claim, Evidence, Kind, Source
from ..registry import ClaimSet
from ..sources import (BA_2016, CHOROMANSKI_2021, DAO_2022, GOODFELLOW_2016, KAPLAN_2020,
                       KATHAROPOULOS_2020, MILAKOV_2018, SEED_000, SEED_002, SEED_003, SU_2021,
                       VASWANI_2017)

claims = ClaimSet("proof")

#: The claimed result of each derivation, in LaTeX.
STATEMENTS: dict[str, str] = {
    "performer.gaussian_mgf":
        r"\mathbb{E}_{w\sim\mathcal{N}(0,I_d)}\left[e^{w^{\top}z}\right]=e^{\|z\|^2/2}",
    "performer.positive_mse":
        r"\mathbb{E}\,\widehat{SM}^{+}_m=SM(x,y),\quad \mathrm{MSE}^{+}=\tfrac{1}{m}e^{\|x+y\|^2}SM^2(x,y)\left(1-e^{-\|x+y\|^2}\right)",
    "performer.trig_mse":
        r"\mathrm{MSE}^{\mathrm{trig}}=\tfrac{1}{2m}e^{\|x+y\|^2}SM^{-2}(x,y)\left(1-e^{-\|x-y\|^2}\right)^2",
    "performer.hyperbolic_mse":
        r"\mathrm{MSE}^{\mathrm{hyp}}=\tfrac12\left(1-e^{-\|x+y\|^2}\right)\mathrm{MSE}^{+}",
    "performer.relative_mse":
        r"\tfrac{\mathrm{MSE}^{\mathrm{trig}}}{SM^2}=\tfrac{2}{m}\sinh^2\tfrac{\|x-y\|^2}{2},\ "
        r"\tfrac{\mathrm{MSE}^{+}}{SM^2}=\tfrac{e^{\|x+y\|^2}-1}{m},\ "
        r"\tfrac{\mathrm{MSE}^{\mathrm{hyp}}}{SM^2}=\tfrac{2}{m}\sinh^2\tfrac{\|x+y\|^2}{2}",
    "performer.regimes":
        r"\lim_{y\to x}\mathrm{MSE}^{\mathrm{trig}}=0,\qquad \lim_{r\to\infty}\mathrm{MSE}^{+}(-ru,ru)=0",
    "performer.orthogonal_pair_moment":
        r"\mathbb{E}\left[e^{\omega_1^{\top}z}e^{\omega_2^{\top}z}\right]={}_1F_1\!\left(d;\tfrac d2;\tfrac{\|z\|^2}{2}\right),\ \omega_1\perp\omega_2,\ \|\omega_i\|\sim\chi_d",
    "performer.orthogonal_mse_bound":
        r"\mathrm{MSE}^{\mathrm{ort}}\le\mathrm{MSE}^{+}-\tfrac{2(m-1)}{m(d+2)}\left(SM-\Lambda\right)^2,\ \Lambda=e^{-(\|x\|^2+\|y\|^2)/2}",
    "performer.orthogonal_bound_review_version":
        r"\mathrm{MSE}^{\mathrm{ort}}\le\mathrm{MSE}^{+}-\left(1-\tfrac1m\right)\tfrac{2}{d+2}SM^2\ \text{fails at } x=-y",
    "softmax.shift_invariance":
        r"\mathrm{softmax}(s+c\mathbf 1)=\mathrm{softmax}(s)",
    "softmax.jacobian":
        r"\frac{\partial\,\mathrm{softmax}(s)}{\partial s}=\operatorname{diag}(p)-pp^{\top},\quad \left(\operatorname{diag}(p)-pp^{\top}\right)\mathbf 1=0",
    "softmax.temperature_bound":
        r"\left|\mathrm{softmax}(\beta s)_j-\mathbb 1[j=\arg\max s]\right|\le(n-1)e^{-\beta\,\mathrm{gap}}",
    "softmax.online_merge":
        r"(m,\ell,o)\oplus(m',\ell',o')\ \text{is associative and commutative with identity }(-\infty,0,0),\ o/\ell=\mathrm{softmax}(s)v",
    "attention.linear_recurrence":
        r"S_i=S_{i-1}+\phi(k_i)v_i^{\top},\ z_i=z_{i-1}+\phi(k_i):\ \frac{\phi(q_i)^{\top}S_i}{\phi(q_i)^{\top}z_i}=\frac{\sum_{j\le i}\phi(q_i)^{\top}\phi(k_j)v_j^{\top}}{\sum_{j\le i}\phi(q_i)^{\top}\phi(k_j)}",
    "positional.sinusoidal_shift":
        r"PE(p+k)=M_k\,PE(p),\quad PE(p)^{\top}PE(p+k)=\sum_i\cos(\omega_i k)",
    "positional.rope_relative":
        r"R_m^{\top}R_n=R_{n-m}\ \Rightarrow\ \langle R_mq,R_nk\rangle=\langle q,R_{n-m}k\rangle",
    "layers.tanh_sigmoid":
        r"\tanh x=2\sigma(2x)-1,\qquad \sigma'=\sigma(1-\sigma)",
    "layers.layernorm_invariance":
        r"\mathrm{LN}(a x+b\mathbf 1)=\mathrm{LN}(x)\ (a>0,\ \epsilon=0),\quad \mathrm{LN}(Dx)\ne\mathrm{LN}(x)\ \text{for diagonal }D",
    "layers.gelu_tanh_gap":
        r"\max_x\big|\mathrm{GELU}(x)-\mathrm{GELU}_{\tanh}(x)\big|=4.7324\times10^{-4}\ \text{at }|x|=2.69894",
    "counting.parameters":
        r"P=L\left[3h(d\,d_h+d_h)+h\,d_h d+d+2d\,d_{ff}+d_{ff}+d+4d\right],\ P(32,2,32,32,1)=10{,}656",
    "counting.flops":
        r"\mathrm{FLOPs}_{\text{naive}}=2N^2d\ \text{per product},\quad \mathrm{FLOPs}_{\text{FAVOR+}}=O(Nmd),\quad N^{*}=\tfrac{8md+5m+d}{4d+3}",
    "ode.residual_euler":
        r"\left(1+\tfrac{aT}{L}\right)^{L}\to e^{aT},\quad e^{aT}-\left(1+\tfrac{aT}{L}\right)^{L}=\tfrac{a^2T^2e^{aT}}{2L}+O(L^{-2})",
}


def evidence_for(derivation) -> Evidence:
    """Evidence of a built :class:`~transformer_theory.proofs.derivation.Derivation`.

    Passed iff the derivation came out as expected: verified when it should
    hold, unverified when it is a limitation.
    """
    steps = list(derivation.steps) + [derivation.result]
    counts = {s: sum(st.status == s for st in steps) for s in ("symbolic", "numeric", "given", "failed")}
    numeric = [st for st in steps if st.status == "numeric"]
    worst = max((st.max_numeric_error or 0.0 for st in numeric), default=None)
    parts = [f"{n} {s}" for s, n in counts.items() if n]
    detail = (f"Derivation status {derivation.status} ({', '.join(parts)} steps incl. the result); "
              f"expected to {derivation.expect}.")
    if numeric:
        detail += " Numeric steps: " + "; ".join(st.reason for st in numeric if st.reason)
    failed = [st for st in steps if st.status == "failed"]
    if failed and derivation.expect == "holds":
        detail += " Failed: " + "; ".join(f"${st.latex()}$ ({st.reason})" for st in failed[:3])
    return Evidence(passed=derivation.as_expected, cases=len(steps), max_error=worst,
                    tolerance=None, detail=detail)


#: Where each derivation's statement comes from (the derivation itself lists the
#: sources of every step; the report shows both).
SOURCES: dict[str, tuple[Source, ...]] = {
    "performer.gaussian_mgf": (CHOROMANSKI_2021.at("Lemma 1"), SEED_002),
    "performer.positive_mse": (CHOROMANSKI_2021.at("Lemma 1, Lemma 2"), SEED_002),
    "performer.trig_mse": (CHOROMANSKI_2021.at("Lemma 2"), SEED_002.at("MSE of the trigonometric estimator")),
    "performer.hyperbolic_mse": (CHOROMANSKI_2021.at("Lemma 2 (hyperbolic features)"),),
    "performer.relative_mse": (CHOROMANSKI_2021.at("Lemma 2"), SEED_002),
    "performer.regimes": (CHOROMANSKI_2021.at("Lemma 2 and the discussion after it"), SEED_002),
    "performer.orthogonal_pair_moment": (CHOROMANSKI_2021.at("Theorem 2 (proof)"),),
    "performer.orthogonal_mse_bound": (CHOROMANSKI_2021.at("Theorem 2"),),
    "performer.orthogonal_bound_review_version": (CHOROMANSKI_2021.at("Theorem 2, OpenReview version"),),
    "softmax.shift_invariance": (VASWANI_2017.at("§3.2.1"), SEED_000),
    "softmax.jacobian": (GOODFELLOW_2016.at("§6.2.2.3"),),
    "softmax.temperature_bound": (VASWANI_2017.at("§3.2.1"),),
    "softmax.online_merge": (MILAKOV_2018.at("Algorithm 3"), DAO_2022.at("§3.1")),
    "attention.linear_recurrence": (KATHAROPOULOS_2020.at("§3.4, Eqs. (16)–(20)"),),
    "positional.sinusoidal_shift": (VASWANI_2017.at("§3.5"),),
    "positional.rope_relative": (SU_2021.at("§3.2–3.4"),),
    "layers.tanh_sigmoid": (SEED_002.at("tanh as a resized sigmoid"), GOODFELLOW_2016.at("§6.3.2")),
    "layers.layernorm_invariance": (BA_2016.at("§5.1, Table 1"),),
    "counting.parameters": (SEED_003.at("Counting Number of Parameters"), KAPLAN_2020.at("§2.1")),
    "counting.flops": (SEED_000.at("naive implementation does dN^2 multiplications"),
                       CHOROMANSKI_2021.at("§2.4")),
    "ode.residual_euler": (SEED_002.at("residual connections and neural ODEs"),),
}


def _register() -> None:
    from transformer_theory.proofs import registry as proof_registry

    proof_registry.load_all()
    for did, builder in proof_registry.DERIVATIONS.items():
        if did not in STATEMENTS:
            raise KeyError(f"proof claim: no statement written for derivation {did!r} "
                           f"(add it to STATEMENTS in theory/claims/proof.py)")
        title = (builder.__doc__ or did).strip().splitlines()[0].rstrip(".")

        def check(subject, ctx, did=did) -> Evidence:
            return evidence_for(proof_registry.get(did))

        kind = Kind.LIMITATION if builder.expect == "fails" else Kind.SYMBOLIC
        claims.add(Claim(
            id=f"proof.{did}", title=title, statement=STATEMENTS[did],
            sources=SOURCES.get(did, (Source("transformer-theory", "proofs/", did),)),
            kind=kind, needs=(), check=check, proof=did,
            notes="A sympy derivation: every step is closed symbolically or, where sympy "
                  "cannot, checked numerically at seeded points with mpmath."))


_register()
