"""``wattwise run [options] -- COMMAND [ARGS...]``"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from wattwise.cli import attach_cmd, deferred_run
from wattwise.cli.common import add_settings_flags, settings_from_args

if TYPE_CHECKING:
    from wattwise.measure.observers import RunObserver


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run a command and measure it and its child processes",
        description="Run COMMAND, measure it and every process it starts until they exit, store the run and "
        "print a summary. Exits with the command's own exit code.",
    )
    p.add_argument("--name", help="name of the run (default: the command's name)")
    p.add_argument("--quiet", "-q", action="store_true", help="no live panel and no summary")
    p.add_argument("--json", action="store_true", help="print the stored run as JSON on stdout at the end")
    p.add_argument(
        "--leave-descendants",
        action="store_true",
        help="stop measuring when COMMAND exits, even if processes it started still run (they are named in the "
        "record); by default wattwise waits for, and measures, every process the command started",
    )
    p.add_argument(
        "--kill-grace",
        dest="kill_grace_s",
        type=float,
        metavar="SECONDS",
        help="after forwarding SIGTERM or SIGHUP, SIGKILL the command if it has not exited within this long (10)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        help="planned epochs: with wattwise.report_epoch() called by the command, predict the whole run",
    )
    p.add_argument(
        "--pushgateway",
        metavar="URL",
        help="when the run ends, push its figures to this Prometheus Pushgateway (for batch jobs)",
    )
    p.add_argument("--push-job", metavar="NAME", help="the Pushgateway job the figures go under (default: the name)")
    attach_cmd.add_live_flags(p)
    deferred_run.add_flags(p)
    add_settings_flags(p)
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]", help="the command to run")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from wattwise.errors import ConfigError
    from wattwise.measure.runner import resolve_command, run_command
    from wattwise.measure.signals import SignalRelay
    from wattwise.measure.tracker import Tracker

    argv = list(args.cmd)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise ConfigError("no command given; usage: wattwise run [options] -- COMMAND [ARGS...]")
    resolve_command(argv)  # a missing command fails before anything is measured or stored
    settings = settings_from_args(args)
    counters = attach_cmd.live_observers(args)  # bad URLs fail before anything runs
    if settings.db_url.split("://", 1)[-1].strip("/") in ("", ":memory:"):
        raise ConfigError(
            f"--db {settings.db_url} is an in-memory store: the run would be gone when the command ends; "
            "give a file (sqlite:///runs.db) or leave --db out"
        )
    name = args.name or argv[0].rsplit("/", 1)[-1]
    try:
        prepared = deferred_run.prepare(args, settings, name, args.quiet)  # waits for the planned start, if any
    except deferred_run.WaitCancelled as exc:
        sys.stderr.write(f"wattwise: {exc} while waiting for the planned start: nothing ran, nothing was recorded\n")
        return 128 + exc.signum
    pauses = prepared.pauses if prepared is not None else None
    observers: list[RunObserver] = list(counters)
    if args.pushgateway:
        from wattwise.integrations.prometheus import PushgatewayObserver

        observers.append(PushgatewayObserver(args.pushgateway, args.push_job or name))
    quiet = args.quiet or (pauses is not None and pauses.restarts) or not (sys.stdout.isatty() and sys.stderr.isatty())
    panel = None
    if not quiet:  # no rich import otherwise: start-up time counts
        from wattwise.report.terminal import LivePanel

        panel = LivePanel(name)
        observers.append(panel)
    tracker = Tracker(name, settings=settings, command=argv, handle_signals=False, observers=observers)
    # The relay blocks the signals it forwards before any thread exists, so no thread can catch them by mistake.
    wait = not args.leave_descendants
    with SignalRelay(grace_s=settings.kill_grace_s) as relay:
        # a restarted command keeps this terminal's output; a quiet run has no panel
        if panel is None:
            result = run_command(argv, tracker, relay=relay, supervise=True, wait_descendants=wait, pauses=pauses)
        else:
            from rich.console import Console
            from rich.live import Live

            console = Console(stderr=True)
            with Live(console=console, auto_refresh=False, transient=True) as live:  # redrawn by the panel observer
                panel.display = live

                def write(text: str) -> None:
                    live.console.out(text, end="", highlight=False)

                try:
                    result = run_command(
                        argv, tracker, relay=relay, output=write, supervise=True, wait_descendants=wait, pauses=pauses
                    )
                finally:
                    panel.display = None
    run = result.run  # the final record, with the live counters' figures in it
    if prepared is not None:
        run = deferred_run.finish(prepared, run, settings)
    if not args.quiet:
        from rich.console import Console

        from wattwise.report.terminal import run_summary

        Console(stderr=True).print(run_summary(run, details=False))
        if run.schedule is not None and run.schedule.get("avoided_co2e_g") is not None:
            sched = run.schedule
            Console(stderr=True).print(
                f"deferred {sched['waited_s'] / 60:.0f} min, paused {sched['paused_s'] / 60:.0f} min: "
                f"{sched['avoided_co2e_g']:,.2f} g CO2e avoided against starting at submission "
                f"({sched.get('avoided_pct', 0.0):.1f} %), {sched['avoided_note']}",
                highlight=False,
            )
    if args.json:
        json.dump(run.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    return result.exit_code
