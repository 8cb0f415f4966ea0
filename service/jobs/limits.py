"""Per-job caps set by the operator (``FITQ_MAX_*``): each refusal is a 422 at the field that
breaks it, naming the limit, its setting and the value received."""

from __future__ import annotations

from fitq.errors import SpecError
from fitq.settings import Settings
from fitq.spec import FitSpec
from fitq.spec.inference import ModelSummary

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
    longest = longest_sequence(summary)
    if longest is not None and longest[1] > settings.max_sequence_length:
        index, steps = longest
        raise SpecError(
            f"model.layers.{index}",
            f"expected sequences of at most {settings.max_sequence_length:,} steps "
            f"(FITQ_MAX_SEQUENCE_LENGTH), received {steps:,} steps into "
            f"{summary.layers[index].type}",
        )


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
