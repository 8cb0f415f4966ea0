"""The Keras code a user would write by hand for the test jobs: fitq's numbers must equal it."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from tests.factories import image_arrays, sequence_arrays


def cnn(epochs: int = 3, seed: int = 5) -> dict[str, Any]:
    train, test = image_arrays(), image_arrays(rows=32, seed=1)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential()
    model.add(keras.layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)))
    model.add(keras.layers.MaxPooling2D(2))
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(3, activation="softmax"))
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate=0.01),
        metrics=["accuracy"],
    )
    history = model.fit(train["x"], train["y"], batch_size=16, epochs=epochs, verbose=0)
    scores = model.evaluate(test["x"], test["y"], batch_size=16, verbose=0, return_dict=True)
    return {"history": history.history, "scores": scores}


def lstm(epochs: int = 3, seed: int = 9) -> dict[str, Any]:
    data = sequence_arrays()
    # data.shuffle_before_split, then data.test_split = 0.2 (the last 20 % for evaluate)
    order = np.random.default_rng(seed).permutation(len(data["x"]))
    x, y = data["x"][order], data["y"][order]
    cut = int(np.floor(len(x) * 0.8))
    keras.utils.set_random_seed(seed)
    model = keras.Sequential()
    model.add(keras.layers.LSTM(8, input_shape=(10, 2)))
    model.add(keras.layers.Dense(1))
    model.compile(
        loss="huber",
        optimizer="rmsprop",
        metrics=["mae", keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    history = model.fit(
        x[:cut], y[:cut], batch_size=16, epochs=epochs, validation_split=0.25, verbose=0
    )
    scores = model.evaluate(x[cut:], y[cut:], batch_size=16, verbose=0, return_dict=True)
    return {"history": history.history, "scores": scores}
