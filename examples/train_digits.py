"""A small, real training job: a multi-layer perceptron on scikit-learn's bundled digits (no download).

Run it under wattwise to measure it:  wattwise run --name digits -- python examples/train_digits.py
Each epoch is reported to `wattwise run` (a no-op otherwise), which predicts the whole run from the first ones.
"""

from __future__ import annotations

import argparse
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import wattwise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--hidden", type=int, default=512)
    args = parser.parse_args()

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    model = MLPClassifier(hidden_layer_sizes=(args.hidden, args.hidden), batch_size=64, random_state=0)
    classes = sorted(set(y))
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.partial_fit(x_train, y_train, classes=classes)
        wattwise.report_epoch(planned=args.epochs)
        if epoch % 10 == 0 or epoch == args.epochs:
            print(
                f"epoch {epoch:3d}  loss {model.loss_:.4f}  test accuracy {model.score(x_test, y_test):.3f}",
                flush=True,
            )
    print(f"trained in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
