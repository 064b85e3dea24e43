"""``wattwise optimize``: try compression recipes on a model and measure what each saves and costs."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from wattwise.errors import ConfigError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "optimize",
        help="try quantization, pruning, low-rank, mixed precision and ONNX on a PyTorch model; measure each",
        description="Build variants of a model with compression recipes and measure size, latency, energy per "
        "inference (wattwise tracker) and a metric; mark the Pareto front. Needs: pip install 'wattwise[reduce]'.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="MODULE:FACTORY", help="a function returning the torch.nn.Module")
    src.add_argument("--example", choices=["digits", "minilm"], help="a built-in, fully offline example")
    p.add_argument("--eval", metavar="MODULE:FUNCTION", help="model -> metric (higher is better); with --model")
    p.add_argument(
        "--inputs",
        metavar="MODULE:FUNCTION",
        help="returns one batch of inputs (a tensor or a tuple of them); default: MODULE.example_inputs of --model",
    )
    p.add_argument("--recipes", help="comma-separated recipe names, '+' to chain (default: all that apply)")
    p.add_argument("--list-recipes", action="store_true", help="print the recipe names and exit")
    p.add_argument("--json", metavar="FILE", type=Path, help="write every variant as JSON")
    p.add_argument("--html", metavar="FILE", type=Path, help="write a page with the table and the trade-off plot")
    p.set_defaults(handler=handle)


def _load(ref: str, flag: str) -> Any:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{flag} takes MODULE:NAME (e.g. mypkg.models:build), not {ref!r}")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # the user's working directory, as `python -m` would
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{flag}: cannot import {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{flag}: module {module_name!r} has no {attr!r}") from None


def handle(args: argparse.Namespace) -> int:
    from wattwise.reduce import require_torch

    require_torch()
    from wattwise.reduce.optimize import optimize
    from wattwise.reduce.recipes import RECIPES, parse_recipes
    from wattwise.reduce.render import print_table

    pages = None
    if args.html is not None:  # before the long measurement: a missing extra is said at once
        from wattwise.report.html import Pages

        pages = Pages()

    if args.list_recipes:
        print("\n".join(sorted(RECIPES)))
        return 0
    recipes = parse_recipes(args.recipes) if args.recipes else None
    calibration = train_fn = None
    if args.example == "digits":
        from wattwise.reduce.examples.digits import build_digits

        model, eval_fn, example_inputs, calibration, train_fn = build_digits()
    elif args.example == "minilm":
        from wattwise.reduce.examples.minilm import build_minilm

        example = build_minilm()  # metric: downstream Spearman ×100; fidelity to fp32 is in benchmarks/
        model, eval_fn, example_inputs, calibration, train_fn = (
            example.model,
            example.eval_fn,
            example.example_inputs,
            example.calibration,
            example.train_fn,
        )
    else:
        if not args.eval:
            raise ConfigError("--model needs --eval MODULE:FUNCTION (model -> metric)")
        factory = _load(args.model, "--model")
        eval_fn = _load(args.eval, "--eval")
        inputs_ref = args.inputs or f"{args.model.partition(':')[0]}:example_inputs"
        make_inputs = _load(inputs_ref, "--inputs")
        model = factory()
        example_inputs = make_inputs() if callable(make_inputs) else make_inputs
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    report = optimize(model, eval_fn, example_inputs, recipes, calibration=calibration, train_fn=train_fn)
    print_table(report.variants)
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {args.json}: {exc.strerror}") from exc
    if args.html is not None:
        from wattwise.cli.common import write_output
        from wattwise.report.pages import pareto_page

        write_output(args.html, pareto_page(report.variants, pages=pages))
    return 0
