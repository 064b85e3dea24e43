"""The same training job measured from Python: per-epoch windows and an early prediction of the whole run.

python examples/train_digits_api.py
"""

from __future__ import annotations

from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import wattwise

EPOCHS = 20


def main() -> None:
    x, y = load_digits(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    model = MLPClassifier(hidden_layer_sizes=(256, 256), batch_size=64, random_state=0)
    classes = sorted(set(y))
    with wattwise.track("digits-api", epochs=EPOCHS) as t:
        for epoch in range(1, EPOCHS + 1):
            with t.window("fit"):
                model.partial_fit(x, y, classes=classes)
            t.epoch_end()
            if epoch == 3 and t.prediction is not None:
                p = t.prediction
                print(
                    f"after 3 epochs, predicted total: {p.energy_j.value:.0f} J "
                    f"({p.energy_j.low:.0f}-{p.energy_j.high:.0f} J), {p.co2e_g.value:.3f} g CO2e"
                )
    run = t.result
    assert run is not None
    print(f"measured: {run.energy_j:.0f} J ({run.source}), {run.co2e_g:.3f} g CO2e; stored as {run.id}")


if __name__ == "__main__":
    main()
