"""A torchrun worker for the distributed tests: a few steps of DDP over gloo, measured by wattwise.

    torchrun --standalone --nproc_per_node=2 tests/distributed/job.py --epochs 3 [--die-rank 1 --die-after 1]

``--die-rank R --die-after N``: rank R kills itself (SIGKILL) after N epochs, as an out-of-memory kill would.
"""

from __future__ import annotations

import argparse
import os
import signal
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import wattwise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--die-rank", type=int, default=-1)
    parser.add_argument("--die-after", type=int, default=1)
    parser.add_argument("--busy-rank", type=int, default=-1, help="this rank also spins its CPU (uneven ranks)")
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(rank)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4)))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    with wattwise.track("dist-test", epochs=args.epochs) as tracker:
        for epoch in range(1, args.epochs + 1):
            for _ in range(args.steps):
                optimiser.zero_grad()
                model(torch.randn(16, 32)).sum().backward()
                optimiser.step()
                if rank == args.busy_rank:
                    end = time.process_time() + 0.02
                    while time.process_time() < end:
                        pass
            tracker.epoch_end()
            if rank == args.die_rank and epoch >= args.die_after:
                time.sleep(1.0)  # at least one report after the epoch
                os.kill(os.getpid(), signal.SIGKILL)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
