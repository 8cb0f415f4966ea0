"""fitq: Keras training as a service. This package is the shared contract (spec, store,
settings), the SDK and the CLI; it imports no FastAPI, Celery or TensorFlow at module level."""

__version__ = "0.1.0"
