"""The fitq worker: the Celery app (thin tasks) and the training code (plain functions)."""
