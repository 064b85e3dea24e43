"""An independent reference for benchmarks/gpu_accuracy.py: one GPU's power, sampled fast in its own process.

    python benchmarks/nvml_sampler.py --uuid GPU-... --hz 100 --out FILE

Talks to NVML through pynvml directly (no wattwise code), so what it records does not share wattwise's reading,
smoothing or attribution. Each sample is one line ``t_s,power_mw,energy_mj`` with ``t_s`` from CLOCK_MONOTONIC
(the same clock in every process, so the benchmark can cut the trace at its own window edges). Power is the
instantaneous field (NVML_FI_DEV_POWER_INSTANT) where the driver has it, else nvmlDeviceGetPowerUsage (an average
over about a second on Ampere and newer: a poor reference for short windows, and the first line says which).
The energy counter is recorded only to find how often it moves; the reference energy is the power's integral.
Runs until its standard input closes or it gets SIGTERM; the first line starts with ``# power: ``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

FI_DEV_POWER_INSTANT = 186  # nvml.h: NVML_FI_DEV_POWER_INSTANT (R535 and newer)


def instant_power(nvml: Any, handle: Any) -> int | None:
    """The instantaneous power field in mW, or None where the driver does not have it."""
    try:
        field = nvml.nvmlDeviceGetFieldValues(handle, [FI_DEV_POWER_INSTANT])[0]
    except Exception:  # an older driver or bindings: no field API, or not this field
        return None
    return int(field.value.uiVal) if int(field.nvmlReturn) == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uuid", required=True)
    parser.add_argument("--hz", type=float, default=100.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    import pynvml

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def until_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByUUID(args.uuid)
    use_instant = instant_power(pynvml, handle) is not None
    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        has_counter = True
    except pynvml.NVMLError:
        has_counter = False
    period_s = 1.0 / args.hz
    with open(args.out, "w", buffering=1) as out:  # noqa: PTH123 (line-buffered: read while it runs)
        out.write(f"# power: {'instant' if use_instant else 'average'}; counter: {'yes' if has_counter else 'no'}\n")
        out.flush()
        next_t = time.monotonic()
        while not stop.is_set():
            t_s = time.monotonic()
            power_mw = instant_power(pynvml, handle) if use_instant else int(pynvml.nvmlDeviceGetPowerUsage(handle))
            energy = int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)) if has_counter else ""
            out.write(f"{t_s:.6f},{power_mw},{energy}\n")
            next_t += period_s
            delay = next_t - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                next_t = time.monotonic()  # fell behind: do not burst to catch up
    pynvml.nvmlShutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
