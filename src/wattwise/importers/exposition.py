"""Prometheus' text exposition format (0.0.4), read: the samples of the metrics asked for, with their labels.

Exporters serve it on ``/metrics`` (DCGM's ``dcgm-exporter``, Kepler). Only the lines of the wanted metric names are
parsed, so a page with thousands of other series costs little; a wanted line that is not in the format is an error
that names the line, never skipped. ``# HELP``/``# TYPE`` comments and blank lines are ignored; label values are
unescaped (``\\\\``, ``\\"``, ``\\n``); values may be ``NaN`` or ``±Inf`` (the caller decides what a counter may be).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field

from wattwise.errors import CounterError
from wattwise.validate import short

__all__ = ["Series", "parse"]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\.)*)"\s*')
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_UNESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class Series:
    """One sample line: the metric, its labels and its value (``timestamp_ms`` when the line carried one)."""

    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)
    timestamp_ms: int | None = None


def _unescape(value: str) -> str:
    return _UNESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), value)


def _number(text: str) -> float:
    lowered = text.lower()
    if lowered in ("nan", "+inf", "-inf", "inf"):
        return {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}[lowered]
    if not re.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", text):
        raise ValueError(text)
    return float(text)


def _line(line: str, name: str, number: int, where: str) -> Series:
    def bad(why: str) -> CounterError:
        return CounterError(f"{where}: line {number} is not in Prometheus' text format ({why}): {short(line, 120)}")

    pos = len(name)
    labels: dict[str, str] = {}
    if pos < len(line) and line[pos] == "{":
        pos += 1
        while True:
            while pos < len(line) and line[pos] in " \t":
                pos += 1
            if pos < len(line) and line[pos] == "}":
                pos += 1
                break
            match = _LABEL.match(line, pos)
            if match is None:
                raise bad('a label is not name="value"')
            if match.group(1) in labels:
                raise bad(f"label {match.group(1)} is given twice")
            labels[match.group(1)] = _unescape(match.group(2))
            pos = match.end()
            if pos < len(line) and line[pos] == ",":
                pos += 1
            elif pos >= len(line) or line[pos] != "}":
                raise bad("the labels are not closed by }")
    rest = line[pos:].split()
    if not rest or len(rest) > 2 or (pos < len(line) and line[pos] not in " \t"):
        raise bad("a sample is `name{labels} value [timestamp]`")
    try:
        value = _number(rest[0])
        timestamp = int(rest[1]) if len(rest) == 2 else None
    except ValueError:
        raise bad("the value or the timestamp is not a number") from None
    return Series(name, value, labels, timestamp)


def parse(text: str, names: Collection[str], where: str = "the exporter's answer") -> list[Series]:
    """The samples of the metrics ``names`` in ``text``, in the order given; CounterError naming the line when one
    of them is malformed (``where`` says whose answer it was). Other metrics' lines are not looked at."""
    found: list[Series] = []
    for number, raw in enumerate(text.split("\n"), start=1):  # the format's only line break (not \r, not U+2028)
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        match = _NAME.match(line)
        if match is None or match.group(0) not in names:
            continue
        found.append(_line(line, match.group(0), number, where))
    return found
