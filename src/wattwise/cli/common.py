"""Flags shared by commands, turned into one Settings object."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any

from wattwise.carbon import registry
from wattwise.config import Settings


def add_settings_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("measurement settings (override config file and WATTWISE_* environment)")
    g.add_argument(
        "--region", help="ISO country code, grid zone (US-CAL-CISO) or cloud region (aws:eu-west-1); default: world"
    )
    g.add_argument(
        "--provider",
        choices=registry.NAMES,
        help="where the grid intensity comes from (default: static, the packaged annual table)",
    )
    g.add_argument("--trace", help="a CSV intensity series for time-resolved emissions (implies --provider csv)")
    g.add_argument("--intensity", type=float, help="a fixed grid intensity in g/kWh (implies --provider fixed)")
    g.add_argument("--pue", type=float, help="facility PUE (default: the cloud's published figure, else 1.0)")
    g.add_argument(
        "--wue",
        dest="wue_l_per_kwh",
        type=float,
        metavar="L_PER_KWH",
        help="on-site water per kWh (default: the cloud's published figure, else 0)",
    )
    g.add_argument("--interval", dest="interval_s", type=float, metavar="SECONDS", help="sampling period (1.0)")
    g.add_argument("--attribution", choices=["process", "machine"], help="what the totals count (process)")
    g.add_argument("--db", help="run store URL, e.g. sqlite:///runs.db (default under WATTWISE_HOME)")
    g.add_argument("--no-gpu", dest="gpu", action="store_false", default=None, help="do not read NVIDIA GPUs")
    g.add_argument(
        "--no-network",
        dest="network",
        action="store_false",
        default=None,
        help="do not count network transfer",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for key in (
        "region",
        "pue",
        "interval_s",
        "attribution",
        "db",
        "gpu",
        "network",
        "epochs",
        "provider",
        "trace",
        "intensity",
        "wue_l_per_kwh",
        "kill_grace_s",
    ):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = value
    if overrides.get("interval_s") is not None:
        # keep flush_s valid when a long interval is asked for on the command line
        overrides.setdefault("flush_s", max(5.0, min(10.0, float(overrides["interval_s"]))))
    return Settings.load(overrides)


def db_only_settings(args: argparse.Namespace) -> Settings:
    return Settings.load({"db": getattr(args, "db", None)})


def write_output(path: Path, text: str) -> int:
    """Write a page or statement the user asked for: whole or not at all (a temporary file renamed into place), an
    unwritable path one clear line. Returns the bytes written."""
    from wattwise.errors import ConfigError
    from wattwise.report.safe import printable

    data = text.encode("utf-8")
    if path.is_dir():
        raise ConfigError(f"{printable(path)} is a directory; give a file name")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ConfigError(f"cannot write {printable(path)}: {exc.strerror or exc}; choose another path") from None
    return len(data)


def open_store_from_args(args: argparse.Namespace, *, write: bool = False) -> Any:
    """The store ``--db`` (or the settings) name, read-only unless ``write``: reading commands work on a read-only
    file and never change it. Notes the store has (a foreign file, a newer schema) go to stderr."""
    import sys

    from wattwise.store import open_store

    store = open_store(db_only_settings(args).db_url, read_only=not write)
    for note in getattr(store, "notes", ()):
        if "no run store" not in note:  # a missing store reads as empty: "no runs stored yet" says it
            print(f"wattwise: note: {note}", file=sys.stderr)
    return store


def save_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--save", action="store_true", help="keep it in the run store, beside the runs (the dashboard lists it)"
    )
    if not any("--db" in a.option_strings for a in p._actions):
        p.add_argument("--db", help="run store URL, with --save (default: WATTWISE_DB or under WATTWISE_HOME)")


def save_artifact(args: argparse.Namespace, kind: str, name: str, data: dict[str, Any]) -> str:
    """Save an estimate or a plan in the store and say where (on stderr when stdout carries JSON)."""
    import sys

    from wattwise.records import Artifact, new_id, utc_now

    artifact = Artifact(new_id(), kind, name, utc_now(), data)  # type: ignore[arg-type]
    with open_store_from_args(args, write=True) as store:
        store.save_artifact(artifact)
    out = sys.stderr if getattr(args, "json", False) else sys.stdout
    print(f"saved as {kind} {artifact.id} (`wattwise dashboard` shows it)", file=out)
    return artifact.id
