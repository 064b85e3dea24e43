"""Record an NVML power/energy trace on a machine with an NVIDIA GPU, for replay in tests/data/nvml/.

    python benchmarks/record_nvml_trace.py --seconds 20 --interval 0.1 --out trace.csv [--load] [--index 0]

Writes ``t_s,index,power_mw,energy_mj`` rows (``energy_mj`` empty where the GPU has no counter) for every GPU
the job sees (or ``--index``), at ``--interval`` seconds, with ``#`` comment lines naming the GPUs. ``power_mw`` is
the instantaneous power field where the driver has it (tests/fakes/nvml.py averages it over a second to answer
nvmlDeviceGetPowerUsage, as Ampere and newer do), else nvmlDeviceGetPowerUsage itself (the header says which).
``--load`` drives the first recorded GPU with torch matmuls of changing sizes and idle gaps (needs torch with CUDA).
Name the file after the GPU that recorded it (``h100_sxm_load.csv``); ``synthetic_…`` is for made-up ones.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpu_load import drive_gpu  # benchmarks/ is on sys.path when a script here runs
from wattwise.devices.nvml import (
    EnergyCounterUnsupported,
    NvmlError,
    PynvmlBackend,
    probe_gpu,
    visible_gpu_indices,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between samples")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--load", action="store_true", help="drive the GPU with torch matmuls")
    parser.add_argument("--index", type=int, action="append", help="NVML index to record (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        backend = PynvmlBackend()
        backend.init()
    except NvmlError as exc:
        print(f"cannot record: {exc} (reason: {exc.reason}); this needs an NVIDIA GPU and nvidia-ml-py")
        return 1
    try:
        explicit = tuple(args.index) if args.index else None
        indices = visible_gpu_indices(backend, os.environ.get("CUDA_VISIBLE_DEVICES"), explicit)
        if not indices:
            print("cannot record: no NVIDIA GPU is visible (check CUDA_VISIBLE_DEVICES)")
            return 1
        return record(backend, indices, args)
    finally:
        backend.shutdown()


def record(backend: PynvmlBackend, indices: list[int], args: argparse.Namespace) -> int:
    counter: dict[int, bool] = {}
    instant: dict[int, bool] = {}
    header = [f"# recorded by benchmarks/record_nvml_trace.py at {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"]
    for i in list(indices):
        if probe_gpu(backend, i).mode == "none":
            print(f"GPU {i} ({backend.name(i)}) gives neither energy nor power: not recorded")
            indices.remove(i)
            continue
        try:
            backend.total_energy_mj(i)
            counter[i] = True
        except EnergyCounterUnsupported:
            counter[i] = False
        try:
            backend.power_instant_mw(i)
            instant[i] = True
        except NvmlError:
            instant[i] = False
        has = "yes" if counter[i] else "no"
        power = "instantaneous field" if instant[i] else "nvmlDeviceGetPowerUsage"
        header.append(f"# gpu {i}: {backend.name(i)} ({backend.uuid(i)}); energy counter: {has}; power: {power}")
    if not indices:
        print("cannot record: no visible GPU gives energy or power")
        return 1
    header.append(f"# driver {backend.driver_version()}; {backend.bindings_version()}")
    header.append(f"# interval {args.interval} s; load: {'torch matmuls' if args.load else 'none'}")

    stop = threading.Event()
    loader: threading.Thread | None = None
    if args.load:
        os.environ["CUDA_VISIBLE_DEVICES"] = backend.uuid(indices[0])  # cuda:0 is the first recorded GPU
        try:
            torch: Any = importlib.import_module("torch")
        except ModuleNotFoundError:
            print("--load needs torch: pip install torch")
            return 2
        if not torch.cuda.is_available():
            print("--load needs a CUDA build of torch (torch.cuda.is_available() is False)")
            return 2
        loader = threading.Thread(target=drive_gpu, args=(torch, stop, args.seed, 3.0), daemon=True)
        loader.start()

    lines = [*header, "t_s,index,power_mw,energy_mj"]
    t0 = next_t = time.monotonic()
    try:
        while (now := time.monotonic()) - t0 <= args.seconds:
            for i in indices:
                power_mw = backend.power_instant_mw(i) if instant[i] else backend.power_mw(i)
                energy = str(backend.total_energy_mj(i)) if counter[i] else ""
                lines.append(f"{now - t0:.4f},{i},{power_mw},{energy}")
            next_t += args.interval
            time.sleep(max(0.0, next_t - time.monotonic()))
    finally:
        stop.set()
        if loader is not None:
            loader.join()
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines) - len(header) - 1} rows for GPU(s) {indices} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
