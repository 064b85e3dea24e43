"""Text made safe for LaTeX, in one place (footprint statements for runs and for estimates)."""

from __future__ import annotations

import re

__all__ = ["tex"]

_TEX = {
    "---": "-{}-{}-",  # dashes stay hyphens: "--region" is a flag, not an en dash
    "--": "-{}-",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
    "`": r"\textasciigrave{}",
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "×": r"$\times$",
    "–": "--",
    "÷": r"$\div$",
    "±": r"$\pm$",
    "·": r"$\cdot$",
    "≈": r"$\approx$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "−": r"$-$",
    "—": "---",
    "…": r"\ldots{}",
    "³": r"$^3$",
}
_TEX_RE = re.compile("|".join(re.escape(k) for k in _TEX))


def tex(text: str) -> str:
    """LaTeX-safe text, escaped in one pass (so the braces of one replacement are never escaped again); control
    characters are shown as escapes first (``\\x1b`` as text), so nothing from a run name reaches TeX raw.
    ``\\textquotedbl`` needs ``\\usepackage[T1]{fontenc}``, as most templates load."""
    from wattwise.report.safe import printable

    return _TEX_RE.sub(lambda m: _TEX[m.group(0)], printable(text)).replace("CO2e", r"CO$_2$e")
