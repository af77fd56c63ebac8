"""The shared machinery that honours a subject's declared options.

:func:`conform` turns a subject, as declared, into the contract's view of it:
each callable is wrapped so that what a claim sees follows the contract,
whatever legitimate convention the implementation follows. Claims never read
conventions; a new claim gets every convention for free.

Wrapping, from the claim (outside) to the target (inside):

1. **capabilities and precision** -- an input dtype outside the declared
   ``dtypes``, an ``Ev != E`` case under ``value_dim=equal`` or a Performer
   kind outside ``feature_kinds`` raises :class:`~.declared.NotApplicable`;
   an output coarser than its input is recorded so that tolerances follow it;
2. **fully masked rows** -- the rows with no key to attend are computed from
   the call's own mask and causal arguments, checked against the declared
   ``fully_masked_row`` (``nan``: all NaN or the contract's value;
   ``uniform``: finite) and replaced by the contract's value; a violation
   raises :class:`ConventionViolation`, which fails the case with its message;
3. **conventions** -- layout, causal alignment, sinusoid interleaving, GQA
   head mapping, RoPE pairing, RMSNorm eps placement, the ALiBi bias ahead of
   the query, Performer stabiliser and eps are converted;
4. **interface** -- a boolean causal flag, no scale argument, an
   offset-style RoPE, integer seeds and keyword renames are adapted.

The subject returned keeps the declared one as ``native``: the convention
claims (``contract.*``) check the declaration itself on the native callables,
and the convention diagnosis re-conforms it under other declarations.

References
----------
DESIGN.md, "Conformance on real code"; issue 14.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping

import numpy as np

from transformer_theory.impl.contract.conventions import (ATTENTION_KERNELS, MASKED_INPUT_LAYERS,
                                                          option_value)
from transformer_theory.impl.contract.precision import HALF_DTYPES, dtype_named
from transformer_theory.impl.sdpa import window_mask

from .declared import DontCare, NotApplicable, note_inputs, note_output
from .subject import Subject

__all__ = ["conform", "ConventionViolation", "dead_query_rows", "is_conformed"]

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


class ConventionViolation(AssertionError):
    """A callable broke the convention its subject declared (fails the case)."""


def is_conformed(subject: Subject) -> bool:
    """Whether ``subject`` is already the contract view made by :func:`conform`."""
    return subject.native is not None


def conform(subject: Subject) -> Subject:
    """The contract's view of ``subject``: every declared option honoured.

    Parameters
    ----------
    subject : Subject
        As declared (its ``options`` describe its callables as they are).

    Returns
    -------
    Subject
        Same name and options, callables wrapped, ``native`` set to the
        declared subject. Conforming a conformed subject returns it unchanged.
    """
    if is_conformed(subject):
        return subject
    options = subject.options
    provided = (options.get("origin") or {}).get("provided")
    wrapped = {}
    for name, fn in subject.callables.items():
        is_target = provided is None or name in provided
        wrapped[name] = _conform_callable(name, fn, options, is_target) if callable(fn) else fn
    return Subject(subject.name, wrapped, options, subject.description, native=subject)


def _conform_callable(name: str, fn: Callable, options: Mapping[str, Any],
                      is_target: bool) -> Callable:
    opt = functools.partial(option_value, options)
    inner = fn
    # 4. interface (innermost: the target's own spelling)
    if is_target and options.get("rename"):
        inner = _renamed(inner, options["rename"])
    if name in ATTENTION_KERNELS:
        # The layout is converted next to the target: the wrappers outside it (scale,
        # causal) read the contract's shapes, (..., L, E).
        if opt("layout") == "(B, L, H, E)":
            inner = _blhe_layout(inner, weights=(name == "attention_weights"))
        if opt("scale") == "none":
            inner = _without_scale(inner, backward=(name == "attention_backward"))
        native, flag = opt("causal_alignment"), opt("causal_flag")
        if flag != "contract" or native != "top-left":
            inner = _native_causal(inner, native, takes_flag=(flag != "none"))
    if name == "rope":
        if opt("rope_positions") == "offset":
            inner = _rope_from_offsets(inner)
        if opt("rope_pairing") == "half":
            inner = _rope_interleaved(inner)
    if name == "rms_norm" and opt("rms_eps") == "outside":
        inner = _rms_eps_inside(inner)
    if name == "alibi_bias" and opt("alibi_noncausal") == "linear":
        inner = _alibi_symmetric(inner)
    if name == "sinusoidal_encoding" and \
            opt("sinusoidal_interleaving") == "sin first half, cos second half":
        inner = _interleave_sinusoids(inner)
    if name == "grouped_query_attention" and opt("gqa_mapping") == "h -> h % G":
        inner = _modular_gqa(inner)
    if name in ("orthogonal_gaussian", "gaussian_matrix") and opt("rng") == "seed":
        inner = _seeded(inner)
    if name == "random_features" and (opt("feature_stabilizer") != "none" or opt("feature_eps")):
        inner = _unstabilized(inner, opt("feature_stabilizer"), float(opt("feature_eps")))
    # 2. fully masked rows
    rule = opt("fully_masked_row", name)
    if rule != "zeros":
        inner = _settle_dead_rows(name, inner, rule)
    # 1. capabilities and precision
    if is_target:
        inner = _gated(name, inner, options)
    if inner is not fn:
        inner = functools.wraps(fn)(inner) if hasattr(fn, "__name__") else inner
    return inner


# ---------------------------------------------------------------------------
# 1. Capabilities and precision
# ---------------------------------------------------------------------------

def _is_float(a) -> bool:
    """A floating array: numpy's kind 'f', or bfloat16 (kind 'V' in ml_dtypes)."""
    return isinstance(a, np.ndarray) and (a.dtype.kind == "f" or a.dtype in HALF_DTYPES)


def _float_arrays(values):
    for v in values:
        if _is_float(v):
            yield v
        elif isinstance(v, (tuple, list)):
            yield from (a for a in v if _is_float(a))


def _gated(name: str, fn: Callable, options: Mapping[str, Any]) -> Callable:
    declared = options.get("dtypes")
    allowed = tuple(dtype_named(d) for d in declared) if declared else None
    kinds = options.get("feature_kinds")
    value_equal = option_value(options, "value_dim") == "equal" and name in ATTENTION_KERNELS
    finite_only = option_value(options, "masked_inputs") == "finite" and \
        name in ATTENTION_KERNELS + MASKED_INPUT_LAYERS

    def gated(*args, **kwargs):
        inputs = list(_float_arrays(list(args) + list(kwargs.values())))
        note_inputs({a.dtype for a in inputs})
        if finite_only and not all(np.all(np.isfinite(a)) for a in inputs):
            raise NotApplicable(f"{name} needs finite inputs at masked positions too "
                                f"(declared masked_inputs=finite)")
        if allowed is not None:
            for a in inputs:
                if a.dtype not in allowed:
                    raise NotApplicable(
                        f"{name} accepts only {', '.join(str(d) for d in allowed)} (declared "
                        f"dtypes); this claim passes {a.dtype}")
        if value_equal and len(args) >= 3 and np.ndim(args[2]) and \
                np.shape(args[2])[-1] != np.shape(args[0])[-1]:
            raise NotApplicable(f"{name} needs Ev = E (declared value_dim=equal); this claim "
                                f"passes E = {np.shape(args[0])[-1]}, Ev = {np.shape(args[2])[-1]}")
        if kinds is not None and name in ("random_features", "favor_attention",
                                          "favor_attention_recurrent"):
            kind = kwargs.get("kind", args[2] if name == "random_features" and len(args) > 2
                              else "positive")
            if kind not in kinds:
                raise NotApplicable(f"{name} computes only {', '.join(kinds)} features "
                                    f"(declared feature_kinds); this claim needs {kind!r}")
        out = fn(*args, **kwargs)
        if inputs:
            finest = _F64 if any(a.dtype == _F64 for a in inputs) else inputs[0].dtype
            for o in _float_arrays([out]):
                note_output(name, finest, o.dtype)
        return out
    return gated


# ---------------------------------------------------------------------------
# 2. Fully masked rows
# ---------------------------------------------------------------------------

def dead_query_rows(lq: int, lk: int, mask=None, causal=False, window=None) -> np.ndarray:
    """Boolean ``(..., Lq)``: True where a query may attend no key.

    ``mask`` is the contract's boolean mask (True = may attend), broadcastable
    to ``(..., Lq, Lk)``; ``causal`` is False, True (top-left) or
    ``"bottom-right"``; ``window`` the contract's ``(left, right)`` or None.
    """
    allowed = np.ones((lq, lk), dtype=bool)
    if causal:
        offset = (lk - lq) if causal == "bottom-right" else 0
        allowed = np.tril(allowed, k=offset)
    if window is not None:
        align = "bottom-right" if causal == "bottom-right" else "top-left"
        allowed = allowed & window_mask(lq, lk, window, align=align)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        allowed = np.broadcast_to(m, np.broadcast_shapes(m.shape, (lq, lk))) & allowed
    return ~allowed.any(axis=-1)


def _check_and_settle(out: np.ndarray, dead: np.ndarray, rule: str, name: str,
                      contract_row=0.0, finite_inputs: bool = True) -> np.ndarray:
    """Check the rows ``dead`` of ``out`` (..., R, D) against ``rule``; give them the contract's value.

    Under ``uniform`` a dead row is the average of *all* values, padding
    included: it must be finite only when every value is (``finite_inputs``).
    """
    out = np.asarray(out)
    try:
        dead = np.broadcast_to(dead, out.shape[:-1])
    except ValueError:
        return out                      # shapes the claim will reject itself
    if not dead.any():
        return out
    rows = out[dead]                                                   # (n_dead, D)
    expected = np.broadcast_to(np.asarray(contract_row, dtype=np.float64), rows.shape)
    if rule == "nan":
        ok = np.all(np.isnan(rows), axis=-1) | np.all(rows == expected, axis=-1)
        if not np.all(ok):
            raise ConventionViolation(
                f"{name}: a fully masked row is neither all NaN nor the contract's value "
                f"(declared fully_masked_row=nan)")
    elif rule == "uniform" and finite_inputs and not np.all(np.isfinite(rows)):
        raise ConventionViolation(f"{name}: a fully masked row is not finite "
                                  f"(declared fully_masked_row=uniform)")
    settled = out.copy()
    settled[dead] = np.asarray(contract_row, dtype=out.dtype)
    return settled


def _settle_dead_rows(name: str, fn: Callable, rule: str) -> Callable:
    if name in ("attention", "attention_weights"):
        def attention(q, k, *rest, mask=None, causal=False, **kw):
            out = fn(q, k, *rest, mask=mask, causal=causal, **kw)
            dead = dead_query_rows(np.shape(q)[-2], np.shape(k)[-2], mask, causal,
                                   kw.get("window"))
            finite = all(np.all(np.isfinite(a)) for a in (k, *rest[:1]))
            return _check_and_settle(out, dead, rule, name, finite_inputs=finite)
        return attention
    if name == "attention_backward":
        def backward(q, k, v, d_out, *rest, mask=None, causal=False, **kw):
            dead = dead_query_rows(np.shape(q)[-2], np.shape(k)[-2], mask, causal)
            d_live = np.where(np.broadcast_to(dead, np.shape(d_out)[:-1])[..., None], 0, d_out)
            dq, dk, dv = fn(q, k, v, d_live.astype(np.asarray(d_out).dtype), *rest, mask=mask,
                            causal=causal, **kw)
            if dead.any() and not (np.all(np.isfinite(dk)) and np.all(np.isfinite(dv))):
                raise DontCare("dk, dv through a NaN fully masked row are undefined")
            return _check_and_settle(dq, dead, rule, name), dk, dv
        return backward
    if name in ("softmax", "softmax_backward"):
        def softmax_like(x, *rest, axis=-1, **kw):
            out = np.asarray(fn(x, *rest, axis=axis, **kw))
            x = np.asarray(x)
            dead = np.all(np.isneginf(x), axis=axis, keepdims=True)
            if not dead.any():
                return out
            moved = np.moveaxis(out, axis, -1)
            settled = _check_and_settle(moved, np.moveaxis(dead, axis, -1)[..., 0], rule, name)
            return np.moveaxis(settled, -1, axis)
        return softmax_like
    if name == "softmax_jacobian":
        def jacobian(x, *rest, **kw):
            out = np.asarray(fn(x, *rest, **kw))                        # (..., n, n)
            dead = np.all(np.isneginf(np.asarray(x)), axis=-1)           # (...,)
            if not dead.any():
                return out
            flat = out.reshape(out.shape[:-2] + (-1,))
            return _check_and_settle(flat, dead, rule, name).reshape(out.shape)
        return jacobian
    if name in ("multi_head_attention", "grouped_query_attention"):
        def heads(x_q, x_kv, params, *rest, mask=None, causal=False, **kw):
            out = fn(x_q, x_kv, params, *rest, mask=mask, causal=causal, **kw)
            return _settle_projected(out, _projected_dead(x_q, x_kv, mask, causal), params,
                                     rule, name)
        return heads
    if name == "cross_attention":
        def cross(x, memory, params, *rest, memory_mask=None, **kw):
            out = fn(x, memory, params, *rest, memory_mask=memory_mask, **kw)
            if memory_mask is None:
                return out
            m = np.asarray(memory_mask, dtype=bool)
            lq = np.shape(x)[-2]
            if m.ndim == np.ndim(x) - 1:                                # (..., Lk) key padding
                dead = np.broadcast_to(~m.any(axis=-1)[..., None], m.shape[:-1] + (lq,))
            else:
                dead = ~m.any(axis=-1)
            return _settle_projected(out, (dead, dead), params, rule, name)
        return cross
    if name == "encoder":
        def encoder(x, params, *rest, mask=None, causal=False, **kw):
            out = fn(x, params, *rest, mask=mask, causal=causal, **kw)
            length = np.shape(x)[-2]
            if dead_query_rows(length, length, mask, causal).any():
                raise DontCare("an encoder row with no key to attend is defined only under "
                               "fully_masked_row=zeros")
            return out
        return encoder
    return fn


def _projected_dead(x_q, x_kv, mask, causal):
    """(dead in every head, dead in some head), each broadcastable to (..., Lq)."""
    lq, lk = np.shape(x_q)[-2], np.shape(x_kv)[-2]
    dead = dead_query_rows(lq, lk, mask, causal)
    if mask is not None and np.ndim(mask) >= np.ndim(x_q) + 1:            # (..., H, Lq, Lk)
        return dead.all(axis=-2), dead.any(axis=-2)
    return dead, dead


def _settle_projected(out, dead_pair, params, rule: str, name: str):
    dead_all, dead_some = dead_pair
    out = np.asarray(out)
    if not np.any(dead_some):
        return out
    if rule == "uniform" or np.any(np.broadcast_to(dead_some, out.shape[:-1])
                                   & ~np.broadcast_to(dead_all, out.shape[:-1])):
        raise DontCare(f"{name}: rows masked in some heads are defined only under "
                       f"fully_masked_row=zeros")
    b_o = getattr(params, "b_o", None)
    return _check_and_settle(out, dead_all, rule, name, 0.0 if b_o is None else np.asarray(b_o))


# ---------------------------------------------------------------------------
# 3. Conventions
# ---------------------------------------------------------------------------

def _native_causal(fn: Callable, native: str, takes_flag: bool = True) -> Callable:
    """The contract's ``causal`` (False, True = top-left, "bottom-right") as the target's flag.

    The target's ``causal=True`` means ``native`` alignment (``"square"``: it is
    trusted only when ``Lq == Lk``). The contract's request reaches it as
    ``causal=True`` when the alignments agree (or ``Lq == Lk``) and no mask is
    given; otherwise the causal triangle is folded into an explicit mask and
    the flag is False (PyTorch and tinygrad refuse a mask together with
    ``is_causal=True``). A target without a causal argument (``takes_flag``
    False) always gets the mask. A sliding ``window`` is aligned as the causal
    mask is (FlashAttention's ``window_size`` is bottom-right even without
    ``causal``): when the call's alignment is not the target's and
    ``Lq != Lk``, the window reaches the target as a band mask.
    """
    def call(q, k, rest, mask, causal, kw):
        if takes_flag:
            return fn(q, k, *rest, mask=mask, causal=causal, **kw)
        return fn(q, k, *rest, mask=mask, **kw)

    def wrapped(q, k, *rest, mask=None, causal=False, **kw):
        align = "bottom-right" if causal == "bottom-right" else "top-left"
        lq, lk = np.shape(q)[-2], np.shape(k)[-2]
        if kw.get("window") is not None and lq != lk and align != native:
            # The target aligns its window as its causal mask: the contract's reaches it
            # as a band mask.
            band = window_mask(lq, lk, kw.pop("window"), align=align)           # (Lq, Lk)
            mask = band if mask is None else (np.asarray(mask) & band)
        if not causal:
            return call(q, k, rest, mask, False, kw)
        if takes_flag and mask is None and (align == native or lq == lk):
            return call(q, k, rest, None, True, kw)
        offset = 0 if align == "top-left" else lk - lq
        tri = np.tril(np.ones((lq, lk), dtype=bool), k=offset)                 # (Lq, Lk)
        return call(q, k, rest, tri if mask is None else (np.asarray(mask) & tri), False, kw)
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
    return wrapped


def _half_permutation(d: int) -> np.ndarray:
    """Column order taking interleaved pairs (2i, 2i+1) to split halves (i, i + d/2)."""
    return np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])


def _rope_interleaved(fn: Callable) -> Callable:
    """A split-halves RoPE (GPT-NeoX rotate_half) under the contract's interleaved pairs.

    Pair (2i, 2i+1) of the contract is pair (i, i + d/2) of the target, with
    the same frequency theta_i: permute the columns in, apply, permute back.
    With ``rotary_dim=r`` only the first r columns are paired (i, i + r/2).
    """
    def wrapped(x, *args, **kw):
        x = np.asarray(x)
        d = x.shape[-1]
        r = kw.get("rotary_dim") or d                  # only the rotated part is paired
        if d % 2 or not isinstance(r, (int, np.integer)) or r % 2 or r > d:
            return fn(x, *args, **kw)                  # the target's own error
        perm = np.concatenate([_half_permutation(int(r)), np.arange(r, d)])
        out = np.asarray(fn(x[..., perm], *args, **kw))
        back = np.empty_like(out)
        back[..., perm] = out
        return back
    return wrapped


def _rope_from_offsets(fn: Callable) -> Callable:
    """``rope(x, offset=n)`` (row i at position n + i) under ``rope(x, positions)``.

    Contiguous integer positions take one call; any other positions are
    applied row by row, each row alone at its own offset.
    """
    def wrapped(x, positions=None, **kw):
        x = np.asarray(x)
        length = x.shape[-2]
        if positions is None:
            return fn(x, offset=0, **kw)
        pos = np.asarray(positions, dtype=np.float64)
        if np.any(pos < 0):
            raise DontCare("rope with rope_positions=offset takes offsets >= 0")
        if np.all(pos == np.round(pos)) and length and \
                np.array_equal(pos, pos[0] + np.arange(length)):
            return fn(x, offset=int(pos[0]), **kw)
        if not np.all(pos == np.round(pos)):
            raise NotApplicable("rope with rope_positions=offset takes integer positions; "
                                "this claim passes real ones")
        rows = [np.asarray(fn(x[..., i:i + 1, :], offset=int(p), **kw)) for i, p in enumerate(pos)]
        return np.concatenate(rows, axis=-2)
    return wrapped


def _alibi_symmetric(fn: Callable) -> Callable:
    """A linearly continued ALiBi bias (+m (j - i) ahead of the query) as the contract's
    symmetric -m |i - j|: the entries ahead of each query change sign."""
    def wrapped(n_heads, lq, lk, *args, causal_alignment="bottom-right", **kw):
        out = np.asarray(fn(n_heads, lq, lk, *args, causal_alignment=causal_alignment, **kw))
        offset = lk - lq if causal_alignment == "bottom-right" else 0
        ahead = np.arange(lk)[None, :] > np.arange(lq)[:, None] + offset           # (Lq, Lk)
        return np.where(ahead, -out, out).astype(out.dtype)
    return wrapped


def _rms_eps_inside(fn: Callable) -> Callable:
    """An RMSNorm with eps outside the root under the contract's eps inside it.

    With ``r = sqrt(mean(x^2))`` over the last axis the target returns
    ``x g / (r + eps)`` and the contract means ``x g / sqrt(r^2 + eps)``, so
    ``y_inside = y_outside * (r + eps) / sqrt(r^2 + eps)``, with ``r``
    recomputed from ``x`` in float64 (each row scaled by its largest ``|x|``
    first, so no square overflows). A zero row with ``eps = 0`` is left as
    the target gave it.
    """
    def wrapped(x, *args, eps: float = 1e-6, **kw):
        out = np.asarray(fn(x, *args, eps=eps, **kw))
        x64 = np.asarray(x, dtype=np.float64)                              # (..., E)
        s = np.max(np.abs(x64), axis=-1, keepdims=True)                    # (..., 1)
        s = np.where(s > 0, s, 1.0)
        r = s * np.sqrt(np.mean((x64 / s) ** 2, axis=-1, keepdims=True))   # (..., 1) row RMS
        e = float(eps)
        denom = np.sqrt(r * r + e)                                         # (..., 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where(denom > 0, (r + e) / np.where(denom > 0, denom, 1.0), 1.0)
        return (out.astype(np.float64) * factor).astype(out.dtype)
    return wrapped


def _seeded(fn: Callable) -> Callable:
    """A random-matrix callable taking an integer seed, under the contract's Generator."""
    def wrapped(m, d, rng, *args, **kw):
        seed = int(rng.integers(0, 2**32 - 1)) if isinstance(rng, np.random.Generator) else rng
        return fn(m, d, seed, *args, **kw)
    return wrapped


def _unstabilized(fn: Callable, stabilizer_kind: str, eps: float) -> Callable:
    """A feature map that always stabilises (and adds eps) under the contract's plain map.

    Positive features of the target are ``exp(w.x - |x|^2/2 - s)/sqrt(m) + eps/sqrt(m)``
    with ``s`` the max of ``w.x`` over the features of a row (``row``) or over the
    whole input (``sequence``). The wrapper subtracts ``eps/sqrt(m)`` and
    multiplies by ``exp(s)``, recomputed from ``x`` and ``w``; a stabiliser the
    claim passes is then applied as the contract says.
    """
    def wrapped(x, w, kind="positive", *, stabilizer=None, **kw):
        out = np.asarray(fn(x, w, kind, **kw))
        if kind == "trig":
            return out
        x64, w64 = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
        n_feat = out.shape[-1]
        plain = out.astype(np.float64) - eps / math.sqrt(n_feat)
        exponent = 0.0 if stabilizer is None else -np.asarray(stabilizer, dtype=np.float64)
        if stabilizer_kind != "none":
            s = x64 @ w64.T                                                 # (..., L, m)
            if kind == "hyperbolic":
                s = np.concatenate([s, -s], axis=-1)
            s = s.max(axis=-1, keepdims=True) if stabilizer_kind == "row" else \
                s.max(axis=(-1, -2), keepdims=True)
            exponent = exponent + s             # one exponent: no overflow the contract lacks
        return (plain * np.exp(exponent)).astype(out.dtype)
    return wrapped


# ---------------------------------------------------------------------------
# 4. Interface
# ---------------------------------------------------------------------------

def _renamed(fn: Callable, names: Mapping[str, str]) -> Callable:
    """Contract keyword names to the target's (``rename=mask:attn_mask``)."""
    def wrapped(*args, **kw):
        return fn(*args, **{names.get(k, k): v for k, v in kw.items()})
    return wrapped


def _without_scale(fn: Callable, backward: bool) -> Callable:
    """A target with no scale argument (always 1/sqrt(E)) under the contract's ``scale``.

    The contract's scale s reaches it as q * s * sqrt(E); the backward pass's
    dq is then d/dq' times s * sqrt(E).
    """
    def wrapped(q, k, *rest, scale=None, **kw):
        q = np.asarray(q)
        factor = 1.0 if scale is None else float(scale) * math.sqrt(q.shape[-1])
        q_in = q if factor == 1.0 else (q * factor).astype(q.dtype)
        out = fn(q_in, k, *rest, **kw)
        if backward and factor != 1.0:
            dq, dk, dv = out
            return (np.asarray(dq) * factor).astype(np.asarray(dq).dtype), dk, dv
        return out
    return wrapped
