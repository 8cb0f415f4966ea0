"""Everything specific to the Keras backend in one place: device set-up before the first job
and a description of the environment a job ran in."""

from __future__ import annotations

import functools
import logging
import platform
from typing import Any

import keras

log = logging.getLogger(__name__)


def configure_devices() -> None:
    """Turn on GPU memory growth so one process does not grab every GPU's memory."""
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as exc:  # devices already initialised
            log.warning("could not enable memory growth on %s: %s", gpu.name, exc)


@functools.cache
def visible_gpus() -> int:
    """GPUs this process can use (fixed at process start): what its jobs are charged for."""
    if keras.backend.backend() != "tensorflow":
        return 0
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def describe_environment() -> dict[str, Any]:
    backend = keras.backend.backend()
    env: dict[str, Any] = {
        "backend": backend,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "device": "CPU",
        "devices": [],
    }
    if backend == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
        gpus = tf.config.list_logical_devices("GPU")
        env["devices"] = [d.name for d in gpus]
        if gpus:
            details = tf.config.experimental.get_device_details(
                tf.config.list_physical_devices("GPU")[0]
            )
            env["device"] = details.get("device_name", "GPU")
    return env
