"""The notes of a run: what failed and when, and the size limits every text field of a record keeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from wattwise.measure.meters import SourceErrors
from wattwise.record_schema import MAX_NOTES, MAX_TEXT

__all__ = ["capped_notes", "clip", "failure_notes"]


def failure_notes(errors_by_source: Mapping[str, SourceErrors], origin_t_s: float) -> list[str]:
    """What failed during the run, and when (seconds after ``origin_t_s``, the run's start)."""
    notes = []
    for name, errors in errors_by_source.items():
        first = f"+{max(0.0, errors.first_t_s - origin_t_s):.1f} s" if errors.first_t_s else "during the run"
        if name == "host":
            notes.append(f"{errors.count} reading(s) of the host's counters failed and were skipped ({errors.last})")
        elif errors.dropped_t_s is not None:
            at = f"+{errors.dropped_t_s - origin_t_s:.1f} s"
            notes.append(
                f"{name} stopped reporting at {at} (first error at {first}): {errors.last}; its energy up to "
                "then is kept, nothing after it is counted"
            )
        else:
            notes.append(f"{name}: {errors.count} reading(s) failed and were skipped (first at {first})")
    return notes


def clip(text: str, most: int = MAX_TEXT) -> str:
    """``text`` cut to ``most`` characters, with an ellipsis where it was cut (record fields have a size limit)."""
    return text if len(text) <= most else text[: most - 1] + "…"


def capped_notes(notes: Sequence[str]) -> tuple[str, ...]:
    """Notes once each, each of a bounded size, at most MAX_NOTES of them (the last says how many were left out)."""
    unique = [clip(n, 2000) for n in dict.fromkeys(notes)]
    if len(unique) <= MAX_NOTES:
        return tuple(unique)
    kept = unique[: MAX_NOTES - 1]
    return (*kept, f"… {len(unique) - len(kept)} more notes not kept")
