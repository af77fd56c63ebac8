"""Check any implementation against the claims.

The suite is a conformance reference: point it at an attention kernel, a
positional encoding, a LayerNorm, a Performer piece or a whole model, and it
tells which claims the implementation breaks, with the smallest failing input
and a snippet that reproduces it::

    from transformer_theory.theory.conformance import check, load_subject

    subject = load_subject("my_pkg.attn:sdpa", as_kind="attention")
    report = check(subject, claims="attention.*,masking.*", profile="ci")
    for result in report.failures:
        print(result.id, result.example, result.reproduction, sep="\\n")

Subjects
--------
A :class:`Subject` is a name, callables following the numpy contract
(``theory/subject.py``, :data:`CALLABLES`) and options for conventions that
differ legitimately (:data:`OPTIONS`). :func:`load_subject` makes one from

* a built-in name: ``reference``, ``torch``, ``jax`` (and ``fast`` when numba
  is installed);
* ``module:object`` where the object is a :class:`Subject`, a function taking
  no argument that returns one, or a mapping from callable names to callables;
* ``module:callable`` with ``as_kind`` saying what the callable is
  (:data:`KINDS`: ``attention``, ``layer_norm``, ``orthogonal_gaussian``, ...,
  and the whole sequence maps ``encoder`` and ``causal``). A PyTorch
  ``nn.Module`` or a callable on tensors (option ``tensors=torch`` or ``jax``)
  is wrapped to take and return numpy arrays.

A single callable is completed with the reference's other callables, so that
claims needing a helper (the softmax next to an attention kernel, the feature
map next to a random-matrix generator) can run; :func:`check` then runs only
the claims that involve at least one callable the user supplied.

Conventions
-----------
Options such as ``causal_alignment=bottom-right`` or ``layout=(B, L, H, E)``
are applied by the loader (the callable is wrapped into the contract), and
``fully_masked_row=nan`` is honoured by the claims; either way a convention
is reported as such, never as a failure.

References
----------
DESIGN.md ("Subject", "Contract"); issue 8 ("Conformance: check any
implementation against the claims").
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from hypothesis import strategies as st

from . import registry
from .checks import compare, for_all, holds
from .claim import Claim, Evidence, Kind, Status
from .registry import ClaimSet
from .runner import DEFAULT_SEED, Result, run_claim, select
from .sources import BA_2016, SEED_003, SEED_004, VASWANI_2017
from .strategies import DTYPES, SEEDS, normal
from .subject import CALLABLES, CONTRACT_CONVENTIONS, OPTIONS, Subject
from .tolerance import tolerance

__all__ = [
    "Subject",
    "CALLABLES",
    "OPTIONS",
    "KINDS",
    "TargetError",
    "ConformanceResult",
    "CheckReport",
    "load_subject",
    "parse_options",
    "check",
    "conformance_claims",
    "checkable_claims",
]


class TargetError(Exception):
    """The target cannot be imported or does not fit the contract (CLI exit status 2)."""


# ---------------------------------------------------------------------------
# What a single callable may be declared as
# ---------------------------------------------------------------------------

#: ``--as KIND``: every contract callable name, plus the issue's short names.
KIND_ALIASES: dict[str, str] = {
    "encoder": "encoder_map",         # a whole sequence map f(x) -> y, non-causal
    "causal": "causal_map",           # a whole sequence map, causal
    "feature_map": "random_features",
    "orthogonal": "orthogonal_gaussian",
    "favor": "favor_attention",
    "mha": "multi_head_attention",
    "gqa": "grouped_query_attention",
    "layernorm": "layer_norm",
}

KINDS: tuple[str, ...] = tuple(sorted(set(CALLABLES) | set(KIND_ALIASES)))

#: Keyword arguments the claims pass to each kind, checked when a callable is loaded.
_ESSENTIAL_KEYWORDS: dict[str, tuple[str, ...]] = {
    "attention": ("mask", "causal", "scale"),
    "attention_weights": ("mask", "causal", "scale"),
    "multi_head_attention": ("mask", "causal"),
    "grouped_query_attention": ("mask", "causal"),
    "layer_norm": ("eps",),
    "attention_backward": ("mask", "causal", "scale"),
}


def _contract_positionals(name: str) -> int:
    """Number of required positional arguments in the contract line of ``name``."""
    doc = CALLABLES.get(name, "")
    m = re.match(r"\s*[\w.]+\((.*?)\)\s*(->|$|\s)", doc)
    if not m:
        return 1
    count = 0
    for part in (p.strip() for p in m.group(1).split(",")):
        if not part or part.startswith("*") or "=" in part:
            break
        count += 1
    return count


def _check_fits(fn: Callable, kind: str, target: str) -> None:
    """Raise TargetError unless ``fn`` can be called the way the claims call ``kind``."""
    if not callable(fn):
        raise TargetError(f"{target}: expected a callable for --as {kind}, got "
                          f"{type(fn).__name__}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return                                  # builtins without a signature: trust them
    args = [object()] * _contract_positionals(kind)
    kwargs = {k: None for k in _ESSENTIAL_KEYWORDS.get(kind, ())}
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TargetError(
            f"{target} does not fit the contract of {kind!r}: "
            f"{CALLABLES.get(kind, kind)}; binding {len(args)} positional argument(s)"
            + (f" and {', '.join(kwargs)}=" if kwargs else "")
            + f" failed: {exc}") from None


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------

def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``["key=value", ...]`` to a dict; values are JSON when they parse, else strings.

    >>> parse_options(["d_model=16", "fully_masked_row=nan", "layout=(B, L, H, E)"])
    {'d_model': 16, 'fully_masked_row': 'nan', 'layout': '(B, L, H, E)'}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise TargetError(f"--option: expected KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise TargetError(f"--option: empty key in {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value.strip()
    return out


def _check_option_values(options: Mapping[str, Any]) -> None:
    allowed = {
        "fully_masked_row": ("zeros", "nan", "uniform"),
        "causal_alignment": ("top-left", "bottom-right"),
        "layout": ("(B, H, L, E)", "(B, L, H, E)"),
        "sinusoidal_interleaving": ("sin at even, cos at odd", "sin first half, cos second half"),
        "gqa_mapping": ("h -> h // (H // G)", "h -> h % G"),
        "rng": ("generator", "seed"),
        "tensors": ("numpy", "torch", "jax"),
    }
    for key, value in options.items():
        if key in allowed:
            values = value.values() if isinstance(value, Mapping) else [value]
            for v in values:
                if v not in allowed[key]:
                    raise TargetError(f"--option {key}: expected one of {allowed[key]}, got {v!r}")
    if "d_model" in options and (not isinstance(options["d_model"], int) or options["d_model"] < 1):
        raise TargetError(f"--option d_model: expected a positive integer, got {options['d_model']!r}")


# ---------------------------------------------------------------------------
# Frameworks: numpy at the boundary
# ---------------------------------------------------------------------------

def _is_torch_module(obj) -> bool:
    mod = sys.modules.get("torch")
    return mod is not None and isinstance(obj, mod.nn.Module)


def _to_framework(value, framework: str, dtype=None):
    if isinstance(value, np.ndarray):
        if framework == "torch":
            import torch

            t = torch.from_numpy(np.ascontiguousarray(value).copy())
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            return t
        import jax.numpy as jnp

        return jnp.asarray(value)
    return value


def _from_framework(value):
    if isinstance(value, (tuple, list)):
        return type(value)(_from_framework(v) for v in value)
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if type(value).__module__.startswith(("jax", "jaxlib")):
        return np.asarray(value)
    return value


def _framework_wrapper(fn: Callable, framework: str) -> Callable:
    """``fn`` on tensors of ``framework`` as a function on numpy arrays."""
    module_dtype = None
    if framework == "torch" and _is_torch_module(fn):
        fn.eval()
        params = list(fn.parameters())
        module_dtype = params[0].dtype if params else None

    def wrapped(*args, **kwargs):
        args = [_to_framework(a, framework, module_dtype) for a in args]
        kwargs = {k: _to_framework(v, framework, module_dtype) for k, v in kwargs.items()}
        if framework == "torch":
            import torch

            with torch.no_grad():
                out = fn(*args, **kwargs)
        else:
            out = fn(*args, **kwargs)
        return _from_framework(out)

    wrapped.__name__ = getattr(fn, "__name__", type(fn).__name__)
    wrapped.__wrapped__ = fn
    return wrapped


def _first_output(fn: Callable) -> Callable:
    """Sequence maps: a module returning (output, extras) gives its output."""
    def wrapped(x):
        out = fn(x)
        return out[0] if isinstance(out, (tuple, list)) else out
    wrapped.__name__ = getattr(fn, "__name__", "sequence_map")
    return wrapped


# ---------------------------------------------------------------------------
# Convention wrappers (the loader's side of the options)
# ---------------------------------------------------------------------------

def _alignment(causal) -> str | None:
    if isinstance(causal, (bool, np.bool_)):
        return "top-left" if causal else None
    return causal


def _native_causal(fn: Callable, native: str) -> Callable:
    """A callable whose ``causal=True`` is ``native``-aligned, under the contract's flag.

    The contract's ``causal`` argument is passed as ``causal=True`` when the
    alignments agree (or ``Lq == Lk``), and otherwise as an explicit mask.
    """
    def wrapped(q, k, *rest, mask=None, causal=False, **kw):
        align = _alignment(causal)
        lq, lk = np.shape(q)[-2], np.shape(k)[-2]
        if align is None:
            return fn(q, k, *rest, mask=mask, causal=False, **kw)
        if align == native or lq == lk:
            return fn(q, k, *rest, mask=mask, causal=True, **kw)
        offset = 0 if align == "top-left" else lk - lq
        tri = np.tril(np.ones((lq, lk), dtype=bool), k=offset)
        return fn(q, k, *rest, mask=tri if mask is None else (np.asarray(mask) & tri),
                  causal=False, **kw)
    wrapped.__name__ = getattr(fn, "__name__", "attention")
    return wrapped


def _to_bh(a: np.ndarray) -> np.ndarray:
    """(..., H, L, E) -> (B, H, L, E): at least 4-d, extra leading dims folded into B."""
    full = a.reshape((1,) * max(0, 4 - a.ndim) + a.shape)
    return full.reshape((-1,) + full.shape[-3:])


def _blhe_layout(fn: Callable, weights: bool = False) -> Callable:
    """A (B, L, H, E) attention callable under the contract's (..., H, L, E) shapes.

    Inputs are made 4-d (missing batch/head dims of size 1, extra leading dims
    folded into the batch), their L and H axes swapped, and the output swapped
    back. Masks stay in the (B, H, Lq, Lk) order, as JAX's and FlashAttention's
    mask and bias arguments are; weights come back as (B, H, Lq, Lk).
    """
    def wrapped(q, k, *rest, mask=None, **kw):
        q, k = np.asarray(q), np.asarray(k)
        lead, lq, lk = q.shape[:-2], q.shape[-2], k.shape[-2]
        swap = (lambda a: np.swapaxes(_to_bh(np.asarray(a)), 1, 2))       # (B, L, H, E)
        if mask is not None:
            mask = _to_bh(np.broadcast_to(mask, lead + (lq, lk)))         # (B, H, Lq, Lk)
        out = fn(swap(q), swap(k), *(swap(r) for r in rest), mask=mask, **kw)
        if isinstance(out, (tuple, list)):                # gradients: one per input
            return tuple(np.swapaxes(np.asarray(o), 1, 2).reshape(np.shape(x))
                         for o, x in zip(out, (q, k, *rest)))
        out = np.asarray(out)
        if not weights:
            out = np.swapaxes(out, 1, 2)                                # (B, H, Lq, Ev)
        return out.reshape(lead + out.shape[-2:])
    wrapped.__name__ = getattr(fn, "__name__", "attention")
    return wrapped


def _interleave_sinusoids(fn: Callable) -> Callable:
    """[sin | cos] halves -> sin at even, cos at odd columns (the contract)."""
    def wrapped(n_positions, d_model, *args, **kw):
        pe = np.asarray(fn(n_positions, d_model, *args, **kw))
        half = pe.shape[-1] // 2
        out = np.empty_like(pe)
        out[..., 0::2] = pe[..., :half]
        out[..., 1::2] = pe[..., half:2 * half]
        return out
    wrapped.__name__ = getattr(fn, "__name__", "sinusoidal_encoding")
    return wrapped


def _modular_gqa(fn: Callable) -> Callable:
    """A GQA callable mapping head h to kv head h % G, under the contract's h // (H/G).

    Query head slot h' of the callable receives contract head
    sigma(h') = (h' % G) * r + h' // G, which reads kv head sigma(h') // r = h' % G;
    the rows of W_O move with their heads, so the outputs agree.
    """
    from transformer_theory.impl.attention import GroupedQueryParams

    def wrapped(x_q, x_kv, params, **kw):
        if not isinstance(params, GroupedQueryParams):
            return fn(x_q, x_kv, params, **kw)
        h, g, dv = params.n_heads, params.n_kv_heads, params.d_value
        r = h // g
        sigma = np.array([(s % g) * r + s // g for s in range(h)])
        rows = np.concatenate([np.arange(i * dv, (i + 1) * dv) for i in sigma])
        moved = GroupedQueryParams(
            w_q=params.w_q[sigma], w_k=params.w_k, w_v=params.w_v,
            b_q=None if params.b_q is None else params.b_q[sigma], b_k=params.b_k,
            b_v=params.b_v, w_o=params.w_o[rows], b_o=params.b_o)
        return fn(x_q, x_kv, moved, **kw)
    wrapped.__name__ = getattr(fn, "__name__", "grouped_query_attention")
    return wrapped


def _seeded(fn: Callable) -> Callable:
    """A random-matrix callable taking an integer seed, under the contract's Generator."""
    def wrapped(m, d, rng, *args, **kw):
        seed = int(rng.integers(0, 2**32 - 1)) if isinstance(rng, np.random.Generator) else rng
        return fn(m, d, seed, *args, **kw)
    wrapped.__name__ = getattr(fn, "__name__", "random_matrix")
    return wrapped


def _apply_conventions(kind: str, fn: Callable, options: Mapping[str, Any]) -> Callable:
    """Wrap ``fn`` so that a declared convention becomes the contract's."""
    if kind in ("attention", "attention_weights", "attention_backward"):
        if options.get("layout", CONTRACT_CONVENTIONS["layout"]) == "(B, L, H, E)":
            fn = _blhe_layout(fn, weights=(kind == "attention_weights"))
        native = options.get("causal_alignment")
        if native in ("top-left", "bottom-right") and native != CONTRACT_CONVENTIONS["causal_alignment"]:
            fn = _native_causal(fn, native)
    if kind == "sinusoidal_encoding" and options.get("sinusoidal_interleaving") == \
            "sin first half, cos second half":
        fn = _interleave_sinusoids(fn)
    if kind == "grouped_query_attention" and options.get("gqa_mapping") == "h -> h % G":
        fn = _modular_gqa(fn)
    if kind in ("orthogonal_gaussian", "gaussian_matrix") and options.get("rng") == "seed":
        fn = _seeded(fn)
    return fn


# ---------------------------------------------------------------------------
# Loading a subject
# ---------------------------------------------------------------------------

def _builtin(name: str) -> Subject | None:
    from .subjects import OPTIONAL_SUBJECTS, SUBJECTS, _importable

    if name in SUBJECTS:
        return SUBJECTS[name]()
    if name in OPTIONAL_SUBJECTS and _importable(name):
        return OPTIONAL_SUBJECTS[name]()
    if name in ("torch", "jax"):
        raise TargetError(
            f"{name} is not installed here: pip install 'transformer-theory[{name}]' "
            f"(the {name} adapter is optional)")
    return None


def _import_target(target: str):
    if ":" not in target:
        raise TargetError(
            f"target {target!r}: expected module:object or a built-in subject "
            f"(reference, torch, jax)")
    module_name, attr = target.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:   # ImportError, or an error while the module runs
        raise TargetError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _merge(subject: Subject, options: Mapping[str, Any], origin: dict) -> Subject:
    merged = {**subject.options, **options, "origin": origin}
    return Subject(subject.name, subject.callables, merged, subject.description)


def load_subject(target: str | Subject, *, as_kind: str | None = None,
                 options: Mapping[str, Any] | None = None, name: str | None = None,
                 complete: bool = True) -> Subject:
    """Make a subject from a target (see the module docstring).

    Parameters
    ----------
    target : str or Subject
        ``reference``/``torch``/``jax``, ``module:object`` or a Subject.
    as_kind : str, optional
        What a single callable is (:data:`KINDS`; ``encoder`` and ``causal`` are
        the whole sequence maps).
    options : mapping, optional
        Conventions and settings (:data:`OPTIONS`): they override the subject's.
    name : str, optional
        The subject's name in results (default: the target).
    complete : bool
        Complete a single callable with the reference's other callables.

    Returns
    -------
    Subject
        With ``options["origin"]`` recording how it was built.

    Raises
    ------
    TargetError
        The target cannot be imported, is not a subject or callable, or does not
        fit the contract of ``as_kind``.
    """
    options = dict(options or {})
    _check_option_values(options)
    kind = None
    if as_kind is not None:
        kind = KIND_ALIASES.get(as_kind, as_kind)
        if kind not in CALLABLES:
            raise TargetError(f"--as: expected one of {KINDS}, got {as_kind!r}")
    label = target.name if isinstance(target, Subject) else str(target)
    origin = {"target": label if not isinstance(target, Subject) else None,
              "as": as_kind, "options": {k: v for k, v in options.items() if k != "origin"}}

    if isinstance(target, Subject):
        obj = target
    else:
        obj = _builtin(target) if ":" not in target else None
        if obj is None:
            obj = _import_target(target)

    if kind is None:
        if isinstance(obj, Subject):
            return _merge(obj, options, {**origin, "provided": None})
        if isinstance(obj, Mapping):
            unknown = [k for k in obj if k not in CALLABLES]
            if unknown:
                raise TargetError(f"{label}: unknown callable names {unknown}; expected names "
                                  f"from the contract (transformer-theory list)")
            return Subject(name or label, dict(obj), {**options, "origin": {
                **origin, "provided": sorted(obj)}})
        if callable(obj) and not _is_torch_module(obj):
            try:
                required = [p for p in inspect.signature(obj).parameters.values()
                            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                   p.POSITIONAL_OR_KEYWORD)]
            except (TypeError, ValueError):
                required = [None]
            if not required:
                made = obj()
                if isinstance(made, Subject):
                    return _merge(made, options, {**origin, "provided": None})
        raise TargetError(
            f"{label} is a {type(obj).__name__}, not a Subject: say what it is with "
            f"--as KIND (one of: {', '.join(KINDS)})")

    fn = obj
    framework = options.get("tensors", "numpy")
    if _is_torch_module(fn):
        framework = "torch"
    if framework in ("torch", "jax"):
        fn = _framework_wrapper(fn, framework)
    _check_fits(fn, kind, label)
    if kind in ("encoder_map", "causal_map"):
        fn = _first_output(fn)
        if "d_model" not in options:
            width = _infer_width(obj)
            if width is None:
                raise TargetError(
                    f"{label}: a sequence map needs its width: pass --option d_model=E")
            options["d_model"] = width
    fn = _apply_conventions(kind, fn, options)
    callables = {}
    if complete:
        from .subjects import reference_subject

        callables.update(reference_subject().callables)
    callables[kind] = fn
    return Subject(name or label, callables,
                   {**options, "origin": {**origin, "provided": [kind]}},
                   description=f"{label} as {kind}")


def _infer_width(obj) -> int | None:
    """The model width of a torch module (d_model, embed_dim or the first Linear's input)."""
    for attr in ("d_model", "embed_dim"):
        value = getattr(obj, attr, None)
        if isinstance(value, int):
            return value
    for attr in ("self_attn",):
        inner = getattr(obj, attr, None)
        if inner is not None and isinstance(getattr(inner, "embed_dim", None), int):
            return inner.embed_dim
    return None


# ---------------------------------------------------------------------------
# Conformance claims: whole sequence maps and the LayerNorm definition
# ---------------------------------------------------------------------------

claims = ClaimSet("conformance")

NO_POSITION = VASWANI_2017.at("§3.5")
DECODER_MASK = VASWANI_2017.at("§3.2.3")


def _map_width(subject) -> int:
    width = subject.options.get("d_model")
    if not isinstance(width, int):
        raise ValueError("subject option d_model: a sequence map needs its width "
                         "(--option d_model=E)")
    return width


def _map_tolerance(subject, dtype, length: int):
    """Composite tolerance over the reductions of n_layers transformer blocks of width E.

    Per block: the Q/K/V and output projections and the FFN's two layers
    (about 4E + d_ff terms) and the attention average over L positions. An
    opaque map declares its depth and FFN width with the options ``n_layers``
    (default 1) and ``d_ff`` (default 4E).
    """
    e = _map_width(subject)
    layers = int(subject.options.get("n_layers", 1))
    d_ff = int(subject.options.get("d_ff", 4 * e))
    return tolerance("composite", dtype, n=layers * (4 * e + length + d_ff))


@st.composite
def _sequence_case(draw, width: int, min_batch: int = 1, min_len: int = 1):
    b = draw(st.integers(min_batch, 3))
    length = draw(st.integers(min_len, 8))
    dt = draw(DTYPES)
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    return {"B": b, "L": length, "E": width, "dtype": dt, "seed": seed,
            "x": normal(rng, (b, length, width), dt), "perm": rng.permutation(length)}


def _out_dtype(*arrays):
    dts = [np.asarray(a).dtype for a in arrays]
    return np.dtype(np.float32) if any(d == np.float32 for d in dts) else np.dtype(np.float64)


@claims.claim(
    "conformance.encoder_map_permutation_equivariance",
    title="A sequence map without positional encoding is permutation equivariant",
    statement=r"f(PX)=P\,f(X)\quad\forall\ \text{permutations }P\ \text{of the positions}",
    sources=(NO_POSITION, SEED_003.at("Transformer Architecture is invariant to permutations")),
    kind=Kind.PROPERTY, needs=("encoder_map",),
    notes="For a whole model declared as an encoder (transformer-theory check --as encoder): "
          "attention, FFN, LayerNorm and residuals treat positions as a set unless position "
          "is injected.")
def encoder_map_permutation_equivariance(subject, ctx) -> Evidence:
    width = _map_width(subject)

    def measure(c):
        out = np.asarray(subject.encoder_map(c["x"]))
        if out.shape[:2] != (c["B"], c["L"]):
            return holds(False, f"output shape {out.shape} for input {c['x'].shape}")
        permuted = np.asarray(subject.encoder_map(c["x"][:, c["perm"]]))
        tol = _map_tolerance(subject, _out_dtype(out, c["x"]), c["L"])
        return compare(permuted, out[:, c["perm"]], tol, note="f(PX) != P f(X)")
    return for_all(ctx, _sequence_case(width), measure,
                   detail="Permuting the positions of the input permutes the outputs the same way.")


@claims.claim(
    "conformance.encoder_map_batch_independence",
    title="A sequence map treats batch members independently",
    statement=r"X_b=X'_b\ \Rightarrow\ f(X)_b=f(X')_b,\qquad f(X)_b=f(X_b)",
    sources=(VASWANI_2017.at("§3.1"), BA_2016.at("§3 (statistics per training case)")),
    kind=Kind.PROPERTY, needs=("encoder_map",),
    notes="Changing the other members of the batch, or running the member alone, leaves its "
          "output unchanged: no batch statistics, no mixing across the batch axis.")
def encoder_map_batch_independence(subject, ctx) -> Evidence:
    return _batch_independence(subject, ctx, "encoder_map")


def _batch_independence(subject, ctx, name: str) -> Evidence:
    fn = getattr(subject, name)
    strategy = st.tuples(_sequence_case(_map_width(subject), min_batch=2), st.data())

    def measure(args):
        c, data = args
        b = data.draw(st.integers(0, c["B"] - 1), label="member")
        rng = np.random.default_rng(c["seed"] + 1)
        other = (3.0 * rng.standard_normal(c["x"].shape) + 2.0).astype(c["dtype"])
        other[b] = c["x"][b]
        out = np.asarray(fn(c["x"]))
        tol = _map_tolerance(subject, _out_dtype(out, c["x"]), c["L"])
        changed = compare(np.asarray(fn(other))[b], out[b], tol,
                          note=f"member {b} changed when the other members changed")
        if not changed.ok:
            return changed
        alone = compare(np.asarray(fn(c["x"][b:b + 1]))[0], out[b], tol,
                        note=f"member {b} alone differs from member {b} in the batch")
        return max((changed, alone), key=lambda m: m.error)
    return for_all(ctx, strategy, measure,
                   detail="Replacing the other batch members, or running a member alone, leaves "
                          "its output unchanged.")


@claims.claim(
    "conformance.causal_map_future_invariance",
    title="A causal sequence map: output i ignores every input after i",
    statement=r"x'_{\le t}=x_{\le t}\ \Rightarrow\ f(x')_{\le t}=f(x)_{\le t}",
    sources=(DECODER_MASK, SEED_004.at("items 24–26")),
    kind=Kind.PROPERTY, needs=("causal_map",),
    notes="For a whole model declared causal (transformer-theory check --as causal): "
          "rewriting the inputs after position t leaves outputs 0..t unchanged.")
def causal_map_future_invariance(subject, ctx) -> Evidence:
    strategy = st.tuples(_sequence_case(_map_width(subject), min_len=2), st.data())

    def measure(args):
        c, data = args
        t = data.draw(st.integers(0, c["L"] - 2), label="last_kept_position")
        rng = np.random.default_rng(c["seed"] + 2)
        x2 = c["x"].copy()
        x2[:, t + 1:] = normal(rng, x2[:, t + 1:].shape, c["dtype"], 3.0)
        out = np.asarray(subject.causal_map(c["x"]))
        out2 = np.asarray(subject.causal_map(x2))
        tol = _map_tolerance(subject, _out_dtype(out, c["x"]), c["L"])
        return compare(out2[:, :t + 1], out[:, :t + 1], tol,
                       note=f"an output up to position {t} changed when later inputs changed")
    return for_all(ctx, strategy, measure,
                   detail="Changing inputs after position t leaves the outputs at 0..t unchanged.")


@claims.claim(
    "conformance.causal_map_prefix_consistency",
    title="A causal sequence map is prefix consistent",
    statement=r"f(x_{1:t})=f(x_{1:L})_{1:t}\qquad\text{for all }t\le L",
    sources=(DECODER_MASK, SEED_004.at("items 24–26: all predictions at once with a mask")),
    kind=Kind.PROPERTY, needs=("causal_map",),
    notes="Running the map on a prefix gives the prefix of its outputs on the whole sequence: "
          "what makes teacher forcing and incremental decoding agree.")
def causal_map_prefix_consistency(subject, ctx) -> Evidence:
    strategy = st.tuples(_sequence_case(_map_width(subject), min_len=2), st.data())

    def measure(args):
        c, data = args
        t = data.draw(st.integers(1, c["L"] - 1), label="prefix_length")
        full = np.asarray(subject.causal_map(c["x"]))
        prefix = np.asarray(subject.causal_map(c["x"][:, :t]))
        tol = _map_tolerance(subject, _out_dtype(full, c["x"]), c["L"])
        return compare(prefix, full[:, :t], tol, note=f"f(x[:{t}]) != f(x)[:{t}]")
    return for_all(ctx, strategy, measure,
                   detail="The map on x[:t] equals the first t outputs of the map on x.")


@st.composite
def _layer_norm_rows(draw):
    rows, e = draw(st.integers(1, 6)), draw(st.integers(2, 32))
    dt = draw(DTYPES)
    seed = draw(SEEDS)
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.1, 1.0]))
    affine = draw(st.booleans())
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    rng = np.random.default_rng(seed)
    return {"R": rows, "E": e, "dtype": dt, "seed": seed, "eps": eps,
            "x": normal(rng, (rows, e), dt, scale),
            "gamma": normal(rng, (e,), dt) if affine else None,
            "beta": normal(rng, (e,), dt) if affine else None}


@claims.claim(
    "conformance.layer_norm_definition",
    title="LayerNorm is (x − mean)/√(var + ε)·γ + β with the biased variance",
    statement=r"\mathrm{LN}(x)=\frac{x-\mu}{\sqrt{\sigma^2+\varepsilon}}\odot\gamma+\beta,\quad "
              r"\mu=\tfrac1E\sum_e x_e,\ \sigma^2=\tfrac1E\sum_e(x_e-\mu)^2",
    sources=(BA_2016.at("§3, Eq. (4)"), VASWANI_2017.at("§3.1")),
    kind=Kind.PROPERTY, needs=("layer_norm",),
    notes="eps in {1e-5, 1e-3, 0.1, 1} so that an eps outside the square root (sigma + eps) "
          "or an unbiased variance shows; errors are divided by each row's condition number "
          "max|x| / sqrt(var + eps), as in normalization.layernorm_standardizes.")
def layer_norm_definition(subject, ctx) -> Evidence:
    from .claims.normalization import conditioned_error

    def measure(c):
        y = subject.layer_norm(c["x"], c["gamma"], c["beta"], eps=c["eps"])
        x = np.asarray(c["x"], dtype=np.float64)
        mu = x.mean(axis=-1, keepdims=True)
        var = np.mean((x - mu) ** 2, axis=-1, keepdims=True)
        expected = (x - mu) / np.sqrt(var + c["eps"])
        size = 1.0                                   # the output's scale: |gamma| + |beta|
        if c["gamma"] is not None:
            expected = expected * c["gamma"]
            size = max(size, float(np.max(np.abs(c["gamma"]))))
        if c["beta"] is not None:
            expected = expected + c["beta"]
            size += float(np.max(np.abs(c["beta"])))
        kappa = np.max(np.abs(x), axis=-1) / np.sqrt(var[..., 0] + c["eps"])     # (R,)
        tol = tolerance("ill_conditioned", _out_dtype(y, c["x"]), n=c["E"])
        return conditioned_error(y, expected, size * np.maximum(kappa, 1.0), tol,
                                 "LN(x) differs from (x - mean)/sqrt(var + eps) * gamma + beta")
    return for_all(ctx, _layer_norm_rows(), measure,
                   detail="Outputs equal the float64 definition for eps from 1e-5 to 1, with and "
                          "without gamma and beta.")


def conformance_claims() -> list[Claim]:
    """The claims this module adds to the registry's when checking a subject."""
    return list(claims)


def checkable_claims() -> list[Claim]:
    """Every claim ``check`` can run: the registry's and :func:`conformance_claims`."""
    return registry.all_claims() + conformance_claims()


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------

def _conventions(subject: Subject) -> dict[str, Any]:
    """The options of ``subject`` that differ from the contract's conventions."""
    out = {}
    for key, contract in CONTRACT_CONVENTIONS.items():
        value = subject.options.get(key, contract)
        if isinstance(value, Mapping):
            differing = {k: v for k, v in value.items() if v != contract}
            if differing:
                out[key] = differing
        elif value != contract:
            out[key] = value
    return out


@dataclass
class ConformanceResult:
    """One claim checked against one subject.

    Attributes
    ----------
    id, title : str
    status : str
        ``passed``, ``failed``, ``error`` or ``not_applicable``.
    detail : str
    seconds : float
    example : dict or None
        The minimal (shrunk) falsifying example: shapes, dtype, seed and the
        values of small arrays.
    reproduction : str or None
        A Python snippet that reproduces the failure (for failed and error).
    conventions : dict
        The subject's non-contract conventions among the callables this
        claim uses (reported, never failures).
    max_error, tolerance : float or None
    cases : int
    """

    id: str
    title: str
    status: str
    detail: str
    seconds: float
    example: dict | None = None
    reproduction: str | None = None
    conventions: dict = field(default_factory=dict)
    max_error: float | None = None
    tolerance: float | None = None
    cases: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "not_applicable")

    def to_json(self) -> dict:
        from .claim import _jsonable

        return _jsonable({
            "id": self.id, "title": self.title, "status": self.status, "detail": self.detail,
            "seconds": round(self.seconds, 4), "cases": self.cases, "max_error": self.max_error,
            "tolerance": self.tolerance, "example": self.example,
            "conventions": self.conventions, "reproduction": self.reproduction})


@dataclass
class CheckReport:
    """The results of :func:`check`: a list of :class:`ConformanceResult` and context."""

    subject: str
    profile: str
    seed: int
    results: list[ConformanceResult]
    conventions: dict
    skipped: int = 0

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i):
        return self.results[i]

    @property
    def failures(self) -> list[ConformanceResult]:
        return [r for r in self.results if r.status in ("failed", "error")]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        """0 when every applicable claim holds, 1 otherwise (the CLI's status)."""
        return 0 if self.passed else 1

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for r in self.results:
            out[r.status] += 1
        return out

    def to_json(self) -> dict:
        return {"subject": self.subject, "profile": self.profile, "seed": self.seed,
                "conventions": self.conventions, "counts": self.counts(),
                "not_applicable": self.skipped,
                "results": [r.to_json() for r in self.results]}

    def format_table(self, width: int = 100) -> str:
        """The CLI table: claim, status, time, and on failure the smallest example."""
        lines = []
        idw = max([len(r.id) for r in self.results] + [10])
        lines.append(f"{'claim':<{idw}}  {'status':<8}  {'time':>7}")
        lines.append(f"{'-' * idw}  {'-' * 8}  {'-' * 7}")
        for r in self.results:
            mark = r.status.upper() if r.status in ("failed", "error") else r.status
            lines.append(f"{r.id:<{idw}}  {mark:<8}  {r.seconds:6.2f}s")
            if r.status in ("failed", "error"):
                lines.append("    " + r.detail.strip().splitlines()[0][:width * 2])
                if r.max_error is not None and r.tolerance is not None and \
                        math.isfinite(r.max_error):
                    lines.append(f"    error {r.max_error:.2e} > tolerance {r.tolerance:.2e}")
                if r.example is not None:
                    lines.append("    smallest example: " + _short_json(r.example, width * 3))
            if r.conventions:
                lines.append("    convention: " + ", ".join(
                    f"{k}={v}" for k, v in r.conventions.items()))
        counts = self.counts()
        lines.append("")
        lines.append(f"{self.subject}: " + ", ".join(
            f"{n} {s}" for s, n in counts.items() if n and s != "not_applicable")
            + f" ({self.skipped} other claims do not apply; profile {self.profile}, "
              f"seed {self.seed})")
        if self.conventions:
            lines.append("conventions (documented, not failures): " + "; ".join(
                f"{k} = {v}" for k, v in self.conventions.items()))
        return "\n".join(lines)


def _short_json(value, limit: int) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + " ..."


def _reproduction(claim: Claim, subject: Subject, profile: str, seed: int,
                  example: dict | None) -> str:
    """A copy-pasteable snippet: rebuild the subject, rerun the claim, show its inputs."""
    origin = subject.options.get("origin") or {}
    lines = ["# Reproduce " + claim.id + " (deterministic: same profile and seed)",
             "import numpy as np",
             "from transformer_theory.theory.conformance import check, load_subject"]
    if origin.get("target"):
        args = [repr(origin["target"])]
        if origin.get("as"):
            args.append(f"as_kind={origin['as']!r}")
        if origin.get("options"):
            args.append(f"options={origin['options']!r}")
        lines.append(f"subject = load_subject({', '.join(args)})")
    else:
        lines.append("subject = ...  # the Subject passed to check()")
    lines.append(f"report = check(subject, claims={claim.id!r}, profile={profile!r}, seed={seed})")
    lines.append("result = report.results[0]")
    lines.append("print(result.status, result.detail)")
    arrays = []
    if isinstance(example, Mapping):
        for key, value in example.items():
            if isinstance(value, Mapping) and "values" in value and "dtype" in value:
                arrays.append(f"{key} = np.array({value['values']!r}, dtype={value['dtype']!r})")
    if arrays:
        lines.append("# the smallest failing input (values rounded to 6 digits; the seed above "
                     "regenerates them exactly):")
        lines.extend(arrays)
        lines.append(f"# the claim calls subject.{claim.needs[0]}(...) on these"
                     if claim.needs else "")
    return "\n".join(line for line in lines if line)


#: The callables each convention concerns.
_CONVENTION_CALLABLES: dict[str, tuple[str, ...]] = {
    "fully_masked_row": ("attention", "attention_weights", "attention_backward", "softmax",
                         "softmax_backward", "softmax_jacobian", "multi_head_attention",
                         "grouped_query_attention", "cross_attention", "encoder"),
    "causal_alignment": ("attention", "attention_weights", "attention_backward"),
    "layout": ("attention", "attention_weights", "attention_backward"),
    "sinusoidal_interleaving": ("sinusoidal_encoding",),
    "gqa_mapping": ("grouped_query_attention",),
}


def _relevant_conventions(claim: Claim, conventions: Mapping[str, Any]) -> dict:
    """The non-contract conventions of the callables ``claim`` uses."""
    out = {}
    for key, value in conventions.items():
        concerned = set(_CONVENTION_CALLABLES.get(key, ())) & set(claim.needs)
        if isinstance(value, Mapping):
            used = {k: v for k, v in value.items() if k in concerned}
            if used:
                out[key] = used
        elif concerned:
            out[key] = value
    return out


def _to_result(result: Result, subject: Subject, profile: str, seed: int,
               conventions: Mapping[str, Any]) -> ConformanceResult:
    ev = result.evidence
    example = ev.falsifying_example if ev else None
    failing = result.status in (Status.FAILED, Status.ERROR)
    return ConformanceResult(
        id=result.claim.id, title=result.claim.title, status=result.status.value,
        detail=result.detail(), seconds=result.seconds, example=example,
        reproduction=_reproduction(result.claim, subject, profile, seed, example)
        if failing else None,
        conventions=_relevant_conventions(result.claim, conventions),
        max_error=ev.max_error if ev else None, tolerance=ev.tolerance if ev else None,
        cases=ev.cases if ev else 0)


def applicable_claims(subject: Subject, claims: str | Sequence[str] | None = None,
                      *, include_unused: bool = False) -> tuple[list[Claim], int]:
    """The claims ``check`` runs on ``subject`` and how many it leaves out.

    A claim is run when the subject has every callable it needs, it needs at
    least one (derivations that do not call the subject are left out), and,
    for a subject completed with reference callables, one of them is a callable
    the user supplied.
    """
    chosen = select(checkable_claims(), claims)
    provided = (subject.options.get("origin") or {}).get("provided")
    run = []
    for c in chosen:
        if not c.needs and not include_unused:
            continue
        if not c.applicable_to(subject):
            continue
        if provided is not None and not set(c.needs) & set(provided):
            continue
        run.append(c)
    return run, len(chosen) - len(run)


def check(subject: Subject | str, claims: str | Sequence[str] | None = None, *,
          profile: str | None = None, seed: int = DEFAULT_SEED,
          progress: Callable[[int, int, ConformanceResult], None] | None = None,
          fail_fast: bool = False, **load_kwargs) -> CheckReport:
    """Run every applicable claim against ``subject``.

    Parameters
    ----------
    subject : Subject or str
        A subject, or a target for :func:`load_subject` (``load_kwargs`` such as
        ``as_kind`` and ``options`` are passed on).
    claims : str or sequence of str, optional
        Id globs (``"attention.*"``, comma-separated allowed); default all.
    profile : {"ci", "dev", "thorough"}, optional
        Default: ``$TT_PROFILE`` or ``dev``.
    seed : int
        Base seed: the same (profile, seed) gives the same results.
    progress : callable, optional
        ``progress(i, n, result)`` after each claim.
    fail_fast : bool
        Stop at the first claim that fails or errors.

    Returns
    -------
    CheckReport
        One :class:`ConformanceResult` per applicable claim, in registry order.
    """
    from .profiles import get_profile

    if not isinstance(subject, Subject) or load_kwargs:
        subject = load_subject(subject, **load_kwargs)
    prof = get_profile(profile)
    run, skipped = applicable_claims(subject, claims)
    if claims and not run and not select(checkable_claims(), claims):
        raise ValueError(f"claims: no claim id matches {claims!r}")
    conventions = _conventions(subject)
    results = []
    for i, claim in enumerate(run, 1):
        result = run_claim(claim, subject, profile=prof, seed=seed)
        res = _to_result(result, subject, prof.name, seed, conventions)
        results.append(res)
        if progress is not None:
            progress(i, len(run), res)
        if fail_fast and not res.ok:
            break
    return CheckReport(subject=subject.name, profile=prof.name, seed=int(seed), results=results,
                       conventions=conventions, skipped=skipped)
