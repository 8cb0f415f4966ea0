"""fitq: Keras training as a service. This package is the shared contract (spec, store,
settings), the SDK and the CLI; it imports no FastAPI, Celery or TensorFlow at module level."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # ``from fitq import Client`` without importing httpx for every ``import fitq``.
    if name == "Client":
        from fitq.client import Client

        return Client
    if name == "verify_webhook":
        from fitq.webhooks.verify import verify_webhook

        return verify_webhook
    if name == "spec_from_keras":
        from fitq.spec.keras_config import spec_from_keras

        return spec_from_keras
    raise AttributeError(f"module 'fitq' has no attribute {name!r}")
