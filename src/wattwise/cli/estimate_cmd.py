"""``wattwise estimate training|inference``: a footprint before anything runs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from wattwise.cli.common import save_artifact, save_flags
from wattwise.records import Range


def add_parser(sub: Any) -> None:
    p = sub.add_parser("estimate", help="energy, carbon, water and cost of training or serving, before it runs")
    verbs = p.add_subparsers(dest="estimate_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(handler=lambda args: (p.print_help(sys.stderr), 2)[1])

    t = verbs.add_parser("training", help="a training run, from accelerator time or from the model")
    t.add_argument("--hardware", required=True, help="catalogue name (`wattwise hardware list`), e.g. H100-SXM")
    t.add_argument("--devices", type=int, help="number of accelerators")
    t.add_argument("--hours", type=float, help="wall-clock hours (with --devices)")
    t.add_argument("--accelerator-hours", type=float, help="accelerator-hours, instead of devices × hours")
    t.add_argument("--params", type=float, help="parameters, e.g. 70e9")
    t.add_argument("--active-params", type=float, help="active parameters per token (mixture-of-experts)")
    t.add_argument("--tokens", type=float, help="training tokens, e.g. 2e12")
    t.add_argument("--flops", type=float, help="total training FLOPs, instead of 6 × params × tokens")
    t.add_argument("--mfu", type=float, help="model FLOPs utilisation, 0-1 (default: by hardware, with source)")
    t.add_argument(
        "--goodput",
        type=float,
        help="share of the held accelerator time that advances training, 0-1 (default 0.9, with source; "
        "give 1 when --mfu already comes from the whole run's time)",
    )
    t.add_argument(
        "--seq-len",
        type=int,
        help="training context in tokens, for the attention FLOPs (default 4096, with a 2048-8192 range)",
    )
    t.add_argument("--dtype", default="bf16", help="precision of the peak FLOPS (default bf16)")
    t.add_argument("--power-w", type=float, help="average power per device if known (replaces the power model)")
    t.add_argument("--host-overhead", type=float, help="with --power-w: host power as a fraction of it")
    _grid_flags(t)
    t.add_argument("--price-kwh", type=float, help="electricity price, USD per kWh")
    t.add_argument("--price-device-hour", type=float, help="accelerator price, USD per device-hour")
    t.add_argument("--name", default="the model", help="the model's name, for --format statements")
    t.add_argument(
        "--format",
        choices=["table", "markdown", "latex"],
        default="table",
        help="a footprint statement for a paper or model card",
    )
    t.add_argument("--json", action="store_true", help="machine-readable estimate")
    save_flags(t)
    t.set_defaults(handler=handle_training)

    i = verbs.add_parser(
        "inference",
        help="serving an LLM: per output token, per request, per 1,000 requests and per day",
        description="Serving estimated from the physics of decoding: memory bandwidth and compute at achievable "
        "shares of the hardware's peaks, at a batch size (see docs/inference.md).",
    )
    i.add_argument("--hardware", required=True, help="the accelerator (wattwise hardware list)")
    i.add_argument("--devices", type=int, default=1, help="accelerators the model is split over (default 1)")
    i.add_argument("--params", type=float, required=True, help="all parameters (e.g. 70e9)")
    i.add_argument("--active-params", type=float, help="parameters active per token (mixture of experts)")
    i.add_argument("--dtype", default="bf16", help="bf16, fp16, fp8, int8, int4 (4-bit weights) or fp32")
    i.add_argument("--batch", type=int, default=1, help="requests decoded together (default 1)")
    i.add_argument("--prompt-tokens", type=float, default=0.0, help="input tokens per request")
    i.add_argument("--tokens-per-request", type=float, required=True, help="output tokens per request")
    i.add_argument("--requests-per-day", type=float, help="the deployment's load; without it, busy at --batch all day")
    i.add_argument("--boundary", default="facility", help="accelerator, server (+ hosts) or facility (+ PUE)")
    i.add_argument("--attention", default="gqa", help="gqa (grouped-query: Llama 3, Mistral) or mha (GPT-2/3, OPT)")
    i.add_argument(
        "--engine",
        default="batched",
        help="host software: batched (vLLM <= 0.5, TGI), overlapped (vLLM 0.6+, SGLang, TensorRT-LLM), eager (HF)",
    )
    i.add_argument("--power-w", type=float, help="each device's maximum draw (TDP), where the catalogue has none")
    i.add_argument("--peak-tflops", type=float, help="each device's dense peak in the model's arithmetic (override)")
    i.add_argument("--memory-bandwidth", type=float, help="each device's memory bandwidth in GB/s (override)")
    _grid_flags(i)
    i.add_argument("--json", action="store_true")
    i.add_argument("--name", default="", help="a name for the estimate, shown where it is saved")
    save_flags(i)
    i.set_defaults(handler=handle_inference)


def _grid_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pue", type=float, help="facility PUE (default: the cloud's figure, else 1.2 with a range)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--region", help="ISO country code, grid zone or cloud region (aws:us-east-1)")
    where.add_argument("--intensity", type=float, help="grid intensity in g/kWh, instead of the region's")


def handle_training(args: argparse.Namespace) -> int:
    from wattwise.estimate.model import TrainingInputs, estimate_training
    from wattwise.estimate.statement import latex, markdown

    inputs = TrainingInputs(
        hardware=args.hardware,
        devices=args.devices,
        hours=args.hours,
        accelerator_hours=args.accelerator_hours,
        params=args.params,
        active_params=args.active_params,
        tokens=args.tokens,
        flops=args.flops,
        mfu=args.mfu,
        goodput=args.goodput,
        seq_len=args.seq_len,
        dtype=args.dtype,
        power_w=args.power_w,
        host_overhead=args.host_overhead,
        pue=args.pue,
        region=args.region,
        intensity_g_per_kwh=args.intensity,
        price_usd_per_kwh=args.price_kwh,
        price_usd_per_device_hour=args.price_device_hour,
    )
    estimate = estimate_training(inputs)
    if args.json:
        json.dump(estimate.to_dict(), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    elif args.format == "markdown":
        sys.stdout.write(markdown(estimate, args.name))
    elif args.format == "latex":
        sys.stdout.write(latex(estimate, args.name))
    else:
        rows = [
            ("accelerator-hours", estimate.accelerator_hours, ""),
            ("energy", estimate.energy_kwh, "kWh"),
            ("  accelerators (IT)", estimate.accelerator_energy_kwh, "kWh"),
            ("  hosts (IT)", estimate.host_energy_kwh, "kWh"),
            ("operational", estimate.operational_co2e_kg, "kg CO2e"),
            ("embodied", estimate.embodied_co2e_kg, "kg CO2e"),
            ("total", estimate.total_co2e_kg, "kg CO2e"),
            ("water, on-site", estimate.water_onsite_l, "L"),
            ("water, off-site", estimate.water_offsite_l, "L"),
        ]
        if estimate.cost_usd is not None:
            rows.append(("cost", estimate.cost_usd, "USD"))
        _print_table(rows, estimate.assumptions)
    if args.save:
        save_artifact(args, "training-estimate", "" if args.name == "the model" else args.name, estimate.to_dict())
    return 0


def handle_inference(args: argparse.Namespace) -> int:
    from wattwise.estimate.inference import InferenceInputs, estimate_inference

    inputs = InferenceInputs(
        hardware=args.hardware,
        devices=args.devices,
        params=args.params,
        active_params=args.active_params,
        dtype=args.dtype,
        batch=args.batch,
        prompt_tokens=args.prompt_tokens,
        tokens_per_request=args.tokens_per_request,
        requests_per_day=args.requests_per_day,
        boundary=args.boundary,
        attention=args.attention,
        engine=args.engine,
        power_w=args.power_w,
        peak_tflops=args.peak_tflops,
        memory_bandwidth_gbs=args.memory_bandwidth,
        pue=args.pue,
        region=args.region,
        intensity_g_per_kwh=args.intensity,
    )
    e = estimate_inference(inputs)
    if args.json:
        json.dump(e.to_dict(), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(f"boundary: {e.boundary}; {e.requests_per_day:,.0f} requests a day, busy {e.busy_share:.0%} of it")
        _print_table(
            [
                ("energy per output token", e.j_per_output_token, "J"),
                ("energy per request", e.wh_per_request, "Wh"),
                ("energy per 1,000 requests", e.wh_per_1k_requests, "Wh"),
                ("energy per day", e.kwh_per_day, "kWh"),
                ("CO2e per request", e.co2e_g_per_request, "g"),
                ("CO2e per 1,000 requests", e.co2e_g_per_1k_requests, "g"),
                ("CO2e per day", e.co2e_kg_per_day, "kg"),
                ("water per request", e.water_ml_per_request, "mL"),
                ("water per day", e.water_l_per_day, "L"),
            ],
            e.assumptions,
        )
    if args.save:
        save_artifact(args, "inference-estimate", args.name, e.to_dict())
    return 0


def _print_table(rows: list[tuple[str, Range, str]], assumptions: tuple[str, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for col, justify in (("", "left"), ("estimate", "right"), ("low", "right"), ("high", "right"), ("", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for label, r, unit in rows:
        table.add_row(label, f"{r.value:,.4g}", f"{r.low:,.4g}", f"{r.high:,.4g}", unit)
    console = Console()
    console.print(table)
    console.print("assumptions:", style="bold")
    for a in assumptions:
        console.print(f"  - {a}", style="dim", highlight=False)
