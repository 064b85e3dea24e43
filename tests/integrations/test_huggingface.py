"""The transformers Trainer callback, on a one-layer BERT built from a config (nothing downloaded) and made-up data."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from wattwise.config import Settings
from wattwise.store import open_store

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from wattwise.integrations.huggingface import WattwiseCallback  # noqa: E402

pytestmark = pytest.mark.slow


def tiny_trainer(tmp_path: Path, callbacks: list[Any], epochs: int = 2, **args: Any) -> Any:
    config = transformers.BertConfig(
        vocab_size=32,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    data = [{"input_ids": torch.randint(0, 32, (8,)), "labels": torch.tensor(i % 2)} for i in range(12)]
    training_args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=epochs,
        per_device_train_batch_size=4,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        **args,
    )
    return transformers.Trainer(model=model, args=training_args, train_dataset=data, callbacks=callbacks)


def test_a_training_is_one_complete_run_with_its_epochs(settings: Settings, tmp_path: Path) -> None:
    callback = WattwiseCallback("bert-tiny", settings=settings)
    trainer = tiny_trainer(tmp_path, [callback], epochs=2)
    trainer.train()
    run = callback.run
    assert run is not None and run.status == "complete"
    with open_store(settings.db_url) as store:
        stored = store.get(run.id)
    assert stored.name == "bert-tiny" and stored.status == "complete" and stored.energy_j > 0
    assert [w.name for w in stored.windows] == ["epoch-1", "epoch-2"]
    assert stored.prediction is not None and stored.prediction.epochs_planned == 2
    assert stored.prediction.epochs_done == 2
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 6  # 12 examples in batches of 4, over 2 epochs: one log a step
    energies = [entry["energy_kwh"] for entry in logged]
    assert energies == sorted(energies) and all(e >= 0 for e in energies)
    assert energies[-1] <= stored.energy_j / 3.6e6


def test_other_ranks_measure_nothing(settings: Settings, tmp_path: Path) -> None:
    callback = WattwiseCallback(settings=settings)
    trainer = tiny_trainer(tmp_path, [callback], epochs=1)
    trainer.is_world_process_zero = lambda: False  # what the Trainer answers on rank 1
    trainer.train()
    assert callback.run is None
    assert not any("energy_kwh" in entry for entry in trainer.state.log_history)
    with open_store(settings.db_url) as store:
        assert store.count() == 0


CRASHING = """
    import torch, transformers
    from tests.integrations.test_huggingface import tiny_trainer
    from wattwise.integrations.huggingface import WattwiseCallback
    from pathlib import Path

    class Boom(transformers.TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            if state.epoch and state.epoch >= 1:
                raise RuntimeError("boom")

    tiny_trainer(Path({tmp!r}), [WattwiseCallback("crashing"), Boom()], epochs=3).train()
"""


def test_a_training_that_raises_is_stored_incomplete_when_the_process_ends(isolated_env: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(CRASHING.format(tmp=str(tmp_path)))
    env = {
        **os.environ,
        "WATTWISE_GPU": "false",
        "WATTWISE_RAPL_ROOT": str(tmp_path / "no-powercap"),
        "WATTWISE_INTERVAL_S": "0.05",
        "WATTWISE_FLUSH_S": "0.2",
    }
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode != 0 and "RuntimeError: boom" in out.stderr, out.stderr[-2000:]
    with open_store(Settings.load().db_url) as store:
        run = store.get("latest")
    assert run.name == "crashing" and run.status == "incomplete" and run.error is not None
    assert [w.name for w in run.windows] == ["epoch-1"]
