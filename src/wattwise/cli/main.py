"""Entry point: parses arguments and dispatches to one small function per command.

Every error wattwise raises on purpose becomes one line on stderr (``wattwise: error: ...``) and a non-zero
exit code: 2 for bad input (flags, settings, region, store URL), 1 for other failures, 127/126 when ``run``
cannot find or execute the command.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from wattwise import __version__
from wattwise.errors import CommandError, ConfigError, RunNotFoundError, WattwiseError

# a negative number, or a negative span (-3h): a value for the validator, not an option
_NEGATIVE_NUMBER = re.compile(
    r"^-(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:\s*[a-z]+)?|inf(?:inity)?|nan)$", re.IGNORECASE
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where to look, and ``--params -7e9`` reaches the
    validator (which says the value must be positive) instead of being taken for an option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER  # argparse's own matcher misses -7e9 and -inf

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from wattwise.cli import (
        dashboard_cmd,
        doctor_cmd,
        estimate_cmd,
        exporter_cmd,
        hardware_cmd,
        intensity_cmd,
        optimize_cmd,
        report_cmd,
        run_cmd,
        runs_cmd,
        schedule_cmd,
    )

    parser = _Parser(prog="wattwise", description="Measure the energy and carbon of code, commands and runs.")
    parser.add_argument("--version", action="version", version=f"wattwise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run_cmd.add_parser(sub)
    doctor_cmd.add_parser(sub)
    runs_cmd.add_parser(sub)
    report_cmd.add_parser(sub)
    dashboard_cmd.add_parser(sub)
    exporter_cmd.add_parser(sub)
    intensity_cmd.add_parser(sub)
    hardware_cmd.add_parser(sub)
    estimate_cmd.add_parser(sub)
    optimize_cmd.add_parser(sub)
    schedule_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.handler(args)
    except CommandError as exc:
        _error(exc)
        return 127 if "not found" in str(exc) else 126
    except (ConfigError, RunNotFoundError) as exc:  # bad input: a flag, a setting, a region, an id
        _error(exc)
        return 2
    except WattwiseError as exc:  # the store, a device, a provider that failed with no fallback
        _error(exc)
        return 1
    except BrokenPipeError:  # `wattwise runs export | head`
        return 0
    except KeyboardInterrupt:
        print("wattwise: interrupted", file=sys.stderr)
        return 130
    return code


def _error(exc: BaseException) -> None:
    """The one line an error prints: control characters from user input shown as escapes, never executed."""
    from wattwise.report.safe import printable

    print(f"wattwise: error: {printable(exc)}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
