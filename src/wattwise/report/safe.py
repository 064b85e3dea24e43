"""Text from users and from outside (run names, commands, notes, file names, providers' messages) made safe to print.

A run name can hold an escape sequence that recolours or clears the terminal, a newline that splits a table row,
or ``[bold]`` that rich would read as markup. :func:`printable` shows every control character as a visible escape
(``\\x1b``, ``\\n``), so what is printed is what is stored, on one line; :func:`plain` also makes it a rich
``Text`` that is never parsed as markup.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["plain", "printable"]

# C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators and bidirectional overrides that can
# reorder or hide what a terminal shows
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` on one line with every control character shown as an escape (a lone surrogate as ``?``)."""
    value = str(text)
    value = _UNSAFE.sub(_escape, value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def plain(text: object, style: str = "") -> Text:
    """:func:`printable` as a rich Text, so brackets in it are shown, never read as markup."""
    from rich.text import Text

    return Text(printable(text), style=style)
