"""The fitq HTTP API (FastAPI). Never imports TensorFlow, Keras or ``worker``: it queues work
by task name."""
