"""A torchrun worker for the Lightning test: two epochs of DDP over gloo on the CPU, measured by the callback.

torchrun --standalone --nproc_per_node=2 tests/integrations/lightning_ddp.py OUTPUT_DIR
"""

from __future__ import annotations

import sys

import lightning.pytorch as pl
import torch

from wattwise.integrations.lightning import WattwiseCallback


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def main() -> None:
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        callbacks=[WattwiseCallback("ddp")],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=sys.argv[1],
    )
    trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=8))


if __name__ == "__main__":
    main()
