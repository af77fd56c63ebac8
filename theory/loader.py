"""Load a target into a Subject: built-in names, ``module:object`` and single callables.

:func:`load_subject` is the one entry of ``transformer-theory check``, the
Python API and the pytest plugin. It imports the target, checks that a single
callable fits the contract of what it is declared as (``--as``), converts
framework tensors at the boundary (``tensors=torch|jax``), validates the
declared options (an unknown key or value is a :class:`TargetError`: exit
status 2 at the CLI) and returns the contract view of the subject
(``theory/conventions.py``), whatever the target's form: a ``--as``
callable, a mapping of callables, a :class:`Subject` or a built-in name.

References
----------
DESIGN.md ("Subject", "Conformance on real code"); issue 8; issue 14.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
import sys
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from transformer_theory.impl.contract.callables import ALIASES, CALLABLES
from transformer_theory.impl.contract.conventions import OPTION_TABLE, validate_options
from transformer_theory.impl.contract.precision import BFLOAT16

from .conventions import conform
from .declared import NotApplicable
from .subject import Subject

__all__ = ["TargetError", "KINDS", "KIND_ALIASES", "parse_options", "load_subject"]


class TargetError(Exception):
    """The target cannot be imported or does not fit the contract (CLI exit status 2)."""


# ---------------------------------------------------------------------------
# What a single callable may be declared as
# ---------------------------------------------------------------------------

#: ``--as KIND``: every contract callable name, plus short names (``impl.contract.ALIASES``).
KIND_ALIASES: dict[str, str] = dict(ALIASES)

KINDS: tuple[str, ...] = tuple(sorted(set(CALLABLES) | set(KIND_ALIASES)))

#: Keyword arguments the claims pass to each kind, checked when a callable is loaded.
_ESSENTIAL_KEYWORDS: dict[str, tuple[str, ...]] = {
    "attention": ("mask", "causal", "scale"),
    "attention_weights": ("mask", "causal", "scale"),
    "multi_head_attention": ("mask", "causal"),
    "grouped_query_attention": ("mask", "causal"),
    "layer_norm": ("eps",),
    "rms_norm": ("eps",),
    "gated_feed_forward": ("activation",),
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


def _check_fits(fn: Callable, kind: str, target: str,
                options: Mapping[str, Any] | None = None, self_attention: bool = False) -> None:
    """Raise TargetError unless ``fn`` can be called the way the claims call ``kind``.

    Keyword names follow the declared ``rename``; ``scale=none`` drops ``scale`` and
    ``causal_flag=none`` drops ``causal``;
    a self-attention GQA callable (``--as gqa_self``) takes ``(x, params)``.
    """
    options = options or {}
    if not callable(fn):
        raise TargetError(f"{target}: expected a callable for --as {kind}, got "
                          f"{type(fn).__name__}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return                                  # builtins without a signature: trust them
    args = [object()] * (_contract_positionals(kind) - (1 if self_attention else 0))
    essential = [k for k in _ESSENTIAL_KEYWORDS.get(kind, ())
                 if not (k == "scale" and options.get("scale") == "none")
                 and not (k == "causal" and options.get("causal_flag") == "none")]
    rename = options.get("rename") or {}
    kwargs = {rename.get(k, k): None for k in essential}
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

    JSON's ``NaN`` and ``Infinity`` stay strings (``fully_masked_row=NaN`` is a
    misspelt word, reported as such by the option's validation).

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
            parsed = json.loads(value)
        except ValueError:
            parsed = value.strip()
        if isinstance(parsed, float) and not np.isfinite(parsed):
            parsed = value.strip()                 # NaN, Infinity: a word, not a number
        out[key] = parsed
    return out


# ---------------------------------------------------------------------------
# Frameworks: numpy at the boundary
# ---------------------------------------------------------------------------

def _is_torch_module(obj) -> bool:
    mod = sys.modules.get("torch")
    return mod is not None and isinstance(obj, mod.nn.Module)


def _torch_dtype_of(value):
    """The torch dtype of a numpy float array (bfloat16 included), else None."""
    import torch

    if not isinstance(value, np.ndarray):
        return None
    if value.dtype == BFLOAT16:
        return torch.bfloat16
    if value.dtype.kind == "f":
        return getattr(torch, value.dtype.name)
    return None


def _to_framework(value, framework: str, dtype=None):
    if isinstance(value, np.ndarray):
        if framework == "torch":
            import torch

            if value.dtype == BFLOAT16:      # torch.from_numpy refuses bfloat16: via float32
                return torch.from_numpy(value.astype(np.float32)).to(torch.bfloat16)
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
        t = value.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # a bfloat16 tensor has no .numpy(): via float32
            return t.float().numpy().astype(BFLOAT16)
        return t.numpy()
    if type(value).__module__.startswith(("jax", "jaxlib")):
        return np.asarray(value)
    return value


def _framework_wrapper(fn: Callable, framework: str) -> Callable:
    """``fn`` on tensors of ``framework`` as a function on numpy arrays.

    An ``nn.Module`` takes float32 and float64 inputs in its parameters'
    dtype (as before: the output dtype then shows a float32 module). For
    float16 and bfloat16 inputs a copy of the module cast to that dtype runs
    (once per dtype), so that half-precision input is computed in half
    precision rather than silently in the parameters' float32.
    """
    module = framework == "torch" and _is_torch_module(fn)
    copies = {}
    if module:
        fn.eval()

    def in_dtype(args, kwargs):
        for a in (*args, *kwargs.values()):
            dt = _torch_dtype_of(a)
            if dt is not None:
                return dt
        return None

    def wrapped(*args, **kwargs):
        target, cast = fn, None
        if module:
            dt = in_dtype(args, kwargs)
            params = list(fn.parameters())
            if params and dt is not None and dt.itemsize == 2:          # float16, bfloat16
                if params[0].dtype != dt:
                    if dt not in copies:
                        copies[dt] = copy.deepcopy(fn).to(dt)
                    target = copies[dt]
            elif params:
                cast = params[0].dtype
        args = [_to_framework(a, framework, cast) for a in args]
        kwargs = {k: _to_framework(v, framework, cast) for k, v in kwargs.items()}
        if framework == "torch":
            import torch

            with torch.no_grad():
                out = target(*args, **kwargs)
        else:
            out = target(*args, **kwargs)
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
# Loading a subject
# ---------------------------------------------------------------------------

def _builtin(name: str) -> Subject | None:
    from .builtin_subjects import OPTIONAL_SUBJECTS, SUBJECTS, importable

    if name in SUBJECTS:
        return SUBJECTS[name]()
    if name in OPTIONAL_SUBJECTS and importable(name):
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
    base = subject.declared()
    merged = {**base.options, **options, "origin": origin}
    return _subject(base.name, base.callables, merged, base.description)


def _subject(name, callables, options, description="") -> Subject:
    """A Subject, with an invalid option reported as a TargetError (exit status 2)."""
    try:
        return Subject(name, callables, options, description)
    except ValueError as exc:
        raise TargetError(f"--option: {exc}") from None


def _self_attention_gqa(fn: Callable) -> Callable:
    """A self-attention GQA callable ``f(x, params, ...)`` under the contract's ``(x_q, x_kv, ...)``.

    Cases where the keys come from another sequence than the queries cannot be
    asked of it: the claim is not applicable to such a target.
    """
    def wrapped(x_q, x_kv, params, *rest, **kw):
        if x_kv is not x_q and not (np.shape(x_kv) == np.shape(x_q)
                                    and np.array_equal(x_kv, x_q)):
            raise NotApplicable("a self-attention GQA callable (--as gqa_self) cannot take "
                                "keys from another sequence than its queries")
        return fn(x_q, params, *rest, **kw)
    wrapped.__wrapped__ = fn
    wrapped.__name__ = getattr(fn, "__name__", "grouped_query_attention")
    return wrapped


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
        The contract view (``conventions.conform``) of the subject, with
        ``options["origin"]`` recording how it was built.

    Raises
    ------
    TargetError
        The target cannot be imported, is not a subject or callable, does not
        fit the contract of ``as_kind``, or an option is unknown or has a value
        outside its set.
    """
    options = dict(options or {})
    unknown = [k for k in options if k not in OPTION_TABLE]
    if unknown:
        raise TargetError(f"--option {unknown[0]}: unknown option; expected one of "
                          f"{', '.join(OPTION_TABLE)}")
    try:
        options = validate_options(options)
    except ValueError as exc:
        raise TargetError(f"--option: {exc}") from None
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
            return conform(_merge(obj, options, {**origin, "provided": None}))
        if isinstance(obj, Mapping):
            unknown = [k for k in obj if k not in CALLABLES]
            if unknown:
                raise TargetError(f"{label}: unknown callable names {unknown}; expected names "
                                  f"from the contract (transformer-theory list)")
            return conform(_subject(name or label, dict(obj), {**options, "origin": {
                **origin, "provided": sorted(obj)}}))
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
                    return conform(_merge(made, options, {**origin, "provided": None}))
        raise TargetError(
            f"{label} is a {type(obj).__name__}, not a Subject: say what it is with "
            f"--as KIND (one of: {', '.join(KINDS)})")

    fn = obj
    framework = options.get("tensors", "numpy")
    if _is_torch_module(fn):
        framework = "torch"
    if framework in ("torch", "jax"):
        fn = _framework_wrapper(fn, framework)
    _check_fits(fn, kind, label, options, self_attention=(as_kind == "gqa_self"))
    if as_kind == "gqa_self":
        fn = _self_attention_gqa(fn)
    if kind in ("encoder_map", "causal_map"):
        fn = _first_output(fn)
        if "d_model" not in options:
            width = _infer_width(obj)
            if width is None:
                raise TargetError(
                    f"{label}: a sequence map needs its width: pass --option d_model=E")
            options["d_model"] = width
    callables = {}
    if complete:
        from .builtin_subjects import reference_subject

        callables.update(reference_subject().callables)
    callables[kind] = fn
    return conform(_subject(name or label, callables,
                            {**options, "origin": {**origin, "provided": [kind]}},
                            description=f"{label} as {kind}"))


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


