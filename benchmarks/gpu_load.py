"""A varying GPU load shared by the GPU benchmarks: matmuls of changing sizes with idle gaps."""

from __future__ import annotations

import random
import threading
import time
from typing import Any


def drive_gpu(torch: Any, stop: threading.Event, seed: int, max_phase_s: float = 4.0) -> None:
    """Matmuls of changing sizes with idle gaps on cuda:0 until ``stop`` is set."""
    rng = random.Random(seed)
    while not stop.is_set():
        size = rng.choice([0, 0, 1024, 2048, 4096, 8192])
        until = time.monotonic() + rng.uniform(0.5, max_phase_s)
        if size == 0:
            stop.wait(max(0.0, until - time.monotonic()))
            continue
        a = torch.randn(size, size, device="cuda", dtype=torch.float16)
        b = torch.randn(size, size, device="cuda", dtype=torch.float16)
        while time.monotonic() < until and not stop.is_set():
            for _ in range(8):
                torch.matmul(a, b)
            torch.cuda.synchronize()
