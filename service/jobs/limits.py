"""Limits set by the operator (``FITQ_MAX_*``). Per job: each refusal is a 422 at the field
that breaks it, naming the limit, its setting and the value received. Per tenant: a 429 with
``Retry-After`` when a job quota is used up."""

from __future__ import annotations

import math
from datetime import timedelta

from fitq.errors import SpecError, quota_exceeded
from fitq.settings import Settings
from fitq.spec import FitSpec
from fitq.spec.validation import ModelSummary

DAY = timedelta(days=1)

# Layers that step along the first axis after the batch: its length is the sequence length.
SEQUENCE_LAYERS = frozenset(
    {
        "Embedding",
        "Conv1D",
        "LSTM",
        "GRU",
        "MaxPooling1D",
        "AveragePooling1D",
        "GlobalAveragePooling1D",
    }
)


def check_job_limits(
    settings: Settings, fit: FitSpec, summary: ModelSummary, samples_x_epochs: int
) -> None:
    if samples_x_epochs > settings.max_sample_epochs:
        raise SpecError(
            "fit.epochs",
            f"expected at most {settings.max_sample_epochs:,} training rows x epochs "
            f"(FITQ_MAX_SAMPLE_EPOCHS), received {samples_x_epochs:,}",
        )
    if fit.batch_size > settings.max_batch_size:
        raise SpecError(
            "fit.batch_size",
            f"expected a batch size of at most {settings.max_batch_size:,} "
            f"(FITQ_MAX_BATCH_SIZE), received {fit.batch_size:,}",
        )
    activations, largest = activation_bytes(summary, fit.batch_size, fit.mixed_precision)
    if activations > settings.max_activation_bytes:
        layer = summary.layers[largest]
        raise SpecError(
            f"model.layers.{largest}",
            f"expected at most {settings.max_activation_bytes:,} bytes of activations per "
            f"batch (FITQ_MAX_ACTIVATION_BYTES), received a model estimated at "
            f"{activations:,}, most of it from {layer.type} ({layer.output_shape[1:]} values a "
            f"row x batch {fit.batch_size:,})",
        )
    longest = longest_sequence(summary)
    if longest is not None and longest[1] > settings.max_sequence_length:
        index, steps = longest
        raise SpecError(
            f"model.layers.{index}",
            f"expected sequences of at most {settings.max_sequence_length:,} steps "
            f"(FITQ_MAX_SEQUENCE_LENGTH), received {steps:,} steps into "
            f"{summary.layers[index].type}",
        )


def activation_bytes(
    summary: ModelSummary, batch_size: int, mixed_precision: bool
) -> tuple[int, int]:
    """Peak bytes of activations one training batch holds, estimated from the inferred
    shapes: every layer's output (and the input) for the batch, kept for the backward pass
    and matched by its gradient, at 4 bytes a value (2 under mixed precision). Returns the
    estimate and the index of the layer with the largest output."""
    per_row = [math.prod(d or 1 for d in layer.output_shape[1:]) for layer in summary.layers]
    values = math.prod(d or 1 for d in summary.input_shape[1:]) + sum(per_row)
    size = 2 if mixed_precision else 4
    largest = max(range(len(per_row)), key=per_row.__getitem__)
    return values * batch_size * size * 2, largest


def longest_sequence(summary: ModelSummary) -> tuple[int, int] | None:
    """(layer index, steps) of the sequence layer with the longest input, if any."""
    longest: tuple[int, int] | None = None
    incoming = summary.input_shape
    for index, layer in enumerate(summary.layers):
        steps = incoming[1] if len(incoming) > 1 else None
        if layer.type in SEQUENCE_LAYERS and steps is not None:
            if longest is None or steps > longest[1]:
                longest = (index, steps)
        incoming = layer.output_shape
    return longest


def check_job_quotas(settings: Settings, active_jobs: int, gpu_seconds: float | None) -> None:
    """429 past the tenant's active-job quota, or its GPU-second quota (``gpu_seconds``: used
    in the last 24 hours, counted only when ``FITQ_MAX_GPU_SECONDS_PER_DAY`` is set)."""
    if active_jobs >= settings.max_active_jobs:
        raise quota_exceeded(
            429,
            f"expected at most {settings.max_active_jobs} queued or running jobs "
            f"(FITQ_MAX_ACTIVE_JOBS), received one more; retry when one finishes",
            retry_after=30,
        )
    cap = settings.max_gpu_seconds_per_day
    if cap is not None and gpu_seconds is not None and gpu_seconds >= cap:
        raise quota_exceeded(
            429,
            f"expected at most {cap:,.0f} GPU-seconds in 24 hours "
            f"(FITQ_MAX_GPU_SECONDS_PER_DAY), received a job after {gpu_seconds:,.0f} were "
            "used; retry as older jobs leave the 24-hour window",
            retry_after=600,
        )
