"""Data-parallel training under torchrun, measured per rank and stored as one run.

    torchrun --standalone --nproc_per_node=2 examples/distributed.py --epochs 3

Each rank trains a small network (DistributedDataParallel over gloo on CPUs, NCCL on GPUs) on its shard of
scikit-learn's bundled digits (no download). wattwise measures each rank's own GPU, reads the node-wide sources (CPU,
memory, network) once per node, and rank 0 stores one run with every rank in it (``wattwise runs show latest``).
The process group is this script's: wattwise only uses the job's key-value store.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import wattwise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--name", default="distributed")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")

    x_all, y_all = load_digits(return_X_y=True)
    x = torch.tensor(x_all[rank::world] / 16.0, dtype=torch.float32, device=device)  # this rank's shard
    y = torch.tensor(y_all[rank::world], dtype=torch.long, device=device)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10)).to(device)
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if cuda else None)
    optimiser = torch.optim.SGD(ddp.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()

    with wattwise.track(args.name, epochs=args.epochs) as tracker:
        for epoch in range(1, args.epochs + 1):
            for _ in range(40):
                for start in range(0, len(x), 32):
                    optimiser.zero_grad()
                    loss = loss_fn(ddp(x[start : start + 32]), y[start : start + 32])
                    loss.backward()
                    optimiser.step()
            tracker.epoch_end()
            if rank == 0:
                print(f"epoch {epoch}  loss {loss.item():.4f}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    run = tracker.result
    if rank == 0 and run is not None:
        print(f"run {run.id}: {run.energy_j:.1f} J over {len(run.ranks)} ranks")
        for figure in run.ranks:
            print(f"  rank {figure.rank} on {figure.host}: {figure.energy_j:.1f} J ({figure.status})")


if __name__ == "__main__":
    main()
