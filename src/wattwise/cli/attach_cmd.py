"""``wattwise runs attach ID --slurm JOBID | --dcgm-prometheus URL | --kepler-prometheus URL --pod NS/NAME``: a
cluster's own energy counters for a stored run, kept in its record beside wattwise's figures (never in the totals);
``--remove SOURCE[:SCOPE]`` takes them out again.
Live counterparts: ``wattwise run --dcgm URL`` and ``--kepler URL --pod NS/NAME`` (:func:`live_observers`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from wattwise import validate
from wattwise.errors import ConfigError

if TYPE_CHECKING:
    from wattwise.importers.live import CounterObserver
    from wattwise.records import ExternalFigure, Run

DEFAULT_TIMEOUT_S = 10.0  # one request to Prometheus
SACCT_TIMEOUT_S = 30.0  # sacct asks slurmdbd, which may be slow on a busy cluster
DESCRIPTION = (
    "Read what the cluster's own counters recorded over a stored run and keep it in the run's record, beside "
    "wattwise's figures (never added to them): DCGM's GPU energy counter or Kepler's per-pod joules from a "
    "Prometheus server (the samples nearest the run's start and end), or Slurm's ConsumedEnergy of a job from "
    "sacct. Attaching again replaces the figures of the same source and scope. A counter that was reset during "
    "the run, a server that does not answer, a job without energy accounting: one line, and the run is unchanged. "
    "--remove SOURCE[:SCOPE] takes attached figures out of the record again."
)


def add_parser(runs_sub: Any) -> None:
    p = runs_sub.add_parser(
        "attach", help="keep a cluster's energy counters (DCGM, Kepler, Slurm) for a run", description=DESCRIPTION
    )
    p.add_argument("ref", metavar="ID|latest", help="a run id, a unique prefix of one, or 'latest'")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--slurm", metavar="JOBID", help="Slurm's ConsumedEnergy of this job (sacct)")
    source.add_argument(
        "--dcgm-prometheus", metavar="URL", help="DCGM's GPU energy counters from this Prometheus server"
    )
    source.add_argument("--kepler-prometheus", metavar="URL", help="Kepler's pod energy from this Prometheus server")
    source.add_argument(
        "--remove",
        metavar="SOURCE[:SCOPE]",
        help="remove the figures attached from SOURCE (dcgm, kepler, slurm), or only the one of SCOPE (as runs show "
        "names it, e.g. slurm:'job 4242 on gpu-node-07')",
    )
    p.add_argument("--pod", metavar="NS/NAME", help="with --kepler-prometheus: the pod (namespace/name)")
    p.add_argument(
        "--metric",
        help="with --kepler-prometheus: the Kepler counter (default kepler_container_joules_total; Kepler 0.10+: "
        "kepler_pod_cpu_joules_total)",
    )
    p.add_argument(
        "--gpu",
        action="append",
        default=[],
        metavar="INDEX|UUID",
        help="with --dcgm-prometheus: a GPU to read (repeat for more; default: the GPUs the run measured)",
    )
    p.add_argument("--hostname", help="with --dcgm-prometheus: the node (DCGM's Hostname label) when not by UUID")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="for each request or sacct (default 10, sacct 30)")
    p.add_argument("--json", action="store_true", help="print the figures attached, as JSON")
    p.add_argument("--db", help="run store URL")
    p.set_defaults(handler=handle_attach)


def _check_flags(args: argparse.Namespace) -> None:
    kepler = args.kepler_prometheus is not None
    dcgm = args.dcgm_prometheus is not None
    if kepler and not args.pod:
        raise ConfigError("--kepler-prometheus needs --pod NAMESPACE/NAME: the pod the run ran in")
    if not kepler and (args.pod or args.metric):
        raise ConfigError("--pod and --metric go with --kepler-prometheus")
    if not dcgm and (args.gpu or args.hostname):
        raise ConfigError("--gpu and --hostname go with --dcgm-prometheus")
    if args.timeout is not None:
        validate.HTTP_TIMEOUT_S.check(args.timeout, "--timeout")
    if args.remove is not None:
        _removal(args.remove)
    # every value checked before the store is opened: bad input changes nothing and costs no request
    if args.slurm is not None:
        validate.check_slurm_job_id(args.slurm)
    if dcgm:
        validate.check_http_url(args.dcgm_prometheus, "--dcgm-prometheus")
        for gpu in args.gpu:
            validate.check_gpu(gpu)
        if args.hostname is not None and not (0 < len(args.hostname) <= 253 and args.hostname.isprintable()):
            raise ConfigError(f"--hostname must be a node name, as DCGM's Hostname label has it: {args.hostname!r}")
    if kepler:
        validate.check_http_url(args.kepler_prometheus, "--kepler-prometheus")
        validate.check_pod(args.pod)
        if args.metric is not None:
            validate.check_metric_name(args.metric)


def _removal(text: str) -> tuple[str, str | None]:
    """``--remove SOURCE[:SCOPE]`` as (source, scope or None)."""
    source, colon, scope = text.partition(":")
    if not source.strip() or (colon and not scope.strip()) or not text.isprintable() or len(text) > 1000:
        raise ConfigError(f"--remove takes SOURCE or SOURCE:SCOPE, e.g. slurm or 'dcgm:gpu 0 GPU-…' (got {text!r})")
    return source.strip(), scope.strip() if colon else None


def _remove(args: argparse.Namespace) -> int:
    from wattwise.cli.common import open_store_from_args
    from wattwise.importers.attach import detach
    from wattwise.report.safe import printable

    source, scope = _removal(args.remove)
    with open_store_from_args(args, write=True) as store:
        if not store.persistent:
            raise ConfigError("the store is in memory: nothing removed there would be kept; give a file with --db")
        run = store.get(args.ref)
        updated, removed = detach(store, run.id, source, scope)
    if args.json:
        json.dump([f.to_dict() for f in removed], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for figure in removed:
            print(printable(f"removed {figure.source} {figure.scope}"))
    print(f"removed {len(removed)} figure(s) from run {updated.id}", file=sys.stderr)
    return 0


def _figures(args: argparse.Namespace, run: Run) -> list[ExternalFigure]:
    timeout_s = float(args.timeout) if args.timeout is not None else DEFAULT_TIMEOUT_S
    if args.slurm is not None:
        from wattwise.importers.slurm import sacct_job, slurm_figure

        sacct_timeout_s = float(args.timeout) if args.timeout is not None else SACCT_TIMEOUT_S
        return [slurm_figure(sacct_job(validate.check_slurm_job_id(args.slurm), timeout_s=sacct_timeout_s), run)]
    if args.dcgm_prometheus is not None:
        from wattwise.importers.dcgm import dcgm_from_prometheus

        url = validate.check_http_url(args.dcgm_prometheus, "--dcgm-prometheus")
        gpus = [validate.check_gpu(g) for g in args.gpu]
        return dcgm_from_prometheus(url, run, gpus=gpus, hostname=args.hostname, timeout_s=timeout_s)
    from wattwise.importers.kepler import DEFAULT_METRIC, kepler_from_prometheus

    url = validate.check_http_url(args.kepler_prometheus, "--kepler-prometheus")
    namespace, pod = validate.check_pod(args.pod)
    metric = validate.check_metric_name(args.metric or DEFAULT_METRIC)
    return kepler_from_prometheus(url, run, namespace=namespace, pod=pod, metric=metric, timeout_s=timeout_s)


def handle_attach(args: argparse.Namespace) -> int:
    from wattwise.cli.common import open_store_from_args
    from wattwise.importers import attach, counterpart

    _check_flags(args)
    if args.remove is not None:
        return _remove(args)
    with open_store_from_args(args, write=True) as store:
        if not store.persistent:
            raise ConfigError("the store is in memory: nothing attached there would be kept; give a file with --db")
        run = store.get(args.ref)
        if run.status == "running":
            raise ConfigError(f"run {run.id} is still being measured: attach cluster counters once it has ended")
        figures = _figures(args, run)  # the network or sacct: before the store's transaction, never inside it
        updated = attach(store, run, figures)
    if args.json:
        rows = [{**f.to_dict(), "wattwise": _counterpart_dict(updated, f)} for f in figures]
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from wattwise.report import numbers
    from wattwise.report.safe import printable

    for figure in figures:
        side = counterpart(updated, figure)
        beside = ""
        if side.energy_j is not None:
            change = numbers.signed_percent(figure.energy_j / side.energy_j - 1) if side.energy_j > 0 else "n/a"
            beside = f" (wattwise {side.label}: {numbers.energy_j(side.energy_j)}, {change})"
        print(printable(f"{figure.source} {figure.scope}: {numbers.energy_j(figure.energy_j)}{beside}"))
    print(f"attached {len(figures)} figure(s) to run {updated.id}", file=sys.stderr)
    return 0


def _counterpart_dict(run: Run, figure: ExternalFigure) -> dict[str, Any]:
    from wattwise.importers import counterpart

    side = counterpart(run, figure)
    return {"label": side.label, "energy_j": side.energy_j, "note": side.note}


def add_live_flags(p: argparse.ArgumentParser) -> None:
    """``wattwise run``'s flags for the live counters."""
    g = p.add_argument_group("cluster counters, read as the run starts and ends and kept beside its figures")
    g.add_argument("--dcgm", metavar="URL", help="the node's DCGM exporter (e.g. http://127.0.0.1:9400/metrics)")
    g.add_argument("--kepler", metavar="URL", help="the node's Kepler exporter /metrics; needs --pod")
    g.add_argument("--pod", metavar="NS/NAME", help="with --kepler: the pod this command runs in")
    g.add_argument("--kepler-metric", metavar="NAME", help="with --kepler: the counter (kepler_container_joules_total)")


def live_observers(args: argparse.Namespace) -> list[CounterObserver]:
    """The observers ``wattwise run``'s flags ask for (their figures go in with the run's final record)."""
    from wattwise.importers.kepler import DEFAULT_METRIC
    from wattwise.importers.live import DcgmCounters, KeplerCounters

    if args.kepler is None and (args.pod or args.kepler_metric):
        raise ConfigError("--pod and --kepler-metric go with --kepler URL")
    observers: list[CounterObserver] = []
    if args.dcgm is not None:
        observers.append(DcgmCounters(validate.check_http_url(args.dcgm, "--dcgm")))
    if args.kepler is not None:
        if not args.pod:
            raise ConfigError("--kepler needs --pod NAMESPACE/NAME: the pod this command runs in")
        url = validate.check_http_url(args.kepler, "--kepler")
        observers.append(KeplerCounters(url, pod=args.pod, metric=args.kepler_metric or DEFAULT_METRIC))
    return observers
