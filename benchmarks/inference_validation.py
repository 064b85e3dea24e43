"""Re-estimate every measured row of the published inference table from its stated inputs, and print the error.

    python benchmarks/inference_validation.py [--table PATH] [--json]

Reads ``../shared/data/reference/inference/published_inference.csv`` (its SOURCES.md explains each row's
boundary); says so and exits 2 when it is absent. Each measured row is estimated with ``wattwise estimate
inference``'s model from what the row states: model size (total and active), precision, hardware, devices in use,
batch, prompt and output tokens, and its boundary:

* GPU only (ML.ENERGY, Samsi et al.): the accelerator boundary;
* a whole 8-GPU node metered by CodeCarbon while one GPU worked (Luccioni et al. 2024): the busy GPU, plus for the
  request's duration the 7 idle GPUs at idle power, CodeCarbon's RAM figure stated in the row (431 W) and its CPU
  model (half the TDP of the node's two Xeon 8275CL, 240 W each, CodeCarbon's fallback without RAPL).

Where a row does not state an input, the value used is printed with the row (an ASSUMPTION; e.g. ShareGPT prompts,
not in the leaderboard's data files, taken as 250 tokens). Rows whose inputs are undisclosed (Gemini, ChatGPT), that
are not one language model (image generation, task means) or that are estimates rather than measurements are
listed as skipped, with the reason. No constant of the model is fitted to these rows (see docs/inference.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "reference" / "inference" / "published_inference.csv"
SHAREGPT_PROMPT_TOKENS = 250.0  # ASSUMPTION: ShareGPT human prompts (not in the ML.ENERGY data files)
CODECARBON_RAM_W = 431.0  # stated in the Luccioni et al. rows: 3/8 W per GB × 1,149 GB
CODECARBON_CPU_W = 240.0  # ASSUMPTION: CodeCarbon's fallback of 50 % TDP, two Xeon 8275CL of 240 W
NODE_GPUS = 8


@dataclass
class Case:
    row: str
    model: str
    hardware: str
    devices: int
    params: float
    active: float
    dtype: str
    batch: int
    prompt: float
    output: float
    engine: str
    attention: str
    whole_node: bool
    published: float  # in the row's own unit (J per output token, or Wh per request)
    unit: str
    assumed: list[str]


def _number(text: str) -> float | None:
    """The number a cell states: its first number, or the middle of a range written first ("10-15 (…)")."""
    cleaned = text.replace(",", "")
    span = re.match(r"\s*~?(\d+(?:\.\d+)?)\s*[-–]\s*(\d+(?:\.\d+)?)", cleaned)
    if span:
        return (float(span.group(1)) + float(span.group(2))) / 2
    found = re.search(r"\d+(?:\.\d+)?", cleaned)
    return float(found.group()) if found else None


def _prompt(text: str) -> tuple[float, str | None]:
    """Prompt tokens from the input cell, and what was assumed where it states no token count."""
    lower = text.lower()
    tokens = re.search(r"~?(\d+(?:\.\d+)?)\s*[-–]\s*(\d+(?:\.\d+)?)\s*tokens", lower)
    if tokens:
        return (float(tokens.group(1)) + float(tokens.group(2))) / 2, None
    if "sharegpt" in lower:
        return SHAREGPT_PROMPT_TOKENS, f"prompt {SHAREGPT_PROMPT_TOKENS:g} tokens (ShareGPT)"
    words = re.search(r"(\d+)\s*words", lower)
    if words:
        count = round(float(words.group(1)) * 1.3)  # ~1.3 tokens per English word
        return count, f"prompt {count} tokens ({words.group(1)} words × 1.3)"
    if "hundreds" in lower:
        return 500.0, "prompt 500 tokens"
    return 200.0, "prompt 200 tokens (not stated)"


def _hardware(text: str) -> str | None:
    lower = text.lower()
    if "h100" in lower:
        return "H100-SXM"
    if "a100-sxm4-80gb" in lower or "a100-80gb" in lower or "a100 80" in lower:
        return "A100-SXM4-80GB"
    if "a100-sxm4-40gb" in lower:
        return "A100-SXM4-40GB"
    if "a100" in lower:
        return "A100-SXM4-40GB"  # "variant not stated": the 40 GB SXM4 of the AWS p4d instances
    return None


def _dtype(text: str) -> str:
    lower = text.lower()
    if "bfloat16" in lower or "bf16" in lower:
        return "bf16"
    if "fp32" in lower:
        return "fp32"
    return "fp16"


def cases(path: Path) -> tuple[list[Case], list[tuple[str, str]]]:
    found: list[Case] = []
    skipped: list[tuple[str, str]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for raw in csv.DictReader(handle):
            row, model = raw["row_id"], raw["model"]
            kind = raw["measured_or_estimated"].lower()
            if not kind.startswith("measured"):
                skipped.append((row, f"{kind.split(' ')[0]}: not a measurement"))
                continue
            if any(w in model.lower() for w in ("image", "diffusion", "task mean")):
                skipped.append((row, "not one language model"))
                continue
            params = _number(raw["params_B"] or "")
            hardware = _hardware(raw["hardware"])
            if params is None or hardware is None:
                skipped.append((row, "model size or hardware undisclosed"))
                continue
            output = _number(raw["output_tokens"]) if "classification" not in raw["output_tokens"] else 1.0
            if output is None:
                skipped.append((row, "output tokens not logged"))
                continue
            assumed: list[str] = []
            prompt, said = _prompt(raw["input_tokens"] or "")
            if said:
                assumed.append(said)
            batch_text = raw["batch_size_or_concurrency"]
            mean = re.search(r"mean batch=(\d+(?:\.\d+)?)", batch_text)
            batch = round(float(mean.group(1))) if mean else int(_number(batch_text) or 1)
            devices_text = raw["device_count"]
            first = re.search(r"\d+", devices_text)
            devices = int(first.group()) if first else 1  # "8-32 (sharded)": the smallest deployment stated
            if "-" in devices_text.split("(")[0]:
                assumed.append(f"{devices} devices of the stated {devices_text.split('(')[0].strip()}")
            whole = "whole node" in raw["boundary"].lower()
            total = _number(raw["total_params_B"] or "") or params
            engine = "batched" if "vllm" in raw["source"].lower() or "vLLM" in raw["precision"] else "eager"
            if "ml.energy leaderboard v1" in raw["source"].lower():
                engine = "eager"
            attention = "gqa" if re.search(r"llama-3|mistral|mixtral|gemma|qwen", model.lower()) else "mha"
            if "j per output token" in raw["metric"].lower() or raw["j_per_output_token"]:
                published = _number(raw["j_per_output_token"] or raw["value"])
                unit = "J/token"
            else:
                published = _number(raw["wh_per_request"] or raw["value"])
                unit = "Wh/request"
            if published is None:
                skipped.append((row, "no energy figure"))
                continue
            if "V100" in raw["hardware"]:
                assumed.append("A100-SXM4-80GB of the stated V100/A100 mix")
                hardware = "A100-SXM4-80GB"
            found.append(
                Case(row, model, hardware, devices, params * 1e9, min(total, params) * 1e9 if total else params * 1e9,
                     _dtype(raw["precision"]), max(1, batch), prompt, output, engine, attention, whole, published,
                     unit, assumed)
            )  # fmt: skip
            if total and total > params:  # a mixture of experts: params_B is the active count
                found[-1].params, found[-1].active = total * 1e9, params * 1e9
    return found, skipped


def estimate(case: Case) -> float:
    from wattwise.estimate.inference import InferenceInputs, estimate_inference
    from wattwise.estimate.serving import IDLE_POWER

    e = estimate_inference(
        InferenceInputs(
            hardware=case.hardware,
            devices=case.devices,
            params=case.params,
            active_params=case.active,
            dtype=case.dtype,
            batch=case.batch,
            prompt_tokens=case.prompt,
            tokens_per_request=case.output,
            boundary="accelerator",
            attention=case.attention,
            engine=case.engine,
            intensity_g_per_kwh=0.0,
        )
    )
    wh = e.wh_per_request.value
    if case.whole_node:
        from wattwise.estimate.hardware import HardwareCatalogue

        tdp = HardwareCatalogue().get(case.hardware).tdp_w or 0.0
        seconds = 86_400 / e.requests_per_day  # the deployment's wall time per request (busy all day)
        others_w = (NODE_GPUS - case.devices) * IDLE_POWER[0] * tdp + CODECARBON_RAM_W + CODECARBON_CPU_W
        wh += others_w * seconds / 3600
    return wh * 3600 / case.output if case.unit == "J/token" else wh


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.table.is_file():
        print(f"the published table is absent: {args.table} (it lives in ../shared/data); nothing to validate")
        return 2
    found, skipped = cases(args.table)
    results = []
    for case in found:
        est = estimate(case)
        results.append((case, est, est / case.published))
    if args.json:
        json.dump(
            [
                {"row": c.row, "estimate": e, "published": c.published, "unit": c.unit, "ratio": r}
                for c, e, r in results
            ],
            sys.stdout,
            indent=1,
        )
        return 0
    print(f"{'row':<5} {'model':<34} {'hardware':<15} {'n':>2} {'batch':>5} {'engine':<8} {'unit':<10} "
          f"{'published':>10} {'estimate':>10} {'ratio':>6}  assumed")  # fmt: skip
    for case, est, ratio in results:
        boundary = " (whole node)" if case.whole_node else ""
        print(
            f"{case.row:<5} {case.model[:34]:<34} {case.hardware:<15} {case.devices:>2} {case.batch:>5} "
            f"{case.engine:<8} {case.unit:<10} {case.published:>10.4g} {est:>10.4g} {ratio:>6.2f}  "
            f"{'; '.join(case.assumed)}{boundary}"
        )
    errors = [abs(math.log(r)) for _, _, r in results]
    median = math.exp(statistics.median(errors)) - 1
    within_15 = sum(e <= math.log(1.5) for e in errors) / len(errors)
    within_2 = sum(e <= math.log(2) for e in errors) / len(errors)
    print(f"\n{len(results)} rows: median error {median:.0%} (as a factor: ×{1 + median:.2f}); "
          f"within ×1.5: {within_15:.0%}; within ×2: {within_2:.0%}")  # fmt: skip
    for row, why in skipped:
        print(f"skipped {row}: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
