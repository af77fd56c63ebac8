"""LaTeX -> MathML for the HTML report, so statements render without a CDN.

The converter is ``latex2mathml``; its output is post-processed for what
browsers implementing MathML Core actually render, and checked:

* operator names it does not know (``\\arg``, ``\\sgn``, ...) are rewritten as
  ``\\operatorname{...}`` before conversion;
* ``mathvariant`` values other than ``normal`` (double-struck, bold,
  calligraphic, fraktur, ...) are ignored by MathML Core, so their letters are
  replaced by the Unicode Mathematical Alphanumeric Symbols (``\\mathbb{R}`` ->
  ℝ, ``\\mathbb{1}`` -> 𝟙);
* the result must parse as XML and contain no unconverted ``\\command``.

When that fails, a sympy expression (if the caller has one, as derivation steps
do) is printed with sympy's presentation-MathML printer; otherwise the LaTeX
source is shown in a ``<code>`` element. Conversion never raises.

References
----------
W3C, MathML Core (2023), §2.1 (``mathvariant`` restricted to ``normal`` on
``<mi>``); Unicode Standard, Mathematical Alphanumeric Symbols (U+1D400-U+1D7FF).
"""

from __future__ import annotations

import html
import re
import unicodedata
import xml.etree.ElementTree as ET
from functools import lru_cache

MATHML_NS = "http://www.w3.org/1998/Math/MathML"

#: Operator names written as commands in claims but unknown to latex2mathml.
_OPERATOR_NAMES = ("arg", "sgn", "diag", "rank", "tr", "Var", "Cov", "softmax", "erf",
                   "supp", "poly", "conv", "span")

#: mathvariant -> the word Unicode uses in character names.
_VARIANT_WORDS = {
    "double-struck": "DOUBLE-STRUCK",
    "bold": "BOLD",
    "script": "SCRIPT",
    "fraktur": "FRAKTUR",
    "bold-italic": "BOLD ITALIC",
    "sans-serif": "SANS-SERIF",
    "monospace": "MONOSPACE",
    "bold-script": "BOLD SCRIPT",
    "bold-fraktur": "BOLD FRAKTUR",
}

_DIGIT_NAMES = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")

_UNCONVERTED = re.compile(r">[^<]*\\[A-Za-z]+[^<]*<")


def _styled_char(ch: str, variant: str) -> str:
    """``ch`` in the Unicode mathematical alphabet of ``variant`` (``ch`` if none)."""
    word = _VARIANT_WORDS.get(variant)
    if word is None:
        return ch
    if ch.isdigit() and ch.isascii():
        names = [f"MATHEMATICAL {word} DIGIT {_DIGIT_NAMES[int(ch)]}"]
    elif ch.isascii() and ch.isalpha():
        case = "CAPITAL" if ch.isupper() else "SMALL"
        # the letters that predate the block (ℝ, ℕ, ℋ, ℭ, ...) live in Letterlike Symbols
        names = [f"MATHEMATICAL {word} {case} {ch.upper()}", f"{word} {case} {ch.upper()}"]
        if word == "SCRIPT":
            names.append(f"{word} {case} {ch.upper()}")
        if word == "FRAKTUR":
            names.append(f"BLACK-LETTER {case} {ch.upper()}")
    else:
        return ch
    for name in names:
        try:
            return unicodedata.lookup(name)
        except KeyError:
            continue
    return ch


def _apply_variants(root: ET.Element) -> None:
    """Replace unsupported ``mathvariant`` styling by Unicode math letters, in place."""
    for el in root.iter():
        variant = el.attrib.get("mathvariant")
        if variant is None or variant == "normal":
            continue
        if variant in _VARIANT_WORDS and el.text:
            el.text = "".join(_styled_char(c, variant) for c in el.text)
            del el.attrib["mathvariant"]
            # a single styled letter must not be italicised again
            if el.tag.endswith("mi") and len(el.text) == 1:
                el.attrib["mathvariant"] = "normal"


def _prepare(latex: str) -> str:
    r"""Rewrite operator names latex2mathml does not know as ``\operatorname``."""
    for name in _OPERATOR_NAMES:
        latex = re.sub(rf"\\{name}(?![A-Za-z])", rf"\\operatorname{{{name}}}", latex)
    return latex


def _serialize(root: ET.Element) -> str:
    ET.register_namespace("", MATHML_NS)
    text = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    return text


@lru_cache(maxsize=4096)
def _latex2mathml(latex: str, display: bool) -> str | None:
    """latex2mathml's MathML for ``latex`` after the fixes above, or None."""
    try:
        from latex2mathml.converter import convert
    except ImportError:  # pragma: no cover - report extra not installed
        return None
    try:
        raw = convert(_prepare(latex), display="block" if display else "inline")
    except Exception:  # latex2mathml raises many types on bad input
        return None
    if _UNCONVERTED.search(raw):
        return None
    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        return None
    _apply_variants(root)
    return _serialize(root)


def _sympy_mathml(expr, display: bool) -> str | None:
    """sympy's presentation MathML for ``expr`` wrapped in ``<math>``, or None."""
    try:
        from sympy.printing.mathml import mathml

        body = _named_entities_to_chars(mathml(expr, printer="presentation"))
        text = (f'<math xmlns="{MATHML_NS}" display="{"block" if display else "inline"}">'
                f"{body}</math>")
        root = ET.fromstring(text)
    except Exception:
        return None
    _apply_variants(root)
    return _serialize(root)


def _named_entities_to_chars(text: str) -> str:
    """Replace HTML named entities (``&InvisibleTimes;``) by characters; XML knows only five."""
    from html.entities import html5

    def repl(m: re.Match) -> str:
        name = m.group(1)
        if name in ("lt", "gt", "amp", "quot", "apos"):
            return m.group(0)
        char = html5.get(name + ";")
        return html.escape(char, quote=False) if char is not None else m.group(0)

    return re.sub(r"&([A-Za-z][A-Za-z0-9]*);", repl, text)


def code_fallback(latex: str) -> str:
    """The LaTeX source as a ``<code>`` element (what is shown when nothing converts)."""
    return f'<code class="latex" title="LaTeX source">{html.escape(latex)}</code>'


def to_mathml(latex: str, *, display: bool = False, sympy_expr=None) -> str:
    """MathML (as XHTML-safe markup) for a LaTeX formula; never raises.

    Parameters
    ----------
    latex : str
        The formula (no surrounding ``$``).
    display : bool
        Block (display) math rather than inline.
    sympy_expr : sympy object, optional
        The same formula as a sympy expression or relational, used when
        latex2mathml fails.

    Returns
    -------
    str
        A ``<math>`` element, or a ``<code>`` element holding the LaTeX source.

    References
    ----------
    W3C, MathML Core (2023); latex2mathml (Ronie Martinez), sympy.printing.mathml.
    """
    if not isinstance(latex, str):
        latex = str(latex)
    out = _latex2mathml(latex, bool(display))
    if out is None and sympy_expr is not None:
        out = _sympy_mathml(sympy_expr, bool(display))
    return out if out is not None else code_fallback(latex)


def converts(latex: str) -> bool:
    """Whether ``latex`` becomes MathML (rather than the ``<code>`` fallback)."""
    return _latex2mathml(latex, False) is not None
