"""Reference data shipped with wattwise; origins and licences in SOURCES.md beside this file."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent


def read_text(name: str) -> str:
    """One packaged data file as text (a plain file read: cheaper at start-up than importlib.resources)."""
    return (DATA_DIR / name).read_text(encoding="utf-8")
