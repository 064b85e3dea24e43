"""The built-in digits example: a small MLP trained on scikit-learn's bundled 8×8 digits, offline, in seconds.

``build_digits()`` returns a :class:`DigitsExample` (a named tuple that unpacks as
``model, eval_fn, example_inputs, calibration, train_fn``):

* ``model``: ``Linear(64, 256) → ReLU → Linear(256, 128) → ReLU → Linear(128, 10)`` in an ``nn.Sequential``,
  trained with Adam on a stratified 80 % split of the 1,797 images (pixels scaled to [0, 1]), seeded;
* ``eval_fn``: accuracy on the other 20 % (360 images), in percent (higher is better);
* ``example_inputs``: one batch of 64 test images, the batch the benchmark times;
* ``calibration``: yields 8 batches of 64 training images (for static int8);
* ``train_fn``: a short fine-tuning (2 epochs, lower learning rate) on the training split, in place, seeded.

The data ship inside scikit-learn (``sklearn.datasets.load_digits``): nothing is downloaded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["DigitsExample", "build_digits"]

BATCH = 64


class DigitsExample(NamedTuple):
    model: nn.Module
    eval_fn: Callable[[nn.Module], float]
    example_inputs: tuple[torch.Tensor, ...]
    calibration: Callable[[], Iterator[tuple[torch.Tensor, ...]]]
    train_fn: Callable[[nn.Module], None]


def _load(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    import torch

    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        from wattwise.errors import ConfigError

        raise ConfigError("the digits example needs scikit-learn: pip install 'wattwise[reduce]'") from None
    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data / 16.0, data.target, test_size=0.2, stratify=data.target, random_state=seed
    )
    return (
        torch.tensor(x_train, dtype=torch.float32),
        torch.tensor(y_train, dtype=torch.long),
        torch.tensor(x_test, dtype=torch.float32),
        torch.tensor(y_test, dtype=torch.long),
    )


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Train on one thread: the layers are too small to gain from more, and on a busy machine the OpenMP threads
    of a tiny matmul spend their time waiting for each other (several times slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float, seed: int) -> None:
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    with _one_thread():
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), BATCH):
                index = order[start : start + BATCH]
                optimizer.zero_grad()
                loss_fn(model(x[index]), y[index]).backward()
                optimizer.step()
    model.eval()


def build_digits(seed: int = 0, epochs: int = 30) -> DigitsExample:
    """Train the digits MLP (about a second on two CPU cores) and return it with its eval, inputs and helpers."""
    import torch
    from torch import nn

    x_train, y_train, x_test, y_test = _load(seed)
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    _train(model, x_train, y_train, epochs=epochs, lr=1e-3, seed=seed)

    def eval_fn(candidate: nn.Module) -> float:
        with torch.no_grad():
            predicted = candidate(x_test).argmax(dim=1)
        return float((predicted == y_test).float().mean()) * 100.0

    def calibration() -> Iterator[tuple[torch.Tensor, ...]]:
        for start in range(0, 8 * BATCH, BATCH):
            yield (x_train[start : start + BATCH],)

    def train_fn(candidate: nn.Module) -> None:
        _train(candidate, x_train, y_train, epochs=2, lr=3e-4, seed=seed + 1)

    return DigitsExample(model.eval(), eval_fn, (x_test[:BATCH],), calibration, train_fn)
