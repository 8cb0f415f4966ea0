"""How a job's steps are dispatched: fitq's per-job execution choice, made from the job's
size before training and recorded in ``result.execution``. Neither choice changes a number
(the same ops run in the same order; tests hold results equal to hand-run Keras), only how
much Python and tracing surrounds them.

- ``run_eagerly`` for jobs of a few steps: tracing a ``tf.function`` costs ~0.6 s here, more
  than a handful of eager steps of a small model.
- ``steps_per_execution`` > 1 for small steps: one traced call runs several batches, so the
  per-step Python and callback overhead is paid once per call. Sized so one call stays short
  (cancel and drain are checked between calls): at most ``MAX_CALL_SECONDS`` at an assumed
  ``ASSUMED_FLOPS`` rate, never more than one epoch, at most ``MAX_STEPS_PER_EXECUTION``."""

from __future__ import annotations

import math
from dataclasses import dataclass

EAGER_MAX_STEPS = 16
EAGER_MAX_STEP_FLOPS = 1e8
MAX_STEPS_PER_EXECUTION = 32
MAX_CALL_SECONDS = 0.25
ASSUMED_FLOPS = 1e9  # a slow CPU core; faster devices only shorten calls


@dataclass(frozen=True)
class Pacing:
    run_eagerly: bool
    steps_per_execution: int
    reason: str


def plan_pacing(
    train_rows: int,
    batch_size: int,
    epochs: int,
    params: int,
    eval_rows: int = 0,
    eager_allowed: bool = True,
) -> Pacing:
    """``eager_allowed=False`` where eager cannot run: XLA, a distribution strategy, a
    resumed (already compiled) model."""
    steps_per_epoch = max(1, math.ceil(train_rows / batch_size))
    step_flops = 6.0 * max(params, 1) * batch_size  # forward + backward, dense-layer estimate
    total_steps = steps_per_epoch * epochs + math.ceil(eval_rows / batch_size)
    small = total_steps <= EAGER_MAX_STEPS and step_flops <= EAGER_MAX_STEP_FLOPS
    if small and eager_allowed:
        return Pacing(True, 1, f"{total_steps} steps: eager is cheaper than tracing")
    per_call = int(MAX_CALL_SECONDS * ASSUMED_FLOPS // step_flops)
    steps = max(1, min(per_call, steps_per_epoch, MAX_STEPS_PER_EXECUTION))
    reason = f"{steps} of {steps_per_epoch} steps per call, ~{step_flops:.2g} FLOPs a step"
    return Pacing(False, steps, reason)
